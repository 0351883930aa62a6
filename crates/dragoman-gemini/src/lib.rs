//! The Google Gemini dialect (`generateContent`, `streamGenerateContent?alt=sse`): pure
//! translation between Gemini wire JSON / SSE and the canonical model, with no I/O. Gemini on
//! Vertex AI speaks the same bodies, so this crate serves both.
//!
//! Choices this crate makes where Gemini and the canonical model do not line up:
//! - The model and the stream flag live in Gemini's URL, not its body: the decoder leaves
//!   `model` empty and `stream` false, and the gateway fills both from the path.
//! - A `thoughtSignature` belongs to the part it arrives on (a `functionCall`, a text part or an
//!   empty trailing text part). It decodes into a `Part::Reasoning` with an empty text and a
//!   Google seal placed just before that part, and the encoder puts it back on the part that
//!   follows (or on an empty text part when nothing follows), byte for byte. Thought summaries
//!   (`thought: true`) are reasoning text.
//! - Gemini's function calls usually carry no `id`. The decoder makes one that is stable for the
//!   same input (`call_<response>_<n>` in responses, `call_<turn>_<n>` in histories) and pairs
//!   each `functionResponse` without an id with the oldest unanswered call of its name, as
//!   Gemini itself does; the encoder writes the ids it was given, and finds each result's
//!   function name from the call it answers (Gemini requires it).
//! - Tool results: a `response` object holding a single string `output` or `result` becomes
//!   that text (an `error` string marks an error result); any other object stays its JSON text.
//!   The encoder writes `{"output": text}` (`{"error": text}` for errors), or the object itself
//!   when the text is a JSON object.
//! - Request fields the canonical model cannot hold stay as `Extension { dialect: Gemini }`
//!   under their wire name (the top-level key, or `generationConfig.<key>`); parts and tools it
//!   does not know (`executableCode`, `googleSearch`, …) stay whole as opaque values.

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
pub use request::{decode_request, encode_request};
pub use response::{
    check_response, decode_response, decode_response_usage, encode_response, response_summary,
};
pub use stream::{StreamDecoder, StreamEncoder};
pub use validate::{Validator, validate};

/// Decodes a `:countTokens` body: `{contents, …}` or `{generateContentRequest: {…}}`.
pub fn decode_count_request(
    body: &[u8],
    losses: &mut dragoman_model::Losses,
) -> Result<dragoman_model::Request, DecodeError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| DecodeError::json("", &e))?;
    match v.get("generateContentRequest") {
        Some(inner @ Value::Object(_)) => request::decode_request_value(inner, losses),
        _ => request::decode_request_value(&v, losses),
    }
}

/// The answer to a token count: `{"totalTokens": n}`.
pub fn encode_token_count(n: u64) -> Value {
    serde_json::json!({ "totalTokens": n })
}

use dragoman_model::{DecodeError, JsonMap};
use serde_json::Value;

/// The prefix of extensions that came from `generationConfig`, so the encoder puts them back
/// there.
pub(crate) const GEN_PREFIX: &str = "generationConfig.";

/// The extensions of the Gemini dialect; other dialects' fields are reported as dropped
/// (codec-private markers silently skipped).
pub(crate) fn own_extensions<'a>(
    extensions: &'a [dragoman_model::Extension],
    losses: &mut dragoman_model::Losses,
) -> Vec<&'a dragoman_model::Extension> {
    dragoman_model::own_extensions(
        dragoman_model::Dialect::Gemini,
        "Gemini",
        extensions,
        losses,
    )
}

/// Reads a field by its JSON name or its proto name: the REST API accepts both
/// (`systemInstruction` and `system_instruction`), and clients send either.
pub(crate) fn get<'a>(m: &'a JsonMap, camel: &str, snake: &str) -> Option<&'a Value> {
    m.get(camel)
        .or_else(|| m.get(snake))
        .filter(|v| !v.is_null())
}

pub(crate) fn as_obj<'a>(v: &'a Value, path: &str) -> Result<&'a JsonMap, DecodeError> {
    v.as_object()
        .ok_or_else(|| DecodeError::wrong_type(path, "an object"))
}

pub(crate) fn as_arr<'a>(v: &'a Value, path: &str) -> Result<&'a Vec<Value>, DecodeError> {
    v.as_array()
        .ok_or_else(|| DecodeError::wrong_type(path, "an array"))
}

pub(crate) fn as_str<'a>(v: &'a Value, path: &str) -> Result<&'a str, DecodeError> {
    v.as_str()
        .ok_or_else(|| DecodeError::wrong_type(path, "a string"))
}

/// Keeps only the characters an Anthropic or OpenAI tool-call id may hold, so an id made from a
/// Gemini `responseId` is valid in every dialect.
pub(crate) fn id_safe(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect()
}

/// The id the decoders give the `n`th function call of a response or turn that named none.
pub(crate) fn made_call_id(scope: &str, n: usize) -> String {
    format!("call_{}_{n}", id_safe(scope))
}
