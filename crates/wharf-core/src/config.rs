//! An app's config vars: valid keys ([`ConfigKey`]), the set of vars with its size limit
//! ([`ConfigVars`]), and changes to it ([`ConfigChange`]) with the difference they made
//! ([`ConfigDiff`]), which names the release a change creates.

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::name::shown;

/// Longest allowed config var key, in characters.
pub const MAX_KEY_LEN: usize = 255;

/// Most bytes an app's config vars may take, counting every key and value (as Heroku does).
pub const MAX_CONFIG_BYTES: usize = 32 * 1024;

/// A config var could not be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("config var key is empty: use a name such as `DATABASE_URL`")]
    KeyEmpty,
    #[error("config var key `{key}` may only contain letters, digits and `_` (found {found:?})")]
    KeyInvalidChar { key: String, found: char },
    #[error("config var key `{key}` must start with a letter or `_`")]
    KeyStart { key: String },
    #[error("config var key `{key}` is too long ({len} characters): use at most {MAX_KEY_LEN}")]
    KeyTooLong { key: String, len: usize },
    #[error("config var `{key}` contains a NUL byte: remove it from the value")]
    ValueNul { key: String },
    #[error(
        "config vars would take {bytes} bytes, over the {MAX_CONFIG_BYTES}-byte limit: remove or \
         shorten some values"
    )]
    TooLarge { bytes: usize },
    #[error("config var `{key}` is both set and unset in one change: do one or the other")]
    SetAndUnset { key: ConfigKey },
}

/// The name of a config var: an ASCII letter or `_`, then letters, digits and `_`, at most
/// [`MAX_KEY_LEN`] characters, such as `DATABASE_URL`. Case is kept: `foo` and `FOO` differ.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(value_type = String, example = "DATABASE_URL"))]
pub struct ConfigKey(String);

impl ConfigKey {
    /// A regular expression (ECMA-262 and Rust's `regex` alike) matching exactly the keys
    /// [`ConfigKey::parse`] accepts.
    pub fn pattern() -> String {
        format!("^[A-Za-z_][A-Za-z0-9_]{{0,{}}}$", MAX_KEY_LEN - 1)
    }

    pub fn parse(s: &str) -> Result<ConfigKey, ConfigError> {
        if s.is_empty() {
            return Err(ConfigError::KeyEmpty);
        }
        if let Some(found) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '_'))
        {
            return Err(ConfigError::KeyInvalidChar {
                key: shown(s),
                found,
            });
        }
        if s.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(ConfigError::KeyStart { key: shown(s) });
        }
        // Only ASCII from here on, so bytes are characters.
        if s.len() > MAX_KEY_LEN {
            return Err(ConfigError::KeyTooLong {
                key: shown(s),
                len: s.len(),
            });
        }
        Ok(ConfigKey(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ConfigKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for ConfigKey {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ConfigKey::parse(s)
    }
}

impl TryFrom<String> for ConfigKey {
    type Error = ConfigError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        ConfigKey::parse(&s)
    }
}

impl From<ConfigKey> for String {
    fn from(key: ConfigKey) -> String {
        key.0
    }
}

impl AsRef<str> for ConfigKey {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

// Lets maps keyed by `ConfigKey` be looked up with a `&str`; consistent with the derived
// `Eq`/`Ord`/`Hash`, which compare the inner string.
impl Borrow<str> for ConfigKey {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// Checks that `value` may be stored as the value of `key`.
fn check_value(key: &ConfigKey, value: &str) -> Result<(), ConfigError> {
    if value.contains('\0') {
        return Err(ConfigError::ValueNul {
            key: key.to_string(),
        });
    }
    Ok(())
}

/// Bytes `vars` take toward [`MAX_CONFIG_BYTES`].
fn bytes_of(vars: &BTreeMap<ConfigKey, String>) -> usize {
    vars.iter().map(|(k, v)| k.0.len() + v.len()).sum()
}

/// An app's config vars, sorted by key. Every value is UTF-8 without NUL bytes, and all of them
/// together fit in [`MAX_CONFIG_BYTES`].
///
/// Serializes as a JSON object of strings.
#[derive(Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "openapi",
    schema(
        value_type = BTreeMap<String, String>,
        example = json!({"DATABASE_URL": "postgres://db/app"})
    )
)]
pub struct ConfigVars(BTreeMap<ConfigKey, String>);

