//! wharf's server: the HTTP API and the wiring between wharf's parts.
//!
//! Layout: [`ServerConfig`] is read once by the binary and handed in; [`prepare`] opens the
//! data directory and the database and makes sure an admin token exists; [`serve`] runs the API
//! on a listener, and the router on another, until the shutdown token is cancelled, letting
//! in-flight requests finish. A handler that changes state stores the change (`wharf-store`),
//! then tells the control plane (`wharf-control`) what changed, in one call
//! (`state.control.after(Change::…)`), which does all that follows (a release phase, a
//! converge, the router's hostname table).
//! `routes/` holds one module per API resource; each handler carries its OpenAPI description,
//! so the document at `/openapi.json` is generated from the code that serves it.
//!
//! This crate is the only one that knows axum. It prints nothing: what the operator must be told
//! (where the admin token went) is returned to the binary.

mod auth;
mod error;
mod extract;
mod git;
mod names;
mod openapi;
mod rendezvous;
mod routes;
mod signing;
pub mod static_site;
pub mod tls;

use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::http::HeaderName;
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use wharf_store::Store;

pub use error::ApiError;
pub use openapi::openapi_document;
pub use wharf_control::acme;
pub use wharf_control::{
    BuildSettings, DEFAULT_GC_INTERVAL, DEFAULT_KEEP_RELEASES, DEFAULT_RELEASE_TIMEOUT,
};

/// What runs the apps' processes: the server holds it as a `dyn Backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendKind {
    /// This machine's supervisor (`wharf-run`).
    #[default]
    Local,
    /// A Docker Swarm, through its manager's Engine API (`wharf-swarm`).
    Swarm,
    /// A Kubernetes cluster, from kubeconfig or the in-cluster service account (`wharf-k8s`).
    Kubernetes,
}

impl std::str::FromStr for BackendKind {
    type Err = String;

    fn from_str(text: &str) -> Result<BackendKind, String> {
        match text {
            "local" => Ok(BackendKind::Local),
            "swarm" => Ok(BackendKind::Swarm),
            "kubernetes" => Ok(BackendKind::Kubernetes),
            other => Err(format!(
                "unknown backend `{}`: the backends are `local` (this machine's supervisor), \
                 `swarm` (a Docker Swarm, through the manager DOCKER_HOST names) and \
                 `kubernetes` (the cluster kubeconfig or the in-cluster service account names)",
                wharf_core::name::shown(other)
            )),
        }
    }
}

/// The server's own configuration, read once (from flags and `WHARF_*` variables) by the binary.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where the SQLite database, images, releases and logs live (`WHARF_DATA_DIR`).
    pub data_dir: PathBuf,
    /// `postgres://…` to use PostgreSQL instead of `$data_dir/wharf.db` (`WHARF_DATABASE_URL`).
    pub database_url: Option<String>,
    /// Where the API listens (`WHARF_API_ADDR`).
    pub api_addr: SocketAddr,
    /// Where the router listens (`WHARF_ROUTER_ADDR`); apps' `web_url`s point here.
    pub router_addr: SocketAddr,
    /// Apps are served at `<app>.<domain>` (`WHARF_DOMAIN`).
    pub domain: String,
    /// A token to accept as the admin's, instead of generating one (`WHARF_ADMIN_TOKEN`).
    pub admin_token: Option<String>,
    /// The API's URL as clients reach it; defaults to `http://<api_addr>`.
    pub public_url: Option<String>,
    /// How builds run.
    pub build: BuildSettings,
    /// What runs the apps' processes (`WHARF_BACKEND`).
    pub backend: BackendKind,
    /// How releases run on the local backend.
    pub run: wharf_run::SupervisorConfig,
    /// Where the swarm backend finds the swarm and how its nodes reach wharf.
    pub swarm: SwarmSettings,
    /// The router's timeouts and limits.
    pub router: wharf_router::RouterConfig,
    /// A release phase running longer is stopped and its release fails (`WHARF_RELEASE_TIMEOUT`).
    pub release_timeout: std::time::Duration,
    /// Each app's newest releases whose images garbage collection keeps (`WHARF_KEEP_RELEASES`).
    pub keep_releases: u32,
    /// The stack new apps build on (`WHARF_STACK`): `wharf-1` (the host's `/usr`), one of
    /// wharf's own (made by the first build that needs it), or one in the image store.
    pub default_stack: String,
    /// An image store several data directories share the stacks wharf makes through (`wharf
    /// up`, whose every app directory is a data directory of its own): a stack made once is
    /// copied from there. `None`: each data directory makes its own.
    pub stack_cache: Option<PathBuf>,
    /// How often garbage collection runs on its own (`WHARF_GC_INTERVAL`).
    pub gc_interval: std::time::Duration,
    /// The `wharf` executable git's pre-receive hook runs to deploy a push (the binary passes
    /// itself); `None` refuses pushes with that reason.
    pub wharf_exe: Option<PathBuf>,
    /// Where the TLS and rendezvous listeners listen: their addresses are named in the server
    /// certificate too.
    pub tls_addrs: Vec<SocketAddr>,
    /// Another registry release images are pushed to (`WHARF_REGISTRY_URL`, with
    /// `WHARF_REGISTRY_USERNAME` and `WHARF_REGISTRY_PASSWORD`), if any.
    pub registry: Option<wharf_stack::push::PushTarget>,
    /// `WHARF_K8S_INGRESS_CLASS`: Kubernetes manifests route the app's hostnames with an
    /// Ingress of this class; without one, none.
    pub k8s_ingress_class: Option<String>,
    /// Where ACM certificates come from (`WHARF_ACME_DIRECTORY`…); `None` while the router
    /// serves no HTTPS.
    pub acme: Option<wharf_control::acme::AcmeConfig>,
    /// The key config var values are encrypted with at rest, as 64 hex digits
    /// (`WHARF_SECRET_KEY`); `None` uses (or makes) `<data dir>/secret-key`.
    pub secret_key: Option<String>,
}

