//! Integration tests of the local backend, with real child processes and real sockets.

mod fixture;

mod lifecycle;
mod oneoff;
mod routes;
mod sandbox;
mod scaling;

/// The port blocks of this crate's tests don't collide (see `fixture::port_range`).
#[test]
fn tests_get_distinct_port_blocks() {
    let sources = [
        ("lifecycle", include_str!("lifecycle.rs")),
        ("oneoff", include_str!("oneoff.rs")),
        ("routes", include_str!("routes.rs")),
        ("sandbox", include_str!("sandbox.rs")),
        ("scaling", include_str!("scaling.rs")),
    ];
    let mut seen = std::collections::BTreeMap::new();
    for (module, source) in sources {
        let mut lines = source.lines().peekable();
        while let Some(line) = lines.next() {
            if !line.trim_start().starts_with("#[tokio::test") && line.trim() != "#[test]" {
                continue;
            }
            let Some(next) = lines.peek() else { continue };
            let Some(name) = next.split("fn ").nth(1).and_then(|r| r.split('(').next()) else {
                continue;
            };
            let test = format!("{module}::{name}");
            if let Some(other) = seen.insert(fixture::port_block(&test), test.clone()) {
                panic!("{test} and {other} share a port block: change PORT_SALT in fixture.rs");
            }
        }
    }
    assert!(seen.len() >= 10, "found the tests: {seen:?}");
}
