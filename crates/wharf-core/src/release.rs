//! Release numbering ([`ReleaseVersion`]: v1, v2, … per app) and a release's lifecycle
//! ([`ReleaseStatus`]).

use std::fmt;
use std::num::IntErrorKind;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::name::shown;

/// A release version or status could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReleaseError {
    #[error("release version is empty: use a number such as 3 or v3")]
    Empty,
    #[error("release version `{input}` is not a number: use a number such as 3 or v3")]
    NotANumber { input: String },
    #[error("release version 0 doesn't exist: versions start at 1")]
    Zero,
    #[error("release version `{input}` is too large: the largest is {}", u32::MAX)]
    TooLarge { input: String },
    #[error("unknown release status `{input}`: use pending, succeeded or failed")]
    UnknownStatus { input: String },
}

/// The Procfile process type whose command is the release phase: run once, before each new
/// release goes live. It is never scaled like the others.
pub const RELEASE_PHASE_TYPE: &str = "release";

/// A release's number within its app: 1 for the first release, then 2, 3, … Never 0, never
/// reused. Shown as `v3`; serialized as the integer 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(value_type = u32, example = 3))]
pub struct ReleaseVersion(u32);

impl ReleaseVersion {
    /// The version of an app's first release.
    pub const FIRST: ReleaseVersion = ReleaseVersion(1);

    /// `None` for 0, which is not a version.
    pub fn new(version: u32) -> Option<ReleaseVersion> {
        (version >= 1).then_some(ReleaseVersion(version))
    }

    pub fn get(self) -> u32 {
        self.0
    }

    /// The version after this one; `None` after `u32::MAX`, since versions are never reused.
    pub fn next(self) -> Option<ReleaseVersion> {
        self.0.checked_add(1).map(ReleaseVersion)
    }

    /// Reads `3`, `v3` or `V3`, ignoring surrounding whitespace.
    pub fn parse(s: &str) -> Result<ReleaseVersion, ReleaseError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(ReleaseError::Empty);
        }
        let digits = s.strip_prefix(['v', 'V']).unwrap_or(s);
        // Checked by hand because Rust's integer parsing accepts a leading `+`.
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ReleaseError::NotANumber { input: shown(s) });
        }
        match digits.parse::<u32>() {
            Ok(n) => ReleaseVersion::try_from(n),
            Err(e) if *e.kind() == IntErrorKind::PosOverflow => {
                Err(ReleaseError::TooLarge { input: shown(s) })
            }
            Err(_) => Err(ReleaseError::NotANumber { input: shown(s) }),
        }
    }
}

impl fmt::Display for ReleaseVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.0)
    }
}

impl FromStr for ReleaseVersion {
    type Err = ReleaseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ReleaseVersion::parse(s)
    }
}

impl TryFrom<u32> for ReleaseVersion {
    type Error = ReleaseError;

    fn try_from(version: u32) -> Result<Self, Self::Error> {
        ReleaseVersion::new(version).ok_or(ReleaseError::Zero)
    }
}

impl From<ReleaseVersion> for u32 {
    fn from(version: ReleaseVersion) -> u32 {
        version.0
    }
}

/// Where a release is in its life: `Pending` while its release-phase command runs, then
/// `Succeeded` or `Failed`. Serialized in lowercase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ReleaseStatus {
    Pending,
    Succeeded,
    Failed,
}

impl ReleaseStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReleaseStatus::Pending => "pending",
            ReleaseStatus::Succeeded => "succeeded",
            ReleaseStatus::Failed => "failed",
        }
    }
}

impl fmt::Display for ReleaseStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Reads exactly what [`ReleaseStatus::as_str`] writes.
impl FromStr for ReleaseStatus {
    type Err = ReleaseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pending" => Ok(ReleaseStatus::Pending),
            "succeeded" => Ok(ReleaseStatus::Succeeded),
            "failed" => Ok(ReleaseStatus::Failed),
            _ => Err(ReleaseError::UnknownStatus { input: shown(s) }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v(n: u32) -> ReleaseVersion {
        ReleaseVersion::new(n).unwrap()
    }

    #[test]
    fn versions_start_at_one_and_count_up() {
        assert_eq!(ReleaseVersion::new(0), None);
        assert_eq!(ReleaseVersion::FIRST.get(), 1);
        assert_eq!(v(1).next(), Some(v(2)));
        assert_eq!(v(u32::MAX).next(), None);
        assert!(v(2) < v(10));
        assert_eq!(v(3).to_string(), "v3");
        assert_eq!(u32::from(v(3)), 3);
    }

    #[test]
    fn parses_plain_and_v_prefixed() {
        assert_eq!(ReleaseVersion::parse("3"), Ok(v(3)));
        assert_eq!(ReleaseVersion::parse("v3"), Ok(v(3)));
        assert_eq!(ReleaseVersion::parse(" V12 "), Ok(v(12)));
        assert_eq!("v007".parse(), Ok(v(7)));
    }

    #[test]
    fn version_error_messages() {
        let err = |s: &str| ReleaseVersion::parse(s).unwrap_err().to_string();
        assert_eq!(
            err(""),
            "release version is empty: use a number such as 3 or v3"
        );
        assert_eq!(
            err("v"),
            "release version `v` is not a number: use a number such as 3 or v3"
        );
        assert_eq!(
            err("+3"),
            "release version `+3` is not a number: use a number such as 3 or v3"
        );
        assert_eq!(
            err("vv3"),
            "release version `vv3` is not a number: use a number such as 3 or v3"
        );
        assert_eq!(
            err("v0"),
            "release version 0 doesn't exist: versions start at 1"
        );
        assert_eq!(
            err("v4294967296"),
            "release version `v4294967296` is too large: the largest is 4294967295"
        );
    }

    #[test]
    fn version_serde_is_an_integer() {
        assert_eq!(serde_json::to_string(&v(3)).unwrap(), "3");
        assert_eq!(serde_json::from_str::<ReleaseVersion>("3").unwrap(), v(3));
        let err = serde_json::from_str::<ReleaseVersion>("0").unwrap_err();
        assert!(err.to_string().contains("versions start at 1"), "{err}");
        assert!(serde_json::from_str::<ReleaseVersion>("-1").is_err());
    }

    #[test]
    fn status_strings() {
        for status in [
            ReleaseStatus::Pending,
            ReleaseStatus::Succeeded,
            ReleaseStatus::Failed,
        ] {
            assert_eq!(status.as_str().parse(), Ok(status));
            assert_eq!(status.to_string(), status.as_str());
            assert_eq!(
                serde_json::to_string(&status).unwrap(),
                format!("\"{}\"", status.as_str())
            );
            assert_eq!(
                serde_json::from_str::<ReleaseStatus>(&format!("\"{status}\"")).unwrap(),
                status
            );
        }
        assert_eq!(
            "done".parse::<ReleaseStatus>().unwrap_err().to_string(),
            "unknown release status `done`: use pending, succeeded or failed"
        );
    }

    proptest! {
        #[test]
        fn arbitrary_input_never_panics(s in any::<String>()) {
            let _ = ReleaseVersion::parse(&s);
            let _ = s.parse::<ReleaseStatus>();
        }

        #[test]
        fn versions_round_trip(n in 1..=u32::MAX) {
            let version = v(n);
            prop_assert_eq!(ReleaseVersion::parse(&version.to_string()), Ok(version));
            prop_assert_eq!(ReleaseVersion::parse(&n.to_string()), Ok(version));
            let json = serde_json::to_string(&version).unwrap();
            prop_assert_eq!(serde_json::from_str::<ReleaseVersion>(&json).unwrap(), version);
        }
    }
}
