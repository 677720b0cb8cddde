use base64::Engine;
use reqwest::{Method, StatusCode};

use crate::harness::{Backend, TestServer, ADMIN_TOKEN};
use wharf_test_support::on_both_databases;

on_both_databases!(
    account_is_the_tokens_owner,
    requests_without_a_valid_token_are_refused,
    health_needs_no_token
);

async fn account_is_the_tokens_owner(backend: Backend) {
    let server = TestServer::start(backend).await;
    let reply = server.get("/account").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["email"], "admin@wharf.local");
    assert!(reply.body["id"].as_str().is_some_and(|id| !id.is_empty()));
    server.stop().await;
}

async fn requests_without_a_valid_token_are_refused(backend: Backend) {
    let server = TestServer::start(backend).await;
    for path in [
        "/account",
        "/apps",
        "/apps/nope/config-vars",
        "/openapi.json",
    ] {
        let none = server.send(server.http.get(server.url(path))).await;
        assert_eq!(none.status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(none.error_id(), "unauthorized");
        assert!(none.message().contains("wharf login"), "{}", none.message());

        let wrong = server
            .send(server.http.get(server.url(path)).bearer_auth("not-a-token"))
            .await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{path}");
        assert!(
            wrong.message().contains("unknown or revoked"),
            "{}",
            wrong.message()
        );

        let scheme = server
            .send(
                server
                    .http
                    .get(server.url(path))
                    .header("authorization", "Token abc"),
            )
            .await;
        assert_eq!(scheme.status, StatusCode::UNAUTHORIZED, "{path}");
    }
    // A refused request changes nothing.
    let create = server
        .send(
            server
                .http
                .post(server.url("/apps"))
                .json(&serde_json::json!({"name": "sneaky"})),
        )
        .await;
    assert_eq!(create.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        server.get("/apps/sneaky").await.status,
        StatusCode::NOT_FOUND
    );

    // The token also works as the password of Basic auth, as git and netrc clients send it.
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("git:{ADMIN_TOKEN}"));
    let reply = server
        .send(
            server
                .http
                .get(server.url("/account"))
                .header("authorization", format!("Basic {basic}")),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);

    // A revoked token stops working at once.
    let account = server.state.store.admin_account().await.unwrap();
    let token = server
        .state
        .store
        .create_token(&account.id, "short-lived")
        .await
        .unwrap();
    let ok = server
        .send(
            server
                .http
                .get(server.url("/account"))
                .bearer_auth(&token.secret),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    server
        .state
        .store
        .revoke_token(&token.record.id)
        .await
        .unwrap();
    let revoked = server
        .send(
            server
                .http
                .get(server.url("/account"))
                .bearer_auth(&token.secret),
        )
        .await;
    assert_eq!(revoked.status, StatusCode::UNAUTHORIZED);
    server.stop().await;
}

async fn health_needs_no_token(backend: Backend) {
    let server = TestServer::start(backend).await;
    let reply = server
        .send(server.http.request(Method::GET, server.url("/healthz")))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["status"], "ok");
    server.stop().await;
}
