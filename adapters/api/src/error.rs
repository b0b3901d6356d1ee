//! Errors: always `{"error": {"code", "message", "details"}}` as JSON, with a stable code.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use domain::error::ErrorKind;
use domain::DomainError;

/// An error answer.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Value,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            details: json!({}),
        }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::bad_request("invalid_request", message)
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    pub fn event_not_found(id: &str) -> Self {
        Self::not_found("event_not_found", format!("event {id:?} does not exist"))
            .with_details(json!({ "id": id }))
    }

    pub fn environment_not_found(id: &str) -> Self {
        Self::not_found(
            "environment_not_found",
            format!("environment {id:?} does not exist"),
        )
        .with_details(json!({ "environment_id": id }))
    }

    pub fn concurrent_modification() -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "concurrent_modification",
            "the event was changed by another request at the same time; retry the command",
        )
    }

    /// An unexpected failure. Its detail (store error text, a path, a query) may tell an
    /// attacker about the insides, so it is only logged, under a fresh id; the client gets that
    /// id (to quote to the operator) and nothing else.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        let id = uuid::Uuid::new_v4().to_string();
        tracing::error!(error_id = %id, error = %detail, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "internal error",
        )
        .with_details(json!({ "id": id }))
    }

    pub fn moodle_disabled() -> Self {
        Self::not_found(
            "moodle_disabled",
            "the Moodle integration is disabled (MOODLE_ENABLED=false)",
        )
    }

    /// The JSON body of this error.
    pub fn body(&self) -> Value {
        json!({
            "error": {
                "code": self.code,
                "message": self.message,
                "details": self.details,
            }
        })
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        let status = match e.kind() {
            ErrorKind::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
        };
        let details = match &e {
            DomainError::InvalidField { field, reason }
            | DomainError::InvalidCourseTemplate { field, reason } => {
                json!({ "field": field, "reason": reason })
            }
            DomainError::InvalidEmail(v) => json!({ "email": v }),
            DomainError::UnknownRole(v) => {
                json!({ "role": v, "allowed": ["instructor", "student"] })
            }
            DomainError::DuplicateParticipant(v)
            | DomainError::ParticipantExists(v)
            | DomainError::ParticipantNotFound(v) => json!({ "participant_id": v }),
            DomainError::DuplicateEmail(v) => json!({ "email": v }),
            DomainError::EnvironmentNotFound(v) | DomainError::EnvironmentExists(v) => {
                json!({ "environment_id": v })
            }
            DomainError::EventNotFound(v)
            | DomainError::EventAlreadyDeployed(v)
            | DomainError::EventEnded(v)
            | DomainError::EventDeleted(v)
            | DomainError::EventNotLinked(v) => json!({ "id": v }),
            DomainError::TooManyParticipants { count, max } => {
                json!({ "count": count, "max": max })
            }
            DomainError::SagaInvariant(_) => json!({}),
        };
        ApiError::new(status, e.code(), e.to_string()).with_details(details)
    }
}

impl From<store::StoreError> for ApiError {
    fn from(e: store::StoreError) -> Self {
        if matches!(e, store::StoreError::Unavailable { .. }) {
            tracing::warn!(error = %e, "store unavailable");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "the event store is unavailable; retry later",
            )
        } else {
            ApiError::internal(format_args!("event store error: {e}"))
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body())).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// The code of an error answer produced outside the handlers (by axum itself).
fn code_for(status: StatusCode) -> (&'static str, &'static str) {
    match status {
        StatusCode::BAD_REQUEST => ("invalid_request", "the request is malformed"),
        StatusCode::NOT_FOUND => ("not_found", "no such route"),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            "this route does not accept that method",
        ),
        StatusCode::REQUEST_TIMEOUT => ("request_timeout", "the request did not arrive in time"),
        StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "the request body is too large"),
        StatusCode::URI_TOO_LONG => ("uri_too_long", "the request URI is too long"),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => {
            ("headers_too_large", "the request headers are too large")
        }
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "unsupported_media_type",
            "send the body as Content-Type: application/json",
        ),
        StatusCode::UNPROCESSABLE_ENTITY => ("invalid_request", "the request cannot be processed"),
        s if s.is_server_error() => ("internal_error", "internal error"),
        _ => ("error", "the request failed"),
    }
}

/// Turns any error answer that is not JSON (axum's own 405, a plain-text rejection) into the
/// JSON error shape, keeping its status and headers (e.g. `Allow`).
pub(crate) async fn json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return response;
    }
    let (mut parts, _) = response.into_parts();
    let (code, message) = code_for(status);
    let body = ApiError::new(status, code, message).body();
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(bytes))
}
