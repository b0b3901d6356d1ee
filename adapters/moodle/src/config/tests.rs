//! The settings parser's rules.
use super::*;
use std::collections::HashMap;

fn settings(pairs: &[(&str, &str)]) -> Result<MoodleSettings, ConfigError> {
    let m: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    MoodleSettings::from_lookup(|k| m.get(k).cloned())
}

#[test]
fn defaults_are_disabled() {
    let s = settings(&[]).unwrap();
    assert!(!s.enabled);
    assert_eq!(s.student_role_id, 5);
    assert_eq!(s.instructor_role_id, 3);
    assert_eq!(s.timeout, Duration::from_secs(30));
    assert_eq!(s.duplicate_timeout, Duration::from_secs(600));
    assert_eq!(s.new_user_auth, "manual");
}

#[test]
fn malformed_value_names_the_variable() {
    let e = settings(&[("MOODLE_STUDENT_ROLE_ID", "x")]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "MOODLE_STUDENT_ROLE_ID: expected a positive integer, got \"x\""
    );
    let e = settings(&[("MOODLE_ENABLED", "maybe")]).unwrap_err();
    assert!(e
        .to_string()
        .starts_with("MOODLE_ENABLED: expected true or false"));
    let e = settings(&[("MOODLE_REMOVAL_MODE", "delete")]).unwrap_err();
    assert!(e.to_string().contains("unenrol or suspend"));
}

#[test]
fn enabled_requires_url_token_category() {
    let e = settings(&[("MOODLE_ENABLED", "true")]).unwrap_err();
    assert_eq!(e, ConfigError::Missing { var: "MOODLE_URL" });
    let e = settings(&[
        ("MOODLE_ENABLED", "true"),
        ("MOODLE_URL", "https://m.example.org"),
    ])
    .unwrap_err();
    assert_eq!(
        e,
        ConfigError::Missing {
            var: "MOODLE_TOKEN"
        }
    );
    let e = settings(&[
        ("MOODLE_ENABLED", "true"),
        ("MOODLE_URL", "https://m.example.org/"),
        ("MOODLE_TOKEN", "secrettoken"),
    ])
    .unwrap_err();
    assert_eq!(
        e,
        ConfigError::Missing {
            var: "MOODLE_COURSE_CATEGORY_ID"
        }
    );
    let s = settings(&[
        ("MOODLE_ENABLED", "true"),
        ("MOODLE_URL", "https://m.example.org/"),
        ("MOODLE_TOKEN", "secrettoken"),
        ("MOODLE_COURSE_CATEGORY_ID", "7"),
        ("MOODLE_REMOVAL_MODE", "suspend"),
        ("MOODLE_USER_MATCH_FIELD", "username"),
    ])
    .unwrap();
    assert_eq!(s.url.as_deref(), Some("https://m.example.org"));
    assert_eq!(s.removal_mode, RemovalMode::Suspend);
    assert_eq!(s.user_match_field, UserMatchField::Username);
    assert!(!format!("{s:?}").contains("secrettoken"));
}

#[test]
fn http_refused_unless_allowed() {
    let e = settings(&[("MOODLE_URL", "http://localhost:9090")]).unwrap_err();
    assert!(matches!(e, ConfigError::InsecureUrl { .. }));
    let s = settings(&[
        ("MOODLE_URL", "http://localhost:9090"),
        ("MOODLE_ALLOW_INSECURE_HTTP", "1"),
    ])
    .unwrap();
    assert_eq!(s.url.as_deref(), Some("http://localhost:9090"));
    assert!(settings(&[("MOODLE_URL", "ftp://x")]).is_err());
    assert!(settings(&[("MOODLE_URL", "not a url")]).is_err());
}

