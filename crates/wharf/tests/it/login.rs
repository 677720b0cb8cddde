//! First start, `wharf login` and `wharf logout`.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::harness::{Cli, Server, ADMIN_EMAIL};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn first_start_writes_a_private_admin_token_that_logs_in() {
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().join("wharf");
    let server = Server::start_in(&data_dir);
    let token_file = server.admin_token_file();

    let token = std::fs::read_to_string(&token_file).expect("the first start writes admin-token");
    assert!(!token.trim().is_empty());
    assert_eq!(
        mode(&token_file),
        0o600,
        "only the owner may read the token"
    );
    assert_eq!(
        mode(&data_dir),
        0o711,
        "others may pass through the data dir (apps reach their files through it) but not list it"
    );
    for private in [
        "wharf.db",
        "logs",
        "sources",
        "images",
        "cache",
        "builds",
        "url-signing-key",
    ] {
        let path = data_dir.join(private);
        let expected = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode(&path), expected, "{private} is the owner's only");
    }
    let hint = format!(
        "Log in with:  wharf login --url {} --token-file {}",
        server.url,
        token_file.display()
    );
    assert!(
        server.startup.contains(&hint),
        "the server tells how to log in: {}",
        server.startup
    );
    assert!(server.startup.contains(&format!(
        "wharf API listening on {} (data in {})",
        server.url,
        data_dir.display()
    )));

    let cli = Cli::new();
    let login = cli.login(&server).success();
    assert_eq!(
        login.stdout,
        format!("Logged in to {} as {ADMIN_EMAIL}\n", server.url)
    );
    let credentials = cli.config_dir().join("credentials.json");
    assert!(login.stderr.contains(&credentials.display().to_string()));
    assert_eq!(
        mode(&credentials),
        0o600,
        "only the owner may read the token"
    );
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&credentials).unwrap()).unwrap();
    assert_eq!(saved["url"], server.url.as_str());
    assert_eq!(saved["token"], token.trim());

    // Logged in, commands work without any flag or variable.
    let apps = cli.run(&["apps"]).success();
    assert_eq!(
        apps.stdout,
        "No apps yet: create one with `wharf apps create NAME`\n"
    );

    // A restart keeps the token: logins and saved credentials stay valid.
    let (status, _) = server.stop_with("-TERM");
    assert!(status.success());
    let server = Server::start_in(&data_dir);
    assert_eq!(std::fs::read_to_string(&token_file).unwrap(), token);
    assert!(
        !server.startup.contains("Generated an admin token"),
        "a second start makes no new token: {}",
        server.startup
    );
    // The port changed, so log in again (with the same file) and use the saved credentials.
    cli.login(&server).success();
    cli.run(&["apps", "create", "still-works"]).success();
}

#[test]
fn login_reads_the_token_from_stdin() {
    let server = Server::start();
    let token = std::fs::read_to_string(server.admin_token_file()).unwrap();
    let cli = Cli::new();
    let login = cli
        .run_with_stdin(&["login", "--url", &server.url, "--token-stdin"], &token)
        .success();
    assert_eq!(
        login.stdout,
        format!("Logged in to {} as {ADMIN_EMAIL}\n", server.url)
    );
    cli.run(&["apps"]).success();
}

#[test]
fn a_wrong_token_does_not_log_in() {
    let server = Server::start();
    let cli = Cli::new();
    let stderr = cli
        .run_with_stdin(&["login", "--url", &server.url, "--token-stdin"], "wrong\n")
        .error();
    assert!(
        stderr.starts_with(&format!("error: cannot log in to {}\n", server.url)),
        "{stderr}"
    );
    assert!(
        !cli.config_dir().join("credentials.json").exists(),
        "nothing is saved"
    );
    let stderr = cli
        .run_with_stdin(&["login", "--url", &server.url, "--token-stdin"], "\n")
        .error();
    assert!(stderr.contains("the token is empty"), "{stderr}");
}

#[test]
fn logout_forgets_the_credentials() {
    let server = Server::start();
    let cli = Cli::logged_in(&server);
    let logout = cli.run(&["logout"]).success();
    assert!(logout.stdout.starts_with("Logged out"), "{logout:?}");
    assert!(!cli.config_dir().join("credentials.json").exists());
    let stderr = cli.run(&["apps"]).error();
    assert!(stderr.contains("wharf login"), "{stderr}");
    assert_eq!(cli.run(&["logout"]).success().stdout, "Not logged in\n");
}
