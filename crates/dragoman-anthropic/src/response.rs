//! Anthropic non-streamed `Message` bodies ⇄ canonical `Response`.

use dragoman_model::{DecodeError, Dialect, Extension, Losses, Part, Response, StopReason};
use serde_json::{Map, Value, json};

use crate::request::{Target, at, decode_block, encode_part, obj, req_str};
use crate::{stop, usage};

const KNOWN: &[&str] = &[
    "id",
    "type",
    "role",
    "model",
    "content",
    "stop_reason",
    "stop_sequence",
    "stop_details",
    "usage",
];

/// Decodes an Anthropic Messages response body.
pub fn decode_response(body: &[u8], losses: &mut Losses) -> Result<Response, DecodeError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| DecodeError::json("$", &e))?;
    let m = obj(&v, "$")?;
    let content = match m.get("content") {
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, b)| decode_block(b, &at("content", i), losses))
            .collect::<Result<Vec<_>, _>>()?,
        None | Some(Value::Null) => Vec::new(),
        Some(_) => return Err(DecodeError::wrong_type("content", "an array")),
    };
    let has_calls = content.iter().any(|p| matches!(p, Part::ToolCall { .. }));
    let stop = stop::decode(
        m.get("stop_reason"),
        m.get("stop_sequence"),
        m.get("stop_details"),
    )
    .unwrap_or(StopReason::EndTurn)
    .reconcile(has_calls);
    usage::report_extras(m.get("usage"), "usage", losses);
    let extensions = m
        .iter()
        .filter(|(k, _)| !KNOWN.contains(&k.as_str()))
        .map(|(k, v)| Extension::new(Dialect::Anthropic, k.clone(), v.clone()))
        .collect();
    Ok(Response {
        id: req_str(m, "id", "")?,
        model: req_str(m, "model", "")?,
        content,
        stop,
        usage: usage::decode(m.get("usage")),
        extensions,
    })
}

/// Encodes a canonical response as an Anthropic Messages body.
pub fn encode_response(resp: &Response, losses: &mut Losses) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), json!(resp.id));
    out.insert("type".into(), json!("message"));
    out.insert("role".into(), json!("assistant"));
    out.insert("model".into(), json!(resp.model));
    let content: Vec<Value> = resp
        .content
        .iter()
        .enumerate()
        .filter_map(|(i, p)| encode_part(p, &at("content", i), Target::Response, losses))
        .collect();
    out.insert("content".into(), Value::Array(content));
    let has_calls = resp
        .content
        .iter()
        .any(|p| matches!(p, Part::ToolCall { .. }));
    let (reason, sequence, details) = stop::encode(&resp.stop.clone().reconcile(has_calls));
    out.insert("stop_reason".into(), json!(reason));
    out.insert("stop_sequence".into(), json!(sequence));
    if let Some(d) = details {
        out.insert("stop_details".into(), d);
    }
    out.insert("usage".into(), usage::encode(&resp.usage));
    for e in &resp.extensions {
        if e.dialect != Dialect::Anthropic {
            losses.dropped(
                format!("extensions.{}", e.key),
                format!("{} field has no Anthropic equivalent", e.dialect),
            );
        } else if !out.contains_key(&e.key) {
            out.insert(e.key.clone(), e.value.clone());
        }
    }
    Value::Object(out)
}
