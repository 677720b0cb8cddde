//! One request, from the client's head to the response handed back to hyper: find the app by
//! host, choose an upstream, get a connection, send, retry what is safe to retry, and answer with
//! the instance's response or an error page.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::{Body, Incoming};
use hyper::client::conn::TrySendError;
use hyper::header::{HeaderValue, ACCEPT, CACHE_CONTROL, CONTENT_TYPE, LOCATION, RETRY_AFTER};
use hyper::http::request::Parts;
use hyper::{Method, Request, Response, StatusCode, Version};

use crate::balance::{self, Tried};
use crate::error::Failure;
use crate::exchange::{Exchange, ResponseBody};
use crate::headers::{self, Forwarded, X_REQUEST_ID};
use crate::pages::{self, Page, MAINTENANCE_RETRY_AFTER};
use crate::pool::{self, RequestBody, Sender, SentAt, UpstreamConn};
use crate::router::Shared;
use crate::serve::ConnCtx;
use crate::upgrade;
use crate::upstream::UpstreamState;

const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");

/// Handles one client request; never fails (failures are pages).
pub(crate) async fn handle(
    ctx: &Arc<ConnCtx>,
    mut req: Request<Incoming>,
) -> Response<ResponseBody> {
    let start = Instant::now();
    let shared = &ctx.shared;
    let upgrade = headers::is_upgrade(req.version(), req.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();
    let request_id = headers::request_id(&parts.headers);
    let accept = parts.headers.get(ACCEPT).cloned();

    if ctx.tls.is_none() {
        if let Some(answer) = acme_challenge(shared, &parts) {
            return answer;
        }
    }
    let site = {
        let Some(host) = headers::request_host(&parts) else {
            shared.metrics.unrouted();
            return page(Page::BadRequest, accept.as_ref(), &request_id, None);
        };
        let hosts = shared.tables.hosts.load();
        match hosts.get(headers::route_key(host).as_ref()) {
            Some(site) => Arc::clone(site),
            None => {
                shared.metrics.unrouted();
                return page(Page::NotFound, accept.as_ref(), &request_id, None);
            }
        }
    };
    let https = ctx.tls.is_some();
    let redirect = (!https && site.https_redirect)
        .then(|| https_location(shared, &site.host, &parts.uri))
        .flatten();

    let fwd = headers::to_upstream(
        &mut parts,
        upgrade,
        &Forwarded {
            client_ip: &ctx.client_ip,
            port: &ctx.port,
            https,
            request_id: &request_id,
        },
    );
    let mut ex = Exchange::new(
        site,
        start,
        parts.method.clone(),
        parts.uri.clone(),
        request_id,
        fwd,
        https,
    );
    if let Some(location) = redirect {
        ex.status = StatusCode::PERMANENT_REDIRECT.as_u16();
        let request_id = ex.request_id.clone();
        let mut response = Response::new(ResponseBody::full(Bytes::new(), Some(ex)));
        *response.status_mut() = StatusCode::PERMANENT_REDIRECT;
        let headers = response.headers_mut();
        headers.insert(LOCATION, location);
        headers.insert(X_REQUEST_ID, request_id);
        return response;
    }
    if ex.site.maintenance {
        return failure_page(ex, Failure::Maintenance, accept.as_ref());
    }

    let mut out = Outgoing::new(parts, body, shared.epoch);
    match forward(ctx, &mut ex, &mut out, upgrade).await {
        Ok(mut response) => {
            let switched = response.status() == StatusCode::SWITCHING_PROTOCOLS;
            if let (true, Some(client)) = (switched, client_upgrade) {
                let upstream = hyper::upgrade::on(&mut response);
                upgrade::spawn_tunnel(ctx, client, upstream);
            }
            let (mut head, body) = response.into_parts();
            headers::to_client(&mut head.headers, switched, &ex.request_id);
            head.version = Version::HTTP_11;
            ex.status = head.status.as_u16();
            Response::from_parts(head, ResponseBody::upstream(body, ex))
        }
        Err(failure) => failure_page(ex, failure, accept.as_ref()),
    }
}

/// Times a request looks at a newer upstream table when every upstream of the one it had was
/// tried or draining (a deploy swapped the table meanwhile).
const TABLE_RELOADS: u32 = 3;

/// Sends the request to the app's upstreams until one answers, trying each at most once.
async fn forward(
    ctx: &ConnCtx,
    ex: &mut Exchange,
    out: &mut Outgoing,
    upgrade: bool,
) -> Result<Response<Incoming>, Failure> {
    let mut rotation = ex.site.app.rotation.load_full();
    let mut reloads = 0;
    let mut tried = Tried::default();
    let mut last = Failure::NoInstance;
    loop {
        let Some((index, in_flight)) =
            balance::pick(&ex.site.app, &rotation, &tried, ctx.shared.now_ms())
        else {
            let newer = ex.site.app.rotation.load_full();
            if reloads < TABLE_RELOADS && !Arc::ptr_eq(&newer, &rotation) {
                // Upstreams already tried are skipped again, by identity.
                let mut fresh = Tried::default();
                for (i, upstream) in newer.iter().enumerate() {
                    if (0..rotation.len())
                        .any(|j| tried.contains(j) && Arc::ptr_eq(&rotation[j], upstream))
                    {
                        fresh.insert(i);
                    }
                }
                reloads += 1;
                rotation = newer;
                tried = fresh;
                continue;
            }
            return Err(last);
        };
        tried.insert(index);
        let upstream = Arc::clone(in_flight.upstream());
        // A retry releases the upstream tried before.
        ex.in_flight = Some(in_flight);
        let more = (0..rotation.len()).any(|i| !tried.contains(i));
        match attempt(ctx, ex, &upstream, out, more, upgrade).await {
            Attempt::Response(response) => return Ok(response),
            Attempt::Failed(failure) => return Err(failure),
            Attempt::Unreachable(failure) => {
                upstream.avoid(ctx.shared.now_ms());
                last = failure;
            }
            Attempt::Lost => last = Failure::ClosedWithoutResponse,
        }
    }
}

enum Attempt {
    Response(Response<Incoming>),
    /// Final: no other upstream may be tried.
    Failed(Failure),
    /// No connection could take the request; it was not sent.
    Unreachable(Failure),
    /// Sent, and nothing came back; the request may be sent again.
    Lost,
}

/// Sends the request to one upstream: on a pooled connection, or a new one; when a pooled
/// connection turns out to be closed, on another (if the request was not sent, or may be sent
/// again).
async fn attempt(
    ctx: &ConnCtx,
    ex: &mut Exchange,
    upstream: &UpstreamState,
    out: &mut Outgoing,
    more_upstreams: bool,
    upgrade: bool,
) -> Attempt {
    let config = &ctx.shared.config;
    // Upgraded connections are handed over, never pooled, so they start fresh.
    let mut fresh = upgrade;
    // A new connection that closed before taking the request gets one more try.
    let mut fresh_retried = false;
    loop {
        let connect_start = Instant::now();
        let pooled = if fresh { None } else { upstream.pool.take() };
        let reused = pooled.is_some();
        let connected = match pooled {
            Some(conn) => Ok(Link::Driven(conn)),
            None if upgrade => pool::connect_upgradable(upstream.addr, config.connect_timeout)
                .await
                .map(Link::Spawned),
            None => pool::connect(upstream.addr, config.connect_timeout)
                .await
                .map(Link::Driven),
        };
        let mut link = match connected {
            Ok(link) => link,
            Err(error) => {
                tracing::warn!(
                    app = %ex.site.app.app_id,
                    upstream = %upstream.id,
                    error = %error,
                    "cannot connect to upstream"
                );
                return Attempt::Unreachable(error.failure());
            }
        };
        let sent = Instant::now();
        ex.connect = Some(sent - connect_start);
        ex.sent = Some(sent);
        // A copy is kept only if the request could be sent again somewhere.
        let replay = out.replayable && (reused || more_upstreams);
        let request = out.request(replay);
        let result = {
            let _waiting = ctx.waiting();
            send(
                &mut link,
                request,
                config.first_byte_timeout,
                config.idle_timeout,
                out.body_sent.as_deref(),
            )
            .await
        };
        let error = match result {
            Sent::Response(response) => {
                if let Link::Driven(conn) = link {
                    ex.conn = Some(conn);
                }
                return Attempt::Response(response);
            }
            Sent::Timeout => return Attempt::Failed(Failure::FirstByteTimeout),
            Sent::Stalled => return Attempt::Failed(Failure::ClientIdle),
            // Ended without taking the request, which went down with it: only a kept copy can
            // go again.
            Sent::Closed => None,
            Sent::Failed(mut error) => {
                if let Some(request) = error.take_message() {
                    // Never written: safe to send anywhere.
                    out.restore(request);
                    if reused {
                        continue;
                    }
                    if !fresh_retried {
                        fresh_retried = true;
                        fresh = true;
                        continue;
                    }
                    return Attempt::Unreachable(Failure::ConnectRefused);
                }
                let error = error.into_error();
                if error.is_user() {
                    // The client's request body broke off.
                    return Attempt::Failed(Failure::ClientInterrupted);
                }
                Some(error)
            }
        };
        tracing::debug!(
            app = %ex.site.app.app_id,
            upstream = %upstream.id,
            reused,
            error = ?error,
            "upstream request failed"
        );
        if !replay {
            return Attempt::Failed(Failure::ClosedWithoutResponse);
        }
        if reused {
            // Most likely the instance closed the idle connection as it was reused.
            fresh = true;
            continue;
        }
        return Attempt::Lost;
    }
}

fn sent(result: Result<Response<Incoming>, TrySendError<Request<RequestBody>>>) -> Sent {
    match result {
        Ok(response) => Sent::Response(response),
        Err(error) => Sent::Failed(error),
    }
}

/// A connection a request is sent on.
enum Link {
    /// Polled by the request itself (see `pool`).
    Driven(Box<UpstreamConn>),
    /// Driven by a task of its own (protocol switches).
    Spawned(Sender),
}

enum Sent {
    Response(Response<Incoming>),
    Timeout,
    /// The client's request body stopped arriving for `idle`.
    Stalled,
    /// The connection ended without taking the request.
    Closed,
    Failed(TrySendError<Request<RequestBody>>),
}

/// Sends the request and waits for the response head, for at most `first_byte` after the
/// request body (if any) was sent completely; an upload that moves no byte for `idle` ends it.
async fn send(
    link: &mut Link,
    request: Request<RequestBody>,
    first_byte: Duration,
    idle: Duration,
    body_sent: Option<&SentAt>,
) -> Sent {
    let (sender, mut conn) = match link {
        Link::Driven(c) => {
            let UpstreamConn {
                sender,
                conn,
                relay,
            } = &mut **c;
            (sender, Some((conn, &*relay)))
        }
        Link::Spawned(sender) => (sender, None),
    };
    let response = sender.try_send_request(request);
    tokio::pin!(response);
    // With a body to upload, look early enough to notice it stalling.
    let first_look = match body_sent {
        Some(_) => first_byte.min(idle),
        None => first_byte,
    };
    let sleep = tokio::time::sleep(first_look);
    tokio::pin!(sleep);
    // Writes the request and reads the response head. A response the connection owed is settled
    // by the time it finishes; one still pending then was never taken by it (the instance closed
    // the connection first) and never will be.
    let upstream = std::future::poll_fn(|cx| {
        let Some((conn, relay)) = conn.as_mut() else {
            return response.as_mut().poll(cx).map(sent);
        };
        relay.poll(cx, |cx| {
            if let Poll::Ready(result) = response.as_mut().poll(cx) {
                return Poll::Ready(sent(result));
            }
            if let Poll::Ready(result) = Pin::new(&mut **conn).poll(cx) {
                if let Err(error) = result {
                    tracing::debug!(%error, "upstream connection failed");
                }
                return Poll::Ready(match response.as_mut().poll(cx) {
                    Poll::Ready(result) => sent(result),
                    Poll::Pending => Sent::Closed,
                });
            }
            // The head the connection just read, if any, in this same round.
            response.as_mut().poll(cx).map(sent)
        })
    });
    tokio::pin!(upstream);
    loop {
        tokio::select! {
            biased;
            sent = &mut upstream => return sent,
            () = &mut sleep => {
                let now = tokio::time::Instant::now();
                match body_sent.map(SentAt::get) {
                    None => return Sent::Timeout,
                    // Still uploading: wait while the body moves, up to `idle` without a byte.
                    Some(None) => {
                        let stalled_at = tokio::time::Instant::from_std(
                            body_sent.map_or_else(std::time::Instant::now, SentAt::last_moved),
                        ) + idle;
                        if stalled_at <= now {
                            return Sent::Stalled;
                        }
                        sleep.as_mut().reset(stalled_at.min(now + first_byte));
                    }
                    Some(Some(at)) => {
                        let deadline = tokio::time::Instant::from_std(at) + first_byte;
                        if deadline <= now {
                            return Sent::Timeout;
                        }
                        sleep.as_mut().reset(deadline);
                    }
                }
            }
        }
    }
}

/// The request head and body on their way upstream, kept between attempts.
struct Outgoing {
    head: Option<Parts>,
    body: Option<RequestBody>,
    /// Idempotent and without a body: may be sent again after a connection failed under it.
    replayable: bool,
    /// Set when the body has been sent completely (requests with a body only).
    body_sent: Option<Arc<SentAt>>,
}

impl Outgoing {
    fn new(head: Parts, body: Incoming, epoch: Instant) -> Outgoing {
        let idempotent = matches!(
            head.method,
            Method::GET
                | Method::HEAD
                | Method::OPTIONS
                | Method::PUT
                | Method::DELETE
                | Method::TRACE
        );
        if body.is_end_stream() {
            Outgoing {
                replayable: idempotent,
                head: Some(head),
                body: None,
                body_sent: None,
            }
        } else {
            let sent = SentAt::new(epoch);
            Outgoing {
                replayable: false,
                head: Some(head),
                body: Some(RequestBody::new(body, Some(Arc::clone(&sent)))),
                body_sent: Some(sent),
            }
        }
    }

    /// The request to send: a copy when it may have to be sent again, else the request itself.
    fn request(&mut self, keep_copy: bool) -> Request<RequestBody> {
        let body = self.body.take().unwrap_or_else(RequestBody::empty);
        match (&self.head, keep_copy) {
            (Some(head), true) => {
                let mut request = Request::new(body);
                *request.method_mut() = head.method.clone();
                *request.uri_mut() = head.uri.clone();
                *request.version_mut() = head.version;
                *request.headers_mut() = head.headers.clone();
                request
            }
            _ => match self.head.take() {
                Some(head) => Request::from_parts(head, body),
                // Unreachable: a request is only taken again after `restore` or with a copy.
                None => Request::new(body),
            },
        }
    }

    /// Takes back a request that was never written.
    fn restore(&mut self, request: Request<RequestBody>) {
        let (head, body) = request.into_parts();
        self.head = Some(head);
        self.body = Some(body);
    }
}

/// The router's answer for a request of an app it could not (or would not) serve.
fn failure_page(
    mut ex: Exchange,
    failure: Failure,
    accept: Option<&HeaderValue>,
) -> Response<ResponseBody> {
    ex.failure = Some(failure);
    ex.status = failure.status().as_u16();
    let request_id = ex.request_id.clone();
    page(failure.page(), accept, &request_id, Some(ex))
}

fn page(
    page: Page,
    accept: Option<&HeaderValue>,
    request_id: &HeaderValue,
    ex: Option<Exchange>,
) -> Response<ResponseBody> {
    let (body, content_type) = page.render(pages::prefers_json(accept));
    let mut response = Response::new(ResponseBody::full(body, ex));
    *response.status_mut() = page.status();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, content_type);
    headers.insert(CACHE_CONTROL, NO_STORE);
    headers.insert(X_REQUEST_ID, request_id.clone());
    if page == Page::Maintenance {
        headers.insert(RETRY_AFTER, MAINTENANCE_RETRY_AFTER);
    }
    response
}

