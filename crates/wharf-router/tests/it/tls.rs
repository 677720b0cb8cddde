//! TLS termination: each app's certificate by SNI, HTTP/2 or HTTP/1.1 by ALPN, TLS 1.2 and 1.3
//! only, the forwarding headers of a TLS request, the redirect of plain HTTP, and certificates
//! swapped under load without a failed request.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use wharf_core::backend::Routes;
use wharf_router::{AppRoute, Certificate};
use wharf_test_support::certs::{Issued, TestCa};

use crate::support::{route, TestRouter, TestUpstream, APP_ID, HOST};

fn certificate(issued: &Issued) -> Certificate {
    Certificate::from_pem(&issued.chain, &issued.key).unwrap()
}

fn other_route() -> AppRoute {
    AppRoute {
        app_id: "app-2".into(),
        app_name: "other".into(),
        maintenance: false,
        https_redirect: true,
    }
}

/// A rustls client trusting `ca` and offering `alpn`.
fn client_config(
    ca: &TestCa,
    alpn: &[&[u8]],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca.pem().as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// Handshakes with the router as `name`: the negotiated ALPN protocol and TLS version, or the
/// error.
async fn handshake(
    router: &TestRouter,
    config: Arc<rustls::ClientConfig>,
    name: &str,
) -> Result<(Option<Vec<u8>>, rustls::ProtocolVersion), String> {
    let tcp = TcpStream::connect(router.tls_addr.unwrap()).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(config);
    let server_name = ServerName::try_from(name.to_owned()).unwrap();
    let stream = connector
        .connect(server_name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let (_, conn) = stream.get_ref();
    Ok((
        conn.alpn_protocol().map(<[u8]>::to_vec),
        conn.protocol_version().unwrap(),
    ))
}

#[tokio::test]
async fn each_app_is_served_with_its_own_certificate_by_sni_and_alpn_picks_http2() {
    let app = TestUpstream::named("app").await;
    let other = TestUpstream::named("other").await;
    let router = TestRouter::with_tls().await;
    router.router.set_hosts(vec![
        (HOST.to_owned(), route(false)),
        ("other.example".to_owned(), other_route()),
    ]);
    router.router.set(APP_ID, vec![app.upstream("web.1")]);
    router.router.set("app-2", vec![other.upstream("web.1")]);
    let ca = TestCa::new("wharf test CA");
    router.router.set_certificates(&[
        certificate(&ca.issue(&[HOST])),
        certificate(&ca.issue(&["other.example"])),
    ]);

    // The client checks the certificate against the name it asked for: each handshake
    // succeeding means each got its own.
    let both: &[&[u8]] = &[b"h2", b"http/1.1"];
    let tls13 = &[&rustls::version::TLS13];
    for name in [HOST, "other.example"] {
        let (alpn, version) = handshake(&router, client_config(&ca, both, tls13), name)
            .await
            .unwrap();
        assert_eq!(alpn.as_deref(), Some(&b"h2"[..]), "{name}");
        assert_eq!(version, rustls::ProtocolVersion::TLSv1_3);
    }
    // HTTP/1.1 for a client that offers only that; TLS 1.2 for one that speaks only that.
    let (alpn, version) = handshake(
        &router,
        client_config(&ca, &[b"http/1.1"], &[&rustls::version::TLS12]),
        HOST,
    )
    .await
    .unwrap();
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
    assert_eq!(version, rustls::ProtocolVersion::TLSv1_2);
    // A name no certificate covers gets no handshake.
    let refused = handshake(&router, client_config(&ca, both, tls13), "unknown.example").await;
    assert!(refused.is_err(), "{refused:?}");

    // Requests over HTTP/2 and HTTP/1.1 reach each app.
    let h2 = router.https_client(&ca.pem()).build().unwrap();
    for (host, body) in [(HOST, "app"), ("other.example", "other")] {
        let response = h2.get(router.https_url(host, "/")).send().await.unwrap();
        assert_eq!(response.version(), reqwest::Version::HTTP_2, "{host}");
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), body);
    }
    let h1 = router.https_client(&ca.pem()).http1_only().build().unwrap();
    let response = h1.get(router.https_url(HOST, "/")).send().await.unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_11);
    assert_eq!(response.text().await.unwrap(), "app");

    router.stop().await;
    app.stop().await;
    other.stop().await;
}

