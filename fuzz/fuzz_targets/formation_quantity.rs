//! Scaling input: `QuantityChange::parse_str` (the CLI's `ps:scale web=+1`), the JSON form the
//! API reads (`{"quantity": "+1"}`), `QuantityChange::apply`, and `DynoSize::parse` (also how
//! the store reads a size back). Nothing panics; what parses writes itself in a form that parses
//! back the same; `apply` agrees with plain arithmetic and never exceeds `MAX_QUANTITY`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wharf_core::formation::{DynoSize, QuantityChange, MAX_QUANTITY};

/// Instance counts a process type may have now (what `apply` starts from).
const CURRENT: [u32; 5] = [0, 1, 7, MAX_QUANTITY - 1, MAX_QUANTITY];

fuzz_target!(|data: &[u8]| {
    // The API reads the quantity as JSON: an integer or a string.
    if let Ok(q) = serde_json::from_slice::<QuantityChange>(data) {
        check_quantity(q);
        let json = serde_json::to_string(&q).unwrap();
        assert_eq!(
            serde_json::from_str::<QuantityChange>(&json).ok(),
            Some(q),
            "{json}"
        );
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(q) = QuantityChange::parse_str(text) {
        check_quantity(q);
        // The same text as a JSON string is read the same way.
        let json = serde_json::to_string(text).unwrap();
        assert_eq!(serde_json::from_str::<QuantityChange>(&json).ok(), Some(q));
    }
    if let Ok(size) = DynoSize::parse(text) {
        let mib = size.memory_bytes() >> 20;
        assert!((16..=64 * 1024).contains(&mib), "{size:?}");
        assert_eq!(size.memory_bytes() % (1 << 20), 0, "{size:?}");
        // The store keeps the name and reads it back with `parse`.
        assert_eq!(DynoSize::parse(size.name()).as_ref(), Ok(&size));
        assert_eq!(size.to_string(), size.name());
    }
});

fn check_quantity(q: QuantityChange) {
    let shown = q.to_string();
    assert_eq!(QuantityChange::parse_str(&shown), Ok(q), "{shown}");
    for current in CURRENT {
        let expected = match q {
            QuantityChange::Set(n) => i128::from(n),
            QuantityChange::Add(d) => (i128::from(current) + i128::from(d)).max(0),
        };
        match q.apply(current) {
            Ok(n) => assert_eq!(i128::from(n), expected, "{q} applied to {current}"),
            Err(_) => assert!(
                expected > i128::from(MAX_QUANTITY),
                "{q} applied to {current}"
            ),
        }
    }
}
