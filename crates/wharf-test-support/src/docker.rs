//! A private Docker engine per test: `dockerd` (Debian's `docker.io`) with its own data root,
//! exec root, socket and containerd, so tests running at once never share one, and the host's
//! own engine (if any) is left alone. No bridge and no iptables rules: containers a test runs
//! use the host's network (`--network host`). Stopped (SIGTERM, then SIGKILL) and removed when
//! dropped, even if the test panics.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// Whether a test can start a Docker engine here: `dockerd` installed, and root. In CI both
/// must hold (`scripts/setup` installs `docker.io`, and CI runs as root).
pub fn available() -> bool {
    let installed = ["/usr/sbin/dockerd", "/usr/bin/dockerd"]
        .iter()
        .any(|p| Path::new(p).exists());
    let root = nix::unistd::geteuid().is_root();
    if !(installed && root) {
        assert!(
            std::env::var_os("CI").is_none() || !root,
            "dockerd is needed (scripts/setup installs docker.io)"
        );
        eprintln!("note: dockerd is not installed or this is not root; skipped");
    }
    installed && root
}

/// A running `dockerd` of a test's own.
pub struct Dockerd {
    child: Option<Child>,
    /// `unix://…`: what `DOCKER_HOST` is set to for [`Dockerd::docker`].
    pub host: String,
    dir: tempfile::TempDir,
}

impl Dockerd {
    /// Starts an engine and waits (up to a minute) until it answers.
    pub fn start() -> Dockerd {
        // Short paths: the sockets under them must fit in a socket address (108 bytes).
        let dir = tempfile::Builder::new()
            .prefix("wd")
            .tempdir_in("/tmp")
            .expect("temp dir");
        let socket = dir.path().join("d.sock");
        let log = std::fs::File::create(dir.path().join("dockerd.log")).expect("dockerd log");
        let namespace = format!(
            "wharf-test-{}",
            dir.path().file_name().unwrap().to_string_lossy()
        );
        let child = Command::new("dockerd")
            .arg("--data-root")
            .arg(dir.path().join("root"))
            .arg("--exec-root")
            .arg(dir.path().join("x"))
            .arg("--pidfile")
            .arg(dir.path().join("dockerd.pid"))
            .arg("--host")
            .arg(format!("unix://{}", socket.display()))
            .args(["--containerd-namespace", &namespace])
            .args(["--containerd-plugins-namespace", &format!("{namespace}-p")])
            .args(["--bridge", "none", "--iptables=false", "--ip6tables=false"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dockerd log"))
            .stderr(log)
            .spawn()
            .expect("start dockerd");
        let engine = Dockerd {
            child: Some(child),
            host: format!("unix://{}", socket.display()),
            dir,
        };
        crate::wait_until(Duration::from_secs(60), "dockerd to answer", || {
            let version = engine.docker(&["version", "--format", "{{.Server.Version}}"]);
            if version.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "{}\n--- dockerd.log:\n{}",
                    String::from_utf8_lossy(&version.stderr),
                    engine.log()
                ))
            }
        });
        engine
    }

    /// `docker ARGS` against this engine, with a client configuration of its own (logins).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("docker");
        command
            .env("DOCKER_HOST", &self.host)
            .env("DOCKER_CONFIG", self.config_dir())
            .env_remove("DOCKER_CONTEXT")
            .args(args)
            .stdin(Stdio::null());
        command
    }

    /// Runs `docker ARGS` to its end.
    pub fn docker(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run docker")
    }

    fn config_dir(&self) -> PathBuf {
        self.dir.path().join("client")
    }

    /// What the engine logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default()
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        // Containers first, so their mounts and shims go with them.
        let listed = self.docker(&["ps", "-aq"]);
        let ids: Vec<String> = String::from_utf8_lossy(&listed.stdout)
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(ids.iter().map(String::as_str));
            let _ = self.docker(&args);
        }
        if let Some(mut child) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while !matches!(child.try_wait(), Ok(Some(_))) {
                if std::time::Instant::now() >= deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}
