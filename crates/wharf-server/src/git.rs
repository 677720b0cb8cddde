//! git push: every app has a bare repository, `<data dir>/git/<app id>.git` (by id, so a rename
//! keeps it), made on first use and removed with the app. git's smart HTTP protocol is served by
//! git itself (`git http-backend`, run per request as a CGI program in its own process group);
//! a push runs one `pre-receive` hook for every repository, which hands the pushed commit to
//! `wharf git-receive-hook`: that deploys it through this API as the pusher, and whatever it
//! prints reaches the pushing terminal as `remote:` lines. A hook that fails rejects the push.

use std::collections::HashMap;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

/// The hook every repository runs before it takes a push. `WHARF_EXE` and the variables the
/// CLI needs come from the server, per request.
const PRE_RECEIVE: &str = r#"#!/bin/sh
# Written by wharf at every start: deploys pushes to main or master.
if [ -z "$WHARF_EXE" ]; then
  echo "this wharf server can't build pushes: it runs without the wharf executable" >&2
  exit 1
fi
exec "$WHARF_EXE" git-receive-hook
"#;

/// Where each app's repository lives, and how a push reaches the deploy.
#[derive(Debug, Clone)]
pub struct GitRepos {
    /// `<data dir>/git`: one bare repository per app, and the shared hooks.
    root: PathBuf,
    /// The `wharf` executable the hook runs; `None` when the server is embedded in something
    /// else (pushes are then refused with a reason).
    exe: Option<PathBuf>,
    /// The API's URL as the server itself reaches it (loopback), for the hook's deploy.
    api_url: String,
    /// The largest pack a push may send (git's `receive.maxInputSize`).
    max_push_bytes: u64,
    /// One lock per app, held for the whole of a push.
    pushes: Arc<std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

/// How a request to a repository is answered by `git http-backend`.
#[derive(Debug)]
pub struct BackendRequest<'a> {
    pub app_id: &'a str,
    pub app_name: &'a str,
    /// What follows `<app>.git` in the URL: `/info/refs`, `/git-receive-pack`…
    pub suffix: &'a str,
    pub method: &'a str,
    pub query: &'a str,
    pub content_type: Option<&'a str>,
    pub content_length: Option<u64>,
    pub content_encoding: Option<&'a str>,
    /// The `Git-Protocol` header (protocol v2 negotiation).
    pub git_protocol: Option<&'a str>,
    /// Who pushes: the account's email, and the token the hook deploys with.
    pub user: &'a str,
    pub token: &'a str,
}

