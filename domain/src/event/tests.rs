//! Given/when/then tests: one per rule of the event's life.

use super::*;
use crate::participant::Role;
use cqrs_es::test::TestFramework;

type Ev = TestFramework<VleEvent>;

fn env(template: Option<i64>) -> Environment {
    Environment {
        course: Default::default(),
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
        context: Default::default(),
        schedule: Default::default(),
        id: "ev-1".into(),
        environment_id: "env-1".into(),
        name: "Spring run".into(),
        participants,
        environment,
    }
}

fn deployed() -> EventEvent {
    EventEvent::Deployed {
        course: None,
        schedule: Default::default(),
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

#[tokio::test]
async fn deploy_freezes_the_course_shape_and_the_dates() {
    use crate::course::{CourseShape, CourseVisibility};
    let mut environment = env(Some(42));
    environment.course = CourseShape {
        category_id: Some(3),
        visibility: Some(CourseVisibility::AtStart),
        ..CourseShape::default()
    };
    let schedule = Schedule {
        starts_at: Some(1_800_000_000),
        ends_at: Some(1_800_086_400),
    };
    let context = DeployContext {
        course_defaults: Some(CourseDefaults {
            category_id: Some(2),
            archive_category_id: Some(4),
            ..CourseDefaults::default()
        }),
        today: "2026-12-02".into(),
    };
    let mut command = deploy(vec![], Some(environment));
    if let EventCommand::Deploy {
        schedule: s,
        context: c,
        ..
    } = &mut command
    {
        *s = schedule;
        *c = context;
    }
    let events = VleEvent::default().decide(command).unwrap();
    let [EventEvent::Deployed {
        course: Some(spec),
        schedule: got,
        ..
    }] = events.as_slice()
    else {
        panic!("{events:?}")
    };
    assert_eq!(*got, schedule);
    assert_eq!(spec.category_id, Some(3));
    assert_eq!(spec.archive_category_id, Some(4));
    assert_eq!(spec.visibility, CourseVisibility::AtStart);
    assert_eq!(spec.environment_name, "Lab");
    assert_eq!(spec.deployed_on, "2026-12-02");
}

#[test]
fn an_end_before_the_start_is_refused() {
    let mut command = deploy(vec![], Some(env(Some(42))));
    if let EventCommand::Deploy { schedule, .. } = &mut command {
        *schedule = Schedule {
            starts_at: Some(1_800_000_000),
            ends_at: Some(1_700_000_000),
        };
    }
    let err = VleEvent::default().decide(command).unwrap_err();
    assert_eq!(err.code(), "invalid_field");
    assert!(err.to_string().contains("ends_at"), "{err}");
}

#[test]
fn a_change_renames_and_re_dates_and_a_same_change_records_nothing() {
    let mut ev = VleEvent::default();
    cqrs_es::Aggregate::apply(&mut ev, deployed());
    let patch = EventPatch {
        name: Some("Autumn run".into()),
        starts_at: Some(Some(1_800_000_000)),
        ends_at: None,
        template_course_id: None,
    };
    let events = ev
        .decide(EventCommand::Change {
            patch: patch.clone(),
        })
        .unwrap();
    assert_eq!(
        events,
        vec![EventEvent::EventChanged {
            name: "Autumn run".into(),
            schedule: Schedule {
                starts_at: Some(1_800_000_000),
                ends_at: None
            }
        }]
    );
    for e in events {
        cqrs_es::Aggregate::apply(&mut ev, e);
    }
    assert!(ev
        .decide(EventCommand::Change { patch })
        .unwrap()
        .is_empty());
    let clear = EventPatch {
        starts_at: Some(None),
        ..EventPatch::default()
    };
    assert_eq!(
        ev.decide(EventCommand::Change { patch: clear }).unwrap(),
        vec![EventEvent::EventChanged {
            name: "Autumn run".into(),
            schedule: Schedule::default()
        }]
    );
    let blank = EventPatch {
        name: Some("  ".into()),
        ..EventPatch::default()
    };
    assert!(ev.decide(EventCommand::Change { patch: blank }).is_err());
    cqrs_es::Aggregate::apply(&mut ev, EventEvent::Ended);
    let late = EventPatch {
        name: Some("x".into()),
        ..EventPatch::default()
    };
    assert_eq!(
        ev.decide(EventCommand::Change { patch: late })
            .unwrap_err()
            .code(),
        "event_ended"
    );
}

fn patch_template(t: i64) -> EventCommand {
    EventCommand::Change {
        patch: EventPatch {
            template_course_id: Some(t),
            ..EventPatch::default()
        },
    }
}

#[test]
fn a_parked_deploy_can_be_pointed_at_another_template_even_once_ended() {
    let mut ev = VleEvent::default();
    cqrs_es::Aggregate::apply(&mut ev, deployed());
    let current = ev.template_course_id.unwrap();
    assert_eq!(ev.decide(patch_template(current)).unwrap(), vec![]);
    assert_eq!(
        ev.decide(patch_template(current + 40)).unwrap(),
        vec![EventEvent::TemplateChanged {
            template_course_id: current + 40
        }]
    );
    assert_eq!(
        ev.decide(patch_template(0)).unwrap_err().code(),
        "invalid_field"
    );
    cqrs_es::Aggregate::apply(&mut ev, EventEvent::Ended);
    // Alone, on an ended event: accepted (its course may still be to make).
    assert_eq!(ev.decide(patch_template(current + 40)).unwrap().len(), 1);
    // With a rename, refused as any rename of an ended event is.
    let both = EventCommand::Change {
        patch: EventPatch {
            name: Some("x".into()),
            template_course_id: Some(current + 40),
            ..EventPatch::default()
        },
    };
    assert_eq!(ev.decide(both).unwrap_err().code(), "event_ended");
    cqrs_es::Aggregate::apply(&mut ev, EventEvent::Deleted);
    assert_eq!(
        ev.decide(patch_template(current + 40)).unwrap_err().code(),
        "event_deleted"
    );
}

#[test]
fn an_event_deployed_without_a_template_has_none_to_change() {
    let mut ev = VleEvent::default();
    let mut d = deployed();
    if let EventEvent::Deployed {
        template_course_id, ..
    } = &mut d
    {
        *template_course_id = None;
    }
    cqrs_es::Aggregate::apply(&mut ev, d);
    assert_eq!(
        ev.decide(patch_template(7)).unwrap_err().code(),
        "event_not_linked"
    );
}
