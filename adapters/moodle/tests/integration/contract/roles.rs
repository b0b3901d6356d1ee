//! Roles within an enrolment: a second role is added to the enrolment, `core_role_unassign_roles`
//! takes exactly one away (the enrolment stays, perhaps without any role), and unenrolling
//! ends every role: enrolling again starts afresh. Accounts are `hc-…` with a random suffix.

use crate::common::{suffix, targets, Target};
use crate::contract::accounts::hc_user;
use crate::contract::{cleanup, code, new_course};
use moodle::*;

/// Each participant's role ids in Moodle's order, and idnumber.
async fn roles(t: &Target, c: &MoodleClient, course: i64) -> Vec<(i64, Vec<i64>, Option<String>)> {
    let mut v: Vec<_> = c
        .get_enrolled_users(course, EnrolledFilter::All)
        .await
        .unwrap_or_else(|e| panic!("{}: enrolled users of {course}: {e}", t.name))
        .into_iter()
        .map(|u| (u.id, u.roles.iter().map(|r| r.roleid).collect(), u.idnumber))
        .collect();
    v.sort_by_key(|(id, ..)| *id);
    v
}

#[tokio::test]
async fn second_role_added_then_unassigned_exactly() {
    for t in targets().await {
        let c = t.client();
        let s = suffix();
        let course = new_course(&t, &c, &s).await.id;
        let idnumber = format!("HC-R-{s}");
        let mut ada = hc_user("ra", &s);
        ada.idnumber = Some(idnumber.clone());
        let users = c
            .create_users(&[ada, hc_user("rb", &s), hc_user("rc", &s)])
            .await
            .unwrap();
        let (ada, bob, carl) = (users[0].id, users[1].id, users[2].id);
        let enrol = |user_id, role_id| Enrolment {
            user_id,
            course_id: course,
            role_id,
            suspend: false,
        };
        let take = |user_id, course_id, role_id| RoleUnassignment {
            user_id,
            course_id,
            role_id,
        };
        c.enrol_users(&[enrol(ada, 5), enrol(bob, 5)])
            .await
            .unwrap();
        c.enrol_users(&[enrol(ada, 3)]).await.unwrap();
        // Both roles, listed in the roles' sortorder (not the order given); the idnumber shown.
        let got = roles(&t, &c, course).await;
        assert_eq!(
            got,
            [
                (ada, vec![3, 5], Some(idnumber.clone())),
                (bob, vec![5], None)
            ],
            "{}",
            t.name
        );
        let listed = c
            .get_enrolled_users(course, EnrolledFilter::All)
            .await
            .unwrap();
        let names: Vec<&str> = listed
            .iter()
            .find(|u| u.id == ada)
            .map(|u| u.roles.iter().map(|r| r.shortname.as_str()).collect())
            .unwrap_or_default();
        assert_eq!(names, ["editingteacher", "student"], "{}", t.name);
        // Exactly the one role goes; the other participant keeps hers.
        c.unassign_roles(&[take(ada, course, 5)]).await.unwrap();
        assert_eq!(
            roles(&t, &c, course).await,
            [(ada, vec![3], Some(idnumber.clone())), (bob, vec![5], None)],
            "{}",
            t.name
        );
        // Silent no-ops: a role not held, a user not enrolled, a user id that does not exist.
        c.unassign_roles(&[
            take(ada, course, 5),
            take(bob, course, 3),
            take(carl, course, 5),
            take(99_999_999, course, 5),
        ])
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", t.name));
        assert_eq!(roles(&t, &c, course).await[0].1, [3], "{}", t.name);
        // All or nothing: a role the web-service user may not assign, or one that does not
        // exist, or a course that does not exist, fails the call and nothing is taken.
        for bad in [
            take(ada, course, 1),
            take(ada, course, 999),
            take(ada, 99_999_999, 3),
        ] {
            let e = c
                .unassign_roles(&[take(ada, course, 3), bad.clone()])
                .await
                .unwrap_err();
            assert_eq!(e.code(), "invalidparameter", "{}: {bad:?}", t.name);
            assert_eq!(roles(&t, &c, course).await[0].1, [3], "{}: {bad:?}", t.name);
        }
        // The context level is a name Moodle knows, in lowercase.
        let mut form = Form::new();
        form.push_objects(
            "unassignments",
            &[vec![
                ("roleid", "3".to_string()),
                ("contextlevel", "Course".to_string()),
                ("instanceid", course.to_string()),
                ("userid", ada.to_string()),
            ]],
        );
        assert_eq!(
            code(c.call_raw("core_role_unassign_roles", &form).await),
            "invalidparameter"
        );
        // The last role taken: still enrolled, without any role.
        c.unassign_roles(&[take(ada, course, 3)]).await.unwrap();
        assert_eq!(
            roles(&t, &c, course).await,
            [(ada, vec![], Some(idnumber.clone())), (bob, vec![5], None)],
            "{}",
            t.name
        );
        cleanup(&t, &c, &[course], &[ada, bob, carl]).await;
    }
}

#[tokio::test]
async fn unenrol_ends_every_role() {
    for t in targets().await {
        let c = t.client();
        let s = suffix();
        let course = new_course(&t, &c, &s).await.id;
        let ada = c.create_users(&[hc_user("ue", &s)]).await.unwrap()[0].id;
        let enrol = |role_id| Enrolment {
            user_id: ada,
            course_id: course,
            role_id,
            suspend: false,
        };
        c.enrol_users(&[enrol(5), enrol(3)]).await.unwrap();
        assert_eq!(roles(&t, &c, course).await[0].1, [3, 5], "{}", t.name);
        c.unenrol_users(&[Unenrolment {
            user_id: ada,
            course_id: course,
        }])
        .await
        .unwrap();
        assert!(roles(&t, &c, course).await.is_empty(), "{}", t.name);
        // Enrolled again: only the role given now, none of the earlier ones.
        c.enrol_users(&[enrol(4)]).await.unwrap();
        assert_eq!(
            roles(&t, &c, course).await,
            [(ada, vec![4], None)],
            "{}",
            t.name
        );
        cleanup(&t, &c, &[course], &[ada]).await;
    }
}
