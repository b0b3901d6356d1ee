//! Moodle's parameter rules, where the engine's (the client's checks, the domain's email rule)
//! and the simulator's (its own `moodle_sim::rules`) were each written apart from Moodle's code:
//! every target must answer what the engine predicts, so a rule that drifts from Moodle's fails
//! here on the real site and on the simulator alike.

use crate::common::{suffix, targets, Target};
use crate::contract::code;
use moodle::wire::{has_tags, is_valid_email};
use moodle::*;

/// `core_user_create_users` for one account, sent as is (no local check): Moodle's own verdict.
async fn create_raw(
    c: &MoodleClient,
    username: &str,
    email: &str,
    firstname: &str,
) -> Result<i64, MoodleError> {
    let mut form = Form::new();
    form.push_objects(
        "users",
        &[vec![
            ("auth", "manual".to_string()),
            ("password", "Sup3r-secret!pw".to_string()),
            ("firstname", firstname.to_string()),
            ("lastname", "Rules".to_string()),
            ("email", email.to_string()),
            ("username", username.to_string()),
        ]],
    );
    let v = c.call_raw("core_user_create_users", &form).await?;
    Ok(v[0]["id"].as_i64().unwrap_or_default())
}

/// Creates one account per case with `value(case)` and checks that Moodle accepts exactly the
/// cases `engine_accepts` says it does, refusing the others with `invalidparameter`.
async fn verdicts(
    t: &Target,
    c: &MoodleClient,
    cases: &[String],
    account: impl Fn(usize, &str) -> (String, String, String),
    engine_accepts: impl Fn(&str) -> bool,
) -> Vec<i64> {
    let mut made = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let (username, email, firstname) = account(i, case);
        let answer = create_raw(c, &username, &email, &firstname).await;
        match (engine_accepts(case), answer) {
            (true, Ok(id)) => made.push(id),
            (false, Err(e)) => assert_eq!(e.code(), "invalidparameter", "{}: {case:?}", t.name),
            (expected, got) => panic!(
                "{}: {case:?}: the engine says {}, Moodle answered {got:?}",
                t.name,
                if expected { "accepted" } else { "refused" }
            ),
        }
    }
    made
}

#[tokio::test]
async fn moodle_refuses_the_emails_the_engine_refuses() {
    for t in targets().await {
        let c = t.client();
        let s = suffix();
        let accepted = [
            format!("e{s}.ok@example.org"),
            format!("E{s}.Up@Example.ORG"),
            format!("\"e{s}.q\"@example.org"),
            format!("e{s}@[127.0.0.1]"),
            format!("e{s}@xn--bcher-kva.example"),
            format!("e{s}+tag@x-y.c0m"),
            format!("{}@example.org", "e".repeat(56) + &s),
        ];
        let refused = [
            format!("jöran.{s}@uni.example"),
            format!("e{s}@bücher.example"),
            format!("e{s}@localhost"),
            format!("e{s}@x.123"),
            format!("e{s}@x.ab-"),
            format!("\"e{s} q\"@example.org"),
            format!("e{s}.@example.org"),
            format!("e{s}..x@example.org"),
            format!("e{s}@[127.0.0.01]"),
            format!("<e{s}@example.org>"),
            format!("{}@example.org", "e".repeat(57) + &s),
        ];
        for e in &accepted {
            assert!(is_valid_email(e), "the engine accepts {e:?}");
        }
        for e in &refused {
            assert!(!is_valid_email(e), "the engine refuses {e:?}");
        }
        let cases: Vec<String> = accepted.iter().chain(&refused).cloned().collect();
        let made = verdicts(
            &t,
            &c,
            &cases,
            |i, email| (format!("rules.{s}.{i}"), email.to_string(), "Ada".into()),
            is_valid_email,
        )
        .await;
        assert_eq!(made.len(), accepted.len(), "{}", t.name);
        // The client never sends a batch holding an email Moodle would refuse.
        let mut bad = crate::contract::new_user("rules", &s);
        bad.email = refused[0].clone();
        assert_eq!(code(c.create_users(&[bad]).await), "invalid_input");
        crate::contract::cleanup(&t, &c, &[], &made).await;
    }
}

#[tokio::test]
async fn names_are_refused_where_strip_tags_would_change_them() {
    for t in targets().await {
        let c = t.client();
        let s = suffix();
        let cases: Vec<String> = [
            "Ada < b",
            "Ada > b",
            "Ada 1<2",
            "Ada<",
            "Ada<=",
            "<b>Ada</b>",
        ]
        .map(String::from)
        .to_vec();
        let made = verdicts(
            &t,
            &c,
            &cases,
            |i, name| {
                let username = format!("tags.{s}.{i}");
                (
                    username.clone(),
                    format!("{username}@example.org"),
                    name.into(),
                )
            },
            |name| !has_tags(name),
        )
        .await;
        assert_eq!(made.len(), 2, "{}", t.name);
        crate::contract::cleanup(&t, &c, &[], &made).await;
    }
}

/// Nothing checks a username's length before the insert: one longer than `user.username`
/// (100) fails in the database, not in `validate_parameters()`; the client refuses it first.
#[tokio::test]
async fn a_username_longer_than_its_column_fails_in_the_database() {
    for t in targets().await {
        let c = t.client();
        let s = suffix();
        let name = |len: usize| format!("{s}{}", "u".repeat(len - s.len()));
        let e = create_raw(&c, &name(101), &format!("long.{s}@example.org"), "Ada").await;
        assert_eq!(code(e), "dmlwriteexception", "{}", t.name);
        let id = create_raw(&c, &name(100), &format!("long.{s}@example.org"), "Ada")
            .await
            .unwrap_or_else(|e| panic!("{}: 100 characters: {e}", t.name));
        let mut long = crate::contract::new_user("long", &s);
        long.username = name(101);
        assert_eq!(code(c.create_users(&[long]).await), "invalid_input");
        crate::contract::cleanup(&t, &c, &[], &[id]).await;
    }
}

#[test]
fn the_simulator_serves_every_function_the_engine_calls() {
    for f in REQUIRED_FUNCTIONS {
        assert!(moodle_sim::FUNCTIONS.contains(f), "{f}");
    }
}
