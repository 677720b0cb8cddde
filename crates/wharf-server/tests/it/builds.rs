//! Sources and builds over HTTP: signed upload URLs, hostile archives, real builds with streamed
//! output, and the release a successful build makes.

use std::io::Write;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::harness::{Backend, Reply, TestServer};
use wharf_test_support::on_both_databases;

on_both_databases!(
    a_procfile_app_builds_into_a_release,
    a_failed_build_makes_no_release,
    builds_of_one_app_queue_and_other_apps_go_ahead,
);

/// A gzipped tar of `files` (path, contents, executable).
pub fn archive(files: &[(&str, &str, bool)]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    for (path, contents, exec) in files {
        let full = dir.path().join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(&full, contents).unwrap();
        if *exec {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&full, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
    let mut out = Vec::new();
    wharf_image::archive::pack_dir(dir.path(), &mut out).unwrap();
    out
}

/// A gzipped tar holding one raw entry, named and typed as given (no sanitising).
fn hostile(name: &str, kind: tar::EntryType, link: Option<&str>) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    {
        let raw = header.as_old_mut();
        raw.name[..name.len()].copy_from_slice(name.as_bytes());
    }
    header.set_entry_type(kind);
    header.set_mode(0o644);
    header.set_size(if kind == tar::EntryType::Regular {
        2
    } else {
        0
    });
    if let Some(link) = link {
        header.set_link_name(link).unwrap();
    }
    header.set_cksum();
    let body: &[u8] = if kind == tar::EntryType::Regular {
        b"hi"
    } else {
        b""
    };
    tar.append(&header, body).unwrap();
    let bytes = tar.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&bytes).unwrap();
    gz.finish().unwrap()
}

/// A gzipped tar with one file whose path is `len` bytes long.
fn long_path(len: usize) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(2);
    header.set_mode(0o644);
    tar.append_data(
        &mut header,
        format!("{}/x", "d".repeat(len - 2)),
        &b"hi"[..],
    )
    .unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar.into_inner().unwrap()).unwrap();
    gz.finish().unwrap()
}

async fn new_source(server: &TestServer) -> (String, String) {
    let reply = server.post("/sources", json!({})).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
    let blob = &reply.body["source_blob"];
    (
        blob["put_url"].as_str().unwrap().to_owned(),
        blob["get_url"].as_str().unwrap().to_owned(),
    )
}

async fn put(server: &TestServer, url: &str, body: Vec<u8>) -> Reply {
    server.send(server.http.put(url).body(body)).await
}

