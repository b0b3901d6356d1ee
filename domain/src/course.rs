//! How an event's Moodle course is shaped: its category, its names from templates, its
//! visibility at deploy and the category it is archived to at the end.
//!
//! An environment may choose each of these ([`CourseShape`]); what it leaves out comes from the
//! global `MOODLE_COURSE_*` defaults ([`CourseDefaults`]). What applies to one event is resolved
//! once, at deploy, into a [`CourseSpec`] frozen into `Deployed`: a replay never depends on
//! today's environment or settings. The names are rendered from the spec and the event's current
//! name and dates ([`CourseSpec::names`]), so a renamed event's course follows.

use serde::{Deserialize, Serialize};

use crate::DomainError;

/// Moodle's column limits (`course.fullname` varchar(254), `shortname` 255, `idnumber` 100).
pub const FULLNAME_MAX: usize = 254;
pub const SHORTNAME_MAX: usize = 255;
pub const IDNUMBER_MAX: usize = 100;

/// The placeholders a course name template may use.
pub const PLACEHOLDERS: &[&str] = &[
    "event_name",
    "event_id",
    "event_short_id",
    "environment_id",
    "environment_name",
    "starts_on",
    "year",
];

/// Whether the course is visible at deploy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CourseVisibility {
    /// Visible from the first second.
    #[default]
    Visible,
    /// Created hidden; a teacher shows it when ready (the engine does not show it).
    Hidden,
    /// Hidden until the event's start (`starts_at`), then shown by the engine.
    AtStart,
}

impl CourseVisibility {
    pub fn as_str(self) -> &'static str {
        match self {
            CourseVisibility::Visible => "visible",
            CourseVisibility::Hidden => "hidden",
            CourseVisibility::AtStart => "at_start",
        }
    }

    pub fn parse(s: &str) -> Option<CourseVisibility> {
        match s.trim().to_ascii_lowercase().as_str() {
            "visible" => Some(CourseVisibility::Visible),
            "hidden" => Some(CourseVisibility::Hidden),
            "at_start" => Some(CourseVisibility::AtStart),
            _ => None,
        }
    }
}

/// An environment's own choices; each `None` leaves the global default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CourseShape {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fullname_template: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shortname_template: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idnumber_template: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visibility: Option<CourseVisibility>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive_category_id: Option<i64>,
}

/// The global defaults (`MOODLE_COURSE_*`), complete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CourseDefaults {
    /// MOODLE_COURSE_CATEGORY_ID (None while Moodle is off and it is unset).
    pub category_id: Option<i64>,
    pub fullname_template: String,
    pub shortname_template: String,
    /// Empty: courses get no idnumber.
    pub idnumber_template: String,
    pub visibility: CourseVisibility,
    pub archive_category_id: Option<i64>,
}

impl Default for CourseDefaults {
    fn default() -> Self {
        CourseDefaults {
            category_id: None,
            fullname_template: "{event_name}".into(),
            shortname_template: "{event_name} ({event_short_id})".into(),
            idnumber_template: "ovle-{event_id}".into(),
            visibility: CourseVisibility::Visible,
            archive_category_id: None,
        }
    }
}

/// What applies to one event's course, frozen into `Deployed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CourseSpec {
    /// None: MOODLE_COURSE_CATEGORY_ID as it is when the course is made (unset at deploy).
    pub category_id: Option<i64>,
    pub fullname_template: String,
    pub shortname_template: String,
    pub idnumber_template: String,
    pub visibility: CourseVisibility,
    pub archive_category_id: Option<i64>,
    /// The environment's name at deploy (`{environment_name}`).
    pub environment_name: String,
    /// The day of the deploy, YYYY-MM-DD (`{starts_on}` and `{year}` without a start date).
    pub deployed_on: String,
}

impl CourseSpec {
    /// The environment's choices over the defaults.
    pub fn resolve(
        shape: &CourseShape,
        defaults: &CourseDefaults,
        environment_name: &str,
        deployed_on: &str,
    ) -> CourseSpec {
        let pick = |own: &Option<String>, default: &String| own.clone().unwrap_or(default.clone());
        CourseSpec {
            category_id: shape.category_id.or(defaults.category_id),
            fullname_template: pick(&shape.fullname_template, &defaults.fullname_template),
            shortname_template: pick(&shape.shortname_template, &defaults.shortname_template),
            idnumber_template: pick(&shape.idnumber_template, &defaults.idnumber_template),
            visibility: shape.visibility.unwrap_or(defaults.visibility),
            archive_category_id: shape.archive_category_id.or(defaults.archive_category_id),
            environment_name: environment_name.to_string(),
            deployed_on: deployed_on.to_string(),
        }
    }

