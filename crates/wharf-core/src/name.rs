//! Validated names: [`AppName`] (a DNS label, used in hostnames and paths) and [`ProcessType`]
//! (a Procfile entry's name, such as `web` or `worker`).
//!
//! Both are parsed once at the edge with `parse` (or `FromStr`, or serde), so code that holds one
//! never re-checks it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Shortest allowed app name, in characters.
pub const APP_NAME_MIN: usize = 3;
/// Longest allowed app name, in characters.
pub const APP_NAME_MAX: usize = 30;
/// Longest allowed process type, in characters.
pub const PROCESS_TYPE_MAX: usize = 63;

/// Longest input quoted back in an error message; longer input is cut and ends in `…`.
const SHOWN_MAX: usize = 64;

/// Returns `s` for quoting in an error message, shortened so that one bad input can't produce a
/// huge message.
pub fn shown(s: &str) -> String {
    match s.char_indices().nth(SHOWN_MAX) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_owned(),
    }
}

/// A name was not a valid app name or process type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error(
        "app name is empty: use {APP_NAME_MIN} to {APP_NAME_MAX} lowercase letters, digits and \
         dashes, starting with a letter"
    )]
    AppEmpty,
    #[error(
        "app name `{name}` may only contain lowercase letters, digits and dashes (found {found:?})"
    )]
    AppInvalidChar { name: String, found: char },
    #[error("app name `{name}` is too short: use {APP_NAME_MIN} to {APP_NAME_MAX} characters")]
    AppTooShort { name: String },
    #[error(
        "app name `{name}` is too long ({len} characters): use {APP_NAME_MIN} to {APP_NAME_MAX} \
         characters"
    )]
    AppTooLong { name: String, len: usize },
    #[error("app name `{name}` must start with a letter")]
    AppStart { name: String },
    #[error("app name `{name}` must not end with a dash")]
    AppTrailingDash { name: String },
    #[error("app name `{name}` must be lowercase: use `{suggestion}`")]
    AppUppercase { name: String, suggestion: String },

    #[error("process type is empty: use a name such as `web` or `worker`")]
    ProcessTypeEmpty,
    #[error(
        "process type `{name}` may only contain letters, digits, `-` and `_` (found {found:?})"
    )]
    ProcessTypeInvalidChar { name: String, found: char },
    #[error("process type `{name}` must start with a letter")]
    ProcessTypeStart { name: String },
    #[error(
        "process type `{name}` is too long ({len} characters): use at most {PROCESS_TYPE_MAX}"
    )]
    ProcessTypeTooLong { name: String, len: usize },
}

/// An app's name: a DNS label of 3 to 30 lowercase ASCII letters, digits and dashes that starts
/// with a letter and doesn't end with a dash, such as `my-app`.
///
/// Consecutive dashes are allowed. Serializes as a plain string; deserializing validates.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(value_type = String, example = "my-app"))]
pub struct AppName(String);

impl AppName {
    /// A regular expression (ECMA-262 and Rust's `regex` alike) matching exactly the names
    /// [`AppName::parse`] accepts.
    pub fn pattern() -> String {
        format!(
            "^[a-z][a-z0-9-]{{{},{}}}[a-z0-9]$",
            APP_NAME_MIN - 2,
            APP_NAME_MAX - 2
        )
    }

