//! Whether the Moodle things an environment or a setting points at exist: template courses and
//! categories. The API asks before it records an environment, the preflight asks about what is
//! recorded and configured: one rule for both.

use serde::Serialize;

use crate::client::MoodleClient;
use crate::error::MoodleError;
use crate::types::CourseField;

/// A Moodle thing something points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Target {
    /// A course to duplicate (`moodle_template_course_id`).
    TemplateCourse(i64),
    /// A category (`moodle_category_id`, `MOODLE_COURSE_CATEGORY_ID`, the archive's).
    Category(i64),
}

impl Target {
    /// Its Moodle id.
    pub fn id(self) -> i64 {
        match self {
            Target::TemplateCourse(id) | Target::Category(id) => id,
        }
    }

    /// The stable code of a missing one: `unknown_template_course`, `unknown_category`.
    pub fn missing_code(self) -> &'static str {
        match self {
            Target::TemplateCourse(_) => "unknown_template_course",
            Target::Category(_) => "unknown_category",
        }
    }

    /// What a person reads when it is missing, `field` naming who points at it.
    pub fn missing_message(self, field: &str) -> String {
        match self {
            Target::TemplateCourse(id) => format!(
                "{field}: Moodle has no course {id}, or the token's user cannot see it (check the id in Moodle's course URL, course/view.php?id=…)"
            ),
            Target::Category(id) => format!(
                "{field}: Moodle has no course category {id}, or the token's user cannot see it (a hidden category needs moodle/category:viewhiddencategories; check the id in Site administration > Courses > Manage courses and categories)"
            ),
        }
    }
}

/// The items of `targets` that Moodle does not have (each with its label), in their order.
/// Each distinct target is asked once. An error is a call that failed: nothing can be said.
pub async fn missing<'a, L: Clone>(
    client: &MoodleClient,
    targets: &'a [(L, Target)],
) -> Result<Vec<&'a (L, Target)>, MoodleError> {
    let mut known: Vec<(Target, bool)> = Vec::new();
    let mut out = Vec::new();
    for item in targets {
        let target = item.1;
        let exists = match known.iter().find(|(t, _)| *t == target) {
            Some((_, exists)) => *exists,
            None => {
                let exists = exists(client, target).await?;
                known.push((target, exists));
                exists
            }
        };
        if !exists {
            out.push(item);
        }
    }
    Ok(out)
}

async fn exists(client: &MoodleClient, target: Target) -> Result<bool, MoodleError> {
    Ok(match target {
        Target::TemplateCourse(id) => client
            .get_courses_by_field(CourseField::Id, &id.to_string())
            .await?
            .iter()
            .any(|c| c.id == id),
        Target::Category(id) => client
            .get_categories(&[("id", &id.to_string())])
            .await?
            .iter()
            .any(|c| c.id == id),
    })
}

/// What an environment's template and course shape point at in Moodle, by field of the API.
pub fn of_shape(
    template: Option<i64>,
    shape: &domain::course::CourseShape,
) -> Vec<(&'static str, Target)> {
    [
        (
            "moodle_template_course_id",
            template.map(Target::TemplateCourse),
        ),
        (
            "moodle_category_id",
            shape.category_id.map(Target::Category),
        ),
        (
            "moodle_archive_category_id",
            shape.archive_category_id.map(Target::Category),
        ),
    ]
    .into_iter()
    .filter_map(|(field, target)| target.map(|t| (field, t)))
    .collect()
}

/// What a recorded environment points at in Moodle, each labelled with the environment and its
/// field.
pub fn of_environment(env: &domain::environment::Environment) -> Vec<(String, Target)> {
    of_shape(env.template_course_id, &env.course)
        .into_iter()
        .map(|(field, t)| (format!("environment {} {field}", env.id), t))
        .collect()
}

/// The categories the settings name.
pub fn of_settings(settings: &crate::MoodleSettings) -> Vec<(String, Target)> {
    [
        ("MOODLE_COURSE_CATEGORY_ID", settings.course_category_id),
        (
            "MOODLE_ARCHIVE_CATEGORY_ID",
            settings.course.archive_category_id,
        ),
    ]
    .into_iter()
    .filter_map(|(var, id)| id.map(|id| (var.to_string(), Target::Category(id))))
    .collect()
}
