//! `wharf certs`: an app's TLS certificates, which the router serves by SNI on
//! `WHARF_ROUTER_TLS_ADDR` for the app's hostnames each names.

use anyhow::Context as _;
use wharf_core::api::SniEndpoint;

use crate::cli::{AppArg, AutoAction, CertsArgs, CertsCommand, Global, JsonArg};
use crate::context;
use crate::output;

pub async fn run(global: &Global, args: CertsArgs) -> anyhow::Result<()> {
    let command = args.command.unwrap_or(CertsCommand::List {
        app: args.app,
        json: args.json,
    });
    run_one(global, command).await
}

fn read(path: &std::path::Path, what: &str) -> anyhow::Result<String> {
    std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the {what} {}", path.display()))
}

pub async fn run_one(global: &Global, command: CertsCommand) -> anyhow::Result<()> {
    let client = context::client(global)?;
    match command {
        CertsCommand::List { app, json } => {
            let app = context::app_name(&app)?;
            let certs = client.certs(&app).await?;
            if json.json {
                return output::json(&certs);
            }
            if certs.is_empty() {
                println!("{app} has no TLS certificates. Add one with `wharf certs:add CRT KEY -a {app}`.");
                return Ok(());
            }
            println!("=== {app} certificates");
            let rows: Vec<Vec<String>> = certs
                .iter()
                .map(|c| {
                    vec![
                        c.name.clone(),
                        c.ssl_cert.cert_domains.join(", "),
                        c.ssl_cert.expires_at.clone(),
                        if c.ssl_cert.ca_signed { "yes" } else { "no" }.to_owned(),
                        if c.ssl_cert.acm { "ACM" } else { "uploaded" }.to_owned(),
                        c.domains.join(", "),
                    ]
                })
                .collect();
            output::table(
                &["NAME", "NAMES", "EXPIRES", "TRUSTED", "SOURCE", "SERVES"],
                &rows,
            );
        }
        CertsCommand::Add(args) => {
            let app = context::app_name(&args.app)?;
            let chain = read(&args.cert, "certificate")?;
            let key = read(&args.key, "private key")?;
            let cert = client.add_cert(&app, &chain, &key).await?;
            if args.json.json {
                return output::json(&cert);
            }
            println!("Added certificate {} to {app}.", cert.name);
            details(&cert);
        }
        CertsCommand::Info(args) => {
            let app = context::app_name(&args.app)?;
            let cert = client.cert(&app, &args.name).await?;
            if args.json.json {
                return output::json(&cert);
            }
            println!("=== {}", cert.name);
            details(&cert);
        }
        CertsCommand::Update(args) => {
            let app = context::app_name(&args.app)?;
            let chain = read(&args.cert, "certificate")?;
            let key = read(&args.key, "private key")?;
            let cert = client.update_cert(&app, &args.name, &chain, &key).await?;
            if args.json.json {
                return output::json(&cert);
            }
            println!("Replaced certificate {} of {app}.", cert.name);
            details(&cert);
        }
        CertsCommand::Auto { action, app, json } => return auto(global, action, app, json).await,
        CertsCommand::Remove(args) => {
            let app = context::app_name(&args.app)?;
            let cert = client.remove_cert(&app, &args.name).await?;
            if args.json.json {
                return output::json(&cert);
            }
            println!("Removed certificate {} from {app}.", cert.name);
        }
    }
    Ok(())
}

fn details(cert: &SniEndpoint) {
    let ssl = &cert.ssl_cert;
    let serves = if cert.domains.is_empty() {
        "none of the app's hostnames yet (add one it names: `wharf domains add`)".to_owned()
    } else {
        cert.domains.join(", ")
    };
    output::key_values(&[
        ("Names".to_owned(), ssl.cert_domains.join(", ")),
        ("Serves".to_owned(), serves),
        ("Subject".to_owned(), ssl.subject.clone()),
        ("Issuer".to_owned(), ssl.issuer.clone()),
        ("Starts".to_owned(), ssl.starts_at.clone()),
        ("Expires".to_owned(), ssl.expires_at.clone()),
        (
            "Trusted".to_owned(),
            if ssl.ca_signed {
                "yes: its chain leads to an authority this server's system trusts"
            } else if ssl.self_signed {
                "no: it is self-signed"
            } else {
                "no: its chain leads to no authority this server's system trusts"
            }
            .to_owned(),
        ),
    ]);
}

/// `wharf certs:auto[:enable|:disable|:refresh]`.
pub async fn auto(
    global: &Global,
    action: Option<AutoAction>,
    app: AppArg,
    json: JsonArg,
) -> anyhow::Result<()> {
    let client = context::client(global)?;
    let app = context::app_name(&app)?;
    let record = match action {
        None => client.app(&app).await?,
        Some(AutoAction::Enable) => client.acm(&app, Some(true)).await?,
        Some(AutoAction::Disable) => client.acm(&app, Some(false)).await?,
        Some(AutoAction::Refresh) => client.acm(&app, None).await?,
    };
    let domains: Vec<_> = client
        .domains(&app)
        .await?
        .into_iter()
        .filter(|d| d.kind == "custom")
        .collect();
    if json.json {
        return output::json(&serde_json::json!({
            "app": record.name,
            "acm": record.acm,
            "domains": domains,
        }));
    }
    match action {
        Some(AutoAction::Enable) => println!(
            "Automated Certificate Management is on for {app}: each custom domain gets a certificate from the ACME directory."
        ),
        Some(AutoAction::Disable) => {
            println!("Automated Certificate Management is off for {app}; its ACME certificates are removed.");
            return Ok(());
        }
        Some(AutoAction::Refresh) => println!("Trying {app}'s failing domains again now."),
        None if !record.acm => {
            println!("Automated Certificate Management is off for {app} (`wharf certs:auto:enable -a {app}`).");
            return Ok(());
        }
        None => println!("=== Automated Certificate Management is on for {app}"),
    }
    if domains.is_empty() {
        println!("{app} has no custom domain yet: `wharf domains add HOSTNAME -a {app}`.");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = domains
        .iter()
        .map(|d| {
            vec![
                d.hostname.clone(),
                d.acm_status.clone().unwrap_or_else(|| "pending".to_owned()),
                d.acm_status_reason.clone().unwrap_or_default(),
            ]
        })
        .collect();
    output::table(&["DOMAIN", "STATUS", "REASON"], &rows);
    Ok(())
}
