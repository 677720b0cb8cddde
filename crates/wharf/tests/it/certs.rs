//! HTTPS for apps: `wharf certs` uploads a certificate, the router serves it by SNI on
//! `--router-tls-addr` (checked with curl against the test's own CA), plain HTTP is redirected
//! until `wharf domains:redirect off`, a renewal replaces it, and bad uploads are refused with
//! what is wrong.

use std::process::Command;

use wharf_test_support::certs::TestCa;

use crate::harness::{wait_until, Cli, Server};

/// `curl` of `https://HOST:PORT/` (resolved to 127.0.0.1, trusting `ca`): (exit status,
/// `status http_version`, body).
fn curl_https(ca: &std::path::Path, host: &str, port: u16) -> (i32, String) {
    let out = Command::new("curl")
        .args(["--silent", "--max-time", "20", "--cacert"])
        .arg(ca)
        .args(["--resolve", &format!("{host}:{port}:127.0.0.1")])
        .args(["--write-out", "\n%{http_code} %{http_version}"])
        .arg(format!("https://{host}:{port}/"))
        .output()
        .expect("curl runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// `curl -i` of `http://HOST:PORT/path` (resolved to 127.0.0.1): the response head and body.
fn curl_http(host: &str, port: u16, path: &str) -> String {
    let out = Command::new("curl")
        .args(["--silent", "--include", "--max-time", "20"])
        .args(["--resolve", &format!("{host}:{port}:127.0.0.1")])
        .arg(format!("http://{host}:{port}{path}"))
        .output()
        .expect("curl runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn an_uploaded_certificate_serves_the_app_over_https() {
    let server = Server::start_with(&["--router-tls-addr", "127.0.0.1:0"]);
    let tls = server.router_tls_port.expect("the router's TLS port");
    let cli = Cli::logged_in(&server);
    cli.run(&["apps", "create", "shop"]).success();
    let site = cli.work_dir().join("site");
    std::fs::create_dir(&site).unwrap();
    std::fs::write(site.join("index.html"), "Hello over TLS\n").unwrap();
    cli.run(&["deploy", site.to_str().unwrap(), "-a", "shop"])
        .success();
    cli.run(&["domains", "add", "www.shop.test", "-a", "shop"])
        .success();

    let ca = TestCa::new("wharf test CA");
    let ca_file = cli.write("ca.pem", &ca.pem());
    let issued = ca.issue(&["www.shop.test", "shop.test"]);
    let crt = cli.write("shop.crt", &issued.chain);
    let key = cli.write("shop.key", &issued.key);

    // What is refused, and why.
    cli.write("other.key", &ca.issue(&["www.shop.test"]).key);
    let mismatch = cli
        .run(&["certs:add", "shop.crt", "other.key", "-a", "shop"])
        .failure()
        .error();
    assert!(mismatch.contains("not the certificate's"), "{mismatch}");
    let old = ca.issue_for(&["www.shop.test"], -60, -2);
    cli.write("old.crt", &old.chain);
    cli.write("old.key", &old.key);
    let expired = cli
        .run(&["certs:add", "old.crt", "old.key", "-a", "shop"])
        .failure()
        .error();
    assert!(expired.contains("expired on"), "{expired}");
    let missing = cli
        .run(&["certs:add", "nope.crt", "shop.key", "-a", "shop"])
        .failure()
        .error();
    assert!(missing.contains("cannot read the certificate"), "{missing}");
    let none = cli.run(&["certs", "-a", "shop"]).success();
    assert!(none.stdout.contains("has no TLS certificates"), "{none:#?}");

    // Added: it serves the app's hostname it names.
    let added = cli
        .run(&[
            "certs:add",
            crt.to_str().unwrap(),
            key.to_str().unwrap(),
            "-a",
            "shop",
        ])
        .success();
    assert!(
        added
            .stdout
            .lines()
            .any(|l| l.starts_with("Serves:") && l.ends_with(" www.shop.test")),
        "{added:#?}"
    );
    let listed = cli.run(&["certs", "-a", "shop", "--json"]).success().json();
    let name = listed[0]["name"].as_str().unwrap().to_owned();
    assert_eq!(listed[0]["domains"], serde_json::json!(["www.shop.test"]));
    assert_eq!(listed[0]["ssl_cert"]["ca_signed?"], false);
    assert_eq!(
        listed[0]["ssl_cert"]["cert_domains"],
        serde_json::json!(["www.shop.test", "shop.test"])
    );
    // The stored key is not in the database as it was uploaded.
    let db = std::fs::read(server.data_dir.join("wharf.db")).unwrap();
    let key_line = issued.key.lines().nth(1).unwrap();
    assert!(
        !db.windows(key_line.len()).any(|w| w == key_line.as_bytes()),
        "the private key is stored in the clear"
    );
    let table = cli.run(&["certs", "-a", "shop"]).success();
    assert!(table.stdout.contains(&name), "{table:#?}");
    let domains = cli
        .run(&["domains", "-a", "shop", "--json"])
        .success()
        .json();
    assert_eq!(domains[1]["sni_endpoint"]["name"], name.as_str());
    assert!(domains[0]["sni_endpoint"].is_null());

    let served = wait_until(
        std::time::Duration::from_secs(30),
        "https://www.shop.test",
        || match curl_https(&ca_file, "www.shop.test", tls) {
            (0, out) if out.contains("Hello over TLS") => Ok(out),
            (code, out) => Err(format!("curl exit {code}: {out}")),
        },
    );
    assert!(served.ends_with("200 2"), "HTTP/2 by ALPN: {served}");

    // Plain HTTP for it is redirected; the default hostname (no certificate) is served.
    let redirected = curl_http("www.shop.test", server.router_port, "/a?b=c");
    assert!(redirected.starts_with("HTTP/1.1 308"), "{redirected}");
    assert!(
        redirected
            .to_ascii_lowercase()
            .contains(&format!("location: https://www.shop.test:{tls}/a?b=c")),
        "{redirected}"
    );
    let plain = curl_http("shop.localhost", server.router_port, "/");
    assert!(plain.starts_with("HTTP/1.1 200"), "{plain}");
    cli.run(&["domains:redirect", "off", "-a", "shop"])
        .success();
    assert_eq!(
        cli.run(&["domains:redirect", "-a", "shop"])
            .success()
            .stdout,
        "off\n"
    );
    let plain = curl_http("www.shop.test", server.router_port, "/");
    assert!(plain.starts_with("HTTP/1.1 200"), "{plain}");
    cli.run(&["domains", "redirect", "on", "-a", "shop"])
        .success();

    // A renewal replaces it; removing it stops HTTPS for the hostname.
    let renewed = ca.issue(&["www.shop.test"]);
    cli.write("new.crt", &renewed.chain);
    cli.write("new.key", &renewed.key);
    cli.run(&["certs:update", &name, "new.crt", "new.key", "-a", "shop"])
        .success();
    let info = cli
        .run(&["certs:info", &name, "-a", "shop", "--json"])
        .success()
        .json();
    assert_eq!(info["certificate_chain"], renewed.chain.as_str());
    let (code, out) = curl_https(&ca_file, "www.shop.test", tls);
    assert_eq!(code, 0, "{out}");
    cli.run(&["certs:remove", &name, "-a", "shop"]).success();
    let (code, _) = curl_https(&ca_file, "www.shop.test", tls);
    assert_ne!(code, 0, "no certificate, no handshake");
    let plain = curl_http("www.shop.test", server.router_port, "/");
    assert!(plain.starts_with("HTTP/1.1 200"), "{plain}");
    let gone = cli
        .run(&["certs:info", &name, "-a", "shop"])
        .failure()
        .error();
    assert!(gone.contains("has no SNI endpoint"), "{gone}");
}
