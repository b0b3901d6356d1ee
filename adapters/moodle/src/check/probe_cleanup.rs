//! The probe's cleanup: whatever the round made is removed, or named with where to delete it
//! by hand (see [`super::probe`]).

use std::time::Instant;

use crate::error::{MoodleError, Refusal};
use crate::types::*;

use super::findings::SERVICE_FUNCTIONS_PATH;
use super::probe::{Run, Scratch};
use super::Status;

/// Removes what the round made, whatever happened in it.
pub(super) async fn cleanup(run: &mut Run<'_>, scratch: &mut Scratch, can_delete_accounts: bool) {
    let c = run.client;
    let t = Instant::now();
    if scratch.course.is_none() && scratch.course_maybe {
        match c
            .get_courses_by_field(CourseField::Shortname, &scratch.shortname)
            .await
        {
            Ok(found) => scratch.course = found.first().map(|k| k.id),
            Err(e) => {
                run.step(
                    "delete_course",
                    t,
                    Status::Problem,
                    format!(
                        "the duplication's answer was lost and looking {:?} up failed: {e}",
                        scratch.shortname
                    ),
                    Some(by_hand_course(&scratch.shortname)),
                );
                run.report.left_behind.push(format!(
                    "perhaps a course {:?}: {}",
                    scratch.shortname,
                    by_hand_course(&scratch.shortname)
                ));
            }
        }
    }
    if let Some(id) = scratch.course {
        let deleted = async {
            let warnings = c.delete_courses(&[id]).await?;
            let refused: Vec<_> = warnings
                .into_iter()
                .filter(|w| w.warningcode != "unknowncourseidnumber")
                .collect();
            if !refused.is_empty() {
                return Err(MoodleError::Warned {
                    function: "core_course_delete_courses".into(),
                    warnings: refused,
                });
            }
            let left = c
                .get_courses_by_field(CourseField::Id, &id.to_string())
                .await?;
            Ok(!left.iter().any(|k| k.id == id))
        }
        .await;
        match deleted {
            Ok(true) => run.ok(
                "delete_course",
                t,
                format!("scratch course {id} deleted, and Moodle no longer has it"),
            ),
            Ok(false) => {
                run.step(
                    "delete_course",
                    t,
                    Status::Problem,
                    format!("Moodle answered the deletion of scratch course {id} but still has it"),
                    Some(by_hand_course(&scratch.shortname)),
                );
                run.report.left_behind.push(format!(
                    "course {id} {:?}: {}",
                    scratch.shortname,
                    by_hand_course(&scratch.shortname)
                ));
            }
            Err(e) => {
                run.step(
                    "delete_course",
                    t,
                    Status::Problem,
                    format!("deleting scratch course {id}: {e}"),
                    Some(by_hand_course(&scratch.shortname)),
                );
                run.report.left_behind.push(format!(
                    "course {id} {:?}: {}",
                    scratch.shortname,
                    by_hand_course(&scratch.shortname)
                ));
            }
        }
    }
    let t = Instant::now();
    if scratch.account.is_none() {
        if let Some(username) = scratch.account_maybe.clone() {
            if let Ok(found) = c
                .get_users_by_field(UserField::Username, std::slice::from_ref(&username))
                .await
            {
                scratch.account = found
                    .into_iter()
                    .find(|u| u.username == username)
                    .map(|u| (u.id, username, true));
            }
        }
    }
    let Some((id, username, created)) = scratch.account.clone() else {
        return;
    };
    if !created {
        return;
    }
    if !can_delete_accounts {
        run.step(
            "delete_account",
            t,
            Status::Warning,
            format!("the probe account {username:?} (id {id}) was left: core_user_delete_users is not in the token's service (the engine does not need it); the next probe reuses it"),
            Some(format!("to let the probe remove it, add core_user_delete_users ({SERVICE_FUNCTIONS_PATH}) and moodle/user:delete to the web-service user's role; or delete it in Site administration > Users > Browse list of users")),
        );
        return;
    }
    let deleted = async {
        c.delete_users(&[id]).await?;
        let left = c
            .get_users_by_field(UserField::Username, std::slice::from_ref(&username))
            .await?;
        Ok::<_, MoodleError>(!left.iter().any(|u| u.username == username))
    }
    .await;
    let by_hand = format!(
        "delete the account {username:?} (id {id}) in Site administration > Users > Browse list of users"
    );
    match deleted {
        Ok(true) => run.ok(
            "delete_account",
            t,
            format!("probe account {username:?} (id {id}) deleted, and Moodle no longer finds it"),
        ),
        Ok(false) => {
            run.step(
                "delete_account",
                t,
                Status::Problem,
                format!("Moodle answered the deletion of {username:?} but still finds it"),
                Some(by_hand.clone()),
            );
            run.report.left_behind.push(by_hand);
        }
        Err(e) => {
            let fix = if e.refusal() == Some(Refusal::MissingCapability) {
                format!("give the web-service user's role moodle/user:delete, or {by_hand}")
            } else {
                by_hand.clone()
            };
            run.step(
                "delete_account",
                t,
                Status::Problem,
                format!("deleting the probe account {username:?} (id {id}): {e}"),
                Some(fix),
            );
            run.report.left_behind.push(by_hand);
        }
    }
}

fn by_hand_course(shortname: &str) -> String {
    format!("delete the course {shortname:?} in Site administration > Courses > Manage courses and categories (search for OVLE-PROBE)")
}
