use std::fs;
use std::os::unix::fs::PermissionsExt;

use tar::EntryType as T;
use wharf_image::{ImageError, ImageSpec, LayerSpec, Select};

use crate::fixture::*;

#[test]
fn extracting_a_built_image_reproduces_the_tree() {
    let tmp = tempdir();
    let src = tmp.path().join("src");
    write_tree(&src, &sample_app());
    let store = store_in(tmp.path());
    let built = store.build_image(&app_spec(&src)).unwrap();

    let dest = tmp.path().join("release");
    store.extract(&built.manifest, &dest).unwrap();
    assert_eq!(names_in(&dest), ["app"]);
    assert_eq!(snapshot(&dest.join("app")), snapshot(&src));
}

#[test]
fn extract_refuses_a_non_empty_destination() {
    let tmp = tempdir();
    let src = tmp.path().join("src");
    write_tree(&src, &[("a", file("a"))]);
    let store = store_in(tmp.path());
    let built = store.build_image(&app_spec(&src)).unwrap();
    let dest = tmp.path().join("dest");
    write_tree(&dest, &[("keep", file("mine"))]);
    let err = store.extract(&built.manifest, &dest).unwrap_err();
    assert!(matches!(err, ImageError::DestNotEmpty { .. }), "{err}");
    assert_eq!(fs::read_to_string(dest.join("keep")).unwrap(), "mine");
}

/// Extracting `layer` fails naming `entry`, writes nothing outside dest and leaves it empty.
fn assert_refused(layers: &[Vec<u8>], entry: &str, reason: &str) {
    let tmp = tempdir();
    let store = store_in(tmp.path());
    let manifest = image_from_layers(&store, layers);
    let dest = tmp.path().join("dest");
    let err = store.extract(&manifest, &dest).unwrap_err();
    let shown = err.to_string();
    assert!(matches!(err, ImageError::UnsafeEntry { .. }), "{shown}");
    assert!(shown.contains(&format!("entry `{entry}`")), "{shown}");
    assert!(shown.contains(reason), "{shown}");
    assert!(is_empty_dir(&dest), "dest must be left empty");
    assert_eq!(names_in(tmp.path()), ["dest", "images"]);
    assert!(!std::path::Path::new("/etc/wharf-test-pwned").exists());
}

#[test]
fn extract_refuses_an_absolute_path() {
    let layer = raw_targz(&[(b"/tmp/wharf-abs-test", T::Regular, b"", b"x")]);
    assert_refused(&[layer], "/tmp/wharf-abs-test", "absolute");
    assert!(!std::path::Path::new("/tmp/wharf-abs-test").exists());
}

#[test]
fn extract_refuses_a_parent_dir_component() {
    let layer = raw_targz(&[
        (b"ok", T::Regular, b"", b"fine"),
        (b"../escaped", T::Regular, b"", b"x"),
    ]);
    assert_refused(&[layer], "../escaped", "`..`");
}

#[test]
fn extract_refuses_to_write_through_a_symlink() {
    let tmp = tempdir();
    let outside = tmp.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let target = outside.to_str().unwrap().as_bytes().to_vec();
    let layer = raw_targz(&[
        (b"link", T::Symlink, &target, b""),
        (b"link/passwd", T::Regular, b"", b"pwned"),
    ]);
    assert_refused(
        std::slice::from_ref(&layer),
        "link/passwd",
        "symlink `link`",
    );
    // And the classic form, through a symlink to /etc.
    let layer = raw_targz(&[
        (b"etc", T::Symlink, b"/etc", b""),
        (b"etc/wharf-test-pwned", T::Regular, b"", b"pwned"),
    ]);
    assert_refused(&[layer], "etc/wharf-test-pwned", "symlink `etc`");
    assert!(is_empty_dir(&outside));
}

#[test]
fn extract_refuses_a_symlink_from_a_lower_layer_too() {
    let lower = raw_targz(&[(b"data", T::Symlink, b"/etc", b"")]);
    let upper = raw_targz(&[(b"data/wharf-test-pwned", T::Regular, b"", b"x")]);
    assert_refused(&[lower, upper], "data/wharf-test-pwned", "symlink `data`");
}

#[test]
fn extract_refuses_device_files_and_fifos() {
    let layer = raw_targz(&[(b"dev/null", T::Char, b"", b"")]);
    assert_refused(&[layer], "dev/null", "device files are not allowed");
    let layer = raw_targz(&[(b"disk", T::Block, b"", b"")]);
    assert_refused(&[layer], "disk", "device files are not allowed");
    let layer = raw_targz(&[(b"pipe", T::Fifo, b"", b"")]);
    assert_refused(&[layer], "pipe", "fifos are not allowed");
}

#[test]
fn extract_refuses_a_hard_link_outside_dest() {
    let layer = raw_targz(&[(b"shadow", T::Link, b"/etc/shadow", b"")]);
    assert_refused(&[layer], "shadow", "hard link target `/etc/shadow`");
    let layer = raw_targz(&[
        (b"dir", T::Symlink, b"/etc", b""),
        (b"shadow", T::Link, b"dir/shadow", b""),
    ]);
    assert_refused(&[layer], "shadow", "not a file extracted earlier");
}

#[test]
fn extract_follows_a_hard_link_to_an_earlier_file() {
    let tmp = tempdir();
    let store = store_in(tmp.path());
    let layer = raw_targz(&[
        (b"a/original", T::Regular, b"", b"shared"),
        (b"b/copy", T::Link, b"a/original", b""),
    ]);
    let manifest = image_from_layers(&store, &[layer]);
    let dest = tmp.path().join("dest");
    store.extract(&manifest, &dest).unwrap();
    assert_eq!(fs::read_to_string(dest.join("b/copy")).unwrap(), "shared");
}

