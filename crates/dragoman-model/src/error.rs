//! Errors shared by every dialect: the decode error that names a place, and the canonical
//! error body that each dialect renders in its own envelope.

use serde::{Deserialize, Serialize};

/// Input that could not be decoded, with the JSON path (or stream position) of the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct DecodeError {
    pub path: String,
    pub message: String,
}

impl DecodeError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        DecodeError {
            path: path.into(),
            message: message.into(),
        }
    }

    /// Wraps a serde_json error, keeping its line and column.
    pub fn json(path: impl Into<String>, err: &serde_json::Error) -> Self {
        DecodeError::new(path, format!("invalid json: {err}"))
    }

    /// The error for a required field that is absent.
    pub fn missing(path: impl Into<String>) -> Self {
        DecodeError::new(path, "required field is missing")
    }

    /// The error for a field of the wrong JSON type.
    pub fn wrong_type(path: impl Into<String>, expected: &str) -> Self {
        DecodeError::new(path, format!("expected {expected}"))
    }
}

/// What kind of failure an error body reports. Closed, so that mapping to each dialect's error
/// type and HTTP status is total.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    InvalidRequest,
    Authentication,
    Permission,
    NotFound,
    RequestTooLarge,
    RateLimited,
    Billing,
    Server,
    Overloaded,
    Timeout,
}

impl ErrorKind {
    /// The HTTP status a client expects for this kind (529 for overload, as Anthropic sends it;
    /// OpenAI clients retry any 5xx, so it serves them too).
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::InvalidRequest => 400,
            ErrorKind::Authentication => 401,
            ErrorKind::Billing => 402,
            ErrorKind::Permission => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::RequestTooLarge => 413,
            ErrorKind::RateLimited => 429,
            ErrorKind::Server => 500,
            ErrorKind::Timeout => 504,
            ErrorKind::Overloaded => 529,
        }
    }

    /// The kind an HTTP status means when the body does not say better.
    pub fn from_status(status: u16) -> ErrorKind {
        match status {
            401 => ErrorKind::Authentication,
            402 => ErrorKind::Billing,
            403 => ErrorKind::Permission,
            404 => ErrorKind::NotFound,
            413 => ErrorKind::RequestTooLarge,
            429 => ErrorKind::RateLimited,
            408 | 504 => ErrorKind::Timeout,
            503 | 529 => ErrorKind::Overloaded,
            s if s >= 500 => ErrorKind::Server,
            _ => ErrorKind::InvalidRequest,
        }
    }

    /// Whether a caller may retry the same request.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            ErrorKind::RateLimited | ErrorKind::Server | ErrorKind::Overloaded | ErrorKind::Timeout
        )
    }
}

/// A provider or gateway error, independent of any dialect's envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub kind: ErrorKind,
    pub message: String,
    /// The dialect's own type string as received (`overloaded_error`, `insufficient_quota`),
    /// kept so same-family rendering loses nothing.
    pub type_name: Option<String>,
    /// OpenAI's `code`, when one was given.
    pub code: Option<String>,
    /// OpenAI's `param`, when one was given.
    pub param: Option<String>,
    /// The HTTP status the error arrived with, when known.
    pub status: Option<u16>,
}

impl ErrorBody {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ErrorBody {
            kind,
            message: message.into(),
            type_name: None,
            code: None,
            param: None,
            status: None,
        }
    }

    /// The provider says the prompt does not fit the model's context window: OpenAI's
    /// `context_length_exceeded` code, Anthropic's "prompt is too long", and the wordings
    /// OpenAI-compatible servers use. Routers fall back to a larger model on it.
    pub fn is_context_window(&self) -> bool {
        if self.code.as_deref() == Some("context_length_exceeded") {
            return true;
        }
        let m = self.message.to_ascii_lowercase();
        [
            "prompt is too long",
            "context length",
            "context window",
            "maximum context",
            "too many tokens",
            "input is too long",
        ]
        .iter()
        .any(|p| m.contains(p))
    }

    /// The provider refused the content under its usage policy (OpenAI's
    /// `content_policy_violation` / `content_filter`, Azure's content management policy).
    pub fn is_content_policy(&self) -> bool {
        if matches!(
            self.code.as_deref(),
            Some("content_policy_violation" | "content_filter")
        ) {
            return true;
        }
        let m = self.message.to_ascii_lowercase();
        m.contains("content management policy") || m.contains("content policy")
    }

    /// The error a stream that ended without its terminal event turns into.
    pub fn truncated_stream() -> Self {
        ErrorBody::new(
            ErrorKind::Server,
            "upstream stream ended before its terminal event",
        )
    }
}
