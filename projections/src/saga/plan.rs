//! The planner: (desired, recorded, settings) → the next batched Moodle steps, made of what
//! [`outstanding`](super::outstanding()) lists.

use serde::{Deserialize, Serialize};

use domain::event::Status;
use domain::moodle_sync::{EnrolmentState, MoodleSync, RecordedParticipant};

use super::course;
use super::desired::{Desired, DesiredParticipant};
use super::outstanding::{
    account_update_due, known_out, link_is_stale, outstanding, CourseWork, Outstanding, SyncState,
    Want,
};
use super::settings::{SagaSettings, UserMatchField};
use super::username::{check_email, check_username, new_username, Refusal};

pub use super::step::*;

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
    /// When to plan again though nothing happens (ms): the start of an `at_start` event.
    #[serde(default)]
    pub wake_at_ms: Option<i64>,
}

impl Plan {
    fn none(state: SyncState) -> Plan {
        Plan {
            state,
            steps: Vec::new(),
            wake_at_ms: None,
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
        wake_at_ms: out.wake_at_ms,
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
                shortname: recorded
                    .duplication
                    .and(recorded.duplicating_as.clone())
                    .unwrap_or_else(|| desired.shortname()),
                template_course_id,
                idnumber: course::target(desired, settings).props.idnumber,
                shaped: desired.course.is_some(),
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
    let mut unassigns = Vec::new();
    let mut updates = Vec::new();

    for c in out.participants.iter().filter(|c| c.is_actionable()) {
        let p = c.desired;
        let id = &p.participant.id;
        let r = c.recorded.unwrap_or(&empty);
        match c.want {
            Want::Enrolled(role_id) => match r.moodle_user_id {
                // Added again as someone else and the old account still possibly in: it leaves
                // first, then they are linked again (below, once it is out).
                Some(moodle_user_id)
                    if link_is_stale(p, r, settings) && !known_out(r, course_id.is_some()) =>
                {
                    removals.push(RemoveItem {
                        participant_id: id.clone(),
                        moodle_user_id,
                        role_id: r.role_id.unwrap_or(role_id),
                        look_first: r.enrolment != Some(EnrolmentState::Enrolled),
                        cause: p.cause,
                    });
                }
                Some(moodle_user_id) if !link_is_stale(p, r, settings) => {
                    let enrolled =
                        r.enrolment == Some(EnrolmentState::Enrolled) && r.role_id == Some(role_id);
                    if course_id.is_some() && !enrolled {
                        enrols.push(EnrolItem {
                            participant_id: id.clone(),
                            moodle_user_id,
                            role_id,
                            cause: p.cause,
                        });
                    } else if course_id.is_some() {
                        // The new role is held: take away the ones they no longer have.
                        unassigns.extend(r.extra_roles.iter().map(|&old| UnassignItem {
                            participant_id: id.clone(),
                            moodle_user_id,
                            role_id: old,
                            cause: p.cause,
                        }));
                    }
                    if account_update_due(p, r, settings) {
                        let q = &p.participant;
                        updates.push(UpdateItem {
                            participant_id: id.clone(),
                            moodle_user_id,
                            first_name: q.first_name.clone(),
                            last_name: q.last_name.clone(),
                            email: q.email.clone(),
                            idnumber: q.idnumber.clone(),
                            change: p.account_change.unwrap_or(p.cause),
                            cause: p.cause,
                        });
                    }
                }
                // Not linked, or linked stale and out: link by the data they have.
                _ => match link_item(p, settings) {
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
        let wanted = course::target(desired, settings);
        steps.push(Step::EnsureCourse(EnsureCourse {
            // A duplication announced under an earlier name is found by that name.
            shortname: recorded
                .duplication
                .and(recorded.duplicating_as.clone())
                .unwrap_or(wanted.shortname),
            fullname: wanted.fullname,
            template_course_id,
            category_id: wanted.create_in,
            visible: active && wanted.visible.unwrap_or(false),
            idnumber: wanted.props.idnumber,
            shaped: desired.course.is_some(),
            cause: desired.deployed.unwrap_or_else(|| desired.status_cause()),
            in_flight: recorded.duplication,
        }));
    }
    if let (Some(course_id), Some(props)) = (course_id, &out.course_update) {
        steps.push(Step::UpdateCourse {
            course_id,
            props: props.clone(),
            cause: desired.course_cause(),
        });
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
    if !updates.is_empty() {
        steps.push(Step::UpdateAccounts(updates));
    }
    if let Some(course_id) = course_id {
        if !enrols.is_empty() {
            steps.push(Step::Enrol {
                course_id,
                items: enrols,
            });
        }
        if !unassigns.is_empty() {
            steps.push(Step::UnassignRoles {
                course_id,
                items: unassigns,
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
