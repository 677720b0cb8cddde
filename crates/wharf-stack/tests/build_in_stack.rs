//! Builds on a stack run inside its build image: a build step sees the stack's Debian and
//! Python, not the host's, and a file the host has and the stack hasn't is not there.

use std::path::Path;

use tokio_util::sync::CancellationToken;
use wharf_build::{BuildRequest, SandboxMode};
use wharf_image::ImageStore;
use wharf_stack::{Role, StackDef};

/// Debian's essential packages of trixie with Python and its venv: small, and not the host's
/// Debian (bookworm here) nor its Python.
const SMALL: StackDef = StackDef {
    name: "test-trixie-python",
    suite: "trixie",
    variant: "essential",
    run: &["python3"],
    build: &["python3-venv"],
};

fn can_run() -> bool {
    let ready = Path::new("/usr/bin/mmdebstrap").exists()
        && ["/usr/bin/bwrap", "/usr/local/bin/bwrap"]
            .iter()
            .any(|p| Path::new(p).exists());
    if !ready {
        assert!(
            std::env::var_os("CI").is_none(),
            "mmdebstrap and bubblewrap are needed (scripts/setup installs them)"
        );
        eprintln!("note: mmdebstrap or bubblewrap is not installed; skipped");
    }
    ready
}

async fn build(
    req: BuildRequest,
) -> (
    Result<wharf_build::BuildOutput, wharf_build::BuildError>,
    String,
) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let result = wharf_build::build(req, tx, CancellationToken::new()).await;
    let mut log = String::new();
    while let Ok(line) = rx.try_recv() {
        log.push_str(&line);
    }
    (result, log)
}

#[tokio::test]
async fn a_build_in_a_stack_sees_the_stack_not_the_host() {
    if !can_run() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&dir.path().join("images")).unwrap();
    let stack = wharf_stack::make(
        &SMALL,
        &[Role::Build],
        &store,
        &dir.path().join("work"),
        &mut |_| {},
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let image = stack.build.expect("a build image");
    let rootfs =
        wharf_stack::rootfs::unpack(&store, &image.manifest, &dir.path().join("rootfs")).unwrap();
    // Unpacked once: asked again, the same tree.
    assert_eq!(
        wharf_stack::rootfs::unpack(&store, &image.manifest, &dir.path().join("rootfs")).unwrap(),
        rootfs
    );

    // A build step: which Debian and Python it runs on, and whether it sees a host file.
    let host_only = env!("CARGO_MANIFEST_PATH");
    let source = dir.path().join("script-app");
    std::fs::create_dir_all(source.join("bin")).unwrap();
    std::fs::write(
        source.join("bin/build"),
        format!(
            "#!/bin/sh\necho debian=$(cat /etc/debian_version)\n\
             if cat {host_only} >/dev/null 2>&1; then echo host-file-seen; else echo host-file-missing; fi\n\
             python3 -c 'import sys; print(\"python=%d.%d\" % sys.version_info[:2])'\n\
             echo pwd=$(pwd) home=$HOME\n"
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        source.join("bin/build"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::fs::write(
        source.join("Procfile"),
        "web: python3 -m http.server $PORT\n",
    )
    .unwrap();
    assert!(Path::new(host_only).exists());
    let mut req = BuildRequest::new(
        source,
        dir.path().join("build-1"),
        dir.path().join("cache/app"),
    );
    req.sandbox = SandboxMode::Namespaces;
    req.root = Some(rootfs.clone());
    let (result, log) = build(req).await;
    result.unwrap_or_else(|e| panic!("{e}\n{log}"));
    assert!(log.contains("debian=13."), "{log}");
    assert!(log.contains("host-file-missing"), "{log}");
    assert!(log.contains("python=3.13"), "{log}");
    assert!(log.contains("pwd=/app home=/workspace/home"), "{log}");

    // The Python provider makes its virtualenv with the stack's Python.
    let source = dir.path().join("python-app");
    std::fs::create_dir_all(&source).unwrap();
    std::fs::write(source.join("requirements.txt"), "# nothing to install\n").unwrap();
    std::fs::write(source.join("Procfile"), "web: python3 app.py\n").unwrap();
    std::fs::write(source.join("app.py"), "print('hi')\n").unwrap();
    let mut req = BuildRequest::new(
        source,
        dir.path().join("build-2"),
        dir.path().join("cache/app"),
    );
    req.sandbox = SandboxMode::Namespaces;
    req.root = Some(rootfs.clone());
    let (result, log) = build(req).await;
    let built = result.unwrap_or_else(|e| panic!("{e}\n{log}"));
    let cfg = std::fs::read_to_string(built.app_dir.join(".venv/pyvenv.cfg")).unwrap();
    assert!(
        cfg.contains("version_info = 3.13") || cfg.contains("version = 3.13"),
        "{cfg}"
    );
    assert!(cfg.contains("home = /usr/bin"), "{cfg}");

    // Node.js comes from the npm registry; this small stack lacks the libraries it links to,
    // which is said before any package manager runs.
    let source = dir.path().join("node-app");
    std::fs::create_dir_all(&source).unwrap();
    std::fs::write(
        source.join("package.json"),
        "{\"name\": \"x\", \"version\": \"1.0.0\"}\n",
    )
    .unwrap();
    let mut req = BuildRequest::new(
        source,
        dir.path().join("build-3"),
        dir.path().join("cache/node"),
    );
    req.sandbox = SandboxMode::Namespaces;
    req.root = Some(rootfs);
    let (result, log) = build(req).await;
    let error = result.expect_err(&log).to_string();
    assert!(
        error.contains("doesn't run on the stack") && error.contains("libstdc++6"),
        "{error}"
    );
    assert!(
        log.contains("error while loading shared libraries"),
        "{log}"
    );
}
