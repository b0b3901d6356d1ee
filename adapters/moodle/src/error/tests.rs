//! Unit tests of the error type and of the classification of every observed body.

use super::*;

fn moodle(code: &str) -> MoodleError {
    MoodleError::Moodle {
        function: "f".into(),
        errorcode: code.into(),
        message: "m".into(),
        class: ErrorClass::of(code),
    }
}

#[test]
fn long_texts_are_bounded() {
    let long = "é".repeat(MAX_ERROR_TEXT + 10);
    let cut = bounded(long);
    assert!(cut.starts_with(&"é".repeat(MAX_ERROR_TEXT)));
    assert!(cut.ends_with("[20 more bytes]"), "{cut}");
    assert_eq!(bounded("short".into()), "short");
}

#[test]
fn classification() {
    for c in ["ex_unabletolock", "dmlwriteexception", "sitemaintenance"] {
        assert!(moodle(c).is_transient(), "{c}");
    }
    for c in [
        "invalidtoken",
        "accessexception",
        "invalidparameter",
        "wsusercannotassign",
        "shortnametaken",
        "nopermissions",
        "requireloginerror",
        "codingerror",
        "invalidrecord",
        "wsnoinstance",
        "something-new",
    ] {
        assert!(!moodle(c).is_transient(), "{c}");
        assert!(!moodle(c).outcome_unknown(), "{c}");
    }
    let t = MoodleError::Transport {
        function: "f".into(),
        detail: "d".into(),
        outcome_unknown: true,
    };
    assert!(t.is_transient() && t.outcome_unknown());
    assert_eq!(t.code(), "transport");
    let h = MoodleError::Http {
        function: "f".into(),
        status: 403,
    };
    assert!(!h.is_transient());
    assert_eq!(h.code(), "http_403");
    assert!(h.to_string().contains("REST"));
}

#[test]
fn advice_is_actionable() {
    assert!(moodle("invalidtoken").to_string().contains("MOODLE_TOKEN"));
    let a = MoodleError::Moodle {
        function: "core_course_delete_courses".into(),
        errorcode: "accessexception".into(),
        message: "Access control exception".into(),
        class: ErrorClass::Permanent,
    };
    assert!(a
        .to_string()
        .contains("core_course_delete_courses is not in the token's external service"));
    assert!(moodle("wsnoinstance").advice().contains("manual enrolment"));
    assert!(moodle("wsusercannotassign")
        .advice()
        .contains("role assignments"));
    assert!(moodle("setting_locked_by_permission")
        .advice()
        .contains("moodle/backup:userinfo"));
    assert!(moodle("invalidrecord").advice().contains("does not exist"));
    let missing = MoodleError::Moodle {
        function: "core_course_search_courses".into(),
        errorcode: "invalidrecord".into(),
        message: "Can't find data record in database table external_functions.".into(),
        class: ErrorClass::Permanent,
    };
    assert!(missing.advice().contains("too old"));
}

#[test]
fn code_is_bounded_and_never_empty() {
    assert_eq!(moodle("invalidtoken").code(), "invalidtoken");
    assert_eq!(moodle("ex_unabletolock").code(), "ex_unabletolock");
    assert_eq!(moodle(" dmlwriteexception\n").code(), "dmlwriteexception");
    assert!(moodle(" dmlwriteexception\n").is_transient());
    for blank in ["", " ", "\t\n"] {
        assert_eq!(moodle(blank).code(), "unknown", "{blank:?}");
    }
    let long = "a".repeat(MAX_CODE_LEN + 1);
    for odd in [
        "<div>Passwords must be at least 8 characters long.</div>",
        "Invalid",
        "some-code",
        "code\u{0}",
        "é",
        long.as_str(),
    ] {
        let e = moodle(odd);
        assert_eq!(e.code(), "other", "{odd:?}");
        // The raw errorcode stays available to people.
        assert_eq!(e.errorcode(), Some(odd));
        assert!(e.to_string().contains(odd), "{e}");
    }
    assert_eq!(
        moodle(&"a".repeat(MAX_CODE_LEN)).code(),
        "a".repeat(MAX_CODE_LEN)
    );
}

