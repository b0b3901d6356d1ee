//! Course look-ups, duplication errors, updates, deletion, categories.

use crate::common::{suffix, targets};
use crate::contract::{cleanup, code, missing_code, new_course};
use moodle::*;

#[tokio::test]
async fn duplicate_then_shortnametaken_and_lookups() {
    for t in targets().await {
        let c = t.client();
        let s = suffix();
        let course = new_course(&t, &c, &s).await;
        assert_eq!(course.shortname, format!("OVLE-T-{s}"));
        let found = c
            .get_courses_by_field(CourseField::Shortname, &course.shortname)
            .await
            .unwrap();
        assert_eq!(found.len(), 1, "{}", t.name);
        assert_eq!(found[0].id, course.id);
        assert_eq!(found[0].categoryid, t.category);
        assert_eq!(found[0].visible, Some(true));
        let by_id = c
            .get_courses_by_field(CourseField::Id, &course.id.to_string())
            .await
            .unwrap();
        assert_eq!(by_id[0].shortname, course.shortname);
        assert!(c
            .get_courses_by_field(CourseField::Shortname, &format!("no-such-{s}"))
            .await
            .unwrap()
            .is_empty());
        let again = c
            .duplicate_course(&DuplicateCourse {
                template_id: t.template,
                fullname: "Other".into(),
                shortname: course.shortname.clone(),
                category_id: t.category,
                visible: true,
            })
            .await;
        let e = again.unwrap_err();
        assert_eq!(e.code(), "shortnametaken", "{}", t.name);
        assert_eq!(e.refusal(), Some(Refusal::ShortnameTaken));
        assert!(e.to_string().contains(&format!("OVLE test {s}")));
        let found = c
            .search_courses(&format!("OVLE-T-{s}"), 0, 10)
            .await
            .unwrap();
        assert_eq!(found.total, 1);
        cleanup(&t, &c, &[course.id], &[]).await;
    }
}

#[tokio::test]
async fn front_page_and_id_lists() {
    for t in targets().await {
        let c = t.client();
        // The front page (course 1) is a course to the look-ups, never to the search.
        let front = c.get_courses_by_field(CourseField::Id, "1").await.unwrap();
        assert_eq!(front.len(), 1, "{}", t.name);
        assert_eq!(front[0].categoryid, 0);
        let ids = c
            .get_courses_by_field(CourseField::Ids, &t.template.to_string())
            .await
            .unwrap();
        assert_eq!(ids.len(), 1, "{}", t.name);
        // One id that does not exist: a PHP Error without errorcode (4.4), whatever the others.
        let e = c
            .get_courses_by_field(CourseField::Ids, &format!("{},99999999", t.template))
            .await
            .unwrap_err();
        assert_eq!(e.errorcode(), Some("Error"), "{}: {e:?}", t.name);
        assert_eq!(e.refusal(), Some(Refusal::Other));
        assert!(!e.is_transient());
    }
}

#[tokio::test]
async fn duplicate_errors_in_moodles_order() {
    for t in targets().await {
        let c = t.client();
        let raw =
            |template: i64, category: i64, shortname: String, option: Option<(&str, &str)>| {
                let mut form = Form::new();
                form.push("courseid", template)
                    .push("fullname", "X")
                    .push("shortname", shortname)
                    .push("categoryid", category);
                if let Some((name, value)) = option {
                    form.push_objects(
                        "options",
                        &[vec![
                            ("value", value.to_string()),
                            ("name", name.to_string()),
                        ]],
                    );
                }
                form
            };
        let fresh = || format!("OVLE-X-{}", suffix());
        let client = &c;
        let dup =
            |f: Form| async move { client.call_raw("core_course_duplicate_course", &f).await };
        // The template is checked first, then the category, then the options, then the
        // capabilities, then the shortname.
        let e = dup(raw(99_999_999, 99_999_999, fresh(), Some(("users", "2"))))
            .await
            .unwrap_err();
        assert_eq!(e.code(), "invalidcourseid", "{}", t.name);
        assert!(e.is_missing_course());
        let e = dup(raw(t.template, 99_999_999, fresh(), Some(("users", "2"))))
            .await
            .unwrap_err();
        assert_eq!(e.code(), missing_code(&t), "{}", t.name);
        assert_eq!(e.refusal(), Some(Refusal::MissingCategory), "{}", t.name);
        let taken = c
            .get_courses_by_field(CourseField::Id, &t.template.to_string())
            .await
            .unwrap()[0]
            .shortname
            .clone();
        let bad = dup(raw(
            t.template,
            t.category,
            taken.clone(),
            Some(("nosuch", "1")),
        ));
        assert_eq!(code(bad.await), "invalidextparam", "{}", t.name);
        let bad = dup(raw(
            t.template,
            t.category,
            taken.clone(),
            Some(("users", "2")),
        ));
        assert_eq!(code(bad.await), "invalidextparam", "{}", t.name);
        // users=1 needs moodle/restore:userinfo, which the web-service user lacks...
        let e = dup(raw(
            t.template,
            t.category,
            taken.clone(),
            Some(("users", "1")),
        ))
        .await
        .unwrap_err();
        assert_eq!(e.code(), "nopermissions", "{}", t.name);
        assert!(e.to_string().contains("(Restore user data)"), "{e}");
        assert_eq!(e.refusal(), Some(Refusal::MissingCapability));
        // ...users=0 does not (it holds moodle/backup:userinfo): the shortname check is next.
        let e = dup(raw(t.template, t.category, taken, Some(("users", "0"))))
            .await
            .unwrap_err();
        assert_eq!(e.code(), "shortnametaken", "{}", t.name);
        // The typed call checks names locally.
        let e = c
            .duplicate_course(&DuplicateCourse {
                template_id: t.template,
                fullname: "<b>X</b>".into(),
                shortname: fresh(),
                category_id: t.category,
                visible: true,
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), "invalid_input");
    }
}

