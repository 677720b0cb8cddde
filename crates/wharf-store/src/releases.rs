//! Releases: immutable (image, config) pairs numbered per app.

use std::collections::BTreeMap;

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use wharf_core::config::ConfigVars;
use wharf_core::range::Range;
use wharf_core::release::{ReleaseStatus, ReleaseVersion};

use crate::page::{bind_all, FieldKind, KeysetQuery};
use crate::{new_id, now, Page, Result, Store, StoreError};

/// A release as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseRecord {
    pub id: String,
    pub app_id: String,
    pub app_name: String,
    pub version: ReleaseVersion,
    pub description: String,
    pub status: ReleaseStatus,
    /// Why a failed release failed.
    pub status_reason: Option<String>,
    /// The config vars this release runs with.
    pub config: ConfigVars,
    /// The build image; `None` before the app's first build.
    pub image_digest: Option<String>,
    /// Process type → command of the image; empty before the app's first build.
    pub process_types: BTreeMap<String, String>,
    pub user_id: String,
    pub user_email: String,
    /// Whether this is the release the app runs: its newest succeeded release.
    pub current: bool,
    pub created_at: String,
    pub updated_at: String,
}

/// What a release runs: an image and the process types it declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseImage {
    /// The image's manifest digest.
    pub digest: String,
    /// Process type → command, from the build.
    pub process_types: BTreeMap<String, String>,
}

/// The image of the app's newest succeeded release, if it has one; inside `tx`.
pub(crate) async fn current_image(
    tx: &mut Transaction<'_, Any>,
    app_id: &str,
) -> Result<Option<ReleaseImage>> {
    let row = sqlx::query(
        "SELECT image_digest, process_types FROM releases WHERE app_id = $1 AND status = 'succeeded' \
         ORDER BY version DESC LIMIT 1",
    )
    .bind(app_id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let Some(digest) = row.try_get::<Option<String>, _>("image_digest")? else {
        return Ok(None);
    };
    let types: Option<String> = row.try_get("process_types")?;
    Ok(Some(ReleaseImage {
        digest,
        process_types: decode_types(types.as_deref())?,
    }))
}

fn decode_types(json: Option<&str>) -> Result<BTreeMap<String, String>> {
    json.map(|j| {
        serde_json::from_str(j)
            .map_err(|e| StoreError::Corrupt(format!("release process types: {e}")))
    })
    .transpose()
    .map(Option::unwrap_or_default)
}

/// How a request names a release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReleaseRef {
    Version(ReleaseVersion),
    Id(String),
}

impl ReleaseRef {
    /// `3` or `v3` name a version; anything else is taken as an id.
    pub fn parse(s: &str) -> ReleaseRef {
        match ReleaseVersion::parse(s) {
            Ok(version) => ReleaseRef::Version(version),
            Err(_) => ReleaseRef::Id(s.to_owned()),
        }
    }
}

const RELEASE_SELECT: &str = "SELECT r.id, r.app_id, a.name AS app_name, r.version, r.description, r.status, \
     r.status_reason, r.config, r.image_digest, r.process_types, r.user_id, u.email AS user_email, r.created_at, r.updated_at, \
     CAST(CASE WHEN r.version = (SELECT MAX(c.version) FROM releases c \
         WHERE c.app_id = r.app_id AND c.status = 'succeeded') THEN 1 ELSE 0 END AS BIGINT) AS current \
     FROM releases r JOIN apps a ON a.id = r.app_id JOIN accounts u ON u.id = r.user_id";

