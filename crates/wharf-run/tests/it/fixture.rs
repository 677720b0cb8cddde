//! A data directory, an image store with a tiny app, a supervisor, and a sink that records.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio_util::sync::CancellationToken;
use wharf_image::{Digest, ImageSpec, ImageStore, LayerSpec, Select};
use wharf_run::{
    DesiredApp, InstanceStatus, LogSink, ProcessSpec, ReleaseSpec, SandboxMode, Stream, Supervisor,
    SupervisorConfig,
};

/// Each test gets its own 30 ports (15 per supervisor, two supervisors at most), so tests running
/// side by side in separate processes never hand out the same port. The block comes from the
/// test's name (the test thread is named after it); the salt makes today's tests' blocks
/// distinct — `tests_get_distinct_port_blocks` fails when a new test collides, and changing the
/// salt fixes it.
static NEXT_PORTS: AtomicU16 = AtomicU16::new(0);
const PORT_SALT: &str = "100";

pub fn port_block(test: &str) -> u16 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in test.bytes().chain(PORT_SALT.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash % 300) as u16
}

pub fn port_range() -> std::ops::RangeInclusive<u16> {
    let test = std::thread::current()
        .name()
        .unwrap_or("unnamed")
        .to_owned();
    let n = NEXT_PORTS.fetch_add(1, Ordering::SeqCst) % 2;
    let start = 20000 + port_block(&test) * 30 + n * 15;
    start..=start + 14
}

#[derive(Default)]
pub struct Sink {
    pub events: Mutex<Vec<(String, String)>>,
    pub lines: Mutex<Vec<(String, String)>>,
    pub line_count: AtomicUsize,
    /// Keep lines (off for floods).
    pub keep_lines: bool,
}

impl Sink {
    pub fn new() -> Arc<Sink> {
        Arc::new(Sink {
            keep_lines: true,
            ..Sink::default()
        })
    }
    pub fn counting() -> Arc<Sink> {
        Arc::new(Sink::default())
    }
    pub fn events(&self) -> Vec<(String, String)> {
        self.events.lock().unwrap().clone()
    }
    pub fn has_event(&self, process: &str, text: &str) -> bool {
        self.events().iter().any(|(p, t)| p == process && t == text)
    }
    pub fn lines_of(&self, process: &str) -> Vec<String> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p == process)
            .map(|(_, t)| t.clone())
            .collect()
    }
}

impl LogSink for Sink {
    fn line(&self, process: &str, _: Stream, text: &str) {
        self.line_count.fetch_add(1, Ordering::SeqCst);
        if self.keep_lines {
            self.lines
                .lock()
                .unwrap()
                .push((process.to_owned(), text.to_owned()));
        }
    }
    fn event(&self, process: &str, text: &str) {
        self.events
            .lock()
            .unwrap()
            .push((process.to_owned(), text.to_owned()));
    }
}

pub struct Fixture {
    pub _dir: tempfile::TempDir,

    pub image: Digest,
    /// A directory the apps may write to (named in their env as `OUT`), for the test to read.
    pub out: PathBuf,
    pub sup: Supervisor,
    pub config: SupervisorConfig,
}

pub fn config(data_dir: &Path, sandbox: SandboxMode) -> SupervisorConfig {
    SupervisorConfig {
        data_dir: data_dir.to_path_buf(),
        port_range: port_range(),
        sandbox,
        backoff_base: Duration::from_millis(100),
        backoff_max: Duration::from_secs(2),
        healthy_reset: Duration::from_secs(60),
        boot_timeout: Duration::from_secs(10),
        ..SupervisorConfig::default()
    }
}

impl Fixture {
    pub async fn new(sandbox: SandboxMode) -> Fixture {
        Fixture::with(sandbox, |_| {}).await
    }

