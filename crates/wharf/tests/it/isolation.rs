//! Isolation between apps, as an app that tries sees it: with wharf running as root, each app
//! runs as its own unprivileged user, and one app's process can read none of another app's code,
//! scratch or logs, none of wharf's database, keys or admin token, and can't signal another
//! app's processes. Checked with namespaces and without.

use std::path::{Path, PathBuf};

use crate::harness::{Cli, Server};
use crate::run::{nix_is_root, traversable_data_dir, wait_for_log, wait_for_up};

/// What the intruding app runs: each argument is a file to read (or, with `list:`, a directory
/// to list); then it looks for processes of other users, trying to signal each. One line per
/// attempt.
const ATTACK: &str = r#"victim_uid=$1; shift
for p in "$@"; do
  case "$p" in
    list:*) d=${p#list:}; if ls "$d" >/dev/null 2>&1; then echo "LISTED $d"; else echo "refused $d"; fi ;;
    *) if cat "$p" >/dev/null 2>&1; then echo "READ $p"; else echo "refused $p"; fi ;;
  esac
done
me=$(id -u)
seen=0
for d in /proc/[0-9]*; do
  u=$(sed -n 's/^Uid:[[:space:]]*\([0-9]*\).*/\1/p' "$d/status" 2>/dev/null)
  [ -n "$u" ] || continue
  [ "$u" = "$me" ] && continue
  [ "$u" = "$victim_uid" ] && seen=1
  if kill -0 "${d#/proc/}" 2>/dev/null; then echo "SIGNALLED ${d#/proc/} (uid $u)"; fi
done
echo "seen-victim=$seen"
cat ./Procfile >/dev/null && echo own-code-readable
echo mine > "$HOME/mine" && cat "$HOME/mine"
echo "uid=$me"
"#;

/// The victim keeps a secret in its scratch and idles.
const VICTIM: &str =
    "worker: sh -c 'echo s3cret > $HOME/secret; echo victim-ready; exec sleep 1000'\n";

fn deploy(cli: &Cli, app: &str, files: &[(&str, &str)]) {
    cli.run(&["apps", "create", app]).success();
    let dir = cli.work_dir().join(app);
    std::fs::create_dir_all(&dir).unwrap();
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    let deployed = cli
        .run(&["deploy", dir.to_str().unwrap(), "-a", app])
        .success();
    assert!(deployed.stdout.contains("Released v"), "{deployed:#?}");
}

fn app_id(cli: &Cli, app: &str) -> String {
    cli.run(&["apps", "info", "-a", app, "--json"])
        .success()
        .json()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Each app's uid, from the machine's users file.
fn uid_of(data_dir: &Path, app_id: &str) -> u32 {
    let registry = wharf_sandbox::users::registry();
    wharf_sandbox::users::find(&registry, data_dir, app_id)
        .unwrap_or_else(|| panic!("{app_id} has no user in {}", registry.display()))
}

/// The files below `dir` (as root sees them).
fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() => found.extend(files_below(&path)),
                Ok(t) if t.is_file() => found.push(path),
                _ => {}
            }
        }
    }
    found
}

/// Uids of the running processes whose command line contains `needle`.
fn uids_running(needle: &str) -> Vec<u32> {
    let mut uids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let dir = entry.path();
        let Ok(cmdline) = std::fs::read(dir.join("cmdline")) else {
            continue;
        };
        if !String::from_utf8_lossy(&cmdline)
            .replace('\0', " ")
            .contains(needle)
        {
            continue;
        }
        let status = std::fs::read_to_string(dir.join("status")).unwrap_or_default();
        if let Some(uid) = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|l| l.split_whitespace().next())
        {
            uids.push(uid.parse().unwrap());
        }
    }
    uids
}

