use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{Backend, TestServer};
use wharf_test_support::on_both_databases;

on_both_databases!(
    set_and_remove_make_releases,
    a_change_that_changes_nothing_makes_no_release,
    bad_config_is_refused_without_change,
    concurrent_changes_get_distinct_versions,
);

async fn newest_release(server: &TestServer, app: &str) -> serde_json::Value {
    let reply = server
        .send(
            server
                .request(reqwest::Method::GET, &format!("/apps/{app}/releases"))
                .header("range", "version ..; max=1, order=desc"),
        )
        .await;
    reply.body[0].clone()
}

async fn set_and_remove_make_releases(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.create_app("conf").await;
    assert_eq!(server.get("/apps/conf/config-vars").await.body, json!({}));

    let set = server
        .patch(
            "/apps/conf/config-vars",
            json!({"FOO": "1", "BAR": "two words"}),
        )
        .await;
    assert_eq!(set.status, StatusCode::OK);
    assert_eq!(set.body, json!({"BAR": "two words", "FOO": "1"}));
    let v2 = newest_release(&server, "conf").await;
    assert_eq!(v2["version"], 2);
    assert_eq!(v2["description"], "Set BAR, FOO config vars");
    assert_eq!(v2["current"], true);

    let removed = server
        .patch("/apps/conf/config-vars", json!({"FOO": null}))
        .await;
    assert_eq!(removed.body, json!({"BAR": "two words"}));
    assert_eq!(
        newest_release(&server, "conf").await["description"],
        "Remove FOO config vars"
    );

    let both = server
        .patch("/apps/conf/config-vars", json!({"BAR": null, "NEW": "x"}))
        .await;
    assert_eq!(both.body, json!({"NEW": "x"}));
    let v4 = newest_release(&server, "conf").await;
    assert_eq!(v4["version"], 4);
    assert_eq!(
        v4["description"],
        "Set NEW config vars, remove BAR config vars"
    );

    // Multi-line and unicode values survive the round trip.
    let odd = "line one\nline \"two\" — ünïcode $HOME";
    server
        .patch("/apps/conf/config-vars", json!({"ODD": odd}))
        .await;
    assert_eq!(server.get("/apps/conf/config-vars").await.body["ODD"], odd);
    server.stop().await;
}

async fn a_change_that_changes_nothing_makes_no_release(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.create_app("steady").await;
    server
        .patch("/apps/steady/config-vars", json!({"A": "1"}))
        .await;
    for body in [json!({"A": "1"}), json!({"MISSING": null}), json!({})] {
        let reply = server.patch("/apps/steady/config-vars", body).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.body, json!({"A": "1"}));
    }
    assert_eq!(newest_release(&server, "steady").await["version"], 2);
    server.stop().await;
}

async fn bad_config_is_refused_without_change(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.create_app("strict").await;
    server
        .patch("/apps/strict/config-vars", json!({"KEEP": "me"}))
        .await;

    let cases = [
        (json!({"1BAD": "x"}), "1BAD"),
        (json!({"BAD-KEY": "x"}), "BAD-KEY"),
        (json!({"": "x"}), "empty"),
        (json!({"NUM": 5}), "must be a string"),
        (json!({"LIST": ["a"]}), "must be a string"),
        (json!({"NUL": "a\u{0}b"}), "NUL"),
        (json!({"BIG": "x".repeat(33 * 1024)}), "limit"),
    ];
    for (body, hint) in cases {
        let reply = server.patch("/apps/strict/config-vars", body.clone()).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(reply.error_id(), "invalid_params");
        assert!(
            reply.message().contains(hint),
            "{hint}: {}",
            reply.message()
        );
    }
    // Many small values that together pass the cap are refused too.
    let mut many = serde_json::Map::new();
    for i in 0..40 {
        many.insert(format!("K{i}"), json!("v".repeat(1000)));
    }
    let reply = server
        .patch("/apps/strict/config-vars", serde_json::Value::Object(many))
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(reply.message().contains("32768"), "{}", reply.message());

    let not_object = server
        .patch("/apps/strict/config-vars", json!(["KEEP"]))
        .await;
    assert_eq!(not_object.status, StatusCode::UNPROCESSABLE_ENTITY);

    assert_eq!(
        server.get("/apps/strict/config-vars").await.body,
        json!({"KEEP": "me"})
    );
    assert_eq!(newest_release(&server, "strict").await["version"], 2);
    server.stop().await;
}

async fn concurrent_changes_get_distinct_versions(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.create_app("busy").await;
    let mut tasks = Vec::new();
    for i in 0..12 {
        let request = server
            .request(reqwest::Method::PATCH, "/apps/busy/config-vars")
            .json(&json!({ format!("K{i}"): "v" }));
        tasks.push(tokio::spawn(async move {
            request.send().await.unwrap().status()
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), StatusCode::OK);
    }
    let config = server.get("/apps/busy/config-vars").await.body;
    assert_eq!(
        config.as_object().unwrap().len(),
        12,
        "no change was lost: {config}"
    );
    let releases = server.get("/apps/busy/releases").await.body;
    let versions: Vec<u64> = releases
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, (1..=13).collect::<Vec<_>>());
    let current: Vec<_> = releases
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["current"] == true)
        .collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["version"], 13);
    server.stop().await;
}
