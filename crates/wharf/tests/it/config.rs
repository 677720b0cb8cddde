//! `wharf config`: the list people read, `--shell` and `--json` for scripts, and `.env` files.

use crate::assert_cli_snapshot;
use crate::harness::{Cli, Server};

/// A server with a logged-in user and an app `myapp`.
fn with_app() -> (Server, Cli) {
    let server = Server::start();
    let cli = Cli::logged_in(&server);
    cli.run(&["apps", "create", "myapp"]).success();
    (server, cli)
}

#[test]
fn config_list_and_changes() {
    let (_server, cli) = with_app();
    assert_cli_snapshot!(
        "config_empty",
        cli.run(&["config", "-a", "myapp"]).success().transcript()
    );
    assert_cli_snapshot!(
        "config_set",
        cli.run(&[
            "config",
            "set",
            "DATABASE_URL=postgres://db/myapp",
            "WEB_CONCURRENCY=3",
            "GREETING=it's = fine",
            "-a",
            "myapp"
        ])
        .success()
        .transcript()
    );
    assert_cli_snapshot!(
        "config_set_unchanged",
        cli.run(&["config", "set", "WEB_CONCURRENCY=3", "-a", "myapp"])
            .success()
            .transcript()
    );
    assert_cli_snapshot!(
        "config_list",
        cli.run(&["config", "-a", "myapp"]).success().transcript()
    );
    assert_cli_snapshot!(
        "config_shell",
        cli.run(&["config", "--shell", "-a", "myapp"])
            .success()
            .transcript()
    );
    assert_cli_snapshot!(
        "config_unset",
        cli.run(&[
            "config",
            "unset",
            "WEB_CONCURRENCY",
            "GREETING",
            "-a",
            "myapp"
        ])
        .success()
        .transcript()
    );
}

#[test]
fn config_shell_output_is_sourced_by_a_shell() {
    let (_server, cli) = with_app();
    let tricky = "it's $HOME `date` \"quoted\"\nline two";
    cli.run(&["config", "set", &format!("TRICKY={tricky}"), "-a", "myapp"])
        .success();
    let shell = cli.run(&["config", "list", "-s", "-a", "myapp"]).success();
    let script = format!("{}printf %s \"$TRICKY\"", shell.stdout);
    let output = cli
        .command("sh")
        .args(["-c", &script])
        .output()
        .expect("run sh");
    assert!(output.status.success(), "{output:?}");
    assert_eq!(String::from_utf8(output.stdout).unwrap(), tricky);
}

#[test]
fn config_json() {
    let (_server, cli) = with_app();
    assert_eq!(
        cli.run(&["config", "--json", "-a", "myapp"])
            .success()
            .json(),
        serde_json::json!({})
    );
    let set = cli
        .run(&["config", "set", "A=1", "B=two", "--json", "-a", "myapp"])
        .success()
        .json();
    assert_eq!(set, serde_json::json!({"A": "1", "B": "two"}));
    for args in [
        &["config", "--json", "-a", "myapp"][..],
        &["config", "list", "--json", "-a", "myapp"],
    ] {
        assert_eq!(
            cli.run(args).success().json(),
            serde_json::json!({"A": "1", "B": "two"})
        );
    }
    let unset = cli
        .run(&["config", "unset", "A", "--json", "-a", "myapp"])
        .success()
        .json();
    assert_eq!(unset, serde_json::json!({"B": "two"}));
}

#[test]
fn config_set_reads_env_files() {
    let (_server, cli) = with_app();
    cli.write(
        "production.env",
        "# comment\n\
         export TOKEN='abc$def'\n\
         \n\
         MODE=cluster  # how to run\n\
         KEY=\"-----BEGIN KEY-----\\nsecret\n-----END KEY-----\"\n\
         MODE=final\n",
    );
    // Pairs on the command line win over the file.
    let set = cli
        .run(&[
            "config",
            "set",
            "--env-file",
            "production.env",
            "TOKEN=from-the-command-line",
            "-a",
            "myapp",
            "--json",
        ])
        .success()
        .json();
    assert_eq!(
        set,
        serde_json::json!({
            "KEY": "-----BEGIN KEY-----\nsecret\n-----END KEY-----",
            "MODE": "final",
            "TOKEN": "from-the-command-line",
        })
    );

    cli.write("broken.env", "GOOD=1\nKEY=\"never closed\n");
    let stderr = cli
        .run(&["config", "set", "--env-file", "broken.env", "-a", "myapp"])
        .error();
    assert!(
        stderr.starts_with("error: broken.env is not a valid .env file\n"),
        "{stderr}"
    );
    assert!(
        stderr.contains("line 2: unterminated double-quoted value"),
        "{stderr}"
    );
    let stderr = cli
        .run(&["config", "set", "--env-file", "missing.env", "-a", "myapp"])
        .error();
    assert!(
        stderr.starts_with("error: cannot read missing.env\n"),
        "{stderr}"
    );
    assert_eq!(
        cli.run(&["config", "get", "GOOD", "-a", "myapp"]).error(),
        "error: myapp has no config var `GOOD`\n",
        "a broken file sets nothing"
    );
}
