//! A build's lifecycle ([`BuildStatus`]): pending (queued) → running → succeeded or failed.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a build is in its life. Moved forward in one place (the server's build runner) and
/// never backwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum BuildStatus {
    /// Waiting for its turn: one build per app at a time, a bounded number overall.
    Pending,
    /// A provider is building it.
    Running,
    /// The image exists and a release was made from it.
    Succeeded,
    /// It failed, timed out, or was interrupted; no release was made.
    Failed,
}

impl BuildStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BuildStatus::Pending => "pending",
            BuildStatus::Running => "running",
            BuildStatus::Succeeded => "succeeded",
            BuildStatus::Failed => "failed",
        }
    }

    /// Whether the build has ended.
    pub fn is_finished(self) -> bool {
        matches!(self, BuildStatus::Succeeded | BuildStatus::Failed)
    }

    /// The status as the Heroku API spells it: `pending` until the build ends.
    pub fn heroku(self) -> &'static str {
        match self {
            BuildStatus::Pending | BuildStatus::Running => "pending",
            BuildStatus::Succeeded => "succeeded",
            BuildStatus::Failed => "failed",
        }
    }
}

impl fmt::Display for BuildStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A build status could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown build status `{0}`: use pending, running, succeeded or failed")]
pub struct UnknownBuildStatus(pub String);

impl FromStr for BuildStatus {
    type Err = UnknownBuildStatus;

    fn from_str(s: &str) -> Result<BuildStatus, UnknownBuildStatus> {
        match s {
            "pending" => Ok(BuildStatus::Pending),
            "running" => Ok(BuildStatus::Running),
            "succeeded" => Ok(BuildStatus::Succeeded),
            "failed" => Ok(BuildStatus::Failed),
            other => Err(UnknownBuildStatus(other.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip() {
        for status in [
            BuildStatus::Pending,
            BuildStatus::Running,
            BuildStatus::Succeeded,
            BuildStatus::Failed,
        ] {
            assert_eq!(status.as_str().parse::<BuildStatus>().unwrap(), status);
            assert_eq!(
                serde_json::to_string(&status).unwrap(),
                format!("\"{status}\"")
            );
        }
        assert_eq!(BuildStatus::Running.heroku(), "pending");
        assert!("done"
            .parse::<BuildStatus>()
            .unwrap_err()
            .to_string()
            .contains("running"));
    }
}