fn apps_cannot_reach_each_other(ports: &str, sandbox: &str) {
    if !nix_is_root() {
        eprintln!("note: not root: apps run as this user, so there is no user to keep apart");
        return;
    }
    let (_temp, data_dir) = traversable_data_dir();
    let server = Server::start_in_with(&data_dir, &["--port-range", ports, "--sandbox", sandbox]);
    let cli = Cli::logged_in(&server);
    deploy(&cli, "victim", &[("Procfile", VICTIM)]);
    deploy(
        &cli,
        "intruder",
        &[
            ("Procfile", "worker: exec sleep 1000\n"),
            ("attack.sh", ATTACK),
        ],
    );
    cli.run(&["scale", "worker=1", "-a", "victim"]).success();
    wait_for_up(&cli, "victim", &["worker.1"]);
    wait_for_log(
        &cli,
        "victim",
        &["--source", "app"],
        "app[worker.1]: victim-ready",
    );

    let victim = app_id(&cli, "victim");
    let intruder = app_id(&cli, "intruder");
    let victim_uid = uid_of(&data_dir, &victim);
    // The victim's process runs as its user (under bubblewrap, bubblewrap itself stays root).
    let victim_uids = uids_running("victim-ready");
    assert!(
        victim_uids.contains(&victim_uid),
        "the victim runs as {victim_uids:?}, not its user {victim_uid}"
    );

    let secret = files_below(&data_dir.join("run").join(&victim))
        .into_iter()
        .find(|p| p.ends_with("home/secret"))
        .expect("the victim wrote its secret");
    let victim_tree = files_below(&data_dir.join("releases").join(&victim))
        .into_iter()
        .find(|p| p.ends_with("app/Procfile"))
        .expect("the victim's release tree");
    let victim_log = files_below(&data_dir.join("logs"))
        .into_iter()
        .next()
        .expect("the apps have logs");
    let mut targets: Vec<String> = [
        secret,
        victim_tree,
        victim_log,
        data_dir.join("wharf.db"),
        data_dir.join("secret-key"),
        data_dir.join("admin-token"),
        wharf_sandbox::users::registry(),
        data_dir.join("tls/ca-key.pem"),
    ]
    .iter()
    .map(|p| {
        assert!(
            p.exists(),
            "{} exists, so refusing it means something",
            p.display()
        );
        p.display().to_string()
    })
    .collect();
    for dir in [
        data_dir.clone(),
        data_dir.join("releases"),
        data_dir.join("releases").join(&victim),
        data_dir.join("run"),
        data_dir.join("run").join(&victim),
        data_dir.join("logs"),
        data_dir.join("images"),
    ] {
        targets.push(format!("list:{}", dir.display()));
    }

    let mut args = vec!["run", "-a", "intruder", "--", "sh", "attack.sh"];
    let victim_uid_text = victim_uid.to_string();
    args.push(&victim_uid_text);
    args.extend(targets.iter().map(String::as_str));
    let attack = cli.run(&args).success();
    let lines: Vec<&str> = attack.stdout.lines().collect();
    let intruder_uid = uid_of(&data_dir, &intruder);
    assert_ne!(victim_uid, intruder_uid);

    let breaches: Vec<&&str> = lines
        .iter()
        .filter(|l| l.starts_with("READ") || l.starts_with("LISTED") || l.starts_with("SIGNALLED"))
        .collect();
    assert!(
        breaches.is_empty(),
        "the intruder got through: {breaches:#?}"
    );
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("refused ")).count(),
        targets.len(),
        "every attempt was made and refused: {lines:#?}"
    );
    assert!(lines.contains(&"own-code-readable"), "{lines:#?}");
    assert!(
        lines.contains(&"mine"),
        "its own HOME is writable: {lines:#?}"
    );
    assert!(
        lines.contains(&format!("uid={intruder_uid}").as_str()),
        "the intruder runs as its own user {intruder_uid}: {lines:#?}"
    );
    // Without namespaces the intruder sees the victim's processes but can't signal them; with
    // them it doesn't even see them.
    let seen = if sandbox == "none" {
        "seen-victim=1"
    } else {
        "seen-victim=0"
    };
    assert!(lines.contains(&seen), "{lines:#?}");
    // And the victim is unharmed.
    wait_for_up(&cli, "victim", &["worker.1"]);
}

#[test]
fn apps_cannot_reach_each_other_sandboxed() {
    apps_cannot_reach_each_other("33600-33649", "namespaces");
}

#[test]
fn apps_cannot_reach_each_other_without_a_sandbox() {
    apps_cannot_reach_each_other("33650-33699", "none");
}