impl ConfigVars {
    /// No config vars.
    pub fn new() -> ConfigVars {
        ConfigVars::default()
    }

    /// Checks values and the total size.
    pub fn from_map(vars: BTreeMap<ConfigKey, String>) -> Result<ConfigVars, ConfigError> {
        for (key, value) in &vars {
            check_value(key, value)?;
        }
        let bytes = bytes_of(&vars);
        if bytes > MAX_CONFIG_BYTES {
            return Err(ConfigError::TooLarge { bytes });
        }
        Ok(ConfigVars(vars))
    }

    /// Checks keys, values and the total size of plain strings, such as a stored snapshot.
    pub fn from_string_map(vars: BTreeMap<String, String>) -> Result<ConfigVars, ConfigError> {
        let vars = vars
            .into_iter()
            .map(|(k, v)| Ok((ConfigKey::parse(&k)?, v)))
            .collect::<Result<_, ConfigError>>()?;
        ConfigVars::from_map(vars)
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// The vars in key order.
    pub fn iter(&self) -> std::collections::btree_map::Iter<'_, ConfigKey, String> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn into_inner(self) -> BTreeMap<ConfigKey, String> {
        self.0
    }

    pub fn as_map(&self) -> &BTreeMap<ConfigKey, String> {
        &self.0
    }

    /// The vars with plain string keys, as a process environment or a database row wants them.
    pub fn to_string_map(&self) -> BTreeMap<String, String> {
        self.0
            .iter()
            .map(|(k, v)| (k.0.clone(), v.clone()))
            .collect()
    }

    /// Bytes these vars take toward [`MAX_CONFIG_BYTES`]: the length of every key and value.
    pub fn total_bytes(&self) -> usize {
        bytes_of(&self.0)
    }

    /// Returns the vars after `change`, and which keys it really changed. Setting a key to the
    /// value it already has, or unsetting a key that isn't set, is not a change. Nothing is
    /// modified when the result would be invalid.
    pub fn apply(&self, change: &ConfigChange) -> Result<(ConfigVars, ConfigDiff), ConfigError> {
        if let Some(key) = change.set.keys().find(|k| change.unset.contains(*k)) {
            return Err(ConfigError::SetAndUnset { key: key.clone() });
        }
        let mut vars = self.0.clone();
        let mut diff = ConfigDiff::default();
        // Both loops walk sorted collections, so the diff's lists come out sorted.
        for (key, value) in &change.set {
            check_value(key, value)?;
            if self.0.get(key) != Some(value) {
                vars.insert(key.clone(), value.clone());
                diff.set.push(key.clone());
            }
        }
        for key in &change.unset {
            if vars.remove(key).is_some() {
                diff.removed.push(key.clone());
            }
        }
        Ok((ConfigVars::from_map(vars)?, diff))
    }
}

// Values are often secrets (passwords in URLs), so `Debug`, which ends up in logs, shows keys only.
impl fmt::Debug for ConfigVars {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|k| (k, Redacted)))
            .finish()
    }
}

/// Stands in for a secret value in `Debug` output.
struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl<'a> IntoIterator for &'a ConfigVars {
    type Item = (&'a ConfigKey, &'a String);
    type IntoIter = std::collections::btree_map::Iter<'a, ConfigKey, String>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl TryFrom<BTreeMap<ConfigKey, String>> for ConfigVars {
    type Error = ConfigError;

    fn try_from(vars: BTreeMap<ConfigKey, String>) -> Result<Self, Self::Error> {
        ConfigVars::from_map(vars)
    }
}

