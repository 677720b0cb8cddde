//! Integration tests for wharf-image: real files in temp dirs, real tar and gzip.

mod archive;
mod build;
mod extract;
mod fixture;
mod props;
mod store;
mod tools;
