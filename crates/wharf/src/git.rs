//! git push: `wharf git:remote` points a checkout's `wharf` remote at the app and lets git use
//! the saved login (`wharf git-credential`); on the server, every push runs
//! `wharf git-receive-hook` in git's pre-receive hook, which deploys a pushed `main` or
//! `master` like `wharf deploy` (its output reaches the pusher as `remote:` lines) and rejects
//! the push when the deploy fails. `wharf tls ca` prints where the server's CA certificate is.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context as _};

use crate::cli::{AppArg, Global};
use crate::context;

/// The branches a push deploys, in order of preference.
const DEPLOY_BRANCHES: [&str; 2] = ["refs/heads/main", "refs/heads/master"];

/// One ref a push updates, as git's pre-receive hook reads it: `<old> <new> <ref>`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RefUpdate {
    new: String,
    name: String,
}

fn parse_updates(input: impl BufRead) -> anyhow::Result<Vec<RefUpdate>> {
    let mut updates = Vec::new();
    for line in input.lines() {
        let line = line.context("cannot read the pushed refs")?;
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [_, new, name] = fields[..] else {
            bail!("git gave the hook a malformed line `{line}` (expected `<old> <new> <ref>`)");
        };
        updates.push(RefUpdate {
            new: new.to_owned(),
            name: name.to_owned(),
        });
    }
    Ok(updates)
}

/// A deleted ref's new id is all zeros.
fn is_deletion(update: &RefUpdate) -> bool {
    update.new.bytes().all(|b| b == b'0')
}

/// `wharf git-receive-hook`: run by the server's pre-receive hook, inside the app's repository,
/// with `WHARF_URL`, `WHARF_TOKEN` and `WHARF_APP` set by the server. Deploys the pushed
/// `main` (or `master`); a non-zero exit rejects the whole push.
pub async fn receive_hook(global: &Global, app: AppArg) -> anyhow::Result<()> {
    let updates = parse_updates(std::io::stdin().lock())?;
    let app = context::app_name(&app)?;
    let mut target = None;
    for branch in DEPLOY_BRANCHES {
        if let Some(update) = updates.iter().find(|u| u.name == branch && !is_deletion(u)) {
            match &target {
                None => target = Some(update.clone()),
                Some(chosen) => println!(
                    "-----> {} was pushed too; only {} is deployed",
                    short_ref(&update.name),
                    short_ref(&chosen.name)
                ),
            }
        }
    }
    for update in &updates {
        if !DEPLOY_BRANCHES.contains(&update.name.as_str()) {
            println!(
                "-----> {} is not main or master: stored, not deployed (push to main to deploy)",
                short_ref(&update.name)
            );
        } else if is_deletion(update) {
            println!(
                "-----> {} deleted; the running release stays",
                short_ref(&update.name)
            );
        }
    }
    let Some(target) = target else {
        return Ok(());
    };
    let client = context::client(global)?;
    let commit = &target.new;
    println!(
        "-----> Deploying {} ({}) to {app}",
        &commit[..commit.len().min(12)],
        short_ref(&target.name)
    );
    let tree = tempfile::Builder::new()
        .prefix("wharf-push-")
        .tempdir()
        .context("cannot make a directory for the pushed tree")?;
    export_commit(commit, tree.path()).await?;
    let release = crate::deploy::deploy_dir(
        &client,
        &app,
        tree.path(),
        &format!("{} of {}", short_ref(&target.name), app),
        Some(commit.clone()),
    )
    .await?;
    let info = client.app(&app).await?;
    println!(
        "       v{}: {} deployed to wharf",
        release.version, info.web_url
    );
    Ok(())
}

fn short_ref(name: &str) -> &str {
    name.strip_prefix("refs/heads/").unwrap_or(name)
}

/// Writes the files of `commit` (in the repository git runs the hook in) into `dir`.
async fn export_commit(commit: &str, dir: &Path) -> anyhow::Result<()> {
    let commit = commit.to_owned();
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new("git")
            .args(["archive", "--format=tar", &commit])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot run git archive")?;
        let stdout = child.stdout.take().expect("piped stdout");
        let unpacked = tar::Archive::new(stdout).unpack(&dir);
        let output = child.wait_with_output()?;
        if !output.status.success() {
            bail!(
                "git archive {commit} failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        unpacked.with_context(|| format!("cannot unpack commit {commit}"))
    })
    .await?
}

