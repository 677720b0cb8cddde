//! List pagination with the Heroku `Range` header: reading a client's [`Range`], and writing the
//! `Next-Range` header value that asks for the page after it.
//!
//! The header looks like `<field> [<start>]..[<end>][; max=<n>][, order=asc|desc]`, for example
//! `id ..; max=1000`, `version ..; max=15, order=desc`, `name a..z`, or `name ]my-app..; max=10`,
//! where a leading `]` makes the start exclusive (this is what `Next-Range` sends back). Options
//! may come in either order, separated by `;` or `,`, with any spacing.
//!
//! Values are delimited by `..`, `;` and `,`, so a range round-trips through
//! [`Range::next_range`] and [`parse`] for any non-empty start value that contains no `;` or `,`
//! and does not begin or end with whitespace. An end value must also contain no `..` and not
//! begin with `.`. Ids, app names, versions and timestamps all qualify.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::name::shown;

/// The page size when a client doesn't ask for one.
pub const DEFAULT_MAX: u32 = 200;
/// The largest page a client may ask for.
pub const MAX_MAX: u32 = 1000;

/// A `Range` header could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    #[error("invalid Range header `{header}`: expected e.g. `{field} ..; max={DEFAULT_MAX}`")]
    Invalid { header: String, field: String },
    #[error("cannot sort by `{field}`: use one of {allowed}")]
    UnknownField { field: String, allowed: String },
    #[error(
        "unknown Range option `{option}`: use `max=<n>` (at most {MAX_MAX}) or `order=asc` or \
         `order=desc`"
    )]
    UnknownOption { option: String },
    #[error(
        "page size `max={max}` in the Range header is not a number: use e.g. `max={DEFAULT_MAX}`"
    )]
    MaxNotANumber { max: String },
    #[error("page size `max=0` in the Range header must be at least 1")]
    MaxZero,
    #[error(
        "page size `max={max}` in the Range header is over the limit of {MAX_MAX}: use \
         `max={MAX_MAX}` or less"
    )]
    MaxTooLarge { max: String },
    #[error(
        "sort order `order={order}` in the Range header is unknown: use `order=asc` or \
         `order=desc`"
    )]
    UnknownOrder { order: String },
}

/// Sort order of a listing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Order {
    #[default]
    Asc,
    Desc,
}

impl Order {
    pub fn as_str(self) -> &'static str {
        match self {
            Order::Asc => "asc",
            Order::Desc => "desc",
        }
    }
}

impl fmt::Display for Order {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which page of a listing a client asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    /// The field to sort by; one of the listing's allowed fields.
    pub field: String,
    /// List from this value of `field` on; `None` for the first page.
    pub start: Option<String>,
    /// Leave out the item whose value is `start` itself. Always false when `start` is `None`.
    pub start_exclusive: bool,
    /// List up to and including this value; `None` for no limit.
    pub end: Option<String>,
    /// Most items in the page, 1 to [`MAX_MAX`].
    pub max: u32,
    pub order: Order,
}

impl Range {
    /// The first page sorted by `field`: [`DEFAULT_MAX`] items in ascending order.
    pub fn default_for(field: &str) -> Range {
        Range {
            field: field.to_owned(),
            start: None,
            start_exclusive: false,
            end: None,
            max: DEFAULT_MAX,
            order: Order::Asc,
        }
    }

    /// The `Next-Range` header value asking for the page after the one whose last item has
    /// `last_value` in this range's field, keeping the end, size and order.
    pub fn next_range(&self, last_value: &str) -> String {
        format!(
            "{} ]{}..{}; max={}, order={}",
            self.field,
            last_value,
            self.end.as_deref().unwrap_or(""),
            self.max,
            self.order
        )
    }
}

