//! The run stage over HTTP: a deployed app runs its formation, scales to exact counts, restarts,
//! and its output reaches the log that log sessions stream.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::builds::{archive, build, finish};
use crate::harness::{Backend, TestServer};
use wharf_test_support::on_both_databases;

on_both_databases!(
    a_deployed_app_runs_and_scales,
    one_off_input_no_process_can_take_is_refused,
    dynos_are_found_by_id_and_restarting_nothing_is_accepted,
);

/// Polls the app's dynos until `done` holds for them; panics after a deadline.
pub async fn wait_for_dynos(
    server: &TestServer,
    app: &str,
    what: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    wharf_test_support::wait_until_async(Duration::from_secs(60), what, || async {
        let dynos = server.get(&format!("/apps/{app}/dynos")).await.body;
        let dynos = dynos.as_array().cloned().unwrap_or_default();
        if done(&dynos) {
            Ok(dynos)
        } else {
            Err(format!("{dynos:#?}"))
        }
    })
    .await
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

    // A running one-off is a dyno: listed, found by name and id, and stopped (not restarted).
    let long = server
        .post("/apps/once/dynos", json!({"command": "sleep 1000"}))
        .await;
    assert_eq!(long.status, StatusCode::CREATED, "{long:?}");
    let name = long.body["name"].as_str().unwrap().to_owned();
    let listed = server.get("/apps/once/dynos").await.body;
    let dyno = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == name.as_str())
        .unwrap_or_else(|| panic!("{name} is listed: {listed:#}"))
        .clone();
    assert_eq!(dyno["type"], "run", "{dyno:#}");
    assert_eq!(dyno["state"], "up", "{dyno:#}");
    assert_eq!(dyno["command"], "sleep 1000", "{dyno:#}");
    let by_id = server
        .get(&format!(
            "/apps/once/dynos/{}",
            dyno["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(by_id.status, StatusCode::OK, "{by_id:?}");
    let stopped = server
        .post(&format!("/apps/once/dynos/{name}/actions/stop"), json!({}))
        .await;
    assert_eq!(stopped.status, StatusCode::ACCEPTED, "{stopped:?}");
    // Once it has ended it is gone: not listed, and asking for it answers 404, saying how it
    // ended.
    let what = format!("{name} to have ended");
    let gone = wharf_test_support::wait_until_async(Duration::from_secs(30), &what, || async {
        let info = server.get(&format!("/apps/once/dynos/{name}")).await;
        match info.status {
            StatusCode::NOT_FOUND => Ok(info),
            _ => Err(format!("{info:?}")),
        }
    })
    .await;
    assert!(
        gone.message().contains(&format!("`{name}` has ended (")),
        "{gone:?}"
    );
    let listed = server.get("/apps/once/dynos").await.body;
    assert!(
        !listed
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["name"] == name.as_str()),
        "{listed:#}"
    );

    // One that ends on its own with a failure says so, with its exit status; stopping it then
    // is accepted (it is stopped already), as it would have been a moment earlier.
    let failing = server
        .post("/apps/once/dynos", json!({"command": "exit 3"}))
        .await;
    assert_eq!(failing.status, StatusCode::CREATED, "{failing:?}");
    let name = failing.body["name"].as_str().unwrap().to_owned();
    let what = format!("{name} to have crashed");
    let ended = wharf_test_support::wait_until_async(Duration::from_secs(30), &what, || async {
        let info = server.get(&format!("/apps/once/dynos/{name}")).await;
        match info.status {
            StatusCode::NOT_FOUND => Ok(info),
            _ => Err(format!("{info:?}")),
        }
    })
    .await;
    assert!(
        ended
            .message()
            .contains(&format!("`{name}` has ended (crashed, status 3)")),
        "{ended:?}"
    );
    for stop in [
        server.delete(&format!("/apps/once/dynos/{name}")).await,
        server
            .post(&format!("/apps/once/dynos/{name}/actions/stop"), json!({}))
            .await,
    ] {
        assert_eq!(stop.status, StatusCode::ACCEPTED, "{stop:?}");
    }
    // A one-off that never was is still not found.
    assert_eq!(
        server.get("/apps/once/dynos/run.99").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        server.delete("/apps/once/dynos/run.99").await.status,
        StatusCode::NOT_FOUND
    );
    server.stop().await;
}

/// Creates and deploys an app that runs `worker: exec sleep 1000`.
async fn deploy_sleeper(server: &TestServer, app: &str) {
    server.create_app(app).await;
    let started = build(
        server,
        app,
        archive(&[("Procfile", "worker: exec sleep 1000\n", false)]),
    )
    .await;
    let (output, done) = finish(server, app, &started).await;
    assert_eq!(done["status"], "succeeded", "{output}");
}

/// A command or environment a process can't hold (a NUL, a name with `=`) was handed to the
/// process spawner and failed there, as a 500; found by scripts/api-fuzz.
async fn one_off_input_no_process_can_take_is_refused(backend: Backend) {
    let server = TestServer::start(backend).await;
    deploy_sleeper(&server, "strict").await;
    for (body, says) in [
        (
            json!({"command": "echo a\u{0}b"}),
            "the command contains a NUL character, which no command can hold",
        ),
        (
            json!({"command": "true", "env": {"A=B": "x"}}),
            "env: config var key `A=B` may only contain letters, digits and `_` (found '=')",
        ),
        (
            json!({"command": "true", "env": {"": "x"}}),
            "env: config var key is empty: use a name such as `DATABASE_URL`",
        ),
        (
            json!({"command": "true", "env": {"A": "x\u{0}y"}}),
            "env: the value of `A` contains a NUL character, which no environment variable can hold",
        ),
    ] {
        let reply = server.post("/apps/strict/dynos", body.clone()).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {reply:?}"
        );
        assert_eq!(reply.error_id(), "invalid_params");
        assert_eq!(reply.message(), says);
    }
    let attached = server
        .send(
            server
                .request(reqwest::Method::POST, "/apps/strict/run?command=echo%00hi")
                .body(""),
        )
        .await;
    assert_eq!(
        attached.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{attached:?}"
    );
    assert_eq!(
        attached.message(),
        "the command contains a NUL character, which no command can hold"
    );
    // What is allowed still runs.
    let fine = server
        .post(
            "/apps/strict/dynos",
            json!({"command": "echo ok", "env": {"_EXTRA_1": "x"}}),
        )
        .await;
    assert_eq!(fine.status, StatusCode::CREATED, "{fine:?}");
    server.stop().await;
}