/// The swarm backend's settings (`WHARF_BACKEND=swarm`).
#[derive(Debug, Clone, Default)]
pub struct SwarmSettings {
    /// The manager's Engine API (`DOCKER_HOST`; `unix:///var/run/docker.sock` when unset).
    pub docker_host: Option<String>,
    /// `host:port` where the nodes reach wharf's registry (`WHARF_SWARM_REGISTRY`); the
    /// public URL's host and port when unset.
    pub registry: Option<String>,
}

/// What links in API responses are made from.
#[derive(Debug, Clone)]
pub struct Links {
    pub domain: String,
    pub router_addr: SocketAddr,
    pub public_url: String,
}

impl Links {
    /// The app's default hostname: `<app>.<domain>`.
    pub fn hostname(&self, app: &str) -> String {
        format!("{app}.{}", self.domain)
    }

    /// Where the router serves `app`.
    pub fn web_url(&self, app: &str) -> String {
        match self.router_addr.port() {
            80 => format!("http://{}/", self.hostname(app)),
            port => format!("http://{}:{port}/", self.hostname(app)),
        }
    }

    /// Where to `git push` `app`.
    pub fn git_url(&self, app: &str) -> String {
        format!("{}/{app}.git", self.public_url.trim_end_matches('/'))
    }
}

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Store,
    pub links: Arc<Links>,
    /// Signs and checks the URLs that need no token (source blobs, build output).
    pub signer: signing::UrlSigner,
    /// The control plane: what follows every change (builds, release phases, converge, GC,
    /// stacks), over the backend.
    pub control: wharf_control::ControlPlane,
    /// Stops the backend's and stack makes' background work when the server stops.
    pub background: CancellationToken,
    /// The HTTP router in front of the apps' web instances.
    pub router: wharf_router::Router,
    /// Each app's git repository, served for `git push`.
    pub git: git::GitRepos,
    /// wharf's CA and this start's server certificate, for the TLS listener.
    pub tls: tls::Tls,
    /// Attached one-off processes waiting for their client (`heroku run`).
    pub rendezvous: rendezvous::Rendezvous,
    /// The stack new apps build on unless they say (`WHARF_STACK`).
    pub default_stack: Arc<str>,
    /// Where an orchestrator's nodes pull release images from (wharf's registry endpoint, or
    /// `WHARF_REGISTRY_URL`); `None` (with why) where the endpoint has no address nodes can use.
    pub node_images: Result<Arc<dyn wharf_core::backend::ImageSource>, Arc<str>>,
    /// What Kubernetes manifests are made with.
    pub k8s: Arc<wharf_k8s::Settings>,
}

