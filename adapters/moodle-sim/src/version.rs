//! Which Moodle release the simulator answers as.
//!
//! The two releases differ only in what they answer, never in what they do (observed-5.1.md: the
//! same 46 calls were sent to both, 27 answered the same, the rest differ in error bodies). So the
//! functions build 4.4's bodies and [`super::WsError::in_version`] turns them into 5.1's at the
//! door; keeping the difference in one place is what lets the contract suite run every test
//! against both.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A Moodle release the simulator can answer as.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MoodleVersion {
    /// Moodle 4.4 as observed in `shared/moodle/observed-4.4.md` (the lab's 4.4dev, build 20231124).
    #[default]
    #[serde(rename = "4.4")]
    V4_4,
    /// Moodle 5.1 as observed in `shared/moodle/observed-5.1.md` (5.1+, build 20251017):
    /// namespaced exception classes, missing records that no longer name their table.
    #[serde(rename = "5.1")]
    V5_1,
}

impl MoodleVersion {
    /// Every version the simulator knows, oldest first.
    pub const ALL: [MoodleVersion; 2] = [MoodleVersion::V4_4, MoodleVersion::V5_1];

    /// `4.4` or `5.1`.
    pub fn as_str(self) -> &'static str {
        match self {
            MoodleVersion::V4_4 => "4.4",
            MoodleVersion::V5_1 => "5.1",
        }
    }

    /// The `release` string `core_webservice_get_site_info` reports, as the observed sites did.
    pub fn release(self) -> &'static str {
        match self {
            MoodleVersion::V4_4 => "4.4dev (Build: 20231124)",
            MoodleVersion::V5_1 => "5.1+ (Build: 20251017)",
        }
    }

    /// The `version` number `core_webservice_get_site_info` reports (also each function's
    /// version). 4.4's is the lab's; 5.1's is the 5.1 release's (the 5.1+ weekly build observed
    /// was not recorded with its number).
    pub fn version_number(self) -> &'static str {
        match self {
            MoodleVersion::V4_4 => "2023112400",
            MoodleVersion::V5_1 => "2025100600",
        }
    }

    /// The PHP exception class this release names for 4.4's `class`: 5.1 moved the core
    /// exceptions into `core\exception` (only the two classes observed to change are mapped).
    pub(crate) fn exception_class(self, class: &str) -> String {
        match (self, class) {
            (MoodleVersion::V5_1, "moodle_exception" | "invalid_parameter_exception") => {
                format!("core\\exception\\{class}")
            }
            _ => class.to_string(),
        }
    }
}

impl fmt::Display for MoodleVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A version string the simulator does not know.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown Moodle version {0:?}: the simulator answers as 4.4 or 5.1")]
pub struct UnknownVersion(pub String);

impl FromStr for MoodleVersion {
    type Err = UnknownVersion;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "4.4" => Ok(MoodleVersion::V4_4),
            "5.1" => Ok(MoodleVersion::V5_1),
            other => Err(UnknownVersion(other.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        for v in MoodleVersion::ALL {
            assert_eq!(v.as_str().parse::<MoodleVersion>(), Ok(v));
            assert_eq!(v.to_string(), v.as_str());
            assert!(v.release().starts_with(v.as_str()));
            let json = serde_json::to_string(&v).unwrap();
            assert_eq!(json, format!("\"{}\"", v.as_str()));
        }
        let e = "4.5".parse::<MoodleVersion>().unwrap_err();
        assert!(e.to_string().contains("4.4 or 5.1"), "{e}");
        assert_eq!(MoodleVersion::default(), MoodleVersion::V4_4);
    }

    #[test]
    fn only_the_observed_classes_move() {
        let v = MoodleVersion::V5_1;
        assert_eq!(
            v.exception_class("moodle_exception"),
            "core\\exception\\moodle_exception"
        );
        assert_eq!(
            v.exception_class("invalid_parameter_exception"),
            "core\\exception\\invalid_parameter_exception"
        );
        for same in [
            "dml_missing_record_exception",
            "webservice_access_exception",
        ] {
            assert_eq!(v.exception_class(same), same);
            assert_eq!(MoodleVersion::V4_4.exception_class(same), same);
        }
        assert_eq!(
            MoodleVersion::V4_4.exception_class("moodle_exception"),
            "moodle_exception"
        );
    }
}
