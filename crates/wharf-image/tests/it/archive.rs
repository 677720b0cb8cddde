use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tar::EntryType as T;
use wharf_image::archive::{self, ArchiveError, Limits};

use crate::fixture::*;

/// The sample app without its absolute symlink (fine in an image, refused in an upload).
fn sample_source() -> Vec<(&'static str, Node)> {
    let mut tree = sample_app();
    tree.retain(|(p, _)| *p != ".venv/bin/python");
    tree.push((".venv/bin/python3", link("../lib/site.py")));
    tree
}

fn pack(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    archive::pack_dir(dir, &mut out).unwrap();
    out
}

fn archive_names(targz: &[u8]) -> Vec<String> {
    layer_entries(targz).into_iter().map(|e| e.0).collect()
}

#[test]
fn pack_dir_is_deterministic() {
    let a = tempdir();
    let b = tempdir();
    let tree = sample_source();
    write_tree(a.path(), &tree);
    let mut reversed = tree.clone();
    reversed.reverse();
    write_tree(b.path(), &reversed);
    let f = fs::File::options()
        .write(true)
        .open(b.path().join("app.py"))
        .unwrap();
    f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(99))
        .unwrap();
    assert_eq!(pack(a.path()), pack(b.path()));
}

#[test]
fn pack_dir_honours_gitignore_and_slugignore_and_skips_git() {
    let tmp = tempdir();
    let dir = tmp.path();
    write_tree(
        dir,
        &[
            (".git/HEAD", file("ref: refs/heads/main\n")),
            (".git/config", file("[core]\n")),
            (".gitignore", file("*.log\n/build/\n!keep.log\n")),
            (".slugignore", file("docs\n*.psd\n")),
            ("app.py", file("x")),
            ("debug.log", file("noise")),
            ("keep.log", file("kept")),
            ("build/out.o", file("obj")),
            ("src/build/kept.txt", file("not the root build dir")),
            ("src/.gitignore", file("generated/\n")),
            ("src/generated/x.py", file("gen")),
            ("src/main.py", file("main")),
            ("docs/index.md", file("docs")),
            ("art/logo.psd", file("big")),
            ("art/logo.png", file("small")),
        ],
    );
    let names = archive_names(&pack(dir));
    assert_eq!(
        names,
        [
            ".gitignore",
            ".slugignore",
            "app.py",
            "art/",
            "art/logo.png",
            "keep.log",
            "src/",
            "src/.gitignore",
            "src/build/",
            "src/build/kept.txt",
            "src/main.py",
        ]
    );
}

#[test]
fn pack_check_unpack_round_trips_a_tree() {
    let tmp = tempdir();
    let src = tmp.path().join("src");
    write_tree(&src, &sample_source());
    let archive_path = tmp.path().join("upload.tar.gz");
    let mut out = fs::File::create(&archive_path).unwrap();
    let packed = archive::pack_dir(&src, &mut out).unwrap();
    drop(out);
    assert_eq!(packed.entries, snapshot(&src).len() as u64);

    let checked = archive::check(&archive_path, &Limits::default()).unwrap();
    assert_eq!(checked.entries, packed.entries);
    assert_eq!(checked.bytes, packed.bytes);

    let dest = tmp.path().join("dest");
    let unpacked = archive::unpack(&archive_path, &dest, &Limits::default()).unwrap();
    assert_eq!(unpacked.entries, snapshot(&src).len() as u64);
    assert_eq!(snapshot(&dest), snapshot(&src));
}

#[test]
fn pack_dir_refuses_symlinks_that_leave_the_tree() {
    for target in ["/etc/passwd", "../../outside"] {
        let tmp = tempdir();
        write_tree(
            tmp.path(),
            &[("app.py", file("x")), ("sub/link", link(target))],
        );
        let err = archive::pack_dir(tmp.path(), Vec::new()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("entry `sub/link`: symlink target"),
            "{err}"
        );
    }
}

#[test]
fn pack_dir_of_an_empty_dir_is_an_error() {
    let tmp = tempdir();
    let err = archive::pack_dir(tmp.path(), Vec::new()).unwrap_err();
    assert!(matches!(err, ArchiveError::Empty), "{err}");
}

struct Upload {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    archive: PathBuf,
}

