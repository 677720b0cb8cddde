//! `wharf tokens`: a token made for CI works until it is revoked; its secret is shown once.

use crate::harness::{Cli, Server};

#[test]
fn a_token_works_until_it_is_revoked() {
    let server = Server::start();
    let cli = Cli::logged_in(&server);
    let made = cli.run(&["tokens", "create", "-d", "CI deploys"]).success();
    let secret = made
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("Secret (shown once, keep it safe): "))
        .expect("the secret is printed")
        .to_owned();
    let listed = cli.run(&["tokens"]).success();
    assert!(listed.stdout.contains("CI deploys"), "{listed:#?}");
    assert!(!listed.stdout.contains(&secret), "lists never show secrets");
    let tokens = cli.run(&["tokens", "--json"]).success().json();
    let id = tokens
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["description"] == "CI deploys")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Another user with only that token (no saved login).
    let ci = Cli::new()
        .env("WHARF_URL", &server.url)
        .env("WHARF_TOKEN", &secret);
    ci.run(&["apps", "create", "from-ci"]).success();
    let revoked = cli.run(&["tokens", "revoke", &id]).success();
    assert!(revoked.stdout.contains("Revoked token"), "{revoked:#?}");
    let refused = ci.run(&["apps"]);
    assert!(
        refused.error().contains("unknown or revoked"),
        "a revoked token is refused"
    );
    // The last live token stays.
    let admin = cli.run(&["tokens", "--json"]).success().json();
    let last = admin[0]["id"].as_str().unwrap().to_owned();
    let kept = cli.run(&["tokens", "revoke", &last]);
    assert!(kept.error().contains("last live token"));
}
