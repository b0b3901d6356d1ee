//! Contract suite: the behaviours of shared/moodle (observed-4.4.md first), run against the
//! simulator and, when configured, a real Moodle (see tests/common).

mod common;

use common::{suffix, targets, Target};
use moodle::*;

fn new_user(tag: &str, s: &str) -> NewUser {
    NewUser {
        username: format!("ovle.{tag}.{s}"),
        firstname: "Ada".into(),
        lastname: format!("Test {tag}"),
        email: format!("ovle.{tag}.{s}@example.org"),
        auth: "manual".into(),
        password: Some(Secret::new("Sup3r-secret!pw")),
        createpassword: false,
    }
}

async fn new_course(t: &Target, c: &MoodleClient, s: &str) -> DuplicatedCourse {
    c.duplicate_course(&DuplicateCourse {
        template_id: t.template,
        fullname: format!("OVLE test {s}"),
        shortname: format!("OVLE-T-{s}"),
        category_id: t.category,
        visible: true,
    })
    .await
    .expect("duplicate")
}

fn code<T: std::fmt::Debug>(r: Result<T, MoodleError>) -> String {
    r.expect_err("expected an error").code()
}

#[tokio::test]
async fn preflight_and_site_info() {
    for t in targets().await {
        let c = t.client();
        assert!(
            !format!("{c:?}").contains(&t.token),
            "Debug redacts the token"
        );
        let info = c.site_info().await.unwrap();
        assert!(info.userid > 0, "{}", t.name);
        assert!(c.release().is_some());
        let report = check(&c).await;
        assert!(report.ok, "{}: {:?}", t.name, report.problems);
        assert!(report.functions_missing.is_empty());
        assert_eq!(report.functions_found.len(), REQUIRED_FUNCTIONS.len());
        assert!(report.render_text().contains("Moodle check: OK"));
    }
}

#[tokio::test]
async fn wrong_token_is_invalidtoken_and_permanent() {
    for t in targets().await {
        let bad = Target {
            token: "not-the-token".into(),
            sim: None,
            ..t
        };
        let e = bad.client().site_info().await.unwrap_err();
        assert_eq!(e.code(), "invalidtoken");
        assert!(!e.is_transient() && !e.outcome_unknown());
        assert!(!format!("{e:?}").contains("not-the-token"));
        let report = check(&bad.client()).await;
        assert!(report.reachable && !report.token_valid && !report.ok);
        assert!(report.problems[0].contains("MOODLE_TOKEN"));
    }
}

#[tokio::test]
async fn unknown_function_is_invalidrecord() {
    for t in targets().await {
        let e = t
            .client()
            .call_raw("local_nothing_here", &Form::new())
            .await
            .unwrap_err();
        assert_eq!(e.code(), "invalidrecord");
        assert!(e.advice().contains("too old"));
    }
}

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
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].id, course.id);
        assert_eq!(found[0].categoryid, t.category);
        let by_id = c
            .get_courses_by_field(CourseField::Id, &course.id.to_string())
            .await
            .unwrap();
        assert_eq!(by_id[0].shortname, course.shortname);
        assert!(c
            .get_courses_by_field(CourseField::Shortname, "no-such-course-xyz")
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
        assert_eq!(e.code(), "shortnametaken");
        assert!(e.to_string().contains(&format!("OVLE test {s}")));
        let found = c
            .search_courses(&format!("OVLE-T-{s}"), 0, 10)
            .await
            .unwrap();
        assert_eq!(found.total, 1);
        c.delete_courses(&[course.id]).await.unwrap();
    }
}

