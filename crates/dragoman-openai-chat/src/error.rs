//! OpenAI error envelopes `{"error":{message,type,param,code}}` ⇄ `ErrorBody`, for HTTP error
//! bodies and for the `{"error":…}` chunks compatible servers put inside a 200 stream.

use dragoman_model::{ErrorBody, ErrorKind};
use serde_json::{Value, json};

/// The kind a `type` or `code` string names, when it names one decisively.
fn kind_of(name: &str) -> Option<ErrorKind> {
    Some(match name {
        "authentication_error" | "invalid_api_key" | "invalid_authentication" => {
            ErrorKind::Authentication
        }
        "permission_error" | "permission_denied" | "unsupported_country_region_territory" => {
            ErrorKind::Permission
        }
        "not_found_error" | "not_found" | "model_not_found" => ErrorKind::NotFound,
        "request_too_large" => ErrorKind::RequestTooLarge,
        "rate_limit_exceeded" | "rate_limit_error" => ErrorKind::RateLimited,
        "insufficient_quota" | "billing_error" | "billing_hard_limit_reached" => ErrorKind::Billing,
        "server_error" | "api_error" | "internal_error" => ErrorKind::Server,
        "overloaded"
        | "overloaded_error"
        | "server_is_overloaded"
        | "service_unavailable"
        | "slow_down" => ErrorKind::Overloaded,
        "timeout" | "timeout_error" => ErrorKind::Timeout,
        _ => return None,
    })
}

/// JSON scalars as strings (OpenRouter sends numeric `code`s); null and containers give `None`
/// so that the literal "None" or "null" never appears in a rendered error.
fn scalar(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Reads an error object (the value of the `error` key, or a bare object with a `message`).
pub(crate) fn from_value(v: &Value, status: Option<u16>) -> ErrorBody {
    let inner = match v.get("error") {
        Some(e @ Value::Object(_)) => e,
        Some(Value::String(s)) => {
            let mut b = ErrorBody::new(
                status.map_or(ErrorKind::Server, ErrorKind::from_status),
                s.clone(),
            );
            b.status = status;
            return b;
        }
        _ => v,
    };
    let message = scalar(inner.get("message")).unwrap_or_else(|| inner.to_string());
    let type_name = scalar(inner.get("type"));
    let code = scalar(inner.get("code"));
    let param = scalar(inner.get("param"));
    // Groq puts the HTTP status in the body of in-stream errors; OpenRouter a numeric code.
    let hinted = status
        .or_else(|| {
            inner
                .get("status_code")
                .and_then(Value::as_u64)
                .and_then(|s| u16::try_from(s).ok())
        })
        .or_else(|| {
            inner
                .get("code")
                .and_then(Value::as_u64)
                .and_then(|s| u16::try_from(s).ok())
                .filter(|s| (400..600).contains(s))
        });
    // The code is the most specific; `invalid_request_error` is generic enough that a 401/404
    // status says more than it does.
    let kind = code
        .as_deref()
        .and_then(kind_of)
        .or_else(|| type_name.as_deref().and_then(kind_of))
        .unwrap_or_else(|| match hinted {
            Some(s) => ErrorKind::from_status(s),
            None if type_name.as_deref() == Some("invalid_request_error") => {
                ErrorKind::InvalidRequest
            }
            None => ErrorKind::Server,
        });
    ErrorBody {
        kind,
        message,
        type_name,
        code,
        param,
        status,
    }
}

/// Decodes an error response body. Never fails: a body that is not JSON becomes the message.
pub fn decode_error(status: Option<u16>, body: &[u8]) -> ErrorBody {
    match serde_json::from_slice::<Value>(body) {
        Ok(v @ Value::Object(_)) => from_value(&v, status),
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

fn default_type(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidRequest | ErrorKind::RequestTooLarge => "invalid_request_error",
        ErrorKind::Authentication => "authentication_error",
        ErrorKind::Permission => "permission_error",
        ErrorKind::NotFound => "not_found_error",
        ErrorKind::RateLimited => "rate_limit_exceeded",
        ErrorKind::Billing => "insufficient_quota",
        ErrorKind::Server => "server_error",
        ErrorKind::Overloaded => "service_unavailable",
        ErrorKind::Timeout => "timeout",
    }
}

fn envelope(err: &ErrorBody) -> Value {
    json!({
        "error": {
            "message": err.message,
            "type": err.type_name.as_deref().unwrap_or(default_type(err.kind)),
            "param": err.param,
            "code": err.code,
        }
    })
}

/// Renders an error as an HTTP status and body. The status an error arrived with is kept when it
/// is an error status (OpenAI answers `insufficient_quota` with 429, not the 402 its kind
/// suggests); otherwise the kind decides, including 529 for overload, which OpenAI SDKs retry.
pub fn encode_error(err: &ErrorBody) -> (u16, Value) {
    let status = match err.status {
        Some(s) if (400..600).contains(&s) => s,
        _ => err.kind.status(),
    };
    (status, envelope(err))
}

/// The in-stream error chunk (a data-only event; nothing may follow it, not even `[DONE]`).
pub fn stream_error_event(err: &ErrorBody) -> dragoman_sse::Event {
    dragoman_sse::Event::data(envelope(err).to_string())
}
