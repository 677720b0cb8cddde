//! Integration tests of wharf-logs: real segment files in temp dirs, a real tokio runtime.

mod fixture;

mod follow;
mod overflow;
mod props;
mod read;
mod restart;
mod retention;
