use std::fs;
use std::io::{Read, Write};

use wharf_image::{Digest, ImageError, ImageStore};

use crate::fixture::*;

#[test]
fn open_creates_a_layout_and_reopens_it() {
    let tmp = tempdir();
    let root = tmp.path().join("images");
    ImageStore::open(&root).unwrap();
    assert_eq!(
        fs::read_to_string(root.join("oci-layout")).unwrap(),
        r#"{"imageLayoutVersion":"1.0.0"}"#
    );
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(root.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(index["manifests"], serde_json::json!([]));
    assert!(root.join("blobs/sha256").is_dir());
    let store = ImageStore::open(&root).unwrap();
    assert_eq!(store.root(), root);
}

#[test]
fn open_refuses_a_foreign_layout_version_and_a_non_layout() {
    let tmp = tempdir();
    let root = tmp.path().join("images");
    fs::create_dir(&root).unwrap();
    fs::write(root.join("oci-layout"), r#"{"imageLayoutVersion":"2.0.0"}"#).unwrap();
    let err = ImageStore::open(&root).unwrap_err();
    assert!(matches!(err, ImageError::ForeignLayout { .. }), "{err}");
    assert!(err.to_string().contains("2.0.0"), "{err}");

    let other = tmp.path().join("home");
    write_tree(&other, &[("notes.txt", file("mine"))]);
    let err = ImageStore::open(&other).unwrap_err();
    assert!(matches!(err, ImageError::NotALayout { .. }), "{err}");
    assert_eq!(names_in(&other), ["notes.txt"]);
}

#[test]
fn blobs_round_trip_by_digest() {
    let tmp = tempdir();
    let store = store_in(tmp.path());
    let digest = store.put_blob(b"hello").unwrap();
    assert_eq!(digest, Digest::of(b"hello"));
    assert!(store.has_blob(&digest));
    assert_eq!(store.read_blob(&digest).unwrap(), b"hello");
    let mut streamed = Vec::new();
    store
        .open_blob(&digest)
        .unwrap()
        .read_to_end(&mut streamed)
        .unwrap();
    assert_eq!(streamed, b"hello");
    assert_eq!(
        fs::read(tmp.path().join("images/blobs/sha256").join(digest.hex())).unwrap(),
        b"hello"
    );

    let absent = Digest::of(b"absent");
    assert!(!store.has_blob(&absent));
    let err = store.read_blob(&absent).unwrap_err();
    assert!(matches!(err, ImageError::BlobMissing { .. }), "{err}");
    assert!(err.to_string().contains(absent.as_str()), "{err}");
}

#[test]
fn a_blob_writer_streams_and_is_idempotent() {
    let tmp = tempdir();
    let store = store_in(tmp.path());
    let mut writer = store.blob_writer().unwrap();
    for _ in 0..1000 {
        writer.write_all(b"0123456789").unwrap();
    }
    let (digest, size) = writer.finish().unwrap();
    assert_eq!(size, 10_000);
    assert_eq!(digest, Digest::of("0123456789".repeat(1000).as_bytes()));
    let (again, _) = {
        let mut w = store.blob_writer().unwrap();
        w.write_all("0123456789".repeat(1000).as_bytes()).unwrap();
        w.finish().unwrap()
    };
    assert_eq!(again, digest);
    // A dropped, unfinished writer leaves nothing behind.
    let mut dropped = store.blob_writer().unwrap();
    dropped.write_all(b"partial").unwrap();
    drop(dropped);
    let report = store.fsck().unwrap();
    assert!(report.stray_temp_files.is_empty(), "{report:?}");
    assert_eq!(report.checked, 1);
}

#[test]
fn a_corrupted_blob_is_refused_on_read_and_listed_by_fsck() {
    let tmp = tempdir();
    let store = store_in(tmp.path());
    let good = store.put_blob(b"good").unwrap();
    let bad = store.put_blob(b"original content").unwrap();
    fs::write(store.blob_path(&bad), b"tampered content").unwrap();

    let err = store.read_blob(&bad).unwrap_err();
    let ImageError::Corrupt { digest, actual } = &err else {
        panic!("expected Corrupt, got {err}");
    };
    assert_eq!(digest, &bad);
    assert_eq!(actual, &Digest::of(b"tampered content"));
    assert!(err.to_string().contains(bad.as_str()), "{err}");

    let mut out = Vec::new();
    let read_err = store
        .open_blob(&bad)
        .unwrap()
        .read_to_end(&mut out)
        .unwrap_err();
    assert_eq!(read_err.kind(), std::io::ErrorKind::InvalidData);
    assert!(read_err.to_string().contains("corrupt"), "{read_err}");

    let report = store.fsck().unwrap();
    assert_eq!(report.checked, 2);
    assert_eq!(report.bytes, 4 + 16);
    assert_eq!(
        report.corrupt,
        [(bad.clone(), Digest::of(b"tampered content").to_string())]
    );
    assert!(!report.is_healthy());
    assert!(store.read_blob(&good).is_ok());

    // Writing the blob again repairs it.
    store.put_blob(b"original content").unwrap();
    assert!(store.fsck().unwrap().is_healthy());
}

#[test]
fn fsck_reports_leftover_temp_files() {
    let tmp = tempdir();
    let store = store_in(tmp.path());
    let mut writer = store.blob_writer().unwrap();
    writer.write_all(b"interrupted").unwrap();
    std::mem::forget(writer); // as if the process died mid-write
    let report = store.fsck().unwrap();
    assert_eq!(report.stray_temp_files.len(), 1, "{report:?}");
    assert!(report.stray_temp_files[0].starts_with(tmp.path().join("images/blobs")));
    assert_eq!(report.checked, 0);
    assert!(report.is_healthy());
}

#[test]
fn fsck_reports_missing_blobs_of_tagged_images() {
    let tmp = tempdir();
    let src = tmp.path().join("src");
    write_tree(&src, &sample_app());
    let store = store_in(tmp.path());
    let built = store.build_image(&app_spec(&src)).unwrap();
    store.tag("web", &built.manifest).unwrap();
    assert!(store.fsck().unwrap().is_healthy());

    fs::remove_file(store.blob_path(&built.layers[1].digest)).unwrap();
    let report = store.fsck().unwrap();
    assert_eq!(report.missing, [built.layers[1].digest.clone()]);
    assert_eq!(report.checked, 3);
}

#[test]
fn tags_round_trip_and_survive_reopening() {
    let tmp = tempdir();
    let src = tmp.path().join("src");
    write_tree(&src, &sample_app());
    let store = store_in(tmp.path());
    let v1 = store.build_image(&app_spec(&src)).unwrap().manifest;
    fs::write(src.join("app.py"), "print(2)").unwrap();
    let v2 = store.build_image(&app_spec(&src)).unwrap().manifest;

    store.tag("myapp:v1", &v1).unwrap();
    store.tag("myapp:current", &v1).unwrap();
    store.tag("myapp:current", &v2).unwrap();
    assert_eq!(
        store.tags().unwrap(),
        [
            ("myapp:current".to_owned(), v2.clone()),
            ("myapp:v1".to_owned(), v1.clone())
        ]
    );

    let reopened = ImageStore::open(store.root()).unwrap();
    assert_eq!(reopened.tags().unwrap(), store.tags().unwrap());
    assert_eq!(reopened.resolve("myapp:v1").unwrap(), v1);

    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(store.root().join("index.json")).unwrap()).unwrap();
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(
        entries[0]["annotations"]["org.opencontainers.image.ref.name"],
        "myapp:current"
    );
    assert_eq!(
        entries[0]["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        entries[0]["size"],
        fs::metadata(store.blob_path(&v2)).unwrap().len()
    );

    reopened.untag("myapp:current").unwrap();
    assert_eq!(store.tags().unwrap(), [("myapp:v1".to_owned(), v1)]);
    let err = store.untag("myapp:current").unwrap_err();
    assert!(matches!(err, ImageError::TagNotFound { .. }), "{err}");
}

#[test]
fn tagging_refuses_bad_names_and_unknown_manifests() {
    let tmp = tempdir();
    let store = store_in(tmp.path());
    let blob = store.put_blob(b"{}").unwrap();
    let err = store.tag("bad name", &blob).unwrap_err();
    assert!(err.to_string().contains("invalid tag `bad name`"), "{err}");
    let err = store.tag("ok", &Digest::of(b"nothing")).unwrap_err();
    assert!(matches!(err, ImageError::BlobMissing { .. }), "{err}");
    assert!(store.tags().unwrap().is_empty());
}

#[test]
fn concurrent_tags_are_not_lost() {
    let tmp = tempdir();
    let store = store_in(tmp.path());
    let manifest = store.put_blob(b"{}").unwrap();
    std::thread::scope(|s| {
        for t in 0..8 {
            let store = store.clone();
            let manifest = manifest.clone();
            s.spawn(move || {
                for i in 0..10 {
                    store.tag(&format!("t{t}-{i}"), &manifest).unwrap();
                }
            });
        }
    });
    assert_eq!(store.tags().unwrap().len(), 80);
    assert!(store.fsck().unwrap().stray_temp_files.is_empty());
}

#[test]
fn collect_keeps_what_kept_images_reference_and_frees_the_rest() {
    let tmp = tempdir();
    let store = store_in(tmp.path());
    let src = tmp.path().join("src");
    write_tree(&src, &sample_app());
    let first = store.build_image(&app_spec(&src)).unwrap();
    store.tag("build-1", &first.manifest).unwrap();
    // A code change: the dependency layer is shared, the code layer is not.
    write_tree(&src, &[("app.py", file("print('v2')\n"))]);
    let second = store.build_image(&app_spec(&src)).unwrap();
    store.tag("build-2", &second.manifest).unwrap();
    assert_eq!(first.layers[0].digest, second.layers[0].digest);
    assert_ne!(first.layers[1].digest, second.layers[1].digest);
    // What an interrupted write left long ago, and one in progress now.
    let blobs = store.root().join("blobs");
    fs::write(blobs.join(".wharf-tmp-old"), b"partial").unwrap();
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(2 * 60 * 60);
    fs::File::options()
        .write(true)
        .open(blobs.join(".wharf-tmp-old"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    fs::write(blobs.join(".wharf-tmp-new"), b"writing").unwrap();

    let report = store
        .collect(&std::collections::BTreeSet::from([second.manifest.clone()]))
        .unwrap();
    // The first image's manifest, config and code layer go; the shared layer stays.
    assert_eq!(report.removed_blobs, 3, "{report:?}");
    assert_eq!(report.removed_temp_files, 1, "{report:?}");
    assert_eq!(report.untagged, ["build-1"]);
    assert_eq!(report.kept_blobs, 4);
    assert!(!store.has_blob(&first.manifest));
    assert!(!store.has_blob(&first.layers[1].digest));
    assert!(store.has_blob(&first.layers[0].digest));
    assert!(blobs.join(".wharf-tmp-new").exists());
    // The kept image is whole: it extracts, and fsck finds nothing wrong.
    store
        .extract(&second.manifest, &tmp.path().join("out"))
        .unwrap();
    let fsck = store.fsck().unwrap();
    assert!(fsck.is_healthy(), "{fsck:?}");
    assert_eq!(store.tags().unwrap().len(), 1);
    // Collecting again frees nothing more.
    let again = store
        .collect(&std::collections::BTreeSet::from([second.manifest.clone()]))
        .unwrap();
    assert_eq!((again.removed_blobs, again.bytes), (0, 0));
}

/// A layer remembered by what it was made from is found again while its blob is there, and
/// forgotten once garbage collection removed the blob (so it is packed anew).
#[test]
fn a_remembered_layer_lasts_as_long_as_its_blob() {
    let tmp = tempdir();
    let store = ImageStore::open(&tmp.path().join("images")).unwrap();
    let tree = tmp.path().join("runtime");
    write_tree(&tree, &[("bin/node", file("#!/bin/sh\necho node\n"))]);
    let built = store
        .build_image(&wharf_image::ImageSpec {
            layers: vec![wharf_image::LayerSpec {
                root: tree,
                prefix: "app/.wharf".to_owned(),
                select: wharf_image::Select::All,
            }],
            working_dir: "/app".to_owned(),
            ..Default::default()
        })
        .unwrap();
    let layer = built.layers[0].clone();
    assert!(store.remembered_layer("node 1.2.3").is_none());
    store.remember_layer("node 1.2.3", &layer).unwrap();
    let found = store.remembered_layer("node 1.2.3").unwrap();
    assert_eq!(
        (&found.digest, &found.diff_id, found.size, found.reused),
        (&layer.digest, &layer.diff_id, layer.size, true)
    );
    assert!(store.remembered_layer("node 1.2.4").is_none());

    // Nothing keeps the image: collected, its layer is gone, and so is the memory of it.
    store.collect(&Default::default()).unwrap();
    assert!(!store.has_blob(&layer.digest));
    assert!(store.remembered_layer("node 1.2.3").is_none());
}
