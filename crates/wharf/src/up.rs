//! `wharf up [DIR]`: the whole pipeline in one foreground command. Starts an embedded wharf
//! (SQLite, image store and logs in a data directory of its own for DIR, the local backend, the
//! router), creates the app, loads `DIR/.env` into its config, builds and releases DIR, runs one
//! instance of each process type (or `--scale`), prints the app's URL and streams its log.
//! `--watch` rebuilds on every change and swaps without downtime; a failed build leaves the
//! running release alone. Ctrl-C stops everything within the grace period; a second Ctrl-C
//! stops it at once. Nothing is left running either way.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::Parser;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use wharf_client::Client;
use wharf_core::api::{AppCreate, FormationBatchEntry, FormationBatchUpdate, LogSessionCreate};
use wharf_core::formation::QuantityChange;
use wharf_core::name::AppName;

use crate::cli::{ServerArgs, UpArgs};

/// `wharf server`'s settings as its flags and `WHARF_*` variables give them.
#[derive(Parser)]
struct ServerDefaults {
    #[command(flatten)]
    server: ServerArgs,
}

/// How often `--watch` looks for changes.
const WATCH_EVERY: Duration = Duration::from_millis(500);

pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    crate::server::init_tracing("warn");
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from("."));
    let dir = dir
        .canonicalize()
        .with_context(|| format!("cannot use {}", dir.display()))?;
    if !dir.is_dir() {
        bail!(
            "{} is not a directory: run `wharf up` in the app's directory or pass it",
            dir.display()
        );
    }
    let app = match &args.app {
        Some(name) => AppName::parse(name)
            .map_err(|e| anyhow::anyhow!("--app: {e}"))?
            .to_string(),
        None => app_name_for(&dir)?,
    };
    let scale = parse_scale(&args.scale)?;
    let data_dir = match &args.data_dir {
        Some(data_dir) => data_dir.clone(),
        None => crate::server::default_data_dir()?.join("up").join(format!(
            "{app}-{}",
            &wharf_image::Digest::of(dir.as_os_str().as_encoded_bytes()).hex()[..8]
        )),
    };

    // The embedded server: its API on a free port, the router where asked (or, if that is
    // taken and wasn't asked for explicitly, on a free port).
    let mut server_args = ServerDefaults::try_parse_from(["wharf"])
        .context("reading WHARF_* settings")?
        .server;
    server_args.sandbox = args.sandbox.clone();
    if server_args.runtime_cache.is_none() && args.data_dir.is_none() {
        // Every `wharf up` directory shares the runtimes it downloads.
        server_args.runtime_cache = Some(crate::server::default_data_dir()?.join("runtimes"));
    }
    let mut config = crate::server::config(server_args, data_dir.clone())?;
    // Every `wharf up` (its own data directory too) shares the stacks it makes: a stack is
    // made once per machine.
    config.stack_cache = Some(
        crate::server::default_data_dir()?
            .join("up")
            .join(".stacks"),
    );
    // Before a port is opened or a file made: a sandbox that can't work stops us here.
    let settled = crate::server::settle_sandbox(&mut config).await?;
    config.api_addr = "127.0.0.1:0".parse().expect("an address");
    let api = TcpListener::bind(config.api_addr)
        .await
        .context("cannot open the embedded API's port")?;
    let router_addr = args
        .router_addr
        .unwrap_or_else(|| "127.0.0.1:8080".parse().expect("an address"));
    let router = match TcpListener::bind(router_addr).await {
        Ok(listener) => listener,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && args.router_addr.is_none() => {
            eprintln!("-----> {router_addr} is taken; the router listens on a free port instead");
            TcpListener::bind((router_addr.ip(), 0)).await?
        }
        Err(e) => {
            return Err(e).with_context(|| {
                format!(
                    "the router cannot listen on {router_addr} (pass --router-addr to use another)"
                )
            })
        }
    };
    config.api_addr = api.local_addr()?;
    config.router_addr = router.local_addr()?;
    config.public_url = None;
    eprintln!("-----> Starting wharf (data in {})", data_dir.display());
    eprintln!("       {}", settled.sandbox);
    eprintln!("       {}", settled.stack);
    let (state, admin) = wharf_server::prepare(&config)
        .await
        .context("cannot start the embedded wharf")?;
    let token = match admin {
        wharf_server::AdminToken::FromEnvironment => config
            .admin_token
            .clone()
            .context("WHARF_ADMIN_TOKEN is set but empty")?,
        _ => std::fs::read_to_string(wharf_server::admin_token_path(&data_dir))
            .context("cannot read the embedded wharf's admin token")?
            .trim()
            .to_owned(),
    };
    let shutdown = CancellationToken::new();
    let listeners = wharf_server::Listeners {
        api,
        apps: router,
        apps_tls: None,
        tls: None,
        rendezvous: None,
    };
    let serving = tokio::spawn(wharf_server::serve(
        listeners,
        state.clone(),
        shutdown.clone(),
    ));
    let client = Client::new(&format!("http://{}", config.api_addr), Some(token))?;

    // Ctrl-C (or SIGTERM) from here on stops gracefully; a second one at once.
    let interrupted = CancellationToken::new();
    tokio::spawn(stop_on_signals(interrupted.clone(), state.clone()));

    let outcome = tokio::select! {
        outcome = start_app(&client, &app, &dir, &scale) => outcome,
        () = interrupted.cancelled() => Ok(None),
    };
    let failed = match outcome {
        Ok(Some(started)) => {
            // The log streams from now on, so what the processes say while they boot (a crash,
            // say) is seen.
            let log = LogSessionCreate {
                lines: Some(200),
                tail: Some(true),
                ..LogSessionCreate::default()
            };
            let logging = async {
                if let Err(e) = crate::logs::print_log(&client, &app, &log).await {
                    eprintln!("wharf up: the log stream ended: {e:#}");
                }
                interrupted.cancelled().await;
            };
            let running = async {
                match started.url {
                    Some(url) => {
                        wait_for_web(&client, &app, started.web, started.version).await?;
                        eprintln!("=====> {app} is up at {url}  (Ctrl-C stops it)");
                    }
                    None => eprintln!(
                        "=====> {app} has no web process to serve at a URL; its processes run  \
                         (Ctrl-C stops them)"
                    ),
                }
                if args.watch {
                    watch(&client, &app, &dir, &interrupted).await
                } else {
                    interrupted.cancelled().await;
                    Ok(())
                }
            };
            tokio::select! {
                () = interrupted.cancelled() => None,
                () = logging => None,
                result = running => result.err(),
            }
        }
        Ok(None) => None,
        Err(e) => Some(e),
    };
    if let Some(e) = failed {
        eprintln!("wharf up: {e:#}");
        eprintln!("-----> Stopping");
        shutdown.cancel();
        let _ = serving.await;
        state.store.close().await;
        bail!("{app} did not start");
    }
    eprintln!("-----> Stopping {app} (Ctrl-C again stops it at once)");
    shutdown.cancel();
    serving
        .await
        .context("the embedded wharf failed")?
        .context("the embedded wharf failed")?;
    state.store.close().await;
    eprintln!("-----> Stopped");
    Ok(())
}

