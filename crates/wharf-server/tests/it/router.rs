//! The router in front of deployed apps: hostnames and custom domains, maintenance, router log
//! lines and metrics, failed deploys, and the zero-downtime test — continuous requests while
//! the app is deployed, reconfigured, rolled back, restarted, scaled and has an instance killed, with not one
//! request failing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::builds::{archive, build, finish};
use crate::harness::{Backend, TestServer};
use crate::run::{count, wait_for_dynos};
use wharf_test_support::on_both_databases;

on_both_databases!(hostnames_domains_and_maintenance);

/// A web process that answers every GET with its `VERSION` config var and its `DYNO`, over
/// keep-alive HTTP/1.1, from several threads.
const APP: &str = r#"import os, http.server
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = ("%s %s %s\n" % (os.environ.get("VERSION", "none"), os.environ.get("CODE", "a"), os.environ["DYNO"])).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"#;

pub fn source(code: &str, procfile: &str) -> Vec<u8> {
    let app = APP.replace(
        r#"os.environ.get("CODE", "a")"#,
        &format!("{code:?}").replace('"', "'"),
    );
    archive(&[("Procfile", procfile, false), ("app.py", &app, false)])
}

/// Builds `bytes` into a release of `app` and waits for it to succeed.
pub async fn deploy(server: &TestServer, app: &str, bytes: Vec<u8>) {
    let started = build(server, app, bytes).await;
    let (output, done) = finish(server, app, &started).await;
    assert_eq!(done["status"], "succeeded", "{output}");
}

/// A client that reaches every `*.localhost` name at the router.
pub fn client(server: &TestServer, hosts: &[&str]) -> reqwest::Client {
    let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(30));
    for host in hosts {
        builder = builder.resolve(host, server.router_addr);
    }
    builder.build().unwrap()
}

pub fn at(server: &TestServer, host: &str, path: &str) -> String {
    format!("http://{host}:{}{path}", server.router_addr.port())
}

/// GETs until the body satisfies `done`; panics after a deadline.
pub async fn until_body(
    http: &reqwest::Client,
    url: &str,
    what: &str,
    done: impl Fn(StatusCode, &str) -> bool,
) -> String {
    wharf_test_support::wait_until_async(Duration::from_secs(60), what, || async {
        let (status, body) = match http.get(url).send().await {
            Ok(r) => (r.status(), r.text().await.unwrap_or_default()),
            Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()),
        };
        if done(status, &body) {
            Ok(body)
        } else {
            Err(format!("{status} {body}"))
        }
    })
    .await
}

