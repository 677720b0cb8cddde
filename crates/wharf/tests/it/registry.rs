//! wharf's registry endpoint (`/v2/…`): each app's release images, read-only, to real registry
//! clients (curl for the protocol's details, skopeo, and a real Docker engine's `docker pull`),
//! behind the token challenge, with pull tokens that pull one app only.

use std::process::Command;
use std::time::Duration;

use wharf_test_support::docker::{self, Dockerd, Swarm};

use crate::harness::{wait_until, Cli, Server};
use crate::stacks::{copy_dir, example};

/// An HTTP answer as curl saw it.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {self:#?}"))
    }
}

/// `curl ARGS URL`, the head and body of its answer.
#[track_caller]
fn curl(args: &[&str], url: &str) -> Answer {
    try_curl(args, url).unwrap_or_else(|e| panic!("{e}"))
}

/// [`curl`], or what went wrong if no answer came.
fn try_curl(args: &[&str], url: &str) -> Result<Answer, String> {
    let output = Command::new("curl")
        .args(["-sS", "-i", "--max-time", "60"])
        .args(args)
        .arg(url)
        .output()
        .expect("run curl");
    if !output.status.success() {
        return Err(format!("curl {args:?} {url}: {output:?}"));
    }
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok(Answer {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    })
}

/// A pull token for `app` from the token endpoint, with `password` as Basic credentials.
fn pull_token(server: &Server, password: &str, app: &str) -> Answer {
    curl(
        &["-u", &format!("anyone:{password}")],
        &format!(
            "{}/v2/token?service=wharf&scope=repository:{app}:pull",
            server.url
        ),
    )
}

fn admin_token(server: &Server) -> String {
    std::fs::read_to_string(server.admin_token_file())
        .unwrap()
        .trim()
        .to_owned()
}

/// Deploys python-web as `app` and returns its release's version and image digest.
fn deploy(cli: &Cli, app: &str) -> (u64, String) {
    cli.run(&["apps", "create", app]).success();
    let source = cli.work_dir().join(app);
    copy_dir(&example("python-web"), &source);
    cli.run(&["deploy", source.to_str().unwrap(), "-a", app])
        .success();
    let releases = cli.run(&["releases", "-a", app, "--json"]).success().json();
    (
        releases[0]["version"].as_u64().unwrap(),
        releases[0]["slug"]["id"].as_str().unwrap().to_owned(),
    )
}

