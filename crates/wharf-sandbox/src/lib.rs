//! The part of wharf's sandboxes that builds (`wharf-build`) and app processes (`wharf-run`)
//! share: bubblewrap arguments that show the host read-only, with private `/proc`, `/dev`, `/tmp`
//! and `/run`. Each sandbox adds its own writable binds, hidden paths and `/app` after these. It
//! only reads the host's root directory; it runs nothing.

use std::ffi::OsString;
use std::path::Path;

/// Top-level entries of the host that a sandbox never shows as they are: the private ones it
/// mounts itself, and `/app`, where the app tree goes.
const PRIVATE: [&str; 5] = ["proc", "dev", "tmp", "run", "app"];

/// `bwrap` arguments for a read-only view of the host. The host's root is bound one top-level
/// entry at a time (not `/` itself), so that `/app` can still be created in bwrap's own root;
/// `/run` is private because a read-only bind does not stop `connect()` to the sockets in it, and
/// only the resolver configuration is kept from it when `/etc/resolv.conf` points there.
pub fn host_view_args() -> Vec<OsString> {
    let mut args: Vec<OsString> = Vec::new();
    let mut push = |parts: &[&std::ffi::OsStr]| args.extend(parts.iter().map(OsString::from));
    if let Ok(entries) = std::fs::read_dir("/") {
        let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name();
            if PRIVATE.iter().any(|p| name == *p) {
                continue;
            }
            let host = Path::new("/").join(&name);
            match entry.file_type() {
                Ok(t) if t.is_symlink() => {
                    if let Ok(target) = std::fs::read_link(&host) {
                        push(&["--symlink".as_ref(), target.as_os_str(), host.as_os_str()]);
                    }
                }
                Ok(t) if t.is_dir() || t.is_file() => {
                    push(&["--ro-bind".as_ref(), host.as_os_str(), host.as_os_str()]);
                }
                _ => {}
            }
        }
    }
    push(&["--proc".as_ref(), "/proc".as_ref()]);
    push(&["--dev".as_ref(), "/dev".as_ref()]);
    push(&["--tmpfs".as_ref(), "/tmp".as_ref()]);
    push(&["--tmpfs".as_ref(), "/run".as_ref()]);
    if let Ok(resolv) = std::fs::canonicalize("/etc/resolv.conf") {
        if resolv.starts_with("/run") {
            push(&["--ro-bind".as_ref(), resolv.as_os_str(), resolv.as_os_str()]);
        }
    }
    args
}

#[cfg(test)]
mod tests {
    #[test]
    fn shows_the_host_but_keeps_private_mounts_private() {
        let args: Vec<String> = super::host_view_args()
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let pairs: Vec<(&str, &str)> = args
            .windows(2)
            .map(|w| (w[0].as_str(), w[1].as_str()))
            .collect();
        assert!(pairs.contains(&("--ro-bind", "/etc")), "{args:?}");
        assert!(
            pairs.contains(&("--tmpfs", "/tmp")) && pairs.contains(&("--tmpfs", "/run")),
            "{args:?}"
        );
        assert!(
            pairs.contains(&("--proc", "/proc")) && pairs.contains(&("--dev", "/dev")),
            "{args:?}"
        );
        for private in ["/tmp", "/run", "/proc", "/dev"] {
            assert!(
                !pairs.contains(&("--ro-bind", private)),
                "{private} must not be the host's: {args:?}"
            );
        }
    }
}
