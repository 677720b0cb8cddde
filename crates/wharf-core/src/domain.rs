//! Custom domains: [`Hostname`], a fully qualified DNS name an app answers to besides its
//! default `<app>.<WHARF_DOMAIN>`.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::name::shown;

/// Longest hostname, in characters (RFC 1035).
pub const HOSTNAME_MAX: usize = 253;
/// Longest label (the part between dots).
pub const LABEL_MAX: usize = 63;

/// A hostname was not acceptable for a custom domain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostnameError {
    #[error("hostname is empty: give a domain such as `www.example.com`")]
    Empty,
    #[error(
        "hostname `{name}` is too long ({len} characters): a hostname has at most {HOSTNAME_MAX}"
    )]
    TooLong { name: String, len: usize },
    #[error(
        "hostname `{name}` needs at least two labels separated by a dot, such as `www.example.com`"
    )]
    SingleLabel { name: String },
    #[error("hostname `{name}` has an empty label (two dots in a row, or a dot at an end)")]
    EmptyLabel { name: String },
    #[error("hostname `{name}` has a label longer than {LABEL_MAX} characters")]
    LabelTooLong { name: String },
    #[error(
        "hostname `{name}` may only contain letters, digits, dashes and dots (found {found:?}); \
         give the hostname alone, without a scheme, port or path"
    )]
    InvalidChar { name: String, found: char },
    #[error("hostname `{name}` has a label that starts or ends with a dash")]
    LabelDash { name: String },
    #[error("hostname `{name}` is a wildcard: wharf routes exact hostnames only, add each one")]
    Wildcard { name: String },
    #[error("hostname `{name}` is an IP address: a custom domain must be a DNS name")]
    IpAddress { name: String },
}

/// A hostname for a custom domain: lowercase ASCII labels of letters, digits and dashes (no
/// dash at either end of a label), at least two of them, 253 characters at most. Input is
/// lowercased; a trailing dot (the DNS root) is dropped.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(value_type = String, example = "www.example.com"))]
pub struct Hostname(String);

impl Hostname {
    pub fn parse(s: &str) -> Result<Hostname, HostnameError> {
        let name = s.strip_suffix('.').unwrap_or(s).to_ascii_lowercase();
        if name.is_empty() {
            return Err(HostnameError::Empty);
        }
        if name.starts_with("*.") || name == "*" {
            return Err(HostnameError::Wildcard { name: shown(s) });
        }
        if let Some(found) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '.'))
        {
            return Err(HostnameError::InvalidChar {
                name: shown(s),
                found,
            });
        }
        if name.len() > HOSTNAME_MAX {
            return Err(HostnameError::TooLong {
                name: shown(s),
                len: name.len(),
            });
        }
        let labels: Vec<&str> = name.split('.').collect();
        if labels.len() < 2 {
            return Err(HostnameError::SingleLabel { name: shown(s) });
        }
        for label in &labels {
            if label.is_empty() {
                return Err(HostnameError::EmptyLabel { name: shown(s) });
            }
            if label.len() > LABEL_MAX {
                return Err(HostnameError::LabelTooLong { name: shown(s) });
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err(HostnameError::LabelDash { name: shown(s) });
            }
        }
        if labels.iter().all(|l| l.bytes().all(|b| b.is_ascii_digit())) {
            return Err(HostnameError::IpAddress { name: shown(s) });
        }
        Ok(Hostname(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is `domain` itself or a name under it (`a.b.example` is under `example`).
    pub fn is_within(&self, domain: &str) -> bool {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        self.0 == domain
            || self
                .0
                .strip_suffix(domain.as_str())
                .is_some_and(|head| head.ends_with('.'))
    }
}

impl fmt::Display for Hostname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Hostname {
    type Error = HostnameError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Hostname::parse(&s)
    }
}

impl From<Hostname> for String {
    fn from(h: Hostname) -> String {
        h.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_normalizes() {
        assert_eq!(
            Hostname::parse("WWW.Example.COM.").unwrap().as_str(),
            "www.example.com"
        );
        assert_eq!(Hostname::parse("a-b.c1.io").unwrap().as_str(), "a-b.c1.io");
    }

    #[test]
    fn rejects_with_a_reason() {
        let cases = [
            ("", "empty"),
            ("localhost", "two labels"),
            ("a..b", "empty label"),
            ("http://x.io", "without a scheme"),
            ("x.io:8080", "without a scheme, port"),
            ("-a.io", "dash"),
            ("*.example.com", "wildcard"),
            ("10.0.0.1", "IP address"),
        ];
        for (input, needle) in cases {
            let err = Hostname::parse(input).unwrap_err().to_string();
            assert!(err.contains(needle), "{input}: {err}");
        }
        let long = format!("{}.io", "a".repeat(64));
        assert!(matches!(
            Hostname::parse(&long),
            Err(HostnameError::LabelTooLong { .. })
        ));
        let huge = ["abc"; 70].join(".");
        assert!(matches!(
            Hostname::parse(&huge),
            Err(HostnameError::TooLong { .. })
        ));
    }

    #[test]
    fn within_a_domain() {
        let h = Hostname::parse("shop.apps.example").unwrap();
        assert!(h.is_within("apps.example"));
        assert!(h.is_within("APPS.example."));
        assert!(!h.is_within("ps.example"));
        assert!(!Hostname::parse("xapps.example")
            .unwrap()
            .is_within("apps.example"));
    }
}