/// The registry protocol as a client meets it: the challenge, a token for one app, tags,
/// manifests by tag and digest, blobs, and refusals in the registry's error shape; then skopeo
/// lists, inspects and copies an app's image with a pull token, and can't touch another app's.
#[test]
fn the_registry_serves_each_app_its_own_images() {
    let server = Server::start();
    let cli = Cli::logged_in(&server);
    let (version, digest) = deploy(&cli, "alpha");
    let (_, beta_digest) = deploy(&cli, "beta");
    let api_token = admin_token(&server);
    let registry = server.url.trim_start_matches("http://").to_owned();

    // No credentials: a challenge that says where tokens come from, for this host.
    let challenged = curl(&[], &format!("{}/v2/", server.url));
    assert_eq!(challenged.status, 401, "{challenged:#?}");
    assert_eq!(
        challenged.header("www-authenticate"),
        Some(format!("Bearer realm=\"{}/v2/token\",service=\"wharf\"", server.url).as_str()),
        "{challenged:#?}"
    );
    assert_eq!(challenged.json()["errors"][0]["code"], "UNAUTHORIZED");
    let scoped = curl(&[], &format!("{}/v2/alpha/manifests/latest", server.url));
    assert!(
        scoped
            .header("www-authenticate")
            .is_some_and(|c| c.ends_with(",scope=\"repository:alpha:pull\"")),
        "{scoped:#?}"
    );

    // A token for alpha, from the API token.
    let answer = pull_token(&server, &api_token, "alpha");
    assert_eq!(answer.status, 200, "{answer:#?}");
    let token = answer.json()["token"].as_str().unwrap().to_owned();
    assert_eq!(answer.json()["expires_in"], 3600);
    let bearer = format!("Authorization: Bearer {token}");

    let base = curl(&["-H", &bearer], &format!("{}/v2/", server.url));
    assert_eq!(base.status, 200, "{base:#?}");
    assert_eq!(
        base.header("docker-distribution-api-version"),
        Some("registry/2.0")
    );
    let tags = curl(
        &["-H", &bearer],
        &format!("{}/v2/alpha/tags/list", server.url),
    );
    assert_eq!(
        tags.json(),
        serde_json::json!({"name": "alpha", "tags": [format!("v{version}"), "latest"]})
    );

    // The release's manifest by tag, by `latest` and by digest: the same bytes, named by the
    // release's image digest.
    let by_tag = curl(
        &["-H", &bearer],
        &format!("{}/v2/alpha/manifests/v{version}", server.url),
    );
    assert_eq!(by_tag.status, 200, "{by_tag:#?}");
    assert_eq!(
        by_tag.header("docker-content-digest"),
        Some(digest.as_str())
    );
    assert_eq!(
        by_tag.header("content-type"),
        Some("application/vnd.oci.image.manifest.v1+json")
    );
    for reference in ["latest", digest.as_str()] {
        let same = curl(
            &["-H", &bearer],
            &format!("{}/v2/alpha/manifests/{reference}", server.url),
        );
        assert_eq!(same.body, by_tag.body, "{reference}");
    }
    let head = curl(
        &["-H", &bearer, "--head"],
        &format!("{}/v2/alpha/manifests/v{version}", server.url),
    );
    assert_eq!(head.status, 200, "{head:#?}");
    assert_eq!(head.header("docker-content-digest"), Some(digest.as_str()));

    // A blob of the image, and the sha256 of what comes back is its name.
    let config = by_tag.json()["config"]["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    let blob = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "curl -sSf -H '{bearer}' {}/v2/alpha/blobs/{config} | sha256sum",
            server.url
        ))
        .output()
        .unwrap();
    assert!(blob.status.success(), "{blob:?}");
    assert_eq!(
        String::from_utf8_lossy(&blob.stdout)
            .split_whitespace()
            .next(),
        config.strip_prefix("sha256:")
    );

    // Names that don't resolve, in the registry's shape.
    let unknown_tag = curl(
        &["-H", &bearer],
        &format!("{}/v2/alpha/manifests/v99", server.url),
    );
    assert_eq!(unknown_tag.status, 404);
    assert_eq!(unknown_tag.json()["errors"][0]["code"], "MANIFEST_UNKNOWN");
    let foreign_blob = curl(
        &["-H", &bearer],
        &format!("{}/v2/alpha/blobs/{beta_digest}", server.url),
    );
    assert_eq!(
        foreign_blob.status, 404,
        "beta's manifest is no blob of alpha's"
    );
    assert_eq!(foreign_blob.json()["errors"][0]["code"], "BLOB_UNKNOWN");
    let bad_digest = curl(
        &["-H", &bearer],
        &format!("{}/v2/alpha/blobs/sha256:xyz", server.url),
    );
    assert_eq!(bad_digest.status, 400);
    assert_eq!(bad_digest.json()["errors"][0]["code"], "DIGEST_INVALID");

    // alpha's token can't pull beta, nor get a token for it.
    let denied = curl(
        &["-H", &bearer],
        &format!("{}/v2/beta/manifests/latest", server.url),
    );
    assert_eq!(denied.status, 401, "{denied:#?}");
    assert_eq!(denied.json()["errors"][0]["code"], "DENIED");
    assert!(denied
        .header("www-authenticate")
        .is_some_and(|c| c.contains("error=\"insufficient_scope\"")));
    let no_token = pull_token(&server, &token, "beta");
    assert_eq!(no_token.status, 403, "{no_token:#?}");
    assert!(
        no_token.json()["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("pulls the one app it was made for"),
        "{no_token:#?}"
    );
    // …nor can a token for an app that doesn't exist, nor a forged one.
    assert_eq!(pull_token(&server, &api_token, "nope").status, 404);
    let forged = curl(
        &["-H", &bearer.replace(&token[11..19], "00000000")],
        &format!("{}/v2/alpha/tags/list", server.url),
    );
    assert_eq!(forged.status, 401, "{forged:#?}");
    // Pushes are refused as such: the registry only serves what builds made.
    let push = curl(
        &["-H", &bearer, "-X", "POST"],
        &format!("{}/v2/alpha/blobs/uploads/", server.url),
    );
    assert_eq!(push.status, 405, "{push:#?}");
    assert_eq!(push.json()["errors"][0]["code"], "UNSUPPORTED");
    assert!(push.body.contains("read-only"), "{push:#?}");

    if !skopeo_installed() {
        return;
    }
    let creds = format!("anyone:{token}");
    let skopeo = |args: &[&str]| {
        Command::new("skopeo")
            .args(args)
            .output()
            .expect("run skopeo")
    };
    let inspected = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--creds",
        &creds,
        &format!("docker://{registry}/alpha:v{version}"),
    ]);
    assert!(inspected.status.success(), "{inspected:?}");
    let inspected: serde_json::Value = serde_json::from_slice(&inspected.stdout).unwrap();
    assert_eq!(inspected["Digest"], digest.as_str());
    assert_eq!(
        inspected["RepoTags"],
        serde_json::json!([format!("v{version}"), "latest"])
    );
    let copy = tempfile::tempdir().unwrap();
    let copied = skopeo(&[
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        "--src-creds",
        &creds,
        &format!("docker://{registry}/alpha:latest"),
        &format!("oci:{}:copied", copy.path().display()),
    ]);
    assert!(copied.status.success(), "{copied:?}");
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(copy.path().join("index.json")).unwrap()).unwrap();
    assert_eq!(
        index["manifests"][0]["digest"],
        digest.as_str(),
        "the copy is the same image, byte for byte"
    );
    let refused = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--creds",
        &creds,
        &format!("docker://{registry}/beta:v{version}"),
    ]);
    assert!(!refused.status.success(), "{refused:?}");
}