/// Reads a `Range` header for a listing that may be sorted by `allowed_fields`. A blank header,
/// or one that leaves out the field (`..; max=10`), means `default_field`.
pub fn parse(
    header: &str,
    allowed_fields: &[&str],
    default_field: &str,
) -> Result<Range, RangeError> {
    let invalid = || RangeError::Invalid {
        header: shown(header.trim()),
        field: default_field.to_owned(),
    };
    let trimmed = header.trim();
    if trimmed.is_empty() {
        return Ok(Range::default_for(default_field));
    }

    let field_len = trimmed
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(trimmed.len());
    let (field, rest) = trimmed.split_at(field_len);
    let field = if field.is_empty() {
        default_field
    } else {
        field
    };

    let (bounds, options) = match rest.find([';', ',']) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, ""),
    };
    // The last `..` splits the bounds, so a start value may itself contain `..`.
    let Some(dots) = bounds.rfind("..") else {
        return Err(invalid());
    };
    let start = bounds[..dots].trim();
    let end = bounds[dots + 2..].trim();
    // A start must be separated from the field: `idx..` is not the field `id` from `x`.
    if field_len > 0 && !start.is_empty() && !rest.starts_with(char::is_whitespace) {
        return Err(invalid());
    }
    if !allowed_fields.contains(&field) {
        return Err(RangeError::UnknownField {
            field: shown(field),
            allowed: allowed_fields.join(", "),
        });
    }
    let (start, start_exclusive) = match start.strip_prefix(']') {
        Some(start) => (start.trim_start(), true),
        None => (start, false),
    };
    let start = (!start.is_empty()).then(|| start.to_owned());

    let mut range = Range {
        field: field.to_owned(),
        start_exclusive: start_exclusive && start.is_some(),
        start,
        end: (!end.is_empty()).then(|| end.to_owned()),
        ..Range::default_for(field)
    };
    for option in options.split([';', ',']).map(str::trim) {
        if option.is_empty() {
            continue;
        }
        let unknown = || RangeError::UnknownOption {
            option: shown(option),
        };
        let (name, value) = option.split_once('=').ok_or_else(unknown)?;
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "max" => range.max = parse_max(value)?,
            "order" => {
                range.order = match value.to_ascii_lowercase().as_str() {
                    "asc" => Order::Asc,
                    "desc" => Order::Desc,
                    _ => {
                        return Err(RangeError::UnknownOrder {
                            order: shown(value),
                        })
                    }
                }
            }
            _ => return Err(unknown()),
        }
    }
    Ok(range)
}

/// A regular expression (ECMA-262, as JSON Schema's `pattern` takes it) that matches exactly the
/// `Range` headers [`parse`] accepts for a listing sorted by `allowed_fields`, so an API
/// document can state the grammar. HTTP header values are visible ASCII, spaces and tabs.
pub fn pattern(allowed_fields: &[&str]) -> String {
    // Whitespace as `str::trim` sees it in a header value.
    const WS: &str = "[ \\t]";
    // Any character of a start or end value: no `,` or `;`, which end the bounds.
    const VALUE: &str = "[\\t\\x20-\\x2b\\x2d-\\x3a\\x3c-\\x7e]";
    // The same without `.`.
    const NOT_DOT: &str = "[\\t\\x20-\\x2b\\x2d\\x2f-\\x3a\\x3c-\\x7e]";
    // The first character when the field is left out: not part of a field name, not space.
    const NOT_FIELD: &str = "[\\x21-\\x2b\\x2d-\\x2f\\x3a\\x3c-\\x40\\x5b-\\x5e\\x60\\x7b-\\x7e]";
    let fields = allowed_fields.join("|");
    // After the field: a space and then any bounds, or `..` straight away and an end with no
    // `..` in it (else the last `..` would leave a start glued to the field, as in `id...`).
    let with_field = format!(
        "(?:{fields})(?:{WS}{VALUE}*\\.\\.{VALUE}*|\\.\\.(?:{NOT_DOT}(?:{NOT_DOT}|\\.{NOT_DOT})*\\.?)?)"
    );
    let without_field = format!("(?:{NOT_FIELD}{VALUE}*)?\\.\\.{VALUE}*");
    let max = format!("[mM][aA][xX]{WS}*={WS}*0*(?:[1-9][0-9]{{0,2}}|{MAX_MAX})");
    let order = format!("[oO][rR][dD][eE][rR]{WS}*={WS}*(?:[aA][sS][cC]|[dD][eE][sS][cC])");
    let option = format!("{WS}*(?:{max}|{order})?{WS}*");
    format!("^{WS}*(?:(?:{with_field}|{without_field})(?:[;,]{option})*)?{WS}*$")
}

