use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{Backend, TestServer};
use wharf_test_support::on_both_databases;

on_both_databases!(
    create_and_show_an_app,
    a_generated_name_when_none_is_given,
    duplicate_and_invalid_names_are_refused_without_change,
    malformed_bodies_get_clear_errors,
    rename_and_maintenance,
    destroy_removes_the_app_and_everything_of_it,
    unknown_apps_are_not_found,
    lists_page_with_range_and_next_range,
);

async fn create_and_show_an_app(backend: Backend) {
    let server = TestServer::start(backend).await;
    let app = server.create_app("my-app").await;
    assert_eq!(app["name"], "my-app");
    assert_eq!(
        app["web_url"],
        format!("http://my-app.localhost:{}/", server.router_addr.port())
    );
    assert_eq!(app["git_url"], format!("http://{}/my-app.git", server.addr));
    assert_eq!(app["generation"]["name"], "cedar");
    assert_eq!(app["maintenance"], false);
    assert_eq!(app["build_stack"]["name"], "wharf-1");
    assert_eq!(app["region"]["name"], "local");
    assert_eq!(app["owner"]["email"], "admin@wharf.local");
    assert!(
        app["released_at"].is_string(),
        "the initial release is made with the app"
    );

    let by_name = server.get("/apps/my-app").await;
    assert_eq!(by_name.status, StatusCode::OK);
    assert_eq!(by_name.body, app);
    let by_id = server
        .get(&format!("/apps/{}", app["id"].as_str().unwrap()))
        .await;
    assert_eq!(by_id.body, app);

    let list = server.get("/apps").await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.body, json!([app]));
    assert!(list.header("next-range").is_none());
    server.stop().await;
}

async fn a_generated_name_when_none_is_given(backend: Backend) {
    let server = TestServer::start(backend).await;
    let reply = server.post("/apps", json!({})).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
    let name = reply.body["name"].as_str().unwrap().to_owned();
    assert!(wharf_core::name::AppName::parse(&name).is_ok(), "{name}");
    assert_eq!(
        server.get(&format!("/apps/{name}")).await.status,
        StatusCode::OK
    );
    server.stop().await;
}

