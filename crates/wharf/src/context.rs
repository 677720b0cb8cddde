//! Where client commands find the server, the token and the app: flags, then `WHARF_*`
//! variables, then what `wharf login` saved (and, for the app, a git remote named `wharf`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};
use wharf_client::Client;

use crate::cli::{AppArg, Global};

pub const DEFAULT_URL: &str = "http://127.0.0.1:7070";

/// What `wharf login` saves, in `credentials.json` (mode 0600) in wharf's config directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Credentials {
    pub url: String,
    pub token: String,
}

/// wharf's per-user config directory: `$WHARF_CONFIG_DIR`, `$XDG_CONFIG_HOME/wharf` or `~/.config/wharf`.
pub fn config_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("WHARF_CONFIG_DIR") {
        return Ok(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CONFIG_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("wharf"));
    }
    let home = std::env::var_os("HOME")
        .context("HOME is not set: set WHARF_CONFIG_DIR to say where to keep credentials")?;
    Ok(PathBuf::from(home).join(".config").join("wharf"))
}

pub fn credentials_path() -> anyhow::Result<PathBuf> {
    Ok(config_dir()?.join("credentials.json"))
}

/// The saved credentials, if any.
pub fn load_credentials() -> anyhow::Result<Option<Credentials>> {
    let path = credentials_path()?;
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(serde_json::from_str(&text).with_context(|| {
            format!("{} is not valid: run `wharf login` again", path.display())
        })?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Saves credentials readable by the user only, atomically.
pub fn save_credentials(credentials: &Credentials) -> anyhow::Result<PathBuf> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let path = credentials_path()?;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let tmp = path.with_extension("json.tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    file.write_all(serde_json::to_string_pretty(credentials)?.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// The server URL a command talks to.
pub fn server_url(global: &Global, saved: Option<&Credentials>) -> String {
    global
        .url
        .clone()
        .or_else(|| saved.map(|c| c.url.clone()))
        .unwrap_or_else(|| DEFAULT_URL.to_owned())
}

/// A client for the configured server, with the configured token.
pub fn client(global: &Global) -> anyhow::Result<Client> {
    let saved = load_credentials()?;
    let url = server_url(global, saved.as_ref());
    let Some(token) = token_for(&url, saved) else {
        bail!("not logged in to {url}: run `wharf login --url {url}` or set WHARF_TOKEN");
    };
    Ok(Client::new(&url, Some(token))?)
}

/// The token for the configured server: `WHARF_TOKEN`, else the one `wharf login` saved for it.
pub fn token(global: &Global) -> anyhow::Result<Option<String>> {
    let saved = load_credentials()?;
    let url = server_url(global, saved.as_ref());
    Ok(token_for(&url, saved))
}

fn token_for(url: &str, saved: Option<Credentials>) -> Option<String> {
    match std::env::var("WHARF_TOKEN") {
        Ok(token) if !token.is_empty() => Some(token),
        _ => saved
            .filter(|c| c.url.trim_end_matches('/') == url.trim_end_matches('/'))
            .map(|c| c.token),
    }
}

/// The app a command acts on: `--app`/`WHARF_APP`, else the app of the git remote named `wharf`
/// of the current directory.
pub fn app_name(arg: &AppArg) -> anyhow::Result<String> {
    app_name_in(arg, Path::new("."))
}

/// Like [`app_name`], looking for the git remote in `dir`.
pub fn app_name_in(arg: &AppArg, dir: &Path) -> anyhow::Result<String> {
    if let Some(app) = &arg.app {
        return Ok(app.clone());
    }
    if let Some(app) = app_from_git_remote(dir) {
        return Ok(app);
    }
    bail!("no app given: pass --app NAME, set WHARF_APP, or run this in a git checkout with a remote named `wharf`")
}

fn app_from_git_remote(dir: &Path) -> Option<String> {
    let output = std::process::Command::new("git")
        .args(["remote", "get-url", "wharf"])
        .current_dir(dir)
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    app_from_remote_url(String::from_utf8_lossy(&output.stdout).trim())
}

/// `https://host/api/my-app.git` → `my-app`.
fn app_from_remote_url(url: &str) -> Option<String> {
    let last = url.trim_end_matches('/').rsplit(['/', ':']).next()?;
    let name = last.strip_suffix(".git").unwrap_or(last);
    (!name.is_empty()).then(|| name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::app_from_remote_url;

    #[test]
    fn reads_app_names_from_remote_urls() {
        assert_eq!(
            app_from_remote_url("http://127.0.0.1:7070/my-app.git").as_deref(),
            Some("my-app")
        );
        assert_eq!(
            app_from_remote_url("https://git.example.com/x/my-app.git/").as_deref(),
            Some("my-app")
        );
        assert_eq!(
            app_from_remote_url("git@host:my-app.git").as_deref(),
            Some("my-app")
        );
        assert_eq!(app_from_remote_url("").as_deref(), None);
    }
}
