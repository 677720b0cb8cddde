//! End to end: every app in `examples/` deployed with `wharf deploy` on a real server, built by
//! its real provider (pip, npm, cargo, a buildpack), and answering real requests through the
//! router; the counter keeps its state in a real Redis across restarts, scaling and redeploys
//! while its local files do not; two apps where one is the other's backing service.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::harness::{http_get, wait_until, Cli, Server};

/// Builds fetch packages (pip, npm) and compile (cargo): generous.
const SETTLE: Duration = Duration::from_secs(240);

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name)
}

/// Waits until the app answers 200 with a body containing `needle`; returns the body.
fn until_answers(port: u16, app: &str, needle: &str) -> String {
    let host = format!("{app}.localhost");
    wait_until(
        SETTLE,
        &format!("{app} to answer with `{needle}`"),
        || match http_get(port, &host, "/")? {
            (200, body) if body.contains(needle) => Ok(body),
            (status, body) => Err(format!("{status} {body}")),
        },
    )
}

fn deploy(cli: &Cli, app: &str, dir: &std::path::Path) {
    cli.run(&["apps", "create", app]).success();
    let deployed = cli.run(&["deploy", dir.to_str().unwrap(), "-a", app]);
    assert_eq!(deployed.code, Some(0), "{deployed:#?}");
    assert_portable(cli, app);
    assert_kubernetes_ready(cli, app);
}

/// The app's current release prints as Kubernetes manifests that are valid for every
/// Kubernetes version wharf supports.
pub(crate) fn assert_kubernetes_ready(cli: &Cli, app: &str) {
    if !crate::test_stack::available() {
        return;
    }
    let yaml = cli.run(&["k8s", "manifests", "-a", app]).success().stdout;
    crate::k8s::assert_valid_manifests(cli, app, &yaml);
}

/// The app's newest release is a self-contained image on the (test) stack, as every example's
/// is on wharf's own stack, where the machine can sandbox.
fn assert_portable(cli: &Cli, app: &str) {
    if !crate::test_stack::available() {
        return;
    }
    let releases = cli.run(&["releases", "-a", app, "--json"]).success().json();
    assert_eq!(releases[0]["portable"], true, "{app}: {releases}");
    assert_eq!(
        releases[0]["stack"]["name"],
        crate::test_stack::NAME,
        "{app}"
    );
}

#[test]
fn every_example_deploys_and_answers() {
    let server = Server::start_with(&["--port-range", "33200-33299"]);
    let cli = Cli::logged_in(&server);
    let port = server.router_port;
    for (app, dir, answer) in [
        ("python-web", "python-web", "Hello from python-web!"),
        ("node-web", "node-web", "Hello from node-web!"),
        ("rust-web", "rust-web", "Hello from rust-web!"),
        ("static-site", "static-site", "Hello from static-site"),
        ("buildpack", "buildpack", "Hello from a custom buildpack"),
    ] {
        deploy(&cli, app, &example(dir));
        until_answers(port, app, answer);
    }
    // python-web's config comes from the app (here set by hand; `wharf up` loads its .env).
    cli.run(&["config", "set", "GREETING=configured", "-a", "python-web"])
        .success();
    until_answers(port, "python-web", "greeting: configured");

    // two-apps: the frontend reaches the api through its config, as a backing service.
    deploy(&cli, "api", &example("two-apps/api"));
    cli.run(&["apps", "create", "frontend"]).success();
    cli.run(&[
        "config",
        "set",
        &format!("API_URL=http://api.localhost:{port}/"),
        "-a",
        "frontend",
    ])
    .success();
    let deployed = cli.run(&[
        "deploy",
        example("two-apps/frontend").to_str().unwrap(),
        "-a",
        "frontend",
    ]);
    assert_eq!(deployed.code, Some(0), "{deployed:#?}");
    assert_portable(&cli, "frontend");
    assert_kubernetes_ready(&cli, "frontend");
    until_answers(port, "frontend", "the api answered 200: hello from the api");
    until_answers(port, "api", "hello from the api");
}

