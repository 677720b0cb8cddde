//! wharf's domain: the names, formats and rules every other crate relies on.
//!
//! This crate owns the types that are checked at the edge and trusted inside (`AppName`,
//! `ProcessType`, `ConfigKey`, `ReleaseVersion`), the parsers for the files users write
//! (`Procfile`, `.env`), the config-var rules (key syntax, size cap, release descriptions),
//! formation quantities as the Heroku CLI sends them, the `Range` pagination header, and the API
//! request and response shapes shared by the server and the client (`api`).
//!
//! It does no I/O: no files, no sockets, no clock, no randomness. Everything here is a pure
//! function of its input, which is what makes it safe to fuzz and property-test.

pub mod api;
pub mod app_json;
pub mod backend;
pub mod build;
pub mod config;
pub mod domain;
pub mod dotenv;
mod error;
pub mod formation;
pub mod name;
pub mod procfile;
pub mod range;
pub mod release;
pub mod size;

pub use error::error_chain;
