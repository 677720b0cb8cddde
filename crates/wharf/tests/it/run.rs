//! The run stage as a user drives it: `wharf ps`, `scale`, `restart`, `stop` and `logs`
//! against a real server running real processes, and what happens to them when the server is
//! killed and started again.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::assert_cli_snapshot;
use crate::harness::{run_to_end, send_signal, wait_until, Cli, Server, WHARF};

/// A web process that is up once it listens, and a worker that says hello, then idles.
const PROCFILE: &str = "web: python3 -m http.server $PORT --bind 127.0.0.1\n\
                        worker: sh -c 'echo hello from $DYNO; exec sleep 1000'\n";

/// How long processes may take to start, stop or be replaced. Generous: the machine may be busy
/// compiling.
const SETTLE: Duration = Duration::from_secs(90);

/// A server whose apps get ports from `ports` (each test its own range, so that tests running
/// side by side never race for a port), with `--sandbox sandbox`.
fn server(ports: &str, sandbox: &str) -> Server {
    Server::start_with(&["--port-range", ports, "--sandbox", sandbox])
}

/// A data directory (and the temp dir holding it, to keep until the server has stopped) that
/// the unprivileged user apps run as without a sandbox can pass through.
///
/// The server makes its data dir 0711, but temp dirs are 0700, and `nobody` must pass through
/// every directory above its release tree and scratch (the server refuses to start otherwise).
/// Tests of `--sandbox none` therefore run in a temp dir made 0711 beforehand.
pub(crate) fn traversable_data_dir() -> (tempfile::TempDir, PathBuf) {
    let temp = tempfile::tempdir().unwrap();
    let data_dir = temp.path().join("wharf");
    std::fs::create_dir(&data_dir).unwrap();
    for dir in [temp.path(), &data_dir] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711)).unwrap();
    }
    (temp, data_dir)
}

/// Creates `app` and deploys a directory holding only `procfile`.
fn deploy(cli: &Cli, app: &str, procfile: &str) {
    cli.run(&["apps", "create", app]).success();
    let dir = cli.work_dir().join(app);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("Procfile"), procfile).unwrap();
    let deployed = cli
        .run(&["deploy", dir.to_str().unwrap(), "-a", app])
        .success();
    assert!(
        deployed.stdout.contains("-----> Released v2"),
        "{deployed:#?}"
    );
}

/// `wharf ps --json`.
fn dynos(cli: &Cli, app: &str) -> Vec<Value> {
    let ps = cli.run(&["ps", "-a", app, "--json"]).success().json();
    ps.as_array().expect("ps --json prints a list").clone()
}

fn name(dyno: &Value) -> &str {
    dyno["name"].as_str().unwrap()
}

fn pid(dyno: &Value) -> u32 {
    dyno["pid"]
        .as_u64()
        .unwrap_or_else(|| panic!("an up process has a pid: {dyno}")) as u32
}

/// Waits until `ps` lists exactly `names`, every one `up` and accepted by `also`; returns the
/// instances by name.
pub(crate) fn wait_for_dynos(
    cli: &Cli,
    app: &str,
    names: &[&str],
    also: impl Fn(&BTreeMap<String, Value>) -> bool,
) -> BTreeMap<String, Value> {
    wait_until(
        SETTLE,
        &format!("{app} to run exactly {names:?}, up"),
        || {
            let list = dynos(cli, app);
            let by_name: BTreeMap<String, Value> = list
                .iter()
                .map(|d| (name(d).to_owned(), d.clone()))
                .collect();
            let listed: Vec<&str> = list.iter().map(name).collect();
            let all_up = list.iter().all(|d| d["state"] == "up");
            if listed == names && all_up && also(&by_name) {
                Ok(by_name)
            } else {
                Err(serde_json::to_string_pretty(&list).unwrap())
            }
        },
    )
}

pub(crate) fn wait_for_up(cli: &Cli, app: &str, names: &[&str]) -> BTreeMap<String, Value> {
    wait_for_dynos(cli, app, names, |_| true)
}

