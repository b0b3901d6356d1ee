//! What the preflight relies on, on every target: where a course's manual enrolment shows
//! (`enrollmentmethods`, never `core_enrol_get_course_enrolment_methods`), the read-only role
//! question (`core_role_unassign_roles` for user id -1), account deletion, and the probe's
//! round leaving nothing behind, also when it fails midway.

use crate::common::{suffix, targets, Target};
use crate::contract::{missing_code, new_user};
use moodle::*;

fn settings(t: &Target) -> MoodleSettings {
    MoodleSettings {
        course_category_id: Some(t.category),
        ..MoodleSettings::default()
    }
}

fn linked(t: &Target) -> Vec<(String, moodle::Target)> {
    vec![(
        "environment preflight moodle_template_course_id".to_string(),
        moodle::Target::TemplateCourse(t.template),
    )]
}

fn findings<'a>(r: &'a CheckReport, name: &str) -> Vec<&'a Finding> {
    r.checks.iter().filter(|c| c.name == name).collect()
}

#[tokio::test]
async fn manual_enrolment_shows_in_enrollmentmethods_only() {
    for t in targets().await {
        let c = t.client();
        let template = c
            .get_courses_by_field(CourseField::Id, &t.template.to_string())
            .await
            .unwrap();
        assert_eq!(
            template[0].enrollmentmethods,
            ["manual"],
            "{}: the template's enabled methods",
            t.name
        );
        // Moodle 4.4's manual plugin has no get_enrol_info(): its instance is never listed.
        let methods = c.get_course_enrolment_methods(t.template).await.unwrap();
        assert!(
            !methods.iter().any(|m| m.kind == "manual"),
            "{}: {methods:?}",
            t.name
        );
        assert!(methods.is_empty(), "{}: {methods:?}", t.name);
        let e = c
            .get_course_enrolment_methods(99_999_999)
            .await
            .unwrap_err();
        assert_eq!(e.code(), missing_code(&t), "{}: {e}", t.name);
    }
}

#[tokio::test]
async fn unassigning_from_no_one_tells_assignable_roles_and_changes_nothing() {
    for t in targets().await {
        let c = t.client();
        for course in [t.template, 1] {
            for role in [3, 4, 5] {
                c.unassign_roles(&[RoleUnassignment {
                    user_id: -1,
                    course_id: course,
                    role_id: role,
                }])
                .await
                .unwrap_or_else(|e| panic!("{}: role {role} in course {course}: {e}", t.name));
            }
            for role in [1, 999] {
                let e = c
                    .unassign_roles(&[RoleUnassignment {
                        user_id: -1,
                        course_id: course,
                        role_id: role,
                    }])
                    .await
                    .unwrap_err();
                assert_eq!(e.code(), "invalidparameter", "{}: role {role}", t.name);
            }
        }
        // The quick check says so, per setting.
        let r = check_with(&c, &settings(&t), &linked(&t)).await;
        assert!(r.ok, "{}: {:?}", t.name, r.problems);
        let roles = findings(&r, "role");
        assert_eq!(roles.len(), 2, "{}: {roles:?}", t.name);
        assert!(roles.iter().all(|f| f.status == Status::Ok), "{roles:?}");
        let wrong = MoodleSettings {
            student_role_id: 1,
            ..settings(&t)
        };
        let r = check_with(&c, &wrong, &linked(&t)).await;
        assert!(!r.ok, "{}", t.name);
        let bad: Vec<_> = findings(&r, "role")
            .into_iter()
            .filter(|f| f.status == Status::Problem)
            .collect();
        assert_eq!(bad.len(), 1, "{}: {:?}", t.name, r.checks);
        assert!(
            bad[0].detail.contains("MOODLE_STUDENT_ROLE_ID: role 1"),
            "{bad:?}"
        );
        assert!(
            bad[0]
                .fix
                .as_deref()
                .is_some_and(|f| f.contains("Allow role assignments")),
            "{bad:?}"
        );
        assert!(
            r.problems.iter().any(|p| p.contains("role 1")),
            "{:?}",
            r.problems
        );
    }
}

