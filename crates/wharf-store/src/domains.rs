//! Custom domains: add, list, find, remove; and the whole hostname table the router is fed.

use sqlx::any::AnyRow;
use sqlx::Row;
use wharf_core::domain::Hostname;

use crate::{conflict_on_unique, new_id, now, Result, Store, StoreError};

/// A custom domain as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainRecord {
    pub id: String,
    pub app_id: String,
    pub hostname: Hostname,
    /// The certificate chosen to serve it, if one was (else any of the app's that covers it).
    pub certificate_id: Option<String>,
    /// ACM: `pending`, `cert issued` or `failing`; `None` while ACM is off.
    pub acm_status: Option<String>,
    pub acm_status_reason: Option<String>,
    /// ACM attempts in a row that failed.
    pub acm_failures: i64,
    /// ACM: not before then (RFC 3339) is the next attempt made, unless refreshed.
    pub acm_next_attempt: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// One app as the router sees it: its id and name, whether it is in maintenance, and its
/// custom hostnames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteRecord {
    pub app_id: String,
    pub app_name: String,
    pub maintenance: bool,
    pub https_redirect: bool,
    pub hostnames: Vec<String>,
    /// (hostname, certificate id) of the custom hostnames that name their certificate.
    pub pins: Vec<(String, String)>,
}