    /// Checks `s` and returns it as an app name. Surrounding whitespace is not trimmed.
    pub fn parse(s: &str) -> Result<AppName, NameError> {
        if s.is_empty() {
            return Err(NameError::AppEmpty);
        }
        // Letter case is checked last, so that the lowercase suggestion is always a valid name.
        if let Some(found) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
        {
            return Err(NameError::AppInvalidChar {
                name: shown(s),
                found,
            });
        }
        // Only ASCII from here on, so bytes are characters.
        if s.len() < APP_NAME_MIN {
            return Err(NameError::AppTooShort { name: shown(s) });
        }
        if s.len() > APP_NAME_MAX {
            return Err(NameError::AppTooLong {
                name: shown(s),
                len: s.len(),
            });
        }
        if !s.starts_with(|c: char| c.is_ascii_alphabetic()) {
            return Err(NameError::AppStart { name: shown(s) });
        }
        if s.ends_with('-') {
            return Err(NameError::AppTrailingDash { name: shown(s) });
        }
        if s.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(NameError::AppUppercase {
                name: s.to_owned(),
                suggestion: s.to_ascii_lowercase(),
            });
        }
        Ok(AppName(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A process type from a Procfile, such as `web`, `worker` or `release`: 1 to 63 ASCII letters,
/// digits, `-` and `_`, starting with a letter.
///
/// Letter case is kept as written, so `Web` and `web` are different process types.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(value_type = String, example = "web"))]
pub struct ProcessType(String);

impl ProcessType {
    /// Checks `s` and returns it as a process type. Surrounding whitespace is not trimmed.
    pub fn parse(s: &str) -> Result<ProcessType, NameError> {
        if s.is_empty() {
            return Err(NameError::ProcessTypeEmpty);
        }
        if let Some(found) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(NameError::ProcessTypeInvalidChar {
                name: shown(s),
                found,
            });
        }
        if s.len() > PROCESS_TYPE_MAX {
            return Err(NameError::ProcessTypeTooLong {
                name: shown(s),
                len: s.len(),
            });
        }
        if !s.starts_with(|c: char| c.is_ascii_alphabetic()) {
            return Err(NameError::ProcessTypeStart { name: shown(s) });
        }
        Ok(ProcessType(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The trait impls the two name types share.
macro_rules! name_impls {
    ($t:ident) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $t {
            type Err = NameError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $t::parse(s)
            }
        }

        impl TryFrom<String> for $t {
            type Error = NameError;

            fn try_from(s: String) -> Result<Self, Self::Error> {
                $t::parse(&s)
            }
        }

        impl From<$t> for String {
            fn from(name: $t) -> String {
                name.0
            }
        }

        impl AsRef<str> for $t {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

name_impls!(AppName);
name_impls!(ProcessType);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn app_err(s: &str) -> String {
        AppName::parse(s).unwrap_err().to_string()
    }

    fn type_err(s: &str) -> String {
        ProcessType::parse(s).unwrap_err().to_string()
    }

    #[test]
    fn accepts_valid_app_names() {
        for s in [
            "abc",
            "my-app",
            "a1b2",
            "a--b",
            "x23456789012345678901234567890",
        ] {
            assert_eq!(AppName::parse(s).unwrap().as_str(), s);
        }
    }

    #[test]
    fn app_name_error_messages() {
        assert_eq!(
            app_err(""),
            "app name is empty: use 3 to 30 lowercase letters, digits and dashes, starting with a \
             letter"
        );
        assert_eq!(
            app_err("Foo"),
            "app name `Foo` must be lowercase: use `foo`"
        );
        assert_eq!(
            app_err("ab"),
            "app name `ab` is too short: use 3 to 30 characters"
        );
        assert_eq!(
            app_err(&"a".repeat(31)),
            format!(
                "app name `{}` is too long (31 characters): use 3 to 30 characters",
                "a".repeat(31)
            )
        );
        assert_eq!(app_err("1app"), "app name `1app` must start with a letter");
        assert_eq!(app_err("-app"), "app name `-app` must start with a letter");
        assert_eq!(
            app_err("a_b"),
            "app name `a_b` may only contain lowercase letters, digits and dashes (found '_')"
        );
        assert_eq!(
            app_err("my app"),
            "app name `my app` may only contain lowercase letters, digits and dashes (found ' ')"
        );
        assert_eq!(app_err("app-"), "app name `app-` must not end with a dash");
    }

    #[test]
    fn case_is_checked_last_so_the_suggestion_is_valid() {
        assert_eq!(app_err("1Foo"), "app name `1Foo` must start with a letter");
        assert_eq!(
            app_err("My-App"),
            "app name `My-App` must be lowercase: use `my-app`"
        );
    }

    #[test]
    fn long_input_is_shortened_in_messages() {
        let msg = app_err(&format!("{}_", "a".repeat(1000)));
        assert!(msg.len() < 200, "{msg}");
        assert!(msg.contains("…"), "{msg}");
    }

    #[test]
    fn accepts_valid_process_types() {
        for s in ["web", "Web", "worker-2", "clock_1", "w"] {
            assert_eq!(ProcessType::parse(s).unwrap().as_str(), s);
        }
        assert!(ProcessType::parse(&"w".repeat(63)).is_ok());
    }

    #[test]
    fn process_type_error_messages() {
        assert_eq!(
            type_err(""),
            "process type is empty: use a name such as `web` or `worker`"
        );
        assert_eq!(
            type_err("Web!"),
            "process type `Web!` may only contain letters, digits, `-` and `_` (found '!')"
        );
        assert_eq!(
            type_err("w eb"),
            "process type `w eb` may only contain letters, digits, `-` and `_` (found ' ')"
        );
        assert_eq!(
            type_err("1web"),
            "process type `1web` must start with a letter"
        );
        assert_eq!(
            type_err(&"w".repeat(64)),
            format!(
                "process type `{}` is too long (64 characters): use at most 63",
                "w".repeat(64)
            )
        );
    }

    #[test]
    fn serde_uses_plain_strings_and_validates() {
        let app = AppName::parse("my-app").unwrap();
        assert_eq!(serde_json::to_string(&app).unwrap(), "\"my-app\"");
        assert_eq!(serde_json::from_str::<AppName>("\"my-app\"").unwrap(), app);
        let err = serde_json::from_str::<AppName>("\"My-App\"").unwrap_err();
        assert!(err.to_string().contains("must be lowercase"), "{err}");

        let web = ProcessType::parse("web").unwrap();
        assert_eq!(serde_json::to_string(&web).unwrap(), "\"web\"");
        assert_eq!(serde_json::from_str::<ProcessType>("\"web\"").unwrap(), web);
        assert!(serde_json::from_str::<ProcessType>("\"w b\"").is_err());
    }

    #[test]
    fn display_from_str_and_as_ref_agree() {
        let app: AppName = "my-app".parse().unwrap();
        assert_eq!(app.to_string(), "my-app");
        assert_eq!(app.as_ref(), "my-app");
        let web: ProcessType = "web".parse().unwrap();
        assert_eq!(web.to_string(), "web");
        assert_eq!(String::from(web), "web");
    }

    proptest! {
        #[test]
        fn arbitrary_input_never_panics(s in any::<String>()) {
            let _ = AppName::parse(&s);
            let _ = ProcessType::parse(&s);
        }

        #[test]
        fn the_app_name_pattern_matches_exactly_what_parse_accepts(
            s in prop_oneof!["[a-zA-Z0-9-]{0,32}", "[a-z][a-z0-9é_ -]{0,31}", any::<String>()]
        ) {
            let pattern = regex::Regex::new(&AppName::pattern()).unwrap();
            prop_assert_eq!(pattern.is_match(&s), AppName::parse(&s).is_ok(), "{:?}", s);
        }

        #[test]
        fn valid_app_names_round_trip(s in "[a-z][a-z0-9-]{1,28}[a-z0-9]") {
            let app = AppName::parse(&s).unwrap();
            prop_assert_eq!(app.to_string().parse::<AppName>().unwrap(), app);
        }

        #[test]
        fn valid_process_types_round_trip(s in "[A-Za-z][A-Za-z0-9_-]{0,62}") {
            let t = ProcessType::parse(&s).unwrap();
            let json = serde_json::to_string(&t).unwrap();
            prop_assert_eq!(serde_json::from_str::<ProcessType>(&json).unwrap(), t);
        }
    }
}