impl AppState {
    /// `path` of the public URL, signed for `method` until `ttl` has passed: a URL that needs
    /// no token (a source blob, an output stream, a log session).
    pub(crate) fn signed_url(&self, method: &str, path: &str, ttl: std::time::Duration) -> String {
        format!(
            "{}{path}?{}",
            self.links.public_url.trim_end_matches('/'),
            self.signer.sign(method, path, ttl)
        )
    }
}

/// What [`prepare`] did about the admin token, for the binary to tell the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminToken {
    /// A new token was generated and written to this file (mode 0600).
    Generated(PathBuf),
    /// `WHARF_ADMIN_TOKEN` was registered.
    FromEnvironment,
    /// Tokens already existed; nothing was made.
    Existing,
}

/// Errors that stop the server from starting.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot use data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the admin token to {path}: {source}")]
    TokenFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] wharf_store::StoreError),
    #[error("cannot open the image store")]
    Images(#[from] wharf_image::ImageError),
    #[error("cannot open the app logs")]
    Logs(#[from] wharf_logs::LogError),
    #[error("cannot start the supervisor")]
    Run(#[from] wharf_run::RunError),
    #[error("cannot use the swarm")]
    Swarm(#[from] wharf_swarm::SwarmError),
    #[error("cannot use the Kubernetes cluster")]
    Kubernetes(#[from] wharf_k8s::cluster::ClusterError),
    #[error(transparent)]
    Control(#[from] wharf_control::StartError),
    #[error("cannot prepare {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("WHARF_SECRET_KEY must be 64 hex digits (32 bytes), e.g. from `openssl rand -hex 32`")]
    SecretKey,
    #[error("cannot set up TLS")]
    Tls(#[from] tls::TlsError),
    #[error(
        "the nodes can't pull release images from `{registry}`: set WHARF_SWARM_REGISTRY (or \
         WHARF_PUBLIC_URL) to the HOST:PORT the nodes reach wharf's API at"
    )]
    NodesCantPull { registry: String },
    #[error(
        "both WHARF_SWARM_REGISTRY and WHARF_REGISTRY_URL say where the nodes pull images from: \
         set WHARF_SWARM_REGISTRY for wharf's own registry endpoint, or WHARF_REGISTRY_URL for \
         another registry wharf pushes each release's image to, not both"
    )]
    TwoRegistries,
}

/// Where an orchestrator's nodes pull release images from: the registry `WHARF_REGISTRY_URL`
/// names (wharf pushes each image there first), else wharf's own endpoint, at
/// `WHARF_SWARM_REGISTRY` or the public URL's host and port.
fn node_images(
    config: &ServerConfig,
    images: &wharf_image::ImageStore,
    signer: &signing::UrlSigner,
) -> Result<Arc<dyn wharf_core::backend::ImageSource>, StartError> {
    Ok(match (&config.registry, &config.swarm.registry) {
        (Some(_), Some(_)) => return Err(StartError::TwoRegistries),
        (Some(target), None) => Arc::new(wharf_control::PushedImages::new(
            images.clone(),
            target.clone(),
            config.data_dir.clone(),
        )),
        (None, explicit) => {
            let address = explicit.clone().unwrap_or_else(|| {
                let public_url = config
                    .public_url
                    .clone()
                    .unwrap_or_else(|| format!("http://{}", config.api_addr));
                public_url
                    .split_once("://")
                    .map_or(public_url.as_str(), |(_, rest)| rest)
                    .split('/')
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            });
            Arc::new(routes::registry::EndpointImages::new(
                address,
                signer.clone(),
            )?)
        }
    })
}

/// Opens the data directory and the database, and makes sure someone can log in.
pub async fn prepare(config: &ServerConfig) -> Result<(AppState, AdminToken), StartError> {
    // Everyone may pass through the data dir (apps that run as an unprivileged user reach their
    // release tree and scratch through it) but not list it; what is secret inside is private.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o711)
        .create(&config.data_dir)
        .and_then(|()| {
            std::fs::set_permissions(&config.data_dir, std::fs::Permissions::from_mode(0o711))
        })
        .map_err(|source| StartError::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
    for private in ["logs", "sources", "images", "cache", "builds"] {
        let dir = config.data_dir.join(private);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .and_then(|()| std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)))
            .map_err(|source| StartError::DataDir {
                path: dir.clone(),
                source,
            })?;
    }
    if config.database_url.is_none() {
        // The database holds config vars; SQLite gives its -wal and -shm files the same mode.
        let db = config.data_dir.join("wharf.db");
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&db)
            .and_then(|_| std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o600)))
            .map_err(|source| StartError::DataDir {
                path: db.clone(),
                source,
            })?;
    }
    let store = match &config.database_url {
        Some(url) => Store::connect(url).await?,
        None => Store::open_data_dir(&config.data_dir).await?,
    };
    let store = store.with_secrets(secrets(config)?);
    // Values written before they were encrypted (an older wharf) are encrypted now.
    let sealed = store.seal_config().await?;
    if sealed > 0 {
        tracing::info!(
            values = sealed,
            "encrypted config values stored in plain text"
        );
    }
    let admin = bootstrap_admin(&store, config).await?;
    wharf_control::ControlPlane::recover(&store).await?;
    let images = wharf_image::ImageStore::open(&config.data_dir.join("images"))?;
    let key_path = config.data_dir.join("url-signing-key");
    let signer =
        signing::UrlSigner::load_or_create(&key_path).map_err(|source| StartError::File {
            path: key_path,
            source,
        })?;
    let app_logs = wharf_logs::LogStore::open(
        &config.data_dir.join("logs").join("apps"),
        wharf_logs::Retention::default(),
    )?;
    let node_image_source = node_images(config, &images, &signer);
    let background = CancellationToken::new();
    let router = wharf_router::Router::new(config.router.clone(), Some(app_logs.clone()));
    let (backend, node_image_source): (Arc<dyn wharf_core::backend::Backend>, _) =
        match config.backend {
            BackendKind::Local => {
                // Stops whatever a killed predecessor left running before anything starts.
                let supervisor = wharf_run::Supervisor::start(
                    config.run.clone(),
                    images.clone(),
                    background.clone(),
                )
                .await?;
                supervisor.set_routes(Arc::new(router.clone()));
                // Only manifests need it here: a start without it is no failure.
                let source = node_image_source.map_err(|e| Arc::<str>::from(e.to_string()));
                (Arc::new(supervisor), source)
            }
            BackendKind::Swarm => {
                let source = node_image_source?;
                let swarm = wharf_swarm::SwarmBackend::connect(wharf_swarm::SwarmConfig {
                    docker_host: config
                        .swarm
                        .docker_host
                        .clone()
                        .unwrap_or_else(|| "unix:///var/run/docker.sock".to_owned()),
                    images: source.clone(),
                    routes: Arc::new(router.clone()),
                    boot_timeout: config.run.boot_timeout,
                })
                .await?;
                (Arc::new(swarm), Ok(source))
            }
            BackendKind::Kubernetes => {
                let source = node_image_source?;
                let kube = wharf_k8s::KubeBackend::connect(wharf_k8s::KubeConfig {
                    images: source.clone(),
                    routes: Arc::new(router.clone()),
                    settings: wharf_k8s::Settings {
                        ingress_class: None,
                        boot_timeout: config.run.boot_timeout,
                        release_timeout: config.release_timeout,
                    },
                    look_every: wharf_k8s::backend::LOOK_EVERY,
                })
                .await?;
                (Arc::new(kube), Ok(source))
            }
        };
    let control = wharf_control::ControlPlane::start(
        &wharf_control::ControlConfig {
            data_dir: config.data_dir.clone(),
            build: config.build.clone(),
            release_timeout: config.release_timeout,
            keep_releases: config.keep_releases,
            gc_interval: config.gc_interval,
            domain: config.domain.clone(),
            default_stack: config.default_stack.clone(),
            stack_cache: config.stack_cache.clone(),
            registry: config.registry.clone(),
            acme: config.acme.clone(),
        },
        store.clone(),
        images,
        app_logs,
        backend,
        router.clone(),
        background.clone(),
    )
    .await?;
    let git_dir = config.data_dir.join("git");
    let git = git::GitRepos::open(
        &config.data_dir,
        config.wharf_exe.clone(),
        format!("http://{}", loopback(config.api_addr)),
        config.build.limits.max_archive_bytes,
    )
    .map_err(|source| StartError::File {
        path: git_dir,
        source,
    })?;
    let tls = tls::load_or_create(&config.data_dir, &tls_hostnames(config))?;
    let links = Links {
        domain: config.domain.clone(),
        router_addr: config.router_addr,
        public_url: config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", config.api_addr)),
    };
    let state = AppState {
        store,
        links: Arc::new(links),
        signer,
        control,
        background,
        router,
        git,
        tls,
        rendezvous: rendezvous::Rendezvous::default(),
        default_stack: Arc::from(config.default_stack.as_str()),
        node_images: node_image_source,
        k8s: Arc::new(wharf_k8s::Settings {
            ingress_class: config.k8s_ingress_class.clone(),
            boot_timeout: config.run.boot_timeout,
            release_timeout: config.release_timeout,
        }),
    };
    Ok((state, admin))
}

