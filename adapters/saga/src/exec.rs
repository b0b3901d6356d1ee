//! Running one planned step against Moodle and turning what Moodle now holds into facts.
//!
//! Every function returns the facts established so far *and* the failure that stopped it, so a
//! batch that half succeeded is recorded before the failure is handled.

use std::collections::HashMap;

use domain::moodle_sync::{LinkKind, MoodleSyncEvent};
use moodle::{
    CourseField, CourseUpdate, EnrolledFilter, Enrolment, MoodleClient, MoodleError, NewUser,
    Unenrolment, UserField,
};
use projections::saga::{
    EnrolItem, LinkUsers, NoCourseYet, RemovalMode, RemoveItem, Step, UserMatchField, UserToLink,
};

use crate::SagaConfig;

mod course;

use course::{adopted_course, ensure_course, waiting_reason};
pub(crate) use course::{find_course, StepContext};

/// Why a step stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub code: String,
    pub message: String,
    pub transient: bool,
    pub participant_id: Option<String>,
}

impl Failure {
    pub fn of(e: &MoodleError) -> Failure {
        Failure {
            code: e.code(),
            message: e.to_string(),
            transient: e.is_transient(),
            participant_id: None,
        }
    }

    fn permanent(code: &str, message: String) -> Failure {
        Failure {
            code: code.to_string(),
            message,
            transient: false,
            participant_id: None,
        }
    }
}

/// What a step established, and what stopped it (if anything did).
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub facts: Vec<MoodleSyncEvent>,
    pub failure: Option<Failure>,
    /// Nothing failed, but the step cannot go on before this time (ms), for this reason: a
    /// duplication announced earlier may still be running in Moodle.
    pub wait_until: Option<(i64, String)>,
}

impl Outcome {
    fn fail(&mut self, f: Failure) {
        if self.failure.is_none() {
            self.failure = Some(f);
        }
    }
}

/// Whether a refusal of a whole batch may come from one item (then the batch is split to find
/// it); anything else (permissions, a missing course, a missing enrolment instance, …) concerns
/// every item and parks the event.
fn item_specific(e: &MoodleError) -> bool {
    // Read by the client from the errorcode and the function called (4.4 and 5.1 alike).
    e.is_item_refusal()
}

