//! Reconcile, pure: the Moodle state the log implies for one OpenVLE event against the state
//! Moodle holds, as drift rows (for people) and corrections (facts about what Moodle really holds,
//! recorded so that the planner's level-triggered logic converges Moodle back).
//!
//! The log implies (the rules of [`outstanding`](super::outstanding()), compared with Moodle):
//!
//! | status                        | course                  | participants                                  |
//! |-------------------------------|-------------------------|-----------------------------------------------|
//! | Deployed                      | exists, visible (as its shape says), named, dated and placed as the log says | everyone enrolled, active, with their role |
//! | Ended                         | exists, hidden, archived | instructors enrolled; students out           |
//! | Deleted, course deletion on   | does not exist          | —                                             |
//! | Deleted, course kept          | hidden, if it still exists | as Ended                                   |
//!
//! "Out" is not enrolled or suspended (either removal mode). Removed participants are out.
//! Moodle accounts and enrolments of people who are not participants are none of the saga's
//! business and are never reported. Parked participants wait for a person and are skipped.
//!
//! Corrections never describe an action: they record what was seen (`CourseLost`, `UserLinkLost`,
//! `Unenrolled` for an enrolment removed by hand, `Suspended`, `Enrolled` with the role held,
//! `CourseShown`/`CourseHidden`, `CourseDuplicated { adopted: true }` for a course that should be
//! gone), and the planner turns the new recorded state into the steps that fix Moodle.

use std::collections::BTreeMap;

use domain::event::Status;
use domain::moodle_sync::{
    DriftKind, DriftNote, EnrolmentState, LinkKey, LinkKind, MoodleSync, MoodleSyncEvent,
    RecordedParticipant,
};
use domain::participant::Participant;

use super::desired::Desired;
use super::observe::{DriftRow, Observed, ObservedCourse, ObservedEnrolment, Reconciliation};
use super::outstanding::{in_scope, wants, Want};
use super::settings::{SagaSettings, UserMatchField};

fn role_label(settings: &SagaSettings, role: i64) -> String {
    if role == settings.instructor_role_id {
        format!("instructor (role {role})")
    } else if role == settings.student_role_id {
        format!("student (role {role})")
    } else {
        format!("role {role}")
    }
}