pub(crate) fn skopeo_installed() -> bool {
    let installed = std::path::Path::new("/usr/bin/skopeo").exists();
    if !installed {
        assert!(
            std::env::var_os("CI").is_none(),
            "skopeo is needed (scripts/setup installs it)"
        );
        eprintln!("note: skopeo is not installed; skipped its part");
    }
    installed
}

/// A real Docker engine logs in to wharf with an app's pull token, pulls the release image by
/// tag, and runs it: on a stack the image is whole, so `docker run IMAGE web` serves on the
/// `PORT` it is given. Another app's image can't be pulled with that token.
#[test]
fn docker_pulls_and_runs_a_release_image() {
    if !docker::available() || !crate::test_stack::available() {
        return;
    }
    let server = Server::start();
    let cli = Cli::logged_in(&server);
    let (version, digest) = deploy(&cli, "pulled");
    cli.run(&["apps", "create", "other"]).success();
    let registry = server.url.trim_start_matches("http://").to_owned();
    let answer = pull_token(&server, &admin_token(&server), "pulled");
    let token = answer.json()["token"].as_str().unwrap().to_owned();

    let engine = Dockerd::start();
    engine.login(&registry, "node", &token);

    let image = format!("{registry}/pulled:v{version}");
    let pulled = engine.docker(&["pull", &image]);
    assert!(pulled.status.success(), "{pulled:?}\n{}", engine.log());
    let pulled = String::from_utf8_lossy(&pulled.stdout).into_owned();
    assert!(pulled.contains(&digest), "{pulled}");

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let run = engine.docker(&[
        "run",
        "-d",
        "--network",
        "host",
        "-e",
        &format!("PORT={port}"),
        &image,
        "web",
    ]);
    assert!(run.status.success(), "{run:?}\n{}", engine.log());
    wait_until(
        Duration::from_secs(60),
        "the container to serve",
        || match crate::harness::http_get(port, "localhost", "/")? {
            (200, body) if body.contains("Hello from python-web!") => Ok(()),
            (status, body) => Err(format!("{status} {body}")),
        },
    );

    let refused = engine.docker(&["pull", &format!("{registry}/other:latest")]);
    assert!(!refused.status.success(), "{refused:?}");
    let refused = String::from_utf8_lossy(&refused.stderr).into_owned();
    assert!(
        refused.contains("pulls the one app it was made for"),
        "{refused}"
    );
}

