//! `wharf k8s manifests`: a deployed release as Kubernetes objects, valid for Kubernetes 1.30
//! to 1.37 (kubernetes-validate, strictly), naming the image a cluster pulls from wharf's
//! registry with the login in its pull Secret.

use base64::Engine as _;
use serde_json::Value;

use crate::harness::{wait_until, Cli, Server};
use crate::stacks::{copy_dir, example};

/// Writes `yaml` to a file in `cli`'s work dir and checks it for every Kubernetes version.
pub(crate) fn assert_valid_manifests(cli: &Cli, what: &str, yaml: &str) {
    let Some(validate) = wharf_test_support::k8s::kubernetes_validate() else {
        return;
    };
    let file = cli
        .work_dir()
        .join(format!("{}.yaml", what.replace(['/', ' '], "-")));
    std::fs::write(&file, yaml).unwrap();
    wharf_test_support::k8s::assert_valid(&validate, &[(what.to_owned(), file)]);
}

fn objects(manifests: &Value) -> &Vec<Value> {
    manifests["objects"].as_array().unwrap()
}

fn find<'a>(manifests: &'a Value, kind: &str, name: &str) -> &'a Value {
    objects(manifests)
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in {manifests:#}"))
}

fn secret_value(secret: &Value, key: &str) -> String {
    let encoded = secret["data"][key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} in {secret:#}"));
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap(),
    )
    .unwrap()
}

#[test]
fn a_release_prints_as_valid_kubernetes_manifests() {
    if !crate::test_stack::available() {
        return;
    }
    let server = Server::start_with(&["--k8s-ingress-class", "nginx"]);
    let cli = Cli::logged_in(&server);
    let app = "kube-shop";
    cli.run(&["apps", "create", app]).success();

    // Nothing to print before the first deploy.
    let early = cli.run(&["k8s", "manifests", "-a", app]).failure().error();
    assert!(
        early.contains("release v1 has no image") && early.contains("wharf deploy -a kube-shop"),
        "{early}"
    );

    let source = cli.work_dir().join(app);
    copy_dir(&example("python-web"), &source);
    let procfile = std::fs::read_to_string(source.join("Procfile")).unwrap();
    std::fs::write(
        source.join("Procfile"),
        format!("{procfile}worker: python3 -c 'import time; time.sleep(1e9)'\nrelease: echo migrating\n"),
    )
    .unwrap();
    cli.run(&["config", "set", "SECRET_KEY=first", "-a", app])
        .success();
    let deployed = cli.run(&["deploy", source.to_str().unwrap(), "-a", app]);
    assert_eq!(deployed.code, Some(0), "{deployed:#?}");
    cli.run(&["scale", "worker=2", "-a", app]).success();
    cli.run(&["domains", "add", "shop.example.test", "-a", app])
        .success();

    let yaml = cli.run(&["k8s", "manifests", "-a", app]).success().stdout;
    assert!(yaml.starts_with("---\n"), "{yaml}");
    for kind in [
        "Namespace",
        "Secret",
        "Job",
        "Deployment",
        "Service",
        "Ingress",
    ] {
        assert!(
            yaml.contains(&format!("\nkind: {kind}\n")),
            "{kind}: {yaml}"
        );
    }
    assert_valid_manifests(&cli, "kube-shop current", &yaml);

    let manifests = cli
        .run(&["k8s", "manifests", "-a", app, "--json"])
        .success()
        .json();
    let releases = cli.run(&["releases", "-a", app, "--json"]).success().json();
    let current = &releases[0];
    let version = current["version"].as_u64().unwrap();
    assert_eq!(manifests["release"]["version"], version);
    // The image by digest, from wharf's own registry, as the cluster's nodes pull it.
    let web = find(&manifests, "Deployment", "kube-shop-web");
    let container = &web["spec"]["template"]["spec"]["containers"][0];
    let registry = server.url.trim_start_matches("http://");
    let image = container["image"].as_str().unwrap();
    let digest = current["slug"]["id"].as_str().unwrap_or_default();
    assert!(
        image.starts_with(&format!("{registry}/{app}@sha256:")),
        "{image}"
    );
    if !digest.is_empty() {
        assert!(image.ends_with(digest), "{image} vs {current:#}");
    }
    assert_eq!(web["spec"]["replicas"], 1);
    assert_eq!(
        web["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"],
        0
    );
    assert_eq!(
        container["envFrom"][0]["secretRef"]["name"],
        format!("{app}-v{version}-config").as_str()
    );
    let worker = find(&manifests, "Deployment", "kube-shop-worker");
    assert_eq!(worker["spec"]["replicas"], 2);
    assert_eq!(worker["spec"]["strategy"]["type"], "Recreate");
    let job = find(&manifests, "Job", &format!("{app}-release-v{version}"));
    let job_args = &job["spec"]["template"]["spec"]["containers"][0]["args"];
    assert_eq!(job_args[2], "exec echo migrating", "{job:#}");
    let config = find(&manifests, "Secret", &format!("{app}-v{version}-config"));
    assert_eq!(config["immutable"], true);
    assert_eq!(secret_value(config, "SECRET_KEY"), "first");
    let ingress = find(&manifests, "Ingress", app);
    let hosts: Vec<&str> = ingress["spec"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["host"].as_str().unwrap())
        .collect();
    assert!(hosts.contains(&"shop.example.test"), "{hosts:?}");
    assert!(hosts.contains(&"kube-shop.localhost"), "{hosts:?}");

    // The pull Secret's login pulls the image from wharf's registry.
    let pull = find(&manifests, "Secret", &format!("{app}-registry"));
    let docker_config: Value =
        serde_json::from_str(&secret_value(pull, ".dockerconfigjson")).unwrap();
    let login = &docker_config["auths"][registry];
    if std::path::Path::new("/usr/bin/skopeo").exists() {
        let creds = format!(
            "{}:{}",
            login["username"].as_str().unwrap(),
            login["password"].as_str().unwrap()
        );
        let inspected = std::process::Command::new("skopeo")
            .args(["inspect", "--tls-verify=false", "--creds", &creds])
            .arg(format!("docker://{image}"))
            .output()
            .unwrap();
        assert!(inspected.status.success(), "{inspected:?}");
    }

    // An earlier release prints as it was: its own config Secret and values.
    cli.run(&["config", "set", "SECRET_KEY=second", "-a", app])
        .success();
    let earlier = cli
        .run(&[
            "k8s",
            "manifests",
            "-a",
            app,
            "--release",
            &format!("v{version}"),
            "--json",
        ])
        .success()
        .json();
    let config = find(&earlier, "Secret", &format!("{app}-v{version}-config"));
    assert_eq!(secret_value(config, "SECRET_KEY"), "first");
    // The config change's release goes live after its release phase.
    let newer = version + 1;
    let now = wait_until(
        std::time::Duration::from_secs(120),
        "the config change's release to be current",
        || {
            let now = cli
                .run(&["k8s", "manifests", "-a", app, "--json"])
                .success()
                .json();
            (now["release"]["version"] == newer)
                .then_some(now.clone())
                .ok_or(format!("{}", now["release"]))
        },
    );
    let config = find(&now, "Secret", &format!("{app}-v{newer}-config"));
    assert_eq!(secret_value(config, "SECRET_KEY"), "second");

    let missing = cli
        .run(&["k8s", "manifests", "-a", app, "--release", "v99"])
        .failure()
        .error();
    assert!(missing.contains("has no release `99`"), "{missing}");
}