#[tokio::test]
async fn deleted_accounts_are_no_longer_found() {
    for t in targets().await {
        let c = t.client();
        let s = suffix();
        let u = new_user("del", &s);
        let id = c.create_users(std::slice::from_ref(&u)).await.unwrap()[0].id;
        c.delete_users(&[id]).await.unwrap();
        let found = c
            .get_users_by_field(UserField::Username, std::slice::from_ref(&u.username))
            .await
            .unwrap();
        assert!(found.is_empty(), "{}: {found:?}", t.name);
        assert!(c
            .get_users(&[("email", &u.email)])
            .await
            .unwrap()
            .is_empty());
        // Again: the account is no longer one.
        let e = c.delete_users(&[id]).await.unwrap_err();
        assert_eq!(e.code(), "invaliduser", "{}: {e}", t.name);
        // Its own account the web-service user may not delete.
        let own = c.site_info().await.unwrap().userid;
        let e = c.delete_users(&[own]).await.unwrap_err();
        assert_eq!(e.code(), "usernotdeletederror", "{}: {e}", t.name);
    }
}

/// Whether Moodle still has the probe's course (by shortname) or account (by username).
async fn leftovers(c: &MoodleClient, p: &ProbeReport) -> (Vec<Course>, Vec<MoodleUser>) {
    let shortname = p.scratch_shortname.clone().expect("a scratch shortname");
    let courses = c
        .get_courses_by_field(CourseField::Shortname, &shortname)
        .await
        .unwrap();
    let tag = shortname.trim_start_matches("OVLE-PROBE-").to_lowercase();
    let users = c
        .get_users_by_field(UserField::Username, &[format!("ovle.probe.{tag}")])
        .await
        .unwrap();
    (courses, users)
}

#[tokio::test]
async fn the_probe_leaves_nothing_behind() {
    for t in targets().await {
        let c = t.client();
        let r = check_and_probe(&c, &settings(&t), &linked(&t), &ProbeOptions::default()).await;
        let p = r.probe.as_ref().expect("the probe ran");
        assert!(r.ok && p.ok, "{}: {}", t.name, r.render_text());
        assert!(p.cleaned_up && p.left_behind.is_empty(), "{p:?}");
        assert_eq!(p.template_course_id, Some(t.template));
        let names: Vec<&str> = p.steps.iter().map(|s| s.name).collect();
        assert_eq!(
            names,
            [
                "duplicate",
                "set_idnumber",
                "manual_enrolment",
                "account",
                "enrol",
                "enrol",
                "unenrol",
                "delete_course",
                "delete_account"
            ],
            "{}",
            t.name
        );
        assert!(p.steps.iter().all(|s| s.status == Status::Ok), "{p:?}");
        let (courses, users) = leftovers(&c, p).await;
        assert!(courses.is_empty(), "{}: {courses:?}", t.name);
        assert!(users.is_empty(), "{}: {users:?}", t.name);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["probe"]["steps"][0]["name"], "duplicate");
        assert!(json["probe"]["steps"][0]["duration_ms"].is_u64());
        assert!(r
            .render_text()
            .contains("probe:       OK, nothing left behind"));
    }
}

#[tokio::test]
async fn a_probe_that_fails_midway_still_cleans_up() {
    for t in targets().await {
        let c = t.client();
        // Role 1 (manager): the web-service user may not assign it.
        let wrong = MoodleSettings {
            student_role_id: 1,
            ..settings(&t)
        };
        let r = check_and_probe(&c, &wrong, &linked(&t), &ProbeOptions::default()).await;
        let p = r.probe.as_ref().expect("the probe ran");
        assert!(!r.ok && !p.ok, "{}", t.name);
        let failed: Vec<_> = p
            .steps
            .iter()
            .filter(|s| s.status == Status::Problem)
            .collect();
        assert_eq!(failed.len(), 1, "{}: {p:?}", t.name);
        assert_eq!(failed[0].name, "enrol");
        assert!(
            failed[0].detail.contains("wsusercannotassign"),
            "{failed:?}"
        );
        assert!(
            failed[0]
                .fix
                .as_deref()
                .is_some_and(|f| f.contains("Allow role assignments")),
            "{failed:?}"
        );
        let last: Vec<&str> = p.steps.iter().rev().take(2).map(|s| s.name).collect();
        assert_eq!(last, ["delete_account", "delete_course"], "{p:?}");
        assert!(p.cleaned_up, "{p:?}");
        let (courses, users) = leftovers(&c, p).await;
        assert!(
            courses.is_empty() && users.is_empty(),
            "{}: {courses:?} {users:?}",
            t.name
        );
    }
}