/// A dyno's `id` (`<app id>.<name>`) is what Heroku's API addresses it by, too; and restarting
/// every process of an app that runs none used to answer 404 "has no process `all processes`".
/// Found by scripts/api-fuzz.
async fn dynos_are_found_by_id_and_restarting_nothing_is_accepted(backend: Backend) {
    let server = TestServer::start(backend).await;
    let idle = server.create_app("idle").await;
    let restarted = server.delete("/apps/idle/dynos").await;
    assert_eq!(restarted.status, StatusCode::ACCEPTED, "{restarted:?}");
    let by_id = server
        .delete(&format!("/apps/{}/dynos", idle["id"].as_str().unwrap()))
        .await;
    assert_eq!(by_id.status, StatusCode::ACCEPTED, "{by_id:?}");

    deploy_sleeper(&server, "sleeper").await;
    server
        .patch("/apps/sleeper/formation/worker", json!({"quantity": 1}))
        .await;
    let dynos = wait_for_dynos(&server, "sleeper", "a worker up", |d| {
        count(d, "worker", "up") == 1
    })
    .await;
    let id = dynos[0]["id"].as_str().unwrap().to_owned();
    let pid = dynos[0]["pid"].clone();
    assert!(id.ends_with(".worker.1"), "{id}");
    let found = server.get(&format!("/apps/sleeper/dynos/{id}")).await;
    assert_eq!(found.status, StatusCode::OK, "{found:?}");
    assert_eq!(found.body["name"], "worker.1");
    let stopped = server
        .post(&format!("/apps/sleeper/dynos/{id}/actions/stop"), json!({}))
        .await;
    assert_eq!(stopped.status, StatusCode::ACCEPTED, "{stopped:?}");
    wait_for_dynos(&server, "sleeper", "a fresh worker.1", |d| {
        d.iter()
            .any(|x| x["name"] == "worker.1" && x["state"] == "up" && x["pid"] != pid)
    })
    .await;
    // An instance no app has is still not found.
    let other = server
        .post(
            &format!(
                "/apps/sleeper/dynos/{}.worker.1/actions/stop",
                idle["id"].as_str().unwrap()
            ),
            json!({}),
        )
        .await;
    assert_eq!(other.status, StatusCode::NOT_FOUND, "{other:?}");
    server.stop().await;
}

