//! Never the wrong person: over generated participants and existing Moodle accounts whose
//! fields collide (shared local parts, emails in other cases, usernames equal to other people's
//! local parts, idnumbers differing only in case), in every match mode and username source, no
//! participant is ever linked to an account that does not hold, in the match field, the value
//! OpenVLE sent; and no new account is given a username an existing account holds.

use proptest::prelude::*;

use domain::event::EventEvent;
use domain::moodle_sync::MoodleSync;
use domain::participant::{Participant, Role};

use crate::saga::matching::{match_users, Account, Match};
use crate::saga::naming::{self, Naming};
use crate::saga::{
    plan, Desired, SagaSettings, Step, UserMatchField, UsernameCollision, UsernameSource,
};

const NAMES: [&str; 4] = ["frank", "ann", "f.m", "x"];
const DOMAINS: [&str; 3] = ["uni.example", "elsewhere.example", "Uni.Example"];
const IDS: [&str; 3] = ["S1", "s1", "S2"];

fn email(n: usize, d: usize) -> String {
    format!("{}@{}", NAMES[n % 4], DOMAINS[d % 3])
}

prop_compose! {
    fn participant(i: usize)(n in 0..4usize, d in 0..3usize, user in proptest::option::of(0..4usize),
                    id in proptest::option::of(0..3usize)) -> Participant {
        Participant {
            id: format!("p{i}"),
            // Emails that collide are dropped below (the domain refuses duplicates in an event).
            email: email(n, d + i),
            username: user.map(|u| NAMES[u].to_string()),
            first_name: "F".into(),
            last_name: "L".into(),
            role: Role::Student,
            idnumber: id.map(|k| IDS[k].to_string()),
        }
    }
}

prop_compose! {
    fn account(i: i64)(n in 0..4usize, d in 0..3usize, user in 0..4usize, id in proptest::option::of(0..3usize),
                       shown in any::<bool>()) -> Account {
        Account {
            id: 100 + i,
            username: NAMES[user].to_string(),
            email: shown.then(|| email(n, d)),
            idnumber: id.map(|k| IDS[k].to_string()),
        }
    }
}

fn field_value(field: UserMatchField, a: &Account) -> Option<String> {
    match field {
        UserMatchField::Email => a.email.clone(),
        UserMatchField::Username => Some(a.username.clone()),
        UserMatchField::Idnumber => a.idnumber.clone(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]
    #[test]
    fn no_participant_is_linked_to_an_account_that_does_not_match(
        people in (participant(0), participant(1), participant(2)),
        accounts in proptest::collection::vec((0..6i64).prop_flat_map(account), 0..6),
        field in prop_oneof![Just(UserMatchField::Email), Just(UserMatchField::Username), Just(UserMatchField::Idnumber)],
        source in prop_oneof![Just(UsernameSource::Username), Just(UsernameSource::Email), Just(UsernameSource::EmailLocalPart)],
        collision in prop_oneof![Just(UsernameCollision::Suffix), Just(UsernameCollision::Park)],
    ) {
        let mut people = vec![people.0, people.1, people.2];
        people.dedup_by(|a, b| a.email.eq_ignore_ascii_case(&b.email));
        // Accounts have unique usernames in Moodle.
        let mut accounts = accounts;
        accounts.sort_by(|a, b| a.username.cmp(&b.username));
        accounts.dedup_by(|a, b| a.username == b.username);
        let s = SagaSettings { user_match_field: field, username_source: source, username_collision: collision, ..SagaSettings::enabled(7) };
        let d = Desired::fold("ev1", [(1, EventEvent::Deployed { course: Default::default(), schedule: Default::default(),
            id: "ev1".into(), environment_id: "env".into(), name: "Run".into(),
            template_course_id: Some(42), participants: people.clone() })]);
        let p = plan(&d, &MoodleSync::default(), &s);
        let link = p.steps.iter().find_map(|st| match st { Step::LinkUsers(l) => Some(l), _ => None });
        let parked: Vec<&str> = p.steps.iter().flat_map(|st| match st {
            Step::ParkParticipants(items) => items.iter().map(|i| i.participant_id.as_str()).collect(),
            _ => Vec::new(),
        }).collect();
        for person in &people {
            // Without the match field's value: parked, never looked up.
            if field.key_of(person).is_none() {
                prop_assert!(parked.contains(&person.id.as_str()), "{} not parked", person.id);
            }
        }
        let Some(l) = link else { return Ok(()); };
        // Moodle's batched look-up answers the accounts holding one of the keys (emails exactly).
        let found: Vec<Account> = accounts.iter().filter(|a| l.users.iter().any(|u| {
            field_value(field, a).is_some_and(|v| match field {
                UserMatchField::Email => v == u.key,
                UserMatchField::Username => v == u.key.to_lowercase(),
                UserMatchField::Idnumber => v == u.key,
            })
        })).cloned().collect();
        let matches = match_users(field, &l.users, &found);
        let mut to_create = Vec::new();
        for (u, m) in l.users.iter().zip(&matches) {
            let person = people.iter().find(|p| p.id == u.participant_id).unwrap();
            prop_assert_eq!(Some(u.key.clone()), field.key_of(person), "the key is what OpenVLE sent");
            match m {
                Match::Linked(a) => {
                    let v = field_value(field, a).unwrap_or_default();
                    prop_assert!(field.same(&v, &u.key), "{} linked to {:?} by {:?}", u.participant_id, a, field);
                }
                Match::Create => to_create.push(u),
                _ => {}
            }
        }
        let taken: Vec<Account> = accounts.clone();
        for (u, n) in to_create.iter().zip(naming::assign(&to_create, &taken, collision)) {
            if let Naming::Name(name) = n {
                prop_assert!(!accounts.iter().any(|a| a.username == name), "{} gets {name}, held by another account", u.participant_id);
            }
        }
    }
}
