//! The Amazon Bedrock Converse dialect (`/converse`, `/converse-stream`): pure translation
//! between Converse wire JSON / stream events and the canonical model, with no I/O. The binary
//! event-stream framing is `dragoman-eventstream`'s; the stream codecs here read and write the
//! `dragoman_sse::Event`s it produces (event name = `:event-type`, data = the JSON payload).
//!
//! Choices this crate makes where Bedrock and the canonical model do not line up:
//! - The model id lives in Bedrock's URL and streaming is chosen by the endpoint: the decoder
//!   leaves `model` empty and `stream` false. Responses and streams name neither the message
//!   nor the model: the id is made from the body's bytes (`msg_bdrk_<fnv64>`, stable for the
//!   same input; a stream hashes its `messageStart` payload) and `model` is left empty.
//! - Reasoning family: `Dialect::Bedrock.family()` is Anthropic. Bedrock's reasoning blocks are
//!   Claude's, and Anthropic signatures are valid across its API, Bedrock and Vertex, so a
//!   `reasoningText.signature` is an Anthropic signature seal and travels natively to an
//!   Anthropic upstream and back byte for byte; a signature-only block (empty text) is kept.
//!   `redactedContent` is base64 of Anthropic's `redacted_thinking.data`, so its seal holds the
//!   decoded data; a blob that does not re-encode to the same bytes (another vendor's binary
//!   state) stays a whole opaque block. Other families' state goes to a Bedrock client wrapped
//!   in `signature` (the `dgm1.` envelope) and is dropped, reported, towards Bedrock.
//! - `cachePoint` blocks become the `cache_control` of the block before them (system, message
//!   content, tools; `ttl` kept); one after a block that cannot hold a marker stays opaque.
//! - Tool results: user turns are split into `Tool` and `User` messages by runs; the encoder
//!   merges consecutive turns of one role back into one message. `status: "error"` ⇄
//!   `is_error`; a `json` result item becomes its JSON text (reported); a tool result with no
//!   content is written with an empty content list.
//! - Tools: `toolChoice` auto/any/tool ⇄ Auto/Required/Tool. `None` cannot be said: with no
//!   tool blocks in the history the whole `toolConfig` is left out, otherwise the tools stay
//!   (both reported). A history with tool blocks but no tools gets minimal `toolSpec`s for the
//!   names it calls, because Bedrock refuses it otherwise (reported). Server tools
//!   (`toolUse.type` other than `tool_use`), `systemTool`s and unknown blocks stay opaque.
//! - `additionalModelRequestFields`: `thinking` (enabled/adaptive/disabled, `budget_tokens`,
//!   `display`), `top_k`, `output_config.effort` and `tool_choice.disable_parallel_tool_use`
//!   are read into canonical fields; every other key (and `inferenceConfig.*`,
//!   `outputConfig.*` members and top-level fields without a canonical home) is an
//!   `Extension { dialect: Bedrock }` re-emitted in place; other dialects' extensions are
//!   reported as dropped. An effort without a budget is sent as that effort's budget.
//! - Temperatures above 1 are capped at 1 (reported); clamping OpenAI's 0–2 scale is the
//!   OpenAI decoder's business. `requestMetadata` ⇄ `metadata`. `seed`, `user` and the plain
//!   JSON mode have no Converse form (reported).
//! - Images only as bytes (`image/<format>`); URL images and documents cannot be sent
//!   (reported). A document's `name` ⇄ `title`, reduced to the characters Bedrock allows, or
//!   `Document <n>` when there is none.
//! - Stop reasons: `guardrail_intervened` and `content_filtered` are ContentFilter;
//!   `malformed_model_output`, `malformed_tool_use` and unknown values read as EndTurn. A
//!   response keeps the original value in a private extension so Bedrock-to-Bedrock is exact;
//!   a stream cannot carry it.
//! - Usage: `inputTokens` is the uncached input; cache reads/writes are their own buckets and
//!   `cacheDetails` is the 5m/1h write split; the encoder writes `totalTokens` as the sum.
//! - Streams: text and reasoning blocks open on their first delta (empty text deltas are
//!   skipped); the canonical `MessageDelta` waits for `metadata`, which carries the only usage.
//!   A stream that ends after `messageStop` without `metadata` is left open and the caller
//!   reports it cut short. The `p` padding key is ignored.

mod error;
mod request;
mod response;
mod stop;
mod stream;
mod usage;
mod validate;

#[cfg(test)]
mod tests;

pub use error::{
    decode_error, encode_error, error_kind_from_type, error_type_name, exception_of,
    stream_error_event,
};
pub use request::{decode_request, encode_request};
pub use response::{check_response, decode_response, decode_response_usage, encode_response};
pub use stream::{StreamDecoder, StreamEncoder};
pub use validate::{Validator, validate};

use dragoman_model::{DecodeError, JsonMap};
use serde_json::Value;

/// Extension key prefixes of the members that go back into these objects.
pub(crate) const AMRF: &str = "additionalModelRequestFields";
pub(crate) const INF: &str = "inferenceConfig";
pub(crate) const OUTCFG: &str = "outputConfig";
/// The stop reason a Bedrock upstream sent, when the canonical one would not say it again.
pub(crate) const STOP_EXT: &str = "x-dragoman-stop-reason";

/// Decodes a CountTokens body `{"input": {"converse": {messages, system, toolConfig, …}}}`.
/// The `invokeModel` form holds the vendor's own body and is the vendor dialect's to read.
pub fn decode_count_request(
    body: &[u8],
    losses: &mut dragoman_model::Losses,
) -> Result<dragoman_model::Request, DecodeError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| DecodeError::json("", &e))?;
    match v.get("input").and_then(|i| i.get("converse")) {
        Some(inner @ Value::Object(_)) => request::decode_request_value(inner, losses),
        _ => Err(DecodeError::missing("input.converse")),
    }
}

/// The answer to a token count: `{"inputTokens": n}`.
pub fn encode_token_count(n: u64) -> Value {
    serde_json::json!({ "inputTokens": n })
}

/// The extensions of the Bedrock dialect; other dialects' fields are reported as dropped
/// (codec-private markers of other dialects silently skipped).
pub(crate) fn own_extensions<'a>(
    extensions: &'a [dragoman_model::Extension],
    losses: &mut dragoman_model::Losses,
) -> Vec<&'a dragoman_model::Extension> {
    dragoman_model::own_extensions(
        dragoman_model::Dialect::Bedrock,
        "Bedrock",
        extensions,
        losses,
    )
}

/// A message id made from bytes: FNV-1a, so the same answer always gets the same id.
pub(crate) fn made_id(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("msg_bdrk_{h:016x}")
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
