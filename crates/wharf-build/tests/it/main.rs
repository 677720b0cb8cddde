//! wharf-build's integration tests: real builds of tiny real apps in temp dirs, offline.

mod fixture;

mod errors;
mod providers;
mod sandbox;
