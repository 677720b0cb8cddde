//! The official Heroku CLI (npm `heroku`, version 11), unmodified, drives a real wharf server:
//! every command a Heroku user reaches for first, each checked for what it prints and for what
//! it did to wharf's state. Where the host allows, the server and every client run in a network
//! namespace with only loopback, so a call the CLI makes to Heroku's own services fails the test
//! instead of leaving the machine.
//!
//! The CLI is found at `$WHARF_TEST_HEROKU_CLI`, else `target/heroku-cli/node_modules/.bin/heroku`
//! (where `.ci/run` installs it). Without it the test says so and passes, unless
//! `WHARF_TEST_REQUIRE_HEROKU_CLI=1` (as in CI).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{run_to_end, wait_until, Cli, Run, Server};

/// A command that builds: generous, as the machine may be busy.
const SLOW: Duration = Duration::from_secs(240);

const APP_PY: &str = r#"import os, http.server

VERSION = "VERSION_HERE"

class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"{VERSION} {os.environ.get('GREETING', '-')}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

http.server.ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), Hello).serve_forever()
"#;

/// The Heroku CLI scripts/setup installs (or `WHARF_TEST_HEROKU_CLI`); `None`, after a note,
/// where it isn't installed and not required.
pub(crate) fn heroku_cli() -> Option<PathBuf> {
    let found = installed_heroku_cli();
    if found.is_none() {
        assert!(
            std::env::var("WHARF_TEST_REQUIRE_HEROKU_CLI").as_deref() != Ok("1"),
            "the Heroku CLI is required (WHARF_TEST_REQUIRE_HEROKU_CLI=1) but not installed: \
             npm install --prefix target/heroku-cli heroku@11"
        );
        eprintln!("skipped: the Heroku CLI is not installed (npm install --prefix target/heroku-cli heroku@11)");
    }
    found
}

fn installed_heroku_cli() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("WHARF_TEST_HEROKU_CLI") {
        return Some(PathBuf::from(path));
    }
    let local = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/heroku-cli/node_modules/.bin/heroku");
    local.is_file().then_some(local)
}

/// A user of the Heroku CLI, pointed at `server`.
pub(crate) struct Heroku<'a> {
    cli: &'a Cli,
    exe: PathBuf,
    env: Vec<(String, String)>,
}

impl<'a> Heroku<'a> {
    /// The Heroku CLI at `exe`, run by `cli`'s user with the admin's token of `server` (and its
    /// git host and CA where the server serves TLS).
    pub(crate) fn new(cli: &'a Cli, exe: PathBuf, server: &Server) -> Heroku<'a> {
        let token = std::fs::read_to_string(server.admin_token_file()).unwrap();
        let ca = wharf_server::tls::ca_path(&server.data_dir);
        let ca = ca.to_str().unwrap();
        let mut env: Vec<(String, String)> = vec![
            ("HEROKU_HOST".into(), server.url.clone()),
            ("HEROKU_PARTICLEBOARD_URL".into(), server.url.clone()),
            ("HEROKU_API_KEY".into(), token.trim().to_owned()),
            ("DISABLE_TELEMETRY".into(), "true".into()),
            ("HEROKU_SKIP_NEW_VERSION_CHECK".into(), "true".into()),
            ("HEROKU_DISABLE_AUTOUPDATE".into(), "true".into()),
            ("NODE_EXTRA_CA_CERTS".into(), ca.into()),
            ("GIT_SSL_CAINFO".into(), ca.into()),
            ("GIT_TERMINAL_PROMPT".into(), "0".into()),
            ("GIT_AUTHOR_NAME".into(), "Test User".into()),
            ("GIT_AUTHOR_EMAIL".into(), "test@example.com".into()),
            ("GIT_COMMITTER_NAME".into(), "Test User".into()),
            ("GIT_COMMITTER_EMAIL".into(), "test@example.com".into()),
        ];
        if let Some(tls_port) = server.tls_port {
            env.push(("HEROKU_GIT_HOST".into(), format!("127.0.0.1:{tls_port}")));
        }
        Heroku { cli, exe, env }
    }

    fn command(&self, args: &[&str]) -> std::process::Command {
        let mut command = self.cli.command(self.exe.to_str().unwrap());
        command.args(args);
        for (key, value) in &self.env {
            command.env(key, value);
        }
        command
    }

    /// Talks to the API at `url` instead of the server's own URL.
    pub(crate) fn at(mut self, url: &str) -> Heroku<'a> {
        for (key, value) in &mut self.env {
            if key == "HEROKU_HOST" || key == "HEROKU_PARTICLEBOARD_URL" {
                *value = url.to_owned();
            }
        }
        self
    }

