//! Participants that change: a role change leaves exactly the new role, a participant added again
//! as someone else is linked again (the old account out first), a correction lifts a park, and
//! changed data reaches the account only under MOODLE_UPDATE_ACCOUNTS.

use cqrs_es::Aggregate;

use domain::event::EventEvent;
use domain::moodle_sync::{EnrolmentState, MoodleSync, MoodleSyncEvent};
use domain::participant::{Participant, Role};

use super::runner::step_once;
use crate::saga::{plan, Desired, SagaSettings, Step, SyncState, UserMatchField};

fn person(id: &str, role: Role) -> Participant {
    Participant {
        id: id.into(),
        email: format!("{id}@example.org"),
        username: None,
        first_name: "First".into(),
        last_name: "Last".into(),
        role,
        idnumber: None,
    }
}

fn fold(events: &[EventEvent]) -> Desired {
    let numbered = events.iter().cloned().enumerate();
    Desired::fold("ev1", numbered.map(|(i, e)| (i as u64 + 1, e)))
}

fn deployed(participants: Vec<Participant>) -> EventEvent {
    EventEvent::Deployed {
        course: Default::default(),
        schedule: Default::default(),
        id: "ev1".into(),
        environment_id: "env".into(),
        name: "Run".into(),
        template_course_id: Some(42),
        participants,
    }
}

fn converge(d: &Desired, r: &mut MoodleSync, s: &SagaSettings) -> Vec<Step> {
    let mut steps = Vec::new();
    while let Some(step) = step_once(d, r, s) {
        steps.push(step);
        assert!(steps.len() < 20, "no convergence: {steps:?}");
    }
    steps
}

fn names(steps: &[Step]) -> Vec<&'static str> {
    steps.iter().map(Step::name).collect()
}

#[test]
fn a_role_change_gives_the_new_role_then_takes_the_old_one() {
    let s = SagaSettings::enabled(7);
    let mut events = vec![deployed(vec![person("a", Role::Student)])];
    let mut r = MoodleSync::default();
    converge(&fold(&events), &mut r, &s);
    let before = person("a", Role::Student);
    events.push(EventEvent::ParticipantChanged {
        before: before.clone(),
        after: person("a", Role::Instructor),
    });
    let steps = converge(&fold(&events), &mut r, &s);
    assert_eq!(names(&steps), ["enrol", "unassign_roles"]);
    match &steps[1] {
        Step::UnassignRoles { items, .. } => {
            assert_eq!(items.len(), 1);
            assert_eq!(items[0].role_id, s.student_role_id);
        }
        other => panic!("{other:?}"),
    }
    let a = r.participant("a").unwrap();
    assert_eq!(a.role_id, Some(s.instructor_role_id));
    assert!(a.extra_roles.is_empty());
    assert_eq!(plan(&fold(&events), &r, &s).state, SyncState::InSync);
}

#[test]
fn added_again_as_someone_else_is_linked_again_after_the_old_account_leaves() {
    let s = SagaSettings::enabled(7);
    let a = person("a", Role::Student);
    let mut other = a.clone();
    other.email = "someone.else@example.org".into();
    // Removed and added again before the saga ran the removal: the old account is still in.
    let mut events = vec![deployed(vec![a.clone()])];
    let mut r = MoodleSync::default();
    converge(&fold(&events), &mut r, &s);
    let old = r.participant("a").unwrap().moodle_user_id;
    events.push(EventEvent::ParticipantRemoved {
        participant: a.clone(),
    });
    events.push(EventEvent::ParticipantAdded { participant: other });
    let d = fold(&events);
    match &plan(&d, &r, &s).steps[..] {
        [Step::Remove { items, .. }] => assert_eq!(Some(items[0].moodle_user_id), old),
        other => panic!("the old account must leave first: {other:?}"),
    }
    step_once(&d, &mut r, &s);
    match &plan(&d, &r, &s).steps[..] {
        [Step::LinkUsers(l)] => assert_eq!(l.users[0].key, "someone.else@example.org"),
        other => panic!("{other:?}"),
    }
    let steps = converge(&d, &mut r, &s);
    assert_eq!(names(&steps), ["link_users", "enrol"]);
    let linked = r.participant("a").unwrap();
    assert_eq!(
        linked.linked_by.as_ref().map(|k| k.value.as_str()),
        Some("someone.else@example.org")
    );
    assert_eq!(linked.enrolment, Some(EnrolmentState::Enrolled));
}

