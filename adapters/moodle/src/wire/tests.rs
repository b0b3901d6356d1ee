//! The wire format's tests: encoding, parsing, batching and the local checks.

use super::*;

#[test]
fn form_encodes_php_arrays() {
    let mut f = Form::new();
    f.push("courseid", 12).push_bool("visible", false);
    f.push_scalars("courseids", &[5, 6]);
    f.push_objects(
        "enrolments",
        &[
            vec![
                ("roleid", "5".into()),
                ("suspend", "1".into()),
                ("userid", "10".into()),
            ],
            vec![("roleid", "3".into()), ("userid", "11".into())],
        ],
    );
    let keys: Vec<&str> = f.pairs().iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "courseid",
            "visible",
            "courseids[0]",
            "courseids[1]",
            "enrolments[0][roleid]",
            "enrolments[1][roleid]",
            "enrolments[0][suspend]",
            "enrolments[0][userid]",
            "enrolments[1][userid]"
        ]
    );
    assert_eq!(f.pairs()[1].1, "0");
    let body = f.body("tok", "fn_x");
    assert!(body
        .starts_with("wstoken=tok&wsfunction=fn_x&moodlewsrestformat=json&courseid=12&visible=0"));
    assert!(body.contains("courseids%5B0%5D=5"));
}

#[test]
fn debug_redacts_passwords() {
    let mut f = Form::new();
    f.push("users[0][password]", "Sup3r-secret!pw")
        .push("users[0][username]", "ada");
    let d = format!("{f:?}");
    assert!(!d.contains("Sup3r-secret!pw"), "{d}");
    assert!(d.contains("[redacted]") && d.contains("ada"), "{d}");
}

#[test]
fn body_escapes_values() {
    let mut f = Form::new();
    f.push("users[0][email]", "a+b@x.org")
        .push("users[0][firstname]", "Ann Marie & Co");
    let body = f.body("t", "f");
    assert!(body.contains("a%2Bb%40x.org"));
    assert!(body.contains("Ann+Marie+%26+Co"));
}

#[test]
fn batching_arithmetic() {
    assert_eq!(var_budget(1000), 891);
    assert_eq!(var_budget(5000), 4491);
    assert_eq!(plan_batches(&[], 10, 5), Vec::<Range<usize>>::new());
    assert_eq!(
        plan_batches(&[4; 10], 10, 100),
        vec![0..2, 2..4, 4..6, 6..8, 8..10]
    );
    assert_eq!(plan_batches(&[1; 7], 100, 3), vec![0..3, 3..6, 6..7]);
    assert_eq!(plan_batches(&[50, 1, 1], 10, 100), vec![0..1, 1..3]);
    let b = plan_batches(&[8; 250], var_budget(5000), 100);
    assert_eq!(b, vec![0..100, 100..200, 200..250]);
    assert_eq!(default_max_input_vars(Some("4.4 (Build: 20240422)")), 5000);
    assert_eq!(default_max_input_vars(Some("3.11.4+")), 1000);
    assert_eq!(default_max_input_vars(None), 1000);
    assert_eq!(parse_release("4.4dev"), Some((4, 4)));
}

#[test]
fn parses_errors_and_nulls() {
    let e = parse_body::<serde_json::Value>(
        "f",
        br#"{"exception":"moodle_exception","errorcode":"invalidtoken","message":"Invalid token - token not found"}"#,
    )
    .unwrap_err();
    assert_eq!(e.code(), "invalidtoken");
    assert!(!e.is_transient());
    let e = parse_null(
        "f",
        br#"{"exception":"moodle_exception","errorcode":"ex_unabletolock","message":"x"}"#,
    )
    .unwrap_err();
    assert!(e.is_transient());
    parse_null("f", b"null").unwrap();
    parse_null("f", b"null\n").unwrap();
}

#[test]
fn hostile_bodies_are_typed_errors() {
    let html = parse_body::<Vec<i64>>("f", b"<!DOCTYPE html><html>maintenance</html>").unwrap_err();
    assert!(matches!(
        html,
        MoodleError::BadResponse {
            transient: true,
            ..
        }
    ));
    assert!(html.is_transient());
    let trunc = parse_body::<Vec<i64>>("f", b"[1,2,").unwrap_err();
    assert!(matches!(
        trunc,
        MoodleError::BadResponse {
            transient: true,
            ..
        }
    ));
    let wrong = parse_body::<Vec<i64>>("f", br#"{"a":1}"#).unwrap_err();
    assert!(matches!(
        wrong,
        MoodleError::BadResponse {
            transient: false,
            ..
        }
    ));
    let wrong = parse_body::<Vec<i64>>("f", br#"["x"]"#).unwrap_err();
    assert_eq!(wrong.code(), "bad_response");
    assert!(parse_body::<Vec<i64>>("f", b"").is_err());
    assert!(parse_body::<Vec<i64>>("f", &[0xff, 0xfe, 0x00]).is_err());
    assert!(parse_null("f", b"42").is_err());
    let odd = parse_body::<Vec<i64>>("f", br#"{"exception":5,"errorcode":[1]}"#).unwrap_err();
    assert_eq!(odd.code(), "unknown");
    for blank in [
        br#"{"exception":"","errorcode":"","message":"m"}"#.as_slice(),
        br#"{"exception":"","message":"m"}"#,
        br#"{"exception":" ","errorcode":"\t","message":"m"}"#,
        br#"{"errorcode":null,"message":"m"}"#,
    ] {
        let e = parse_body::<Vec<i64>>("f", blank).unwrap_err();
        assert_eq!(e.code(), "unknown", "{e:?}");
        assert_eq!(e.errorcode(), Some("unknown"), "{e:?}");
    }
    let e = parse_body::<Vec<i64>>(
        "f",
        br#"{"exception":"moodle_exception","errorcode":"","message":"m"}"#,
    )
    .unwrap_err();
    assert_eq!(e.code(), "moodle_exception");
}

#[test]
fn local_validation_mirrors_moodle() {
    for ok in ["teacher.ada", "a-b_c@x.org", "x9"] {
        assert!(is_valid_username(ok), "{ok}");
    }
    for bad in ["", "Ada", "ada lovelace", "o'neil", "é"] {
        assert!(!is_valid_username(bad), "{bad}");
    }
    for ok in ["a@example.org", "Case.Test@Example.org", "a+b@x.co.uk"] {
        assert!(is_valid_email(ok), "{ok}");
    }
    for bad in [
        "",
        "a",
        "a@b",
        "@x.org",
        "a@@x.org",
        "a b@x.org",
        "<a@x.org>",
        "a..b@x.org",
        "a@-x.org",
    ] {
        assert!(!is_valid_email(bad), "{bad}");
    }
    assert!(has_tags("Lab <intro>"));
    assert!(has_tags("<b>x</b>"));
    assert!(!has_tags("a < b"));
    for refused in ["Ada 1<2", "Ada<", "Ada<=", "a\0b"] {
        assert!(has_tags(refused), "{refused:?}");
    }
    assert!(!has_tags("Ada > b") && !has_tags("x <\ty"));
    assert!(!is_valid_email("jöran@uni.example"));
}
