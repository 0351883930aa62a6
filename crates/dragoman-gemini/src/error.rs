//! Google RPC error envelopes `{"error":{code,message,status,details}}` ⇄ `ErrorBody`, for HTTP
//! error bodies and for the `{"error":…}` events a stream may end with.

use dragoman_model::{ErrorBody, ErrorKind};
use serde_json::{Value, json};

/// The `ErrorInfo` reason Google gives when a project cannot be billed.
const BILLING_REASON: &str = "BILLING_DISABLED";

/// The kind a canonical Google status names.
fn kind_of(status: &str) -> Option<ErrorKind> {
    Some(match status {
        "INVALID_ARGUMENT"
        | "FAILED_PRECONDITION"
        | "OUT_OF_RANGE"
        | "ALREADY_EXISTS"
        | "ABORTED"
        | "CANCELLED" => ErrorKind::InvalidRequest,
        "UNAUTHENTICATED" => ErrorKind::Authentication,
        "PERMISSION_DENIED" => ErrorKind::Permission,
        "NOT_FOUND" => ErrorKind::NotFound,
        "RESOURCE_EXHAUSTED" => ErrorKind::RateLimited,
        "INTERNAL" | "UNKNOWN" | "DATA_LOSS" | "UNIMPLEMENTED" => ErrorKind::Server,
        "UNAVAILABLE" => ErrorKind::Overloaded,
        "DEADLINE_EXCEEDED" => ErrorKind::Timeout,
        _ => return None,
    })
}

/// The canonical status and HTTP code Google answers a kind with.
fn status_of(kind: ErrorKind) -> (&'static str, u16) {
    match kind {
        ErrorKind::InvalidRequest => ("INVALID_ARGUMENT", 400),
        ErrorKind::RequestTooLarge => ("INVALID_ARGUMENT", 413),
        ErrorKind::Authentication => ("UNAUTHENTICATED", 401),
        ErrorKind::Permission => ("PERMISSION_DENIED", 403),
        ErrorKind::NotFound => ("NOT_FOUND", 404),
        ErrorKind::RateLimited | ErrorKind::Billing => ("RESOURCE_EXHAUSTED", 429),
        ErrorKind::Server => ("INTERNAL", 500),
        ErrorKind::Overloaded => ("UNAVAILABLE", 503),
        ErrorKind::Timeout => ("DEADLINE_EXCEEDED", 504),
    }
}

/// Reads an error object (the value of the `error` key, or a bare RPC status).
pub(crate) fn from_value(v: &Value, status: Option<u16>) -> ErrorBody {
    let inner = match v.get("error") {
        Some(e @ Value::Object(_)) => e,
        _ => v,
    };
    let message = inner
        .get("message")
        .and_then(Value::as_str)
        .map_or_else(|| inner.to_string(), str::to_owned);
    let name = inner.get("status").and_then(Value::as_str);
    let code = status.or_else(|| {
        inner
            .get("code")
            .and_then(Value::as_u64)
            .and_then(|c| u16::try_from(c).ok())
            .filter(|c| (400..600).contains(c))
    });
    // The reason in `google.rpc.ErrorInfo` says more than the status: the Gemini API answers
    // a bad key with 400 INVALID_ARGUMENT, and quota and billing share RESOURCE_EXHAUSTED.
    let reason = |r: &str| {
        inner
            .get("details")
            .and_then(Value::as_array)
            .is_some_and(|d| {
                d.iter()
                    .any(|x| x.get("reason").and_then(Value::as_str) == Some(r))
            })
    };
    let kind = if reason("API_KEY_INVALID") {
        ErrorKind::Authentication
    } else if reason(BILLING_REASON) {
        ErrorKind::Billing
    } else {
        name.and_then(kind_of)
            .or_else(|| code.map(ErrorKind::from_status))
            .unwrap_or(ErrorKind::Server)
    };
    let mut b = ErrorBody::new(kind, message);
    b.code = name.map(str::to_owned);
    b.status = code;
    b
}

/// Decodes an error response body. Never fails: a body that is not JSON becomes the message.
pub fn decode_error(status: Option<u16>, body: &[u8]) -> ErrorBody {
    match serde_json::from_slice::<Value>(body) {
        Ok(v @ Value::Object(_)) => from_value(&v, status),
        // The Gemini API wraps some errors in a one-element array.
        Ok(Value::Array(a)) if a.first().is_some_and(Value::is_object) => from_value(&a[0], status),
        _ => {
            let text = String::from_utf8_lossy(body).trim().to_owned();
            let message = if text.is_empty() {
                format!("upstream error (status {})", status.unwrap_or(0))
            } else {
                text
            };
            let mut b = ErrorBody::new(
                status.map_or(ErrorKind::Server, ErrorKind::from_status),
                message,
            );
            b.status = status;
            b
        }
    }
}

fn envelope(err: &ErrorBody, code: u16) -> Value {
    let (default_name, _) = status_of(err.kind);
    let name = err
        .code
        .as_deref()
        .filter(|c| kind_of(c) == Some(err.kind))
        .unwrap_or(default_name);
    let mut e = json!({ "code": code, "message": err.message, "status": name });
    if err.kind == ErrorKind::Billing {
        e["details"] = json!([{
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": BILLING_REASON,
            "domain": "googleapis.com",
        }]);
    }
    json!({ "error": e })
}

/// Renders an error as an HTTP status and body. An error status the error arrived with is kept;
/// otherwise the kind decides, as Google would answer it (503 for overload, not 529).
pub fn encode_error(err: &ErrorBody) -> (u16, Value) {
    let status = match err.status {
        Some(s) if (400..600).contains(&s) && s != 529 => s,
        _ => status_of(err.kind).1,
    };
    (status, envelope(err, status))
}

/// The in-stream error event (a data-only event; nothing follows it).
pub fn stream_error_event(err: &ErrorBody) -> dragoman_sse::Event {
    let (_, body) = encode_error(err);
    dragoman_sse::Event::data(body.to_string())
}