/// The CGI answer's status and headers; its body follows as a stream.
#[derive(Debug)]
pub struct BackendHead {
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

impl GitRepos {
    /// Makes `<data dir>/git` (private) and writes the hook.
    pub fn open(
        data_dir: &Path,
        exe: Option<PathBuf>,
        api_url: String,
        max_push_bytes: u64,
    ) -> std::io::Result<GitRepos> {
        let root = data_dir.join("git");
        let hooks = root.join("hooks");
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&hooks)?;
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700))?;
        let hook = hooks.join("pre-receive");
        let tmp = hooks.join("pre-receive.tmp");
        std::fs::write(&tmp, PRE_RECEIVE)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o700))?;
        std::fs::rename(&tmp, &hook)?;
        Ok(GitRepos {
            root,
            exe,
            api_url,
            max_push_bytes,
            pushes: Arc::default(),
        })
    }

    fn push_lock(&self, app_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut pushes = self.pushes.lock().expect("push locks");
        // Forget the locks nobody holds or waits for, so the map stays as small as the pushes.
        pushes.retain(|_, lock| Arc::strong_count(lock) > 1);
        pushes.entry(app_id.to_owned()).or_default().clone()
    }

    fn repo_dir(&self, app_id: &str) -> PathBuf {
        self.root.join(format!("{app_id}.git"))
    }

    /// The app's repository, made (empty, bare, on branch main) if it has none yet. Made under
    /// a temporary name and renamed, so two first pushes at once can't see half a repository.
    pub async fn ensure(&self, app_id: &str) -> std::io::Result<PathBuf> {
        let dir = self.repo_dir(app_id);
        if dir.join("HEAD").is_file() {
            return Ok(dir);
        }
        let tmp = self
            .root
            .join(format!(".init-{app_id}-{}", uuid::Uuid::new_v4()));
        let mut init = Command::new("git");
        // Not the server user's git settings (an object format, templates): a plain repository.
        init.env_clear();
        if let Some(path) = std::env::var_os("PATH") {
            init.env("PATH", path);
        }
        let output = init
            .args(["init", "--quiet", "--bare", "--initial-branch=main"])
            .arg(&tmp)
            .env("HOME", &self.root)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .stdin(Stdio::null())
            .output()
            .await?;
        if !output.status.success() {
            let _ = tokio::fs::remove_dir_all(&tmp).await;
            return Err(std::io::Error::other(format!(
                "git init failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        match tokio::fs::rename(&tmp, &dir).await {
            Ok(()) => Ok(dir),
            // Another request made it first.
            Err(_) if dir.join("HEAD").is_file() => {
                let _ = tokio::fs::remove_dir_all(&tmp).await;
                Ok(dir)
            }
            Err(e) => {
                let _ = tokio::fs::remove_dir_all(&tmp).await;
                Err(e)
            }
        }
    }

    /// Forgets a destroyed app's repository.
    pub async fn remove(&self, app_id: &str) -> std::io::Result<()> {
        match tokio::fs::remove_dir_all(self.repo_dir(app_id)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Runs `git http-backend` for one request: `body` is streamed to it, and its answer comes
    /// back as a head and a body stream. The backend and everything it starts (receive-pack,
    /// the hook, the deploy) are killed when the body stream is dropped before its end, i.e.
    /// when the client goes away.
    pub async fn serve(
        &self,
        request: BackendRequest<'_>,
        body: impl Stream<Item = Result<Bytes, axum::Error>> + Send + Unpin + 'static,
    ) -> std::io::Result<(
        BackendHead,
        impl Stream<Item = std::io::Result<Bytes>> + Send + 'static,
    )> {
        self.ensure(request.app_id).await?;
        // One push of an app at a time: a second waits, so two deploys never race and a ref
        // moves only after its own deploy. Fetches need no lock.
        let pushing = match request.suffix {
            "/git-receive-pack" => Some(self.push_lock(request.app_id).lock_owned().await),
            _ => None,
        };
        let mut command = self.backend_command(&request);
        let mut child = command.spawn()?;
        let group = child.id().map(|pid| pid as i32);
        let mut stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut stderr = child.stderr.take().expect("piped stderr");
        // From here, whatever way this ends early (an error, the client gone), the whole
        // process group dies with `running`.
        let mut running = Running {
            child: Some(child),
            group,
        };

        // The request body goes in while the answer comes out: git may answer before it has
        // read everything (an error), and a large push must not wait for the whole answer.
        tokio::spawn(async move {
            let mut body = body;
            while let Some(chunk) = body.next().await {
                let Ok(chunk) = chunk else { break };
                if stdin.write_all(&chunk).await.is_err() {
                    break;
                }
            }
            // Dropping stdin closes it: the end of the request.
        });
        let errors = tokio::spawn(async move {
            let mut text = Vec::new();
            let _ = (&mut stderr).take(64 * 1024).read_to_end(&mut text).await;
            // Keep reading (and dropping) the rest, so git never blocks on a full pipe.
            let _ = tokio::io::copy(&mut stderr, &mut tokio::io::sink()).await;
            String::from_utf8_lossy(&text).into_owned()
        });

        let mut reader = BufReader::new(stdout);
        let head = match read_cgi_head(&mut reader).await {
            Ok(head) => head,
            Err(e) => {
                // Kill the group first: a hook still running would hold stderr open.
                drop(running);
                let detail = tokio::time::timeout(Duration::from_secs(5), errors)
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .unwrap_or_default();
                return Err(std::io::Error::other(format!(
                    "git http-backend gave no answer ({e}): {}",
                    detail.trim()
                )));
            }
        };
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(8);
        tokio::spawn(async move {
            let _pushing = pushing;
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let read = tokio::select! {
                    read = reader.read(&mut buf) => read,
                    // The client went away (while git is quiet, e.g. a build runs): `running`
                    // kills the process group.
                    () = tx.closed() => return,
                };
                match read {
                    Ok(0) => break,
                    Ok(n) => {
                        if tx
                            .send(Ok(Bytes::copy_from_slice(&buf[..n])))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                }
            }
            let status = running.wait().await;
            let detail = errors.await.unwrap_or_default();
            match status {
                Ok(status) if status.success() => {}
                Ok(status) => {
                    tracing::warn!(%status, stderr = %detail.trim(), "git http-backend failed")
                }
                Err(e) => tracing::warn!(error = %e, "cannot wait for git http-backend"),
            }
        });
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        Ok((head, stream))
    }

    fn backend_command(&self, request: &BackendRequest<'_>) -> Command {
        let mut command = Command::new("git");
        command.arg("http-backend");
        // git and its hook see only what they need: none of the server's own settings or
        // secrets (the database URL, the admin token) reach a push.
        command.env_clear();
        if let Some(path) = std::env::var_os("PATH") {
            command.env("PATH", path);
        }
        let configs = [
            (
                "core.hooksPath",
                self.root.join("hooks").display().to_string(),
            ),
            ("http.receivepack", "true".to_owned()),
            ("receive.maxInputSize", self.max_push_bytes.to_string()),
            // Heroku's remotes are pushed with --force now and then; history is the user's.
            ("receive.denyNonFastForwards", "false".to_owned()),
        ];
        command.env("GIT_CONFIG_COUNT", configs.len().to_string());
        for (i, (key, value)) in configs.iter().enumerate() {
            command.env(format!("GIT_CONFIG_KEY_{i}"), key);
            command.env(format!("GIT_CONFIG_VALUE_{i}"), value);
        }
        command
            .env("HOME", &self.root)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_PROJECT_ROOT", &self.root)
            .env("GIT_HTTP_EXPORT_ALL", "1")
            .env(
                "PATH_INFO",
                format!("/{}.git{}", request.app_id, request.suffix),
            )
            .env("REQUEST_METHOD", request.method)
            .env("QUERY_STRING", request.query)
            .env("REMOTE_USER", request.user)
            .env("REMOTE_ADDR", "127.0.0.1");
        if let Some(value) = request.content_type {
            command.env("CONTENT_TYPE", value);
        }
        if let Some(value) = request.content_length {
            command.env("CONTENT_LENGTH", value.to_string());
        }
        if let Some(value) = request.content_encoding {
            command.env("HTTP_CONTENT_ENCODING", value);
        }
        if let Some(value) = request.git_protocol {
            command.env("GIT_PROTOCOL", value);
        }
        // What the hook needs to deploy as the pusher.
        if let Some(exe) = &self.exe {
            command.env("WHARF_EXE", exe);
        }
        command
            .env("WHARF_URL", &self.api_url)
            .env("WHARF_TOKEN", request.token)
            .env("WHARF_APP", request.app_name)
            // Not the server's user's saved login: the pusher's token only.
            .env("WHARF_CONFIG_DIR", self.root.join("hooks"));
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        command
    }
}

/// The backend's process group while it runs; killed if dropped before it ends.
struct Running {
    child: Option<Child>,
    group: Option<i32>,
}

impl Running {
    async fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        let status = self.child.as_mut().expect("a running child").wait().await;
        self.child = None;
        status
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.child.is_some() {
            if let Some(group) = self.group {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(group),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}

/// Reads a CGI answer's head: `Name: value` lines up to an empty line; `Status: 404 …` sets
/// the status (200 otherwise).
async fn read_cgi_head(
    reader: &mut (impl AsyncBufReadExt + Unpin),
) -> std::io::Result<BackendHead> {
    let mut head = BackendHead {
        status: 200,
        headers: Vec::new(),
    };
    let mut line = String::new();
    let mut total = 0;
    loop {
        line.clear();
        let n = reader.read_line(&mut line).await?;
        total += n;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the answer ended inside its head",
            ));
        }
        if total > 64 * 1024 {
            return Err(std::io::Error::other("the answer's head is too large"));
        }
        let text = line.trim_end_matches(['\r', '\n']);
        if text.is_empty() {
            return Ok(head);
        }
        let Some((name, value)) = text.split_once(':') else {
            return Err(std::io::Error::other(format!(
                "a malformed header line `{text}`"
            )));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            head.status = value
                .split_whitespace()
                .next()
                .and_then(|code| code.parse().ok())
                .ok_or_else(|| std::io::Error::other(format!("a malformed status `{value}`")))?;
        } else {
            head.headers.push((name.to_owned(), value.to_owned()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_cgi_heads() {
        let mut input: &[u8] =
            b"Status: 403 Forbidden\r\nContent-Type: text/plain\r\n\r\nbody here";
        let head = read_cgi_head(&mut input).await.unwrap();
        assert_eq!(head.status, 403);
        assert_eq!(
            head.headers,
            vec![("Content-Type".to_owned(), "text/plain".to_owned())]
        );
        assert_eq!(input, b"body here");

        let mut input: &[u8] = b"Expires: never\n\n";
        assert_eq!(read_cgi_head(&mut input).await.unwrap().status, 200);

        let mut input: &[u8] = b"Content-Type: x\r\n";
        assert!(read_cgi_head(&mut input).await.is_err());
        let mut input: &[u8] = b"no colon\r\n\r\n";
        assert!(read_cgi_head(&mut input).await.is_err());
    }
}