async fn bootstrap_admin(store: &Store, config: &ServerConfig) -> Result<AdminToken, StartError> {
    let account = store.admin_account().await?;
    if let Some(secret) = &config.admin_token {
        store
            .import_token(&account.id, "admin (WHARF_ADMIN_TOKEN)", secret)
            .await?;
        return Ok(AdminToken::FromEnvironment);
    }
    if store.count_live_tokens().await? > 0 {
        return Ok(AdminToken::Existing);
    }
    let token = store
        .create_token(&account.id, "admin (generated on first start)")
        .await?;
    let path = admin_token_path(&config.data_dir);
    write_private(&path, &format!("{}\n", token.secret)).map_err(|source| {
        StartError::TokenFile {
            path: path.clone(),
            source,
        }
    })?;
    Ok(AdminToken::Generated(path))
}

/// The key config values are encrypted with: `WHARF_SECRET_KEY`, else the data directory's
/// `secret-key` file (made on first start).
fn secrets(config: &ServerConfig) -> Result<wharf_store::Secrets, StartError> {
    let key = match &config.secret_key {
        Some(text) => hex::decode(text.trim())
            .ok()
            .and_then(|k| <[u8; 32]>::try_from(k).ok())
            .ok_or(StartError::SecretKey)?,
        None => {
            let path = config.data_dir.join("secret-key");
            signing::load_or_create_key(
                &path,
                "it encrypts the config vars in the database; restore the right one (a new key \
                 can't read them)",
            )
            .map_err(|source| StartError::File { path, source })?
        }
    };
    Ok(wharf_store::Secrets::new(&key))
}

