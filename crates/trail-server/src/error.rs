//! [`ApiError`]: the one error type of every handler. It maps to a status
//! code and an RFC 9457 problem+json body
//! (`{"type","title","status","detail","errors":[{"field","message"}]}`),
//! logs internal causes, and never leaks them to the client.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use trail_core::event::FieldError;
use trail_store::StoreError;

/// An error answered as problem+json.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    title: &'static str,
    detail: String,
    errors: Vec<FieldError>,
    retry_after: Option<u32>,
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
    #[serde(skip_serializing_if = "<[FieldError]>::is_empty")]
    errors: &'a [FieldError],
}

impl ApiError {
    fn new(status: StatusCode, title: &'static str, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            title,
            detail: detail.into(),
            errors: Vec::new(),
            retry_after: None,
        }
    }

    /// 400 with one error per bad field.
    pub fn invalid(detail: impl Into<String>, errors: Vec<FieldError>) -> Self {
        ApiError {
            errors,
            ..ApiError::new(StatusCode::BAD_REQUEST, "Invalid request", detail)
        }
    }

    /// 400 naming one bad field or parameter.
    pub fn bad_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        let (field, message) = (field.into(), message.into());
        ApiError::invalid(
            format!("{field}: {message}"),
            vec![FieldError { field, message }],
        )
    }

    /// 413 naming the limit that was hit.
    pub fn too_large(limit: impl Into<String>, detail: impl Into<String>) -> Self {
        ApiError {
            errors: vec![FieldError {
                field: limit.into(),
                message: "limit exceeded".into(),
            }],
            ..ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "Payload too large", detail)
        }
    }

    /// 401.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized", detail)
    }

    /// 403.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        ApiError::new(StatusCode::FORBIDDEN, "Forbidden", detail)
    }

    /// 404.
    pub fn not_found(detail: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "Not found", detail)
    }

    /// 409 without a field (a state that forbids the request now).
    pub fn conflict(detail: impl Into<String>) -> Self {
        ApiError::new(StatusCode::CONFLICT, "Conflict", detail)
    }

    /// 408.
    pub fn timeout(detail: impl Into<String>) -> Self {
        ApiError::new(StatusCode::REQUEST_TIMEOUT, "Request timeout", detail)
    }

    /// 503 with Retry-After.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        ApiError {
            retry_after: Some(1),
            ..ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "Service unavailable",
                detail,
            )
        }
    }

    /// 500; the cause is logged, not sent.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(%cause, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal error",
            "the server failed; the cause is in its log",
        )
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict { .. } => {
                let detail = error.to_string();
                ApiError {
                    errors: vec![FieldError {
                        field: "id".into(),
                        message: detail.clone(),
                    }],
                    ..ApiError::new(StatusCode::CONFLICT, "Conflict", detail)
                }
            }
            StoreError::NotFound(what) => ApiError::not_found(format!("{what} not found")),
            StoreError::Invalid { field, message } => ApiError::bad_field(field, message),
            StoreError::Unavailable(why) => ApiError::unavailable(why),
            other => ApiError::internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = Problem {
            kind: format!(
                "urn:trail:problem:{}",
                self.title.to_ascii_lowercase().replace(' ', "-")
            ),
            title: self.title,
            status: self.status.as_u16(),
            detail: &self.detail,
            errors: &self.errors,
        };
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