#[tokio::test]
async fn a_request_over_tls_says_so_to_the_app_and_in_the_log() {
    let app = TestUpstream::named("app").await;
    let router = TestRouter::with_tls().await;
    router.route(&[&app]);
    let ca = TestCa::new("wharf test CA");
    router
        .router
        .set_certificates(&[certificate(&ca.issue(&[HOST]))]);

    let client = router.https_client(&ca.pem()).build().unwrap();
    let response = client
        .get(router.https_url(HOST, "/over-tls"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let seen = app.last();
    assert_eq!(seen.headers["x-forwarded-proto"], "https");
    let tls_port = router.tls_addr.unwrap().port().to_string();
    assert_eq!(seen.headers["x-forwarded-port"], tls_port.as_str());
    let lines = crate::support::wait_until("the router line", Duration::from_secs(10), || {
        let router = &router;
        async move {
            let lines = router.log_lines().await;
            lines
                .iter()
                .find(|l| l.contains("path=\"/over-tls\""))
                .cloned()
        }
    })
    .await;
    assert!(lines.contains("protocol=https"), "{lines}");

    router.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn plain_http_is_redirected_to_https_where_a_certificate_serves_the_host() {
    let app = TestUpstream::named("app").await;
    let other = TestUpstream::named("other").await;
    let router = TestRouter::with_tls().await;
    let mut no_redirect = other_route();
    no_redirect.https_redirect = false;
    router.router.set_hosts(vec![
        (HOST.to_owned(), route(false)),
        // Same app, but no certificate names it.
        ("www.app.example".to_owned(), route(false)),
        ("other.example".to_owned(), no_redirect),
    ]);
    router.router.set(APP_ID, vec![app.upstream("web.1")]);
    router.router.set("app-2", vec![other.upstream("web.1")]);
    let ca = TestCa::new("wharf test CA");
    router.router.set_certificates(&[
        certificate(&ca.issue(&[HOST])),
        certificate(&ca.issue(&["other.example"])),
    ]);
    let client = router
        .client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    let response = client
        .post(router.url(HOST, "/form?x=1"))
        .body("a=b")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 308);
    let tls_port = router.tls_addr.unwrap().port();
    assert_eq!(
        response.headers()["location"],
        format!("https://{HOST}:{tls_port}/form?x=1").as_str()
    );
    assert_eq!(app.requests(), 0);
    // A hostname without a certificate, and an app with the redirect off, are served.
    let response = client
        .get(router.url("www.app.example", "/"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(app.requests(), 1);
    assert_eq!(app.last().headers["x-forwarded-proto"], "http");
    let response = client
        .get(router.url("other.example", "/"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "other");

    // Following the redirect lands on the app over TLS.
    let follows = router
        .https_client(&ca.pem())
        .resolve(HOST, router.tls_addr.unwrap())
        .build()
        .unwrap();
    let response = follows
        .get(format!("https://{HOST}:{tls_port}/form?x=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.text().await.unwrap(), "app");

    router.stop().await;
    app.stop().await;
    other.stop().await;
}

/// New connections and a kept-alive one keep being served while the certificate is replaced
/// again and again: 0 failed requests, and each new handshake after a swap gets the new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_swap_under_load_without_a_failed_request() {
    let app = TestUpstream::named("app").await;
    let router = Arc::new(TestRouter::with_tls().await);
    router.route(&[&app]);
    let ca = TestCa::new("wharf test CA");
    let first = ca.issue(&[HOST]);
    router.router.set_certificates(&[certificate(&first)]);
    let swaps: Vec<Issued> = (0..10).map(|_| ca.issue(&[HOST])).collect();

    let done = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let mut load = Vec::new();
    for keep_alive in [true, false, false] {
        let (router, done, served, failed) = (
            Arc::clone(&router),
            Arc::clone(&done),
            Arc::clone(&served),
            Arc::clone(&failed),
        );
        let pem = ca.pem();
        load.push(tokio::spawn(async move {
            let keep = router.https_client(&pem).build().unwrap();
            // Bounded: at most 5000 requests per client, whatever happens.
            for _ in 0..5000 {
                if done.load(Ordering::Relaxed) {
                    break;
                }
                let client = if keep_alive {
                    keep.clone()
                } else {
                    router.https_client(&pem).build().unwrap()
                };
                match client.get(router.https_url(HOST, "/")).send().await {
                    Ok(r) if r.status() == 200 => {
                        served.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for issued in &swaps {
        let before = served.load(Ordering::Relaxed);
        router.router.set_certificates(&[certificate(issued)]);
        // Requests were served under this certificate before the next swap.
        crate::support::wait_for("requests after a swap", Duration::from_secs(30), || {
            let served = Arc::clone(&served);
            async move { served.load(Ordering::Relaxed) >= before + 5 }
        })
        .await;
    }
    done.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    assert_eq!(failed.load(Ordering::Relaxed), 0);
    assert!(served.load(Ordering::Relaxed) >= 50);

    // A new handshake now gets the last certificate: its serial is the one presented.
    let tcp = TcpStream::connect(router.tls_addr.unwrap()).await.unwrap();
    let config = client_config(&ca, &[b"http/1.1"], &[&rustls::version::TLS13]);
    let stream = tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from(HOST.to_owned()).unwrap(), tcp)
        .await
        .unwrap();
    let presented = stream.get_ref().1.peer_certificates().unwrap()[0].clone();
    let last =
        rustls::pki_types::CertificateDer::pem_slice_iter(swaps.last().unwrap().chain.as_bytes())
            .next()
            .unwrap()
            .unwrap();
    assert_eq!(presented, last);
    drop(stream);

    Arc::try_unwrap(router).ok().unwrap().stop().await;
    app.stop().await;
}

#[test]
fn a_certificate_is_checked_before_it_is_served() {
    let ca = TestCa::new("wharf test CA");
    let issued = ca.issue(&["shop.example", "*.shop.example"]);
    let cert = certificate(&issued);
    assert_eq!(cert.hostnames, ["shop.example", "*.shop.example"]);
    assert!(cert.covers("www.shop.example"));
    assert!(!cert.covers("a.b.shop.example"));
    assert!(!cert.self_signed);
    let now = chrono::Utc::now().timestamp();
    assert!(cert.check_dates(now).is_ok());

    // Another certificate's key.
    let other = ca.issue(&["shop.example"]);
    let mismatch = Certificate::from_pem(&issued.chain, &other.key).unwrap_err();
    assert!(
        mismatch.to_string().contains("not the certificate's"),
        "{mismatch}"
    );
    // Expired yesterday.
    let old = certificate(&ca.issue_for(&["shop.example"], -30, -1));
    let expired = old.check_dates(now).unwrap_err();
    assert!(expired.to_string().contains("expired on"), "{expired}");
    // Not PEM at all; a key that isn't one.
    let garbage = Certificate::from_pem("hello", &issued.key).unwrap_err();
    assert!(
        garbage.to_string().contains("no PEM certificate"),
        "{garbage}"
    );
    let bad_key = Certificate::from_pem(
        &issued.chain,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap_err();
    assert!(bad_key.to_string().contains("private key"), "{bad_key}");
}
