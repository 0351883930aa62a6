//! Anthropic non-streamed `Message` bodies ⇄ canonical `Response`.

use dragoman_model::{DecodeError, Dialect, Extension, Losses, Part, Response, StopReason};
use serde_json::{Map, Value, json};

use crate::request::{
    PART_FIELDS_KEY, Path, ROOT, Target, at, decode_block_extra, encode_part, obj, req_str,
};
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
    let m = obj(&v, &Path::Root("$"))?;
    let mut part_fields = Map::new();
    let content_root = Path::Root("content");
    let content = match m.get("content") {
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let (part, extra) = decode_block_extra(b, &at(&content_root, i), losses)?;
                if !extra.is_empty() {
                    part_fields.insert(i.to_string(), Value::Object(extra));
                }
                Ok(part)
            })
            .collect::<Result<Vec<_>, DecodeError>>()?,
        None | Some(Value::Null) => Vec::new(),
        Some(_) => return Err(DecodeError::wrong_type("content", "an array")),
    };
    let has_calls = content.iter().any(|p| matches!(p, Part::ToolCall { .. }));
    let stop = stop::decode(
        m.get("stop_reason"),
        m.get("stop_sequence"),
        m.get("stop_details"),
    )
    // Anthropic's own stop reason is authoritative: after programmatic tool calling a finished
    // turn holds already-answered tool_use blocks and still says end_turn.
    .unwrap_or_else(|| StopReason::EndTurn.reconcile(has_calls));
    usage::report_extras(m.get("usage"), "usage", losses);
    let mut extensions: Vec<Extension> = m
        .iter()
        .filter(|(k, _)| !KNOWN.contains(&k.as_str()))
        .map(|(k, v)| Extension::new(Dialect::Anthropic, k.clone(), v.clone()))
        .collect();
    if !part_fields.is_empty() {
        extensions.push(Extension::new(
            Dialect::Anthropic,
            PART_FIELDS_KEY,
            Value::Object(part_fields),
        ));
    }
    Ok(Response {
        id: req_str(m, "id", &ROOT)?,
        model: req_str(m, "model", &ROOT)?,
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
    let part_fields = resp.extensions.iter().find_map(|e| {
        (e.dialect == Dialect::Anthropic && e.key == PART_FIELDS_KEY)
            .then(|| e.value.as_object())
            .flatten()
    });
    let content_root = Path::Root("content");
    let content: Vec<Value> = resp
        .content
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            let extra = part_fields.and_then(|f| f.get(&i.to_string()));
            encode_part(p, &at(&content_root, i), Target::Response, extra, losses)
        })
        .collect();
    out.insert("content".into(), Value::Array(content));
    let (reason, sequence, details) = stop::encode(&resp.stop);
    out.insert("stop_reason".into(), json!(reason));
    out.insert("stop_sequence".into(), json!(sequence));
    if let Some(d) = details {
        out.insert("stop_details".into(), d);
    }
    out.insert("usage".into(), usage::encode(&resp.usage));
    for e in &resp.extensions {
        if e.dialect != Dialect::Anthropic && e.is_private() {
            continue;
        }
        if e.dialect != Dialect::Anthropic {
            losses.dropped(
                format!("extensions.{}", e.key),
                format!("{} field has no Anthropic equivalent", e.dialect),
            );
        } else if e.key != PART_FIELDS_KEY && !out.contains_key(&e.key) {
            out.insert(e.key.clone(), e.value.clone());
        }
    }
    Value::Object(out)
}

/// The usage of a whole response, read without decoding the rest: all a tap needs when the
/// response passes through untouched. Agrees with `decode_response(..).usage`.
pub fn decode_response_usage(body: &[u8]) -> Option<dragoman_model::Usage> {
    if let Some(counts) = dragoman_model::read_usage_member::<crate::usage::Counts>(body) {
        return counts.map(|c| c.usage());
    }
    #[derive(serde::Deserialize)]
    struct Envelope {
        usage: Option<serde_json::Value>,
    }
    let e: Envelope = serde_json::from_slice(body).ok()?;
    e.usage
        .as_ref()
        .filter(|u| u.is_object())
        .map(|u| crate::usage::decode(Some(u)))
}

/// Whether a whole body with a success status is a message, and its usage: an error envelope
/// (`"type": "error"`) keeps its meaning, anything else is malformed. One pass over the body,
/// no tree.
pub fn check_response(body: &[u8]) -> Result<dragoman_model::Usage, dragoman_model::ResponseFault> {
    use dragoman_model::{Lenient, ResponseFault};
    #[derive(serde::Deserialize)]
    struct Head {
        #[serde(rename = "type", default)]
        ty: Option<String>,
        #[serde(default)]
        usage: Lenient<crate::usage::Counts>,
    }
    let head: Head = dragoman_model::read_head(body)?;
    match head.ty.as_deref() {
        Some("message") => Ok(head.usage.0.map(|c| c.usage()).unwrap_or_default()),
        Some("error") => Err(ResponseFault::Failed(crate::decode_error(None, body))),
        other => Err(ResponseFault::Malformed(format!(
            "not an Anthropic message (type {})",
            other.unwrap_or("missing")
        ))),
    }
}

/// A message's id, model and stop reason, for a trace span: one pass, no tree.
pub fn response_summary(body: &[u8]) -> Option<dragoman_model::ResponseSummary> {
    #[derive(serde::Deserialize)]
    struct Head {
        id: Option<String>,
        model: Option<String>,
        stop_reason: Option<Value>,
        stop_sequence: Option<Value>,
        stop_details: Option<Value>,
    }
    let h: Head = serde_json::from_slice(body).ok()?;
    Some(dragoman_model::ResponseSummary {
        stop: crate::stop::decode(
            h.stop_reason.as_ref(),
            h.stop_sequence.as_ref(),
            h.stop_details.as_ref(),
        ),
        id: h.id,
        model: h.model,
    })
}