fn domain_from_row(row: &AnyRow) -> Result<DomainRecord> {
    let hostname: String = row.try_get("hostname")?;
    Ok(DomainRecord {
        id: row.try_get("id")?,
        app_id: row.try_get("app_id")?,
        hostname: Hostname::parse(&hostname).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        certificate_id: row.try_get("certificate_id")?,
        acm_status: row.try_get("acm_status")?,
        acm_status_reason: row.try_get("acm_status_reason")?,
        acm_failures: row.try_get("acm_failures")?,
        acm_next_attempt: row.try_get("acm_next_attempt")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl Store {
    /// Adds `hostname` to the app; a hostname another app (or this one) has is a conflict.
    pub async fn add_domain(&self, app_id: &str, hostname: &Hostname) -> Result<DomainRecord> {
        let id = new_id();
        let at = now();
        let inserted = sqlx::query(
            "INSERT INTO domains (id, app_id, hostname, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)",
        )
        .bind(&id)
        .bind(app_id)
        .bind(hostname.as_str())
        .bind(&at)
        .execute(&self.pool)
        .await
        .map_err(|e| conflict_on_unique(e, String::new));
        match inserted {
            Ok(_) => self.domain(app_id, &id).await,
            // Taken: say by whom (unless it was removed in between).
            Err(StoreError::Conflict(_)) => Err(StoreError::Conflict(
                match self.domain_owner(hostname).await? {
                    Some(owner) => format!(
                        "domain `{hostname}` already belongs to app `{owner}`: a hostname can belong to one app only; remove it there first (`wharf domains remove {hostname} -a {owner}`)"
                    ),
                    None => format!("domain `{hostname}` was being added elsewhere at the same time: try again"),
                },
            )),
            Err(e) => Err(e),
        }
    }

    /// The name of the app `hostname` belongs to, if any.
    pub async fn domain_owner(&self, hostname: &Hostname) -> Result<Option<String>> {
        let row = sqlx::query(
            "SELECT a.name FROM domains d JOIN apps a ON a.id = d.app_id WHERE d.hostname = $1",
        )
        .bind(hostname.as_str())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.try_get("name")).transpose()?)
    }

    /// The app's custom domains, oldest first.
    pub async fn domains(&self, app_id: &str) -> Result<Vec<DomainRecord>> {
        let rows = sqlx::query(
            "SELECT id, app_id, hostname, certificate_id, acm_status, acm_status_reason, acm_failures, acm_next_attempt, created_at, updated_at FROM domains WHERE app_id = $1 ORDER BY created_at, hostname",
        )
        .bind(app_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(domain_from_row).collect()
    }

    /// The app's domain whose id or hostname is `ident`.
    pub async fn domain(&self, app_id: &str, ident: &str) -> Result<DomainRecord> {
        let row = sqlx::query(
            "SELECT id, app_id, hostname, certificate_id, acm_status, acm_status_reason, acm_failures, acm_next_attempt, created_at, updated_at FROM domains \
             WHERE app_id = $1 AND (id = $2 OR hostname = $3)",
        )
        .bind(app_id)
        .bind(ident)
        .bind(ident.to_ascii_lowercase())
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::NotFound {
            kind: "domain",
            ident: ident.to_owned(),
        })?;
        domain_from_row(&row)
    }

    /// Chooses the certificate that serves the app's domain `ident` (`None`: any that covers
    /// it); the certificate must be the app's.
    pub async fn set_domain_certificate(
        &self,
        app_id: &str,
        ident: &str,
        certificate_id: Option<&str>,
    ) -> Result<DomainRecord> {
        let domain = self.domain(app_id, ident).await?;
        let done = sqlx::query(
            "UPDATE domains SET certificate_id = $2, updated_at = $3 WHERE id = $1 \
             AND ($2 IS NULL OR EXISTS (SELECT 1 FROM certificates c WHERE c.id = $2 AND c.app_id = $4))",
        )
        .bind(&domain.id)
        .bind(certificate_id)
        .bind(now())
        .bind(app_id)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound {
                kind: "sni_endpoint",
                ident: certificate_id.unwrap_or_default().to_owned(),
            });
        }
        self.domain(app_id, &domain.id).await
    }

    /// Records where the domain's ACME certificate stands.
    pub async fn set_acm_status(
        &self,
        domain_id: &str,
        status: Option<&str>,
        reason: Option<&str>,
        failures: i64,
        next_attempt: Option<&str>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE domains SET acm_status = $2, acm_status_reason = $3, acm_failures = $4, \
             acm_next_attempt = $5 WHERE id = $1",
        )
        .bind(domain_id)
        .bind(status)
        .bind(reason)
        .bind(failures)
        .bind(next_attempt)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Clears every ACM status of the app's domains (ACM turned off), or only their waits
    /// (`retry_only`: a refresh tries again now).
    pub async fn reset_acm(&self, app_id: &str, retry_only: bool) -> Result<()> {
        let sql = if retry_only {
            "UPDATE domains SET acm_next_attempt = NULL, acm_failures = 0 WHERE app_id = $1"
        } else {
            "UPDATE domains SET acm_status = NULL, acm_status_reason = NULL, acm_failures = 0, \
             acm_next_attempt = NULL WHERE app_id = $1"
        };
        sqlx::query(sql).bind(app_id).execute(&self.pool).await?;
        Ok(())
    }

    /// The custom domains of every app with ACM on, with their app's name.
    pub async fn acm_domains(&self) -> Result<Vec<(String, DomainRecord)>> {
        let rows = sqlx::query(
            "SELECT a.name AS app_name, d.id, d.app_id, d.hostname, d.certificate_id, d.acm_status, \
             d.acm_status_reason, d.acm_failures, d.acm_next_attempt, d.created_at, d.updated_at \
             FROM domains d JOIN apps a ON a.id = d.app_id WHERE a.acm = 1 ORDER BY d.created_at",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("app_name")?, domain_from_row(row)?)))
            .collect()
    }

    /// Removes the app's domain `ident` (id or hostname) and returns it as it was.
    pub async fn remove_domain(&self, app_id: &str, ident: &str) -> Result<DomainRecord> {
        let domain = self.domain(app_id, ident).await?;
        sqlx::query("DELETE FROM domains WHERE id = $1")
            .bind(&domain.id)
            .execute(&self.pool)
            .await?;
        Ok(domain)
    }

    /// Every app with its custom hostnames: what the router routes.
    pub async fn route_table(&self) -> Result<Vec<RouteRecord>> {
        self.routes(None).await
    }

    /// The app `app_id`'s entry of [`Store::route_table`].
    pub async fn app_routes(&self, app_id: &str) -> Result<RouteRecord> {
        self.routes(Some(app_id))
            .await?
            .pop()
            .ok_or_else(|| StoreError::NotFound {
                kind: "app",
                ident: app_id.to_owned(),
            })
    }

    /// Route entries of every app, or of one.
    async fn routes(&self, app_id: Option<&str>) -> Result<Vec<RouteRecord>> {
        let apps = sqlx::query(
            "SELECT id, name, maintenance, https_redirect FROM apps \
             WHERE $1 IS NULL OR id = $1 ORDER BY name",
        )
        .bind(app_id)
        .fetch_all(&self.pool)
        .await?;
        let domains = sqlx::query(
            "SELECT app_id, hostname, certificate_id FROM domains \
             WHERE $1 IS NULL OR app_id = $1 ORDER BY hostname",
        )
        .bind(app_id)
        .fetch_all(&self.pool)
        .await?;
        let mut table: Vec<RouteRecord> = apps
            .iter()
            .map(|row| {
                Ok(RouteRecord {
                    app_id: row.try_get("id")?,
                    app_name: row.try_get("name")?,
                    maintenance: crate::flag(row, "maintenance")?,
                    https_redirect: crate::flag(row, "https_redirect")?,
                    hostnames: Vec::new(),
                    pins: Vec::new(),
                })
            })
            .collect::<Result<_>>()?;
        let index: std::collections::HashMap<String, usize> = table
            .iter()
            .enumerate()
            .map(|(i, r)| (r.app_id.clone(), i))
            .collect();
        for row in &domains {
            let app_id: String = row.try_get("app_id")?;
            if let Some(&i) = index.get(&app_id) {
                let hostname: String = row.try_get("hostname")?;
                if let Some(cert) = row.try_get::<Option<String>, _>("certificate_id")? {
                    table[i].pins.push((hostname.clone(), cert));
                }
                table[i].hostnames.push(hostname);
            }
        }
        Ok(table)
    }
}
