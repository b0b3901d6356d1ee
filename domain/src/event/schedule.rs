//! When an event runs: its course's start and end dates.

use serde::{Deserialize, Serialize};

use crate::DomainError;

/// When an event runs: its course's start and end dates (unix seconds).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<i64>,
}

impl Schedule {
    /// An end before (or at) the start is refused, as Moodle refuses such a course.
    pub fn check(&self) -> Result<(), DomainError> {
        for (field, t) in [("starts_at", self.starts_at), ("ends_at", self.ends_at)] {
            // Moodle keeps dates as unix seconds from 1970 in a signed 64-bit column, and
            // treats 0 as "no date".
            if t.is_some_and(|t| !(1..=253_402_300_799).contains(&t)) {
                return Err(DomainError::invalid(
                    field,
                    "must be a time after 1970-01-01 and before year 10000",
                ));
            }
        }
        match (self.starts_at, self.ends_at) {
            (Some(s), Some(e)) if e <= s => Err(DomainError::invalid(
                "ends_at",
                "must be after starts_at (Moodle refuses a course that ends before it starts)",
            )),
            _ => Ok(()),
        }
    }
}

pub(super) fn is_unscheduled(s: &Schedule) -> bool {
    *s == Schedule::default()
}
