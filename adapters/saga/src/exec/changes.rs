//! What follows a `ParticipantChanged`: `UnassignRoles` (a role the participant no longer has,
//! taken away once the new one is given) and `UpdateAccounts` (changed names, email and idnumber
//! written to the account under MOODLE_UPDATE_ACCOUNTS). Each batched, a refused item isolated
//! by [`bisect`](super::bisect) and parked alone.

use domain::moodle_sync::MoodleSyncEvent;
use moodle::{MoodleClient, MoodleError, RoleUnassignment, UserUpdate};
use projections::saga::{Failure, UnassignItem, UpdateItem};

use super::bisect::{bisect, Bisected, Settled};
use super::{judged, Outcome};

fn parked(
    participant_id: &str,
    cause: uuid::Uuid,
    what: String,
    e: &MoodleError,
) -> MoodleSyncEvent {
    MoodleSyncEvent::ParticipantParked {
        participant_id: participant_id.to_string(),
        code: e.code(),
        reason: format!(
            "Moodle refused to {what} ({}); correct it in Moodle or OpenVLE, then resume",
            e.errorcode().unwrap_or("invalid input")
        ),
        caused_by: cause,
    }
}

pub(super) async fn unassign_roles(
    client: &MoodleClient,
    course_id: i64,
    batch: &[UnassignItem],
    out: &mut Outcome,
) {
    let done = bisect(
        batch,
        |part: &[UnassignItem]| {
            let items: Vec<RoleUnassignment> = part
                .iter()
                .map(|i| RoleUnassignment {
                    role_id: i.role_id,
                    user_id: i.moodle_user_id,
                    course_id,
                })
                .collect();
            async move { judged(client.unassign_roles(&items).await) }
        },
        |i: &UnassignItem, e: MoodleError| {
            let what = format!(
                "take role {} from user {} in course {course_id}",
                i.role_id, i.moodle_user_id
            );
            std::future::ready(Ok::<_, Failure>(parked(
                &i.participant_id,
                i.cause.event_id,
                what,
                &e,
            )))
        },
    )
    .await;
    record(done, out, |i| MoodleSyncEvent::RoleUnassigned {
        participant_id: i.participant_id.clone(),
        moodle_user_id: i.moodle_user_id,
        role_id: i.role_id,
        caused_by: i.cause.event_id,
    });
}

pub(super) async fn update_accounts(
    client: &MoodleClient,
    batch: &[UpdateItem],
    out: &mut Outcome,
) {
    let done = bisect(
        batch,
        |part: &[UpdateItem]| {
            let users: Vec<UserUpdate> = part
                .iter()
                .map(|i| UserUpdate {
                    id: i.moodle_user_id,
                    firstname: Some(i.first_name.clone()),
                    lastname: Some(i.last_name.clone()),
                    email: Some(i.email.clone()),
                    idnumber: i.idnumber.clone(),
                })
                .collect();
            async move { judged(client.update_users(&users).await) }
        },
        |i: &UpdateItem, e: MoodleError| {
            let what = format!(
                "update account {} (the email {} may belong to another account)",
                i.moodle_user_id, i.email
            );
            std::future::ready(Ok::<_, Failure>(parked(
                &i.participant_id,
                i.cause.event_id,
                what,
                &e,
            )))
        },
    )
    .await;
    record(done, out, |i| MoodleSyncEvent::AccountUpdated {
        participant_id: i.participant_id.clone(),
        moodle_user_id: i.moodle_user_id,
        caused_by: i.change.event_id,
    });
}

/// Records what a bisected batch established: `fact` of each accepted item, the park of each
/// refused one, and the failure that stopped it.
fn record<T>(
    done: Bisected<'_, T, (), MoodleSyncEvent, Failure>,
    out: &mut Outcome,
    fact: impl Fn(&T) -> MoodleSyncEvent,
) {
    for settled in done.settled {
        match settled {
            Settled::Accepted(part, ()) => out.facts.extend(part.iter().map(&fact)),
            Settled::Isolated(_, park) => out.facts.push(park),
        }
    }
    if let Some(f) = done.stopped {
        out.fail(f);
    }
}
