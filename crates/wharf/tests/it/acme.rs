//! Automated Certificate Management against Pebble, the ACME test server (Debian's `pebble`),
//! on loopback with `pebble-challtestsrv` as its DNS: a custom domain gets a certificate by
//! HTTP-01 and is served with it over HTTPS, a certificate made to expire soon is renewed, a
//! domain whose challenge can't be answered shows `failing` with the reason, and the Heroku CLI's
//! `certs:auto` commands drive it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use wharf_test_support::certs::TestCa;

use crate::harness::{wait_until, Cli, Server};
use crate::stacks::free_port;

/// Pebble and its DNS server, stopped when dropped.
struct Pebble {
    children: Vec<Child>,
    /// The directory URL.
    url: String,
    /// The CA file Pebble's own HTTPS is signed by.
    ca: PathBuf,
    management: u16,
    dns_management: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn installed() -> bool {
    let found =
        Path::new("/usr/bin/pebble").exists() && Path::new("/usr/bin/pebble-challtestsrv").exists();
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "pebble is needed (scripts/setup installs it)"
        );
        eprintln!("note: pebble is not installed (apt-get install pebble); skipped");
    }
    found
}

/// The directory's port is chosen first, so the server can be told its URL before Pebble
/// (which must know the router's port) starts.
fn directory_port() -> u16 {
    free_port()
}

impl Pebble {
    /// Pebble on `port`, validating HTTP-01 on `http_port` of 127.0.0.1, issuing certificates
    /// valid for `validity_days`.
    fn start(port: u16, http_port: u16, validity_days: u64) -> Pebble {
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new("pebble's own HTTPS");
        let issued = ca.issue(&["localhost", "127.0.0.1"]);
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca.pem()).unwrap();
        std::fs::write(dir.path().join("cert.pem"), &issued.chain).unwrap();
        std::fs::write(dir.path().join("key.pem"), &issued.key).unwrap();
        let (management, dns, dns_management, tls) =
            (free_port(), free_port(), free_port(), free_port());
        let config = serde_json::json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{port}"),
            "managementListenAddress": format!("127.0.0.1:{management}"),
            "certificate": dir.path().join("cert.pem"),
            "privateKey": dir.path().join("key.pem"),
            "httpPort": http_port,
            "tlsPort": tls,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
            "certificateValidityPeriod": validity_days * 24 * 3600,
        }});
        let config_file = dir.path().join("pebble.json");
        std::fs::write(&config_file, config.to_string()).unwrap();
        let quiet = |c: &mut Command| {
            c.stdout(Stdio::null())
                .stderr(Stdio::null())
                .stdin(Stdio::null());
        };
        let mut dns_server = Command::new("pebble-challtestsrv");
        dns_server.args([
            "-defaultIPv4",
            "127.0.0.1",
            "-defaultIPv6",
            "",
            "-dns01",
            &format!("127.0.0.1:{dns}"),
            "-http01",
            "",
            "-https01",
            "",
            "-tlsalpn01",
            "",
            "-management",
            &format!("127.0.0.1:{dns_management}"),
        ]);
        quiet(&mut dns_server);
        let mut pebble = Command::new("pebble");
        pebble
            .arg("-config")
            .arg(&config_file)
            .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0");
        quiet(&mut pebble);
        let mut started = Pebble {
            children: Vec::new(),
            url: format!("https://127.0.0.1:{port}/dir"),
            ca: ca_file,
            management,
            dns_management,
            _dir: dir,
        };
        started.children.push(dns_server.spawn().unwrap());
        started.children.push(pebble.spawn().unwrap());
        let url = started.url.clone();
        let ca = started.ca.clone();
        wait_until(
            Duration::from_secs(30),
            "pebble's directory",
            || match curl(&["--cacert", ca.to_str().unwrap(), &url]) {
                Ok(body) if body.contains("newOrder") => Ok(()),
                other => Err(format!("{other:?}")),
            },
        );
        wait_until(Duration::from_secs(30), "pebble-challtestsrv", || {
            let probe = serde_json::json!({"host": "ready.test.", "addresses": ["127.0.0.1"]});
            curl(&[
                &format!("http://127.0.0.1:{dns_management}/add-a"),
                "-d",
                &probe.to_string(),
            ])
            .map(|_| ())
        });
        started
    }

    /// The root Pebble signs certificates with, PEM.
    fn issuing_root(&self) -> String {
        curl(&[
            "--cacert",
            self.ca.to_str().unwrap(),
            &format!("https://127.0.0.1:{}/roots/0", self.management),
        ])
        .unwrap()
    }

    /// Points `host` at `ip` in Pebble's DNS.
    fn resolve(&self, host: &str, ip: &str) {
        curl(&[
            &format!("http://127.0.0.1:{}/add-a", self.dns_management),
            "-d",
            &serde_json::json!({"host": format!("{host}."), "addresses": [ip]}).to_string(),
        ])
        .unwrap();
    }
}

/// `curl --silent --fail ARGS`: the body, or why not.
fn curl(args: &[&str]) -> Result<String, String> {
    let out = Command::new("curl")
        .args(["--silent", "--show-error", "--fail", "--max-time", "20"])
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn domain<'a>(domains: &'a Value, host: &str) -> &'a Value {
    domains
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["hostname"] == host)
        .unwrap_or_else(|| panic!("no {host} in {domains}"))
}

