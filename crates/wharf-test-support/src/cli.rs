//! Runs the real `wharf` binary: a `wharf server` child per test, and client commands in a clean
//! environment of their own (no `WHARF_*` variables, a temp `HOME`, config dir and working dir).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

pub use wharf_store::testing::Backend;
use wharf_store::testing::TestDatabase;

/// The binary under test.
pub static WHARF: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    // Set by nextest (and by cargo for integration tests at build time); else the binary next
    // to the test binary's `deps/` directory, where cargo puts it.
    std::env::var_os("CARGO_BIN_EXE_wharf")
        .map(PathBuf::from)
        .or_else(|| {
            let test = std::env::current_exe().ok()?;
            Some(test.parent()?.parent()?.join("wharf"))
        })
        .filter(|exe| exe.is_file())
        .expect("the wharf binary (cargo builds it for the wharf crate's tests)")
        .to_string_lossy()
        .into_owned()
});

/// How long a server may take to start or stop, and a client command to finish. Generous: the
/// machine may be busy compiling.
const DEADLINE: Duration = Duration::from_secs(60);

/// The account a fresh server's admin token belongs to.
pub const ADMIN_EMAIL: &str = "admin@wharf.local";

/// Removes every `WHARF_*` variable this test process inherited, so neither the server nor a
/// client command picks up the developer's settings.
fn clean_wharf_env(command: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("WHARF_") {
            command.env_remove(&key);
        }
    }
    command
        .env_remove("WHARF_URL")
        .env_remove("WHARF_TOKEN")
        .env_remove("WHARF_APP")
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("XDG_DATA_HOME");
}

/// Sends `signal` (e.g. `-TERM`) to `pid` with kill(1); the crate forbids the unsafe code a
/// direct system call would need.
pub fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {signal} {pid} failed");
}

/// A `wharf server` child process with its own data directory, stopped (SIGTERM, then SIGKILL)
/// when dropped, even if the test panics.
pub struct Server {
    child: Option<Child>,
    /// The API's URL, read from the server's "listening on" line.
    pub url: String,
    /// The router's port, read from its "listening on" line.
    pub router_port: u16,
    /// The TLS listener's port, when started with `--tls-addr`.
    pub tls_port: Option<u16>,
    /// The router's TLS listener's port, when started with `--router-tls-addr`.
    pub router_tls_port: Option<u16>,
    pub data_dir: PathBuf,
    /// Everything the server wrote to stderr up to and including its "listening on" line.
    pub startup: String,
    /// Lines the server writes to stderr after starting; disconnects when stderr closes, i.e.
    /// when the process has exited.
    stderr: Receiver<String>,
    /// The temp dir or database the server uses, removed after the server stops (fields drop
    /// after `Drop::drop` has run).
    temp_dir: Option<tempfile::TempDir>,
    database: Option<TestDatabase>,
    /// Whether it runs in a network namespace of its own.
    isolated: bool,
}

/// The stack a test's server builds new apps on, unless the test says otherwise: the test stack
/// (a small trixie, made once per machine, see `test_stack`) put into `data_dir`, so every app
/// a test deploys is built and run in stack images as wharf's own default stack would have
/// them, without each test making that stack. `None` where the test picks its stack itself
/// or runs without the sandbox (which builds on the host-bound `wharf-1`).
pub fn test_stack_for(data_dir: &Path, args: &[&str]) -> Option<&'static str> {
    let given = |flag: &str| {
        args.iter()
            .any(|a| *a == flag || a.starts_with(&format!("{flag}=")))
    };
    let no_sandbox =
        args.windows(2).any(|w| w == ["--sandbox", "none"]) || args.contains(&"--sandbox=none");
    if given("--stack") || no_sandbox || !crate::test_stack::available() {
        return None;
    }
    crate::test_stack::install(data_dir);
    Some(crate::test_stack::NAME)
}