/// `addr` as the server itself reaches it: an unspecified address (listening everywhere) is
/// reached on loopback.
fn loopback(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, addr.port()))
        }
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, addr.port()))
        }
        _ => addr,
    }
}

/// `addr` as clients reach it: its own IP, or when it listens everywhere, the host of the public
/// URL (else loopback).
fn reachable_address(addr: SocketAddr, public_url: &str) -> String {
    if !addr.ip().is_unspecified() {
        return addr.to_string();
    }
    let listening_everywhere = |host: &str| {
        host.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_unspecified())
    };
    match url_host(public_url).filter(|host| !listening_everywhere(host)) {
        Some(host) if host.contains(':') => format!("[{host}]:{}", addr.port()),
        Some(host) => format!("{host}:{}", addr.port()),
        None => loopback(addr).to_string(),
    }
}

/// The host of `url` (`http://host:port/…`), without brackets around an IPv6 address.
fn url_host(url: &str) -> Option<&str> {
    let host = url
        .split("://")
        .nth(1)
        .unwrap_or(url)
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default();
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    (!host.is_empty()).then_some(host)
}

/// The names the server certificate is for: loopback, the apps' domain (and its subdomains),
/// the API's address and the host of its public URL.
fn tls_hostnames(config: &ServerConfig) -> Vec<String> {
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
        config.domain.clone(),
        format!("*.{}", config.domain),
    ];
    for addr in std::iter::once(&config.api_addr).chain(&config.tls_addrs) {
        if !addr.ip().is_unspecified() {
            names.push(addr.ip().to_string());
        }
    }
    if let Some(host) = config.public_url.as_deref().and_then(url_host) {
        names.push(host.to_owned());
    }
    names.sort();
    names.dedup();
    names
}

/// Where the generated admin token is written.
pub fn admin_token_path(data_dir: &Path) -> PathBuf {
    data_dir.join("admin-token")
}

/// Writes `contents` to `path` readable by its owner only, atomically (temp file + rename).
pub(crate) fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    write_atomically(path, contents, 0o600)
}

