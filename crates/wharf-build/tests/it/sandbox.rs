//! The sandbox every build command runs in: clean env, streamed output, process-tree cleanup on
//! timeout and cancel, and (with bubblewrap) no writes outside the scratch and cache dirs.

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use wharf_build::{BuildError, SandboxMode, SYSTEM_PATH};

use crate::fixture::{
    is_gone, modes, namespaces_available, processes_with, unique_token, wait_for_line, wait_until,
    Fixture, TEST_LIMIT,
};

#[tokio::test]
async fn build_commands_see_only_the_allowed_environment() {
    for mode in modes() {
        let f = Fixture::new(mode);
        f.script(
            "bin/build",
            "#!/usr/bin/env python3\nimport json, os\njson.dump(dict(os.environ), open('env.json', 'w'))\n",
        );
        let (out, _) = f.build().await.ok();
        let env: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&std::fs::read_to_string(out.app_dir.join("env.json")).unwrap())
                .unwrap();
        let keys: BTreeSet<&str> = env.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            BTreeSet::from(["CACHE_DIR", "HOME", "LANG", "PATH", "PWD", "TMPDIR"]),
            "{mode}: {env:?}"
        );
        assert_eq!(env["PATH"], SYSTEM_PATH);
        assert_eq!(env["LANG"], "C.UTF-8");
        let app = match mode {
            SandboxMode::Namespaces => "/app".to_owned(),
            _ => out.app_dir.display().to_string(),
        };
        assert_eq!(env["PWD"], app);
        let work = out.app_dir.parent().unwrap();
        assert_eq!(env["HOME"], work.join("home").display().to_string());
        assert_eq!(
            env["CACHE_DIR"],
            f.cache.join("bin-build").display().to_string()
        );
        // The test process runs under cargo, whose CARGO_* variables must not leak in.
        assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some());
    }
}

/// A build script that starts a long-running grandchild (named `token`, pid in `grandchild.pid`)
/// then prints `started` and blocks.
fn blocking_build(f: &Fixture, token: &str) {
    f.script(
        "bin/build",
        &format!(
            "#!/bin/bash\n(exec -a {token} sleep 1000) &\necho $! > grandchild.pid\n\
             echo started\nexec -a {token}-parent sleep 1000\n"
        ),
    );
}

