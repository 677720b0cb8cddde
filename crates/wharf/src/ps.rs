//! `wharf ps`, `wharf scale`, `wharf restart`, `wharf stop`: the app's running processes.

use anyhow::bail;
use wharf_core::api::{FormationBatchEntry, FormationBatchUpdate};
use wharf_core::formation::QuantityChange;

use crate::cli::{AppArg, Global, JsonArg};
use crate::context;
use crate::output;

pub async fn ps(global: &Global, app: &AppArg, json: &JsonArg) -> anyhow::Result<()> {
    let client = context::client(global)?;
    let app = context::app_name(app)?;
    let dynos = client.dynos(&app).await?;
    if json.json {
        return output::json(&dynos);
    }
    if dynos.is_empty() {
        let formation = client.formation(&app).await?;
        if formation.is_empty() {
            println!("{app} runs nothing yet: deploy it with `wharf deploy`");
        } else {
            println!("{app} runs no processes: scale one up with `wharf scale web=1 -a {app}`");
        }
        return Ok(());
    }
    // On an orchestrator, instances run on several nodes: say which.
    let on_nodes = dynos.iter().any(|d| d.node.is_some());
    let rows: Vec<Vec<String>> = dynos
        .iter()
        .map(|d| {
            let state = match (d.state.as_str(), d.next_restart_in) {
                ("crashed", Some(secs)) => format!("crashed (restart in {secs}s)"),
                (state, _) => state.to_owned(),
            };
            let mut row = vec![d.name.clone(), state];
            if on_nodes {
                row.push(d.node.clone().unwrap_or_default());
            }
            row.extend([
                d.updated_at.clone(),
                format!("v{}", d.release.version),
                d.port.map(|p| p.to_string()).unwrap_or_default(),
                d.restarts.to_string(),
                d.last_exit.clone().unwrap_or_default(),
                d.command.clone(),
            ]);
            row
        })
        .collect();
    let mut headers = vec!["NAME", "STATE"];
    if on_nodes {
        headers.push("NODE");
    }
    headers.extend([
        "SINCE",
        "RELEASE",
        "PORT",
        "RESTARTS",
        "LAST EXIT",
        "COMMAND",
    ]);
    output::table(&headers, &rows);
    Ok(())
}

/// `web=3`, `worker+1`, `web-1`, with an optional `:SIZE` (`web=2:standard-2x`).
fn parse_scale(arg: &str) -> anyhow::Result<FormationBatchEntry> {
    let (spec, size) = match arg.split_once(':') {
        Some((spec, size)) => (spec, Some(size.to_owned())),
        None => (arg, None),
    };
    let Some(at) = spec.find(['=', '+', '-']) else {
        bail!("`{arg}` is not a scale: write TYPE=N, TYPE+N or TYPE-N (e.g. web=3 worker+1)");
    };
    let (kind, quantity) = spec.split_at(at);
    if kind.is_empty() {
        bail!("`{arg}` names no process type: write e.g. web=3");
    }
    let quantity = match quantity.strip_prefix('=') {
        Some(rest) => QuantityChange::parse_str(rest)?,
        None => QuantityChange::parse_str(quantity)?,
    };
    Ok(FormationBatchEntry {
        process_type: kind.to_owned(),
        quantity: Some(quantity),
        size,
    })
}

pub async fn scale(
    global: &Global,
    app: &AppArg,
    changes: &[String],
    json: &JsonArg,
) -> anyhow::Result<()> {
    let client = context::client(global)?;
    let app = context::app_name(app)?;
    let formation = if changes.is_empty() {
        client.formation(&app).await?
    } else {
        let updates = changes
            .iter()
            .map(|c| parse_scale(c))
            .collect::<anyhow::Result<Vec<_>>>()?;
        client
            .update_formation(&app, &FormationBatchUpdate { updates })
            .await?
    };
    if json.json {
        return output::json(&formation);
    }
    if formation.is_empty() {
        println!("{app} has no process types until its first deploy");
        return Ok(());
    }
    if !changes.is_empty() {
        let summary: Vec<String> = formation
            .iter()
            .map(|f| format!("{}={}:{}", f.process_type, f.quantity, f.size))
            .collect();
        println!("Scaled {app}: {}", summary.join(" "));
    }
    let rows: Vec<Vec<String>> = formation
        .iter()
        .map(|f| {
            vec![
                f.process_type.clone(),
                f.quantity.to_string(),
                f.size.clone(),
                f.command.clone(),
            ]
        })
        .collect();
    output::table(&["TYPE", "QUANTITY", "SIZE", "COMMAND"], &rows);
    Ok(())
}

pub async fn restart(global: &Global, app: &AppArg, target: Option<&str>) -> anyhow::Result<()> {
    let client = context::client(global)?;
    let app = context::app_name(app)?;
    client.restart(&app, target).await?;
    match target {
        Some(target) => println!("Restarting {target} of {app}"),
        None => println!("Restarting every process of {app}"),
    }
    Ok(())
}

pub async fn stop(global: &Global, app: &AppArg, target: &str) -> anyhow::Result<()> {
    let client = context::client(global)?;
    let app = context::app_name(app)?;
    client.stop(&app, target).await?;
    println!("Stopping {target} of {app} (the formation starts it again; `wharf scale {target}=0` keeps it stopped)");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_scale_arguments() {
        let e = parse_scale("web=3").unwrap();
        assert_eq!(
            (e.process_type.as_str(), e.quantity),
            ("web", Some(QuantityChange::Set(3)))
        );
        assert_eq!(
            parse_scale("worker+2").unwrap().quantity,
            Some(QuantityChange::Add(2))
        );
        assert_eq!(
            parse_scale("worker-1").unwrap().quantity,
            Some(QuantityChange::Add(-1))
        );
        let sized = parse_scale("web=2:standard-2x").unwrap();
        assert_eq!(sized.size.as_deref(), Some("standard-2x"));
        assert!(parse_scale("web")
            .unwrap_err()
            .to_string()
            .contains("TYPE=N"));
        assert!(parse_scale("=3")
            .unwrap_err()
            .to_string()
            .contains("no process type"));
        assert!(parse_scale("web=lots").is_err());
    }
}
