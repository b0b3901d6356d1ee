//! The event's course as the log wants it now (names, category, dates, visibility), what of that
//! the record does not say yet, and whether a course found in Moodle is the engine's own.
//!
//! | status            | names, dates           | category                      | visible                                 |
//! |-------------------|------------------------|-------------------------------|-----------------------------------------|
//! | Deployed          | from the frozen spec   | the spec's (else the global)  | `visible`: yes; `hidden`: not managed (made hidden); `at_start`: from the start |
//! | Ended, or kept    | as while it ran        | the archive category, if any  | no                                      |
//!
//! An event deployed before course shaping (no spec in `Deployed`) keeps the old rules:
//! `ovle-<event id>`, the event's name, the global category, visible while it runs; its names,
//! dates and category are not managed.

use domain::course::CourseVisibility;
use domain::event::Status;
use domain::moodle_sync::{CourseProps, MoodleSync};

use super::desired::Desired;
use super::settings::SagaSettings;

/// What the log wants of the course now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CourseTarget {
    pub shortname: String,
    pub fullname: String,
    /// The category it is made in.
    pub create_in: i64,
    /// Visible to students (None: not managed while the event runs).
    pub visible: Option<bool>,
    /// What the engine keeps the course's names, category and dates to (None fields: left as
    /// they are).
    pub props: CourseProps,
    /// When the wish changes by itself (ms): an `at_start` course is to be shown at the start.
    pub wake_at_ms: Option<i64>,
}

/// The course of `desired` as wanted at `desired.now_ms`.
pub fn target(desired: &Desired, settings: &SagaSettings) -> CourseTarget {
    let running = desired.status == Status::Deployed;
    let Some(spec) = &desired.course else {
        return CourseTarget {
            shortname: desired.shortname(),
            fullname: desired.name.clone(),
            create_in: settings.category_id,
            visible: Some(running),
            props: CourseProps::default(),
            wake_at_ms: None,
        };
    };
    let names = spec.names(&desired.course_vars());
    let create_in = spec.category_id.unwrap_or(settings.category_id);
    let start_ms = desired.schedule.starts_at.map(|s| s.saturating_mul(1000));
    let started = match (start_ms, desired.now_ms) {
        (None, _) => true,
        (Some(start), Some(now)) => now >= start,
        (Some(_), None) => false,
    };
    let visible = match (running, spec.visibility) {
        (false, _) => Some(false),
        (true, CourseVisibility::Visible) => Some(true),
        (true, CourseVisibility::Hidden) => None,
        (true, CourseVisibility::AtStart) => Some(started),
    };
    let wake_at_ms = match (running, spec.visibility) {
        (true, CourseVisibility::AtStart) if !started => start_ms,
        _ => None,
    };
    let category_id = if running {
        create_in
    } else {
        spec.archive_category_id.unwrap_or(create_in)
    };
    CourseTarget {
        props: CourseProps {
            fullname: Some(names.fullname.clone()),
            shortname: Some(names.shortname.clone()),
            idnumber: names.idnumber,
            category_id: Some(category_id),
            startdate: desired.schedule.starts_at,
            // Moodle's "no end date" is 0: an end removed is set to 0, not left.
            enddate: desired.schedule.ends_at.or(desired.changed.map(|_| 0)),
        },
        shortname: names.shortname,
        fullname: names.fullname,
        create_in,
        visible,
        wake_at_ms,
    }
}

/// What the engine still has to write to the recorded course: each managed field the record
/// does not hold yet. None when the record holds them all.
pub fn changes(target: &CourseTarget, recorded: &MoodleSync) -> Option<CourseProps> {
    fn due<T: Clone + PartialEq>(want: &Option<T>, have: &Option<T>) -> Option<T> {
        want.as_ref().filter(|w| have.as_ref() != Some(*w)).cloned()
    }
    let (w, h) = (&target.props, &recorded.course_props);
    let out = CourseProps {
        fullname: due(&w.fullname, &h.fullname),
        shortname: due(&w.shortname, &h.shortname),
        idnumber: due(&w.idnumber, &h.idnumber),
        category_id: due(&w.category_id, &h.category_id),
        startdate: due(&w.startdate, &h.startdate),
        // An end never set need not be cleared.
        enddate: due(&w.enddate, &h.enddate).filter(|e| *e != 0 || h.enddate.is_some()),
    };
    (!out.is_empty()).then_some(out)
}

/// Whose a course found under the event's shortname is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whose {
    /// The engine made it for this event: adopt it.
    Ours,
    /// Someone else's: never adopted; the event is parked naming it.
    Stranger,
}

/// A found course is the event's own when it carries the event's idnumber (`own_idnumber`: the
/// engine set it), or when it has none and a duplication of this event was announced (its answer
/// was lost, or the process crashed before recording it: Moodle sets no idnumber on a copy). The
/// course of an event deployed before course shaping (`shaped` false) is found by
/// `ovle-<event id>` and adopted as before.
pub fn whose(
    shaped: bool,
    own_idnumber: Option<&str>,
    found_idnumber: Option<&str>,
    announced: bool,
) -> Whose {
    if !shaped {
        return Whose::Ours;
    }
    match found_idnumber.filter(|i| !i.is_empty()) {
        Some(found) if own_idnumber == Some(found) => Whose::Ours,
        Some(_) => Whose::Stranger,
        None if announced => Whose::Ours,
        None => Whose::Stranger,
    }
}

/// One field of the course changed in Moodle since the engine wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeDrift {
    /// `course full name`, `course shortname`, `course idnumber`, `course category`, …
    pub what: &'static str,
    pub expected: String,
    pub actual: String,
}

/// The fields Moodle shows otherwise than the engine wrote them (the record holds the wanted
/// value, Moodle another: changed by hand), and the correction to record: what Moodle holds,
/// from which the planner writes the wanted values back. A field the record does not hold yet is
/// the saga's pending work, not drift.
pub fn drift(
    target: &CourseTarget,
    recorded: &MoodleSync,
    observed: &CourseProps,
) -> (Vec<ShapeDrift>, CourseProps) {
    let (w, h, o) = (&target.props, &recorded.course_props, observed);
    let mut rows = Vec::new();
    let mut seen = CourseProps::default();
    let day = |t: i64| match t {
        0 => "none".to_string(),
        t => domain::course::day_of(t).unwrap_or_else(|| t.to_string()),
    };
    let text = |v: &String| format!("{v:?}");
    fn differs<T: PartialEq>(w: &Option<T>, h: &Option<T>, o: &Option<T>) -> bool {
        w.is_some() && w == h && o.is_some() && o != w
    }
    macro_rules! field {
        ($f:ident, $what:expr, $show:expr) => {
            if differs(&w.$f, &h.$f, &o.$f) {
                if let (Some(want), Some(got)) = (&w.$f, &o.$f) {
                    rows.push(ShapeDrift {
                        what: $what,
                        expected: $show(want),
                        actual: $show(got),
                    });
                    seen.$f = Some(got.clone());
                }
            }
        };
    }
    field!(fullname, "course full name", text);
    field!(shortname, "course shortname", text);
    field!(idnumber, "course idnumber", text);
    field!(category_id, "course category", |c: &i64| format!(
        "category {c}"
    ));
    field!(startdate, "course start date", |t: &i64| day(*t));
    field!(enddate, "course end date", |t: &i64| day(*t));
    (rows, seen)
}

#[cfg(test)]
mod tests;
