//! `wharf server`: runs the API and the router in the foreground until SIGINT or SIGTERM, then
//! lets in-flight requests finish and exits 0.

use std::path::PathBuf;

use anyhow::Context as _;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

use wharf_image::archive::Limits;
use wharf_sandbox::SandboxMode;
use wharf_server::{AdminToken, BuildSettings, ServerConfig};

use crate::cli::ServerArgs;

/// Tells the operator something on stderr. A closed stderr is not a reason to stop (nor to
/// panic, as `eprintln!` would): the server goes on.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// Root's default data directory. Apps run as their own users, who must pass through every
/// directory above their files; root's home does not let them, `/var/lib` does (Docker and
/// Dokku keep theirs there too).
pub const ROOT_DATA_DIR: &str = "/var/lib/wharf";

/// Makes [`ROOT_DATA_DIR`] (wharf's own) one that everyone may pass through but not list, also
/// when an older wharf made it private to root as the home of the machine's app users.
fn open_root_data_dir() -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o711)
        .create(ROOT_DATA_DIR)
        .and_then(|()| {
            std::fs::set_permissions(ROOT_DATA_DIR, std::fs::Permissions::from_mode(0o711))
        })
        .with_context(|| format!("cannot make {ROOT_DATA_DIR}"))
}

/// The default data directory: [`ROOT_DATA_DIR`] for root, else `$XDG_DATA_HOME/wharf` or
/// `~/.local/share/wharf`.
pub fn default_data_dir() -> anyhow::Result<PathBuf> {
    if nix::unistd::geteuid().is_root() {
        return Ok(PathBuf::from(ROOT_DATA_DIR));
    }
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("wharf"));
    }
    let home = std::env::var_os("HOME")
        .context("HOME is not set: pass --data-dir or set WHARF_DATA_DIR")?;
    Ok(PathBuf::from(home).join(".local/share/wharf"))
}

/// Logs to stderr, at `WHARF_LOG` or else `default` (a `tracing` filter).
pub fn init_tracing(default: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("WHARF_LOG").unwrap_or_else(|_| EnvFilter::new(default)),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        // A log line that can't be written (stderr closed) must not become a panic that stops
        // the server; tracing's own report of it would go to the same closed stderr.
        .log_internal_errors(false)
        .init();
}

