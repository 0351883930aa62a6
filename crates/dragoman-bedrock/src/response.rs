//! Converse response ⇄ canonical `Response`, and the pass-through checks.

use dragoman_model::{
    DecodeError, Dialect, Extension, Lenient, Losses, Part, Response, ResponseFault, StopReason,
    Usage,
};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Map, Value, json};

use crate::request::{Target, decode_block, encode_parts};
use crate::{STOP_EXT, as_arr, as_obj, made_id, stop, usage};

/// Response fields read into canonical fields; the others stay as extensions.
const KNOWN_TOP: &[&str] = &["output", "stopReason", "usage"];

/// The matched stop sequence, where Claude reports it in `additionalModelResponseFields`
/// (`/stop_sequence` asked for by path, or the `delta.stop_sequence` stream form).
pub(crate) fn matched_stop(amrf: Option<&Value>) -> Option<String> {
    let a = amrf?;
    a.get("stop_sequence")
        .or_else(|| a.get("delta").and_then(|d| d.get("stop_sequence")))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// Decodes a whole response body. Bedrock names neither the response nor the model: the id is
/// made from the body (stable for the same bytes) and `model` left empty.
pub fn decode_response(body: &[u8], losses: &mut Losses) -> Result<Response, DecodeError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| DecodeError::json("", &e))?;
    let m = as_obj(&v, "")?;
    let Some(msg) = m.get("output").and_then(|o| o.get("message")) else {
        return Err(DecodeError::missing("output.message"));
    };
    let mut content = Vec::new();
    if let Some(c) = msg.get("content") {
        for (i, b) in as_arr(c, "output.message.content")?.iter().enumerate() {
            decode_block(
                b,
                &format!("output.message.content[{i}]"),
                &mut content,
                losses,
            )?;
        }
    }
    let raw_stop = m
        .get("stopReason")
        .and_then(Value::as_str)
        .unwrap_or("end_turn");
    let has_calls = content.iter().any(|p| matches!(p, Part::ToolCall { .. }));
    let stop = stop::decode(
        raw_stop,
        matched_stop(m.get("additionalModelResponseFields")),
    )
    .reconcile(has_calls);
    let mut extensions = Vec::new();
    if stop::encode(&stop, None, "", &mut Losses::new()) != raw_stop {
        extensions.push(Extension::new(Dialect::Bedrock, STOP_EXT, json!(raw_stop)));
    }
    for (k, val) in m {
        if !KNOWN_TOP.contains(&k.as_str()) && !val.is_null() {
            extensions.push(Extension::new(Dialect::Bedrock, k.clone(), val.clone()));
        }
    }
    Ok(Response {
        id: made_id(body),
        model: String::new(),
        content,
        stop,
        usage: m.get("usage").map(usage::decode).unwrap_or_default(),
        extensions,
    })
}

/// Encodes a canonical response as a Converse body. Bedrock's required `metrics` is written as
/// a zero latency unless a Bedrock upstream's own is at hand.
pub fn encode_response(resp: &Response, losses: &mut Losses) -> Value {
    let mut docs = 0;
    let content = encode_parts(&resp.content, "content", Target::Client, &mut docs, losses);
    let mut out = Map::new();
    out.insert(
        "output".into(),
        json!({"message": {"role": "assistant", "content": content}}),
    );
    let own = crate::own_extensions(&resp.extensions, losses);
    let original = own
        .iter()
        .find(|e| e.key == STOP_EXT)
        .and_then(|e| e.value.as_str());
    out.insert(
        "stopReason".into(),
        json!(stop::encode(&resp.stop, original, "stop", losses)),
    );
    out.insert("usage".into(), usage::encode(&resp.usage));
    for e in own.iter().filter(|e| e.key != STOP_EXT) {
        out.entry(e.key.clone()).or_insert_with(|| e.value.clone());
    }
    if let StopReason::StopSequence { matched: Some(s) } = &resp.stop {
        let a = out
            .entry("additionalModelResponseFields")
            .or_insert_with(|| json!({}));
        if let Value::Object(a) = a {
            a.entry("stop_sequence").or_insert_with(|| json!(s));
        }
    }
    out.entry("metrics")
        .or_insert_with(|| json!({"latencyMs": 0}));
    Value::Object(out)
}

/// The usage of a whole response, read without decoding the rest. Agrees with
/// `decode_response(..).usage`.
pub fn decode_response_usage(body: &[u8]) -> Option<Usage> {
    #[derive(Deserialize)]
    struct Envelope {
        #[serde(default)]
        usage: Lenient<usage::Counts>,
    }
    let e: Envelope = serde_json::from_slice(body).ok()?;
    e.usage.0.map(|c| c.usage())
}

/// Whether a whole body with a success status is a Converse response (it has `output`), and
/// its usage: an error body keeps its meaning, anything else is malformed.
pub fn check_response(body: &[u8]) -> Result<Usage, ResponseFault> {
    #[derive(Deserialize)]
    struct Head {
        #[serde(default)]
        output: Option<IgnoredAny>,
        #[serde(default)]
        message: Option<IgnoredAny>,
        #[serde(default, rename = "Message")]
        message_upper: Option<IgnoredAny>,
        #[serde(default)]
        usage: Lenient<usage::Counts>,
    }
    let head: Head = dragoman_model::read_head(body)?;
    if head.output.is_none() {
        if head.message.is_some() || head.message_upper.is_some() {
            return Err(ResponseFault::Failed(crate::decode_error(None, body)));
        }
        return Err(ResponseFault::Malformed(
            "not a Converse response (no output)".into(),
        ));
    }
    Ok(head.usage.0.map(|c| c.usage()).unwrap_or_default())
}