#[tokio::test]
async fn duplicate_errors() {
    for t in targets().await {
        let c = t.client();
        let req = |template_id, category_id| DuplicateCourse {
            template_id,
            fullname: "X".into(),
            shortname: format!("OVLE-X-{}", suffix()),
            category_id,
            visible: true,
        };
        assert_eq!(
            code(c.duplicate_course(&req(99_999_999, t.category)).await),
            "invalidcourseid"
        );
        assert_eq!(
            code(c.duplicate_course(&req(t.template, 99_999_999)).await),
            "invalidrecord"
        );
        let mut form = Form::new();
        form.push("courseid", t.template)
            .push("fullname", "X")
            .push("shortname", format!("OVLE-X-{}", suffix()))
            .push("categoryid", t.category)
            .push_objects(
                "options",
                &[vec![
                    ("value", "2".to_string()),
                    ("name", "users".to_string()),
                ]],
            );
        assert_eq!(
            code(c.call_raw("core_course_duplicate_course", &form).await),
            "invalidextparam"
        );
        if t.sim.is_some() {
            let mut form = Form::new();
            form.push("courseid", t.template)
                .push("fullname", "X")
                .push("shortname", "OVLE-LOCKED")
                .push("categoryid", t.category)
                .push_objects(
                    "options",
                    &[vec![
                        ("value", "0".to_string()),
                        ("name", "users".to_string()),
                    ]],
                );
            assert_eq!(
                code(c.call_raw("core_course_duplicate_course", &form).await),
                "setting_locked_by_permission"
            );
        }
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
        assert!(w.is_empty());
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
        assert_eq!(w[0].warningcode, "invalidrecord");
        assert_eq!(w[0].itemid, Some(99_999_999));
        // shortname taken: a warning, not an exception (no typed shortname update: raw call).
        let template = c
            .get_courses_by_field(CourseField::Id, &t.template.to_string())
            .await
            .unwrap();
        let mut form = Form::new();
        form.push_objects(
            "courses",
            &[vec![
                ("shortname", template[0].shortname.clone()),
                ("id", course.id.to_string()),
            ]],
        );
        let v = c
            .call_raw("core_course_update_courses", &form)
            .await
            .unwrap();
        assert_eq!(v["warnings"][0]["warningcode"], "shortnametaken");
        let w = c.delete_courses(&[course.id]).await.unwrap();
        assert!(w.is_empty());
        let w = c.delete_courses(&[course.id]).await.unwrap();
        assert_eq!(w[0].warningcode, "unknowncourseidnumber");
        assert_eq!(w[0].message, format!("Unknown course ID {}", course.id));
    }
}

#[tokio::test]
async fn users_email_case_and_all_or_nothing() {
    for t in targets().await {
        let c = t.client();
        let s = suffix();
        let mut ada = new_user("ada", &s);
        ada.email = format!("Case.Test.{s}@Example.org");
        let created = c.create_users(std::slice::from_ref(&ada)).await.unwrap();
        assert_eq!(created[0].username, ada.username);
        let exact = c
            .get_users_by_field(UserField::Email, &[ada.email.clone()])
            .await
            .unwrap();
        assert_eq!(exact.len(), 1);
        assert_eq!(exact[0].id, created[0].id);
        let lower = c
            .get_users_by_field(UserField::Email, &[ada.email.to_lowercase()])
            .await
            .unwrap();
        if t.sim.is_some() {
            assert!(lower.is_empty(), "case-sensitive like PostgreSQL");
        }
        let fallback = c
            .get_users(&[("email", &ada.email.to_lowercase())])
            .await
            .unwrap();
        assert_eq!(fallback.len(), 1);
        assert_eq!(fallback[0].id, created[0].id);
        let by_name = c
            .get_users_by_field(UserField::Username, &[ada.username.clone()])
            .await
            .unwrap();
        assert_eq!(by_name[0].id, created[0].id);
        // A new account whose email differs only in case is refused, and the batch is all-or-nothing.
        let fresh = new_user("bob", &s);
        let mut clash = new_user("carl", &s);
        clash.email = ada.email.to_lowercase();
        let e = c.create_users(&[fresh.clone(), clash]).await.unwrap_err();
        assert_eq!(e.code(), "invalidparameter");
        let none = c
            .get_users_by_field(UserField::Username, std::slice::from_ref(&fresh.username))
            .await
            .unwrap();
        assert!(
            none.is_empty(),
            "first user of a failed batch must not exist"
        );
        // Existing username.
        assert_eq!(
            code(c.create_users(&[ada.clone()]).await),
            "invalidparameter"
        );
    }
}

#[tokio::test]
async fn local_validation_spares_a_call() {
    for t in targets().await {
        let c = t.client();
        let mut bad = new_user("x", &suffix());
        bad.username = "Ada.Upper".into();
        let e = c.create_users(&[bad]).await.unwrap_err();
        assert_eq!(e.code(), "invalid_input");
        let e = c
            .get_users_by_field(UserField::Username, &["Upper".into()])
            .await
            .unwrap_err();
        assert_eq!(e.code(), "invalid_input");
        let e = c
            .get_courses_by_field(CourseField::Idnumber, "")
            .await
            .unwrap_err();
        assert_eq!(e.code(), "invalid_input");
        assert_eq!(c.calls_made(), 0);
        // What Moodle itself says when the check is bypassed.
        let mut form = Form::new();
        form.push("field", "username")
            .push_scalars("values", &["Upper"]);
        assert_eq!(
            code(c.call_raw("core_user_get_users_by_field", &form).await),
            "invalidparameter"
        );
    }
}

