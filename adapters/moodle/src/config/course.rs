//! The global course defaults: `MOODLE_COURSE_*_TEMPLATE`, `MOODLE_COURSE_VISIBILITY` and
//! `MOODLE_ARCHIVE_CATEGORY_ID`, each checked at start-up by the same rule an environment's own
//! template meets when it is set (`domain::course::check_template`).

use domain::course::{check_template, CourseDefaults, CourseVisibility, NameKind};
use domain::DomainError;

use super::{opt, pos_int, ConfigError};

/// The course defaults from `get` (a variable → its trimmed, non-empty value); `category_id`
/// is left to [`super::MoodleSettings::course_defaults`].
pub(super) fn defaults(
    get: &impl Fn(&str) -> Option<String>,
) -> Result<CourseDefaults, ConfigError> {
    let d = CourseDefaults::default();
    let template = |var: &'static str, kind: NameKind, default: String| {
        let value = get(var).unwrap_or(default);
        check_template(var, kind, &value, "").map_err(|e| match e {
            DomainError::InvalidCourseTemplate { reason, .. } => {
                ConfigError::Conflict { var, reason }
            }
            other => ConfigError::Conflict {
                var,
                reason: other.to_string(),
            },
        })?;
        Ok::<_, ConfigError>(value)
    };
    Ok(CourseDefaults {
        category_id: None,
        fullname_template: template(
            "MOODLE_COURSE_FULLNAME_TEMPLATE",
            NameKind::Fullname,
            d.fullname_template,
        )?,
        shortname_template: template(
            "MOODLE_COURSE_SHORTNAME_TEMPLATE",
            NameKind::Shortname,
            d.shortname_template,
        )?,
        idnumber_template: template(
            "MOODLE_COURSE_IDNUMBER_TEMPLATE",
            NameKind::Idnumber,
            d.idnumber_template,
        )?,
        visibility: opt(
            get("MOODLE_COURSE_VISIBILITY"),
            "MOODLE_COURSE_VISIBILITY",
            CourseVisibility::parse,
        )?
        .unwrap_or(d.visibility),
        archive_category_id: opt(
            get("MOODLE_ARCHIVE_CATEGORY_ID"),
            "MOODLE_ARCHIVE_CATEGORY_ID",
            pos_int,
        )?,
    })
}
