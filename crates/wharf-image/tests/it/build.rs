use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime};

use wharf_image::{ImageError, ImageSpec, LayerSpec, Select};

use crate::fixture::*;

#[test]
fn the_same_tree_built_twice_gives_the_same_digests() {
    let tmp = tempdir();
    write_tree(&tmp.path().join("src"), &sample_app());
    let store = store_in(tmp.path());
    let first = store
        .build_image(&app_spec(&tmp.path().join("src")))
        .unwrap();
    let second = store
        .build_image(&app_spec(&tmp.path().join("src")))
        .unwrap();
    assert_eq!(first.manifest, second.manifest);
    assert_eq!(first.config, second.config);
    assert_eq!(first.layers.len(), 2);
    assert!(first.layers.iter().all(|l| !l.reused));
    assert!(second.layers.iter().all(|l| l.reused));
    assert_eq!(first.size, second.size);
}

#[test]
fn the_same_tree_in_different_places_with_different_metadata_gives_the_same_digest() {
    let a = tempdir();
    let b = tempdir();
    let tree = sample_app();
    write_tree(&a.path().join("src"), &tree);
    // Same tree, created in reverse order, with other owners, mtimes and non-x permissions.
    let mut reversed = tree.clone();
    reversed.reverse();
    let src_b = b.path().join("somewhere/else/src");
    write_tree(&src_b, &reversed);
    for entry in walkdir::WalkDir::new(&src_b).min_depth(1) {
        let entry = entry.unwrap();
        let meta = fs::symlink_metadata(entry.path()).unwrap();
        if meta.file_type().is_symlink() {
            continue;
        }
        let exec = meta.permissions().mode() & 0o111 != 0;
        let mode = match (meta.is_dir(), exec) {
            (true, _) => 0o700,
            (false, true) => 0o711,
            (false, false) => 0o600,
        };
        fs::set_permissions(entry.path(), fs::Permissions::from_mode(mode)).unwrap();
        if meta.is_file() {
            let file = fs::File::options().write(true).open(entry.path()).unwrap();
            file.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(1_234_567))
                .unwrap();
        }
        // Changing owners needs root; without it the other differences still apply.
        let _ = std::os::unix::fs::lchown(entry.path(), Some(4321), Some(4321));
    }

    let built_a = store_in(a.path())
        .build_image(&app_spec(&a.path().join("src")))
        .unwrap();
    let built_b = store_in(b.path()).build_image(&app_spec(&src_b)).unwrap();
    assert_eq!(built_a.manifest, built_b.manifest);
    assert_eq!(built_a.layers, built_b.layers);
}

#[test]
fn a_code_only_change_reuses_the_dependency_layer() {
    let tmp = tempdir();
    let src = tmp.path().join("src");
    write_tree(&src, &sample_app());
    let store = store_in(tmp.path());
    let before = store.build_image(&app_spec(&src)).unwrap();
    fs::write(src.join("app.py"), "print('hello, world')\n").unwrap();
    let after = store.build_image(&app_spec(&src)).unwrap();

    assert_eq!(before.layers[0].digest, after.layers[0].digest);
    assert!(after.layers[0].reused, "dependency layer should be reused");
    assert_ne!(before.layers[1].digest, after.layers[1].digest);
    assert!(!after.layers[1].reused);
    assert_ne!(before.manifest, after.manifest);
}

#[test]
fn layers_hold_only_their_selection_with_normalised_headers() {
    let tmp = tempdir();
    let src = tmp.path().join("src");
    write_tree(&src, &sample_app());
    let store = store_in(tmp.path());
    let built = store.build_image(&app_spec(&src)).unwrap();

    let deps = layer_entries(&store.read_blob(&built.layers[0].digest).unwrap());
    let names: Vec<&str> = deps.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "app/",
            "app/.venv/",
            "app/.venv/bin/",
            "app/.venv/bin/python",
            "app/.venv/lib/",
            "app/.venv/lib/site.py"
        ]
    );

    let code = layer_entries(&store.read_blob(&built.layers[1].digest).unwrap());
    let names: Vec<&str> = code.iter().map(|e| e.0.as_str()).collect();
    assert!(!names.iter().any(|n| n.contains(".venv")), "{names:?}");
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "entries are sorted by name");
    assert!(names.contains(&"app/static/empty/"));
    assert!(
        names.iter().any(|n| n.len() > 100),
        "long names survive: {names:?}"
    );

    for (name, mode, uid, gid, mtime, kind) in deps.iter().chain(&code) {
        assert_eq!((*uid, *gid, *mtime), (0, 0, 0), "{name}");
        let expected = match (*kind, name.as_str()) {
            (tar::EntryType::Directory, _) => 0o755,
            (tar::EntryType::Symlink, _) => 0o777,
            (_, "app/bin/start") => 0o755,
            _ => 0o644,
        };
        assert_eq!(*mode, expected, "{name}");
    }
}

