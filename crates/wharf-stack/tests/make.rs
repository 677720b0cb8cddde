//! Making a stack with the real mmdebstrap from the host's Debian archive: the same package
//! versions give the same image digest, and the image records what it holds.

use wharf_image::ImageStore;
use wharf_stack::{Role, StackDef};

/// A small stack (Debian's essential packages of trixie), so the test downloads little.
const SMALL: StackDef = StackDef {
    name: "test-trixie-essential",
    suite: "trixie",
    variant: "essential",
    run: &[],
    build: &[],
};

fn mmdebstrap_installed() -> bool {
    std::path::Path::new("/usr/bin/mmdebstrap").exists()
}

#[tokio::test]
async fn the_same_packages_give_the_same_stack_digest() {
    if !mmdebstrap_installed() {
        assert!(
            std::env::var_os("CI").is_none(),
            "mmdebstrap is not installed (scripts/setup installs it)"
        );
        eprintln!("note: mmdebstrap is not installed; skipped");
        return;
    }
    let mut made = Vec::new();
    for _ in 0..2 {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(&dir.path().join("images")).unwrap();
        let mut lines = Vec::new();
        let stack = wharf_stack::make(
            &SMALL,
            &[Role::Run],
            &store,
            &dir.path().join("work"),
            &mut |l| lines.push(l.to_owned()),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        // mmdebstrap's own output was passed on, and the scratch is empty again.
        assert!(
            lines.iter().any(|l| l.contains("Running mmdebstrap")),
            "{lines:?}"
        );
        assert_eq!(
            std::fs::read_dir(dir.path().join("work")).unwrap().count(),
            0
        );
        let run = stack.run.expect("a run image");
        assert!(stack.build.is_none());
        assert!(
            run.packages.iter().any(|p| p.starts_with("base-files")),
            "{:?}",
            run.packages
        );
        assert_eq!(run.suite.as_deref(), Some("trixie"));
        assert!(run.created.is_some());
        // Listed from the store, and tagged as the stack's run image.
        assert_eq!(
            wharf_stack::list(&store).unwrap(),
            vec![wharf_stack::Stack {
                name: SMALL.name.to_owned(),
                run: Some(run.clone()),
                build: None,
            }]
        );
        assert_eq!(
            store.resolve(&Role::Run.tag(SMALL.name)).unwrap(),
            run.manifest
        );
        assert!(store.fsck().unwrap().is_healthy());
        made.push(run.manifest);
    }
    assert_eq!(made[0], made[1], "two makes of the same packages differ");
}
