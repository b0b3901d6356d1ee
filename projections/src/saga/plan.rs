//! The planner: (desired, recorded, settings) → the next batched Moodle steps.

use serde::{Deserialize, Serialize};

use domain::event::Status;
use domain::moodle_sync::{DuplicationStarted, EnrolmentState, MoodleSync, RecordedParticipant};
use domain::participant::Role;

use super::desired::{Cause, Desired, DesiredParticipant};
use super::username::{check_email, check_username, moodle_username, Refusal};

/// Which Moodle user field identifies a participant (MOODLE_USER_MATCH_FIELD).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserMatchField {
    #[default]
    Email,
    Username,
}

/// What removing a participant does in Moodle (MOODLE_REMOVAL_MODE).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RemovalMode {
    /// `enrol_manual_unenrol_users` (the seed's behaviour; Moodle drops the grades, MDL-70582).
    #[default]
    Unenrol,
    /// `enrol_manual_enrol_users` with `suspend=1`: reversible, keeps the work.
    Suspend,
}

/// The Moodle settings the planner needs (a mirror of `moodle::MoodleSettings` without I/O).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SagaSettings {
    /// MOODLE_ENABLED: when false the saga never calls Moodle.
    pub enabled: bool,
    pub user_match_field: UserMatchField,
    /// MOODLE_COURSE_CATEGORY_ID: where event courses are created.
    pub category_id: i64,
    pub delete_course_on_event_delete: bool,
    pub instructor_role_id: i64,
    pub student_role_id: i64,
    pub removal_mode: RemovalMode,
    /// MOODLE_NEW_USER_AUTH (default `manual`).
    pub new_user_auth: String,
}

impl SagaSettings {
    /// The integration switched off (the default).
    pub fn disabled() -> SagaSettings {
        SagaSettings {
            enabled: false,
            user_match_field: UserMatchField::Email,
            category_id: 1,
            delete_course_on_event_delete: false,
            instructor_role_id: 3,
            student_role_id: 5,
            removal_mode: RemovalMode::Unenrol,
            new_user_auth: "manual".to_string(),
        }
    }

    /// The integration switched on with the defaults, courses created in `category_id`.
    pub fn enabled(category_id: i64) -> SagaSettings {
        SagaSettings {
            enabled: true,
            category_id,
            ..SagaSettings::disabled()
        }
    }

    /// The Moodle role id of an OpenVLE role.
    pub fn role_id(&self, role: Role) -> i64 {
        match role {
            Role::Instructor => self.instructor_role_id,
            Role::Student => self.student_role_id,
        }
    }
}

impl Default for SagaSettings {
    fn default() -> Self {
        SagaSettings::disabled()
    }
}

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

/// Find the event's course by shortname; duplicate the template only if it is absent (the runner
/// always looks first, and adopts a course it finds). When `visible` is false the course is
/// created hidden and the runner records `CourseHidden` right after `CourseDuplicated`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnsureCourse {
    pub shortname: String,
    pub fullname: String,
    pub template_course_id: i64,
    pub category_id: i64,
    pub visible: bool,
    pub cause: Cause,
    /// The duplication announced last and not answered yet (see [`crate::saga::duplication`]).
    pub in_flight: Option<DuplicationStarted>,
}

/// One participant to tie to a Moodle account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserToLink {
    pub participant_id: String,
    /// The value looked up under the match field (the email as given, or the lowercased username).
    pub key: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    /// The username of the account to create when none matches, or why Moodle would refuse
    /// one (then the participant is parked if no account matches).
    pub new_username: Result<String, Refusal>,
    pub cause: Cause,
}

/// Look every participant up in one batch (by `field`), then create the missing ones in one batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkUsers {
    pub field: UserMatchField,
    /// The auth plugin of new accounts.
    pub auth: String,
    pub users: Vec<UserToLink>,
}

/// Enrol (or re-activate) one participant with a role: `enrol_manual_enrol_users` is an upsert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrolItem {
    pub participant_id: String,
    pub moodle_user_id: i64,
    pub role_id: i64,
    pub cause: Cause,
}