fn roles_label(settings: &SagaSettings, roles: &[i64]) -> String {
    if roles.is_empty() {
        "no role".to_string()
    } else {
        roles
            .iter()
            .map(|r| role_label(settings, *r))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn course_label(c: &ObservedCourse) -> String {
    format!("course {} ({})", c.id, c.shortname)
}

/// Whether enrolled user `e` is participant `p` (by the match field), for participants the saga
/// has not linked.
fn is_participant(e: &ObservedEnrolment, p: &Participant, field: UserMatchField) -> bool {
    let Some(key) = field.key_of(p) else {
        return false;
    };
    let value = match field {
        UserMatchField::Email => e.email.as_deref(),
        UserMatchField::Username => Some(e.username.as_str()),
        UserMatchField::Idnumber => e.idnumber.as_deref(),
    };
    value.is_some_and(|v| field.same(v, &key))
}

/// Compares the Moodle state the log implies for one event with the state Moodle holds.
pub fn reconcile(
    desired: &Desired,
    recorded: &MoodleSync,
    observed: &Observed,
    settings: &SagaSettings,
) -> Reconciliation {
    let mut out = Reconciliation::default();
    if !in_scope(desired, settings) {
        return out;
    }
    let Some(template_course_id) = desired.template_course_id else {
        return out;
    };
    let event_id = desired.id.clone();
    let mut row = |kind: DriftKind, what: String, pid: Option<&str>, expected: String, actual| {
        out.rows.push(DriftRow {
            event_id: event_id.clone(),
            note: DriftNote {
                kind,
                what,
                participant_id: pid.map(str::to_string),
                expected,
                actual,
            },
        });
    };
    let mut corrections = Vec::new();
    let shortname = desired.shortname();
    let course_cause = desired
        .deployed
        .unwrap_or_else(|| desired.status_cause())
        .event_id;
    let status_cause = desired.status_cause().event_id;
    let deleting = desired.status == Status::Deleted;
    let adopt = |c: &ObservedCourse, corrections: &mut Vec<MoodleSyncEvent>| {
        corrections.push(MoodleSyncEvent::CourseDuplicated {
            course_id: c.id,
            shortname: c.shortname.clone(),
            template_course_id,
            category_id: c.category_id,
            adopted: true,
            caused_by: course_cause,
        });
        if c.visible == Some(false) {
            corrections.push(MoodleSyncEvent::CourseHidden {
                course_id: c.id,
                caused_by: course_cause,
            });
        }
    };

    // A deleted event whose course must go (the planner's rule: a kept course stays kept).
    if super::outstanding::course_must_go(desired, recorded, settings) {
        let actual = observed
            .recorded_course
            .as_ref()
            .or(observed.course_by_shortname.as_ref());
        if let Some(c) = actual {
            row(
                DriftKind::CourseExists,
                "course".into(),
                None,
                "no course (event deleted)".into(),
                course_label(c),
            );
            match recorded.course_id {
                Some(old) if old == c.id => {
                    if recorded.course_deleted {
                        adopt(c, &mut corrections);
                    }
                }
                Some(old) => {
                    corrections.push(MoodleSyncEvent::CourseLost {
                        course_id: old,
                        caused_by: status_cause,
                    });
                    adopt(c, &mut corrections);
                }
                None => adopt(c, &mut corrections),
            }
        }
        out.corrections = corrections;
        return out;
    }

    let recorded_course = recorded.course_id.filter(|_| !recorded.course_deleted);
    // A deleted event keeps its course (as an ended one) only while it exists.
    if deleting && observed.recorded_course.is_none() {
        out.corrections = corrections;
        return out;
    }

    // The course.
    let course = match recorded_course {
        Some(id) => match &observed.recorded_course {
            Some(c) => Some(c),
            None => {
                let actual = match &observed.course_by_shortname {
                    Some(c) => format!("absent; {} has its shortname", course_label(c)),
                    None => "absent".to_string(),
                };
                row(
                    DriftKind::CourseMissing,
                    "course".into(),
                    None,
                    format!("course {id} ({shortname})"),
                    actual,
                );
                corrections.push(MoodleSyncEvent::CourseLost {
                    course_id: id,
                    caused_by: course_cause,
                });
                None
            }
        },
        None => {
            // Not (or no longer) recorded: the saga has work to do. A course found by shortname
            // is adopted by it; none at all is a difference worth showing (e.g. an event deployed
            // while the integration was off).
            if observed.course_by_shortname.is_none() {
                row(
                    DriftKind::CourseMissing,
                    "course".into(),
                    None,
                    format!("a course {shortname}"),
                    "absent".into(),
                );
            }
            None
        }
    };

    let empty = RecordedParticipant::default();
    let wants = wants(desired, settings);

    // Accounts.
    for (p, _) in &wants {
        let id = &p.participant.id;
        let r = recorded.participant(id).unwrap_or(&empty);
        if r.parked.is_some() {
            continue;
        }
        if let Some(uid) = r.moodle_user_id {
            if observed.missing_users.contains(&uid) {
                row(
                    DriftKind::Account,
                    format!("account of {id}"),
                    Some(id),
                    format!("Moodle user {uid}"),
                    "absent".into(),
                );
                corrections.push(MoodleSyncEvent::UserLinkLost {
                    participant_id: id.clone(),
                    moodle_user_id: uid,
                    caused_by: p.cause.event_id,
                });
            }
        }
    }

    let Some(course) = course else {
        out.corrections = corrections;
        return out;
    };

    // Visibility (not managed while a `hidden` course's event runs), then names, category and
    // dates changed by hand since the engine wrote them.
    let wanted = super::course::target(desired, settings);
    let (shape_rows, seen) = super::course::drift(&wanted, recorded, &course.props);
    for d in shape_rows {
        row(
            DriftKind::CourseShape,
            d.what.into(),
            None,
            d.expected,
            d.actual,
        );
    }
    if !seen.is_empty() {
        corrections.push(MoodleSyncEvent::CourseUpdated {
            course_id: course.id,
            props: seen,
            caused_by: desired.course_cause().event_id,
        });
    }
    let want_visible = wanted.visible;
    let vis = |v: bool| if v { "visible" } else { "hidden" }.to_string();
    if let (Some(visible), Some(want_visible)) = (course.visible, want_visible) {
        if visible != want_visible {
            row(
                DriftKind::CourseVisibility,
                "course visibility".into(),
                None,
                vis(want_visible),
                vis(visible),
            );
            if recorded.course_visible != Some(visible) {
                corrections.push(if visible {
                    MoodleSyncEvent::CourseShown {
                        course_id: course.id,
                        caused_by: status_cause,
                    }
                } else {
                    MoodleSyncEvent::CourseHidden {
                        course_id: course.id,
                        caused_by: status_cause,
                    }
                });
            }
        }
    }

    // Enrolments.
    let by_user: BTreeMap<i64, &ObservedEnrolment> =
        observed.enrolments.iter().map(|e| (e.user_id, e)).collect();
    for (p, want) in &wants {
        let id = &p.participant.id;
        let r = recorded.participant(id).unwrap_or(&empty);
        if r.parked.is_some() {
            continue;
        }
        if r.moodle_user_id
            .is_some_and(|u| observed.missing_users.contains(&u))
        {
            continue;
        }
        let found = match r.moodle_user_id {
            Some(uid) => by_user.get(&uid).copied(),
            None => observed
                .enrolments
                .iter()
                .find(|e| is_participant(e, &p.participant, settings.user_match_field)),
        };
        // Link a participant found in the course though the saga never linked them.
        let link = |e: &ObservedEnrolment, corrections: &mut Vec<MoodleSyncEvent>| {
            if r.moodle_user_id.is_none() {
                let field = settings.user_match_field;
                corrections.push(MoodleSyncEvent::UserLinked {
                    differs: None,
                    key: field
                        .key_of(&p.participant)
                        .map(|value| LinkKey { field, value }),
                    participant_id: id.clone(),
                    moodle_user_id: e.user_id,
                    username: e.username.clone(),
                    how: LinkKind::Matched,
                    caused_by: p.cause.event_id,
                });
            }
        };
        let recorded_enrolled = r.enrolment == Some(EnrolmentState::Enrolled);
        match *want {
            Want::Enrolled(role) => {
                let expected = format!("enrolled as {}", role_label(settings, role));
                match found {
                    None => {
                        row(
                            DriftKind::Enrolment,
                            format!("enrolment of {id}"),
                            Some(id),
                            expected,
                            "not enrolled".into(),
                        );
                        if let (Some(uid), true) = (r.moodle_user_id, recorded_enrolled) {
                            corrections.push(MoodleSyncEvent::Unenrolled {
                                participant_id: id.clone(),
                                moodle_user_id: uid,
                                caused_by: p.cause.event_id,
                            });
                        }
                    }
                    Some(e) if e.suspended => {
                        row(
                            DriftKind::Enrolment,
                            format!("enrolment of {id}"),
                            Some(id),
                            expected,
                            format!("suspended ({})", roles_label(settings, &e.roles)),
                        );
                        if recorded_enrolled || r.moodle_user_id.is_none() {
                            link(e, &mut corrections);
                            corrections.push(MoodleSyncEvent::Suspended {
                                participant_id: id.clone(),
                                moodle_user_id: e.user_id,
                                caused_by: p.cause.event_id,
                            });
                        }
                    }
                    Some(e) if !e.roles.contains(&role) => {
                        row(
                            DriftKind::Role,
                            format!("role of {id}"),
                            Some(id),
                            role_label(settings, role),
                            roles_label(settings, &e.roles),
                        );
                        if (recorded_enrolled && r.role_id == Some(role))
                            || r.moodle_user_id.is_none()
                        {
                            link(e, &mut corrections);
                            corrections.push(MoodleSyncEvent::Enrolled {
                                participant_id: id.clone(),
                                moodle_user_id: e.user_id,
                                role_id: e.roles.first().copied().unwrap_or(0),
                                caused_by: p.cause.event_id,
                            });
                        }
                    }
                    // The role, and another the engine gives (a role change left behind, or
                    // given by hand): drift; the saga takes it away. Roles the engine does not
                    // give are the site's business and left alone.
                    Some(e) => {
                        let managed = [settings.instructor_role_id, settings.student_role_id];
                        let extra: Vec<i64> = e
                            .roles
                            .iter()
                            .copied()
                            .filter(|x| *x != role && managed.contains(x))
                            .collect();
                        if !extra.is_empty() {
                            row(
                                DriftKind::Role,
                                format!("role of {id}"),
                                Some(id),
                                format!("{} only", role_label(settings, role)),
                                roles_label(settings, &e.roles),
                            );
                            let unknown: Vec<i64> = extra
                                .into_iter()
                                .filter(|x| !r.extra_roles.contains(x))
                                .collect();
                            if !unknown.is_empty()
                                && r.moodle_user_id.is_none_or(|u| u == e.user_id)
                            {
                                link(e, &mut corrections);
                                // As Moodle holds them: the extra roles given, then the role
                                // (the fold keeps the earlier ones as roles to take away).
                                for x in unknown.into_iter().chain([role]) {
                                    corrections.push(MoodleSyncEvent::Enrolled {
                                        participant_id: id.clone(),
                                        moodle_user_id: e.user_id,
                                        role_id: x,
                                        caused_by: p.cause.event_id,
                                    });
                                }
                            }
                        }
                    }
                }
            }
            Want::Out => {
                if let Some(e) = found.filter(|e| !e.suspended) {
                    let cause = if desired.participant(id).is_some() {
                        status_cause
                    } else {
                        p.cause.event_id
                    };
                    row(
                        DriftKind::Enrolment,
                        format!("enrolment of {id}"),
                        Some(id),
                        "not enrolled".into(),
                        format!("enrolled as {}", roles_label(settings, &e.roles)),
                    );
                    if !recorded_enrolled {
                        link(e, &mut corrections);
                        corrections.push(MoodleSyncEvent::Enrolled {
                            participant_id: id.clone(),
                            moodle_user_id: e.user_id,
                            role_id: e
                                .roles
                                .first()
                                .copied()
                                .unwrap_or_else(|| settings.role_id(p.participant.role)),
                            caused_by: cause,
                        });
                    }
                }
            }
        }
    }
    out.corrections = corrections;
    out
}