/// A real registry (Debian's `docker-registry`) on loopback, or another address of this
/// machine's, in a directory of its own; stopped when dropped.
pub struct Registry {
    child: std::process::Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Registry {
    fn start() -> Option<Registry> {
        Registry::start_on(std::net::Ipv4Addr::LOCALHOST)
    }

    /// A registry on `ip`; `None` (after a note) where docker-registry is not installed,
    /// outside CI.
    pub fn start_on(ip: std::net::Ipv4Addr) -> Option<Registry> {
        if !std::path::Path::new("/usr/bin/docker-registry").exists() {
            assert!(
                std::env::var_os("CI").is_none(),
                "docker-registry is needed (scripts/setup installs it)"
            );
            eprintln!("note: docker-registry is not installed; skipped");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind((ip, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
                 http:\n  addr: {ip}:{port}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let registry = Registry {
            child,
            port,
            _dir: dir,
        };
        wait_until(Duration::from_secs(30), "docker-registry to answer", || {
            let answer = try_curl(&[], &format!("http://{ip}:{port}/v2/"))?;
            (answer.status == 200).then_some(()).ok_or(answer.head)
        });
        Some(registry)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `wharf registry:push` copies a release's image to the registry the server names
/// (`WHARF_REGISTRY_URL`), tagged `v<N>` in the app's repository under its namespace, with the
/// same digest; a release without an image, and a server without a registry, are refused with
/// the reason.
#[test]
fn registry_push_copies_a_release_image_to_another_registry() {
    let Some(registry) = Registry::start() else {
        return;
    };
    if !skopeo_installed() {
        return;
    }
    let url = format!("http://127.0.0.1:{}/team", registry.port);
    let server = Server::start_with(&["--registry-url", &url]);
    let cli = Cli::logged_in(&server);
    let (version, digest) = deploy(&cli, "shipped");

    let pushed = cli
        .run(&["registry:push", "-a", "shipped", "--json"])
        .success()
        .json();
    let image = format!("127.0.0.1:{}/team/shipped:v{version}", registry.port);
    assert_eq!(pushed["image"], image.as_str());
    assert_eq!(pushed["digest"], digest.as_str());
    assert_eq!(pushed["release"]["version"], version);
    // There, by its tag, with the same digest.
    let inspected = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false"])
        .arg(format!("docker://{image}"))
        .output()
        .unwrap();
    assert!(inspected.status.success(), "{inspected:?}");
    let inspected: serde_json::Value = serde_json::from_slice(&inspected.stdout).unwrap();
    assert_eq!(inspected["Digest"], digest.as_str());

    let first = cli
        .run(&["registry:push", "-a", "shipped", "--release", "v1"])
        .failure()
        .error();
    assert!(first.contains("release v1 has no image"), "{first}");

    let without = Server::start();
    let cli = Cli::logged_in(&without);
    cli.run(&["apps", "create", "nowhere"]).success();
    let refused = cli
        .run(&["registry:push", "-a", "nowhere"])
        .failure()
        .error();
    assert!(
        refused.contains("pushes to no registry") && refused.contains("WHARF_REGISTRY_URL"),
        "{refused}"
    );
}

/// The nodes of a real three-node swarm (each engine in a network namespace of its own) pull a
/// release image from wharf's registry over the network, with a pull token the manager hands
/// them (`--with-registry-auth`): a service of the image spreads across the nodes and every
/// task serves; when a node is drained, its task starts on another node, which pulls it too.
#[test]
fn swarm_nodes_pull_release_images_from_wharf() {
    if !docker::swarm_available() || !crate::test_stack::available() {
        return;
    }
    let swarm = Swarm::start(3);
    let server = Server::start_with(&["--api-addr", &format!("{}:0", swarm.host_addr)]);
    let cli = Cli::logged_in(&server);
    let (_, digest) = deploy(&cli, "spread");
    let registry = server.url.trim_start_matches("http://").to_owned();
    let answer = pull_token(&server, &admin_token(&server), "spread");
    let token = answer.json()["token"].as_str().unwrap().to_owned();
    let manager = swarm.manager();
    manager.login(&registry, "node", &token);
    manager.ok(&[
        "service",
        "create",
        "--detach",
        "--name",
        "spread-web",
        "--with-registry-auth",
        "--replicas",
        "3",
        "--publish",
        "mode=host,target=5000",
        "--env",
        "PORT=5000",
        "--restart-delay",
        "0s",
        "--stop-grace-period",
        "1s",
        &format!("{registry}/spread@{digest}"),
        "web",
    ]);

    // Every task runs, on three nodes, and answers at its node's address and published port.
    let serving = |what: &str| {
        wait_until(Duration::from_secs(180), what, || {
            let listed = manager.ok(&[
                "service",
                "ps",
                "spread-web",
                "--filter",
                "desired-state=running",
                "--format",
                "{{.ID}} {{.Node}} {{.CurrentState}}",
            ]);
            let running: Vec<(String, String)> = listed
                .lines()
                .filter(|line| line.contains("Running"))
                .filter_map(|line| {
                    let mut parts = line.split_whitespace();
                    Some((parts.next()?.to_owned(), parts.next()?.to_owned()))
                })
                .collect();
            if running.len() != 3 {
                return Err(listed);
            }
            for (task, _) in &running {
                let found = manager.ok(&[
                    "inspect",
                    "--format",
                    "{{.NodeID}} {{range .Status.PortStatus.Ports}}{{.PublishedPort}} {{end}}",
                    task,
                ]);
                let mut parts = found.split_whitespace();
                let (Some(node), Some(port)) = (parts.next(), parts.next()) else {
                    return Err(format!("task {task}: {found}"));
                };
                let addr = manager.ok(&["node", "inspect", "--format", "{{.Status.Addr}}", node]);
                let page = try_curl(&[], &format!("http://{}:{port}/", addr.trim()))?;
                if !page.body.contains("Hello from python-web!") {
                    return Err(format!("task {task} at {}:{port}: {page:?}", addr.trim()));
                }
            }
            Ok(running)
        })
    };
    let running = serving("three tasks of the image to serve");
    let nodes: std::collections::BTreeSet<&str> =
        running.iter().map(|(_, node)| node.as_str()).collect();
    assert_eq!(nodes.len(), 3, "spread across the nodes: {running:?}");

    // A drained node's task starts elsewhere, and that node has the image from wharf too.
    let drained = swarm.node_name(1).to_owned();
    manager.ok(&["node", "update", "--availability", "drain", &drained]);
    let moved = serving("the drained node's task to serve on another node");
    assert!(
        moved.iter().all(|(_, node)| *node != drained),
        "nothing runs on {drained}: {moved:?}"
    );
}
