//! The OpenVLE event aggregate: deploy, add and remove participants, end, delete.
//!
//! Each domain event carries everything a later reader needs: `Deployed` keeps the template
//! course id the environment had when the event was deployed, and `ParticipantRemoved` keeps the
//! removed participant, so replaying history never depends on today's environment or on an
//! earlier event of the stream being at hand.

use serde::{Deserialize, Serialize};

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};

use crate::course::{CourseDefaults, CourseSpec};
use crate::environment::Environment;
use crate::participant::{
    non_blank, Participant, ParticipantInput, ParticipantPatch, MAX_PARTICIPANTS,
};
use crate::DomainError;

mod schedule;
use schedule::is_unscheduled;
pub use schedule::Schedule;

/// Where an OpenVLE event is in its life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    #[default]
    NotDeployed,
    Deployed,
    Ended,
    Deleted,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::NotDeployed => "not_deployed",
            Status::Deployed => "deployed",
            Status::Ended => "ended",
            Status::Deleted => "deleted",
        }
    }
}

/// One OpenVLE event, folded from its stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VleEvent {
    pub id: String,
    pub environment_id: String,
    pub name: String,
    pub template_course_id: Option<i64>,
    pub status: Status,
    /// Current participants, in the order they joined.
    pub participants: Vec<Participant>,
    #[serde(default)]
    pub schedule: Schedule,
    /// How its course is shaped (frozen at deploy; None: deployed before courses were shaped,
    /// or without a template).
    #[serde(default)]
    pub course: Option<CourseSpec>,
}

/// A change of an event's own data (a JSON merge patch: absent keeps, null clears).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventPatch {
    pub name: Option<String>,
    pub starts_at: Option<Option<i64>>,
    pub ends_at: Option<Option<i64>>,
    /// Another Moodle template course for a course not made yet (a deploy parked because its
    /// template was wrong). Accepted on an ended event too, alone.
    #[serde(default)]
    pub template_course_id: Option<i64>,
}

/// What deploying needs beside the request: the global course defaults and the day, both
/// frozen into `Deployed` with the environment's choices.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployContext {
    /// None: the course is not shaped (`ovle-<event id>` in the global category, visible), as
    /// for events deployed before course shaping; the API always gives the settings' defaults.
    #[serde(default)]
    pub course_defaults: Option<CourseDefaults>,
    /// YYYY-MM-DD (UTC) of the deploy.
    pub today: String,
}

/// What OpenVLE may ask of an event.
// A command lives for one request; boxing Deploy's parts would only add noise to every caller.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventCommand {
    /// Deploy the event from an environment. `environment` is that environment as the caller
    /// loaded it (None when it does not exist): the aggregate stays pure and the template id is
    /// frozen into `Deployed`.
    Deploy {
        id: String,
        environment_id: String,
        name: String,
        participants: Vec<ParticipantInput>,
        environment: Option<Environment>,
        #[serde(default)]
        schedule: Schedule,
        #[serde(default)]
        context: DeployContext,
    },
    /// Rename or re-date the event (its course follows).
    Change {
        patch: EventPatch,
    },
    AddParticipant {
        participant: ParticipantInput,
    },
    RemoveParticipant {
        participant_id: String,
    },
    /// Correct a participant's data or change their role (a JSON merge patch).
    ChangeParticipant {
        participant_id: String,
        patch: ParticipantPatch,
    },
    End,
    Delete,
}

/// What happened to an OpenVLE event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventEvent {
    Deployed {
        id: String,
        environment_id: String,
        name: String,
        /// The environment's Moodle template at deployment time (None: not linked).
        template_course_id: Option<i64>,
        participants: Vec<Participant>,
        #[serde(default, skip_serializing_if = "is_unscheduled")]
        schedule: Schedule,
        /// How its course is shaped, resolved at deploy (None: no template, or deployed by a
        /// version before course shaping: `ovle-<id>` in the global category).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        course: Option<CourseSpec>,
    },
    /// The event's name or dates changed (its values after the change).
    EventChanged {
        name: String,
        #[serde(default)]
        schedule: Schedule,
    },
    /// The event's course is to be copied from another template (an operator's correction):
    /// only a course not made yet follows it; a course already made stays as it is.
    TemplateChanged {
        template_course_id: i64,
    },
    ParticipantAdded {
        participant: Participant,
    },
    ParticipantRemoved {
        participant: Participant,
    },
    /// A participant's data or role changed; the same person (the Moodle account stays linked).
    ParticipantChanged {
        before: Participant,
        after: Participant,
    },
    Ended,
    Deleted,
}

