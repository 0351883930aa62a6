//! Anthropic error envelopes ⇄ canonical `ErrorBody`, for HTTP errors and in-stream `error`
//! events alike (they share the inner object).

use dragoman_model::{ErrorBody, ErrorKind};
use serde_json::{Value, json};

fn kind_from_type(t: &str) -> Option<ErrorKind> {
    Some(match t {
        "invalid_request_error" => ErrorKind::InvalidRequest,
        "authentication_error" => ErrorKind::Authentication,
        "permission_error" => ErrorKind::Permission,
        "not_found_error" => ErrorKind::NotFound,
        "request_too_large" => ErrorKind::RequestTooLarge,
        "rate_limit_error" => ErrorKind::RateLimited,
        "billing_error" => ErrorKind::Billing,
        "api_error" => ErrorKind::Server,
        "overloaded_error" => ErrorKind::Overloaded,
        "timeout_error" => ErrorKind::Timeout,
        _ => return None,
    })
}

fn type_for(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidRequest => "invalid_request_error",
        ErrorKind::Authentication => "authentication_error",
        ErrorKind::Permission => "permission_error",
        ErrorKind::NotFound => "not_found_error",
        ErrorKind::RequestTooLarge => "request_too_large",
        ErrorKind::RateLimited => "rate_limit_error",
        ErrorKind::Billing => "billing_error",
        ErrorKind::Server => "api_error",
        ErrorKind::Overloaded => "overloaded_error",
        ErrorKind::Timeout => "timeout_error",
    }
}

/// Reads the inner `{type, message}` object (also what an in-stream `error` event holds).
pub(crate) fn from_inner(inner: Option<&Value>, status: Option<u16>, fallback: &str) -> ErrorBody {
    let ty = inner
        .and_then(|e| e.get("type"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let message = inner
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| fallback.to_owned());
    let kind = ty
        .as_deref()
        .and_then(kind_from_type)
        .or_else(|| status.map(ErrorKind::from_status))
        .unwrap_or(ErrorKind::Server);
    let mut err = ErrorBody::new(kind, message);
    err.type_name = ty;
    err.status = status;
    err
}

/// Reads an Anthropic error body. Never fails: a body that is not the envelope (a proxy's HTML
/// page, plain text) becomes the message, and the status decides the kind.
pub fn decode_error(status: Option<u16>, body: &[u8]) -> ErrorBody {
    let text = String::from_utf8_lossy(body);
    let fallback = text.trim();
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => {
            let inner = v.get("error").filter(|e| e.is_object());
            if inner.is_none() {
                let mut err = ErrorBody::new(
                    status
                        .map(ErrorKind::from_status)
                        .unwrap_or(ErrorKind::Server),
                    fallback,
                );
                err.status = status;
                return err;
            }
            from_inner(inner, status, fallback)
        }
        Err(_) => {
            let mut err = ErrorBody::new(
                status
                    .map(ErrorKind::from_status)
                    .unwrap_or(ErrorKind::Server),
                fallback,
            );
            err.status = status;
            err
        }
    }
}

/// The Anthropic error type for an error: its own type string when that is an Anthropic type
/// of the same kind, so same-dialect errors pass unchanged.
fn type_name(err: &ErrorBody) -> &str {
    match err.type_name.as_deref() {
        Some(t) if kind_from_type(t) == Some(err.kind) => t,
        // Newer Anthropic type without a kind of its own; only ours when the status agrees.
        Some(t @ "conflict_error") if err.status == Some(409) => t,
        _ => type_for(err.kind),
    }
}

fn inner_body(err: &ErrorBody) -> Value {
    json!({"type": "error", "error": {"type": type_name(err), "message": err.message}})
}

/// HTTP status and body for an error sent to an Anthropic client.
pub fn encode_error(err: &ErrorBody) -> (u16, Value) {
    let status = match err.status {
        Some(409) if type_name(err) == "conflict_error" => 409,
        _ => err.kind.status(),
    };
    (status, inner_body(err))
}

/// The in-stream form of an error (after HTTP 200 was sent).
pub fn stream_error_event(err: &ErrorBody) -> dragoman_sse::Event {
    dragoman_sse::Event::named("error", inner_body(err).to_string())
}
