//! Given/when/then tests: one per rule of the event's life.

use super::*;
use crate::participant::Role;
use cqrs_es::test::TestFramework;

type Ev = TestFramework<VleEvent>;

fn env(template: Option<i64>) -> Environment {
    Environment {
        id: "env-1".into(),
        name: "Lab".into(),
        template_course_id: template,
        created: true,
    }
}

fn input(id: &str, email: &str, role: &str) -> ParticipantInput {
    ParticipantInput {
        idnumber: None,
        id: id.into(),
        email: email.into(),
        username: None,
        first_name: "Ada".into(),
        last_name: "Lovelace".into(),
        role: role.into(),
    }
}

fn participant(id: &str, email: &str, role: Role) -> Participant {
    Participant {
        idnumber: None,
        id: id.into(),
        email: email.into(),
        username: None,
        first_name: "Ada".into(),
        last_name: "Lovelace".into(),
        role,
    }
}

fn deploy(participants: Vec<ParticipantInput>, environment: Option<Environment>) -> EventCommand {
    EventCommand::Deploy {
        id: "ev-1".into(),
        environment_id: "env-1".into(),
        name: "Spring run".into(),
        participants,
        environment,
    }
}

fn deployed() -> EventEvent {
    EventEvent::Deployed {
        id: "ev-1".into(),
        environment_id: "env-1".into(),
        name: "Spring run".into(),
        template_course_id: Some(42),
        participants: vec![participant("p1", "ada@example.org", Role::Instructor)],
    }
}

#[tokio::test]
async fn deploy_freezes_the_template_and_validates_participants() {
    Ev::with(())
        .given_no_previous_events()
        .when_async(deploy(
            vec![input("p1", "ada@example.org", "instructor")],
            Some(env(Some(42))),
        ))
        .await
        .then_expect_events(vec![deployed()]);
}

#[tokio::test]
async fn deploy_from_an_unlinked_environment_records_no_template() {
    let result = Ev::with(())
        .given_no_previous_events()
        .when_async(deploy(vec![], Some(env(None))))
        .await
        .inspect_result();
    match result {
        Ok(events) => assert!(matches!(
            events.as_slice(),
            [EventEvent::Deployed {
                template_course_id: None,
                ..
            }]
        )),
        Err(e) => panic!("unexpected {e}"),
    }
}

#[tokio::test]
async fn deploy_needs_an_existing_environment() {
    Ev::with(())
        .given_no_previous_events()
        .when_async(deploy(vec![], None))
        .await
        .then_expect_error(DomainError::EnvironmentNotFound("env-1".into()));
}

#[tokio::test]
async fn an_event_is_deployed_once() {
    Ev::with(())
        .given(vec![deployed()])
        .when_async(deploy(vec![], Some(env(None))))
        .await
        .then_expect_error(DomainError::EventAlreadyDeployed("ev-1".into()));
}

#[tokio::test]
async fn participant_ids_and_emails_are_unique_within_a_deploy() {
    Ev::with(())
        .given_no_previous_events()
        .when_async(deploy(
            vec![
                input("p1", "a@example.org", "student"),
                input("p1", "b@example.org", "student"),
            ],
            Some(env(None)),
        ))
        .await
        .then_expect_error(DomainError::DuplicateParticipant("p1".into()));
    Ev::with(())
        .given_no_previous_events()
        .when_async(deploy(
            vec![
                input("p1", "a@example.org", "student"),
                input("p2", "A@Example.org", "student"),
            ],
            Some(env(None)),
        ))
        .await
        .then_expect_error(DomainError::DuplicateEmail("A@Example.org".into()));
}

#[tokio::test]
async fn bad_email_and_unknown_role_are_refused() {
    Ev::with(())
        .given_no_previous_events()
        .when_async(deploy(
            vec![input("p1", "not-an-email", "student")],
            Some(env(None)),
        ))
        .await
        .then_expect_error(DomainError::InvalidEmail("not-an-email".into()));
    Ev::with(())
        .given(vec![deployed()])
        .when_async(EventCommand::AddParticipant {
            participant: input("p2", "b@example.org", "admin"),
        })
        .await
        .then_expect_error(DomainError::UnknownRole("admin".into()));
}

#[tokio::test]
async fn add_and_remove_participants() {
    Ev::with(())
        .given(vec![deployed()])
        .when_async(EventCommand::AddParticipant {
            participant: input("p2", "b@example.org", "student"),
        })
        .await
        .then_expect_events(vec![EventEvent::ParticipantAdded {
            participant: participant("p2", "b@example.org", Role::Student),
        }]);
    Ev::with(())
        .given(vec![deployed()])
        .when_async(EventCommand::AddParticipant {
            participant: input("p1", "c@example.org", "student"),
        })
        .await
        .then_expect_error(DomainError::ParticipantExists("p1".into()));
    Ev::with(())
        .given(vec![deployed()])
        .when_async(EventCommand::RemoveParticipant {
            participant_id: "p1".into(),
        })
        .await
        .then_expect_events(vec![EventEvent::ParticipantRemoved {
            participant: participant("p1", "ada@example.org", Role::Instructor),
        }]);
    Ev::with(())
        .given(vec![deployed()])
        .when_async(EventCommand::RemoveParticipant {
            participant_id: "nobody".into(),
        })
        .await
        .then_expect_error(DomainError::ParticipantNotFound("nobody".into()));
}

