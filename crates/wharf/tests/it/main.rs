//! Integration tests of the `wharf` binary: each test starts a real `wharf server` child on
//! 127.0.0.1:0 with its own data directory and drives it with real `wharf` client commands, as a
//! user at a shell would.

mod harness;

use wharf_test_support::{assert_cli_snapshot, test_stack};

mod abuse;
mod acme;
mod app_context;
mod apps;
mod certs;
mod completions;
mod config;
mod control_plane;
mod crash;
mod deploy;
mod disk_full;
mod domains;
mod errors;
mod examples;
mod first_run;
mod flow;
mod git_push;
mod heroku_cli;
mod isolation;
mod k8s;
mod kubernetes;
mod login;
mod registry;
mod release_stage;
mod releases;
mod run;
mod runtimes;
mod shutdown;
mod soak;
mod stacks;
mod swarm;
mod tokens;
mod up;