/// Writes `contents` to `path` with permissions `mode`, atomically (temp file, fsync, rename).
pub(crate) fn write_atomically(path: &Path, contents: &str, mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// The API as an axum router.
pub fn router(state: AppState) -> Router {
    let request_id = HeaderName::from_static("request-id");
    let (api, _) = openapi::api_router(state.clone()).split_for_parts();
    api.fallback(routes::meta::no_route)
        .method_not_allowed_fallback(routes::meta::method_not_allowed)
        .layer(axum::middleware::from_fn(auth::check_accept))
        .layer(TraceLayer::new_for_http())
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(state)
}

/// The sockets [`serve`] answers on.
#[derive(Debug)]
pub struct Listeners {
    /// The API (plain HTTP).
    pub api: TcpListener,
    /// The router, in front of every app.
    pub apps: TcpListener,
    /// The router over TLS (`WHARF_ROUTER_TLS_ADDR`), with the apps' certificates by SNI.
    pub apps_tls: Option<TcpListener>,
    /// The API over TLS (`WHARF_TLS_ADDR`), with the certificate of [`AppState::tls`].
    pub tls: Option<TcpListener>,
    /// Heroku's rendezvous protocol for attached one-off processes (`WHARF_RENDEZVOUS_ADDR`),
    /// over TLS with the same certificate.
    pub rendezvous: Option<TcpListener>,
}

/// Serves the API and the router on `listeners` until `shutdown` is cancelled; requests in
/// flight then finish, and running builds and apps are stopped, before this returns.
pub async fn serve(
    listeners: Listeners,
    state: AppState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let Listeners {
        api,
        apps,
        apps_tls,
        tls,
        rendezvous,
    } = listeners;
    let app = router(state.clone());
    let collecting = tokio::spawn({
        let (control, shutdown) = (state.control.clone(), shutdown.clone());
        async move { control.collect_periodically(shutdown).await }
    });
    let certifying = tokio::spawn({
        let (control, shutdown) = (state.control.clone(), shutdown.clone());
        async move { control.manage_certificates(shutdown).await }
    });
    let routing = tokio::spawn({
        let router = state.router.clone();
        let shutdown = shutdown.clone();
        async move { router.serve(apps, shutdown).await }
    });
    let routing_tls = apps_tls.map(|listener| {
        let router = state.router.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move { router.serve_tls(listener, shutdown).await })
    });
    let secure = tls.map(|listener| {
        tokio::spawn(tls::serve(
            listener,
            state.tls.clone(),
            // The registry's challenge sends clients back over TLS.
            app.clone()
                .layer(axum::Extension(routes::registry::OverTls)),
            shutdown.clone(),
        ))
    });
    let attaching = match rendezvous {
        Some(listener) => {
            let address = reachable_address(listener.local_addr()?, &state.links.public_url);
            let (rendezvous, tls, shutdown) = (
                state.rendezvous.clone(),
                state.tls.clone(),
                shutdown.clone(),
            );
            Some(tokio::spawn(async move {
                rendezvous.serve(listener, address, tls, shutdown).await
            }))
        }
        None => None,
    };
    // Builds are cancelled as soon as the server begins to stop (they fail as interrupted):
    // a request waiting on one (a deploy's output, a `git push`) then ends instead of holding
    // the graceful stop for as long as the build would run.
    let stopping_builds = tokio::spawn({
        let (control, shutdown) = (state.control.clone(), shutdown.clone());
        async move {
            shutdown.cancelled().await;
            control.stop_builds().await;
        }
    });
    let served = axum::serve(api, app)
        .with_graceful_shutdown(shutdown.clone().cancelled_owned())
        .await;
    let secured = match secure {
        Some(task) => task
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(format!("the TLS task failed: {e}")))),
        None => Ok(()),
    };
    // Running builds are cancelled (they fail as interrupted) and waited for, and every app
    // process is stopped (its signal, then SIGKILL after its grace period), so nothing started
    // by the server outlives it.
    shutdown.cancel();
    if let Some(task) = attaching {
        let _ = task.await;
    }
    let _ = stopping_builds.await;
    state.control.backend().shutdown().await;
    state.background.cancel();
    let routed = match routing.await {
        Ok(result) => result,
        Err(e) => Err(std::io::Error::other(format!(
            "the router task failed: {e}"
        ))),
    };
    let routed_tls = match routing_tls {
        Some(task) => task.await.unwrap_or_else(|e| {
            Err(std::io::Error::other(format!(
                "the router's TLS task failed: {e}"
            )))
        }),
        None => Ok(()),
    };
    let _ = collecting.await;
    let _ = certifying.await;
    state.control.logs().shutdown().await;
    served.and(secured).and(routed).and(routed_tls)
}
