//! A temp dir holding a source tree, a per-app cache and per-build scratch dirs, and helpers to
//! build it and read the log.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use wharf_build::{BuildError, BuildOutput, BuildRequest, SandboxMode};

/// No test build may take longer than this; it fails instead of hanging.
pub const TEST_LIMIT: Duration = Duration::from_secs(300);

pub struct Fixture {
    pub tmp: tempfile::TempDir,
    pub source: PathBuf,
    pub cache: PathBuf,
    pub mode: SandboxMode,
    builds: AtomicUsize,
}

/// The result of a finished build and everything it logged.
pub struct Built {
    pub result: Result<BuildOutput, BuildError>,
    pub log: Vec<String>,
}

impl Built {
    #[track_caller]
    pub fn ok(self) -> (BuildOutput, String) {
        let log = self.log.concat();
        match self.result {
            Ok(out) => (out, log),
            Err(e) => panic!("build failed: {e}\n--- log ---\n{log}"),
        }
    }

    #[track_caller]
    pub fn err(self) -> (BuildError, String) {
        let log = self.log.concat();
        match self.result {
            Ok(out) => panic!("build succeeded: {out:?}\n--- log ---\n{log}"),
            Err(e) => (e, log),
        }
    }
}

impl Fixture {
    pub fn new(mode: SandboxMode) -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let source = tmp.path().join("source");
        let cache = tmp.path().join("cache").join("app");
        std::fs::create_dir_all(&source).unwrap();
        Fixture {
            tmp,
            source,
            cache,
            mode,
            builds: AtomicUsize::new(0),
        }
    }

    pub fn file(&self, rel: &str, content: &str) -> &Self {
        let path = self.source.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
        self
    }

    pub fn script(&self, rel: &str, content: &str) -> &Self {
        self.file(rel, content);
        let path = self.source.join(rel);
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
        self
    }

    /// A request for a fresh scratch dir (each build gets its own, like on the server).
    pub fn request(&self) -> BuildRequest {
        let n = self.builds.fetch_add(1, Ordering::SeqCst);
        let mut req = BuildRequest::new(
            self.source.clone(),
            self.tmp.path().join(format!("work-{n}")),
            self.cache.clone(),
        );
        req.sandbox = self.mode;
        req.timeout = TEST_LIMIT;
        // Node.js and npm downloaded once for every test on this machine.
        req.runtimes.cache_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("runtimes");
        req
    }

    pub async fn build(&self) -> Built {
        self.build_with(self.request()).await
    }

    pub async fn build_with(&self, req: BuildRequest) -> Built {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let result = tokio::time::timeout(
            TEST_LIMIT,
            wharf_build::build(req, tx, CancellationToken::new()),
        )
        .await
        .expect("the build did not finish within the test limit");
        let mut log = Vec::new();
        while let Ok(line) = rx.try_recv() {
            log.push(line);
        }
        Built { result, log }
    }
}

/// The sandbox modes to run a test in: `none`, and `namespaces` where bubblewrap works (set
/// WHARF_TEST_REQUIRE_NAMESPACES=1 to make its absence a failure, as CI does).
pub fn modes() -> Vec<SandboxMode> {
    let mut modes = vec![SandboxMode::None];
    if namespaces_available() {
        modes.push(SandboxMode::Namespaces);
    }
    modes
}

pub fn namespaces_available() -> bool {
    let ok = std::process::Command::new("bwrap")
        .args([
            "--ro-bind",
            "/",
            "/",
            "--unshare-pid",
            "--proc",
            "/proc",
            "--",
            "true",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("WHARF_TEST_REQUIRE_NAMESPACES").is_none(),
            "bubblewrap does not work here but WHARF_TEST_REQUIRE_NAMESPACES is set"
        );
        eprintln!("note: bubblewrap is not available; skipping the namespaces sandbox cases");
    }
    ok
}

/// Runs `program args` with `PATH=<app>/<path_dir>:<system>` in `dir`, returning stdout.
#[track_caller]
pub fn run_in(dir: &Path, path_dir: &str, program: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(program)
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env(
            "PATH",
            format!(
                "{}:{}",
                dir.join(path_dir).display(),
                wharf_build::SYSTEM_PATH
            ),
        )
        .output()
        .unwrap_or_else(|e| panic!("could not run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A name no other process on the machine has, to find a test's processes in /proc.
pub fn unique_token(what: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "wharf-test-{what}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// Live (non-zombie) processes whose command line contains `token`.
pub fn processes_with(token: &str) -> Vec<i32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&cmdline).contains(token) && !is_gone(pid) {
            found.push(pid);
        }
    }
    found
}

/// Whether `pid` no longer runs (absent, or a zombie waiting to be reaped).
pub fn is_gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => {
            let state = stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .next();
            matches!(state, Some("Z") | Some("X"))
        }
    }
}

/// Waits until `condition` holds, failing the test after [`TEST_LIMIT`].
pub async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let held = || {
        std::future::ready(
            condition()
                .then_some(())
                .ok_or_else(|| "not yet".to_owned()),
        )
    };
    wharf_test_support::wait_until_async(TEST_LIMIT, what, held).await;
}

/// Receives log lines until one contains `needle`, returning all lines so far.
pub async fn wait_for_line(rx: &mut mpsc::UnboundedReceiver<String>, needle: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let found = tokio::time::timeout(TEST_LIMIT, async {
        while let Some(line) = rx.recv().await {
            let hit = line.contains(needle);
            lines.push(line);
            if hit {
                return true;
            }
        }
        false
    })
    .await;
    assert!(
        matches!(found, Ok(true)),
        "no log line containing {needle:?}; got {lines:?}"
    );
    lines
}
