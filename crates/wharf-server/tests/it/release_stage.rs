//! The release stage: rollback (image and config, no build), the release phase (success,
//! failure, timeout, and no interleaving), promotion of one app's image to another, and what
//! changed between two releases.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::harness::{Backend, TestServer};
use crate::router::{at, client, deploy, source, until_body};
use wharf_test_support::on_both_databases;

on_both_databases!(
    rollback_restores_image_and_config_without_a_build,
    the_release_phase_gates_each_release,
    gc_keeps_what_releases_use_and_frees_the_rest,
);

/// Polls release `version` of `app` until it is no longer pending.
async fn settled(server: &TestServer, app: &str, version: u64) -> Value {
    let what = format!("v{version} of {app} to be no longer pending");
    wharf_test_support::wait_until_async(Duration::from_secs(60), &what, || async {
        let release = server
            .get(&format!("/apps/{app}/releases/{version}"))
            .await
            .body;
        if release["status"] != "pending" {
            Ok(release)
        } else {
            Err(format!("{release:#}"))
        }
    })
    .await
}

async fn newest_release(server: &TestServer, app: &str) -> Value {
    let releases = server
        .send(
            server
                .request(reqwest::Method::GET, &format!("/apps/{app}/releases"))
                .header("Range", "version ..; max=1, order=desc"),
        )
        .await;
    releases.body[0].clone()
}

