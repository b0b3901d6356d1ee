//! The Moodle saga's decision logic, pure (no I/O): what Moodle should hold for one OpenVLE
//! event, what the saga has recorded it holds, and the next batched steps between the two.
//!
//! - [`Desired`]: the fold of the event's `event` stream (participants with roles, status,
//!   template course, and the id of the domain event behind each fact, for `caused_by`).
//! - Recorded: [`domain::moodle_sync::MoodleSync`], the fold of the `moodle_sync` stream.
//! - [`outstanding()`]: (desired, recorded, [`SagaSettings`]) → [`Outstanding`], the rulebook:
//!   what is not yet as the log wants. The event view counts it and takes its state from it.
//! - [`plan`]: the same → [`Plan`], the outstanding changes as batched steps; level-triggered: a
//!   redelivered or coalesced domain event gives the same plan, and an empty plan means in sync
//!   (or parked).
//!
//! | phase                | steps (each one batch, whatever the number of participants)             |
//! |----------------------|-------------------------------------------------------------------------|
//! | Deployed             | EnsureCourse (find by the shortname its templates give, adopt only the engine's own, duplicate if absent), UpdateCourse (idnumber, dates), LinkUsers (one look-up, one create of the missing), Enrol; at the start of an `at_start` event, ShowCourse |
//! | EventChanged         | UpdateCourse (names and dates follow)                                   |
//! | ParticipantAdded     | LinkUsers, Enrol (a burst of adds coalesces into one batch each)        |
//! | ParticipantRemoved   | Remove (unenrol or suspend per `removal_mode`)                          |
//! | ParticipantChanged   | Enrol with the new role, then UnassignRoles (the old); UpdateAccounts under MOODLE_UPDATE_ACCOUNTS |
//! | Ended                | Remove the students first, hide the course, move it to the archive category (if any); instructors stay |
//! | Deleted              | DeleteCourse when configured; otherwise the course is kept as ended     |
//!
//! [`reconcile()`] is the same comparison with the state Moodle holds in place of the recorded
//! state: drift rows for people, and the corrections (facts) from which the planner converges.
//!
//! A participant Moodle would refuse (a username outside Moodle's rules) is parked alone; parked
//! participants are left out of every step until an operator resumes the saga or the
//! participant changes.
//!
//! Identity: an account is adopted only when it holds, in the match field, the value OpenVLE sent
//! ([`domain::settings::UserMatchField::key_of`]); a username the engine derives
//! ([`username::new_username`]) only names a new account, and one another account holds is
//! never adopted ([`naming`]).

pub mod course;
pub mod desired;
pub mod duplication;
pub mod fixes;
pub mod matching;
pub mod naming;
pub mod observe;
pub mod outcome;
pub mod outstanding;
pub mod plan;
pub mod reconcile;
pub mod retry;
pub mod settings;
pub mod step;
pub mod username;

pub use course::{CourseTarget, Whose};
pub use desired::{course_shortname, Cause, Desired, DesiredParticipant};
pub use duplication::{
    landing_window, recheck_interval_ms, when_course_found, when_no_course, FoundCourse,
    NoCourseYet,
};
pub use fixes::{fix_for, FIXES};
pub use observe::{
    to_observe, DriftRow, Observe, Observed, ObservedCourse, ObservedEnrolment, Reconciliation,
};
pub use outcome::{Failure, Interruption, Next, RetryPolicy, StepResult};
pub use outstanding::{
    in_scope, outstanding, park_stands, wants, Compared, CourseWork, Outstanding, SyncState, Want,
};
pub use plan::{
    plan, EnrolItem, EnsureCourse, LinkUsers, ParkItem, Plan, RemoveItem, Step, UnassignItem,
    UpdateItem, UserToLink,
};
pub use reconcile::reconcile;
pub use retry::Backoff;
pub use settings::{
    NewUserPassword, RemovalMode, SagaSettings, UserMatchField, UsernameCollision, UsernameSource,
    ViewFingerprint,
};
pub use username::{
    check_email, check_username, new_username, NewUsername, Refusal, MAX_USERNAME_LEN,
};

#[cfg(test)]
mod tests;