/// `wharf git-credential get|store|erase`: git's credential helper protocol, answering `get`
/// with the saved login's token (any user name does; `wharf` is sent).
pub fn credential(global: &Global, operation: &str) -> anyhow::Result<()> {
    // git sends the request's attributes; they need no answer but must be read.
    let mut request = String::new();
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        if line.is_empty() {
            break;
        }
        request.push_str(&line);
        request.push('\n');
    }
    if operation != "get" {
        return Ok(());
    }
    match context::token(global)? {
        Some(token) => {
            println!("username=wharf\npassword={token}");
            Ok(())
        }
        None => {
            // git then asks at the terminal, as without a helper.
            eprintln!(
                "wharf: not logged in: run `wharf login` (or set WHARF_TOKEN) for git to push"
            );
            Ok(())
        }
    }
}

/// `wharf git:remote`: adds (or points) the checkout's remote at the app's git URL, and has git
/// take the saved login's token for that URL.
pub async fn remote(global: &Global, app: &AppArg, name: &str) -> anyhow::Result<()> {
    let app = context::app_name(app)?;
    let client = context::client(global)?;
    let info = client.app(&app).await?;
    if !git(&["rev-parse", "--git-dir"])?.status.success() {
        bail!("this is not a git checkout: run `git init` (and commit your app) first");
    }
    let url = info.git_url;
    let exists = git(&["remote", "get-url", name])?.status.success();
    let change = if exists {
        git_ok(&["remote", "set-url", name, &url])?;
        "Updated"
    } else {
        git_ok(&["remote", "add", name, &url])?;
        "Added"
    };
    // An empty helper first: helpers of other scopes (a keychain) are not asked for this URL.
    let key = format!("credential.{url}.helper");
    let _ = git(&["config", "--local", "--unset-all", &key])?;
    git_ok(&["config", "--local", "--add", &key, ""])?;
    let server = context::server_url(global, context::load_credentials()?.as_ref());
    git_ok(&[
        "config",
        "--local",
        "--add",
        &key,
        &helper_command(&server)?,
    ])?;
    println!("{change} git remote {name} → {url}");
    println!("Deploy with:  git push {name} main");
    Ok(())
}

/// How git runs this executable as its credential helper: for the server at `url` only, so a
/// login to another server later never hands its token to this remote.
fn helper_command(url: &str) -> anyhow::Result<String> {
    let exe = std::env::current_exe().context("cannot find the wharf executable")?;
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    Ok(format!(
        "!{} --url {} git-credential",
        quote(&exe.to_string_lossy()),
        quote(url)
    ))
}

fn git(args: &[&str]) -> anyhow::Result<std::process::Output> {
    Command::new("git")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("cannot run git: is it installed?")
}

fn git_ok(args: &[&str]) -> anyhow::Result<()> {
    let output = git(args)?;
    if !output.status.success() {
        bail!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// `wharf tls ca`: where the CA certificate of the server with this data directory is.
pub fn ca(data_dir: Option<PathBuf>) -> anyhow::Result<()> {
    let data_dir = match data_dir {
        Some(dir) => dir,
        None => crate::server::default_data_dir()?,
    };
    let path = wharf_server::tls::ca_path(&data_dir);
    if !path.is_file() {
        bail!(
            "{} has no CA yet: wharf makes it when `wharf server` first starts with this data directory",
            data_dir.display()
        );
    }
    println!("{}", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pushed_refs() {
        let input = "0000000000000000000000000000000000000000 1111111111111111111111111111111111111111 refs/heads/main\n\
                     2222222222222222222222222222222222222222 0000000000000000000000000000000000000000 refs/heads/old\n";
        let updates = parse_updates(input.as_bytes()).unwrap();
        assert_eq!(updates.len(), 2);
        assert_eq!(updates[0].name, "refs/heads/main");
        assert!(!is_deletion(&updates[0]));
        assert!(is_deletion(&updates[1]));
        assert!(parse_updates("just two".as_bytes()).is_err());
    }
}