/// What `start_app` set running.
struct Started {
    /// Where the router serves it; `None` without a web process.
    url: Option<String>,
    /// Web instances asked for.
    web: u32,
    /// The release they run.
    version: u32,
}

/// Makes, configures, builds, releases and scales the app.
async fn start_app(
    client: &Client,
    app: &str,
    dir: &Path,
    scale: &BTreeMap<String, u32>,
) -> anyhow::Result<Option<Started>> {
    let info = match client.app(app).await {
        Ok(info) => info,
        Err(e) if e.api_id() == Some("not_found") => {
            eprintln!("-----> Creating {app}");
            client
                .create_app(&AppCreate {
                    name: Some(app.to_owned()),
                    ..AppCreate::default()
                })
                .await?
        }
        Err(e) => return Err(e.into()),
    };
    let env_file = dir.join(".env");
    if env_file.is_file() {
        let text = std::fs::read_to_string(&env_file)
            .with_context(|| format!("cannot read {}", env_file.display()))?;
        let vars = wharf_core::dotenv::parse(&text)
            .map_err(|e| anyhow::anyhow!("{}: {e}", env_file.display()))?;
        let changes: BTreeMap<String, Option<String>> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), Some(v.clone())))
            .collect();
        client.update_config_vars(app, &changes).await?;
        eprintln!("-----> Loaded {} config vars from .env", vars.len());
    }
    let release = crate::deploy::deploy_dir(
        client,
        app,
        dir,
        &dir.display().to_string(),
        crate::deploy::git_version(dir),
    )
    .await?;

    // One instance of each process type unless told otherwise.
    let formation = client.formation(app).await?;
    for wanted in scale.keys() {
        if !formation.iter().any(|f| &f.process_type == wanted) {
            let types: Vec<&str> = formation.iter().map(|f| f.process_type.as_str()).collect();
            bail!(
                "--scale names `{wanted}`, which the app doesn't have: its process types are {}",
                types.join(", ")
            );
        }
    }
    let updates = formation
        .iter()
        .map(|f| FormationBatchEntry {
            process_type: f.process_type.clone(),
            quantity: Some(QuantityChange::Set(
                scale.get(&f.process_type).copied().unwrap_or(1),
            )),
            size: None,
        })
        .collect();
    client
        .update_formation(app, &FormationBatchUpdate { updates })
        .await?;
    let wanted_web = if formation.iter().any(|f| f.process_type == "web") {
        scale.get("web").copied().unwrap_or(1)
    } else {
        0
    };
    Ok(Some(Started {
        url: (wanted_web > 0).then_some(info.web_url),
        web: wanted_web,
        version: release.version,
    }))
}

