//! `UpdateCourse`: the course's names, category and dates written with
//! `core_course_update_courses`, and a refusal turned into a park that names what to change
//! (the course holding a shortname or idnumber, a category that does not exist).

use domain::moodle_sync::{CourseProps, MoodleSyncEvent};
use moodle::{CourseField, CourseUpdate, MoodleClient, Warning};
use projections::saga::{Cause, Failure};

use super::{failure_of, Outcome};

/// Writes `props` to course `course_id`; records `CourseUpdated` when Moodle took them all.
pub(super) async fn update_course(
    client: &MoodleClient,
    course_id: i64,
    props: &CourseProps,
    cause: Cause,
    out: &mut Outcome,
) {
    // Moodle checks an end date against the start date given in the same call, and refuses an
    // end alone (`nostartdatenoenddate`): the course's own start goes along when the event has
    // none.
    let startdate = match (props.startdate, props.enddate) {
        (None, Some(_)) => match client
            .get_courses_by_field(CourseField::Id, &course_id.to_string())
            .await
        {
            Ok(found) => found
                .into_iter()
                .find(|c| c.id == course_id)
                .and_then(|c| c.startdate),
            Err(e) => return out.fail(failure_of(&e)),
        },
        (start, _) => start,
    };
    let update = CourseUpdate {
        id: course_id,
        fullname: props.fullname.clone(),
        shortname: props.shortname.clone(),
        idnumber: props.idnumber.clone(),
        category_id: props.category_id,
        startdate,
        enddate: props.enddate,
        ..CourseUpdate::default()
    };
    match client.update_courses(&[update]).await {
        Ok(warnings) if warnings.is_empty() => out.facts.push(MoodleSyncEvent::CourseUpdated {
            course_id,
            props: props.clone(),
            caused_by: cause.event_id,
        }),
        Ok(warnings) => {
            let failure = refusal(client, course_id, props, &warnings[0]).await;
            out.fail(failure)
        }
        Err(e) => out.fail(failure_of(&e)),
    }
}

/// A course holding `value` under `field`, for a park reason ("course 12 "Biology" (category 3)").
async fn holder(client: &MoodleClient, field: CourseField, value: &str) -> String {
    match client.get_courses_by_field(field, value).await {
        Ok(courses) => match courses.into_iter().next() {
            Some(c) => format!(
                "course {} {:?} (category {})",
                c.id, c.fullname, c.categoryid
            ),
            None => "a course the web-service user cannot see".to_string(),
        },
        Err(_) => "another course (it could not be looked up)".to_string(),
    }
}

/// The park of a refused update: what Moodle said, and what an operator changes.
async fn refusal(
    client: &MoodleClient,
    course_id: i64,
    props: &CourseProps,
    w: &Warning,
) -> Failure {
    let fix_names = "change the environment's course templates (or that course), then retry";
    match w.warningcode.as_str() {
        "shortnametaken" => {
            let name = props.shortname.clone().unwrap_or_default();
            let who = holder(client, CourseField::Shortname, &name).await;
            Failure::permanent(
                "course_shortname_taken",
                format!("the shortname {name:?} for course {course_id} is held by {who}: {fix_names}"),
            )
        }
        "courseidnumbertaken" | "idnumbertaken" => {
            let idnumber = props.idnumber.clone().unwrap_or_default();
            let who = holder(client, CourseField::Idnumber, &idnumber).await;
            Failure::permanent(
                "course_idnumber_taken",
                format!("the idnumber {idnumber:?} for course {course_id} is held by {who}: {fix_names}"),
            )
        }
        _ if w.is_missing_record() && w.message.contains("course_categories") => {
            Failure::permanent(
                "unknown_category",
                format!(
                    "Moodle has no category {} for course {course_id}: {} ({}); set the \
                     environment's moodle_category_id / moodle_archive_category_id (or \
                     MOODLE_COURSE_CATEGORY_ID / MOODLE_ARCHIVE_CATEGORY_ID) to one that exists, then retry",
                    props.category_id.map_or("?".to_string(), |c| c.to_string()),
                    w.message,
                    w.warningcode
                ),
            )
        }
        _ => Failure::permanent(
            &w.warningcode,
            format!(
                "Moodle did not update course {course_id}: {} ({}){}",
                w.message,
                w.warningcode,
                if w.is_missing_record() {
                    "; the course is gone from Moodle: run reconcile"
                } else {
                    ""
                }
            ),
        ),
    }
}