/// Whether this host lets tests make network namespaces (root, `unshare` and `ip`): checked
/// once by making one.
pub fn network_namespaces() -> bool {
    static ALLOWED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ALLOWED.get_or_init(|| {
        Command::new("unshare")
            .args(["--net", "--", "ip", "link", "set", "lo", "up"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

impl Server {
    /// A server on SQLite in a fresh data directory, as a first-time user starts it.
    pub fn start() -> Server {
        Server::start_with(&[])
    }

    /// A server on SQLite in a fresh data directory, started with `wharf server ARGS`
    /// (e.g. `--sandbox none`).
    pub fn start_with(args: &[&str]) -> Server {
        let data = tempfile::tempdir().expect("temp dir");
        let mut server = Server::spawn(&data.path().join("wharf"), None, args);
        server.temp_dir = Some(data);
        server
    }

    /// A server on a fresh database of `backend`.
    pub fn start_on(backend: Backend) -> Server {
        match backend {
            Backend::Sqlite => Server::start(),
            Backend::Postgres => {
                let db = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime")
                    .block_on(TestDatabase::new(Backend::Postgres));
                let mut server = Server::spawn(&db.data_dir().join("wharf"), Some(&db.url), &[]);
                server.database = Some(db);
                server
            }
        }
    }

    /// A server on SQLite in `data_dir`, which the caller owns (to start a server on it twice).
    pub fn start_in(data_dir: &Path) -> Server {
        Server::spawn(data_dir, None, &[])
    }

    /// [`Server::start_in`] with `wharf server ARGS`.
    pub fn start_in_with(data_dir: &Path, args: &[&str]) -> Server {
        Server::spawn(data_dir, None, args)
    }

    /// A server on SQLite in a fresh data directory, alone in a network namespace of its own
    /// that has only loopback (where the host allows one: see [`network_namespaces`]), started
    /// with `wharf server ARGS`. Reach it with a [`Cli::in_namespace_of`] user.
    pub fn start_isolated(args: &[&str]) -> Server {
        let data = tempfile::tempdir().expect("temp dir");
        let mut server = Server::spawn_in(&data.path().join("wharf"), None, args, true);
        server.temp_dir = Some(data);
        server
    }

    /// The network namespace the server runs in, if it has one of its own.
    pub fn namespace(&self) -> Option<PathBuf> {
        self.isolated
            .then(|| PathBuf::from(format!("/proc/{}/ns/net", self.pid())))
    }

    fn spawn(data_dir: &Path, database_url: Option<&str>, args: &[&str]) -> Server {
        Server::spawn_in(data_dir, database_url, args, false)
    }

    fn spawn_in(
        data_dir: &Path,
        database_url: Option<&str>,
        args: &[&str],
        isolated: bool,
    ) -> Server {
        let isolated = isolated && network_namespaces();
        let mut command = if isolated {
            // unshare and sh exec into the server: its pid is the one to signal.
            let mut command = Command::new("unshare");
            command.args([
                "--net",
                "--",
                "sh",
                "-c",
                "ip link set lo up && exec \"$0\" \"$@\"",
                WHARF.as_str(),
            ]);
            command
        } else {
            Command::new(WHARF.as_str())
        };
        clean_wharf_env(&mut command);
        command
            .arg("server")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--router-addr", "127.0.0.1:0"])
            .env("WHARF_LOG", "info")
            .env("NO_COLOR", "1")
            // Node.js, npm and Pythons downloaded once for all the tests on this machine.
            .env("WHARF_RUNTIME_CACHE", runtime_cache())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(url) = database_url {
            command.args(["--database-url", url]);
        }
        // On loopback, on a port the system picks, unless the test says where.
        let api_ip = args
            .windows(2)
            .find(|w| w[0] == "--api-addr")
            .and_then(|w| w[1].rsplit_once(':'))
            .map_or("127.0.0.1", |(ip, _)| ip)
            .to_owned();
        if !args.contains(&"--api-addr") {
            command.args(["--api-addr", "127.0.0.1:0"]);
        }
        if let Some(stack) = test_stack_for(data_dir, args) {
            command.args(["--stack", stack]);
        }
        command.args(args);
        let mut child = command.spawn().expect("start wharf server");
        let stderr = child.stderr.take().expect("piped stderr");
        let (lines_tx, lines) = mpsc::channel();
        // Reads stderr to its end, so the server never blocks on a full pipe; the channel
        // disconnects when the server exits.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Server {
            isolated,
            child: Some(child),
            url: String::new(),
            router_port: 0,
            tls_port: None,
            router_tls_port: None,
            data_dir: data_dir.to_path_buf(),
            startup: String::new(),
            stderr: lines,
            temp_dir: None,
            database: None,
        };
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match server.stderr.recv_timeout(left) {
                Ok(line) => {
                    server.startup.push_str(&line);
                    server.startup.push('\n');
                    if let Some(rest) = line.strip_prefix("wharf API listening on http://") {
                        let addr = rest.split_whitespace().next().unwrap_or_default();
                        server.url = format!("http://{addr}");
                    }
                    if let Some(rest) = line.strip_prefix("wharf API listening on https://") {
                        let addr = rest.split_whitespace().next().unwrap_or_default();
                        server.tls_port = addr.rsplit(':').next().and_then(|p| p.parse().ok());
                    }
                    if let Some(rest) = line.strip_prefix("wharf router listening on https://") {
                        let addr = rest.split_whitespace().next().unwrap_or_default();
                        server.router_tls_port = addr.rsplit(':').next().and_then(|p| p.parse().ok());
                    }
                    // Printed right after the API's lines.
                    if let Some(rest) = line.strip_prefix("wharf router listening on http://") {
                        let addr = rest.split_whitespace().next().unwrap_or_default();
                        server.router_port = addr.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or(0);
                        break;
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!(
                    "wharf server did not say it was listening within {DEADLINE:?}; its stderr:\n{}",
                    server.startup
                ),
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "wharf server exited before listening; its stderr:\n{}",
                    server.startup
                ),
            }
        }
        assert!(
            server.url.starts_with(&format!("http://{api_ip}:")) && server.port() != 0,
            "wharf server should listen on its real port, said {:?}",
            server.url
        );
        server
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server running").id()
    }

    pub fn port(&self) -> u16 {
        self.url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0)
    }

    /// The token file a first start writes.
    pub fn admin_token_file(&self) -> PathBuf {
        self.data_dir.join("admin-token")
    }

    /// Sends `signal` and waits for the server to exit; returns its status and what it wrote to
    /// stderr after starting. Panics if it has not exited by the deadline.
    pub fn stop_with(mut self, signal: &str) -> (ExitStatus, String) {
        send_signal(self.pid(), signal);
        let mut child = self.child.take().expect("server running");
        let (exited, stderr) = wait_for_eof(&self.stderr);
        if !exited {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "wharf server did not stop within {DEADLINE:?} of {signal}; its stderr:\n{stderr}"
            );
        }
        let status = child.wait().expect("wait for wharf server");
        (status, stderr)
    }
}

pub use crate::wait_until;

/// Collects lines until the channel disconnects (the process closed stderr, i.e. exited) or the
/// deadline passes; returns whether it disconnected, and the lines.
fn wait_for_eof(lines: &Receiver<String>) -> (bool, String) {
    let deadline = Instant::now() + DEADLINE;
    let mut text = String::new();
    loop {
        match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                text.push_str(&line);
                text.push('\n');
            }
            Err(RecvTimeoutError::Disconnected) => return (true, text),
            Err(RecvTimeoutError::Timeout) => return (false, text),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let (exited, _) = wait_for_eof(&self.stderr);
        if !exited {
            let _ = child.kill();
        }
        let _ = child.wait();
    }
}

/// What a finished client command printed, and how it exited.
#[derive(Debug)]
pub struct Run {
    pub args: Vec<String>,
    pub stdout: String,
    pub stderr: String,
    /// `None` if a signal ended it.
    pub code: Option<i32>,
}

impl Run {
    /// Asserts exit 0 and returns the run.
    #[track_caller]
    pub fn success(self) -> Run {
        assert_eq!(
            self.code,
            Some(0),
            "`wharf {}` should succeed: {self:#?}",
            self.args.join(" ")
        );
        self
    }

    /// Asserts exit 1 (a runtime error) and returns the run.
    #[track_caller]
    pub fn failure(self) -> Run {
        assert_eq!(
            self.code,
            Some(1),
            "`wharf {}` should fail with exit 1: {self:#?}",
            self.args.join(" ")
        );
        self
    }

    /// Asserts exit 1, an empty stdout and a stderr that starts with `error: `; returns stderr.
    #[track_caller]
    pub fn error(self) -> String {
        let run = self.failure();
        assert_eq!(
            run.stdout, "",
            "an error prints nothing on stdout: {run:#?}"
        );
        assert!(
            run.stderr.starts_with("error: "),
            "errors start with `error: `: {run:#?}"
        );
        run.stderr
    }

    /// The command and what it printed, as a user sees it in a terminal, for snapshots.
    pub fn transcript(&self) -> String {
        let args: Vec<String> = self.args.iter().map(|a| shell_word(a)).collect();
        let mut text = format!("$ wharf {}\n{}", args.join(" "), self.stdout);
        if !self.stderr.is_empty() {
            text.push_str("[stderr]\n");
            text.push_str(&self.stderr);
        }
        if self.code != Some(0) {
            let code = self.code.map_or("a signal".to_owned(), |c| c.to_string());
            text.push_str(&format!("[exit {code}]\n"));
        }
        text
    }

    /// Stdout parsed as JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "`wharf {}` printed invalid JSON ({e}): {self:#?}",
                self.args.join(" ")
            )
        })
    }
}

