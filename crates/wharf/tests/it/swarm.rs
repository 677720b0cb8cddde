//! `WHARF_BACKEND=swarm`: releases run as services of a real swarm (engines in network
//! namespaces of their own, see `wharf_test_support::docker::Swarm`), their images pulled from
//! wharf's registry, their web tasks reached through wharf's router.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use wharf_test_support::docker::{self, Swarm};

use crate::harness::{http_get, wait_until, Cli, Server};
use crate::stacks::{copy_dir, example};

/// A client that GETs the app through the router until stopped, counting failed requests.
struct Client {
    stop: Arc<AtomicBool>,
    failed: Arc<AtomicU32>,
    served: Arc<AtomicU32>,
    thread: Option<std::thread::JoinHandle<Vec<String>>>,
}

impl Client {
    fn start(port: u16, host: &str) -> Client {
        let stop = Arc::new(AtomicBool::new(false));
        let failed = Arc::new(AtomicU32::new(0));
        let served = Arc::new(AtomicU32::new(0));
        let (s, f, n, host) = (
            stop.clone(),
            failed.clone(),
            served.clone(),
            host.to_owned(),
        );
        let thread = std::thread::spawn(move || {
            let mut failures = Vec::new();
            // Bounded: at most ten minutes of requests.
            let deadline = std::time::Instant::now() + Duration::from_secs(600);
            while !s.load(Ordering::SeqCst) && std::time::Instant::now() < deadline {
                match http_get(port, &host, "/") {
                    Ok((200, body)) if body.contains("Hello from python-web!") => {
                        n.fetch_add(1, Ordering::SeqCst);
                    }
                    other => {
                        f.fetch_add(1, Ordering::SeqCst);
                        failures.push(format!("{other:?}"));
                    }
                }
            }
            failures
        });
        Client {
            stop,
            failed,
            served,
            thread: Some(thread),
        }
    }

    /// Stops it; what failed.
    fn finish(mut self) -> (u32, u32, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        let failures = self.thread.take().unwrap().join().unwrap();
        (
            self.served.load(Ordering::SeqCst),
            self.failed.load(Ordering::SeqCst),
            failures,
        )
    }
}

pub(crate) fn page(port: u16, host: &str) -> Result<String, String> {
    match http_get(port, host, "/")? {
        (200, body) => Ok(body),
        (status, body) => Err(format!("{status} {body}")),
    }
}