/// Waits until `count` web instances of release `version` are up, and no other (at once when
/// `count` is 0); fails when the release does.
async fn wait_for_web(client: &Client, app: &str, count: u32, version: u32) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    loop {
        let dynos = client.dynos(app).await?;
        let web: Vec<_> = dynos.iter().filter(|d| d.process_type == "web").collect();
        if count == 0 {
            return Ok(());
        }
        if web.len() == count as usize
            && web
                .iter()
                .all(|d| d.state == "up" && d.release.version == version)
        {
            return Ok(());
        }
        let release = client.release(app, &version.to_string()).await?;
        if release.status == wharf_core::release::ReleaseStatus::Failed {
            bail!(
                "v{version} failed: {}",
                release
                    .status_reason
                    .as_deref()
                    .unwrap_or("see the log above")
            );
        }
        if tokio::time::Instant::now() > deadline {
            let states: Vec<String> = web
                .iter()
                .map(|d| format!("{} {}", d.name, d.state))
                .collect();
            bail!(
                "{app}'s web processes did not come up within 3 minutes ({}): its log says why \
                 (`wharf logs` against this data dir, or run again)",
                states.join(", ")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Rebuilds and redeploys whenever the source changes, until `stop`.
async fn watch(
    client: &Client,
    app: &str,
    dir: &Path,
    stop: &CancellationToken,
) -> anyhow::Result<()> {
    let fingerprint = |dir: PathBuf| async move {
        tokio::task::spawn_blocking(move || wharf_image::archive::fingerprint(&dir))
            .await
            .map_err(anyhow::Error::from)?
            .map_err(anyhow::Error::from)
    };
    let mut seen = fingerprint(dir.to_path_buf()).await?;
    eprintln!("-----> Watching {} for changes", dir.display());
    loop {
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            () = tokio::time::sleep(WATCH_EVERY) => {}
        }
        let now = match fingerprint(dir.to_path_buf()).await {
            Ok(now) => now,
            Err(e) => {
                eprintln!("-----> Cannot look at the source ({e:#}); looking again");
                continue;
            }
        };
        if now == seen {
            continue;
        }
        seen = now;
        eprintln!("-----> {} changed: rebuilding", dir.display());
        let deployed = crate::deploy::deploy_dir(
            client,
            app,
            dir,
            &dir.display().to_string(),
            crate::deploy::git_version(dir),
        )
        .await;
        match deployed {
            Ok(release) => {
                let web = client
                    .formation(app)
                    .await?
                    .iter()
                    .find(|f| f.process_type == "web")
                    .map_or(0, |f| f.quantity);
                match wait_for_web(client, app, web, release.version).await {
                    Ok(()) => eprintln!("=====> {app} runs v{} now", release.version),
                    Err(e) => eprintln!(
                        "=====> {app}'s new release did not come up ({e:#}); the previous one keeps serving"
                    ),
                }
            }
            Err(e) => eprintln!(
                "=====> The new build of {app} failed ({e:#}); the running release keeps serving"
            ),
        }
    }
}

/// Cancels `interrupted` on the first SIGINT or SIGTERM; on a second, kills every process the
/// embedded wharf runs and exits at once.
async fn stop_on_signals(interrupted: CancellationToken, state: wharf_server::AppState) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
    interrupted.cancel();
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
    eprintln!("-----> Stopping at once");
    state.control.backend().kill_all();
    std::process::exit(130);
}

/// The app name for a directory: its name, lowercased, with anything else than letters and
/// digits made a dash.
fn app_name_for(dir: &Path) -> anyhow::Result<String> {
    let base = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let mut name = String::new();
    for c in base.chars() {
        let c = if c.is_ascii_alphanumeric() { c } else { '-' };
        if !(c == '-' && (name.is_empty() || name.ends_with('-'))) {
            name.push(c);
        }
    }
    let name = name.trim_end_matches('-').to_owned();
    match AppName::parse(&name) {
        Ok(name) => Ok(name.to_string()),
        Err(e) => bail!(
            "{} doesn't make an app name ({e}): pass --app NAME",
            dir.display()
        ),
    }
}

/// `web=2`, `worker=1` → their counts.
fn parse_scale(specs: &[String]) -> anyhow::Result<BTreeMap<String, u32>> {
    let mut scale = BTreeMap::new();
    for spec in specs {
        let Some((kind, count)) = spec.split_once('=') else {
            bail!("--scale `{spec}` must look like web=2 (TYPE=COUNT, comma-separated)");
        };
        let kind = wharf_core::name::ProcessType::parse(kind.trim())
            .map_err(|e| anyhow::anyhow!("--scale `{spec}`: {e}"))?;
        let count: u32 = count.trim().parse().map_err(|_| {
            anyhow::anyhow!("--scale `{spec}`: the count must be a whole number, e.g. web=2")
        })?;
        scale.insert(kind.to_string(), count);
    }
    Ok(scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_names_come_from_directory_names() {
        assert_eq!(app_name_for(Path::new("/src/My_App")).unwrap(), "my-app");
        assert_eq!(
            app_name_for(Path::new("/src/python-web")).unwrap(),
            "python-web"
        );
        assert_eq!(app_name_for(Path::new("/src/--x..y--")).unwrap(), "x-y");
        assert!(app_name_for(Path::new("/")).is_err());
    }

    #[test]
    fn scale_specs_are_read_or_refused() {
        let scale = parse_scale(&["web=2".into(), "worker=0".into()]).unwrap();
        assert_eq!(scale["web"], 2);
        assert_eq!(scale["worker"], 0);
        assert!(parse_scale(&["web".into()]).is_err());
        assert!(parse_scale(&["web=two".into()]).is_err());
        assert!(parse_scale(&["Web!=1".into()]).is_err());
    }
}