#[test]
fn extract_applies_whiteouts_from_upper_layers() {
    let tmp = tempdir();
    let store = store_in(tmp.path());
    let lower = raw_targz(&[
        (b"a/", T::Directory, b"", b""),
        (b"a/gone", T::Regular, b"", b"1"),
        (b"a/kept", T::Regular, b"", b"2"),
        (b"b/", T::Directory, b"", b""),
        (b"b/old", T::Regular, b"", b"3"),
        (b"b/sub/old", T::Regular, b"", b"4"),
        (b"c/tree/deep", T::Regular, b"", b"5"),
    ]);
    let upper = raw_targz(&[
        (b"a/.wh.gone", T::Regular, b"", b""),
        (b"b/sub/new", T::Regular, b"", b"6"),
        (b"b/.wh..wh..opq", T::Regular, b"", b""),
        (b"c/.wh.tree", T::Regular, b"", b""),
        (b"nowhere/.wh.x", T::Regular, b"", b""),
    ]);
    let manifest = image_from_layers(&store, &[lower, upper]);
    let dest = tmp.path().join("dest");
    store.extract(&manifest, &dest).unwrap();
    let snap = snapshot(&dest);
    let names: Vec<&str> = snap.keys().map(String::as_str).collect();
    assert_eq!(names, ["a", "a/kept", "b", "b/sub", "b/sub/new", "c"]);
}

#[test]
fn later_layers_replace_earlier_entries() {
    let tmp = tempdir();
    let store = store_in(tmp.path());
    let lower = raw_targz(&[
        (b"x", T::Regular, b"", b"old"),
        (b"d/", T::Directory, b"", b""),
        (b"d/f", T::Regular, b"", b"f"),
        (b"l", T::Symlink, b"/etc/passwd", b""),
    ]);
    let upper = raw_targz(&[
        (b"x", T::Regular, b"", b"new"),
        (b"d", T::Regular, b"", b"now a file"),
        (b"l", T::Regular, b"", b"not a link"),
    ]);
    let manifest = image_from_layers(&store, &[lower, upper]);
    let dest = tmp.path().join("dest");
    store.extract(&manifest, &dest).unwrap();
    assert_eq!(fs::read_to_string(dest.join("x")).unwrap(), "new");
    assert_eq!(fs::read_to_string(dest.join("d")).unwrap(), "now a file");
    assert_eq!(fs::read_to_string(dest.join("l")).unwrap(), "not a link");
    assert!(fs::read_to_string("/etc/passwd").is_ok_and(|p| p != "not a link"));
}

#[test]
fn extract_drops_setuid_bits() {
    let tmp = tempdir();
    let store = store_in(tmp.path());
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_path("suid").unwrap();
    header.set_mode(0o4755);
    header.set_size(1);
    header.set_entry_type(T::Regular);
    header.set_cksum();
    tar.append(&header, &b"x"[..]).unwrap();
    let layer = gzip(&tar.into_inner().unwrap());
    let manifest = image_from_layers(&store, &[layer]);
    let dest = tmp.path().join("dest");
    store.extract(&manifest, &dest).unwrap();
    let mode = fs::metadata(dest.join("suid"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o755);
}

#[test]
fn extract_detects_a_corrupted_layer_and_cleans_up() {
    let tmp = tempdir();
    let src = tmp.path().join("src");
    write_tree(&src, &[("a.txt", file(&"hello ".repeat(1000)))]);
    let store = store_in(tmp.path());
    let spec = ImageSpec {
        layers: vec![LayerSpec {
            root: src,
            prefix: String::new(),
            select: Select::All,
        }],
        ..ImageSpec::default()
    };
    let built = store.build_image(&spec).unwrap();
    let blob = store.blob_path(&built.layers[0].digest);
    let mut bytes = fs::read(&blob).unwrap();
    let n = bytes.len();
    bytes[n - 5] ^= 0xff; // inside the gzip trailer: the tar itself still reads fine
    fs::write(&blob, &bytes).unwrap();

    let dest = tmp.path().join("dest");
    let err = store.extract(&built.manifest, &dest).unwrap_err();
    assert!(matches!(err, ImageError::Corrupt { .. }), "{err}");
    assert!(
        err.to_string().contains(built.layers[0].digest.as_str()),
        "{err}"
    );
    assert!(is_empty_dir(&dest));
}

#[test]
fn extract_checks_diff_ids() {
    let tmp = tempdir();
    let store = store_in(tmp.path());
    let layer = raw_targz(&[(b"a", T::Regular, b"", b"a")]);
    let digest = store.put_blob(&layer).unwrap();
    let wrong = wharf_image::Digest::of(b"something else");
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [wrong.to_string()]},
    }))
    .unwrap();
    let config_digest = store.put_blob(&config).unwrap();
    let manifest = store
        .put_blob(
            &serde_json::to_vec(&serde_json::json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           "digest": config_digest.to_string(), "size": config.len()},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                            "digest": digest.to_string(), "size": layer.len()}],
            }))
            .unwrap(),
        )
        .unwrap();
    let err = store
        .extract(&manifest, &tmp.path().join("dest"))
        .unwrap_err();
    assert!(matches!(err, ImageError::DiffIdMismatch { .. }), "{err}");
}
