//! `wharf releases`: the history table, one release's card, and their JSON.

use crate::assert_cli_snapshot;
use crate::harness::{Cli, Server, ADMIN_EMAIL};

/// An app `myapp` with releases v1 (initial) to v4.
fn with_history() -> (Server, Cli) {
    let server = Server::start();
    let cli = Cli::logged_in(&server);
    cli.run(&["apps", "create", "myapp"]).success();
    for args in [
        &["config", "set", "FOO=1", "-a", "myapp"][..],
        &["config", "set", "BAR=2", "FOO=3", "-a", "myapp"],
        &["config", "unset", "FOO", "-a", "myapp"],
    ] {
        cli.run(args).success();
    }
    (server, cli)
}

#[test]
fn releases_table_and_info() {
    let (_server, cli) = with_history();
    assert_cli_snapshot!(
        "releases_table",
        cli.run(&["releases", "-a", "myapp"]).success().transcript()
    );
    assert_cli_snapshot!(
        "releases_info_current",
        cli.run(&["releases", "info", "-a", "myapp"])
            .success()
            .transcript()
    );
    assert_cli_snapshot!(
        "releases_info_v3",
        cli.run(&["releases", "info", "v3", "-a", "myapp"])
            .success()
            .transcript()
    );
    assert_cli_snapshot!(
        "releases_info_unknown",
        cli.run(&["releases", "info", "v9", "-a", "myapp"])
            .failure()
            .transcript()
    );
}

#[test]
fn releases_json() {
    let (_server, cli) = with_history();
    let list = cli
        .run(&["releases", "--json", "-a", "myapp"])
        .success()
        .json();
    let list = list.as_array().expect("an array");
    let versions: Vec<u64> = list
        .iter()
        .map(|r| r["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, [4, 3, 2, 1], "newest first");
    let descriptions: Vec<&str> = list
        .iter()
        .map(|r| r["description"].as_str().unwrap())
        .collect();
    assert_eq!(
        descriptions,
        [
            "Remove FOO config vars",
            "Set BAR, FOO config vars",
            "Set FOO config vars",
            "Initial release",
        ]
    );
    assert_eq!(list[0]["current"], true);
    assert!(list[1..].iter().all(|r| r["current"] == false));
    assert!(list.iter().all(|r| r["user"]["email"] == ADMIN_EMAIL));
    assert!(list.iter().all(|r| r["app"]["name"] == "myapp"));

    let two = cli
        .run(&["releases", "list", "-n", "2", "--json", "-a", "myapp"])
        .success()
        .json();
    assert_eq!(two.as_array().map(Vec::len), Some(2));
    assert_eq!(two[0]["version"], 4);

    let v3 = cli
        .run(&["releases", "info", "3", "--json", "-a", "myapp"])
        .success()
        .json();
    assert_eq!(v3["version"], 3);
    assert_eq!(v3["id"], list[1]["id"]);
    assert_eq!(v3["current"], false);
    assert_eq!(
        v3["config_vars"],
        serde_json::json!({"BAR": "2", "FOO": "3"}),
        "a release shows the config it was made with"
    );
    let current = cli
        .run(&["releases", "info", "--json", "-a", "myapp"])
        .success()
        .json();
    assert_eq!(current["version"], 4);
    assert_eq!(current["config_vars"], serde_json::json!({"BAR": "2"}));
    let by_id = cli
        .run(&[
            "releases",
            "info",
            list[3]["id"].as_str().unwrap(),
            "--json",
            "-a",
            "myapp",
        ])
        .success()
        .json();
    assert_eq!(by_id["version"], 1);
    assert_eq!(by_id["config_vars"], serde_json::json!({}));
}
