//! Responses error bodies (`{"error":{message,type,param,code}}`, the Chat envelope) and the
//! in-stream `error` event, mapped to canonical `ErrorBody` kinds (reference §3.8, §5.8).

use dragoman_model::{ErrorBody, ErrorKind};
use dragoman_sse::Event;
use serde_json::{Value, json};

use crate::get_str;

/// Kind from OpenAI's `code` / `type` strings (both are checked: OpenAI puts the precise
/// reason in `code` and a broad class in `type`).
fn kind_from_name(name: &str) -> Option<ErrorKind> {
    Some(match name {
        "invalid_api_key" | "authentication_error" | "invalid_authentication" => {
            ErrorKind::Authentication
        }
        "permission_error" | "permission_denied" | "unsupported_country_region_territory" => {
            ErrorKind::Permission
        }
        "model_not_found" | "not_found" | "not_found_error" => ErrorKind::NotFound,
        "request_too_large" => ErrorKind::RequestTooLarge,
        "rate_limit_exceeded" | "rate_limit_error" => ErrorKind::RateLimited,
        "insufficient_quota" | "billing_error" => ErrorKind::Billing,
        "server_error" | "api_error" | "internal_error" => ErrorKind::Server,
        "overloaded" | "overloaded_error" | "service_unavailable" | "server_is_overloaded" => {
            ErrorKind::Overloaded
        }
        "timeout" | "timeout_error" => ErrorKind::Timeout,
        _ => return None,
    })
}

/// Reads an OpenAI error object (`{message, type, param, code}`), or the `{code, message}` of
/// `response.error`. `status` decides when the strings do not.
pub(crate) fn error_from_object(obj: &Value, status: Option<u16>) -> ErrorBody {
    let type_name = get_str(obj, "type").map(str::to_owned);
    let code = match obj.get("code") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let kind = code
        .as_deref()
        .and_then(kind_from_name)
        .or_else(|| {
            type_name
                .as_deref()
                .filter(|t| *t != "invalid_request_error")
                .and_then(kind_from_name)
        })
        .or_else(|| status.filter(|s| *s >= 400).map(ErrorKind::from_status))
        .unwrap_or(if type_name.as_deref() == Some("invalid_request_error") {
            ErrorKind::InvalidRequest
        } else {
            ErrorKind::Server
        });
    let message = match obj.get("message") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    };
    ErrorBody {
        kind,
        message,
        type_name,
        code,
        param: get_str(obj, "param").map(str::to_owned),
        status,
    }
}

/// Decodes an HTTP error body. Lenient: anything that is not the OpenAI envelope becomes an
/// error of the status's kind with the body as its message.
pub fn decode_error(status: Option<u16>, body: &[u8]) -> ErrorBody {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        if let Some(obj) = v.get("error").filter(|e| e.is_object()) {
            return error_from_object(obj, status);
        }
        if let Some(msg) = v.get("error").and_then(Value::as_str) {
            let mut e = error_from_object(&json!({ "message": msg }), status);
            e.type_name = None;
            return e;
        }
        if v.get("message").is_some() {
            return error_from_object(&v, status);
        }
    }
    let kind = status.map_or(ErrorKind::Server, ErrorKind::from_status);
    let text = String::from_utf8_lossy(body).trim().to_owned();
    let mut e = ErrorBody::new(
        kind,
        if text.is_empty() {
            format!("upstream error (status {})", status.unwrap_or(0))
        } else {
            text
        },
    );
    e.status = status;
    e
}

/// Anthropic-only type names that an OpenAI client would not recognise.
const FOREIGN_TYPES: &[&str] = &[
    "api_error",
    "overloaded_error",
    "not_found_error",
    "rate_limit_error",
    "billing_error",
    "timeout_error",
    "request_too_large",
    "error",
];

fn default_type(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidRequest | ErrorKind::NotFound | ErrorKind::RequestTooLarge => {
            "invalid_request_error"
        }
        ErrorKind::Authentication => "authentication_error",
        ErrorKind::Permission => "permission_error",
        ErrorKind::RateLimited => "rate_limit_exceeded",
        ErrorKind::Billing => "insufficient_quota",
        ErrorKind::Server | ErrorKind::Overloaded | ErrorKind::Timeout => "server_error",
    }
}

fn default_code(kind: ErrorKind) -> Option<&'static str> {
    match kind {
        ErrorKind::InvalidRequest | ErrorKind::Permission => None,
        ErrorKind::Authentication => Some("invalid_api_key"),
        ErrorKind::NotFound => Some("not_found"),
        ErrorKind::RequestTooLarge => Some("request_too_large"),
        ErrorKind::RateLimited => Some("rate_limit_exceeded"),
        ErrorKind::Billing => Some("insufficient_quota"),
        ErrorKind::Server => Some("server_error"),
        ErrorKind::Overloaded => Some("overloaded"),
        ErrorKind::Timeout => Some("timeout"),
    }
}

/// The `type` an OpenAI client should see: the received one when it is OpenAI's own.
fn openai_type(err: &ErrorBody) -> String {
    match err.type_name.as_deref() {
        Some(t) if !t.is_empty() && !FOREIGN_TYPES.contains(&t) => t.to_owned(),
        _ => default_type(err.kind).to_owned(),
    }
}

fn code_value(err: &ErrorBody) -> Value {
    match err.code.as_deref().or_else(|| default_code(err.kind)) {
        Some(c) => Value::String(c.to_owned()),
        None => Value::Null,
    }
}

fn param_value(err: &ErrorBody) -> Value {
    err.param.clone().map_or(Value::Null, Value::String)
}

/// HTTP status and body for an error. 529 becomes 503: OpenAI clients know 503 as "overloaded"
/// and retry any 5xx either way.
pub fn encode_error(err: &ErrorBody) -> (u16, Value) {
    let status = match err.status.filter(|s| *s >= 400) {
        Some(529) | None if err.kind == ErrorKind::Overloaded => 503,
        Some(s) => s,
        None => err.kind.status(),
    };
    let body = json!({
        "error": {
            "message": err.message,
            "type": openai_type(err),
            "param": param_value(err),
            "code": code_value(err),
        }
    });
    (status, body)
}

/// The in-stream `error` event: the spec's flat `code`/`message`/`param` and the nested `error`
/// object observed on the wire, so SDKs reading either form find it. The nested `type` is only
/// written when known, so a decoded stream error re-encodes to the same `ErrorBody`.
pub fn stream_error_event(err: &ErrorBody, sequence_number: u64) -> Event {
    let mut nested = serde_json::Map::new();
    if let Some(t) = &err.type_name {
        nested.insert("type".into(), Value::String(t.clone()));
    }
    nested.insert("code".into(), code_value(err));
    nested.insert("message".into(), Value::String(err.message.clone()));
    nested.insert("param".into(), param_value(err));
    let data = json!({
        "type": "error",
        "sequence_number": sequence_number,
        "code": code_value(err),
        "message": err.message,
        "param": param_value(err),
        "error": nested,
    });
    Event::named("error", data.to_string())
}

/// The `{code, message}` object of a failed response.
pub(crate) fn response_error_object(err: &ErrorBody) -> Value {
    json!({ "code": code_value(err), "message": err.message })
}
