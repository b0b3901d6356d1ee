//! The seed's table as a tiny model: commands on environments and events, the domain's rules
//! (which commands are accepted), and what Moodle must hold once the saga has converged.
//!
//! | phase (linked environment) | Moodle                                                         |
//! |----------------------------|----------------------------------------------------------------|
//! | deployed                   | one course (idnumber `ovle-<id>`) in category 2, visible; every participant enrolled with their role (instructor 3, student 5) |
//! | ended                      | the course hidden; only the instructors enrolled                |
//! | deleted                    | no course (`MOODLE_DELETE_COURSE_ON_EVENT_DELETE=true`); the course as it was (`false`, [`Model::keep_course_on_delete`]) |
//!
//! With `MOODLE_REMOVAL_MODE=suspend` ([`Model::removal_suspends`]) a removed participant, and a
//! student of an ended event, stays enrolled with their role, suspended; added again, they are
//! active again.
//!
//! An event of an environment without a template has no course at all. Accounts: one per
//! person (no two accounts share an email case-insensitively or a username), and the engine
//! creates accounts only for people who were participants of a linked event.

use std::collections::{BTreeMap, BTreeSet};

use domain::participant::ParticipantInput;
use moodle_sim::{SimState, EVENTS_CATEGORY_ID};
use serde_json::{json, Value};

mod execute;
pub use execute::execute;

/// Lowercased email → (role id, suspended).
pub type Enrolments = BTreeMap<String, (i64, bool)>;

pub const INSTRUCTOR_ROLE: i64 = 3;
pub const STUDENT_ROLE: i64 = 5;

/// A participant as OpenVLE sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub id: String,
    pub email: String,
    pub instructor: bool,
}

impl Person {
    pub fn new(id: &str, email: &str, instructor: bool) -> Person {
        Person {
            id: id.into(),
            email: email.into(),
            instructor,
        }
    }

    pub fn role(&self) -> &'static str {
        if self.instructor {
            "instructor"
        } else {
            "student"
        }
    }

    pub fn role_id(&self) -> i64 {
        if self.instructor {
            INSTRUCTOR_ROLE
        } else {
            STUDENT_ROLE
        }
    }

    pub fn json(&self) -> Value {
        json!({
            "id": self.id,
            "email": self.email,
            "first_name": "First",
            "last_name": format!("Last {}", self.id),
            "role": self.role(),
        })
    }

    pub fn input(&self) -> ParticipantInput {
        ParticipantInput {
            idnumber: None,
            id: self.id.clone(),
            email: self.email.clone(),
            username: None,
            first_name: "First".into(),
            last_name: format!("Last {}", self.id),
            role: self.role().into(),
        }
    }
}

/// A command of OpenVLE core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cmd {
    Environment {
        id: String,
        template: Option<i64>,
    },
    Deploy {
        event: String,
        env: String,
        people: Vec<Person>,
    },
    Add {
        event: String,
        person: Person,
    },
    Remove {
        event: String,
        participant: String,
    },
    End {
        event: String,
    },
    Delete {
        event: String,
    },
}

