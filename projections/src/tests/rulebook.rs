//! One rulebook: over generated histories of both streams (and generated settings), the event
//! view tells what the planner tells: the same state, nothing pending exactly when nothing is
//! planned, and running the planned steps reaches in sync (or waits for a person on purpose).

use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use proptest::prelude::*;
use uuid::Uuid;

use domain::event::{EventEvent, Status};
use domain::moodle_sync::{LinkKind, MoodleSync, MoodleSyncEvent};
use domain::participant::{Participant, Role};

use super::runner::{facts_of, COURSE_ID};
use crate::saga::{plan, Desired, RemovalMode, SagaSettings, SyncState};
use crate::view::{EnrolmentViewState, EventFold};

/// Participants the histories draw from; the last one has an email Moodle would refuse as a
/// username, so that parking happens too.
const POOL: usize = 5;
const BAD: usize = POOL - 1;

fn person(i: usize, instructor: bool) -> Participant {
    Participant {
        idnumber: None,
        id: format!("p{i}"),
        email: if i == BAD {
            "o'neil@example.org".to_string()
        } else {
            format!("p{i}@example.org")
        },
        username: None,
        first_name: "F".into(),
        last_name: "L".into(),
        role: if instructor {
            Role::Instructor
        } else {
            Role::Student
        },
    }
}

fn at() -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default()
}

/// A saga fact, about participant `usize` of the pool where it names one.
#[derive(Debug, Clone)]
enum Fact {
    CourseDuplicated {
        adopted: bool,
    },
    CourseHidden,
    CourseShown,
    UserLinked(usize),
    Enrolled(usize, bool),
    Unenrolled(usize),
    Suspended(usize),
    /// A step whose outcome is unknown: nothing more is recorded.
    StepFailed,
    ParticipantParked(usize),
    Parked,
    Resumed,
    CourseLost,
    UserLinkLost(usize),
    CourseKept,
    CourseDeleted,
    CourseDuplicationStarted,
}

#[derive(Debug, Clone)]
enum Op {
    Add(usize, bool),
    Remove(usize),
    End,
    Delete,
    Fact(Fact),
    /// The saga runs its next planned step.
    Step,
}

fn fact() -> impl Strategy<Value = Fact> {
    let who = 0..POOL;
    prop_oneof![
        any::<bool>().prop_map(|adopted| Fact::CourseDuplicated { adopted }),
        Just(Fact::CourseHidden),
        Just(Fact::CourseShown),
        who.clone().prop_map(Fact::UserLinked),
        (who.clone(), any::<bool>()).prop_map(|(i, t)| Fact::Enrolled(i, t)),
        who.clone().prop_map(Fact::Unenrolled),
        who.clone().prop_map(Fact::Suspended),
        Just(Fact::StepFailed),
        who.clone().prop_map(Fact::ParticipantParked),
        Just(Fact::Parked),
        Just(Fact::Resumed),
        Just(Fact::CourseLost),
        who.prop_map(Fact::UserLinkLost),
        Just(Fact::CourseKept),
        Just(Fact::CourseDeleted),
        Just(Fact::CourseDuplicationStarted),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0..POOL, any::<bool>()).prop_map(|(i, t)| Op::Add(i, t)),
        2 => (0..POOL).prop_map(Op::Remove),
        1 => Just(Op::End),
        1 => Just(Op::Delete),
        4 => fact().prop_map(Op::Fact),
        4 => Just(Op::Step),
    ]
}

fn settings() -> impl Strategy<Value = SagaSettings> {
    (any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(enabled, delete, suspend)| {
        SagaSettings {
            enabled,
            delete_course_on_event_delete: delete,
            removal_mode: if suspend {
                RemovalMode::Suspend
            } else {
                RemovalMode::Unenrol
            },
            ..SagaSettings::enabled(7)
        }
    })
}