#[test]
fn a_token_with_surrounding_whitespace_is_refused_by_name() {
    for bad in ["secrettoken\n", " secrettoken", "secrettoken \t"] {
        let e = MoodleSettings::from_lookup(|k| (k == "MOODLE_TOKEN").then(|| bad.to_string()))
            .unwrap_err();
        let text = format!("{e} {e:?}");
        assert!(
            text.starts_with("MOODLE_TOKEN: the value has surrounding whitespace"),
            "{text}"
        );
        assert!(!text.contains("secrettoken"), "{text}");
    }
    let s =
        MoodleSettings::from_lookup(|k| (k == "MOODLE_TOKEN").then(|| "  \n".to_string())).unwrap();
    assert!(s.token.is_none());
    let s =
        MoodleSettings::from_lookup(|k| (k == "MOODLE_TOKEN").then(|| "a b".to_string())).unwrap();
    assert_eq!(
        s.token.map(|t| t.expose().to_string()).as_deref(),
        Some("a b")
    );
}

#[test]
fn course_defaults_and_their_checks() {
    let s = settings(&[("MOODLE_COURSE_CATEGORY_ID", "3")]).unwrap();
    let d = s.course_defaults();
    assert_eq!(d.category_id, Some(3));
    assert_eq!(d.fullname_template, "{event_name}");
    assert_eq!(d.shortname_template, "{event_name} ({event_short_id})");
    assert_eq!(d.idnumber_template, "ovle-{event_id}");
    assert_eq!(d.visibility, CourseVisibility::Visible);
    assert_eq!(d.archive_category_id, None);

    let s = settings(&[
        (
            "MOODLE_COURSE_SHORTNAME_TEMPLATE",
            "{year}-{event_short_id}",
        ),
        ("MOODLE_COURSE_VISIBILITY", "at_start"),
        ("MOODLE_ARCHIVE_CATEGORY_ID", "4"),
    ])
    .unwrap();
    let d = s.course_defaults();
    assert_eq!(d.shortname_template, "{year}-{event_short_id}");
    assert_eq!(d.visibility, CourseVisibility::AtStart);
    assert_eq!(d.archive_category_id, Some(4));

    let e = settings(&[("MOODLE_COURSE_VISIBILITY", "sometimes")]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "MOODLE_COURSE_VISIBILITY: expected visible, hidden or at_start, got \"sometimes\""
    );
    let e = settings(&[("MOODLE_COURSE_SHORTNAME_TEMPLATE", "{event_nmae}")]).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("MOODLE_COURSE_SHORTNAME_TEMPLATE: ")
            && e.to_string().contains("event_nmae"),
        "{e}"
    );
    // The same name for every event's course is refused: Moodle's shortnames are unique.
    let e = settings(&[("MOODLE_COURSE_SHORTNAME_TEMPLATE", "{year} lab")]).unwrap_err();
    assert!(e.to_string().contains("every event's course"), "{e}");
    let e = settings(&[(
        "MOODLE_COURSE_IDNUMBER_TEMPLATE",
        &format!("{}{{event_id}}", "x".repeat(70)),
    )])
    .unwrap_err();
    assert!(e.to_string().contains("limit of 100"), "{e}");
    let e = settings(&[("MOODLE_ARCHIVE_CATEGORY_ID", "-4")]).unwrap_err();
    assert!(e
        .to_string()
        .starts_with("MOODLE_ARCHIVE_CATEGORY_ID: expected a positive integer"));
}

#[test]
fn the_rest_endpoint_given_as_the_site_is_refused_with_the_wwwroot_to_use() {
    for (given, root) in [
        (
            "https://m.example.org/webservice/rest/server.php",
            "https://m.example.org",
        ),
        (
            "https://m.example.org/moodle/webservice/rest/server.php/",
            "https://m.example.org/moodle",
        ),
        (
            "https://m.example.org/moodle/webservice/rest",
            "https://m.example.org/moodle",
        ),
    ] {
        let e = settings(&[("MOODLE_URL", given)]).unwrap_err();
        let text = e.to_string();
        assert!(text.starts_with("MOODLE_URL: "), "{text}");
        assert!(text.contains("REST endpoint"), "{text}");
        assert!(text.contains(&format!("{root:?}")), "{text}");
    }
    let s = settings(&[("MOODLE_URL", "https://m.example.org/moodle/")]).unwrap();
    assert_eq!(s.url.as_deref(), Some("https://m.example.org/moodle"));
}