/// `arg` as it would be typed at a shell: quoted when it holds anything but plain characters.
fn shell_word(arg: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-=./:@,+%".contains(c);
    if !arg.is_empty() && arg.chars().all(plain) {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// A user at a terminal-less shell: their own `HOME`, wharf config dir and working directory,
/// and no `WHARF_*` variables but the ones a test sets.
pub struct Cli {
    home: tempfile::TempDir,
    env: Vec<(String, String)>,
    /// The network namespace every command runs in, if not the test's own.
    namespace: Option<PathBuf>,
}

impl Default for Cli {
    fn default() -> Cli {
        Cli::new()
    }
}

impl Cli {
    pub fn new() -> Cli {
        let home = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(home.path().join("work")).expect("work dir");
        Cli {
            home,
            env: Vec::new(),
            namespace: None,
        }
    }

    /// A user who has run `wharf login` with `server`'s admin token.
    pub fn logged_in(server: &Server) -> Cli {
        let cli = Cli::new();
        cli.login(server).success();
        cli
    }

    /// A user whose commands all run in `server`'s network namespace (if it has one).
    pub fn in_namespace_of(mut self, server: &Server) -> Cli {
        self.namespace = server.namespace();
        self
    }

    /// Sets an environment variable for every later command.
    pub fn env(mut self, key: &str, value: &str) -> Cli {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Where `wharf login` keeps credentials.
    pub fn config_dir(&self) -> PathBuf {
        self.home.path().join("wharf-config")
    }

    /// The working directory commands run in: empty, and not inside any git checkout.
    pub fn work_dir(&self) -> PathBuf {
        self.home.path().join("work")
    }

    /// Writes a file in the working directory.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.work_dir().join(name);
        std::fs::write(&path, contents).expect("write file");
        path
    }

    /// `wharf login --url URL --token-file <the server's admin-token>`.
    pub fn login(&self, server: &Server) -> Run {
        let token_file = server.admin_token_file();
        self.run(&[
            "login",
            "--url",
            &server.url,
            "--token-file",
            token_file.to_str().expect("utf-8 path"),
        ])
    }

    /// `wharf fsck --data-dir DATA_DIR` finds nothing wrong.
    #[track_caller]
    pub fn assert_fsck_clean(&self, data_dir: &Path) {
        let fsck = self
            .run(&["fsck", "--data-dir", data_dir.to_str().expect("utf-8 path")])
            .success();
        assert!(fsck.stdout.contains("No problems found"), "{fsck:#?}");
    }

    /// Runs `wharf ARGS` with stdin at /dev/null (not a terminal).
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_inner(args, None)
    }

    /// Runs `wharf ARGS` with `input` on stdin (a pipe, not a terminal).
    pub fn run_with_stdin(&self, args: &[&str], input: &str) -> Run {
        self.run_inner(args, Some(input))
    }

    /// A command in this user's environment: for `wharf` or for tools like git.
    pub fn command(&self, program: &str) -> Command {
        let mut command = match &self.namespace {
            Some(namespace) => {
                let mut command = Command::new("nsenter");
                command
                    .arg(format!("--net={}", namespace.display()))
                    .args(["--", program]);
                command
            }
            None => Command::new(program),
        };
        clean_wharf_env(&mut command);
        command
            .env("HOME", self.home.path())
            .env("WHARF_CONFIG_DIR", self.config_dir())
            .env("NO_COLOR", "1")
            // git must not find a checkout above the working dir, nor read the machine's config.
            .env("GIT_CEILING_DIRECTORIES", self.home.path())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .current_dir(self.work_dir());
        for (key, value) in &self.env {
            command.env(key, value);
        }
        command
    }

    fn run_inner(&self, args: &[&str], input: Option<&str>) -> Run {
        let mut command = self.command(WHARF.as_str());
        command.args(args);
        run_to_end(command, args, input, DEADLINE)
    }

    /// Runs `git ARGS` as this user (no terminal to prompt at), for up to `within`.
    pub fn git(&self, args: &[&str], within: Duration) -> Run {
        self.git_with(args, &[], within)
    }

    /// [`Cli::git`] with more environment variables.
    pub fn git_with(&self, args: &[&str], env: &[(&str, &str)], within: Duration) -> Run {
        let mut command = self.command("git");
        command.envs(env.iter().copied());
        command
            .args(args)
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_AUTHOR_NAME", "Test User")
            .env("GIT_AUTHOR_EMAIL", "test@example.com")
            .env("GIT_COMMITTER_NAME", "Test User")
            .env("GIT_COMMITTER_EMAIL", "test@example.com");
        run_to_end(command, args, None, within)
    }
}

/// Runs `command` to its end with `input` on stdin (else /dev/null); kills it and panics if it
/// has not finished `within`.
pub fn run_to_end(
    mut command: Command,
    args: &[&str],
    input: Option<&str>,
    within: Duration,
) -> Run {
    command
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let program = command.get_program().to_string_lossy().into_owned();
    let mut child = command.spawn().expect("run the command");
    if let Some(input) = input {
        let mut stdin = child.stdin.take().expect("piped stdin");
        stdin.write_all(input.as_bytes()).expect("write stdin");
    }
    let pid = child.id();
    let (done_tx, done) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done_tx.send(child.wait_with_output());
    });
    let output = match done.recv_timeout(within) {
        Ok(output) => output.expect("wait for the command"),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!(
                "`{program} {}` did not finish within {within:?}",
                args.join(" ")
            );
        }
    };
    Run {
        args: args.iter().map(|a| a.to_string()).collect(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        code: output.status.code(),
    }
}

