//! Fetching runtimes over HTTP(S): registry documents, and archives checked against their
//! published digest and unpacked once per machine.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine;
use futures_util::StreamExt;
use sha2::{Digest as _, Sha256, Sha512};

use crate::error::BuildError;
use crate::log::BuildLog;
use crate::sandbox::Limits;
use crate::tree;

/// What an archive must hash to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Digest {
    /// A subresource-integrity string, as npm publishes (`sha512-<base64>`).
    Integrity(String),
    /// A hex SHA-256, as CPython archive sources publish next to each archive.
    Sha256(String),
    /// The source publishes none (the download is trusted as its transport is).
    Unpublished,
}

/// Downloads for one build, bounded by its time limit and cancel.
pub(crate) struct Fetcher<'a> {
    client: reqwest::Client,
    cache_dir: &'a Path,
    log: &'a BuildLog,
    limits: &'a Limits,
}

/// How long connecting to a runtime source may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

impl<'a> Fetcher<'a> {
    pub(crate) fn new(
        cache_dir: &'a Path,
        log: &'a BuildLog,
        limits: &'a Limits,
    ) -> Result<Self, BuildError> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("wharf/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|e| BuildError::Download {
                what: "(client)".to_owned(),
                url: String::new(),
                reason: e.to_string(),
            })?;
        Ok(Fetcher {
            client,
            cache_dir,
            log,
            limits,
        })
    }

    /// Runs `fut` until it ends, the build is cancelled, or its time runs out.
    async fn bounded<T>(&self, fut: impl std::future::Future<Output = T>) -> Result<T, BuildError> {
        let deadline = tokio::time::sleep_until(self.limits.deadline);
        tokio::select! {
            out = fut => Ok(out),
            () = self.limits.cancel.cancelled() => Err(BuildError::Cancelled),
            () = deadline => Err(BuildError::TimedOut { after: self.limits.timeout }),
        }
    }

    fn failed(what: &str, url: &str, reason: impl std::fmt::Display) -> BuildError {
        BuildError::Download {
            what: what.to_owned(),
            url: url.to_owned(),
            reason: reason.to_string(),
        }
    }

    /// `GET url`, answered 2xx; `None` on 404.
    async fn get(
        &self,
        what: &str,
        url: &str,
        accept: &str,
    ) -> Result<Option<reqwest::Response>, BuildError> {
        let send = self.client.get(url).header("accept", accept).send();
        let response = self
            .bounded(send)
            .await?
            .map_err(|e| Self::failed(what, url, e))?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        response
            .error_for_status()
            .map(Some)
            .map_err(|e| Self::failed(what, url, e))
    }

    /// `GET url` as JSON (`accept` names the document wanted); `None` on 404.
    pub(crate) async fn json(
        &self,
        what: &str,
        url: &str,
        accept: &str,
    ) -> Result<Option<serde_json::Value>, BuildError> {
        let Some(response) = self.get(what, url, accept).await? else {
            return Ok(None);
        };
        let body = self
            .bounded(response.bytes())
            .await?
            .map_err(|e| Self::failed(what, url, e))?;
        serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| Self::failed(what, url, format!("the answer is not JSON: {e}")))
    }

    /// `GET url` as text; `None` on 404.
    pub(crate) async fn text(&self, what: &str, url: &str) -> Result<Option<String>, BuildError> {
        let Some(response) = self.get(what, url, "text/plain, */*").await? else {
            return Ok(None);
        };
        self.bounded(response.text())
            .await?
            .map(Some)
            .map_err(|e| Self::failed(what, url, e))
    }

    /// Whether `HEAD url` answers 2xx (404 and 403 are "no"; other failures are errors).
    pub(crate) async fn exists(&self, what: &str, url: &str) -> Result<bool, BuildError> {
        let response = self
            .bounded(self.client.head(url).send())
            .await?
            .map_err(|e| Self::failed(what, url, e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(true);
        }
        if status == reqwest::StatusCode::NOT_FOUND || status == reqwest::StatusCode::FORBIDDEN {
            return Ok(false);
        }
        Err(Self::failed(what, url, format!("it answered {status}")))
    }

    /// The directory where `kind/version` is unpacked on this machine, when it already is.
    pub(crate) fn cached(&self, kind: &str, version: &str) -> Option<PathBuf> {
        let dir = self.cache_dir.join(kind).join(version);
        dir.is_dir().then_some(dir)
    }

    /// Versions of `kind` already unpacked on this machine.
    pub(crate) fn cached_versions(&self, kind: &str) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.cache_dir.join(kind)) else {
            return Vec::new();
        };
        entries
            .filter_map(Result::ok)
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|name| !name.starts_with('.'))
            .collect()
    }

    /// `kind/version` unpacked on this machine: downloaded from `url` (a `.tar.gz` or `.tgz`),
    /// checked against `digest`, and unpacked — the first time only.
    pub(crate) async fn unpacked(
        &self,
        what: &str,
        kind: &str,
        version: &str,
        url: &str,
        digest: &Digest,
    ) -> Result<PathBuf, BuildError> {
        if let Some(dir) = self.cached(kind, version) {
            self.log.note(&format!(
                "{what}: on this machine already (downloaded before)"
            ));
            return Ok(dir);
        }
        let kind_dir = self.cache_dir.join(kind);
        std::fs::create_dir_all(&kind_dir)
            .map_err(|e| BuildError::io("create directory", &kind_dir, e))?;
        sweep_partials(&kind_dir);
        let partial = tempfile::Builder::new()
            .prefix(".partial-")
            .tempdir_in(&kind_dir)
            .map_err(|e| BuildError::io("create a directory in", &kind_dir, e))?;
        let archive = partial.path().join("archive");
        self.download(what, url, &archive, digest).await?;

        let unpack_to = partial.path().join("tree");
        let from = archive.clone();
        let into = unpack_to.clone();
        let url_owned = url.to_owned();
        let what_owned = what.to_owned();
        tree::blocking(move || unpack(&from, &into, &what_owned, &url_owned)).await?;

        let dir = kind_dir.join(version);
        match std::fs::rename(&unpack_to, &dir) {
            Ok(()) => Ok(dir),
            // Another build unpacked the same version meanwhile: use theirs.
            Err(_) if dir.is_dir() => Ok(dir),
            Err(e) => Err(BuildError::io("rename", &unpack_to, e)),
        }
    }

    /// Streams `url` to `dest`, hashing as it goes, and checks the digest.
    async fn download(
        &self,
        what: &str,
        url: &str,
        dest: &Path,
        digest: &Digest,
    ) -> Result<(), BuildError> {
        let started = Instant::now();
        let response = self
            .bounded(self.client.get(url).send())
            .await?
            .map_err(|e| Self::failed(what, url, e))?
            .error_for_status()
            .map_err(|e| Self::failed(what, url, e))?;
        let total = response.content_length();
        self.log.note(&format!(
            "downloading {what} from {url}{}",
            total.map(|t| format!(" ({})", size(t))).unwrap_or_default()
        ));
        let mut file =
            std::fs::File::create(dest).map_err(|e| BuildError::io("create", dest, e))?;
        let mut sha256 = Sha256::new();
        let mut sha512 = Sha512::new();
        let mut got: u64 = 0;
        let mut next_report = 25;
        let mut body = response.bytes_stream();
        while let Some(chunk) = self.bounded(body.next()).await? {
            let chunk = chunk.map_err(|e| Self::failed(what, url, e))?;
            sha256.update(&chunk);
            sha512.update(&chunk);
            file.write_all(&chunk)
                .map_err(|e| BuildError::io("write", dest, e))?;
            got += chunk.len() as u64;
            if let Some(total) = total.filter(|t| *t > 8 << 20) {
                let percent = got * 100 / total;
                if percent >= next_report && percent < 100 {
                    self.log.note(&format!("  {percent}% of {}", size(total)));
                    next_report = (percent / 25 + 1) * 25;
                }
            }
        }
        file.sync_all()
            .map_err(|e| BuildError::io("write", dest, e))?;
        if let Some(total) = total.filter(|t| *t != got) {
            return Err(Self::failed(
                what,
                url,
                format!("the download ended after {got} of {total} bytes"),
            ));
        }
        let sha256 = sha256.finalize();
        let sha512 = sha512.finalize();
        let (expected, actual) = match digest {
            Digest::Integrity(sri) => {
                let (algo, _) = sri.split_once('-').unwrap_or(("", ""));
                let actual = match algo {
                    "sha512" => base64::engine::general_purpose::STANDARD.encode(sha512),
                    "sha256" => base64::engine::general_purpose::STANDARD.encode(sha256),
                    other => {
                        return Err(Self::failed(
                            what,
                            url,
                            format!(
                                "its integrity `{sri}` uses `{other}`, which wharf doesn't check"
                            ),
                        ))
                    }
                };
                (sri.clone(), format!("{algo}-{actual}"))
            }
            Digest::Sha256(hex_digest) => (hex_digest.to_ascii_lowercase(), hex::encode(sha256)),
            Digest::Unpublished => (String::new(), String::new()),
        };
        if expected != actual {
            return Err(BuildError::DigestMismatch {
                what: what.to_owned(),
                url: url.to_owned(),
                expected,
                actual,
            });
        }
        self.log.note(&format!(
            "downloaded {} in {:.1}s{}",
            size(got),
            started.elapsed().as_secs_f64(),
            match digest {
                Digest::Unpublished => ", no digest published to check it against",
                _ => ", digest checked",
            }
        ));
        Ok(())
    }
}

/// Removes what downloads cut short by a crash left behind (an hour old: no build still uses
/// it).
fn sweep_partials(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > Duration::from_secs(3600));
        if stale && entry.file_name().to_string_lossy().starts_with(".partial-") {
            let _ = tree::remove(&entry.path());
        }
    }
}

/// Unpacks a gzipped tar into `into` (the tar crate refuses entries that would land outside).
fn unpack(archive: &Path, into: &Path, what: &str, url: &str) -> Result<(), BuildError> {
    let file = std::fs::File::open(archive).map_err(|e| BuildError::io("open", archive, e))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(std::io::BufReader::new(file)));
    tar.set_preserve_permissions(true);
    tar.set_preserve_mtime(true);
    tar.set_unpack_xattrs(false);
    std::fs::create_dir_all(into).map_err(|e| BuildError::io("create directory", into, e))?;
    tar.unpack(into).map_err(|e| BuildError::Download {
        what: what.to_owned(),
        url: url.to_owned(),
        reason: format!("it is not a .tar.gz archive that can be unpacked: {e}"),
    })
}

fn size(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_megabytes() {
        assert_eq!(size(28_400_000), "28.4 MB");
    }
}