/// Both streams as the log holds them, folded by the saga and by the view.
struct History {
    events: Vec<EventEvent>,
    current: Vec<Participant>,
    status: Status,
    recorded: MoodleSync,
    view: EventFold,
}

impl History {
    fn deploy(template: Option<i64>, participants: Vec<Participant>) -> History {
        let mut h = History {
            events: Vec::new(),
            current: Vec::new(),
            status: Status::NotDeployed,
            recorded: MoodleSync::default(),
            view: EventFold::new(),
        };
        h.event(EventEvent::Deployed {
            course: Default::default(),
            schedule: Default::default(),
            id: "ev1".into(),
            environment_id: "env".into(),
            name: "Lab".into(),
            template_course_id: template,
            participants,
        });
        h
    }

    fn desired(&self) -> Desired {
        let numbered = self.events.iter().cloned().enumerate();
        Desired::fold("ev1", numbered.map(|(i, e)| (i as u64 + 1, e)))
    }

    fn event(&mut self, e: EventEvent) {
        match &e {
            EventEvent::Deployed { participants, .. } => {
                self.current = participants.clone();
                self.status = Status::Deployed;
            }
            EventEvent::EventChanged { .. } | EventEvent::TemplateChanged { .. } => {}
            EventEvent::ParticipantAdded { participant } => self.current.push(participant.clone()),
            EventEvent::ParticipantRemoved { participant } => {
                self.current.retain(|p| p.id != participant.id)
            }
            EventEvent::ParticipantChanged { after, .. } => {
                if let Some(p) = self.current.iter_mut().find(|p| p.id == after.id) {
                    *p = after.clone();
                }
            }
            EventEvent::Ended => self.status = Status::Ended,
            EventEvent::Deleted => self.status = Status::Deleted,
        }
        self.events.push(e.clone());
        self.view.apply_event(e);
    }

    /// Records `f` when the record accepts it (as the store would).
    fn record(&mut self, f: MoodleSyncEvent) {
        if self.recorded.check(&f).is_ok() {
            self.recorded.apply(f.clone());
            self.view.apply_sync(f, at());
        }
    }

    fn user(&self, i: usize) -> i64 {
        self.recorded
            .participant(&format!("p{i}"))
            .and_then(|p| p.moodle_user_id)
            .unwrap_or(1000 + i as i64)
    }

    fn run(&mut self, op: &Op, s: &SagaSettings) {
        let active = self.status == Status::Deployed;
        let present = |i: usize| {
            self.current
                .iter()
                .find(|p| p.id == format!("p{i}"))
                .cloned()
        };
        match op {
            Op::Add(i, t) if active && present(*i).is_none() => {
                self.event(EventEvent::ParticipantAdded {
                    participant: person(*i, *t),
                })
            }
            Op::Remove(i) if active => {
                if let Some(participant) = present(*i) {
                    self.event(EventEvent::ParticipantRemoved { participant })
                }
            }
            Op::End if active => self.event(EventEvent::Ended),
            Op::Delete if active || self.status == Status::Ended => self.event(EventEvent::Deleted),
            Op::Fact(f) => {
                let f = self.fact(f, s);
                self.record(f);
            }
            Op::Step => {
                if let Some(step) = plan(&self.desired(), &self.recorded, s).next() {
                    for f in facts_of(step) {
                        assert!(self.recorded.check(&f).is_ok(), "{f:?} after {step:?}");
                        self.record(f);
                    }
                }
            }
            _ => {}
        }
    }

