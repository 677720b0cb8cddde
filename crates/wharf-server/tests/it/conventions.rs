//! The Heroku API conventions every route follows: Accept versions, Request-Id, JSON errors for
//! unknown routes and methods, graceful shutdown.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{Backend, TestServer, ADMIN_TOKEN};
use wharf_test_support::on_both_databases;

on_both_databases!(
    accept_must_ask_for_version_3,
    request_ids_are_echoed_or_made,
    unknown_routes_and_methods_get_json_errors,
    request_bodies_must_be_json_objects,
    bad_paths_and_query_strings_get_json_errors,
    shutdown_lets_requests_in_flight_finish,
);

async fn accept_must_ask_for_version_3(backend: Backend) {
    let server = TestServer::start(backend).await;
    let get = |accept: Option<&'static str>| {
        let mut request = server
            .http
            .get(server.url("/account"))
            .bearer_auth(ADMIN_TOKEN);
        if let Some(accept) = accept {
            request = request.header("accept", accept);
        }
        server.send(request)
    };
    for ok in [
        None,
        Some("application/vnd.heroku+json; version=3"),
        Some("application/vnd.heroku+json; version=3.sdk"),
        Some("application/json"),
        Some("*/*"),
    ] {
        let reply = get(ok).await;
        assert_eq!(reply.status, StatusCode::OK, "{ok:?}");
        assert!(reply
            .header("content-type")
            .unwrap()
            .starts_with("application/json"));
    }
    for refused in [
        "application/vnd.heroku+json; version=2",
        "application/vnd.heroku+json",
    ] {
        let reply = get(Some(refused)).await;
        assert_eq!(reply.status, StatusCode::NOT_ACCEPTABLE, "{refused}");
        assert_eq!(reply.error_id(), "not_acceptable");
        assert!(reply.message().contains("version=3"), "{}", reply.message());
    }
    server.stop().await;
}

async fn request_ids_are_echoed_or_made(backend: Backend) {
    let server = TestServer::start(backend).await;
    let echoed = server
        .send(
            server
                .request(Method::GET, "/account")
                .header("request-id", "my-trace-123"),
        )
        .await;
    assert_eq!(echoed.header("request-id"), Some("my-trace-123"));
    let made = server.get("/account").await;
    let id = made.header("request-id").expect("a request id");
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    // Errors carry one too.
    let error = server.get("/apps/ghost").await;
    assert!(error.header("request-id").is_some());
    server.stop().await;
}

async fn unknown_routes_and_methods_get_json_errors(backend: Backend) {
    let server = TestServer::start(backend).await;
    let missing = server.get("/no/such/thing").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.error_id(), "not_found");
    assert!(
        missing.message().contains("/openapi.json"),
        "{}",
        missing.message()
    );

    let method = server.send(server.request(Method::PUT, "/apps")).await;
    assert_eq!(method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(method.error_id(), "method_not_allowed");
    server.stop().await;
}

/// serde reads a struct from an array of its fields, so `[null, null]` used to create an app (and
/// a token, and a log session); found by scripts/api-fuzz.
async fn request_bodies_must_be_json_objects(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.create_app("objects").await;
    for (method, path) in [
        (Method::POST, "/apps"),
        (Method::PATCH, "/apps/objects"),
        (Method::PATCH, "/apps/objects/config-vars"),
        (Method::POST, "/apps/objects/log-sessions"),
        (Method::POST, "/oauth/authorizations"),
    ] {
        for body in ["[null, null]", "[]", "\"name\"", "7", "null"] {
            let reply = server
                .send(server.request(method.clone(), path).body(body))
                .await;
            assert_eq!(
                reply.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{method} {path} {body}: {reply:?}"
            );
            assert_eq!(reply.error_id(), "invalid_params");
            assert_eq!(
                reply.message(),
                "the request body must be a JSON object, e.g. `{}`"
            );
        }
        let broken = server
            .send(server.request(method.clone(), path).body("[1,"))
            .await;
        assert_eq!(broken.status, StatusCode::BAD_REQUEST, "{broken:?}");
        assert_eq!(broken.error_id(), "bad_request");
    }
    let apps = server.get("/apps").await.body;
    assert_eq!(apps.as_array().unwrap().len(), 1, "no app was made: {apps}");
    let tokens = server.get("/oauth/authorizations").await.body;
    assert_eq!(
        tokens.as_array().unwrap().len(),
        1,
        "no token was made: {tokens}"
    );
    server.stop().await;
}

/// axum's own rejections of a path or query string are plain text; the API answers every error
/// as `{id, message}` JSON (found by scripts/api-fuzz).
async fn bad_paths_and_query_strings_get_json_errors(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.create_app("shapes").await;
    for (path, says) in [
        (
            "/apps/shapes/releases/1/diff/1?show_values=maybe",
            "bad query string: show_values: provided string was not `true` or `false`",
        ),
        ("/apps/%FF", "bad path: Invalid UTF-8 in `app`"),
        ("/builds/%FF/output", "bad path: Invalid UTF-8 in `id`"),
    ] {
        let reply = server.get(path).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{path}: {reply:?}");
        assert!(
            reply
                .header("content-type")
                .unwrap()
                .starts_with("application/json"),
            "{path}: {reply:?}"
        );
        assert_eq!(reply.error_id(), "bad_request", "{path}");
        assert_eq!(reply.message(), says, "{path}");
    }
    server.stop().await;
}

/// A request whose body is still arriving when shutdown begins gets its answer, and the server
/// stops once it has.
async fn shutdown_lets_requests_in_flight_finish(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.create_app("inflight").await;
    let body = br#"{"DURING": "shutdown"}"#;
    let mut socket = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "PATCH /apps/inflight/config-vars HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {ADMIN_TOKEN}\r\n\
         content-type: application/json\r\nexpect: 100-continue\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    // The server says `100 Continue` once the handler starts reading the body: from then on the
    // request is in flight.
    let mut interim = [0u8; 25];
    socket.read_exact(&mut interim).await.unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");

    let addr = server.addr;
    let stopping = tokio::spawn(server.stop());
    // New connections are refused once shutdown has begun; wait for that rather than sleeping.
    wharf_test_support::wait_until_async(
        Duration::from_secs(10),
        "the listener to close",
        || async {
            match tokio::net::TcpStream::connect(addr).await {
                Ok(_) => Err("it still accepts connections".to_owned()),
                Err(_) => Ok(()),
            }
        },
    )
    .await;
    assert!(
        !stopping.is_finished(),
        "the server stopped with a request in flight"
    );
    socket.write_all(body).await.unwrap();
    let mut response = Vec::new();
    socket.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response.contains(r#""DURING":"shutdown""#),
        "the change was applied: {response}"
    );
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .unwrap()
        .unwrap();
}
