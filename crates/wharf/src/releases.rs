//! `wharf releases` (list, info, output, diff), `wharf rollback` and `wharf promote`.

use std::time::Duration;

use anyhow::{bail, Context as _};
use wharf_client::Client;
use wharf_core::api::{KeyChange, Release, ReleaseCreate, ReleaseDiff};
use wharf_core::release::ReleaseStatus;

use crate::cli::{AppArg, Global, ReleasesArgs, ReleasesCommand};
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
                (
                    "Stack".into(),
                    match (&release.stack, &release.run_image) {
                        (Some(stack), Some(run)) => {
                            format!("{} (run image {run}; portable)", stack.name)
                        }
                        (Some(stack), None) => {
                            format!("{} (the host's /usr; not portable)", stack.name)
                        }
                        _ => "none (no build yet)".into(),
                    },
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
        ReleasesCommand::Output { release, app } => {
            let app = context::app_name(&app)?;
            let release = match release {
                Some(release) => client.release(&app, &release).await?,
                None => match client.releases(&app, Some(1)).await?.into_iter().next() {
                    Some(release) => release,
                    None => bail!("{app} has no releases yet"),
                },
            };
            let Some(url) = &release.output_stream_url else {
                bail!(
                    "v{} of {app} had no release phase (its Procfile has no `release:` command), \
                     so it has no output",
                    release.version
                );
            };
            output::copy_stream(&client, url, &mut std::io::stdout()).await?;
        }
        ReleasesCommand::Diff {
            from,
            to,
            show_values,
            app,
            json,
        } => {
            let app = context::app_name(&app)?;
            let to = match to {
                Some(to) => to,
                None => current(&client, &app).await?.version.to_string(),
            };
            let diff = client.release_diff(&app, &from, &to, show_values).await?;
            if json.json {
                return output::json(&diff);
            }
            print!("{}", render_diff(&app, &diff, show_values));
        }
    }
    Ok(())
}

/// The app's current release.
async fn current(client: &Client, app: &str) -> anyhow::Result<Release> {
    match client
        .releases(app, Some(50))
        .await?
        .into_iter()
        .find(|r| r.current)
    {
        Some(release) => Ok(release),
        None => bail!("{app} has no current release"),
    }
}

