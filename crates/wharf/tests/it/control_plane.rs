//! wharf itself on Kubernetes (`deploy/kubernetes/`, `deploy/image/build`): the manifests fit
//! together (names, secrets, settings wharf reads, the service account the ClusterRole is bound
//! to), and the control-plane image, run as its Deployment says (user, read-only root, dropped
//! capabilities, the volumes, its probe), serves the API from PostgreSQL and builds an app in
//! its sandbox.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::harness::{http_get, wait_until, Cli, WHARF};
use crate::stacks::{copy_dir, example, until_answers, Podman};

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

/// Every object of the manifests kustomization.yaml lists, and the kustomization itself.
fn manifests() -> (Value, Vec<Value>) {
    let dir = deploy_dir().join("kubernetes");
    let kustomization =
        wharf_test_support::k8s::documents(&dir.join("kustomization.yaml")).remove(0);
    let listed: BTreeSet<String> = kustomization["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_owned())
        .collect();
    let present: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml")
        .collect();
    assert_eq!(listed, present, "kustomization.yaml lists every manifest");
    let objects = listed
        .iter()
        .flat_map(|f| wharf_test_support::k8s::documents(&dir.join(f)))
        .collect();
    (kustomization, objects)
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

/// `KEY=value` lines of settings.env.
fn settings() -> BTreeMap<String, String> {
    std::fs::read_to_string(deploy_dir().join("kubernetes/settings.env"))
        .unwrap()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

/// The variables `wharf server` reads (its `--help`).
fn server_settings() -> BTreeSet<String> {
    let help = Command::new(&*WHARF)
        .args(["server", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    // Long lines are wrapped: one space between words.
    help.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .split("[env: ")
        .skip(1)
        .map(|rest| rest.split([']', '=']).next().unwrap().to_owned())
        .collect()
}

#[test]
fn the_control_plane_manifests_fit_together() {
    let (kustomization, objects) = manifests();
    let deployment = find(&objects, "Deployment", "wharf");
    let namespace = deployment["metadata"]["namespace"].as_str().unwrap();
    find(&objects, "Namespace", namespace);
    let pod = &deployment["spec"]["template"]["spec"];

    // The ClusterRole is bound to the account the pod runs as.
    let account = pod["serviceAccountName"].as_str().unwrap();
    let sa = find(&objects, "ServiceAccount", account);
    assert_eq!(sa["metadata"]["namespace"], namespace);
    let binding = find(&objects, "ClusterRoleBinding", "wharf");
    assert_eq!(binding["subjects"][0]["name"], account);
    assert_eq!(binding["subjects"][0]["namespace"], namespace);

    // Every variable set, and every setting of settings.env, is one wharf reads.
    let known = server_settings();
    let container = &pod["containers"][0];
    let env = container["env"].as_array().unwrap();
    let mut names: Vec<String> = env
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_owned())
        .collect();
    names.extend(settings().into_keys());
    for name in &names {
        assert!(known.contains(name), "wharf server doesn't read {name}");
    }
    assert_eq!(
        env.iter().find(|e| e["name"] == "WHARF_BACKEND").unwrap()["value"],
        "kubernetes"
    );
    // The settings ConfigMap is the one kustomization.yaml makes; the image is the one it sets.
    let generated = &kustomization["configMapGenerator"][0];
    assert_eq!(
        container["envFrom"][0]["configMapRef"]["name"],
        generated["name"]
    );
    assert_eq!(generated["namespace"], namespace);
    let image = container["image"].as_str().unwrap();
    assert_eq!(
        image.split(':').next().unwrap(),
        kustomization["images"][0]["name"]
    );

    // The data directory is the volume claimed; the root is read-only and every other place
    // written to is an emptyDir.
    let data_dir = env.iter().find(|e| e["name"] == "WHARF_DATA_DIR").unwrap()["value"]
        .as_str()
        .unwrap();
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    for mount in container["volumeMounts"].as_array().unwrap() {
        let volume = pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == mount["name"])
            .unwrap_or_else(|| panic!("no volume for {mount}"));
        if mount["mountPath"] == data_dir {
            let claim = volume["persistentVolumeClaim"]["claimName"]
                .as_str()
                .unwrap();
            let pvc = find(&objects, "PersistentVolumeClaim", claim);
            assert_eq!(pvc["metadata"]["namespace"], namespace);
        } else {
            assert!(volume["emptyDir"].is_object(), "{volume}");
        }
    }
    // The image store is one writer's: one replica, never two at once.
    assert_eq!(deployment["spec"]["replicas"], 1);
    assert_eq!(deployment["spec"]["strategy"]["type"], "Recreate");

    // The Secrets the pod reads are the ones the README says to make.
    let readme = std::fs::read_to_string(deploy_dir().join("../README.md")).unwrap();
    let mut secrets: Vec<(String, String)> = env
        .iter()
        .filter_map(|e| e["valueFrom"]["secretKeyRef"].as_object())
        .map(|r| {
            (
                r["name"].as_str().unwrap().into(),
                r["key"].as_str().unwrap().into(),
            )
        })
        .collect();
    let postgres = find(&objects, "StatefulSet", "wharf-postgres");
    for e in postgres["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
    {
        if let Some(r) = e["valueFrom"]["secretKeyRef"].as_object() {
            secrets.push((
                r["name"].as_str().unwrap().into(),
                r["key"].as_str().unwrap().into(),
            ));
        }
    }
    for (secret, key) in secrets {
        assert!(
            readme.contains(&format!("create secret generic {secret} "))
                && readme.contains(&format!("--from-literal={key}=")),
            "the README doesn't say how to make the key {key} of the Secret {secret}"
        );
    }
    // The Service sends to the ports the container names.
    let service = find(&objects, "Service", "wharf");
    let ports: Vec<&str> = container["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for port in service["spec"]["ports"].as_array().unwrap() {
        assert!(
            ports.contains(&port["targetPort"].as_str().unwrap()),
            "{port}"
        );
    }
}

/// The image deploy/image/build makes, with the wharf binary under test, run by podman the
/// way the Deployment's container is: its user, a read-only root, all capabilities dropped and
/// no privilege escalation, seccomp unconfined and /proc unmasked, an emptyDir at /tmp, the
/// data volume, its environment. What differs, because no cluster can run here: the backend is
/// `local` (the apps run in the container), the network is the host's, and the pod's user
/// namespace (`hostUsers: false`) is not made. The server migrates a PostgreSQL database,
/// answers the readiness probe, and builds python-web in its sandbox on a stack imported into
/// the volume; the app answers through the router.
#[test]
fn the_control_plane_image_runs_as_its_deployment_says() {
    if !crate::test_stack::available() {
        return;
    }
    let Some(podman) = Podman::new() else {
        return;
    };
    for tool in ["umoci", "skopeo"] {
        assert!(
            Command::new(tool).arg("--version").output().is_ok(),
            "{tool} is needed (scripts/setup installs it)"
        );
    }
    let archive = podman.root().join("wharf-image.tar");
    let built = Command::new(deploy_dir().join("image/build"))
        .arg("--wharf")
        .arg(&*WHARF)
        .arg("--output")
        .arg(&archive)
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "deploy/image/build: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    let loaded = podman
        .command(&["load", "--quiet", "-i", archive.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(loaded.status.success(), "{loaded:?}");
    let version = env!("CARGO_PKG_VERSION");
    let image = format!("localhost/wharf:{version}");

    let (_, objects) = manifests();
    let deployment = find(&objects, "Deployment", "wharf");
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let security = &container["securityContext"];

    // The volume: a directory the pod's user owns (as fsGroup makes it), with the stack in it.
    let data = tempfile::tempdir().unwrap();
    let volume = data.path().join("volume");
    crate::test_stack::install(&volume);
    let uid = pod["securityContext"]["runAsUser"].as_u64().unwrap();
    let gid = pod["securityContext"]["runAsGroup"].as_u64().unwrap();
    let chowned = Command::new("chown")
        .arg("-R")
        .arg(format!("{uid}:{gid}"))
        .arg(&volume)
        .status()
        .unwrap();
    assert!(chowned.success());

    let database = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(wharf_test_support::TestDatabase::new(
            wharf_test_support::Backend::Postgres,
        ));
    let api_port = crate::stacks::free_port();
    let router_port = crate::stacks::free_port();
    let admin_token = "wharf-control-plane-test-token";
    let mut secret = BTreeMap::new();
    secret.insert("database-url", database.url.clone());
    secret.insert("secret-key", "ab".repeat(32));
    secret.insert("admin-token", admin_token.to_owned());
    let mut settings = settings();
    // The stack imported into the volume, the test's own; no registry to push to.
    settings.insert("WHARF_STACK".into(), crate::test_stack::NAME.into());
    settings.insert("WHARF_DOMAIN".into(), "localhost".into());
    settings.insert(
        "WHARF_PUBLIC_URL".into(),
        format!("http://127.0.0.1:{api_port}"),
    );
    settings.retain(|k, _| !k.starts_with("WHARF_REGISTRY_"));
    let mut env: Vec<String> = settings.iter().map(|(k, v)| format!("{k}={v}")).collect();
    for e in container["env"].as_array().unwrap() {
        let name = e["name"].as_str().unwrap();
        let value = match (name, &e["value"], &e["valueFrom"]["secretKeyRef"]) {
            ("WHARF_BACKEND", ..) => "local".to_owned(),
            ("WHARF_API_ADDR", ..) => format!("127.0.0.1:{api_port}"),
            ("WHARF_ROUTER_ADDR", ..) => format!("127.0.0.1:{router_port}"),
            (_, Value::String(value), _) => value.clone(),
            (_, _, Value::Object(r)) => match secret.get(r["key"].as_str().unwrap()) {
                Some(value) => value.clone(),
                None => continue,
            },
            other => panic!("can't read {other:?}"),
        };
        env.push(format!("{name}={value}"));
    }

    let mut args: Vec<String> = vec![
        "--network".into(),
        "host".into(),
        "--user".into(),
        format!("{uid}:{gid}"),
    ];
    if security["readOnlyRootFilesystem"] == true {
        args.push("--read-only".into());
    }
    if security["allowPrivilegeEscalation"] == false {
        args.extend(["--security-opt".into(), "no-new-privileges".into()]);
    }
    for cap in security["capabilities"]["drop"].as_array().unwrap() {
        args.extend(["--cap-drop".into(), cap.as_str().unwrap().to_owned()]);
    }
    if security["seccompProfile"]["type"] == "Unconfined" {
        args.extend(["--security-opt".into(), "seccomp=unconfined".into()]);
    }
    if security["procMount"] == "Unmasked" {
        args.extend(["--security-opt".into(), "unmask=ALL".into()]);
    }
    let data_dir = settings_value(&env, "WHARF_DATA_DIR");
    for mount in container["volumeMounts"].as_array().unwrap() {
        let path = mount["mountPath"].as_str().unwrap();
        if path == data_dir {
            args.extend(["-v".into(), format!("{}:{path}", volume.display())]);
        } else {
            args.extend(["--tmpfs".into(), format!("{path}:rw,exec")]);
        }
    }
    // The machines this runs on reach package registries through a proxy that signs with a CA
    // of its own, which builds trust when the server's machine has it among the authorities
    // its administrator added: mounted there, as a cluster behind such a proxy would.
    let added = "/usr/local/share/ca-certificates";
    if Path::new(added).is_dir() {
        args.extend(["-v".into(), format!("{added}:{added}:ro")]);
    }
    for e in &env {
        args.extend(["-e".into(), e.clone()]);
    }
    args.push(image);
    args.extend(
        container["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_owned()),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let name = podman.start(&args);
    let logs = || {
        let out = podman.command(&["logs", &name]).output().unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };

    // Ready as the probe asks.
    let probe = container["readinessProbe"]["httpGet"]["path"]
        .as_str()
        .unwrap();
    wait_until(
        Duration::from_secs(120),
        "the readiness probe",
        || match http_get(api_port, "127.0.0.1", probe) {
            Ok((200, _)) => Ok(()),
            seen => Err(format!("{seen:?}\n{}", logs())),
        },
    );
    let started = logs();
    assert!(started.contains("Sandbox: namespaces"), "{started}");
    // State in PostgreSQL, not a SQLite file in the volume.
    assert!(!volume.join("wharf.db").exists(), "{started}");

    let cli = Cli::new();
    let token_file = cli.write("token", admin_token);
    cli.run(&[
        "login",
        "--url",
        &format!("http://127.0.0.1:{api_port}"),
        "--token-file",
        token_file.to_str().unwrap(),
    ])
    .success();
    let app = "in-pod";
    cli.run(&["apps", "create", app]).success();
    let source = cli.work_dir().join("python-web");
    copy_dir(&example("python-web"), &source);
    let deployed = cli.run(&["deploy", source.to_str().unwrap(), "-a", app]);
    assert_eq!(deployed.code, Some(0), "{deployed:#?}\n{}", logs());
    assert!(
        deployed
            .transcript()
            .contains(&format!("Building on stack {}", crate::test_stack::NAME)),
        "{deployed:#?}"
    );
    until_answers(
        router_port,
        &format!("{app}.localhost"),
        "Hello from python-web!",
    );
    let releases = cli.run(&["releases", "-a", app, "--json"]).success().json();
    assert_eq!(releases[0]["portable"], true, "{releases}");
}

fn settings_value(env: &[String], name: &str) -> String {
    env.iter()
        .find_map(|e| e.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("{name} is set"))
        .to_owned()
}