fn upload(bytes: &[u8]) -> Upload {
    let tmp = tempdir();
    let dir = tmp.path().to_path_buf();
    let archive = dir.join("upload.tar.gz");
    fs::write(&archive, bytes).unwrap();
    Upload {
        _tmp: tmp,
        dir,
        archive,
    }
}

/// Both `check` and `unpack` refuse the archive with exactly `message`; `unpack` leaves the
/// destination empty and writes nothing next to it.
fn assert_refused_with(bytes: &[u8], limits: &Limits, message: &str) {
    let up = upload(bytes);
    let err = archive::check(&up.archive, limits).unwrap_err();
    assert_eq!(err.to_string(), message);
    assert!(err.is_refusal());
    let dest = up.dir.join("dest");
    let err = archive::unpack(&up.archive, &dest, limits).unwrap_err();
    assert_eq!(err.to_string(), message);
    assert!(is_empty_dir(&dest), "dest left empty after: {message}");
    assert_eq!(names_in(&up.dir), ["dest", "upload.tar.gz"]);
}

fn assert_refused(entries: &[Raw], message: &str) {
    assert_refused_with(&raw_targz(entries), &Limits::default(), message);
}

#[test]
fn non_gzip_input_is_refused() {
    let mut tar = tar::Builder::new(Vec::new());
    raw_entry(&mut tar, b"a", T::Regular, b"", b"a");
    let plain_tar = tar.into_inner().unwrap();
    for bytes in [plain_tar, b"PK\x03\x04 a zip".to_vec(), Vec::new()] {
        assert_refused_with(
            &bytes,
            &Limits::default(),
            "the upload is not a gzip-compressed tar archive",
        );
    }
}

#[test]
fn a_truncated_or_garbage_archive_is_refused() {
    let good = raw_targz(&[(b"a", T::Regular, b"", &[7u8; 5000])]);
    let up = upload(&good[..good.len() / 2]);
    let err = archive::check(&up.archive, &Limits::default()).unwrap_err();
    assert!(matches!(err, ArchiveError::Malformed { .. }), "{err}");
    let up = upload(&gzip(b"this is not a tar archive, just gzipped text ........................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................."));
    let err = archive::check(&up.archive, &Limits::default()).unwrap_err();
    assert!(matches!(err, ArchiveError::Malformed { .. }), "{err}");
}

#[test]
fn an_empty_archive_is_refused() {
    assert_refused(&[], "the archive has no entries");
}

#[test]
fn absolute_paths_are_refused() {
    assert_refused(
        &[(b"/etc/passwd", T::Regular, b"", b"x")],
        "entry `/etc/passwd`: absolute paths are not allowed",
    );
}

#[test]
fn parent_components_are_refused() {
    assert_refused(
        &[(b"../etc/passwd", T::Regular, b"", b"x")],
        "entry `../etc/passwd`: path leaves the archive root (`..`)",
    );
    assert_refused(
        &[
            (b"a/", T::Directory, b"", b""),
            (b"a/../../x", T::Regular, b"", b"x"),
        ],
        "entry `a/../../x`: path leaves the archive root (`..`)",
    );
}

#[test]
fn symlinks_leaving_the_tree_are_refused() {
    assert_refused(
        &[(b"link", T::Symlink, b"/etc", b"")],
        "entry `link`: symlink target `/etc` is absolute",
    );
    assert_refused(
        &[(b"a/link", T::Symlink, b"../../etc", b"")],
        "entry `a/link`: symlink target `../../etc` leaves the archive root",
    );
    // Each target looks harmless, but `b` resolves through `a` (= the root) to `../x`.
    assert_refused(
        &[
            (b"a", T::Symlink, b".", b""),
            (b"b", T::Symlink, b"a/../x", b""),
        ],
        "entry `b`: symlink target `a/../x` leaves the archive root",
    );
    // The same with the helper symlink defined after the one that uses it.
    assert_refused(
        &[
            (b"d/b", T::Symlink, b"a/../../x", b""),
            (b"d/a", T::Symlink, b".", b""),
        ],
        "entry `d/b`: symlink target `a/../../x` leaves the archive root",
    );
    assert_refused(
        &[
            (b"a", T::Symlink, b"b", b""),
            (b"b", T::Symlink, b"a", b""),
            (b"c", T::Symlink, b"a/x", b""),
        ],
        "entry `a`: symlink target `b` goes through too many symlinks",
    );
}

