//! Running one planned step against Moodle and turning what Moodle now holds into facts.
//!
//! Every function returns the facts established so far *and* the failure that stopped it, so a
//! batch that half succeeded is recorded before the failure is handled (what then happens to the
//! event is decided by `projections::saga::outcome`, not here).
//!
//! Where each step's Moodle calls are:
//! - `EnsureCourse`, `FindCourseToDelete`'s look-up: [`course`] (find by shortname, adopt,
//!   announce and duplicate the template);
//! - `LinkUsers`: [`users`] (one look-up, matched by `projections::saga::matching`, then the
//!   missing accounts created);
//! - `Enrol`, `Remove`: [`enrol`];
//! - `UpdateCourse` (names, category, dates): [`shape`];
//! - `SetCourseVisible`, `DeleteCourse`, `KeepCourse`, `ParkParticipants`: here.
//!
//! Every batched call isolates the items Moodle refuses with [`bisect`].

use domain::moodle_sync::MoodleSyncEvent;
use moodle::{CourseUpdate, MoodleClient, MoodleError};
use projections::saga::course::whose;
use projections::saga::{Failure, NoCourseYet, Step, Whose};

use crate::SagaConfig;

mod bisect;
mod changes;
mod course;
mod enrol;
mod shape;
mod users;

use course::{adopt_when_whole, ensure_course, waiting_reason};
pub(crate) use course::{find_course, StepContext};

/// A Moodle error as the saga's outcome policy reads it.
pub(crate) fn failure_of(e: &MoodleError) -> Failure {
    Failure {
        code: e.code(),
        message: e.to_string(),
        transient: e.is_transient(),
        participant_id: None,
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

/// How a bisected batch call's answer is judged: a refusal that may be one item's splits the
/// batch; anything else (transient, unknown outcome, or concerning every item) stops it with what
/// is established.
fn judged<R>(result: Result<R, MoodleError>) -> Result<R, bisect::Refused<MoodleError, Failure>> {
    match result {
        Ok(r) => Ok(r),
        Err(e) if item_specific(&e) => Err(bisect::Refused::Item(e)),
        Err(e) => Err(bisect::Refused::Stop(failure_of(&e))),
    }
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
        Step::LinkUsers(l) => users::link_users(client, cfg, l, &mut out).await,
        Step::Enrol { course_id, items } => {
            for chunk in items.chunks(cfg.enrol_batch.max(1)) {
                enrol::enrol(client, *course_id, chunk, &mut out).await;
                if out.failure.is_some() {
                    break;
                }
            }
        }
        Step::UnassignRoles { course_id, items } => {
            for chunk in items.chunks(cfg.enrol_batch.max(1)) {
                changes::unassign_roles(client, *course_id, chunk, &mut out).await;
                if out.failure.is_some() {
                    break;
                }
            }
        }
        Step::UpdateAccounts(items) => {
            for chunk in items.chunks(cfg.user_batch.max(1)) {
                changes::update_accounts(client, chunk, &mut out).await;
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
                enrol::remove(client, *course_id, *mode, chunk, &mut out).await;
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
                ..CourseUpdate::default()
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
                Err(e) => out.fail(failure_of(&e)),
            }
        }
        Step::UpdateCourse {
            course_id,
            props,
            cause,
        } => shape::update_course(client, *course_id, props, *cause, &mut out).await,
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
            Err(e) => out.fail(failure_of(&e)),
        },
        Step::FindCourseToDelete {
            shortname,
            template_course_id,
            idnumber,
            shaped,
            cause,
            in_flight,
        } => match find_course(client, shortname).await {
            // Someone else's course under the event's shortname: never deleted.
            Ok(Some(course))
                if whose(
                    *shaped,
                    idnumber.as_deref(),
                    course.idnumber.as_deref(),
                    in_flight.is_some(),
                ) == Whose::Stranger =>
            {
                out.facts.push(MoodleSyncEvent::CourseAbsent {
                    shortname: shortname.clone(),
                    caused_by: cause.event_id,
                })
            }
            // Adopted: the next plan deletes it.
            // A skeleton still restoring is not deleted under the restore's feet.
            Ok(Some(course)) => adopt_when_whole(
                ctx,
                &course,
                in_flight.as_ref(),
                *template_course_id,
                cause.event_id,
                &mut out,
            ),
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
            Err(e) => out.fail(failure_of(&e)),
        },
    }
    out
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