/// A process as `/proc` knows it: its pid and start time, which together name it even after
/// the pid is reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Process {
    pid: u32,
    start_time: u64,
}

/// `(state, process group, start time)` from `/proc/<pid>/stat`.
fn stat(pid: u32) -> Option<(String, u32, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: fields are counted from its closing parenthesis.
    let fields: Vec<&str> = text[text.rfind(')')? + 1..].split_whitespace().collect();
    Some((
        fields.first()?.to_string(),
        fields.get(2)?.parse().ok()?,
        fields.get(19)?.parse().ok()?,
    ))
}

/// Every live process of the group `pgid` leads: the instance and whatever it started.
fn group(pgid: u32) -> Vec<Process> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        if let Some((state, pgrp, start_time)) = stat(pid) {
            if pgrp == pgid && state != "Z" {
                found.push(Process { pid, start_time });
            }
        }
    }
    found
}

/// Whether the process still runs: a zombie runs nothing, and a reused pid is another process.
fn is_running(process: Process) -> bool {
    stat(process.pid).is_some_and(|(state, _, start)| state != "Z" && start == process.start_time)
}

fn process(pid: u32) -> Process {
    let (_, _, start_time) = stat(pid).unwrap_or_else(|| panic!("process {pid} is running"));
    Process { pid, start_time }
}

/// `wharf logs ARGS -a app`, as lines.
fn log_lines(cli: &Cli, app: &str, args: &[&str]) -> Vec<String> {
    let mut all = vec!["logs", "-a", app];
    all.extend_from_slice(args);
    let run = cli.run(&all).success();
    run.stdout.lines().map(str::to_owned).collect()
}

/// Waits until `wharf logs ARGS` has a line ending with `end` and returns the lines.
pub(crate) fn wait_for_log(cli: &Cli, app: &str, args: &[&str], end: &str) -> Vec<String> {
    wait_until(SETTLE, &format!("a log line ending with {end:?}"), || {
        let lines = log_lines(cli, app, args);
        if lines.iter().any(|l| l.ends_with(end)) {
            Ok(lines)
        } else {
            Err(lines.join("\n"))
        }
    })
}

/// Checks that every line of a table starts its columns where the header's titles start.
#[track_caller]
fn assert_aligned(table: &str, columns: &[&str]) {
    let mut lines = table.lines();
    let header = lines.next().expect("a header line");
    let starts: Vec<usize> = columns
        .iter()
        .map(|c| {
            header
                .find(c)
                .unwrap_or_else(|| panic!("{c} in {header:?}"))
        })
        .collect();
    for line in lines {
        for &at in &starts[1..] {
            let before = &line[..at];
            assert!(
                before.ends_with("  ") && !line[at..].starts_with(' '),
                "the column at {at} is aligned in\n{table}"
            );
        }
    }
}