    pub(crate) fn run(&self, args: &[&str]) -> Run {
        let mut all = vec!["heroku"];
        all.extend_from_slice(args);
        run_to_end(self.command(args), &all, None, SLOW)
    }

    #[track_caller]
    pub(crate) fn ok(&self, args: &[&str]) -> Run {
        let run = self.run(args);
        assert_eq!(run.code, Some(0), "heroku {}: {run:#?}", args.join(" "));
        run
    }
}

/// `wharf ARGS --json` as JSON.
#[track_caller]
fn json(cli: &Cli, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    cli.run(&all).success().json()
}

/// `GET /` of `host` through the router, with curl (which runs in the server's namespace).
fn get(cli: &Cli, port: u16, host: &str) -> Result<(u16, String), String> {
    let run = run_to_end(
        {
            let mut command = cli.command("curl");
            command.args([
                "-sS",
                "--max-time",
                "20",
                "-H",
                &format!("Host: {host}"),
                "-w",
                "\n%{http_code}",
                &format!("http://127.0.0.1:{port}/"),
            ]);
            command
        },
        &["curl"],
        None,
        Duration::from_secs(30),
    );
    if run.code != Some(0) {
        return Err(run.stderr);
    }
    let (body, status) = run.stdout.rsplit_once('\n').ok_or(run.stdout.clone())?;
    Ok((
        status.parse().map_err(|_| run.stdout.clone())?,
        body.to_owned(),
    ))
}

fn until_serves(cli: &Cli, port: u16, host: &str, status: u16, needle: &str) {
    wait_until(
        Duration::from_secs(120),
        &format!("{host} to answer {status} with `{needle}`"),
        || match get(cli, port, host)? {
            (s, body) if s == status && body.contains(needle) => Ok(()),
            (s, body) => Err(format!("{s} {body}")),
        },
    );
}