#[test]
fn writing_below_a_symlink_is_refused() {
    assert_refused(
        &[
            (b"dir/", T::Directory, b"", b""),
            (b"link", T::Symlink, b"dir", b""),
            (b"link/passwd", T::Regular, b"", b"x"),
        ],
        "entry `link/passwd`: the path goes through the symlink `link`",
    );
}

#[test]
fn hard_links_must_point_at_an_earlier_file() {
    assert_refused(
        &[(b"shadow", T::Link, b"/etc/shadow", b"")],
        "entry `shadow`: hard link target `/etc/shadow`: absolute paths are not allowed",
    );
    assert_refused(
        &[(b"x", T::Link, b"../x", b"")],
        "entry `x`: hard link target `../x`: path leaves the archive root (`..`)",
    );
    assert_refused(
        &[
            (b"early", T::Link, b"late", b""),
            (b"late", T::Regular, b"", b"x"),
        ],
        "entry `early`: hard link target `late` is not an earlier file in the archive",
    );
    // A hard link to an earlier file is fine.
    let up = upload(&raw_targz(&[
        (b"a", T::Regular, b"", b"shared"),
        (b"b", T::Link, b"a", b""),
    ]));
    let dest = up.dir.join("dest");
    archive::unpack(&up.archive, &dest, &Limits::default()).unwrap();
    assert_eq!(fs::read_to_string(dest.join("b")).unwrap(), "shared");
}

#[test]
fn device_files_and_fifos_are_refused() {
    assert_refused(
        &[(b"dev/sda", T::Block, b"", b"")],
        "entry `dev/sda`: device files are not allowed",
    );
    assert_refused(
        &[(b"tty", T::Char, b"", b"")],
        "entry `tty`: device files are not allowed",
    );
    assert_refused(
        &[(b"pipe", T::Fifo, b"", b"")],
        "entry `pipe`: fifos are not allowed",
    );
}

#[test]
fn duplicate_and_conflicting_entries_are_refused() {
    assert_refused(
        &[(b"a", T::Regular, b"", b"1"), (b"a", T::Regular, b"", b"2")],
        "entry `a`: the entry appears twice in the archive",
    );
    assert_refused(
        &[
            (b"d/f", T::Regular, b"", b"1"),
            (b"d", T::Symlink, b"e", b""),
        ],
        "entry `d`: the entry conflicts with an earlier directory",
    );
    assert_refused(
        &[
            (b"d/f", T::Regular, b"", b"1"),
            (b"d", T::Regular, b"", b"2"),
        ],
        "entry `d`: the entry conflicts with an earlier directory",
    );
    assert_refused(
        &[
            (b"f", T::Regular, b"", b"1"),
            (b"f/g", T::Regular, b"", b"2"),
        ],
        "entry `f/g`: parent `f` is a file",
    );
}

#[test]
fn limits_are_enforced_and_name_the_entry() {
    let three = [
        (&b"a"[..], T::Regular, &b""[..], &b"12345"[..]),
        (b"b", T::Regular, b"", b"12345"),
        (b"c", T::Regular, b"", b"12345"),
    ];
    let bytes = raw_targz(&three);
    let limits = Limits {
        max_entries: 2,
        ..Limits::default()
    };
    assert_refused_with(
        &bytes,
        &limits,
        "entry `c`: the archive has more than 2 entries",
    );
    let limits = Limits {
        max_unpacked_bytes: 12,
        ..Limits::default()
    };
    assert_refused_with(
        &bytes,
        &limits,
        "entry `c`: the archive unpacks to more than 12 bytes",
    );
    let limits = Limits {
        max_archive_bytes: 20,
        ..Limits::default()
    };
    assert_refused_with(
        &bytes,
        &limits,
        "the archive is larger than the limit of 20 bytes",
    );

    let long = "d/".repeat(40) + "file";
    let limits = Limits {
        max_path_len: 50,
        ..Limits::default()
    };
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(1);
    header.set_entry_type(T::Regular);
    tar.append_data(&mut header, &long, &b"x"[..]).unwrap();
    assert_refused_with(
        &gzip(&tar.into_inner().unwrap()),
        &limits,
        &format!("entry `{long}`: the path is 84 bytes long, over the limit of 50"),
    );
}