pub(crate) async fn run_step(
    client: &MoodleClient,
    cfg: &SagaConfig,
    ctx: &StepContext,
    step: &Step,
) -> Outcome {
    let mut out = Outcome::default();
    match step {
        Step::ParkParticipants(items) => {
            for i in items {
                out.facts.push(MoodleSyncEvent::ParticipantParked {
                    participant_id: i.participant_id.clone(),
                    code: i.refusal.code.clone(),
                    reason: i.refusal.reason.clone(),
                    caused_by: i.cause.event_id,
                });
            }
        }
        Step::EnsureCourse(e) => ensure_course(client, ctx, e, &mut out).await,
        Step::KeepCourse { course_id, cause } => out.facts.push(MoodleSyncEvent::CourseKept {
            course_id: *course_id,
            caused_by: cause.event_id,
        }),
        Step::LinkUsers(l) => link_users(client, cfg, l, &mut out).await,
        Step::Enrol { course_id, items } => {
            for chunk in items.chunks(cfg.enrol_batch.max(1)) {
                enrol(client, *course_id, chunk, &mut out).await;
                if out.failure.is_some() {
                    break;
                }
            }
        }
        Step::Remove {
            course_id,
            mode,
            items,
        } => {
            for chunk in items.chunks(cfg.enrol_batch.max(1)) {
                remove(client, *course_id, *mode, chunk, &mut out).await;
                if out.failure.is_some() {
                    break;
                }
            }
        }
        Step::SetCourseVisible {
            course_id,
            visible,
            cause,
        } => {
            let update = CourseUpdate {
                id: *course_id,
                visible: Some(*visible),
                fullname: None,
                idnumber: None,
            };
            match client.update_courses(&[update]).await {
                Ok(warnings) if warnings.is_empty() => out.facts.push(if *visible {
                    MoodleSyncEvent::CourseShown {
                        course_id: *course_id,
                        caused_by: cause.event_id,
                    }
                } else {
                    MoodleSyncEvent::CourseHidden {
                        course_id: *course_id,
                        caused_by: cause.event_id,
                    }
                }),
                Ok(warnings) => {
                    let w = &warnings[0];
                    out.fail(Failure::permanent(
                        &w.warningcode,
                        format!(
                            "Moodle did not change the visibility of course {course_id}: {} ({}){}",
                            w.message,
                            w.warningcode,
                            if w.is_missing_record() {
                                "; the course is gone from Moodle: run reconcile"
                            } else {
                                ""
                            }
                        ),
                    ));
                }
                Err(e) => out.fail(Failure::of(&e)),
            }
        }
        Step::DeleteCourse { course_id, cause } => match client.delete_courses(&[*course_id]).await
        {
            Ok(warnings) => {
                // `unknowncourseidnumber`: already gone, which is what we wanted.
                match warnings
                    .iter()
                    .find(|w| w.warningcode != "unknowncourseidnumber")
                {
                    None => out.facts.push(MoodleSyncEvent::CourseDeleted {
                        course_id: *course_id,
                        caused_by: cause.event_id,
                    }),
                    Some(w) => out.fail(Failure::permanent(
                        &w.warningcode,
                        format!(
                            "Moodle did not delete course {course_id}: {} ({})",
                            w.message, w.warningcode
                        ),
                    )),
                }
            }
            Err(e) => out.fail(Failure::of(&e)),
        },
        Step::FindCourseToDelete {
            shortname,
            template_course_id,
            cause,
            in_flight,
        } => match find_course(client, shortname).await {
            // Adopted: the next plan deletes it.
            Ok(Some(course)) => {
                out.facts
                    .extend(adopted_course(&course, *template_course_id, cause.event_id))
            }
            Ok(None) => match ctx.no_course_yet(in_flight.as_ref()) {
                // The course may still land: deleting "nothing" now would leave it behind.
                NoCourseYet::WaitUntil(at) => {
                    out.wait_until = Some((at, waiting_reason(shortname, at)))
                }
                NoCourseYet::Announce => out.facts.push(MoodleSyncEvent::CourseAbsent {
                    shortname: shortname.clone(),
                    caused_by: cause.event_id,
                }),
            },
            Err(e) => out.fail(Failure::of(&e)),
        },
    }
    out
}

/// The match key as Moodle's answers are compared with it.
fn norm(key: &str) -> String {
    key.to_lowercase()
}

fn ambiguous(u: &UserToLink, ids: &[i64]) -> MoodleSyncEvent {
    MoodleSyncEvent::ParticipantParked {
        participant_id: u.participant_id.clone(),
        code: "ambiguous_user".to_string(),
        reason: format!(
            "{} Moodle accounts match {:?} (user ids {:?}); the saga never guesses: merge or \
             delete the duplicates in Moodle, then resume",
            ids.len(),
            u.key,
            ids
        ),
        caused_by: u.cause.event_id,
    }
}

fn linked(u: &UserToLink, id: i64, username: &str, how: LinkKind) -> MoodleSyncEvent {
    MoodleSyncEvent::UserLinked {
        participant_id: u.participant_id.clone(),
        moodle_user_id: id,
        username: username.to_string(),
        how,
        caused_by: u.cause.event_id,
    }
}

/// The case-insensitive email look-up (`core_user_get_users`): Moodle on PostgreSQL matches
/// emails case-sensitively in the batched look-up but refuses a new account whose email differs
/// only in case.
/// The case-insensitive email look-up an account Moodle would refuse gets before its participant
/// is parked: one match links the participant, several park it as ambiguous (never a guess).
/// True when it settled the participant.
async fn settled_by_fallback(
    client: &MoodleClient,
    u: &UserToLink,
    out: &mut Outcome,
) -> Result<bool, MoodleError> {
    let found = fallback(client, u).await?;
    match found.as_slice() {
        [] => Ok(false),
        [one] => {
            out.facts
                .push(linked(u, one.id, &one.username, LinkKind::Matched));
            Ok(true)
        }
        many => {
            let ids: Vec<i64> = many.iter().map(|f| f.id).collect();
            out.facts.push(ambiguous(u, &ids));
            Ok(true)
        }
    }
}