    /// The course's names for the event as it is now.
    pub fn names(&self, event: &CourseVars<'_>) -> CourseNames {
        let values = Values::of(self, event);
        let idnumber = render(&self.idnumber_template, &values, IDNUMBER_MAX);
        CourseNames {
            fullname: render(&self.fullname_template, &values, FULLNAME_MAX),
            shortname: render(&self.shortname_template, &values, SHORTNAME_MAX),
            idnumber: Some(idnumber).filter(|s| !s.is_empty()),
        }
    }
}

/// What of the event a name may show.
#[derive(Debug, Clone, Copy)]
pub struct CourseVars<'a> {
    pub event_id: &'a str,
    pub event_name: &'a str,
    pub environment_id: &'a str,
    /// Unix seconds.
    pub starts_at: Option<i64>,
}

/// A course's names, rendered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CourseNames {
    pub fullname: String,
    pub shortname: String,
    pub idnumber: Option<String>,
}

/// YYYY-MM-DD of a unix time (UTC).
pub fn day_of(unix: i64) -> Option<String> {
    chrono::DateTime::from_timestamp(unix, 0).map(|t| t.format("%Y-%m-%d").to_string())
}

struct Values {
    pairs: Vec<(&'static str, String)>,
}

impl Values {
    fn of(spec: &CourseSpec, e: &CourseVars<'_>) -> Values {
        let starts_on = e
            .starts_at
            .and_then(day_of)
            .unwrap_or_else(|| spec.deployed_on.clone());
        // A UUID's first 8 hex digits; an id of another form is shown whole (cut, it could
        // be another event's).
        let short: String = match uuid::Uuid::parse_str(e.event_id) {
            Ok(u) => u.simple().to_string().chars().take(8).collect(),
            Err(_) => e.event_id.to_string(),
        };
        Values {
            pairs: vec![
                ("event_name", e.event_name.to_string()),
                ("event_id", e.event_id.to_string()),
                ("event_short_id", short),
                ("environment_id", e.environment_id.to_string()),
                ("environment_name", spec.environment_name.clone()),
                ("year", starts_on.chars().take(4).collect()),
                ("starts_on", starts_on),
            ],
        }
    }

