//! The cluster half against a recorded conversation with the Kubernetes API
//! (`conversations/*.json`): a real kube-rs client talks HTTP to a server on 127.0.0.1 that
//! answers each request with the next recorded answer, and fails the test on any request the
//! conversation doesn't have next (method, path and query), or an apply that isn't a
//! server-side apply.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde::Deserialize;
use serde_json::Value;
use wharf_core::backend::{DesiredApp, ProcessSpec, PullableImage};
use wharf_k8s::cluster::{Cluster, Outcome};
use wharf_k8s::{manifests, Input, Settings};

#[derive(Debug, Deserialize)]
struct Conversation {
    /// Where the answers come from.
    #[allow(dead_code)]
    source: String,
    exchanges: Vec<Exchange>,
}

#[derive(Debug, Clone, Deserialize)]
struct Exchange {
    /// `METHOD /path?query`
    request: String,
    #[serde(default)]
    content_type: Option<String>,
    status: u16,
    response: Value,
}

/// A Kubernetes API that answers from a conversation, in order.
struct RecordedApi {
    url: String,
    left: Arc<Mutex<VecDeque<Exchange>>>,
    wrong: Arc<Mutex<Vec<String>>>,
    server: tokio::task::JoinHandle<()>,
}

impl RecordedApi {
    async fn start(file: &str) -> RecordedApi {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/it/conversations")
            .join(file);
        let conversation: Conversation =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let left = Arc::new(Mutex::new(VecDeque::from(conversation.exchanges)));
        let wrong = Arc::new(Mutex::new(Vec::new()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (l, w) = (left.clone(), wrong.clone());
        let server = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (l, w) = (l.clone(), w.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let (l, w) = (l.clone(), w.clone());
                        async move { Ok::<_, Infallible>(answer(req, &l, &w).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
                });
            }
        });
        RecordedApi {
            url,
            left,
            wrong,
            server,
        }
    }

    fn cluster(&self) -> Cluster {
        let config = kube::Config::new(self.url.parse().unwrap());
        let client = kube::Client::try_from(config).unwrap();
        Cluster::new(client, Duration::from_millis(10))
    }

    /// Every recorded exchange happened, and nothing else.
    fn assert_done(&self) {
        let wrong = self.wrong.lock().unwrap();
        assert!(
            wrong.is_empty(),
            "unexpected requests:\n{}",
            wrong.join("\n")
        );
        let left = self.left.lock().unwrap();
        assert!(
            left.is_empty(),
            "recorded requests never made: {:?}",
            left.iter().map(|e| &e.request).collect::<Vec<_>>()
        );
    }
}

impl Drop for RecordedApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn answer(
    req: Request<Incoming>,
    left: &Mutex<VecDeque<Exchange>>,
    wrong: &Mutex<Vec<String>>,
) -> Response<Full<Bytes>> {
    let line = format!(
        "{} {}",
        req.method(),
        req.uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or_default()
    );
    let content_type = req
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = req.into_body().collect().await.map(|b| b.to_bytes());
    let next = left.lock().unwrap().pop_front();
    let reply = |status: u16, body: Value| {
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap()
    };
    let Some(next) = next else {
        wrong
            .lock()
            .unwrap()
            .push(format!("{line} (after the conversation ended)"));
        return reply(500, Value::Null);
    };
    if next.request != line {
        let what = format!("{line}, where the conversation has {}", next.request);
        // Shown with the failure the client's error then causes.
        eprintln!("unexpected request: {what}");
        wrong.lock().unwrap().push(what);
        return reply(500, Value::Null);
    }
    if let Some(expected) = &next.content_type {
        if content_type.as_deref() != Some(expected.as_str()) {
            wrong.lock().unwrap().push(format!(
                "{line} sent content type {content_type:?}, not {expected}"
            ));
        }
        // A server-side apply carries the whole object, named as in the path.
        let sent: Value = serde_json::from_slice(&body.unwrap_or_default()).unwrap_or_default();
        let name = sent["metadata"]["name"].as_str().unwrap_or_default();
        if !line
            .split('?')
            .next()
            .unwrap_or_default()
            .ends_with(&format!("/{name}"))
        {
            wrong
                .lock()
                .unwrap()
                .push(format!("{line} applied an object named `{name}`"));
        }
    }
    reply(next.status, next.response)
}