#[tokio::test]
async fn a_removed_participant_may_come_back() {
    Ev::with(())
        .given(vec![
            deployed(),
            EventEvent::ParticipantRemoved {
                participant: participant("p1", "ada@example.org", Role::Instructor),
            },
        ])
        .when_async(EventCommand::AddParticipant {
            participant: input("p1", "ada@example.org", "student"),
        })
        .await
        .then_expect_events(vec![EventEvent::ParticipantAdded {
            participant: participant("p1", "ada@example.org", Role::Student),
        }]);
}

#[tokio::test]
async fn a_participant_changes_by_a_merge_patch() {
    let patch = |json: &str| EventCommand::ChangeParticipant {
        participant_id: "p1".into(),
        patch: serde_json::from_str(json).unwrap(),
    };
    let mut after = participant("p1", "ada@uni.example", Role::Student);
    after.idnumber = Some("S-1".into());
    Ev::with(())
        .given(vec![deployed()])
        .when_async(patch(
            r#"{"role":"student","email":"ada@uni.example","idnumber":"S-1"}"#,
        ))
        .await
        .then_expect_events(vec![EventEvent::ParticipantChanged {
            before: participant("p1", "ada@example.org", Role::Instructor),
            after,
        }]);
    // Nothing changed: nothing recorded.
    Ev::with(())
        .given(vec![deployed()])
        .when_async(patch(r#"{"role":"instructor"}"#))
        .await
        .then_expect_events(vec![]);
    Ev::with(())
        .given(vec![deployed()])
        .when_async(patch(r#"{"role":"teacher"}"#))
        .await
        .then_expect_error(DomainError::UnknownRole("teacher".into()));
    Ev::with(())
        .given(vec![
            deployed(),
            EventEvent::ParticipantAdded {
                participant: participant("p2", "b@example.org", Role::Student),
            },
        ])
        .when_async(patch(r#"{"email":"B@example.org"}"#))
        .await
        .then_expect_error(DomainError::DuplicateEmail("B@example.org".into()));
    Ev::with(())
        .given(vec![deployed()])
        .when_async(EventCommand::ChangeParticipant {
            participant_id: "nobody".into(),
            patch: ParticipantPatch::default(),
        })
        .await
        .then_expect_error(DomainError::ParticipantNotFound("nobody".into()));
    Ev::with(())
        .given(vec![deployed(), EventEvent::Ended])
        .when_async(patch(r#"{"role":"student"}"#))
        .await
        .then_expect_error(DomainError::EventEnded("ev-1".into()));
}

#[tokio::test]
async fn nothing_happens_to_an_event_that_was_never_deployed() {
    for command in [
        EventCommand::End,
        EventCommand::Delete,
        EventCommand::RemoveParticipant {
            participant_id: "p1".into(),
        },
    ] {
        Ev::with(())
            .given_no_previous_events()
            .when_async(command)
            .await
            .then_expect_error(DomainError::EventNotFound(String::new()));
    }
}

#[tokio::test]
async fn after_end_only_delete_is_accepted() {
    let ended = vec![deployed(), EventEvent::Ended];
    for command in [
        EventCommand::End,
        EventCommand::AddParticipant {
            participant: input("p2", "b@example.org", "student"),
        },
        EventCommand::RemoveParticipant {
            participant_id: "p1".into(),
        },
    ] {
        Ev::with(())
            .given(ended.clone())
            .when_async(command)
            .await
            .then_expect_error(DomainError::EventEnded("ev-1".into()));
    }
    Ev::with(())
        .given(ended)
        .when_async(EventCommand::Delete)
        .await
        .then_expect_events(vec![EventEvent::Deleted]);
}

#[tokio::test]
async fn after_delete_nothing_is_accepted() {
    let deleted = vec![deployed(), EventEvent::Deleted];
    for command in [
        EventCommand::End,
        EventCommand::Delete,
        EventCommand::AddParticipant {
            participant: input("p2", "b@example.org", "student"),
        },
        EventCommand::RemoveParticipant {
            participant_id: "p1".into(),
        },
        deploy(vec![], Some(env(None))),
    ] {
        let result = Ev::with(())
            .given(deleted.clone())
            .when_async(command)
            .await
            .inspect_result();
        let code = result.err().map(|e| e.code());
        assert!(
            matches!(code, Some("event_deleted" | "event_already_deployed")),
            "{code:?}"
        );
    }
}

#[tokio::test]
async fn ten_thousand_participants_deploy() {
    let participants = (0..10_000)
        .map(|i| input(&format!("p{i}"), &format!("u{i}@example.org"), "student"))
        .collect();
    let result = Ev::with(())
        .given_no_previous_events()
        .when_async(deploy(participants, Some(env(Some(42)))))
        .await
        .inspect_result();
    match result {
        Ok(events) => match events.as_slice() {
            [EventEvent::Deployed { participants, .. }] => assert_eq!(participants.len(), 10_000),
            other => panic!("unexpected {other:?}"),
        },
        Err(e) => panic!("unexpected {e}"),
    }
}
