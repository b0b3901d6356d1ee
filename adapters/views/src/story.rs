//! One OpenVLE event's story for a person: one line per stored event, with position, time,
//! stream, type and a short sentence. Pure: the caller reads the events (see
//! [`crate::read::event_story`]) and prints.

use chrono::{DateTime, SecondsFormat, Utc};
use cqrs_es::Aggregate;
use domain::environment::{Environment, EnvironmentEvent};
use domain::event::{EventEvent, VleEvent};
use domain::moodle_sync::{LinkKind, MoodleSync, MoodleSyncEvent};
use domain::participant::Participant;
use store::StoredEvent;

/// Which events of a story to show. Empty `types` shows every type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoryFilter {
    /// Event types (`Enrolled`, `StepFailed`, …) or streams (`event`, `moodle_sync`); an event
    /// matching any of them is shown. Case-insensitive.
    pub types: Vec<String>,
    /// recorded_at >= from
    pub from: Option<DateTime<Utc>>,
    /// recorded_at <= to
    pub to: Option<DateTime<Utc>>,
}

impl StoryFilter {
    /// Parses `--type` (comma-separated list allowed), `--from` and `--to` (RFC 3339).
    pub fn parse(
        types: Option<&str>,
        from: Option<&str>,
        to: Option<&str>,
    ) -> Result<StoryFilter, String> {
        let parse_time = |name: &str, raw: Option<&str>| -> Result<Option<DateTime<Utc>>, String> {
            raw.map(|t| {
                DateTime::parse_from_rfc3339(t.trim())
                    .map(|d| d.with_timezone(&Utc))
                    .map_err(|e| {
                        format!("--{name} {t:?} is not an RFC 3339 time (e.g. 2024-05-01T10:00:00Z): {e}")
                    })
            })
            .transpose()
        };
        Ok(StoryFilter {
            types: types
                .map(|t| {
                    t.split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            from: parse_time("from", from)?,
            to: parse_time("to", to)?,
        })
    }

    pub fn matches(&self, e: &StoredEvent) -> bool {
        let type_ok = self.types.is_empty()
            || self.types.iter().any(|t| {
                t.eq_ignore_ascii_case(&e.event_type) || t.eq_ignore_ascii_case(&e.aggregate_type)
            });
        type_ok
            && !matches!(self.from, Some(from) if e.recorded_at < from)
            && !matches!(self.to, Some(to) if e.recorded_at > to)
    }
}

fn who(p: &Participant) -> String {
    format!("{} ({}, {})", p.id, p.role.as_str(), p.email)
}

/// Shortens a free-text message to `max` characters.
fn short(text: &str, max: usize) -> String {
    let text = text.trim();
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let cut: String = text.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

/// What differs between two versions of a participant, one `field a → b` per change.
fn changes(before: &Participant, after: &Participant) -> Vec<String> {
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "none".to_string());
    let mut out = Vec::new();
    let mut diff = |field: &str, a: String, b: String| {
        if a != b {
            out.push(format!("{field} {a} → {b}"));
        }
    };
    diff(
        "role",
        before.role.as_str().into(),
        after.role.as_str().into(),
    );
    diff(
        "first name",
        before.first_name.clone(),
        after.first_name.clone(),
    );
    diff(
        "last name",
        before.last_name.clone(),
        after.last_name.clone(),
    );
    diff("email", before.email.clone(), after.email.clone());
    diff("username", opt(&before.username), opt(&after.username));
    diff("idnumber", opt(&before.idnumber), opt(&after.idnumber));
    out
}

fn event_sentence(e: EventEvent) -> String {
    match e {
        EventEvent::Deployed {
            name,
            environment_id,
            template_course_id,
            participants,
            ..
        } => {
            let template = match template_course_id {
                Some(t) => format!("template course {t}"),
                None => "no Moodle template".to_string(),
            };
            format!(
                "deployed {name:?} from environment {environment_id} ({template}) with {} participant{}",
                participants.len(),
                if participants.len() == 1 { "" } else { "s" }
            )
        }
        EventEvent::EventChanged { name, schedule } => {
            let day = |t: Option<i64>| {
                t.and_then(domain::course::day_of)
                    .unwrap_or_else(|| "none".to_string())
            };
            format!(
                "event changed: name {name:?}, starts {}, ends {}",
                day(schedule.starts_at),
                day(schedule.ends_at)
            )
        }
        EventEvent::TemplateChanged { template_course_id } => {
            format!("Moodle template changed to course {template_course_id} (for a course not made yet)")
        }
        EventEvent::ParticipantAdded { participant } => {
            format!("participant {} added", who(&participant))
        }
        EventEvent::ParticipantRemoved { participant } => {
            format!("participant {} removed", who(&participant))
        }
        EventEvent::ParticipantChanged { before, after } => {
            format!(
                "participant {} changed: {}",
                before.id,
                changes(&before, &after).join(", ")
            )
        }
        EventEvent::Ended => "event ended".to_string(),
        EventEvent::Deleted => "event deleted".to_string(),
    }
}

fn sync_sentence(e: MoodleSyncEvent) -> String {
    match e {
        MoodleSyncEvent::CourseDuplicated {
            course_id,
            shortname,
            template_course_id,
            category_id,
            adopted,
            ..
        } => {
            let how = if adopted {
                ", adopted: it already existed from an earlier attempt"
            } else {
                ""
            };
            format!(
                "course {course_id} duplicated from template {template_course_id} (shortname {shortname}, category {category_id}{how})"
            )
        }
        MoodleSyncEvent::CourseUpdated {
            course_id, props, ..
        } => {
            let mut parts = Vec::new();
            let day = |t: i64| match t {
                0 => "none".to_string(),
                t => domain::course::day_of(t).unwrap_or_else(|| t.to_string()),
            };
            if let Some(v) = &props.fullname {
                parts.push(format!("full name {v:?}"));
            }
            if let Some(v) = &props.shortname {
                parts.push(format!("shortname {v:?}"));
            }
            if let Some(v) = &props.idnumber {
                parts.push(format!("idnumber {v:?}"));
            }
            if let Some(v) = props.category_id {
                parts.push(format!("category {v}"));
            }
            if let Some(v) = props.startdate {
                parts.push(format!("start {}", day(v)));
            }
            if let Some(v) = props.enddate {
                parts.push(format!("end {}", day(v)));
            }
            format!("course {course_id} now has {}", parts.join(", "))
        }
        MoodleSyncEvent::UserLinked {
            participant_id,
            moodle_user_id,
            username,
            how,
            key,
            differs,
            ..
        } => {
            let how = match (how, &key) {
                (LinkKind::Matched, Some(k)) => {
                    format!("matched an existing account by {} {}", k.field.as_str(), k.value)
                }
                (LinkKind::Matched, None) => "matched an existing account".to_string(),
                (LinkKind::Created, _) => "created the account".to_string(),
            };
            let differs = differs.map(|d| format!("; {d}")).unwrap_or_default();
            format!(
                "{participant_id} linked to Moodle user {moodle_user_id} ({username}, {how}){differs}"
            )
        }
        MoodleSyncEvent::RoleUnassigned {
            participant_id,
            moodle_user_id,
            role_id,
            ..
        } => format!(
            "{participant_id}'s former role {role_id} taken from Moodle user {moodle_user_id} in the course"
        ),
        MoodleSyncEvent::AccountUpdated {
            participant_id,
            moodle_user_id,
            ..
        } => format!(
            "{participant_id}'s changed name, email or idnumber written to Moodle user {moodle_user_id}"
        ),
        MoodleSyncEvent::Enrolled {
            participant_id,
            moodle_user_id,
            role_id,
            ..
        } => format!("enrolled {participant_id} as role {role_id} (user {moodle_user_id})"),
        MoodleSyncEvent::Suspended {
            participant_id,
            moodle_user_id,
            ..
        } => format!("suspended {participant_id}'s enrolment (user {moodle_user_id})"),
        MoodleSyncEvent::Unenrolled {
            participant_id,
            moodle_user_id,
            ..
        } => format!("unenrolled {participant_id} (user {moodle_user_id})"),
        MoodleSyncEvent::CourseHidden { course_id, .. } => format!("course {course_id} hidden"),
        MoodleSyncEvent::CourseShown { course_id, .. } => {
            format!("course {course_id} shown again")
        }
        MoodleSyncEvent::CourseDeleted { course_id, .. } => format!("course {course_id} deleted"),
        MoodleSyncEvent::CourseLost { course_id, .. } => {
            format!("course {course_id} is gone from Moodle; it will be created again")
        }
        MoodleSyncEvent::UserLinkLost {
            participant_id,
            moodle_user_id,
            ..
        } => format!(
            "{participant_id}'s Moodle user {moodle_user_id} is gone; the account will be matched again"
        ),
        MoodleSyncEvent::StepFailed {
            step,
            code,
            message,
            attempt,
            transient,
            participant_id,
            ..
        } => {
            let whom = participant_id
                .map(|p| format!(" for {p}"))
                .unwrap_or_default();
            let next = if transient {
                "will retry"
            } else {
                "permanent"
            };
            let message = short(&message, 80);
            let message = if message.is_empty() {
                String::new()
            } else {
                format!(": {message}")
            };
            format!("step {step} failed{whom}: {code} (attempt {attempt}, {next}){message}")
        }
        MoodleSyncEvent::ParticipantParked {
            participant_id,
            code,
            reason,
            ..
        } => format!(
            "{participant_id} parked: {code} ({}); waits for an operator",
            short(&reason, 80)
        ),
        MoodleSyncEvent::Parked {
            step, code, reason, ..
        } => format!(
            "saga parked at step {step}: {code} ({}); waits for an operator (`retry`)",
            short(&reason, 80)
        ),
        MoodleSyncEvent::Resumed { by } => format!("resumed by {by}"),
        MoodleSyncEvent::CourseDuplicationRefused { attempt, .. } => {
            format!("duplication {attempt} refused by Moodle: nothing of it is running")
        }
        MoodleSyncEvent::ParkLifted { .. } => {
            "park lifted: the event changed since (renamed, re-dated, another template, ended or deleted)"
                .to_string()
        }
        MoodleSyncEvent::ParticipantResumed { participant_id, by } => {
            format!("participant {participant_id} retried by {by}")
        }
        MoodleSyncEvent::DriftObserved { drift, applied, by } => {
            if drift.is_empty() {
                format!("reconcile by {by}: Moodle matches the log")
            } else {
                let first = &drift[0];
                let more = match drift.len() - 1 {
                    0 => String::new(),
                    n => format!(" and {n} more"),
                };
                let what = if applied { "corrected" } else { "reported" };
                format!(
                    "reconcile by {by}: {} difference{} {what}: {} expected {}, found {}{more}",
                    drift.len(),
                    if drift.len() == 1 { "" } else { "s" },
                    first.what,
                    first.expected,
                    first.actual
                )
            }
        }
        MoodleSyncEvent::CourseAbsent { shortname, .. } => {
            format!("course {shortname} is not in Moodle: nothing to delete")
        }
        MoodleSyncEvent::CourseKept { course_id, .. } => {
            format!("course {course_id} kept (course deletion was off when the event was deleted)")
        }
        MoodleSyncEvent::CourseDuplicationStarted { shortname, .. } => {
            format!("asking Moodle to duplicate the template as {shortname}")
        }
    }
}

fn environment_sentence(e: EnvironmentEvent) -> String {
    match e {
        EnvironmentEvent::EnvironmentCreated { id, name } => {
            format!("environment {id} created ({name:?})")
        }
        EnvironmentEvent::EnvironmentRenamed { name } => format!("environment renamed {name:?}"),
        EnvironmentEvent::TemplateLinked { course_id } => {
            format!("template course {course_id} linked")
        }
        EnvironmentEvent::TemplateUnlinked { previous_course_id } => {
            format!("template course {previous_course_id} unlinked")
        }
        EnvironmentEvent::CourseShapeChanged { course } => {
            let mut parts = Vec::new();
            if let Some(c) = course.category_id {
                parts.push(format!("category {c}"));
            }
            for (what, t) in [
                ("full name", &course.fullname_template),
                ("shortname", &course.shortname_template),
                ("idnumber", &course.idnumber_template),
            ] {
                if let Some(t) = t {
                    parts.push(format!("{what} {t:?}"));
                }
            }
            if let Some(v) = course.visibility {
                parts.push(format!("visibility {}", v.as_str()));
            }
            if let Some(c) = course.archive_category_id {
                parts.push(format!("archive category {c}"));
            }
            if parts.is_empty() {
                "courses shaped by the global defaults again".to_string()
            } else {
                format!("courses shaped: {}", parts.join(", "))
            }
        }
    }
}

/// The short human sentence of one stored event. An event this binary cannot decode is shown
/// as such (the story still prints).
pub fn sentence(e: &StoredEvent) -> String {
    let decoded = if e.aggregate_type == VleEvent::TYPE {
        e.decode::<VleEvent>().map(event_sentence)
    } else if e.aggregate_type == MoodleSync::TYPE {
        e.decode::<MoodleSync>().map(sync_sentence)
    } else if e.aggregate_type == Environment::TYPE {
        e.decode::<Environment>().map(environment_sentence)
    } else {
        return format!("{} of unknown stream {}", e.event_type, e.aggregate_type);
    };
    decoded.unwrap_or_else(|err| format!("(cannot decode this {}: {err})", e.event_type))
}

/// `position  time  stream  type  sentence`, aligned for a terminal.
pub fn line(e: &StoredEvent) -> String {
    format!(
        "{:>8}  {}  {:<11}  {:<18}  {}",
        e.position,
        e.recorded_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        e.aggregate_type,
        e.event_type,
        sentence(e)
    )
}

/// The heading printed above a story.
pub fn header(event_id: &str) -> String {
    format!(
        "{:>8}  {:<24}  {:<11}  {:<18}  story of OpenVLE event {event_id}",
        "position", "time", "stream", "type"
    )
}

/// The closing line: how many events were shown.
pub fn footer(event_id: &str, shown: u64, filtered: bool) -> String {
    match (shown, filtered) {
        (0, false) => format!("no event recorded for OpenVLE event {event_id}"),
        (0, true) => format!("no event of OpenVLE event {event_id} matches the filters"),
        (n, _) => format!(
            "{n} event{} shown{}",
            if n == 1 { "" } else { "s" },
            if filtered { " (filtered)" } else { "" }
        ),
    }
}

#[cfg(test)]
mod tests;
