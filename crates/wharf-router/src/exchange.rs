//! One request for an app, followed until its response body has ended or been dropped: then it
//! is logged (one router line in the app's log), measured, and its upstream connection goes back
//! to the pool if the exchange ended cleanly.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::HeaderValue;
use hyper::{Method, Uri};
use wharf_logs::LogLine;

use crate::access_log;
use crate::error::Failure;
use crate::pool::UpstreamConn;
use crate::table::Site;
use crate::upstream::InFlight;
use crate::worker;

/// What the router knows about one request for an app. Dropping it finishes the request: metrics,
/// the router log line, the request out of the upstream's in-flight count.
pub(crate) struct Exchange {
    pub(crate) site: Arc<Site>,
    pub(crate) start: Instant,
    pub(crate) method: Method,
    pub(crate) uri: Uri,
    pub(crate) request_id: HeaderValue,
    /// The `X-Forwarded-For` sent upstream (the client's IP last).
    pub(crate) fwd: HeaderValue,
    /// The client connection is TLS.
    pub(crate) https: bool,
    /// The upstream serving the request, counted in flight there until this is dropped.
    pub(crate) in_flight: Option<InFlight>,
    /// The connection it was sent on, polled by the response body and kept for the next
    /// request if the exchange ends cleanly.
    pub(crate) conn: Option<Box<UpstreamConn>>,
    /// `conn` has finished (closed or failed): it is not polled again.
    conn_done: bool,
    /// Time taken to get a connection to the upstream.
    pub(crate) connect: Option<Duration>,
    /// When the request was sent to the upstream.
    pub(crate) sent: Option<Instant>,
    /// The status sent to the client (0 until a response is chosen).
    pub(crate) status: u16,
    pub(crate) failure: Option<Failure>,
    /// Response body bytes passed to the client.
    pub(crate) bytes: u64,
    /// The response body was sent to its end.
    complete: bool,
}

impl Exchange {
    pub(crate) fn new(
        site: Arc<Site>,
        start: Instant,
        method: Method,
        uri: Uri,
        request_id: HeaderValue,
        fwd: HeaderValue,
        https: bool,
    ) -> Exchange {
        site.metrics.started();
        Exchange {
            site,
            start,
            method,
            uri,
            request_id,
            fwd,
            https,
            in_flight: None,
            conn: None,
            conn_done: false,
            connect: None,
            sent: None,
            status: 0,
            failure: None,
            bytes: 0,
            complete: false,
        }
    }
}

/// Polls an upstream connection that has not finished; notes when it does.
fn drive(
    conn: &mut hyper::client::conn::http1::Connection<
        hyper_util::rt::TokioIo<tokio::net::TcpStream>,
        crate::pool::RequestBody,
    >,
    done: &mut bool,
    cx: &mut Context<'_>,
) {
    if *done {
        return;
    }
    if let Poll::Ready(result) = Pin::new(conn).poll(cx) {
        *done = true;
        if let Err(error) = result {
            tracing::debug!(%error, "upstream connection failed");
        }
    }
}

impl Exchange {
    /// The connection, once more polled so that it takes in the end of the exchange, if it can
    /// take another request.
    fn reusable_conn(&mut self) -> Option<Box<UpstreamConn>> {
        let mut conn = self.conn.take()?;
        if self.conn_done {
            return None;
        }
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match Pin::new(&mut conn.conn).poll(&mut cx) {
            Poll::Pending if conn.sender.is_ready() => Some(conn),
            _ => None,
        }
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        let now = Instant::now();
        if !self.complete && self.failure.is_none() {
            self.failure = Some(Failure::ClientInterrupted);
        }
        if self.failure == Some(Failure::ClientInterrupted) {
            self.status = Failure::ClientInterrupted.status().as_u16();
        }
        self.site
            .metrics
            .finished(self.status, self.failure, now - self.start);
        if self.complete && self.failure.is_none() {
            if let (Some(conn), Some(in_flight)) = (self.reusable_conn(), &self.in_flight) {
                in_flight.upstream().give_back(conn);
            }
        }
        if let Some(log) = &self.site.log {
            let line = LogLine::router(access_log::line(self, now));
            if self.site.log_started.load(Ordering::Relaxed) {
                log.append(line);
            } else {
                // The first append spawns the log's writer on the current runtime: on a worker
                // thread, that must be the runtime that outlives the workers.
                worker::at_home(|| log.append(line));
                self.site.log_started.store(true, Ordering::Relaxed);
            }
        }
        if let Some(failure) = self.failure {
            if failure != Failure::ClientInterrupted && failure != Failure::Maintenance {
                tracing::debug!(
                    app = %self.site.app.app_id,
                    code = failure.code(),
                    request_id = ?self.request_id,
                    "{failure}"
                );
            }
        }
    }
}

/// A response body to a client: an instance's, streamed, or one of the router's pages. Carries
/// the request's [`Exchange`], which finishes when the body is dropped (hyper drops it once sent
/// or when the client goes away).
pub(crate) struct ResponseBody {
    kind: Kind,
    exchange: Option<Exchange>,
}

enum Kind {
    Full(Option<Bytes>),
    Upstream(Incoming),
}

impl ResponseBody {
    pub(crate) fn full(bytes: Bytes, exchange: Option<Exchange>) -> ResponseBody {
        ResponseBody {
            kind: Kind::Full(Some(bytes)),
            exchange,
        }
    }

    pub(crate) fn upstream(body: Incoming, exchange: Exchange) -> ResponseBody {
        ResponseBody {
            kind: Kind::Upstream(body),
            exchange: Some(exchange),
        }
    }

    fn count(&mut self, n: usize) {
        if let Some(ex) = &mut self.exchange {
            ex.bytes += n as u64;
        }
    }
}

impl Kind {
    fn is_end_stream(&self) -> bool {
        match self {
            Kind::Full(bytes) => bytes.is_none(),
            Kind::Upstream(body) => body.is_end_stream(),
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let polled = match &mut this.kind {
            Kind::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::Upstream(body) => match &mut this.exchange {
                Some(ex) if ex.conn.is_some() && !ex.conn_done => {
                    let conn_done = &mut ex.conn_done;
                    let Some(upstream) = ex.conn.as_deref_mut() else {
                        return Poll::Ready(None);
                    };
                    let UpstreamConn { conn, relay, .. } = upstream;
                    relay.poll(cx, |cx| {
                        if let Poll::Ready(frame) = Pin::new(&mut *body).poll_frame(cx) {
                            return Poll::Ready(frame);
                        }
                        // The connection reads the body into its channel.
                        drive(conn, conn_done, cx);
                        Pin::new(&mut *body).poll_frame(cx)
                    })
                }
                _ => Pin::new(body).poll_frame(cx),
            },
        };
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.count(data.len());
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some(ex) = &mut this.exchange {
                    ex.failure.get_or_insert(Failure::UpstreamInterrupted);
                }
            }
            Poll::Ready(None) => {
                if let Some(ex) = &mut this.exchange {
                    ex.complete = true;
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.kind.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Upstream(body) => body.size_hint(),
        }
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        // hyper stops polling a body that says it has ended, so the end may not have been seen.
        let ended = self.kind.is_end_stream();
        if let Some(ex) = &mut self.exchange {
            ex.complete |= ended;
        }
    }
}
