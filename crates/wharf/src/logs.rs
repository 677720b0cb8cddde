//! `wharf logs`: the app's log, past lines and, with `--tail`, new ones as they come, each
//! process in its own colour on a terminal.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use futures_util::StreamExt;
use wharf_core::api::LogSessionCreate;

use crate::cli::{Global, LogsArgs};
use crate::context;

const COLOURS: [&str; 6] = ["36", "33", "32", "35", "34", "31"];

/// The colour of `process`'s lines: the same process always gets the same colour.
fn colour(process: &str) -> &'static str {
    let hash = process
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    COLOURS[hash as usize % COLOURS.len()]
}

/// The `source[process]` of a Heroku-format line: `2026-…+00:00 app[web.1]: text`.
fn process_of(line: &str) -> Option<&str> {
    let rest = line.split_once(' ')?.1;
    let open = rest.find('[')?;
    let close = rest[open..].find("]:")? + open;
    Some(&rest[..close + 1])
}

fn print_line(out: &mut impl Write, line: &str, coloured: bool) -> std::io::Result<()> {
    match process_of(line).filter(|_| coloured) {
        Some(tag) => {
            let (before, after) = line.split_at(line.find(tag).unwrap_or(0));
            writeln!(
                out,
                "{before}\x1b[{}m{tag}\x1b[0m{}",
                colour(tag),
                &after[tag.len()..]
            )
        }
        None => writeln!(out, "{line}"),
    }
}

pub async fn run(global: &Global, args: LogsArgs) -> anyhow::Result<()> {
    let client = context::client(global)?;
    let app = context::app_name(&args.app)?;
    let session = LogSessionCreate {
        dyno: args.dyno.clone(),
        lines: Some(args.num),
        source: args.source.clone(),
        tail: Some(args.tail),
    };
    print_log(&client, &app, &session).await
}

/// Prints the app's log lines that `session` asks for to stdout, a colour per process on a
/// terminal; with `tail`, follows the log until the process ends, resuming after a break.
pub async fn print_log(
    client: &wharf_client::Client,
    app: &str,
    request: &LogSessionCreate,
) -> anyhow::Result<()> {
    let tail = request.tail == Some(true);
    let session = client.log_session(app, request).await?;
    let coloured = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let mut last_id: Option<String> = None;
    loop {
        let response = match client
            .log_stream(&session.logplex_url, last_id.as_deref())
            .await
        {
            Ok(response) => response,
            Err(e) if tail && last_id.is_some() => {
                eprintln!("(reconnecting: {e})");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let mut stream = response.bytes_stream();
        let mut pending = String::new();
        let mut data: Vec<String> = Vec::new();
        let mut out = std::io::stdout().lock();
        while let Some(chunk) = stream.next().await {
            let Ok(chunk) = chunk else { break };
            pending.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = pending.find('\n') {
                let line = pending[..end].trim_end_matches('\r').to_owned();
                pending.drain(..=end);
                if line.is_empty() {
                    for text in data.drain(..) {
                        print_line(&mut out, &text, coloured)?;
                    }
                    out.flush()?;
                } else if let Some(id) = line.strip_prefix("id:") {
                    last_id = Some(id.trim().to_owned());
                } else if let Some(text) = line.strip_prefix("data:") {
                    data.push(text.strip_prefix(' ').unwrap_or(text).to_owned());
                }
            }
        }
        if !tail {
            return Ok(());
        }
        // The stream broke off (a restart of the server, say): resume after the last line.
        drop(out);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_process_of_a_line() {
        let line = "2026-11-24T22:13:28.123456+00:00 app[web.1]: hello [world]: x";
        assert_eq!(process_of(line), Some("app[web.1]"));
        assert_eq!(process_of("no process here"), None);
        assert_eq!(colour("app[web.1]"), colour("app[web.1]"));
        let mut out = Vec::new();
        print_line(&mut out, line, true).unwrap();
        let printed = String::from_utf8(out).unwrap();
        assert!(
            printed.contains("\x1b[") && printed.ends_with("app[web.1]\x1b[0m: hello [world]: x\n"),
            "{printed:?}"
        );
    }
}
