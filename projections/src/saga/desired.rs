//! Desired Moodle state: the fold of an OpenVLE event's `event` stream, with the id of the domain
//! event behind every fact (for `caused_by`).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use domain::course::{CourseSpec, CourseVars};
use domain::event::{EventEvent, Schedule, Status, VleEvent};
use domain::participant::Participant;

/// The domain event that made something so: its deterministic id and its stream sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cause {
    pub event_id: Uuid,
    pub sequence: u64,
}

impl Cause {
    /// The cause of the `event` stream's event `sequence` of OpenVLE event `aggregate_id`.
    pub fn of(aggregate_id: &str, sequence: u64) -> Cause {
        Cause {
            event_id: domain::event_id_of(
                <VleEvent as cqrs_es::Aggregate>::TYPE,
                aggregate_id,
                sequence,
            ),
            sequence,
        }
    }

    /// No cause (tests, or a step an operator asked for).
    pub fn none() -> Cause {
        Cause {
            event_id: Uuid::nil(),
            sequence: 0,
        }
    }
}

/// A participant as the saga wants them, with the domain event that last set them (added,
/// changed or removed them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredParticipant {
    pub participant: Participant,
    pub cause: Cause,
    /// The participant as added, once a `ParticipantChanged` has changed them: a change is the
    /// same person, so a link made by the data they were added with stays theirs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_added: Option<Participant>,
    /// The last `ParticipantChanged` that changed what an account holds (names, email,
    /// idnumber): written to the account under MOODLE_UPDATE_ACCOUNTS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_change: Option<Cause>,
}

impl DesiredParticipant {
    /// A participant as added (or deployed) by the event at `cause`.
    pub fn added(participant: Participant, cause: Cause) -> DesiredParticipant {
        DesiredParticipant {
            participant,
            cause,
            as_added: None,
            account_change: None,
        }
    }

    /// Whether a link made by `value` under `field` is this participant's: made by the data
    /// they have, or had when added. Otherwise (added again with other data) it is stale.
    pub fn owns_link(&self, field: domain::settings::UserMatchField, value: &str) -> bool {
        [Some(&self.participant), self.as_added.as_ref()]
            .into_iter()
            .flatten()
            .any(|p| field.key_of(p).is_some_and(|k| field.same(&k, value)))
    }
}

/// The fold of an `event` stream, as the saga needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Desired {
    /// The OpenVLE event id (the aggregate id of both streams).
    pub id: String,
    pub name: String,
    pub status: Status,
    pub template_course_id: Option<i64>,
    #[serde(default)]
    pub environment_id: String,
    /// The event's dates (its course's start and end).
    #[serde(default)]
    pub schedule: Schedule,
    /// How its course is shaped, frozen at deploy (None: deployed before course shaping).
    #[serde(default)]
    pub course: Option<CourseSpec>,
    /// The last `EventChanged` (a rename or new dates: the course follows).
    #[serde(default)]
    pub changed: Option<Cause>,
    /// The time (ms) the log's wishes are asked for: a course shown at the event's start is
    /// wanted hidden before it. Never stored; None: the start has not come.
    #[serde(skip)]
    pub now_ms: Option<i64>,
    /// Current participants, in the order they joined.
    pub participants: Vec<DesiredParticipant>,
    /// Participants removed and not added again, in the order they left (cause: the removal).
    pub removed: Vec<DesiredParticipant>,
    /// The `Deployed` event.
    pub deployed: Option<Cause>,
    /// The `Ended` event.
    pub ended: Option<Cause>,
    /// The `Deleted` event.
    pub deleted: Option<Cause>,
    /// The last change that lifts a parked saga: a rename or new dates, another template, the
    /// end, the delete ([`super::park_stands`]).
    #[serde(default)]
    pub park_lift: Option<Cause>,
    /// The sequence of the last event folded (0: none).
    pub sequence: u64,
}

impl Desired {
    /// An empty fold for OpenVLE event `id` (nothing deployed yet).
    pub fn new(id: impl Into<String>) -> Desired {
        Desired {
            id: id.into(),
            ..Desired::default()
        }
    }

    /// Folds the events of the stream, given with their sequence numbers, in order.
    pub fn fold(
        id: impl Into<String>,
        events: impl IntoIterator<Item = (u64, EventEvent)>,
    ) -> Desired {
        let mut d = Desired::new(id);
        for (sequence, event) in events {
            d.apply(sequence, event);
        }
        d
    }

