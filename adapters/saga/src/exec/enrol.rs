//! `Enrol` and `Remove`: enrolments in batches (`enrol_manual_enrol_users` is an upsert;
//! removal unenrols or suspends per `removal_mode`), each refused item isolated by
//! [`bisect`](super::bisect) and parked alone, after checking once that the course itself still
//! exists (Moodle refuses every item alike when it does not).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};

use domain::moodle_sync::MoodleSyncEvent;
use moodle::{CourseField, EnrolledFilter, Enrolment, MoodleClient, MoodleError, Unenrolment};
use projections::saga::{EnrolItem, Failure, RemovalMode, RemoveItem};

use super::bisect::{bisect, Refused, Settled};
use super::{failure_of, item_specific, Outcome};

/// Moodle answers `invalidparameter` for every item when the course itself is gone: check once
/// (per batch: `checked`) before blaming participants one by one. The failure that stops the
/// batch, if the course is gone or cannot be looked at.
async fn course_gone(
    client: &MoodleClient,
    course_id: i64,
    checked: &AtomicBool,
) -> Option<Failure> {
    if checked.swap(true, Ordering::Relaxed) {
        return None;
    }
    match client
        .get_courses_by_field(CourseField::Id, &course_id.to_string())
        .await
    {
        Ok(courses) if courses.iter().any(|c| c.id == course_id) => None,
        Ok(_) => Some(Failure::permanent(
            "course_gone",
            format!(
                "course {course_id} no longer exists in Moodle (deleted by hand?): run reconcile to recreate it, then resume"
            ),
        )),
        Err(e) => Some(failure_of(&e)),
    }
}

/// How a batched enrolment call's error is judged: one item's fault (split), unless the course
/// is gone; anything else stops the batch.
async fn judge(
    client: &MoodleClient,
    course_id: i64,
    checked: &AtomicBool,
    result: Result<(), MoodleError>,
) -> Result<(), Refused<MoodleError, Failure>> {
    match result {
        Ok(()) => Ok(()),
        Err(e) if item_specific(&e) => match course_gone(client, course_id, checked).await {
            Some(gone) => Err(Refused::Stop(gone)),
            None => Err(Refused::Item(e)),
        },
        Err(e) => Err(Refused::Stop(failure_of(&e))),
    }
}

/// Enrols a batch; isolates refused items by splitting.
pub(super) async fn enrol(
    client: &MoodleClient,
    course_id: i64,
    batch: &[EnrolItem],
    out: &mut Outcome,
) {
    let checked = AtomicBool::new(false);
    let checked = &checked;
    let done = bisect(
        batch,
        |part: &[EnrolItem]| {
            let items: Vec<Enrolment> = part
                .iter()
                .map(|i| Enrolment {
                    user_id: i.moodle_user_id,
                    course_id,
                    role_id: i.role_id,
                    suspend: false,
                })
                .collect();
            async move {
                let result = client.enrol_users(&items).await;
                judge(client, course_id, checked, result).await
            }
        },
        |i: &EnrolItem, e: MoodleError| std::future::ready(Ok::<_, Failure>(enrol_refused(i, &e))),
    )
    .await;
    for settled in done.settled {
        match settled {
            Settled::Accepted(part, ()) => {
                for i in part {
                    out.facts.push(MoodleSyncEvent::Enrolled {
                        participant_id: i.participant_id.clone(),
                        moodle_user_id: i.moodle_user_id,
                        role_id: i.role_id,
                        caused_by: i.cause.event_id,
                    });
                }
            }
            Settled::Isolated(_, facts) => out.facts.extend(facts),
        }
    }
    if let Some(f) = done.stopped {
        out.fail(f);
    }
}

/// The facts of one enrolment Moodle refused: the participant parked, and its link dropped when
/// the account is gone.
fn enrol_refused(i: &EnrolItem, e: &MoodleError) -> Vec<MoodleSyncEvent> {
    let mut facts = Vec::with_capacity(2);
    if e.is_missing_user() {
        // "User ID does not exist or is deleted" (5.1: a missing record): stale link.
        facts.push(MoodleSyncEvent::UserLinkLost {
            participant_id: i.participant_id.clone(),
            moodle_user_id: i.moodle_user_id,
            caused_by: i.cause.event_id,
        });
    }
    facts.push(MoodleSyncEvent::ParticipantParked {
        participant_id: i.participant_id.clone(),
        code: e.code(),
        reason: format!(
            "Moodle refused to enrol user {} with role {} ({}); resume to match the \
             participant again",
            i.moodle_user_id,
            i.role_id,
            e.errorcode().unwrap_or("invalid input")
        ),
        caused_by: i.cause.event_id,
    });
    facts
}

