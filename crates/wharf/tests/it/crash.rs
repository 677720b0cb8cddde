//! Crash consistency: the server is killed (SIGKILL) at random moments of deploys, release
//! phases, config changes, rollbacks and garbage collections, again and again; after each kill
//! the image store checks clean, and the restarted server has whole releases with unique
//! versions, none left pending, the current one's image present; at the end the app converges
//! to its current release.

use std::process::Stdio;
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::Value;

use crate::harness::{Cli, Server};
use crate::run::{traversable_data_dir, wait_for_dynos};

const PROCFILE: &str = "web: python3 -m http.server $PORT --bind 127.0.0.1\n\
                        release: sleep 0.3; echo migrated\n";

const KILLS: usize = 20;

/// Checks what the restarted server says about `app`'s releases; returns them, newest first.
fn check_releases(cli: &Cli, data_dir: &std::path::Path, app: &str) -> Vec<Value> {
    let list = cli
        .run(&["releases", "-n", "1000", "--json", "-a", app])
        .success()
        .json();
    let releases = list.as_array().unwrap().clone();
    let versions: Vec<u64> = releases
        .iter()
        .map(|r| r["version"].as_u64().unwrap())
        .collect();
    assert!(
        versions.windows(2).all(|w| w[0] > w[1]),
        "versions are unique: {versions:?}"
    );
    for release in &releases {
        assert_ne!(
            release["status"], "pending",
            "no release stays pending after a restart: {release:#}"
        );
    }
    let current: Vec<&Value> = releases.iter().filter(|r| r["current"] == true).collect();
    assert_eq!(current.len(), 1, "one current release: {releases:#?}");
    // The current release's image, and every image a rollback may pick, is whole: manifest,
    // config and layers.
    let images = wharf_image::ImageStore::open(&data_dir.join("images")).unwrap();
    for release in releases
        .iter()
        .filter(|r| r["current"] == true || r["eligible_for_rollback"] == true)
    {
        let digest = release["slug"]["id"].as_str().unwrap_or_else(|| {
            panic!("a release to run or roll back to has an image: {release:#}")
        });
        let digest = wharf_image::Digest::parse(digest).unwrap();
        assert!(
            images.is_complete(&digest).unwrap(),
            "v{}'s image {digest} is whole",
            release["version"]
        );
    }
    releases
}

#[test]
fn killed_at_random_moments_the_server_leaves_everything_consistent() {
    let (_temp, data_dir) = traversable_data_dir();
    let args = [
        "--port-range",
        "33000-33099",
        "--sandbox",
        "none",
        "--keep-releases",
        "2",
    ];
    let seed: u64 = rand::random();
    eprintln!("kill loop seed {seed}");
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
    let server = Server::start_in_with(&data_dir, &args);
    let cli = Cli::logged_in(&server);
    cli.run(&["apps", "create", "crashy"]).success();
    let dir = cli.work_dir().join("crashy");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("Procfile"), PROCFILE).unwrap();
    std::fs::write(dir.join("code.txt"), "0").unwrap();
    cli.run(&["deploy", dir.to_str().unwrap(), "-a", "crashy"])
        .success();
    drop(server.stop_with("-KILL"));

    let deadline = Instant::now() + Duration::from_secs(300);
    let mut actions = Vec::new();
    for round in 0..KILLS {
        assert!(Instant::now() < deadline, "the kill loop ran out of time");
        let server = Server::start_in_with(&data_dir, &args);
        cli.login(&server).success();
        let releases = check_releases(&cli, &data_dir, "crashy");
        // Something that writes: a deploy of changed code, a config change, a rollback to a
        // release that ran, or a garbage collection.
        std::fs::write(dir.join("code.txt"), round.to_string()).unwrap();
        let rollback_to = releases
            .iter()
            .find(|r| r["eligible_for_rollback"] == true && !r["slug"].is_null())
            .map(|r| format!("v{}", r["version"]));
        let value = format!("V={round}");
        let action: Vec<&str> = match (rng.gen_range(0..4), &rollback_to) {
            (0, _) => vec!["deploy", dir.to_str().unwrap(), "-a", "crashy"],
            (1, _) => vec!["config", "set", &value, "-a", "crashy"],
            (2, Some(to)) => vec!["rollback", to, "-a", "crashy"],
            _ => vec!["gc"],
        };
        actions.push(action[0].to_owned());
        let mut running = cli
            .command(crate::harness::WHARF.as_str())
            .args(&action)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // The kill lands anywhere from before the request arrives to after it is done.
        std::thread::sleep(Duration::from_millis(rng.gen_range(0..1500)));
        let (status, _) = server.stop_with("-KILL");
        assert!(!status.success());
        // The client sees its server go away (or had finished); either way it ends.
        let _ = running.kill();
        let _ = running.wait();
        cli.assert_fsck_clean(&data_dir);
    }
    eprintln!("killed during: {actions:?}");

    // The last restart converges to the current release and serves it.
    let server = Server::start_in_with(&data_dir, &args);
    cli.login(&server).success();
    let releases = check_releases(&cli, &data_dir, "crashy");
    let current = releases.iter().find(|r| r["current"] == true).unwrap();
    let version = current["version"].clone();
    wait_for_dynos(&cli, "crashy", &["web.1"], |d| {
        d["web.1"]["release"]["version"] == version
    });
    cli.run(&["gc"]).success();
    check_releases(&cli, &data_dir, "crashy");
    drop(server.stop_with("-TERM"));
    cli.assert_fsck_clean(&data_dir);
}