#[test]
fn ps_and_scale_show_and_change_what_runs() {
    let server = server("32100-32199", "auto");
    let cli = Cli::logged_in(&server);
    deploy(&cli, "scaly", PROCFILE);

    // The first deploy runs one web process, and no worker.
    wait_for_up(&cli, "scaly", &["web.1"]);

    let scaled = cli
        .run(&["scale", "web=3", "worker=1", "-a", "scaly"])
        .success();
    assert!(
        scaled
            .stdout
            .starts_with("Scaled scaly: web=3:standard-1x worker=1:standard-1x\n"),
        "{scaled:#?}"
    );
    let running = wait_for_up(&cli, "scaly", &["web.1", "web.2", "web.3", "worker.1"]);
    let ports: std::collections::BTreeSet<u64> = ["web.1", "web.2", "web.3"]
        .iter()
        .map(|n| {
            running[*n]["port"]
                .as_u64()
                .expect("web processes have a port")
        })
        .collect();
    assert_eq!(
        ports.len(),
        3,
        "each web process has its own port: {running:?}"
    );
    assert!(
        ports.iter().all(|p| (32100..=32199).contains(p)),
        "{ports:?}"
    );

    // The table a person reads: one aligned row per process.
    let table = cli.run(&["ps", "-a", "scaly"]).success().stdout;
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("NAME      STATE  SINCE"), "{table}");
    assert_eq!(lines.len(), 5, "{table}");
    for (line, name) in lines[1..]
        .iter()
        .zip(["web.1", "web.2", "web.3", "worker.1"])
    {
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(&cells[..2], [name, "up"], "{table}");
        assert_eq!(cells[3], "v2", "{table}");
    }
    assert_aligned(
        &table,
        &["NAME", "STATE", "SINCE", "RELEASE", "PORT", "RESTARTS"],
    );

    cli.run(&["scale", "web-2", "-a", "scaly"]).success();
    wait_for_up(&cli, "scaly", &["web.1", "worker.1"]);
    cli.run(&["scale", "worker=0", "-a", "scaly"]).success();
    let left = wait_for_up(&cli, "scaly", &["web.1"]);
    assert_eq!(
        left["web.1"]["pid"], running["web.1"]["pid"],
        "scaling others leaves web.1 alone"
    );

    // Without changes, `scale` shows the formation.
    assert_cli_snapshot!(
        "scale_shows_formation",
        cli.run(&["scale", "-a", "scaly"]).success().transcript()
    );

    // Mistakes are refused with a reason, and change nothing.
    assert_cli_snapshot!(
        "scale_not_a_number",
        cli.run(&["scale", "web=lots", "-a", "scaly"])
            .failure()
            .transcript()
    );
    assert_cli_snapshot!(
        "scale_unknown_type",
        cli.run(&["scale", "nope=1", "-a", "scaly"])
            .failure()
            .transcript()
    );
    wait_for_up(&cli, "scaly", &["web.1"]);
}

/// A running `wharf logs --tail`, killed when dropped.
struct Tail {
    child: Child,
    lines: Receiver<String>,
}

impl Tail {
    fn start(cli: &Cli, args: &[&str]) -> Tail {
        let mut child = cli
            .command(WHARF.as_str())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start wharf logs --tail");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Tail { child, lines }
    }

    /// Reads lines until `count` of them end with `end`; returns everything read.
    fn read_until(&self, end: &str, count: usize, seen: &mut Vec<String>) {
        let deadline = Instant::now() + SETTLE;
        while seen.iter().filter(|l| l.ends_with(end)).count() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => seen.push(line),
                Err(e) => panic!(
                    "`wharf logs --tail` did not print {count} lines ending with {end:?} ({e}):\n{}",
                    seen.join("\n")
                ),
            }
        }
    }
}

impl Drop for Tail {
    fn drop(&mut self) {
        send_signal(self.child.id(), "-KILL");
        let _ = self.child.wait();
    }
}