#[test]
fn redirects_are_permanent_and_explained() {
    for status in [301, 302, 303, 307, 308] {
        let e = MoodleError::Http {
            function: "f".into(),
            status,
        };
        assert!(!e.is_transient(), "{status}");
        assert!(!e.outcome_unknown(), "{status}");
        assert_eq!(e.code(), format!("http_{status}"));
        assert!(e.advice().contains("MOODLE_URL redirects"), "{e}");
        assert!(e.to_string().contains("final address"), "{e}");
    }
}

#[test]
fn redact_scrubs_every_text_field() {
    let secret = Secret::new("tok3n-5ecret");
    let errors = [
        MoodleError::Moodle {
            function: "f".into(),
            errorcode: "tok3n-5ecret".into(),
            message: "Invalid token tok3n%2D5ecret".into(),
            class: ErrorClass::Permanent,
        },
        MoodleError::Transport {
            function: "f".into(),
            detail: "reset after wstoken=tok3n-5ecret".into(),
            outcome_unknown: true,
        },
        MoodleError::BadResponse {
            function: "f".into(),
            detail: "invalid type: string \"tok3n-5ecret\", expected i64".into(),
            transient: false,
        },
        MoodleError::InvalidInput {
            function: "f".into(),
            detail: "tok3n-5ecret".into(),
        },
    ];
    for e in errors {
        let before = format!("{e:?}");
        let e = e.redact(&secret);
        let printed = format!("{e}\n{e:?}\n{}\n{}", e.advice(), e.code());
        assert!(!printed.contains("5ecret"), "{printed}");
        assert!(printed.contains("[redacted]"), "{before} -> {printed}");
    }
    let kept = moodle("invalidtoken").redact(&secret);
    assert_eq!(kept.errorcode(), Some("invalidtoken"));
    assert!(!kept.is_transient());
}

/// One observed exception: the function called, what 4.4 and 5.1 answered (observed-4.4.md,
/// observed-5.1.md), and what it means.
struct Observed {
    function: &'static str,
    v4_4: &'static str,
    v5_1: &'static str,
    refusal: Refusal,
}

