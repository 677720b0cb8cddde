//! Integration tests: a real server on 127.0.0.1:0, a real database (SQLite and PostgreSQL),
//! a real HTTP client.

mod harness;

mod account;
mod apps;
mod builds;
mod config_vars;
mod conventions;
mod git;
mod openapi;
mod release_stage;
mod releases;
mod router;
mod run;
mod stacks;
mod tokens;
