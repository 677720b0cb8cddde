//! Accounts and API tokens. A token's secret is shown once, when it is made; the store keeps
//! only its sha256, which is enough to recognise it and useless to anyone who reads the database.

use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{new_id, now, Result, Store, StoreError};

/// The email of the account wharf makes on first start.
pub const ADMIN_EMAIL: &str = "admin@wharf.local";

/// A user account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRecord {
    pub id: String,
    pub email: String,
    pub name: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// An API token, without its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub id: String,
    pub account_id: String,
    pub description: String,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

/// A token just made: the only moment its secret is known.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub record: TokenRecord,
    pub secret: String,
}

/// The hash under which a token secret is stored.
pub fn token_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn generate_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("wharf_{}", hex::encode(bytes))
}

fn account_from_row(row: &AnyRow) -> Result<AccountRecord> {
    Ok(AccountRecord {
        id: row.try_get("id")?,
        email: row.try_get("email")?,
        name: row.try_get("name")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn token_from_row(row: &AnyRow) -> Result<TokenRecord> {
    Ok(TokenRecord {
        id: row.try_get("id")?,
        account_id: row.try_get("account_id")?,
        description: row.try_get("description")?,
        created_at: row.try_get("created_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

impl Store {
    /// The admin account, made on first call.
    pub async fn admin_account(&self) -> Result<AccountRecord> {
        let at = now();
        sqlx::query(
            "INSERT INTO accounts (id, email, name, created_at, updated_at) VALUES ($1, $2, $3, $4, $4) \
             ON CONFLICT (email) DO NOTHING",
        )
        .bind(new_id())
        .bind(ADMIN_EMAIL)
        .bind("admin")
        .bind(at)
        .execute(&self.pool)
        .await?;
        let row = sqlx::query("SELECT * FROM accounts WHERE email = $1")
            .bind(ADMIN_EMAIL)
            .fetch_one(&self.pool)
            .await?;
        account_from_row(&row)
    }

    /// Makes a new token for `account_id`; its secret is returned once and never stored.
    pub async fn create_token(&self, account_id: &str, description: &str) -> Result<NewToken> {
        let secret = generate_secret();
        let record = self.insert_token(account_id, description, &secret).await?;
        Ok(NewToken { record, secret })
    }

    /// Stores the hash of a secret chosen elsewhere (`WHARF_ADMIN_TOKEN`) unless it is already
    /// known. Returns whether it was added.
    pub async fn import_token(
        &self,
        account_id: &str,
        description: &str,
        secret: &str,
    ) -> Result<bool> {
        let known = sqlx::query("SELECT id FROM api_tokens WHERE token_hash = $1")
            .bind(token_hash(secret))
            .fetch_optional(&self.pool)
            .await?;
        if known.is_some() {
            return Ok(false);
        }
        self.insert_token(account_id, description, secret).await?;
        Ok(true)
    }

    async fn insert_token(
        &self,
        account_id: &str,
        description: &str,
        secret: &str,
    ) -> Result<TokenRecord> {
        let record = TokenRecord {
            id: new_id(),
            account_id: account_id.to_owned(),
            description: description.to_owned(),
            created_at: now(),
            revoked_at: None,
        };
        sqlx::query(
            "INSERT INTO api_tokens (id, account_id, description, token_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&record.id)
        .bind(&record.account_id)
        .bind(&record.description)
        .bind(token_hash(secret))
        .bind(&record.created_at)
        .execute(&self.pool)
        .await?;
        Ok(record)
    }

    /// The account a live (not revoked) token belongs to, or `None` for an unknown secret.
    pub async fn authenticate(&self, secret: &str) -> Result<Option<(TokenRecord, AccountRecord)>> {
        let Some(row) = sqlx::query(
            "SELECT id, account_id, description, created_at, revoked_at FROM api_tokens \
             WHERE token_hash = $1 AND revoked_at IS NULL",
        )
        .bind(token_hash(secret))
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let token = token_from_row(&row)?;
        let account = sqlx::query("SELECT * FROM accounts WHERE id = $1")
            .bind(&token.account_id)
            .fetch_one(&self.pool)
            .await?;
        Ok(Some((token, account_from_row(&account)?)))
    }

    /// How many tokens can still be used.
    pub async fn count_live_tokens(&self) -> Result<u64> {
        let row = sqlx::query("SELECT COUNT(*) FROM api_tokens WHERE revoked_at IS NULL")
            .fetch_one(&self.pool)
            .await?;
        Ok(u64::try_from(row.try_get::<i64, _>(0)?).unwrap_or(0))
    }

    /// Every token of `account_id`, oldest first, revoked ones included.
    pub async fn list_tokens(&self, account_id: &str) -> Result<Vec<TokenRecord>> {
        let rows = sqlx::query(
            "SELECT id, account_id, description, created_at, revoked_at FROM api_tokens \
             WHERE account_id = $1 ORDER BY created_at, id",
        )
        .bind(account_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(token_from_row).collect()
    }

    /// Revokes a token; it stops working at once.
    pub async fn revoke_token(&self, id: &str) -> Result<TokenRecord> {
        let done = sqlx::query(
            "UPDATE api_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(id)
        .bind(now())
        .execute(&self.pool)
        .await?;
        let row = sqlx::query("SELECT id, account_id, description, created_at, revoked_at FROM api_tokens WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound { kind: "token", ident: id.to_owned() })?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!(
                "token `{id}` is already revoked"
            )));
        }
        token_from_row(&row)
    }
}
