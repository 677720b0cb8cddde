//! `wharf_core::range::parse`, with the field lists of the API's real listings: never panics,
//! what it accepts is within its documented bounds, and `Range::next_range` writes a header that
//! parses back to the next page of the same range.
//!
//! Input: the `Range` header, then optionally a line break and the last value of a page, which
//! `next_range` continues after. (A header value can't contain a line break.)

#![no_main]

use libfuzzer_sys::fuzz_target;
use wharf_core::range::{self, Range, MAX_MAX};

/// The sortable fields of the listings in `wharf-server/src/routes`; the first is the default.
const LISTINGS: [&[&str]; 3] = [&["name", "id"], &["created_at", "id"], &["version", "id"]];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (header, last_value) = match text.split_once('\n') {
        Some((header, last)) => (header, Some(last)),
        None => (text, None),
    };
    for fields in LISTINGS {
        let Ok(range) = range::parse(header, fields, fields[0]) else {
            continue;
        };
        check_bounds(&range, fields);
        let candidates = [last_value, range.start.as_deref(), range.end.as_deref()];
        for last in candidates.into_iter().flatten() {
            // The documented conditions for a round trip.
            let end_ok = range.end.as_deref().is_none_or(|end| {
                is_plain_value(end) && !end.contains("..") && !end.starts_with('.')
            });
            if !(is_plain_value(last) && end_ok) {
                continue;
            }
            let header = range.next_range(last);
            let next = range::parse(&header, fields, fields[0])
                .unwrap_or_else(|e| panic!("next_range gave {header:?}, which fails: {e}"));
            let expected = Range {
                start: Some(last.to_owned()),
                start_exclusive: true,
                ..range.clone()
            };
            assert_eq!(next, expected, "next_range gave {header:?}");
        }
    }
});

fn check_bounds(range: &Range, fields: &[&str]) {
    assert!(fields.contains(&range.field.as_str()), "{range:?}");
    assert!((1..=MAX_MAX).contains(&range.max), "{range:?}");
    assert!(!range.start_exclusive || range.start.is_some(), "{range:?}");
    for value in [&range.start, &range.end].into_iter().flatten() {
        assert!(!value.is_empty() && value.trim() == value, "{range:?}");
    }
}

/// Non-empty, no `;` or `,`, no whitespace at either end.
fn is_plain_value(value: &str) -> bool {
    !value.is_empty() && !value.contains([';', ',']) && value.trim() == value
}
