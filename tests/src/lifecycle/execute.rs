//! Running a [`Cmd`] through the domain and the store, as the API would.

use super::{Cmd, Person};

/// Runs `cmd` through the domain and the store (as the API would); `Err` carries the domain's
/// refusal code.
pub async fn execute(store: &store::Store, cmd: &Cmd) -> Result<(), String> {
    use domain::course::CourseDefaults;
    use domain::environment::{Environment, EnvironmentCommand};
    use domain::event::{DeployContext, EventCommand, VleEvent};
    use store::{CommandError, CommandMeta};

    fn map(e: CommandError<domain::DomainError>) -> String {
        match e {
            CommandError::Rejected(e) => e.code().to_string(),
            other => panic!("the store failed: {other}"),
        }
    }
    let meta = CommandMeta::new("test");
    let (event, command) = match cmd {
        Cmd::Environment { id, template } => {
            return store
                .execute::<Environment>(
                    id,
                    EnvironmentCommand::Put {
                        course: Default::default(),
                        id: id.clone(),
                        name: format!("Environment {id}"),
                        moodle_template_course_id: *template,
                    },
                    &meta,
                )
                .await
                .map(|_| ())
                .map_err(map);
        }
        Cmd::Deploy { event, env, people } => {
            let environment = store
                .load::<Environment>(env)
                .await
                .expect("load environment")
                .map(|(e, _)| e);
            (
                event,
                EventCommand::Deploy {
                    // Shaped as the API shapes it: the default templates (full name, shortname
                    // `Lab <id> (<short id>)`, idnumber `ovle-<id>`), in the settings' category.
                    context: DeployContext {
                        course_defaults: Some(CourseDefaults::default()),
                        today: "2026-12-03".into(),
                    },
                    schedule: Default::default(),
                    id: event.clone(),
                    environment_id: env.clone(),
                    name: format!("Lab {event}"),
                    participants: people.iter().map(Person::input).collect(),
                    environment,
                },
            )
        }
        Cmd::Add { event, person } => (
            event,
            EventCommand::AddParticipant {
                participant: person.input(),
            },
        ),
        Cmd::Remove { event, participant } => (
            event,
            EventCommand::RemoveParticipant {
                participant_id: participant.clone(),
            },
        ),
        Cmd::End { event } => (event, EventCommand::End),
        Cmd::Delete { event } => (event, EventCommand::Delete),
    };
    store
        .execute::<VleEvent>(event, command, &meta)
        .await
        .map(|_| ())
        .map_err(map)
}