/// A Redis server of the test's own, on a free port; stopped when dropped.
struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    fn start() -> Redis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (.ci/run installs it)");
        wait_until(Duration::from_secs(30), "redis to listen", || {
            TcpStream::connect(("127.0.0.1", port))
                .map(drop)
                .map_err(|e| e.to_string())
        });
        Redis { child, port }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The counter's answer.
fn count(port: u16) -> Value {
    let body = until_answers(port, "counter", "\"hits\"");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// Waits until the newest release of `counter` is live (past its release phase) and every
/// instance runs it and is up.
fn settle(cli: &Cli, web: usize) {
    wait_until(
        SETTLE,
        &format!("counter to run {web} web and 1 worker, up"),
        || {
            let dynos = cli.run(&["ps", "--json", "-a", "counter"]).success().json();
            let list = dynos.as_array().cloned().unwrap_or_default();
            let newest = cli
                .run(&["releases", "-n", "1", "--json", "-a", "counter"])
                .success()
                .json()[0]
                .clone();
            if newest["status"] != "succeeded" {
                return Err(format!("the newest release is {}", newest["status"]));
            }
            let current = newest["version"].clone();
            let ups = |kind: &str| {
                list.iter()
                    .filter(|d| {
                        d["type"] == kind
                            && d["state"] == "up"
                            && d["release"]["version"] == current
                    })
                    .count()
            };
            if ups("web") == web && ups("worker") == 1 && list.len() == web + 1 {
                Ok(())
            } else {
                Err(serde_json::to_string_pretty(&list).unwrap())
            }
        },
    );
}

#[test]
fn the_counter_keeps_its_state_in_redis_not_in_the_process() {
    let redis = Redis::start();
    let server = Server::start_with(&["--port-range", "33300-33399"]);
    let cli = Cli::logged_in(&server);
    let port = server.router_port;
    cli.run(&["apps", "create", "counter"]).success();
    cli.run(&[
        "config",
        "set",
        &format!("REDIS_URL=redis://127.0.0.1:{}/0", redis.port),
        "-a",
        "counter",
    ])
    .success();
    let deployed = cli.run(&[
        "deploy",
        example("counter").to_str().unwrap(),
        "-a",
        "counter",
    ]);
    assert_eq!(deployed.code, Some(0), "{deployed:#?}");
    // The release phase ran before the release went live.
    assert!(
        deployed.stderr.contains("schema none -> 2"),
        "{deployed:#?}"
    );
    cli.run(&["scale", "worker=1", "-a", "counter"]).success();
    assert_kubernetes_ready(&cli, "counter");
    settle(&cli, 1);

    let first = count(port);
    assert_eq!(first["schema"], "2");
    let second = count(port);
    assert_eq!(
        second["hits"].as_u64(),
        first["hits"].as_u64().map(|h| h + 1)
    );
    assert_eq!(second["local_hits"], 2, "one process served both: {second}");
    wait_until(SETTLE, "the worker to tick", || {
        let now = count(port);
        if now["worker_ticks"].as_u64() > Some(0) {
            Ok(())
        } else {
            Err(now.to_string())
        }
    });

    // A restart: the count goes on, the local file is gone with the old process.
    let before = count(port)["hits"].as_u64().unwrap();
    cli.run(&["restart", "-a", "counter"]).success();
    settle(&cli, 1);
    let after = count(port);
    assert!(after["hits"].as_u64().unwrap() > before, "{after}");
    assert_eq!(
        after["local_hits"], 1,
        "a fresh process starts with nothing: {after}"
    );

    // Scaling out: every instance counts into the same store.
    cli.run(&["scale", "web=3", "-a", "counter"]).success();
    settle(&cli, 3);
    let mut last = count(port)["hits"].as_u64().unwrap();
    for _ in 0..6 {
        let now = count(port)["hits"].as_u64().unwrap();
        assert_eq!(now, last + 1, "one count across instances");
        last = now;
    }

    // A redeploy (a new release of the same code): the count survives it too.
    cli.run(&["config", "set", "REDEPLOYED=1", "-a", "counter"])
        .success();
    settle(&cli, 3);
    let redeployed = count(port);
    assert!(redeployed["hits"].as_u64().unwrap() > last, "{redeployed}");
    assert_ne!(redeployed["release"], after["release"]);
    drop(server);
    drop(redis);
}