/// The app's web tasks as `wharf ps` lists them: (name, state, release).
fn web_instances(cli: &Cli, app: &str) -> Vec<(String, String, u64)> {
    let dynos = cli.run(&["ps", "-a", app, "--json"]).success().json();
    dynos
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["type"] == "web")
        .map(|d| {
            (
                d["name"].as_str().unwrap().to_owned(),
                d["state"].as_str().unwrap().to_owned(),
                d["release"]["version"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Deploy, serve, config change, rollback, scale 1→3→1 and restart on a two-node swarm, with a
/// client through the router all along that sees no failed request; one-offs run and report
/// their exit status.
#[test]
fn a_release_runs_on_the_swarm_with_zero_downtime() {
    if !docker::swarm_available() || !crate::test_stack::available() {
        return;
    }
    let swarm = Swarm::start(2);
    let server = swarm_server(&swarm);
    let cli = Cli::logged_in(&server);
    let app = "on-swarm";
    let host = format!("{app}.localhost");
    cli.run(&["apps", "create", app]).success();
    let source = cli.work_dir().join(app);
    copy_dir(&example("python-web"), &source);
    let deployed = cli.run(&["deploy", source.to_str().unwrap(), "-a", app]);
    assert_eq!(deployed.code, Some(0), "{deployed:#?}");
    let first = wait_until(Duration::from_secs(180), "the app to serve", || {
        page(server.router_port, &host)
    });
    assert!(first.contains("served by web.1"), "{first}");
    let services = swarm
        .manager()
        .ok(&["service", "ls", "--format", "{{.Name}} {{.Replicas}}"]);
    assert!(services.contains(&format!("{app}-web 1/1")), "{services}");
    let instances = web_instances(&cli, app);
    assert_eq!(instances.len(), 1, "{instances:?}");
    assert_eq!(instances[0].1, "up");

    let client = Client::start(server.router_port, &host);

    // A config change: a new release, rolled out start-first.
    cli.run(&["config", "set", "GREETING=hello-swarm", "-a", app])
        .success();
    wait_until(Duration::from_secs(180), "the new config to serve", || {
        page(server.router_port, &host)?
            .contains("greeting: hello-swarm")
            .then_some(())
            .ok_or_else(|| "old config".to_owned())
    });

    // Scale 1 → 3 → 1.
    cli.run(&["scale", "web=3", "-a", app]).success();
    wait_until(Duration::from_secs(180), "three web tasks up", || {
        let up = web_instances(&cli, app)
            .iter()
            .filter(|(_, state, _)| state == "up")
            .count();
        (up == 3).then_some(()).ok_or(format!("{up} up"))
    });
    cli.run(&["scale", "web=1", "-a", app]).success();
    wait_until(Duration::from_secs(180), "one web task", || {
        let instances = web_instances(&cli, app);
        (instances.len() == 1)
            .then_some(())
            .ok_or(format!("{instances:?}"))
    });

    // Rollback to the first release: its config again.
    cli.run(&["rollback", "-a", app]).success();
    wait_until(Duration::from_secs(180), "the rollback to serve", || {
        page(server.router_port, &host)?
            .contains("greeting: none set")
            .then_some(())
            .ok_or_else(|| "new config".to_owned())
    });

    // A restart replaces the task, start-first.
    cli.run(&["restart", "-a", app]).success();
    let (served, failed, failures) = client.finish();
    assert_eq!(failed, 0, "failed requests: {failures:?}");
    assert!(served > 10, "only {served} requests served");

    // Maintenance is the router's, whatever the backend.
    cli.run(&["maintenance", "on", "-a", app]).success();
    wait_until(
        Duration::from_secs(30),
        "maintenance to answer 503",
        || match http_get(server.router_port, &host, "/")? {
            (503, _) => Ok(()),
            (status, body) => Err(format!("{status} {body}")),
        },
    );
    cli.run(&["maintenance", "off", "-a", app]).success();
    wait_until(Duration::from_secs(30), "the app to serve again", || {
        page(server.router_port, &host)
    });

    // A detached one-off's output goes to the app's log.
    cli.run(&["run", "--detach", "-a", app, "--", "echo detached on $DYNO"])
        .success();
    wait_until(
        Duration::from_secs(120),
        "the detached one-off's output",
        || {
            let logs = cli.run(&["logs", "-a", app, "-n", "1000"]).success();
            logs.stdout
                .contains("detached on run.")
                .then_some(())
                .ok_or(logs.stdout)
        },
    );

    // One-offs: their output and exit status come back.
    let ran = cli.run(&["run", "-a", app, "--", "echo one-off on $DYNO; exit 3"]);
    assert_eq!(ran.code, Some(3), "{ran:#?}");
    assert!(ran.stdout.contains("one-off on run.2"), "{ran:#?}");
}

/// A server on the swarm backend of `swarm`, its API where the nodes reach its registry.
fn swarm_server(swarm: &Swarm) -> Server {
    swarm_server_with(swarm, &[])
}

/// [`swarm_server`], with `extra` arguments.
fn swarm_server_with(swarm: &Swarm, extra: &[&str]) -> Server {
    let api_addr = format!("{}:0", swarm.host_addr);
    let mut args = vec![
        "--api-addr",
        &api_addr,
        "--backend",
        "swarm",
        "--docker-host",
        &swarm.manager().host,
        "--boot-timeout",
        "180",
    ];
    args.extend_from_slice(extra);
    Server::start_with(&args)
}

/// With WHARF_REGISTRY_URL, the nodes pull release images from that registry instead of
/// wharf's endpoint: wharf pushes each release's image there first (`<app>:v<N>`, same
/// digest), the services name it there by digest, and one-offs pull it from there too.
#[test]
fn swarm_nodes_can_pull_from_another_registry() {
    if !docker::swarm_available()
        || !crate::test_stack::available()
        || !crate::registry::skopeo_installed()
    {
        return;
    }
    let swarm = Swarm::start(1);
    // Where the node reaches it (its engine takes plain HTTP from the test network).
    let Some(registry) = crate::registry::Registry::start_on(swarm.host_addr) else {
        return;
    };
    let registry_host = format!("{}:{}", swarm.host_addr, registry.port);
    let server = swarm_server_with(
        &swarm,
        &["--registry-url", &format!("http://{registry_host}/team")],
    );
    let cli = Cli::logged_in(&server);
    let app = "elsewhere";
    let host = format!("{app}.localhost");
    cli.run(&["apps", "create", app]).success();
    let deployed = deploy_python_web(&cli, app, "");
    assert_eq!(deployed.code, Some(0), "{deployed:#?}");
    let served = wait_until(Duration::from_secs(180), "the app to serve", || {
        page(server.router_port, &host)
    });
    assert!(served.contains("served by web.1"), "{served}");

    let releases = cli.run(&["releases", "-a", app, "--json"]).success().json();
    let version = releases[0]["version"].as_u64().unwrap();
    let image = swarm.manager().ok(&[
        "service",
        "inspect",
        "--format",
        "{{.Spec.TaskTemplate.ContainerSpec.Image}}",
        &format!("{app}-web"),
    ]);
    let image = image.trim();
    let digest = image
        .strip_prefix(&format!("{registry_host}/team/{app}@"))
        .unwrap_or_else(|| panic!("the service pulls from the other registry: {image}"));
    // There by its tag too, with the digest the release has here.
    let inspected = std::process::Command::new("skopeo")
        .args(["inspect", "--tls-verify=false"])
        .arg(format!("docker://{registry_host}/team/{app}:v{version}"))
        .output()
        .unwrap();
    assert!(inspected.status.success(), "{inspected:?}");
    let inspected: serde_json::Value = serde_json::from_slice(&inspected.stdout).unwrap();
    assert_eq!(inspected["Digest"], digest);

    let ran = cli.run(&["run", "-a", app, "--", "echo from $DYNO; exit 4"]);
    assert_eq!(ran.code, Some(4), "{ran:#?}");
    assert!(ran.stdout.contains("from run.1"), "{ran:#?}");
}

/// Deploys python-web as `app`, with `extra` lines added to its Procfile.
pub(crate) fn deploy_python_web(cli: &Cli, app: &str, extra: &str) -> crate::harness::Run {
    let source = cli.work_dir().join(app);
    if !source.exists() {
        copy_dir(&example("python-web"), &source);
    }
    let procfile = std::fs::read_to_string(example("python-web").join("Procfile")).unwrap();
    std::fs::write(source.join("Procfile"), format!("{procfile}{extra}")).unwrap();
    cli.run(&["deploy", source.to_str().unwrap(), "-a", app])
}

/// The nodes the app's web tasks run on, once `n` of them are up.
fn web_nodes_when_up(cli: &Cli, app: &str, n: usize) -> Vec<String> {
    wait_until(
        Duration::from_secs(180),
        &format!("{n} web tasks up"),
        || {
            let dynos = cli.run(&["ps", "-a", app, "--json"]).success().json();
            let up: Vec<String> = dynos
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["type"] == "web" && d["state"] == "up")
                .map(|d| d["node"].as_str().unwrap_or_default().to_owned())
                .collect();
            (up.len() == n)
                .then_some(up.clone())
                .ok_or(format!("{dynos}"))
        },
    )
}

/// On three nodes, `web=4` spreads over them (`wharf ps` says where each runs); draining a node
/// moves its tasks with no failed request through the router; stopping a node's engine moves
/// its tasks too, and the app keeps serving.
#[test]
fn a_swarm_app_spreads_over_nodes_and_outlives_one() {
    if !docker::swarm_available() || !crate::test_stack::available() {
        return;
    }
    let mut swarm = Swarm::start(3);
    let server = swarm_server(&swarm);
    let cli = Cli::logged_in(&server);
    let app = "spread-out";
    let host = format!("{app}.localhost");
    cli.run(&["apps", "create", app]).success();
    let deployed = deploy_python_web(&cli, app, "");
    assert_eq!(deployed.code, Some(0), "{deployed:#?}");
    cli.run(&["scale", "web=4", "-a", app]).success();
    let nodes = web_nodes_when_up(&cli, app, 4);
    let distinct: std::collections::BTreeSet<&String> = nodes.iter().collect();
    assert!(distinct.len() >= 2, "spread over the nodes: {nodes:?}");
    let table = cli.run(&["ps", "-a", app]).success();
    assert!(table.stdout.contains("NODE"), "{table:#?}");

    let client = Client::start(server.router_port, &host);
    let drained = swarm.node_name(1).to_owned();
    swarm
        .manager()
        .ok(&["node", "update", "--availability", "drain", &drained]);
    wait_until(
        Duration::from_secs(180),
        "the drained node's tasks to move",
        || {
            let nodes = web_nodes_when_up(&cli, app, 4);
            (!nodes.contains(&drained))
                .then_some(())
                .ok_or(format!("{nodes:?}"))
        },
    );
    let (served, failed, failures) = client.finish();
    assert_eq!(failed, 0, "failed requests while draining: {failures:?}");
    assert!(served > 0);

    // A node whose engine stops: its tasks start elsewhere.
    let lost = swarm.node_name(2).to_owned();
    swarm.stop_engine(2);
    wait_until(
        Duration::from_secs(180),
        "the lost node's tasks to move",
        || {
            let nodes = web_nodes_when_up(&cli, app, 4);
            (!nodes.contains(&lost))
                .then_some(())
                .ok_or(format!("{nodes:?}"))
        },
    );
    wait_until(Duration::from_secs(60), "the app to serve", || {
        page(server.router_port, &host)
    });
}

/// A process that keeps exiting shows as crashed, with how it exited; a release whose release
/// phase fails is failed, and the release before it keeps serving.
#[test]
fn on_the_swarm_a_crash_loop_shows_and_a_failed_release_phase_changes_nothing() {
    if !docker::swarm_available() || !crate::test_stack::available() {
        return;
    }
    let swarm = Swarm::start(1);
    let server = swarm_server(&swarm);
    let cli = Cli::logged_in(&server);
    let app = "flaky";
    let host = format!("{app}.localhost");
    cli.run(&["apps", "create", app]).success();
    // The app's first release phase runs before anything of it is on the swarm.
    let deployed = deploy_python_web(
        &cli,
        app,
        "crasher: echo about to crash; exit 7\nrelease: echo first migration\n",
    );
    assert_eq!(deployed.code, Some(0), "{deployed:#?}");
    assert!(
        deployed.transcript().contains("first migration"),
        "{deployed:#?}"
    );
    let serving = wait_until(Duration::from_secs(180), "the app to serve", || {
        page(server.router_port, &host)
    });
    let web_port = |cli: &Cli| {
        let dynos = cli.run(&["ps", "-a", app, "--json"]).success().json();
        dynos
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["name"] == "web.1")
            .map(|d| (d["port"].clone(), d["updated_at"].clone()))
    };
    let before = web_port(&cli);
    assert!(
        before.as_ref().is_some_and(|(p, _)| p.is_u64()),
        "{before:?}"
    );
    cli.run(&["scale", "crasher=1", "-a", app]).success();
    let crashed = wait_until(
        Duration::from_secs(180),
        "crasher.1 to show as crashed",
        || {
            let dynos = cli.run(&["ps", "-a", app, "--json"]).success().json();
            dynos
                .as_array()
                .unwrap()
                .iter()
                .find(|d| d["name"] == "crasher.1" && d["state"] == "crashed")
                .cloned()
                .ok_or(format!("{dynos}"))
        },
    );
    assert!(
        crashed["last_exit"]
            .as_str()
            .unwrap_or_default()
            .contains('7'),
        "{crashed}"
    );
    // Scaling another type left the web task alone (a new task would have a new port), and
    // its state's time stayed that of its start.
    assert_eq!(web_port(&cli), before, "web.1 was not restarted");
    // Its output reached the app's log.
    wait_until(
        Duration::from_secs(60),
        "the crasher's output in the log",
        || {
            let logs = cli.run(&["logs", "-a", app, "-n", "500"]).success();
            logs.stdout
                .contains("crasher.1")
                .then_some(())
                .ok_or(logs.stdout)
        },
    );

    let failing = deploy_python_web(
        &cli,
        app,
        "crasher: echo about to crash; exit 7\nrelease: echo migrating; exit 1\n",
    );
    assert_ne!(failing.code, Some(0), "{failing:#?}");
    assert!(failing.transcript().contains("migrating"), "{failing:#?}");
    let releases = cli.run(&["releases", "-a", app, "--json"]).success().json();
    assert_eq!(releases[0]["status"], "failed", "{releases}");
    assert_eq!(
        page(server.router_port, &host).unwrap(),
        serving,
        "the release before it serves, unchanged"
    );
}

/// The real Heroku CLI's `heroku run` on the swarm: in a terminal (a tty container on the
/// manager, reached through the rendezvous), with its exit status; with `--no-tty`; and
/// detached, its output in the app's log.
#[test]
fn heroku_run_works_on_the_swarm() {
    if !docker::swarm_available() || !crate::test_stack::available() {
        return;
    }
    let Some(exe) = crate::heroku_cli::heroku_cli() else {
        return;
    };
    let swarm = Swarm::start(1);
    // The Heroku CLI talks to no host but Heroku's and localhost: the API listens on every
    // address, and the node pulls from the test network's.
    let port = std::net::TcpListener::bind("0.0.0.0:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = Server::start_with(&[
        "--api-addr",
        &format!("0.0.0.0:{port}"),
        "--swarm-registry",
        &format!("{}:{port}", swarm.host_addr),
        "--rendezvous-addr",
        "127.0.0.1:0",
        "--backend",
        "swarm",
        "--docker-host",
        &swarm.manager().host,
        "--boot-timeout",
        "180",
    ]);
    let cli = Cli::logged_in(&server);
    let app = "hk-swarm";
    cli.run(&["apps", "create", app]).success();
    let deployed = deploy_python_web(&cli, app, "");
    assert_eq!(deployed.code, Some(0), "{deployed:#?}");
    let heroku =
        crate::heroku_cli::Heroku::new(&cli, exe, &server).at(&format!("http://127.0.0.1:{port}"));

    let tty = heroku.run(&[
        "run",
        "-x",
        "-a",
        app,
        "--",
        "test -t 0 && tty && echo on $DYNO && sh -c 'exit 5'",
    ]);
    assert_eq!(tty.code, Some(5), "{tty:#?}");
    assert!(
        tty.stdout.contains("/dev/pts/") && tty.stdout.contains("on run."),
        "{tty:#?}"
    );
    let piped = heroku.run(&[
        "run",
        "-x",
        "--no-tty",
        "-a",
        app,
        "--",
        "test -t 0 || echo no-terminal",
    ]);
    assert_eq!(piped.code, Some(0), "{piped:#?}");
    assert!(piped.stdout.contains("no-terminal"), "{piped:#?}");
    let detached = heroku.ok(&["run:detached", "-a", app, "--", "echo detached-on-swarm"]);
    assert!(detached.stdout.contains("run."), "{detached:#?}");
    wait_until(
        Duration::from_secs(60),
        "the detached output in the log",
        || {
            let logs = cli.run(&["logs", "-a", app, "-n", "200"]).success();
            logs.stdout
                .contains("detached-on-swarm")
                .then_some(())
                .ok_or(logs.stdout)
        },
    );
}
