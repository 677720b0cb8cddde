//! Why the router answered a request for an app itself, or cut it short: each maps to a status, a Heroku
//! router error code for the log line and metrics, and an error page.

use std::net::SocketAddr;
use std::time::Duration;

use hyper::StatusCode;

use crate::pages::Page;

/// What went wrong with one request, as the router log and metrics report it. The messages are
/// Heroku's `desc` texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Failure {
    /// The app is in maintenance mode.
    #[error("Maintenance mode")]
    Maintenance,
    /// The app has no web instance in rotation.
    #[error("No web instances running")]
    NoInstance,
    /// Every instance tried refused the connection.
    #[error("Backend connection refused")]
    ConnectRefused,
    /// Connecting to the instances tried timed out.
    #[error("Backend connection timeout")]
    ConnectTimeout,
    /// The instance sent no response head within the first-byte timeout.
    #[error("Request timeout")]
    FirstByteTimeout,
    /// The instance closed the connection without a response.
    #[error("Connection closed without response")]
    ClosedWithoutResponse,
    /// The instance's response body broke off.
    #[error("Server Request Interrupted")]
    UpstreamInterrupted,
    /// The client stopped sending its request body for longer than the idle timeout.
    #[error("Client Connection Idle")]
    ClientIdle,
    /// The client went away, or its request body broke off, before the response was complete.
    #[error("Client Request Interrupted")]
    ClientInterrupted,
}

impl Failure {
    /// Every failure, for metric label cleanup.
    pub(crate) const ALL: [Failure; 9] = [
        Failure::Maintenance,
        Failure::NoInstance,
        Failure::ConnectRefused,
        Failure::ConnectTimeout,
        Failure::FirstByteTimeout,
        Failure::ClosedWithoutResponse,
        Failure::UpstreamInterrupted,
        Failure::ClientIdle,
        Failure::ClientInterrupted,
    ];

    /// Heroku's router error code.
    pub(crate) fn code(self) -> &'static str {
        match self {
            Failure::Maintenance => "H80",
            Failure::NoInstance => "H14",
            Failure::ConnectRefused => "H21",
            Failure::ConnectTimeout => "H19",
            Failure::FirstByteTimeout => "H12",
            Failure::ClosedWithoutResponse => "H13",
            Failure::UpstreamInterrupted => "H18",
            Failure::ClientIdle => "H28",
            Failure::ClientInterrupted => "H27",
        }
    }

    /// Whether the log line says `at=info` (maintenance is expected, as on Heroku) rather than
    /// `at=error`.
    pub(crate) fn is_info(self) -> bool {
        self == Failure::Maintenance
    }

    /// The status the router answers with, or logs when the answer could not be completed.
    pub(crate) fn status(self) -> StatusCode {
        self.page().status()
    }

    /// The page the router answers with.
    pub(crate) fn page(self) -> Page {
        match self {
            Failure::Maintenance => Page::Maintenance,
            Failure::NoInstance => Page::NoInstance,
            Failure::ConnectRefused | Failure::ConnectTimeout => Page::Unreachable,
            Failure::FirstByteTimeout => Page::Timeout,
            Failure::ClosedWithoutResponse | Failure::UpstreamInterrupted => Page::BadGateway,
            Failure::ClientIdle => Page::ClientTimeout,
            Failure::ClientInterrupted => Page::ClientClosed,
        }
    }
}

/// A connection to an upstream could not be made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    #[error("connecting to {addr} failed")]
    Io {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("connecting to {addr} took longer than {timeout:?}")]
    Timeout { addr: SocketAddr, timeout: Duration },
    #[error("HTTP/1.1 handshake with {addr} failed")]
    Handshake {
        addr: SocketAddr,
        #[source]
        source: hyper::Error,
    },
}

impl ConnectError {
    /// The failure a request reports when no instance could be connected to and this was the
    /// last error.
    pub(crate) fn failure(&self) -> Failure {
        match self {
            ConnectError::Timeout { .. } => Failure::ConnectTimeout,
            ConnectError::Io { .. } | ConnectError::Handshake { .. } => Failure::ConnectRefused,
        }
    }
}
