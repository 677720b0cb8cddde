//! `WHARF_BACKEND=kubernetes` on a real cluster: runs only where `WHARF_TEST_KUBECONFIG` names
//! one (no Kubernetes API server can run on the machines wharf is developed on, so here it is
//! skipped, saying so). The cluster's nodes must reach this machine's wharf to pull images, at
//! `WHARF_TEST_K8S_REGISTRY` (`HOST:PORT`; the API listens on every address at that port), and
//! this machine must reach the cluster's Service IPs (wharf's router sends requests to them).

use std::time::Duration;

use crate::harness::{wait_until, Cli, Server};
use crate::swarm::{deploy_python_web, page};

#[test]
fn a_release_runs_on_kubernetes() {
    let Some(kubeconfig) = std::env::var_os("WHARF_TEST_KUBECONFIG") else {
        eprintln!(
            "skipped: no Kubernetes cluster named (set WHARF_TEST_KUBECONFIG to a kubeconfig, \
             and WHARF_TEST_K8S_REGISTRY to the HOST:PORT its nodes reach this machine at)"
        );
        return;
    };
    let registry = std::env::var("WHARF_TEST_K8S_REGISTRY").expect(
        "WHARF_TEST_K8S_REGISTRY: the HOST:PORT the cluster's nodes reach this machine's wharf at",
    );
    let port = registry
        .rsplit(':')
        .next()
        .expect("WHARF_TEST_K8S_REGISTRY is HOST:PORT")
        .to_owned();
    // The server is a child of this test's process: it takes the cluster from KUBECONFIG.
    std::env::set_var("KUBECONFIG", &kubeconfig);
    let server = Server::start_with(&[
        "--backend",
        "kubernetes",
        "--api-addr",
        &format!("0.0.0.0:{port}"),
        "--swarm-registry",
        &registry,
        "--boot-timeout",
        "300",
    ]);
    let cli = Cli::logged_in(&server);
    let app = format!("wharf-e2e-{}", std::process::id());
    let host = format!("{app}.localhost");
    cli.run(&["apps", "create", &app]).success();

    // Deploy, with a release phase that passes; it serves through wharf's router.
    let deployed = deploy_python_web(&cli, &app, "release: echo migrating\n");
    assert_eq!(deployed.code, Some(0), "{deployed:#?}");
    assert!(deployed.transcript().contains("migrating"), "{deployed:#?}");
    let first = wait_until(Duration::from_secs(300), "the app to serve", || {
        page(server.router_port, &host)
    });

    // A config change is a new release; a rollback brings the first back.
    cli.run(&["config", "set", "GREETING=from-kubernetes", "-a", &app])
        .success();
    wait_until(Duration::from_secs(300), "the new config to serve", || {
        let body = page(server.router_port, &host)?;
        body.contains("from-kubernetes").then_some(()).ok_or(body)
    });
    cli.run(&["rollback", "-a", &app]).success();
    wait_until(Duration::from_secs(300), "the rollback to serve", || {
        let body = page(server.router_port, &host)?;
        (!body.contains("from-kubernetes"))
            .then_some(())
            .ok_or(body)
    });

    // Scale: two web pods, both up, each on a node.
    cli.run(&["scale", "web=2", "-a", &app]).success();
    wait_until(Duration::from_secs(300), "two web pods up", || {
        let dynos = cli.run(&["ps", "-a", &app, "--json"]).success().json();
        let up = dynos
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["type"] == "web" && d["state"] == "up" && d["node"].is_string())
            .count();
        (up == 2).then_some(()).ok_or(format!("{dynos}"))
    });

    // A failing release phase fails its release; the one before keeps serving.
    let failing = deploy_python_web(&cli, &app, "release: echo failing; exit 1\n");
    assert_ne!(failing.code, Some(0), "{failing:#?}");
    let releases = cli
        .run(&["releases", "-a", &app, "--json"])
        .success()
        .json();
    assert_eq!(releases[0]["status"], "failed", "{releases}");
    assert!(page(server.router_port, &host).is_ok());

    // One-offs: their exit status, attached and detached.
    let ran = cli.run(&["run", "-a", &app, "--", "echo on $DYNO; exit 3"]);
    assert_eq!(ran.code, Some(3), "{ran:#?}");
    assert!(ran.stdout.contains("on run."), "{ran:#?}");

    assert!(first.contains("Hello from python-web!"), "{first}");
    cli.run(&["apps", "destroy", "-a", &app, "--confirm", &app])
        .success();
}