pub async fn run(args: ServerArgs) -> anyhow::Result<()> {
    init_tracing("info");
    let data_dir = match args.data_dir.clone() {
        Some(dir) => dir,
        None => default_data_dir()?,
    };
    let (args_tls, args_rendezvous) = (args.tls_addr, args.rendezvous_addr);
    let args_router_tls = args.router_tls_addr;
    let mut config = config(args, data_dir)?;
    // Before a port is opened or a file made: a sandbox that can't work stops us here.
    let settled = settle_sandbox(&mut config).await?;
    say!("{}", settled.sandbox);
    say!("{}", settled.stack);
    let listener = TcpListener::bind(config.api_addr).await.with_context(|| {
        format!(
            "cannot listen on {} (set WHARF_API_ADDR to use another address)",
            config.api_addr
        )
    })?;
    let router_listener = TcpListener::bind(config.router_addr)
        .await
        .with_context(|| {
            format!(
                "the router cannot listen on {} (set WHARF_ROUTER_ADDR to use another address)",
                config.router_addr
            )
        })?;
    let router_tls_listener = match args_router_tls {
        Some(addr) => Some(TcpListener::bind(addr).await.with_context(|| {
            format!("the router cannot listen on {addr} for HTTPS (set WHARF_ROUTER_TLS_ADDR to use another address)")
        })?),
        None => None,
    };
    let tls_listener = match args_tls {
        Some(addr) => Some(TcpListener::bind(addr).await.with_context(|| {
            format!("cannot listen on {addr} for TLS (set WHARF_TLS_ADDR to use another address)")
        })?),
        None => None,
    };
    let rendezvous_listener = match args_rendezvous {
        Some(addr) => Some(TcpListener::bind(addr).await.with_context(|| {
            format!("cannot listen on {addr} for rendezvous (set WHARF_RENDEZVOUS_ADDR to use another address)")
        })?),
        None => None,
    };
    // With port 0 the OS picks the port; links and messages must show the real one.
    config.api_addr = listener
        .local_addr()
        .context("cannot read the API's address")?;
    config.router_addr = router_listener
        .local_addr()
        .context("cannot read the router's address")?;
    let api_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", config.api_addr));
    let (state, admin) = wharf_server::prepare(&config).await?;
    match admin {
        AdminToken::Generated(path) => {
            say!(
                "Generated an admin token and wrote it to {} (readable by you only).",
                path.display()
            );
            say!(
                "Log in with:  wharf login --url {api_url} --token-file {}",
                path.display()
            );
        }
        AdminToken::FromEnvironment => say!("Accepting WHARF_ADMIN_TOKEN as the admin token."),
        AdminToken::Existing => {}
    }
    // Listen for signals before saying we listen: a SIGTERM sent as soon as the line appears
    // must stop the server gracefully, not kill it.
    let signals = Signals::new().context("cannot listen for SIGINT and SIGTERM")?;
    say!(
        "wharf API listening on {api_url} (data in {})",
        config.data_dir.display()
    );
    if let Some(listener) = &tls_listener {
        say!(
            "wharf API listening on https://{} (TLS; trust {}, which `wharf tls ca` prints)",
            listener
                .local_addr()
                .context("cannot read the TLS address")?,
            state.tls.ca_path.display()
        );
    }
    if let Some(listener) = &rendezvous_listener {
        say!(
            "wharf rendezvous listening on {} (attached `heroku run`, TLS)",
            listener
                .local_addr()
                .context("cannot read the rendezvous address")?
        );
    }
    // Before the plain router's line, which tells watchers that everything listens.
    if let Some(listener) = &router_tls_listener {
        say!(
            "wharf router listening on https://{} (apps with a certificate: `wharf certs:add`)",
            listener
                .local_addr()
                .context("cannot read the router's TLS address")?
        );
    }
    say!(
        "wharf router listening on http://{} (apps at http://<app>.{}:{})",
        config.router_addr,
        config.domain,
        config.router_addr.port()
    );
    let shutdown = CancellationToken::new();
    tokio::spawn(signals.cancel_on_first(shutdown.clone()));
    let listeners = wharf_server::Listeners {
        api: listener,
        apps: router_listener,
        apps_tls: router_tls_listener,
        tls: tls_listener,
        rendezvous: rendezvous_listener,
    };
    wharf_server::serve(listeners, state.clone(), shutdown)
        .await
        .context("the API server failed")?;
    state.store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// What the server settled on before starting: one line each, for its start-up output.
pub struct Settled {
    pub sandbox: String,
    pub stack: String,
}

/// Decides what `WHARF_SANDBOX` and `WHARF_STACK` come to on this host before anything starts,
/// and pins the supervisor's and the builds' modes to namespaces when it chose them. Returns
/// the lines that say what was chosen; a mode that can't work here is an error that says how
/// to fix it.
pub async fn settle_sandbox(config: &mut ServerConfig) -> anyhow::Result<Settled> {
    if config.data_dir.starts_with(ROOT_DATA_DIR) && nix::unistd::geteuid().is_root() {
        open_root_data_dir()?;
    }
    let isolation =
        wharf_sandbox::Isolation::resolve(config.run.sandbox, Some(&config.data_dir)).await?;
    let stack = settle_stack(config, isolation.bwrap.is_some())?;
    if isolation.bwrap.is_none() && config.default_stack != wharf_core::api::STACK {
        anyhow::bail!(
            "WHARF_STACK={} needs the sandbox (builds and apps run in the stack's images), and \
             there is none: {}; or set WHARF_STACK=wharf-1",
            config.default_stack,
            isolation.summary()
        );
    }
    if isolation.bwrap.is_some() {
        // Chosen: from now on namespaces are required, never dropped silently. (Without them,
        // `auto` stays `auto`, so each build's log says why.)
        config.run.sandbox = SandboxMode::Namespaces;
        config.build.sandbox = SandboxMode::Namespaces;
    }
    Ok(Settled {
        sandbox: isolation.summary(),
        stack,
    })
}

/// `WHARF_STACK=auto` (the default) comes to wharf's own stack, whose images are
/// self-contained, wherever the sandbox runs and the stack is made or can be; otherwise to
/// the host-bound `wharf-1`, with the reason. Returns the line that says which.
fn settle_stack(config: &mut ServerConfig, sandbox: bool) -> anyhow::Result<String> {
    let default = wharf_stack::DEFAULT_STACK;
    if config.default_stack != AUTO_STACK {
        return Ok(format!("Stack: {} (WHARF_STACK)", config.default_stack));
    }
    let made_in = |images: &std::path::Path| {
        images.join("index.json").is_file()
            && wharf_image::ImageStore::open(images).is_ok_and(|store| {
                [wharf_stack::Role::Run, wharf_stack::Role::Build]
                    .iter()
                    .all(|role| store.resolve(&role.tag(default)).is_ok())
            })
    };
    let made = made_in(&config.data_dir.join("images"))
        || config
            .stack_cache
            .as_ref()
            .is_some_and(|shared| made_in(&shared.join("images")));
    let host_bound = |why: String| {
        format!(
            "Stack: wharf-1: apps build and run on this host's /usr, and their images can't \
             run elsewhere, because {why}"
        )
    };
    let (stack, line) = if !sandbox {
        (
            wharf_core::api::STACK,
            host_bound("there is no sandbox".to_owned()),
        )
    } else if made {
        (
            default,
            format!("Stack: {default} (images that run anywhere)"),
        )
    } else {
        match wharf_stack::can_make() {
            Ok(()) => (
                default,
                format!(
                    "Stack: {default} (images that run anywhere), made from Debian packages by \
                     the first build that needs it (a few minutes, once)"
                ),
            ),
            Err(why) => (
                wharf_core::api::STACK,
                host_bound(format!("{default} can't be made here: {why}")),
            ),
        }
    };
    config.default_stack = stack.to_owned();
    Ok(line)
}

/// `WHARF_STACK`'s default: wharf's stack where it can be used, else `wharf-1`.
pub const AUTO_STACK: &str = "auto";

/// The server's configuration from its flags (and `WHARF_*` variables), with its data in
/// `data_dir`.
pub fn config(args: ServerArgs, data_dir: PathBuf) -> anyhow::Result<ServerConfig> {
    let sandbox = args
        .sandbox
        .parse::<SandboxMode>()
        .map_err(|e| anyhow::anyhow!("--sandbox/WHARF_SANDBOX: {e}"))?;
    let backend = args
        .backend
        .parse::<wharf_server::BackendKind>()
        .map_err(|e| anyhow::anyhow!("--backend/WHARF_BACKEND: {e}"))?;
    let registry = match args.registry_url.as_deref() {
        None => None,
        Some(url) => {
            let mut target = wharf_stack::push::PushTarget::parse(url)
                .map_err(|e| anyhow::anyhow!("--registry-url/WHARF_REGISTRY_URL: {e}"))?;
            target.credentials = match (args.registry_username, args.registry_password) {
                (Some(user), Some(password)) => Some((user, password)),
                (None, None) => None,
                _ => anyhow::bail!(
                    "WHARF_REGISTRY_USERNAME and WHARF_REGISTRY_PASSWORD go together: set both, \
                     or neither for a registry that takes pushes without logging in"
                ),
            };
            Some(target)
        }
    };
    Ok(ServerConfig {
        registry,
        k8s_ingress_class: args.k8s_ingress_class,
        acme: args
            .router_tls_addr
            .map(|_| wharf_server::acme::AcmeConfig {
                directory: args.acme_directory.clone(),
                directory_ca: args.acme_ca.clone(),
                contact: args.acme_email.as_ref().map(|e| format!("mailto:{e}")),
                look_every: std::time::Duration::from_secs(args.acme_look_every),
            }),
        backend,
        swarm: wharf_server::SwarmSettings {
            docker_host: args.docker_host,
            registry: args.swarm_registry,
        },
        data_dir: data_dir.clone(),
        database_url: args.database_url,
        api_addr: args.api_addr,
        router_addr: args.router_addr,
        domain: args.domain,
        admin_token: args.admin_token,
        public_url: args.public_url,
        run: wharf_run::SupervisorConfig {
            data_dir: data_dir.clone(),
            port_range: parse_port_range(&args.port_range)?,
            sandbox,
            boot_timeout: Duration::from_secs(args.boot_timeout),
            ..wharf_run::SupervisorConfig::default()
        },
        router: wharf_router::RouterConfig {
            connect_timeout: seconds("--router-connect-timeout", args.router_connect_timeout)?,
            first_byte_timeout: seconds("--router-timeout", args.router_timeout)?,
            idle_timeout: seconds("--router-idle-timeout", args.router_idle_timeout)?,
            drain_timeout: Duration::from_secs(args.drain_timeout),
            max_header_bytes: args.router_max_header_bytes.max(8192),
            ..wharf_router::RouterConfig::default()
        },
        release_timeout: seconds("--release-timeout", args.release_timeout)?,
        keep_releases: args.keep_releases,
        default_stack: args.stack.clone(),
        stack_cache: None,
        gc_interval: seconds("--gc-interval", args.gc_interval)?,
        // git's pre-receive hook runs this very binary to deploy a push.
        wharf_exe: std::env::current_exe().ok(),
        tls_addrs: args
            .tls_addr
            .into_iter()
            .chain(args.rendezvous_addr)
            .collect(),
        secret_key: args.secret_key,
        build: BuildSettings {
            timeout: Duration::from_secs(args.build_timeout),
            concurrency: args.build_concurrency,
            sandbox,
            limits: Limits {
                max_archive_bytes: args.max_source_bytes,
                max_unpacked_bytes: args.max_source_unpacked_bytes,
                max_entries: args.max_source_entries,
                max_path_len: args.max_source_path,
            },
            npm_registry: args.npm_registry.trim_end_matches('/').to_owned(),
            python_url: args.python_url.clone(),
            runtime_cache: args.runtime_cache.clone(),
        },
    })
}

/// SIGINT and SIGTERM, handled from the moment this exists (their default is to kill us).
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// Cancels `shutdown` on the first SIGINT or SIGTERM.
    async fn cancel_on_first(mut self, shutdown: CancellationToken) {
        let name = tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        };
        // Stop first, then say so: saying so can fail (stderr may be gone), stopping must not.
        shutdown.cancel();
        tracing::info!("{name}: finishing requests in flight, then stopping");
    }
}

