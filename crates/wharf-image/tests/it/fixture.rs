//! Shared test helpers: writing and snapshotting trees, crafting raw tar archives.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use wharf_image::{Digest, ImageSpec, ImageStore, LayerSpec, Select};

/// One entry of a tree on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Dir,
    File(Vec<u8>, bool),
    Link(String),
}

pub fn file(content: &str) -> Node {
    Node::File(content.as_bytes().to_vec(), false)
}

pub fn exe(content: &str) -> Node {
    Node::File(content.as_bytes().to_vec(), true)
}

pub fn link(target: &str) -> Node {
    Node::Link(target.to_owned())
}

/// Writes `entries` (paths relative to `root`) in the given order.
pub fn write_tree(root: &Path, entries: &[(&str, Node)]) {
    fs::create_dir_all(root).unwrap();
    for (path, node) in entries {
        let path = root.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        match node {
            Node::Dir => fs::create_dir_all(&path).unwrap(),
            Node::File(content, exec) => {
                fs::write(&path, content).unwrap();
                let mode = if *exec { 0o755 } else { 0o644 };
                fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            }
            Node::Link(target) => std::os::unix::fs::symlink(target, &path).unwrap(),
        }
    }
}

/// Everything under `root`, by relative path: content, x bit, symlink targets.
pub fn snapshot(root: &Path) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    for entry in walkdir::WalkDir::new(root).min_depth(1) {
        let entry = entry.unwrap();
        let rel = entry
            .path()
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let meta = fs::symlink_metadata(entry.path()).unwrap();
        let node = if meta.file_type().is_symlink() {
            Node::Link(
                fs::read_link(entry.path())
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
            )
        } else if meta.is_dir() {
            Node::Dir
        } else {
            Node::File(
                fs::read(entry.path()).unwrap(),
                meta.permissions().mode() & 0o111 != 0,
            )
        };
        out.insert(rel, node);
    }
    out
}

/// A small app: a dependency dir, code, an executable, a symlink, an empty dir, a long name.
pub fn sample_app() -> Vec<(&'static str, Node)> {
    vec![
        ("Procfile", file("web: python app.py\n")),
        ("app.py", file("print('hello')\n")),
        ("bin/start", exe("#!/bin/sh\nexec python app.py\n")),
        (".venv/bin/python", link("/usr/bin/python3")),
        (".venv/lib/site.py", file("# deps\n")),
        ("static/empty", Node::Dir),
        ("current", link("bin/start")),
        (
            "a-directory-with-a-rather-long-name/and-another-long-directory-name/and-a-file-name-that-pushes-it-past-100-bytes.txt",
            file("long\n"),
        ),
    ]
}

/// The split a Python build uses: dependencies in one layer, code in another.
pub fn app_spec(root: &Path) -> ImageSpec {
    ImageSpec {
        base: Vec::new(),
        layers: vec![
            LayerSpec {
                root: root.to_path_buf(),
                prefix: "app".into(),
                select: Select::Only(vec![".venv".into()]),
            },
            LayerSpec {
                root: root.to_path_buf(),
                prefix: "app".into(),
                select: Select::AllExcept(vec![".venv".into()]),
            },
        ],
        working_dir: "/app".into(),
        env: BTreeMap::from([
            ("PATH".into(), "/app/.venv/bin:/usr/bin:/bin".into()),
            ("PYTHONUNBUFFERED".into(), "1".into()),
        ]),
        labels: BTreeMap::from([("dev.wharf.process-types".into(), "web".into())]),
        cmd: Some(vec!["python".into(), "app.py".into()]),
        entrypoint: None,
        user: None,
    }
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

pub fn store_in(dir: &Path) -> ImageStore {
    ImageStore::open(&dir.join("images")).unwrap()
}

/// Appends an entry with raw header fields, bypassing the tar crate's path checks.
pub fn raw_entry(
    tar: &mut tar::Builder<Vec<u8>>,
    name: &[u8],
    kind: tar::EntryType,
    link: &[u8],
    data: &[u8],
) {
    let mut header = tar::Header::new_gnu();
    header.as_old_mut().name[..name.len()].copy_from_slice(name);
    header.as_old_mut().linkname[..link.len()].copy_from_slice(link);
    header.set_mode(if kind == tar::EntryType::Directory {
        0o755
    } else {
        0o644
    });
    header.set_size(data.len() as u64);
    header.set_entry_type(kind);
    header.set_cksum();
    tar.append(&header, data).unwrap();
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

pub fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// A raw tar entry: name, type, link target, data.
pub type Raw<'a> = (&'a [u8], tar::EntryType, &'a [u8], &'a [u8]);

/// A tar.gz with the given raw entries.
pub fn raw_targz(entries: &[Raw]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for (name, kind, link, data) in entries {
        raw_entry(&mut tar, name, *kind, link, data);
    }
    gzip(&tar.into_inner().unwrap())
}

/// Stores an image made of the given tar.gz layers, as another tool might have written it.
pub fn image_from_layers(store: &ImageStore, layers: &[Vec<u8>]) -> Digest {
    let mut descriptors = Vec::new();
    let mut diff_ids = Vec::new();
    for layer in layers {
        let digest = store.put_blob(layer).unwrap();
        diff_ids.push(Digest::of(&gunzip(layer)).to_string());
        descriptors.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": digest.to_string(),
            "size": layer.len(),
        }));
    }
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let config_digest = store.put_blob(&config).unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest.to_string(),
            "size": config.len(),
        },
        "layers": descriptors,
    }))
    .unwrap();
    store.put_blob(&manifest).unwrap()
}

/// Names in `dir`, sorted (to show that nothing was written next to a destination).
pub fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

pub fn is_empty_dir(dir: &Path) -> bool {
    fs::read_dir(dir).unwrap().next().is_none()
}

/// Entries of a (gzipped) layer blob: (name, mode, uid, gid, mtime, type).
pub fn layer_entries(blob: &[u8]) -> Vec<(String, u32, u64, u64, u64, tar::EntryType)> {
    let tar = gunzip(blob);
    let mut archive = tar::Archive::new(&tar[..]);
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let h = e.header();
            (
                String::from_utf8(e.path_bytes().into_owned()).unwrap(),
                h.mode().unwrap(),
                h.uid().unwrap(),
                h.gid().unwrap(),
                h.mtime().unwrap(),
                h.entry_type(),
            )
        })
        .collect()
}

pub fn path(p: &str) -> PathBuf {
    PathBuf::from(p)
}
