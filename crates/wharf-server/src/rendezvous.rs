//! Heroku's rendezvous protocol, for attached one-off processes started the way Heroku's
//! clients start them (`POST /apps/{app}/dynos` with `attach: true`, as `heroku run` does):
//! the process starts at once and waits, its output held, for one client to claim it at the
//! `attach_url` (`rendezvous://host:port/<secret>`). The client connects over TLS (wharf's
//! certificate) and writes `<secret>\r\n`; wharf answers one line, `rendezvous\r\n`, then
//! streams the process's output, and takes the client's bytes as its input until an EOT byte
//! (0x04), which ends the input. Unless the client asked for none (`force_no_tty`), the
//! process runs in a terminal, as on Heroku: the client's bytes are then typed at it, EOT
//! included, and its output is what the terminal shows. The connection closes when the process has exited and its
//! output is sent. A process nobody claims within [`CLAIM_TIMEOUT`] is killed; so is one whose
//! client goes away.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::routes::one_off::KillOnDrop;
use crate::tls::Tls;

/// How long a started process waits for its client.
pub const CLAIM_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a client has to finish the handshake and send its secret.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a client's input may take to end after its process has.
const INPUT_GRACE: Duration = Duration::from_secs(1);

/// The byte that ends a client's input (what `heroku run` sends when its stdin ends).
const END_OF_INPUT: u8 = 0x04;

/// Attached processes waiting for their client, by secret; and where clients reach them.
#[derive(Debug, Clone, Default)]
pub struct Rendezvous {
    /// `host:port` of the rendezvous listener as clients reach it; `None` when none runs.
    address: Arc<Mutex<Option<String>>>,
    /// Processes not yet claimed. Each is killed if still here after [`CLAIM_TIMEOUT`].
    waiting: Arc<Mutex<HashMap<String, Waiting>>>,
}

/// A started process and what its client needs of it.
struct Waiting {
    app: String,
    process: wharf_core::backend::OneOff,
}

impl std::fmt::Debug for Waiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waiting")
            .field("app", &self.app)
            .field("process", &self.process.name)
            .finish()
    }
}

/// Kills a process nobody attached to, unless it has already ended (its group id may then
/// belong to someone else).
fn kill_unclaimed(mut process: wharf_core::backend::OneOff) {
    if process.exit.try_recv().is_err() {
        drop(KillOnDrop(Some(process.kill.clone())));
    }
}

impl Rendezvous {
    /// Where clients connect, when a rendezvous listener runs.
    pub fn address(&self) -> Option<String> {
        self.address.lock().expect("rendezvous lock").clone()
    }

    /// Holds `process` (started attached) for its client; returns the `attach_url` to hand out.
    /// `None` (and the process killed) when no rendezvous listener runs.
    pub fn hold(&self, app: &str, process: wharf_core::backend::OneOff) -> Option<String> {
        let Some(address) = self.address() else {
            kill_unclaimed(process);
            return None;
        };
        let secret = hex::encode(rand::random::<[u8; 32]>());
        self.waiting.lock().expect("rendezvous lock").insert(
            secret.clone(),
            Waiting {
                app: app.to_owned(),
                process,
            },
        );
        let waiting = self.waiting.clone();
        let unclaimed = secret.clone();
        tokio::spawn(async move {
            tokio::time::sleep(CLAIM_TIMEOUT).await;
            let left = waiting.lock().expect("rendezvous lock").remove(&unclaimed);
            if let Some(left) = left {
                tracing::warn!(app = %left.app, dyno = %left.process.name, "nobody attached to the one-off process in time; killed it");
                kill_unclaimed(left.process);
            }
        });
        Some(format!("rendezvous://{address}/{secret}"))
    }

