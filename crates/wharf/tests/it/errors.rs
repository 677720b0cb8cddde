//! What users see when something is wrong: one `error: …` line (plus causes) on stderr, nothing
//! on stdout, exit 1 (2 for usage errors).

use crate::assert_cli_snapshot;
use crate::harness::{Cli, Server};

#[test]
fn unknown_app() {
    let server = Server::start();
    let cli = Cli::logged_in(&server);
    for args in [
        &["config", "-a", "ghost"][..],
        &["config", "set", "A=1", "-a", "ghost"],
        &["apps", "info", "-a", "ghost"],
        &["apps", "rename", "spirit", "-a", "ghost"],
        &["apps", "destroy", "-a", "ghost", "--confirm", "ghost"],
        &["releases", "-a", "ghost"],
        &["releases", "info", "-a", "ghost"],
    ] {
        let run = cli.run(args);
        assert_eq!(
            run.error(),
            "error: app `ghost` not found\n",
            "wharf {}",
            args.join(" ")
        );
    }
    assert_cli_snapshot!(
        "unknown_app",
        cli.run(&["config", "-a", "ghost"]).transcript()
    );
}

#[test]
fn server_not_running() {
    // A port nothing listens on: bind one, then close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let cli = Cli::new()
        .env("WHARF_URL", &url)
        .env("WHARF_TOKEN", "some-token");
    let stderr = cli.run(&["apps"]).error();
    assert!(
        stderr.starts_with(&format!(
            "error: cannot reach wharf at {url}: is `wharf server` running?"
        )),
        "{stderr}"
    );
    let stderr = cli.run(&["config", "-a", "myapp"]).error();
    assert!(stderr.contains("cannot reach wharf at"), "{stderr}");
    assert!(stderr.contains("wharf server"), "{stderr}");
}

#[test]
fn not_logged_in() {
    let server = Server::start();
    let cli = Cli::new().env("WHARF_URL", &server.url);
    let stderr = cli.run(&["apps"]).error();
    assert_eq!(
        stderr,
        format!(
            "error: not logged in to {url}: run `wharf login --url {url}` or set WHARF_TOKEN\n",
            url = server.url
        )
    );
    assert_cli_snapshot!("not_logged_in", cli.run(&["apps"]).transcript());

    // Credentials saved for one server are not sent to another.
    let other = Server::start();
    let cli = Cli::logged_in(&other);
    let stderr = cli.run(&["--url", &server.url, "apps"]).error();
    assert!(stderr.contains("wharf login"), "{stderr}");

    // A token the server does not know.
    let cli = Cli::new()
        .env("WHARF_URL", &server.url)
        .env("WHARF_TOKEN", "not-a-real-token");
    assert_cli_snapshot!("unknown_token", cli.run(&["apps"]).failure().transcript());
}

#[test]
fn bad_input() {
    let server = Server::start();
    let cli = Cli::logged_in(&server);
    cli.run(&["apps", "create", "myapp"]).success();
    let stderr = cli
        .run(&["config", "set", "NOEQUALS", "-a", "myapp"])
        .error();
    assert!(stderr.contains("`NOEQUALS` is not KEY=value"), "{stderr}");

    for (name, args) in [
        (
            "config_set_without_equals",
            &["config", "set", "NOEQUALS", "-a", "myapp"][..],
        ),
        (
            "config_set_bad_key",
            &["config", "set", "1ST=x", "-a", "myapp"],
        ),
        ("config_set_nothing", &["config", "set", "-a", "myapp"]),
        (
            "config_get_missing",
            &["config", "get", "NOPE", "-a", "myapp"],
        ),
        ("apps_create_uppercase", &["apps", "create", "MyApp"]),
        ("apps_create_taken", &["apps", "create", "myapp"]),
        (
            "apps_rename_invalid",
            &["apps", "rename", "9lives", "-a", "myapp"],
        ),
        (
            "apps_destroy_unconfirmed",
            &["apps", "destroy", "-a", "myapp"],
        ),
        (
            "apps_destroy_wrong_confirm",
            &["apps", "destroy", "-a", "myapp", "--confirm", "other"],
        ),
    ] {
        let run = cli.run(args);
        assert_eq!(run.code, Some(1), "{run:#?}");
        assert_eq!(run.stdout, "", "{run:#?}");
        assert_cli_snapshot!(name, run.transcript());
    }
    // Refused commands change nothing.
    let apps = cli.run(&["apps", "--json"]).success().json();
    assert_eq!(apps.as_array().map(Vec::len), Some(1));
    assert_eq!(apps[0]["name"], "myapp");
    assert_eq!(
        cli.run(&["config", "--json", "-a", "myapp"])
            .success()
            .json(),
        serde_json::json!({})
    );
}

#[test]
fn invalid_app_names_get_the_servers_message() {
    let server = Server::start();
    let cli = Cli::logged_in(&server);
    let stderr = cli.run(&["apps", "create", "My_App"]).error();
    assert!(stderr.starts_with("error: app name `My_App`"), "{stderr}");
    let stderr = cli.run(&["apps", "create", "x"]).error();
    assert!(
        stderr.starts_with("error: app name `x` is too short"),
        "{stderr}"
    );
    assert_eq!(
        cli.run(&["apps"]).success().stdout,
        "No apps yet: create one with `wharf apps create NAME`\n"
    );
}

