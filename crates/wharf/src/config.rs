//! `wharf config`: list, get, set (pairs and `.env` files), unset.

use std::collections::BTreeMap;

use anyhow::{bail, Context as _};
use wharf_client::Client;
use wharf_core::config::ConfigKey;

use crate::cli::{ConfigArgs, ConfigCommand, Global};
use crate::context;
use crate::output;

pub async fn run(global: &Global, args: ConfigArgs) -> anyhow::Result<()> {
    let client = context::client(global)?;
    let command = args.command.unwrap_or(ConfigCommand::List {
        app: args.app,
        json: args.json,
        shell: args.shell,
    });
    match command {
        ConfigCommand::List { app, json, shell } => {
            let app = context::app_name(&app)?;
            let vars = client.config_vars(&app).await?;
            if json.json {
                output::json(&vars)?;
            } else if shell {
                for (key, value) in &vars {
                    println!("{key}={}", shell_quote(value));
                }
            } else if vars.is_empty() {
                println!(
                    "{app} has no config vars: set some with `wharf config set KEY=value -a {app}`"
                );
            } else {
                println!("=== {app} config vars");
                output::key_values(&vars.into_iter().collect::<Vec<_>>());
            }
        }
        ConfigCommand::Get { key, app } => {
            let app = context::app_name(&app)?;
            let vars = client.config_vars(&app).await?;
            match vars.get(&key) {
                Some(value) => println!("{value}"),
                None => bail!("{app} has no config var `{key}`"),
            }
        }
        ConfigCommand::Set {
            pairs,
            env_file,
            app,
            json,
        } => {
            let mut changes = BTreeMap::new();
            if let Some(path) = &env_file {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                let vars = wharf_core::dotenv::parse(&text)
                    .with_context(|| format!("{} is not a valid .env file", path.display()))?;
                for (key, value) in vars {
                    changes.insert(key.to_string(), Some(value));
                }
            }
            for pair in &pairs {
                let (key, value) = parse_pair(pair)?;
                changes.insert(key, Some(value));
            }
            if changes.is_empty() {
                bail!("nothing to set: pass KEY=value pairs or --env-file FILE");
            }
            let app = context::app_name(&app)?;
            let keys: Vec<String> = changes.keys().cloned().collect();
            apply(
                &client,
                &app,
                &changes,
                json.json,
                &format!("Set {}", keys.join(", ")),
            )
            .await?;
        }
        ConfigCommand::Unset { keys, app, json } => {
            let app = context::app_name(&app)?;
            let changes: BTreeMap<String, Option<String>> =
                keys.iter().map(|k| (k.clone(), None)).collect();
            apply(
                &client,
                &app,
                &changes,
                json.json,
                &format!(
                    "Unset {}",
                    changes.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            )
            .await?;
        }
    }
    Ok(())
}

/// Sends the change and says which release it made, if any.
async fn apply(
    client: &Client,
    app: &str,
    changes: &BTreeMap<String, Option<String>>,
    json: bool,
    what: &str,
) -> anyhow::Result<()> {
    let before = newest_version(client, app).await?;
    let vars = client.update_config_vars(app, changes).await?;
    if json {
        return output::json(&vars);
    }
    match newest_version(client, app).await? {
        Some(after) if Some(after) != before => println!("{what} on {app}: release v{after}"),
        _ => println!("{what} on {app}: nothing changed, no new release"),
    }
    Ok(())
}

async fn newest_version(client: &Client, app: &str) -> anyhow::Result<Option<u32>> {
    Ok(client
        .releases(app, Some(1))
        .await?
        .first()
        .map(|r| r.version))
}

/// `KEY=value` → (KEY, value); the value may be empty and may contain `=`.
fn parse_pair(pair: &str) -> anyhow::Result<(String, String)> {
    let Some((key, value)) = pair.split_once('=') else {
        bail!("`{pair}` is not KEY=value: write e.g. `wharf config set {pair}=value`");
    };
    let key = ConfigKey::parse(key)?;
    Ok((key.to_string(), value.to_owned()))
}

/// Quotes `value` for a POSIX shell.
fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pairs() {
        assert_eq!(parse_pair("A=b=c").unwrap(), ("A".into(), "b=c".into()));
        assert_eq!(parse_pair("A=").unwrap(), ("A".into(), "".into()));
        assert!(parse_pair("A")
            .unwrap_err()
            .to_string()
            .contains("not KEY=value"));
        assert!(parse_pair("1A=x").is_err());
    }

    #[test]
    fn quotes_for_shells() {
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
