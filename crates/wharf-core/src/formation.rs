//! Scaling: how a requested change to a process type's instance count ([`QuantityChange`]) is
//! read, written and applied, and the limit on instances per process type ([`MAX_QUANTITY`]).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::name::shown;

/// Most instances one process type may run.
pub const MAX_QUANTITY: u32 = 100;

/// A quantity could not be read or applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormationError {
    #[error("quantity is empty: use 2, +1 or -1")]
    Empty,
    #[error("quantity `{input}` is not a number: use 2, +1 or -1")]
    NotANumber { input: String },
    /// `quantity` is text because it may be too large for any integer type.
    #[error("quantity {quantity} is over the limit of {MAX_QUANTITY} instances per process type")]
    OverLimit { quantity: String },
    #[error(
        "quantity {quantity} must not be negative: use \"{quantity}\" (a string) to scale down by \
         {}",
        .quantity.unsigned_abs()
    )]
    Negative { quantity: i64 },
}

/// A change to a process type's instance count, as the Heroku CLI sends it: a JSON integer or a
/// string of digits sets the count (`3`, `"3"`); a string with a sign changes it relative to the
/// current count (`"+1"`, `"-1"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuantityChange {
    Set(u32),
    Add(i64),
}

/// The whitespace `str::trim` removes, as a regular expression class.
macro_rules! trim_ws {
    () => {
        "[\\t\\n\\x0B\\x0C\\r \\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]"
    };
}

impl QuantityChange {
    /// A regular expression (ECMA-262 and Rust's `regex` alike) for the text [`parse_str`] reads
    /// as a number: whitespace as `str::trim` sees it spelled out, since `\s` differs between
    /// the two (ECMA's has U+FEFF and lacks U+0085). Too large a number is refused later.
    ///
    /// [`parse_str`]: QuantityChange::parse_str
    pub const PATTERN: &'static str = concat!("^", trim_ws!(), "*[+-]?[0-9]+", trim_ws!(), "*$");

    /// Reads `2`, `+1` or `-1`, ignoring surrounding whitespace.
    pub fn parse_str(s: &str) -> Result<QuantityChange, FormationError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(FormationError::Empty);
        }
        let signed = s.starts_with(['+', '-']);
        let digits = if signed { &s[1..] } else { s };
        // Checked by hand because Rust's integer parsing accepts its own leading `+`.
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(FormationError::NotANumber { input: shown(s) });
        }
        let over_limit = |_| FormationError::OverLimit { quantity: shown(s) };
        if signed {
            // Parsed with its sign so that `i64::MIN` fits.
            s.parse().map(QuantityChange::Add).map_err(over_limit)
        } else {
            s.parse().map(QuantityChange::Set).map_err(over_limit)
        }
    }

    /// The instance count after this change to `current`. A relative change below zero stops at
    /// zero, as Heroku's does; a result over [`MAX_QUANTITY`] is an error.
    pub fn apply(&self, current: u32) -> Result<u32, FormationError> {
        let quantity = match *self {
            QuantityChange::Set(n) => i64::from(n),
            QuantityChange::Add(delta) => i64::from(current).saturating_add(delta).max(0),
        };
        match u32::try_from(quantity) {
            Ok(n) if n <= MAX_QUANTITY => Ok(n),
            _ => Err(FormationError::OverLimit {
                quantity: quantity.to_string(),
            }),
        }
    }
}

/// Writes the form [`QuantityChange::parse_str`] reads: `3`, `+1`, `-1`.
impl fmt::Display for QuantityChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QuantityChange::Set(n) => write!(f, "{n}"),
            QuantityChange::Add(n) => write!(f, "{n:+}"),
        }
    }
}

impl FromStr for QuantityChange {
    type Err = FormationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        QuantityChange::parse_str(s)
    }
}

/// `Set` as a JSON integer, `Add` as a signed string (`"+1"`, `"-1"`).
impl Serialize for QuantityChange {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            QuantityChange::Set(n) => serializer.serialize_u32(*n),
            QuantityChange::Add(_) => serializer.collect_str(self),
        }
    }
}

/// Accepts a non-negative integer or a string that [`QuantityChange::parse_str`] reads.
impl<'de> Deserialize<'de> for QuantityChange {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(QuantityVisitor)
    }
}

struct QuantityVisitor;

impl serde::de::Visitor<'_> for QuantityVisitor {
    type Value = QuantityChange;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a quantity such as 2, \"+1\" or \"-1\"")
    }

    fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<QuantityChange, E> {
        u32::try_from(n).map(QuantityChange::Set).map_err(|_| {
            E::custom(FormationError::OverLimit {
                quantity: n.to_string(),
            })
        })
    }

    fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<QuantityChange, E> {
        match u64::try_from(n) {
            Ok(n) => self.visit_u64(n),
            Err(_) => Err(E::custom(FormationError::Negative { quantity: n })),
        }
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<QuantityChange, E> {
        QuantityChange::parse_str(s).map_err(E::custom)
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for QuantityChange {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, SchemaType, Type};
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(SchemaType::new(Type::Integer))
                    .minimum(Some(0))
                    .maximum(Some(MAX_QUANTITY))
                    .description(Some("the number of instances to run")),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(SchemaType::new(Type::String))
                    .pattern(Some(QuantityChange::PATTERN))
                    .description(Some(
                        "a number of instances (\"2\"), or a change to it (\"+1\", \"-1\")",
                    )),
            )
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for QuantityChange {}

/// How big an instance may be: a Heroku dyno size name (`standard-1x`, `performance-m`, …) or a
/// memory size (`256M`, `1G`). Either sets the instance's memory limit.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DynoSize {
    name: String,
    memory_bytes: u64,
}