async fn fallback(
    client: &MoodleClient,
    u: &UserToLink,
) -> Result<Vec<moodle::MoodleUser>, MoodleError> {
    client.get_users(&[("email", u.email.as_str())]).await
}

async fn link_users(client: &MoodleClient, cfg: &SagaConfig, l: &LinkUsers, out: &mut Outcome) {
    let field = match l.field {
        UserMatchField::Email => UserField::Email,
        UserMatchField::Username => UserField::Username,
    };
    let mut keys: Vec<String> = l.users.iter().map(|u| u.key.clone()).collect();
    keys.sort();
    keys.dedup();
    let found = match client.get_users_by_field(field, &keys).await {
        Ok(found) => found,
        Err(e) => return out.fail(Failure::of(&e)),
    };
    let mut by_key: HashMap<String, Vec<&moodle::MoodleUser>> = HashMap::new();
    for user in &found {
        let key = match l.field {
            UserMatchField::Email => user.email.as_deref().map(norm),
            UserMatchField::Username => Some(norm(&user.username)),
        };
        if let Some(key) = key {
            let list = by_key.entry(key).or_default();
            if !list.iter().any(|u| u.id == user.id) {
                list.push(user);
            }
        }
    }

    let mut to_create: Vec<&UserToLink> = Vec::new();
    for u in &l.users {
        match by_key.get(&norm(&u.key)).map(Vec::as_slice).unwrap_or(&[]) {
            [one] => out
                .facts
                .push(linked(u, one.id, &one.username, LinkKind::Matched)),
            [] => match &u.new_username {
                Ok(_) => to_create.push(u),
                // Moodle would refuse the account we would create: one last case-insensitive
                // look-up, then park this participant alone.
                Err(refusal) => {
                    if l.field == UserMatchField::Email {
                        match settled_by_fallback(client, u, out).await {
                            Ok(true) => continue,
                            Ok(false) => {}
                            Err(e) => return out.fail(Failure::of(&e)),
                        }
                    }
                    out.facts.push(MoodleSyncEvent::ParticipantParked {
                        participant_id: u.participant_id.clone(),
                        code: refusal.code.clone(),
                        reason: refusal.reason.clone(),
                        caused_by: u.cause.event_id,
                    });
                }
            },
            many => {
                let ids: Vec<i64> = many.iter().map(|u| u.id).collect();
                out.facts.push(ambiguous(u, &ids));
            }
        }
    }

    for chunk in to_create.chunks(cfg.user_batch.max(1)) {
        create(client, l, chunk, out).await;
        if out.failure.is_some() {
            return;
        }
    }
}

fn new_user(l: &LinkUsers, u: &UserToLink) -> NewUser {
    let internal = matches!(l.auth.as_str(), "manual" | "email");
    NewUser {
        username: u.new_username.clone().unwrap_or_default(),
        firstname: u.first_name.clone(),
        lastname: u.last_name.clone(),
        email: u.email.clone(),
        auth: l.auth.clone(),
        // No password is ever sent: internal accounts get one generated and mailed by Moodle.
        password: None,
        createpassword: internal,
    }
}

