//! The release stage as a user drives it: `wharf deploy` showing the release phase, `wharf
//! releases output` and `diff`, `wharf rollback`, `wharf promote` and `wharf gc`.

use crate::assert_cli_snapshot;
use crate::harness::{Cli, Server};

/// A web process (up once it listens) and a release phase that says what it migrates.
const PROCFILE: &str = "web: python3 -m http.server $PORT --bind 127.0.0.1\n\
                        release: echo \"migrating to $VERSION\"\n";

/// Writes `procfile` (and a file that changes the image when `code` does) into `app`'s
/// directory and deploys it.
fn deploy(cli: &Cli, app: &str, procfile: &str, code: &str) -> crate::harness::Run {
    let dir = cli.work_dir().join(app);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("Procfile"), procfile).unwrap();
    std::fs::write(dir.join("code.txt"), code).unwrap();
    cli.run(&["deploy", dir.to_str().unwrap(), "-a", app])
}

/// `sha256:<hex>` of release `version` of `app`.
fn image(cli: &Cli, app: &str, version: &str) -> String {
    let release = cli
        .run(&["releases", "info", version, "-a", app, "--json"])
        .success()
        .json();
    release["slug"]["id"].as_str().unwrap().to_owned()
}

#[test]
fn rollback_promote_diff_and_gc() {
    let server = Server::start_with(&["--port-range", "32800-32899", "--keep-releases", "2"]);
    let cli = Cli::logged_in(&server);
    cli.run(&["apps", "create", "staging"]).success(); // v1
    cli.run(&["config", "set", "VERSION=1", "-a", "staging"])
        .success(); // v2

    // A deploy shows its release phase and goes live once it passed.
    let deployed = deploy(&cli, "staging", PROCFILE, "one").success(); // v3
    assert!(
        deployed.stdout.contains("its release phase runs next"),
        "{deployed:#?}"
    );
    assert!(deployed.stderr.contains("migrating to 1"), "{deployed:#?}");
    assert!(
        deployed.stdout.contains("Deployed staging: release v3"),
        "{deployed:#?}"
    );
    let output = cli
        .run(&["releases", "output", "v3", "-a", "staging"])
        .success();
    assert!(output.stdout.contains("migrating to 1"), "{output:#?}");
    assert!(
        output.stdout.contains("Release phase succeeded"),
        "{output:#?}"
    );
    let none = cli
        .run(&["releases", "output", "v2", "-a", "staging"])
        .failure()
        .error();
    assert!(none.contains("had no release phase"), "{none}");

    cli.run(&["config", "set", "VERSION=2", "EXTRA=x", "-a", "staging"])
        .success(); // v4
    deploy(
        &cli,
        "staging",
        &format!("{PROCFILE}worker: sleep 1000\n"),
        "two",
    )
    .success(); // v5

    // What changed: config keys (values hidden), then code and process types too.
    assert_cli_snapshot!(
        "releases_diff_config",
        cli.run(&["releases", "diff", "v3", "v4", "-a", "staging"])
            .success()
            .transcript()
    );
    let (v3, v5) = (image(&cli, "staging", "v3"), image(&cli, "staging", "v5"));
    let short = |d: &str| d["sha256:".len().."sha256:".len() + 12].to_owned();
    let diff = cli
        .run(&["releases", "diff", "v3", "-a", "staging", "--show-values"])
        .success()
        .transcript()
        .replace(&short(&v3), "[V3-IMAGE]")
        .replace(&short(&v5), "[V5-IMAGE]");
    assert_cli_snapshot!("releases_diff_code_and_values", diff);

    // Rollback, by default to the release before the current one: v4's image and config.
    let rolled = cli.run(&["rollback", "-a", "staging"]).success(); // v6
    assert!(
        rolled
            .stdout
            .contains("Rolled back staging: Rollback to v4 is now v6"),
        "{rolled:#?}"
    );
    assert!(rolled.stderr.contains("migrating to 2"), "{rolled:#?}");
    assert_eq!(image(&cli, "staging", "v6"), v3);
    let config = cli
        .run(&["config", "--json", "-a", "staging"])
        .success()
        .json();
    assert_eq!(config, serde_json::json!({"VERSION": "2", "EXTRA": "x"}));
    let refused = cli
        .run(&["rollback", "v1", "-a", "staging"])
        .failure()
        .error();
    assert!(refused.contains("no image"), "{refused}");

    // Promotion: production gets staging's current image, unchanged, with its own config.
    cli.run(&["apps", "create", "production"]).success(); // v1
    cli.run(&["config", "set", "VERSION=prod", "-a", "production"])
        .success(); // v2
    let promoted = cli
        .run(&["promote", "--from", "staging", "--to", "production"])
        .success();
    assert!(
        promoted
            .stdout
            .contains("Promoted staging v6 to production"),
        "{promoted:#?}"
    );
    assert!(
        promoted.stderr.contains("migrating to prod"),
        "{promoted:#?}"
    );
    assert_eq!(image(&cli, "production", "v3"), v3);
    let same = cli
        .run(&["promote", "--from", "staging", "--to", "staging"])
        .failure()
        .error();
    assert!(same.contains("from one app to another"), "{same}");

    // Garbage collection keeps each app's newest two releases' images (v6 and v5 here, which
    // hold both images) and the stack's run and build images, so nothing of the images goes,
    // but trees nothing runs do.
    let gc = cli.run(&["gc"]).success();
    assert!(gc.stdout.starts_with("Freed "), "{gc:#?}");
    assert!(gc.stdout.contains("0 images (0 blobs)"), "{gc:#?}");
    let kept = if crate::test_stack::available() { 4 } else { 2 };
    assert!(
        gc.stdout.contains(&format!("Kept {kept} images")),
        "{gc:#?}"
    );
    let json = cli.run(&["gc", "--json"]).success().json();
    assert_eq!(json["images_removed"], 0);
}
