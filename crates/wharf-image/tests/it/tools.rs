//! Standard OCI tools read what the store writes. Each test is skipped, with a note, when its
//! tool is not installed (CI installs them).

use std::path::Path;
use std::process::Command;

use crate::fixture::*;

fn tool(name: &str) -> bool {
    let found = Command::new(name).arg("--version").output().is_ok();
    if !found {
        eprintln!("note: `{name}` is not on PATH, skipping this test");
    }
    found
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn tagged_sample(tmp: &Path) -> (wharf_image::ImageStore, wharf_image::BuiltImage) {
    let src = tmp.join("src");
    write_tree(&src, &sample_app());
    let store = store_in(tmp);
    let built = store.build_image(&app_spec(&src)).unwrap();
    store.tag("demo-v1", &built.manifest).unwrap();
    (store, built)
}

#[test]
fn skopeo_inspects_and_copies_the_image() {
    if !tool("skopeo") {
        return;
    }
    let tmp = tempdir();
    let (store, built) = tagged_sample(tmp.path());
    let reference = format!("oci:{}:demo-v1", store.root().display());

    let raw = run(Command::new("skopeo").args(["inspect", "--raw", &reference]));
    assert_eq!(wharf_image::Digest::of(raw.as_bytes()), built.manifest);

    let inspect: serde_json::Value =
        serde_json::from_str(&run(Command::new("skopeo").args(["inspect", &reference]))).unwrap();
    assert_eq!(inspect["Digest"], built.manifest.to_string());
    assert_eq!(inspect["Layers"].as_array().unwrap().len(), 2);
    assert_eq!(inspect["Os"], "linux");
    assert_eq!(inspect["Labels"]["dev.wharf.process-types"], "web");

    // A copy reads every blob and checks every digest.
    let copy = tmp.path().join("copy");
    run(Command::new("skopeo").args([
        "copy",
        "--quiet",
        &reference,
        &format!("oci:{}:copied", copy.display()),
    ]));
    let copied = wharf_image::ImageStore::open(&copy).unwrap();
    assert_eq!(copied.resolve("copied").unwrap(), built.manifest);
    assert!(copied.fsck().unwrap().is_healthy());
}

#[test]
fn umoci_lists_and_unpacks_the_image() {
    if !tool("umoci") {
        return;
    }
    let tmp = tempdir();
    let (store, _) = tagged_sample(tmp.path());
    let layout = store.root().display().to_string();
    let tags = run(Command::new("umoci").args(["ls", "--layout", &layout]));
    assert_eq!(tags.trim(), "demo-v1");

    // umoci parses every tar header, including the GNU long names.
    let bundle = tmp.path().join("bundle");
    run(Command::new("umoci").args([
        "unpack",
        "--rootless",
        "--image",
        &format!("{layout}:demo-v1"),
        bundle.to_str().unwrap(),
    ]));
    assert_eq!(
        snapshot(&bundle.join("rootfs/app")),
        snapshot(&tmp.path().join("src"))
    );
}
