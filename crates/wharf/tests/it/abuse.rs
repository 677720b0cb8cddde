//! Abuse: an app that forks without end, or allocates without end, is held by its limits and
//! backs off as it crash-loops, while the API goes on answering; scaling it down leaves nothing
//! of it behind.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{wait_until, Cli, Server};
use crate::run::nix_is_root;

/// `bomb` forks until its pids limit stops it, then keeps trying, from its first instant; `hog`
/// allocates 8 MiB every 50 ms, touching every page, and says how far it got.
const PROCFILE: &str = "bomb: sh -c 'b() { b | b & }; b; exec sleep 1000'\n\
                        hog: python3 hog.py\n";
const HOG: &str = "import time\nx = []\nwhile True:\n    x.append(bytearray(8 << 20))\n    \
                   print('held', len(x) * 8, 'MiB', flush=True)\n    time.sleep(0.05)\n";

/// The app's instance cgroups of `controller` (v1) or of all controllers (v2).
fn cgroup_dirs(controller: &str, app_id: &str) -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    let app = if root.join("cgroup.controllers").is_file() {
        root.join("wharf").join(app_id)
    } else {
        root.join(controller).join("wharf").join(app_id)
    };
    std::fs::read_dir(app)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default()
}

fn read_number(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Pids of the processes running as `uid`.
fn processes_of_uid(uid: u32) -> Vec<u32> {
    processes_of_uid_any(&[uid])
}

/// Pids of the processes running as any of `uids`.
pub(crate) fn processes_of_uid_any(uids: &[u32]) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let status = std::fs::read_to_string(e.path().join("status")).ok()?;
            let owner = status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))?
                .split_whitespace()
                .next()?
                .parse::<u32>()
                .ok()?;
            uids.contains(&owner).then_some(pid)
        })
        .collect()
}

fn dyno<'a>(list: &'a Value, name: &str) -> Option<&'a Value> {
    list.as_array()?.iter().find(|d| d["name"] == name)
}

