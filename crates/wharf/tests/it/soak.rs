//! A bounded soak: several apps under continuous requests through the router while they are
//! deployed, scaled, restarted and reconfigured over and over. Afterwards no request failed, the
//! server's memory and open files are where they were once warmed up, no app process is left
//! once the apps are scaled down, and `wharf fsck` finds nothing wrong.
//!
//! `WHARF_SOAK_SECONDS` sets how long the churn lasts (40 s by default, which CI runs); for a
//! longer soak: `WHARF_SOAK_SECONDS=1800 scripts/test -p wharf -E 'test(soak)' --no-capture`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::harness::http_get as get;
use crate::harness::{wait_until, Cli, Server};
use crate::run::nix_is_root;

const APPS: [&str; 3] = ["soak-a", "soak-b", "soak-c"];

fn soak_seconds() -> u64 {
    std::env::var("WHARF_SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40)
}

/// Deploys `app` answering with `version`.
fn deploy(cli: &Cli, app: &str, version: u32) {
    let dir = cli.work_dir().join(format!("{app}-v{version}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("Procfile"),
        "web: python3 -m http.server $PORT --bind 127.0.0.1\n",
    )
    .unwrap();
    std::fs::write(dir.join("index.html"), format!("{app} v{version}\n")).unwrap();
    cli.run(&["deploy", dir.to_str().unwrap(), "-a", app])
        .success();
}

/// (resident bytes, open files) of process `pid`.
fn footprint(pid: u32) -> (u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    (rss_kib * 1024, fds)
}

/// What process `pid` has open, counted by kind (`socket`, `pipe`, or the file's directory).
fn open_files(pid: u32) -> std::collections::BTreeMap<String, usize> {
    let mut kinds = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
    {
        let target = std::fs::read_link(entry.path()).unwrap_or_default();
        let text = target.to_string_lossy();
        let kind = match text.split_once(':') {
            Some((kind, _)) if !text.starts_with('/') => kind.to_owned(),
            _ => target
                .parent()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        };
        *kinds.entry(kind).or_insert(0) += 1;
    }
    kinds
}

#[test]
fn a_soak_of_deploys_scaling_and_requests_loses_nothing_and_leaks_nothing() {
    let temp = tempfile::tempdir().unwrap();
    let data_dir = temp.path().join("wharf");
    let server = Server::start_in_with(&data_dir, &["--port-range", "33800-33899"]);
    let cli = Cli::logged_in(&server);
    let port = server.router_port;
    for app in APPS {
        cli.run(&["apps", "create", app]).success();
        deploy(&cli, app, 1);
    }
    for app in APPS {
        wait_until(
            Duration::from_secs(90),
            &format!("{app} to answer"),
            || match get(port, &format!("{app}.localhost"), "/")? {
                (200, body) if body.contains(app) => Ok(()),
                (status, body) => Err(format!("{status} {body}")),
            },
        );
    }

    // Requests all along, round-robin over the apps, bounded by the churn's end.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let client = {
        let (stop, sent, failures) = (stop.clone(), sent.clone(), failures.clone());
        std::thread::spawn(move || {
            let mut i = 0usize;
            while !stop.load(Ordering::SeqCst) && sent.load(Ordering::SeqCst) < 1_000_000 {
                let app = APPS[i % APPS.len()];
                i += 1;
                sent.fetch_add(1, Ordering::SeqCst);
                match get(port, &format!("{app}.localhost"), "/") {
                    Ok((200, body)) if body.starts_with(app) => {}
                    other => failures.lock().unwrap().push(format!("{app}: {other:?}")),
                }
            }
        })
    };

    let pid = server.pid();
    // Open files before the churn, with every app settled and requests flowing.
    wait_until(Duration::from_secs(30), "the first requests", || {
        if sent.load(Ordering::SeqCst) >= 20 {
            Ok(())
        } else {
            Err("fewer than 20".to_owned())
        }
    });
    let files_before = footprint(pid).1;
    let seconds = soak_seconds();
    let started = Instant::now();
    let mut warmed: Option<(u64, usize)> = None;
    let mut peak = (0u64, 0usize);
    let mut round = 0u32;
    let mut operations = 0u32;
    while started.elapsed() < Duration::from_secs(seconds) {
        round += 1;
        let app = APPS[round as usize % APPS.len()];
        match round % 4 {
            0 => deploy(&cli, app, round + 1),
            1 => {
                cli.run(&["scale", "web=2", "-a", app]).success();
                cli.run(&["scale", "web=1", "-a", app]).success();
            }
            2 => {
                cli.run(&["restart", "web", "-a", app]).success();
            }
            _ => {
                cli.run(&["config", "set", &format!("ROUND={round}"), "-a", app])
                    .success();
            }
        }
        operations += 1;
        let now = footprint(pid);
        peak = (peak.0.max(now.0), peak.1.max(now.1));
        // After one full cycle over every kind of change the server is warm.
        if round == 8 {
            warmed = Some(now);
        }
    }
    stop.store(true, Ordering::SeqCst);
    client.join().unwrap();
    // Replaced instances finish draining and go; then the server holds what it held before.
    let files_after = wait_until(
        Duration::from_secs(90),
        "open files to come back down",
        || {
            let files = footprint(pid).1;
            if files <= files_before + 8 {
                Ok(files)
            } else {
                Err(format!(
                    "{files} open (before: {files_before}): {:?}",
                    open_files(pid)
                ))
            }
        },
    );
    let end = footprint(pid);
    let requests = sent.load(Ordering::SeqCst);
    let failures = failures.lock().unwrap().clone();
    let warmed = warmed.unwrap_or(end);
    eprintln!(
        "soak: {seconds} s, {operations} changes, {requests} requests, {} failed; server memory \
         {} MiB once warm, {} MiB at the end (peak {} MiB); open files {files_before} before, \
         {} at the peak, {files_after} after",
        failures.len(),
        warmed.0 >> 20,
        end.0 >> 20,
        peak.0 >> 20,
        peak.1,
    );
    assert!(requests >= 100, "only {requests} requests were made");
    if !failures.is_empty() {
        // What the platform did to the apps that failed requests, to tell why.
        let mut failed_apps: Vec<&str> = APPS
            .iter()
            .copied()
            .filter(|app| failures.iter().any(|f| f.starts_with(&format!("{app}:"))))
            .collect();
        failed_apps.dedup();
        for app in failed_apps {
            let log = cli.run(&["logs", "-n", "1500", "--source", "wharf", "-a", app]);
            eprintln!("--- wharf's log lines of {app}:\n{}", log.stdout);
        }
    }
    assert!(failures.is_empty(), "failed requests: {failures:#?}");

    assert!(
        end.0 <= warmed.0 + warmed.0 / 2 + (32 << 20),
        "memory grew from {} MiB to {} MiB",
        warmed.0 >> 20,
        end.0 >> 20
    );

    // Scaled down, nothing of the apps is left running; the store is consistent.
    let app_users: Vec<u32> = APPS
        .iter()
        .filter_map(|app| {
            let id = cli
                .run(&["apps", "info", "-a", app, "--json"])
                .success()
                .json()["id"]
                .as_str()?
                .to_owned();
            wharf_sandbox::users::find(&wharf_sandbox::users::registry(), &server.data_dir, &id)
        })
        .collect();
    for app in APPS {
        cli.run(&["scale", "web=0", "-a", app]).success();
    }
    if nix_is_root() {
        assert_eq!(app_users.len(), APPS.len());
        wait_until(
            Duration::from_secs(60),
            "the apps' processes to end",
            || {
                let left = crate::abuse::processes_of_uid_any(&app_users);
                if left.is_empty() {
                    Ok(())
                } else {
                    Err(format!("{left:?}"))
                }
            },
        );
    }
    let (status, stderr) = server.stop_with("-TERM");
    assert!(status.success(), "{stderr}");
    cli.assert_fsck_clean(&data_dir);
}
