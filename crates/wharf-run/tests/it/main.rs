//! Integration tests of the local backend, with real child processes and real sockets.

mod fixture;

mod lifecycle;
mod oneoff;
mod sandbox;
mod scaling;
