//! The scheduled reconcile's settings, typed: the caller (the binary) parses them from its own
//! settings with [`ReconcileSchedule::from_lookup`] and hands the value to the worker in
//! `SagaConfig::reconcile`.

use std::time::Duration;

/// `MOODLE_RECONCILE_INTERVAL` / `MOODLE_RECONCILE_APPLY` is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReconcileConfigError {
    #[error(
        "MOODLE_RECONCILE_INTERVAL: {0:?} is not a whole number of seconds (unset or 0: no scheduled reconcile)"
    )]
    Interval(String),
    #[error("MOODLE_RECONCILE_APPLY: {0:?} is not a boolean (true or false)")]
    Apply(String),
}

/// The scheduled reconcile of a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReconcileSchedule {
    /// Time between two passes over every event.
    pub interval: Duration,
    /// Converge Moodle (true) or only report the drift (false, the default).
    pub apply: bool,
}

impl ReconcileSchedule {
    pub const INTERVAL_VAR: &'static str = "MOODLE_RECONCILE_INTERVAL";
    pub const APPLY_VAR: &'static str = "MOODLE_RECONCILE_APPLY";

    /// From the variables' values: None when the interval is unset, empty or 0.
    pub fn parse(
        interval: Option<&str>,
        apply: Option<&str>,
    ) -> Result<Option<ReconcileSchedule>, ReconcileConfigError> {
        let apply = match apply.map(str::trim).filter(|v| !v.is_empty()) {
            None => false,
            Some(v) => match v.to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => true,
                "0" | "false" | "no" | "off" => false,
                _ => return Err(ReconcileConfigError::Apply(v.to_string())),
            },
        };
        let Some(interval) = interval.map(str::trim).filter(|v| !v.is_empty()) else {
            return Ok(None);
        };
        let secs: u64 = interval
            .parse()
            .map_err(|_| ReconcileConfigError::Interval(interval.to_string()))?;
        Ok((secs > 0).then(|| ReconcileSchedule {
            interval: Duration::from_secs(secs),
            apply,
        }))
    }

    /// From a lookup of the variables by name (the binary passes its settings, or
    /// `|k| std::env::var(k).ok()`): the saga itself reads no environment, so a value given any
    /// way the binary accepts is the one used.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<ReconcileSchedule>, ReconcileConfigError> {
        ReconcileSchedule::parse(
            lookup(Self::INTERVAL_VAR).as_deref(),
            lookup(Self::APPLY_VAR).as_deref(),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn schedule_parses_and_names_the_variable() {
        assert_eq!(ReconcileSchedule::parse(None, None), Ok(None));
        assert_eq!(ReconcileSchedule::parse(Some("0"), Some("true")), Ok(None));
        assert_eq!(
            ReconcileSchedule::parse(Some(" 300 "), None),
            Ok(Some(ReconcileSchedule {
                interval: Duration::from_secs(300),
                apply: false
            }))
        );
        assert_eq!(
            ReconcileSchedule::parse(Some("60"), Some("TRUE")).map(|s| s.map(|s| s.apply)),
            Ok(Some(true))
        );
        let e = ReconcileSchedule::parse(Some("5m"), None).unwrap_err();
        assert!(
            e.to_string().starts_with("MOODLE_RECONCILE_INTERVAL"),
            "{e}"
        );
        let e = ReconcileSchedule::parse(Some("60"), Some("maybe")).unwrap_err();
        assert!(e.to_string().starts_with("MOODLE_RECONCILE_APPLY"), "{e}");
    }

    #[test]
    fn schedule_from_a_lookup_reads_the_two_names() {
        let lookup = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(ReconcileSchedule::from_lookup(lookup(&[])), Ok(None));
        assert_eq!(
            ReconcileSchedule::from_lookup(lookup(&[
                ("MOODLE_RECONCILE_INTERVAL", "120"),
                ("MOODLE_RECONCILE_APPLY", "yes"),
                ("RECONCILE_INTERVAL", "5"),
            ])),
            Ok(Some(ReconcileSchedule {
                interval: Duration::from_secs(120),
                apply: true
            }))
        );
        // Apply without an interval: off, but a bad value is still an error.
        assert_eq!(
            ReconcileSchedule::from_lookup(lookup(&[("MOODLE_RECONCILE_APPLY", "true")])),
            Ok(None)
        );
        assert_eq!(
            ReconcileSchedule::from_lookup(lookup(&[("MOODLE_RECONCILE_APPLY", "sometimes")])),
            Err(ReconcileConfigError::Apply("sometimes".into()))
        );
        assert_eq!(
            ReconcileSchedule::from_lookup(lookup(&[("MOODLE_RECONCILE_INTERVAL", "-1")])),
            Err(ReconcileConfigError::Interval("-1".into()))
        );
    }
}
