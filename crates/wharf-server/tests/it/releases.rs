use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{Backend, TestServer};
use wharf_test_support::on_both_databases;

on_both_databases!(
    a_new_app_has_its_initial_release,
    releases_by_version_or_id_with_their_config,
    release_lists_page_newest_first
);

async fn a_new_app_has_its_initial_release(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.create_app("fresh").await;
    let list = server.get("/apps/fresh/releases").await;
    assert_eq!(list.status, StatusCode::OK);
    let v1 = &list.body[0];
    assert_eq!(v1["version"], 1);
    assert_eq!(v1["description"], "Initial release");
    assert_eq!(v1["status"], "succeeded");
    assert_eq!(v1["current"], true);
    assert_eq!(v1["eligible_for_rollback"], false);
    assert_eq!(v1["app"]["name"], "fresh");
    assert_eq!(v1["user"]["email"], "admin@wharf.local");
    assert_eq!(v1["slug"], serde_json::Value::Null);
    server.stop().await;
}

async fn releases_by_version_or_id_with_their_config(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.create_app("hist").await;
    server
        .patch("/apps/hist/config-vars", json!({"A": "1"}))
        .await;
    server
        .patch("/apps/hist/config-vars", json!({"A": "2", "B": "x"}))
        .await;

    let v2 = server.get("/apps/hist/releases/2").await;
    assert_eq!(v2.status, StatusCode::OK);
    assert_eq!(v2.body["version"], 2);
    assert_eq!(v2.body["current"], false);
    // A release made before the app's first build has no image to roll back to.
    assert_eq!(v2.body["eligible_for_rollback"], false);
    assert_eq!(server.get("/apps/hist/releases/v2").await.body, v2.body);
    let id = v2.body["id"].as_str().unwrap();
    assert_eq!(
        server.get(&format!("/apps/hist/releases/{id}")).await.body,
        v2.body
    );

    // Each release keeps the config it was made with.
    assert_eq!(
        server.get("/apps/hist/releases/2/config-vars").await.body,
        json!({"A": "1"})
    );
    assert_eq!(
        server.get("/apps/hist/releases/3/config-vars").await.body,
        json!({"A": "2", "B": "x"})
    );
    assert_eq!(
        server.get("/apps/hist/releases/1/config-vars").await.body,
        json!({})
    );
    assert_eq!(
        server.get("/apps/hist/releases/3").await.body["current"],
        true
    );

    for missing in ["4", "v99", "0", "not-an-id"] {
        let reply = server.get(&format!("/apps/hist/releases/{missing}")).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{missing}");
        assert_eq!(reply.error_id(), "not_found");
        assert!(reply.message().contains("release"), "{}", reply.message());
    }
    server.stop().await;
}

async fn release_lists_page_newest_first(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.create_app("pages").await;
    for i in 0..6 {
        server
            .patch("/apps/pages/config-vars", json!({ "N": i.to_string() }))
            .await;
    }
    let mut versions = Vec::new();
    let mut range = "version ..; max=3, order=desc".to_owned();
    loop {
        let reply = server
            .send(
                server
                    .request(reqwest::Method::GET, "/apps/pages/releases")
                    .header("range", &range),
            )
            .await;
        versions.extend(
            reply
                .body
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["version"].as_u64().unwrap()),
        );
        match reply.header("next-range") {
            Some(next) => range = next.to_owned(),
            None => break,
        }
        assert!(versions.len() <= 7, "pagination does not end");
    }
    assert_eq!(versions, [7, 6, 5, 4, 3, 2, 1]);

    let bad = server
        .send(
            server
                .request(reqwest::Method::GET, "/apps/pages/releases")
                .header("range", "version ]abc.."),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.message().contains("whole number"), "{}", bad.message());
    server.stop().await;
}
