//! Test fixtures: real upstream servers (hyper, on 127.0.0.1:0), a running router, clients, and
//! waiting for a condition with a deadline.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::HeaderMap;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wharf_core::backend::{Routes, Upstream};
use wharf_logs::{LogStore, Retention};
use wharf_router::{AppRoute, Router, RouterConfig};

pub type Body = BoxBody<Bytes, hyper::Error>;
pub type HandlerFuture = Pin<Box<dyn Future<Output = Response<Body>> + Send>>;
pub type Handler = Arc<dyn Fn(Request<Incoming>) -> HandlerFuture + Send + Sync>;

/// The test app's hostname.
pub const HOST: &str = "app.example";
pub const APP_ID: &str = "app-1";
pub const APP_NAME: &str = "app";

pub fn text(body: impl Into<Bytes>) -> Response<Body> {
    Response::new(
        Full::new(body.into())
            .map_err(|never: Infallible| match never {})
            .boxed(),
    )
}

/// A request an upstream received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: hyper::Method,
    pub uri: hyper::Uri,
    pub headers: HeaderMap,
}

/// A real HTTP/1.1 server on 127.0.0.1 standing in for a web instance.
pub struct TestUpstream {
    pub addr: SocketAddr,
    /// TCP connections accepted.
    pub connections: Arc<AtomicUsize>,
    /// Requests received, in order.
    pub seen: Arc<Mutex<Vec<Seen>>>,
    stop: CancellationToken,
    tasks: TaskTracker,
}

impl TestUpstream {
    /// Answers every request with `name` as its body.
    pub async fn named(name: &'static str) -> TestUpstream {
        Self::start(Arc::new(move |_req| Box::pin(async move { text(name) }))).await
    }