    /// Serves clients on `listener` (TLS with `tls`) until `shutdown`; `address` is how they
    /// reach it. Processes still waiting when it stops are killed.
    pub async fn serve(
        &self,
        listener: TcpListener,
        address: String,
        tls: Tls,
        shutdown: CancellationToken,
    ) -> std::io::Result<()> {
        *self.address.lock().expect("rendezvous lock") = Some(address);
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.config);
        let tracker = tokio_util::task::TaskTracker::new();
        loop {
            let tcp = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((tcp, _)) => tcp,
                    Err(e) => {
                        tracing::warn!(error = %e, "rendezvous: cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                () = shutdown.cancelled() => break,
            };
            let (this, acceptor, shutdown) = (self.clone(), acceptor.clone(), shutdown.clone());
            tracker.spawn(async move {
                // A stop ends every session wherever it waits (a client that reads nothing, a
                // process that never exits); dropping the session kills its process.
                tokio::select! {
                    ended = this.attach(acceptor, tcp) => if let Err(e) = ended {
                        tracing::debug!(error = %e, "rendezvous connection ended");
                    },
                    () = shutdown.cancelled() => {}
                }
            });
        }
        *self.address.lock().expect("rendezvous lock") = None;
        let left: Vec<_> = self
            .waiting
            .lock()
            .expect("rendezvous lock")
            .drain()
            .collect();
        for (_, waiting) in left {
            kill_unclaimed(waiting.process);
        }
        tracker.close();
        tracker.wait().await;
        Ok(())
    }

    /// One client: the handshake, its secret, then the process's input and output.
    async fn attach(
        &self,
        acceptor: tokio_rustls::TlsAcceptor,
        tcp: tokio::net::TcpStream,
    ) -> std::io::Result<()> {
        let _ = tcp.set_nodelay(true);
        let (stream, secret) = tokio::time::timeout(HELLO_TIMEOUT, async {
            let stream = acceptor.accept(tcp).await?;
            let mut reader = BufReader::new(stream);
            let mut line = Vec::new();
            (&mut reader).take(512).read_until(b'\n', &mut line).await?;
            let secret = String::from_utf8_lossy(&line).trim().to_owned();
            Ok::<_, std::io::Error>((reader, secret))
        })
        .await
        .map_err(|_| std::io::Error::other("no secret within the time allowed"))??;
        let claimed = self
            .waiting
            .lock()
            .expect("rendezvous lock")
            .remove(&secret);
        let (mut reader, mut writer) = tokio::io::split(stream);
        let Some(Waiting { app, process }) = claimed else {
            writer
                .write_all(b"! no process waits for this secret (it was claimed, or expired)\r\n")
                .await?;
            writer.shutdown().await?;
            return Ok(());
        };
        tracing::info!(app = %app, dyno = %process.name, "client attached to the one-off process");
        let mut guard = KillOnDrop(Some(process.kill.clone()));
        writer.write_all(b"rendezvous\r\n").await?;
        writer.flush().await?;

        // The client's bytes are the process's input, up to EOT. The end of the connection
        // without one means the client went away. In a terminal, EOT is the terminal's to read
        // (Ctrl-D: end of input for whatever reads it then), as are Ctrl-C and the rest.
        let gone = CancellationToken::new();
        let client_gone = gone.clone();
        let tty = process.tty;
        let input = process.stdin.map(|mut stdin| {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    let n = match reader.read(&mut buf).await {
                        Ok(0) | Err(_) => {
                            client_gone.cancel();
                            break;
                        }
                        Ok(n) => n,
                    };
                    let chunk = &buf[..n];
                    let (data, ended) = match chunk.iter().position(|&b| b == END_OF_INPUT) {
                        Some(at) if !tty => (&chunk[..at], true),
                        _ => (chunk, false),
                    };
                    if stdin.write_all(data).await.is_err() || stdin.flush().await.is_err() {
                        break;
                    }
                    if ended {
                        break;
                    }
                }
                // Dropping stdin closes it: the process sees the end of its input.
            })
        });
        if let Some(mut output) = process.output {
            loop {
                tokio::select! {
                    chunk = output.recv() => match chunk {
                        Some(chunk) => {
                            writer.write_all(&chunk).await?;
                            writer.flush().await?;
                        }
                        None => break,
                    },
                    // The client went away: `guard` kills the process.
                    () = gone.cancelled() => return Ok(()),
                }
            }
        }
        let code = tokio::select! {
            code = process.exit => code.unwrap_or(255),
            () = gone.cancelled() => return Ok(()),
        };
        guard.disarm();
        // A client whose input ends just as the process does still sends its EOT: closing
        // before it arrives makes that write fail (and `heroku run` crash). Wait a moment for
        // it; an interactive client that sends nothing more is closed after that moment.
        if let Some(input) = input {
            let _ = tokio::time::timeout(INPUT_GRACE, input).await;
        }
        tracing::info!(app = %app, dyno = %process.name, code, "attached one-off process ended");
        writer.shutdown().await?;
        Ok(())
    }
}