impl Cmd {
    pub fn event(&self) -> Option<&str> {
        match self {
            Cmd::Environment { .. } => None,
            Cmd::Deploy { event, .. }
            | Cmd::Add { event, .. }
            | Cmd::Remove { event, .. }
            | Cmd::End { event }
            | Cmd::Delete { event } => Some(event),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Deployed,
    Ended,
    Deleted,
}

#[derive(Debug, Clone)]
pub struct ModelEvent {
    pub linked: bool,
    pub phase: Phase,
    pub participants: BTreeMap<String, Person>,
    /// Participants removed and not added again.
    pub removed: BTreeMap<String, Person>,
    /// Whether the event ended (it stays true once deleted).
    pub ended: bool,
    /// Deleted while [`Model::keep_course_on_delete`] was set: the course stays as it was.
    pub course_kept: bool,
}

/// The model: environments, events, and the accounts that may exist.
#[derive(Debug, Clone, Default)]
pub struct Model {
    pub envs: BTreeMap<String, Option<i64>>,
    pub events: BTreeMap<String, ModelEvent>,
    /// Lowercased emails of everyone who was ever a participant of a linked event.
    pub linked_emails: BTreeSet<String>,
    /// Lowercased emails of accounts made in Moodle by hand before the test.
    pub preexisting: BTreeSet<String>,
    /// The category the engine puts courses in (None: the simulator's events category).
    pub category: Option<i64>,
    /// `MOODLE_REMOVAL_MODE=suspend`: removals and the end of an event suspend enrolments.
    pub removal_suspends: bool,
    /// `MOODLE_DELETE_COURSE_ON_EVENT_DELETE=false`: a deletion leaves the course as it was
    /// (read when a deletion is applied, so a test may change it between commands).
    pub keep_course_on_delete: bool,
    /// What a course's shortname begins with when `MOODLE_COURSE_SHORTNAME_TEMPLATE` is set
    /// (it must also hold the event's short id); None: not checked.
    pub shortname_prefix: Option<String>,
}

impl Model {
    /// Applies `cmd` if the domain accepts it; returns whether it did.
    pub fn apply(&mut self, cmd: &Cmd) -> bool {
        match cmd {
            Cmd::Environment { id, template } => {
                self.envs.insert(id.clone(), *template);
                true
            }
            Cmd::Deploy { event, env, people } => {
                if self.events.contains_key(event) {
                    return false;
                }
                let Some(template) = self.envs.get(env) else {
                    return false;
                };
                let ids: BTreeSet<_> = people.iter().map(|p| &p.id).collect();
                let emails: BTreeSet<_> = people.iter().map(|p| p.email.to_lowercase()).collect();
                if ids.len() != people.len() || emails.len() != people.len() {
                    return false;
                }
                let linked = template.is_some();
                if linked {
                    self.linked_emails.extend(emails);
                }
                self.events.insert(
                    event.clone(),
                    ModelEvent {
                        linked,
                        phase: Phase::Deployed,
                        participants: people.iter().map(|p| (p.id.clone(), p.clone())).collect(),
                        removed: BTreeMap::new(),
                        ended: false,
                        course_kept: false,
                    },
                );
                true
            }
            Cmd::Add { event, person } => {
                let Some(e) = self.events.get_mut(event) else {
                    return false;
                };
                let email = person.email.to_lowercase();
                if e.phase != Phase::Deployed
                    || e.participants.contains_key(&person.id)
                    || e.participants
                        .values()
                        .any(|p| p.email.to_lowercase() == email)
                {
                    return false;
                }
                if e.linked {
                    self.linked_emails.insert(email);
                }
                e.removed.remove(&person.id);
                e.participants.insert(person.id.clone(), person.clone());
                true
            }
            Cmd::Remove { event, participant } => match self.events.get_mut(event) {
                Some(e) if e.phase == Phase::Deployed => match e.participants.remove(participant) {
                    Some(p) => {
                        e.removed.insert(p.id.clone(), p);
                        true
                    }
                    None => false,
                },
                _ => false,
            },
            Cmd::End { event } => match self.events.get_mut(event) {
                Some(e) if e.phase == Phase::Deployed => {
                    e.phase = Phase::Ended;
                    e.ended = true;
                    true
                }
                _ => false,
            },
            Cmd::Delete { event } => match self.events.get_mut(event) {
                Some(e) if e.phase != Phase::Deleted => {
                    e.phase = Phase::Deleted;
                    e.course_kept = self.keep_course_on_delete;
                    // A kept course of a deleted event is treated as an ended event's.
                    e.ended |= e.course_kept;
                    true
                }
                _ => false,
            },
        }
    }

    /// email (lowercased) → role id that must be enrolled in `event`'s course (actively or
    /// suspended), or None when the event must have no course.
    pub fn expected_course(&self, event: &str) -> Option<(bool, BTreeMap<String, i64>)> {
        let (visible, enrolled) = self.expected_enrolments(event)?;
        Some((
            visible,
            enrolled.into_iter().map(|(e, (r, _))| (e, r)).collect(),
        ))
    }

    /// Whether `event`'s course must be visible, and email (lowercased) → (role id, suspended)
    /// of its enrolments; None when the event must have no course.
    pub fn expected_enrolments(&self, event: &str) -> Option<(bool, Enrolments)> {
        let e = self.events.get(event)?;
        if !e.linked || (e.phase == Phase::Deleted && !e.course_kept) {
            return None;
        }
        let visible = !e.ended;
        let mut enrolled = Enrolments::new();
        if self.removal_suspends {
            for p in e.removed.values() {
                enrolled.insert(p.email.to_lowercase(), (p.role_id(), true));
            }
        }
        for p in e.participants.values() {
            let suspended = e.ended && !p.instructor;
            if !suspended || self.removal_suspends {
                enrolled.insert(p.email.to_lowercase(), (p.role_id(), suspended));
            }
        }
        Some((visible, enrolled))
    }

    /// Whether Moodle (`state`) holds exactly what the model says. The error lists every
    /// difference.
    pub fn check(&self, state: &SimState) -> Result<(), String> {
        let mut problems = Vec::new();
        // Accounts: no duplicates, and only the people the engine had reason to create.
        let mut by_email: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        let mut by_username: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        for u in state.users.values() {
            by_email
                .entry(u.email.to_lowercase())
                .or_default()
                .push(u.id);
            by_username
                .entry(u.username.clone())
                .or_default()
                .push(u.id);
            if u.id >= 4
                && !self.linked_emails.contains(&u.email.to_lowercase())
                && !self.preexisting.contains(&u.email.to_lowercase())
            {
                problems.push(format!(
                    "account {} <{}> belongs to no participant of a linked event",
                    u.username, u.email
                ));
            }
        }
        for (email, ids) in by_email.iter().filter(|(_, ids)| ids.len() > 1) {
            problems.push(format!(
                "{} accounts share the email {email}: {ids:?}",
                ids.len()
            ));
        }
        for (name, ids) in by_username.iter().filter(|(_, ids)| ids.len() > 1) {
            problems.push(format!(
                "{} accounts share the username {name}: {ids:?}",
                ids.len()
            ));
        }
        // Courses.
        for c in state.courses.values() {
            if let Some(id) = crate::event_of_course(&c.shortname, &c.idnumber) {
                if !self.events.contains_key(id) {
                    problems.push(format!("course {} belongs to no event", c.shortname));
                }
            }
        }
        for id in self.events.keys() {
            if let Err(e) = self.check_event(state, id) {
                problems.push(e);
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("\n"))
        }
    }

    /// Whether `event`'s course is exactly what the model says.
    pub fn check_event(&self, state: &SimState, id: &str) -> Result<(), String> {
        let mut problems: Vec<String> = Vec::new();
        let courses: Vec<_> = state
            .courses
            .values()
            .filter(|c| crate::is_course_of(&c.shortname, &c.idnumber, id))
            .collect();
        match (self.expected_enrolments(id), courses.as_slice()) {
            (None, []) => {}
            (None, found) => problems.push(format!(
                "event {id} must have no course, found {:?}",
                found.iter().map(|c| c.id).collect::<Vec<_>>()
            )),
            (Some(_), []) => problems.push(format!("event {id} has no course")),
            (Some((visible, wanted)), [course]) => {
                if let Some(prefix) = &self.shortname_prefix {
                    let short = id.get(..8).unwrap_or(id);
                    if !course.shortname.starts_with(prefix.as_str())
                        || !course.shortname.contains(short)
                    {
                        problems.push(format!(
                            "course of {id} named {:?}, not {prefix}…{short}…",
                            course.shortname
                        ));
                    }
                }
                if course.categoryid != self.category.unwrap_or(EVENTS_CATEGORY_ID) {
                    problems.push(format!("course of {id} in category {}", course.categoryid));
                }
                if course.visible != visible {
                    problems.push(format!(
                        "course of {id}: visible {} instead of {visible}",
                        course.visible
                    ));
                }
                let got: BTreeMap<String, (Vec<i64>, bool)> = state
                    .enrolments
                    .get(&course.id)
                    .into_iter()
                    .flat_map(|m| m.values())
                    .map(|e| {
                        let mut roles = e.roles.clone();
                        roles.sort_unstable();
                        let email = state
                            .users
                            .get(&e.user_id)
                            .map(|u| u.email.to_lowercase())
                            .unwrap_or_else(|| format!("<no user {}>", e.user_id));
                        (email, (roles, e.suspended))
                    })
                    .collect();
                let want: BTreeMap<String, (Vec<i64>, bool)> = wanted
                    .into_iter()
                    .map(|(email, (role, suspended))| (email, (vec![role], suspended)))
                    .collect();
                if got != want {
                    problems.push(format!(
                        "enrolments of {id} (course {}): got {got:?}, want {want:?}",
                        course.id
                    ));
                }
            }
            (Some(_), found) => problems.push(format!(
                "event {id} has {} courses: {:?}",
                found.len(),
                found.iter().map(|c| c.id).collect::<Vec<_>>()
            )),
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("\n"))
        }
    }
}