    /// Applies the event stored at `sequence` of the stream.
    pub fn apply(&mut self, sequence: u64, event: EventEvent) {
        // A fold started without its id (the event view's) takes it from `Deployed`, before
        // the first cause is named after it.
        if let (EventEvent::Deployed { id, .. }, true) = (&event, self.id.is_empty()) {
            self.id = id.clone();
        }
        let cause = Cause::of(&self.id, sequence);
        self.sequence = sequence;
        match event {
            EventEvent::Deployed {
                name,
                template_course_id,
                participants,
                environment_id,
                schedule,
                course,
                ..
            } => {
                self.name = name;
                self.template_course_id = template_course_id;
                self.environment_id = environment_id;
                self.schedule = schedule;
                self.course = course;
                self.status = Status::Deployed;
                self.deployed = Some(cause);
                self.removed.clear();
                self.participants = participants
                    .into_iter()
                    .map(|participant| DesiredParticipant::added(participant, cause))
                    .collect();
            }
            EventEvent::EventChanged { name, schedule } => {
                self.name = name;
                self.schedule = schedule;
                self.changed = Some(cause);
                self.park_lift = Some(cause);
            }
            EventEvent::TemplateChanged { template_course_id } => {
                self.template_course_id = Some(template_course_id);
                self.park_lift = Some(cause);
            }
            EventEvent::ParticipantAdded { participant } => {
                self.removed.retain(|r| r.participant.id != participant.id);
                self.participants
                    .retain(|p| p.participant.id != participant.id);
                self.participants
                    .push(DesiredParticipant::added(participant, cause));
            }
            EventEvent::ParticipantChanged { before, after } => {
                if let Some(p) = self
                    .participants
                    .iter_mut()
                    .find(|p| p.participant.id == after.id)
                {
                    let account_changed = before.first_name != after.first_name
                        || before.last_name != after.last_name
                        || before.email != after.email
                        || before.idnumber != after.idnumber;
                    if account_changed {
                        p.account_change = Some(cause);
                    }
                    if p.as_added.is_none() {
                        p.as_added = Some(before);
                    }
                    p.participant = after;
                    p.cause = cause;
                }
            }
            EventEvent::ParticipantRemoved { participant } => {
                self.participants
                    .retain(|p| p.participant.id != participant.id);
                self.removed.retain(|r| r.participant.id != participant.id);
                self.removed
                    .push(DesiredParticipant::added(participant, cause));
            }
            EventEvent::Ended => {
                self.status = Status::Ended;
                self.ended = Some(cause);
                self.park_lift = Some(cause);
            }
            EventEvent::Deleted => {
                self.status = Status::Deleted;
                self.deleted = Some(cause);
                self.park_lift = Some(cause);
            }
        }
    }

    /// The cause of the current status (Deployed, Ended or Deleted).
    pub fn status_cause(&self) -> Cause {
        match self.status {
            Status::Deleted => self.deleted,
            Status::Ended => self.ended,
            _ => self.deployed,
        }
        .or(self.deployed)
        .unwrap_or_else(Cause::none)
    }

    /// The latest cause of the course's names, dates and category: the status, or a change.
    pub fn course_cause(&self) -> Cause {
        let status = self.status_cause();
        match self.changed {
            Some(c) if c.sequence > status.sequence => c,
            _ => status,
        }
    }

    /// The fold as wanted at `now_ms`.
    pub fn at(mut self, now_ms: i64) -> Desired {
        self.now_ms = Some(now_ms);
        self
    }

    /// What the course's names may show of this event.
    pub fn course_vars(&self) -> CourseVars<'_> {
        CourseVars {
            event_id: &self.id,
            event_name: &self.name,
            environment_id: &self.environment_id,
            starts_at: self.schedule.starts_at,
        }
    }

    /// The shortname of this event's course as it is to be now: rendered from the frozen
    /// templates, or `ovle-<event id>` for an event deployed before course shaping.
    pub fn shortname(&self) -> String {
        match &self.course {
            Some(spec) => spec.names(&self.course_vars()).shortname,
            None => course_shortname(&self.id),
        }
    }

    pub fn participant(&self, id: &str) -> Option<&DesiredParticipant> {
        self.participants.iter().find(|p| p.participant.id == id)
    }
}

/// The Moodle course shortname of OpenVLE event `event_id`: `ovle-<event id>`.
pub fn course_shortname(event_id: &str) -> String {
    format!("ovle-{event_id}")
}
