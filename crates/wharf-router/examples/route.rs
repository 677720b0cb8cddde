//! Runs the router for one app, as bench/router.sh measures it:
//!
//! ```text
//! cargo run --release -p wharf-router --example route -- \
//!     --listen 127.0.0.1:8080 --host bench.local --upstream 127.0.0.1:9000 [--log-dir DIR]
//! ```
//!
//! `--upstream` may be given more than once. With `--log-dir`, router lines go to a log store
//! there (app id `bench`). `--max-idle` sets the idle connections kept per upstream. Stops on
//! SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use tokio_util::sync::CancellationToken;
use wharf_core::backend::{Routes, Upstream};
use wharf_logs::{LogStore, Retention};
use wharf_router::{AppRoute, Router, RouterConfig};

struct Args {
    listen: SocketAddr,
    host: String,
    upstreams: Vec<SocketAddr>,
    log_dir: Option<PathBuf>,
    max_idle: Option<usize>,
}

const USAGE: &str =
    "usage: route --listen ADDR --host HOSTNAME --upstream ADDR... [--log-dir DIR] [--max-idle N]";

fn parse_args() -> Result<Args, String> {
    let mut listen = None;
    let mut host = None;
    let mut upstreams = Vec::new();
    let mut log_dir = None;
    let mut max_idle = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--listen" => listen = Some(parse_addr(&value()?)?),
            "--host" => host = Some(value()?.to_ascii_lowercase()),
            "--upstream" => upstreams.push(parse_addr(&value()?)?),
            "--log-dir" => log_dir = Some(PathBuf::from(value()?)),
            "--max-idle" => {
                let v = value()?;
                max_idle = Some(v.parse().map_err(|_| format!("`{v}` is not a count"))?);
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(Args {
        listen: listen.ok_or("--listen is required")?,
        host: host.ok_or("--host is required")?,
        upstreams: if upstreams.is_empty() {
            return Err("--upstream is required".into());
        } else {
            upstreams
        },
        log_dir,
        max_idle,
    })
}

fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse()
        .map_err(|_| format!("`{s}` is not an address (IP:PORT)"))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("error: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let logs = match &args.log_dir {
        Some(dir) => Some(
            LogStore::open(dir, Retention::default())
                .map_err(|e| format!("cannot open the log store in {}: {e}", dir.display()))?,
        ),
        None => None,
    };
    let mut config = RouterConfig::default();
    if let Some(max_idle) = args.max_idle {
        config.max_idle_per_upstream = max_idle;
    }
    let router = Router::new(config, logs.clone());
    router.set_hosts(vec![(
        args.host.clone(),
        AppRoute {
            app_id: "bench".into(),
            app_name: "bench".into(),
            maintenance: false,
            https_redirect: false,
        },
    )]);
    router.set(
        "bench",
        args.upstreams
            .iter()
            .enumerate()
            .map(|(i, addr)| Upstream {
                id: format!("web.{}-1", i + 1),
                dyno: format!("web.{}", i + 1),
                addr: *addr,
                release_version: 1,
            })
            .collect(),
    );
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let shutdown = CancellationToken::new();
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            let terminated = async {
                match term.as_mut() {
                    Some(term) => {
                        term.recv().await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                () = terminated => {}
            }
            shutdown.cancel();
        }
    });
    let served = router.serve(listener, shutdown).await;
    if let Some(logs) = logs {
        logs.shutdown().await;
    }
    served.map_err(|e| format!("serving failed: {e}"))
}
