#!/usr/bin/env python3
"""Writes the seed corpus of the `archive` fuzz target: fuzz/corpus/archive/.

Each seed is a small upload: mostly plain tar (the target fixes header checksums and gzips
it, so mutations reach the archive rules), and a few real tar.gz files (used as they are).
They cover what `wharf_image::archive` accepts and each rule it enforces. The output is
deterministic: run it again after changing it and commit the result. Other files in that
folder (inputs that once crashed the target) are left alone.

    python3 fuzz/seeds/make_archives.py
"""

import gzip
import io
import os
import tarfile

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "corpus", "archive")


def entry(name, kind=tarfile.REGTYPE, data=b"", link="", mode=None, **pax):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = len(data) if kind in (tarfile.REGTYPE, tarfile.AREGTYPE) else 0
    info.linkname = link
    info.mode = mode if mode is not None else (0o755 if kind == tarfile.DIRTYPE else 0o644)
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        info.devmajor, info.devminor = 1, 3
    if pax:
        info.pax_headers = pax
    return info, data


def tar(entries, fmt=tarfile.GNU_FORMAT, pax_global=None):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt, pax_headers=pax_global or {}) as t:
        for info, data in entries:
            t.addfile(info, io.BytesIO(data) if info.size else None)
    # Without the padding to tarfile's 10 KiB records: the entries, then two zero blocks.
    # (No seed's data ends in a zero block, so stripping zeros stops inside the last block.)
    used = len(buf.getvalue().rstrip(b"\0"))
    return buf.getvalue()[: -(-used // 512) * 512] + b"\0" * 1024


def write(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


def main():
    # Only the seeds below are (re)written: the folder also keeps inputs that once crashed the
    # target (see their regression tests), which this must not remove.
    os.makedirs(OUT, exist_ok=True)

    app = tar([
        entry("app/", tarfile.DIRTYPE),
        entry("app/Procfile", data=b"web: python app.py\n"),
        entry("app/app.py", data=b"print('hi')\n"),
        entry("app/bin/", tarfile.DIRTYPE),
        entry("app/bin/start", data=b"#!/bin/sh\nexec python app.py\n", mode=0o755),
        entry("app/lib/site.py", data=b"x = 1\n"),
        entry("app/.venv/bin/python3", tarfile.SYMTYPE, link="../../lib/site.py"),
        entry("app/current", tarfile.SYMTYPE, link="."),
    ])
    write("app.tar", app)
    write("app.tar.gz", gzip.compress(app, mtime=0))
    write("truncated.tar.gz", gzip.compress(app, mtime=0)[:200])
    # Two gzip members back to back, as `cat a.gz b.gz` makes.
    write("two_members.tar.gz", gzip.compress(app[:1024], mtime=0) + gzip.compress(app[1024:], mtime=0))

    write("dot_root.tar", tar([entry("./", tarfile.DIRTYPE), entry("./a", data=b"a"), entry(".//b/./c", data=b"c")]))
    write("empty.tar", b"\0" * 1024)
    write("absolute.tar", tar([entry("/etc/passwd", data=b"root::0:0::/:/bin/sh\n")]))
    write("dotdot.tar", tar([entry("a/../../b", data=b"x")]))
    write("symlink_escape.tar", tar([entry("link", tarfile.SYMTYPE, link="../../etc/passwd")]))
    write("symlink_absolute.tar", tar([entry("link", tarfile.SYMTYPE, link="/etc")]))
    # Each target looks harmless on its own; together `b` escapes.
    write("symlink_chain.tar", tar([
        entry("d/", tarfile.DIRTYPE),
        entry("d/a", tarfile.SYMTYPE, link=".."),
        entry("b", tarfile.SYMTYPE, link="d/a/../x"),
    ]))
    write("symlink_loop.tar", tar([entry("a", tarfile.SYMTYPE, link="b"), entry("b", tarfile.SYMTYPE, link="a")]))
    write("below_symlink.tar", tar([
        entry("dir/", tarfile.DIRTYPE),
        entry("link", tarfile.SYMTYPE, link="dir"),
        entry("link/file", data=b"through the link"),
    ]))
    write("hardlinks.tar", tar([
        entry("a", data=b"shared"),
        entry("b", tarfile.LNKTYPE, link="a"),
        entry("c", tarfile.LNKTYPE, link="missing"),
    ]))
    write("hardlink_to_dir.tar", tar([entry("d/", tarfile.DIRTYPE), entry("h", tarfile.LNKTYPE, link="d")]))
    write("devices.tar", tar([
        entry("null", tarfile.CHRTYPE),
        entry("disk", tarfile.BLKTYPE),
        entry("pipe", tarfile.FIFOTYPE),
    ]))
    write("duplicates.tar", tar([
        entry("a", data=b"1"),
        entry("a", data=b"2"),
        entry("d/f", data=b"f"),
        entry("d", data=b"file over a directory"),
    ]))
    write("modes.tar", tar([
        entry("setuid", data=b"x", mode=0o4755),
        entry("locked/", tarfile.DIRTYPE, mode=0o000),
        entry("locked/inside", data=b"y", mode=0o000),
    ]))
    long_dir = "a-rather-long-directory-name-" * 4
    write("gnu_long_names.tar", tar([
        entry(long_dir + "/" + "file-with-a-long-name-" * 4, data=b"long"),
        entry("short", tarfile.SYMTYPE, link=long_dir + "/" + "target-" * 20),
    ]))
    write("pax.tar", tar(
        [
            entry("pax/" + "p" * 120, data=b"pax path"),
            entry("renamed", data=b"x", path="by/pax/header"),
            entry("l", tarfile.SYMTYPE, link="x", linkpath="pax/target"),
        ],
        fmt=tarfile.PAX_FORMAT,
        pax_global={"comment": "a global header"},
    ))
    write("sizes.tar", tar([entry("zero", data=b""), entry("big", data=b"z" * 3000)]))


if __name__ == "__main__":
    main()