async fn duplicate_and_invalid_names_are_refused_without_change(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.create_app("taken").await;
    let dup = server.post("/apps", json!({"name": "taken"})).await;
    assert_eq!(dup.status, StatusCode::CONFLICT);
    assert_eq!(dup.error_id(), "conflict");
    assert!(
        dup.message().contains("`taken` is already taken"),
        "{}",
        dup.message()
    );

    for (name, hint) in [
        ("My-App", "lowercase"),
        ("ab", "3"),
        ("1app", "start with a letter"),
        ("a_b_c", "only contain"),
    ] {
        let reply = server.post("/apps", json!({ "name": name })).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{name}");
        assert_eq!(reply.error_id(), "invalid_params");
        assert!(
            reply.message().contains(hint),
            "{name}: {}",
            reply.message()
        );
    }
    let too_long = server
        .post("/apps", json!({ "name": "a".repeat(31) }))
        .await;
    assert_eq!(too_long.status, StatusCode::UNPROCESSABLE_ENTITY);

    let region = server
        .post("/apps", json!({"name": "elsewhere", "region": "eu"}))
        .await;
    assert_eq!(region.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        region.message().contains("region `local`"),
        "{}",
        region.message()
    );
    let stack = server
        .post("/apps", json!({"name": "elsewhere", "stack": "heroku-24"}))
        .await;
    assert_eq!(stack.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(stack.message().contains("wharf-1"), "{}", stack.message());

    let list = server.get("/apps").await;
    assert_eq!(
        list.body.as_array().unwrap().len(),
        1,
        "only the first app exists"
    );
    server.stop().await;
}

async fn malformed_bodies_get_clear_errors(backend: Backend) {
    let server = TestServer::start(backend).await;
    let bad_json = server
        .send(
            server
                .request(reqwest::Method::POST, "/apps")
                .body("{\"name\": "),
        )
        .await;
    assert_eq!(bad_json.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad_json.error_id(), "bad_request");
    assert!(
        bad_json.message().contains("not valid JSON"),
        "{}",
        bad_json.message()
    );

    let empty = server
        .send(server.request(reqwest::Method::POST, "/apps"))
        .await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
    assert!(empty.message().contains("JSON body"), "{}", empty.message());

    let unknown = server
        .post("/apps", json!({"name": "x-app", "colour": "blue"}))
        .await;
    assert_eq!(unknown.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        unknown.message().contains("unknown field `colour`"),
        "{}",
        unknown.message()
    );

    let wrong_type = server.post("/apps", json!({"name": 42})).await;
    assert_eq!(wrong_type.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        wrong_type.message().contains("invalid type"),
        "{}",
        wrong_type.message()
    );

    let patch = server.create_app("real-app").await;
    let bad_patch = server
        .patch("/apps/real-app", json!({"maintenance": "yes"}))
        .await;
    assert_eq!(bad_patch.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        server.get("/apps/real-app").await.body,
        patch,
        "a refused change changes nothing"
    );
    assert_eq!(server.get("/apps").await.body.as_array().unwrap().len(), 1);
    server.stop().await;
}

async fn rename_and_maintenance(backend: Backend) {
    let server = TestServer::start(backend).await;
    let app = server.create_app("old-name").await;
    server.create_app("other").await;

    let renamed = server
        .patch("/apps/old-name", json!({"name": "new-name"}))
        .await;
    assert_eq!(renamed.status, StatusCode::OK);
    assert_eq!(renamed.body["name"], "new-name");
    assert_eq!(renamed.body["id"], app["id"]);
    assert_eq!(
        renamed.body["web_url"],
        format!("http://new-name.localhost:{}/", server.router_addr.port())
    );
    assert_eq!(
        server.get("/apps/old-name").await.status,
        StatusCode::NOT_FOUND
    );

    let taken = server
        .patch("/apps/new-name", json!({"name": "other"}))
        .await;
    assert_eq!(taken.status, StatusCode::CONFLICT);
    let invalid = server
        .patch("/apps/new-name", json!({"name": "Bad Name"}))
        .await;
    assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(server.get("/apps/new-name").await.body["name"], "new-name");

    let on = server
        .patch("/apps/new-name", json!({"maintenance": true}))
        .await;
    assert_eq!(on.body["maintenance"], true);
    assert_eq!(server.get("/apps/new-name").await.body["maintenance"], true);
    let off = server
        .patch("/apps/new-name", json!({"maintenance": false}))
        .await;
    assert_eq!(off.body["maintenance"], false);
    server.stop().await;
}

async fn destroy_removes_the_app_and_everything_of_it(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.create_app("doomed").await;
    server
        .patch("/apps/doomed/config-vars", json!({"SECRET": "x"}))
        .await;
    let deleted = server.delete("/apps/doomed").await;
    assert_eq!(deleted.status, StatusCode::OK);
    assert_eq!(deleted.body["name"], "doomed");
    assert_eq!(
        server.get("/apps/doomed").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        server.get("/apps/doomed/releases").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        server.delete("/apps/doomed").await.status,
        StatusCode::NOT_FOUND
    );

    // The name is free again, and the new app starts from nothing.
    server.create_app("doomed").await;
    assert_eq!(server.get("/apps/doomed/config-vars").await.body, json!({}));
    assert_eq!(
        server
            .get("/apps/doomed/releases")
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        1
    );
    server.stop().await;
}

async fn unknown_apps_are_not_found(backend: Backend) {
    let server = TestServer::start(backend).await;
    for path in [
        "/apps/ghost",
        "/apps/ghost/config-vars",
        "/apps/ghost/releases",
        "/apps/ghost/releases/1",
    ] {
        let reply = server.get(path).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(reply.error_id(), "not_found");
        assert_eq!(reply.message(), "app `ghost` not found");
    }
    assert_eq!(
        server
            .patch("/apps/ghost", json!({"maintenance": true}))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        server
            .patch("/apps/ghost/config-vars", json!({"A": "b"}))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    server.stop().await;
}

async fn lists_page_with_range_and_next_range(backend: Backend) {
    let server = TestServer::start(backend).await;
    let names = ["app-e", "app-a", "app-d", "app-b", "app-c"];
    for name in names {
        server.create_app(name).await;
    }
    let mut seen = Vec::new();
    let mut range = "name ..; max=2".to_owned();
    let mut pages = 0;
    loop {
        let reply = server
            .send(
                server
                    .request(reqwest::Method::GET, "/apps")
                    .header("range", &range),
            )
            .await;
        pages += 1;
        seen.extend(
            reply
                .body
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["name"].as_str().unwrap().to_owned()),
        );
        match reply.header("next-range") {
            Some(next) => {
                assert_eq!(reply.status, StatusCode::PARTIAL_CONTENT);
                range = next.to_owned();
            }
            None => {
                assert_eq!(reply.status, StatusCode::OK);
                break;
            }
        }
        assert!(pages < 10, "pagination does not end");
    }
    assert_eq!(seen, ["app-a", "app-b", "app-c", "app-d", "app-e"]);
    assert_eq!(pages, 3);

    let desc = server
        .send(
            server
                .request(reqwest::Method::GET, "/apps")
                .header("range", "name ..; max=1000, order=desc"),
        )
        .await;
    assert_eq!(desc.body[0]["name"], "app-e");

    for bad in [
        "nonsense",
        "name ..; max=0",
        "name ..; max=1001",
        "colour ..",
        "name ..; order=sideways",
    ] {
        let reply = server
            .send(
                server
                    .request(reqwest::Method::GET, "/apps")
                    .header("range", bad),
            )
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}: {reply:?}");
        assert_eq!(reply.error_id(), "bad_request");
        assert!(!reply.message().is_empty());
    }
    server.stop().await;
}