impl Serialize for ConfigVars {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for ConfigVars {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let vars = BTreeMap::<ConfigKey, String>::deserialize(deserializer)?;
        ConfigVars::from_map(vars).map_err(serde::de::Error::custom)
    }
}

/// A change to config vars: keys to set to new values, and keys to remove. A key may not be in
/// both. `Debug` hides the values.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ConfigChange {
    pub set: BTreeMap<ConfigKey, String>,
    pub unset: BTreeSet<ConfigKey>,
}

impl fmt::Debug for ConfigChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigChange")
            .field("set", &ConfigVarsKeys(&self.set))
            .field("unset", &self.unset)
            .finish()
    }
}

/// Shows a map's keys with redacted values.
struct ConfigVarsKeys<'a>(&'a BTreeMap<ConfigKey, String>);

impl fmt::Debug for ConfigVarsKeys<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|k| (k, Redacted)))
            .finish()
    }
}

/// Which keys a [`ConfigChange`] really changed, each list sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigDiff {
    /// Keys added or given a different value.
    pub set: Vec<ConfigKey>,
    /// Keys that were set and are now removed.
    pub removed: Vec<ConfigKey>,
}

impl ConfigDiff {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.removed.is_empty()
    }

    /// The description of the release this change makes, worded as Heroku words it:
    /// `Set FOO, BAR config vars`, `Remove FOO config vars`, or
    /// `Set FOO config vars, remove BAR config vars`. An empty diff gives
    /// `No config vars changed`.
    pub fn description(&self) -> String {
        let join = |keys: &[ConfigKey]| {
            keys.iter()
                .map(ConfigKey::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        };
        match (self.set.is_empty(), self.removed.is_empty()) {
            (true, true) => "No config vars changed".to_owned(),
            (false, true) => format!("Set {} config vars", join(&self.set)),
            (true, false) => format!("Remove {} config vars", join(&self.removed)),
            (false, false) => format!(
                "Set {} config vars, remove {} config vars",
                join(&self.set),
                join(&self.removed)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(s: &str) -> ConfigKey {
        ConfigKey::parse(s).unwrap()
    }

    fn vars(pairs: &[(&str, &str)]) -> ConfigVars {
        ConfigVars::from_map(pairs.iter().map(|(k, v)| (key(k), v.to_string())).collect()).unwrap()
    }

    fn change(set: &[(&str, &str)], unset: &[&str]) -> ConfigChange {
        ConfigChange {
            set: set.iter().map(|(k, v)| (key(k), v.to_string())).collect(),
            unset: unset.iter().map(|k| key(k)).collect(),
        }
    }

    #[test]
    fn accepts_valid_keys() {
        for s in ["FOO", "foo", "_", "_FOO_1", "DATABASE_URL", "a1"] {
            assert_eq!(key(s).as_str(), s);
        }
        assert!(ConfigKey::parse(&"K".repeat(255)).is_ok());
    }

    #[test]
    fn key_error_messages() {
        let err = |s: &str| ConfigKey::parse(s).unwrap_err().to_string();
        assert_eq!(
            err(""),
            "config var key is empty: use a name such as `DATABASE_URL`"
        );
        assert_eq!(
            err("1FOO"),
            "config var key `1FOO` must start with a letter or `_`"
        );
        assert_eq!(
            err("FOO-BAR"),
            "config var key `FOO-BAR` may only contain letters, digits and `_` (found '-')"
        );
        assert_eq!(
            err(&"K".repeat(256)),
            format!(
                "config var key `{}…` is too long (256 characters): use at most 255",
                "K".repeat(64)
            )
        );
    }

    #[test]
    fn value_and_size_error_messages() {
        let nul = ConfigVars::from_map([(key("FOO"), "a\0b".to_owned())].into());
        assert_eq!(
            nul.unwrap_err().to_string(),
            "config var `FOO` contains a NUL byte: remove it from the value"
        );
        let big = ConfigVars::from_map([(key("BIG"), "x".repeat(40_120))].into());
        assert_eq!(
            big.unwrap_err().to_string(),
            "config vars would take 40123 bytes, over the 32768-byte limit: remove or shorten \
             some values"
        );
        let both = vars(&[]).apply(&change(&[("FOO", "1")], &["FOO"]));
        assert_eq!(
            both.unwrap_err().to_string(),
            "config var `FOO` is both set and unset in one change: do one or the other"
        );
    }

    #[test]
    fn size_limit_counts_keys_and_values_and_is_inclusive() {
        let at_limit = ConfigVars::from_map([(key("K"), "x".repeat(MAX_CONFIG_BYTES - 1))].into());
        assert_eq!(at_limit.unwrap().total_bytes(), MAX_CONFIG_BYTES);
        let over = ConfigVars::from_map([(key("KK"), "x".repeat(MAX_CONFIG_BYTES - 1))].into());
        assert!(matches!(over, Err(ConfigError::TooLarge { bytes: 32769 })));
    }

    #[test]
    fn apply_reports_only_real_changes() {
        let old = vars(&[("A", "1"), ("B", "2"), ("C", "3")]);
        let (new, diff) = old
            .apply(&change(
                &[("A", "1"), ("B", "two"), ("D", "4")],
                &["C", "NOPE"],
            ))
            .unwrap();
        assert_eq!(new, vars(&[("A", "1"), ("B", "two"), ("D", "4")]));
        assert_eq!(diff.set, vec![key("B"), key("D")]);
        assert_eq!(diff.removed, vec![key("C")]);
        assert_eq!(
            diff.description(),
            "Set B, D config vars, remove C config vars"
        );

        let (same, diff) = old.apply(&change(&[("A", "1")], &["Z"])).unwrap();
        assert_eq!(same, old);
        assert!(diff.is_empty());
    }

    #[test]
    fn apply_checks_the_result() {
        let old = vars(&[("A", "1")]);
        let too_big = change(&[("B", &"x".repeat(MAX_CONFIG_BYTES))], &[]);
        assert!(matches!(
            old.apply(&too_big),
            Err(ConfigError::TooLarge { .. })
        ));
        let nul = change(&[("B", "\0")], &[]);
        assert!(matches!(old.apply(&nul), Err(ConfigError::ValueNul { .. })));
        // Removing a big value while adding another can fit where the addition alone would not.
        let big = vars(&[("BIG", &"x".repeat(30_000))]);
        let swap = change(&[("OTHER", &"y".repeat(30_000))], &["BIG"]);
        assert!(big.apply(&swap).is_ok());
    }

    #[test]
    fn descriptions_read_like_heroku() {
        let diff = |set: &[&str], removed: &[&str]| ConfigDiff {
            set: set.iter().map(|k| key(k)).collect(),
            removed: removed.iter().map(|k| key(k)).collect(),
        };
        assert_eq!(
            diff(&["BAR", "FOO"], &[]).description(),
            "Set BAR, FOO config vars"
        );
        assert_eq!(diff(&[], &["FOO"]).description(), "Remove FOO config vars");
        assert_eq!(
            diff(&["FOO"], &["BAR"]).description(),
            "Set FOO config vars, remove BAR config vars"
        );
        assert_eq!(diff(&[], &[]).description(), "No config vars changed");
    }

    #[test]
    fn accessors() {
        let v = vars(&[("B", "2"), ("A", "1")]);
        assert_eq!(v.get("A"), Some("1"));
        assert_eq!(v.get("Z"), None);
        assert_eq!(v.len(), 2);
        assert!(!v.is_empty());
        assert!(ConfigVars::new().is_empty());
        let keys: Vec<&str> = v.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["A", "B"]);
        assert_eq!(v.total_bytes(), 4);
        assert_eq!(v.to_string_map()["B"], "2");
        assert_eq!(
            ConfigVars::from_string_map(v.to_string_map()).unwrap(),
            v.clone()
        );
        assert_eq!(v.as_map().len(), 2);
        assert_eq!(v.into_inner().len(), 2);
        assert!(matches!(
            ConfigVars::from_string_map([("1X".to_owned(), String::new())].into()),
            Err(ConfigError::KeyStart { .. })
        ));
    }

    #[test]
    fn debug_hides_values() {
        let v = vars(&[("SECRET", "hunter2")]);
        let shown = format!("{v:?}");
        assert!(
            shown.contains("SECRET") && !shown.contains("hunter2"),
            "{shown}"
        );
        let c = change(&[("SECRET", "hunter2")], &["OLD"]);
        let shown = format!("{c:?}");
        assert!(
            shown.contains("SECRET") && !shown.contains("hunter2"),
            "{shown}"
        );
    }

    #[test]
    fn serde_is_a_json_object_and_validates() {
        let v = vars(&[("A", "1"), ("B", "x y")]);
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(json, r#"{"A":"1","B":"x y"}"#);
        assert_eq!(serde_json::from_str::<ConfigVars>(&json).unwrap(), v);
        assert!(serde_json::from_str::<ConfigVars>(r#"{"1A":"x"}"#).is_err());
        assert!(serde_json::from_str::<ConfigVars>(r#"{"A":"\u0000"}"#).is_err());
        assert_eq!(serde_json::to_string(&key("FOO")).unwrap(), "\"FOO\"");
    }

    proptest! {
        #[test]
        fn arbitrary_keys_never_panic(s in any::<String>()) {
            let _ = ConfigKey::parse(&s);
        }

        #[test]
        fn the_key_pattern_matches_exactly_what_parse_accepts(
            s in prop_oneof!["[a-zA-Z0-9_]{0,8}", "[A-Z_][A-Z0-9_]{250,258}", "[A-Z0-9_=. é-]{0,8}", any::<String>()]
        ) {
            let pattern = regex::Regex::new(&ConfigKey::pattern()).unwrap();
            prop_assert_eq!(pattern.is_match(&s), ConfigKey::parse(&s).is_ok(), "{:?}", s);
        }

        #[test]
        fn apply_then_diff_is_consistent(
            old in proptest::collection::btree_map("[A-C]", "[xy]{0,2}", 0..4),
            set in proptest::collection::btree_map("[A-E]", "[xy]{0,2}", 0..4),
            unset in proptest::collection::btree_set("[A-E]", 0..4),
        ) {
            let old = ConfigVars::from_string_map(old).unwrap();
            let set: BTreeMap<ConfigKey, String> =
                set.into_iter().map(|(k, v)| (key(&k), v)).collect();
            let unset: BTreeSet<ConfigKey> =
                unset.iter().map(|k| key(k)).filter(|k| !set.contains_key(k)).collect();
            let (new, diff) = old.apply(&ConfigChange { set: set.clone(), unset: unset.clone() })
                .unwrap();
            for (k, v) in &set {
                prop_assert_eq!(new.get(k.as_str()), Some(v.as_str()));
                prop_assert_eq!(diff.set.contains(k), old.get(k.as_str()) != Some(v.as_str()));
            }
            for k in &unset {
                prop_assert_eq!(new.get(k.as_str()), None);
                prop_assert_eq!(diff.removed.contains(k), old.get(k.as_str()).is_some());
            }
            prop_assert!(diff.set.windows(2).all(|w| w[0] < w[1]));
            prop_assert!(diff.removed.windows(2).all(|w| w[0] < w[1]));
            prop_assert_eq!(diff.is_empty(), new == old);
        }
    }
}