const OBSERVED: &[Observed] = &[
    Observed {
        function: "core_webservice_get_site_info",
        v4_4: r#"{"exception":"moodle_exception","errorcode":"invalidtoken","message":"Invalid token - token not found"}"#,
        v5_1: r#"{"exception":"core\\exception\\moodle_exception","errorcode":"invalidtoken","message":"Invalid token - token not found"}"#,
        refusal: Refusal::InvalidToken,
    },
    Observed {
        function: "local_nothing_here",
        v4_4: r#"{"exception":"dml_missing_record_exception","errorcode":"invalidrecord","message":"Can't find data record in database table external_functions."}"#,
        v5_1: r#"{"exception":"dml_missing_record_exception","errorcode":"invalidrecordunknown","message":"Can't find data record in database."}"#,
        refusal: Refusal::UnknownFunction,
    },
    Observed {
        function: "core_course_delete_courses",
        v4_4: r#"{"exception":"webservice_access_exception","errorcode":"accessexception","message":"Access control exception"}"#,
        v5_1: r#"{"exception":"webservice_access_exception","errorcode":"accessexception","message":"Access control exception"}"#,
        refusal: Refusal::NotInService,
    },
    Observed {
        function: "core_course_duplicate_course",
        v4_4: r#"{"exception":"moodle_exception","errorcode":"shortnametaken","message":"Short name is already used for another course (Spring 2027 Section A)"}"#,
        v5_1: r#"{"exception":"core\\exception\\moodle_exception","errorcode":"shortnametaken","message":"Short name is already used for another course (Spring 2027 Section A)"}"#,
        refusal: Refusal::ShortnameTaken,
    },
    Observed {
        function: "core_user_create_users",
        v4_4: r#"{"exception":"invalid_parameter_exception","errorcode":"invalidparameter","message":"Invalid parameter value detected"}"#,
        v5_1: r#"{"exception":"core\\exception\\invalid_parameter_exception","errorcode":"invalidparameter","message":"Invalid parameter value detected"}"#,
        refusal: Refusal::InvalidParameter,
    },
    Observed {
        // Enrol into a missing course: invalidparameter, not a missing record.
        function: "enrol_manual_enrol_users",
        v4_4: r#"{"exception":"invalid_parameter_exception","errorcode":"invalidparameter","message":"Invalid parameter value detected"}"#,
        v5_1: r#"{"exception":"core\\exception\\invalid_parameter_exception","errorcode":"invalidparameter","message":"Invalid parameter value detected"}"#,
        refusal: Refusal::InvalidParameter,
    },
    Observed {
        function: "core_course_duplicate_course",
        v4_4: r#"{"exception":"base_setting_exception","errorcode":"setting_locked_by_permission","message":"error\/setting_locked_by_permission"}"#,
        v5_1: r#"{"exception":"base_setting_exception","errorcode":"setting_locked_by_permission","message":"error\/setting_locked_by_permission"}"#,
        refusal: Refusal::MissingCapability,
    },
    Observed {
        function: "enrol_manual_enrol_users",
        v4_4: r#"{"exception":"moodle_exception","errorcode":"wsusercannotassign","message":"You don't have the permission to assign this role (1) to this user (5) in this course (3)."}"#,
        v5_1: r#"{"exception":"core\\exception\\moodle_exception","errorcode":"wsusercannotassign","message":"You don't have the permission to assign this role (1) to this user (5) in this course (3)."}"#,
        refusal: Refusal::RoleNotAssignable,
    },
    Observed {
        function: "enrol_manual_enrol_users",
        v4_4: r#"{"exception":"coding_exception","errorcode":"codingerror","message":"Coding error detected, it must be fixed by a programmer: User ID does not exist or is deleted!"}"#,
        v5_1: r#"{"exception":"dml_missing_record_exception","errorcode":"invalidrecordunknown","message":"Can't find data record in database."}"#,
        refusal: Refusal::MissingUser,
    },
    Observed {
        function: "enrol_manual_enrol_users",
        v4_4: r#"{"exception":"moodle_exception","errorcode":"wsnoinstance","message":"Manual enrolment plugin instance doesn't exist or is disabled for the course (id = {$a->courseid})"}"#,
        v5_1: r#"{"exception":"core\\exception\\moodle_exception","errorcode":"wsnoinstance","message":"Manual enrolment plugin instance doesn't exist or is disabled for the course (id = {$a->courseid})"}"#,
        refusal: Refusal::NoManualEnrolment,
    },
    Observed {
        function: "core_course_duplicate_course",
        v4_4: r#"{"exception":"moodle_exception","errorcode":"invalidcourseid","message":"You are trying to use an invalid course ID"}"#,
        v5_1: r#"{"exception":"core\\exception\\moodle_exception","errorcode":"invalidcourseid","message":"You are trying to use an invalid course ID"}"#,
        refusal: Refusal::MissingCourse,
    },
    Observed {
        function: "core_course_duplicate_course",
        v4_4: r#"{"exception":"dml_missing_record_exception","errorcode":"invalidrecord","message":"Can't find data record in database table course_categories."}"#,
        v5_1: r#"{"exception":"dml_missing_record_exception","errorcode":"invalidrecordunknown","message":"Can't find data record in database."}"#,
        refusal: Refusal::MissingCategory,
    },
    Observed {
        function: "core_enrol_get_enrolled_users",
        v4_4: r#"{"exception":"dml_missing_record_exception","errorcode":"invalidrecord","message":"Can't find data record in database table course."}"#,
        v5_1: r#"{"exception":"dml_missing_record_exception","errorcode":"invalidrecordunknown","message":"Can't find data record in database."}"#,
        refusal: Refusal::MissingCourse,
    },
    Observed {
        function: "enrol_manual_unenrol_users",
        v4_4: r#"{"exception":"dml_missing_record_exception","errorcode":"invalidrecord","message":"Can't find data record in database table course."}"#,
        v5_1: r#"{"exception":"dml_missing_record_exception","errorcode":"invalidrecordunknown","message":"Can't find data record in database."}"#,
        refusal: Refusal::MissingCourse,
    },
    Observed {
        function: "core_course_duplicate_course",
        v4_4: r#"{"exception":"moodle_exception","errorcode":"invalidextparam","message":"Invalid external api parameter: users"}"#,
        v5_1: r#"{"exception":"core\\exception\\moodle_exception","errorcode":"invalidextparam","message":"Invalid external api parameter: users"}"#,
        refusal: Refusal::Other,
    },
    Observed {
        function: "core_user_create_users",
        v4_4: r#"{"exception":"moodle_exception","errorcode":"<div>Passwords must be at least 8 characters long.<\/div>","message":"error\/<div>Passwords must be at least 8 characters long.<\/div>"}"#,
        v5_1: r#"{"exception":"core\\exception\\moodle_exception","errorcode":"<div>Passwords must be at least 8 characters long.<\/div>","message":"error\/<div>Passwords must be at least 8 characters long.<\/div>"}"#,
        refusal: Refusal::PasswordPolicy,
    },
    Observed {
        function: "core_course_duplicate_course",
        v4_4: r#"{"exception":"moodle_exception","errorcode":"ex_unabletolock","message":"Unable to acquire a lock for caching."}"#,
        v5_1: r#"{"exception":"core\\exception\\moodle_exception","errorcode":"ex_unabletolock","message":"Unable to acquire a lock for caching."}"#,
        refusal: Refusal::Busy,
    },
    Observed {
        // Two duplications of one template at once (the lab, 4.4; 5.1 not observed).
        function: "core_course_duplicate_course",
        v4_4: r#"{"exception":"stored_file_creation_exception","errorcode":"storedfilenotcreated","message":"Cannot create file 14\/backup\/course\/0\/backup.mbz"}"#,
        v5_1: r#"{"exception":"stored_file_creation_exception","errorcode":"storedfilenotcreated","message":"Cannot create file 14\/backup\/course\/0\/backup.mbz"}"#,
        refusal: Refusal::Busy,
    },
    Observed {
        function: "core_course_duplicate_course",
        v4_4: r#"{"exception":"require_login_exception","errorcode":"requireloginerror","message":"Course or activity not accessible."}"#,
        v5_1: r#"{"exception":"require_login_exception","errorcode":"requireloginerror","message":"Course or activity not accessible."}"#,
        refusal: Refusal::MissingCapability,
    },
    Observed {
        function: "core_user_create_users",
        v4_4: r#"{"exception":"required_capability_exception","errorcode":"nopermissions","message":"Sorry, but you do not currently have permissions to do that (Create users)."}"#,
        v5_1: r#"{"exception":"required_capability_exception","errorcode":"nopermissions","message":"Sorry, but you do not currently have permissions to do that (Create users)."}"#,
        refusal: Refusal::MissingCapability,
    },
    Observed {
        function: "core_enrol_get_enrolled_users",
        v4_4: r#"{"exception":"moodle_exception","errorcode":"errorcoursecontextnotvalid","message":"You cannot execute functions in the course context (course id:3). The context error message was: Course or activity not accessible."}"#,
        v5_1: r#"{"exception":"core\\exception\\moodle_exception","errorcode":"errorcoursecontextnotvalid","message":"You cannot execute functions in the course context (course id:3). The context error message was: Course or activity not accessible."}"#,
        refusal: Refusal::MissingCapability,
    },
];

