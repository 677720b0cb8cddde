//! The build stage as the server runs it: a queue (one build per app at a time, a bounded number
//! overall), each build unpacking its checked source, running a provider in the sandbox
//! (`wharf-build`), packing the result into an image (`wharf-image`), and making a release.

pub mod output;
mod runner;

pub use runner::{BuildError, BuildRunner, BuildSettings, LABEL_APP_JSON};