fn grandchild_pid(work_app: &std::path::Path) -> i32 {
    std::fs::read_to_string(work_app.join("grandchild.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn timeout_stops_the_whole_process_tree() {
    for mode in modes() {
        let f = Fixture::new(mode);
        let token = unique_token("timeout");
        blocking_build(&f, &token);
        let mut req = f.request();
        req.timeout = Duration::from_secs(2);
        let app = req.work_dir.join("app");
        let (err, log) = f.build_with(req).await.err();
        assert!(matches!(err, BuildError::TimedOut { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "the build timed out after 2s and was stopped: make the build faster or raise WHARF_BUILD_TIMEOUT"
        );
        assert!(log.contains("started\n"), "{log}");
        assert_eq!(
            processes_with(&token),
            Vec::<i32>::new(),
            "{mode}: processes survived"
        );
        if mode == SandboxMode::None {
            // Without a pid namespace the pid file holds the host pid.
            assert!(is_gone(grandchild_pid(&app)));
        }
    }
}

#[tokio::test]
async fn cancel_stops_the_whole_process_tree() {
    for mode in modes() {
        let f = Fixture::new(mode);
        let token = unique_token("cancel");
        blocking_build(&f, &token);
        let req = f.request();
        let app = req.work_dir.join("app");
        let (tx, mut rx) = mpsc::unbounded_channel();
        let cancel = CancellationToken::new();
        let build = tokio::spawn(wharf_build::build(req, tx, cancel.clone()));
        wait_for_line(&mut rx, "started").await;
        // `started` may come before the two `sleep`s have exec'd under their new names.
        wait_until("both build processes run", || {
            processes_with(&token).len() == 2
        })
        .await;
        cancel.cancel();
        let result = tokio::time::timeout(TEST_LIMIT, build)
            .await
            .unwrap()
            .unwrap();
        let err = result.unwrap_err();
        assert!(matches!(err, BuildError::Cancelled), "{err:?}");
        assert_eq!(err.to_string(), "the build was cancelled");
        assert_eq!(
            processes_with(&token),
            Vec::<i32>::new(),
            "{mode}: processes survived"
        );
        if mode == SandboxMode::None {
            assert!(is_gone(grandchild_pid(&app)));
        }
    }
}

#[tokio::test]
async fn a_background_process_left_by_a_step_is_stopped_when_the_step_ends() {
    let f = Fixture::new(SandboxMode::None);
    let token = unique_token("leftover");
    f.script(
        "bin/build",
        &format!("#!/bin/bash\n(exec -a {token} sleep 1000) &\necho done\n"),
    );
    let (_, log) = f.build().await.ok();
    assert!(log.contains("done\n"), "{log}");
    assert_eq!(processes_with(&token), Vec::<i32>::new());
}

#[tokio::test]
async fn output_streams_line_by_line_while_the_build_runs() {
    let f = Fixture::new(SandboxMode::None);
    let go = f.tmp.path().join("go");
    f.script(
        "bin/build",
        &format!(
            "#!/bin/sh\necho first\necho to-stderr >&2\necho second\n\
             while [ ! -e '{}' ]; do sleep 0.02; done\nprintf 'after the wait\\nno newline at the end'\n",
            go.display()
        ),
    );
    let (tx, mut rx) = mpsc::unbounded_channel();
    let build = tokio::spawn(wharf_build::build(
        f.request(),
        tx,
        CancellationToken::new(),
    ));
    let mut lines = wait_for_line(&mut rx, "second").await;
    assert!(
        !build.is_finished(),
        "the line arrived before the build finished"
    );
    std::fs::write(&go, "").unwrap();
    let out = tokio::time::timeout(TEST_LIMIT, build)
        .await
        .unwrap()
        .unwrap();
    assert!(out.is_ok(), "{out:?}");
    while let Ok(line) = rx.try_recv() {
        lines.push(line);
    }
    assert!(lines.iter().all(|l| l.ends_with('\n')), "{lines:?}");
    let script: Vec<&str> = lines
        .iter()
        .map(String::as_str)
        .skip_while(|l| *l != "first\n")
        .take(5)
        .collect();
    assert_eq!(
        script,
        [
            "first\n",
            "to-stderr\n",
            "second\n",
            "after the wait\n",
            "no newline at the end\n"
        ]
    );
}

#[tokio::test]
async fn namespaces_keep_the_build_inside_scratch_and_cache() {
    if !namespaces_available() {
        return;
    }
    let f = Fixture::new(SandboxMode::Namespaces);
    let token = unique_token("escape");
    let outside = f.tmp.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let other_app_cache = f.tmp.path().join("cache/other");
    std::fs::create_dir_all(&other_app_cache).unwrap();
    std::fs::write(other_app_cache.join("secret"), "s3cret").unwrap();
    let escapes = [
        format!("/tmp/../etc/{token}"),
        format!("{}/{token}", outside.display()),
        format!("/root/{token}"),
        format!("/usr/local/{token}"),
    ];
    let mut script = String::from("#!/bin/sh\npwd > pwd.txt\n");
    for path in &escapes {
        script.push_str(&format!(
            "echo x > '{path}' 2>/dev/null && echo \"wrote {path}\"\n"
        ));
    }
    script.push_str(&format!(
        "cat '{}' > seen.txt 2>/dev/null\necho ok > \"$CACHE_DIR/ok\"\necho x > /tmp/{token}-private\n",
        other_app_cache.join("secret").display()
    ));
    f.script("bin/build", &script);

    let (out, log) = f.build().await.ok();
    assert!(
        log.contains("-----> Sandbox: namespaces (bubblewrap)\n"),
        "{log}"
    );
    for path in &escapes {
        assert!(
            !std::path::Path::new(path).exists(),
            "the build wrote {path}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(out.app_dir.join("pwd.txt")).unwrap(),
        "/app\n"
    );
    assert_eq!(
        std::fs::read_to_string(out.app_dir.join("seen.txt")).unwrap(),
        ""
    );
    assert!(
        f.cache.join("bin-build/ok").is_file(),
        "the cache is writable"
    );
    let private_tmp = format!("/tmp/{token}-private");
    assert!(!std::path::Path::new(&private_tmp).exists());
}

/// As root, a build in namespaces runs as the app's user: no capabilities, the scratch and cache
/// its own, root's private files out of reach, and toolchains in root's home still usable.
#[tokio::test]
async fn namespaces_builds_run_as_the_apps_user_when_root() {
    if !namespaces_available() || !nix::unistd::geteuid().is_root() {
        return;
    }
    let f = Fixture::new(SandboxMode::Namespaces);
    // Root's private file where the sandbox shows the host (its /tmp is the sandbox's own).
    let private = std::path::PathBuf::from(format!("/var/tmp/{}", unique_token("private")));
    std::fs::write(&private, "s3cret").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o600)).unwrap();
    // A cache left by an older wharf, when builds ran as root.
    std::fs::create_dir_all(f.cache.join("bin-build")).unwrap();
    std::fs::write(f.cache.join("bin-build/old"), "old").unwrap();
    f.script(
        "bin/build",
        &format!(
            "#!/bin/sh\nid -u > uid.txt\ngrep CapEff /proc/self/status > caps.txt\n\
             cat '{}' > private.txt 2>/dev/null\necho new >> \"$CACHE_DIR/old\"\n\
             touch \"$HOME/h\" /tmp/t && echo scratch-writable > scratch.txt\n\
             ls /root > root.txt 2>&1 || true\n",
            private.display()
        ),
    );
    let mut req = f.request();
    req.user = Some(wharf_sandbox::users::FIRST_APP_UID + 4242);
    let built = f.build_with(req).await;
    std::fs::remove_file(&private).unwrap();
    let (out, log) = built.ok();
    let read = |name: &str| std::fs::read_to_string(out.app_dir.join(name)).unwrap();
    assert_eq!(
        read("uid.txt").trim(),
        (wharf_sandbox::users::FIRST_APP_UID + 4242).to_string(),
        "{log}"
    );
    assert_eq!(read("caps.txt").trim(), "CapEff:\t0000000000000000");
    assert_eq!(read("private.txt"), "", "root's files are out of reach");
    assert_eq!(read("scratch.txt"), "scratch-writable\n");
    assert_eq!(
        std::fs::read_to_string(f.cache.join("bin-build/old")).unwrap(),
        "oldnew\n",
        "the cache became the app user's"
    );
    // Root's private home may be passed through but not listed (as if it were 0711).
    let root_mode = std::fs::metadata("/root").unwrap().permissions().mode();
    if root_mode & 0o001 == 0 {
        assert!(
            read("root.txt").contains("Permission denied"),
            "{}",
            read("root.txt")
        );
    }
}

#[tokio::test]
#[ignore = "needs network access to pypi.org; run with --ignored"]
async fn namespaces_builds_can_reach_package_registries() {
    if !namespaces_available() {
        return;
    }
    let f = Fixture::new(SandboxMode::Namespaces);
    f.script(
        "bin/build",
        "#!/usr/bin/env python3\nimport urllib.request\n\
         print('status', urllib.request.urlopen('https://pypi.org/simple/six/').status)\n",
    );
    let (_, log) = f.build().await.ok();
    assert!(log.contains("status 200\n"), "{log}");
}