#[test]
fn observed_bodies_mean_the_same_on_both_releases() {
    for o in OBSERVED {
        for (release, body) in [("4.4", o.v4_4), ("5.1", o.v5_1)] {
            let e = crate::wire::parse_body::<serde_json::Value>(o.function, body.as_bytes())
                .expect_err(body);
            let what = format!("{} on {release}: {body}", o.function);
            assert_eq!(e.refusal(), Some(o.refusal), "{what}");
            let raw: serde_json::Value = serde_json::from_str(body).unwrap();
            assert_eq!(e.errorcode(), raw["errorcode"].as_str(), "{what}");
            assert_eq!(e.is_transient(), o.refusal == Refusal::Busy, "{what}");
            assert!(!e.outcome_unknown(), "{what}");
            assert_eq!(
                e.is_missing_record(),
                o.refusal.is_missing_record(),
                "{what}"
            );
            assert_eq!(
                e.is_unknown_function(),
                o.refusal == Refusal::UnknownFunction,
                "{what}"
            );
            assert_eq!(
                e.is_missing_user(),
                o.refusal == Refusal::MissingUser,
                "{what}"
            );
            assert_eq!(
                e.is_missing_course(),
                o.refusal == Refusal::MissingCourse,
                "{what}"
            );
            assert_eq!(e.is_item_refusal(), o.refusal.is_item_specific(), "{what}");
            // The advice is the same text on both releases, and never empty.
            let other = if release == "4.4" { o.v5_1 } else { o.v4_4 };
            let twin = crate::wire::parse_body::<serde_json::Value>(o.function, other.as_bytes())
                .expect_err(other);
            assert_eq!(e.advice(), twin.advice(), "{what}");
            assert!(!e.advice().is_empty(), "{what}");
        }
    }
}

