//! A duplication that may still be running in Moodle.
//!
//! `core_course_duplicate_course` backs the template up and restores it inside the request, and
//! Moodle writes the new course's row (with its shortname) only near the end of that, a second on
//! a small site and minutes on a large template. A look-up by shortname in the meantime finds
//! nothing. So a process that was killed after calling, or whose call timed out, cannot tell
//! from Moodle whether its duplication is still under way; calling again would start a second
//! one that Moodle does not refuse (its shortname check runs before either course exists), and
//! the event would end up with two courses of one shortname.
//!
//! The saga therefore records `CourseDuplicationStarted` before every call, and these rules
//! decide what a worker does when the course is not (yet) in Moodle.
//!
//! A look-up may also find the course *too early*: after the backup, `restore_dbops::
//! create_new_course()` inserts a hidden skeleton with the requested names and no enrolment
//! method, and the call sets the names and the visibility asked for only once the restore is
//! over (the phases are in the simulator's `functions/duplicate.rs`, as the lab showed them).
//! Adopting the skeleton would record it hidden, and the end of the call would then show the
//! course of an ended event again. A found course is therefore adopted only once it has its
//! enrolment methods (the restore's `restore_default_enrolments_step` adds them), or once no
//! duplication of this event can still be running ([`when_course_found`]).

use std::time::Duration;

use domain::moodle_sync::DuplicationStarted;

/// How long after its announcement a duplication may still land its course: twice the call's
/// timeout (`MOODLE_DUPLICATE_TIMEOUT_SECS`). A call still unanswered at its timeout has shown
/// that this template is slow to copy (Moodle goes on after the engine gives up), so it gets as
/// long again; a process killed mid-call costs the same wait once.
pub fn landing_window(call_timeout: Duration) -> Duration {
    call_timeout.saturating_mul(2)
}

/// What to do about a course that a look-up by shortname did not find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoCourseYet {
    /// No duplication can still be running: announce one (record it), then call.
    Announce,
    /// A duplication announced earlier may still land: look again at this time (ms).
    WaitUntil(i64),
}

/// The rule: a duplication announced less than `window_ms` ago ([`landing_window`]) may still be
/// running; after that, whatever it made would be found by its shortname.
pub fn when_no_course(
    announced: Option<&DuplicationStarted>,
    now_ms: i64,
    window_ms: i64,
) -> NoCourseYet {
    match announced {
        Some(d) => {
            let until = d.started_at_ms.saturating_add(window_ms);
            if now_ms < until {
                NoCourseYet::WaitUntil(until)
            } else {
                NoCourseYet::Announce
            }
        }
        None => NoCourseYet::Announce,
    }
}

/// What to do about a course that a look-up by shortname found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FoundCourse {
    /// The course is whole: record it as the event's.
    Adopt,
    /// It may be the skeleton of a duplication still restoring: look again at this time (ms).
    LookAgainAt(i64),
}

/// How often a skeleton is looked at again: a fortieth of the landing window, between one and
/// thirty seconds (a small template's restore takes well under a second, a large one minutes).
pub fn recheck_interval_ms(window_ms: i64) -> i64 {
    (window_ms / 40).clamp(1_000, 30_000)
}

/// The rule: a course with an enrolment method is whole; one without is a skeleton while a
/// duplication announced less than `window_ms` ago may still be running, and whole after that
/// (a site that adds no enrolment method to new courses, or a restore that died halfway: the
/// enrolments then fail with a reason an operator can act on).
pub fn when_course_found(
    has_enrolment_methods: bool,
    announced: Option<&DuplicationStarted>,
    now_ms: i64,
    window_ms: i64,
) -> FoundCourse {
    if has_enrolment_methods {
        return FoundCourse::Adopt;
    }
    match when_no_course(announced, now_ms, window_ms) {
        NoCourseYet::WaitUntil(until) => FoundCourse::LookAgainAt(
            now_ms
                .saturating_add(recheck_interval_ms(window_ms))
                .min(until),
        ),
        NoCourseYet::Announce => FoundCourse::Adopt,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn at(ms: i64) -> DuplicationStarted {
        DuplicationStarted {
            attempt: Uuid::nil(),
            started_at_ms: ms,
        }
    }

    #[test]
    fn the_window_is_twice_the_call_timeout() {
        assert_eq!(
            landing_window(Duration::from_secs(600)),
            Duration::from_secs(1200)
        );
        assert_eq!(landing_window(Duration::MAX), Duration::MAX);
    }

    #[test]
    fn nothing_announced_means_announce() {
        assert_eq!(when_no_course(None, 5_000, 600_000), NoCourseYet::Announce);
    }

    #[test]
    fn a_recent_announcement_is_waited_out() {
        assert_eq!(
            when_no_course(Some(&at(1_000)), 5_000, 600_000),
            NoCourseYet::WaitUntil(601_000)
        );
    }

    #[test]
    fn a_whole_course_is_adopted_at_once() {
        assert_eq!(
            when_course_found(true, Some(&at(1_000)), 2_000, 600_000),
            FoundCourse::Adopt
        );
        assert_eq!(
            when_course_found(true, None, 2_000, 600_000),
            FoundCourse::Adopt
        );
    }

    #[test]
    fn a_skeleton_is_looked_at_again_while_its_duplication_may_run() {
        assert_eq!(
            when_course_found(false, Some(&at(1_000)), 2_000, 600_000),
            FoundCourse::LookAgainAt(2_000 + 15_000)
        );
        // Never past the end of the window, never sooner than a second.
        assert_eq!(
            when_course_found(false, Some(&at(1_000)), 600_500, 600_000),
            FoundCourse::LookAgainAt(601_000)
        );
        assert_eq!(
            when_course_found(false, Some(&at(0)), 0, 6_000),
            FoundCourse::LookAgainAt(1_000)
        );
        assert_eq!(recheck_interval_ms(i64::MAX), 30_000);
    }

    #[test]
    fn a_course_without_methods_is_whole_once_no_duplication_can_run() {
        assert_eq!(
            when_course_found(false, Some(&at(1_000)), 601_000, 600_000),
            FoundCourse::Adopt
        );
        assert_eq!(
            when_course_found(false, None, 601_000, 600_000),
            FoundCourse::Adopt
        );
    }

    #[test]
    fn an_announcement_older_than_the_window_is_over() {
        assert_eq!(
            when_no_course(Some(&at(1_000)), 601_000, 600_000),
            NoCourseYet::Announce
        );
        assert_eq!(
            when_no_course(Some(&at(i64::MAX - 1)), 0, 600_000),
            NoCourseYet::WaitUntil(i64::MAX)
        );
    }
}
