//! A Kubernetes API that answers from a recorded conversation (`conversations/*.json`): a real
//! kube-rs client talks HTTP to a server on 127.0.0.1 that answers each request with its
//! recorded answer, and the test fails on any request the conversation doesn't have (method,
//! path and query), or an apply that isn't a server-side apply of the object its path names.
//! A conversation is in order unless it says `"unordered": true` (requests made by concurrent
//! tasks): then each request takes the first unanswered exchange with its request line. An
//! exchange with `"repeat": true` answers its request every time it comes (a poll), and must
//! come at least once. An answer that is a string is sent as text (a pod's log).

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
use wharf_k8s::cluster::Cluster;

#[derive(Debug, Deserialize)]
struct Conversation {
    /// Where the answers come from.
    #[allow(dead_code)]
    source: String,
    #[serde(default)]
    unordered: bool,
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
    #[serde(default)]
    repeat: bool,
    /// How many times it was answered.
    #[serde(skip)]
    used: usize,
}

/// A Kubernetes API that answers from a conversation; stopped when dropped.
pub(crate) struct RecordedApi {
    url: String,
    left: Arc<Mutex<VecDeque<Exchange>>>,
    wrong: Arc<Mutex<Vec<String>>>,
    server: tokio::task::JoinHandle<()>,
}

impl RecordedApi {
    pub(crate) async fn start(file: &str) -> RecordedApi {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/it/conversations")
            .join(file);
        let conversation: Conversation =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let unordered = conversation.unordered;
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
                        async move { Ok::<_, Infallible>(answer(req, &l, &w, unordered).await) }
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

    /// A cluster over a client of this API, which looks again every 10 ms while it waits.
    pub(crate) fn cluster(&self) -> Cluster {
        let config = kube::Config::new(self.url.parse().unwrap());
        let client = kube::Client::try_from(config).unwrap();
        Cluster::new(client, Duration::from_millis(10))
    }

    /// How many exchanges are still unanswered.
    pub(crate) fn left(&self) -> usize {
        self.left
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.used == 0)
            .count()
    }

    /// How many times the repeated exchange of `request` was answered.
    pub(crate) fn times(&self, request: &str) -> usize {
        self.left
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.repeat && e.request == request)
            .map(|e| e.used)
            .sum()
    }

    /// Every recorded exchange happened, and nothing else.
    pub(crate) fn assert_done(&self) {
        let wrong = self.wrong.lock().unwrap();
        assert!(
            wrong.is_empty(),
            "unexpected requests:\n{}",
            wrong.join("\n")
        );
        let left = self.left.lock().unwrap();
        let never: Vec<&String> = left
            .iter()
            .filter(|e| e.used == 0)
            .map(|e| &e.request)
            .collect();
        assert!(never.is_empty(), "recorded requests never made: {never:?}");
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
    unordered: bool,
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
    let next = {
        let mut left = left.lock().unwrap();
        let at = if unordered {
            left.iter()
                .position(|e| e.request == line && (e.repeat || e.used == 0))
        } else {
            left.iter().position(|e| e.used == 0 || e.repeat)
        };
        at.map(|i| {
            let exchange = &mut left[i];
            exchange.used += 1;
            let answer = exchange.clone();
            if !answer.repeat {
                left.remove(i);
            }
            answer
        })
    };
    let reply = |status: u16, body: &Value| {
        let (content_type, bytes) = match body {
            Value::String(text) => ("text/plain", text.clone().into_bytes()),
            other => ("application/json", other.to_string().into_bytes()),
        };
        Response::builder()
            .status(status)
            .header("content-type", content_type)
            .body(Full::new(Bytes::from(bytes)))
            .unwrap()
    };
    let Some(next) = next else {
        let what = format!("{line} (not in the conversation, or after it ended)");
        // Shown with the failure the client's error then causes.
        eprintln!("unexpected request: {what}");
        wrong.lock().unwrap().push(what);
        return reply(500, &Value::Null);
    };
    if next.request != line {
        let what = format!("{line}, where the conversation has {}", next.request);
        eprintln!("unexpected request: {what}");
        wrong.lock().unwrap().push(what);
        return reply(500, &Value::Null);
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
        if expected == "application/apply-patch+yaml"
            && !line
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
    reply(next.status, &next.response)
}
