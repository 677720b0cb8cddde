//! `wharf tokens`: the account's API tokens. A new token's secret is printed once; wharf keeps
//! only its hash, so a lost secret means a new token.

use crate::cli::{Global, TokensArgs, TokensCommand};
use crate::context;
use crate::output;

pub async fn run(global: &Global, args: TokensArgs) -> anyhow::Result<()> {
    let client = context::client(global)?;
    let command = args
        .command
        .unwrap_or(TokensCommand::List { json: args.json });
    match command {
        TokensCommand::List { json } => {
            let tokens = client.tokens().await?;
            if json.json {
                return output::json(&tokens);
            }
            let rows: Vec<Vec<String>> = tokens
                .iter()
                .map(|t| vec![t.id.clone(), t.description.clone(), t.created_at.clone()])
                .collect();
            output::table(&["ID", "DESCRIPTION", "CREATED"], &rows);
        }
        TokensCommand::Create { description, json } => {
            let token = client.create_token(description).await?;
            if json.json {
                return output::json(&token);
            }
            let secret = token
                .access_token
                .as_ref()
                .map(|a| a.token.as_str())
                .ok_or_else(|| anyhow::anyhow!("the server sent no secret for the new token"))?;
            println!("Created token {} ({})", token.id, token.description);
            println!("Secret (shown once, keep it safe): {secret}");
        }
        TokensCommand::Revoke { id } => {
            let token = client.revoke_token(&id).await?;
            println!("Revoked token {} ({})", token.id, token.description);
        }
    }
    Ok(())
}
