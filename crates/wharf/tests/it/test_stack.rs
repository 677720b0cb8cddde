//! A small stack for tests, made once per machine and copied into each test's data directory:
//! Debian trixie's essential packages with Python, pip's CA bundle and venv, and the
//! libraries Node.js links to (the C++ runtime, libatomic); trixie, not the host's bookworm,
//! so a test can tell which one it runs on. Making it downloads packages and takes
//! about a minute; every later test copies it in a second. The cache lives in Cargo's target
//! directory and is made under a file lock, so tests running at once make it once.

use std::path::Path;

use wharf_image::ImageStore;
use wharf_stack::{Role, StackDef};

pub const NAME: &str = "test-trixie";

const DEF: StackDef = StackDef {
    name: NAME,
    suite: "trixie",
    variant: "essential",
    run: &["python3", "ca-certificates", "libstdc++6", "libatomic1"],
    build: &["python3-venv"],
};

/// Whether stacks can be made and used here: mmdebstrap and bubblewrap installed. In CI they
/// must be (`scripts/setup` installs them).
pub fn available() -> bool {
    let on_path = |name: &str| {
        std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(name).is_file()))
    };
    let ready = on_path("mmdebstrap") && on_path("bwrap");
    if !ready {
        assert!(
            std::env::var_os("CI").is_none(),
            "mmdebstrap and bubblewrap are needed (scripts/setup installs them)"
        );
        eprintln!("note: mmdebstrap or bubblewrap is not installed; skipped");
    }
    ready
}

/// Puts the test stack's images (tagged as wharf tags stacks) into the image store of
/// `data_dir`, making them first if this machine has not yet.
pub fn install(data_dir: &Path) {
    // Named by what it is made of, so a changed definition is made afresh.
    let made_of = format!(
        "{} {} {:?} {:?}",
        DEF.suite, DEF.variant, DEF.run, DEF.build
    );
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "test-stack-{}",
        &wharf_image::Digest::of(made_of.as_bytes()).hex()[..12]
    ));
    std::fs::create_dir_all(&cache).unwrap();
    let lock = std::fs::File::create(cache.join("lock")).unwrap();
    let _held = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .expect("lock the test stack's cache");
    let made = ImageStore::open(&cache.join("images")).unwrap();
    let tags = [Role::Run.tag(NAME), Role::Build.tag(NAME)];
    if tags.iter().any(|t| made.resolve(t).is_err()) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut lines = Vec::new();
        let result = runtime.block_on(wharf_stack::make(
            &DEF,
            &[Role::Run, Role::Build],
            &made,
            &cache.join("work"),
            &mut |line: &str| lines.push(line.to_owned()),
        ));
        if let Err(e) = result {
            panic!("making the test stack failed: {e}\n{}", lines.join("\n"));
        }
    }
    let store = ImageStore::open(&data_dir.join("images")).unwrap();
    for tag in tags {
        let manifest = made.resolve(&tag).unwrap();
        store.copy_image(&made, &manifest).unwrap();
        store.tag(&tag, &manifest).unwrap();
    }
}
