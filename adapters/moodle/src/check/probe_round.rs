//! The probe's provisioning steps (`moodle check --probe`): see [`super::probe`].

use std::time::{Duration, Instant};

use crate::config::{is_internal_auth, MoodleSettings};
use crate::error::MoodleError;
use crate::secret::Secret;
use crate::types::*;

use super::probe::{fix_for, Run, Scratch, MANUAL_FIX, SHARED_PROBE_USERNAME};

/// The provisioning steps; returns at the first that fails (the cleanup follows in any case).
pub(super) async fn round(
    run: &mut Run<'_>,
    settings: &MoodleSettings,
    template: i64,
    category: i64,
    tag: &str,
    can_delete_accounts: bool,
    scratch: &mut Scratch,
) {
    let c = run.client;
    // 1. Duplicate, retried as the engine retries a duplication that left nothing behind.
    let t = Instant::now();
    let req = DuplicateCourse {
        template_id: template,
        fullname: format!("openvle-moodle preflight probe {tag} - safe to delete"),
        shortname: scratch.shortname.clone(),
        category_id: category,
        visible: false,
    };
    let mut attempt = 0;
    let course = loop {
        attempt += 1;
        match c.duplicate_course(&req).await {
            Ok(course) => break course,
            Err(e) if e.is_transient() && !e.outcome_unknown() && attempt < 4 => {
                tokio::time::sleep(Duration::from_millis(300 * attempt)).await;
            }
            Err(e) => {
                scratch.course_maybe = e.outcome_unknown();
                let fix = fix_for("duplicate", &e);
                run.failed(
                    "duplicate",
                    t,
                    format!("duplicating template {template} into category {category}: {e}"),
                    fix,
                );
                return;
            }
        }
    };
    scratch.course = Some(course.id);
    run.ok(
        "duplicate",
        t,
        format!(
            "template {template} duplicated into scratch course {} {:?} in category {category}{}",
            course.id,
            course.shortname,
            if attempt > 1 {
                format!(" (attempt {attempt})")
            } else {
                String::new()
            }
        ),
    );
    // 2. The idnumber, as a deploy sets it after duplicating.
    let t = Instant::now();
    let update = CourseUpdate {
        id: course.id,
        idnumber: Some(scratch.shortname.clone()),
        ..CourseUpdate::default()
    };
    match c.update_courses(&[update]).await {
        Ok(w) if w.is_empty() => run.ok(
            "set_idnumber",
            t,
            format!("idnumber {:?} set", scratch.shortname),
        ),
        Ok(w) => {
            let e = MoodleError::Warned {
                function: "core_course_update_courses".into(),
                warnings: w,
            };
            let fix = fix_for("set_idnumber", &e);
            run.failed("set_idnumber", t, e.to_string(), fix);
            return;
        }
        Err(e) => {
            let fix = fix_for("set_idnumber", &e);
            run.failed("set_idnumber", t, e.to_string(), fix);
            return;
        }
    }
    // 3. The copy takes manual enrolments.
    let t = Instant::now();
    match c
        .get_courses_by_field(CourseField::Id, &course.id.to_string())
        .await
    {
        Ok(found) => {
            let methods: Vec<String> = found
                .iter()
                .find(|k| k.id == course.id)
                .map(|k| k.enrollmentmethods.clone())
                .unwrap_or_default();
            if methods.iter().any(|m| m == "manual") {
                run.ok(
                    "manual_enrolment",
                    t,
                    format!("the scratch course has an enabled manual enrolment method (its methods: {})", methods.join(", ")),
                );
            } else {
                run.failed(
                    "manual_enrolment",
                    t,
                    format!("the scratch course has no enabled manual enrolment method (its methods: {}): every enrolment would fail with wsnoinstance", if methods.is_empty() { "none".into() } else { methods.join(", ") }),
                    MANUAL_FIX.into(),
                );
                return;
            }
        }
        Err(e) => {
            let fix = fix_for("manual_enrolment", &e);
            run.failed("manual_enrolment", t, e.to_string(), fix);
            return;
        }
    }
    // 4. The probe account.
    let t = Instant::now();
    let auth = settings.new_user_auth.clone();
    let (username, email) = if can_delete_accounts {
        (
            format!("ovle.probe.{tag}"),
            format!("ovle.probe.{tag}@example.invalid"),
        )
    } else {
        (
            SHARED_PROBE_USERNAME.to_string(),
            format!("{SHARED_PROBE_USERNAME}@example.invalid"),
        )
    };
    let found = match c
        .get_users_by_field(UserField::Username, std::slice::from_ref(&username))
        .await
    {
        Ok(found) => found.into_iter().find(|u| u.username == username),
        Err(e) => {
            let fix = fix_for("account", &e);
            run.failed("account", t, format!("looking up {username}: {e}"), fix);
            return;
        }
    };
    let user_id = match found {
        Some(u) => {
            scratch.account = Some((u.id, username.clone(), false));
            run.ok(
                "account",
                t,
                format!(
                    "found the probe account {username:?} (id {}, auth {}) and reused it",
                    u.id,
                    u.auth.as_deref().unwrap_or("?")
                ),
            );
            u.id
        }
        None => {
            let password = is_internal_auth(&auth)
                .then(|| Secret::new(format!("Pr0be-{:016x}!", rand::random::<u64>())));
            let new = NewUser {
                username: username.clone(),
                firstname: "OpenVLE".into(),
                lastname: "Preflight probe".into(),
                email,
                auth: auth.clone(),
                password,
                createpassword: false,
                idnumber: None,
            };
            match c.create_users(&[new]).await {
                Ok(rows) if rows.len() == 1 => {
                    let id = rows[0].id;
                    scratch.account = Some((id, username.clone(), true));
                    // What Moodle stored: it checks only that the plugin is installed.
                    let stored = c
                        .get_users_by_field(UserField::Id, &[id.to_string()])
                        .await
                        .ok()
                        .and_then(|u| u.into_iter().find(|u| u.id == id))
                        .and_then(|u| u.auth);
                    let mut detail = format!(
                        "created the probe account {username:?} (id {id}); Moodle stored auth {}",
                        stored.as_deref().unwrap_or("(not shown)")
                    );
                    if !super::always_enabled_auth(&auth) {
                        detail.push_str(&format!(
                            "; Moodle accepts an installed plugin whether or not it is enabled, so this does not show that {auth} is enabled (check Site administration > Plugins > Authentication > Manage authentication)"
                        ));
                    }
                    run.ok("account", t, detail);
                    id
                }
                Ok(rows) => {
                    run.failed(
                        "account",
                        t,
                        format!("creating {username:?}: Moodle answered {} rows", rows.len()),
                        "see max_input_vars (MOODLE_MAX_INPUT_VARS)".into(),
                    );
                    return;
                }
                Err(e) => {
                    if e.outcome_unknown() {
                        scratch.account_maybe = Some(username.clone());
                    }
                    let fix = if e.errorcode() == Some("invalidparameter") {
                        format!("Moodle refused the account (auth {auth:?}: is the plugin installed? MOODLE_NEW_USER_AUTH must name one of Site administration > Plugins > Authentication > Manage authentication)")
                    } else {
                        fix_for("account", &e)
                    };
                    run.failed("account", t, format!("creating {username:?}: {e}"), fix);
                    return;
                }
            }
        }
    };
    // 5. One enrolment per configured role, each read back.
    let mut roles = vec![(settings.instructor_role_id, "MOODLE_INSTRUCTOR_ROLE_ID")];
    if settings.student_role_id != settings.instructor_role_id {
        roles.push((settings.student_role_id, "MOODLE_STUDENT_ROLE_ID"));
    }
    for (role_id, var) in roles {
        let t = Instant::now();
        let enrolment = Enrolment {
            user_id,
            course_id: course.id,
            role_id,
            suspend: false,
        };
        if let Err(e) = c.enrol_users(&[enrolment]).await {
            let fix = fix_for("enrol", &e);
            run.failed(
                "enrol",
                t,
                format!("enrolling the probe account with role {role_id} ({var}): {e}"),
                fix,
            );
            return;
        }
        match c.get_enrolled_users(course.id, EnrolledFilter::All).await {
            Ok(users) => {
                let held = users
                    .iter()
                    .find(|u| u.id == user_id)
                    .is_some_and(|u| u.roles.iter().any(|r| r.roleid == role_id));
                if held {
                    run.ok(
                        "enrol",
                        t,
                        format!("enrolled with role {role_id} ({var}), read back"),
                    );
                } else {
                    run.failed(
                        "enrol",
                        t,
                        format!("Moodle accepted the enrolment with role {role_id} ({var}) but the participants list does not show it"),
                        "check the web-service user holds moodle/course:enrolreview and moodle/role:review (docs/operations.md, Setting Moodle up, step 2)".into(),
                    );
                    return;
                }
            }
            Err(e) => {
                let fix = fix_for("enrol", &e);
                run.failed(
                    "enrol",
                    t,
                    format!("reading the participants back: {e}"),
                    fix,
                );
                return;
            }
        }
    }
    // 6. Unenrol, read back.
    let t = Instant::now();
    let gone = async {
        c.unenrol_users(&[Unenrolment {
            user_id,
            course_id: course.id,
        }])
        .await?;
        let users = c.get_enrolled_users(course.id, EnrolledFilter::All).await?;
        Ok::<_, MoodleError>(!users.iter().any(|u| u.id == user_id))
    }
    .await;
    match gone {
        Ok(true) => run.ok("unenrol", t, "unenrolled, read back".into()),
        Ok(false) => run.failed(
            "unenrol",
            t,
            "Moodle answered the unenrolment but still lists the probe account".into(),
            "check the web-service user holds enrol/manual:unenrol (docs/operations.md, Setting Moodle up, step 2)".into(),
        ),
        Err(e) => {
            let fix = fix_for("unenrol", &e);
            run.failed("unenrol", t, e.to_string(), fix);
        }
    }
}
