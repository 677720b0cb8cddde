//! What wharf's test suites share (a dev-dependency only):
//!
//! - [`on_both_databases!`] runs each test once on SQLite and once on PostgreSQL;
//! - [`wait_until`] and [`wait_until_async`] poll a condition until it holds or a deadline
//!   passes, then fail with what they last saw. Tests wait on conditions, never on sleeps;
//! - `server` (feature `server`): a `wharf-server` in-process per test, on its own database,
//!   with a real HTTP client;
//! - `cli` (feature `cli`): the real `wharf` binary, a `wharf server` child per test and client
//!   commands in a clean environment, with `assert_cli_snapshot!`; `test_stack`, the small
//!   trixie stack every such server gets; `docker`, a private Docker engine per test.

use std::future::Future;
use std::time::{Duration, Instant};

pub mod certs;
#[cfg(feature = "cli")]
pub mod cli;
#[cfg(feature = "cli")]
pub mod docker;
pub mod k8s;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "cli")]
pub mod test_stack;

pub use wharf_store::testing::{Backend, TestDatabase};

/// Scratch that outlives one test (the test stack, downloaded runtimes): cargo's `target/tmp`,
/// found from the test binary's place (`target/<profile>/deps/<test>`).
#[cfg(feature = "cli")]
pub fn target_tmp() -> std::path::PathBuf {
    let test = std::env::current_exe().expect("the test binary's path");
    let target = test
        .ancestors()
        .nth(3)
        .expect("the test binary is in target/<profile>/deps");
    target.join("tmp")
}

/// How often [`wait_until`] and [`wait_until_async`] look again.
const POLL: Duration = Duration::from_millis(20);

/// Runs each `$name(Backend)` twice, as `$name::sqlite` and `$name::postgres`: as
/// `#[tokio::test]`s awaiting `$name` (on a two-thread runtime), or with `blocking:` first as
/// plain `#[test]`s calling it.
#[macro_export]
macro_rules! on_both_databases {
    (blocking: $($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn sqlite() {
                super::$name($crate::Backend::Sqlite)
            }
            #[test]
            fn postgres() {
                super::$name($crate::Backend::Postgres)
            }
        }
    )*};
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::Backend::Postgres).await
            }
        }
    )*};
}

/// Calls `check` until it gives `Ok`, for at most `within`; panics naming `what` and the last
/// `Err` (what it saw) when the deadline passes.
#[track_caller]
pub fn wait_until<T>(
    within: Duration,
    what: &str,
    mut check: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        match check() {
            Ok(value) => return value,
            Err(seen) if Instant::now() >= deadline => {
                panic!("waited {within:?} for {what}; last saw:\n{seen}")
            }
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

/// [`wait_until`] for a check that is a future, on tokio's clock between checks.
pub async fn wait_until_async<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + within;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(seen) if Instant::now() >= deadline => {
                panic!("waited {within:?} for {what}; last saw:\n{seen}")
            }
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}