#[test]
fn the_config_carries_the_spec_and_no_timestamps() {
    let tmp = tempdir();
    let src = tmp.path().join("src");
    write_tree(&src, &sample_app());
    let store = store_in(tmp.path());
    let spec = app_spec(&src);
    let built = store.build_image(&spec).unwrap();

    let image = store.image(&built.manifest).unwrap();
    assert_eq!(image.labels(), spec.labels);
    assert_eq!(image.env(), spec.env);
    assert_eq!(image.working_dir().as_deref(), Some("/app"));
    assert_eq!(image.cmd(), spec.cmd);
    assert_eq!(image.manifest.layers().len(), 2);

    let config: serde_json::Value =
        serde_json::from_slice(&store.read_blob(&built.config).unwrap()).unwrap();
    assert!(config.get("created").is_none());
    assert!(config.get("history").is_none());
    let expected_arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    assert_eq!(config["architecture"], expected_arch);
    assert_eq!(config["os"], "linux");
    assert_eq!(
        config["config"]["Env"],
        serde_json::json!(["PATH=/app/.venv/bin:/usr/bin:/bin", "PYTHONUNBUFFERED=1"])
    );
    assert_eq!(
        config["rootfs"]["diff_ids"][0],
        built.layers[0].diff_id.to_string()
    );
}

#[test]
fn sockets_are_left_out_of_layers() {
    let tmp = tempdir();
    let src = tmp.path().join("src");
    write_tree(&src, &[("app.py", file("x"))]);
    let _listener = std::os::unix::net::UnixListener::bind(src.join("app.sock")).unwrap();
    let store = store_in(tmp.path());
    let spec = ImageSpec {
        layers: vec![LayerSpec {
            root: src.clone(),
            prefix: String::new(),
            select: Select::All,
        }],
        ..ImageSpec::default()
    };
    let built = store.build_image(&spec).unwrap();
    let entries = layer_entries(&store.read_blob(&built.layers[0].digest).unwrap());
    let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(names, ["app.py"]);
}

#[test]
fn bad_layer_specs_are_refused_with_the_input_named() {
    let tmp = tempdir();
    let src = tmp.path().join("src");
    write_tree(&src, &[("app.py", file("x"))]);
    let store = store_in(tmp.path());
    let layer = |prefix: &str, select: Select| ImageSpec {
        layers: vec![LayerSpec {
            root: src.clone(),
            prefix: prefix.into(),
            select,
        }],
        ..ImageSpec::default()
    };
    for (spec, needle) in [
        (layer("../app", Select::All), "prefix `../app`"),
        (layer("/app", Select::All), "prefix `/app`"),
        (
            layer("app", Select::Only(vec![path("../x")])),
            "selected path `../x`",
        ),
        (
            layer("app", Select::AllExcept(vec![path("/etc")])),
            "selected path `/etc`",
        ),
    ] {
        let err = store.build_image(&spec).unwrap_err();
        assert!(matches!(err, ImageError::InvalidLayerSpec { .. }), "{err}");
        assert!(err.to_string().contains(needle), "{err}");
    }

    let missing = ImageSpec {
        layers: vec![LayerSpec {
            root: tmp.path().join("nope"),
            prefix: "app".into(),
            select: Select::All,
        }],
        ..ImageSpec::default()
    };
    let err = store.build_image(&missing).unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");

    fs::write(src.join(".wh.secret"), "x").unwrap();
    let err = store.build_image(&layer("app", Select::All)).unwrap_err();
    assert!(err.to_string().contains(".wh.secret"), "{err}");
    assert!(err.to_string().contains("whiteouts"), "{err}");
}

