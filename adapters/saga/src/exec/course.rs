//! The event's course: finding it by its shortname, adopting it, or duplicating the template,
//! with the announcement rules of `projections::saga::duplication` (a duplication may still be
//! running in Moodle long after its call was made), and what a worker process remembers of its
//! own announcements.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use domain::moodle_sync::MoodleSyncEvent;
use moodle::{CourseField, DuplicateCourse, MoodleClient, MoodleError};
use projections::saga::{
    when_course_found, when_no_course, EnsureCourse, FoundCourse, NoCourseYet,
};
use uuid::Uuid;

use projections::saga::course::whose;
use projections::saga::{Failure, Whose};

use super::{failure_of, Outcome};
use crate::db::now_ms;

/// What a worker process knows beside its record: the duplications it announced in this life
/// and has not called yet (an announcement found in the record but not here was made by a
/// process that may have called already: [`when_no_course`] decides), and the window in which
/// an announced duplication may still land.
#[derive(Debug)]
pub(crate) struct StepContext {
    announced: Mutex<HashSet<Uuid>>,
    pub duplication_window: Duration,
    /// Permits of the duplications this process runs at once (`SagaConfig::max_duplications`).
    duplicating: tokio::sync::Semaphore,
}

impl StepContext {
    pub fn new(duplication_window: Duration, max_duplications: usize) -> StepContext {
        StepContext {
            announced: Mutex::new(HashSet::new()),
            duplication_window,
            duplicating: tokio::sync::Semaphore::new(max_duplications.max(1)),
        }
    }

    /// A new attempt of this process, to be called once it is recorded.
    fn announce(&self) -> Uuid {
        let attempt = Uuid::new_v4();
        self.keep_own(attempt);
        attempt
    }

    /// `attempt` is this process's again: its call was answered with a refusal, nothing runs.
    fn keep_own(&self, attempt: Uuid) {
        if let Ok(mut set) = self.announced.lock() {
            set.insert(attempt);
        }
    }

    /// Whether `attempt` was announced by this process and not called yet (then it is now).
    fn take_own(&self, attempt: Uuid) -> bool {
        self.announced
            .lock()
            .map(|mut set| set.remove(&attempt))
            .unwrap_or(false)
    }

    fn window_ms(&self) -> i64 {
        i64::try_from(self.duplication_window.as_millis()).unwrap_or(i64::MAX)
    }

    /// What to do about a course a look-up did not find.
    pub(super) fn no_course_yet(
        &self,
        in_flight: Option<&domain::moodle_sync::DuplicationStarted>,
    ) -> NoCourseYet {
        when_no_course(in_flight, now_ms(), self.window_ms())
    }
}

/// Adopts `course` as the event's unless it may be the skeleton of a duplication still
/// restoring (`projections::saga::duplication`): then it is looked at again.
pub(super) fn adopt_when_whole(
    ctx: &StepContext,
    course: &moodle::Course,
    in_flight: Option<&domain::moodle_sync::DuplicationStarted>,
    template_course_id: i64,
    cause: Uuid,
    out: &mut Outcome,
) {
    let whole = !course.enrollmentmethods.is_empty();
    match when_course_found(whole, in_flight, now_ms(), ctx.window_ms()) {
        FoundCourse::Adopt => out
            .facts
            .extend(adopted_course(course, template_course_id, cause)),
        FoundCourse::LookAgainAt(at) => {
            let secs = (at - now_ms()).max(0) / 1000;
            out.wait_until = Some((
                at,
                format!(
                    "course {} ({}) has no enrolment method yet: it is the skeleton of a \
                     duplication still restoring; looking again in {secs} s",
                    course.id, course.shortname
                ),
            ));
        }
    }
}

pub(super) fn waiting_reason(shortname: &str, at: i64) -> String {
    let secs = (at - now_ms()).max(0) / 1000;
    format!(
        "a duplication of {shortname} begun earlier may still be running in Moodle \
         (its course appears only when the restore ends): looking again in {secs} s"
    )
}

/// Moodle refuses tags in a course's full name: keep the text, drop the angle brackets.
fn course_fullname(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| match c {
            '<' => '‹',
            '>' => '›',
            c => c,
        })
        .collect();
    if cleaned.trim().is_empty() {
        "OpenVLE event".to_string()
    } else {
        cleaned
    }
}

/// [`adopt_when_whole`] for the course of `e`, when it is the event's own
/// ([`projections::saga::course::whose`]); a stranger's course parks the event, naming it.
fn adopt(ctx: &StepContext, e: &EnsureCourse, course: &moodle::Course, out: &mut Outcome) {
    let found = course.idnumber.as_deref();
    let announced = e.in_flight.is_some();
    if whose(e.shaped, e.idnumber.as_deref(), found, announced) == Whose::Stranger {
        return out.fail(Failure::permanent(
            "course_shortname_taken",
            format!(
                "course {} {:?} (category {}{}) already has the shortname {:?}, and the engine                  did not make it: it is never adopted. Rename that course in Moodle or change the                  environment's moodle_course_shortname_template, then retry",
                course.id,
                course.fullname,
                course.categoryid,
                match found.filter(|i| !i.is_empty()) {
                    Some(i) => format!(", idnumber {i:?}"),
                    None => String::new(),
                },
                e.shortname
            ),
        ));
    }
    let (template, cause) = (e.template_course_id, e.cause.event_id);
    adopt_when_whole(ctx, course, e.in_flight.as_ref(), template, cause, out);
}