#[test]
fn logs_show_the_processes_output_and_the_platform_events() {
    let server = server("32200-32299", "auto");
    let cli = Cli::logged_in(&server);
    deploy(&cli, "loud", PROCFILE);
    cli.run(&["scale", "worker=1", "-a", "loud"]).success();
    wait_for_up(&cli, "loud", &["web.1", "worker.1"]);

    let hello = "app[worker.1]: hello from worker.1";
    let app_lines = wait_for_log(&cli, "loud", &["-n", "200", "--source", "app"], hello);
    assert!(
        app_lines.iter().all(|l| l.contains(" app[")),
        "--source app shows only the processes' output:\n{}",
        app_lines.join("\n")
    );

    let events = log_lines(&cli, "loud", &["--source", "wharf"]);
    assert!(
        events
            .iter()
            .any(|l| l.ends_with("wharf[web.1]: State changed from starting to up")),
        "{events:#?}"
    );
    assert!(
        events
            .iter()
            .any(|l| l.ends_with("wharf[worker.1]: State changed from starting to up")),
        "{events:#?}"
    );
    assert!(events.iter().all(|l| l.contains(" wharf[")), "{events:#?}");

    let web = log_lines(&cli, "loud", &["--dyno", "web"]);
    assert!(!web.is_empty());
    assert!(
        web.iter().all(|l| l.contains("[web.1]: ")),
        "--dyno web shows only web lines:\n{}",
        web.join("\n")
    );

    // `--tail` prints the past lines, then new ones as they come.
    let tail = Tail::start(
        &cli,
        &["logs", "--tail", "-a", "loud", "--dyno", "worker.1"],
    );
    let mut seen = Vec::new();
    tail.read_until(hello, 1, &mut seen);
    cli.run(&["restart", "worker", "-a", "loud"]).success();
    tail.read_until(hello, 2, &mut seen);
    assert!(
        seen.iter().all(|l| l.contains("[worker.1]: ")),
        "{}",
        seen.join("\n")
    );
    let pid = tail.child.id();
    drop(tail);
    assert!(
        stat(pid).is_none_or(|(state, _, _)| state == "Z"),
        "`wharf logs --tail` was killed"
    );
}

#[test]
fn restart_and_stop_replace_processes_with_fresh_ones() {
    let server = server("32300-32399", "auto");
    let cli = Cli::logged_in(&server);
    deploy(&cli, "fresh", PROCFILE);
    cli.run(&["scale", "worker=1", "-a", "fresh"]).success();
    let before = wait_for_up(&cli, "fresh", &["web.1", "worker.1"]);
    let old_web = process(pid(&before["web.1"]));
    let old_worker = process(pid(&before["worker.1"]));

    let restarted = cli.run(&["restart", "web", "-a", "fresh"]).success();
    assert_eq!(restarted.stdout, "Restarting web of fresh\n");
    let after = wait_for_dynos(&cli, "fresh", &["web.1", "worker.1"], |d| {
        pid(&d["web.1"]) != old_web.pid
    });
    assert_eq!(
        pid(&after["worker.1"]),
        old_worker.pid,
        "restarting web leaves the worker alone"
    );
    assert!(!is_running(old_web), "the old web process is gone");

    let stopped = cli.run(&["stop", "worker.1", "-a", "fresh"]).success();
    assert!(
        stopped.stdout.starts_with("Stopping worker.1 of fresh"),
        "{stopped:#?}"
    );
    let again = wait_for_dynos(&cli, "fresh", &["web.1", "worker.1"], |d| {
        pid(&d["worker.1"]) != old_worker.pid
    });
    assert_eq!(pid(&again["web.1"]), pid(&after["web.1"]));
    assert!(!is_running(old_worker), "the old worker is gone");

    let unknown = cli.run(&["restart", "clock", "-a", "fresh"]).error();
    assert!(unknown.contains("clock"), "{unknown}");
}

