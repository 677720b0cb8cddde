//! Switched protocols (WebSocket): once both the client and the instance have switched, bytes
//! are copied both ways until either side closes, the connection goes idle, or the router stops.

use std::sync::Arc;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use crate::serve::{ConnCtx, Phase, Waiter};

/// Joins the client's and the instance's upgraded connections in a task of the router's.
pub(crate) fn spawn_tunnel(ctx: &Arc<ConnCtx>, client: OnUpgrade, upstream: OnUpgrade) {
    let ctx = Arc::clone(ctx);
    ctx.serving.tasks.clone().spawn(async move {
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(both) => both,
            Err(error) => {
                tracing::debug!(%error, "protocol switch did not complete");
                return;
            }
        };
        let mut client = TokioIo::new(client);
        let mut upstream = TokioIo::new(upstream);
        let copy = tokio::io::copy_bidirectional(&mut client, &mut upstream);
        tokio::select! {
            result = copy => match result {
                Ok((up, down)) => tracing::debug!(up, down, "tunnel closed"),
                Err(error) => tracing::debug!(%error, "tunnel broke off"),
            },
            // Tunnels have no requests to finish: they last until the router stops, or until
            // the connection goes idle (every byte of the tunnel passes the client's socket,
            // which notes activity).
            _ = ctx.phase_after(Phase::Closing, Waiter::Tunnel) => {
                if ctx.went_idle() {
                    tracing::debug!("closing idle tunnel");
                }
            }
        }
    });
}
