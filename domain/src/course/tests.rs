use super::*;

fn spec() -> CourseSpec {
    CourseSpec::resolve(
        &CourseShape::default(),
        &CourseDefaults::default(),
        "Networks lab",
        "2026-12-02",
    )
}

fn vars<'a>(id: &'a str, name: &'a str) -> CourseVars<'a> {
    CourseVars {
        event_id: id,
        event_name: name,
        environment_id: "env-1",
        starts_at: None,
    }
}

const ID: &str = "1a2b3c4d-0000-4000-8000-000000000001";

#[test]
fn defaults_give_readable_names_and_a_stable_idnumber() {
    let n = spec().names(&vars(ID, "Spring lab"));
    assert_eq!(n.fullname, "Spring lab");
    assert_eq!(n.shortname, "Spring lab (1a2b3c4d)");
    assert_eq!(n.idnumber.as_deref(), Some(&*format!("ovle-{ID}")));
}

#[test]
fn every_placeholder_renders() {
    let s = CourseSpec {
        shortname_template:
            "{event_name}|{event_id}|{event_short_id}|{environment_id}|{environment_name}|{starts_on}|{year}"
                .into(),
        ..spec()
    };
    let mut v = vars(ID, "Lab");
    assert_eq!(
        s.names(&v).shortname,
        format!("Lab|{ID}|1a2b3c4d|env-1|Networks lab|2026-12-02|2026")
    );
    v.starts_at = Some(1_788_220_800); // 2026-09-01T00:00:00Z
    assert!(s.names(&v).shortname.ends_with("|2026-09-01|2026"));
}

#[test]
fn an_empty_idnumber_template_gives_none() {
    let s = CourseSpec {
        idnumber_template: String::new(),
        ..spec()
    };
    assert_eq!(s.names(&vars(ID, "Lab")).idnumber, None);
}

#[test]
fn a_long_name_gives_way_and_the_id_stays() {
    let long = "é".repeat(300);
    let n = spec().names(&vars(ID, &long));
    assert_eq!(n.shortname.chars().count(), SHORTNAME_MAX);
    assert!(n.shortname.ends_with(" (1a2b3c4d)"), "{}", n.shortname);
    assert_eq!(n.fullname.chars().count(), FULLNAME_MAX);
}

#[test]
fn tags_never_reach_moodle() {
    let n = spec().names(&vars(ID, "Lab <b>1</b>"));
    assert_eq!(n.fullname, "Lab ‹b›1‹/b›");
}

#[test]
fn templates_are_checked() {
    let bad = |kind, t: &str| check_template("f", kind, t, "Env").unwrap_err().code();
    assert_eq!(
        bad(NameKind::Shortname, "{event_nam}"),
        "invalid_course_template"
    );
    assert_eq!(
        bad(NameKind::Shortname, "LAB-{year"),
        "invalid_course_template"
    );
    assert_eq!(bad(NameKind::Shortname, "LAB}"), "invalid_course_template");
    assert_eq!(
        bad(NameKind::Shortname, "LAB-{year}"),
        "invalid_course_template"
    );
    assert_eq!(bad(NameKind::Fullname, "  "), "invalid_course_template");
    let long = format!("{}{{event_id}}", "x".repeat(70));
    assert_eq!(bad(NameKind::Idnumber, &long), "invalid_course_template");
    let err = check_template(
        "moodle_course_shortname_template",
        NameKind::Shortname,
        "{x}",
        "E",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("moodle_course_shortname_template") && err.contains("{event_short_id}"),
        "{err}"
    );
    for ok in [
        "{event_name} {year}",
        "R-{event_short_id}",
        "{environment_name}: {event_name}",
    ] {
        check_template("f", NameKind::Shortname, ok, "Env").unwrap();
    }
    check_template("f", NameKind::Idnumber, "", "Env").unwrap();
    check_template("f", NameKind::Fullname, "Course of {year}", "Env").unwrap();
}

#[test]
fn the_environment_overrides_the_defaults() {
    let shape = CourseShape {
        category_id: Some(3),
        shortname_template: Some("{environment_name}-{event_short_id}".into()),
        visibility: Some(CourseVisibility::AtStart),
        archive_category_id: Some(4),
        ..CourseShape::default()
    };
    let defaults = CourseDefaults {
        category_id: Some(2),
        ..CourseDefaults::default()
    };
    let s = CourseSpec::resolve(&shape, &defaults, "Net", "2026-12-02");
    assert_eq!(s.category_id, Some(3));
    assert_eq!(s.archive_category_id, Some(4));
    assert_eq!(s.visibility, CourseVisibility::AtStart);
    assert_eq!(s.fullname_template, "{event_name}");
    assert_eq!(s.names(&vars(ID, "x")).shortname, "Net-1a2b3c4d");
    assert!(CourseShape {
        category_id: Some(0),
        ..shape
    }
    .check("Net")
    .is_err());
}