#[test]
fn usage_errors_exit_2() {
    let cli = Cli::new();
    for args in [
        &["apps", "rename"][..],
        &["config", "unset", "-a", "myapp"],
        &["config", "--json", "--shell", "-a", "myapp"],
        &["nonsense"],
        &["completions", "tcsh"],
    ] {
        let run = cli.run(args);
        assert_eq!(run.code, Some(2), "{run:#?}");
        assert_eq!(run.stdout, "", "{run:#?}");
        assert!(run.stderr.starts_with("error: "), "{run:#?}");
    }
}

#[test]
fn an_unknown_backend_stops_the_server_before_it_makes_anything() {
    let cli = Cli::new();
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().join("data");
    let run = cli.run(&[
        "server",
        "--backend",
        "nomad",
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--api-addr",
        "127.0.0.1:0",
        "--router-addr",
        "127.0.0.1:0",
    ]);
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert!(
        run.stderr.contains(
            "--backend/WHARF_BACKEND: unknown backend `nomad`: the backends are `local` \
             (this machine's supervisor), `swarm`"
        ),
        "{run:#?}"
    );
    assert!(!data_dir.exists(), "the refused start made {data_dir:?}");
}

/// The swarm backend with no engine where DOCKER_HOST points: the start fails, saying where
/// it looked. So does one whose nodes would be told to pull from nowhere (`0.0.0.0`), or told
/// two places at once.
#[test]
fn the_swarm_backend_without_an_engine_stops_the_server() {
    let cli = Cli::new();
    let data = tempfile::tempdir().unwrap();
    let socket = data.path().join("no-docker.sock");
    let docker_host = format!("unix://{}", socket.display());
    let data_dir = data.path().join("data");
    let start = |extra: &[&str]| {
        let mut args = vec![
            "server",
            "--backend",
            "swarm",
            "--docker-host",
            &docker_host,
            "--data-dir",
            data_dir.to_str().unwrap(),
            "--router-addr",
            "127.0.0.1:0",
            "--stack",
            "wharf-1",
        ];
        args.extend_from_slice(extra);
        let run = cli.run(&args);
        assert_eq!(run.code, Some(1), "{run:#?}");
        run
    };
    let run = start(&["--api-addr", "127.0.0.1:0"]);
    assert!(
        run.stderr
            .contains(&format!("cannot reach the Docker engine at {docker_host}")),
        "{run:#?}"
    );
    let run = start(&["--api-addr", "0.0.0.0:0"]);
    assert!(
        run.stderr
            .contains("the nodes can't pull release images from `0.0.0.0:")
            && run.stderr.contains(
                "set WHARF_SWARM_REGISTRY (or WHARF_PUBLIC_URL) to the HOST:PORT the nodes \
                 reach wharf's API at"
            ),
        "{run:#?}"
    );
    let run = start(&[
        "--api-addr",
        "127.0.0.1:0",
        "--swarm-registry",
        "10.0.0.1:7070",
        "--registry-url",
        "http://10.0.0.2:5000",
    ]);
    assert!(
        run.stderr.contains(
            "both WHARF_SWARM_REGISTRY and WHARF_REGISTRY_URL say where the nodes pull images from"
        ),
        "{run:#?}"
    );
}

/// The Kubernetes backend without a cluster to talk to: no kubeconfig (and no in-cluster
/// service account), or a kubeconfig naming an API server that doesn't answer. The start
/// fails, saying which.
#[test]
fn the_kubernetes_backend_without_a_cluster_stops_the_server() {
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().join("data");
    let start = |kubeconfig: &std::path::Path| {
        let cli = Cli::new().env("KUBECONFIG", kubeconfig.to_str().unwrap());
        let run = cli.run(&[
            "server",
            "--backend",
            "kubernetes",
            "--data-dir",
            data_dir.to_str().unwrap(),
            "--api-addr",
            "127.0.0.1:0",
            "--router-addr",
            "127.0.0.1:0",
            "--stack",
            "wharf-1",
        ]);
        assert_eq!(run.code, Some(1), "{run:#?}");
        run
    };
    let run = start(&data.path().join("no-such-kubeconfig"));
    assert!(
        run.stderr.contains("cannot use the Kubernetes cluster")
            && run
                .stderr
                .contains("cannot set up the Kubernetes client from kubeconfig"),
        "{run:#?}"
    );
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let kubeconfig = data.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: here\n\
             clusters:\n- name: here\n  cluster:\n    server: http://127.0.0.1:{port}\n\
             contexts:\n- name: here\n  context:\n    cluster: here\n    user: me\n\
             users:\n- name: me\n  user:\n    token: not-a-real-token\n"
        ),
    )
    .unwrap();
    let run = start(&kubeconfig);
    assert!(
        run.stderr
            .contains("the Kubernetes API refused to tell its version"),
        "{run:#?}"
    );
}
