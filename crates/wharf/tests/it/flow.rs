//! A user's first session, end to end: create an app, configure it, read its releases, rename
//! it and destroy it. Runs on SQLite and on PostgreSQL.

use crate::harness::{Backend, Cli, Server};
use wharf_test_support::on_both_databases;

on_both_databases!(blocking: an_app_from_creation_to_destruction);

/// A `.env` file with the things people put in them.
const DOTENV: &str = r#"# settings for myapp
export DATABASE_URL=postgres://db.internal/myapp
GREETING="hello \"world\""   # double quotes understand escapes
LITERAL='$HOME and \n stay as written'
CERT="-----BEGIN-----
abc
-----END-----"

EMPTY=
PLAIN=a#b # only a # after a space starts a comment
"#;

fn an_app_from_creation_to_destruction(backend: Backend) {
    let server = Server::start_on(backend);
    let cli = Cli::logged_in(&server);

    // Create, list, info.
    let created = cli.run(&["apps", "create", "myapp"]).success();
    assert!(
        created.stdout.starts_with("Created myapp\nName:"),
        "{created:?}"
    );
    let apps = cli.run(&["apps"]).success();
    let lines: Vec<&str> = apps.stdout.lines().collect();
    assert!(lines[0].starts_with("NAME "), "{apps:?}");
    assert_eq!(lines.len(), 2, "{apps:?}");
    assert!(lines[1].starts_with("myapp "), "{apps:?}");
    assert_eq!(
        cli.run(&["apps", "list"]).success().stdout,
        apps.stdout,
        "`apps` lists, like `apps list`"
    );
    let info = cli.run(&["apps", "info", "-a", "myapp"]).success();
    assert!(info.stdout.contains("Name:        myapp\n"), "{info:?}");
    assert!(
        info.stdout.contains("\nOwner:       admin@wharf.local\n"),
        "{info:?}"
    );

    // Config: none yet, then set, get, set again (no change), a .env file, list, unset.
    assert_eq!(
        cli.run(&["config", "-a", "myapp"]).success().stdout,
        "myapp has no config vars: set some with `wharf config set KEY=value -a myapp`\n"
    );
    assert_eq!(
        cli.run(&["config", "set", "FOO=bar", "-a", "myapp"])
            .success()
            .stdout,
        "Set FOO on myapp: release v2\n"
    );
    assert_eq!(
        cli.run(&["config", "get", "FOO", "-a", "myapp"])
            .success()
            .stdout,
        "bar\n"
    );
    assert_eq!(
        cli.run(&["config", "set", "FOO=bar", "-a", "myapp"])
            .success()
            .stdout,
        "Set FOO on myapp: nothing changed, no new release\n"
    );
    cli.write(".env", DOTENV);
    assert_eq!(
        cli.run(&["config", "set", "--env-file", ".env", "-a", "myapp"])
            .success()
            .stdout,
        "Set CERT, DATABASE_URL, EMPTY, GREETING, LITERAL, PLAIN on myapp: release v3\n"
    );
    for (key, value) in [
        ("DATABASE_URL", "postgres://db.internal/myapp"),
        ("GREETING", r#"hello "world""#),
        ("LITERAL", r"$HOME and \n stay as written"),
        ("CERT", "-----BEGIN-----\nabc\n-----END-----"),
        ("EMPTY", ""),
        ("PLAIN", "a#b"),
        ("FOO", "bar"),
    ] {
        assert_eq!(
            cli.run(&["config", "get", key, "-a", "myapp"])
                .success()
                .stdout,
            format!("{value}\n"),
            "config var {key}"
        );
    }
    let list = cli.run(&["config", "list", "-a", "myapp"]).success();
    assert!(
        list.stdout.starts_with("=== myapp config vars\n"),
        "{list:?}"
    );
    assert!(
        list.stdout
            .contains("\nDATABASE_URL: postgres://db.internal/myapp\n"),
        "{list:?}"
    );
    assert!(list.stdout.contains("\nFOO:          bar\n"), "{list:?}");
    assert_eq!(
        cli.run(&["config", "unset", "FOO", "-a", "myapp"])
            .success()
            .stdout,
        "Unset FOO on myapp: release v4\n"
    );
    let stderr = cli.run(&["config", "get", "FOO", "-a", "myapp"]).error();
    assert_eq!(stderr, "error: myapp has no config var `FOO`\n");

    // Releases: newest first, each saying what it did.
    let releases = cli.run(&["releases", "-a", "myapp"]).success();
    let lines: Vec<&str> = releases.stdout.lines().collect();
    assert_eq!(lines[0], "=== myapp releases");
    assert!(
        lines[1].starts_with("VERSION  CURRENT  DESCRIPTION"),
        "{releases:?}"
    );
    let rows: Vec<Vec<&str>> = lines[2..].iter().map(|l| columns(l)).collect();
    let expected = [
        ("v4", "Remove FOO config vars"),
        (
            "v3",
            "Set CERT, DATABASE_URL, EMPTY, GREETING, LITERAL, PLAIN config vars",
        ),
        ("v2", "Set FOO config vars"),
        ("v1", "Initial release"),
    ];
    assert_eq!(rows.len(), expected.len(), "{releases:?}");
    for (row, (version, description)) in rows.iter().zip(expected) {
        assert_eq!(row[0], version, "{releases:?}");
        assert!(row.contains(&description), "{version}: {releases:?}");
    }
    assert_eq!(rows[0][1], "*", "v4 is current: {releases:?}");
    assert!(rows[1..].iter().all(|r| r[1] != "*"), "{releases:?}");
    let two = cli.run(&["releases", "-n", "2", "-a", "myapp"]).success();
    assert_eq!(
        two.stdout.lines().count(),
        4,
        "a title, a header and two rows: {two:?}"
    );

    let v2 = cli
        .run(&["releases", "info", "v2", "-a", "myapp"])
        .success();
    assert!(v2.stdout.starts_with("=== myapp release v2\n"), "{v2:?}");
    assert!(
        v2.stdout.contains("\nDescription: Set FOO config vars\n"),
        "{v2:?}"
    );
    assert!(v2.stdout.contains("\nCurrent:     no\n"), "{v2:?}");
    assert!(
        v2.stdout.ends_with("=== config vars of v2\nFOO: bar\n"),
        "a release keeps the config it was made with: {v2:?}"
    );
    assert_eq!(
        cli.run(&["releases", "info", "2", "-a", "myapp"])
            .success()
            .stdout,
        v2.stdout,
        "`2` and `v2` name the same release"
    );
    let current = cli.run(&["releases", "info", "-a", "myapp"]).success();
    assert!(
        current.stdout.starts_with("=== myapp release v4\n"),
        "{current:?}"
    );
    assert!(
        current.stdout.contains("\nCurrent:     yes\n"),
        "{current:?}"
    );
    assert!(!current.stdout.contains("FOO:"), "{current:?}");
    let v1 = cli
        .run(&["releases", "info", "v1", "-a", "myapp"])
        .success();
    assert!(
        v1.stdout.ends_with("=== config vars of v1\n(none)\n"),
        "{v1:?}"
    );

    // Rename: the config and releases move with the app; the old name is gone.
    let renamed = cli
        .run(&["apps", "rename", "newapp", "-a", "myapp"])
        .success();
    assert!(
        renamed
            .stdout
            .starts_with("Renamed myapp to newapp\nIts web URL is now http://newapp."),
        "{renamed:?}"
    );
    assert_eq!(
        cli.run(&["config", "get", "PLAIN", "-a", "newapp"])
            .success()
            .stdout,
        "a#b\n"
    );
    assert_eq!(
        cli.run(&["apps", "info", "-a", "myapp"]).error(),
        "error: app `myapp` not found\n"
    );

    // Destroy refuses unless the name is confirmed, and then nothing is destroyed.
    let stderr = cli.run(&["apps", "destroy", "-a", "newapp"]).error();
    assert!(stderr.contains("--confirm newapp"), "{stderr}");
    let stderr = cli
        .run(&["apps", "destroy", "-a", "newapp", "--confirm", "myapp"])
        .error();
    assert!(stderr.contains("does not match"), "{stderr}");
    assert!(stderr.contains("nothing was destroyed"), "{stderr}");
    cli.run(&["apps", "info", "-a", "newapp"]).success();
    assert_eq!(
        cli.run(&["config", "get", "PLAIN", "-a", "newapp"])
            .success()
            .stdout,
        "a#b\n",
        "refused destroys leave the config alone"
    );

    assert_eq!(
        cli.run(&["apps", "destroy", "-a", "newapp", "--confirm", "newapp"])
            .success()
            .stdout,
        "Destroyed newapp\n"
    );
    assert_eq!(
        cli.run(&["apps"]).success().stdout,
        "No apps yet: create one with `wharf apps create NAME`\n"
    );
    assert_eq!(
        cli.run(&["releases", "-a", "newapp"]).error(),
        "error: app `newapp` not found\n"
    );
}

/// A table row's cells: cells are separated by two or more spaces, empty cells dropped.
fn columns(line: &str) -> Vec<&str> {
    line.split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect()
}
