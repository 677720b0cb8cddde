//! Which app a command acts on: `-a`, then `WHARF_APP`, then the git remote named `wharf`.

use crate::harness::{Cli, Server};

/// Runs git in the user's working directory and checks it worked.
fn git(cli: &Cli, args: &[&str]) {
    let output = cli.command("git").args(args).output().expect("run git");
    assert!(
        output.status.success(),
        "git {}: {output:?}",
        args.join(" ")
    );
}

fn with_apps(names: &[&str]) -> (Server, Cli) {
    let server = Server::start();
    let cli = Cli::logged_in(&server);
    for name in names {
        cli.run(&["apps", "create", name]).success();
    }
    (server, cli)
}

#[test]
fn the_app_comes_from_the_git_remote_named_wharf() {
    let (server, cli) = with_apps(&["myapp", "other"]);
    git(&cli, &["init", "--quiet"]);
    // An `origin` elsewhere does not matter; the `wharf` remote names the app.
    git(
        &cli,
        &[
            "remote",
            "add",
            "origin",
            "https://example.com/team/other.git",
        ],
    );
    git(
        &cli,
        &[
            "remote",
            "add",
            "wharf",
            &format!("{}/myapp.git", server.url),
        ],
    );

    assert_eq!(
        cli.run(&["config", "set", "FOO=bar"]).success().stdout,
        "Set FOO on myapp: release v2\n"
    );
    assert_eq!(
        cli.run(&["config"]).success().stdout,
        "=== myapp config vars\nFOO: bar\n"
    );
    assert_eq!(cli.run(&["config", "get", "FOO"]).success().stdout, "bar\n");
    assert!(cli
        .run(&["releases"])
        .success()
        .stdout
        .starts_with("=== myapp releases\n"));
    assert!(cli
        .run(&["apps", "info"])
        .success()
        .stdout
        .starts_with("Name:"));
    assert_eq!(
        cli.run(&["apps", "info", "--json"]).success().json()["name"],
        "myapp"
    );

    // Subdirectories of the checkout act on the same app.
    std::fs::create_dir(cli.work_dir().join("src")).unwrap();
    let output = cli
        .command(crate::harness::WHARF.as_str())
        .args(["config", "get", "FOO"])
        .current_dir(cli.work_dir().join("src"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "bar\n",
        "{output:?}"
    );

    // -a wins over the remote.
    assert_eq!(
        cli.run(&["config", "-a", "other"]).success().stdout,
        "other has no config vars: set some with `wharf config set KEY=value -a other`\n"
    );
}

#[test]
fn the_app_comes_from_wharf_app() {
    let (_server, cli) = with_apps(&["myapp", "other"]);
    let cli = cli.env("WHARF_APP", "myapp");
    assert_eq!(
        cli.run(&["config", "set", "FOO=bar"]).success().stdout,
        "Set FOO on myapp: release v2\n"
    );
    assert_eq!(cli.run(&["config", "get", "FOO"]).success().stdout, "bar\n");
    assert_eq!(
        cli.run(&["apps", "info", "--json"]).success().json()["name"],
        "myapp"
    );
    // -a wins over WHARF_APP.
    assert_eq!(
        cli.run(&["releases", "--json", "--app", "other"])
            .success()
            .json()[0]["app"]["name"],
        "other"
    );

    // WHARF_APP wins over the git remote.
    git(&cli, &["init", "--quiet"]);
    git(
        &cli,
        &["remote", "add", "wharf", "http://127.0.0.1:1/other.git"],
    );
    assert_eq!(cli.run(&["config", "get", "FOO"]).success().stdout, "bar\n");
}

#[test]
fn without_an_app_commands_say_how_to_name_one() {
    let (_server, cli) = with_apps(&["myapp"]);
    for args in [&["config"][..], &["releases"], &["apps", "info"]] {
        let stderr = cli.run(args).error();
        assert_eq!(
            stderr,
            "error: no app given: pass --app NAME, set WHARF_APP, or run this in a git checkout \
             with a remote named `wharf`\n",
            "wharf {}",
            args.join(" ")
        );
    }
    // A git checkout without a `wharf` remote is no different.
    git(&cli, &["init", "--quiet"]);
    assert!(cli.run(&["config"]).error().contains("no app given"));
}
