//! `git push` deploys: a real git pushes examples/python-web to a real server over HTTP (with
//! the credentials `wharf git:remote` sets up) and over HTTPS (trusting the CA `wharf tls ca`
//! names); the build streams back as `remote:` lines, the router serves the pushed code, and a
//! push whose build fails is rejected and changes nothing.

use std::path::Path;
use std::time::Duration;

use crate::harness::{get_page, wait_until, Cli, Server};

/// A push builds (pip fetches gunicorn on the first one): generous.
const PUSH: Duration = Duration::from_secs(300);

fn until_serves(port: u16, app: &str, needle: &str) -> String {
    wait_until(
        Duration::from_secs(120),
        &format!("{app} to answer with `{needle}`"),
        || match get_page(port, &format!("{app}.localhost"))? {
            body if body.contains(needle) => Ok(body),
            body => Err(body),
        },
    )
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// The commit `main` of the remote points at.
fn remote_main(cli: &Cli, remote: &str) -> String {
    let refs = cli
        .git(&["ls-remote", remote, "refs/heads/main"], PUSH)
        .success();
    refs.stdout
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn git_push_deploys_over_http_and_https_and_a_failed_build_rejects_the_push() {
    let server = Server::start_with(&["--tls-addr", "127.0.0.1:0", "--port-range", "33400-33449"]);
    let tls_port = server.tls_port.expect("the server said where TLS listens");
    let cli = Cli::logged_in(&server);
    let port = server.router_port;
    cli.run(&["apps", "create", "pushed"]).success();

    // A checkout of the app, with the remote `wharf git:remote` adds.
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/python-web");
    copy_dir(&example, &cli.work_dir());
    cli.git(&["init", "--quiet", "--initial-branch=main"], PUSH)
        .success();
    cli.git(&["add", "-A"], PUSH).success();
    cli.git(&["commit", "--quiet", "-m", "first"], PUSH)
        .success();
    let remote = cli.run(&["git:remote", "-a", "pushed"]).success();
    assert!(
        remote.stdout.contains("Added git remote wharf"),
        "{remote:#?}"
    );

    // Over HTTP, with the saved login as git's credentials.
    let pushed = cli.git(&["push", "wharf", "main"], PUSH);
    assert_eq!(pushed.code, Some(0), "{pushed:#?}");
    for line in [
        "remote: -----> Deploying",
        "remote: -----> Building pushed",
        "remote: -----> Python app detected",
        "remote: -----> Released v2",
        "deployed to wharf",
    ] {
        assert!(pushed.stderr.contains(line), "no `{line}` in {pushed:#?}");
    }
    until_serves(port, "pushed", "Hello from python-web!");
    let first = remote_main(&cli, "wharf");
    let head = cli.git(&["rev-parse", "HEAD"], PUSH).success();
    assert_eq!(first, head.stdout.trim());
    let build = cli
        .run(&["builds", "info", "-a", "pushed", "--json"])
        .success();
    assert_eq!(build.json()["source_blob"]["version"], first.as_str());

    // Over HTTPS, trusting wharf's CA, with the token as the password.
    let app_py = cli.work_dir().join("app.py");
    let code = std::fs::read_to_string(&app_py).unwrap();
    std::fs::write(&app_py, code.replace("Hello from", "Pushed over TLS to")).unwrap();
    cli.git(&["commit", "--quiet", "-am", "second"], PUSH)
        .success();
    let ca = cli
        .run(&["tls", "ca", "--data-dir", server.data_dir.to_str().unwrap()])
        .success();
    let ca = ca.stdout.trim().to_owned();
    assert!(Path::new(&ca).is_file(), "{ca}");
    let token = std::fs::read_to_string(server.admin_token_file()).unwrap();
    let https = format!(
        "https://git:{}@127.0.0.1:{tls_port}/pushed.git",
        token.trim()
    );
    // GIT_SSL_CAINFO, as the machine may set it too (and it wins over git's config).
    let secure = cli.git_with(&["push", &https, "main"], &[("GIT_SSL_CAINFO", &ca)], PUSH);
    assert_eq!(secure.code, Some(0), "{secure:#?}");
    let secure = secure.stderr;
    assert!(secure.contains("remote: -----> Released v3"), "{secure}");
    until_serves(port, "pushed", "Pushed over TLS to python-web!");

    // A build that fails rejects the push: the remote's main stays, the app keeps serving.
    let before = remote_main(&cli, "wharf");
    std::fs::write(
        cli.work_dir().join("requirements.txt"),
        "this is not a requirement\n",
    )
    .unwrap();
    cli.git(&["commit", "--quiet", "-am", "broken"], PUSH)
        .success();
    let rejected = cli.git(&["push", "wharf", "main"], PUSH);
    assert_ne!(rejected.code, Some(0), "{rejected:#?}");
    assert!(
        rejected
            .stderr
            .contains("remote: error: the build of pushed failed")
            && rejected.stderr.contains("pre-receive hook declined"),
        "{rejected:#?}"
    );
    assert_eq!(remote_main(&cli, "wharf"), before);
    until_serves(port, "pushed", "Pushed over TLS to python-web!");

    // Another branch is stored, not deployed.
    let branch = cli.git(&["push", "wharf", "main:feature"], PUSH);
    assert_eq!(branch.code, Some(0), "{branch:#?}");
    assert!(
        branch.stderr.contains("feature is not main or master"),
        "{branch:#?}"
    );
    let releases = cli
        .run(&["releases", "-a", "pushed", "--json"])
        .success()
        .json();
    assert_eq!(releases.as_array().unwrap().len(), 3, "{releases:#}");
}

#[test]
fn git_needs_a_token_and_an_app() {
    let server = Server::start();
    let cli = Cli::new();
    let url = format!("{}/nobody.git", server.url);
    // No credentials: git is told to authenticate, and can't (no terminal to ask at).
    let denied = cli.git(&["ls-remote", &url], PUSH);
    assert_ne!(denied.code, Some(0));
    assert!(
        denied.stderr.contains("could not read Username")
            || denied.stderr.contains("Authentication failed"),
        "{denied:#?}"
    );
    // A wrong token is refused; a good one reaches the app, or says there is none.
    let wrong = server.url.replace("http://", "http://git:wrong@");
    let wrong = cli.git(&["ls-remote", &format!("{wrong}/nobody.git")], PUSH);
    assert!(wrong.stderr.contains("Authentication failed"), "{wrong:#?}");
    let token = std::fs::read_to_string(server.admin_token_file()).unwrap();
    let good = server
        .url
        .replace("http://", &format!("http://git:{}@", token.trim()));
    let missing = cli.git(&["ls-remote", &format!("{good}/nobody.git")], PUSH);
    assert_ne!(missing.code, Some(0));
    assert!(
        missing.stderr.contains("not found") || missing.stderr.contains("404"),
        "{missing:#?}"
    );
    let cli = Cli::logged_in(&server);
    cli.run(&["apps", "create", "empty-repo"]).success();
    let empty = cli.git(&["ls-remote", &format!("{good}/empty-repo.git")], PUSH);
    assert_eq!(empty.code, Some(0), "{empty:#?}");
    assert_eq!(empty.stdout, "", "a new app's repository has no refs");
    // `wharf git:remote` outside a checkout says what to do.
    let outside = cli.run(&["git:remote", "-a", "empty-repo"]);
    assert!(outside.error().contains("not a git checkout"));
}

#[test]
fn the_ca_is_made_once_and_trusted_across_restarts() {
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().join("wharf");
    let cli = Cli::new();
    let no_ca = cli.run(&["tls", "ca", "--data-dir", data_dir.to_str().unwrap()]);
    assert!(no_ca.error().contains("has no CA yet"));

    let mut cas = Vec::new();
    for _ in 0..2 {
        let server = Server::start_in_with(&data_dir, &["--tls-addr", "127.0.0.1:0"]);
        let ca = cli
            .run(&["tls", "ca", "--data-dir", data_dir.to_str().unwrap()])
            .success();
        let ca = ca.stdout.trim().to_owned();
        let key = std::fs::metadata(Path::new(&ca).with_file_name("ca-key.pem")).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&key.permissions()) & 0o777,
            0o600
        );
        cas.push(std::fs::read_to_string(&ca).unwrap());
        // git trusts this start's server certificate through the CA of the first start.
        let token = std::fs::read_to_string(server.admin_token_file()).unwrap();
        let url = format!(
            "https://git:{}@127.0.0.1:{}/nobody.git",
            token.trim(),
            server.tls_port.unwrap()
        );
        let listed = cli.git_with(&["ls-remote", &url], &[("GIT_SSL_CAINFO", &ca)], PUSH);
        assert!(
            !listed.stderr.contains("certificate"),
            "the TLS handshake failed: {listed:#?}"
        );
        assert!(listed.stderr.contains("not found"), "{listed:#?}");
    }
    assert_eq!(cas[0], cas[1], "the CA is made once");
}
