//! The planner: (desired, recorded, settings) → the next batched Moodle steps, made of what
//! [`outstanding`](super::outstanding()) lists.

use serde::{Deserialize, Serialize};

use domain::event::Status;
use domain::moodle_sync::{DuplicationStarted, EnrolmentState, MoodleSync, RecordedParticipant};

use super::desired::{Cause, Desired, DesiredParticipant};
use super::outstanding::{outstanding, CourseWork, Outstanding, SyncState, Want};
use super::settings::{
    NewUserPassword, RemovalMode, SagaSettings, UserMatchField, UsernameCollision,
};
use super::username::{check_email, check_username, new_username, NewUsername, Refusal};

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
    /// The value looked up under the match field: what OpenVLE sent ([`UserMatchField::key_of`]),
    /// never a value the engine derived.
    pub key: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    /// Given to a new account.
    #[serde(default)]
    pub idnumber: Option<String>,
    /// The username of the account to create when none matches, or why Moodle would refuse
    /// one (then the participant is parked if no account matches).
    pub new_username: Result<NewUsername, Refusal>,
    pub cause: Cause,
}

/// Look every participant up in one batch (by `field`), then create the missing ones in one batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkUsers {
    pub field: UserMatchField,
    /// The auth plugin of new accounts.
    pub auth: String,
    /// Whether Moodle mails new accounts a password.
    #[serde(default)]
    pub password: NewUserPassword,
    /// A derived username another account holds.
    #[serde(default)]
    pub collision: UsernameCollision,
    pub users: Vec<UserToLink>,
}

impl LinkUsers {
    /// Whether new accounts get `createpassword` (Moodle makes a password and mails it): with
    /// MOODLE_NEW_USER_PASSWORD=email, for auth plugins whose passwords Moodle keeps.
    pub fn createpassword(&self) -> bool {
        self.password == NewUserPassword::Email && domain::settings::is_internal_auth(&self.auth)
    }
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
    /// Record that a deleted event's course is kept (no call).
    KeepCourse {
        course_id: i64,
        cause: Cause,
    },
    /// A deleted event (course deletion on) without a recorded course: a creation whose outcome
    /// was never known (or never recorded) may have left one. Look it up by shortname: adopt it
    /// (then `DeleteCourse`), or record `CourseAbsent`.
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

/// Plans the next steps for one OpenVLE event: the [`outstanding`] changes as batched steps.
pub fn plan(desired: &Desired, recorded: &MoodleSync, settings: &SagaSettings) -> Plan {
    let out = outstanding(desired, recorded, settings);
    let state = out.state();
    if out.not_compared.is_some() || out.saga_parked {
        return Plan::none(state);
    }
    Plan {
        state,
        steps: steps(&out, desired, recorded, settings),
    }
}

fn steps(
    out: &Outstanding<'_>,
    desired: &Desired,
    recorded: &MoodleSync,
    settings: &SagaSettings,
) -> Vec<Step> {
    let Some(template_course_id) = desired.template_course_id else {
        return Vec::new();
    };
    // The course's fate once the event is deleted comes first, alone: what else is planned
    // depends on it.
    match out.course {
        Some(CourseWork::Delete(course_id)) => {
            return vec![Step::DeleteCourse {
                course_id,
                cause: desired.status_cause(),
            }]
        }
        Some(CourseWork::FindToDelete) => {
            return vec![Step::FindCourseToDelete {
                shortname: desired.shortname(),
                template_course_id,
                cause: desired.status_cause(),
                in_flight: recorded.duplication,
            }]
        }
        Some(CourseWork::Keep(course_id)) => {
            return vec![Step::KeepCourse {
                course_id,
                cause: desired.status_cause(),
            }]
        }
        Some(CourseWork::Ensure) | None => {}
    }

    let active = desired.status == Status::Deployed;
    let course_id = recorded.course_id.filter(|_| !recorded.course_deleted);
    let empty = RecordedParticipant::default();
    let mut steps = Vec::new();
    let mut parks = Vec::new();
    let mut links = Vec::new();
    let mut enrols = Vec::new();
    let mut removals = Vec::new();

    for c in out.participants.iter().filter(|c| c.is_actionable()) {
        let p = c.desired;
        let id = &p.participant.id;
        let r = c.recorded.unwrap_or(&empty);
        match c.want {
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
    if out.course == Some(CourseWork::Ensure) {
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
            password: settings.new_user_password,
            collision: settings.username_collision,
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
        if let Some(visible) = out.visibility {
            steps.push(Step::SetCourseVisible {
                course_id,
                visible,
                cause: desired.status_cause(),
            });
        }
    }
    steps
}

/// The link item of a participant, or their parking: when OpenVLE sent no value for the match
/// field (never replaced by a derived one: that could be another person's account), when Moodle
/// would refuse even the look-up (a bad username under username matching fails the whole
/// look-up batch), or any account for them (a bad email fails every creation batch).
fn link_item(p: &DesiredParticipant, settings: &SagaSettings) -> Result<UserToLink, ParkItem> {
    let participant = &p.participant;
    let field = settings.user_match_field;
    let park = |refusal| ParkItem {
        participant_id: participant.id.clone(),
        refusal,
        cause: p.cause,
    };
    check_email(&participant.email).map_err(park)?;
    let key = field
        .key_of(participant)
        .ok_or_else(|| park(Refusal::required(field)))?;
    if field == UserMatchField::Username {
        check_username(&key).map_err(park)?;
    }
    Ok(UserToLink {
        participant_id: participant.id.clone(),
        key,
        email: participant.email.clone(),
        first_name: participant.first_name.clone(),
        last_name: participant.last_name.clone(),
        idnumber: participant.idnumber.clone(),
        new_username: new_username(participant, field, settings.username_source),
        cause: p.cause,
    })
}