/// Waits for a new release to go live: shows its release phase's output, if it has one (on
/// stderr, so `--json` output stays clean), as it runs, then its outcome. Fails if the release
/// does.
pub async fn follow(client: &Client, app: &str, release: Release) -> anyhow::Result<Release> {
    // A release without a release phase has no output and is live already. One with a phase may
    // have run it by now: its output is shown all the same.
    let Some(url) = &release.output_stream_url else {
        return Ok(release);
    };
    output::copy_stream(client, url, &mut std::io::stderr()).await?;
    // The output ends as the phase does; the status is written a moment later.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let release = loop {
        let now = client.release(app, &release.id).await?;
        if now.status != ReleaseStatus::Pending {
            break now;
        }
        if tokio::time::Instant::now() > deadline {
            bail!(
                "v{}'s release phase output ended but the release is still pending",
                now.version
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    if release.status == ReleaseStatus::Failed {
        bail!(
            "v{} of {app} failed its release phase{}; the running release is unchanged \
             (`wharf releases output v{}` shows the output)",
            release.version,
            release
                .status_reason
                .as_deref()
                .map(|why| format!(": {why}"))
                .unwrap_or_default(),
            release.version
        );
    }
    Ok(release)
}

/// `wharf rollback [vK]`: to the release before the current one by default.
pub async fn rollback(
    global: &Global,
    release: Option<String>,
    app: AppArg,
    json: bool,
) -> anyhow::Result<()> {
    let client = context::client(global)?;
    let app = context::app_name(&app)?;
    let target = match release {
        Some(release) => release,
        None => {
            let releases = client.releases(&app, Some(100)).await?;
            let current = releases
                .iter()
                .position(|r| r.current)
                .with_context(|| format!("{app} has no current release to roll back from"))?;
            match releases[current + 1..]
                .iter()
                .find(|r| r.eligible_for_rollback && r.slug.is_some())
            {
                Some(previous) => previous.version.to_string(),
                None => bail!(
                    "{app} has no earlier release to roll back to (`wharf releases -a {app}` lists them)"
                ),
            }
        }
    };
    let made = client
        .create_release(
            &app,
            &ReleaseCreate {
                release: Some(target),
                ..ReleaseCreate::default()
            },
        )
        .await?;
    eprintln!(
        "Rolling back {app}: v{} ({})",
        made.version, made.description
    );
    let release = follow(&client, &app, made).await?;
    if json {
        return output::json(&release);
    }
    println!(
        "Rolled back {app}: {} is now v{}",
        release.description, release.version
    );
    Ok(())
}

/// `wharf promote --from A --to B`: B gets a new release with A's current image, unchanged.
pub async fn promote(global: &Global, from: &str, to: &str, json: bool) -> anyhow::Result<()> {
    let client = context::client(global)?;
    if from == to {
        bail!("--from and --to are both `{from}`: promote from one app to another");
    }
    let source = current(&client, from).await?;
    let Some(slug) = source.slug.as_ref().map(|s| s.id.clone()) else {
        bail!("{from} has no build to promote: deploy it first");
    };
    let made = client
        .create_release(
            to,
            &ReleaseCreate {
                slug: Some(slug.clone()),
                description: Some(format!("Promote {from} v{}", source.version)),
                ..ReleaseCreate::default()
            },
        )
        .await?;
    eprintln!(
        "Promoting {from} v{} ({}) to {to}: v{}",
        source.version,
        short(&slug),
        made.version
    );
    let release = follow(&client, to, made).await?;
    if json {
        return output::json(&release);
    }
    println!(
        "Promoted {from} v{} to {to}: image {} is now {to} v{}",
        source.version,
        short(&slug),
        release.version
    );
    Ok(())
}

/// `wharf gc`: collects garbage now and says what it freed.
pub async fn gc(global: &Global, json: bool) -> anyhow::Result<()> {
    let client = context::client(global)?;
    let report = client.gc().await?;
    if json {
        return output::json(&report);
    }
    println!(
        "Freed {}: {} image{} ({} blob{}), {} release tree{}, {} leftover temp file{}",
        wharf_core::size::human(report.bytes_freed),
        report.images_removed,
        plural(report.images_removed),
        report.blobs_removed,
        plural(report.blobs_removed),
        report.release_trees_removed.len(),
        plural(report.release_trees_removed.len()),
        report.temp_files_removed,
        plural(report.temp_files_removed),
    );
    println!(
        "Kept {} image{} (recent, current and running releases')",
        report.images_kept,
        plural(report.images_kept)
    );
    Ok(())
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// `sha256:0123456789ab…` → `0123456789ab`.
fn short(digest: &str) -> &str {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    hex.get(..12).unwrap_or(hex)
}

/// A diff as text: one section per kind of change, nothing for what didn't change.
fn render_diff(app: &str, diff: &ReleaseDiff, show_values: bool) -> String {
    let mut out = format!("=== {app} v{} → v{}\n", diff.from, diff.to);
    let value = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".to_owned());
    if diff.image.changed {
        out.push_str(&format!(
            "Image:     {} → {}\n",
            value(&diff.image.from)
                .trim_start_matches("sha256:")
                .get(..12)
                .unwrap_or("(none)"),
            value(&diff.image.to)
                .trim_start_matches("sha256:")
                .get(..12)
                .unwrap_or("(none)")
        ));
    } else {
        out.push_str("Image:     unchanged\n");
    }
    if diff.provider.changed {
        out.push_str(&format!(
            "Provider:  {} → {}\n",
            value(&diff.provider.from),
            value(&diff.provider.to)
        ));
    }
    let section = |out: &mut String, title: &str, changes: &[KeyChange], values: bool| {
        out.push_str(&format!("\n{title}\n"));
        if changes.is_empty() {
            out.push_str("  (no changes)\n");
            return;
        }
        let rows: Vec<Vec<String>> = changes
            .iter()
            .map(|c| {
                let sign = match c.change.as_str() {
                    "added" => "+",
                    "removed" => "-",
                    _ => "~",
                };
                let detail = if !values {
                    String::new()
                } else {
                    match c.change.as_str() {
                        "added" => value(&c.to),
                        "removed" => value(&c.from),
                        _ => format!("{} → {}", value(&c.from), value(&c.to)),
                    }
                };
                vec![format!("  {sign}"), c.key.clone(), detail]
            })
            .collect();
        // Blank headers size the columns; their (empty) line is skipped.
        for line in output::render_table(&["", "", ""], &rows).lines().skip(1) {
            out.push_str(line.trim_end());
            out.push('\n');
        }
    };
    section(&mut out, "Process types:", &diff.process_types, true);
    section(&mut out, "Config vars:", &diff.config_vars, show_values);
    if !show_values && !diff.config_vars.is_empty() {
        out.push_str("  (values hidden: --show-values shows them)\n");
    }
    out
}

/// `wharf registry:push`: copies a release's image to the server's registry and says where it
/// is. Says what it is doing first, on a terminal's stderr: a stack image takes a while.
/// `wharf k8s manifests`: the release's Kubernetes objects, as YAML (or the API's JSON).
pub async fn manifests(
    global: &Global,
    release: Option<&str>,
    app: &AppArg,
    json: bool,
) -> anyhow::Result<()> {
    let client = context::client(global)?;
    let app = context::app_name(app)?;
    let release = release.map(|r| r.trim_start_matches('v'));
    if json {
        return output::json(&client.release_manifests(&app, release).await?);
    }
    print!("{}", client.release_manifests_yaml(&app, release).await?);
    Ok(())
}

pub async fn registry_push(
    global: &Global,
    release: Option<&str>,
    app: &AppArg,
    json: bool,
) -> anyhow::Result<()> {
    let client = context::client(global)?;
    let app = context::app_name(app)?;
    let which = release.map_or_else(
        || "its current release".to_owned(),
        |r| format!("v{}", r.trim_start_matches('v')),
    );
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        eprintln!("Pushing {app} ({which}) to the server's registry...");
    }
    let pushed = client.registry_push(&app, release).await?;
    if json {
        return output::json(&pushed);
    }
    println!(
        "Pushed {app} v{}: {} ({})",
        pushed.release.version, pushed.image, pushed.digest
    );
    Ok(())
}
