//! Config vars: the app's current environment. Every change is also a new release, made in the
//! same transaction, so the config table and the newest release never disagree.

use std::collections::BTreeMap;

use sqlx::{Any, Row, Transaction};
use wharf_core::config::{ConfigChange, ConfigDiff, ConfigKey, ConfigVars};

use crate::releases::{current_image, insert_release, ReleaseRecord};
use crate::secrets::{Column, Secrets};
use crate::{Result, Store, StoreError};

/// The outcome of a config change.
#[derive(Debug, Clone)]
pub struct ConfigUpdate {
    /// The app's config vars after the change.
    pub vars: ConfigVars,
    /// The release the change made; `None` when nothing changed.
    pub release: Option<ReleaseRecord>,
}

async fn load(
    executor: &mut Transaction<'_, Any>,
    secrets: &Secrets,
    app_id: &str,
) -> Result<ConfigVars> {
    let rows = sqlx::query("SELECT key, value FROM config_vars WHERE app_id = $1")
        .bind(app_id)
        .fetch_all(&mut **executor)
        .await?;
    to_vars(secrets, rows)
}

fn to_vars(secrets: &Secrets, rows: Vec<sqlx::any::AnyRow>) -> Result<ConfigVars> {
    let mut map = BTreeMap::new();
    for row in rows {
        let key: String = row.try_get("key")?;
        let key = ConfigKey::parse(&key).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        map.insert(
            key,
            secrets.open(Column::ConfigVars, row.try_get::<String, _>("value")?)?,
        );
    }
    ConfigVars::from_map(map).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Takes the app row's write lock, then reads its config: two concurrent changes apply one after
/// the other instead of both starting from the same old config.
pub(crate) async fn load_for_update(
    tx: &mut Transaction<'_, Any>,
    secrets: &Secrets,
    app_id: &str,
) -> Result<ConfigVars> {
    let locked = sqlx::query("UPDATE apps SET updated_at = updated_at WHERE id = $1")
        .bind(app_id)
        .execute(&mut **tx)
        .await?;
    if locked.rows_affected() == 0 {
        return Err(StoreError::NotFound {
            kind: "app",
            ident: app_id.to_owned(),
        });
    }
    load(tx, secrets, app_id).await
}

impl Store {
    /// The app's current config vars.
    pub async fn config_vars(&self, app_id: &str) -> Result<ConfigVars> {
        let rows = sqlx::query("SELECT key, value FROM config_vars WHERE app_id = $1")
            .bind(app_id)
            .fetch_all(&self.pool)
            .await?;
        to_vars(&self.secrets, rows)
    }

    /// Applies `change` and, if any value actually changed, makes a release with the new config
    /// and the current release's image, described like Heroku ("Set FOO, BAR config vars").
    pub async fn update_config(
        &self,
        app_id: &str,
        user_id: &str,
        change: &ConfigChange,
    ) -> Result<ConfigUpdate> {
        let mut tx = self.pool.begin().await?;
        let current = load_for_update(&mut tx, &self.secrets, app_id).await?;
        let (vars, diff) = write_change(&mut tx, &self.secrets, app_id, current, change).await?;
        if diff.is_empty() {
            tx.rollback().await?;
            return Ok(ConfigUpdate {
                vars,
                release: None,
            });
        }
        let image = current_image(&mut tx, app_id).await?;
        let release_id = insert_release(
            &mut tx,
            &self.secrets,
            app_id,
            user_id,
            &diff.description(),
            &vars,
            image.as_ref(),
        )
        .await?;
        tx.commit().await?;
        let release = self.release_by_id(&release_id).await?;
        Ok(ConfigUpdate {
            vars,
            release: Some(release),
        })
    }
}

/// Applies `change` to the app's config `current` (already loaded for update in `tx`) and
/// writes what changed; returns the new config and the difference.
pub(crate) async fn write_change(
    tx: &mut Transaction<'_, Any>,
    secrets: &Secrets,
    app_id: &str,
    current: ConfigVars,
    change: &ConfigChange,
) -> Result<(ConfigVars, ConfigDiff)> {
    let (vars, diff) = current
        .apply(change)
        .map_err(|e| StoreError::Invalid(e.to_string()))?;
    for key in &diff.removed {
        sqlx::query("DELETE FROM config_vars WHERE app_id = $1 AND key = $2")
            .bind(app_id)
            .bind(key.as_str())
            .execute(&mut **tx)
            .await?;
    }
    for key in &diff.set {
        let value = vars.get(key.as_str()).unwrap_or_default();
        sqlx::query(
            "INSERT INTO config_vars (app_id, key, value) VALUES ($1, $2, $3) \
             ON CONFLICT (app_id, key) DO UPDATE SET value = excluded.value",
        )
        .bind(app_id)
        .bind(key.as_str())
        .bind(secrets.seal(Column::ConfigVars, value))
        .execute(&mut **tx)
        .await?;
    }
    Ok((vars, diff))
}
