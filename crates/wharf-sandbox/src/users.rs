//! One unprivileged user per app, for when wharf runs as root: an app's processes (and its
//! builds) run as that user, so one app can't read another's files or signal its processes.
//!
//! The users are numbers only (no `/etc/passwd` entry), taken from [`FIRST_APP_UID`] upwards,
//! with the group of the same number. Which app has which number is kept in one file for the
//! whole machine ([`registry`], `/var/lib/wharf/app-users` unless `WHARF_APP_USERS` names
//! another), one `<uid>\t<data dir>\t<app id>` line per app, appended and synced before the
//! number is first used: two wharf servers on one machine (a `wharf up` beside a server, say)
//! never give two apps the same user. A number is never given to a second app, even after the
//! first is deleted: whatever the first left behind (a file in the host's `/tmp` without a
//! sandbox, say) never becomes another app's.

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

/// The first uid (and gid) given to an app: above the ranges Debian and systemd hand out to
/// people, system services and containers (systemd's container range ends at 1879048191), and
/// below 2^31 for tools that keep ids in signed integers.
pub const FIRST_APP_UID: u32 = 1_900_000_000;

/// How many app users there can be.
pub const APP_UIDS: u32 = 100_000_000;

/// The machine's file of app users: `WHARF_APP_USERS`, or `/var/lib/wharf/app-users`.
pub fn registry() -> PathBuf {
    std::env::var_os("WHARF_APP_USERS")
        .filter(|p| !p.is_empty())
        .map_or_else(|| PathBuf::from("/var/lib/wharf/app-users"), PathBuf::from)
}

/// The uid of `data_dir`'s app `app_id`, if it has one in `registry`.
pub fn find(registry: &Path, data_dir: &Path, app_id: &str) -> Option<u32> {
    let text = std::fs::read_to_string(registry).ok()?;
    let data_dir = canonical(data_dir);
    let found =
        lines(&text).find_map(|(uid, dir, id)| (dir == data_dir && id == app_id).then_some(uid));
    found
}

fn canonical(data_dir: &Path) -> String {
    std::fs::canonicalize(data_dir)
        .unwrap_or_else(|_| data_dir.to_path_buf())
        .to_string_lossy()
        .into_owned()
}

/// The whole lines of the file: a line cut short by a crash was never synced, so never used.
fn lines(text: &str) -> impl Iterator<Item = (u32, &str, &str)> {
    text.split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .filter_map(|l| {
            let mut fields = l.trim_end_matches('\n').splitn(3, '\t');
            let uid = fields.next()?.parse().ok()?;
            Some((uid, fields.next()?, fields.next()?))
        })
}

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("all {APP_UIDS} app users from uid {FIRST_APP_UID} are taken (see {})", path.display())]
    Exhausted { path: PathBuf },
    #[error("`{app_id}` can't be kept in the users file (no tabs or control characters)")]
    BadAppId { app_id: String },
}

/// The uid (also the gid) of `data_dir`'s app `app_id`, given a new one in [`registry`] if it
/// has none yet. Safe to call from several threads and processes at once: the file is locked
/// while it is read and appended to.
pub fn app_user(data_dir: &Path, app_id: &str) -> Result<u32, UserError> {
    app_user_in(&registry(), data_dir, app_id)
}

/// [`app_user`] with the registry named.
pub fn app_user_in(registry: &Path, data_dir: &Path, app_id: &str) -> Result<u32, UserError> {
    let bad = |s: &str| s.is_empty() || s.chars().any(|c| c == '\t' || c == '\n');
    if bad(app_id) || app_id.chars().any(char::is_control) {
        return Err(UserError::BadAppId {
            app_id: app_id.to_owned(),
        });
    }
    let data_dir = canonical(data_dir);
    if bad(&data_dir) {
        return Err(UserError::BadAppId {
            app_id: format!("{data_dir}: {app_id}"),
        });
    }
    let path = registry.to_path_buf();
    let io = |action| {
        let path = path.clone();
        move |source| UserError::Io {
            action,
            path,
            source,
        }
    };
    if let Some(dir) = registry.parent() {
        // Others may pass through but not list it: `/var/lib/wharf` is also root's default
        // data directory, which apps' users pass through. The file itself is private.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o711)
            .create(dir)
            .map_err(io("create the directory of"))?;
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .open(&path)
        .map_err(io("open"))?;
    let mut file = Flock::lock(file, FlockArg::LockExclusive)
        .map_err(|(_, errno)| io("lock")(std::io::Error::from(errno)))?;
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).map_err(io("read"))?;
    file.read_to_string(&mut text).map_err(io("read"))?;
    let mut next = FIRST_APP_UID;
    for (uid, dir, id) in lines(&text) {
        if dir == data_dir && id == app_id {
            return Ok(uid);
        }
        next = next.max(uid.saturating_add(1));
    }
    if next - FIRST_APP_UID >= APP_UIDS {
        return Err(UserError::Exhausted { path });
    }
    if !text.ends_with('\n') {
        // A line a crash cut short goes: its number was never handed out.
        let whole = text.rfind('\n').map_or(0, |i| i + 1);
        file.set_len(whole as u64).map_err(io("truncate"))?;
    }
    file.write_all(format!("{next}\t{data_dir}\t{app_id}\n").as_bytes())
        .map_err(io("write"))?;
    file.sync_all().map_err(io("sync"))?;
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_app_keeps_its_own_user_and_numbers_are_never_reused() {
        let dir = tempfile::tempdir().unwrap();
        let registry = dir.path().join("users/app-users");
        let (one, two) = (dir.path().join("one"), dir.path().join("two"));
        let a = app_user_in(&registry, &one, "app-a").unwrap();
        let b = app_user_in(&registry, &one, "app-b").unwrap();
        assert_eq!(a, FIRST_APP_UID);
        assert_eq!(b, FIRST_APP_UID + 1);
        assert_eq!(app_user_in(&registry, &one, "app-a").unwrap(), a);
        // Another server's app of the same id is another app.
        let other = app_user_in(&registry, &two, "app-a").unwrap();
        assert_eq!(other, FIRST_APP_UID + 2);
        assert_eq!(find(&registry, &two, "app-a"), Some(other));

        // A line cut short by a crash is dropped, and the next app still gets a new number.
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&registry)
            .unwrap();
        file.write_all(b"1900000003\t/x\tapp-").unwrap();
        let c = app_user_in(&registry, &one, "app-c").unwrap();
        assert_eq!(c, FIRST_APP_UID + 3);
        assert_eq!(app_user_in(&registry, &one, "app-b").unwrap(), b);
        assert!(!std::fs::read_to_string(&registry)
            .unwrap()
            .contains("app-\n"));

        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&registry), 0o600);
        assert_eq!(mode(registry.parent().unwrap()), 0o711);
        assert!(app_user_in(&registry, &one, "tab\there").is_err());
    }

    #[test]
    fn threads_racing_for_new_users_get_distinct_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let registry = dir.path().join("app-users");
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let (registry, data) = (registry.clone(), dir.path().to_path_buf());
                std::thread::spawn(move || {
                    app_user_in(&registry, &data, &format!("app-{i}")).unwrap()
                })
            })
            .collect();
        let mut uids: Vec<u32> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        uids.sort_unstable();
        uids.dedup();
        assert_eq!(uids.len(), 8);
    }
}