#[tokio::test]
async fn enrol_upsert_suspend_reactivate_unenrol() {
    for t in targets().await {
        let c = t.client();
        let s = suffix();
        let course = new_course(&t, &c, &s).await;
        let users = c
            .create_users(&[new_user("t", &s), new_user("s", &s)])
            .await
            .unwrap();
        let (teacher, student) = (users[0].id, users[1].id);
        let e = |user_id, role_id, suspend| Enrolment {
            user_id,
            course_id: course.id,
            role_id,
            suspend,
        };
        c.enrol_users(&[e(teacher, 3, false), e(student, 5, false)])
            .await
            .unwrap();
        c.enrol_users(&[e(student, 5, false)]).await.unwrap(); // upsert: still one enrolment
        let all = c
            .get_enrolled_users(course.id, EnrolledFilter::All)
            .await
            .unwrap();
        assert_eq!(all.len(), 2);
        let st = all.iter().find(|u| u.id == student).unwrap();
        assert_eq!(st.roles.len(), 1);
        assert_eq!(st.roles[0].shortname, "student");
        // Roles are added, not replaced.
        c.enrol_users(&[e(student, 4, false)]).await.unwrap();
        let all = c
            .get_enrolled_users(course.id, EnrolledFilter::All)
            .await
            .unwrap();
        let st = all.iter().find(|u| u.id == student).unwrap();
        let mut roles: Vec<i64> = st.roles.iter().map(|r| r.roleid).collect();
        roles.sort();
        assert_eq!(roles, [4, 5]);
        // Suspend, then reactivate by enrolling again without suspend.
        c.enrol_users(&[e(student, 5, true)]).await.unwrap();
        assert_eq!(
            c.get_enrolled_users(course.id, EnrolledFilter::All)
                .await
                .unwrap()
                .len(),
            2
        );
        let active = c
            .get_enrolled_users(course.id, EnrolledFilter::OnlyActive)
            .await
            .unwrap();
        assert_eq!(active.iter().map(|u| u.id).collect::<Vec<_>>(), [teacher]);
        let susp = c
            .get_enrolled_users(course.id, EnrolledFilter::OnlySuspended)
            .await
            .unwrap();
        assert_eq!(susp.iter().map(|u| u.id).collect::<Vec<_>>(), [student]);
        c.enrol_users(&[e(student, 5, false)]).await.unwrap();
        assert_eq!(
            c.get_enrolled_users(course.id, EnrolledFilter::OnlyActive)
                .await
                .unwrap()
                .len(),
            2
        );
        // Unenrol, and unenrol again: silent.
        let un = Unenrolment {
            user_id: student,
            course_id: course.id,
        };
        c.unenrol_users(std::slice::from_ref(&un)).await.unwrap();
        c.unenrol_users(&[un]).await.unwrap();
        let left = c
            .get_enrolled_users(course.id, EnrolledFilter::All)
            .await
            .unwrap();
        assert_eq!(left.iter().map(|u| u.id).collect::<Vec<_>>(), [teacher]);
        c.delete_courses(&[course.id]).await.unwrap();
    }
}

#[tokio::test]
async fn enrol_errors_and_atomicity() {
    for t in targets().await {
        let c = t.client();
        let s = suffix();
        let course = new_course(&t, &c, &s).await;
        let u = c.create_users(&[new_user("e", &s)]).await.unwrap()[0].id;
        let e = |user_id, course_id, role_id| Enrolment {
            user_id,
            course_id,
            role_id,
            suspend: false,
        };
        let err = c.enrol_users(&[e(u, course.id, 1)]).await.unwrap_err();
        assert_eq!(err.code(), "wsusercannotassign");
        assert!(err.advice().contains("role assignments"));
        assert_eq!(
            code(c.enrol_users(&[e(99_999_999, course.id, 5)]).await),
            "codingerror"
        );
        assert_eq!(
            code(c.enrol_users(&[e(u, 99_999_999, 5)]).await),
            "invalidparameter"
        );
        // One bad item rolls back the good one before it.
        assert_eq!(
            code(
                c.enrol_users(&[e(u, course.id, 5), e(u, course.id, 999)])
                    .await
            ),
            "wsusercannotassign"
        );
        assert!(c
            .get_enrolled_users(course.id, EnrolledFilter::All)
            .await
            .unwrap()
            .is_empty());
        assert_eq!(
            code(c.get_enrolled_users(99_999_999, EnrolledFilter::All).await),
            "invalidrecord"
        );
        let un = Unenrolment {
            user_id: u,
            course_id: 99_999_999,
        };
        assert_eq!(code(c.unenrol_users(&[un]).await), "invalidrecord");
        if let Some(sim) = &t.sim {
            sim.set_manual_enrol(course.id, false);
            let err = c.enrol_users(&[e(u, course.id, 5)]).await.unwrap_err();
            assert_eq!(err.code(), "wsnoinstance");
            assert!(err.to_string().contains("manual enrolment"));
        }
        c.delete_courses(&[course.id]).await.unwrap();
    }
}

