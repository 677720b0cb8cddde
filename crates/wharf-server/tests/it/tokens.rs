//! API tokens (`/oauth/authorizations`), and the authorization matrix: every operation of the
//! OpenAPI document refuses a request without a token, with an unknown one and with a revoked
//! one; every signed URL refuses a missing or tampered signature.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::harness::{Backend, TestServer, ADMIN_TOKEN};
use wharf_test_support::on_both_databases;

on_both_databases!(
    tokens_are_made_listed_and_revoked,
    every_route_checks_its_credentials
);

async fn tokens_are_made_listed_and_revoked(backend: Backend) {
    let server = TestServer::start(backend).await;
    let made = server
        .post(
            "/oauth/authorizations",
            json!({"description": "CI deploys"}),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{made:?}");
    let id = made.body["id"].as_str().unwrap().to_owned();
    let secret = made.body["access_token"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(made.body["description"], "CI deploys");
    assert_eq!(made.body["scope"], json!(["global"]));
    assert_eq!(made.body["user"]["email"], "admin@wharf.local");

    // The new token works; lists and lookups never show a secret.
    let as_new = server
        .send(
            reqwest::Client::new()
                .get(server.url("/account"))
                .bearer_auth(&secret),
        )
        .await;
    assert_eq!(as_new.status, StatusCode::OK);
    let listed = server.get("/oauth/authorizations").await;
    assert_eq!(listed.status, StatusCode::OK);
    let listed = listed.body.as_array().unwrap().clone();
    assert_eq!(
        listed.len(),
        2,
        "the admin token and the new one: {listed:?}"
    );
    assert!(
        listed.iter().all(|t| t["access_token"].is_null()),
        "{listed:?}"
    );
    assert!(!serde_json::to_string(&listed).unwrap().contains(&secret));
    let info = server.get(&format!("/oauth/authorizations/{id}")).await;
    assert_eq!(info.status, StatusCode::OK);
    assert!(info.body["access_token"].is_null());

    // Bad requests change nothing.
    for (body, needle) in [
        (json!({"expires_in": 60}), "don't expire"),
        (json!({"scope": ["read"]}), "scope"),
        (json!({"description": "x".repeat(201)}), "at most 200"),
    ] {
        let refused = server.post("/oauth/authorizations", body).await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(refused.message().contains(needle), "{refused:?}");
    }
    assert_eq!(
        server
            .get("/oauth/authorizations")
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Revoked: refused from now on, gone from the list.
    let revoked = server.delete(&format!("/oauth/authorizations/{id}")).await;
    assert_eq!(revoked.status, StatusCode::OK, "{revoked:?}");
    let as_revoked = server
        .send(
            reqwest::Client::new()
                .get(server.url("/account"))
                .bearer_auth(&secret),
        )
        .await;
    assert_eq!(as_revoked.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        server
            .delete(&format!("/oauth/authorizations/{id}"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    // The last live token can't be revoked.
    let last = server.get("/oauth/authorizations").await.body[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let refused = server
        .delete(&format!("/oauth/authorizations/{last}"))
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert_eq!(
        server.get("/account").await.status,
        StatusCode::OK,
        "the admin token still works"
    );
    server.stop().await;
}

async fn every_route_checks_its_credentials(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.create_app("matrix-app").await;
    // A token made and revoked.
    let made = server
        .post("/oauth/authorizations", json!({"description": "to revoke"}))
        .await;
    let revoked = made.body["access_token"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let id = made.body["id"].as_str().unwrap();
    assert_eq!(
        server
            .delete(&format!("/oauth/authorizations/{id}"))
            .await
            .status,
        StatusCode::OK
    );

    let document = serde_json::to_value(wharf_server::openapi_document()).unwrap();
    let mut checked = 0;
    for (path, operations) in document["paths"].as_object().unwrap() {
        let concrete = path
            .replace("{app}", "matrix-app")
            .replace("{repo}", "matrix-app.git")
            .replace("{user}", "~")
            .replace("{release}", "1")
            .replace("{reference}", "latest")
            .replace(
                "{digest}",
                "sha256:0000000000000000000000000000000000000000000000000000000000000000",
            )
            .replace("{build}", "0e6f0a9e-4a4b-4c6c-9a51-0f5a0c5f2b11")
            .replace("{id}", "0e6f0a9e-4a4b-4c6c-9a51-0f5a0c5f2b11");
        for (method, operation) in operations.as_object().unwrap() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let public = operation["security"].as_array().is_some_and(|s| {
                s.iter()
                    .all(|r| r.as_object().is_some_and(|o| o.is_empty()))
            });
            let signed = operation["parameters"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p["name"] == "signature"));
            let send = |credential: Option<&str>, query: &str| {
                let mut request = reqwest::Client::new()
                    .request(method.clone(), server.url(&format!("{concrete}{query}")));
                if let Some(token) = credential {
                    request = request.bearer_auth(token);
                }
                if method != Method::GET && method != Method::DELETE {
                    request = request.json(&json!({}));
                }
                server.send(request)
            };
            if signed {
                // No token needed, but a valid signature.
                for query in ["", "?expires=99999999999&signature=00ff"] {
                    let reply = send(None, query).await;
                    assert!(
                        reply.status == StatusCode::FORBIDDEN
                            || reply.status == StatusCode::NOT_FOUND,
                        "{method} {path}{query} without a valid signature: {reply:?}"
                    );
                    assert!(
                        reply.status == StatusCode::FORBIDDEN || !reply.message().is_empty(),
                        "{reply:?}"
                    );
                }
                checked += 1;
                continue;
            }
            if public {
                continue;
            }
            for (what, credential) in [
                ("no token", None),
                ("an unknown token", Some("not-a-token")),
                ("a revoked token", Some(revoked.as_str())),
            ] {
                let reply = send(credential, "").await;
                assert_eq!(
                    reply.status,
                    StatusCode::UNAUTHORIZED,
                    "{method} {path} with {what}: {reply:?}"
                );
                let body: &Value = &reply.body;
                if path.starts_with("/v2/") {
                    // The registry answers as registries do, with a token challenge.
                    assert_eq!(
                        body["errors"][0]["code"], "UNAUTHORIZED",
                        "{method} {path}: {body}"
                    );
                    assert!(
                        reply
                            .header("www-authenticate")
                            .is_some_and(|c| c.starts_with("Bearer realm=")),
                        "{method} {path}: {reply:?}"
                    );
                } else {
                    assert_eq!(body["id"], "unauthorized", "{method} {path}: {body}");
                }
            }
            checked += 1;
        }
    }
    assert!(checked > 40, "only {checked} operations checked");
    // The admin token still works after all that.
    assert_eq!(server.get("/account").await.status, StatusCode::OK);
    let _ = ADMIN_TOKEN;
    server.stop().await;
}
