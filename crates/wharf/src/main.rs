//! The `wharf` binary: parses the command line, runs one command, and turns its error into a
//! message on stderr and an exit code. Each command lives in its own module; only this crate
//! prints to the terminal.

#![forbid(unsafe_code)]

mod apps;
mod builds;
mod certs;
mod cli;
mod config;
mod context;
mod deploy;
mod domains;
mod fsck;
mod git;
mod login;
mod logs;
mod output;
mod ps;
mod releases;
mod run;
mod server;
mod stacks;
mod tokens;
mod up;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    // The instance launcher runs before anything else, in the app's environment (see
    // `wharf_sandbox::launch`).
    let mut args = std::env::args_os().skip(1);
    if args.next().as_deref() == Some(std::ffi::OsStr::new(wharf_sandbox::launch::SUBCOMMAND)) {
        let error = match wharf_sandbox::launch::Launch::parse(args) {
            Ok(launch) => launch.exec(),
            Err(e) => e,
        };
        eprintln!("wharf {}: {error}", wharf_sandbox::launch::SUBCOMMAND);
        return ExitCode::from(127);
    }
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Server(args) => server::run(*args).await,
        Command::Up(args) => up::run(args).await,
        Command::Login(args) => login::run(&cli.global, args).await,
        Command::Logout => login::logout(),
        Command::Tokens(args) => tokens::run(&cli.global, args).await,
        Command::Apps(args) => apps::run(&cli.global, args).await,
        Command::Config(args) => config::run(&cli.global, args).await,
        Command::Releases(args) => releases::run(&cli.global, args).await,
        Command::Rollback { release, app, json } => {
            releases::rollback(&cli.global, release, app, json.json).await
        }
        Command::Promote { from, to, json } => {
            releases::promote(&cli.global, &from, &to, json.json).await
        }
        Command::Gc { json } => releases::gc(&cli.global, json.json).await,
        Command::Deploy(args) => deploy::run(&cli.global, args).await,
        Command::Builds(args) => builds::run(&cli.global, args).await,
        Command::Stacks(args) => stacks::run(&cli.global, args).await,
        Command::StackSet(args) => stacks::set(&cli.global, args).await,
        Command::StacksRebase(args) => stacks::rebase(&cli.global, args).await,
        Command::RegistryPush { release, app, json } => {
            releases::registry_push(&cli.global, release.as_deref(), &app, json.json).await
        }
        Command::K8s {
            command: cli::K8sCommand::Manifests { release, app, json },
        } => releases::manifests(&cli.global, release.as_deref(), &app, json.json).await,
        Command::Ps { app, json } => ps::ps(&cli.global, &app, &json).await,
        Command::Scale { changes, app, json } => {
            ps::scale(&cli.global, &app, &changes, &json).await
        }
        Command::Restart { target, app } => ps::restart(&cli.global, &app, target.as_deref()).await,
        Command::Stop { target, app } => ps::stop(&cli.global, &app, &target).await,
        Command::Domains(args) => domains::run(&cli.global, args).await,
        Command::DomainsRedirect(args) => domains::redirect(&cli.global, args).await,
        Command::Certs(args) => certs::run(&cli.global, args).await,
        Command::CertsAdd(args) => certs::run_one(&cli.global, cli::CertsCommand::Add(args)).await,
        Command::CertsInfo(args) => {
            certs::run_one(&cli.global, cli::CertsCommand::Info(args)).await
        }
        Command::CertsUpdate(args) => {
            certs::run_one(&cli.global, cli::CertsCommand::Update(args)).await
        }
        Command::CertsAuto(a) => certs::auto(&cli.global, None, a.app, a.json).await,
        Command::CertsAutoEnable(a) => {
            certs::auto(&cli.global, Some(cli::AutoAction::Enable), a.app, a.json).await
        }
        Command::CertsAutoDisable(a) => {
            certs::auto(&cli.global, Some(cli::AutoAction::Disable), a.app, a.json).await
        }
        Command::CertsAutoRefresh(a) => {
            certs::auto(&cli.global, Some(cli::AutoAction::Refresh), a.app, a.json).await
        }
        Command::CertsRemove(args) => {
            certs::run_one(&cli.global, cli::CertsCommand::Remove(args)).await
        }
        Command::Maintenance { state, app, json } => {
            domains::maintenance(&cli.global, state, &app, &json).await
        }
        Command::Open { path, browser, app } => {
            domains::open(&cli.global, path.as_deref(), browser, &app).await
        }
        Command::Run(args) => run::run(&cli.global, args).await,
        Command::Logs(args) => logs::run(&cli.global, args).await,
        Command::GitRemote { remote, app } => git::remote(&cli.global, &app, &remote).await,
        Command::Tls {
            command: cli::TlsCommand::Ca { data_dir },
        } => git::ca(data_dir),
        Command::GitReceiveHook { app } => git::receive_hook(&cli.global, app).await,
        Command::GitCredential { operation } => git::credential(&cli.global, &operation),
        Command::Fsck { data_dir, json } => fsck::run(data_dir, json),
        Command::ServeStatic { port, dir } => server::serve_static(port, dir).await,
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "wharf", &mut std::io::stdout());
            Ok(())
        }
    }
}
