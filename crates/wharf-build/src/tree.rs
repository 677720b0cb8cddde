//! Copying directory trees as they are: modes kept, symlinks copied as links (never followed),
//! anything that is not a file, directory or symlink skipped. Used to copy the source into the
//! app tree and to move dependency directories in and out of the cache.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use walkdir::WalkDir;

use crate::error::BuildError;

/// Copies the contents of `from` into `to` (created if missing).
pub(crate) fn copy_tree(from: &Path, to: &Path) -> Result<(), BuildError> {
    fs::create_dir_all(to).map_err(|e| BuildError::io("create directory", to, e))?;
    for entry in WalkDir::new(from).min_depth(1).follow_links(false) {
        let entry = entry.map_err(|e| {
            let path = e.path().unwrap_or(from).to_path_buf();
            BuildError::io("read", path, e.into())
        })?;
        let rel = entry
            .path()
            .strip_prefix(from)
            .map_err(|_| BuildError::InvalidRequest(format!("bad path in {}", from.display())))?;
        let dest = to.join(rel);
        let kind = entry.file_type();
        if kind.is_dir() {
            fs::create_dir_all(&dest).map_err(|e| BuildError::io("create directory", &dest, e))?;
            let mode = entry
                .metadata()
                .map_err(|e| BuildError::io("read", entry.path(), e.into()))?
                .permissions()
                .mode();
            // Keep directories writable for the build itself (and for the server's cleanup).
            fs::set_permissions(&dest, fs::Permissions::from_mode(mode | 0o700))
                .map_err(|e| BuildError::io("set permissions of", &dest, e))?;
        } else if kind.is_symlink() {
            let target =
                fs::read_link(entry.path()).map_err(|e| BuildError::io("read", entry.path(), e))?;
            symlink(&target, &dest).map_err(|e| BuildError::io("create symlink", &dest, e))?;
        } else if kind.is_file() {
            fs::copy(entry.path(), &dest).map_err(|e| BuildError::io("copy to", &dest, e))?;
        }
    }
    Ok(())
}

/// Copies the source into the (new) app tree with `cp -a`, in a child process.
///
/// Not [`copy_tree`]: build scripts are executed from the copy, and `execve` fails with
/// ETXTBSY while any process holds the file open for writing. A file this process writes is
/// briefly inherited by every child another thread forks (until that child execs), so a copy
/// made here could make the following `bin/build` fail at random under load. `cp`'s descriptors
/// are its own.
pub(crate) async fn copy_source(source: &Path, app: &Path) -> Result<(), BuildError> {
    let parent = app
        .parent()
        .ok_or_else(|| BuildError::InvalidRequest(format!("bad app dir {}", app.display())))?;
    std::fs::create_dir_all(parent).map_err(|e| BuildError::io("create directory", parent, e))?;
    let out = tokio::process::Command::new("cp")
        .arg("-a")
        .arg("--")
        .arg(source)
        .arg(app)
        .env_clear()
        .env("PATH", crate::sandbox::SYSTEM_PATH)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| BuildError::io("run `cp` to copy the source to", app, e))?;
    if out.status.success() {
        return Ok(());
    }
    Err(BuildError::io(
        "copy the source to",
        app,
        std::io::Error::other(format!(
            "`cp -a` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    ))
}

/// Removes `path` (file, link or directory) if it exists.
pub(crate) fn remove(path: &Path) -> Result<(), BuildError> {
    let result = match fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => Err(e),
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
    };
    result.map_err(|e| BuildError::io("remove", path, e))
}

/// Runs blocking filesystem work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BuildError> + Send + 'static,
) -> Result<T, BuildError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        BuildError::io(
            "finish a file operation in",
            PathBuf::from("the build"),
            std::io::Error::other(e.to_string()),
        )
    })?
}

/// Whether `path` is an executable regular file.
pub(crate) fn is_executable(path: &Path) -> bool {
    fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_keeps_links_and_modes() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        fs::create_dir_all(src.join("bin")).unwrap();
        fs::write(src.join("bin/run"), "#!/bin/sh\n").unwrap();
        fs::set_permissions(src.join("bin/run"), fs::Permissions::from_mode(0o755)).unwrap();
        symlink("bin/run", src.join("link")).unwrap();
        let dst = tmp.path().join("dst");
        copy_tree(&src, &dst).unwrap();
        assert!(is_executable(&dst.join("bin/run")));
        assert_eq!(
            fs::read_link(dst.join("link")).unwrap(),
            Path::new("bin/run")
        );
        remove(&dst).unwrap();
        assert!(!dst.exists());
        remove(&dst).unwrap();
    }
}