#[test]
fn the_heroku_cli_drives_wharf() {
    let Some(exe) = heroku_cli() else {
        return;
    };
    let server = Server::start_isolated(&[
        "--tls-addr",
        "127.0.0.1:0",
        "--rendezvous-addr",
        "127.0.0.1:0",
        "--sandbox",
        "none",
        "--port-range",
        "33500-33549",
    ]);
    let tls_port = server.tls_port.expect("TLS is on");
    let router = server.router_port;
    let cli = Cli::new().in_namespace_of(&server);
    cli.login(&server).success();
    let heroku = Heroku::new(&cli, exe, &server);

    // Who am I; apps.
    let whoami = heroku.ok(&["auth:whoami"]);
    assert_eq!(whoami.stdout.trim(), "admin@wharf.local");
    let created = heroku.ok(&["apps:create", "hk-app"]);
    assert!(
        created
            .stdout
            .contains(&format!("http://hk-app.localhost:{router}/")),
        "{created:#?}"
    );
    assert_eq!(
        json(&cli, &["apps", "info", "-a", "hk-app"])["name"],
        "hk-app"
    );
    assert!(heroku.ok(&["apps"]).stdout.contains("hk-app"));
    let info = heroku.ok(&["apps:info", "-a", "hk-app"]);
    assert!(
        info.stdout.contains("=== hk-app")
            && info.stdout.contains("Owner:")
            && info.stdout.contains("admin@wharf.local"),
        "{info:#?}"
    );
    // Stacks: the app's is marked, wharf's own are listed.
    let stacks = heroku.ok(&["stack", "-a", "hk-app"]);
    assert!(
        stacks.stdout.contains("* wharf-1")
            && stacks.stdout.contains("  wharf-bookworm")
            && stacks.stdout.contains("  wharf-trixie"),
        "{stacks:#?}"
    );
    // stack:set: a stack wharf doesn't have is refused, naming those it has.
    let unknown = heroku.run(&["stack:set", "heroku-24", "-a", "hk-app"]);
    assert_ne!(unknown.code, Some(0), "{unknown:#?}");
    assert!(
        unknown.stderr.contains("heroku-24") && unknown.stderr.contains("wharf-trixie"),
        "{unknown:#?}"
    );
    let set_stack = heroku.ok(&["stack:set", "wharf-1", "-a", "hk-app"]);
    assert!(set_stack.stderr.contains("wharf-1"), "{set_stack:#?}");

    // Config.
    let set = heroku.ok(&["config:set", "GREETING=hello", "OTHER=x", "-a", "hk-app"]);
    assert!(set.stderr.contains("done, v2"), "{set:#?}");
    assert!(set.stdout.contains("GREETING: hello"), "{set:#?}");
    assert_eq!(json(&cli, &["config", "-a", "hk-app"])["GREETING"], "hello");
    heroku.ok(&["config:unset", "OTHER", "-a", "hk-app"]);
    let config = json(&cli, &["config", "-a", "hk-app"]);
    assert!(config.get("OTHER").is_none(), "{config}");
    assert!(heroku
        .ok(&["config", "-a", "hk-app"])
        .stdout
        .contains("GREETING: hello"));

    // git push heroku main, over HTTPS with the CLI's own credential helper.
    let work = cli.work_dir();
    std::fs::write(work.join("app.py"), APP_PY.replace("VERSION_HERE", "one")).unwrap();
    std::fs::write(
        work.join("Procfile"),
        "web: python3 app.py\nrelease: echo migrating the schema\n",
    )
    .unwrap();
    cli.git(&["init", "--quiet", "--initial-branch=main"], SLOW)
        .success();
    cli.git(&["add", "-A"], SLOW).success();
    cli.git(&["commit", "--quiet", "-m", "one"], SLOW).success();
    let remote = heroku.ok(&["git:remote", "-a", "hk-app"]);
    assert!(
        remote
            .stdout
            .contains(&format!("https://127.0.0.1:{tls_port}/hk-app.git")),
        "{remote:#?}"
    );
    let push = |what: &str| {
        let mut command = cli.command("git");
        for (key, value) in &heroku.env {
            command.env(key, value);
        }
        // git finds `heroku` (its credential helper) on PATH.
        let bin = heroku.exe.parent().unwrap().to_path_buf();
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        command.env("PATH", path).args(["push", "heroku", "main"]);
        let run = run_to_end(command, &["git", "push", "heroku", "main"], None, SLOW);
        assert_eq!(run.code, Some(0), "git push ({what}): {run:#?}");
        run
    };
    let pushed = push("one");
    assert!(
        pushed.stderr.contains("remote: -----> Building hk-app")
            && pushed.stderr.contains("migrating the schema"),
        "{pushed:#?}"
    );
    until_serves(&cli, router, "hk-app.localhost", 200, "one hello");
    let v_one = json(&cli, &["releases", "info", "-a", "hk-app"]);

    // Release phase output.
    let output = heroku.ok(&["releases:output", "-a", "hk-app"]);
    assert!(
        output.stdout.contains("migrating the schema"),
        "{output:#?}"
    );

    // Scaling, absolute and relative; ps.
    let scaled = heroku.ok(&["ps:scale", "web=2", "-a", "hk-app"]);
    assert!(
        scaled.stderr.contains("now running web at 2"),
        "{scaled:#?}"
    );
    let formation = json(&cli, &["scale", "-a", "hk-app"]);
    assert_eq!(formation[0]["quantity"], 2, "{formation}");
    heroku.ok(&["ps:scale", "web-1", "-a", "hk-app"]);
    assert_eq!(json(&cli, &["scale", "-a", "hk-app"])[0]["quantity"], 1);
    heroku.ok(&["ps:scale", "web+1", "-a", "hk-app"]);
    assert_eq!(json(&cli, &["scale", "-a", "hk-app"])[0]["quantity"], 2);
    wait_until(Duration::from_secs(120), "two web processes up", || {
        let ps = heroku.ok(&["ps", "-a", "hk-app"]);
        (ps.stdout.contains("web.1: up") && ps.stdout.contains("web.2: up"))
            .then_some(())
            .ok_or(ps.stdout)
    });

    // Restarts and stops: all, a type, one process.
    for args in [
        &["ps:restart", "-a", "hk-app"][..],
        &["ps:restart", "--process-type", "web", "-a", "hk-app"],
        &["ps:restart", "--dyno-name", "web.1", "-a", "hk-app"],
        &["ps:stop", "--dyno-name", "web.2", "-a", "hk-app"],
    ] {
        let run = heroku.ok(args);
        assert!(run.stderr.contains("done"), "{run:#?}");
    }
    until_serves(&cli, router, "hk-app.localhost", 200, "one hello");

    // A second deploy, then a rollback to the first: vN with the first release's image.
    std::fs::write(work.join("app.py"), APP_PY.replace("VERSION_HERE", "two")).unwrap();
    cli.git(&["commit", "--quiet", "-am", "two"], SLOW)
        .success();
    push("two");
    until_serves(&cli, router, "hk-app.localhost", 200, "two hello");
    let releases = heroku.ok(&["releases", "-a", "hk-app"]);
    assert!(releases.stdout.contains("Deploy"), "{releases:#?}");
    let version = v_one["version"].as_u64().unwrap();
    let info = heroku.ok(&["releases:info", &version.to_string(), "-a", "hk-app"]);
    assert!(
        info.stdout.contains(&format!("Release v{version}")),
        "{info:#?}"
    );
    let rollback = heroku.ok(&["rollback", &format!("v{version}"), "-a", "hk-app"]);
    assert!(rollback.stderr.contains("done"), "{rollback:#?}");
    let current = json(&cli, &["releases", "info", "-a", "hk-app"]);
    assert_eq!(current["description"], format!("Rollback to v{version}"));
    assert_eq!(
        current["slug"], v_one["slug"],
        "the rollback runs v{version}'s image"
    );
    until_serves(&cli, router, "hk-app.localhost", 200, "one hello");

    // One-off processes: attached (its output, its exit status) and detached.
    let run = heroku.run(&["run", "-x", "-a", "hk-app", "--", "echo $GREETING from run"]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert!(run.stdout.contains("hello from run"), "{run:#?}");
    let failed = heroku.run(&["run", "-x", "-a", "hk-app", "--", "false"]);
    assert_eq!(failed.code, Some(1), "{failed:#?}");
    // In a terminal, as on Heroku (`heroku run bash` is interactive); `--no-tty` opts out.
    let tty = heroku.run(&["run", "-x", "-a", "hk-app", "--", "test -t 0 && tty"]);
    assert_eq!(tty.code, Some(0), "{tty:#?}");
    assert!(tty.stdout.contains("/dev/pts/"), "{tty:#?}");
    let no_tty = heroku.run(&[
        "run",
        "-x",
        "--no-tty",
        "-a",
        "hk-app",
        "--",
        "test -t 0 || echo no-terminal",
    ]);
    assert_eq!(no_tty.code, Some(0), "{no_tty:#?}");
    assert!(no_tty.stdout.contains("no-terminal"), "{no_tty:#?}");
    let detached = heroku.ok(&["run:detached", "-a", "hk-app", "--", "echo detached-output"]);
    assert!(detached.stdout.contains("run."), "{detached:#?}");
    wait_until(
        Duration::from_secs(60),
        "the detached output in the log",
        || {
            let logs = heroku.ok(&["logs", "-n", "200", "-a", "hk-app"]);
            logs.stdout
                .contains("detached-output")
                .then_some(())
                .ok_or(logs.stdout)
        },
    );

    // logs --tail: a request through the router shows up as it happens.
    let mut tail = heroku.command(&["logs", "--tail", "-a", "hk-app"]);
    tail.stdout(Stdio::piped())
        .stderr(Stdio::null())
        .stdin(Stdio::null());
    let mut tail = tail.spawn().unwrap();
    let lines = BufReader::new(tail.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = String::new();
    let mut found = false;
    while Instant::now() < deadline && !found {
        let _ = get(&cli, router, "hk-app.localhost");
        while let Ok(line) = rx.recv_timeout(Duration::from_millis(500)) {
            seen.push_str(&line);
            seen.push('\n');
            if line.contains("router") && line.contains("path=\"/\"") {
                found = true;
                break;
            }
        }
    }
    let _ = tail.kill();
    let _ = tail.wait();
    assert!(
        found,
        "logs --tail showed no router line; it showed:\n{seen}"
    );

    // Domains.
    heroku.ok(&["domains:add", "www.example.test", "-a", "hk-app"]);
    assert!(heroku
        .ok(&["domains", "-a", "hk-app"])
        .stdout
        .contains("www.example.test"));
    until_serves(&cli, router, "www.example.test", 200, "one hello");
    heroku.ok(&["domains:remove", "www.example.test", "-a", "hk-app"]);
    let domains = json(&cli, &["domains", "-a", "hk-app"]);
    assert_eq!(domains.as_array().unwrap().len(), 1, "{domains}");

    // Maintenance.
    heroku.ok(&["maintenance:on", "-a", "hk-app"]);
    assert_eq!(
        json(&cli, &["apps", "info", "-a", "hk-app"])["maintenance"],
        true
    );
    until_serves(&cli, router, "hk-app.localhost", 503, "");
    heroku.ok(&["maintenance:off", "-a", "hk-app"]);
    until_serves(&cli, router, "hk-app.localhost", 200, "one hello");

    // Rename, destroy.
    heroku.ok(&["apps:rename", "hk-renamed", "-a", "hk-app"]);
    assert_eq!(
        json(&cli, &["apps", "info", "-a", "hk-renamed"])["name"],
        "hk-renamed"
    );
    heroku.ok(&[
        "apps:destroy",
        "-a",
        "hk-renamed",
        "--confirm",
        "hk-renamed",
    ]);
    let gone = cli.run(&["apps", "info", "-a", "hk-renamed"]);
    assert!(gone.error().contains("not found"));
}

/// `heroku certs:*` and `domains:add --cert` on wharf's SNI endpoints: an upload, its table
/// and details, a domain served with it, and its removal.
#[test]
fn the_heroku_cli_manages_certificates() {
    let Some(exe) = heroku_cli() else {
        return;
    };
    let server = Server::start_isolated(&["--router-tls-addr", "127.0.0.1:0"]);
    let cli = Cli::new().in_namespace_of(&server);
    cli.login(&server).success();
    let heroku = Heroku::new(&cli, exe, &server);
    heroku.ok(&["apps:create", "hk-certs"]);

    let ca = wharf_test_support::certs::TestCa::new("wharf test CA");
    let issued = ca.issue(&["secure.hk.test"]);
    let crt = cli.write("secure.crt", &issued.chain);
    let key = cli.write("secure.key", &issued.key);
    let (crt, key) = (crt.to_str().unwrap(), key.to_str().unwrap());

    let empty = heroku.ok(&["certs", "-a", "hk-certs"]);
    assert!(
        empty.stdout.contains("has no SSL certificates"),
        "{empty:#?}"
    );
    let added = heroku.ok(&["certs:add", crt, key, "-a", "hk-certs"]);
    assert!(added.stdout.contains("secure.hk.test"), "{added:#?}");
    assert!(
        added.stdout.contains("SSL certificate is not trusted"),
        "{added:#?}"
    );
    let name = json(&cli, &["certs", "-a", "hk-certs"])[0]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    let table = heroku.ok(&["certs", "-a", "hk-certs"]);
    assert!(
        table.stdout.contains(&name) && table.stdout.contains("SNI"),
        "{table:#?}"
    );

    // A domain added with the certificate is served with it.
    heroku.ok(&[
        "domains:add",
        "secure.hk.test",
        "--cert",
        &name,
        "-a",
        "hk-certs",
    ]);
    let domains = json(&cli, &["domains", "-a", "hk-certs"]);
    assert_eq!(
        domains[1]["sni_endpoint"]["name"],
        name.as_str(),
        "{domains}"
    );
    let info = heroku.ok(&[
        "certs:info",
        "--name",
        &name,
        "--show-domains",
        "-a",
        "hk-certs",
    ]);
    assert!(info.stdout.contains("secure.hk.test"), "{info:#?}");
    assert!(info.stdout.contains("Expires At"), "{info:#?}");

    // A certificate that doesn't name the hostname can't be chosen for it.
    let wrong = heroku.run(&[
        "domains:add",
        "other.hk.test",
        "--cert",
        &name,
        "-a",
        "hk-certs",
    ]);
    assert_ne!(wrong.code, Some(0), "{wrong:#?}");
    assert!(wrong.stderr.contains("`other.hk.test`"), "{wrong:#?}");

    heroku.ok(&[
        "certs:remove",
        "--name",
        &name,
        "--confirm",
        "hk-certs",
        "-a",
        "hk-certs",
    ]);
    assert_eq!(
        json(&cli, &["certs", "-a", "hk-certs"]),
        serde_json::json!([])
    );
    let domains = json(&cli, &["domains", "-a", "hk-certs"]);
    assert!(domains[1]["sni_endpoint"].is_null(), "{domains}");
}
