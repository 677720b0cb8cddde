//! `wharf domains`, `wharf maintenance` and `wharf open`: how an app is reached through the
//! router.

use wharf_core::api::AppUpdate;

use crate::cli::{AppArg, DomainsArgs, DomainsCommand, Global, JsonArg, OnOff, RedirectArgs};
use crate::context;
use crate::output;

pub async fn run(global: &Global, args: DomainsArgs) -> anyhow::Result<()> {
    let client = context::client(global)?;
    let command = args.command.unwrap_or(DomainsCommand::List {
        app: args.app,
        json: args.json,
    });
    match command {
        DomainsCommand::List { app, json } => {
            let app = context::app_name(&app)?;
            let domains = client.domains(&app).await?;
            if json.json {
                return output::json(&domains);
            }
            println!("=== {app} domains");
            let rows: Vec<Vec<String>> = domains
                .iter()
                .map(|d| {
                    vec![
                        d.hostname.clone(),
                        if d.kind == "heroku" {
                            "default".to_owned()
                        } else {
                            d.kind.clone()
                        },
                        d.cname.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            output::table(&["HOSTNAME", "KIND", "CNAME TARGET"], &rows);
        }
        DomainsCommand::Add {
            hostname,
            app,
            json,
        } => {
            let app = context::app_name(&app)?;
            let domain = client.add_domain(&app, &hostname).await?;
            if json.json {
                return output::json(&domain);
            }
            println!("Added {} to {app}.", domain.hostname);
            if let Some(cname) = &domain.cname {
                println!(
                    "Point its DNS at the router: a CNAME record {} → {cname}",
                    domain.hostname
                );
            }
        }
        DomainsCommand::Remove { hostname, app } => {
            let app = context::app_name(&app)?;
            let domain = client.remove_domain(&app, &hostname).await?;
            println!("Removed {} from {app}.", domain.hostname);
        }
        DomainsCommand::Update {
            hostname,
            cert,
            app,
            json,
        } => {
            let app = context::app_name(&app)?;
            let domain = client
                .update_domain(&app, &hostname, cert.as_deref())
                .await?;
            if json.json {
                return output::json(&domain);
            }
            match &domain.sni_endpoint {
                Some(cert) => println!(
                    "{} is served with certificate {}.",
                    domain.hostname, cert.name
                ),
                None => println!("{} has no certificate that names it.", domain.hostname),
            }
        }
        DomainsCommand::Redirect(args) => return redirect(global, args).await,
    }
    Ok(())
}

/// `wharf domains:redirect [on|off]`.
pub async fn redirect(global: &Global, args: RedirectArgs) -> anyhow::Result<()> {
    let client = context::client(global)?;
    let app = context::app_name(&args.app)?;
    let record = match args.state {
        None => client.app(&app).await?,
        Some(state) => {
            let update = AppUpdate {
                https_redirect: Some(state == OnOff::On),
                ..AppUpdate::default()
            };
            client.update_app(&app, &update).await?
        }
    };
    if args.json.json {
        return output::json(&serde_json::json!({
            "app": record.name,
            "https_redirect": record.https_redirect,
        }));
    }
    match (args.state, record.https_redirect) {
        (None, on) => println!("{}", if on { "on" } else { "off" }),
        (Some(_), true) => println!(
            "Redirect to HTTPS is on for {app}: plain-HTTP requests for its hostnames with a certificate get 308 to https://."
        ),
        (Some(_), false) => println!("Redirect to HTTPS is off for {app}: plain HTTP is served as it comes."),
    }
    Ok(())
}

pub async fn maintenance(
    global: &Global,
    state: Option<OnOff>,
    app: &AppArg,
    json: &JsonArg,
) -> anyhow::Result<()> {
    let client = context::client(global)?;
    let app = context::app_name(app)?;
    let record = match state {
        None => client.app(&app).await?,
        Some(state) => {
            let update = AppUpdate {
                maintenance: Some(state == OnOff::On),
                ..AppUpdate::default()
            };
            client.update_app(&app, &update).await?
        }
    };
    if json.json {
        return output::json(&serde_json::json!({
            "app": record.name,
            "maintenance": record.maintenance,
        }));
    }
    match (state, record.maintenance) {
        (None, on) => println!("{}", if on { "on" } else { "off" }),
        (Some(_), true) => println!(
            "Maintenance mode is on for {app}: the router answers 503 with a maintenance page."
        ),
        (Some(_), false) => println!("Maintenance mode is off for {app}."),
    }
    Ok(())
}

pub async fn open(
    global: &Global,
    path: Option<&str>,
    browser: bool,
    app: &AppArg,
) -> anyhow::Result<()> {
    let client = context::client(global)?;
    let app = context::app_name(app)?;
    let record = client.app(&app).await?;
    let mut url = record.web_url.clone();
    if let Some(path) = path {
        url = format!(
            "{}/{}",
            url.trim_end_matches('/'),
            path.trim_start_matches('/')
        );
    }
    if browser {
        let status = std::process::Command::new("xdg-open")
            .arg(&url)
            .status()
            .map_err(|e| {
                anyhow::anyhow!("cannot run xdg-open to open {url}: {e}; open it by hand")
            })?;
        anyhow::ensure!(
            status.success(),
            "xdg-open could not open {url} ({status}); open it by hand"
        );
    } else {
        println!("{url}");
    }
    Ok(())
}