/// Heroku's dyno sizes and their memory, so scripts written for Heroku keep working.
const NAMED_SIZES: &[(&str, u64)] = &[
    ("eco", 512),
    ("basic", 512),
    ("standard-1x", 512),
    ("standard-2x", 1024),
    ("performance-m", 2560),
    ("performance-l", 14336),
];

/// A size could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "size `{0}` is not a dyno size or a memory size: use standard-1x, standard-2x, performance-m, \
     performance-l, or a size like 256M or 2G (16M to 64G)"
)]
pub struct InvalidSize(pub String);

impl DynoSize {
    /// The size new process types get: `standard-1x`, 512 MiB.
    pub fn default_size() -> DynoSize {
        DynoSize {
            name: "standard-1x".to_owned(),
            memory_bytes: 512 << 20,
        }
    }

    /// Reads a dyno size name (any case; `1X`/`2X` too) or `<n>M`/`<n>G` (also `MB`, `MiB`, …).
    pub fn parse(s: &str) -> Result<DynoSize, InvalidSize> {
        let input = s.trim();
        let lower = input.to_ascii_lowercase();
        let lower = match lower.as_str() {
            "1x" | "standard1x" => "standard-1x".to_owned(),
            "2x" | "standard2x" => "standard-2x".to_owned(),
            other => other.to_owned(),
        };
        if let Some((name, mib)) = NAMED_SIZES.iter().find(|(name, _)| *name == lower) {
            return Ok(DynoSize {
                name: (*name).to_owned(),
                memory_bytes: mib << 20,
            });
        }
        let invalid = || InvalidSize(shown(input));
        let digits_end = lower
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(invalid)?;
        let (digits, unit) = lower.split_at(digits_end);
        let n: u64 = digits.parse().map_err(|_| invalid())?;
        let mib = match unit {
            "m" | "mb" | "mib" => n,
            "g" | "gb" | "gib" => n.checked_mul(1024).ok_or_else(invalid)?,
            _ => return Err(invalid()),
        };
        if !(16..=64 * 1024).contains(&mib) {
            return Err(invalid());
        }
        let name = if mib % 1024 == 0 {
            format!("{}G", mib / 1024)
        } else {
            format!("{mib}M")
        };
        Ok(DynoSize {
            name,
            memory_bytes: mib << 20,
        })
    }

    /// The size's name as stored and shown (`standard-1x`, `256M`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The memory limit.
    pub fn memory_bytes(&self) -> u64 {
        self.memory_bytes
    }
}

