//! Sources (uploaded archives) and builds. A build's status only moves forward:
//! pending → running → succeeded | failed; a successful build and the release it makes commit
//! together.

use std::collections::BTreeMap;

use sqlx::any::AnyRow;
use sqlx::Row;
use wharf_core::build::BuildStatus;
use wharf_core::config::{ConfigChange, ConfigKey};
use wharf_core::formation::DynoSize;
use wharf_core::range::Range;

use crate::config::load_for_update;
use crate::page::{bind_all, FieldKind, KeysetQuery};
use crate::releases::{insert_release, ReleaseImage, ReleaseRecord};
use crate::{new_id, now, now_precise, Page, Result, Store, StoreError};

/// An uploaded (or awaited) source archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRecord {
    pub id: String,
    /// `None` until the archive has been uploaded and checked.
    pub sha256: Option<String>,
    pub size: Option<u64>,
    pub created_at: String,
}

/// A build as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildRecord {
    pub id: String,
    pub app_id: String,
    pub source_id: String,
    pub source_sha256: Option<String>,
    pub source_version: Option<String>,
    pub status: BuildStatus,
    pub provider: Option<String>,
    /// The language runtime and version the build used (`python 3.13.5`).
    pub runtime: Option<String>,
    pub image_digest: Option<String>,
    pub process_types: Option<BTreeMap<String, String>>,
    pub error: Option<String>,
    pub release_id: Option<String>,
    pub user_id: String,
    pub user_email: String,
    pub created_at: String,
    pub updated_at: String,
}

/// What a successful build produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildSuccess {
    pub provider: String,
    pub runtime: Option<String>,
    pub image_digest: String,
    pub process_types: BTreeMap<String, String>,
    /// The description of the release it makes ("Deploy 1a2b3c4d5e6f").
    pub release_description: String,
    /// What the app's `app.json` sets on its first deploy; applied only when no release of the
    /// app had an image before this one.
    pub first_deploy: FirstDeploy,
}

/// Settings an app gets on its first deploy (from its `app.json`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FirstDeploy {
    /// Config vars set unless the app already has them.
    pub config: BTreeMap<ConfigKey, String>,
    /// Quantity and size per process type (types the image doesn't have are ignored).
    pub formation: BTreeMap<String, (Option<u32>, Option<DynoSize>)>,
}

/// What [`Store::succeed_build`] made.
#[derive(Debug, Clone)]
pub struct Succeeded {
    pub build: BuildRecord,
    pub release: ReleaseRecord,
    /// Whether this was the app's first deploy (so [`BuildSuccess::first_deploy`] applied).
    pub first_deploy: bool,
}

fn source_from_row(row: &AnyRow) -> Result<SourceRecord> {
    let size: Option<i64> = row.try_get("size")?;
    Ok(SourceRecord {
        id: row.try_get("id")?,
        sha256: row.try_get("sha256")?,
        size: size.map(|s| u64::try_from(s).unwrap_or(0)),
        created_at: row.try_get("created_at")?,
    })
}

/// Whether a release of the app has had an image.
async fn deployed(conn: &mut sqlx::AnyConnection, app_id: &str) -> Result<bool> {
    let n: i64 = sqlx::query(
        "SELECT COUNT(*) AS n FROM releases WHERE app_id = $1 AND image_digest IS NOT NULL",
    )
    .bind(app_id)
    .fetch_one(conn)
    .await?
    .try_get("n")?;
    Ok(n > 0)
}

const BUILD_SELECT: &str =
    "SELECT b.id, b.app_id, b.source_id, s.sha256 AS source_sha256, b.source_version, \
     b.status, b.provider, b.runtime, b.image_digest, b.process_types, b.error, b.release_id, b.user_id, \
     u.email AS user_email, b.created_at, b.updated_at \
     FROM builds b JOIN sources s ON s.id = b.source_id JOIN accounts u ON u.id = b.user_id";