/// A restart answers 202 once its instances are replaced, or after a few seconds while they go on
/// being replaced: it used to hold the request until the last one was up, which for slow-booting
/// web instances (or a hundred workers) outlasted clients' timeouts. Found by scripts/api-fuzz.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_restart_is_answered_before_it_ends() {
    let server = TestServer::start(Backend::Sqlite).await;
    server.create_app("slowboot").await;
    let started = build(
        &server,
        "slowboot",
        archive(&[(
            "Procfile",
            "web: sleep 15; exec python3 -m http.server $PORT\n",
            false,
        )]),
    )
    .await;
    let (output, done) = finish(&server, "slowboot", &started).await;
    assert_eq!(done["status"], "succeeded", "{output}");
    let dynos = wait_for_dynos(&server, "slowboot", "web up", |d| {
        count(d, "web", "up") == 1
    })
    .await;
    let pid = dynos[0]["pid"].clone();

    let asked = std::time::Instant::now();
    let restarted = server.delete("/apps/slowboot/formations/web").await;
    let waited = asked.elapsed();
    assert_eq!(restarted.status, StatusCode::ACCEPTED, "{restarted:?}");
    assert!(
        waited < Duration::from_secs(12),
        "the answer waited for the new instance to boot: {waited:?}"
    );
    wait_for_dynos(&server, "slowboot", "the new web up", |d| {
        d.len() == 1 && count(d, "web", "up") == 1 && d[0]["pid"] != pid
    })
    .await;
    server.stop().await;
}

/// A client of Heroku's rendezvous protocol, as `heroku run` is: TLS to the `attach_url`,
/// trusting wharf's CA, then the secret; answers the connection after wharf's greeting.
async fn rendezvous(
    server: &TestServer,
    attach_url: &str,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    use rustls::pki_types::pem::PemObject;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = attach_url
        .strip_prefix("rendezvous://")
        .unwrap_or_else(|| panic!("not a rendezvous URL: {attach_url}"));
    let (address, secret) = rest.split_once('/').unwrap();
    let mut roots = rustls::RootCertStore::empty();
    let ca = wharf_server::tls::ca_path(&server.data_dir);
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(&ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
    let host = address.rsplit_once(':').unwrap().0.to_owned();
    let name = rustls::pki_types::ServerName::try_from(host).unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("wharf's certificate verifies against its CA");
    tls.write_all(format!("{secret}\r\n").as_bytes())
        .await
        .unwrap();
    let mut greeting = [0u8; 12];
    tls.read_exact(&mut greeting).await.unwrap();
    assert_eq!(&greeting, b"rendezvous\r\n");
    tls
}

/// Reads from `stream` until `needle` shows up or the stream ends; everything read.
async fn read_until(stream: &mut (impl tokio::io::AsyncRead + Unpin), needle: &str) -> String {
    use tokio::io::AsyncReadExt;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !String::from_utf8_lossy(&seen).contains(needle) {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) => break,
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
            Ok(Err(e)) => panic!("reading the session failed: {e}"),
            Err(_) => panic!(
                "no `{needle}` within 30 s: {:?}",
                String::from_utf8_lossy(&seen)
            ),
        }
    }
    String::from_utf8_lossy(&seen).into_owned()
}

/// `heroku run` the Heroku way (`attach: true`, then the rendezvous): the process gets a
/// terminal of the size the client sends in `LINES` and `COLUMNS`, as on Heroku, so shells and
/// consoles are interactive; with `force_no_tty` its input and output are plain streams, and
/// EOT ends its input.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attached_runs_get_a_terminal_unless_the_client_says_not() {
    use tokio::io::AsyncWriteExt;
    let server = TestServer::start(Backend::Sqlite).await;
    deploy_sleeper(&server, "term").await;

    let started = server
        .post(
            "/apps/term/dynos",
            json!({
                "command": "test -t 0 && echo in-a-terminal; stty size; read line; echo got:$line",
                "attach": true,
                "env": {"LINES": "40", "COLUMNS": "120", "TERM": "xterm"},
            }),
        )
        .await;
    assert_eq!(started.status, StatusCode::CREATED, "{started:?}");
    let url = started.body["attach_url"].as_str().unwrap().to_owned();
    let mut session = rendezvous(&server, &url).await;
    let seen = read_until(&mut session, "40 120").await;
    assert!(seen.contains("in-a-terminal"), "{seen:?}");
    session.write_all(b"hello\r").await.unwrap();
    session.flush().await.unwrap();
    // Typed at a terminal: echoed, then read as a line.
    let seen = read_until(&mut session, "got:hello").await;
    assert!(seen.contains("hello\r\n"), "no echo: {seen:?}");
    // The process has ended: the session ends.
    read_until(&mut session, "\u{0}never").await;

    let started = server
        .post(
            "/apps/term/dynos",
            json!({
                "command": "test -t 0 || echo no-terminal; cat",
                "attach": true,
                "force_no_tty": true,
            }),
        )
        .await;
    assert_eq!(started.status, StatusCode::CREATED, "{started:?}");
    let url = started.body["attach_url"].as_str().unwrap().to_owned();
    let mut session = rendezvous(&server, &url).await;
    session.write_all(b"piped\n\x04").await.unwrap();
    session.flush().await.unwrap();
    let seen = read_until(&mut session, "\u{0}never").await;
    assert_eq!(seen, "no-terminal\npiped\n");
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
