//! The run stage over HTTP: a deployed app runs its formation, scales to exact counts, restarts,
//! and its output reaches the log that log sessions stream.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::builds::{archive, build, finish};
use crate::harness::{Backend, TestServer};
use crate::on_both_databases;

on_both_databases!(a_deployed_app_runs_and_scales);

/// Polls the app's dynos until `done` holds for them; panics after a deadline.
pub async fn wait_for_dynos(
    server: &TestServer,
    app: &str,
    what: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let dynos = server.get(&format!("/apps/{app}/dynos")).await.body;
        let dynos = dynos.as_array().cloned().unwrap_or_default();
        if done(&dynos) {
            return dynos;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never {what}: {dynos:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn count(dynos: &[Value], kind: &str, state: &str) -> usize {
    dynos
        .iter()
        .filter(|d| d["type"] == kind && d["state"] == state)
        .count()
}

async fn a_deployed_app_runs_and_scales(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.create_app("runner").await;
    server
        .patch(
            "/apps/runner/config-vars",
            json!({"GREETING": "hello from config"}),
        )
        .await;
    let source = archive(&[
        (
            "Procfile",
            "web: python3 -m http.server $PORT\nworker: sh worker.sh\n",
            false,
        ),
        (
            "worker.sh",
            "echo \"$GREETING on $DYNO\"\nexec sleep 1000\n",
            false,
        ),
    ]);
    let started = build(&server, "runner", source).await;
    let (output, done) = finish(&server, "runner", &started).await;
    assert_eq!(done["status"], "succeeded", "{output}");

    // A first deploy runs web=1 and keeps worker at 0, as on Heroku.
    let formation = server.get("/apps/runner/formation").await.body;
    assert_eq!(formation.as_array().unwrap().len(), 2, "{formation}");
    let web = formation
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["type"] == "web")
        .unwrap();
    assert_eq!(web["quantity"], 1);
    assert_eq!(web["command"], "python3 -m http.server $PORT");
    let dynos = wait_for_dynos(&server, "runner", "one web up", |d| {
        count(d, "web", "up") == 1 && d.len() == 1
    })
    .await;
    let port = dynos[0]["port"].as_u64().unwrap();
    let page = reqwest::get(format!("http://127.0.0.1:{port}/Procfile"))
        .await
        .unwrap();
    assert_eq!(
        page.status(),
        StatusCode::OK,
        "the web process serves on its PORT"
    );

    // Scale with the Heroku CLI's shapes: a batch with a string quantity, then a relative one.
    let scaled = server
        .patch("/apps/runner/formation", json!({"updates": [{"type": "web", "quantity": "3"}, {"type": "worker", "quantity": 1}]}))
        .await;
    assert_eq!(scaled.status, StatusCode::OK, "{scaled:?}");
    wait_for_dynos(&server, "runner", "three web and a worker", |d| {
        count(d, "web", "up") == 3 && count(d, "worker", "up") == 1 && d.len() == 4
    })
    .await;
    let down = server
        .patch("/apps/runner/formation/web", json!({"quantity": "-2"}))
        .await;
    assert_eq!(down.body["quantity"], 1);
    let dynos = wait_for_dynos(&server, "runner", "back to one web", |d| {
        count(d, "web", "up") == 1 && d.len() == 2
    })
    .await;
    let names: Vec<&str> = dynos.iter().map(|d| d["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["web.1", "worker.1"]);

    for (body, status) in [
        (
            json!({"updates": [{"type": "nope", "quantity": 1}]}),
            StatusCode::NOT_FOUND,
        ),
        (
            json!({"updates": [{"type": "web", "quantity": 1000}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"updates": [{"type": "web", "quantity": "lots"}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"updates": [{"type": "web", "size": "enormous"}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (json!({"updates": []}), StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        let reply = server.patch("/apps/runner/formation", body.clone()).await;
        assert_eq!(reply.status, status, "{body}: {reply:?}");
    }
    assert_eq!(
        server.get("/apps/runner/formation/web").await.body["quantity"],
        1,
        "refused changes change nothing"
    );

    // The worker's output, with its config and DYNO, reaches the log.
    let session = server
        .post(
            "/apps/runner/log-sessions",
            json!({"lines": 200, "source": "app", "dyno": "worker"}),
        )
        .await;
    assert_eq!(session.status, StatusCode::CREATED, "{session:?}");
    let url = session.body["logplex_url"].as_str().unwrap().to_owned();
    let stream = server.http.get(&url).send().await.unwrap();
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    let log = server
        .wait_for_log(&url, "hello from config on worker.1")
        .await;
    assert!(
        log.contains("app[worker.1]: hello from config on worker.1"),
        "{log}"
    );
    assert!(log.contains("retry:"), "{log}");
    assert!(log.lines().any(|l| l.starts_with("id: ")), "{log}");
    let platform = server
        .post("/apps/runner/log-sessions", json!({"source": "wharf"}))
        .await;
    let events = server
        .fetch(platform.body["logplex_url"].as_str().unwrap(), None)
        .await;
    assert!(
        events.contains("State changed from starting to up"),
        "{events}"
    );

    // Restarting a type replaces its processes.
    let before = server.get("/apps/runner/dynos/web.1").await.body["pid"].clone();
    assert_eq!(
        server
            .send(server.request(reqwest::Method::DELETE, "/apps/runner/formations/web"))
            .await
            .status,
        StatusCode::ACCEPTED
    );
    wait_for_dynos(&server, "runner", "a new web.1", |d| {
        d.iter()
            .any(|x| x["name"] == "web.1" && x["state"] == "up" && x["pid"] != before)
    })
    .await;
    assert_eq!(
        server.get("/apps/runner/dynos/web.9").await.status,
        StatusCode::NOT_FOUND
    );

    // Destroying the app stops its processes.
    server.delete("/apps/runner").await;
    let gone = tokio::time::timeout(Duration::from_secs(30), async {
        while tokio::net::TcpStream::connect(("127.0.0.1", port as u16))
            .await
            .is_ok()
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(
        gone.is_ok(),
        "the destroyed app's web process still answers"
    );
    server.stop().await;
}

/// Splits an attached run's response into its output and exit status.
fn frames(bytes: &[u8]) -> (String, Option<i32>) {
    let mut output = Vec::new();
    let mut exit = None;
    let mut rest = bytes;
    while rest.len() >= 5 {
        let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
        let payload = &rest[5..5 + len];
        match rest[0] {
            b'o' => output.extend_from_slice(payload),
            b'x' => exit = String::from_utf8_lossy(payload).parse().ok(),
            other => panic!("unknown frame {other}"),
        }
        rest = &rest[5 + len..];
    }
    assert!(rest.is_empty(), "a torn frame");
    (String::from_utf8_lossy(&output).into_owned(), exit)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_off_processes_run_with_the_release() {
    let server = TestServer::start(Backend::Sqlite).await;
    server.create_app("once").await;
    // Before a deploy there is nothing to run.
    let early = server
        .post("/apps/once/dynos", json!({"command": "true"}))
        .await;
    assert_eq!(early.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(early.message().contains("deploy"), "{}", early.message());

    server
        .patch("/apps/once/config-vars", json!({"SECRET": "s3cret"}))
        .await;
    let started = build(
        &server,
        "once",
        archive(&[("Procfile", "web: python3 -m http.server $PORT\n", false)]),
    )
    .await;
    let (_, done) = finish(&server, "once", &started).await;
    assert_eq!(done["status"], "succeeded");

    // Attached: stdin in, output and exit status out, with the release's config and DYNO=run.N.
    let command = "read line; echo \"got $line as $DYNO with $SECRET\"; exit 7";
    let response = server
        .request(
            reqwest::Method::POST,
            &format!("/apps/once/run?command={}", urlencode(command)),
        )
        .body("hello\n")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "application/vnd.wharf.attach"
    );
    let (output, exit) = frames(&response.bytes().await.unwrap());
    assert_eq!(exit, Some(7));
    assert!(
        output.contains("got hello as run.") && output.contains("with s3cret"),
        "{output}"
    );

    // Detached: the output goes to the log.
    let detached = server
        .post(
            "/apps/once/dynos",
            json!({"command": "echo detached output"}),
        )
        .await;
    assert_eq!(detached.status, StatusCode::CREATED, "{detached:?}");
    let name = detached.body["name"].as_str().unwrap().to_owned();
    assert!(name.starts_with("run."), "{name}");
    let session = server
        .post(
            "/apps/once/log-sessions",
            json!({"dyno": name, "source": "app"}),
        )
        .await;
    let url = session.body["logplex_url"].as_str().unwrap().to_owned();
    server
        .wait_for_log(&url, &format!("app[{name}]: detached output"))
        .await;
    // Resuming with Last-Event-ID sends only what came after that line.
    let full = server.fetch(&url, None).await;
    let ids: Vec<String> = full
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .map(str::to_owned)
        .collect();
    let (first_id, last_id) = (ids.first().expect("events have ids"), ids.last().unwrap());
    let resumed = server.fetch(&url, Some(last_id)).await;
    assert!(
        !resumed.contains("detached output"),
        "a resumed stream repeats nothing: {resumed}"
    );
    assert!(resumed.contains("retry:"), "{resumed}");
    if ids.len() > 1 {
        let after_first = server.fetch(&url, Some(first_id)).await;
        assert!(
            !after_first.contains(&format!("id: {first_id}\n")),
            "{after_first}"
        );
        assert!(
            after_first.contains(&format!("id: {last_id}\n")),
            "{after_first}"
        );
    }

    let empty = server
        .post("/apps/once/dynos", json!({"command": "  "}))
        .await;
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);
    server.stop().await;
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