/// Creates a batch; when Moodle refuses it, splits it until the refused accounts are isolated.
async fn create(client: &MoodleClient, l: &LinkUsers, batch: &[&UserToLink], out: &mut Outcome) {
    let mut stack: Vec<&[&UserToLink]> = vec![batch];
    while let Some(part) = stack.pop() {
        if part.is_empty() {
            continue;
        }
        let users: Vec<NewUser> = part.iter().map(|u| new_user(l, u)).collect();
        match client.create_users(&users).await {
            Ok(created) => {
                for (u, c) in part.iter().zip(created.iter()) {
                    out.facts
                        .push(linked(u, c.id, &c.username, LinkKind::Created));
                }
            }
            Err(e) if item_specific(&e) && part.len() > 1 => {
                let (a, b) = part.split_at(part.len() / 2);
                // Depth first, in order: `a` runs before `b`.
                stack.push(b);
                stack.push(a);
            }
            Err(e) if item_specific(&e) => {
                let u = part[0];
                // The commonest refusal: an account with this email in another case exists.
                if l.field == UserMatchField::Email {
                    match settled_by_fallback(client, u, out).await {
                        Ok(true) => continue,
                        Ok(false) => {}
                        Err(look) => return out.fail(Failure::of(&look)),
                    }
                }
                out.facts.push(MoodleSyncEvent::ParticipantParked {
                    participant_id: u.participant_id.clone(),
                    code: e.code(),
                    reason: format!(
                        "Moodle refused to create the account {:?} <{}> ({}): the username or the \
                         email may belong to another Moodle account; link or rename it, then resume",
                        u.new_username.as_deref().unwrap_or(""),
                        u.email,
                        e.errorcode().unwrap_or("invalid input")
                    ),
                    caused_by: u.cause.event_id,
                });
            }
            // Transient, unknown outcome (the next look-up finds what was created), or a refusal
            // that concerns every account (permissions): stop here with what is established.
            Err(e) => return out.fail(Failure::of(&e)),
        }
    }
}

/// Moodle answers `invalidparameter` for every item when the course itself is gone: check once
/// before blaming participants one by one.
async fn course_gone(
    client: &MoodleClient,
    course_id: i64,
    checked: &mut bool,
    out: &mut Outcome,
) -> bool {
    if *checked {
        return false;
    }
    *checked = true;
    match client
        .get_courses_by_field(CourseField::Id, &course_id.to_string())
        .await
    {
        Ok(courses) if courses.iter().any(|c| c.id == course_id) => false,
        Ok(_) => {
            out.fail(Failure::permanent(
                "course_gone",
                format!(
                    "course {course_id} no longer exists in Moodle (deleted by hand?): run reconcile to recreate it, then resume"
                ),
            ));
            true
        }
        Err(e) => {
            out.fail(Failure::of(&e));
            true
        }
    }
}