/// Snapshots `$text` (usually a [`Run::transcript`]) as `$name`, with [`filters`] applied.
#[macro_export]
macro_rules! assert_cli_snapshot {
    ($name:expr, $text:expr $(,)?) => {
        insta::with_settings!({filters => $crate::cli::filters()}, {
            insta::assert_snapshot!($name, $text);
        })
    };
}

/// Replaces what changes from run to run (ports, ids, times, temp paths) in text people read,
/// for snapshots.
pub fn filters() -> Vec<(&'static str, &'static str)> {
    vec![
        (
            r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?",
            "[TIME]",
        ),
        (
            r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
            "[UUID]",
        ),
        (r"127\.0\.0\.1:\d+", "127.0.0.1:[PORT]"),
        (r"\.localhost:\d+/", ".localhost:[ROUTER]/"),
        (r"/tmp/[^\s)]+", "[TEMP]"),
    ]
}

/// A long-running foreground command (`wharf up`) whose stderr is read line by line, killed
/// (and waited for) if the test ends while it still runs.
pub struct Foreground {
    pub child: Child,
    lines: Receiver<String>,
    /// Every line read so far.
    pub seen: Vec<String>,
}

impl Foreground {
    /// Spawns `command` with stderr piped and stdin and stdout at /dev/null.
    pub fn spawn(mut command: Command) -> Foreground {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the command");
        let (tx, lines) = mpsc::channel();
        let stderr = child.stderr.take().expect("piped stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Foreground {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The next line containing `needle`, within `within`; panics with everything said so far
    /// if none comes.
    #[track_caller]
    pub fn wait_for(&mut self, needle: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            match self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!("`{needle}` never came; it said:\n{}", self.seen.join("\n")),
            }
        }
    }

