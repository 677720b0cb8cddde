//! `wharf login` and `wharf logout`.

use std::io::{BufRead, IsTerminal};

use anyhow::{bail, Context as _};
use wharf_client::Client;

use crate::cli::{Global, LoginArgs};
use crate::context::{self, Credentials};

pub async fn run(global: &Global, args: LoginArgs) -> anyhow::Result<()> {
    let saved = context::load_credentials().ok().flatten();
    let url = context::server_url(global, saved.as_ref());
    let token = if let Some(path) = &args.token_file {
        std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the token from {}", path.display()))?
    } else if args.token_stdin || !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the token from standard input")?;
        line
    } else {
        eprintln!("Logging in to {url}");
        rpassword::prompt_password("API token: ").context("cannot read the token")?
    };
    let token = token.trim().to_owned();
    if token.is_empty() {
        bail!("the token is empty: pass --token-file FILE (the server prints where its admin token is)");
    }
    let client = Client::new(&url, Some(token.clone()))?;
    let account = client
        .account()
        .await
        .with_context(|| format!("cannot log in to {url}"))?;
    let path = context::save_credentials(&Credentials {
        url: url.clone(),
        token,
    })?;
    println!("Logged in to {url} as {}", account.email);
    eprintln!("Credentials saved in {}", path.display());
    Ok(())
}

pub fn logout() -> anyhow::Result<()> {
    let path = context::credentials_path()?;
    match std::fs::remove_file(&path) {
        Ok(()) => println!("Logged out (removed {})", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => println!("Not logged in"),
        Err(e) => return Err(e).with_context(|| format!("cannot remove {}", path.display())),
    }
    Ok(())
}