/// Where a plain-HTTP request for `host` goes on HTTPS, when the router serves TLS and a
/// certificate covers the host: the same path and query on the TLS listener's port.
fn https_location(shared: &Shared, host: &str, uri: &hyper::Uri) -> Option<HeaderValue> {
    let port = shared.tls_port.load(std::sync::atomic::Ordering::Relaxed);
    if port == 0 || !shared.certificates.covers(host) {
        return None;
    }
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let location = if port == 443 {
        format!("https://{host}{path}")
    } else {
        format!("https://{host}:{port}{path}")
    };
    HeaderValue::from_str(&location).ok()
}

/// ACME's HTTP-01 challenge path.
const ACME_CHALLENGE: &str = "/.well-known/acme-challenge/";

/// The answer to an ACME HTTP-01 challenge the router holds, whatever the host (the ACME
/// server asks for the hostname being validated, which may be routed nowhere yet).
fn acme_challenge(shared: &Shared, parts: &Parts) -> Option<Response<ResponseBody>> {
    let token = parts.uri.path().strip_prefix(ACME_CHALLENGE)?;
    if parts.method != Method::GET && parts.method != Method::HEAD {
        return None;
    }
    let challenges = shared.challenges.load();
    let answer = challenges.get(token)?;
    let mut response = Response::new(ResponseBody::full(Bytes::from(answer.clone()), None));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Some(response)
}