fn release() -> DesiredApp {
    DesiredApp {
        app_id: "0b5e3c1e-7d1f-4a52-9d51-3f0c2d6e8a11".to_owned(),
        app_name: "shop".to_owned(),
        release: wharf_core::backend::ReleaseSpec {
            version: 4,
            image: "sha256:4f1c".to_owned(),
            env: [("DATABASE_URL".to_owned(), "postgres://db/shop".to_owned())].into(),
            image_env: Default::default(),
            run_image: Some("sha256:run".to_owned()),
            web_health: None,
        },
        processes: vec![ProcessSpec::new("web", 2, "bin/web")],
    }
}

fn made(release_command: Option<&str>, ingress_class: Option<&str>) -> wharf_k8s::Manifests {
    made_of(release(), release_command, ingress_class)
}

fn worker_only() -> wharf_k8s::Manifests {
    let mut app = release();
    app.processes = vec![ProcessSpec::new("worker", 1, "bin/worker")];
    made_of(app, None, None)
}

fn made_of(
    app: DesiredApp,
    release_command: Option<&str>,
    ingress_class: Option<&str>,
) -> wharf_k8s::Manifests {
    let image = PullableImage {
        reference: "registry.example.com/shop@sha256:4f1c".to_owned(),
        registry: "registry.example.com".to_owned(),
        credentials: None,
    };
    manifests(&Input {
        app: &app,
        image: &image,
        release_command,
        hostnames: &["shop.example.test".to_owned()],
        settings: &Settings {
            ingress_class: ingress_class.map(str::to_owned),
            boot_timeout: Duration::from_secs(60),
            release_timeout: Duration::from_secs(600),
        },
    })
    .unwrap()
}

/// A deploy: the objects applied in order (server-side, field manager `wharf`; the Ingress
/// last), the web
/// Deployment watched until every replica is updated and available, and the Deployment of a
/// process type the formation no longer has deleted.
#[tokio::test]
async fn a_release_is_applied_rolled_out_and_pruned() {
    let api = RecordedApi::start("deploy.json").await;
    let cluster = api.cluster();
    let manifests = made(None, Some("nginx"));
    cluster.apply(&manifests).await.unwrap();
    let outcome = cluster
        .rollout(&manifests, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(outcome, Outcome::Complete);
    let deleted = cluster.prune(&manifests).await.unwrap();
    assert_eq!(deleted, ["Deployment shop-worker"]);
    api.assert_done();
}

/// A release phase that fails: its Job is applied after the config it needs, and its failure
/// comes back with the reason.
#[tokio::test]
async fn a_failed_release_phase_says_why() {
    let api = RecordedApi::start("release-phase-fails.json").await;
    let cluster = api.cluster();
    let manifests = made(Some("rake db:migrate"), None);
    let job = manifests.release_job.clone().unwrap();
    let outcome = cluster
        .release_phase(&manifests, &job, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(
        outcome,
        Outcome::Failed(
            "the release phase (Job shop-release-v4) failed: Job has reached the specified backoff limit"
                .to_owned()
        )
    );
    api.assert_done();
}

/// A rollout whose progress deadline passes has failed, with the controller's message.
#[tokio::test]
async fn a_stuck_rollout_fails_with_the_controllers_message() {
    let api = RecordedApi::start("rollout-stuck.json").await;
    let cluster = api.cluster();
    let outcome = cluster
        .rollout(&made(None, None), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(
        outcome,
        Outcome::Failed(
            "Deployment shop-web: ReplicaSet \"shop-web-7d4b9c\" has timed out progressing."
                .to_owned()
        )
    );
    api.assert_done();
}

/// A formation without web any more: its Deployment and its Service go (a Service deletion
/// answers with a Status, not the object).
#[tokio::test]
async fn a_formation_without_web_loses_its_deployment_and_service() {
    let api = RecordedApi::start("web-scaled-away.json").await;
    let deleted = api.cluster().prune(&worker_only()).await.unwrap();
    assert_eq!(deleted, ["Deployment shop-web", "Service shop-web"]);
    api.assert_done();
}
