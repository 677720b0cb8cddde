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
    /// Starts an engine on this network namespace, without a bridge (containers use the
    /// host's network), and waits (up to a minute) until it answers.
    pub fn start() -> Dockerd {
        Dockerd::start_in(None, &["--bridge", "none"])
    }

    /// Starts an engine, in the network namespace `netns` (a name under `/run/netns`) with a
    /// host name of its own (the namespace's name) when given, with `args` added; waits (up to
    /// a minute) until it answers.
    fn start_in(netns: Option<&str>, args: &[&str]) -> Dockerd {
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
        let mut command = match netns {
            // `ip netns exec` would mount a /sys of the namespace's own, hiding the cgroups
            // dockerd needs; nsenter enters only the network namespace. Each exec keeps the pid.
            Some(netns) => {
                let mut command = Command::new("nsenter");
                command
                    .arg(format!("--net=/run/netns/{netns}"))
                    .args(["unshare", "--uts", "sh", "-c"])
                    .arg(format!("hostname {netns} && exec dockerd \"$@\""))
                    .arg("sh");
                command
            }
            None => Command::new("dockerd"),
        };
        let child = command
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
            .args(["--iptables=false", "--ip6tables=false"])
            .args(args)
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

    /// `docker login REGISTRY` as `user` with `password` (sent on stdin), which must succeed.
    pub fn login(&self, registry: &str, user: &str, password: &str) {
        use std::io::Write as _;
        let mut login = self
            .command(&["login", "--username", user, "--password-stdin", registry])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run docker login");
        login
            .stdin
            .take()
            .expect("piped")
            .write_all(password.as_bytes())
            .expect("write the password");
        let login = login.wait_with_output().expect("wait for docker login");
        assert!(login.status.success(), "docker login {registry}: {login:?}");
    }

    /// `docker ARGS` to its end, which must succeed; its stdout.
    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> String {
        let output = self.docker(args);
        assert!(
            output.status.success(),
            "docker {args:?}: {output:?}\n--- dockerd.log (end):\n{}",
            tail(&self.log(), 30)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
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

    /// Stops the engine (SIGTERM, then SIGKILL after 30 s) and waits for it; what it ran stops
    /// with it.
    pub fn stop(&mut self) {
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
        let ids: Vec<String> = if self.child.is_some() {
            let listed = self.docker(&["ps", "-aq"]);
            String::from_utf8_lossy(&listed.stdout)
                .split_whitespace()
                .map(str::to_owned)
                .collect()
        } else {
            Vec::new()
        };
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(ids.iter().map(String::as_str));
            let _ = self.docker(&args);
        }
        self.stop();
        // What the engine left mounted under its directories (a network namespace's nsfs),
        // so the directory can go.
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let dir = self.dir.path().to_string_lossy().into_owned();
        for target in mounts
            .lines()
            .filter_map(|line| line.split_whitespace().nth(1))
            .filter(|target| target.starts_with(&dir))
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
        {
            let _ = Command::new("umount").args(["-l", target]).status();
        }
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Whether a test can make a swarm of engines in network namespaces here (root, dockerd,
/// `ip`, `nsenter`); in CI it must.
pub fn swarm_available() -> bool {
    available() && crate::cli::network_namespaces()
}

/// A swarm of `dockerd`s, each in a network namespace of its own with its own address and host
/// name, joined by a bridge in this namespace (which has an address too: the host's, where
/// the nodes reach a wharf server). Node 0 is the manager. Engines take plain HTTP from
/// registries on the bridge's subnet. Everything (engines, namespaces, bridge) goes when dropped.
pub struct Swarm {
    /// Dropped first: the engines, workers before the manager.
    pub nodes: Vec<Dockerd>,
    /// This namespace's address on the bridge.
    pub host_addr: std::net::Ipv4Addr,
    /// The nodes' addresses, in order.
    pub node_addrs: Vec<std::net::Ipv4Addr>,
    network: SwarmNetwork,
}

/// The bridge and namespaces of a [`Swarm`], removed when dropped.
struct SwarmNetwork {
    bridge: String,
    namespaces: Vec<String>,
}

impl Drop for SwarmNetwork {
    fn drop(&mut self) {
        // The veths first (each end goes with the other), so none lingers after its namespace.
        for i in 0..self.namespaces.len() {
            let _ = Command::new("ip")
                .args(["link", "del", &format!("{}h{i}", self.bridge)])
                .status();
        }
        for namespace in &self.namespaces {
            let _ = Command::new("ip")
                .args(["netns", "del", namespace])
                .status();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .status();
    }
}

/// `ip ARGS`, which must succeed.
#[track_caller]
fn ip(args: &[&str]) {
    let output = Command::new("ip").args(args).output().expect("run ip");
    assert!(output.status.success(), "ip {args:?}: {output:?}");
}

impl Swarm {
    /// Makes the network and `nodes` engines, inits the swarm on the first (heartbeats every
    /// second, so a lost node shows soon) and joins the others as workers.
    pub fn start(nodes: usize) -> Swarm {
        let (network, subnet) = SwarmNetwork::create(nodes);
        let host_addr = std::net::Ipv4Addr::new(10, 77, subnet, 254);
        let node_addrs: Vec<std::net::Ipv4Addr> = (0..nodes)
            .map(|i| std::net::Ipv4Addr::new(10, 77, subnet, i as u8 + 1))
            .collect();
        let insecure = format!("10.77.{subnet}.0/24");
        let engines: Vec<Dockerd> = network
            .namespaces
            .iter()
            .map(|namespace| {
                Dockerd::start_in(
                    Some(namespace),
                    &["--bip", "172.31.0.1/24", "--insecure-registry", &insecure],
                )
            })
            .collect();
        let manager_addr = node_addrs[0].to_string();
        engines[0].ok(&[
            "swarm",
            "init",
            "--advertise-addr",
            &manager_addr,
            "--dispatcher-heartbeat",
            "1s",
        ]);
        let token = engines[0].ok(&["swarm", "join-token", "-q", "worker"]);
        for (engine, addr) in engines.iter().zip(&node_addrs).skip(1) {
            engine.ok(&[
                "swarm",
                "join",
                "--advertise-addr",
                &addr.to_string(),
                "--token",
                token.trim(),
                &format!("{manager_addr}:2377"),
            ]);
        }
        Swarm {
            nodes: engines,
            host_addr,
            node_addrs,
            network,
        }
    }

    /// The manager's engine.
    pub fn manager(&self) -> &Dockerd {
        &self.nodes[0]
    }

    /// The node's host name (its namespace's name), by index.
    pub fn node_name(&self, index: usize) -> &str {
        &self.network.namespaces[index]
    }

    /// Stops node `index`'s engine (SIGTERM: it stops its containers and exits), as when a
    /// machine goes down; waits until it has.
    pub fn stop_engine(&mut self, index: usize) {
        self.nodes[index].stop();
    }
}

impl Drop for Swarm {
    fn drop(&mut self) {
        // Services first, so no task is rescheduled while the nodes go.
        let services = self.manager().docker(&["service", "ls", "-q"]);
        for id in String::from_utf8_lossy(&services.stdout).split_whitespace() {
            let _ = self.manager().docker(&["service", "rm", id]);
        }
        for node in self.nodes.iter().rev() {
            let _ = node.docker(&["swarm", "leave", "--force"]);
        }
        // Workers' engines stop before the manager's (fields and elements drop in order).
        while let Some(node) = self.nodes.pop() {
            drop(node);
        }
    }
}

impl SwarmNetwork {
    /// A bridge `wsw<N>` with 10.77.<N>.254/24, and `nodes` namespaces `wsw<N>-<i>` with a veth
    /// each (10.77.<N>.<i+1>), N picked free under a lock, so tests running at once never share.
    fn create(nodes: usize) -> (SwarmNetwork, u8) {
        let lock_path = crate::target_tmp().join("swarm-subnets.lock");
        std::fs::create_dir_all(lock_path.parent().unwrap()).unwrap();
        let lock = std::fs::File::create(&lock_path).unwrap();
        let _held = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| e)
            .expect("lock the swarm subnets");
        let links = Command::new("ip")
            .args(["-o", "link", "show"])
            .output()
            .unwrap();
        let links = String::from_utf8_lossy(&links.stdout).into_owned();
        let subnet = (0..=250u8)
            // Neither its bridge nor a veth of it left (a veth outlives its namespace a while).
            .find(|n| {
                !links.contains(&format!(": wsw{n}:")) && !links.contains(&format!(": wsw{n}h"))
            })
            .expect("a free swarm subnet");
        let bridge = format!("wsw{subnet}");
        ip(&["link", "add", &bridge, "type", "bridge"]);
        let mut network = SwarmNetwork {
            bridge: bridge.clone(),
            namespaces: Vec::new(),
        };
        ip(&[
            "addr",
            "add",
            &format!("10.77.{subnet}.254/24"),
            "dev",
            &bridge,
        ]);
        ip(&["link", "set", &bridge, "up"]);
        for i in 0..nodes {
            let namespace = format!("wsw{subnet}-{i}");
            ip(&["netns", "add", &namespace]);
            network.namespaces.push(namespace.clone());
            let outside = format!("wsw{subnet}h{i}");
            ip(&[
                "link", "add", &outside, "type", "veth", "peer", "name", "eth0", "netns",
                &namespace,
            ]);
            ip(&["link", "set", &outside, "master", &bridge, "up"]);
            let inside = |args: &[&str]| {
                let mut all = vec!["-n", namespace.as_str()];
                all.extend_from_slice(args);
                ip(&all);
            };
            inside(&[
                "addr",
                "add",
                &format!("10.77.{subnet}.{}/24", i + 1),
                "dev",
                "eth0",
            ]);
            inside(&["link", "set", "eth0", "up"]);
            inside(&["link", "set", "lo", "up"]);
        }
        (network, subnet)
    }
}