    pub async fn with(sandbox: SandboxMode, tweak: impl FnOnce(&mut SupervisorConfig)) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        // Apps may run as an unprivileged user, who must be able to reach the data directory.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let data = dir.path().join("data");
        let out = dir.path().join("out");
        std::fs::create_dir_all(&out).unwrap();
        std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o777)).unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("hello.txt"), "hello from the app\n").unwrap();
        let images = ImageStore::open(&data.join("images")).unwrap();
        let built = images
            .build_image(&ImageSpec {
                layers: vec![LayerSpec {
                    root: src,
                    prefix: "app".to_owned(),
                    select: Select::All,
                }],
                working_dir: "/app".to_owned(),
                env: BTreeMap::from([("APP_FILE".to_owned(), "/app/hello.txt".to_owned())]),
                ..ImageSpec::default()
            })
            .unwrap();
        let mut config = config(&data, sandbox);
        tweak(&mut config);
        let sup = Supervisor::start(config.clone(), images.clone(), CancellationToken::new())
            .await
            .unwrap();
        Fixture {
            _dir: dir,

            image: built.manifest,
            out,
            sup,
            config,
        }
    }

    pub fn release(&self, version: u32) -> ReleaseSpec {
        ReleaseSpec {
            version,
            image: self.image.to_string(),
            env: BTreeMap::from([
                ("OUT".to_owned(), self.out.to_string_lossy().into_owned()),
                ("GREETING".to_owned(), "hi".to_owned()),
            ]),
            image_env: BTreeMap::from([("APP_FILE".to_owned(), "/app/hello.txt".to_owned())]),
            run_image: None,
            web_health: None,
        }
    }

    pub fn desired(&self, version: u32, processes: Vec<ProcessSpec>) -> DesiredApp {
        DesiredApp {
            app_id: "app1".to_owned(),
            app_name: "app-one".to_owned(),
            release: self.release(version),
            processes,
        }
    }

    pub fn status(&self) -> Vec<InstanceStatus> {
        self.sup.status("app1")
    }

    /// Polls `f` until it holds, failing the test after `secs`.
    pub async fn until(&self, what: &str, secs: u64, mut f: impl FnMut(&Fixture) -> bool) {
        wharf_test_support::wait_until_async(Duration::from_secs(secs), what, || {
            let status = (!f(self)).then(|| format!("status: {:#?}", self.status()));
            async move { status.map_or(Ok(()), Err) }
        })
        .await;
    }

    pub fn names_in(&self, state: &str) -> Vec<String> {
        self.status()
            .into_iter()
            .filter(|s| s.state.as_str() == state)
            .map(|s| s.name)
            .collect()
    }

    pub fn read_out(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.out.join(name)).ok()
    }
}

impl Drop for Fixture {
    /// Kills every process group still recorded, even when the test failed half-way.
    fn drop(&mut self) {
        kill_recorded(&self.config.data_dir.join("run"));
    }
}

pub fn kill_recorded(run: &Path) {
    let Ok(apps) = std::fs::read_dir(run) else {
        return;
    };
    for app in apps.flatten() {
        let Ok(instances) = std::fs::read_dir(app.path()) else {
            continue;
        };
        for instance in instances.flatten() {
            if let Ok(text) = std::fs::read_to_string(instance.path().join("pid")) {
                if let Some(pgid) = text.split_whitespace().next().and_then(|p| p.parse().ok()) {
                    if pgid > 1 {
                        let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
                    }
                }
            }
        }
    }
}

/// Whether `pid` runs (a zombie does not).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rfind(')')
                .and_then(|i| stat[i + 1..].split_whitespace().next().map(str::to_owned));
            !matches!(state.as_deref(), Some("Z") | Some("X"))
        }
        Err(_) => false,
    }
}

pub fn web(quantity: u32) -> ProcessSpec {
    ProcessSpec::new(
        "web",
        quantity,
        "python3 -m http.server $PORT --bind 127.0.0.1",
    )
}

pub fn worker(quantity: u32) -> ProcessSpec {
    ProcessSpec::new("worker", quantity, "sh -c 'while true; do sleep 1; done'")
}
