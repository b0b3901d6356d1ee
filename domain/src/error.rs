//! Domain errors: every refusal a command can meet, each with a stable code.

use thiserror::Error;

/// A command refused by the rules. `code()` is stable and travels to API clients.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DomainError {
    #[error("invalid {field}: {reason}")]
    InvalidField { field: String, reason: String },
    #[error("invalid email address {0:?}")]
    InvalidEmail(String),
    #[error("unknown role {0:?}: expected \"instructor\" or \"student\"")]
    UnknownRole(String),
    #[error("participant {0:?} appears more than once")]
    DuplicateParticipant(String),
    #[error("email {0:?} is used by more than one participant of this event")]
    DuplicateEmail(String),
    #[error("participant {0:?} is already part of this event")]
    ParticipantExists(String),
    #[error("participant {0:?} is not part of this event")]
    ParticipantNotFound(String),
    #[error("environment {0:?} does not exist")]
    EnvironmentNotFound(String),
    #[error("environment {0:?} already exists")]
    EnvironmentExists(String),
    #[error("event {0:?} does not exist")]
    EventNotFound(String),
    #[error("event {0:?} is already deployed")]
    EventAlreadyDeployed(String),
    #[error("event {0:?} has ended: only Delete is accepted")]
    EventEnded(String),
    #[error("event {0:?} is deleted: nothing more is accepted")]
    EventDeleted(String),
    #[error("too many participants: {count} (at most {max})")]
    TooManyParticipants { count: usize, max: usize },
    #[error("invalid {field}: {reason}")]
    InvalidCourseTemplate { field: String, reason: String },
    #[error(
        "event {0:?} was deployed without a Moodle template course: there is no template to change"
    )]
    EventNotLinked(String),
    #[error("saga record refused: {0}")]
    SagaInvariant(String),
}

/// How an API maps a refusal: a request the rules refuse (422), a conflict with the current
/// state (409) or an unknown id (404).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Invalid,
    Conflict,
    NotFound,
}

impl DomainError {
    /// The stable snake_case code of this refusal.
    pub fn code(&self) -> &'static str {
        match self {
            DomainError::InvalidField { .. } => "invalid_field",
            DomainError::InvalidEmail(_) => "invalid_email",
            DomainError::UnknownRole(_) => "unknown_role",
            DomainError::DuplicateParticipant(_) => "duplicate_participant",
            DomainError::DuplicateEmail(_) => "duplicate_email",
            DomainError::ParticipantExists(_) => "participant_exists",
            DomainError::ParticipantNotFound(_) => "participant_not_found",
            DomainError::EnvironmentNotFound(_) => "environment_not_found",
            DomainError::EnvironmentExists(_) => "environment_exists",
            DomainError::EventNotFound(_) => "event_not_found",
            DomainError::EventAlreadyDeployed(_) => "event_already_deployed",
            DomainError::EventEnded(_) => "event_ended",
            DomainError::EventDeleted(_) => "event_deleted",
            DomainError::TooManyParticipants { .. } => "too_many_participants",
            DomainError::InvalidCourseTemplate { .. } => "invalid_course_template",
            DomainError::EventNotLinked(_) => "event_not_linked",
            DomainError::SagaInvariant(_) => "saga_invariant",
        }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            DomainError::InvalidField { .. }
            | DomainError::InvalidCourseTemplate { .. }
            | DomainError::InvalidEmail(_)
            | DomainError::UnknownRole(_)
            | DomainError::DuplicateParticipant(_)
            | DomainError::DuplicateEmail(_)
            | DomainError::TooManyParticipants { .. } => ErrorKind::Invalid,
            DomainError::ParticipantNotFound(_)
            | DomainError::EnvironmentNotFound(_)
            | DomainError::EventNotFound(_) => ErrorKind::NotFound,
            DomainError::ParticipantExists(_)
            | DomainError::EnvironmentExists(_)
            | DomainError::EventAlreadyDeployed(_)
            | DomainError::EventEnded(_)
            | DomainError::EventDeleted(_)
            | DomainError::EventNotLinked(_)
            | DomainError::SagaInvariant(_) => ErrorKind::Conflict,
        }
    }

    /// An `invalid_field` refusal naming the field and why.
    pub fn invalid(field: &str, reason: impl Into<String>) -> Self {
        DomainError::InvalidField {
            field: field.to_string(),
            reason: reason.into(),
        }
    }
}