/// Take one participant out of the course (unenrol or suspend, per the step's mode).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoveItem {
    pub participant_id: String,
    pub moodle_user_id: i64,
    /// The role recorded for the enrolment (suspending re-sends it: `enrol_manual_enrol_users`
    /// with `suspend=1` needs one, and the recorded one adds nothing).
    pub role_id: i64,
    /// The saga does not know whether the participant is enrolled (an enrol whose outcome was
    /// unknown, a course found again): the runner looks at the course's participants first and
    /// records those absent as unenrolled without a call (suspending someone absent would enrol
    /// them; unenrolling an account that is gone is refused).
    #[serde(default)]
    pub look_first: bool,
    pub cause: Cause,
}

/// A participant Moodle would refuse: recorded as parked without a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParkItem {
    pub participant_id: String,
    pub refusal: Refusal,
    pub cause: Cause,
}

/// One batched step. Each needs at most a handful of calls whatever the number of participants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Step {
    /// Record participants Moodle would refuse (no call).
    ParkParticipants(Vec<ParkItem>),
    EnsureCourse(EnsureCourse),
    LinkUsers(LinkUsers),
    /// All enrolments in one batch (the runner chunks by Moodle's request limits).
    Enrol {
        course_id: i64,
        items: Vec<EnrolItem>,
    },
    /// All removals in one batch.
    Remove {
        course_id: i64,
        mode: RemovalMode,
        items: Vec<RemoveItem>,
    },
    /// `core_course_update_courses(visible)`.
    SetCourseVisible {
        course_id: i64,
        visible: bool,
        cause: Cause,
    },
    /// `core_course_delete_courses`.
    DeleteCourse {
        course_id: i64,
        cause: Cause,
    },
    /// A deleted event (course deletion on) without a recorded course: a creation whose outcome
    /// was never known (or never recorded) may have left one. Look it up by shortname: adopt it
    /// (then `DeleteCourse`), or record `CourseAbsent`.
    /// Record that a deleted event's course is kept (no call).
    KeepCourse {
        course_id: i64,
        cause: Cause,
    },
    FindCourseToDelete {
        shortname: String,
        template_course_id: i64,
        cause: Cause,
        /// A duplication that may still land the course (see [`crate::saga::duplication`]).
        in_flight: Option<DuplicationStarted>,
    },
}

impl Step {
    /// The step's stable name (recorded in `StepFailed` and `Parked`).
    pub fn name(&self) -> &'static str {
        match self {
            Step::ParkParticipants(_) => "park_participants",
            Step::EnsureCourse(_) => "ensure_course",
            Step::LinkUsers(_) => "link_users",
            Step::Enrol { .. } => "enrol",
            Step::Remove {
                mode: RemovalMode::Unenrol,
                ..
            } => "unenrol",
            Step::Remove {
                mode: RemovalMode::Suspend,
                ..
            } => "suspend",
            Step::SetCourseVisible { visible: false, .. } => "hide_course",
            Step::SetCourseVisible { visible: true, .. } => "show_course",
            Step::DeleteCourse { .. } => "delete_course",
            Step::FindCourseToDelete { .. } => "find_course_to_delete",
            Step::KeepCourse { .. } => "keep_course",
        }
    }

    /// The latest domain event behind this step (its `causation_id`).
    pub fn cause(&self) -> Cause {
        let latest = |causes: &mut dyn Iterator<Item = Cause>| {
            causes
                .max_by_key(|c| c.sequence)
                .unwrap_or_else(Cause::none)
        };
        match self {
            Step::ParkParticipants(items) => latest(&mut items.iter().map(|i| i.cause)),
            Step::EnsureCourse(e) => e.cause,
            Step::LinkUsers(l) => latest(&mut l.users.iter().map(|u| u.cause)),
            Step::Enrol { items, .. } => latest(&mut items.iter().map(|i| i.cause)),
            Step::Remove { items, .. } => latest(&mut items.iter().map(|i| i.cause)),
            Step::SetCourseVisible { cause, .. }
            | Step::DeleteCourse { cause, .. }
            | Step::FindCourseToDelete { cause, .. }
            | Step::KeepCourse { cause, .. } => *cause,
        }
    }

    /// How many participants (or courses) the step touches.
    pub fn len(&self) -> usize {
        match self {
            Step::ParkParticipants(items) => items.len(),
            Step::LinkUsers(l) => l.users.len(),
            Step::Enrol { items, .. } => items.len(),
            Step::Remove { items, .. } => items.len(),
            Step::EnsureCourse(_)
            | Step::SetCourseVisible { .. }
            | Step::DeleteCourse { .. }
            | Step::FindCourseToDelete { .. }
            | Step::KeepCourse { .. } => 1,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What the saga should do next for one OpenVLE event. Level-triggered: a pure function of the
/// two folds, so a redelivered or coalesced domain event gives the same plan, and an empty plan
/// means Moodle is as the log says (or a person must act: see `state`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub state: SyncState,
    /// Steps ready now, in the order to run them. Steps that depend on the outcome of an earlier
    /// one (enrolments need the course and the accounts) appear once it is recorded: run the
    /// first step, record its facts, plan again.
    pub steps: Vec<Step>,
}

impl Plan {
    fn none(state: SyncState) -> Plan {
        Plan {
            state,
            steps: Vec::new(),
        }
    }

    /// Nothing to do now.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// The step to run now.
    pub fn next(&self) -> Option<&Step> {
        self.steps.first()
    }
}

/// What the log wants of one participant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Want {
    /// Enrolled, active, with this role id.
    Enrolled(i64),
    /// Not in the course (unenrolled, or suspended).
    Out,
}