#[test]
fn the_function_tells_a_missing_record_on_5_1() {
    let body = r#"{"exception":"dml_missing_record_exception","errorcode":"invalidrecordunknown","message":"Can't find data record in database."}"#;
    let parse =
        |f: &str| crate::wire::parse_body::<serde_json::Value>(f, body.as_bytes()).unwrap_err();
    assert!(parse("local_nothing_here")
        .advice()
        .contains("does not exist on this Moodle"));
    // The engine's own functions exist on every supported release: a record is missing.
    assert_eq!(
        parse("core_course_delete_courses").refusal(),
        Some(Refusal::MissingRecord)
    );
    assert!(parse("core_course_delete_courses").is_missing_record());
    // 4.4 names the table, so an engine function a (too old) site lacks is told as such.
    let old_site = crate::wire::parse_body::<serde_json::Value>(
        "core_course_search_courses",
        br#"{"exception":"dml_missing_record_exception","errorcode":"invalidrecord","message":"Can't find data record in database table external_functions."}"#,
    )
    .unwrap_err();
    assert!(old_site.is_unknown_function());
    assert!(old_site.advice().contains("too old"));
    assert!(parse("core_enrol_get_enrolled_users").is_missing_course());
    assert!(parse("enrol_manual_enrol_users").is_missing_user());
    assert!(parse("enrol_manual_enrol_users").is_item_refusal());
    assert!(!parse("enrol_manual_unenrol_users").is_item_refusal());
    assert_eq!(
        parse("core_course_duplicate_course").refusal(),
        Some(Refusal::MissingCategory)
    );
    // A 4.4 body naming a table that tells nothing falls back to the function too.
    let e = MoodleError::Moodle {
        function: "enrol_manual_unenrol_users".into(),
        errorcode: "invalidrecord".into(),
        message: "Impossible de trouver l'enregistrement".into(),
        class: ErrorClass::Permanent,
    };
    assert!(e.is_missing_course());
    // Other coding errors are not missing users; non-Moodle errors are no refusal.
    let coding = MoodleError::Moodle {
        function: "core_user_get_users_by_field".into(),
        errorcode: "codingerror".into(),
        message: "Coding error detected, it must be fixed by a programmer: invalid field parameter"
            .into(),
        class: ErrorClass::Permanent,
    };
    assert_eq!(coding.refusal(), Some(Refusal::Other));
    let local = MoodleError::InvalidInput {
        function: "f".into(),
        detail: "d".into(),
    };
    assert!(local.refusal().is_none() && local.is_item_refusal());
    assert_eq!(Refusal::MissingUser.as_str(), "missing_user");
    assert_eq!(
        serde_json::to_value(Refusal::NoManualEnrolment).unwrap(),
        "no_manual_enrolment"
    );
}

#[test]
fn missing_record_warnings_on_both_releases() {
    for code in ["invalidrecord", "invalidrecordunknown"] {
        let w = crate::Warning {
            item: Some("course".into()),
            itemid: Some(99_999),
            warningcode: code.into(),
            message: String::new(),
        };
        assert!(w.is_missing_record(), "{code}");
    }
    let gone = crate::Warning {
        item: Some("course".into()),
        itemid: Some(99_999),
        warningcode: "unknowncourseidnumber".into(),
        message: "Unknown course ID 99999".into(),
    };
    assert!(!gone.is_missing_record());
}