fn release_from_row(row: &AnyRow) -> Result<ReleaseRecord> {
    let version: i64 = row.try_get("version")?;
    let status: String = row.try_get("status")?;
    let config: String = row.try_get("config")?;
    Ok(ReleaseRecord {
        id: row.try_get("id")?,
        app_id: row.try_get("app_id")?,
        app_name: row.try_get("app_name")?,
        version: u32::try_from(version)
            .ok()
            .and_then(ReleaseVersion::new)
            .ok_or_else(|| StoreError::Corrupt(format!("release version {version}")))?,
        description: row.try_get("description")?,
        status: status
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("release status `{status}`")))?,
        status_reason: row.try_get("status_reason")?,
        config: decode_config(&config)?,
        image_digest: row.try_get("image_digest")?,
        process_types: decode_types(
            row.try_get::<Option<String>, _>("process_types")?
                .as_deref(),
        )?,
        user_id: row.try_get("user_id")?,
        user_email: row.try_get("user_email")?,
        current: crate::flag(row, "current")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

pub(crate) fn encode_config(config: &ConfigVars) -> String {
    serde_json::to_string(&config.to_string_map()).expect("a map of strings always serializes")
}

fn decode_config(json: &str) -> Result<ConfigVars> {
    let map: BTreeMap<String, String> = serde_json::from_str(json)
        .map_err(|e| StoreError::Corrupt(format!("release config: {e}")))?;
    ConfigVars::from_string_map(map).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Inserts the app's next release inside `tx`. Bumping `release_seq` first takes the app row's
/// write lock, so concurrent callers queue here and each gets its own version.
pub(crate) async fn insert_release(
    tx: &mut Transaction<'_, Any>,
    app_id: &str,
    user_id: &str,
    description: &str,
    config: &ConfigVars,
    image: Option<&ReleaseImage>,
) -> Result<String> {
    let row = sqlx::query(
        "UPDATE apps SET release_seq = release_seq + 1 WHERE id = $1 RETURNING release_seq",
    )
    .bind(app_id)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| StoreError::NotFound {
        kind: "app",
        ident: app_id.to_owned(),
    })?;
    let version: i64 = row.try_get(0)?;
    let id = new_id();
    let at = now();
    sqlx::query(
        "INSERT INTO releases (id, app_id, version, description, status, config, image_digest, process_types, user_id, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
    )
    .bind(&id)
    .bind(app_id)
    .bind(version)
    .bind(description)
    .bind(ReleaseStatus::Succeeded.as_str())
    .bind(encode_config(config))
    .bind(image.map(|i| i.digest.as_str()))
    .bind(image.map(|i| serde_json::to_string(&i.process_types).expect("a map of strings serializes")))
    .bind(user_id)
    .bind(&at)
    .execute(&mut **tx)
    .await?;
    Ok(id)
}

impl Store {
    /// One page of the app's releases, sorted by the range's field (`version` or `id`).
    pub async fn list_releases(&self, app_id: &str, range: &Range) -> Result<Page<ReleaseRecord>> {
        let (column, kind) = match range.field.as_str() {
            "version" => ("r.version", FieldKind::Integer),
            "id" => ("r.id", FieldKind::Text),
            other => {
                return Err(StoreError::Invalid(format!(
                    "cannot sort releases by `{other}`: use version or id"
                )))
            }
        };
        let keyset = KeysetQuery::new(range, column, kind, 2)?;
        let mut sql = format!("{RELEASE_SELECT} WHERE r.app_id = $1");
        for condition in &keyset.conditions {
            sql.push_str(" AND ");
            sql.push_str(condition);
        }
        sql.push_str(&format!(
            " ORDER BY {} LIMIT {}",
            keyset.order_by, keyset.limit
        ));
        let rows = bind_all(sqlx::query(&sql).bind(app_id), &keyset.binds)
            .fetch_all(&self.pool)
            .await?;
        let releases = rows
            .iter()
            .map(release_from_row)
            .collect::<Result<Vec<_>>>()?;
        let by_version = range.field == "version";
        Ok(keyset.page(releases, |r| {
            if by_version {
                r.version.get().to_string()
            } else {
                r.id.clone()
            }
        }))
    }

    /// The app's release named by `reference`.
    pub async fn release(&self, app_id: &str, reference: &ReleaseRef) -> Result<ReleaseRecord> {
        let query = match reference {
            ReleaseRef::Version(v) => {
                sqlx::query(&format!(
                    "{RELEASE_SELECT} WHERE r.app_id = $1 AND r.version = $2"
                ))
                .bind(app_id)
                .bind(i64::from(v.get()))
                .fetch_optional(&self.pool)
                .await?
            }
            ReleaseRef::Id(id) => {
                sqlx::query(&format!(
                    "{RELEASE_SELECT} WHERE r.app_id = $1 AND r.id = $2"
                ))
                .bind(app_id)
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await?
            }
        };
        let ident = match reference {
            ReleaseRef::Version(v) => v.to_string(),
            ReleaseRef::Id(id) => id.clone(),
        };
        release_from_row(&query.ok_or(StoreError::NotFound {
            kind: "release",
            ident,
        })?)
    }

    /// Marks a succeeded release `failed` because it could not be deployed (its web
    /// instances never came up): the app's current release becomes the one before it again.
    /// Returns whether the release was changed (false if it was not `succeeded`).
    pub async fn fail_release(&self, app_id: &str, version: u32, reason: &str) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE releases SET status = 'failed', status_reason = $3, updated_at = $4 \
             WHERE app_id = $1 AND version = $2 AND status = 'succeeded'",
        )
        .bind(app_id)
        .bind(i64::from(version))
        .bind(reason)
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The release the app runs now, if it has one.
    pub async fn current_release(&self, app_id: &str) -> Result<Option<ReleaseRecord>> {
        let row = sqlx::query(&format!(
            "{RELEASE_SELECT} WHERE r.app_id = $1 AND r.status = 'succeeded' ORDER BY r.version DESC LIMIT 1"
        ))
        .bind(app_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(release_from_row).transpose()
    }

    pub(crate) async fn release_by_id(&self, id: &str) -> Result<ReleaseRecord> {
        let row = sqlx::query(&format!("{RELEASE_SELECT} WHERE r.id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                kind: "release",
                ident: id.to_owned(),
            })?;
        release_from_row(&row)
    }
}