/// What the log wants of every participant, current ones first, then the removed ones.
/// Instructors stay enrolled once the event ended (or was deleted and its course kept).
pub(crate) fn wants<'a>(
    desired: &'a Desired,
    settings: &SagaSettings,
) -> Vec<(&'a DesiredParticipant, Want)> {
    let active = desired.status == Status::Deployed;
    let mut wants = Vec::new();
    for p in &desired.participants {
        let want = if active || p.participant.role == Role::Instructor {
            Want::Enrolled(settings.role_id(p.participant.role))
        } else {
            Want::Out
        };
        wants.push((p, want));
    }
    for p in &desired.removed {
        wants.push((p, Want::Out));
    }
    wants
}

/// Plans the next steps for one OpenVLE event.
pub fn plan(desired: &Desired, recorded: &MoodleSync, settings: &SagaSettings) -> Plan {
    if !settings.enabled {
        return Plan::none(SyncState::Disabled);
    }
    if desired.status == Status::NotDeployed {
        return Plan::none(SyncState::InSync);
    }
    let Some(template_course_id) = desired.template_course_id else {
        return Plan::none(SyncState::NotLinked);
    };
    if recorded.parked.is_some() {
        return Plan::none(SyncState::Failed);
    }

    let deleting = desired.status == Status::Deleted;
    let active = desired.status == Status::Deployed;
    let has_course = recorded.course_id.is_some() && !recorded.course_deleted;
    let course_id = recorded.course_id.filter(|_| has_course);
    let mut steps = Vec::new();

    // The setting as it was when the event was deleted decides, once: a kept course stays kept.
    if deleting && settings.delete_course_on_event_delete && !recorded.course_kept {
        if let Some(course_id) = course_id {
            steps.push(Step::DeleteCourse {
                course_id,
                cause: desired.status_cause(),
            });
        } else if recorded.course_id.is_none() && !recorded.course_deleted {
            // Never recorded, or lost: a creation whose answer was lost may have made it.
            steps.push(Step::FindCourseToDelete {
                shortname: desired.shortname(),
                template_course_id,
                cause: desired.status_cause(),
                in_flight: recorded.duplication,
            });
        }
        return finish(steps, false);
    }
    // A deleted event whose course never existed (or is gone) needs nothing. Otherwise a
    // deleted event keeps its course as an ended one: hidden, instructors only; that it is kept
    // is recorded first.
    if deleting && course_id.is_none() {
        return finish(steps, false);
    }
    if let (true, Some(course_id), false) = (deleting, course_id, recorded.course_kept) {
        steps.push(Step::KeepCourse {
            course_id,
            cause: desired.status_cause(),
        });
        return finish(steps, false);
    }

    // What each participant should be.
    let wants = wants(desired, settings);

    let empty = RecordedParticipant::default();
    let mut parks = Vec::new();
    let mut links = Vec::new();
    let mut enrols = Vec::new();
    let mut removals = Vec::new();
    let mut blocked_by_park = false;

    for (p, want) in wants {
        let id = &p.participant.id;
        let r = recorded.participant(id).unwrap_or(&empty);
        let satisfied = match want {
            Want::Enrolled(role) => {
                has_course
                    && r.enrolment == Some(EnrolmentState::Enrolled)
                    && r.role_id == Some(role)
            }
            // Out only when known to be out: an enrol whose outcome was unknown (recorded as a
            // failure, not `Enrolled`) may have enrolled them, so anyone linked is acted on.
            Want::Out => {
                !has_course
                    || r.moodle_user_id.is_none()
                    || matches!(
                        r.enrolment,
                        Some(EnrolmentState::Unenrolled) | Some(EnrolmentState::Suspended)
                    )
            }
        };
        if satisfied {
            continue;
        }
        if r.parked.is_some() {
            blocked_by_park = true;
            continue;
        }
        match want {
            Want::Enrolled(role_id) => match r.moodle_user_id {
                Some(moodle_user_id) => {
                    if course_id.is_some() {
                        enrols.push(EnrolItem {
                            participant_id: id.clone(),
                            moodle_user_id,
                            role_id,
                            cause: p.cause,
                        });
                    }
                }
                None => match link_item(p, settings) {
                    Ok(item) => links.push(item),
                    Err(park) => parks.push(park),
                },
            },
            Want::Out => {
                if let Some(moodle_user_id) = r.moodle_user_id {
                    // The cause: the removal, or the end for a student still enrolled.
                    let cause = if desired.participant(id).is_some() {
                        desired.status_cause()
                    } else {
                        p.cause
                    };
                    removals.push(RemoveItem {
                        participant_id: id.clone(),
                        moodle_user_id,
                        role_id: r
                            .role_id
                            .unwrap_or_else(|| settings.role_id(p.participant.role)),
                        look_first: r.enrolment != Some(EnrolmentState::Enrolled),
                        cause,
                    });
                }
            }
        }
    }

    if !parks.is_empty() {
        steps.push(Step::ParkParticipants(parks));
    }
    if course_id.is_none() {
        steps.push(Step::EnsureCourse(EnsureCourse {
            shortname: desired.shortname(),
            fullname: desired.name.clone(),
            template_course_id,
            category_id: settings.category_id,
            visible: active,
            cause: desired.deployed.unwrap_or_else(|| desired.status_cause()),
            in_flight: recorded.duplication,
        }));
    }
    if !links.is_empty() {
        steps.push(Step::LinkUsers(LinkUsers {
            field: settings.user_match_field,
            auth: settings.new_user_auth.clone(),
            users: links,
        }));
    }
    if let Some(course_id) = course_id {
        if !enrols.is_empty() {
            steps.push(Step::Enrol {
                course_id,
                items: enrols,
            });
        }
        // Students out first, then hide: the course stays reachable while the batch runs.
        if !removals.is_empty() {
            steps.push(Step::Remove {
                course_id,
                mode: settings.removal_mode,
                items: removals,
            });
        }
        if recorded.course_visible != Some(active) {
            steps.push(Step::SetCourseVisible {
                course_id,
                visible: active,
                cause: desired.status_cause(),
            });
        }
    }
    finish(steps, blocked_by_park)
}

