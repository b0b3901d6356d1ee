//! Courses: look-ups, search, duplication, updates, deletion, categories.

use super::{invalid, MoodleClient, MAX_DELETES_PER_CALL, MAX_ENROLMENTS_PER_CALL};
use crate::error::MoodleError;
use crate::types::*;
use crate::wire::{self, Form};

impl MoodleClient {
    /// `core_course_get_courses_by_field`. An empty value is refused locally for every field:
    /// Moodle would answer every course with an empty idnumber (or nothing useful).
    pub async fn get_courses_by_field(
        &self,
        field: CourseField,
        value: &str,
    ) -> Result<Vec<Course>, MoodleError> {
        const F: &str = "core_course_get_courses_by_field";
        if value.trim().is_empty() {
            return Err(invalid(
                F,
                format!("empty value for field {}", field.as_str()),
            ));
        }
        let mut form = Form::new();
        form.push("field", field.as_str()).push("value", value);
        let env: CoursesEnvelope = self.call_json(F, &form, 1).await?;
        Ok(env.courses)
    }

    /// `core_course_search_courses` (criterianame `search`); `perpage` 0 = all.
    pub async fn search_courses(
        &self,
        text: &str,
        page: u32,
        perpage: u32,
    ) -> Result<CourseSearch, MoodleError> {
        let mut form = Form::new();
        form.push("criterianame", "search")
            .push("criteriavalue", text)
            .push("page", page)
            .push("perpage", perpage);
        self.call_json("core_course_search_courses", &form, 1).await
    }

    /// `core_course_duplicate_course` without options, with the longer duplicate timeout.
    /// On a timeout the course may exist (even half-made): look it up by shortname before retrying.
    pub async fn duplicate_course(
        &self,
        req: &DuplicateCourse,
    ) -> Result<DuplicatedCourse, MoodleError> {
        const F: &str = "core_course_duplicate_course";
        for (name, v) in [("fullname", &req.fullname), ("shortname", &req.shortname)] {
            if v.trim().is_empty() || wire::has_tags(v) {
                return Err(invalid(
                    F,
                    format!("{name} must be non-blank text without HTML tags"),
                ));
            }
        }
        let mut form = Form::new();
        form.push("courseid", req.template_id)
            .push("fullname", &req.fullname)
            .push("shortname", &req.shortname)
            .push("categoryid", req.category_id)
            .push_bool("visible", req.visible);
        self.call_json(F, &form, 1).await
    }

    /// `core_course_update_courses`: per-item problems come back as warnings, the call succeeds.
    /// Each item is written whole or not at all (an item's own transaction), except a missing
    /// category, found after the write (observed on 4.4).
    pub async fn update_courses(
        &self,
        updates: &[CourseUpdate],
    ) -> Result<Vec<Warning>, MoodleError> {
        const F: &str = "core_course_update_courses";
        let items: Vec<Vec<(&str, String)>> = updates
            .iter()
            .map(|u| {
                let mut item = Vec::new();
                if let Some(v) = u.visible {
                    item.push(("visible", if v { "1" } else { "0" }.to_string()));
                }
                if let Some(v) = &u.fullname {
                    item.push(("fullname", v.clone()));
                }
                if let Some(v) = &u.idnumber {
                    item.push(("idnumber", v.clone()));
                }
                if let Some(v) = &u.shortname {
                    item.push(("shortname", v.clone()));
                }
                if let Some(v) = u.category_id {
                    item.push(("categoryid", v.to_string()));
                }
                if let Some(v) = u.startdate {
                    item.push(("startdate", v.to_string()));
                }
                if let Some(v) = u.enddate {
                    item.push(("enddate", v.to_string()));
                }
                item.push(("id", u.id.to_string()));
                item
            })
            .collect();
        let vars: Vec<usize> = items.iter().map(Vec::len).collect();
        let mut warnings = Vec::new();
        for r in self.plan(&vars, MAX_ENROLMENTS_PER_CALL).await {
            let mut form = Form::new();
            form.push_objects("courses", &items[r.clone()]);
            let env: WarningsEnvelope = self.call_json(F, &form, r.len()).await?;
            warnings.extend(env.warnings);
        }
        Ok(warnings)
    }

    /// `core_course_delete_courses`, at most 10 courses per call (deletion is slow: ~0.3 s each, and
    /// not transactional: courses before a thrown error stay deleted).
    /// Warning `unknowncourseidnumber` means already gone.
    pub async fn delete_courses(&self, ids: &[i64]) -> Result<Vec<Warning>, MoodleError> {
        let mut warnings = Vec::new();
        for chunk in ids.chunks(MAX_DELETES_PER_CALL) {
            let mut form = Form::new();
            form.push_scalars("courseids", chunk);
            let env: WarningsEnvelope = self
                .call_json("core_course_delete_courses", &form, chunk.len())
                .await?;
            warnings.extend(env.warnings);
        }
        Ok(warnings)
    }

    /// `core_course_get_categories` with `criteria` (`id`, `ids`, `name`, `parent`...), without
    /// subcategories; no criteria = every visible category.
    pub async fn get_categories(
        &self,
        criteria: &[(&str, &str)],
    ) -> Result<Vec<Category>, MoodleError> {
        let mut form = Form::new();
        let items: Vec<Vec<(&str, String)>> = criteria
            .iter()
            .map(|(k, v)| vec![("value", v.to_string()), ("key", k.to_string())])
            .collect();
        form.push_objects("criteria", &items)
            .push_bool("addsubcategories", false);
        self.call_json("core_course_get_categories", &form, criteria.len())
            .await
    }
}
