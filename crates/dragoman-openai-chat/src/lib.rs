//! The OpenAI Chat Completions dialect: pure translation between Chat wire JSON / SSE and the
//! canonical model, with no I/O, so the gateway can put it on either side of a bridge.
//!
//! Choices this crate makes where Chat and the canonical model do not line up (each is also
//! explained where it is implemented):
//! - Request fields the canonical model cannot hold stay as `Extension { dialect: Chat, .. }`
//!   under their own key. A few extensions are *markers* that only steer this crate's encoder so
//!   that a Chat → Chat round trip is exact: `max_tokens_field` (the client used the deprecated
//!   `max_tokens` instead of `max_completion_tokens`), `user_field` (the client sent only
//!   `safety_identifier`) and `reasoning_field` (the client replays `reasoning_content` /
//!   `reasoning` on assistant messages, which DeepSeek-style servers need).
//! - Message-level fields the model has no place for (`name`, `audio`, vendor additions such as
//!   `extra_content`) become one `Part::Opaque { dialect: Chat }` per field, holding
//!   `{"chat_message_field": {key: value}}`; the encoder merges them back into the message.
//! - `created` timestamps travel as an extension; when absent the encoders write 0 and the
//!   gateway, which owns the clock, stamps the real value.

mod error;
mod request;
mod response;
mod stop;
mod stream;
mod usage;
mod validate;

#[cfg(test)]
mod tests;

pub use error::{decode_error, encode_error, stream_error_event};
pub use request::{decode_request, encode_request, replay_reasoning};
pub use response::{
    check_response, decode_response, decode_response_usage, encode_response, response_summary,
};
pub use stream::{StreamDecoder, StreamEncoder};
pub use validate::{Validator, validate};

use std::fmt;

use dragoman_model::{DecodeError, JsonMap};
use serde_json::Value;

/// Key of the opaque part that carries one unknown message-level field.
pub(crate) const MESSAGE_FIELD: &str = "chat_message_field";

/// Marker extensions (see the crate docs): read by this crate's encoder, never written as
/// fields themselves.
pub(crate) const MARKER_MAX_TOKENS: &str = "x-dragoman-max-tokens-field";
pub(crate) const MARKER_USER: &str = "x-dragoman-user-field";
pub(crate) const MARKER_REASONING: &str = "x-dragoman-reasoning-field";

/// A JSON path built from borrowed pieces and formatted only when a loss or error names it:
/// formatting every message and part path eagerly was a large share of translation time.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Path<'a> {
    Root(&'a str),
    Key(&'a Path<'a>, &'a str),
    Idx(&'a Path<'a>, usize),
}

impl<'a> Path<'a> {
    pub(crate) fn key(&'a self, key: &'a str) -> Path<'a> {
        Path::Key(self, key)
    }

    pub(crate) fn idx(&'a self, i: usize) -> Path<'a> {
        Path::Idx(self, i)
    }
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root(s) => f.write_str(s),
            Path::Key(Path::Root(""), k) => f.write_str(k),
            Path::Key(p, k) => write!(f, "{p}.{k}"),
            Path::Idx(p, i) => write!(f, "{p}[{i}]"),
        }
    }
}

impl From<&Path<'_>> for String {
    fn from(p: &Path<'_>) -> String {
        p.to_string()
    }
}

impl From<Path<'_>> for String {
    fn from(p: Path<'_>) -> String {
        p.to_string()
    }
}

pub(crate) fn join(path: &(impl fmt::Display + ?Sized), key: &str) -> String {
    let path = path.to_string();
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

pub(crate) fn at(path: &(impl fmt::Display + ?Sized), i: usize) -> String {
    format!("{path}[{i}]")
}

pub(crate) fn as_obj<'a>(
    v: &'a Value,
    path: &(impl fmt::Display + ?Sized),
) -> Result<&'a JsonMap, DecodeError> {
    v.as_object()
        .ok_or_else(|| DecodeError::wrong_type(path.to_string(), "an object"))
}

pub(crate) fn as_arr<'a>(
    v: &'a Value,
    path: &(impl fmt::Display + ?Sized),
) -> Result<&'a Vec<Value>, DecodeError> {
    v.as_array()
        .ok_or_else(|| DecodeError::wrong_type(path.to_string(), "an array"))
}

/// A field that may be absent; JSON `null` counts as absent because Chat clients send explicit
/// nulls for unset options.
pub(crate) fn field<'a>(m: &'a JsonMap, key: &str) -> Option<&'a Value> {
    m.get(key).filter(|v| !v.is_null())
}

pub(crate) fn opt_str<'a>(
    m: &'a JsonMap,
    key: &str,
    path: &(impl fmt::Display + ?Sized),
) -> Result<Option<&'a str>, DecodeError> {
    match field(m, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(DecodeError::wrong_type(join(path, key), "a string")),
    }
}

pub(crate) fn req_str<'a>(
    m: &'a JsonMap,
    key: &str,
    path: &(impl fmt::Display + ?Sized),
) -> Result<&'a str, DecodeError> {
    opt_str(m, key, path)?.ok_or_else(|| DecodeError::missing(join(path, key)))
}

pub(crate) fn opt_u64(
    m: &JsonMap,
    key: &str,
    path: &(impl fmt::Display + ?Sized),
) -> Result<Option<u64>, DecodeError> {
    match field(m, key) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| DecodeError::wrong_type(join(path, key), "a non-negative integer")),
    }
}

pub(crate) fn opt_i64(
    m: &JsonMap,
    key: &str,
    path: &(impl fmt::Display + ?Sized),
) -> Result<Option<i64>, DecodeError> {
    match field(m, key) {
        None => Ok(None),
        Some(v) => v
            .as_i64()
            .map(Some)
            .ok_or_else(|| DecodeError::wrong_type(join(path, key), "an integer")),
    }
}

pub(crate) fn opt_f64(
    m: &JsonMap,
    key: &str,
    path: &(impl fmt::Display + ?Sized),
) -> Result<Option<f64>, DecodeError> {
    match field(m, key) {
        None => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| DecodeError::wrong_type(join(path, key), "a number")),
    }
}

pub(crate) fn opt_bool(
    m: &JsonMap,
    key: &str,
    path: &(impl fmt::Display + ?Sized),
) -> Result<Option<bool>, DecodeError> {
    match field(m, key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(DecodeError::wrong_type(join(path, key), "a boolean")),
    }
}
