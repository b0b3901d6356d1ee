//! The rulebook: what the log wants of Moodle for one OpenVLE event, compared with what the saga
//! has recorded, as the list of what is not yet so.
//!
//! The planner turns [`Outstanding`] into steps ([`plan`](super::plan())); the event view counts
//! it (`pending_steps`) and takes its state from it ([`Outstanding::state`]); reconcile compares
//! Moodle against the same [`wants`]. These rules therefore live here only.
//!
//! | status                        | course                      | participants                          |
//! |-------------------------------|-----------------------------|---------------------------------------|
//! | Deployed                      | exists, visible (as its shape says) | enrolled, active, with their role |
//! | Ended                         | exists, hidden, archived    | instructors enrolled; students out    |
//! | Deleted, course deletion on   | deleted (looked for if none is recorded) | —                        |
//! | Deleted, course kept          | recorded as kept, hidden, if it still exists | as Ended             |
//!
//! The course's names, category, dates and visibility: `super::course`.
//! The deletion setting decides once: a course recorded as kept stays kept.
//!
//! "Enrolled with their role" means: by the account linked by their data (a participant added
//! again with other data is linked again, the old account taken out first), holding no role they
//! no longer have (a role change gives the new one, then takes the old one away), and, under
//! MOODLE_UPDATE_ACCOUNTS, with their changed names, email and idnumber written to the account.
//! A parked participant waits for a person, unless they changed since they were parked (a
//! corrected email, a username sent).

use serde::{Deserialize, Serialize};

use domain::event::Status;
use domain::moodle_sync::{EnrolmentState, MoodleSync, RecordedParticipant};
use domain::participant::Role;

use domain::moodle_sync::CourseProps;

use super::course::{changes, target};
use super::desired::{Desired, DesiredParticipant};
use super::settings::SagaSettings;

/// The Moodle state of an OpenVLE event, as a user sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncState {
    /// The integration is off: no call, ever.
    Disabled,
    /// Deployed from an environment without a template course: no call.
    NotLinked,
    /// Moodle differs from the log and the saga will make it so.
    Pending,
    /// Moodle is as the log says.
    InSync,
    /// The saga, or one of the participants it still has to serve, is parked: a person must act.
    Failed,
}

impl SyncState {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncState::Disabled => "disabled",
            SyncState::NotLinked => "not_linked",
            SyncState::Pending => "pending",
            SyncState::InSync => "in_sync",
            SyncState::Failed => "failed",
        }
    }
}

/// Whether the event has a Moodle side at all (integration on, deployed from a template).
pub fn in_scope(desired: &Desired, settings: &SagaSettings) -> bool {
    settings.enabled
        && desired.status != Status::NotDeployed
        && desired.template_course_id.is_some()
}

/// What the log wants of one participant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// Enrolled, active, with this role id.
    Enrolled(i64),
    /// Not in the course (unenrolled, or suspended).
    Out,
}

/// What the log wants of every participant, current ones first, then the removed ones.
/// Instructors stay enrolled once the event ended (or was deleted and its course kept).
pub fn wants<'a>(
    desired: &'a Desired,
    settings: &SagaSettings,
) -> Vec<(&'a DesiredParticipant, Want)> {
    let active = desired.status == Status::Deployed;
    let current = desired.participants.iter().map(|p| {
        let want = if active || p.participant.role == Role::Instructor {
            Want::Enrolled(settings.role_id(p.participant.role))
        } else {
            Want::Out
        };
        (p, want)
    });
    let removed = desired.removed.iter().map(|p| (p, Want::Out));
    current.chain(removed).collect()
}

/// Whether the recorded link was made by data the participant no longer has, nor had when
/// added: they were removed and added again as someone else. Links recorded before their key
/// was kept, and links made under another match field, are kept.
pub fn link_is_stale(p: &DesiredParticipant, r: &RecordedParticipant, s: &SagaSettings) -> bool {
    match (&r.linked_by, r.moodle_user_id) {
        (Some(k), Some(_)) => k.field == s.user_match_field && !p.owns_link(k.field, &k.value),
        _ => false,
    }
}

