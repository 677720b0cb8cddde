//! `wharf deploy`, `wharf builds` and `wharf fsck`: a user deploys a directory and watches it
//! build.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use crate::harness::{wait_until, Cli, Server};

/// Writes `files` (path, contents) under `dir`; paths under `bin/` are made executable.
fn write_tree(dir: &std::path::Path, files: &[(&str, &str)]) {
    for (path, contents) in files {
        let full = dir.join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(&full, contents).unwrap();
        if path.starts_with("bin/") {
            std::fs::set_permissions(&full, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
}

#[test]
fn deploy_streams_the_build_and_ends_with_the_release() {
    let server = Server::start();
    let cli = Cli::logged_in(&server);
    cli.run(&["apps", "create", "site"]).success();
    let dir = cli.work_dir().join("site");
    write_tree(
        &dir,
        &[
            ("index.html", "<h1>hello</h1>\n"),
            ("notes/draft.md", "left out by .slugignore\n"),
            (".slugignore", "notes\n"),
            (".gitignore", "*.log\n"),
            ("debug.log", "left out by .gitignore\n"),
        ],
    );
    let deployed = cli
        .run(&[
            "deploy",
            dir.to_str().unwrap(),
            "-a",
            "site",
            "--source-version",
            "first",
        ])
        .success();
    assert!(deployed.stderr.contains("-----> Packing"), "{deployed:#?}");
    assert!(deployed.stderr.contains("-----> Uploaded"), "{deployed:#?}");
    assert!(
        deployed.stdout.contains("Static site detected"),
        "{deployed:#?}"
    );
    assert!(
        deployed.stdout.contains("-----> Released v2"),
        "{deployed:#?}"
    );
    assert!(
        deployed.stdout.ends_with(&format!(
            "Deployed site: release v2 is at http://site.localhost:{}/\n",
            server.router_port
        )),
        "{deployed:#?}"
    );

    let builds = cli
        .run(&["builds", "-a", "site", "--json"])
        .success()
        .json();
    let build = &builds[0];
    assert_eq!(build["status"], "succeeded");
    assert_eq!(build["provider"], "static");
    assert_eq!(build["source_blob"]["version"], "first");
    assert_eq!(
        build["process_types"]["web"],
        "wharf serve-static --port $PORT"
    );
    let table = cli.run(&["builds", "-a", "site"]).success();
    assert!(
        table.stdout.contains("PROVIDER  RUNTIME      VERSION")
            && table.stdout.contains(&format!(
                "succeeded  static    wharf {}  first",
                env!("CARGO_PKG_VERSION")
            )),
        "{table:#?}"
    );
    let release = cli
        .run(&["releases", "info", "v2", "-a", "site", "--json"])
        .success()
        .json();
    assert_eq!(release["slug"]["id"], build["slug"]["id"]);

    // The image holds the app, without what the ignore files leave out (its layers above the
    // stack's run image, as the app's release tree is unpacked).
    let images = wharf_image::ImageStore::open(&server.data_dir.join("images")).unwrap();
    let digest = wharf_image::Digest::parse(build["slug"]["id"].as_str().unwrap()).unwrap();
    let own_layers = images
        .resolve(&wharf_stack::Role::Run.tag(crate::test_stack::NAME))
        .map_or(0, |run| {
            wharf_stack::layers_on(
                &images.image(&digest).unwrap(),
                &images.image(&run).unwrap(),
            )
            .expect("the image is on the test stack's run image")
        });
    let root = tempfile::tempdir().unwrap();
    images
        .extract_from(&digest, own_layers, &root.path().join("x"))
        .unwrap();
    assert!(root.path().join("x/app/index.html").is_file());
    assert!(!root.path().join("x/app/notes").exists());
    assert!(!root.path().join("x/app/debug.log").exists());
    // On a stack the image carries the file server it runs, so it serves anywhere.
    assert_eq!(
        root.path().join("x/app/.wharf/bin/wharf").is_file(),
        own_layers > 0
    );

    // The output can be read again, in full, after the build.
    let replay = cli.run(&["builds", "output", "-a", "site"]).success();
    assert!(replay.stdout.contains("-----> Released v2"), "{replay:#?}");

    cli.assert_fsck_clean(&server.data_dir);
}

#[test]
fn a_failed_build_exits_non_zero_with_its_reason() {
    let server = Server::start();
    let cli = Cli::logged_in(&server);
    cli.run(&["apps", "create", "fails"]).success();
    let dir = cli.work_dir().join("fails");
    write_tree(
        &dir,
        &[(
            "bin/build",
            "#!/bin/sh\necho compiling...\necho 'syntax error on line 3' >&2\nexit 2\n",
        )],
    );
    let run = cli
        .run(&["deploy", dir.to_str().unwrap(), "-a", "fails"])
        .failure();
    assert!(run.stdout.contains("compiling..."), "{run:#?}");
    assert!(
        run.stdout.contains("syntax error on line 3"),
        "the build's stderr streams too: {run:#?}"
    );
    assert!(
        run.stderr.contains("error: the build of fails failed:"),
        "{run:#?}"
    );
    let releases = cli
        .run(&["releases", "-a", "fails", "--json"])
        .success()
        .json();
    assert_eq!(releases.as_array().unwrap().len(), 1, "no release was made");
    let info = cli.run(&["builds", "info", "-a", "fails"]).success();
    assert!(info.stdout.contains("failed"), "{info:#?}");
}

#[test]
fn deploy_refuses_what_it_cannot_pack_before_uploading() {
    let server = Server::start();
    let cli = Cli::logged_in(&server);
    cli.run(&["apps", "create", "leaky"]).success();
    let dir = cli.work_dir().join("leaky");
    write_tree(&dir, &[("Procfile", "web: true\n")]);
    std::os::unix::fs::symlink("/etc/passwd", dir.join("passwd")).unwrap();
    let refused = cli
        .run(&["deploy", dir.to_str().unwrap(), "-a", "leaky"])
        .failure();
    assert!(
        refused
            .stderr
            .contains("error: entry `passwd`: symlink target `/etc/passwd` is absolute"),
        "{refused:#?}"
    );
    let missing = cli
        .run(&["deploy", "/nonexistent/dir", "-a", "leaky"])
        .error();
    assert!(missing.contains("not a directory"), "{missing}");
    let ghost = cli
        .run(&["deploy", dir.to_str().unwrap(), "-a", "ghost"])
        .error();
    assert!(ghost.contains("app `ghost` not found"), "{ghost}");
    let builds = cli
        .run(&["builds", "-a", "leaky", "--json"])
        .success()
        .json();
    assert!(builds.as_array().unwrap().is_empty());
}

/// A build's commands run in cgroups of the build's own (`wharf/builds/<id>`), where the host
/// lets wharf make cgroups, and those are gone once the build is.
#[test]
fn a_build_runs_in_its_own_cgroups() {
    let pids = std::path::Path::new("/sys/fs/cgroup/pids");
    let v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let writable =
        |dir: &std::path::Path| nix::unistd::access(dir, nix::unistd::AccessFlags::W_OK).is_ok();
    if !(v2 && writable(std::path::Path::new("/sys/fs/cgroup")) || pids.is_dir() && writable(pids))
    {
        eprintln!("note: cgroups are not writable here; skipped");
        return;
    }
    let server = Server::start();
    let cli = Cli::logged_in(&server);
    cli.run(&["apps", "create", "limited"]).success();
    let dir = cli.work_dir().join("limited");
    write_tree(
        &dir,
        &[
            ("bin/build", "#!/bin/sh\ncat /proc/self/cgroup\n"),
            ("Procfile", "worker: true\n"),
        ],
    );
    let run = cli
        .run(&["deploy", dir.to_str().unwrap(), "-a", "limited"])
        .success();
    let builds = cli
        .run(&["builds", "-a", "limited", "--json"])
        .success()
        .json();
    let id = builds[0]["id"].as_str().unwrap();
    let cgroup = format!("/wharf/builds/{id}");
    assert!(run.stdout.contains(&cgroup), "{run:#?}");
    // Removed as soon as the kernel counts none of the build's processes in them.
    wait_until(Duration::from_secs(10), "the build's cgroups to go", || {
        let left: Vec<_> = ["/sys/fs/cgroup", "/sys/fs/cgroup/pids"]
            .iter()
            .map(|root| std::path::Path::new(root).join(cgroup.trim_start_matches('/')))
            .filter(|p| p.exists())
            .collect();
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("left behind: {left:?}"))
        }
    });
}
