//! One unprivileged user per app, for when wharf runs as root: an app's processes (and its
//! builds) run as that user, so one app can't read another's files or signal its processes.
//!
//! The users are numbers only (no `/etc/passwd` entry), taken from [`FIRST_APP_UID`] upwards,
//! with the group of the same number. Which app has which number is kept in `<data>/app-users`,
//! one `<uid> <app id>` line per app, appended and synced before the number is first used. A
//! number is never given to a second app, even after the first is deleted: whatever the first
//! left behind (a file in the host's `/tmp` without a sandbox, say) never becomes another app's.

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

/// The first uid (and gid) given to an app: above the ranges Debian and systemd hand out to
/// people, system services and containers (systemd's container range ends at 1879048191), and
/// below 2^31 for tools that keep ids in signed integers.
pub const FIRST_APP_UID: u32 = 1_900_000_000;

/// How many app users there can be.
pub const APP_UIDS: u32 = 100_000_000;

/// The file that records each app's user.
pub fn users_file(data_dir: &Path) -> PathBuf {
    data_dir.join("app-users")
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
    #[error("`{app_id}` is not an app id")]
    BadAppId { app_id: String },
}

/// The uid (also the gid) of `app_id`'s user, given it a new one if it has none yet. Safe to
/// call from several threads and processes at once: the file is locked while it is read and
/// appended to.
pub fn app_user(data_dir: &Path, app_id: &str) -> Result<u32, UserError> {
    if app_id.is_empty() || app_id.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(UserError::BadAppId {
            app_id: app_id.to_owned(),
        });
    }
    let path = users_file(data_dir);
    let io = |action| {
        let path = path.clone();
        move |source| UserError::Io {
            action,
            path,
            source,
        }
    };
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
    // Only whole lines count: a line cut short by a crash was never synced, so never used.
    for line in text.split_inclusive('\n').filter(|l| l.ends_with('\n')) {
        let Some((uid, id)) = line.trim_end().split_once(' ') else {
            continue;
        };
        let Ok(uid) = uid.parse::<u32>() else {
            continue;
        };
        if id == app_id {
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
    file.write_all(format!("{next} {app_id}\n").as_bytes())
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
        let a = app_user(dir.path(), "app-a").unwrap();
        let b = app_user(dir.path(), "app-b").unwrap();
        assert_eq!(a, FIRST_APP_UID);
        assert_eq!(b, FIRST_APP_UID + 1);
        assert_eq!(app_user(dir.path(), "app-a").unwrap(), a);

        // A line cut short by a crash is ignored, and the next app still gets a new number.
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(users_file(dir.path()))
            .unwrap();
        file.write_all(b"1900000002 app-").unwrap();
        let c = app_user(dir.path(), "app-c").unwrap();
        assert_eq!(c, FIRST_APP_UID + 2);
        assert_eq!(app_user(dir.path(), "app-b").unwrap(), b);

        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(users_file(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(app_user(dir.path(), "two words").is_err());
    }

    #[test]
    fn threads_racing_for_new_users_get_distinct_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let path = path.clone();
                std::thread::spawn(move || app_user(&path, &format!("app-{i}")).unwrap())
            })
            .collect();
        let mut uids: Vec<u32> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        uids.sort_unstable();
        uids.dedup();
        assert_eq!(uids.len(), 8);
    }
}