/// `wharf serve-static`: serves `dir` on `port` until SIGINT or SIGTERM.
pub async fn serve_static(port: u16, dir: PathBuf) -> anyhow::Result<()> {
    if !dir.is_dir() {
        anyhow::bail!("{} is not a directory", dir.display());
    }
    let listener = TcpListener::bind(("0.0.0.0", port))
        .await
        .with_context(|| format!("cannot listen on port {port}"))?;
    eprintln!("Serving {} on port {port}", dir.display());
    let shutdown = CancellationToken::new();
    tokio::spawn(Signals::new()?.cancel_on_first(shutdown.clone()));
    wharf_server::static_site::serve(listener, &dir, shutdown).await?;
    Ok(())
}

/// A timeout given in seconds, which must not be 0.
fn seconds(flag: &str, value: u64) -> anyhow::Result<Duration> {
    anyhow::ensure!(value > 0, "{flag} must be at least 1 second");
    Ok(Duration::from_secs(value))
}

/// `20000-29999` → 20000..=29999.
fn parse_port_range(text: &str) -> anyhow::Result<std::ops::RangeInclusive<u16>> {
    let bad = || {
        anyhow::anyhow!("--port-range/WHARF_PORT_RANGE `{text}` must look like 20000-29999 (FIRST-LAST, FIRST <= LAST, 1024 or above)")
    };
    let (first, last) = text.trim().split_once('-').ok_or_else(bad)?;
    let first: u16 = first.trim().parse().map_err(|_| bad())?;
    let last: u16 = last.trim().parse().map_err(|_| bad())?;
    if first < 1024 || first > last {
        return Err(bad());
    }
    Ok(first..=last)
}