#[test]
fn a_layer_spec_can_select_nested_paths() {
    let tmp = tempdir();
    let src = tmp.path().join("src");
    write_tree(
        &src,
        &[
            ("node_modules/a/index.js", file("a")),
            ("node_modules/b/index.js", file("b")),
            ("index.js", file("main")),
        ],
    );
    let store = store_in(tmp.path());
    let spec = ImageSpec {
        layers: vec![LayerSpec {
            root: src,
            prefix: "srv/app".into(),
            select: Select::Only(vec![path("node_modules/a")]),
        }],
        ..ImageSpec::default()
    };
    let built = store.build_image(&spec).unwrap();
    let entries = layer_entries(&store.read_blob(&built.layers[0].digest).unwrap());
    let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "srv/",
            "srv/app/",
            "srv/app/node_modules/",
            "srv/app/node_modules/a/",
            "srv/app/node_modules/a/index.js"
        ]
    );
}

/// A root filesystem's tar, as mmdebstrap writes one: owners other than root, set-uid and
/// sticky modes, a hard link and a device node, which app layers never hold.
fn rootfs_tar() -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut entry = |path: &str, kind: tar::EntryType, mode: u32, uid: u64, data: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_uid(uid);
        header.set_gid(uid);
        header.set_mtime(1_796_441_610);
        header.set_size(data.len() as u64);
        if kind == tar::EntryType::Link {
            header.set_link_name("usr/bin/su").unwrap();
        }
        tar.append_data(&mut header, path, data).unwrap();
    };
    entry("tmp/", tar::EntryType::Directory, 0o1777, 0, b"");
    entry(
        "usr/bin/su",
        tar::EntryType::Regular,
        0o4755,
        0,
        b"#!/bin/sh\n",
    );
    entry("usr/bin/su2", tar::EntryType::Link, 0o4755, 0, b"");
    entry(
        "var/cache/apt/partial/",
        tar::EntryType::Directory,
        0o700,
        42,
        b"",
    );
    entry("dev/null", tar::EntryType::Char, 0o666, 0, b"");
    tar.into_inner().unwrap()
}

#[test]
fn a_root_filesystem_tar_is_kept_byte_for_byte_below_the_app_layers() {
    let tmp = tempdir();
    let store = store_in(tmp.path());
    let tar = rootfs_tar();
    let base = store.import_tar_layer(&tar[..]).unwrap();
    assert!(!base.reused);
    // The same tar gives the same blob.
    let again = store.import_tar_layer(&tar[..]).unwrap();
    assert_eq!(
        (&again.digest, &again.diff_id),
        (&base.digest, &base.diff_id)
    );
    assert!(again.reused);
    assert_eq!(base.diff_id, wharf_image::Digest::of(&tar));
    let mut unpacked = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(&store.read_blob(&base.digest).unwrap()[..]),
        &mut unpacked,
    )
    .unwrap();
    assert!(unpacked == tar, "the layer is the tar as it was");

    // An image on it: the base first, then the app's layers.
    write_tree(&tmp.path().join("src"), &sample_app());
    let spec = ImageSpec {
        base: vec![base.clone()],
        ..app_spec(&tmp.path().join("src"))
    };
    let built = store.build_image(&spec).unwrap();
    assert_eq!(built.layers.len(), 3);
    assert_eq!(built.layers[0].digest, base.digest);
    let image = store.image(&built.manifest).unwrap();
    let layers = image.layers();
    assert_eq!(layers.len(), 3);
    assert_eq!(
        (&layers[0].digest, &layers[0].diff_id, layers[0].size),
        (&base.digest, &base.diff_id, base.size)
    );
    assert!(store.fsck().unwrap().is_healthy());

    // A base layer that is not in the store is refused.
    let missing = ImageSpec {
        base: vec![wharf_image::LayerInfo {
            digest: wharf_image::Digest::of(b"nothing"),
            ..base
        }],
        ..app_spec(&tmp.path().join("src"))
    };
    assert!(matches!(
        store.build_image(&missing),
        Err(ImageError::BlobMissing { .. })
    ));
}
