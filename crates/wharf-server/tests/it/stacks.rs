//! `/stacks`: the host-bound `wharf-1` and wharf's own stacks, listed as Heroku lists stacks,
//! made on request, and kept by garbage collection. (Making one for real is
//! `wharf-stack`'s test: it downloads Debian packages.)

use std::collections::BTreeMap;

use reqwest::StatusCode;
use serde_json::json;

use crate::harness::TestServer;

#[tokio::test]
async fn stacks_are_listed_refused_when_unknown_and_kept_by_gc() {
    let server = TestServer::start(crate::harness::Backend::Sqlite).await;
    let list = server.get("/stacks").await;
    assert_eq!(list.status, StatusCode::OK);
    let stacks = list.body.as_array().unwrap();
    let names: Vec<&str> = stacks.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["wharf-1", "wharf-bookworm", "wharf-trixie"]);
    assert_eq!(stacks[0]["status"], "host");
    assert_eq!(stacks[0]["default"], true);
    assert_eq!(stacks[2]["status"], "absent");
    assert_eq!(stacks[2]["suite"], "trixie");
    // By name or id; ids stay the same.
    let by_id = server
        .get(&format!("/stacks/{}", stacks[2]["id"].as_str().unwrap()))
        .await;
    assert_eq!(by_id.body["name"], "wharf-trixie");
    let missing = server.get("/stacks/heroku-24").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.message().contains("heroku-24"), "{missing:?}");

    // Without a sandbox, apps stay on the host-bound stack.
    server.create_app("bound").await;
    let refused = server
        .patch("/apps/bound", json!({"build_stack": "wharf-trixie"}))
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused.message().contains("needs the sandbox"),
        "{refused:?}"
    );
    let unknown = server
        .patch("/apps/bound", json!({"build_stack": "heroku-24"}))
        .await;
    assert!(
        unknown.message().contains("unknown stack `heroku-24`"),
        "{unknown:?}"
    );
    let kept = server
        .patch("/apps/bound", json!({"build_stack": "wharf-1"}))
        .await;
    assert_eq!(kept.status, StatusCode::OK, "{kept:?}");

    // Only wharf's own stacks are made.
    let refused = server.post("/stacks", json!({"name": "heroku-24"})).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.message().contains("wharf-trixie"), "{refused:?}");

    // A stack image in the store is listed, and garbage collection keeps it.
    let images = server.state.control.images().clone();
    let base = images.import_tar_layer(&tar_of_one_file()[..]).unwrap();
    let built = images
        .build_image(&wharf_image::ImageSpec {
            base: vec![base],
            working_dir: "/".to_owned(),
            labels: BTreeMap::from([(wharf_stack::LABEL_SUITE.to_owned(), "sid".to_owned())]),
            ..Default::default()
        })
        .unwrap();
    images
        .tag(&wharf_stack::Role::Run.tag("custom"), &built.manifest)
        .unwrap();
    let gc = server.post("/gc", json!({})).await;
    assert_eq!(gc.status, StatusCode::OK, "{gc:?}");
    let custom = server.get("/stacks/custom").await;
    assert_eq!(custom.status, StatusCode::OK, "{custom:?}");
    assert_eq!(custom.body["suite"], "sid");
    assert_eq!(
        custom.body["run_image"]["digest"],
        built.manifest.to_string()
    );
    // Without a build image it can't build apps: not ready.
    assert_eq!(custom.body["status"], "absent");
    assert!(images.fsck().unwrap().is_healthy());
    server.stop().await;
}

fn tar_of_one_file() -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_mode(0o644);
    header.set_size(5);
    tar.append_data(&mut header, "etc/os-release", &b"sid\n\n"[..])
        .unwrap();
    tar.into_inner().unwrap()
}