#[test]
fn a_fork_bomb_and_a_memory_hog_are_contained_and_the_api_keeps_answering() {
    let cgroups = Path::new("/sys/fs/cgroup/cgroup.controllers").is_file()
        || Path::new("/sys/fs/cgroup/pids").is_dir();
    if !nix_is_root() || !cgroups {
        eprintln!("note: limits need root and cgroups; nothing to check here");
        return;
    }
    let server = Server::start_with(&["--port-range", "33700-33749"]);
    let cli = Cli::logged_in(&server);
    cli.run(&["apps", "create", "abuser"]).success();
    let dir = cli.work_dir().join("abuser");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("Procfile"), PROCFILE).unwrap();
    std::fs::write(dir.join("hog.py"), HOG).unwrap();
    cli.run(&["deploy", dir.to_str().unwrap(), "-a", "abuser"])
        .success();
    let app_id = cli
        .run(&["apps", "info", "-a", "abuser", "--json"])
        .success()
        .json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    cli.run(&["scale", "bomb=1", "hog=1:64M", "-a", "abuser"])
        .success();

    // The bomb reaches its pids limit.
    let (bomb_cgroup, max) = wait_until(
        Duration::from_secs(90),
        "the bomb to reach its pids limit",
        || {
            let dirs = cgroup_dirs("pids", &app_id);
            let bomb = dirs.iter().find(|d| {
                d.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("bomb.1")
            });
            let counts = bomb.and_then(|d| {
                Some((
                    read_number(&d.join("pids.current"))?,
                    read_number(&d.join("pids.max"))?,
                ))
            });
            match counts {
                Some((current, max)) if current + 16 >= max => Ok((bomb.unwrap().clone(), max)),
                other => Err(format!("{other:?} in {dirs:?}")),
            }
        },
    );
    let uid =
        wharf_sandbox::users::find(&wharf_sandbox::users::registry(), &server.data_dir, &app_id)
            .expect("the app has its user");

    // Meanwhile the API answers, each call within a bound, and the hog crash-loops with backoff.
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    let mut calls = 0;
    let mut hog_restarts = 0;
    let mut peak = 0;
    let mut backing_off = false;
    // The look for processes outside the cgroups reads all of /proc, which a fork bomb at its
    // limit can slow to seconds: it runs at most once a second, so that the API calls, which
    // are what is measured, keep coming.
    let mut scans = 0;
    let mut last_scan: Option<Instant> = None;
    while started.elapsed() < Duration::from_secs(120)
        && !(hog_restarts >= 2 && backing_off && calls >= 20 && scans >= 3)
    {
        let call = Instant::now();
        let ps = cli.run(&["ps", "-a", "abuser", "--json"]).success().json();
        let took = call.elapsed();
        slowest = slowest.max(took);
        calls += 1;
        assert!(
            took < Duration::from_secs(5),
            "`wharf ps` took {took:?} under abuse"
        );
        if let Some(hog) = dyno(&ps, "hog.1") {
            hog_restarts = hog["restarts"].as_u64().unwrap_or(0);
            backing_off |=
                hog["state"] == "crashed" && hog["next_restart_in"].as_u64().is_some_and(|s| s > 0);
        }
        if last_scan.is_some_and(|at| at.elapsed() < Duration::from_secs(1)) {
            continue;
        }
        // Every live process of the app's user is in one of its cgroups: none escaped. A
        // process on its way out (no command line left) has left its cgroups already, so a
        // process counts only if it still runs, outside, when looked at a second time.
        let marker = format!("/wharf/{app_id}/");
        let outside = |pid: &u32| -> Option<String> {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
            (!cmdline.is_empty() && !cgroup.is_empty() && !cgroup.contains(&marker)).then(|| {
                format!(
                    "{pid} `{}` in {}",
                    String::from_utf8_lossy(&cmdline).replace('\0', " "),
                    cgroup.replace('\n', "; ")
                )
            })
        };
        let candidates: Vec<u32> = processes_of_uid(uid)
            .into_iter()
            .filter(|pid| outside(pid).is_some())
            .collect();
        let described: Vec<String> = candidates.iter().filter_map(outside).collect();
        assert!(
            described.is_empty(),
            "outside the app's cgroups: {described:#?}"
        );
        scans += 1;
        last_scan = Some(Instant::now());
        peak = peak.max(read_number(&bomb_cgroup.join("pids.current")).unwrap_or(0));
        assert!(
            peak <= max,
            "the bomb has {peak} processes, past its limit of {max}"
        );
    }
    eprintln!(
        "under abuse: {calls} `wharf ps` calls in {:?}, the slowest {slowest:?}; {scans} looks \
         for escaped processes; bomb at {peak}/{max} processes; hog restarted {hog_restarts} times",
        started.elapsed()
    );
    assert!(calls >= 20, "only {calls} calls in {:?}", started.elapsed());
    assert!(scans >= 3, "only {scans} looks for escaped processes");
    assert!(
        hog_restarts >= 2,
        "the hog was not stopped at its memory limit and restarted"
    );
    assert!(
        backing_off,
        "a crash-looping process waits before its next start"
    );
    let logs = cli
        .run(&["logs", "-a", "abuser", "-n", "1500", "--dyno", "hog"])
        .success()
        .stdout;
    let most = logs
        .lines()
        .filter_map(|l| {
            l.split("held ")
                .nth(1)?
                .split(' ')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .max()
        .unwrap_or(0);
    // A cgroup stops it at 64 MiB; where the host's cgroups don't account for memory, wharf's
    // own check (once a second) stops it soon after, with Heroku's R15.
    assert!(most >= 32, "the hog ran: {most} MiB");
    assert!(most <= 256, "the hog held {most} MiB, far past its 64 MiB");
    assert!(
        most <= 64 || logs.contains("Error R15 (Memory quota vastly exceeded)"),
        "{logs}"
    );

    // Scaling down leaves nothing: no process of the app's user, no cgroup. The bomb ignores
    // nothing but keeps refilling its pids limit, so it goes at SIGKILL, after its 30 s grace;
    // on a machine loaded past its cores, the SIGTERM round over its processes before that
    // takes tens of seconds too.
    let scaled = Instant::now();
    cli.run(&["scale", "bomb=0", "hog=0", "-a", "abuser"])
        .success();
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let left = processes_of_uid(uid);
        let dirs = cgroup_dirs("pids", &app_id);
        if left.is_empty() && dirs.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            let log = cli
                .run(&["logs", "-a", "abuser", "-n", "200", "--source", "wharf"])
                .stdout;
            panic!(
                "after 180 s, {} processes of the app are left, cgroups {dirs:?}; its platform log:\n{log}",
                left.len()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("scaled down: nothing left after {:?}", scaled.elapsed());
}