#[test]
fn acm_issues_renews_and_reports_failures_against_pebble() {
    if !installed() {
        return;
    }
    let port = directory_port();
    // Pebble's HTTPS is signed by a CA of the test's: wharf is told to trust it for the
    // directory only.
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(&[
        "--router-tls-addr",
        "127.0.0.1:0",
        "--acme-directory",
        &format!("https://127.0.0.1:{port}/dir"),
        "--acme-ca",
        dir.path().join("pebble-ca.pem").to_str().unwrap(),
        "--acme-look-every",
        "2",
    ]);
    let tls = server.router_tls_port.unwrap();
    // Certificates valid for 20 days: inside the 30-day renewal window from the start.
    let pebble = Pebble::start(port, server.router_port, 20);
    std::fs::copy(&pebble.ca, dir.path().join("pebble-ca.pem")).unwrap();
    let cli = Cli::logged_in(&server);
    cli.run(&["apps", "create", "secure"]).success();
    let site = cli.work_dir().join("site");
    std::fs::create_dir(&site).unwrap();
    std::fs::write(site.join("index.html"), "Hello from ACM\n").unwrap();
    cli.run(&["deploy", site.to_str().unwrap(), "-a", "secure"])
        .success();
    cli.run(&["domains", "add", "www.acme.test", "-a", "secure"])
        .success();
    // One the ACME server can't reach: its name points where nothing listens.
    pebble.resolve("fail.acme.test", "127.0.0.2");
    cli.run(&["domains", "add", "fail.acme.test", "-a", "secure"])
        .success();

    let enabled = cli.run(&["certs:auto:enable", "-a", "secure"]).success();
    assert!(enabled.stdout.contains("is on for secure"), "{enabled:#?}");
    let issued = wait_until(Duration::from_secs(120), "www.acme.test issued", || {
        let domains = cli
            .run(&["domains", "-a", "secure", "--json"])
            .success()
            .json();
        let www = domain(&domains, "www.acme.test").clone();
        match www["acm_status"].as_str() {
            Some("cert issued") => Ok(www),
            _ => Err(format!("{domains:#}")),
        }
    });
    let cert_name = issued["sni_endpoint"]["name"].as_str().unwrap().to_owned();
    let failing = wait_until(Duration::from_secs(120), "fail.acme.test failing", || {
        let domains = cli
            .run(&["domains", "-a", "secure", "--json"])
            .success()
            .json();
        let fail = domain(&domains, "fail.acme.test").clone();
        match fail["acm_status"].as_str() {
            Some("failing") => Ok(fail),
            _ => Err(format!("{domains:#}")),
        }
    });
    let reason = failing["acm_status_reason"].as_str().unwrap();
    assert!(
        reason.contains("challenge failed") && reason.contains("connection refused"),
        "{reason}"
    );
    let status = cli.run(&["certs:auto", "-a", "secure"]).success();
    let row = |host: &str| {
        let line = status.stdout.lines().find(|l| l.starts_with(host));
        line.map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    };
    assert!(
        row("www.acme.test").starts_with("cert issued"),
        "{status:#?}"
    );
    assert!(
        row("fail.acme.test").starts_with("failing the HTTP-01"),
        "{status:#?}"
    );

    // Served over HTTPS with a chain to Pebble's root.
    let root = dir.path().join("pebble-root.pem");
    std::fs::write(&root, pebble.issuing_root()).unwrap();
    let body = wait_until(Duration::from_secs(30), "https://www.acme.test", || {
        curl(&[
            "--cacert",
            root.to_str().unwrap(),
            "--resolve",
            &format!("www.acme.test:{tls}:127.0.0.1"),
            &format!("https://www.acme.test:{tls}/"),
        ])
    });
    assert_eq!(body, "Hello from ACM\n");
    let certs = cli
        .run(&["certs", "-a", "secure", "--json"])
        .success()
        .json();
    let acm = certs
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == cert_name.as_str())
        .unwrap();
    assert_eq!(acm["ssl_cert"]["acm"], true);
    let first_chain = acm["certificate_chain"].as_str().unwrap().to_owned();

    // It expires within 30 days, so it is renewed: a new certificate, the domain still issued.
    wait_until(Duration::from_secs(60), "a renewal", || {
        let info = cli
            .run(&["certs:info", &cert_name, "-a", "secure", "--json"])
            .success()
            .json();
        if info["certificate_chain"] != first_chain.as_str() {
            Ok(())
        } else {
            Err("the same certificate".to_owned())
        }
    });
    let domains = cli
        .run(&["domains", "-a", "secure", "--json"])
        .success()
        .json();
    assert_eq!(
        domain(&domains, "www.acme.test")["acm_status"],
        "cert issued"
    );

    // The Heroku CLI sees the same, and turning ACM off removes its certificates.
    if let Some(exe) = crate::heroku_cli::heroku_cli() {
        let heroku = crate::heroku_cli::Heroku::new(&cli, exe, &server);
        let shown = heroku.ok(&["certs:auto", "-a", "secure"]);
        assert!(shown.stdout.contains("enabled"), "{shown:#?}");
        assert!(shown.stdout.contains("www.acme.test"), "{shown:#?}");
        heroku.ok(&["certs:auto:refresh", "-a", "secure"]);
        heroku.ok(&["certs:auto:disable", "--confirm", "secure", "-a", "secure"]);
    } else {
        cli.run(&["certs:auto:disable", "-a", "secure"]).success();
    }
    let certs = cli
        .run(&["certs", "-a", "secure", "--json"])
        .success()
        .json();
    assert_eq!(certs, serde_json::json!([]));
    let off = cli.run(&["certs:auto", "-a", "secure"]).success();
    assert!(off.stdout.contains("is off"), "{off:#?}");
}