#[test]
fn added_again_with_the_same_data_keeps_the_link() {
    let s = SagaSettings::enabled(7);
    let a = person("a", Role::Student);
    let mut events = vec![deployed(vec![a.clone()])];
    let mut r = MoodleSync::default();
    converge(&fold(&events), &mut r, &s);
    events.push(EventEvent::ParticipantRemoved {
        participant: a.clone(),
    });
    events.push(EventEvent::ParticipantAdded { participant: a });
    // Still enrolled with the same account: nothing to do (no unenrol, no grades lost).
    assert!(plan(&fold(&events), &r, &s).is_empty());
}

#[test]
fn a_changed_email_is_the_same_person_and_reaches_the_account_only_when_asked() {
    let a = person("a", Role::Student);
    let mut b = a.clone();
    b.email = "a.new@example.org".into();
    let mut events = vec![deployed(vec![a.clone()])];
    let off = SagaSettings::enabled(7);
    let mut r = MoodleSync::default();
    converge(&fold(&events), &mut r, &off);
    events.push(EventEvent::ParticipantChanged {
        before: a,
        after: b,
    });
    let d = fold(&events);
    // Off (the default): recorded in the event log only, the link kept.
    assert!(plan(&d, &r, &off).is_empty());
    assert_eq!(plan(&d, &r, &off).state, SyncState::InSync);
    let on = SagaSettings {
        update_accounts: true,
        ..off
    };
    match &plan(&d, &r, &on).steps[..] {
        [Step::UpdateAccounts(items)] => assert_eq!(items[0].email, "a.new@example.org"),
        other => panic!("{other:?}"),
    }
    assert_eq!(names(&converge(&d, &mut r, &on)), ["update_accounts"]);
    assert!(plan(&d, &r, &on).is_empty());
}

#[test]
fn a_username_sent_later_lifts_the_park() {
    let s = SagaSettings {
        user_match_field: UserMatchField::Username,
        ..SagaSettings::enabled(7)
    };
    let a = person("a", Role::Student);
    let mut events = vec![deployed(vec![a.clone()])];
    let mut r = MoodleSync::default();
    converge(&fold(&events), &mut r, &s);
    let parked = r.participant("a").unwrap().parked.clone().unwrap();
    assert_eq!(parked.0, "username_required");
    assert_eq!(plan(&fold(&events), &r, &s).state, SyncState::Failed);
    let mut named = a.clone();
    named.username = Some("Ann".into());
    events.push(EventEvent::ParticipantChanged {
        before: a,
        after: named,
    });
    let d = fold(&events);
    match &plan(&d, &r, &s).steps[..] {
        [Step::LinkUsers(l)] => assert_eq!(l.users[0].key, "ann"),
        other => panic!("{other:?}"),
    }
    converge(&d, &mut r, &s);
    assert_eq!(plan(&d, &r, &s).state, SyncState::InSync);
}

#[test]
fn a_park_for_the_current_data_stands() {
    let s = SagaSettings::enabled(7);
    let a = person("a", Role::Student);
    let events = vec![deployed(vec![a])];
    let d = fold(&events);
    let mut r = MoodleSync::default();
    step_once(&d, &mut r, &s);
    r.apply(MoodleSyncEvent::ParticipantParked {
        participant_id: "a".into(),
        code: "ambiguous_user".into(),
        reason: "two".into(),
        caused_by: d.participants[0].cause.event_id,
    });
    let p = plan(&d, &r, &s);
    assert!(p.is_empty(), "{p:?}");
    assert_eq!(p.state, SyncState::Failed);
}