#[test]
fn a_huge_declared_size_is_refused_before_reading_it() {
    // The header claims 1 TiB; the data isn't there. The limit check must come first.
    let mut header = tar::Header::new_gnu();
    header.as_old_mut().name[..4].copy_from_slice(b"huge");
    header.set_size(1 << 40);
    header.set_entry_type(T::Regular);
    header.set_cksum();
    let mut tar = header.as_bytes().to_vec();
    tar.extend([0u8; 1024]);
    assert_refused_with(
        &gzip(&tar),
        &Limits::default(),
        "entry `huge`: the archive unpacks to more than 2147483648 bytes",
    );
}

#[test]
fn unpack_refuses_a_non_empty_destination() {
    let up = upload(&raw_targz(&[(b"a", T::Regular, b"", b"a")]));
    let dest = up.dir.join("dest");
    write_tree(&dest, &[("mine", file("keep"))]);
    let err = archive::unpack(&up.archive, &dest, &Limits::default()).unwrap_err();
    assert!(matches!(err, ArchiveError::DestNotEmpty { .. }), "{err}");
    assert!(!err.is_refusal());
    assert_eq!(names_in(&dest), ["mine"]);
}

#[test]
fn entry_names_are_escaped_in_errors() {
    assert_refused(
        &[(b"/evil\x1b[2J\n", T::Regular, b"", b"x")],
        "entry `/evil\\u{1b}[2J\\n`: absolute paths are not allowed",
    );
}

/// A GNU long-name (`L`) or long-link (`K`) record holding `value`, which may contain any byte.
fn gnu_long(tar: &mut Vec<u8>, kind: T, value: &[u8]) {
    let mut header = tar::Header::new_gnu();
    header.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
    header.set_entry_type(kind);
    header.set_size(value.len() as u64 + 1);
    header.set_cksum();
    tar.extend_from_slice(header.as_bytes());
    tar.extend_from_slice(value);
    tar.push(0);
    tar.resize(tar.len().div_ceil(512) * 512, 0);
}

#[test]
fn nul_bytes_in_paths_are_refused() {
    // Found by fuzzing (fuzz/corpus/archive/nul_in_long_name.tar): a long name with a NUL
    // passed `check`, then `unpack` failed on its side (an I/O error, a 500) instead of refusing.
    let mut long = Vec::new();
    gnu_long(&mut long, T::GNULongName, b"dir/a\0b");
    let mut tar = tar::Builder::new(long);
    raw_entry(&mut tar, b"ignored", T::Regular, b"", b"x");
    assert_refused_with(
        &gzip(&tar.into_inner().unwrap()),
        &Limits::default(),
        "entry `dir/a\\u{0}b`: the path contains a NUL byte",
    );

    let mut long = Vec::new();
    gnu_long(&mut long, T::GNULongLink, b"target\0more");
    let mut tar = tar::Builder::new(long);
    raw_entry(&mut tar, b"link", T::Symlink, b"", b"");
    assert_refused_with(
        &gzip(&tar.into_inner().unwrap()),
        &Limits::default(),
        "entry `link`: symlink target `target\\u{0}more` contains a NUL byte",
    );
}

#[test]
fn a_stream_that_breaks_inside_file_data_is_a_refusal() {
    // Found by fuzzing (fuzz/corpus/archive/bad_crc_in_file_data.tar.gz): a gzip member whose
    // checksum fails while a file's data is being read made `unpack` fail on its side ("cannot
    // write file", a 500) where `check` said the archive is corrupt.
    let mut tar = tar::Builder::new(Vec::new());
    raw_entry(&mut tar, b"a", T::Regular, b"", &[7u8; 5000]);
    let tar = tar.into_inner().unwrap();
    let mut first = gzip(&tar[..2000]);
    let crc = first.len() - 8;
    first[crc] ^= 0xff;
    let mut bytes = first;
    bytes.extend(gzip(&tar[2000..]));
    let up = upload(&bytes);
    let err = archive::check(&up.archive, &Limits::default()).unwrap_err();
    assert!(matches!(err, ArchiveError::Malformed { .. }), "{err:?}");
    let dest = up.dir.join("dest");
    let err = archive::unpack(&up.archive, &dest, &Limits::default()).unwrap_err();
    assert!(matches!(err, ArchiveError::Malformed { .. }), "{err:?}");
    assert!(err.is_refusal());
    assert!(is_empty_dir(&dest));
}