/// Unenrols or suspends a batch; isolates refused items by splitting.
pub(super) async fn remove(
    client: &MoodleClient,
    course_id: i64,
    mode: RemovalMode,
    batch: &[RemoveItem],
    out: &mut Outcome,
) {
    let checked = AtomicBool::new(false);
    let checked = &checked;
    // Participants the saga does not know to be enrolled: look at the course first, and record
    // those absent as unenrolled without a call (suspending them would enrol them; unenrolling
    // an account that is gone is refused).
    let mut acting: Vec<RemoveItem> = batch.to_vec();
    if batch.iter().any(|i| i.look_first) {
        let enrolled = match client
            .get_enrolled_users(course_id, EnrolledFilter::All)
            .await
        {
            Ok(users) => users,
            Err(e) => {
                if item_specific(&e) || e.is_missing_course() {
                    if let Some(gone) = course_gone(client, course_id, checked).await {
                        return out.fail(gone);
                    }
                }
                return out.fail(failure_of(&e));
            }
        };
        let ids: HashSet<i64> = enrolled.iter().map(|u| u.id).collect();
        acting.retain(|i| {
            if !i.look_first || ids.contains(&i.moodle_user_id) {
                return true;
            }
            out.facts.push(unenrolled(i));
            false
        });
    }
    let done = bisect(
        acting.as_slice(),
        |part: &[RemoveItem]| {
            // Only the list the mode sends is built.
            let (unenrol, suspend): (Vec<Unenrolment>, Vec<Enrolment>) = match mode {
                RemovalMode::Unenrol => (
                    part.iter()
                        .map(|i| Unenrolment {
                            user_id: i.moodle_user_id,
                            course_id,
                        })
                        .collect(),
                    Vec::new(),
                ),
                RemovalMode::Suspend => (
                    Vec::new(),
                    part.iter()
                        .map(|i| Enrolment {
                            user_id: i.moodle_user_id,
                            course_id,
                            role_id: i.role_id,
                            suspend: true,
                        })
                        .collect(),
                ),
            };
            async move {
                let result = match mode {
                    RemovalMode::Unenrol => client.unenrol_users(&unenrol).await,
                    RemovalMode::Suspend => client.enrol_users(&suspend).await,
                };
                judge(client, course_id, checked, result).await
            }
        },
        |i: &RemoveItem, e: MoodleError| {
            std::future::ready(Ok::<_, Failure>(MoodleSyncEvent::ParticipantParked {
                participant_id: i.participant_id.clone(),
                code: e.code(),
                reason: format!(
                    "Moodle refused to remove user {} from course {course_id} ({})",
                    i.moodle_user_id,
                    e.errorcode().unwrap_or("invalid input")
                ),
                caused_by: i.cause.event_id,
            }))
        },
    )
    .await;
    for settled in done.settled {
        match settled {
            Settled::Accepted(part, ()) => {
                for i in part {
                    out.facts.push(match mode {
                        RemovalMode::Unenrol => unenrolled(i),
                        RemovalMode::Suspend => MoodleSyncEvent::Suspended {
                            participant_id: i.participant_id.clone(),
                            moodle_user_id: i.moodle_user_id,
                            caused_by: i.cause.event_id,
                        },
                    });
                }
            }
            Settled::Isolated(_, fact) => out.facts.push(fact),
        }
    }
    if let Some(f) = done.stopped {
        out.fail(f);
    }
}

fn unenrolled(i: &RemoveItem) -> MoodleSyncEvent {
    MoodleSyncEvent::Unenrolled {
        participant_id: i.participant_id.clone(),
        moodle_user_id: i.moodle_user_id,
        caused_by: i.cause.event_id,
    }
}