/// Whether the participant's changed names, email or idnumber are still to be written to their
/// account (MOODLE_UPDATE_ACCOUNTS).
pub fn account_update_due(
    p: &DesiredParticipant,
    r: &RecordedParticipant,
    s: &SagaSettings,
) -> bool {
    s.update_accounts
        && r.moodle_user_id.is_some()
        && !link_is_stale(p, r, s)
        && p.account_change
            .is_some_and(|c| r.account_updated_for != Some(c.event_id))
}

/// Whether the record says a participant is out of the course (or never got in).
pub fn known_out(r: &RecordedParticipant, has_course: bool) -> bool {
    !has_course
        || r.moodle_user_id.is_none()
        || matches!(
            r.enrolment,
            Some(EnrolmentState::Unenrolled) | Some(EnrolmentState::Suspended)
        )
}

/// Whether the record says a participant is as wanted, given whether the event's course exists.
fn satisfied(
    p: &DesiredParticipant,
    want: Want,
    r: &RecordedParticipant,
    has_course: bool,
    s: &SagaSettings,
) -> bool {
    match want {
        Want::Enrolled(role) => {
            has_course
                && r.enrolment == Some(EnrolmentState::Enrolled)
                && r.role_id == Some(role)
                && r.extra_roles.is_empty()
                && !link_is_stale(p, r, s)
                && !account_update_due(p, r, s)
        }
        // Out only when known to be out: an enrol whose outcome was unknown (recorded as a
        // failure, not `Enrolled`) may have enrolled them, so anyone linked is acted on.
        Want::Out => known_out(r, has_course),
    }
}

/// One participant compared with the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compared<'a> {
    pub desired: &'a DesiredParticipant,
    pub want: Want,
    /// What the saga recorded of them (None: nothing yet).
    pub recorded: Option<&'a RecordedParticipant>,
    /// The record says they are as wanted.
    pub satisfied: bool,
}

impl Compared<'_> {
    /// Not as wanted, and Moodle refused them: they wait for a person, and so does the event.
    /// A participant to enrol who changed since the park (their cause is another event) is
    /// tried again.
    pub fn is_parked(&self) -> bool {
        let stands = |r: &RecordedParticipant| match (self.want, r.parked_for) {
            // A park without a cause (one an operator step recorded) stands.
            (Want::Enrolled(_), Some(for_cause)) if !for_cause.is_nil() => {
                for_cause == self.desired.cause.event_id
            }
            _ => true,
        };
        !self.satisfied
            && self
                .recorded
                .is_some_and(|r| r.parked.is_some() && stands(r))
    }

    /// Not as wanted, and the saga will act on them.
    pub fn is_actionable(&self) -> bool {
        !self.satisfied && !self.is_parked()
    }
}

/// What the event's course still needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CourseWork {
    /// No course is recorded: find it by shortname, or duplicate the template.
    Ensure,
    /// The event was deleted with course deletion on: delete the recorded course.
    Delete(i64),
    /// As `Delete`, but no course was ever recorded: a creation whose answer was lost may
    /// have made one, so look for it by shortname.
    FindToDelete,
    /// The event was deleted with course deletion off: record that its course is kept.
    Keep(i64),
}

/// What is not yet as the log wants, for one OpenVLE event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outstanding<'a> {
    /// Set when nothing is compared (integration off, never deployed, no template): the state.
    pub not_compared: Option<SyncState>,
    /// The whole saga is parked.
    pub saga_parked: bool,
    pub course: Option<CourseWork>,
    /// The visibility the course must get (it is recorded otherwise). Counted without a course
    /// too when the course must be hidden: it is created hidden, a second change.
    pub visibility: Option<bool>,
    /// Names, category or dates still to write to the course (`super::course`).
    pub course_update: Option<CourseProps>,
    /// When the wish changes by itself (ms): the start of an `at_start` event.
    pub wake_at_ms: Option<i64>,
    /// Every participant compared, satisfied or not (current ones first, as [`wants`]); empty
    /// when the course is to go or is gone for good.
    pub participants: Vec<Compared<'a>>,
}

