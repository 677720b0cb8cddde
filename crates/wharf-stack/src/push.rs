//! Copying a release image out of wharf's store to another registry (`WHARF_REGISTRY_URL`): the
//! counterpart of [`crate::import`], with the same tool (`skopeo copy`). The image goes as it is
//! stored, so its digest there is its digest here.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use base64::Engine;
use wharf_image::{Digest, ImageStore};

use crate::StackError;

/// Where release images are pushed: `WHARF_REGISTRY_URL` and its credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct PushTarget {
    /// `host[:port]`
    pub host: String,
    /// Repositories go under this path (`team` → `host/team/<app>`); may be empty.
    pub namespace: String,
    /// `http://`: the registry speaks plain HTTP (or TLS wharf doesn't verify).
    pub insecure: bool,
    /// User name and password (or token), if the registry wants them.
    pub credentials: Option<(String, String)>,
}

impl std::fmt::Debug for PushTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushTarget")
            .field("host", &self.host)
            .field("namespace", &self.namespace)
            .field("insecure", &self.insecure)
            .field(
                "credentials",
                &self
                    .credentials
                    .as_ref()
                    .map(|(user, _)| (user, "<redacted>")),
            )
            .finish()
    }
}

impl PushTarget {
    /// Reads `https://host[:port][/namespace]` (or `http://` for a registry without TLS).
    pub fn parse(url: &str) -> Result<PushTarget, String> {
        let explain = |why: &str| {
            format!(
                "`{}` is not a registry URL ({why}): give https://HOST[:PORT][/NAMESPACE], \
                 or http:// for a registry without TLS",
                url.chars().take(200).collect::<String>()
            )
        };
        let (insecure, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (false, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (true, rest)
        } else {
            return Err(explain("it starts with neither https:// nor http://"));
        };
        let rest = rest.trim_end_matches('/');
        let (host, namespace) = rest.split_once('/').unwrap_or((rest, ""));
        if host.is_empty()
            || !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        {
            return Err(explain("its host is not a host name or address"));
        }
        if !namespace.split('/').all(|part| {
            namespace.is_empty()
                || (!part.is_empty()
                    && part.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b)
                    }))
        }) {
            return Err(explain(
                "its path is not a repository namespace: lowercase letters, digits, `._-`, parts joined by `/`",
            ));
        }
        Ok(PushTarget {
            host: host.to_owned(),
            namespace: namespace.to_owned(),
            insecure,
            credentials: None,
        })
    }

    /// The repository `app`'s images go to: `host[/namespace]/app`.
    pub fn repository(&self, app: &str) -> String {
        if self.namespace.is_empty() {
            format!("{}/{app}", self.host)
        } else {
            format!("{}/{}/{app}", self.host, self.namespace)
        }
    }
}

/// Pushes image `manifest` of `store` to `reference` (`host/…/repo:tag`) at `target`, each line
/// of skopeo's output to `progress`. `work` is a scratch directory (removed afterwards): the
/// image is copied there as an OCI layout of its own, which skopeo reads.
pub async fn push(
    store: &ImageStore,
    manifest: &Digest,
    target: &PushTarget,
    reference: &str,
    work: &Path,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<(), StackError> {
    let skopeo = crate::import::find_skopeo().ok_or(StackError::NoSkopeo)?;
    let _ = std::fs::remove_dir_all(work);
    let result = async {
        let layout = work.join("layout");
        let (from, to, wanted) = (store.clone(), layout.clone(), manifest.clone());
        tokio::task::spawn_blocking(move || -> Result<(), StackError> {
            let out = ImageStore::open(&to)?;
            out.copy_image(&from, &wanted)?;
            out.tag("image", &wanted)?;
            Ok(())
        })
        .await
        .map_err(|e| StackError::Io {
            action: "copy the image to",
            path: layout.clone(),
            source: std::io::Error::other(e.to_string()),
        })??;
        // Credentials go in an auth file only its owner reads, never on a command line.
        let authfile = work.join("auth.json");
        let auths = match &target.credentials {
            Some((user, password)) => serde_json::json!({
                target.host.clone(): {
                    "auth": base64::engine::general_purpose::STANDARD
                        .encode(format!("{user}:{password}")),
                }
            }),
            None => serde_json::json!({}),
        };
        write_private(
            &authfile,
            &serde_json::json!({ "auths": auths }).to_string(),
        )?;
        let mut command = tokio::process::Command::new(&skopeo);
        command
            .arg("copy")
            .arg("--authfile")
            .arg(&authfile)
            .arg(format!("--dest-tls-verify={}", !target.insecure))
            // The image as it is: the same manifest, so the same digest.
            .arg("--preserve-digests")
            .arg(format!("oci:{}:image", layout.display()))
            .arg(format!("docker://{reference}"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let (status, last) = crate::run_streamed(command, &skopeo, progress).await?;
        if status.success() {
            Ok(())
        } else {
            Err(StackError::Skopeo {
                reference: reference.to_owned(),
                status,
                last,
            })
        }
    }
    .await;
    let _ = std::fs::remove_dir_all(work);
    result
}

fn write_private(path: &Path, contents: &str) -> Result<(), StackError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let io = |source| StackError::Io {
        action: "write",
        path: PathBuf::from(path),
        source,
    };
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(contents.as_bytes()))
        .map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_urls_are_read_and_checked() {
        let target = PushTarget::parse("https://registry.example.com:5000/team/web/").unwrap();
        assert_eq!(target.host, "registry.example.com:5000");
        assert_eq!(target.namespace, "team/web");
        assert!(!target.insecure);
        assert_eq!(
            target.repository("shop"),
            "registry.example.com:5000/team/web/shop"
        );
        let plain = PushTarget::parse("http://127.0.0.1:5000").unwrap();
        assert!(plain.insecure);
        assert_eq!(plain.repository("shop"), "127.0.0.1:5000/shop");
        for bad in [
            "registry.example.com",
            "ftp://x",
            "https://",
            "https://a b",
            "https://host/Team",
            "https://host//x",
        ] {
            let error = PushTarget::parse(bad).unwrap_err();
            assert!(
                error.contains("https://HOST[:PORT][/NAMESPACE]"),
                "{bad}: {error}"
            );
        }
        let mut with_password = plain;
        with_password.credentials = Some(("ci".into(), "hunter2".into()));
        assert!(!format!("{with_password:?}").contains("hunter2"));
    }
}