async fn rollback_restores_image_and_config_without_a_build(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.create_app("back").await; // v1
    server
        .patch("/apps/back/config-vars", json!({"VERSION": "1"}))
        .await; // v2
    deploy(&server, "back", source("a", "web: python3 app.py\n")).await; // v3
    server
        .patch(
            "/apps/back/config-vars",
            json!({"VERSION": "2", "EXTRA": "x"}),
        )
        .await; // v4
    deploy(&server, "back", source("b", "web: python3 app.py\n")).await; // v5
    let http = client(&server, &["back.localhost"]);
    let url = at(&server, "back.localhost", "/");
    until_body(&http, &url, "v5", |s, b| {
        s == StatusCode::OK && b.starts_with("2 b ")
    })
    .await;
    let v3 = server.get("/apps/back/releases/3").await.body;
    assert_eq!(v3["eligible_for_rollback"], true);
    let build_ids = |builds: Value| -> Vec<Value> {
        builds
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["id"].clone())
            .collect()
    };
    let builds_before = build_ids(server.get("/apps/back/builds").await.body);

    let rolled = server
        .post("/apps/back/releases", json!({"release": "v3"}))
        .await;
    assert_eq!(rolled.status, StatusCode::CREATED, "{rolled:?}");
    assert_eq!(rolled.body["version"], 6);
    assert_eq!(rolled.body["description"], "Rollback to v3");
    assert_eq!(rolled.body["slug"]["id"], v3["slug"]["id"], "v3's image");
    assert_eq!(rolled.body["current"], true);
    assert_eq!(rolled.body["eligible_for_rollback"], false);
    // v3's code and v3's config are served again.
    until_body(&http, &url, "v3 again", |s, b| {
        s == StatusCode::OK && b.starts_with("1 a ")
    })
    .await;
    // The config is v3's, for the app too: EXTRA (set after v3) is gone.
    let config = server.get("/apps/back/config-vars").await.body;
    assert_eq!(config, json!({"VERSION": "1"}));
    let snapshot = server.get("/apps/back/releases/6/config-vars").await.body;
    assert_eq!(snapshot, json!({"VERSION": "1"}));
    // Nothing was built.
    assert_eq!(
        build_ids(server.get("/apps/back/builds").await.body),
        builds_before
    );

    // What can't be rolled back to, and why.
    let refused = |body: Value| {
        let server = &server;
        async move { server.post("/apps/back/releases", body).await }
    };
    let current = refused(json!({"release": "6"})).await;
    assert_eq!(current.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        current.message().contains("already the current release"),
        "{current:?}"
    );
    let imageless = refused(json!({"release": "1"})).await;
    assert_eq!(imageless.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(imageless.message().contains("no image"), "{imageless:?}");
    let missing = refused(json!({"release": "42"})).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let neither = refused(json!({})).await;
    assert_eq!(neither.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(neither.message().contains("`release`"), "{neither:?}");
    let both = refused(json!({"release": "3", "slug": v3["slug"]["id"]})).await;
    assert_eq!(both.status, StatusCode::UNPROCESSABLE_ENTITY);
    // A rollback to a rollback works too: v5 is two back.
    // (Versions may come as numbers, as the Heroku CLI sends them.)
    let again = refused(json!({"release": 5})).await;
    assert_eq!(again.status, StatusCode::CREATED, "{again:?}");
    until_body(&http, &url, "v5 again", |s, b| {
        s == StatusCode::OK && b.starts_with("2 b ")
    })
    .await;
    server.stop().await;
}

/// A web process plus a release phase that prints a line, then exits with `$RELEASE_EXIT` (0
/// when unset) after sleeping `$RELEASE_SLEEP` seconds (0 when unset).
fn with_release_phase(code: &str) -> Vec<u8> {
    source(
        code,
        "web: python3 app.py\nrelease: echo \"migrating for $VERSION\"; sleep ${RELEASE_SLEEP:-0}; exit ${RELEASE_EXIT:-0}\n",
    )
}

async fn the_release_phase_gates_each_release(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.create_app("phased").await;
    server
        .patch("/apps/phased/config-vars", json!({"VERSION": "1"}))
        .await; // v2
    deploy(&server, "phased", with_release_phase("a")).await; // v3
    let v3 = settled(&server, "phased", 3).await;
    assert_eq!(v3["status"], "succeeded", "{v3:#}");
    assert_eq!(v3["current"], true);
    let output = server
        .fetch(v3["output_stream_url"].as_str().unwrap(), None)
        .await;
    assert!(output.contains("migrating for 1"), "{output}");
    assert!(output.contains("Release phase succeeded"), "{output}");
    // The release phase is not a process type to scale.
    let formation = server.get("/apps/phased/formation").await.body;
    let types: Vec<&str> = formation
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["web"]);
    let http = client(&server, &["phased.localhost"]);
    let url = at(&server, "phased.localhost", "/");
    until_body(&http, &url, "v3", |s, b| {
        s == StatusCode::OK && b.starts_with("1 a ")
    })
    .await;

    // A release phase that fails: the release fails, the running one keeps serving.
    let changed = server
        .patch(
            "/apps/phased/config-vars",
            json!({"VERSION": "2", "RELEASE_EXIT": "3"}),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{changed:?}");
    let v4 = settled(&server, "phased", 4).await;
    assert_eq!(v4["status"], "failed", "{v4:#}");
    assert_eq!(v4["current"], false);
    assert!(
        v4["status_reason"]
            .as_str()
            .unwrap()
            .contains("exited with status 3"),
        "{v4:#}"
    );
    let output = server
        .fetch(v4["output_stream_url"].as_str().unwrap(), None)
        .await;
    assert!(output.contains("migrating for 2"), "{output}");
    assert_eq!(
        server.get("/apps/phased/releases/3").await.body["current"],
        true
    );
    let body = http.get(&url).send().await.unwrap().text().await.unwrap();
    assert!(
        body.starts_with("1 a "),
        "the old release still serves: {body}"
    );
    // The config change that failed is undone: the app's config is the running release's.
    let config = server.get("/apps/phased/config-vars").await.body;
    assert_eq!(config, json!({"VERSION": "1"}));
    // A failed release can't be rolled back to.
    let refused = server
        .post("/apps/phased/releases", json!({"release": "4"}))
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.message().contains("failed"), "{refused:?}");

    // A release phase that runs past the timeout (6 s in tests): stopped, the release fails.
    // While it runs, no other release of the app can be made.
    server
        .patch(
            "/apps/phased/config-vars",
            json!({"RELEASE_EXIT": null, "RELEASE_SLEEP": "600"}),
        )
        .await; // v5
    let pending = newest_release(&server, "phased").await;
    assert_eq!(pending["version"], 5);
    assert_eq!(pending["status"], "pending");
    let blocked = server
        .patch("/apps/phased/config-vars", json!({"OTHER": "1"}))
        .await;
    assert_eq!(blocked.status, StatusCode::CONFLICT, "{blocked:?}");
    assert!(blocked.message().contains("release phase"), "{blocked:?}");
    // A build finishing meanwhile waits for the release phase instead, then releases.
    let waiting = crate::builds::build(&server, "phased", with_release_phase("b")).await;
    let v5 = settled(&server, "phased", 5).await;
    assert_eq!(v5["status"], "failed", "{v5:#}");
    assert!(
        v5["status_reason"]
            .as_str()
            .unwrap()
            .contains("longer than 6s"),
        "{v5:#}"
    );
    let (output, built) = crate::builds::finish(&server, "phased", &waiting).await;
    assert_eq!(built["status"], "succeeded", "{output}");
    assert!(
        output.contains("Waiting for the app's release phase to finish"),
        "{output}"
    );
    assert!(output.contains("Released v6"), "{output}");
    // The failed v5's config was undone before the build released, so its release phase
    // (with the running release's config) passes and the new code goes live.
    let v6 = settled(&server, "phased", 6).await;
    assert_eq!(v6["status"], "succeeded", "{v6:#}");
    let config = server.get("/apps/phased/config-vars").await.body;
    assert_eq!(
        config,
        json!({"VERSION": "1"}),
        "neither OTHER nor the sleep"
    );
    until_body(&http, &url, "v6", |s, b| {
        s == StatusCode::OK && b.starts_with("1 b ")
    })
    .await;
    // The app's log says what happened to each.
    let session = server
        .post("/apps/phased/log-sessions", json!({"lines": 500}))
        .await;
    let log = server
        .wait_for_log(
            session.body["logplex_url"].as_str().unwrap(),
            "Release phase of v6 succeeded",
        )
        .await;
    assert!(log.contains("Release phase of v4 failed"), "{log}");
    // The release phase's output is in the log too, under its process name.
    assert!(
        log.lines()
            .any(|l| l.contains("[release.") && l.contains("migrating for 2")),
        "{log}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promotion_releases_the_same_image_with_the_targets_config() {
    let server = TestServer::start(Backend::Sqlite).await;
    server.create_app("staging").await;
    server.create_app("production").await;
    server
        .patch("/apps/staging/config-vars", json!({"VERSION": "stage"}))
        .await;
    server
        .patch("/apps/production/config-vars", json!({"VERSION": "prod"}))
        .await;
    deploy(
        &server,
        "staging",
        source("a", "web: python3 app.py\nworker: sleep 600\n"),
    )
    .await;
    let staged = newest_release(&server, "staging").await;
    let digest = staged["slug"]["id"].clone();

    let promoted = server
        .post(
            "/apps/production/releases",
            json!({"slug": digest, "description": "Promote staging v3"}),
        )
        .await;
    assert_eq!(promoted.status, StatusCode::CREATED, "{promoted:?}");
    assert_eq!(
        promoted.body["slug"]["id"], digest,
        "the same image, unchanged"
    );
    assert_eq!(promoted.body["description"], "Promote staging v3");
    // Production runs it with its own config; nothing was built there.
    let http = client(&server, &["production.localhost"]);
    let url = at(&server, "production.localhost", "/");
    until_body(&http, &url, "the promoted image", |s, b| {
        s == StatusCode::OK && b.starts_with("prod a ")
    })
    .await;
    assert_eq!(server.get("/apps/production/builds").await.body, json!([]));
    // The image's process types came along.
    let formation = server.get("/apps/production/formation").await.body;
    assert_eq!(formation.as_array().unwrap().len(), 2, "{formation:#}");

    // What isn't an image, or isn't one any release runs.
    let bad = server
        .post("/apps/production/releases", json!({"slug": "latest"}))
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.message().contains("not an image digest"), "{bad:?}");
    let unknown = server
        .post(
            "/apps/production/releases",
            json!({"slug": format!("sha256:{}", "0".repeat(64))}),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        unknown.message().contains("no longer stored"),
        "{unknown:?}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_diff_names_what_changed_between_two_releases() {
    let server = TestServer::start(Backend::Sqlite).await;
    server.create_app("diffed").await;
    server
        .patch("/apps/diffed/config-vars", json!({"A": "1", "B": "2"}))
        .await; // v2
    deploy(&server, "diffed", source("a", "web: python3 app.py\n")).await; // v3
    server
        .patch(
            "/apps/diffed/config-vars",
            json!({"A": null, "B": "3", "C": "4"}),
        )
        .await; // v4
    deploy(
        &server,
        "diffed",
        source("b", "web: python3 app.py --new\nworker: sleep 600\n"),
    )
    .await; // v5
    let diff = server.get("/apps/diffed/releases/3/diff/5").await;
    assert_eq!(diff.status, StatusCode::OK, "{diff:?}");
    let body = &diff.body;
    assert_eq!(body["from"], 3);
    assert_eq!(body["to"], 5);
    assert_eq!(body["image"]["changed"], true);
    assert_eq!(body["provider"]["changed"], false);
    assert_eq!(
        body["process_types"],
        json!([
            {"key": "web", "change": "changed", "from": "python3 app.py", "to": "python3 app.py --new"},
            {"key": "worker", "change": "added", "from": null, "to": "sleep 600"},
        ])
    );
    assert_eq!(
        body["config_vars"],
        json!([
            {"key": "A", "change": "removed", "from": null, "to": null},
            {"key": "B", "change": "changed", "from": null, "to": null},
            {"key": "C", "change": "added", "from": null, "to": null},
        ]),
        "values hidden by default"
    );
    let shown = server
        .get("/apps/diffed/releases/3/diff/4?show_values=true")
        .await;
    assert_eq!(shown.body["image"]["changed"], false);
    assert_eq!(shown.body["config_vars"][1]["from"], "2");
    assert_eq!(shown.body["config_vars"][1]["to"], "3");
    let missing = server.get("/apps/diffed/releases/3/diff/9").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    server.stop().await;
}

async fn gc_keeps_what_releases_use_and_frees_the_rest(backend: Backend) {
    let server = TestServer::start(backend).await; // keeps each app's newest 2 releases
    server.create_app("gcd").await; // v1
    for code in ["a", "b", "c", "d"] {
        deploy(&server, "gcd", source(code, "web: python3 app.py\n")).await; // v2..v5
    }
    let http = client(&server, &["gcd.localhost"]);
    let url = at(&server, "gcd.localhost", "/");
    until_body(&http, &url, "v5", |s, b| {
        s == StatusCode::OK && b.starts_with("none d ")
    })
    .await;
    // Another app deployed once, long ago: its current release's image stays, however old.
    server.create_app("pinned").await;
    deploy(&server, "pinned", source("p", "web: python3 app.py\n")).await;

    let report = server.post("/gc", json!({})).await;
    assert_eq!(report.status, StatusCode::OK, "{report:?}");
    let report = report.body;
    assert_eq!(report["images_removed"], 2, "{report:#}"); // a and b
    assert!(report["bytes_freed"].as_u64().unwrap() > 0, "{report:#}");
    let trees: Vec<String> =
        serde_json::from_value(report["release_trees_removed"].clone()).unwrap();
    let versions: Vec<&str> = trees
        .iter()
        .map(|t| t.rsplit('/').next().unwrap())
        .collect();
    // v5's tree is in use by web.1; c's image stays (v4 is recent) but its tree goes.
    assert_eq!(versions, ["v2", "v3", "v4"], "{report:#}");
    let fsck = server.state.control.images().fsck().unwrap();
    assert!(fsck.is_healthy(), "{fsck:?}");
    // The running release never noticed.
    let body = http.get(&url).send().await.unwrap().text().await.unwrap();
    assert!(body.starts_with("none d "), "{body}");

    // A release whose image is gone can't be rolled back to (and says so); one whose image
    // stayed can.
    let v2 = server.get("/apps/gcd/releases/2").await.body;
    assert_eq!(v2["eligible_for_rollback"], false, "{v2:#}");
    let v4 = server.get("/apps/gcd/releases/4").await.body;
    assert_eq!(v4["eligible_for_rollback"], true, "{v4:#}");
    let gone = server
        .post("/apps/gcd/releases", json!({"release": "2"}))
        .await;
    assert_eq!(gone.status, StatusCode::UNPROCESSABLE_ENTITY, "{gone:?}");
    assert!(gone.message().contains("no longer stored"), "{gone:?}");
    let back = server
        .post("/apps/gcd/releases", json!({"release": "4"}))
        .await;
    assert_eq!(back.status, StatusCode::CREATED, "{back:?}");
    until_body(&http, &url, "c again", |s, b| {
        s == StatusCode::OK && b.starts_with("none c ")
    })
    .await;
    // And the other app still runs, and can restart, from its image.
    let pinned = client(&server, &["pinned.localhost"]);
    let pinned_url = at(&server, "pinned.localhost", "/");
    until_body(&pinned, &pinned_url, "pinned", |s, b| {
        s == StatusCode::OK && b.starts_with("none p ")
    })
    .await;

    // Collections racing a build, one after another until the build is done: the build's new
    // image survives every one of them.
    let done = std::sync::atomic::AtomicBool::new(false);
    let racing = async {
        let mut runs = 0;
        while !done.load(std::sync::atomic::Ordering::SeqCst) && runs < 10_000 {
            let reply = server.post("/gc", json!({})).await;
            assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
            runs += 1;
        }
        runs
    };
    let deploying = async {
        deploy(&server, "gcd", source("e", "web: python3 app.py\n")).await;
        done.store(true, std::sync::atomic::Ordering::SeqCst);
    };
    let ((), runs) = tokio::join!(deploying, racing);
    assert!(runs > 1, "collections ran during the build: {runs}");
    until_body(&http, &url, "e", |s, b| {
        s == StatusCode::OK && b.starts_with("none e ")
    })
    .await;
    let fsck = server.state.control.images().fsck().unwrap();
    assert!(fsck.is_healthy(), "{fsck:?}");
    let after = server.post("/gc", json!({})).await.body;
    // Kept: gcd's newest two (e, and c of the rollback) and pinned's current.
    assert_eq!(after["images_kept"], 3, "{after:#}");
    server.stop().await;
}