/// Kills the server with SIGKILL while its apps run, starts a new one on the same data
/// directory, and checks that the new one stopped everything the old one left and runs the
/// formation afresh, with nothing of the app's history lost.
fn a_killed_server_leaves_nothing_running(ports: &str, sandbox: &str) {
    let (_data, data_dir) = traversable_data_dir();
    let args = ["--port-range", ports, "--sandbox", sandbox];
    let first = Server::start_in_with(&data_dir, &args);
    let cli = Cli::logged_in(&first);
    deploy(&cli, "phoenix", PROCFILE);
    cli.run(&["config", "set", "GREETING=hi", "-a", "phoenix"])
        .success();
    cli.run(&["scale", "web=2", "worker=1", "-a", "phoenix"])
        .success();
    let names = ["web.1", "web.2", "worker.1"];
    let before = wait_for_dynos(&cli, "phoenix", &names, |d| {
        d.values().all(|d| d["release"]["version"] == 3)
    });
    // Each instance, and everything in its process group (under bubblewrap: the app inside).
    let old: Vec<Process> = before.values().flat_map(|d| group(pid(d))).collect();
    assert!(old.len() >= names.len(), "{old:?}");

    let (status, _) = first.stop_with("-KILL");
    assert!(!status.success());

    let second = Server::start_in_with(&data_dir, &args);
    cli.login(&second).success();
    let after = wait_for_up(&cli, "phoenix", &names);
    let left: Vec<Process> = old.iter().copied().filter(|p| is_running(*p)).collect();
    assert!(
        left.is_empty(),
        "the new server stopped every process the killed one left: {left:?} still run"
    );
    for name in names {
        assert_ne!(
            pid(&after[name]),
            pid(&before[name]),
            "{name} was started afresh"
        );
        assert_eq!(after[name]["release"]["version"], 3, "{name}");
    }
    assert_eq!(
        cli.run(&["config", "get", "GREETING", "-a", "phoenix"])
            .success()
            .stdout,
        "hi\n"
    );
    let releases = cli
        .run(&["releases", "-a", "phoenix", "--json"])
        .success()
        .json();
    let versions: Vec<&Value> = releases
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["version"])
        .collect();
    assert_eq!(versions, [3, 2, 1]);
    let after_stop: Vec<Process> = after.values().map(|d| process(pid(d))).collect();
    drop(second);
    assert!(
        after_stop.iter().all(|p| !is_running(*p)),
        "a stopped server stops its apps: {after_stop:?}"
    );
}

#[test]
fn a_killed_server_leaves_nothing_running_sandboxed() {
    a_killed_server_leaves_nothing_running("32400-32499", "auto");
}

#[test]
fn a_killed_server_leaves_nothing_running_without_a_sandbox() {
    a_killed_server_leaves_nothing_running("32500-32599", "none");
}

/// Processes that keep a mark in `$HOME` and try to write their code directory.
const STATELESS: &str = "\
worker: sh -c 'test -e $HOME/mark && echo found-old || echo fresh; touch $HOME/mark; exec sleep 1000'
vandal: sh -c 'touch ./oops 2>/dev/null && echo wrote-code || echo code-is-read-only; exec sleep 1000'
";

/// Every start gets an empty `HOME`, and no process can change the release's code.
fn processes_are_stateless(ports: &str, sandbox: &str) {
    let (_data, data_dir) = traversable_data_dir();
    let server = Server::start_in_with(&data_dir, &["--port-range", ports, "--sandbox", sandbox]);
    let cli = Cli::logged_in(&server);
    deploy(&cli, "amnesia", STATELESS);
    cli.run(&["scale", "worker=1", "vandal=1", "-a", "amnesia"])
        .success();
    let before = wait_for_up(&cli, "amnesia", &["vandal.1", "worker.1"]);
    wait_for_log(
        &cli,
        "amnesia",
        &["--source", "app"],
        "app[vandal.1]: code-is-read-only",
    );
    wait_for_log(
        &cli,
        "amnesia",
        &["--source", "app"],
        "app[worker.1]: fresh",
    );

    cli.run(&["restart", "worker", "-a", "amnesia"]).success();
    wait_for_dynos(&cli, "amnesia", &["vandal.1", "worker.1"], |d| {
        d["worker.1"]["pid"] != before["worker.1"]["pid"]
    });
    let lines = wait_until(SETTLE, "the restarted worker's first line", || {
        let lines = log_lines(&cli, "amnesia", &["--dyno", "worker.1", "--source", "app"]);
        if lines.len() >= 2 {
            Ok(lines)
        } else {
            Err(lines.join("\n"))
        }
    });
    let texts: Vec<&str> = lines
        .iter()
        .map(|l| l.split_once("]: ").unwrap().1)
        .collect();
    assert_eq!(
        texts,
        ["fresh", "fresh"],
        "a restart starts with an empty HOME"
    );
    let oops = Path::new(&server.data_dir).join("releases");
    let written: Vec<_> = walk(&oops)
        .into_iter()
        .filter(|p| p.ends_with("oops"))
        .collect();
    assert!(written.is_empty(), "{written:?}");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                found.extend(walk(&path));
            }
            found.push(path);
        }
    }
    found
}