    fn fact(&self, f: &Fact, s: &SagaSettings) -> MoodleSyncEvent {
        let nil = Uuid::nil();
        let course_id = self.recorded.course_id.unwrap_or(COURSE_ID);
        let pid = |i: &usize| format!("p{i}");
        match f {
            Fact::CourseDuplicated { adopted } => MoodleSyncEvent::CourseDuplicated {
                course_id: COURSE_ID,
                shortname: "ovle-ev1".into(),
                template_course_id: 42,
                category_id: 7,
                adopted: *adopted,
                caused_by: nil,
            },
            Fact::CourseHidden => MoodleSyncEvent::CourseHidden {
                course_id,
                caused_by: nil,
            },
            Fact::CourseShown => MoodleSyncEvent::CourseShown {
                course_id,
                caused_by: nil,
            },
            Fact::UserLinked(i) => MoodleSyncEvent::UserLinked {
                differs: None,
                key: None,
                participant_id: pid(i),
                moodle_user_id: self.user(*i),
                username: pid(i),
                how: LinkKind::Matched,
                caused_by: nil,
            },
            Fact::Enrolled(i, t) => MoodleSyncEvent::Enrolled {
                participant_id: pid(i),
                moodle_user_id: self.user(*i),
                role_id: if *t {
                    s.instructor_role_id
                } else {
                    s.student_role_id
                },
                caused_by: nil,
            },
            Fact::Unenrolled(i) => MoodleSyncEvent::Unenrolled {
                participant_id: pid(i),
                moodle_user_id: self.user(*i),
                caused_by: nil,
            },
            Fact::Suspended(i) => MoodleSyncEvent::Suspended {
                participant_id: pid(i),
                moodle_user_id: self.user(*i),
                caused_by: nil,
            },
            Fact::StepFailed => MoodleSyncEvent::StepFailed {
                step: "enrol".into(),
                code: "timeout".into(),
                message: "no answer".into(),
                attempt: 1,
                transient: true,
                participant_id: None,
                caused_by: nil,
            },
            Fact::ParticipantParked(i) => MoodleSyncEvent::ParticipantParked {
                participant_id: pid(i),
                code: "invalid_username".into(),
                reason: "refused".into(),
                caused_by: nil,
            },
            Fact::Parked => MoodleSyncEvent::Parked {
                step: "ensure_course".into(),
                code: "invalidrecord".into(),
                reason: "template missing".into(),
                caused_by: nil,
                at_sequence: None,
            },
            Fact::Resumed => MoodleSyncEvent::Resumed { by: "op".into() },
            Fact::CourseLost => MoodleSyncEvent::CourseLost {
                course_id,
                caused_by: nil,
            },
            Fact::UserLinkLost(i) => MoodleSyncEvent::UserLinkLost {
                participant_id: pid(i),
                moodle_user_id: self.user(*i),
                caused_by: nil,
            },
            Fact::CourseKept => MoodleSyncEvent::CourseKept {
                course_id,
                caused_by: nil,
            },
            Fact::CourseDeleted => MoodleSyncEvent::CourseDeleted {
                course_id,
                caused_by: nil,
            },
            Fact::CourseDuplicationStarted => MoodleSyncEvent::CourseDuplicationStarted {
                attempt: nil,
                shortname: "ovle-ev1".into(),
                template_course_id: 42,
                started_at_ms: 1,
                caused_by: nil,
            },
        }
    }

    /// The view and the planner agree on this history.
    fn check(&self, s: &SagaSettings) -> Result<(), TestCaseError> {
        let d = self.desired();
        prop_assert_eq!(
            self.view.desired(),
            &d,
            "the view folds the log as the saga does"
        );
        let p = plan(&d, &self.recorded, s);
        let Some(v) = self.view.view(s) else {
            return Err(TestCaseError::fail("a deployed event has a view"));
        };
        prop_assert_eq!(v.moodle.state, p.state, "view state vs plan {:?}", p.steps);
        let decided = matches!(
            p.state,
            SyncState::Disabled | SyncState::NotLinked | SyncState::Failed
        );
        if !decided {
            prop_assert_eq!(
                v.moodle.pending_steps == 0,
                p.steps.is_empty(),
                "pending {} vs plan {:?}",
                v.moodle.pending_steps,
                p.steps
            );
        }
        // A participant row fails exactly when the event fails for a parked participant.
        let rows_failed = v
            .moodle
            .enrolments
            .iter()
            .any(|e| e.state == EnrolmentViewState::Failed);
        if p.state != SyncState::Disabled && p.state != SyncState::NotLinked {
            prop_assert!(!rows_failed || p.state == SyncState::Failed);
        }
        Ok(())
    }

