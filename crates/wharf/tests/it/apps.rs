//! `wharf apps`: the table and the app card people read, and the JSON scripts read.

use crate::assert_cli_snapshot;
use crate::harness::{Cli, Server, ADMIN_EMAIL};

#[test]
fn apps_table_and_info() {
    let server = Server::start();
    let cli = Cli::logged_in(&server);
    assert_cli_snapshot!("apps_empty", cli.run(&["apps"]).success().transcript());
    assert_cli_snapshot!(
        "apps_create",
        cli.run(&["apps", "create", "web-shop"])
            .success()
            .transcript()
    );
    cli.run(&["apps", "create", "api"]).success();
    assert_cli_snapshot!("apps_table", cli.run(&["apps"]).success().transcript());
    assert_cli_snapshot!(
        "apps_info",
        cli.run(&["apps", "info", "-a", "api"])
            .success()
            .transcript()
    );
    assert_cli_snapshot!(
        "apps_rename",
        cli.run(&["apps", "rename", "api-v2", "-a", "api"])
            .success()
            .transcript()
    );
}

#[test]
fn apps_create_without_a_name_generates_one() {
    let server = Server::start();
    let cli = Cli::logged_in(&server);
    let created = cli.run(&["apps", "create", "--json"]).success().json();
    let name = created["name"].as_str().expect("a name");
    assert!(!name.is_empty());
    let listed = cli.run(&["apps", "--json"]).success().json();
    assert_eq!(listed[0]["name"], name);
}

#[test]
fn apps_json() {
    let server = Server::start();
    let cli = Cli::logged_in(&server);
    assert_eq!(
        cli.run(&["apps", "--json"]).success().json(),
        serde_json::json!([]),
        "no apps is an empty array, not a sentence"
    );
    let created = cli
        .run(&["apps", "create", "myapp", "--json"])
        .success()
        .json();
    assert_eq!(created["name"], "myapp");
    assert_eq!(created["owner"]["email"], ADMIN_EMAIL);
    assert_eq!(created["maintenance"], false);
    assert!(created["id"].as_str().is_some_and(|id| id.len() == 36));
    assert!(created["web_url"]
        .as_str()
        .is_some_and(|url| url.starts_with("http://myapp.")));
    assert_eq!(
        created["git_url"],
        format!("{}/myapp.git", server.url).as_str(),
        "the git URL points at this server"
    );

    for args in [&["apps", "--json"][..], &["apps", "list", "--json"]] {
        let list = cli.run(args).success().json();
        let list = list.as_array().expect("an array");
        assert_eq!(list.len(), 1);
        assert_eq!(list[0]["id"], created["id"]);
        assert_eq!(list[0]["name"], "myapp");
    }

    let info = cli
        .run(&["apps", "info", "-a", "myapp", "--json"])
        .success()
        .json();
    assert_eq!(info["id"], created["id"]);
    assert!(
        info["released_at"].is_string(),
        "the initial release counts: {info}"
    );

    let renamed = cli
        .run(&["apps", "rename", "other", "-a", "myapp", "--json"])
        .success()
        .json();
    assert_eq!(renamed["id"], created["id"]);
    assert_eq!(renamed["name"], "other");
}