#[tokio::test]
async fn null_bodies_and_token_only_in_body() {
    for t in targets().await {
        let s = suffix();
        let c = t.client();
        let course = new_course(&t, &c, &s).await;
        let u = c.create_users(&[new_user("n", &s)]).await.unwrap()[0].id;
        // Raw HTTP to see the literal body.
        let body = format!(
            "wstoken={}&wsfunction=enrol_manual_enrol_users&moodlewsrestformat=json&enrolments[0][roleid]=5&enrolments[0][userid]={u}&enrolments[0][courseid]={}",
            t.token, course.id
        );
        let resp = reqwest::Client::new()
            .post(format!("{}/webservice/rest/server.php", t.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.text().await.unwrap().trim(), "null");
        if let Some(sim) = &t.sim {
            let calls = sim.calls();
            assert!(!calls.is_empty());
            for call in &calls {
                assert_eq!(call.method, "POST");
                assert!(
                    call.query.as_deref().unwrap_or("").is_empty(),
                    "query string used: {:?}",
                    call.query
                );
            }
        }
        c.delete_courses(&[course.id]).await.unwrap();
    }
}

#[tokio::test]
async fn xml_without_json_format() {
    for t in targets().await {
        let resp = reqwest::Client::new()
            .post(format!("{}/webservice/rest/server.php", t.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("wstoken=wrong&wsfunction=core_webservice_get_site_info")
            .send()
            .await
            .unwrap();
        let text = resp.text().await.unwrap();
        assert!(text.contains("<EXCEPTION class="), "{text}");
        assert!(text.contains("<ERRORCODE>invalidtoken</ERRORCODE>"));
    }
}

#[tokio::test]
async fn password_policy_errorcode_is_free_text() {
    for t in targets().await {
        let mut u = new_user("pw", &suffix());
        u.password = Some(Secret::new("short"));
        let e = t.client().create_users(&[u]).await.unwrap_err();
        // The free text stays available to people; the stable code is bounded (metrics label).
        let errorcode = e.errorcode().unwrap_or_default();
        assert!(errorcode.contains("Passwords must"), "{errorcode}");
        assert!(e.to_string().contains("Passwords must"), "{e}");
        assert_eq!(e.code(), "other");
        assert!(!e.is_transient());
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
    }
}

#[tokio::test]
async fn strict_parameter_validation() {
    for t in targets().await {
        let c = t.client();
        let s = suffix();
        let user = |extra: Option<(&str, &str)>| {
            let mut item = vec![
                ("firstname", "A".to_string()),
                ("lastname", "B".to_string()),
                ("email", format!("strict.{s}@example.org")),
            ];
            if let Some((k, v)) = extra {
                item.push((k, v.to_string()));
            }
            item.push(("username", format!("strict.{s}")));
            let mut form = Form::new();
            form.push_objects("users", &[item]);
            form
        };
        // Booleans must be 0/1, unknown keys and mistyped values are refused.
        for form in [
            user(Some(("createpassword", "true"))),
            user(Some(("nosuchkey", "1"))),
            user(Some(("mailformat", "x"))),
        ] {
            assert_eq!(
                code(c.call_raw("core_user_create_users", &form).await),
                "invalidparameter"
            );
        }
        // A missing required key.
        let mut form = Form::new();
        form.push_objects(
            "enrolments",
            &[vec![
                ("courseid", t.template.to_string()),
                ("userid", "2".to_string()),
            ]],
        );
        assert_eq!(
            code(c.call_raw("enrol_manual_enrol_users", &form).await),
            "invalidparameter"
        );
        // A non-canonical integer.
        let mut form = Form::new();
        form.push("courseid", format!("0{}", t.template));
        assert_eq!(
            code(c.call_raw("core_enrol_get_enrolled_users", &form).await),
            "invalidparameter"
        );
        // A missing required list.
        assert_eq!(
            code(c.call_raw("core_user_create_users", &Form::new()).await),
            "invalidparameter"
        );
        // Nothing was created by any of these.
        let none = c
            .get_users_by_field(UserField::Username, &[format!("strict.{s}")])
            .await
            .unwrap();
        assert!(none.is_empty());
    }
}
