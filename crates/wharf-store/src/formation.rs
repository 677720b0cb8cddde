//! Formation: per app and process type, how many instances run and how. Rows follow the process
//! types of the app's newest build: a deploy adds the types it brings (`web` at 1, others at 0,
//! as Heroku does) and removes the ones it drops.

use std::collections::BTreeMap;

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use wharf_core::formation::{DynoSize, QuantityChange};

use crate::{new_id, now, Result, Store, StoreError};

/// Default seconds between the stop signal and SIGKILL.
pub const DEFAULT_GRACE_SECONDS: u64 = 30;

/// One process type's formation as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormationRecord {
    pub id: String,
    pub app_id: String,
    pub app_name: String,
    pub process_type: String,
    pub quantity: u32,
    pub size: DynoSize,
    /// Overrides the release's command; `None` runs the Procfile's.
    pub command: Option<String>,
    pub health_path: Option<String>,
    pub stop_signal: String,
    pub grace_seconds: u64,
    pub created_at: String,
    pub updated_at: String,
}

/// A change to one process type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormationChange {
    pub process_type: String,
    pub quantity: Option<QuantityChange>,
    pub size: Option<DynoSize>,
}

const FORMATION_SELECT: &str =
    "SELECT f.*, a.name AS app_name FROM formations f JOIN apps a ON a.id = f.app_id";

fn formation_from_row(row: &AnyRow) -> Result<FormationRecord> {
    let quantity: i64 = row.try_get("quantity")?;
    let size: String = row.try_get("size")?;
    let grace: i64 = row.try_get("grace_seconds")?;
    Ok(FormationRecord {
        id: row.try_get("id")?,
        app_id: row.try_get("app_id")?,
        app_name: row.try_get("app_name")?,
        process_type: row.try_get("process_type")?,
        quantity: u32::try_from(quantity)
            .map_err(|_| StoreError::Corrupt(format!("formation quantity {quantity}")))?,
        size: DynoSize::parse(&size).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        command: row.try_get("command")?,
        health_path: row.try_get("health_path")?,
        stop_signal: row.try_get("stop_signal")?,
        grace_seconds: u64::try_from(grace).unwrap_or(DEFAULT_GRACE_SECONDS),
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Makes the app's formation rows match `types` (the process types of its newest build): adds
/// the missing ones (`web` at 1, others at 0) and removes the others. `release` (the release
/// phase) never gets a row. Runs inside `tx`.
pub(crate) async fn sync_types(
    tx: &mut Transaction<'_, Any>,
    app_id: &str,
    types: &[String],
) -> Result<()> {
    let rows = sqlx::query("SELECT process_type FROM formations WHERE app_id = $1")
        .bind(app_id)
        .fetch_all(&mut **tx)
        .await?;
    let existing: Vec<String> = rows
        .iter()
        .map(|r| r.try_get("process_type"))
        .collect::<Result<_, _>>()?;
    // The release phase runs once per release, never as a scaled process.
    let types: Vec<&String> = types
        .iter()
        .filter(|t| t.as_str() != wharf_core::release::RELEASE_PHASE_TYPE)
        .collect();
    for gone in existing.iter().filter(|t| !types.contains(t)) {
        sqlx::query("DELETE FROM formations WHERE app_id = $1 AND process_type = $2")
            .bind(app_id)
            .bind(gone.as_str())
            .execute(&mut **tx)
            .await?;
    }
    let at = now();
    for new in types.into_iter().filter(|t| !existing.contains(t)) {
        sqlx::query(
            "INSERT INTO formations (id, app_id, process_type, quantity, size, stop_signal, grace_seconds, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, 'SIGTERM', $6, $7, $7)",
        )
        .bind(new_id())
        .bind(app_id)
        .bind(new.as_str())
        .bind(if new == "web" { 1i64 } else { 0 })
        .bind(DynoSize::default_size().name())
        .bind(i64::try_from(DEFAULT_GRACE_SECONDS).unwrap_or(30))
        .bind(&at)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

impl Store {
    /// The app's formation, by process type.
    pub async fn formation(&self, app_id: &str) -> Result<Vec<FormationRecord>> {
        let rows = sqlx::query(&format!(
            "{FORMATION_SELECT} WHERE f.app_id = $1 ORDER BY f.process_type"
        ))
        .bind(app_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(formation_from_row).collect()
    }

    /// Applies `changes` together: all of them or, if one names an unknown type or goes over
    /// the limit, none. Relative quantities apply to the stored ones, under the app's lock.
    pub async fn update_formation(
        &self,
        app_id: &str,
        changes: &[FormationChange],
    ) -> Result<Vec<FormationRecord>> {
        let mut tx = self.pool.begin().await?;
        let locked = sqlx::query("UPDATE apps SET updated_at = updated_at WHERE id = $1")
            .bind(app_id)
            .execute(&mut *tx)
            .await?;
        if locked.rows_affected() == 0 {
            return Err(StoreError::NotFound {
                kind: "app",
                ident: app_id.to_owned(),
            });
        }
        let rows = sqlx::query("SELECT process_type, quantity FROM formations WHERE app_id = $1")
            .bind(app_id)
            .fetch_all(&mut *tx)
            .await?;
        let mut current = BTreeMap::new();
        for row in &rows {
            let quantity: i64 = row.try_get("quantity")?;
            current.insert(
                row.try_get::<String, _>("process_type")?,
                u32::try_from(quantity).unwrap_or(0),
            );
        }
        let at = now();
        for change in changes {
            let Some(&quantity) = current.get(&change.process_type) else {
                let known: Vec<&str> = current.keys().map(String::as_str).collect();
                return Err(StoreError::Missing(if known.is_empty() {
                    format!(
                        "process type `{}` not found: the app has no process types until its first deploy",
                        change.process_type
                    )
                } else {
                    format!(
                        "process type `{}` not found: the app has {}",
                        change.process_type,
                        known.join(", ")
                    )
                }));
            };
            let quantity = match change.quantity {
                Some(q) => q
                    .apply(quantity)
                    .map_err(|e| StoreError::Invalid(format!("{}: {e}", change.process_type)))?,
                None => quantity,
            };
            current.insert(change.process_type.clone(), quantity);
            sqlx::query("UPDATE formations SET quantity = $3, updated_at = $4 WHERE app_id = $1 AND process_type = $2")
                .bind(app_id)
                .bind(change.process_type.as_str())
                .bind(i64::from(quantity))
                .bind(&at)
                .execute(&mut *tx)
                .await?;
            if let Some(size) = &change.size {
                sqlx::query(
                    "UPDATE formations SET size = $3 WHERE app_id = $1 AND process_type = $2",
                )
                .bind(app_id)
                .bind(change.process_type.as_str())
                .bind(size.name())
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        self.formation(app_id).await
    }
}