impl fmt::Display for DynoSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn sizes_by_name_or_memory() {
        let size = DynoSize::parse("Standard-2X").unwrap();
        assert_eq!((size.name(), size.memory_bytes()), ("standard-2x", 1 << 30));
        assert_eq!(DynoSize::parse("2X").unwrap().name(), "standard-2x");
        assert_eq!(DynoSize::parse("256M").unwrap().memory_bytes(), 256 << 20);
        assert_eq!(DynoSize::parse("2g").unwrap().name(), "2G");
        assert_eq!(DynoSize::parse("1536MiB").unwrap().name(), "1536M");
        for bad in [
            "",
            "huge",
            "8M",
            "65G",
            "12",
            "-1G",
            "99999999999999999999G",
        ] {
            let err = DynoSize::parse(bad).unwrap_err().to_string();
            assert!(err.contains("standard-1x"), "{bad}: {err}");
        }
    }

    use super::*;
    use proptest::prelude::*;

    fn parse(s: &str) -> Result<QuantityChange, FormationError> {
        QuantityChange::parse_str(s)
    }

    /// Deserializes `json`; an error is our message without serde_json's position suffix.
    fn from_json(json: &str) -> Result<QuantityChange, String> {
        serde_json::from_str(json).map_err(|e| {
            let msg = e.to_string();
            match msg.rfind(" at line ") {
                Some(i) => msg[..i].to_owned(),
                None => msg,
            }
        })
    }

    #[test]
    fn reads_what_the_heroku_cli_sends() {
        assert_eq!(parse("2"), Ok(QuantityChange::Set(2)));
        assert_eq!(parse(" 0 "), Ok(QuantityChange::Set(0)));
        assert_eq!(parse("+1"), Ok(QuantityChange::Add(1)));
        assert_eq!(parse("-1"), Ok(QuantityChange::Add(-1)));
        assert_eq!(parse("-0"), Ok(QuantityChange::Add(0)));
        assert_eq!(from_json("3"), Ok(QuantityChange::Set(3)));
        assert_eq!(from_json("\"2\""), Ok(QuantityChange::Set(2)));
        assert_eq!(from_json("\"+1\""), Ok(QuantityChange::Add(1)));
        assert_eq!(from_json("\"-3\""), Ok(QuantityChange::Add(-3)));
    }

    #[test]
    fn writes_integers_and_signed_strings() {
        let json = |q: QuantityChange| serde_json::to_string(&q).unwrap();
        assert_eq!(json(QuantityChange::Set(3)), "3");
        assert_eq!(json(QuantityChange::Add(1)), "\"+1\"");
        assert_eq!(json(QuantityChange::Add(-2)), "\"-2\"");
        assert_eq!(json(QuantityChange::Add(0)), "\"+0\"");
        assert_eq!(QuantityChange::Add(-2).to_string(), "-2");
    }

    #[test]
    fn error_messages() {
        let err = |s: &str| parse(s).unwrap_err().to_string();
        assert_eq!(
            err("abc"),
            "quantity `abc` is not a number: use 2, +1 or -1"
        );
        assert_eq!(err("+"), "quantity `+` is not a number: use 2, +1 or -1");
        assert_eq!(
            err("+-1"),
            "quantity `+-1` is not a number: use 2, +1 or -1"
        );
        assert_eq!(
            err("1.5"),
            "quantity `1.5` is not a number: use 2, +1 or -1"
        );
        assert_eq!(err("  "), "quantity is empty: use 2, +1 or -1");
        assert_eq!(
            err("99999999999999999999"),
            "quantity 99999999999999999999 is over the limit of 100 instances per process type"
        );
        assert_eq!(
            QuantityChange::Set(150).apply(0).unwrap_err().to_string(),
            "quantity 150 is over the limit of 100 instances per process type"
        );
        assert_eq!(
            from_json("-2").unwrap_err(),
            "quantity -2 must not be negative: use \"-2\" (a string) to scale down by 2"
        );
        assert_eq!(
            from_json("\"x\"").unwrap_err(),
            "quantity `x` is not a number: use 2, +1 or -1"
        );
        assert!(from_json("1.5").unwrap_err().starts_with("invalid type"));
        assert!(from_json("4294967296")
            .unwrap_err()
            .contains("over the limit"));
        assert!(from_json(&i64::MIN.to_string())
            .unwrap_err()
            .contains("to scale down by 9223372036854775808"));
    }

    #[test]
    fn apply_sets_adds_and_clamps() {
        assert_eq!(QuantityChange::Set(3).apply(10), Ok(3));
        assert_eq!(QuantityChange::Set(100).apply(0), Ok(100));
        assert_eq!(QuantityChange::Add(2).apply(1), Ok(3));
        assert_eq!(QuantityChange::Add(-1).apply(3), Ok(2));
        assert_eq!(QuantityChange::Add(-5).apply(3), Ok(0));
        assert_eq!(QuantityChange::Add(i64::MIN).apply(3), Ok(0));
        assert_eq!(
            QuantityChange::Add(1).apply(100),
            Err(FormationError::OverLimit {
                quantity: "101".to_owned()
            })
        );
        assert!(QuantityChange::Add(i64::MAX).apply(u32::MAX).is_err());
    }

    proptest! {
        #[test]
        fn the_pattern_matches_exactly_the_numbers_parse_str_reads(
            s in prop_oneof![
                "[ \t\u{85}\u{a0}\u{feff}\u{3000}]{0,2}[+-]{0,2}[0-9a.]{0,4}[ \n\u{85}\u{feff}\u{2028}]{0,2}",
                any::<String>(),
            ]
        ) {
            let pattern = regex::Regex::new(QuantityChange::PATTERN).unwrap();
            let read = match QuantityChange::parse_str(&s) {
                Ok(_) | Err(FormationError::OverLimit { .. }) => true,
                Err(_) => false,
            };
            prop_assert_eq!(pattern.is_match(&s), read, "{:?}", s);
        }

        #[test]
        fn arbitrary_strings_never_panic(s in any::<String>()) {
            if let Ok(q) = parse(&s) {
                let _ = q.apply(5);
            }
        }

        #[test]
        fn set_round_trips_through_json(n in any::<u32>()) {
            let q = QuantityChange::Set(n);
            prop_assert_eq!(serde_json::from_str::<QuantityChange>(
                &serde_json::to_string(&q).unwrap()).unwrap(), q);
        }

        #[test]
        fn add_round_trips_through_json_and_text(n in any::<i64>()) {
            let q = QuantityChange::Add(n);
            prop_assert_eq!(serde_json::from_str::<QuantityChange>(
                &serde_json::to_string(&q).unwrap()).unwrap(), q);
            prop_assert_eq!(parse(&q.to_string()), Ok(q));
        }

        #[test]
        fn apply_stays_within_limits(change in any::<i64>(), current in 0..=MAX_QUANTITY) {
            if let Ok(n) = QuantityChange::Add(change).apply(current) {
                prop_assert!(n <= MAX_QUANTITY);
            }
        }
    }
}
