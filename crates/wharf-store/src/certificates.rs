//! TLS certificates of apps (Heroku's SNI endpoints): add, list, find, replace, remove, and all
//! of them for the router. Private keys are sealed at rest like config values; the store keeps
//! what it is given and doesn't read certificates (the server checks them first).

use sqlx::any::AnyRow;
use sqlx::Row;

use crate::secrets::Column;
use crate::{conflict_on_unique, new_id, now, Result, Store, StoreError};

/// Where a certificate came from.
pub const SOURCE_UPLOADED: &str = "uploaded";
pub const SOURCE_ACME: &str = "acme";

/// A certificate as stored, its key opened.
#[derive(Clone, PartialEq, Eq)]
pub struct CertificateRecord {
    pub id: String,
    pub app_id: String,
    pub name: String,
    /// [`SOURCE_UPLOADED`] or [`SOURCE_ACME`].
    pub source: String,
    /// PEM, the certificate first.
    pub certificate_chain: String,
    /// PEM.
    pub private_key: String,
    pub created_at: String,
    pub updated_at: String,
}

impl std::fmt::Debug for CertificateRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateRecord")
            .field("id", &self.id)
            .field("app_id", &self.app_id)
            .field("name", &self.name)
            .field("source", &self.source)
            .field("private_key", &"[redacted]")
            .finish_non_exhaustive()
    }
}

const SELECT: &str = "SELECT id, app_id, name, source, certificate_chain, private_key, \
     created_at, updated_at FROM certificates";

impl Store {
    fn certificate_from_row(&self, row: &AnyRow) -> Result<CertificateRecord> {
        Ok(CertificateRecord {
            id: row.try_get("id")?,
            app_id: row.try_get("app_id")?,
            name: row.try_get("name")?,
            source: row.try_get("source")?,
            certificate_chain: row.try_get("certificate_chain")?,
            private_key: self
                .secrets
                .open(Column::CertificateKey, row.try_get("private_key")?)?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }

    /// Adds a certificate to the app under `name` (unique among all apps').
    pub async fn add_certificate(
        &self,
        app_id: &str,
        name: &str,
        source: &str,
        certificate_chain: &str,
        private_key: &str,
    ) -> Result<CertificateRecord> {
        let id = new_id();
        let at = now();
        sqlx::query(
            "INSERT INTO certificates (id, app_id, name, source, certificate_chain, private_key, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
        )
        .bind(&id)
        .bind(app_id)
        .bind(name)
        .bind(source)
        .bind(certificate_chain)
        .bind(self.secrets.seal(Column::CertificateKey, private_key))
        .bind(&at)
        .execute(&self.pool)
        .await
        .map_err(|e| conflict_on_unique(e, || format!("a certificate named `{name}` exists")))?;
        self.certificate(app_id, &id).await
    }

    /// The app's certificates, oldest first.
    pub async fn certificates(&self, app_id: &str) -> Result<Vec<CertificateRecord>> {
        let rows = sqlx::query(&format!(
            "{SELECT} WHERE app_id = $1 ORDER BY created_at, name"
        ))
        .bind(app_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| self.certificate_from_row(r)).collect()
    }

    /// Every app's certificates: what the router serves.
    pub async fn all_certificates(&self) -> Result<Vec<CertificateRecord>> {
        let rows = sqlx::query(&format!("{SELECT} ORDER BY created_at, name"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| self.certificate_from_row(r)).collect()
    }

    /// The app's certificate whose id or name is `ident`.
    pub async fn certificate(&self, app_id: &str, ident: &str) -> Result<CertificateRecord> {
        let row = sqlx::query(&format!(
            "{SELECT} WHERE app_id = $1 AND (id = $2 OR name = $2)"
        ))
        .bind(app_id)
        .bind(ident)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::NotFound {
            kind: "sni_endpoint",
            ident: ident.to_owned(),
        })?;
        self.certificate_from_row(&row)
    }

    /// Replaces the certificate and key of the app's certificate `ident`.
    pub async fn replace_certificate(
        &self,
        app_id: &str,
        ident: &str,
        source: &str,
        certificate_chain: &str,
        private_key: &str,
    ) -> Result<CertificateRecord> {
        let current = self.certificate(app_id, ident).await?;
        sqlx::query(
            "UPDATE certificates SET source = $2, certificate_chain = $3, private_key = $4, \
             updated_at = $5 WHERE id = $1",
        )
        .bind(&current.id)
        .bind(source)
        .bind(certificate_chain)
        .bind(self.secrets.seal(Column::CertificateKey, private_key))
        .bind(now())
        .execute(&self.pool)
        .await?;
        self.certificate(app_id, &current.id).await
    }

    /// Removes the app's certificate `ident` and returns it as it was; domains it was chosen
    /// for go back to any certificate that covers them.
    pub async fn remove_certificate(&self, app_id: &str, ident: &str) -> Result<CertificateRecord> {
        let cert = self.certificate(app_id, ident).await?;
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE domains SET certificate_id = NULL WHERE certificate_id = $1")
            .bind(&cert.id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM certificates WHERE id = $1")
            .bind(&cert.id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(cert)
    }

    /// The ACME account credentials kept for `directory`, opened.
    pub async fn acme_account(&self, directory: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT credentials FROM acme_accounts WHERE directory = $1")
            .bind(directory)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            self.secrets
                .open(Column::AcmeAccount, r.try_get("credentials")?)
        })
        .transpose()
    }

    /// Keeps the ACME account credentials for `directory` (the first ones kept stay).
    pub async fn save_acme_account(&self, directory: &str, credentials: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO acme_accounts (directory, credentials, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (directory) DO NOTHING",
        )
        .bind(directory)
        .bind(self.secrets.seal(Column::AcmeAccount, credentials))
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