    /// Sends `signal` (e.g. `-INT`) and waits up to `within` for the exit status.
    #[track_caller]
    pub fn stop_with(&mut self, signal: &str, within: Duration) -> ExitStatus {
        send_signal(self.child.id(), signal);
        wait_until(within, "the command to exit", || {
            self.child
                .try_wait()
                .map_err(|e| e.to_string())?
                .ok_or_else(|| "still running".to_owned())
        })
    }
}

impl Drop for Foreground {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// GET `path` of `host` through the router at `port` on 127.0.0.1: (status, body).
pub fn http_get(port: u16, host: &str, path: &str) -> Result<(u16, String), String> {
    use std::io::Read as _;
    let mut stream =
        std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| e.to_string())?;
    let (head, body) = response.split_once("\r\n\r\n").ok_or(response.clone())?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or(response.clone())?;
    Ok((status, body.to_owned()))
}

/// The body of `GET /` of `host` through the router at `port`, if it answers 200; else what it
/// answered (or why it didn't).
pub fn get_page(port: u16, host: &str) -> Result<String, String> {
    match http_get(port, host, "/")? {
        (200, body) => Ok(body),
        (status, body) => Err(format!("{status}: {body}")),
    }
}

/// The pids in /proc now.
pub fn pids() -> impl Iterator<Item = u32> {
    std::fs::read_dir("/proc")
        .expect("read /proc")
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
}

/// The router's port in `wharf up`'s "is up at http://<app>.localhost:<port>/" line.
#[track_caller]
pub fn port_in_url(line: &str) -> u16 {
    line.split("localhost:")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("a port in {line}"))
}

/// The runtime cache every test server shares (downloads are unpacked there once, renamed into
/// place, so servers running at once never see half of one).
pub fn runtime_cache() -> PathBuf {
    crate::target_tmp().join("runtimes")
}
