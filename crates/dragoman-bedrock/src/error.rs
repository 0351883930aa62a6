//! Bedrock error bodies (`{"message": …}`, the type in the `x-amzn-ErrorType` header) and stream
//! exception events ⇄ `ErrorBody`.

use dragoman_model::{ErrorBody, ErrorKind};
use serde_json::{Value, json};

/// The bare exception name of an `x-amzn-ErrorType` value or a `__type` field:
/// `ValidationException:http://internal.amazon.com/…` and `com.amazon.coral#ValidationException`
/// both give `ValidationException` (botocore's rule).
pub fn error_type_name(t: &str) -> &str {
    let t = t.split(':').next().unwrap_or(t);
    t.rsplit('#').next().unwrap_or(t).trim()
}

/// The kind an exception name means (mapping table of the Bedrock reference §8), for the
/// gateway, which sees the `x-amzn-ErrorType` header this crate cannot. Names are matched
/// whatever the case of their first letter, so the stream's `throttlingException` reads as the
/// header's `ThrottlingException`. An unknown name falls back to the HTTP status.
pub fn error_kind_from_type(t: &str, status: Option<u16>) -> ErrorKind {
    let name = error_type_name(t);
    let mut chars = name.chars();
    let upper: String = chars
        .next()
        .map(|c| c.to_ascii_uppercase())
        .into_iter()
        .chain(chars)
        .collect();
    match upper.as_str() {
        "ValidationException" | "ConflictException" => ErrorKind::InvalidRequest,
        "ServiceQuotaExceededException" | "ThrottlingException" => ErrorKind::RateLimited,
        "AccessDeniedException" => ErrorKind::Permission,
        "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "IncompleteSignatureException"
        | "ExpiredTokenException"
        | "MissingAuthenticationTokenException" => ErrorKind::Authentication,
        "ResourceNotFoundException" => ErrorKind::NotFound,
        "ModelTimeoutException" => ErrorKind::Timeout,
        "ModelErrorException" | "ModelStreamErrorException" | "InternalServerException" => {
            ErrorKind::Server
        }
        "ModelNotReadyException" | "ServiceUnavailableException" => ErrorKind::Overloaded,
        _ => status.map_or(ErrorKind::Server, ErrorKind::from_status),
    }
}

/// The exception Bedrock answers a kind with, and its HTTP status.
pub fn exception_of(kind: ErrorKind) -> (&'static str, u16) {
    match kind {
        ErrorKind::InvalidRequest | ErrorKind::RequestTooLarge => ("ValidationException", 400),
        ErrorKind::Authentication => ("UnrecognizedClientException", 403),
        ErrorKind::Permission | ErrorKind::Billing => ("AccessDeniedException", 403),
        ErrorKind::NotFound => ("ResourceNotFoundException", 404),
        ErrorKind::RateLimited => ("ThrottlingException", 429),
        ErrorKind::Server => ("InternalServerException", 500),
        ErrorKind::Overloaded => ("ServiceUnavailableException", 503),
        ErrorKind::Timeout => ("ModelTimeoutException", 408),
    }
}

/// Reads an error object: `message` (or botocore's `Message`), and the exception name from a
/// `__type` field when the body carries one.
pub(crate) fn from_value(v: &Value, type_name: Option<&str>, status: Option<u16>) -> ErrorBody {
    let message = v
        .get("message")
        .or_else(|| v.get("Message"))
        .and_then(Value::as_str)
        .map_or_else(|| v.to_string(), str::to_owned);
    let t = type_name.or_else(|| v.get("__type").and_then(Value::as_str));
    let kind = match t {
        Some(t) => error_kind_from_type(t, status),
        None => status.map_or(ErrorKind::Server, ErrorKind::from_status),
    };
    let mut b = ErrorBody::new(kind, message);
    b.type_name = t.map(|t| error_type_name(t).to_owned());
    b.status = status;
    b
}

/// Decodes an error response body. Never fails: a body that is not JSON becomes the message.
pub fn decode_error(status: Option<u16>, body: &[u8]) -> ErrorBody {
    match serde_json::from_slice::<Value>(body) {
        Ok(v @ Value::Object(_)) => from_value(&v, None, status),
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

/// Renders an error as an HTTP status and body `{"message": …, "__type": …}`. The exception
/// name belongs in the `x-amzn-ErrorType` header ([`exception_of`] gives it); the body's
/// `__type`, which botocore also reads, carries it where no header can. An error status the error arrived
/// with is kept; otherwise the kind decides, as Bedrock would answer (503 for overload, never
/// Anthropic's 529).
pub fn encode_error(err: &ErrorBody) -> (u16, Value) {
    let status = match err.status {
        Some(s) if (400..600).contains(&s) && s != 529 => s,
        _ => exception_of(err.kind).1,
    };
    let name = match err.type_name.as_deref() {
        Some(t) if t.ends_with("Exception") && error_kind_from_type(t, None) == err.kind => t,
        _ => exception_of(err.kind).0,
    };
    (status, json!({ "message": err.message, "__type": name }))
}

/// The exception names a ConverseStream may end with, lowerCamel as on the wire.
const STREAM_EXCEPTIONS: &[&str] = &[
    "internalServerException",
    "modelStreamErrorException",
    "validationException",
    "throttlingException",
    "serviceUnavailableException",
    "modelTimeoutException",
];

/// The in-stream exception event (nothing follows it). An error that arrived as one of the
/// stream exceptions keeps its name; any other is named by its kind.
pub fn stream_error_event(err: &ErrorBody) -> dragoman_sse::Event {
    let own = err.type_name.as_deref().and_then(|t| {
        STREAM_EXCEPTIONS
            .iter()
            .find(|s| s.eq_ignore_ascii_case(t) && error_kind_from_type(s, None) == err.kind)
    });
    let name = match own {
        Some(s) => (*s).to_owned(),
        None => match err.kind {
            ErrorKind::RateLimited => "throttlingException".into(),
            ErrorKind::Server => "internalServerException".into(),
            ErrorKind::Overloaded => "serviceUnavailableException".into(),
            ErrorKind::Timeout => "modelTimeoutException".into(),
            _ => "validationException".into(),
        },
    };
    dragoman_sse::Event::named(name, json!({ "message": err.message }).to_string())
}

/// Whether an event name is a stream exception.
pub(crate) fn is_exception(name: &str) -> bool {
    name.ends_with("Exception")
}
