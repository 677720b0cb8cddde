//! The harness these tests share with the rest of wharf's: a `wharf server` child per test and
//! client commands in a clean environment (`wharf-test-support`'s `cli`).

pub use wharf_test_support::cli::*;
