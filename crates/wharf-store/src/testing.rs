//! Throwaway databases for tests (feature `testing`): a fresh SQLite file in a temp dir, or a
//! fresh database on the PostgreSQL server named by `WHARF_TEST_POSTGRES_URL`, dropped again when
//! the [`TestDatabase`] is dropped. `scripts/test` starts a private PostgreSQL and sets the URL.

use std::path::PathBuf;

use sqlx::{Connection, PgConnection};

/// Which database a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database that exists for one test.
pub struct TestDatabase {
    pub url: String,
    /// Where a SQLite database lives (and the data dir a server under test may use).
    pub dir: tempfile::TempDir,
    postgres: Option<(String, String)>,
}

impl TestDatabase {
    /// Makes an empty database on `backend`. Panics with instructions when PostgreSQL is wanted
    /// but `WHARF_TEST_POSTGRES_URL` is not set.
    pub async fn new(backend: Backend) -> TestDatabase {
        let dir = tempfile::tempdir().expect("temp dir");
        match backend {
            Backend::Sqlite => {
                let url = format!("sqlite://{}", dir.path().join("wharf.db").display());
                TestDatabase {
                    url,
                    dir,
                    postgres: None,
                }
            }
            Backend::Postgres => {
                let admin_url = std::env::var("WHARF_TEST_POSTGRES_URL").unwrap_or_else(|_| {
                    panic!(
                        "WHARF_TEST_POSTGRES_URL is not set: PostgreSQL tests need a server \
                         (run the suite with `scripts/test`, which starts one)"
                    )
                });
                let name = format!("wharf_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn = PgConnection::connect(&admin_url)
                    .await
                    .expect("connect to WHARF_TEST_POSTGRES_URL");
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .expect("create test database");
                conn.close().await.ok();
                let url = with_database(&admin_url, &name);
                TestDatabase {
                    url,
                    dir,
                    postgres: Some((admin_url, name)),
                }
            }
        }
    }

    /// A data directory beside the database, for a server under test.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

/// `postgres://u:p@h:5432/postgres?x=y` with its database replaced by `db`.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{db}", &base[..path_start]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some((admin_url, name)) = self.postgres.take() else {
            return;
        };
        // Drop may run inside a runtime that is shutting down; use a thread with its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let mut conn = PgConnection::connect(&admin_url).await.ok()?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await
                    .ok()?;
                conn.close().await.ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(()))) {
            eprintln!(
                "note: could not drop a test database; scripts/test removes its server afterwards"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn replaces_the_database() {
        assert_eq!(
            super::with_database("postgres://u:p@h:5/postgres", "x"),
            "postgres://u:p@h:5/x"
        );
        assert_eq!(
            super::with_database("postgres://u@h/postgres?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
        assert_eq!(super::with_database("postgres://h", "x"), "postgres://h/x");
    }
}
