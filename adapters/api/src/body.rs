//! Request bodies and path parameters, with JSON errors for every way they can be wrong.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{header, HeaderMap, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::ApiError;

/// The body as received, or the JSON error for a body that is too large or unreadable.
pub(crate) fn bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the request body is larger than this route accepts",
            )
        } else {
            ApiError::invalid_request(format!("cannot read the request body: {rejection}"))
        }
    })
}

/// Requires `Content-Type: application/json` (or `application/*+json`).
pub(crate) fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let ok = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            let essence = v
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            essence == "application/json"
                || (essence.starts_with("application/") && essence.ends_with("+json"))
        })
        .unwrap_or(false);
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as Content-Type: application/json",
        ))
    }
}

/// Parses a JSON body: `malformed_json` when it is not JSON, `invalid_request` when it does not
/// have the expected shape (unknown or missing fields, wrong types).
pub(crate) fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        use serde_json::error::Category;
        let details = json!({ "line": e.line(), "column": e.column() });
        match e.classify() {
            Category::Syntax | Category::Eof | Category::Io => {
                ApiError::bad_request("malformed_json", format!("the body is not valid JSON: {e}"))
                    .with_details(details)
            }
            Category::Data => ApiError::invalid_request(format!("invalid request body: {e}"))
                .with_details(details),
        }
    })
}

/// A plain identifier (environment, participant, audit filter): 1 to 255 characters, no control
/// character. Checked before anything reaches the store, because PostgreSQL cannot even compare
/// a text holding NUL (it would fail the statement, not find nothing).
pub(crate) fn plain_id(field: &'static str, raw: &str) -> Result<(), ApiError> {
    let problem = if raw.is_empty() {
        Some("must not be empty")
    } else if raw.chars().count() > 255 {
        Some("must be at most 255 characters")
    } else if raw.chars().any(char::is_control) {
        Some("must not contain control characters")
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some(why) => Err(ApiError::invalid_request(format!("{field} {why}"))
            .with_details(json!({ "field": field }))),
    }
}

/// A canonical event id: the path or body id must be a UUID (any of its usual spellings); the
/// engine keeps it lowercase and hyphenated.
pub(crate) fn event_id(raw: &str) -> Result<String, ApiError> {
    uuid::Uuid::parse_str(raw.trim())
        .map(|u| u.hyphenated().to_string())
        .map_err(|_| {
            ApiError::bad_request("invalid_uuid", format!("event id {raw:?} is not a UUID"))
                .with_details(json!({ "id": raw }))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct T {
        a: u32,
    }

    #[test]
    fn parse_errors_are_classified() {
        assert_eq!(parse::<T>(b"{").unwrap_err().code, "malformed_json");
        assert_eq!(parse::<T>(b"nope").unwrap_err().code, "malformed_json");
        assert_eq!(parse::<T>(b"").unwrap_err().code, "malformed_json");
        assert_eq!(parse::<T>(b"{}").unwrap_err().code, "invalid_request");
        assert_eq!(
            parse::<T>(br#"{"a":"x"}"#).unwrap_err().code,
            "invalid_request"
        );
        assert_eq!(
            parse::<T>(br#"{"a":1,"b":2}"#).unwrap_err().code,
            "invalid_request"
        );
        assert_eq!(parse::<T>(br#"{"a":1}"#).unwrap().a, 1);
    }

    #[test]
    fn event_ids() {
        let id = "6F9619FF-8B86-D011-B42D-00C04FC964FF";
        assert_eq!(event_id(id).unwrap(), id.to_lowercase());
        assert_eq!(event_id("x").unwrap_err().code, "invalid_uuid");
        assert!(plain_id("f", "env-1").is_ok());
        for bad in ["", "a\u{0}b", "tab\there"] {
            assert_eq!(plain_id("f", bad).unwrap_err().code, "invalid_request");
        }
        assert!(plain_id("f", &"x".repeat(256)).is_err());
    }

    #[test]
    fn content_types() {
        let mut h = HeaderMap::new();
        assert!(require_json(&h).is_err());
        h.insert(
            header::CONTENT_TYPE,
            "application/json; charset=utf-8".parse().unwrap(),
        );
        assert!(require_json(&h).is_ok());
        h.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        assert_eq!(require_json(&h).unwrap_err().code, "unsupported_media_type");
    }
}