/// Uploads `bytes` and starts a build of them.
pub async fn build(server: &TestServer, app: &str, bytes: Vec<u8>) -> Value {
    let (put_url, get_url) = new_source(server).await;
    let uploaded = put(server, &put_url, bytes).await;
    assert_eq!(uploaded.status, StatusCode::OK, "{uploaded:?}");
    let reply = server
        .post(
            &format!("/apps/{app}/builds"),
            json!({"source_blob": {"url": get_url, "version": "abc123"}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
    reply.body
}

/// Reads the build's whole output stream (it ends when the build does) and the build after it.
pub async fn finish(server: &TestServer, app: &str, build: &Value) -> (String, Value) {
    let url = build["output_stream_url"].as_str().unwrap();
    let output = tokio::time::timeout(Duration::from_secs(120), async {
        server.fetch(url, None).await
    })
    .await
    .expect("the output stream ends when the build does");
    let id = build["id"].as_str().unwrap();
    let build = wharf_test_support::wait_until_async(
        Duration::from_secs(30),
        "the build to end",
        || async {
            let reply = server.get(&format!("/apps/{app}/builds/{id}")).await;
            if reply.body["status"] != "pending" {
                Ok(reply.body)
            } else {
                Err(format!("{:?}", reply.body))
            }
        },
    )
    .await;
    (output, build)
}

async fn a_procfile_app_builds_into_a_release(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.create_app("built").await;
    server
        .patch(
            "/apps/built/config-vars",
            json!({"SECRET_TOKEN": "never-in-a-build"}),
        )
        .await;
    let source = archive(&[
        ("Procfile", "web: python3 -m http.server $PORT\nworker: sh worker.sh\n", false),
        ("worker.sh", "echo working\n", false),
        ("bin/build", "#!/bin/sh\necho \"building in $(pwd)\"\nenv | sort > build-env.txt\necho done building\n", true),
    ]);
    let started = build(&server, "built", source.clone()).await;
    assert_eq!(started["status"], "pending");
    assert_eq!(started["source_blob"]["version"], "abc123");
    let (output, done) = finish(&server, "built", &started).await;
    assert_eq!(done["status"], "succeeded", "{output}\n{done}");
    assert!(output.contains("done building"), "{output}");
    assert!(output.contains("Released v3"), "{output}");
    assert_eq!(
        done["process_types"],
        json!({"web": "python3 -m http.server $PORT", "worker": "sh worker.sh"})
    );
    assert_eq!(done["provider"], "bin-build");

    // The release: the image and the current config.
    let release = server.get("/apps/built/releases/3").await.body;
    let image = done["slug"]["id"].as_str().unwrap().to_owned();
    assert_eq!(release["slug"]["id"], image.as_str());
    // Built on the host-bound stack: the image holds only /app.
    assert_eq!(release["stack"]["name"], "wharf-1");
    assert_eq!(release["portable"], false);
    assert_eq!(release["run_image"], serde_json::Value::Null);
    assert_eq!(release["current"], true);
    assert_eq!(
        release["description"],
        format!("Deploy {}", &image["sha256:".len()..][..12])
    );
    assert_eq!(done["release"]["id"], release["id"]);
    assert_eq!(
        server.get("/apps/built/releases/3/config-vars").await.body["SECRET_TOKEN"],
        "never-in-a-build"
    );

    // The build never saw the app's config.
    let store = wharf_image::ImageStore::open(&server.data_dir.join("images")).unwrap();
    let digest = wharf_image::Digest::parse(&image).unwrap();
    let extracted = tempfile::tempdir().unwrap();
    let target = extracted.path().join("root");
    store.extract(&digest, &target).unwrap();
    let env = std::fs::read_to_string(target.join("app/build-env.txt")).unwrap();
    assert!(
        !env.contains("never-in-a-build") && !env.contains("SECRET_TOKEN"),
        "{env}"
    );
    assert!(!env.contains("WHARF_"), "{env}");
    let labels = store.image(&digest).unwrap().labels();
    assert_eq!(
        labels.get("dev.wharf.process.web").map(String::as_str),
        Some("python3 -m http.server $PORT")
    );

    // The same source gives the same image, build after build.
    let plain = archive(&[
        ("Procfile", "web: python3 -m http.server $PORT\n", false),
        ("app.py", "print('hi')\n", false),
    ]);
    let first = build(&server, "built", plain.clone()).await;
    let (_, first) = finish(&server, "built", &first).await;
    let second = build(&server, "built", plain).await;
    let (_, second) = finish(&server, "built", &second).await;
    assert_eq!(first["status"], "succeeded");
    assert_eq!(
        second["slug"]["id"], first["slug"]["id"],
        "builds are deterministic"
    );

    // Lists, newest first with a Range; the replayed output of a finished build is complete.
    let list = server
        .send(
            server
                .request(Method::GET, "/apps/built/builds")
                .header("range", "created_at ..; order=desc"),
        )
        .await;
    assert_eq!(list.body.as_array().unwrap().len(), 3);
    assert_eq!(list.body[2]["id"], done["id"], "newest first");
    let replay = server
        .fetch(done["output_stream_url"].as_str().unwrap(), None)
        .await;
    assert_eq!(replay, output);
    server.stop().await;
}

/// Reads the output stream at `url` until it contains `text`; panics after a deadline.
async fn wait_for_output(server: &TestServer, url: &str, text: &str) {
    use futures_util::StreamExt;
    let mut stream = server.http.get(url).send().await.unwrap().bytes_stream();
    let mut seen = String::new();
    let found = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(chunk) = stream.next().await {
            seen.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
            if seen.contains(text) {
                return true;
            }
        }
        false
    })
    .await;
    assert!(
        matches!(found, Ok(true)),
        "`{text}` never appeared in the output"
    );
}

async fn builds_of_one_app_queue_and_other_apps_go_ahead(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.create_app("first").await;
    server.create_app("other").await;
    let gate = tempfile::tempdir().unwrap();
    let flag = gate.path().join("go");
    // A build that holds its app's turn until the test lets it go.
    let held = archive(&[(
        "bin/build",
        &format!(
            "#!/bin/sh\necho holding\nwhile [ ! -e {} ]; do sleep 0.05; done\necho released\n",
            flag.display()
        ),
        true,
    )]);
    let quick = archive(&[("Procfile", "web: true\n", false)]);

    let one = build(&server, "first", held).await;
    wait_for_output(
        &server,
        one["output_stream_url"].as_str().unwrap(),
        "holding",
    )
    .await;
    let two = build(&server, "first", quick.clone()).await;
    wait_for_output(
        &server,
        two["output_stream_url"].as_str().unwrap(),
        "Waiting for the build of first",
    )
    .await;

    // Another app's build doesn't wait for `first`.
    let other = build(&server, "other", quick).await;
    let (_, other) = finish(&server, "other", &other).await;
    assert_eq!(other["status"], "succeeded");
    let queued = server
        .get(&format!(
            "/apps/first/builds/{}",
            two["id"].as_str().unwrap()
        ))
        .await
        .body;
    assert_eq!(
        queued["phase"], "pending",
        "still queued behind the first build"
    );

    std::fs::write(&flag, "").unwrap();
    let (_, one) = finish(&server, "first", &one).await;
    let (_, two) = finish(&server, "first", &two).await;
    assert_eq!(one["status"], "succeeded");
    assert_eq!(two["status"], "succeeded");
    let v2 = server.get("/apps/first/releases/2").await.body;
    let v3 = server.get("/apps/first/releases/3").await.body;
    assert_eq!(
        v2["id"], one["release"]["id"],
        "the first build released first"
    );
    assert_eq!(v3["id"], two["release"]["id"]);
    server.stop().await;
}

async fn a_failed_build_makes_no_release(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.create_app("broken").await;
    let started = build(
        &server,
        "broken",
        archive(&[("README", "nothing to build here\n", false)]),
    )
    .await;
    let (output, done) = finish(&server, "broken", &started).await;
    assert_eq!(done["status"], "failed");
    let error = done["error"].as_str().unwrap();
    for looked_for in [
        "Procfile",
        "package.json",
        "requirements.txt",
        "Cargo.toml",
        "index.html",
    ] {
        assert!(error.contains(looked_for), "{error}");
    }
    assert!(
        output.contains(error),
        "the output ends with the reason: {output}"
    );
    let releases = server.get("/apps/broken/releases").await.body;
    assert_eq!(releases.as_array().unwrap().len(), 1, "no release was made");

    let failing = build(
        &server,
        "broken",
        archive(&[("bin/build", "#!/bin/sh\necho about to fail\nexit 3\n", true)]),
    )
    .await;
    let (output, done) = finish(&server, "broken", &failing).await;
    assert_eq!(done["status"], "failed");
    assert!(output.contains("about to fail"), "{output}");
    assert_eq!(
        server
            .get("/apps/broken/releases")
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        1
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_need_a_valid_signature_and_happen_once() {
    let server = TestServer::start(Backend::Sqlite).await;
    let (put_url, get_url) = new_source(&server).await;
    let bytes = archive(&[("Procfile", "web: true\n", false)]);
    let tampered = put_url.replace("signature=", "signature=00");
    assert_eq!(
        put(&server, &tampered, bytes.clone()).await.status,
        StatusCode::FORBIDDEN
    );
    let unsigned = put_url.split('?').next().unwrap().to_owned();
    let reply = put(&server, &unsigned, bytes.clone()).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert!(
        reply.message().contains("not signed"),
        "{}",
        reply.message()
    );
    // The download URL doesn't allow uploads.
    assert_eq!(
        put(&server, &get_url, bytes.clone()).await.status,
        StatusCode::FORBIDDEN
    );

    let ok = put(&server, &put_url, bytes.clone()).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert!(ok.body["checksum"].as_str().unwrap().starts_with("SHA256:"));
    assert_eq!(
        put(&server, &put_url, bytes.clone()).await.status,
        StatusCode::CONFLICT
    );

    let downloaded = server
        .http
        .get(&get_url)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(downloaded.as_ref(), bytes.as_slice());

    // A build may name the source by its checksum too.
    server.create_app("by-sum").await;
    let reply = server
        .post(
            "/apps/by-sum/builds",
            json!({"source_blob": {"checksum": ok.body["checksum"]}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_and_broken_archives_are_refused_and_leave_nothing() {
    let server = TestServer::start(Backend::Sqlite).await;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "absolute path",
            hostile("/etc/passwd", tar::EntryType::Regular, None),
            "/etc/passwd",
        ),
        (
            "parent dir",
            hostile("../escape", tar::EntryType::Regular, None),
            "../escape",
        ),
        (
            "escaping symlink",
            hostile("link", tar::EntryType::Symlink, Some("../../etc")),
            "link",
        ),
        (
            "absolute symlink",
            hostile("abs", tar::EntryType::Symlink, Some("/etc/passwd")),
            "abs",
        ),
        (
            "escaping hard link",
            hostile("hard", tar::EntryType::Link, Some("../outside")),
            "hard",
        ),
        ("device", hostile("dev", tar::EntryType::Char, None), "dev"),
        ("fifo", hostile("pipe", tar::EntryType::Fifo, None), "pipe"),
        (
            "not gzip",
            b"just some text, not an archive".to_vec(),
            "gzip",
        ),
        ("long path", long_path(250), "over the limit of 200"),
    ];
    for (what, bytes, named) in cases {
        let (put_url, _) = new_source(&server).await;
        let reply = put(&server, &put_url, bytes).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{what}: {reply:?}"
        );
        assert!(
            reply.message().contains(named),
            "{what}: {}",
            reply.message()
        );
    }
    let (put_url, _) = new_source(&server).await;
    let empty = put(&server, &put_url, Vec::new()).await;
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(empty.message().contains("empty"), "{}", empty.message());

    let (put_url, _) = new_source(&server).await;
    let too_big = put(&server, &put_url, vec![0u8; 2 * 1024 * 1024]).await;
    assert_eq!(too_big.status, StatusCode::PAYLOAD_TOO_LARGE);

    // Nothing refused was kept.
    let kept: Vec<_> = std::fs::read_dir(server.data_dir.join("sources"))
        .unwrap()
        .collect();
    assert!(kept.is_empty(), "{kept:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builds_need_an_uploaded_source() {
    let server = TestServer::start(Backend::Sqlite).await;
    server.create_app("picky").await;
    let (_, get_url) = new_source(&server).await;
    for (body, hint) in [
        (json!({"source_blob": {"url": get_url}}), "PUT it"),
        (
            json!({"source_blob": {"url": "http://elsewhere.example/app.tgz"}}),
            "not a source of this server",
        ),
        (
            json!({"source_blob": {"checksum": "SHA256:nope"}}),
            "SHA256:<64 hex digits>",
        ),
        (
            json!({"source_blob": {"checksum": format!("SHA256:{}", "0".repeat(64))}}),
            "no uploaded source",
        ),
        (json!({"source_blob": {}}), "needs a `url`"),
    ] {
        let reply = server.post("/apps/picky/builds", body.clone()).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(
            reply.message().contains(hint),
            "{hint}: {}",
            reply.message()
        );
    }
    let unknown = server
        .get("/apps/picky/builds/0e6f0a9e-4a4b-4c6c-9a51-0f5a0c5f2b11")
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert!(server
        .get("/apps/picky/builds")
        .await
        .body
        .as_array()
        .unwrap()
        .is_empty());
    server.stop().await;
}
