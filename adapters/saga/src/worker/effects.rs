//! One `info` line per Moodle effect the saga recorded and per park, each with the OpenVLE
//! event id (and the participant's, where there is one), so a log alone tells what the engine
//! did in Moodle for whom. Failures are logged where they happen (`warn`, with the attempt).

use domain::moodle_sync::MoodleSyncEvent;

/// Logs each fact just recorded for OpenVLE event `event`.
pub(super) fn log(event: &str, facts: &[MoodleSyncEvent]) {
    for fact in facts {
        line(event, fact);
    }
}

fn line(event: &str, fact: &MoodleSyncEvent) {
    use MoodleSyncEvent as F;
    match fact {
        F::CourseDuplicated {
            course_id,
            shortname,
            template_course_id,
            adopted,
            ..
        } => tracing::info!(
            event,
            course_id,
            template_course_id,
            adopted,
            "moodle: course {shortname:?} {}",
            if *adopted {
                "found and adopted"
            } else {
                "duplicated from the template"
            }
        ),
        F::CourseUpdated { course_id, .. } => {
            tracing::info!(event, course_id, "moodle: course names or dates updated")
        }
        F::CourseHidden { course_id, .. } => {
            tracing::info!(event, course_id, "moodle: course hidden")
        }
        F::CourseShown { course_id, .. } => {
            tracing::info!(event, course_id, "moodle: course shown")
        }
        F::CourseDeleted { course_id, .. } => {
            tracing::info!(event, course_id, "moodle: course deleted")
        }
        F::CourseKept { course_id, .. } => {
            tracing::info!(
                event,
                course_id,
                "moodle: course kept (the event was deleted)"
            )
        }
        F::CourseAbsent { .. } => tracing::info!(event, "moodle: no course to delete was found"),
        F::UserLinked {
            participant_id,
            moodle_user_id,
            how,
            ..
        } => tracing::info!(
            event,
            participant = participant_id.as_str(),
            moodle_user_id,
            "moodle: account {}",
            match how {
                domain::moodle_sync::LinkKind::Matched => "matched",
                domain::moodle_sync::LinkKind::Created => "created",
            }
        ),
        F::AccountUpdated {
            participant_id,
            moodle_user_id,
            ..
        } => tracing::info!(
            event,
            participant = participant_id.as_str(),
            moodle_user_id,
            "moodle: account updated"
        ),
        F::Enrolled {
            participant_id,
            moodle_user_id,
            role_id,
            ..
        } => tracing::info!(
            event,
            participant = participant_id.as_str(),
            moodle_user_id,
            role_id,
            "moodle: enrolled"
        ),
        F::Suspended {
            participant_id,
            moodle_user_id,
            ..
        } => tracing::info!(
            event,
            participant = participant_id.as_str(),
            moodle_user_id,
            "moodle: enrolment suspended"
        ),
        F::Unenrolled {
            participant_id,
            moodle_user_id,
            ..
        } => tracing::info!(
            event,
            participant = participant_id.as_str(),
            moodle_user_id,
            "moodle: unenrolled"
        ),
        F::RoleUnassigned {
            participant_id,
            moodle_user_id,
            role_id,
            ..
        } => tracing::info!(
            event,
            participant = participant_id.as_str(),
            moodle_user_id,
            role_id,
            "moodle: role unassigned"
        ),
        F::ParticipantParked {
            participant_id,
            code,
            reason,
            ..
        } => tracing::info!(
            event,
            participant = participant_id.as_str(),
            code = code.as_str(),
            fix = projections::saga::fix_for(code),
            "parked participant: {reason}"
        ),
        F::Parked {
            step, code, reason, ..
        } => tracing::info!(
            event,
            step = step.as_str(),
            code = code.as_str(),
            fix = projections::saga::fix_for(code),
            "parked: {reason}"
        ),
        F::ParkLifted { .. } => {
            tracing::info!(event, "park lifted: the event changed since it was parked")
        }
        // Failures are logged as they happen; the rest are the saga's own bookkeeping.
        F::StepFailed { .. }
        | F::CourseLost { .. }
        | F::UserLinkLost { .. }
        | F::Resumed { .. }
        | F::ParticipantResumed { .. }
        | F::DriftObserved { .. }
        | F::CourseDuplicationStarted { .. }
        | F::CourseDuplicationRefused { .. } => {}
    }
}