fn adopted_course(
    course: &moodle::Course,
    template_course_id: i64,
    cause: uuid::Uuid,
) -> Vec<MoodleSyncEvent> {
    let mut facts = vec![MoodleSyncEvent::CourseDuplicated {
        course_id: course.id,
        shortname: course.shortname.clone(),
        template_course_id,
        category_id: course.categoryid,
        adopted: true,
        caused_by: cause,
    }];
    // What the look-up showed of it (its dates are left: the plan writes the event's).
    facts.push(MoodleSyncEvent::CourseUpdated {
        course_id: course.id,
        props: domain::moodle_sync::CourseProps {
            fullname: Some(course.fullname.clone()),
            idnumber: course.idnumber.clone().filter(|i| !i.is_empty()),
            ..Default::default()
        },
        caused_by: cause,
    });
    if course.visible == Some(false) {
        facts.push(MoodleSyncEvent::CourseHidden {
            course_id: course.id,
            caused_by: cause,
        });
    }
    facts
}

pub(crate) async fn find_course(
    client: &MoodleClient,
    shortname: &str,
) -> Result<Option<moodle::Course>, MoodleError> {
    let courses = client
        .get_courses_by_field(CourseField::Shortname, shortname)
        .await?;
    Ok(courses.into_iter().find(|c| c.shortname == shortname))
}

/// Finds the event's course, or duplicates the template: the look-up first (a previous attempt
/// may have made it, even if its answer was lost), then an announcement recorded before the
/// call (see `projections::saga::duplication`), then the call.
pub(super) async fn ensure_course(
    client: &MoodleClient,
    ctx: &StepContext,
    e: &EnsureCourse,
    out: &mut Outcome,
) {
    let own_call_due = e.in_flight.is_some_and(|d| ctx.take_own(d.attempt));
    if !own_call_due {
        match find_course(client, &e.shortname).await {
            Ok(Some(course)) => {
                adopt(ctx, e, &course, out);
                return;
            }
            Ok(None) => {}
            Err(err) => return out.fail(failure_of(&err)),
        }
        match ctx.no_course_yet(e.in_flight.as_ref()) {
            NoCourseYet::WaitUntil(at) => {
                out.wait_until = Some((at, waiting_reason(&e.shortname, at)));
            }
            NoCourseYet::Announce => out.facts.push(MoodleSyncEvent::CourseDuplicationStarted {
                attempt: ctx.announce(),
                shortname: e.shortname.clone(),
                template_course_id: e.template_course_id,
                started_at_ms: now_ms(),
                caused_by: e.cause.event_id,
            }),
        }
        // Recorded first; the next plan carries the announcement back here, and the call runs.
        return;
    }
    let req = DuplicateCourse {
        template_id: e.template_course_id,
        fullname: course_fullname(&e.fullname),
        shortname: e.shortname.clone(),
        category_id: e.category_id,
        visible: e.visible,
    };
    // One at a time (by default): the claim's lease is renewed while this waits.
    let permit = ctx.duplicating.acquire().await.ok();
    let answer = client.duplicate_course(&req).await;
    drop(permit);
    match answer {
        Ok(course) => {
            out.facts.push(MoodleSyncEvent::CourseDuplicated {
                course_id: course.id,
                shortname: course.shortname,
                template_course_id: e.template_course_id,
                category_id: e.category_id,
                adopted: false,
                caused_by: e.cause.event_id,
            });
            out.facts.push(MoodleSyncEvent::CourseUpdated {
                course_id: course.id,
                props: domain::moodle_sync::CourseProps {
                    fullname: Some(req.fullname.clone()),
                    ..Default::default()
                },
                caused_by: e.cause.event_id,
            });
            if !e.visible {
                out.facts.push(MoodleSyncEvent::CourseHidden {
                    course_id: course.id,
                    caused_by: e.cause.event_id,
                });
            }
        }
        Err(err) if err.outcome_unknown() || err.errorcode() == Some("shortnametaken") => {
            // Moodle creates the course (with our shortname) before restoring into it: look again.
            match find_course(client, &e.shortname).await {
                Ok(Some(course)) => adopt(ctx, e, &course, out),
                Ok(None) if err.errorcode() == Some("shortnametaken") => out.fail(Failure::permanent(
                    "shortnametaken",
                    format!(
                        "Moodle says the shortname {} is taken but no course with it can be read; \
                         check that the web-service user may see every course (moodle/course:view, viewhiddencourses)",
                        e.shortname
                    ),
                )),
                Ok(None) => out.fail(failure_of(&err)),
                Err(look) => out.fail(failure_of(&look)),
            }
        }
        Err(err) => {
            // Moodle answered, and made nothing: the next attempt of this process may call at
            // once (a process that does not know this waits out the window).
            if let Some(d) = e.in_flight {
                ctx.keep_own(d.attempt);
                // Recorded too, for the other processes and for a delete that follows.
                out.facts.push(MoodleSyncEvent::CourseDuplicationRefused {
                    attempt: d.attempt,
                    caused_by: e.cause.event_id,
                });
            }
            out.fail(failure_of(&err))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fullname_without_tags() {
        assert_eq!(course_fullname("Lab <b>1</b>"), "Lab ‹b›1‹/b›");
        assert_eq!(course_fullname("  "), "OpenVLE event");
    }
}