fn finish(steps: Vec<Step>, blocked_by_park: bool) -> Plan {
    let state = if blocked_by_park {
        SyncState::Failed
    } else if steps.is_empty() {
        SyncState::InSync
    } else {
        SyncState::Pending
    };
    Plan { state, steps }
}

/// The link item of a participant, or their parking when Moodle would refuse even the look-up
/// (a bad username under `user_match_field = username` fails the whole look-up batch) or any
/// account for them (a bad email fails a look-up by email and every creation batch).
fn link_item(p: &DesiredParticipant, settings: &SagaSettings) -> Result<UserToLink, ParkItem> {
    let participant = &p.participant;
    let park = |refusal| ParkItem {
        participant_id: participant.id.clone(),
        refusal,
        cause: p.cause,
    };
    check_email(&participant.email).map_err(park)?;
    let new_username = moodle_username(participant);
    let key = match settings.user_match_field {
        UserMatchField::Email => participant.email.clone(),
        UserMatchField::Username => match &new_username {
            Ok(username) => username.clone(),
            Err(refusal) => {
                return Err(ParkItem {
                    participant_id: participant.id.clone(),
                    refusal: refusal.clone(),
                    cause: p.cause,
                })
            }
        },
    };
    debug_assert!(
        settings.user_match_field == UserMatchField::Email || check_username(&key).is_ok()
    );
    Ok(UserToLink {
        participant_id: participant.id.clone(),
        key,
        email: participant.email.clone(),
        first_name: participant.first_name.clone(),
        last_name: participant.last_name.clone(),
        new_username,
        cause: p.cause,
    })
}
