//! The README's first command, `wharf up examples/python-web`, as a new user runs it: with no
//! flags, on its default data directory, as root and as an unprivileged user, with bubblewrap on
//! `PATH` or not. Each run must serve the example's page through the router, say in one line
//! which sandbox it chose, and stop cleanly on Ctrl-C.
//!
//! The default data directories stay throwaway: root's (`/var/lib/wharf/up/…`) is a tmpfs in a
//! mount namespace of the run's own, and the unprivileged user (made for the test, removed
//! after it) has a `HOME` in a temporary directory.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::{get_page, pids, port_in_url, wait_until, Foreground, WHARF};
use crate::run::nix_is_root;

/// The system's `PATH`, as a login shell has it.
const SYSTEM_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What the run sees of bubblewrap.
#[derive(Clone, Copy, PartialEq)]
enum Bubblewrap {
    OnPath,
    Hidden,
}

/// Who runs it.
#[derive(Clone, Copy, PartialEq)]
enum As {
    Root,
    User,
}

#[test]
fn first_run_as_root_without_bubblewrap() {
    first_run(As::Root, Bubblewrap::Hidden);
}

#[test]
fn first_run_as_root_with_bubblewrap() {
    first_run(As::Root, Bubblewrap::OnPath);
}

#[test]
fn first_run_as_a_user_without_bubblewrap() {
    first_run(As::User, Bubblewrap::Hidden);
}

#[test]
fn first_run_as_a_user_with_bubblewrap() {
    first_run(As::User, Bubblewrap::OnPath);
}

/// A user made for one test with `useradd`, removed (with `userdel`) when dropped.
struct TestUser {
    name: String,
    uid: u32,
}

impl TestUser {
    fn create(home: &Path) -> TestUser {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let name = format!(
            "wharf-t{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let status = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/bin/sh",
                "--home-dir",
            ])
            .arg(home)
            .arg("--user-group")
            .arg(&name)
            .status()
            .expect("run useradd (passwd)");
        assert!(status.success(), "useradd {name} failed");
        let out = Command::new("id").args(["-u", &name]).output().unwrap();
        let uid = String::from_utf8(out.stdout)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        TestUser { name, uid }
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.name).status();
    }
}

/// A directory of links to every program on the system's `PATH` but bubblewrap.
fn path_without_bubblewrap(root: &Path) -> PathBuf {
    let farm = root.join("bin");
    std::fs::create_dir(&farm).unwrap();
    for dir in std::env::split_paths(SYSTEM_PATH) {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            if name == "bwrap" || farm.join(&name).symlink_metadata().is_ok() {
                continue;
            }
            std::os::unix::fs::symlink(entry.path(), farm.join(&name)).unwrap();
        }
    }
    farm
}

/// A copy of `from` at `to`, owned by `uid` when given.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn chown_tree(path: &Path, uid: u32) {
    for entry in walk(path) {
        std::os::unix::fs::lchown(&entry, Some(uid), Some(uid)).unwrap();
    }
}

fn walk(path: &Path) -> Vec<PathBuf> {
    let mut all = vec![path.to_path_buf()];
    if path.is_dir() && !path.is_symlink() {
        for entry in std::fs::read_dir(path).unwrap().flatten() {
            all.extend(walk(&entry.path()));
        }
    }
    all
}