async fn hostnames_domains_and_maintenance(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.create_app("shop").await;
    server.create_app("blog").await;
    let http = client(
        &server,
        &["shop.localhost", "www.shop.test", "nobody.localhost"],
    );

    // Before a deploy the hostname is known but nothing runs there.
    let early = http
        .get(at(&server, "shop.localhost", "/"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(early.status(), StatusCode::SERVICE_UNAVAILABLE);
    let unknown = http
        .get(at(&server, "nobody.localhost", "/"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);

    server
        .patch("/apps/shop/config-vars", json!({"VERSION": "1"}))
        .await;
    deploy(&server, "shop", source("a", "web: python3 app.py\n")).await;
    let body = until_body(
        &http,
        &at(&server, "shop.localhost", "/"),
        "served",
        |s, _| s == StatusCode::OK,
    )
    .await;
    assert_eq!(body, "1 a web.1\n");

    // A custom domain: served at once; validated; one app per hostname.
    let added = server
        .post("/apps/shop/domains", json!({"hostname": "WWW.Shop.test"}))
        .await;
    assert_eq!(added.status, StatusCode::CREATED, "{added:?}");
    assert_eq!(added.body["hostname"], "www.shop.test");
    assert_eq!(added.body["kind"], "custom");
    assert_eq!(added.body["cname"], "shop.localhost");
    let via_domain = http
        .get(at(&server, "www.shop.test", "/"))
        .send()
        .await
        .unwrap();
    assert_eq!(via_domain.text().await.unwrap(), "1 a web.1\n");
    let taken = server
        .post("/apps/blog/domains", json!({"hostname": "www.shop.test"}))
        .await;
    assert_eq!(taken.status, StatusCode::CONFLICT, "{taken:?}");
    for bad in [
        "not a host",
        "blog.localhost",
        "*.shop.test",
        "http://x.test/",
    ] {
        let reply = server
            .post("/apps/blog/domains", json!({"hostname": bad}))
            .await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}: {reply:?}"
        );
    }
    let listed = server.get("/apps/shop/domains").await.body;
    let hostnames: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["hostname"].as_str().unwrap())
        .collect();
    assert_eq!(hostnames, ["shop.localhost", "www.shop.test"]);
    let default_removal = server.delete("/apps/shop/domains/shop.localhost").await;
    assert_eq!(default_removal.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        server
            .delete("/apps/shop/domains/www.shop.test")
            .await
            .status,
        StatusCode::OK
    );
    let removed = http
        .get(at(&server, "www.shop.test", "/"))
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), StatusCode::NOT_FOUND);

    // Maintenance: a 503 page with Retry-After, then service again.
    server
        .patch("/apps/shop", json!({"maintenance": true}))
        .await;
    let page = http
        .get(at(&server, "shop.localhost", "/"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(page.headers().contains_key("retry-after"));
    assert!(page
        .text()
        .await
        .unwrap()
        .to_lowercase()
        .contains("maintenance"));
    server
        .patch("/apps/shop", json!({"maintenance": false}))
        .await;
    let back = http
        .get(at(&server, "shop.localhost", "/again?x=1"))
        .header("x-request-id", "test-request-0123456789-abc")
        .send()
        .await
        .unwrap();
    let status = back.status();
    let page = back.text().await.unwrap();
    if status != StatusCode::OK {
        let session = server
            .post("/apps/shop/log-sessions", json!({"lines": 500}))
            .await;
        let log = server
            .fetch(session.body["logplex_url"].as_str().unwrap(), None)
            .await;
        panic!("{status} after maintenance: {page}\nthe log:\n{log}");
    }

    // Every request is a router line in the app's log.
    let session = server
        .post(
            "/apps/shop/log-sessions",
            json!({"source": "router", "lines": 100}),
        )
        .await;
    let url = session.body["logplex_url"].as_str().unwrap().to_owned();
    let log = server
        .wait_for_log(&url, "request_id=test-request-0123456789-abc")
        .await;
    let line = log
        .lines()
        .find(|l| l.contains("request_id=test-request-0123456789-abc"))
        .unwrap();
    for field in [
        "wharf[router]: at=info",
        "method=GET",
        "path=\"/again?x=1\"",
        "host=shop.localhost",
        "fwd=\"127.0.0.1\"",
        "dyno=web.1",
        "status=200",
        "bytes=",
        "service=",
        "connect=",
    ] {
        assert!(line.contains(field), "`{field}` in {line}");
    }
    assert!(
        log.contains("code=H80"),
        "the maintenance answer is logged: {log}"
    );

    // Metrics: the router's requests and the app's instances.
    let metrics = server
        .send(server.request(reqwest::Method::GET, "/metrics"))
        .await;
    assert_eq!(metrics.status, StatusCode::OK);
    let text = metrics.body.as_str().unwrap_or_default().to_owned();
    assert!(
        text.contains("wharf_instances{app=\"shop\",process_type=\"web\",state=\"up\"} 1"),
        "{text}"
    );
    assert!(text.contains("app=\"shop\""), "{text}");
    assert!(text.contains("2xx"), "{text}");
    let anonymous = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    // A destroyed app's hostname is unknown at once.
    server.delete("/apps/shop").await;
    let gone = http
        .get(at(&server, "shop.localhost", "/"))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_whose_web_never_comes_up_fails_and_the_old_release_keeps_serving() {
    let server = TestServer::start(Backend::Sqlite).await;
    server.create_app("steady").await;
    let http = client(&server, &["steady.localhost"]);
    deploy(&server, "steady", source("good", "web: python3 app.py\n")).await;
    let url = at(&server, "steady.localhost", "/");
    until_body(&http, &url, "served", |s, _| s == StatusCode::OK).await;

    // v3's web exits at once: the deploy fails, v2 keeps answering, and the log says why.
    deploy(
        &server,
        "steady",
        source("bad", "web: python3 -c 'raise SystemExit(4)'\n"),
    )
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let failed = loop {
        let release = server.get("/apps/steady/releases/3").await.body;
        if release["status"] == "failed" {
            break release;
        }
        assert!(tokio::time::Instant::now() < deadline, "{release}");
        let answer = http.get(&url).send().await.unwrap();
        assert_eq!(answer.text().await.unwrap(), "none good web.1\n");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(failed["current"], false);
    assert_eq!(
        failed["status_reason"],
        "web.1 exited (status 4) before it was up"
    );
    let current = server.get("/apps/steady/releases/2").await.body;
    assert_eq!(current["current"], true);
    let session = server
        .post("/apps/steady/log-sessions", json!({"source": "wharf"}))
        .await;
    let log = server
        .wait_for_log(
            session.body["logplex_url"].as_str().unwrap(),
            "Deploy of v3 failed: web.1 exited (status 4) before it was up; v2 keeps running",
        )
        .await;
    assert!(log.contains("wharf[api]"), "{log}");
    wait_for_dynos(&server, "steady", "only v2 left", |d| {
        d.len() == 1 && d[0]["release"]["version"] == 2 && d[0]["state"] == "up"
    })
    .await;
    assert_eq!(
        http.get(&url).send().await.unwrap().text().await.unwrap(),
        "none good web.1\n"
    );
    server.stop().await;
}

/// What the load loop saw.
#[derive(Default)]
struct Seen {
    ok: u64,
    failures: Vec<String>,
    /// The `VERSION CODE` of the last answer.
    latest: Option<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_dropped_across_deploys_restarts_scaling_and_a_killed_instance() {
    let server = TestServer::start(Backend::Sqlite).await;
    server.create_app("zero").await;
    server
        .patch("/apps/zero/config-vars", json!({"VERSION": "1"}))
        .await;
    deploy(&server, "zero", source("a", "web: python3 app.py\n")).await;
    server
        .patch("/apps/zero/formation/web", json!({"quantity": 3}))
        .await;
    wait_for_dynos(&server, "zero", "three web up", |d| {
        count(d, "web", "up") == 3 && d.len() == 3
    })
    .await;
    let http = client(&server, &["zero.localhost"]);
    let url = at(&server, "zero.localhost", "/");

    // Four clients request continuously, bounded in count and time, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (http, url, stop, seen) = (http.clone(), url.clone(), stop.clone(), seen.clone());
        clients.push(tokio::spawn(async move {
            // What this client saw, each change of answer once: one client's requests follow
            // each other, so after the switch to a release it must never see the old one again.
            let mut versions: Vec<String> = Vec::new();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(240);
            for _ in 0..200_000 {
                if stop.load(Ordering::SeqCst) || tokio::time::Instant::now() > deadline {
                    break;
                }
                let outcome = match http.get(&url).send().await {
                    Ok(r) if r.status() == StatusCode::OK => {
                        r.text().await.map_err(|e| e.to_string())
                    }
                    Ok(r) => Err(format!(
                        "{} {}",
                        r.status(),
                        r.text().await.unwrap_or_default()
                    )),
                    Err(e) => Err(format!("{e:?}")),
                };
                let mut seen = seen.lock().unwrap();
                match outcome {
                    Ok(body) => {
                        seen.ok += 1;
                        let version = body
                            .rsplit_once(' ')
                            .map(|(v, _)| v.to_owned())
                            .unwrap_or(body);
                        if versions.last() != Some(&version) {
                            versions.push(version.clone());
                        }
                        seen.latest = Some(version);
                    }
                    Err(e) => seen.failures.push(e),
                }
            }
            versions
        }));
    }
    let latest = |seen: &Arc<Mutex<Seen>>| seen.lock().unwrap().latest.clone();
    let wait_version = |want: &'static str| {
        let seen = seen.clone();
        async move {
            let what = format!("the clients to be served {want}");
            wharf_test_support::wait_until_async(Duration::from_secs(90), &what, || {
                let latest = latest(&seen);
                async move {
                    match latest.as_deref() == Some(want) {
                        true => Ok(()),
                        false => Err(format!("latest answer: {latest:?}")),
                    }
                }
            })
            .await;
        }
    };
    // Lets the clients make `n` more successful requests before the next step.
    let more = |n: u64| {
        let seen = seen.clone();
        async move {
            let target = seen.lock().unwrap().ok + n;
            let what = format!("{n} more answers to the clients (they stalled)");
            wharf_test_support::wait_until_async(Duration::from_secs(60), &what, || {
                let ok = seen.lock().unwrap().ok;
                async move {
                    match ok >= target {
                        true => Ok(()),
                        false => Err(format!("{ok} answers of {target}")),
                    }
                }
            })
            .await;
        }
    };
    wait_version("1 a").await;
    more(40).await;

    // A deploy of new code.
    deploy(&server, "zero", source("b", "web: python3 app.py\n")).await;
    wait_version("1 b").await;
    more(40).await;
    // A config change (a release of the same image).
    server
        .patch("/apps/zero/config-vars", json!({"VERSION": "2"}))
        .await;
    wait_version("2 b").await;
    more(40).await;
    // A rollback to the first deploy (v3): its code and its config, without a build.
    let rolled = server
        .post("/apps/zero/releases", json!({"release": "3"}))
        .await;
    assert_eq!(rolled.status, StatusCode::CREATED, "{rolled:?}");
    assert_eq!(rolled.body["description"], "Rollback to v3");
    wait_version("1 a").await;
    wait_for_dynos(&server, "zero", "three web up", |d| {
        count(d, "web", "up") == 3 && d.len() == 3
    })
    .await;

    more(40).await;

    // A restart of every web instance, one by one.
    let pids = |d: &[serde_json::Value]| d.iter().map(|x| x["pid"].clone()).collect::<Vec<_>>();
    let before = pids(
        &server
            .get("/apps/zero/dynos")
            .await
            .body
            .as_array()
            .unwrap()
            .clone(),
    );
    let restarted = server
        .send(server.request(reqwest::Method::DELETE, "/apps/zero/dynos"))
        .await;
    assert_eq!(restarted.status, StatusCode::ACCEPTED);
    wait_for_dynos(&server, "zero", "three new web up after the restart", |d| {
        count(d, "web", "up") == 3 && d.len() == 3 && pids(d).iter().all(|p| !before.contains(p))
    })
    .await;
    more(40).await;

    // Scaling 3 → 1 → 3.
    server
        .patch("/apps/zero/formation/web", json!({"quantity": 1}))
        .await;
    wait_for_dynos(&server, "zero", "one web", |d| {
        d.len() == 1 && count(d, "web", "up") == 1
    })
    .await;
    more(40).await;
    server
        .patch("/apps/zero/formation/web", json!({"quantity": 3}))
        .await;
    wait_for_dynos(&server, "zero", "three web", |d| {
        d.len() == 3 && count(d, "web", "up") == 3
    })
    .await;
    more(40).await;

    // An instance killed outright: its requests go to the others.
    let app_id = server.get("/apps/zero").await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let victim = server
        .state
        .control
        .backend()
        .status(&app_id)
        .into_iter()
        .find(|i| i.name == "web.2")
        .and_then(|i| i.pid)
        .expect("web.2 has a pid");
    nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(victim as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_for_dynos(&server, "zero", "web.2 back", |d| {
        d.len() == 3 && count(d, "web", "up") == 3 && d.iter().all(|x| x["pid"] != victim)
    })
    .await;
    more(40).await;

    stop.store(true, Ordering::SeqCst);
    let mut sequences = Vec::new();
    for client in clients {
        sequences.push(client.await.unwrap());
    }
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    if !seen.failures.is_empty() {
        // What the router saw of the slow or failed ones, and what the platform did meanwhile.
        let session = server
            .post("/apps/zero/log-sessions", json!({"lines": 1500}))
            .await;
        let log = server
            .fetch(session.body["logplex_url"].as_str().unwrap(), None)
            .await;
        let notable: Vec<&str> = log
            .lines()
            .filter(|l| {
                l.contains("wharf[web") || l.contains("at=error") || {
                    l.split("service=")
                        .nth(1)
                        .and_then(|r| r.split("ms").next())
                        .and_then(|n| n.parse::<u64>().ok())
                        .is_some_and(|ms| ms > 1000)
                }
            })
            .collect();
        panic!(
            "{} of {} requests failed: {:#?}\nthe log:\n{}",
            seen.failures.len(),
            seen.ok + seen.failures.len() as u64,
            &seen.failures[..seen.failures.len().min(20)],
            notable.join("\n")
        );
    }
    for versions in sequences {
        assert_eq!(
            versions,
            ["1 a", "1 b", "2 b", "1 a"],
            "each client saw the releases switch once each, in order"
        );
    }
    assert!(seen.ok > 200, "only {} requests went through", seen.ok);
    eprintln!("{} requests, none failed", seen.ok);
    server.stop().await;
}
