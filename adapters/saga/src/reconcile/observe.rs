//! Observe: what Moodle holds for one event, read-only, in at most five calls.

use std::collections::BTreeSet;

use moodle::{CourseField, EnrolledFilter, MoodleClient, MoodleError, UserField};
use projections::saga::{Observe, Observed, ObservedCourse, ObservedEnrolment};

/// Reads what Moodle holds for one event.
pub(super) async fn observe(
    client: &MoodleClient,
    what: &Observe,
) -> Result<Observed, MoodleError> {
    let mut observed = Observed::default();
    let course = |c: moodle::Course| ObservedCourse {
        props: domain::moodle_sync::CourseProps {
            fullname: Some(c.fullname.clone()),
            shortname: Some(c.shortname.clone()),
            idnumber: c.idnumber.clone(),
            category_id: Some(c.categoryid),
            startdate: c.startdate,
            enddate: c.enddate,
        },
        id: c.id,
        shortname: c.shortname,
        category_id: c.categoryid,
        visible: c.visible,
    };
    if let Some(id) = what.course_id {
        observed.recorded_course = client
            .get_courses_by_field(CourseField::Id, &id.to_string())
            .await?
            .into_iter()
            .find(|c| c.id == id)
            .map(course);
    }
    if observed.recorded_course.is_none() {
        observed.course_by_shortname = crate::exec::find_course(client, &what.shortname)
            .await?
            .map(course);
    }
    if let Some(c) = &observed.recorded_course {
        let all = client.get_enrolled_users(c.id, EnrolledFilter::All).await?;
        let active: BTreeSet<i64> = client
            .get_enrolled_users(c.id, EnrolledFilter::OnlyActive)
            .await?
            .into_iter()
            .map(|u| u.id)
            .collect();
        observed.enrolments = all
            .into_iter()
            .map(|u| ObservedEnrolment {
                idnumber: u.idnumber.clone(),
                user_id: u.id,
                suspended: !active.contains(&u.id),
                username: u.username,
                email: u.email,
                roles: u.roles.iter().map(|r| r.roleid).collect(),
            })
            .collect();
    }
    if !what.user_ids.is_empty() {
        let ids: Vec<String> = what.user_ids.iter().map(|i| i.to_string()).collect();
        let found: BTreeSet<i64> = client
            .get_users_by_field(UserField::Id, &ids)
            .await?
            .into_iter()
            .map(|u| u.id)
            .collect();
        observed.missing_users = what
            .user_ids
            .iter()
            .copied()
            .filter(|id| !found.contains(id))
            .collect();
    }
    Ok(observed)
}
