//! Contract suite: the behaviours of shared/moodle (observed-4.4.md and the lab first,
//! observed-5.1.md for 5.1), run against the simulator answering as 4.4 and as 5.1 and, when
//! configured, a real Moodle (see tests/common: `OPENVLE_REQUIRE_MOODLE=1` makes its absence a
//! failure). Where the releases differ, a test asserts each one's own body, and the client's
//! reading of it ([`moodle::Refusal`]) being the same.
//!
//! Every test works with courses, usernames and emails of its own (a random suffix) and removes
//! them at the end, so that tests run side by side, in any order, on a shared site. One file per
//! area: [`site`] (token, functions, wire format), [`courses`], [`courses_shape`] (idnumber,
//! names, dates and category after a duplication), [`duplication`], [`users`],
//! [`accounts`] (idnumber, updates, single sign-on accounts), [`enrol`], [`preflight`] (what
//! `moodle check` and its probe rely on), [`roles`] (a second
//! role, unassigning one, unenrolling), and [`rules`] (Moodle's parameter rules against the
//! engine's and the simulator's, each written apart from Moodle's code).

use crate::common;

mod accounts;
mod courses;
mod courses_shape;
mod duplication;
mod enrol;
mod preflight;
mod roles;
mod rules;
mod site;
mod users;

use std::time::Duration;

use common::Target;
use moodle::*;

pub fn new_user(tag: &str, s: &str) -> NewUser {
    NewUser {
        idnumber: None,
        username: format!("ovle.{tag}.{s}"),
        firstname: "Ada".into(),
        lastname: format!("Test {tag}"),
        email: format!("ovle.{tag}.{s}@example.org"),
        auth: "manual".into(),
        password: Some(Secret::new("Sup3r-secret!pw")),
        createpassword: false,
    }
}

/// Duplicates the template as `OVLE-T-{s}`. A real site answers concurrent duplications with
/// `ex_unabletolock` now and then (observed: 1 of 16, four at a time), leaving nothing behind:
/// retried as the engine would.
pub async fn new_course(t: &Target, c: &MoodleClient, s: &str) -> DuplicatedCourse {
    let req = DuplicateCourse {
        template_id: t.template,
        fullname: format!("OVLE test {s}"),
        shortname: format!("OVLE-T-{s}"),
        category_id: t.category,
        visible: true,
    };
    let mut attempt = 0;
    loop {
        match c.duplicate_course(&req).await {
            Ok(course) => return course,
            Err(e) if e.is_transient() && attempt < 5 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(300 * attempt)).await;
            }
            Err(e) => panic!("{}: duplicate {}: {e}", t.name, req.shortname),
        }
    }
}

pub fn code<T: std::fmt::Debug>(r: Result<T, MoodleError>) -> String {
    r.expect_err("expected an error").code()
}

/// The errorcode of a missing record on this target: 5.1 no longer names the table.
pub fn missing_code(t: &Target) -> &'static str {
    if t.is_5_1() {
        "invalidrecordunknown"
    } else {
        "invalidrecord"
    }
}

/// Removes what a test made. Accounts only on a real site (the simulator is thrown away, and
/// the engine's service does not need `core_user_delete_users`, which the lab's has).
pub async fn cleanup(t: &Target, c: &MoodleClient, courses: &[i64], users: &[i64]) {
    if !courses.is_empty() {
        c.delete_courses(courses)
            .await
            .unwrap_or_else(|e| panic!("{}: cleanup of courses {courses:?}: {e}", t.name));
    }
    if t.sim.is_none() && !users.is_empty() {
        let mut form = Form::new();
        form.push_scalars("userids", users);
        c.call_raw("core_user_delete_users", &form)
            .await
            .unwrap_or_else(|e| panic!("{}: cleanup of users {users:?}: {e}", t.name));
    }
}
