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
    // cargo brings rustc, gcc and the C library's headers: the Rust example builds here.
    build: &["python3-venv", "cargo"],
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
    let cache = crate::target_tmp().join(format!(
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
    let stacks = data_dir.join("stacks");
    std::fs::create_dir_all(&stacks).unwrap();
    for tag in tags {
        let manifest = made.resolve(&tag).unwrap();
        // Blobs are linked, not copied: every test's server gets the stack in a moment, and
        // content-addressed blobs are never written again.
        for entry in std::fs::read_dir(made.blob_path(&manifest).parent().unwrap()).unwrap() {
            let from = entry.unwrap().path();
            let to = store
                .blob_path(&manifest)
                .with_file_name(from.file_name().unwrap());
            if !to.exists() {
                // Copied where the data directory is on another filesystem.
                if std::fs::hard_link(&from, &to).is_err() {
                    std::fs::copy(&from, &to).unwrap();
                }
            }
        }
        store.tag(&tag, &manifest).unwrap();
        // Unpacked once here, and linked into the data directory where the server would unpack
        // it (nothing writes into a stack's tree: builds and instances get it read-only).
        let tree = wharf_stack::rootfs::unpack(&made, &manifest, &cache.join("stacks")).unwrap();
        if stacks.join(manifest.hex()).exists() {
            continue;
        }
        let same_fs = {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(&tree).unwrap().dev() == std::fs::metadata(&stacks).unwrap().dev()
        };
        let linked = std::process::Command::new("cp")
            .arg(if same_fs { "-al" } else { "-a" })
            .arg(&tree)
            .arg(stacks.join(manifest.hex()))
            .status()
            .expect("run cp");
        assert!(linked.success(), "cp {} failed", tree.display());
    }
}