/// Whether bubblewrap can make its namespaces as `uid` here (a user's namespaces may be
/// forbidden by the host; wharf must then say so and go on without).
fn bubblewrap_works_as(uid: Option<u32>) -> bool {
    let mut probe = Command::new("setpriv");
    if let Some(uid) = uid {
        probe.args([
            format!("--reuid={uid}"),
            format!("--regid={uid}"),
            "--clear-groups".to_owned(),
        ]);
    }
    probe
        .args([
            "--",
            "bwrap",
            "--unshare-pid",
            "--ro-bind",
            "/",
            "/",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "/bin/true",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn first_run(who: As, bubblewrap: Bubblewrap) {
    if !nix_is_root() {
        eprintln!("note: these runs need root (to make a user, or to be root); skipped");
        return;
    }
    let bubblewrap_installed = Command::new("sh")
        .args(["-c", "command -v bwrap"])
        .env("PATH", SYSTEM_PATH)
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if bubblewrap == Bubblewrap::OnPath && !bubblewrap_installed {
        assert!(
            std::env::var_os("WHARF_TEST_REQUIRE_NAMESPACES").is_none(),
            "bubblewrap is not installed"
        );
        eprintln!("note: bubblewrap is not installed; skipped");
        return;
    }
    // Everything the run uses lives here, where an unprivileged user can pass through.
    let temp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(temp.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let home = temp.path().join("home");
    let app_dir = home.join("examples/python-web");
    copy_tree(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/python-web"),
        &app_dir,
    );
    // The test binary's tree may be where others can't reach (under /root): a copy of wharf.
    let wharf = temp.path().join("wharf");
    std::fs::copy(WHARF.as_str(), &wharf).unwrap();
    std::fs::set_permissions(&wharf, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = match bubblewrap {
        Bubblewrap::OnPath => SYSTEM_PATH.to_owned(),
        Bubblewrap::Hidden => path_without_bubblewrap(temp.path()).display().to_string(),
    };

    let user = (who == As::User).then(|| TestUser::create(&home));
    let mut command = match &user {
        Some(user) => {
            chown_tree(&home, user.uid);
            let mut c = Command::new("setpriv");
            c.args([
                format!("--reuid={}", user.uid),
                format!("--regid={}", user.uid),
                "--init-groups".to_owned(),
                "--".to_owned(),
            ])
            .arg(&wharf);
            c
        }
        None => {
            // Root's default data directory, made a tmpfs for this run alone.
            std::fs::create_dir_all("/var/lib/wharf/up").unwrap();
            let mut c = Command::new("unshare");
            c.args(["--mount", "--propagation", "private", "--", "sh", "-c"])
                .arg("mount -t tmpfs -o mode=0711 wharf-first-run /var/lib/wharf/up && exec \"$0\" \"$@\"")
                .arg(&wharf);
            c
        }
    };
    // A new user's environment: a HOME, the system PATH, nothing of wharf's.
    command
        .args(["up", "examples/python-web"])
        .current_dir(&home)
        .env_clear()
        .env("HOME", &home)
        .env("PATH", &path)
        .env("LANG", "C.UTF-8")
        .env("NO_COLOR", "1");
    let mut up = Foreground::spawn(command);
    let namespaces =
        bubblewrap == Bubblewrap::OnPath && bubblewrap_works_as(user.as_ref().map(|u| u.uid));
    // With the sandbox, the first run makes wharf's stack from Debian packages first.
    let within = Duration::from_secs(if namespaces { 900 } else { 300 });

    // Its data is in the default place for who runs it.
    let expected_data = match who {
        As::Root => "/var/lib/wharf/up/python-web-".to_owned(),
        As::User => format!("{}/.local/share/wharf/up/python-web-", home.display()),
    };
    let starting = up.wait_for("Starting wharf (data in", within);
    assert!(starting.contains(&expected_data), "{starting}");
    // One line says which sandbox it chose, and why.
    let sandbox = up.wait_for("Sandbox: ", within);
    if namespaces {
        assert!(sandbox.contains("Sandbox: namespaces"), "{sandbox}");
    } else {
        assert!(sandbox.contains("Sandbox: none"), "{sandbox}");
    }
    if bubblewrap == Bubblewrap::Hidden {
        assert!(
            sandbox.contains("not on PATH") && sandbox.contains("apt-get install bubblewrap"),
            "{sandbox}"
        );
    }
    match who {
        As::Root => assert!(sandbox.contains("each app"), "{sandbox}"),
        As::User => assert!(sandbox.contains("as you"), "{sandbox}"),
    }
    // The next says which stack: wharf's own where the sandbox runs and mmdebstrap can make
    // it (root can; the new user is a system user, without subordinate ids), else the host's
    // /usr, and why.
    let stack = up.wait_for("Stack: ", within);
    if namespaces && who == As::Root {
        // (The make's progress is in the build output, on stdout.)
        assert!(stack.contains("Stack: wharf-trixie"), "{stack}");
    } else if namespaces {
        assert!(
            stack.contains("Stack: wharf-1") && stack.contains("no range of subordinate ids"),
            "{stack}"
        );
    } else {
        assert!(
            stack.contains("Stack: wharf-1") && stack.contains("there is no sandbox"),
            "{stack}"
        );
    }

    let port = port_in_url(&up.wait_for("is up at http://python-web.localhost:", within));
    let body = wait_until(Duration::from_secs(30), "the page", || {
        get_page(port, "python-web.localhost")
    });
    assert!(body.starts_with("Hello from python-web!"), "{body}");

    // Ctrl-C stops it all: wharf exits 0 and none of the app's processes is left.
    let status = up.stop_with("-INT", Duration::from_secs(60));
    assert!(status.success(), "{status:?}: {}", up.seen.join("\n"));
    assert!(
        get_page(port, "python-web.localhost").is_err(),
        "the router stopped"
    );
    if let Some(user) = &user {
        let left = processes_of(user.uid);
        assert!(left.is_empty(), "left running as the user: {left:?}");
    }
}

/// Processes whose real uid is `uid`.
fn processes_of(uid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for pid in pids() {
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            continue;
        };
        let real = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().next())
            .and_then(|id| id.parse::<u32>().ok());
        let zombie = status
            .lines()
            .any(|l| l.starts_with("State:") && l.contains('Z'));
        if real == Some(uid) && !zombie {
            found.push(pid);
        }
    }
    found
}
