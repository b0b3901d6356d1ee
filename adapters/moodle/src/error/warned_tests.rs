//! The warnings of `core_user_update_users` as an error: classified by their code as the lab
//! answered them (shared/moodle: observed-4.4.md), bounded and scrubbed like exceptions.

use super::*;

fn warned(codes: &[(&str, &str)]) -> MoodleError {
    MoodleError::Warned {
        function: "core_user_update_users".into(),
        warnings: codes
            .iter()
            .enumerate()
            .map(|(i, (code, message))| Warning {
                item: Some("user".into()),
                itemid: Some(40 + i as i64),
                warningcode: code.to_string(),
                message: message.to_string(),
            })
            .collect(),
    }
}

#[test]
fn warnings_classified_by_their_code() {
    // The bodies the 4.4 lab sent for each case.
    for (code, message, refusal) in [
        ("invaliduserid", "Invalid user ID", Refusal::MissingUser),
        (
            "useremailduplicate",
            "Duplicate address",
            Refusal::EmailTaken,
        ),
        (
            "useremailinvalid",
            "error/useremailinvalid",
            Refusal::InvalidParameter,
        ),
        (
            "usernotupdatedadmin",
            "Cannot update admin accounts",
            Refusal::AccountProtected,
        ),
        (
            "usernotupdatedguest",
            "error/usernotupdatedguest",
            Refusal::AccountProtected,
        ),
    ] {
        let e = warned(&[(code, message)]);
        assert_eq!(e.refusal(), Some(refusal), "{code}");
        assert_eq!(e.code(), code);
        assert_eq!(e.errorcode(), Some(code));
        assert!(e.is_item_refusal(), "{code}");
        assert!(!e.is_transient() && !e.outcome_unknown(), "{code}");
        assert_eq!(e.warnings().len(), 1);
    }
    assert!(warned(&[("invaliduserid", "Invalid user ID")]).is_missing_user());
    assert!(!warned(&[("useremailduplicate", "x")]).is_missing_user());
    assert_eq!(Refusal::EmailTaken.as_str(), "email_taken");
}

#[test]
fn display_names_the_first_item_and_counts_all() {
    let e = warned(&[
        ("useremailduplicate", "Duplicate address"),
        ("invaliduserid", "Invalid user ID"),
    ]);
    let text = e.to_string();
    assert!(
        text.starts_with(
            "Moodle core_user_update_users: 2 item(s) refused, first user 40: useremailduplicate (Duplicate address); another Moodle account has this email"
        ),
        "{text}"
    );
    assert_eq!(
        e.advice(),
        refusal::advice("core_user_update_users", "useremailduplicate", "x")
    );
    // A warning code that is free text gives a bounded metrics label.
    assert_eq!(warned(&[("Some Text!", "m")]).code(), "other");
    // Built empty (never by the client): still displays and classifies.
    let empty = MoodleError::Warned {
        function: "f".into(),
        warnings: Vec::new(),
    };
    assert!(empty.to_string().contains("0 item(s) refused"));
    assert_eq!(empty.errorcode(), None);
    assert_eq!(empty.code(), "unknown");
}

#[test]
fn warnings_are_scrubbed_of_the_token() {
    let token = Secret::new("tok-abc123");
    let e = warned(&[("invaliduserid", "echo tok-abc123 back")]).redact(&token);
    assert!(!e.to_string().contains("tok-abc123"), "{e}");
    assert!(!format!("{e:?}").contains("tok-abc123"), "{e:?}");
    assert_eq!(e.warnings()[0].itemid, Some(40));
}

/// A successful answer's warnings are cut as they are read, as an error's texts are: a hostile
/// server cannot put a megabyte into the saga's records through a warning.
#[test]
fn warnings_of_a_successful_answer_are_bounded_as_read() {
    let long = "x".repeat(1_000_000);
    let body = serde_json::json!({"warnings": [
        {"item": long, "itemid": 7, "warningcode": long, "message": long},
        {"warningcode": "shortnametaken", "message": "Short name is already used for another course (A)"},
    ]});
    let env: crate::types::WarningsEnvelope = serde_json::from_value(body).unwrap();
    let w = &env.warnings[0];
    for text in [w.item.as_deref().unwrap(), &w.warningcode, &w.message] {
        assert!(text.chars().count() < MAX_ERROR_TEXT + 40, "{}", text.len());
        assert!(text.ends_with("more bytes]"), "marked as cut");
    }
    assert_eq!(env.warnings[1].warningcode, "shortnametaken");
    assert_eq!(
        env.warnings[1].message,
        "Short name is already used for another course (A)"
    );
}
