//! The git endpoint's edges, with a real git: who may fetch and push, what a wrong request is
//! told, and that a destroyed app's repository goes with it. (Pushes that deploy are tested
//! with the real binary, in crates/wharf.)

use reqwest::{Method, StatusCode};

use crate::harness::{Backend, TestServer, ADMIN_TOKEN};
use wharf_test_support::on_both_databases;

on_both_databases!(git_asks_for_a_token_and_checks_its_requests);

async fn git_asks_for_a_token_and_checks_its_requests(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.create_app("repo-app").await;
    let refs = "/repo-app.git/info/refs?service=git-receive-pack";

    // No token: 401 with the header that makes git ask for credentials.
    let anonymous = reqwest::Client::new()
        .get(server.url(refs))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        anonymous.headers()["www-authenticate"],
        "Basic realm=\"wharf\""
    );
    let wrong = reqwest::Client::new()
        .get(server.url(refs))
        .basic_auth("git", Some("not-a-token"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);

    // The token as the password: git's ref advertisement of the (new, empty) repository.
    let advertised = reqwest::Client::new()
        .get(server.url(refs))
        .basic_auth("git", Some(ADMIN_TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(advertised.status(), StatusCode::OK);
    assert_eq!(
        advertised.headers()["content-type"],
        "application/x-git-receive-pack-advertisement"
    );
    let body = advertised.text().await.unwrap();
    assert!(
        body.starts_with("001f# service=git-receive-pack\n"),
        "{body:?}"
    );

    // Wrong requests are told what is wrong.
    let dumb = server.get("/repo-app.git/info/refs").await;
    assert_eq!(dumb.status, StatusCode::BAD_REQUEST);
    assert!(dumb.message().contains("smart HTTP"), "{dumb:?}");
    let unknown = server
        .get("/nobody.git/info/refs?service=git-upload-pack")
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let not_git = server
        .send(
            server
                .request(Method::POST, "/repo-app.git/git-receive-pack")
                .body("hello"),
        )
        .await;
    assert_eq!(not_git.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // A real git sees the repository; the repository goes with the app.
    let url = format!("http://git:{ADMIN_TOKEN}@{}/repo-app.git", server.addr);
    let listed = tokio::process::Command::new("git")
        .args(["ls-remote", &url])
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .await
        .unwrap();
    assert!(listed.status.success(), "{listed:?}");
    let repo_dir = server.data_dir.join("git");
    let repos = || {
        std::fs::read_dir(&repo_dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".git")
            })
            .count()
    };
    assert_eq!(repos(), 1);
    assert_eq!(server.delete("/apps/repo-app").await.status, StatusCode::OK);
    assert_eq!(repos(), 0);
    server.stop().await;
}
