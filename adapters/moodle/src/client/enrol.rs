//! Enrolments: the participants of a course, enrolling (an upsert), unenrolling, and taking
//! one role away while the enrolment stays.

use super::{MoodleClient, MAX_ENROLMENTS_PER_CALL};
use crate::error::MoodleError;
use crate::types::*;
use crate::wire::{self, Form};

impl MoodleClient {
    /// `core_enrol_get_enrolled_users` (all enrolment methods; suspended ones unless filtered).
    pub async fn get_enrolled_users(
        &self,
        course_id: i64,
        filter: EnrolledFilter,
    ) -> Result<Vec<EnrolledUser>, MoodleError> {
        let mut form = Form::new();
        form.push("courseid", course_id);
        let option = match filter {
            EnrolledFilter::All => None,
            EnrolledFilter::OnlyActive => Some("onlyactive"),
            EnrolledFilter::OnlySuspended => Some("onlysuspended"),
        };
        if let Some(name) = option {
            form.push_objects(
                "options",
                &[vec![("value", "1".to_string()), ("name", name.to_string())]],
            );
        }
        self.call_json("core_enrol_get_enrolled_users", &form, 1)
            .await
    }

    /// `core_enrol_get_course_enrolment_methods`: the course's enabled instances whose plugin
    /// describes itself. Never lists a manual instance on Moodle 4.4 (its plugin has no
    /// `get_enrol_info()`): whether a course takes manual enrolments is in
    /// [`Course::enrollmentmethods`]. Kept for diagnostics (self and guest access).
    pub async fn get_course_enrolment_methods(
        &self,
        course_id: i64,
    ) -> Result<Vec<EnrolmentMethod>, MoodleError> {
        let mut form = Form::new();
        form.push("courseid", course_id);
        self.call_json("core_enrol_get_course_enrolment_methods", &form, 1)
            .await
    }

    /// `enrol_manual_enrol_users`, batched (≤500 per call). An upsert: roles are added, and an
    /// enrolment sent without `suspend` becomes active again.
    pub async fn enrol_users(&self, enrolments: &[Enrolment]) -> Result<(), MoodleError> {
        const F: &str = "enrol_manual_enrol_users";
        let items: Vec<Vec<(&str, String)>> = enrolments
            .iter()
            .map(|e| {
                let mut item = vec![
                    ("roleid", e.role_id.to_string()),
                    ("courseid", e.course_id.to_string()),
                ];
                if e.suspend {
                    item.push(("suspend", "1".to_string()));
                }
                item.push(("userid", e.user_id.to_string()));
                item
            })
            .collect();
        self.null_batches(F, "enrolments", &items).await
    }

    /// `enrol_manual_unenrol_users`, batched; unenrolling someone not enrolled is a silent no-op.
    pub async fn unenrol_users(&self, items: &[Unenrolment]) -> Result<(), MoodleError> {
        let items: Vec<Vec<(&str, String)>> = items
            .iter()
            .map(|u| {
                vec![
                    ("courseid", u.course_id.to_string()),
                    ("userid", u.user_id.to_string()),
                ]
            })
            .collect();
        self.null_batches("enrol_manual_unenrol_users", "enrolments", &items)
            .await
    }

    /// `core_role_unassign_roles` in course contexts, batched (≤500 per call). Each call is
    /// all-or-nothing; taking a role the user does not hold (or from someone not enrolled) is a
    /// silent no-op, a missing course or a role the web-service user may not assign fails the
    /// call with `invalidparameter` (observed). The enrolment stays, perhaps without any role.
    pub async fn unassign_roles(&self, items: &[RoleUnassignment]) -> Result<(), MoodleError> {
        let items: Vec<Vec<(&str, String)>> = items
            .iter()
            .map(|u| {
                vec![
                    ("roleid", u.role_id.to_string()),
                    ("contextlevel", "course".to_string()),
                    ("instanceid", u.course_id.to_string()),
                    // Required, so last (see `Form::push_objects`).
                    ("userid", u.user_id.to_string()),
                ]
            })
            .collect();
        self.null_batches("core_role_unassign_roles", "unassignments", &items)
            .await
    }

    async fn null_batches(
        &self,
        f: &'static str,
        list: &str,
        items: &[Vec<(&str, String)>],
    ) -> Result<(), MoodleError> {
        let vars: Vec<usize> = items.iter().map(Vec::len).collect();
        for r in self.plan(&vars, MAX_ENROLMENTS_PER_CALL).await {
            let mut form = Form::new();
            form.push_objects(list, &items[r.clone()]);
            self.call(f, &form, r.len(), |b| wire::parse_null(f, b))
                .await?;
        }
        Ok(())
    }
}