impl DomainEvent for EventEvent {
    fn event_type(&self) -> String {
        match self {
            EventEvent::Deployed { .. } => "Deployed",
            EventEvent::EventChanged { .. } => "EventChanged",
            EventEvent::TemplateChanged { .. } => "TemplateChanged",
            EventEvent::ParticipantAdded { .. } => "ParticipantAdded",
            EventEvent::ParticipantRemoved { .. } => "ParticipantRemoved",
            EventEvent::ParticipantChanged { .. } => "ParticipantChanged",
            EventEvent::Ended => "Ended",
            EventEvent::Deleted => "Deleted",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        "1".to_string()
    }
}

impl VleEvent {
    pub fn participant(&self, id: &str) -> Option<&Participant> {
        self.participants.iter().find(|p| p.id == id)
    }

    /// Refuses anything but Delete once ended, and everything once deleted or never deployed.
    fn require_active(&self) -> Result<(), DomainError> {
        match self.status {
            Status::NotDeployed => Err(DomainError::EventNotFound(self.id.clone())),
            Status::Deployed => Ok(()),
            Status::Ended => Err(DomainError::EventEnded(self.id.clone())),
            Status::Deleted => Err(DomainError::EventDeleted(self.id.clone())),
        }
    }

    /// The events a command would record (pure; `handle` writes them).
    pub fn decide(&self, command: EventCommand) -> Result<Vec<EventEvent>, DomainError> {
        match command {
            EventCommand::Deploy {
                id,
                environment_id,
                name,
                participants,
                environment,
                schedule,
                context,
            } => {
                if self.status != Status::NotDeployed {
                    return Err(DomainError::EventAlreadyDeployed(self.id.clone()));
                }
                let id = non_blank("id", &id, 255)?;
                let name = non_blank("name", &name, 255)?;
                let environment = match environment {
                    Some(env) if env.created && env.id == environment_id => env,
                    _ => return Err(DomainError::EnvironmentNotFound(environment_id)),
                };
                schedule.check()?;
                if participants.len() > MAX_PARTICIPANTS {
                    return Err(DomainError::TooManyParticipants {
                        count: participants.len(),
                        max: MAX_PARTICIPANTS,
                    });
                }
                let mut valid: Vec<Participant> = Vec::with_capacity(participants.len());
                let mut ids = std::collections::HashSet::with_capacity(participants.len());
                let mut emails = std::collections::HashSet::with_capacity(participants.len());
                for input in participants {
                    let p = input.validate()?;
                    if !ids.insert(p.id.clone()) {
                        return Err(DomainError::DuplicateParticipant(p.id));
                    }
                    if !emails.insert(p.email.to_lowercase()) {
                        return Err(DomainError::DuplicateEmail(p.email));
                    }
                    valid.push(p);
                }
                let course = environment
                    .template_course_id
                    .and(context.course_defaults.as_ref())
                    .map(|defaults| {
                        CourseSpec::resolve(
                            &environment.course,
                            defaults,
                            &environment.name,
                            &context.today,
                        )
                    });
                Ok(vec![EventEvent::Deployed {
                    id,
                    environment_id: environment.id,
                    name,
                    template_course_id: environment.template_course_id,
                    participants: valid,
                    schedule,
                    course,
                }])
            }
            EventCommand::Change { patch } => {
                let only_template = patch.name.is_none()
                    && patch.starts_at.is_none()
                    && patch.ends_at.is_none()
                    && patch.template_course_id.is_some();
                if !(only_template && self.status == Status::Ended) {
                    self.require_active()?;
                }
                let mut events = Vec::new();
                if let Some(t) = patch.template_course_id {
                    if t <= 0 {
                        return Err(DomainError::invalid(
                            "moodle_template_course_id",
                            "must be a positive Moodle course id",
                        ));
                    }
                    match self.template_course_id {
                        None => return Err(DomainError::EventNotLinked(self.id.clone())),
                        Some(current) if current == t => {}
                        Some(_) => events.push(EventEvent::TemplateChanged {
                            template_course_id: t,
                        }),
                    }
                }
                let name = match patch.name {
                    Some(n) => non_blank("name", &n, 255)?,
                    None => self.name.clone(),
                };
                let schedule = Schedule {
                    starts_at: patch.starts_at.unwrap_or(self.schedule.starts_at),
                    ends_at: patch.ends_at.unwrap_or(self.schedule.ends_at),
                };
                schedule.check()?;
                if name != self.name || schedule != self.schedule {
                    events.insert(0, EventEvent::EventChanged { name, schedule });
                }
                Ok(events)
            }
            EventCommand::AddParticipant { participant } => {
                self.require_active()?;
                let p = participant.validate()?;
                if self.participant(&p.id).is_some() {
                    return Err(DomainError::ParticipantExists(p.id));
                }
                let email = p.email.to_lowercase();
                if self
                    .participants
                    .iter()
                    .any(|q| q.email.to_lowercase() == email)
                {
                    return Err(DomainError::DuplicateEmail(p.email));
                }
                if self.participants.len() >= MAX_PARTICIPANTS {
                    return Err(DomainError::TooManyParticipants {
                        count: self.participants.len() + 1,
                        max: MAX_PARTICIPANTS,
                    });
                }
                Ok(vec![EventEvent::ParticipantAdded { participant: p }])
            }
            EventCommand::RemoveParticipant { participant_id } => {
                self.require_active()?;
                match self.participant(&participant_id) {
                    Some(p) => Ok(vec![EventEvent::ParticipantRemoved {
                        participant: p.clone(),
                    }]),
                    None => Err(DomainError::ParticipantNotFound(participant_id)),
                }
            }
            EventCommand::ChangeParticipant {
                participant_id,
                patch,
            } => {
                self.require_active()?;
                let Some(before) = self.participant(&participant_id) else {
                    return Err(DomainError::ParticipantNotFound(participant_id));
                };
                let after = patch.apply(before)?;
                let email = after.email.to_lowercase();
                if self
                    .participants
                    .iter()
                    .any(|q| q.id != after.id && q.email.to_lowercase() == email)
                {
                    return Err(DomainError::DuplicateEmail(after.email));
                }
                // A patch that changes nothing records nothing (a retried request is a no-op).
                if &after == before {
                    return Ok(Vec::new());
                }
                Ok(vec![EventEvent::ParticipantChanged {
                    before: before.clone(),
                    after,
                }])
            }
            EventCommand::End => {
                self.require_active()?;
                Ok(vec![EventEvent::Ended])
            }
            EventCommand::Delete => match self.status {
                Status::NotDeployed => Err(DomainError::EventNotFound(self.id.clone())),
                Status::Deleted => Err(DomainError::EventDeleted(self.id.clone())),
                Status::Deployed | Status::Ended => Ok(vec![EventEvent::Deleted]),
            },
        }
    }
}

impl Aggregate for VleEvent {
    const TYPE: &'static str = "event";
    type Command = EventCommand;
    type Event = EventEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            EventEvent::Deployed {
                id,
                environment_id,
                name,
                template_course_id,
                participants,
                schedule,
                course,
            } => {
                self.id = id;
                self.environment_id = environment_id;
                self.name = name;
                self.template_course_id = template_course_id;
                self.participants = participants;
                self.schedule = schedule;
                self.course = course;
                self.status = Status::Deployed;
            }
            EventEvent::EventChanged { name, schedule } => {
                self.name = name;
                self.schedule = schedule;
            }
            EventEvent::TemplateChanged { template_course_id } => {
                self.template_course_id = Some(template_course_id);
            }
            EventEvent::ParticipantAdded { participant } => self.participants.push(participant),
            EventEvent::ParticipantRemoved { participant } => {
                self.participants.retain(|p| p.id != participant.id)
            }
            EventEvent::ParticipantChanged { after, .. } => {
                if let Some(p) = self.participants.iter_mut().find(|p| p.id == after.id) {
                    *p = after;
                }
            }
            EventEvent::Ended => self.status = Status::Ended,
            EventEvent::Deleted => self.status = Status::Deleted,
        }
    }
}

#[cfg(test)]
mod tests;
