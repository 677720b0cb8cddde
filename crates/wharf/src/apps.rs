//! `wharf apps`: list, create, info, rename, destroy.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::bail;
use wharf_core::api::{App, AppCreate, AppUpdate};

use crate::cli::{AppsArgs, AppsCommand, Global};
use crate::context;
use crate::output;

pub async fn run(global: &Global, args: AppsArgs) -> anyhow::Result<()> {
    let client = context::client(global)?;
    match args
        .command
        .unwrap_or(AppsCommand::List { json: args.json })
    {
        AppsCommand::List { json } => {
            let apps = client.apps().await?;
            if json.json {
                return output::json(&apps);
            }
            if apps.is_empty() {
                println!("No apps yet: create one with `wharf apps create NAME`");
                return Ok(());
            }
            let rows: Vec<Vec<String>> = apps
                .iter()
                .map(|a| {
                    vec![
                        a.name.clone(),
                        a.web_url.clone(),
                        if a.maintenance {
                            "on".into()
                        } else {
                            "off".into()
                        },
                        a.created_at.clone(),
                    ]
                })
                .collect();
            output::table(&["NAME", "WEB URL", "MAINTENANCE", "CREATED"], &rows);
        }
        AppsCommand::Create { name, json } => {
            let app = client
                .create_app(&AppCreate {
                    name,
                    ..AppCreate::default()
                })
                .await?;
            if json.json {
                return output::json(&app);
            }
            println!("Created {}", app.name);
            print_app(&app);
        }
        AppsCommand::Info { app, json } => {
            let app = client.app(&context::app_name(&app)?).await?;
            if json.json {
                return output::json(&app);
            }
            print_app(&app);
        }
        AppsCommand::Rename {
            new_name,
            app,
            json,
        } => {
            let old = context::app_name(&app)?;
            let app = client
                .update_app(
                    &old,
                    &AppUpdate {
                        name: Some(new_name),
                        ..AppUpdate::default()
                    },
                )
                .await?;
            if json.json {
                return output::json(&app);
            }
            println!("Renamed {old} to {}", app.name);
            println!("Its web URL is now {}", app.web_url);
        }
        AppsCommand::Destroy { app, confirm } => {
            let name = context::app_name(&app)?;
            confirm_destroy(&name, confirm.as_deref())?;
            let app = client.delete_app(&name).await?;
            println!("Destroyed {}", app.name);
        }
    }
    Ok(())
}

fn print_app(app: &App) {
    output::key_values(&[
        ("Name".into(), app.name.clone()),
        ("Id".into(), app.id.clone()),
        ("Web URL".into(), app.web_url.clone()),
        ("Git URL".into(), app.git_url.clone()),
        ("Owner".into(), app.owner.email.clone()),
        ("Stack".into(), app.build_stack.name.clone()),
        (
            "Maintenance".into(),
            if app.maintenance {
                "on".into()
            } else {
                "off".into()
            },
        ),
        (
            "Released".into(),
            app.released_at.clone().unwrap_or_else(|| "never".into()),
        ),
        ("Created".into(), app.created_at.clone()),
    ]);
}

/// Destroying is permanent: the user must name the app again, by flag or at a prompt.
fn confirm_destroy(name: &str, confirm: Option<&str>) -> anyhow::Result<()> {
    match confirm {
        Some(given) if given == name => return Ok(()),
        Some(given) => {
            bail!("--confirm `{given}` does not match the app `{name}`: nothing was destroyed")
        }
        None => {}
    }
    if !std::io::stdin().is_terminal() {
        bail!("destroying `{name}` is permanent: pass --confirm {name} to go ahead");
    }
    eprint!("This destroys {name}, its config vars and its releases, for good.\nType the app's name to confirm: ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if answer.trim() != name {
        bail!("the name did not match: nothing was destroyed");
    }
    Ok(())
}
