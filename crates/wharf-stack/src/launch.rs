//! The launcher of a release image on a stack: `/wharf/launch`, its Entrypoint. Given a process
//! type's name (`web` when none is given, the image's `Cmd`), it starts that type's command as a
//! Heroku dyno would: in `/app`, with `PORT` (5000 unless set), `DYNO`, `HOME` and the app's
//! `.profile.d` scripts. Any other argument is a command run as it is (`IMAGE bash`), so the
//! image behaves like any other under `podman run`, Docker, Swarm or Kubernetes.

use std::collections::BTreeMap;

/// Where the launcher is in the image.
pub const LAUNCHER: &str = "/wharf/launch";
/// The layer prefix and file name that put it there.
pub const LAUNCHER_DIR: &str = "wharf";
pub const LAUNCHER_FILE: &str = "launch";

/// `PORT` when the runtime sets none (foreman's and `heroku local`'s default).
pub const DEFAULT_PORT: u16 = 5000;

/// The type an image starts when given no argument: `web`, else the first by name.
pub fn default_type(process_types: &BTreeMap<String, String>) -> Option<&str> {
    if process_types.contains_key("web") {
        return Some("web");
    }
    process_types.keys().next().map(String::as_str)
}

/// The launcher script for these process types (name → shell command).
pub fn script(process_types: &BTreeMap<String, String>) -> String {
    let mut cases = String::new();
    for (name, command) in process_types {
        cases.push_str(&format!("  {name}) command={} ;;\n", quote(command)));
    }
    format!(
        r#"#!/bin/sh
# Starts one of this app's process types by name, as a dyno does; any other arguments run as
# a command. Made by wharf; the image's Cmd names the default type.
cd /app || exit 1
if [ -z "${{HOME:-}}" ] || [ "$HOME" = / ]; then HOME=/app; export HOME; fi
PORT=${{PORT:-{port}}}; export PORT
if [ -d /app/.profile.d ]; then
  for script in /app/.profile.d/*.sh; do
    if [ -r "$script" ]; then . "$script"; fi
  done
fi
command=
case "${{1:-}}" in
{cases}  *) exec "$@" ;;
esac
DYNO=${{DYNO:-$1.1}}; export DYNO
shift
exec /bin/sh -c "$command" "$0" "$@"
"#,
        port = DEFAULT_PORT,
    )
}

/// `text` in single quotes for `sh`.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r#"'\''"#))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(script: &str, args: &[&str], env: &[(&str, &str)]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("launch");
        std::fs::write(
            &path,
            script.replace("cd /app", &format!("cd {}", dir.path().display())),
        )
        .unwrap();
        let out = std::process::Command::new("/bin/sh")
            .arg(&path)
            .args(args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn starts_types_by_name_and_runs_anything_else() {
        let types = BTreeMap::from([
            ("web".to_owned(), "echo web on $PORT as $DYNO".to_owned()),
            ("worker".to_owned(), "echo 'it'\\''s' \"$@\"".to_owned()),
        ]);
        let s = script(&types);
        assert_eq!(run(&s, &["web"], &[]), "web on 5000 as web.1\n");
        assert_eq!(
            run(&s, &["web"], &[("PORT", "8080")]),
            "web on 8080 as web.1\n"
        );
        assert_eq!(run(&s, &["worker", "a b"], &[]), "it's a b\n");
        assert_eq!(run(&s, &["echo", "plain"], &[]), "plain\n");
        assert_eq!(default_type(&types), Some("web"));
        assert_eq!(
            default_type(&BTreeMap::from([("clock".into(), "x".into())])),
            Some("clock")
        );
    }
}
