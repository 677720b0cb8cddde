//! The disk filling up during a build: the build fails with the reason, the app keeps its
//! release, the space comes back, and the store stays consistent.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::{Cli, Server};
use crate::run::nix_is_root;

/// A small filesystem of its own (a size-limited tmpfs), unmounted when dropped.
struct SmallDisk {
    _temp: tempfile::TempDir,
    mount: PathBuf,
}

impl SmallDisk {
    fn mount(mib: u32) -> Option<SmallDisk> {
        let temp = tempfile::tempdir().unwrap();
        let mount = temp.path().join("disk");
        std::fs::create_dir(&mount).unwrap();
        let mounted = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={mib}m,mode=0711"),
                "tmpfs",
            ])
            .arg(&mount)
            .status()
            .is_ok_and(|s| s.success());
        mounted.then_some(SmallDisk { _temp: temp, mount })
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.mount).status();
    }
}

/// Deploys `files` as `app`; returns the run (not checked).
fn deploy(cli: &Cli, app: &str, files: &[(&str, &str, bool)]) -> crate::harness::Run {
    let dir = cli.work_dir().join(app);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    for (name, text, executable) in files {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        if *executable {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
    cli.run(&["deploy", dir.to_str().unwrap(), "-a", app])
}

fn current_release(cli: &Cli, app: &str) -> u64 {
    let releases = cli.run(&["releases", "-a", app, "--json"]).success().json();
    releases
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["current"] == true)
        .filter_map(|r| r["version"].as_u64())
        .next()
        .unwrap_or_else(|| panic!("a current release: {releases:#}"))
}

fn used_bytes(path: &Path) -> u64 {
    let out = Command::new("df")
        .args(["--output=used", "-B1"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .unwrap()
}

#[test]
fn a_full_disk_fails_the_build_cleanly_and_loses_nothing() {
    if !nix_is_root() {
        eprintln!("note: mounting a small filesystem needs root; nothing to check here");
        return;
    }
    let Some(disk) = SmallDisk::mount(80) else {
        eprintln!("note: tmpfs can't be mounted here; nothing to check");
        return;
    };
    let data_dir = disk.mount.join("wharf");
    // The host-bound stack: the point is a disk that fills, and 80 MiB can't hold a stack's
    // images and trees besides (a stack's own disk use is not what this checks).
    let server = Server::start_in_with(
        &data_dir,
        &["--port-range", "33750-33779", "--stack", "wharf-1"],
    );
    let cli = Cli::logged_in(&server);
    cli.run(&["apps", "create", "filler"]).success();
    let good = [("Procfile", "worker: exec sleep 1000\n", false)];
    deploy(&cli, "filler", &good).success();
    assert_eq!(current_release(&cli, "filler"), 2);
    let baseline = used_bytes(&disk.mount);

    // A build that fills the disk itself.
    let zeros = deploy(
        &cli,
        "filler",
        &[(
            "bin/build",
            "#!/bin/sh\ndd if=/dev/zero of=big bs=1M count=200\n",
            true,
        )],
    );
    let text = format!("{}{}", zeros.stdout, zeros.stderr);
    assert_ne!(zeros.code, Some(0), "{zeros:#?}");
    assert!(text.contains("No space left on device"), "{text}");

    // A build that fits, but whose image doesn't: random bytes don't compress.
    let random = deploy(
        &cli,
        "filler",
        &[(
            "bin/build",
            "#!/bin/sh\nhead -c 45000000 /dev/urandom > noise\n",
            true,
        )],
    );
    let text = format!("{}{}", random.stdout, random.stderr);
    assert_ne!(random.code, Some(0), "{random:#?}");
    assert!(
        text.contains("No space left on device") || text.contains("space"),
        "the failure says why: {text}"
    );

    // Nothing was lost and the space came back: the app keeps v2, both builds are failed (not
    // left running), and the next deploy works.
    assert_eq!(current_release(&cli, "filler"), 2);
    let builds = cli
        .run(&["builds", "-a", "filler", "--json"])
        .success()
        .json();
    let statuses: Vec<&str> = builds
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|b| b["status"].as_str())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == "failed").count(),
        2,
        "{builds:#}"
    );
    assert!(!statuses.contains(&"pending"), "{builds:#}");
    let after = used_bytes(&disk.mount);
    assert!(
        after < baseline + 16 * 1024 * 1024,
        "the failed builds left {} MiB behind",
        (after.saturating_sub(baseline)) >> 20
    );
    deploy(&cli, "filler", &good).success();
    assert_eq!(current_release(&cli, "filler"), 3);

    let (status, stderr) = server.stop_with("-TERM");
    assert!(status.success(), "{stderr}");
    cli.assert_fsck_clean(&data_dir);
}
