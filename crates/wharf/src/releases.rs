//! `wharf releases`: list and info.

use crate::cli::{Global, ReleasesArgs, ReleasesCommand};
use crate::context;
use crate::output;

pub async fn run(global: &Global, args: ReleasesArgs) -> anyhow::Result<()> {
    let client = context::client(global)?;
    let command = args.command.unwrap_or(ReleasesCommand::List {
        app: args.app,
        json: args.json,
        num: args.num,
    });
    match command {
        ReleasesCommand::List { app, json, num } => {
            let app = context::app_name(&app)?;
            let releases = client.releases(&app, Some(num.max(1))).await?;
            if json.json {
                return output::json(&releases);
            }
            println!("=== {app} releases");
            let rows: Vec<Vec<String>> = releases
                .iter()
                .map(|r| {
                    vec![
                        format!("v{}", r.version),
                        if r.current { "*".into() } else { String::new() },
                        r.description.clone(),
                        r.status.as_str().to_owned(),
                        r.user.email.clone(),
                        r.created_at.clone(),
                    ]
                })
                .collect();
            output::table(
                &[
                    "VERSION",
                    "CURRENT",
                    "DESCRIPTION",
                    "STATUS",
                    "BY",
                    "CREATED",
                ],
                &rows,
            );
        }
        ReleasesCommand::Info { release, app, json } => {
            let app = context::app_name(&app)?;
            let release = match release {
                Some(release) => client.release(&app, &release).await?,
                None => match client
                    .releases(&app, Some(15))
                    .await?
                    .into_iter()
                    .find(|r| r.current)
                {
                    Some(release) => release,
                    None => anyhow::bail!("{app} has no current release"),
                },
            };
            let config = client.release_config_vars(&app, &release.id).await?;
            if json.json {
                let mut value = serde_json::to_value(&release)?;
                value["config_vars"] = serde_json::to_value(&config)?;
                return output::json(&value);
            }
            println!("=== {app} release v{}", release.version);
            let status = match &release.status_reason {
                Some(why) => format!("{} ({why})", release.status.as_str()),
                None => release.status.as_str().to_owned(),
            };
            output::key_values(&[
                ("Description".into(), release.description.clone()),
                ("Status".into(), status),
                (
                    "Current".into(),
                    if release.current {
                        "yes".into()
                    } else {
                        "no".into()
                    },
                ),
                (
                    "Image".into(),
                    release
                        .slug
                        .as_ref()
                        .map(|s| s.id.clone())
                        .unwrap_or_else(|| "none (no build yet)".into()),
                ),
                ("By".into(), release.user.email.clone()),
                ("Created".into(), release.created_at.clone()),
                ("Id".into(), release.id.clone()),
            ]);
            println!();
            println!("=== config vars of v{}", release.version);
            if config.is_empty() {
                println!("(none)");
            } else {
                output::key_values(&config.into_iter().collect::<Vec<_>>());
            }
        }
    }
    Ok(())
}