/// Enrols a batch; isolates refused items by splitting.
async fn enrol(client: &MoodleClient, course_id: i64, batch: &[EnrolItem], out: &mut Outcome) {
    let mut checked = false;
    let mut stack: Vec<&[EnrolItem]> = vec![batch];
    while let Some(part) = stack.pop() {
        if part.is_empty() {
            continue;
        }
        let items: Vec<Enrolment> = part
            .iter()
            .map(|i| Enrolment {
                user_id: i.moodle_user_id,
                course_id,
                role_id: i.role_id,
                suspend: false,
            })
            .collect();
        let result = client.enrol_users(&items).await;
        if let Err(e) = &result {
            if item_specific(e) && course_gone(client, course_id, &mut checked, out).await {
                return;
            }
        }
        match result {
            Ok(()) => {
                for i in part {
                    out.facts.push(MoodleSyncEvent::Enrolled {
                        participant_id: i.participant_id.clone(),
                        moodle_user_id: i.moodle_user_id,
                        role_id: i.role_id,
                        caused_by: i.cause.event_id,
                    });
                }
            }
            Err(e) if item_specific(&e) && part.len() > 1 => {
                let (a, b) = part.split_at(part.len() / 2);
                stack.push(b);
                stack.push(a);
            }
            Err(e) if item_specific(&e) => {
                let i = &part[0];
                if e.is_missing_user() {
                    // "User ID does not exist or is deleted" (5.1: a missing record): stale link.
                    out.facts.push(MoodleSyncEvent::UserLinkLost {
                        participant_id: i.participant_id.clone(),
                        moodle_user_id: i.moodle_user_id,
                        caused_by: i.cause.event_id,
                    });
                }
                out.facts.push(MoodleSyncEvent::ParticipantParked {
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
            }
            Err(e) => return out.fail(Failure::of(&e)),
        }
    }
}

/// Unenrols or suspends a batch; isolates refused items by splitting.
async fn remove(
    client: &MoodleClient,
    course_id: i64,
    mode: RemovalMode,
    batch: &[RemoveItem],
    out: &mut Outcome,
) {
    let mut checked = false;
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
                if (item_specific(&e) || e.is_missing_course())
                    && course_gone(client, course_id, &mut checked, out).await
                {
                    return;
                }
                return out.fail(Failure::of(&e));
            }
        };
        let ids: std::collections::HashSet<i64> = enrolled.iter().map(|u| u.id).collect();
        acting.retain(|i| {
            if !i.look_first || ids.contains(&i.moodle_user_id) {
                return true;
            }
            out.facts.push(MoodleSyncEvent::Unenrolled {
                participant_id: i.participant_id.clone(),
                moodle_user_id: i.moodle_user_id,
                caused_by: i.cause.event_id,
            });
            false
        });
    }
    let batch = acting.as_slice();
    let mut stack: Vec<&[RemoveItem]> = vec![batch];
    while let Some(part) = stack.pop() {
        if part.is_empty() {
            continue;
        }
        let result = match mode {
            RemovalMode::Unenrol => {
                let items: Vec<Unenrolment> = part
                    .iter()
                    .map(|i| Unenrolment {
                        user_id: i.moodle_user_id,
                        course_id,
                    })
                    .collect();
                client.unenrol_users(&items).await
            }
            RemovalMode::Suspend => {
                let items: Vec<Enrolment> = part
                    .iter()
                    .map(|i| Enrolment {
                        user_id: i.moodle_user_id,
                        course_id,
                        role_id: i.role_id,
                        suspend: true,
                    })
                    .collect();
                client.enrol_users(&items).await
            }
        };
        if let Err(e) = &result {
            if item_specific(e) && course_gone(client, course_id, &mut checked, out).await {
                return;
            }
        }
        match result {
            Ok(()) => {
                for i in part {
                    out.facts.push(match mode {
                        RemovalMode::Unenrol => MoodleSyncEvent::Unenrolled {
                            participant_id: i.participant_id.clone(),
                            moodle_user_id: i.moodle_user_id,
                            caused_by: i.cause.event_id,
                        },
                        RemovalMode::Suspend => MoodleSyncEvent::Suspended {
                            participant_id: i.participant_id.clone(),
                            moodle_user_id: i.moodle_user_id,
                            caused_by: i.cause.event_id,
                        },
                    });
                }
            }
            Err(e) if item_specific(&e) && part.len() > 1 => {
                let (a, b) = part.split_at(part.len() / 2);
                stack.push(b);
                stack.push(a);
            }
            Err(e) if item_specific(&e) => {
                let i = &part[0];
                out.facts.push(MoodleSyncEvent::ParticipantParked {
                    participant_id: i.participant_id.clone(),
                    code: e.code(),
                    reason: format!(
                        "Moodle refused to remove user {} from course {course_id} ({})",
                        i.moodle_user_id,
                        e.errorcode().unwrap_or("invalid input")
                    ),
                    caused_by: i.cause.event_id,
                });
            }
            Err(e) => return out.fail(Failure::of(&e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_specific_errors() {
        // As each batch call answers (a missing user is one item's fault only when enrolling).
        let on = |function: &str, code: &str| MoodleError::Moodle {
            function: function.into(),
            errorcode: code.into(),
            message: "m".into(),
            class: moodle::ErrorClass::of(code),
        };
        let enrol = |code: &str| on("enrol_manual_enrol_users", code);
        let create = |code: &str| on("core_user_create_users", code);
        assert!(item_specific(&create("invalidparameter")));
        assert!(item_specific(&enrol("codingerror")));
        assert!(
            item_specific(&enrol("invalidrecordunknown")),
            "5.1's missing user"
        );
        assert!(enrol("invalidrecordunknown").is_missing_user());
        assert!(item_specific(&create(
            "<div>Passwords must be at least 8 characters long.</div>"
        )));
        assert!(!item_specific(&enrol("wsusercannotassign")));
        assert!(!item_specific(&enrol("wsnoinstance")));
        assert!(!item_specific(&enrol("ex_unabletolock")));
    }
}