impl Outstanding<'_> {
    /// How many changes are outstanding: the course, its visibility, each participant not as
    /// wanted (parked ones too). Changes, not steps: a step batches many.
    pub fn changes(&self) -> u64 {
        if self.not_compared.is_some() {
            return 0;
        }
        let unsatisfied = self.participants.iter().filter(|c| !c.satisfied).count() as u64;
        u64::from(self.course.is_some())
            + u64::from(self.visibility.is_some())
            + u64::from(self.course_update.is_some())
            + unsatisfied
    }

    /// The Moodle state this gives. An empty plan means InSync, or Failed when what is left
    /// waits for a person.
    pub fn state(&self) -> SyncState {
        if let Some(state) = self.not_compared {
            return state;
        }
        if self.saga_parked || self.participants.iter().any(Compared::is_parked) {
            SyncState::Failed
        } else if self.changes() == 0 {
            SyncState::InSync
        } else {
            SyncState::Pending
        }
    }
}

/// Whether a deleted event's course is to be deleted: the setting as it was when the event was
/// deleted decides, once, so a course recorded as kept stays kept whatever the setting says later.
/// The planner, the view and the reconcile all ask this one rule.
pub fn course_must_go(desired: &Desired, recorded: &MoodleSync, settings: &SagaSettings) -> bool {
    desired.status == Status::Deleted
        && settings.delete_course_on_event_delete
        && !recorded.course_kept
}

/// Whether the saga's park still holds: until an operator resumes it, or (for a park that kept
/// how far it had read) until the event changes in a way that can make the failed step moot or
/// right: a rename or new dates, another template, the end, the delete. One rule for the
/// planner, the view and the status.
pub fn park_stands(desired: &Desired, recorded: &MoodleSync) -> bool {
    if recorded.parked.is_none() {
        return false;
    }
    match (recorded.parked_at, desired.park_lift) {
        (Some(at), Some(lift)) => lift.sequence <= at,
        _ => true,
    }
}

/// Compares the desired state of one event with its recorded state.
pub fn outstanding<'a>(
    desired: &'a Desired,
    recorded: &'a MoodleSync,
    settings: &SagaSettings,
) -> Outstanding<'a> {
    let mut out = Outstanding {
        not_compared: None,
        saga_parked: park_stands(desired, recorded),
        course: None,
        visibility: None,
        course_update: None,
        wake_at_ms: None,
        participants: Vec::new(),
    };
    if !in_scope(desired, settings) {
        out.not_compared = Some(if !settings.enabled {
            SyncState::Disabled
        } else if desired.status == Status::NotDeployed {
            SyncState::InSync
        } else {
            SyncState::NotLinked
        });
        return out;
    }
    let deleting = desired.status == Status::Deleted;
    let has_course = recorded.course_id.is_some() && !recorded.course_deleted;
    let course_id = recorded.course_id.filter(|_| has_course);

    if course_must_go(desired, recorded, settings) {
        out.course = match course_id {
            Some(id) => Some(CourseWork::Delete(id)),
            // Never recorded, or lost: a creation whose answer was lost may have made it.
            None if recorded.course_id.is_none() && !recorded.course_deleted => {
                Some(CourseWork::FindToDelete)
            }
            None => None,
        };
        return out;
    }
    // A deleted event whose course never existed (or is gone) needs nothing. Otherwise a
    // deleted event keeps its course as an ended one: hidden, instructors only.
    if deleting && course_id.is_none() {
        return out;
    }
    out.course = match course_id {
        None => Some(CourseWork::Ensure),
        Some(id) if deleting && !recorded.course_kept => Some(CourseWork::Keep(id)),
        Some(_) => None,
    };
    let wanted = target(desired, settings);
    out.wake_at_ms = wanted.wake_at_ms;
    match wanted.visible {
        Some(visible) if recorded.course_visible != Some(visible) && (has_course || !visible) => {
            out.visibility = Some(visible);
        }
        _ => {}
    }
    if has_course {
        out.course_update = changes(&wanted, recorded);
    }
    let empty = RecordedParticipant::default();
    out.participants = wants(desired, settings)
        .into_iter()
        .map(|(p, want)| {
            let r = recorded.participant(&p.participant.id);
            Compared {
                desired: p,
                want,
                recorded: r,
                satisfied: satisfied(p, want, r.unwrap_or(&empty), has_course, settings),
            }
        })
        .collect();
    out
}
