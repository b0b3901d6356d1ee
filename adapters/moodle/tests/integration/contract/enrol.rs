//! Enrolments: the upsert, suspension, unenrolment, and the refusals of each release.

use crate::common::{suffix, targets};
use crate::contract::{cleanup, code, missing_code, new_course, new_user};
use moodle::*;

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
        cleanup(&t, &c, &[course.id], &[teacher, student]).await;
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
        assert_eq!(err.code(), "wsusercannotassign", "{}", t.name);
        assert_eq!(err.refusal(), Some(Refusal::RoleNotAssignable));
        assert!(err.advice().contains("role assignments"));
        // A user id that does not exist: a coding error on 4.4, a missing record on 5.1; the
        // same to the client (a stale link, found by splitting the batch).
        let err = c
            .enrol_users(&[e(99_999_999, course.id, 5)])
            .await
            .unwrap_err();
        let expected = if t.is_5_1() {
            "invalidrecordunknown"
        } else {
            "codingerror"
        };
        assert_eq!(err.code(), expected, "{}", t.name);
        assert!(
            err.is_missing_user() && err.is_item_refusal(),
            "{}: {err:?}",
            t.name
        );
        // A course that does not exist: invalidparameter on both (not a missing record).
        let err = c.enrol_users(&[e(u, 99_999_999, 5)]).await.unwrap_err();
        assert_eq!(err.code(), "invalidparameter", "{}", t.name);
        assert!(!err.is_missing_record());
        // The role is checked before the user.
        assert_eq!(
            code(c.enrol_users(&[e(99_999_999, course.id, 999)]).await),
            "wsusercannotassign"
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
        let err = c
            .get_enrolled_users(99_999_999, EnrolledFilter::All)
            .await
            .unwrap_err();
        assert_eq!(err.code(), missing_code(&t), "{}", t.name);
        assert!(err.is_missing_course(), "{}: {err:?}", t.name);
        let un = |user_id, course_id| Unenrolment { user_id, course_id };
        let err = c.unenrol_users(&[un(u, 99_999_999)]).await.unwrap_err();
        assert_eq!(err.code(), missing_code(&t), "{}", t.name);
        assert!(err.is_missing_course() && !err.is_item_refusal());
        // Unenrolling a user id that does not exist is a refused value.
        assert_eq!(
            code(c.unenrol_users(&[un(99_999_999, course.id)]).await),
            "invalidparameter"
        );
        // The front page has no manual enrolment instance at all.
        let err = c.enrol_users(&[e(u, 1, 5)]).await.unwrap_err();
        assert_eq!(err.code(), "wsnoinstance", "{}", t.name);
        assert_eq!(code(c.unenrol_users(&[un(u, 1)]).await), "wsnoinstance");
        if let Some(sim) = &t.sim {
            // A disabled instance refuses enrolments but still unenrols.
            sim.set_manual_enrol(course.id, false);
            let err = c.enrol_users(&[e(u, course.id, 5)]).await.unwrap_err();
            assert_eq!(err.code(), "wsnoinstance");
            assert_eq!(err.refusal(), Some(Refusal::NoManualEnrolment));
            assert!(err.to_string().contains("manual enrolment"));
            c.unenrol_users(&[un(u, course.id)]).await.unwrap();
        }
        cleanup(&t, &c, &[course.id], &[u]).await;
    }
}

#[tokio::test]
async fn enrolled_users_options() {
    for t in targets().await {
        let c = t.client();
        let options = |items: &[(&str, &str)]| {
            let items: Vec<Vec<(&str, String)>> = items
                .iter()
                .map(|(k, v)| vec![("value", v.to_string()), ("name", k.to_string())])
                .collect();
            let mut form = Form::new();
            form.push("courseid", t.template)
                .push_objects("options", &items);
            form
        };
        let f = "core_enrol_get_enrolled_users";
        // Options Moodle does not know are ignored.
        let v = c.call_raw(f, &options(&[("nosuch", "1")])).await.unwrap();
        assert!(v.is_array(), "{}: {v}", t.name);
        let both = options(&[("onlyactive", "1"), ("onlysuspended", "1")]);
        let e = c.call_raw(f, &both).await.unwrap_err();
        assert_eq!(e.code(), "codingerror", "{}", t.name);
        assert!(
            e.to_string().contains(
                "Both onlyactive and onlysuspended are set, this is probably not what you want!"
            ),
            "{e}"
        );
        let e = c
            .call_raw(f, &options(&[("sortby", "email")]))
            .await
            .unwrap_err();
        assert_eq!(e.code(), "invalidparameter", "{}", t.name);
    }
}
