//! Identity you can trust (issue 11), each case against the simulator and the real Moodle of
//! `../shared/moodle-lab`: the saga's worker in process on a fresh store, Moodle's state read
//! back through Moodle's own web services.
//!
//! - username mode: a participant without a username is parked (`username_required`), never
//!   given the account whose username is their email's local part; one with a username is
//!   linked by it, and the story says the account's email differs;
//! - email mode: a username made from the local part that a stranger holds gets a number
//!   (`suffix`), or parks naming the holder (`park`); the stranger is never enrolled;
//! - idnumber mode: matched exactly, new accounts get the number;
//! - a role change leaves exactly the new role; single sign-on accounts get no password;
//!   changed names reach the account only with MOODLE_UPDATE_ACCOUNTS.
//!
//! The real site is shared with other tests: every name here carries the run's tag.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub(crate) mod harness;

use domain::event::EventCommand;
use domain::moodle_sync::MoodleSyncEvent;
use domain::participant::ParticipantInput;
use moodle::UserField;
use projections::saga::{
    NewUserPassword, SagaSettings, UserMatchField, UsernameCollision, UsernameSource,
};
use support::real_moodle::run_tag;

use harness::{enrolled, make_account, parked_code, person, sites, user, Engine};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn username_mode_never_gives_a_participant_a_strangers_account() {
    for site in sites("username_mode_never_gives_a_participant_a_strangers_account").await {
        let tag = run_tag();
        let stranger_name = format!("frank{tag}");
        let stranger = make_account(
            &site,
            &stranger_name,
            &format!("frank.other.{tag}@elsewhere.example"),
            None,
        )
        .await;
        let by_username = SagaSettings {
            user_match_field: UserMatchField::Username,
            ..SagaSettings::enabled(0)
        };
        let e = Engine::start(&site, by_username).await;
        let event = format!("id-u-{tag}");
        // `frank<tag>@uni.example` without a username: the local part is the stranger's name.
        let mut frank = person(&tag, "frank", "student");
        frank.email = format!("{stranger_name}@uni.example");
        let mut named = person(&tag, "named", "student");
        named.username = Some(stranger_name.to_uppercase());
        let mut other = person(&tag, "other", "student");
        other.username = Some(format!("other{tag}"));
        e.deploy(&event, vec![frank]).await;
        let r = e.recorded(&event).await;
        assert_eq!(
            parked_code(&r, "frank").as_deref(),
            Some("username_required"),
            "{}",
            site.name
        );
        assert_eq!(r.participant("frank").unwrap().moodle_user_id, None);
        assert!(
            enrolled(&site, &e, &event).await.is_empty(),
            "{}: nobody may hold frank's seat",
            site.name
        );
        // Sent with the username: that account is the identity; its other email is told.
        e.command(&event, EventCommand::AddParticipant { participant: named })
            .await;
        e.command(&event, EventCommand::AddParticipant { participant: other })
            .await;
        e.run().await;
        let r = e.recorded(&event).await;
        assert_eq!(
            r.participant("named").unwrap().moodle_user_id,
            Some(stranger)
        );
        let created = r.participant("other").unwrap().moodle_user_id.unwrap();
        assert_eq!(
            enrolled(&site, &e, &event).await,
            {
                let mut v = vec![(stranger, vec![5]), (created, vec![5])];
                v.sort();
                v
            },
            "{}",
            site.name
        );
        let differs = e.facts(&event).await.into_iter().find_map(|f| match f {
            MoodleSyncEvent::UserLinked {
                participant_id,
                differs,
                ..
            } if participant_id == "named" => differs,
            _ => None,
        });
        assert!(
            differs.is_some_and(|d| d.contains("frank.other")),
            "{}: the story says the email differs",
            site.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_derived_username_a_stranger_holds_gets_a_number_or_parks() {
    for site in sites("a_derived_username_a_stranger_holds_gets_a_number_or_parks").await {
        for collision in [UsernameCollision::Suffix, UsernameCollision::Park] {
            let tag = run_tag();
            let name = format!("frank{tag}");
            let stranger = make_account(
                &site,
                &name,
                &format!("frank.other.{tag}@elsewhere.example"),
                None,
            )
            .await;
            let settings = SagaSettings {
                username_source: UsernameSource::EmailLocalPart,
                username_collision: collision,
                ..SagaSettings::enabled(0)
            };
            let e = Engine::start(&site, settings).await;
            let event = format!("id-c-{tag}");
            let mut frank = person(&tag, "frank", "student");
            frank.email = format!("{name}@uni.example");
            e.deploy(&event, vec![frank]).await;
            let r = e.recorded(&event).await;
            let seats = enrolled(&site, &e, &event).await;
            assert!(
                !seats.iter().any(|(id, _)| *id == stranger),
                "{}: the stranger got a seat",
                site.name
            );
            match collision {
                UsernameCollision::Suffix => {
                    let id = r.participant("frank").unwrap().moodle_user_id.unwrap();
                    let account = user(&site, UserField::Id, &id.to_string()).await.unwrap();
                    assert_eq!(account.username, format!("{name}2"), "{}", site.name);
                    assert_eq!(seats, vec![(id, vec![5])]);
                }
                UsernameCollision::Park => {
                    let (code, reason) = r.participant("frank").unwrap().parked.clone().unwrap();
                    assert_eq!(code, "username_taken", "{}", site.name);
                    assert!(
                        reason.contains(&format!("Moodle account {stranger}")),
                        "{reason}"
                    );
                    assert!(seats.is_empty());
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idnumber_mode_matches_exactly_and_new_accounts_get_the_number() {
    for site in sites("idnumber_mode_matches_exactly_and_new_accounts_get_the_number").await {
        let tag = run_tag();
        let number = format!("S{tag}");
        let existing = make_account(
            &site,
            &format!("kept{tag}"),
            &format!("kept.{tag}@old.example"),
            Some(&number),
        )
        .await;
        let settings = SagaSettings {
            user_match_field: UserMatchField::Idnumber,
            ..SagaSettings::enabled(0)
        };
        let e = Engine::start(&site, settings).await;
        let event = format!("id-n-{tag}");
        let mut known = person(&tag, "known", "student");
        known.idnumber = Some(number.clone());
        let mut new = person(&tag, "new", "instructor");
        new.idnumber = Some(format!("N{tag}"));
        let anonymous = person(&tag, "anon", "student");
        e.deploy(&event, vec![known, new, anonymous]).await;
        let r = e.recorded(&event).await;
        assert_eq!(
            r.participant("known").unwrap().moodle_user_id,
            Some(existing)
        );
        assert_eq!(
            parked_code(&r, "anon").as_deref(),
            Some("idnumber_required")
        );
        let created = user(&site, UserField::Idnumber, &format!("N{tag}"))
            .await
            .unwrap_or_else(|| panic!("{}: the new account has its idnumber", site.name));
        assert_eq!(
            r.participant("new").unwrap().moodle_user_id,
            Some(created.id)
        );
        // Exact: another case is another number.
        assert!(user(&site, UserField::Idnumber, &number.to_lowercase())
            .await
            .is_none());
        let mut want = vec![(existing, vec![5]), (created.id, vec![3])];
        want.sort();
        assert_eq!(enrolled(&site, &e, &event).await, want, "{}", site.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_change_leaves_exactly_the_new_role() {
    for site in sites("a_role_change_leaves_exactly_the_new_role").await {
        let tag = run_tag();
        let e = Engine::start(&site, SagaSettings::enabled(0)).await;
        let event = format!("id-r-{tag}");
        e.deploy(&event, vec![person(&tag, "ana", "student")]).await;
        let id = e
            .recorded(&event)
            .await
            .participant("ana")
            .unwrap()
            .moodle_user_id
            .unwrap();
        assert_eq!(enrolled(&site, &e, &event).await, vec![(id, vec![5])]);
        e.patch(&event, "ana", r#"{"role":"instructor"}"#).await;
        assert_eq!(
            enrolled(&site, &e, &event).await,
            vec![(id, vec![3])],
            "{}",
            site.name
        );
        e.patch(&event, "ana", r#"{"role":"student"}"#).await;
        assert_eq!(enrolled(&site, &e, &event).await, vec![(id, vec![5])]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_sign_on_accounts_get_no_password() {
    for site in sites("single_sign_on_accounts_get_no_password").await {
        let tag = run_tag();
        let settings = SagaSettings {
            new_user_auth: "oauth2".into(),
            new_user_password: NewUserPassword::None,
            ..SagaSettings::enabled(0)
        };
        let e = Engine::start(&site, settings).await;
        let event = format!("id-s-{tag}");
        e.deploy(&event, vec![person(&tag, "sso", "student")]).await;
        let account = user(&site, UserField::Email, &format!("sso.{tag}@uni.example"))
            .await
            .unwrap_or_else(|| panic!("{}: the account was created", site.name));
        assert_eq!(account.auth.as_deref(), Some("oauth2"), "{}", site.name);
        assert_eq!(
            enrolled(&site, &e, &event).await,
            vec![(account.id, vec![5])]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_names_reach_the_account_only_when_asked() {
    for site in sites("changed_names_reach_the_account_only_when_asked").await {
        for update in [false, true] {
            let tag = run_tag();
            let settings = SagaSettings {
                update_accounts: update,
                ..SagaSettings::enabled(0)
            };
            let e = Engine::start(&site, settings).await;
            let event = format!("id-a-{tag}");
            e.deploy(&event, vec![person(&tag, "bo", "student")]).await;
            e.patch(&event, "bo", r#"{"last_name":"Renamed"}"#).await;
            let id = e
                .recorded(&event)
                .await
                .participant("bo")
                .unwrap()
                .moodle_user_id
                .unwrap();
            let account = user(&site, UserField::Id, &id.to_string()).await.unwrap();
            let want = if update { "Renamed" } else { "Entity" };
            assert_eq!(account.lastname, want, "{} update={update}", site.name);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_taken_email_parks_that_participant_alone() {
    for site in sites("one_taken_email_parks_that_participant_alone").await {
        let tag = run_tag();
        let holder_email = format!("shared.{tag}@uni.example");
        let holder = make_account(&site, &format!("holder{tag}"), &holder_email, None).await;
        let settings = SagaSettings {
            user_match_field: UserMatchField::Username,
            ..SagaSettings::enabled(0)
        };
        let e = Engine::start(&site, settings).await;
        let event = format!("id-e-{tag}");
        let mut people: Vec<ParticipantInput> = (0..4)
            .map(|i| {
                let mut p = person(&tag, &format!("p{i}"), "student");
                p.username = Some(format!("p{i}{tag}"));
                p
            })
            .collect();
        // p2 is someone else with an email another account (not theirs by username) holds.
        people[2].email = holder_email.clone();
        e.deploy(&event, people).await;
        let r = e.recorded(&event).await;
        let (code, reason) = r.participant("p2").unwrap().parked.clone().unwrap();
        assert_eq!(code, "email_taken", "{}: {reason}", site.name);
        assert!(
            reason.contains(&format!("Moodle account {holder}")),
            "{reason}"
        );
        let seats = enrolled(&site, &e, &event).await;
        assert_eq!(seats.len(), 3, "{}: everyone else is enrolled", site.name);
        assert!(!seats.iter().any(|(id, _)| *id == holder));
    }
}
