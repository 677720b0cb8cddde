//! wharf's state store: every SQL statement wharf runs lives in this crate.
//!
//! One code path serves SQLite (the embedded default, a WAL-mode file in the data directory) and
//! PostgreSQL (for a control plane shared by several wharf instances): queries go through sqlx's
//! `Any` driver, use `$N` placeholders (both databases accept them) and only types both share
//! (TEXT, BIGINT). Migrations are embedded in the binary and run on connect.
//!
//! Invariants kept here:
//! - release versions are handed out by bumping `apps.release_seq` in the same transaction that
//!   inserts the release, so two concurrent changes get two distinct versions and a version is
//!   never reused;
//! - a config change and the release it makes commit together or not at all;
//! - API tokens are stored as sha256 hashes only.
//!
//! This crate knows nothing of HTTP; callers map [`StoreError`] to their own errors.

mod apps;
mod builds;
mod certificates;
mod config;
mod domains;
mod formation;
mod page;
mod releases;
mod secrets;
mod tokens;

#[cfg(feature = "testing")]
pub mod testing;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
use sqlx::{AnyPool, ConnectOptions, Connection, Row};

pub use apps::{AppRecord, AppUpdate};
pub use builds::{BuildRecord, BuildSuccess, FirstDeploy, SourceRecord, Succeeded};
pub use certificates::{CertificateRecord, SOURCE_ACME, SOURCE_UPLOADED};
pub use config::ConfigUpdate;
pub use domains::{DomainRecord, RouteRecord};
pub use formation::{FormationChange, FormationRecord, DEFAULT_GRACE_SECONDS};
pub use page::Page;
pub use releases::{ReleaseImage, ReleaseRecord, ReleaseRef, TaggedImage};
pub use secrets::Secrets;
pub use tokens::{AccountRecord, NewToken, TokenRecord};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The named thing does not exist.
    #[error("{kind} `{ident}` not found")]
    NotFound { kind: &'static str, ident: String },
    /// Something named in the request does not exist; the message says what there is instead.
    #[error("{0}")]
    Missing(String),
    /// The change conflicts with what is stored (a duplicate name, say).
    #[error("{0}")]
    Conflict(String),
    /// The app has a release in its release phase; no other release may be made until it ends.
    #[error(
        "v{version} of `{app}` is still in its release phase: wait for it to finish \
         (`wharf releases output v{version} -a {app}` follows it) and try again"
    )]
    ReleasePhaseRunning { app: String, version: u32 },
    /// The request was well-formed but its values are not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// The database URL is not one wharf can use.
    #[error(
        "unsupported database URL `{0}`: use sqlite://PATH or postgres://USER:PASSWORD@HOST/DB"
    )]
    UnsupportedUrl(String),
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The schema could not be brought up to date.
    #[error("database migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// Stored data could not be read back (a bug or a hand-edited database).
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Which database a store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    Sqlite,
    Postgres,
}

/// A handle on the database; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    kind: DatabaseKind,
    /// Seals config values at rest (see `secrets`).
    secrets: secrets::Secrets,
}

impl Store {
    /// Opens (creating if needed) the SQLite database `wharf.db` in `data_dir`.
    pub async fn open_data_dir(data_dir: &Path) -> Result<Store> {
        let path = data_dir.join("wharf.db");
        Store::connect(&format!("sqlite://{}", path.display())).await
    }

    /// Connects to `sqlite://PATH` or `postgres://…` and brings the schema up to date.
    pub async fn connect(url: &str) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let kind = if url.starts_with("sqlite:") {
            DatabaseKind::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            DatabaseKind::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl(redact_url(url)));
        };
        let pool_url = match kind {
            DatabaseKind::Sqlite => {
                // WAL is a property of the file: set it once, on a connection of our own, before
                // the pool opens (switching needs a lock the busy timeout can't wait for).
                let options = SqliteConnectOptions::from_str(url)?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal);
                options.connect().await?.close().await?;
                url.to_owned()
            }
            DatabaseKind::Postgres => url.to_owned(),
        };
        let pool = AnyPoolOptions::new()
            .max_connections(match kind {
                DatabaseKind::Sqlite => 4,
                DatabaseKind::Postgres => 10,
            })
            .acquire_timeout(Duration::from_secs(10))
            .connect(&pool_url)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Store {
            pool,
            kind,
            secrets: secrets::Secrets::default(),
        })
    }

    /// Which database this store uses.
    pub fn kind(&self) -> DatabaseKind {
        self.kind
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes every connection; pending queries finish first.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// SQLite's journal mode, for tests and diagnostics (`None` on PostgreSQL).
    pub async fn sqlite_journal_mode(&self) -> Result<Option<String>> {
        if self.kind != DatabaseKind::Sqlite {
            return Ok(None);
        }
        let row = sqlx::query("PRAGMA journal_mode")
            .fetch_one(&self.pool)
            .await?;
        Ok(Some(row.try_get::<String, _>(0)?))
    }
}

/// The current time as wharf stores it: RFC 3339, UTC, whole seconds (`2026-11-24T22:13:28Z`),
/// which is also Heroku's format and sorts as text.
pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The current time with microseconds (`2026-11-24T22:13:28.123456Z`), for rows listed in the
/// order they were made: the text still sorts as time, and rows made in the same second keep
/// their order (a Range over whole seconds would skip rows sharing the boundary second).
pub(crate) fn now_precise() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

pub(crate) fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

pub(crate) fn flag(row: &AnyRow, column: &str) -> Result<bool> {
    Ok(row.try_get::<i64, _>(column)? != 0)
}

/// Maps a unique-constraint violation to [`StoreError::Conflict`] with `message`.
pub(crate) fn conflict_on_unique(err: sqlx::Error, message: impl FnOnce() -> String) -> StoreError {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(message()),
        _ => StoreError::Database(err),
    }
}

/// A URL without its password, fit for an error message.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}{}:***{}", &url[..scheme_end + 3], user, &url[at..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact_url("mysql://u:secret@h/db"), "mysql://u:***@h/db");
        assert_eq!(redact_url("mysql://h/db"), "mysql://h/db");
    }
}