fn parse_max(value: &str) -> Result<u32, RangeError> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(RangeError::MaxNotANumber { max: shown(value) });
    }
    match value.parse::<u32>() {
        Ok(0) => Err(RangeError::MaxZero),
        Ok(max) if max <= MAX_MAX => Ok(max),
        _ => Err(RangeError::MaxTooLarge { max: shown(value) }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const FIELDS: &[&str] = &["id", "name"];

    fn ok(header: &str) -> Range {
        parse(header, FIELDS, "id").unwrap()
    }

    fn err(header: &str) -> String {
        parse(header, FIELDS, "id").unwrap_err().to_string()
    }

    #[test]
    fn reads_heroku_ranges() {
        assert_eq!(
            ok("id ..; max=1000"),
            Range {
                max: 1000,
                ..Range::default_for("id")
            }
        );
        let r = parse("version ..; max=15, order=desc", &["version"], "version").unwrap();
        assert_eq!(
            (r.max, r.order, r.start, r.end),
            (15, Order::Desc, None, None)
        );
        let r = ok("name ]my-app..; max=10");
        assert_eq!(r.start.as_deref(), Some("my-app"));
        assert!(r.start_exclusive);
        assert_eq!(r.max, 10);
        assert_eq!(ok("id .."), Range::default_for("id"));
        let r = ok("name a..z");
        assert_eq!(
            (r.start.as_deref(), r.start_exclusive, r.end.as_deref()),
            (Some("a"), false, Some("z"))
        );
    }

    #[test]
    fn tolerates_spacing_order_and_omissions() {
        let r = ok("  name   a .. z ;  order = DESC ,max=5 ");
        assert_eq!(r.start.as_deref(), Some("a"));
        assert_eq!(r.end.as_deref(), Some("z"));
        assert_eq!((r.max, r.order), (5, Order::Desc));
        assert_eq!(ok("id..").field, "id");
        assert_eq!(ok(""), Range::default_for("id"));
        assert_eq!(ok("..; max=3").field, "id");
        assert_eq!(ok("id ..;").max, DEFAULT_MAX);
        assert_eq!(ok("id .., order=desc").order, Order::Desc);
        let r = ok("id ]..");
        assert_eq!((r.start, r.start_exclusive), (None, false));
        let r = ok("name ]www.example.com..");
        assert_eq!(r.start.as_deref(), Some("www.example.com"));
    }

    #[test]
    fn spacing_after_the_exclusive_mark_is_ignored() {
        // Found by fuzzing (fuzz/corpus/range/exclusive_spacing): the start kept the spaces
        // after `]`, so `name ] my-app..` listed from the first app instead of after my-app.
        let r = ok("name ]  my-app..; max=10");
        assert_eq!(r.start.as_deref(), Some("my-app"));
        assert!(r.start_exclusive);
        let r = ok("name ] ..");
        assert_eq!((r.start, r.start_exclusive), (None, false));
    }

    #[test]
    fn error_messages() {
        assert_eq!(
            err("xyz"),
            "invalid Range header `xyz`: expected e.g. `id ..; max=200`"
        );
        assert_eq!(
            err("id]x.."),
            "invalid Range header `id]x..`: expected e.g. `id ..; max=200`"
        );
        assert_eq!(err("idx.."), "cannot sort by `idx`: use one of id, name");
        assert_eq!(err("foo .."), "cannot sort by `foo`: use one of id, name");
        assert_eq!(
            err("id ..; max=5000"),
            "page size `max=5000` in the Range header is over the limit of 1000: use `max=1000` \
             or less"
        );
        assert_eq!(
            err("id ..; max=0"),
            "page size `max=0` in the Range header must be at least 1"
        );
        assert_eq!(
            err("id ..; max=ten"),
            "page size `max=ten` in the Range header is not a number: use e.g. `max=200`"
        );
        assert_eq!(
            err("id ..; max=99999999999"),
            "page size `max=99999999999` in the Range header is over the limit of 1000: use \
             `max=1000` or less"
        );
        assert_eq!(
            err("id ..; order=up"),
            "sort order `order=up` in the Range header is unknown: use `order=asc` or `order=desc`"
        );
        assert_eq!(
            err("id ..; limit=5"),
            "unknown Range option `limit=5`: use `max=<n>` (at most 1000) or `order=asc` or \
             `order=desc`"
        );
        assert_eq!(
            err("id ..; desc"),
            "unknown Range option `desc`: use `max=<n>` (at most 1000) or `order=asc` or \
             `order=desc`"
        );
    }

    #[test]
    fn next_range_continues_after_the_last_item() {
        let r = ok("name ..; max=10, order=desc");
        assert_eq!(r.next_range("my-app"), "name ]my-app..; max=10, order=desc");
        let r = ok("name a..z");
        assert_eq!(r.next_range("b"), "name ]b..z; max=200, order=asc");
        let next = ok(&r.next_range("b"));
        assert_eq!(next.start.as_deref(), Some("b"));
        assert!(next.start_exclusive);
        assert_eq!(next.end.as_deref(), Some("z"));
    }

    #[test]
    fn the_pattern_admits_what_parse_accepts() {
        let pattern = pattern(&["version", "id"]);
        assert_eq!(MAX_MAX, 1000, "the pattern spells out pages up to 1000");
        for accepted in [
            "",
            "  ",
            "version ..",
            "version..",
            "version ..; max=15, order=desc",
            "id ]abc..; max=0010",
            "id a..b..c",
            "version 3..",
            "..; ORDER = Desc ,, Max=1000",
            "]x..y",
            "version..a.b.",
            "version .. ;",
        ] {
            parse(accepted, &["version", "id"], "version").unwrap();
            assert!(
                accepted_by(&pattern, accepted),
                "`{accepted}` should match {pattern}"
            );
        }
        for refused in [
            "null",
            "version",
            "name ..",
            "versionx ..",
            "version...",
            "version.a..",
            "idx..",
            "; max=5",
            "id ..; max=0",
            "id ..; max=1001",
            "id ..; max=",
            "id ..; order=up",
            "id ..; size=1",
            "id ..; max==5",
            "_ ..",
            "1..",
            "id ..é",
        ] {
            assert!(!header_accepted(refused), "`{refused}` is accepted");
            assert!(
                !accepted_by(&pattern, refused),
                "`{refused}` should not match"
            );
        }
    }

    fn accepted_by(pattern: &str, input: &str) -> bool {
        regex::Regex::new(pattern).unwrap().is_match(input)
    }

    /// Whether a server takes `header` as the `Range` of a listing by version or id: a header
    /// value it can read as text (visible ASCII, spaces, tabs) that parses.
    fn header_accepted(header: &str) -> bool {
        header
            .bytes()
            .all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
            && parse(header, &["version", "id"], "version").is_ok()
    }

    proptest! {
        #[test]
        fn the_pattern_matches_exactly_what_parse_accepts(header in prop_oneof![
            "[ \\t]{0,2}(id|version|name|x|_|\\]|\\.)?[ \\t\\]a-z0-9.;,=éA-Z\u{1}]{0,20}",
            "[ \t]?(id|version|Id|)[ \t.]?(\\]?[a-z.]{0,3})?[.]{1,3}([a-z. ]{0,3})?\
             ([;,][ \t]?(max|order|MAX|Order|x|)[ \t]?=?[ \t]?(0|05|1000|1001|asc|DESC|up|)[ \t]?){0,3}",
        ]) {
            let pattern = regex::Regex::new(&pattern(&["version", "id"])).unwrap();
            prop_assert_eq!(pattern.is_match(&header), header_accepted(&header), "{:?}", header);
        }

        #[test]
        fn arbitrary_input_never_panics(header in any::<String>()) {
            let _ = parse(&header, FIELDS, "id");
        }

        #[test]
        fn range_like_input_never_panics(header in "[a-z\\]\\[.;,= 0-9]{0,30}") {
            let _ = parse(&header, FIELDS, "id");
        }

        #[test]
        fn next_range_round_trips(
            value in "[^;,\\s]([^;,]*[^;,\\s])?",
            end in proptest::option::of("[^;,.\\s]([^;,.]*[^;,\\s])?"),
            max in 1..=MAX_MAX,
            desc in any::<bool>(),
            name in any::<bool>(),
        ) {
            let range = Range {
                field: if name { "name" } else { "id" }.to_owned(),
                end,
                max,
                order: if desc { Order::Desc } else { Order::Asc },
                ..Range::default_for("id")
            };
            let next = parse(&range.next_range(&value), FIELDS, "id").unwrap();
            prop_assert_eq!(next, Range {
                start: Some(value),
                start_exclusive: true,
                ..range
            });
        }
    }
}
