//! The harness these tests share with the rest of wharf's: a server per test, in-process, on
//! its own database (`wharf-test-support`'s `server`).

pub use wharf_test_support::server::*;
