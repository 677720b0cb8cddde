//! `wharf builds`: list, info, output.

use anyhow::bail;

use crate::cli::{BuildsArgs, BuildsCommand, Global};
use crate::context;
use crate::output;

pub async fn run(global: &Global, args: BuildsArgs) -> anyhow::Result<()> {
    let client = context::client(global)?;
    let command = args.command.unwrap_or(BuildsCommand::List {
        app: args.app,
        json: args.json,
        num: args.num,
    });
    match command {
        BuildsCommand::List { app, json, num } => {
            let app = context::app_name(&app)?;
            let builds = client.builds(&app, Some(num.max(1))).await?;
            if json.json {
                return output::json(&builds);
            }
            if builds.is_empty() {
                println!("{app} has no builds yet: run `wharf deploy` in its directory");
                return Ok(());
            }
            println!("=== {app} builds");
            let rows: Vec<Vec<String>> = builds
                .iter()
                .map(|b| {
                    vec![
                        b.id.clone(),
                        b.phase.to_string(),
                        b.provider.clone().unwrap_or_default(),
                        b.runtime.clone().unwrap_or_default(),
                        b.source_blob.version.clone().unwrap_or_default(),
                        b.user.email.clone(),
                        b.created_at.clone(),
                    ]
                })
                .collect();
            output::table(
                &[
                    "ID", "STATUS", "PROVIDER", "RUNTIME", "VERSION", "BY", "CREATED",
                ],
                &rows,
            );
        }
        BuildsCommand::Info { build, app, json } => {
            let app = context::app_name(&app)?;
            let build = match build {
                Some(id) => client.build(&app, &id).await?,
                None => latest(&client, &app).await?,
            };
            if json.json {
                return output::json(&build);
            }
            let types = build
                .process_types
                .as_ref()
                .map(|t| {
                    t.iter()
                        .map(|(k, v)| format!("{k}: {v}"))
                        .collect::<Vec<_>>()
                        .join("; ")
                })
                .unwrap_or_default();
            output::key_values(&[
                ("Id".into(), build.id.clone()),
                ("Status".into(), build.phase.to_string()),
                (
                    "Provider".into(),
                    build.provider.clone().unwrap_or_default(),
                ),
                ("Runtime".into(), build.runtime.clone().unwrap_or_default()),
                (
                    "Source".into(),
                    build.source_blob.checksum.clone().unwrap_or_default(),
                ),
                (
                    "Version".into(),
                    build.source_blob.version.clone().unwrap_or_default(),
                ),
                (
                    "Image".into(),
                    build
                        .slug
                        .as_ref()
                        .map(|s| s.id.clone())
                        .unwrap_or_default(),
                ),
                ("Process types".into(), types),
                ("Error".into(), build.error.clone().unwrap_or_default()),
                ("By".into(), build.user.email.clone()),
                ("Created".into(), build.created_at.clone()),
            ]);
        }
        BuildsCommand::Output { build, app } => {
            let app = context::app_name(&app)?;
            let build = match build {
                Some(id) => client.build(&app, &id).await?,
                None => latest(&client, &app).await?,
            };
            output::copy_stream(&client, &build.output_stream_url, &mut std::io::stdout()).await?;
        }
    }
    Ok(())
}

async fn latest(
    client: &wharf_client::Client,
    app: &str,
) -> anyhow::Result<wharf_core::api::Build> {
    match client.builds(app, Some(1)).await?.into_iter().next() {
        Some(build) => Ok(build),
        None => bail!("{app} has no builds yet: run `wharf deploy` in its directory"),
    }
}
