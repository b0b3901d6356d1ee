//! A stand-in for the saga's runner and Moodle, for tests of the rules: every step succeeds,
//! and its facts are what a runner would record.

use cqrs_es::Aggregate;
use uuid::Uuid;

use domain::moodle_sync::{LinkKey, LinkKind, MoodleSync, MoodleSyncEvent};

use crate::saga::{plan, Desired, RemovalMode, SagaSettings, Step};

/// The course id every duplication gets.
pub(crate) const COURSE_ID: i64 = 100;

/// The facts a runner records when `step` succeeds.
pub(crate) fn facts_of(step: &Step) -> Vec<MoodleSyncEvent> {
    let nil = Uuid::nil();
    match step {
        Step::ParkParticipants(items) => items
            .iter()
            .map(|i| MoodleSyncEvent::ParticipantParked {
                participant_id: i.participant_id.clone(),
                code: i.refusal.code.clone(),
                reason: i.refusal.reason.clone(),
                caused_by: i.cause.event_id,
            })
            .collect(),
        Step::EnsureCourse(e) => {
            let mut v = vec![MoodleSyncEvent::CourseDuplicated {
                course_id: COURSE_ID,
                shortname: e.shortname.clone(),
                template_course_id: e.template_course_id,
                category_id: e.category_id,
                adopted: false,
                caused_by: nil,
            }];
            v.push(MoodleSyncEvent::CourseUpdated {
                course_id: COURSE_ID,
                props: domain::moodle_sync::CourseProps {
                    fullname: Some(e.fullname.clone()),
                    ..Default::default()
                },
                caused_by: nil,
            });
            if !e.visible {
                v.push(MoodleSyncEvent::CourseHidden {
                    course_id: COURSE_ID,
                    caused_by: nil,
                });
            }
            v
        }
        Step::LinkUsers(l) => l
            .users
            .iter()
            .map(|u| match &u.new_username {
                Ok(username) => MoodleSyncEvent::UserLinked {
                    differs: None,
                    key: Some(LinkKey {
                        field: l.field,
                        value: u.key.clone(),
                    }),
                    participant_id: u.participant_id.clone(),
                    moodle_user_id: 1000 + u.participant_id.len() as i64,
                    username: username.name.clone(),
                    how: LinkKind::Created,
                    caused_by: nil,
                },
                Err(refusal) => MoodleSyncEvent::ParticipantParked {
                    participant_id: u.participant_id.clone(),
                    code: refusal.code.clone(),
                    reason: refusal.reason.clone(),
                    caused_by: u.cause.event_id,
                },
            })
            .collect(),
        Step::Enrol { items, .. } => items
            .iter()
            .map(|i| MoodleSyncEvent::Enrolled {
                participant_id: i.participant_id.clone(),
                moodle_user_id: i.moodle_user_id,
                role_id: i.role_id,
                caused_by: nil,
            })
            .collect(),
        Step::UnassignRoles { items, .. } => items
            .iter()
            .map(|i| MoodleSyncEvent::RoleUnassigned {
                participant_id: i.participant_id.clone(),
                moodle_user_id: i.moodle_user_id,
                role_id: i.role_id,
                caused_by: nil,
            })
            .collect(),
        Step::UpdateAccounts(items) => items
            .iter()
            .map(|i| MoodleSyncEvent::AccountUpdated {
                participant_id: i.participant_id.clone(),
                moodle_user_id: i.moodle_user_id,
                caused_by: i.change.event_id,
            })
            .collect(),
        Step::Remove { mode, items, .. } => items
            .iter()
            .map(|i| match mode {
                RemovalMode::Unenrol => MoodleSyncEvent::Unenrolled {
                    participant_id: i.participant_id.clone(),
                    moodle_user_id: i.moodle_user_id,
                    caused_by: nil,
                },
                RemovalMode::Suspend => MoodleSyncEvent::Suspended {
                    participant_id: i.participant_id.clone(),
                    moodle_user_id: i.moodle_user_id,
                    caused_by: nil,
                },
            })
            .collect(),
        Step::UpdateCourse {
            course_id, props, ..
        } => vec![MoodleSyncEvent::CourseUpdated {
            course_id: *course_id,
            props: props.clone(),
            caused_by: nil,
        }],
        Step::KeepCourse { course_id, .. } => vec![MoodleSyncEvent::CourseKept {
            course_id: *course_id,
            caused_by: nil,
        }],
        Step::SetCourseVisible {
            course_id, visible, ..
        } => vec![if *visible {
            MoodleSyncEvent::CourseShown {
                course_id: *course_id,
                caused_by: nil,
            }
        } else {
            MoodleSyncEvent::CourseHidden {
                course_id: *course_id,
                caused_by: nil,
            }
        }],
        Step::DeleteCourse { course_id, .. } => vec![MoodleSyncEvent::CourseDeleted {
            course_id: *course_id,
            caused_by: nil,
        }],
        Step::FindCourseToDelete { shortname, .. } => vec![MoodleSyncEvent::CourseAbsent {
            shortname: shortname.clone(),
            caused_by: nil,
        }],
    }
}

/// Runs the plan's first step and records its facts. Returns the step run, or None once the
/// plan is empty.
pub(crate) fn step_once(d: &Desired, r: &mut MoodleSync, s: &SagaSettings) -> Option<Step> {
    let step = plan(d, r, s).next()?.clone();
    for f in facts_of(&step) {
        r.check(&f).expect("a fact the record accepts");
        r.apply(f);
    }
    Some(step)
}
