//! Errors the gateway answers with before the first byte, rendered in the client's dialect.
//! This is the one place a gateway-made error becomes an HTTP response.

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use dragoman_model::{Dialect, ErrorBody, ErrorKind};

/// Renders `err` as `dialect` expects: its envelope and status. `status` overrides the kind's
/// default (an upstream's own status is kept for OpenAI clients).
pub fn render(
    dialect: Dialect,
    err: &ErrorBody,
    status: Option<u16>,
    request_id: &str,
) -> Response {
    let (default_status, body) = dragoman_translate::encode_error(dialect, err);
    let status = status.unwrap_or(default_status);
    let mut resp = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body.to_string(),
    )
        .into_response();
    set_request_id(resp.headers_mut(), request_id);
    if err.kind.retryable() {
        resp.headers_mut()
            .insert("x-should-retry", HeaderValue::from_static("true"));
    }
    resp
}

pub fn error(kind: ErrorKind, message: impl Into<String>) -> ErrorBody {
    ErrorBody::new(kind, message)
}

const REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

pub fn set_request_id(headers: &mut HeaderMap, id: &str) {
    if let Ok(v) = HeaderValue::from_str(id) {
        headers.insert(REQUEST_ID, v);
    }
}