    pub async fn start(handler: Handler) -> TestUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        let tasks = TaskTracker::new();
        tasks.spawn({
            let (connections, seen, stop, tasks) = (
                Arc::clone(&connections),
                Arc::clone(&seen),
                stop.clone(),
                tasks.clone(),
            );
            async move {
                loop {
                    let stream = tokio::select! {
                        () = stop.cancelled() => return,
                        accepted = listener.accept() => match accepted {
                            Ok((stream, _)) => stream,
                            Err(_) => continue,
                        },
                    };
                    connections.fetch_add(1, Ordering::SeqCst);
                    let (handler, seen, stop) =
                        (Arc::clone(&handler), Arc::clone(&seen), stop.clone());
                    tasks.spawn(async move {
                        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                            seen.lock().unwrap().push(Seen {
                                method: req.method().clone(),
                                uri: req.uri().clone(),
                                headers: req.headers().clone(),
                            });
                            let response = handler(req);
                            async move { Ok::<_, Infallible>(response.await) }
                        });
                        let conn = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .with_upgrades();
                        tokio::select! {
                            _ = conn => {}
                            () = stop.cancelled() => {}
                        }
                    });
                }
            }
        });
        TestUpstream {
            addr,
            connections,
            seen,
            stop,
            tasks,
        }
    }

    /// This server as an upstream of the router.
    pub fn upstream(&self, dyno: &str) -> Upstream {
        Upstream {
            id: format!("{dyno}-{}", self.addr.port()),
            dyno: dyno.to_owned(),
            addr: self.addr,
            release_version: 1,
        }
    }

    pub fn requests(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    pub fn last(&self) -> Seen {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("a request")
    }

    /// Stops accepting, closes every connection and waits for the tasks.
    pub async fn stop(self) {
        self.stop.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}

impl Drop for TestUpstream {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A router serving on 127.0.0.1, optionally with a log store in a temp dir.
pub struct TestRouter {
    pub router: Router,
    pub addr: SocketAddr,
    /// The TLS listener, when started [`TestRouter::with_tls`].
    pub tls_addr: Option<SocketAddr>,
    tls_task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    pub logs: Option<(LogStore, tempfile::TempDir)>,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestRouter {
    pub async fn start() -> TestRouter {
        Self::with(RouterConfig::default(), false).await
    }

    pub async fn with(config: RouterConfig, with_logs: bool) -> TestRouter {
        let logs = with_logs.then(|| {
            let dir = tempfile::tempdir().unwrap();
            let store = LogStore::open(dir.path(), Retention::default()).unwrap();
            (store, dir)
        });
        let router = Router::new(config, logs.as_ref().map(|(store, _)| store.clone()));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn({
            let router = router.clone();
            let shutdown = shutdown.clone();
            async move { router.serve(listener, shutdown).await }
        });
        TestRouter {
            router,
            addr,
            tls_addr: None,
            tls_task: None,
            logs,
            shutdown,
            task: Some(task),
        }
    }

    /// A router with logs that also serves TLS on a second listener.
    pub async fn with_tls() -> TestRouter {
        let mut router = Self::with(RouterConfig::default(), true).await;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        router.tls_addr = Some(listener.local_addr().unwrap());
        router.tls_task = Some(tokio::spawn({
            let (r, shutdown) = (router.router.clone(), router.shutdown.clone());
            async move { r.serve_tls(listener, shutdown).await }
        }));
        router
    }

    /// `https://host:port/path` for this router's TLS listener.
    pub fn https_url(&self, host: &str, path: &str) -> String {
        format!("https://{host}:{}{path}", self.tls_addr.unwrap().port())
    }

    /// A client for the TLS listener that trusts `ca_pem` and resolves the test hostnames.
    pub fn https_client(&self, ca_pem: &str) -> reqwest::ClientBuilder {
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap());
        for host in [HOST, "www.app.example", "other.example", "unknown.example"] {
            builder = builder.resolve(host, self.tls_addr.unwrap());
        }
        builder
    }

    /// Routes [`HOST`] to the test app, served by `upstreams`.
    pub fn route(&self, upstreams: &[&TestUpstream]) {
        self.router.set_hosts(vec![(HOST.to_owned(), route(false))]);
        self.set(upstreams);
    }

    pub fn set(&self, upstreams: &[&TestUpstream]) {
        let list = upstreams
            .iter()
            .enumerate()
            .map(|(i, u)| u.upstream(&format!("web.{}", i + 1)))
            .collect();
        self.router.set(APP_ID, list);
    }

    /// `http://host:port/path` for this router.
    pub fn url(&self, host: &str, path: &str) -> String {
        format!("http://{host}:{}{path}", self.addr.port())
    }

    /// An HTTP/1.1 client that resolves the test hostnames to the router.
    pub fn client(&self) -> reqwest::Client {
        self.client_builder().build().unwrap()
    }

    pub fn client_builder(&self) -> reqwest::ClientBuilder {
        let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(60));
        for host in [HOST, "www.app.example", "other.example"] {
            builder = builder.resolve(host, self.addr);
        }
        builder
    }

    /// The router lines of the test app's log.
    pub async fn log_lines(&self) -> Vec<String> {
        let (store, _) = self.logs.as_ref().expect("router with logs");
        let log = store.app(APP_ID);
        log.flush().await;
        log.read(&wharf_logs::LogFilter {
            source: Some("router".into()),
            lines: Some(1500),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.line.text)
        .collect()
    }

    /// Tells `serve` to stop accepting and drain (without waiting for it).
    pub fn begin_shutdown(&self) {
        self.shutdown.cancel();
    }

    /// The router's metrics, as the server's `/metrics` would show them.
    pub fn metrics_text(&self) -> String {
        let mut registry = prometheus_client::registry::Registry::default();
        self.router.register_metrics(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        text
    }

    /// Cancels the shutdown token and waits for `serve` to return.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        let task = self.task.take().unwrap();
        tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .expect("serve returns after shutdown")
            .unwrap()
            .unwrap();
        if let Some(task) = self.tls_task.take() {
            tokio::time::timeout(Duration::from_secs(60), task)
                .await
                .expect("serve_tls returns after shutdown")
                .unwrap()
                .unwrap();
        }
        if let Some((store, _)) = &self.logs {
            store.shutdown().await;
        }
    }
}

impl Drop for TestRouter {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub fn route(maintenance: bool) -> AppRoute {
    AppRoute {
        app_id: APP_ID.to_owned(),
        app_name: APP_NAME.to_owned(),
        maintenance,
        https_redirect: true,
    }
}

/// Waits until `condition` holds, checking every few milliseconds, for at most `within`.
pub async fn wait_for<F, Fut>(what: &str, within: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_until(what, within, || {
        let check = condition();
        async move { check.await.then_some(()) }
    })
    .await;
}

/// Waits until `probe` gives a value, checking every few milliseconds, for at most `within`.
pub async fn wait_until<T, F, Fut>(what: &str, within: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    wharf_test_support::wait_until_async(within, what, || {
        let probed = probe();
        async move { probed.await.ok_or_else(|| "not yet".to_owned()) }
    })
    .await
}

/// Sends raw bytes on a new connection to `addr` and reads the answer until the server closes
/// the connection or `within` passes.
pub async fn raw_exchange(addr: SocketAddr, request: &[u8], within: Duration) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(within, stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}
