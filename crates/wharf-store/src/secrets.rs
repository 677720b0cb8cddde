//! Config var values at rest: sealed with XChaCha20-Poly1305 under the server's secret key before
//! they reach the database (both the app's current values and every release's snapshot), opened
//! when read. A sealed value is `wharf:enc1:` followed by base64 of a random 24-byte nonce and
//! the ciphertext; the associated data names the column, so a value can't be moved to another.
//! Values written before a key was set (plain text) are still read, and [`Store::seal_config`]
//! seals them.

use std::sync::Arc;

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use crate::{Result, Store, StoreError};

const PREFIX: &str = "wharf:enc1:";

/// Which column a sealed value belongs to (the associated data).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Column {
    ConfigVars,
    ReleaseConfig,
    CertificateKey,
    AcmeAccount,
}

impl Column {
    fn label(self) -> &'static [u8] {
        match self {
            Column::ConfigVars => b"config_vars.value",
            Column::ReleaseConfig => b"releases.config",
            Column::CertificateKey => b"certificates.private_key",
            Column::AcmeAccount => b"acme_accounts.credentials",
        }
    }
}

/// The server's secret key, or none (values are then stored as they are: stores made for tests
/// and tools).
#[derive(Clone, Default)]
pub struct Secrets {
    cipher: Option<Arc<XChaCha20Poly1305>>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets")
            .field("key", &self.cipher.as_ref().map(|_| "[set]"))
            .finish()
    }
}

impl Secrets {
    /// Seals with a 32-byte key.
    pub fn new(key: &[u8; 32]) -> Secrets {
        Secrets {
            cipher: Some(Arc::new(XChaCha20Poly1305::new(key.into()))),
        }
    }

    /// Whether values are sealed.
    pub fn is_set(&self) -> bool {
        self.cipher.is_some()
    }

    pub(crate) fn seal(&self, column: Column, value: &str) -> String {
        let Some(cipher) = &self.cipher else {
            return value.to_owned();
        };
        let nonce: [u8; 24] = rand::random();
        let sealed = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: value.as_bytes(),
                    aad: column.label(),
                },
            )
            .expect("XChaCha20-Poly1305 seals any message that fits in memory");
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        format!(
            "{PREFIX}{}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes)
        )
    }

    pub(crate) fn open(&self, column: Column, stored: String) -> Result<String> {
        let Some(encoded) = stored.strip_prefix(PREFIX) else {
            return Ok(stored);
        };
        let cipher = self.cipher.as_ref().ok_or_else(|| {
            StoreError::Corrupt(
                "a config value is encrypted but this store has no secret key".to_owned(),
            )
        })?;
        let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(encoded)
            .ok()
            .filter(|b| b.len() >= 24)
            .ok_or_else(|| StoreError::Corrupt("a sealed config value is malformed".to_owned()))?;
        let (nonce, sealed) = bytes.split_at(24);
        let plain = cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: column.label(),
                },
            )
            .map_err(|_| {
                StoreError::Corrupt(
                    "a config value can't be decrypted: is WHARF_SECRET_KEY (or the data \
                     directory's secret-key file) the one it was written with?"
                        .to_owned(),
                )
            })?;
        String::from_utf8(plain)
            .map_err(|_| StoreError::Corrupt("a decrypted config value is not UTF-8".to_owned()))
    }
}

impl Store {
    /// This store with `secrets`: config values are sealed from now on.
    pub fn with_secrets(mut self, secrets: Secrets) -> Store {
        self.secrets = secrets;
        self
    }

    /// Seals every config value still stored in plain text (written before a key was set), in one
    /// transaction. Returns how many values and snapshots it sealed.
    pub async fn seal_config(&self) -> Result<u64> {
        use sqlx::Row;
        if !self.secrets.is_set() {
            return Ok(0);
        }
        let pattern = format!("{PREFIX}%");
        let mut tx = self.pool.begin().await?;
        let mut sealed = 0;
        let vars =
            sqlx::query("SELECT app_id, key, value FROM config_vars WHERE value NOT LIKE $1")
                .bind(&pattern)
                .fetch_all(&mut *tx)
                .await?;
        for row in vars {
            let value: String = row.try_get("value")?;
            sqlx::query("UPDATE config_vars SET value = $3 WHERE app_id = $1 AND key = $2")
                .bind(row.try_get::<String, _>("app_id")?)
                .bind(row.try_get::<String, _>("key")?)
                .bind(self.secrets.seal(Column::ConfigVars, &value))
                .execute(&mut *tx)
                .await?;
            sealed += 1;
        }
        let releases = sqlx::query("SELECT id, config FROM releases WHERE config NOT LIKE $1")
            .bind(&pattern)
            .fetch_all(&mut *tx)
            .await?;
        for row in releases {
            let config: String = row.try_get("config")?;
            sqlx::query("UPDATE releases SET config = $2 WHERE id = $1")
                .bind(row.try_get::<String, _>("id")?)
                .bind(self.secrets.seal(Column::ReleaseConfig, &config))
                .execute(&mut *tx)
                .await?;
            sealed += 1;
        }
        tx.commit().await?;
        if sealed > 0 && self.kind == crate::DatabaseKind::Sqlite {
            // The plain values still sit in freed pages and in the write-ahead log: rebuild the
            // file and empty the log, so no copy of them is left on disk.
            sqlx::query("VACUUM").execute(&self.pool).await?;
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&self.pool)
                .await?;
        }
        Ok(sealed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens_and_refuses_tampering() {
        let secrets = Secrets::new(&[7; 32]);
        let sealed = secrets.seal(Column::ConfigVars, "postgres://u:hunter2@db/prod");
        assert!(sealed.starts_with(PREFIX) && !sealed.contains("hunter2"));
        assert_ne!(
            sealed,
            secrets.seal(Column::ConfigVars, "postgres://u:hunter2@db/prod")
        );
        assert_eq!(
            secrets.open(Column::ConfigVars, sealed.clone()).unwrap(),
            "postgres://u:hunter2@db/prod"
        );
        // Another column, another key, or a changed byte: refused.
        assert!(secrets.open(Column::ReleaseConfig, sealed.clone()).is_err());
        assert!(Secrets::new(&[8; 32])
            .open(Column::ConfigVars, sealed.clone())
            .is_err());
        let mut tampered = sealed.into_bytes();
        let last = tampered.len() - 1;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert!(secrets
            .open(Column::ConfigVars, String::from_utf8(tampered).unwrap())
            .is_err());
        // Plain text from before a key was set is read as it is.
        assert_eq!(
            secrets.open(Column::ConfigVars, "plain".into()).unwrap(),
            "plain"
        );
        assert!(Secrets::default()
            .open(
                Column::ConfigVars,
                Secrets::new(&[7; 32]).seal(Column::ConfigVars, "x")
            )
            .is_err());
    }
}
