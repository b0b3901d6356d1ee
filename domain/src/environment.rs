//! The Environment aggregate: an OpenVLE environment and its optional Moodle template course.

use serde::{Deserialize, Serialize};

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};

use crate::course::CourseShape;
use crate::participant::non_blank;
use crate::DomainError;

/// One environment, folded from its events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Environment {
    pub id: String,
    pub name: String,
    pub template_course_id: Option<i64>,
    pub created: bool,
    /// How its events' courses are shaped (each unset choice: the global default).
    #[serde(default)]
    pub course: CourseShape,
}

/// What OpenVLE may ask of an environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EnvironmentCommand {
    /// Create the environment, or bring it to this name and template (PUT semantics): emits one
    /// event per actual change, and nothing at all when nothing changes.
    Put {
        id: String,
        name: String,
        moodle_template_course_id: Option<i64>,
        /// The `moodle_course_*`, `moodle_category_id` and `moodle_archive_category_id` fields
        /// (absent: the global defaults).
        #[serde(default)]
        course: CourseShape,
    },
}

/// What happened to an environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EnvironmentEvent {
    EnvironmentCreated {
        id: String,
        name: String,
    },
    EnvironmentRenamed {
        name: String,
    },
    /// From now on, events deployed from this environment get a copy of this Moodle course.
    TemplateLinked {
        course_id: i64,
    },
    TemplateUnlinked {
        previous_course_id: i64,
    },
    /// From now on, events deployed from this environment get courses shaped so (the whole
    /// shape, as PUT gave it).
    CourseShapeChanged {
        course: CourseShape,
    },
}

impl DomainEvent for EnvironmentEvent {
    fn event_type(&self) -> String {
        match self {
            EnvironmentEvent::EnvironmentCreated { .. } => "EnvironmentCreated",
            EnvironmentEvent::EnvironmentRenamed { .. } => "EnvironmentRenamed",
            EnvironmentEvent::TemplateLinked { .. } => "TemplateLinked",
            EnvironmentEvent::TemplateUnlinked { .. } => "TemplateUnlinked",
            EnvironmentEvent::CourseShapeChanged { .. } => "CourseShapeChanged",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        "1".to_string()
    }
}

impl Environment {
    /// The events a Put would record, without recording them (pure; used by `handle`).
    pub fn decide_put(
        &self,
        id: &str,
        name: &str,
        template: Option<i64>,
        course: &CourseShape,
    ) -> Result<Vec<EnvironmentEvent>, DomainError> {
        let id = non_blank("environment_id", id, 255)?;
        let name = non_blank("name", name, 255)?;
        course.check(&name)?;
        if let Some(course) = template {
            if course <= 1 {
                // Course 1 is Moodle's front page; ids are positive.
                return Err(DomainError::invalid(
                    "moodle_template_course_id",
                    "must be a Moodle course id greater than 1",
                ));
            }
        }
        let mut events = Vec::new();
        if !self.created {
            events.push(EnvironmentEvent::EnvironmentCreated {
                id,
                name: name.clone(),
            });
        } else if self.name != name {
            events.push(EnvironmentEvent::EnvironmentRenamed { name: name.clone() });
        }
        match (self.template_course_id, template) {
            (None, Some(course_id)) => events.push(EnvironmentEvent::TemplateLinked { course_id }),
            (Some(previous), None) => events.push(EnvironmentEvent::TemplateUnlinked {
                previous_course_id: previous,
            }),
            (Some(previous), Some(course_id)) if previous != course_id => {
                events.push(EnvironmentEvent::TemplateLinked { course_id })
            }
            _ => {}
        }
        if &self.course != course {
            events.push(EnvironmentEvent::CourseShapeChanged {
                course: course.clone(),
            });
        }
        Ok(events)
    }
}

impl Aggregate for Environment {
    const TYPE: &'static str = "environment";
    type Command = EnvironmentCommand;
    type Event = EnvironmentEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        match command {
            EnvironmentCommand::Put {
                id,
                name,
                moodle_template_course_id,
                course,
            } => {
                for event in self.decide_put(&id, &name, moodle_template_course_id, &course)? {
                    sink.write(event, self).await;
                }
            }
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            EnvironmentEvent::EnvironmentCreated { id, name } => {
                self.id = id;
                self.name = name;
                self.created = true;
            }
            EnvironmentEvent::EnvironmentRenamed { name } => self.name = name,
            EnvironmentEvent::TemplateLinked { course_id } => {
                self.template_course_id = Some(course_id)
            }
            EnvironmentEvent::TemplateUnlinked { .. } => self.template_course_id = None,
            EnvironmentEvent::CourseShapeChanged { course } => self.course = course,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_es::test::TestFramework;

    type Env = TestFramework<Environment>;

    fn put(name: &str, template: Option<i64>) -> EnvironmentCommand {
        EnvironmentCommand::Put {
            course: Default::default(),
            id: "env-1".into(),
            name: name.into(),
            moodle_template_course_id: template,
        }
    }

    fn created() -> EnvironmentEvent {
        EnvironmentEvent::EnvironmentCreated {
            id: "env-1".into(),
            name: "Lab".into(),
        }
    }

    #[tokio::test]
    async fn creating_with_a_template_links_it() {
        Env::with(())
            .given_no_previous_events()
            .when_async(put("Lab", Some(42)))
            .await
            .then_expect_events(vec![
                created(),
                EnvironmentEvent::TemplateLinked { course_id: 42 },
            ]);
    }

    #[tokio::test]
    async fn a_put_that_changes_nothing_records_nothing() {
        Env::with(())
            .given(vec![created()])
            .when_async(put("Lab", None))
            .await
            .then_expect_events(vec![]);
    }

    #[tokio::test]
    async fn rename_relink_and_unlink() {
        Env::with(())
            .given(vec![created()])
            .when_async(put("Lab 2", Some(7)))
            .await
            .then_expect_events(vec![
                EnvironmentEvent::EnvironmentRenamed {
                    name: "Lab 2".into(),
                },
                EnvironmentEvent::TemplateLinked { course_id: 7 },
            ]);
        Env::with(())
            .given(vec![
                created(),
                EnvironmentEvent::TemplateLinked { course_id: 7 },
            ])
            .when_async(put("Lab", Some(8)))
            .await
            .then_expect_events(vec![EnvironmentEvent::TemplateLinked { course_id: 8 }]);
        Env::with(())
            .given(vec![
                created(),
                EnvironmentEvent::TemplateLinked { course_id: 7 },
            ])
            .when_async(put("Lab", None))
            .await
            .then_expect_events(vec![EnvironmentEvent::TemplateUnlinked {
                previous_course_id: 7,
            }]);
    }

    #[tokio::test]
    async fn blank_names_and_bad_course_ids_are_refused() {
        Env::with(())
            .given_no_previous_events()
            .when_async(put("  ", None))
            .await
            .then_expect_error(DomainError::invalid("name", "must not be blank"));
        Env::with(())
            .given_no_previous_events()
            .when_async(put("Lab", Some(1)))
            .await
            .then_expect_error_message(
                "invalid moodle_template_course_id: must be a Moodle course id greater than 1",
            );
    }
}
