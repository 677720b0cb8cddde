//! `wharf stacks`: list, info, build.

use anyhow::bail;
use wharf_core::api::{Stack, StackImage};

use crate::cli::{Global, RebaseArgs, StackSetArgs, StacksArgs, StacksCommand};
use crate::context;
use crate::output;

pub async fn run(global: &Global, args: StacksArgs) -> anyhow::Result<()> {
    let client = context::client(global)?;
    match args
        .command
        .unwrap_or(StacksCommand::List { json: args.json })
    {
        StacksCommand::List { json } => {
            let stacks = client.stacks().await?;
            if json.json {
                return output::json(&stacks);
            }
            println!("=== Stacks");
            let rows: Vec<Vec<String>> = stacks
                .iter()
                .map(|s| {
                    vec![
                        format!("{}{}", if s.default { "* " } else { "  " }, s.name),
                        s.status.clone(),
                        s.suite.clone().unwrap_or_default(),
                        image_cell(s.run_image.as_ref()),
                        image_cell(s.build_image.as_ref()),
                        s.run_image
                            .as_ref()
                            .and_then(|i| i.created.clone())
                            .unwrap_or_default(),
                    ]
                })
                .collect();
            output::table(
                &[
                    "  NAME",
                    "STATUS",
                    "DEBIAN",
                    "RUN IMAGE",
                    "BUILD IMAGE",
                    "PACKAGES AS OF",
                ],
                &rows,
            );
        }
        StacksCommand::Info { stack, json } => {
            let stack = client.stack(&stack).await?;
            if json.json {
                return output::json(&stack);
            }
            print_info(&stack);
        }
        StacksCommand::Import {
            stack,
            run,
            build,
            json,
        } => {
            let started = client
                .import_stack(&stack, &local_path(&run), &local_path(&build))
                .await?;
            follow(&client, &stack, &started, json.json).await?;
        }
        StacksCommand::Build { stack, json } => {
            let started = client.make_stack(&stack).await?;
            follow(&client, &stack, &started, json.json).await?;
        }
        StacksCommand::Set(args) => return set(global, args).await,
        StacksCommand::Rebase(args) => return rebase(global, args).await,
    }
    Ok(())
}

/// `wharf stacks set` / `wharf stack:set`: the app's next build uses the stack.
pub async fn set(global: &Global, args: StackSetArgs) -> anyhow::Result<()> {
    let client = context::client(global)?;
    let app = context::app_name(&args.app)?;
    let updated = client
        .update_app(
            &app,
            &wharf_core::api::AppUpdate {
                build_stack: Some(args.stack),
                ..Default::default()
            },
        )
        .await?;
    if args.json.json {
        return output::json(&updated);
    }
    println!(
        "Set the stack of {} to {}: its next deploy builds on it (`wharf deploy` or `git push`).",
        updated.name, updated.build_stack.name
    );
    Ok(())
}

/// A short digest and size, or nothing.
fn image_cell(image: Option<&StackImage>) -> String {
    image
        .map(|i| {
            format!(
                "{} ({})",
                i.digest.get(..19).unwrap_or(&i.digest),
                mib(i.size)
            )
        })
        .unwrap_or_default()
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn print_info(stack: &Stack) {
    let image = |i: Option<&StackImage>| {
        i.map(|i| {
            format!(
                "{} ({}, {} packages)",
                i.digest,
                mib(i.size),
                i.packages.len()
            )
        })
        .unwrap_or_else(|| "not made".to_owned())
    };
    output::key_values(&[
        ("Name".into(), stack.name.clone()),
        ("Status".into(), stack.status.clone()),
        ("Debian".into(), stack.suite.clone().unwrap_or_default()),
        ("Run image".into(), image(stack.run_image.as_ref())),
        ("Build image".into(), image(stack.build_image.as_ref())),
        (
            "Packages as of".into(),
            stack
                .run_image
                .as_ref()
                .and_then(|i| i.created.clone())
                .unwrap_or_default(),
        ),
        ("Default".into(), stack.default.to_string()),
    ]);
}

/// `wharf stacks rebase` / `wharf stacks:rebase`: one app, or with `--all` every app, each as
/// a new release on its stack's newest run image. With `--all`, apps that are up to date or
/// not on a stack are listed as such; any other failure makes the exit status non-zero.
pub async fn rebase(global: &Global, args: RebaseArgs) -> anyhow::Result<()> {
    let client = context::client(global)?;
    if !args.all {
        let app = context::app_name(&args.app)?;
        let release = client.rebase(&app).await?;
        if args.json.json {
            return output::json(&release);
        }
        println!(
            "Rebased {app}: v{} ({}) is live",
            release.version, release.description
        );
        return Ok(());
    }
    let mut rows = Vec::new();
    let mut results = Vec::new();
    let mut failed = 0;
    for app in client.apps().await? {
        let (outcome, detail) = match client.rebase(&app.name).await {
            Ok(release) => {
                let detail = format!("v{} {}", release.version, release.description);
                results.push(serde_json::json!({"app": app.name, "release": release}));
                ("rebased", detail)
            }
            Err(e) => {
                let skipped = matches!(e.api_id(), Some("conflict" | "invalid_params"));
                if !skipped {
                    failed += 1;
                }
                let message = e.to_string();
                results.push(serde_json::json!({"app": app.name, "error": message}));
                (if skipped { "skipped" } else { "failed" }, message)
            }
        };
        rows.push(vec![app.name.clone(), outcome.to_owned(), detail]);
    }
    if args.json.json {
        output::json(&results)?;
    } else {
        output::table(&["APP", "OUTCOME", "DETAIL"], &rows);
    }
    if failed > 0 {
        bail!("{failed} app(s) could not be rebased (see above)");
    }
    Ok(())
}

/// Streams a stack's making (or import) to stderr until it ends, then shows the stack.
async fn follow(
    client: &wharf_client::Client,
    stack: &str,
    started: &Stack,
    json: bool,
) -> anyhow::Result<()> {
    let Some(url) = &started.output_stream_url else {
        bail!("the server gave no output stream for making {stack}");
    };
    // Progress goes to stderr, so --json's stdout is the stack alone.
    output::copy_stream(client, url, &mut std::io::stderr()).await?;
    let made = client.stack(stack).await?;
    if made.status != "ready" {
        bail!("{stack} was not made: its output above says why");
    }
    if json {
        return output::json(&made);
    }
    print_info(&made);
    Ok(())
}

/// An image reference with a relative file path made absolute (the server reads it, and does
/// not share this command's working directory).
fn local_path(reference: &str) -> String {
    for transport in ["oci:", "oci-archive:", "docker-archive:"] {
        if let Some(rest) = reference.strip_prefix(transport) {
            if !rest.starts_with('/') {
                if let Ok(dir) = std::env::current_dir() {
                    return format!("{transport}{}/{rest}", dir.display());
                }
            }
        }
    }
    reference.to_owned()
}