    fn get(&self, name: &str) -> &str {
        self.pairs
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }
}

/// A template, parsed: text and placeholders.
enum Segment<'a> {
    Text(&'a str),
    Placeholder(&'static str),
}

fn parse(template: &str) -> Result<Vec<Segment<'_>>, String> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find(['{', '}']) {
        if rest[open..].starts_with('}') {
            return Err(format!("a '}}' without its '{{' at {:?}", &rest[open..]));
        }
        out.push(Segment::Text(&rest[..open]));
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            return Err(format!("a '{{' without its '}}' at {:?}", &rest[open..]));
        };
        let name = &after[..close];
        match PLACEHOLDERS.iter().find(|p| **p == name) {
            Some(p) => out.push(Segment::Placeholder(p)),
            None => {
                return Err(format!(
                    "unknown placeholder {{{name}}} (known: {})",
                    PLACEHOLDERS
                        .iter()
                        .map(|p| format!("{{{p}}}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            }
        }
        rest = &after[close + 1..];
    }
    out.push(Segment::Text(rest));
    Ok(out)
}

/// Moodle refuses tags in course names (its PARAM_TEXT would change them): keep the text, turn
/// the angle brackets into look-alikes.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '<' => '‹',
            '>' => '›',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect()
}

/// Renders `template` within `max` characters: the event's and the environment's names give
/// way first (so an id that makes the name unique is never cut off), then the whole is cut.
/// A template that does not parse (impossible for a checked one) renders as its text.
fn render(template: &str, values: &Values, max: usize) -> String {
    let Ok(segments) = parse(template) else {
        return clean(template).trim().chars().take(max).collect();
    };
    let build = |cut: &dyn Fn(&str) -> Option<usize>| -> String {
        let mut s = String::new();
        for seg in &segments {
            match seg {
                Segment::Text(t) => s.push_str(t),
                Segment::Placeholder(p) => {
                    let v = values.get(p);
                    match cut(p) {
                        Some(n) => s.extend(v.chars().take(n)),
                        None => s.push_str(v),
                    }
                }
            }
        }
        clean(&s).trim().to_string()
    };
    let full = build(&|_| None);
    let over = full.chars().count().saturating_sub(max);
    if over == 0 {
        return full;
    }
    let uses = |p: &str| {
        segments
            .iter()
            .filter(|s| matches!(s, Segment::Placeholder(q) if *q == p))
            .count()
    };
    let (names, envs) = (uses("event_name"), uses("environment_name"));
    let name_len = values.get("event_name").chars().count();
    let env_len = values.get("environment_name").chars().count();
    let name_cut = over.div_ceil(names.max(1)).min(name_len);
    let left = over.saturating_sub(name_cut * names);
    let env_cut = left.div_ceil(envs.max(1)).min(env_len);
    let shrunk = build(&|p| match p {
        "event_name" if names > 0 => Some(name_len - name_cut),
        "environment_name" if envs > 0 => Some(env_len - env_cut),
        _ => None,
    });
    shrunk.chars().take(max).collect()
}

/// Checks one template as an environment or a default gives it: it parses, names only known
/// placeholders, and (shortname, idnumber) differs from one event to the next; and the parts
/// that do not give way (see [`CourseSpec::names`]) fit Moodle's limit. `field` names it in
/// the refusal (`moodle_course_shortname_template`, `MOODLE_COURSE_SHORTNAME_TEMPLATE`…).
pub fn check_template(
    field: &str,
    kind: NameKind,
    template: &str,
    environment_name: &str,
) -> Result<(), DomainError> {
    let refuse = |reason: String| DomainError::InvalidCourseTemplate {
        field: field.to_string(),
        reason,
    };
    let segments = parse(template).map_err(refuse)?;
    if kind != NameKind::Idnumber && template.trim().is_empty() {
        return Err(refuse("must not be empty".into()));
    }
    let per_event = segments.iter().any(|s| {
        matches!(s, Segment::Placeholder(p) if ["event_name", "event_id", "event_short_id"].contains(p))
    });
    if kind != NameKind::Fullname && !template.trim().is_empty() && !per_event {
        return Err(refuse(format!(
            "{template:?} would give every event's course the same {}: use {{event_short_id}}, {{event_id}} or {{event_name}}",
            kind.as_str()
        )));
    }
    let sample = CourseSpec {
        environment_name: environment_name.to_string(),
        deployed_on: "2026-01-01".into(),
        ..CourseSpec::resolve(&CourseShape::default(), &CourseDefaults::default(), "", "")
    };
    // The longest event id a UUID gives, an empty event name (it gives way).
    let vars = CourseVars {
        event_id: "00000000-0000-0000-0000-000000000000",
        event_name: "",
        environment_id: "00000000-0000-0000-0000-000000000000",
        starts_at: None,
    };
    let values = Values::of(&sample, &vars);
    let fixed: usize = segments
        .iter()
        .map(|s| match s {
            Segment::Text(t) => t.chars().count(),
            Segment::Placeholder("environment_name" | "event_name") => 0,
            Segment::Placeholder(p) => values.get(p).chars().count(),
        })
        .sum();
    if fixed > kind.max() {
        return Err(refuse(format!(
            "gives {fixed} characters before any name, over Moodle's limit of {} for a course {}",
            kind.max(),
            kind.as_str()
        )));
    }
    Ok(())
}

/// Which of a course's names a template makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    Fullname,
    Shortname,
    Idnumber,
}

impl NameKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NameKind::Fullname => "full name",
            NameKind::Shortname => "shortname",
            NameKind::Idnumber => "idnumber",
        }
    }

    pub fn max(self) -> usize {
        match self {
            NameKind::Fullname => FULLNAME_MAX,
            NameKind::Shortname => SHORTNAME_MAX,
            NameKind::Idnumber => IDNUMBER_MAX,
        }
    }
}

impl CourseShape {
    /// Checks what the environment sets (`moodle_course_*` fields of the API).
    pub fn check(&self, environment_name: &str) -> Result<(), DomainError> {
        for (field, kind, template) in [
            (
                "moodle_course_fullname_template",
                NameKind::Fullname,
                &self.fullname_template,
            ),
            (
                "moodle_course_shortname_template",
                NameKind::Shortname,
                &self.shortname_template,
            ),
            (
                "moodle_course_idnumber_template",
                NameKind::Idnumber,
                &self.idnumber_template,
            ),
        ] {
            if let Some(t) = template {
                check_template(field, kind, t, environment_name)?;
            }
        }
        for (field, id) in [
            ("moodle_category_id", self.category_id),
            ("moodle_archive_category_id", self.archive_category_id),
        ] {
            if id.is_some_and(|id| id < 1) {
                return Err(DomainError::invalid(
                    field,
                    "must be a Moodle category id (1 or more)",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