    /// Runs planned steps until the plan is empty; returns the final state.
    fn converge(&mut self, s: &SagaSettings) -> Result<SyncState, TestCaseError> {
        for _ in 0..40 {
            self.check(s)?;
            if plan(&self.desired(), &self.recorded, s).is_empty() {
                return Ok(plan(&self.desired(), &self.recorded, s).state);
            }
            self.run(&Op::Step, s);
        }
        Err(TestCaseError::fail("the plan does not converge"))
    }
}

/// Runs a history, checking the rulebook after every entry, then lets the saga finish: it
/// ends in sync, or failed only for what a person must see to.
fn run_history(
    template: Option<i64>,
    deployed: &[(usize, bool)],
    ops: &[Op],
    s: &SagaSettings,
) -> Result<History, TestCaseError> {
    let mut seen = Vec::new();
    let participants = deployed
        .iter()
        .filter(|(i, _)| {
            let fresh = !seen.contains(i);
            seen.push(*i);
            fresh
        })
        .map(|(i, t)| person(*i, *t))
        .collect();
    let mut h = History::deploy(template, participants);
    h.check(s)?;
    for op in ops {
        h.run(op, s);
        h.check(s)?;
    }
    let state = h.converge(s)?;
    let expected = if !s.enabled {
        SyncState::Disabled
    } else if template.is_none() {
        SyncState::NotLinked
    } else {
        SyncState::InSync
    };
    if state != expected {
        prop_assert_eq!(state, SyncState::Failed, "ends {:?}", state);
        // Resumed, the saga serves everyone again; only the participant Moodle refuses for
        // good is parked once more.
        h.record(MoodleSyncEvent::Resumed { by: "op".into() });
        let state = h.converge(s)?;
        if state != expected {
            prop_assert_eq!(state, SyncState::Failed);
            let parked: Vec<_> = h
                .recorded
                .participants
                .iter()
                .filter(|(_, p)| p.parked.is_some())
                .map(|(id, _)| id.clone())
                .collect();
            prop_assert_eq!(parked, vec![format!("p{BAD}")]);
            prop_assert!(h.recorded.parked.is_none());
        }
    }
    Ok(h)
}

proptest! {
    #[test]
    fn the_view_tells_what_the_planner_tells(
        template in prop_oneof![3 => Just(Some(42i64)), 1 => Just(None)],
        deployed in prop::collection::vec((0..POOL, any::<bool>()), 0..4),
        ops in prop::collection::vec(op(), 0..40),
        s in settings(),
    ) {
        run_history(template, &deployed, &ops, &s)?;
    }
}

/// The regression the rulebook fixes: a participant linked whose enrolment's answer was lost
/// (nothing recorded but the failure), then removed. The saga plans their removal (looking
/// first); the view used to call the event in sync.
#[test]
fn a_removed_participant_whose_enrolment_outcome_was_lost_is_pending() {
    let s = SagaSettings::enabled(7);
    let ops = [
        Op::Fact(Fact::CourseDuplicated { adopted: false }),
        Op::Fact(Fact::UserLinked(1)),
        Op::Fact(Fact::StepFailed),
        Op::Remove(1),
    ];
    let mut h = History::deploy(Some(42), vec![person(1, false)]);
    for op in &ops {
        h.run(op, &s);
    }
    let v = h.view.view(&s).unwrap_or_else(|| panic!("deployed"));
    assert_eq!(v.moodle.state, SyncState::Pending);
    assert_eq!(v.moodle.pending_steps, 1);
    assert_eq!(plan(&h.desired(), &h.recorded, &s).steps.len(), 1);
    assert!(run_history(Some(42), &[(1, false)], &ops, &s).is_ok());
}
