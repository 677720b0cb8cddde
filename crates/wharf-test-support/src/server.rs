//! Starts a server per test and talks to it.

use std::net::SocketAddr;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use wharf_server::ServerConfig;
pub use wharf_store::testing::Backend;
use wharf_store::testing::TestDatabase;

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// A running server with its own database.
pub struct TestServer {
    pub addr: SocketAddr,
    /// Where the router listens; apps are `http://<app>.localhost:<port>/`.
    pub router_addr: SocketAddr,
    /// The server's data directory.
    pub data_dir: std::path::PathBuf,
    pub http: reqwest::Client,
    pub state: wharf_server::AppState,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _db: TestDatabase,
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    /// The error id of an error body.
    pub fn error_id(&self) -> &str {
        self.body["id"].as_str().unwrap_or_default()
    }

    pub fn message(&self) -> &str {
        self.body["message"].as_str().unwrap_or_default()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl TestServer {
    pub async fn start(backend: Backend) -> TestServer {
        let db = TestDatabase::new(backend).await;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let apps = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let router_addr = apps.local_addr().unwrap();
        let config = ServerConfig {
            backend: wharf_server::BackendKind::Local,
            swarm: wharf_server::SwarmSettings::default(),
            data_dir: db.data_dir(),
            database_url: Some(db.url.clone()),
            api_addr: addr,
            router_addr,
            domain: "localhost".into(),
            admin_token: Some(ADMIN_TOKEN.into()),
            public_url: None,
            run: wharf_run::SupervisorConfig {
                data_dir: db.data_dir(),
                sandbox: wharf_run::SandboxMode::None,
                backoff_base: std::time::Duration::from_millis(200),
                boot_timeout: std::time::Duration::from_secs(30),
                ..wharf_run::SupervisorConfig::default()
            },
            router: wharf_router::RouterConfig {
                drain_timeout: std::time::Duration::from_secs(10),
                ..wharf_router::RouterConfig::default()
            },
            release_timeout: std::time::Duration::from_secs(6),
            keep_releases: 2,
            default_stack: "wharf-1".into(),
            stack_cache: None,
            // Collections run when a test asks for one.
            gc_interval: std::time::Duration::from_secs(24 * 60 * 60),
            // Pushes are deployed by the real binary's tests (crates/wharf).
            wharf_exe: None,
            tls_addrs: Vec::new(),
            secret_key: None,
            registry: None,
            k8s_ingress_class: None,
            acme: None,
            build: wharf_server::BuildSettings {
                timeout: std::time::Duration::from_secs(120),
                concurrency: 2,
                sandbox: wharf_build::SandboxMode::None,
                limits: wharf_image::archive::Limits {
                    max_archive_bytes: 1024 * 1024,
                    max_unpacked_bytes: 8 * 1024 * 1024,
                    max_entries: 1000,
                    max_path_len: 200,
                },
                npm_registry: wharf_build::NPM_REGISTRY.to_owned(),
                python_url: None,
                runtime_cache: None,
            },
        };
        let (state, _) = wharf_server::prepare(&config).await.unwrap();
        let shutdown = CancellationToken::new();
        // Heroku's rendezvous for attached one-offs, on wharf's certificate (which names
        // 127.0.0.1 whatever the port).
        let rendezvous = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let listeners = wharf_server::Listeners {
            api: listener,
            apps,
            apps_tls: None,
            tls: None,
            rendezvous: Some(rendezvous),
        };
        let task = tokio::spawn(wharf_server::serve(
            listeners,
            state.clone(),
            shutdown.clone(),
        ));
        TestServer {
            addr,
            router_addr,
            data_dir: db.data_dir(),
            http: reqwest::Client::new(),
            state,
            shutdown,
            task: Some(task),
            _db: db,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A request with the admin token and Heroku's Accept header.
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .header("accept", "application/vnd.heroku+json; version=3")
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.request(Method::GET, path)).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(self.request(Method::POST, path).json(&body))
            .await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Reply {
        self.send(self.request(Method::PATCH, path).json(&body))
            .await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send(self.request(Method::DELETE, path)).await
    }

    /// GETs a signed URL (no token) and reads the whole body as text, resuming after
    /// `last_event_id` when given.
    pub async fn fetch(&self, url: &str, last_event_id: Option<&str>) -> String {
        let mut request = self.http.get(url);
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        request.send().await.unwrap().text().await.unwrap()
    }

    /// Reads a log session's `url` until it holds `needle`; panics after a deadline.
    pub async fn wait_for_log(&self, url: &str, needle: &str) -> String {
        let what = format!("`{needle}` to reach the log");
        crate::wait_until_async(std::time::Duration::from_secs(30), &what, || async {
            let text = self.fetch(url, None).await;
            if text.contains(needle) {
                Ok(text)
            } else {
                Err(text)
            }
        })
        .await
    }

    /// Creates an app and returns its body.
    pub async fn create_app(&self, name: &str) -> Value {
        let reply = self
            .post("/apps", serde_json::json!({ "name": name }))
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
        reply.body
    }

    /// Stops the server, letting requests in flight finish.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
