//! The Anthropic Messages dialect: request, response, stream and error codecs between
//! Anthropic's wire format and dragoman's canonical model. Pure translation: no I/O, no async.
//!
//! Policies a reader would otherwise have to reverse-engineer:
//! - `role: "system"` / `"developer"` messages are accepted in `messages` (Claude Code sends
//!   them). Leading ones mean the same as the top-level `system` and are folded into it; later
//!   ones stay `Role::System` / `Role::Developer` messages and are encoded in place as
//!   `role: "system"`, because moving them would change the prompt prefix (and its cache).
//! - `ReasoningConfig { enabled: Some(true), effort, budget_tokens: None }` (an OpenAI-style
//!   "reason at this effort") becomes `thinking.enabled` with a budget; `enabled: None` with an
//!   effort is Anthropic's own `output_config.effort` knob and is sent as that.
//! - Client-tool, message and block fields the canonical model has no place for travel in the
//!   Anthropic extensions [`TOOL_FIELDS_KEY`], [`MESSAGE_FIELDS_KEY`] and [`PART_FIELDS_KEY`],
//!   so Anthropic-to-Anthropic traffic keeps them; other dialects report them dropped. Streams
//!   have no such place: there such fields are dropped.
//! - Anthropic's stop reason is taken as given; only a stream without one is reconciled with
//!   its content.

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
pub use request::{
    MESSAGE_FIELDS_KEY, PART_FIELDS_KEY, TOOL_FIELDS_KEY, decode_request, default_max_tokens,
    encode_request,
};
pub use response::{
    check_response, decode_response, decode_response_usage, encode_response, response_summary,
};
pub use stream::{StreamDecoder, StreamEncoder};
pub use validate::{Validator, validate};

/// Decodes a `/v1/messages/count_tokens` body: a Messages request without `max_tokens`.
pub fn decode_count_request(
    body: &[u8],
    losses: &mut dragoman_model::Losses,
) -> Result<dragoman_model::Request, dragoman_model::DecodeError> {
    let mut v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| dragoman_model::DecodeError::json("", &e))?;
    if let Some(o) = v.as_object_mut() {
        o.entry("max_tokens").or_insert(serde_json::json!(1));
    }
    let mut req = decode_request(&serde_json::to_vec(&v).unwrap_or_default(), losses)?;
    req.max_tokens = None;
    Ok(req)
}

/// The answer to a token count: `{"input_tokens": n}`.
pub fn encode_token_count(n: u64) -> serde_json::Value {
    serde_json::json!({ "input_tokens": n })
}