fn build_from_row(row: &AnyRow) -> Result<BuildRecord> {
    let status: String = row.try_get("status")?;
    let process_types: Option<String> = row.try_get("process_types")?;
    Ok(BuildRecord {
        id: row.try_get("id")?,
        app_id: row.try_get("app_id")?,
        source_id: row.try_get("source_id")?,
        source_sha256: row.try_get("source_sha256")?,
        source_version: row.try_get("source_version")?,
        status: status
            .parse()
            .map_err(|e: wharf_core::build::UnknownBuildStatus| {
                StoreError::Corrupt(e.to_string())
            })?,
        provider: row.try_get("provider")?,
        runtime: row.try_get("runtime")?,
        image_digest: row.try_get("image_digest")?,
        process_types: process_types
            .map(|json| {
                serde_json::from_str(&json)
                    .map_err(|e| StoreError::Corrupt(format!("build process types: {e}")))
            })
            .transpose()?,
        error: row.try_get("error")?,
        release_id: row.try_get("release_id")?,
        user_id: row.try_get("user_id")?,
        user_email: row.try_get("user_email")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl Store {
    /// Makes a source awaiting its upload.
    pub async fn create_source(&self) -> Result<SourceRecord> {
        let record = SourceRecord {
            id: new_id(),
            sha256: None,
            size: None,
            created_at: now(),
        };
        sqlx::query("INSERT INTO sources (id, status, created_at, updated_at) VALUES ($1, 'pending', $2, $2)")
            .bind(&record.id)
            .bind(&record.created_at)
            .execute(&self.pool)
            .await?;
        Ok(record)
    }

    pub async fn source(&self, id: &str) -> Result<SourceRecord> {
        let row = sqlx::query("SELECT * FROM sources WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                kind: "source",
                ident: id.to_owned(),
            })?;
        source_from_row(&row)
    }

    /// The newest uploaded source whose archive has this sha256 (hex).
    pub async fn source_by_sha256(&self, sha256: &str) -> Result<Option<SourceRecord>> {
        let row = sqlx::query("SELECT * FROM sources WHERE sha256 = $1 AND status = 'ready' ORDER BY created_at DESC LIMIT 1")
            .bind(sha256)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(source_from_row).transpose()
    }

    /// Records that the source's archive arrived and passed its checks. A source is uploaded once.
    pub async fn mark_source_uploaded(
        &self,
        id: &str,
        sha256: &str,
        size: u64,
    ) -> Result<SourceRecord> {
        let done = sqlx::query(
            "UPDATE sources SET status = 'ready', sha256 = $2, size = $3, updated_at = $4 WHERE id = $1 AND status = 'pending'",
        )
        .bind(id)
        .bind(sha256)
        .bind(i64::try_from(size).unwrap_or(i64::MAX))
        .bind(now())
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            self.source(id).await?;
            return Err(StoreError::Conflict(format!(
                "source `{id}` was already uploaded: make a new one with POST /sources"
            )));
        }
        self.source(id).await
    }

    /// Queues a build of `source_id` for the app.
    pub async fn create_build(
        &self,
        app_id: &str,
        source_id: &str,
        version: Option<&str>,
        user_id: &str,
    ) -> Result<BuildRecord> {
        let id = new_id();
        let at = now_precise();
        sqlx::query(
            "INSERT INTO builds (id, app_id, source_id, source_version, status, user_id, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, 'pending', $5, $6, $6)",
        )
        .bind(&id)
        .bind(app_id)
        .bind(source_id)
        .bind(version)
        .bind(user_id)
        .bind(&at)
        .execute(&self.pool)
        .await?;
        self.build(&id).await
    }

    /// The build `id`.
    pub async fn build(&self, id: &str) -> Result<BuildRecord> {
        let row = sqlx::query(&format!("{BUILD_SELECT} WHERE b.id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                kind: "build",
                ident: id.to_owned(),
            })?;
        build_from_row(&row)
    }

    /// One page of the app's builds, by `created_at` (the default) or `id`.
    pub async fn list_builds(&self, app_id: &str, range: &Range) -> Result<Page<BuildRecord>> {
        let column = match range.field.as_str() {
            "created_at" => "b.created_at",
            "id" => "b.id",
            other => {
                return Err(StoreError::Invalid(format!(
                    "cannot sort builds by `{other}`: use created_at or id"
                )))
            }
        };
        let keyset = KeysetQuery::new(range, column, FieldKind::Text, 2)?;
        let mut sql = format!("{BUILD_SELECT} WHERE b.app_id = $1");
        for condition in &keyset.conditions {
            sql.push_str(" AND ");
            sql.push_str(condition);
        }
        // `created_at` has microseconds, so it orders builds as they were made; ids break exact ties.
        sql.push_str(&format!(
            " ORDER BY {}, b.id LIMIT {}",
            keyset.order_by, keyset.limit
        ));
        let rows = bind_all(sqlx::query(&sql).bind(app_id), &keyset.binds)
            .fetch_all(&self.pool)
            .await?;
        let builds = rows
            .iter()
            .map(build_from_row)
            .collect::<Result<Vec<_>>>()?;
        let by_id = range.field == "id";
        Ok(keyset.page(builds, |b| {
            if by_id {
                b.id.clone()
            } else {
                b.created_at.clone()
            }
        }))
    }

    /// pending → running.
    pub async fn start_build(&self, id: &str) -> Result<BuildRecord> {
        self.move_build(id, &["pending"], "status = 'running'", None)
            .await
    }

    /// pending | running → failed, with the reason.
    pub async fn fail_build(&self, id: &str, error: &str) -> Result<BuildRecord> {
        self.move_build(
            id,
            &["pending", "running"],
            "status = 'failed', error = $3",
            Some(error),
        )
        .await
    }

    async fn move_build(
        &self,
        id: &str,
        from: &[&str],
        set: &str,
        text: Option<&str>,
    ) -> Result<BuildRecord> {
        let allowed = from
            .iter()
            .map(|s| format!("'{s}'"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "UPDATE builds SET {set}, updated_at = $2 WHERE id = $1 AND status IN ({allowed})"
        );
        let mut query = sqlx::query(&sql).bind(id).bind(now());
        if let Some(text) = text {
            query = query.bind(text);
        }
        let done = query.execute(&self.pool).await?;
        let build = self.build(id).await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!(
                "build `{id}` is {} and can't change that way",
                build.status
            )));
        }
        Ok(build)
    }

    /// running → succeeded, making the app's next release from the image and the app's current
    /// config, in one transaction.
    pub async fn succeed_build(&self, id: &str, success: &BuildSuccess) -> Result<Succeeded> {
        let build = self.build(id).await?;
        let mut tx = self.pool.begin().await?;
        let mut config = load_for_update(&mut tx, &self.secrets, &build.app_id).await?;
        let first_deploy = !deployed(&mut tx, &build.app_id).await?;
        if first_deploy {
            let change = ConfigChange {
                set: success
                    .first_deploy
                    .config
                    .iter()
                    .filter(|(key, _)| config.get(key.as_str()).is_none())
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                unset: Default::default(),
            };
            if !change.set.is_empty() {
                config = crate::config::write_change(
                    &mut tx,
                    &self.secrets,
                    &build.app_id,
                    config,
                    &change,
                )
                .await?
                .0;
            }
        }
        let release_id = insert_release(
            &mut tx,
            &self.secrets,
            &build.app_id,
            &build.user_id,
            &success.release_description,
            &config,
            Some(&ReleaseImage {
                digest: success.image_digest.clone(),
                process_types: success.process_types.clone(),
            }),
        )
        .await?;
        let types: Vec<String> = success.process_types.keys().cloned().collect();
        crate::formation::sync_types(&mut tx, &build.app_id, &types).await?;
        if first_deploy {
            for (kind, (quantity, size)) in &success.first_deploy.formation {
                if let Some(quantity) = quantity {
                    sqlx::query(
                        "UPDATE formations SET quantity = $3, updated_at = $4 \
                         WHERE app_id = $1 AND process_type = $2",
                    )
                    .bind(&build.app_id)
                    .bind(kind)
                    .bind(i64::from(*quantity))
                    .bind(now())
                    .execute(&mut *tx)
                    .await?;
                }
                if let Some(size) = size {
                    sqlx::query(
                        "UPDATE formations SET size = $3 WHERE app_id = $1 AND process_type = $2",
                    )
                    .bind(&build.app_id)
                    .bind(kind)
                    .bind(size.name())
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        let process_types =
            serde_json::to_string(&success.process_types).expect("a map of strings serializes");
        let done = sqlx::query(
            "UPDATE builds SET status = 'succeeded', provider = $2, image_digest = $3, process_types = $4, \
             release_id = $5, updated_at = $6, runtime = $7 WHERE id = $1 AND status = 'running'",
        )
        .bind(id)
        .bind(&success.provider)
        .bind(&success.image_digest)
        .bind(process_types)
        .bind(&release_id)
        .bind(now())
        .bind(&success.runtime)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!(
                "build `{id}` is {} and can't succeed now",
                build.status
            )));
        }
        tx.commit().await?;
        Ok(Succeeded {
            build: self.build(id).await?,
            release: self.release_by_id(&release_id).await?,
            first_deploy,
        })
    }

    /// Whether a release of the app has had an image (so its next build is not its first
    /// deploy).
    pub async fn deployed_before(&self, app_id: &str) -> Result<bool> {
        deployed(&mut *self.pool.acquire().await?, app_id).await
    }

    /// What built the image `digest` (`python`, `node`, …), if a build of it is stored.
    pub async fn image_provider(&self, digest: &str) -> Result<Option<String>> {
        let row = sqlx::query(
            "SELECT provider FROM builds WHERE image_digest = $1 AND status = 'succeeded' \
             ORDER BY created_at DESC LIMIT 1",
        )
        .bind(digest)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.try_get("provider")).transpose()?.flatten())
    }

    /// Records the provider as soon as it is known, so a failed build still says what it was.
    pub async fn set_build_provider(&self, id: &str, provider: &str) -> Result<()> {
        sqlx::query("UPDATE builds SET provider = $2, updated_at = $3 WHERE id = $1")
            .bind(id)
            .bind(provider)
            .bind(now())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Marks every build that has not ended as failed with `reason`; run at start-up, when no
    /// build can still be running. Returns how many there were.
    pub async fn fail_unfinished_builds(&self, reason: &str) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE builds SET status = 'failed', error = $1, updated_at = $2 WHERE status IN ('pending', 'running')",
        )
        .bind(reason)
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}
