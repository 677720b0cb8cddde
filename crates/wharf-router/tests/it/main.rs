//! The router against real sockets: real upstream servers, real clients, on 127.0.0.1.

mod support;

mod balancing;
mod drain;
mod forwarding;
mod http2;
mod logs;
mod metrics;
mod routing;
mod timeouts;
mod tls;
mod upgrade;
mod upload;