#[test]
fn processes_are_stateless_sandboxed() {
    processes_are_stateless("32600-32699", "auto");
}

#[test]
fn processes_are_stateless_without_a_sandbox() {
    processes_are_stateless("32700-32799", "none");
}

/// Without a sandbox, apps run as their own users, who must pass through every directory above
/// the data dir: a server that couldn't start apps refuses to start, and says why and how to fix it.
#[test]
fn without_a_sandbox_an_unreachable_data_dir_is_refused_at_start() {
    let temp = tempfile::tempdir().unwrap();
    // Made 0700 explicitly: the unprivileged user can't pass through it.
    std::fs::set_permissions(temp.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    if !nix_is_root() {
        eprintln!("note: not root, apps run as this user; nothing to check");
        return;
    }
    let child = std::process::Command::new(crate::harness::WHARF.as_str())
        .args([
            "server",
            "--sandbox",
            "none",
            "--api-addr",
            "127.0.0.1:0",
            "--router-addr",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(temp.path().join("wharf"))
        .env_remove("WHARF_URL")
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Stopped by PID whatever happens below, so a server that did start never outlives the test.
    struct Reap(std::process::Child);
    impl Drop for Reap {
        fn drop(&mut self) {
            if let Ok(None) = self.0.try_wait() {
                let _ = self.0.kill();
                let _ = self.0.wait();
            }
        }
    }
    let mut child = Reap(child);
    let status = crate::harness::wait_until(
        std::time::Duration::from_secs(30),
        "the server to exit",
        || {
            child
                .0
                .try_wait()
                .map_err(|e| e.to_string())?
                .ok_or_else(|| "still running".to_owned())
        },
    );
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.0.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("can't pass through") && stderr.contains("--data-dir"),
        "{stderr}"
    );
    // Refused before anything was made or opened: no half-started server.
    assert!(!stderr.contains("listening"), "{stderr}");
    assert!(!temp.path().join("wharf").exists());
}

pub(crate) fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// `wharf run`: attached, its input reaches the process and `wharf` exits with the process's
/// status; when its input and output are a terminal (here, one `script` provides), the process
/// runs in a terminal too, so shells and consoles are interactive; `--no-tty` opts out.
#[test]
fn wharf_run_attaches_and_brings_a_terminal_when_it_has_one() {
    let server = server("33900-33949", "auto");
    let cli = Cli::logged_in(&server);
    deploy(&cli, "oneoff", "worker: exec sleep 1000\n");

    let piped = cli.run_with_stdin(
        &[
            "run",
            "-a",
            "oneoff",
            "--",
            "read x; test -t 0 || echo plain; echo got:$x; exit 3",
        ],
        "hi\n",
    );
    assert_eq!(piped.code, Some(3), "{piped:#?}");
    assert_eq!(piped.stdout, "plain\ngot:hi\n", "{piped:#?}");

    // `script` runs `wharf run` on a terminal of its own; what it printed is in the output.
    let in_terminal = |flags: &str| {
        let inner = format!(
            "{} run {flags} -a oneoff -- 'test -t 0 && echo terminal-$((6*7)) $TERM || echo none-$((6*7))'",
            WHARF.as_str()
        );
        let mut script = cli.command("script");
        script
            .args(["-q", "-e", "-c", &inner, "/dev/null"])
            .env("TERM", "vt100");
        run_to_end(script, &["script", &inner], None, SETTLE)
    };
    let with = in_terminal("");
    assert_eq!(with.code, Some(0), "{with:#?}");
    // The process's terminal is of the type this one is.
    assert!(with.stdout.contains("terminal-42 vt100"), "{with:#?}");
    let without = in_terminal("--no-tty");
    assert_eq!(without.code, Some(0), "{without:#?}");
    assert!(without.stdout.contains("none-42"), "{without:#?}");
}