#[tokio::test]
async fn a_template_without_manual_enrolment_is_a_warning_its_copies_enrol() {
    // The simulator's template with its manual instance disabled; the real site's version of
    // this test (a scratch template whose instance is disabled in its database) is in the
    // workspace's preflight suite.
    for t in targets().await {
        let Some(sim) = t.sim.as_ref() else { continue };
        let c = t.client();
        assert!(sim.set_manual_enrol(t.template, false));
        let r = check_and_probe(&c, &settings(&t), &linked(&t), &ProbeOptions::default()).await;
        sim.set_manual_enrol(t.template, true);
        let w = findings(&r, "template_manual_enrolment");
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].status, Status::Warning, "{w:?}");
        assert!(r
            .warnings
            .iter()
            .any(|l| l.contains("no enabled manual enrolment method")));
        let p = r.probe.as_ref().unwrap();
        assert!(r.ok && p.ok, "{}: {}", t.name, r.render_text());
    }
}

#[tokio::test]
async fn a_site_admin_token_is_a_warning() {
    for moodle_version in moodle_sim::MoodleVersion::ALL {
        let t = crate::common::sim_target(moodle_sim::SimConfig {
            moodle_version,
            site_admin: true,
            ..Default::default()
        })
        .await;
        let r = check_with(&t.client(), &settings(&t), &linked(&t)).await;
        assert!(r.ok, "a warning only: {:?}", r.problems);
        let f = findings(&r, "token_user");
        assert_eq!(f[0].status, Status::Warning, "{f:?}");
        assert!(f[0].detail.contains("site administrator"));
        assert!(f[0].fix.as_deref().unwrap().contains("not a site admin"));
        assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
        let text = r.render_text();
        assert!(text.contains("[WARNING] token_user:"), "{text}");
    }
}

#[tokio::test]
async fn without_delete_users_the_probe_leaves_and_reuses_one_account() {
    let t = crate::common::sim_target(moodle_sim::SimConfig {
        missing_functions: vec!["core_user_delete_users".into()],
        ..Default::default()
    })
    .await;
    let c = t.client();
    let r = check_and_probe(&c, &settings(&t), &linked(&t), &ProbeOptions::default()).await;
    assert!(r.ok, "{}", r.render_text());
    let p = r.probe.as_ref().unwrap();
    let last = p.steps.last().unwrap();
    assert_eq!(
        (last.name, last.status),
        ("delete_account", Status::Warning)
    );
    assert!(last
        .detail
        .contains("core_user_delete_users is not in the token's service"));
    let shared = || async {
        c.get_users_by_field(UserField::Username, &["openvle.probe".to_string()])
            .await
            .unwrap()
    };
    let first = shared().await;
    assert_eq!(first.len(), 1);
    // The next probe finds it and leaves it as it was.
    let r = check_and_probe(&c, &settings(&t), &linked(&t), &ProbeOptions::default()).await;
    let p = r.probe.as_ref().unwrap();
    assert!(p.ok, "{p:?}");
    let account = p.steps.iter().find(|s| s.name == "account").unwrap();
    assert!(account.detail.contains("reused"), "{account:?}");
    assert!(!p.steps.iter().any(|s| s.name == "delete_account"), "{p:?}");
    assert_eq!(shared().await, first);
}

#[tokio::test]
async fn the_probe_does_not_start_without_what_it_needs() {
    let t = crate::common::sim_target(moodle_sim::SimConfig {
        missing_functions: vec!["core_course_delete_courses".into()],
        ..Default::default()
    })
    .await;
    let c = t.client();
    let r = check_and_probe(&c, &settings(&t), &linked(&t), &ProbeOptions::default()).await;
    let p = r.probe.as_ref().unwrap();
    assert_eq!(p.steps.len(), 1);
    assert_eq!(
        (p.steps[0].name, p.steps[0].status),
        ("start", Status::Skipped)
    );
    assert!(p.steps[0].detail.contains("core_course_delete_courses"));
    assert_eq!(
        t.sim().call_counts().get("core_course_duplicate_course"),
        None
    );
    // No template linked and none given.
    let t = crate::common::sim_target(moodle_sim::SimConfig::default()).await;
    let r = check_and_probe(&t.client(), &settings(&t), &[], &ProbeOptions::default()).await;
    let p = r.probe.as_ref().unwrap();
    assert!(
        !r.ok && p.steps[0].detail.contains("no template course"),
        "{p:?}"
    );
    // Given one: it runs.
    let opts = ProbeOptions {
        template: Some(t.template),
    };
    let r = check_and_probe(&t.client(), &settings(&t), &[], &opts).await;
    assert!(r.ok, "{}", r.render_text());
}
