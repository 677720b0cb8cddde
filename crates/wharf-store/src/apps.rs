//! Apps: create, find by id or name, list, rename and other updates, destroy.

use sqlx::any::AnyRow;
use sqlx::Row;
use wharf_core::config::ConfigVars;
use wharf_core::name::AppName;
use wharf_core::range::Range;

use crate::page::{bind_all, FieldKind, KeysetQuery};
use crate::releases::insert_release;
use crate::{conflict_on_unique, flag, new_id, now, Page, Result, Store, StoreError};

/// An app as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRecord {
    pub id: String,
    pub name: AppName,
    pub owner_id: String,
    pub owner_email: String,
    pub maintenance: bool,
    /// Plain-HTTP requests for its hostnames with a certificate go to HTTPS.
    pub https_redirect: bool,
    /// Automated Certificate Management: ACME certificates for its custom domains.
    pub acm: bool,
    pub build_stack: String,
    /// When the current release was made.
    pub released_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// The changes `PATCH /apps/{app}` may make; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppUpdate {
    pub name: Option<AppName>,
    pub maintenance: Option<bool>,
    pub https_redirect: Option<bool>,
    pub acm: Option<bool>,
    pub build_stack: Option<String>,
}

const APP_SELECT: &str = "SELECT a.id, a.name, a.owner_id, u.email AS owner_email, a.maintenance, \
     a.https_redirect, a.acm, a.build_stack, a.created_at, a.updated_at, \
     (SELECT MAX(r.created_at) FROM releases r WHERE r.app_id = a.id AND r.status = 'succeeded') AS released_at \
     FROM apps a JOIN accounts u ON u.id = a.owner_id";

fn app_from_row(row: &AnyRow) -> Result<AppRecord> {
    let name: String = row.try_get("name")?;
    Ok(AppRecord {
        id: row.try_get("id")?,
        name: AppName::parse(&name).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        owner_id: row.try_get("owner_id")?,
        owner_email: row.try_get("owner_email")?,
        maintenance: flag(row, "maintenance")?,
        https_redirect: flag(row, "https_redirect")?,
        acm: flag(row, "acm")?,
        build_stack: row.try_get("build_stack")?,
        released_at: row.try_get("released_at")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn name_taken(name: &AppName) -> String {
    format!("app name `{name}` is already taken: choose another name")
}

impl Store {
    /// Creates an app owned by `owner_id`, with its first release ("Initial release", no config,
    /// no build) made in the same transaction.
    pub async fn create_app(
        &self,
        name: &AppName,
        owner_id: &str,
        build_stack: &str,
    ) -> Result<AppRecord> {
        let id = new_id();
        let at = now();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO apps (id, name, owner_id, maintenance, build_stack, release_seq, created_at, updated_at) \
             VALUES ($1, $2, $3, 0, $4, 0, $5, $5)",
        )
        .bind(&id)
        .bind(name.as_str())
        .bind(owner_id)
        .bind(build_stack)
        .bind(&at)
        .execute(&mut *tx)
        .await
        .map_err(|e| conflict_on_unique(e, || name_taken(name)))?;
        insert_release(
            &mut tx,
            &self.secrets,
            &id,
            owner_id,
            "Initial release",
            &ConfigVars::new(),
            None,
        )
        .await?;
        tx.commit().await?;
        self.app(&id).await
    }

    /// The app whose id or name is `ident`.
    pub async fn app(&self, ident: &str) -> Result<AppRecord> {
        let row = sqlx::query(&format!("{APP_SELECT} WHERE a.id = $1 OR a.name = $1"))
            .bind(ident)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                kind: "app",
                ident: ident.to_owned(),
            })?;
        app_from_row(&row)
    }

    /// One page of apps, sorted by the range's field (`id` or `name`).
    pub async fn list_apps(&self, range: &Range) -> Result<Page<AppRecord>> {
        let column = match range.field.as_str() {
            "id" => "a.id",
            "name" => "a.name",
            other => {
                return Err(StoreError::Invalid(format!(
                    "cannot sort apps by `{other}`: use id or name"
                )))
            }
        };
        let keyset = KeysetQuery::new(range, column, FieldKind::Text, 1)?;
        let mut sql = APP_SELECT.to_owned();
        if !keyset.conditions.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&keyset.conditions.join(" AND "));
        }
        sql.push_str(&format!(
            " ORDER BY {} LIMIT {}",
            keyset.order_by, keyset.limit
        ));
        let rows = bind_all(sqlx::query(&sql), &keyset.binds)
            .fetch_all(&self.pool)
            .await?;
        let apps = rows.iter().map(app_from_row).collect::<Result<Vec<_>>>()?;
        let field = range.field.clone();
        Ok(keyset.page(apps, |app| {
            if field == "id" {
                app.id.clone()
            } else {
                app.name.to_string()
            }
        }))
    }

    /// Every app, sorted by name (for start-up and metrics, not for the API, which pages).
    pub async fn all_apps(&self) -> Result<Vec<AppRecord>> {
        let rows = sqlx::query(&format!("{APP_SELECT} ORDER BY a.name"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(app_from_row).collect()
    }

    /// Applies `update` to the app `id` and returns it as it now is.
    pub async fn update_app(&self, id: &str, update: &AppUpdate) -> Result<AppRecord> {
        let mut tx = self.pool.begin().await?;
        let at = now();
        let done = sqlx::query("UPDATE apps SET updated_at = $2 WHERE id = $1")
            .bind(id)
            .bind(&at)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound {
                kind: "app",
                ident: id.to_owned(),
            });
        }
        if let Some(name) = &update.name {
            sqlx::query("UPDATE apps SET name = $2 WHERE id = $1")
                .bind(id)
                .bind(name.as_str())
                .execute(&mut *tx)
                .await
                .map_err(|e| conflict_on_unique(e, || name_taken(name)))?;
        }
        if let Some(maintenance) = update.maintenance {
            sqlx::query("UPDATE apps SET maintenance = $2 WHERE id = $1")
                .bind(id)
                .bind(i64::from(maintenance))
                .execute(&mut *tx)
                .await?;
        }
        if let Some(redirect) = update.https_redirect {
            sqlx::query("UPDATE apps SET https_redirect = $2 WHERE id = $1")
                .bind(id)
                .bind(i64::from(redirect))
                .execute(&mut *tx)
                .await?;
        }
        if let Some(acm) = update.acm {
            sqlx::query("UPDATE apps SET acm = $2 WHERE id = $1")
                .bind(id)
                .bind(i64::from(acm))
                .execute(&mut *tx)
                .await?;
        }
        if let Some(stack) = &update.build_stack {
            sqlx::query("UPDATE apps SET build_stack = $2 WHERE id = $1")
                .bind(id)
                .bind(stack.as_str())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.app(id).await
    }

    /// Destroys the app `id` with its config vars and releases; returns it as it was.
    pub async fn delete_app(&self, id: &str) -> Result<AppRecord> {
        let app = self.app(id).await?;
        let done = sqlx::query("DELETE FROM apps WHERE id = $1")
            .bind(&app.id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound {
                kind: "app",
                ident: id.to_owned(),
            });
        }
        Ok(app)
    }
}
