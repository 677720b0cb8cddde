//! The app's build cache: `cache_dir/<provider>/…`, kept between builds, never part of the app
//! tree. Besides tool caches (pip's, npm's, cargo's target dir) it holds saved dependency trees
//! (`venv`, `node_modules`) with a marker file holding the hash of the inputs they were built
//! from, so an unchanged lockfile restores them instead of reinstalling.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::BuildError;
use crate::tree;

/// One provider's part of the cache.
#[derive(Debug, Clone)]
pub(crate) struct ProviderCache {
    dir: PathBuf,
}

impl ProviderCache {
    pub(crate) fn new(cache_dir: &Path, provider: &str) -> Self {
        ProviderCache {
            dir: cache_dir.join(provider),
        }
    }

    /// The directory itself, for tool caches inside it.
    pub(crate) fn path(&self) -> &Path {
        &self.dir
    }

    fn marker(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.sha256"))
    }

    /// Copies the saved tree `name` to `into` if it was saved with `hash`; returns whether it did.
    pub(crate) async fn restore(
        &self,
        name: &str,
        hash: &str,
        into: &Path,
    ) -> Result<bool, BuildError> {
        let saved = self.dir.join(name);
        let marker = std::fs::read_to_string(self.marker(name)).unwrap_or_default();
        if marker.trim() != hash || !saved.is_dir() {
            return Ok(false);
        }
        let into = into.to_path_buf();
        tree::blocking(move || {
            tree::remove(&into)?;
            tree::copy_tree(&saved, &into)
        })
        .await?;
        Ok(true)
    }

    /// Saves a copy of `from` as tree `name`, built from inputs hashing to `hash`.
    pub(crate) async fn save(&self, name: &str, hash: &str, from: &Path) -> Result<(), BuildError> {
        let marker = self.marker(name);
        let saved = self.dir.join(name);
        let partial = self.dir.join(format!("{name}.partial"));
        let from = from.to_path_buf();
        let hash = hash.to_owned();
        let dir = self.dir.clone();
        tree::blocking(move || {
            std::fs::create_dir_all(&dir)
                .map_err(|e| BuildError::io("create directory", &dir, e))?;
            // The marker goes first and comes back last, so a half-written copy is never used.
            tree::remove(&marker)?;
            tree::remove(&partial)?;
            tree::copy_tree(&from, &partial)?;
            tree::remove(&saved)?;
            std::fs::rename(&partial, &saved).map_err(|e| BuildError::io("rename", &partial, e))?;
            std::fs::write(&marker, format!("{hash}\n"))
                .map_err(|e| BuildError::io("write", &marker, e))
        })
        .await
    }
}

/// The hash of a dependency install's inputs: each part is length-prefixed so that moving bytes
/// between parts changes the hash.
pub(crate) fn inputs_hash(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_depends_on_part_boundaries() {
        assert_ne!(inputs_hash(&[b"ab", b"c"]), inputs_hash(&[b"a", b"bc"]));
        assert_eq!(inputs_hash(&[b"x"]), inputs_hash(&[b"x"]));
    }

    #[tokio::test]
    async fn restore_needs_matching_marker() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = ProviderCache::new(&tmp.path().join("cache"), "python");
        let tree = tmp.path().join("venv");
        std::fs::create_dir_all(&tree).unwrap();
        std::fs::write(tree.join("f"), "1").unwrap();
        cache.save("venv", "h1", &tree).await.unwrap();

        let into = tmp.path().join("restored");
        assert!(!cache.restore("venv", "h2", &into).await.unwrap());
        assert!(!into.exists());
        assert!(cache.restore("venv", "h1", &into).await.unwrap());
        assert_eq!(std::fs::read_to_string(into.join("f")).unwrap(), "1");
    }
}
