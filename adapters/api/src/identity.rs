//! The identity rule at the door: while Moodle is on, every participant must carry the value
//! Moodle users are matched by (MOODLE_USER_MATCH_FIELD).
//!
//! The saga never makes such a value up (matching a made-up username could enrol the wrong
//! person), so a participant without it could only ever be parked. Refusing it here, with a code
//! OpenVLE can act on, keeps it out of the log instead of leaving a parked enrolment for someone
//! to find later. Deploy, add-participant and PATCH all call [`refuse_unmatchable`], so the three
//! routes cannot drift apart.

use axum::http::StatusCode;
use serde_json::json;

use domain::participant::Participant;

use crate::ApiError;

/// The setting the refusal names, so the operator knows what to change.
pub(crate) const MATCH_FIELD_SETTING: &str = "MOODLE_USER_MATCH_FIELD";

/// Refuses the first participant that lacks the match field's value (`key_of` is None) while the
/// Moodle integration is on: 422 `username_required` / `idnumber_required`, naming the setting and
/// the participant. With Moodle off, or in email mode (every participant has an email), nothing is
/// refused.
///
/// `participants` is consumed lazily and only when the rule applies, so a caller may hand over
/// the validated participants of a request as it goes (`validate().ok()`): one that does not
/// validate is left to the domain, which refuses it with its own code.
pub(crate) fn refuse_unmatchable(
    moodle: &moodle::MoodleSettings,
    participants: impl IntoIterator<Item = Participant>,
) -> Result<(), ApiError> {
    if !moodle.enabled {
        return Ok(());
    }
    let field = moodle.user_match_field;
    match participants.into_iter().find(|p| field.key_of(p).is_none()) {
        None => Ok(()),
        Some(p) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            field.required_code(),
            format!(
                "participant {:?} has no {name}, and Moodle users are matched by {name} \
                 ({MATCH_FIELD_SETTING}={name}): send the participant's {name}",
                p.id,
                name = field.as_str(),
            ),
        )
        .with_details(json!({
            "participant_id": p.id,
            "field": field.as_str(),
            "setting": MATCH_FIELD_SETTING,
        }))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::participant::Role;
    use domain::settings::UserMatchField;

    fn person(username: Option<&str>, idnumber: Option<&str>) -> Participant {
        Participant {
            id: "p1".into(),
            email: "p1@example.org".into(),
            username: username.map(str::to_string),
            first_name: "Ada".into(),
            last_name: "Lovelace".into(),
            role: Role::Student,
            idnumber: idnumber.map(str::to_string),
        }
    }

    fn settings(enabled: bool, field: UserMatchField) -> moodle::MoodleSettings {
        let mut s = moodle::MoodleSettings::disabled();
        s.enabled = enabled;
        s.user_match_field = field;
        s
    }

    #[test]
    fn refuses_only_a_missing_match_value_while_moodle_is_on() {
        let bare = person(None, None);
        let e = refuse_unmatchable(&settings(true, UserMatchField::Username), [bare.clone()])
            .unwrap_err();
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(e.code, "username_required");
        assert!(e.message.contains(MATCH_FIELD_SETTING), "{}", e.message);
        assert!(e.message.contains("\"p1\""), "{}", e.message);
        assert_eq!(e.details["participant_id"], "p1");
        assert_eq!(e.details["field"], "username");
        let e = refuse_unmatchable(&settings(true, UserMatchField::Idnumber), [bare.clone()])
            .unwrap_err();
        assert_eq!(e.code, "idnumber_required");
        assert_eq!(e.details["field"], "idnumber");
        // A username does not stand in for an idnumber, nor the other way round.
        let e = refuse_unmatchable(
            &settings(true, UserMatchField::Idnumber),
            [person(Some("ada"), None)],
        )
        .unwrap_err();
        assert_eq!(e.code, "idnumber_required");

        for ok in [
            refuse_unmatchable(&settings(true, UserMatchField::Email), [bare.clone()]),
            refuse_unmatchable(&settings(false, UserMatchField::Username), [bare.clone()]),
            refuse_unmatchable(&settings(false, UserMatchField::Idnumber), [bare.clone()]),
            refuse_unmatchable(
                &settings(true, UserMatchField::Username),
                [person(Some("ada"), None)],
            ),
            refuse_unmatchable(
                &settings(true, UserMatchField::Idnumber),
                [person(None, Some("S1"))],
            ),
        ] {
            assert!(ok.is_ok(), "{ok:?}");
        }
    }

    #[test]
    fn names_the_first_participant_lacking_the_value_and_stays_lazy_when_off() {
        let mut second = person(None, None);
        second.id = "p2".into();
        let e = refuse_unmatchable(
            &settings(true, UserMatchField::Username),
            [person(Some("ada"), None), second],
        )
        .unwrap_err();
        assert_eq!(e.details["participant_id"], "p2");
        // Off: the participants are not even looked at.
        let never = std::iter::from_fn(|| -> Option<Participant> {
            panic!("the participants were read with Moodle off")
        });
        assert!(refuse_unmatchable(&settings(false, UserMatchField::Username), never).is_ok());
    }
}
