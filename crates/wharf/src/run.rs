//! `wharf run [--detach] [--no-tty] -- COMMAND`: a one-off process with the app's current
//! release. Attached, it reads this terminal's input and prints the process's output, and
//! `wharf` exits with the process's exit status; detached, the output goes to the app's log.
//! When both its input and output are a terminal (and not `--no-tty`), the process runs in a
//! terminal of the same size and this one is put in raw mode meanwhile, so keys reach the
//! process as typed: `wharf run bash` is an interactive shell, Ctrl-C interrupts what runs
//! there and Ctrl-D ends its input.

use std::io::Write;

use anyhow::{bail, Context as _};
use futures_util::StreamExt;
use tokio::io::AsyncReadExt;

use crate::cli::{Global, RunArgs};
use crate::context;

pub async fn run(global: &Global, args: RunArgs) -> anyhow::Result<()> {
    let client = context::client(global)?;
    let app = context::app_name(&args.app)?;
    let command = command_line(&args.command);
    if command.trim().is_empty() {
        bail!("say what to run: `wharf run -- python manage.py migrate`");
    }
    if args.detach {
        let dyno = client.run_detached(&app, &command).await?;
        println!("Running `{command}` on {app} as {} (detached): `wharf logs --dyno {} -a {app}` shows its output", dyno.name, dyno.name);
        return Ok(());
    }
    let terminal = (!args.no_tty)
        .then(RawTerminal::enter)
        .flatten()
        .transpose()?;
    if terminal.is_some() {
        // In raw mode no key makes a signal here: a stop from elsewhere still gives the
        // terminal back its mode.
        tokio::spawn(async {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut term), Ok(mut hup)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::hangup()),
            ) else {
                return;
            };
            let code = tokio::select! {
                _ = term.recv() => 128 + 15,
                _ = hup.recv() => 128 + 1,
            };
            RawTerminal::restore();
            std::process::exit(code);
        });
    }
    let raw = terminal.is_some();
    // Standard input flows to the process as the request body, as it arrives.
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(16);
    tokio::spawn(async move {
        let mut stdin = tokio::io::stdin();
        let mut buf = vec![0u8; 16 * 1024];
        let mut interrupts: Vec<std::time::Instant> = Vec::new();
        loop {
            match stdin.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => {
                    // Ctrl-C goes to the process; four within a second leave it, as with
                    // `heroku run`, for when it (or the connection) no longer answers.
                    if raw && buf[..n].contains(&0x03) {
                        let now = std::time::Instant::now();
                        interrupts.retain(|t| now.duration_since(*t).as_secs_f32() < 1.0);
                        interrupts.push(now);
                        if interrupts.len() >= 4 {
                            RawTerminal::restore();
                            eprintln!("\r\nwharf: left the process (four Ctrl-C within a second); it goes on running until it ends");
                            std::process::exit(130);
                        }
                    }
                    if tx.send(Ok(buf[..n].to_vec())).await.is_err() {
                        break;
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    break;
                }
            }
        }
    });
    let body = reqwest::Body::wrap_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    let response = client
        .run_attached(&app, &command, terminal.as_ref().map(|t| &t.terminal), body)
        .await?;
    let mut stream = response.bytes_stream();
    let mut pending: Vec<u8> = Vec::new();
    let mut stdout = std::io::stdout();
    let mut exit: Option<i32> = None;
    while let Some(chunk) = stream.next().await {
        pending.extend_from_slice(&chunk.context("the connection to the process broke off")?);
        while pending.len() >= 5 {
            let len = u32::from_be_bytes([pending[1], pending[2], pending[3], pending[4]]) as usize;
            if pending.len() < 5 + len {
                break;
            }
            let kind = pending[0];
            let payload: Vec<u8> = pending[5..5 + len].to_vec();
            pending.drain(..5 + len);
            match kind {
                b'o' => {
                    stdout.write_all(&payload)?;
                    stdout.flush()?;
                }
                b'x' => exit = String::from_utf8_lossy(&payload).trim().parse().ok(),
                _ => bail!("unexpected data from the server (frame type {kind})"),
            }
        }
    }
    // Back to the terminal's own mode before anything else is printed (and before exiting,
    // which runs no destructor).
    drop(terminal);
    match exit {
        Some(code) => {
            stdout.flush()?;
            std::process::exit(code);
        }
        None => bail!("the connection to the process ended before it did"),
    }
}

/// This terminal in raw mode while a process runs in a terminal of its size; its mode comes
/// back when dropped (or through [`RawTerminal::restore`] before an exit).
struct RawTerminal {
    terminal: wharf_client::Terminal,
}

/// The terminal's mode before raw mode.
static SAVED_MODE: std::sync::OnceLock<rustix::termios::Termios> = std::sync::OnceLock::new();

impl RawTerminal {
    /// `None` unless standard input and output are both a terminal.
    fn enter() -> Option<anyhow::Result<RawTerminal>> {
        use rustix::termios;
        let (stdin, stdout) = (std::io::stdin(), std::io::stdout());
        if !termios::isatty(&stdin) || !termios::isatty(&stdout) {
            return None;
        }
        Some((|| {
            let winsize =
                termios::tcgetwinsize(&stdout).context("cannot read the terminal's size")?;
            let cells = |n: u16, default: u16| if n == 0 { default } else { n.min(4096) };
            // What the process's terminal should behave like: this one's type, if it says.
            let term = std::env::var("TERM").ok().filter(|t| {
                !t.is_empty()
                    && t.len() <= 64
                    && t.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.+".contains(&b))
            });
            let terminal = wharf_client::Terminal {
                rows: cells(winsize.ws_row, 24),
                cols: cells(winsize.ws_col, 80),
                term,
            };
            let saved = termios::tcgetattr(&stdin).context("cannot read the terminal's mode")?;
            let mut raw = saved.clone();
            raw.make_raw();
            let _ = SAVED_MODE.set(saved);
            termios::tcsetattr(&stdin, termios::OptionalActions::Now, &raw)
                .context("cannot put the terminal in raw mode")?;
            Ok(RawTerminal { terminal })
        })())
    }

    /// Gives the terminal back the mode it had before.
    fn restore() {
        if let Some(saved) = SAVED_MODE.get() {
            let _ = rustix::termios::tcsetattr(
                std::io::stdin(),
                rustix::termios::OptionalActions::Now,
                saved,
            );
        }
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        RawTerminal::restore();
    }
}

/// One argument is a shell command line, used as written (`wharf run -- 'echo $HOME'`); several
/// are a program and its arguments, each quoted so the shell sees them as typed
/// (`wharf run -- sh -c 'echo $DYNO'`).
fn command_line(args: &[String]) -> String {
    if let [only] = args {
        return only.clone();
    }
    args.iter()
        .map(|arg| {
            let plain = !arg.is_empty()
                && arg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-=./:@,+%".contains(c));
            if plain {
                arg.clone()
            } else {
                format!("'{}'", arg.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::command_line;

    #[test]
    fn quotes_arguments_but_not_a_single_command_line() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            command_line(&args(&["echo $HOME && ls"])),
            "echo $HOME && ls"
        );
        assert_eq!(
            command_line(&args(&["sh", "-c", "echo $DYNO; exit 7"])),
            "sh -c 'echo $DYNO; exit 7'"
        );
        assert_eq!(command_line(&args(&["echo", "it's"])), r"echo 'it'\''s'");
    }
}