#[tokio::test]
async fn update_and_delete_warnings() {
    for t in targets().await {
        let c = t.client();
        let course = new_course(&t, &c, &suffix()).await;
        let w = c
            .update_courses(&[CourseUpdate {
                id: course.id,
                visible: Some(false),
                ..Default::default()
            }])
            .await
            .unwrap();
        assert!(w.is_empty(), "{}: {w:?}", t.name);
        let got = c
            .get_courses_by_field(CourseField::Id, &course.id.to_string())
            .await
            .unwrap();
        assert_eq!(got[0].visible, Some(false));
        let w = c
            .update_courses(&[CourseUpdate {
                id: 99_999_999,
                visible: Some(false),
                ..Default::default()
            }])
            .await
            .unwrap();
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].warningcode, missing_code(&t), "{}", t.name);
        assert!(w[0].is_missing_record());
        assert_eq!(w[0].itemid, Some(99_999_999));
        // No typed update of these fields: raw calls. Each failure is a warning of its own.
        let template = c
            .get_courses_by_field(CourseField::Id, &t.template.to_string())
            .await
            .unwrap();
        let update = |key: &str, value: &str| {
            let mut form = Form::new();
            form.push_objects(
                "courses",
                &[vec![
                    (key, value.to_string()),
                    ("id", course.id.to_string()),
                ]],
            );
            form
        };
        let warn = |v: serde_json::Value| {
            (
                v["warnings"][0]["warningcode"].clone(),
                v["warnings"][0]["message"].clone(),
            )
        };
        let taken = &template[0].shortname;
        let v = c
            .call_raw("core_course_update_courses", &update("shortname", taken))
            .await
            .unwrap();
        assert_eq!(
            warn(v),
            (
                "shortnametaken".into(),
                format!("Short name is already used for another course ({taken})").into()
            ),
            "{}",
            t.name
        );
        let v = c
            .call_raw("core_course_update_courses", &update("fullname", " "))
            .await
            .unwrap();
        assert_eq!(
            warn(v),
            (
                "errorinvalidparam".into(),
                "The param \"fullname\" is invalid.".into()
            ),
            "{}",
            t.name
        );
        // A category that does not exist: a warning, but Moodle wrote the course first, hidden,
        // into that category; such a course cannot be deleted until it is moved back.
        let v = c
            .call_raw(
                "core_course_update_courses",
                &update("categoryid", "99999999"),
            )
            .await
            .unwrap();
        assert_eq!(warn(v).0, missing_code(&t), "{}", t.name);
        let moved = c
            .get_courses_by_field(CourseField::Id, &course.id.to_string())
            .await
            .unwrap();
        assert_eq!(
            (moved[0].categoryid, moved[0].visible),
            (99_999_999, Some(false)),
            "{}",
            t.name
        );
        let e = c.delete_courses(&[course.id]).await.unwrap_err();
        assert_eq!(e.code(), missing_code(&t), "{}", t.name);
        assert!(e.is_missing_record(), "{}: {e:?}", t.name);
        let v = c
            .call_raw(
                "core_course_update_courses",
                &update("categoryid", &t.category.to_string()),
            )
            .await
            .unwrap();
        assert_eq!(v["warnings"], serde_json::json!([]), "{}", t.name);
        let w = c.delete_courses(&[course.id]).await.unwrap();
        assert!(w.is_empty());
        let w = c.delete_courses(&[course.id, 1]).await.unwrap();
        assert_eq!(w[0].warningcode, "unknowncourseidnumber");
        assert_eq!(w[0].message, format!("Unknown course ID {}", course.id));
        // The front page is never deleted.
        assert_eq!(w[1].warningcode, "cannotdeletecategorycourse", "{}", t.name);
        assert_eq!(w[1].message, "Course 1 failed to be deleted");
    }
}

#[tokio::test]
async fn categories() {
    for t in targets().await {
        let c = t.client();
        let cats = c
            .get_categories(&[("id", &t.category.to_string())])
            .await
            .unwrap();
        assert_eq!(cats.len(), 1);
        assert_eq!(cats[0].id, t.category);
        assert!(!c.get_categories(&[]).await.unwrap().is_empty());
        assert!(c
            .get_categories(&[("id", "99999999")])
            .await
            .unwrap()
            .is_empty());
        let e = c.get_categories(&[("nosuch", "1")]).await.unwrap_err();
        assert_eq!(e.code(), "criteriaerror", "{}", t.name);
        assert!(e
            .to_string()
            .contains("Missing permissions to search on a criterion."));
    }
}
