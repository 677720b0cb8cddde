//! Releases: immutable (image, config) pairs numbered per app.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use wharf_core::config::ConfigVars;
use wharf_core::range::Range;
use wharf_core::release::{ReleaseStatus, ReleaseVersion, RELEASE_PHASE_TYPE};

use crate::page::{bind_all, FieldKind, KeysetQuery};
use crate::secrets::{Column, Secrets};
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

/// A release's image, as [`Store::release_images`] lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaggedImage {
    pub version: ReleaseVersion,
    /// The image's manifest digest.
    pub digest: String,
    /// The release succeeded (it ran, or runs).
    pub succeeded: bool,
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

fn release_from_row(secrets: &Secrets, row: &AnyRow) -> Result<ReleaseRecord> {
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
        config: decode_config(secrets, config)?,
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

/// A release's config snapshot as stored: JSON, sealed.
fn encode_config(secrets: &Secrets, config: &ConfigVars) -> String {
    let json =
        serde_json::to_string(&config.to_string_map()).expect("a map of strings always serializes");
    secrets.seal(Column::ReleaseConfig, &json)
}

fn decode_config(secrets: &Secrets, stored: String) -> Result<ConfigVars> {
    let json = secrets.open(Column::ReleaseConfig, stored)?;
    let map: BTreeMap<String, String> = serde_json::from_str(&json)
        .map_err(|e| StoreError::Corrupt(format!("release config: {e}")))?;
    ConfigVars::from_string_map(map).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Inserts the app's next release inside `tx`. Bumping `release_seq` first takes the app row's
/// write lock, so concurrent callers queue here and each gets its own version. A release whose
/// image declares a release phase starts `pending` (it goes live when the phase succeeds), any
/// other `succeeded`; while one is pending no other release of the app can be made
/// ([`StoreError::ReleasePhaseRunning`]).
pub(crate) async fn insert_release(
    tx: &mut Transaction<'_, Any>,
    secrets: &Secrets,
    app_id: &str,
    user_id: &str,
    description: &str,
    config: &ConfigVars,
    image: Option<&ReleaseImage>,
) -> Result<String> {
    let row = sqlx::query(
        "UPDATE apps SET release_seq = release_seq + 1 WHERE id = $1 RETURNING release_seq, name",
    )
    .bind(app_id)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| StoreError::NotFound {
        kind: "app",
        ident: app_id.to_owned(),
    })?;
    let version: i64 = row.try_get(0)?;
    let app_name: String = row.try_get(1)?;
    let pending = sqlx::query(
        "SELECT version FROM releases WHERE app_id = $1 AND status = 'pending' LIMIT 1",
    )
    .bind(app_id)
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(pending) = pending {
        let version: i64 = pending.try_get(0)?;
        return Err(StoreError::ReleasePhaseRunning {
            app: app_name,
            version: u32::try_from(version).unwrap_or(u32::MAX),
        });
    }
    let status = if image.is_some_and(|i| i.process_types.contains_key(RELEASE_PHASE_TYPE)) {
        ReleaseStatus::Pending
    } else {
        ReleaseStatus::Succeeded
    };
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
    .bind(status.as_str())
    .bind(encode_config(secrets, config))
    .bind(image.map(|i| i.digest.as_str()))
    .bind(image.map(|i| serde_json::to_string(&i.process_types).expect("a map of strings serializes")))
    .bind(user_id)
    .bind(&at)
    .execute(&mut **tx)
    .await?;
    Ok(id)
}

/// Makes the app's config vars exactly `config`, inside `tx`.
async fn replace_config(
    tx: &mut Transaction<'_, Any>,
    secrets: &Secrets,
    app_id: &str,
    config: &ConfigVars,
) -> Result<()> {
    sqlx::query("DELETE FROM config_vars WHERE app_id = $1")
        .bind(app_id)
        .execute(&mut **tx)
        .await?;
    for (key, value) in config.to_string_map() {
        sqlx::query("INSERT INTO config_vars (app_id, key, value) VALUES ($1, $2, $3)")
            .bind(app_id)
            .bind(key)
            .bind(secrets.seal(Column::ConfigVars, &value))
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
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
            .map(|row| release_from_row(&self.secrets, row))
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
        release_from_row(
            &self.secrets,
            &query.ok_or(StoreError::NotFound {
                kind: "release",
                ident,
            })?,
        )
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
        row.as_ref()
            .map(|row| release_from_row(&self.secrets, row))
            .transpose()
    }

    /// Rolls the app back to `target`: a new release, "Rollback to vK", with vK's image and vK's
    /// config, which also become the app's config vars (Heroku's semantics). Only a release that
    /// ran (succeeded) and has an image can be rolled back to, and not the current one.
    pub async fn rollback(
        &self,
        app_id: &str,
        user_id: &str,
        target: &ReleaseRef,
    ) -> Result<ReleaseRecord> {
        let target = self.release(app_id, target).await?;
        let version = target.version;
        match target.status {
            ReleaseStatus::Succeeded => {}
            ReleaseStatus::Failed => {
                return Err(StoreError::Invalid(format!(
                    "{version} failed{}, so it can't be rolled back to: pick a release that ran \
                     (`wharf releases` lists them)",
                    target
                        .status_reason
                        .as_deref()
                        .map(|why| format!(" ({why})"))
                        .unwrap_or_default()
                )))
            }
            ReleaseStatus::Pending => {
                return Err(StoreError::Invalid(format!(
                    "{version} is still in its release phase and has never run: pick a release \
                     that ran (`wharf releases` lists them)"
                )))
            }
        }
        if target.current {
            return Err(StoreError::Invalid(format!(
                "{version} is already the current release: roll back to an earlier one \
                 (`wharf releases` lists them)"
            )));
        }
        let Some(digest) = target.image_digest.clone() else {
            return Err(StoreError::Invalid(format!(
                "{version} was made before the app's first build and has no image to run: pick a \
                 release made by a deploy"
            )));
        };
        let image = ReleaseImage {
            digest,
            process_types: target.process_types.clone(),
        };
        let mut tx = self.pool.begin().await?;
        let description = format!("Rollback to {version}");
        let id = insert_release(
            &mut tx,
            &self.secrets,
            app_id,
            user_id,
            &description,
            &target.config,
            Some(&image),
        )
        .await?;
        replace_config(&mut tx, &self.secrets, app_id, &target.config).await?;
        let types: Vec<String> = image.process_types.keys().cloned().collect();
        crate::formation::sync_types(&mut tx, app_id, &types).await?;
        tx.commit().await?;
        self.release_by_id(&id).await
    }

    /// A new release of the app with `image` (an image another release already runs, such as
    /// another app's: promotion) and the app's own current config.
    pub async fn release_image(
        &self,
        app_id: &str,
        user_id: &str,
        image: &ReleaseImage,
        description: &str,
    ) -> Result<ReleaseRecord> {
        let mut tx = self.pool.begin().await?;
        let config = crate::config::load_for_update(&mut tx, &self.secrets, app_id).await?;
        let id = insert_release(
            &mut tx,
            &self.secrets,
            app_id,
            user_id,
            description,
            &config,
            Some(image),
        )
        .await?;
        let types: Vec<String> = image.process_types.keys().cloned().collect();
        crate::formation::sync_types(&mut tx, app_id, &types).await?;
        tx.commit().await?;
        self.release_by_id(&id).await
    }

    /// The process types a stored release declares for the image `digest`, if any release
    /// (of any app) runs it: what a release made from that image alone will run.
    pub async fn image_process_types(
        &self,
        digest: &str,
    ) -> Result<Option<BTreeMap<String, String>>> {
        let row = sqlx::query(
            "SELECT process_types FROM releases WHERE image_digest = $1 ORDER BY created_at DESC LIMIT 1",
        )
        .bind(digest)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            decode_types(
                row.try_get::<Option<String>, _>("process_types")?
                    .as_deref(),
            )
        })
        .transpose()
    }

    /// Ends a release's release phase: `pending` becomes `succeeded` (the release goes live) or,
    /// with a reason, `failed` — and then the app's config vars go back to those of its current
    /// release, so a config change whose release failed doesn't linger as the app's config
    /// (nothing else could change them while the release was pending). Returns whether the
    /// release was pending.
    pub async fn finish_release_phase(
        &self,
        app_id: &str,
        version: u32,
        failure: Option<&str>,
    ) -> Result<bool> {
        let status = if failure.is_some() {
            ReleaseStatus::Failed
        } else {
            ReleaseStatus::Succeeded
        };
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE releases SET status = $3, status_reason = $4, updated_at = $5 \
             WHERE app_id = $1 AND version = $2 AND status = 'pending'",
        )
        .bind(app_id)
        .bind(i64::from(version))
        .bind(status.as_str())
        .bind(failure)
        .bind(now())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 1 && failure.is_some() {
            let current = sqlx::query(
                "SELECT config FROM releases WHERE app_id = $1 AND status = 'succeeded' \
                 ORDER BY version DESC LIMIT 1",
            )
            .bind(app_id)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(row) = current {
                let config = decode_config(&self.secrets, row.try_get::<String, _>("config")?)?;
                replace_config(&mut tx, &self.secrets, app_id, &config).await?;
            }
        }
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Every release still in its release phase, oldest first.
    pub async fn pending_releases(&self) -> Result<Vec<ReleaseRecord>> {
        let rows = sqlx::query(&format!(
            "{RELEASE_SELECT} WHERE r.status = 'pending' ORDER BY r.created_at"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| release_from_row(&self.secrets, row))
            .collect()
    }

    /// Whether the app has a release in its release phase.
    pub async fn has_pending_release(&self, app_id: &str) -> Result<bool> {
        let row =
            sqlx::query("SELECT 1 FROM releases WHERE app_id = $1 AND status = 'pending' LIMIT 1")
                .bind(app_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.is_some())
    }

    /// The image of each of the app's releases that has one, oldest first, whatever the
    /// release's status: what wharf's registry serves as the app's repository (tag `v<N>`).
    pub async fn release_images(&self, app_id: &str) -> Result<Vec<TaggedImage>> {
        let rows = sqlx::query(
            "SELECT version, image_digest, status FROM releases \
             WHERE app_id = $1 AND image_digest IS NOT NULL ORDER BY version",
        )
        .bind(app_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let version: i64 = row.try_get("version")?;
                let version = u32::try_from(version)
                    .ok()
                    .and_then(ReleaseVersion::new)
                    .ok_or_else(|| StoreError::Corrupt(format!("release version {version}")))?;
                let status: String = row.try_get("status")?;
                Ok(TaggedImage {
                    version,
                    digest: row.try_get("image_digest")?,
                    succeeded: status == ReleaseStatus::Succeeded.as_str(),
                })
            })
            .collect()
    }

    /// The images garbage collection must keep: those of each app's newest `per_app` releases
    /// (whatever their status), of each app's current release however old, and of releases in
    /// their release phase.
    pub async fn images_to_keep(&self, per_app: u32) -> Result<BTreeSet<String>> {
        let rows = sqlx::query(
            "SELECT image_digest FROM ( \
                 SELECT image_digest, status, version, app_id, \
                     ROW_NUMBER() OVER (PARTITION BY app_id ORDER BY version DESC) AS newness \
                 FROM releases WHERE image_digest IS NOT NULL \
             ) r \
             WHERE newness <= $1 OR status = 'pending' \
                 OR version = (SELECT MAX(c.version) FROM releases c \
                     WHERE c.app_id = r.app_id AND c.status = 'succeeded')",
        )
        .bind(i64::from(per_app))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok(row.try_get::<String, _>("image_digest")?))
            .collect()
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
        release_from_row(&self.secrets, &row)
    }
}
