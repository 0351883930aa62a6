//! Non-streamed response objects ⇄ canonical `Response`, and the output-item builders the
//! stream encoder shares so that streamed `output_item.done` items and whole responses agree.

use dragoman_model::{
    DecodeError, Dialect, Extension, Family, Losses, Part, ReasoningSeal, Response, ToolKind,
};
use serde_json::{Map, Value, json};

use crate::request::{decode_message, decode_reasoning_item, part_name};
use crate::stop::{decode_stop, encode_stop};
use crate::usage::{decode_usage, encode_usage};
use crate::{Path, get_str, id_base, response_id};

/// Top-level fields this codec reads itself; everything else (the request echo) is kept.
const CORE: &[&str] = &[
    "id",
    "object",
    "model",
    "output",
    "usage",
    "status",
    "incomplete_details",
];

pub fn decode_response(body: &[u8], losses: &mut Losses) -> Result<Response, DecodeError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| DecodeError::json("body", &e))?;
    let Value::Object(obj) = v else {
        return Err(DecodeError::wrong_type("body", "a JSON object"));
    };
    let content = match obj.get("output") {
        Some(Value::Array(items)) => decode_output(items, Path::Root("output"), losses)?,
        None | Some(Value::Null) => Vec::new(),
        Some(_) => return Err(DecodeError::wrong_type("output", "array")),
    };
    let field = |k: &str| obj.get(k).and_then(Value::as_str);
    let status = field("status");
    let has_calls = content.iter().any(|p| matches!(p, Part::ToolCall { .. }));
    let has_refusal = content.iter().any(|p| matches!(p, Part::Refusal { .. }));
    let stop = decode_stop(
        status,
        obj.get("incomplete_details"),
        has_calls,
        has_refusal,
    );
    // A status the stop reason cannot express (failed, cancelled, in_progress).
    let keep_status = !matches!(status, Some("completed" | "incomplete") | None);
    let id = field("id").unwrap_or_default().to_owned();
    let model = field("model").unwrap_or_default().to_owned();
    let usage = decode_usage(obj.get("usage"));
    let mut extensions = Vec::new();
    // Consumed, so the kept fields (the request echo) move instead of being copied.
    for (k, val) in obj {
        let keep = match k.as_str() {
            "status" => keep_status,
            "error" => !val.is_null(),
            k => !CORE.contains(&k),
        };
        if keep {
            extensions.push(Extension::new(Dialect::Responses, k, val));
        }
    }
    Ok(Response {
        id,
        model,
        content,
        stop,
        usage,
        extensions,
    })
}

/// Output items to canonical parts: one item can give several parts (a message with several
/// content parts) and the parts of all items form one assistant turn.
pub(crate) fn decode_output(
    items: &[Value],
    path: Path<'_>,
    losses: &mut Losses,
) -> Result<Vec<Part>, DecodeError> {
    let mut parts = Vec::new();
    for (i, item) in items.iter().enumerate() {
        parts.extend(decode_output_item(item, path.index(i), losses)?);
    }
    Ok(parts)
}

pub(crate) fn decode_output_item(
    item: &Value,
    path: Path<'_>,
    losses: &mut Losses,
) -> Result<Vec<Part>, DecodeError> {
    let opaque = || Part::Opaque {
        dialect: Dialect::Responses,
        value: item.clone(),
    };
    Ok(match get_str(item, "type") {
        Some("message") if get_str(item, "role") == Some("assistant") => {
            decode_message(item, path, losses)?.1
        }
        Some(ty @ ("function_call" | "custom_tool_call")) => {
            let custom = ty == "custom_tool_call";
            let arguments = item
                .get(if custom { "input" } else { "arguments" })
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            for k in ["namespace", "caller"] {
                if item.get(k).is_some_and(|v| !v.is_null()) {
                    losses.dropped(format!("{path}.{k}"), "no canonical place for this field");
                }
            }
            vec![Part::ToolCall {
                id: get_str(item, "call_id")
                    .or_else(|| get_str(item, "id"))
                    .unwrap_or_default()
                    .to_owned(),
                name: get_str(item, "name").unwrap_or_default().to_owned(),
                arguments,
                kind: if custom {
                    ToolKind::Custom
                } else {
                    ToolKind::Function
                },
            }]
        }
        Some("reasoning") => vec![decode_reasoning_item(item, path)?],
        _ => vec![opaque()],
    })
}

pub fn encode_response(resp: &Response, losses: &mut Losses) -> Value {
    let id = response_id(&resp.id);
    let has_refusal = resp
        .content
        .iter()
        .any(|p| matches!(p, Part::Refusal { .. }));
    let (status, incomplete) = encode_stop(&resp.stop, has_refusal, losses);
    let mut out = Map::new();
    out.insert("id".into(), json!(id));
    out.insert("object".into(), json!("response"));
    out.insert("created_at".into(), json!(0));
    out.insert("status".into(), json!(status));
    out.insert("model".into(), json!(resp.model));
    out.insert(
        "output".into(),
        Value::Array(encode_output(&resp.content, id_base(&id), losses)),
    );
    out.insert("usage".into(), encode_usage(&resp.usage));
    out.insert("error".into(), Value::Null);
    out.insert("incomplete_details".into(), incomplete);
    for e in &resp.extensions {
        if e.dialect != Dialect::Responses && e.is_private() {
            continue;
        }
        if e.dialect == Dialect::Responses {
            out.insert(e.key.clone(), e.value.clone());
        } else {
            losses.dropped(
                format!("extensions.{}", e.key),
                format!("{} response field has no Responses equivalent", e.dialect),
            );
        }
    }
    Value::Object(out)
}

/// Canonical parts to output items. Consecutive text and refusal parts share a message item.
pub(crate) fn encode_output(parts: &[Part], base: &str, losses: &mut Losses) -> Vec<Value> {
    let mut items: Vec<Value> = Vec::new();
    let mut group: Vec<Value> = Vec::new();
    let flush = |group: &mut Vec<Value>, items: &mut Vec<Value>| {
        if !group.is_empty() {
            let id = format!("msg_{base}_{}", items.len());
            items.push(message_item(&id, "completed", std::mem::take(group)));
        }
    };
    for (i, p) in parts.iter().enumerate() {
        let path = format!("content[{i}]");
        match p {
            Part::Text {
                text, citations, ..
            } => {
                group.push(output_text_part(
                    text,
                    citations_value(citations, &path, losses),
                ));
            }
            Part::Refusal { text } => group.push(json!({"type": "refusal", "refusal": text})),
            Part::ToolCall {
                id,
                name,
                arguments,
                kind,
            } => {
                flush(&mut group, &mut items);
                let item_id = format!("{}_{base}_{}", call_prefix(*kind), items.len());
                items.push(call_item(*kind, &item_id, id, name, arguments, "completed"));
            }
            Part::Reasoning { text, seal } => {
                flush(&mut group, &mut items);
                let item_id = reasoning_item_id(seal.as_ref(), base, items.len());
                items.push(reasoning_item(&item_id, text, seal.as_ref()));
            }
            Part::Opaque {
                dialect: Dialect::Responses,
                value,
            } => {
                flush(&mut group, &mut items);
                items.push(value.clone());
            }
            other => losses.dropped(
                path,
                format!("{} part has no Responses output item", part_name(other)),
            ),
        }
    }
    flush(&mut group, &mut items);
    items
}

pub(crate) fn citations_value(
    citations: &Option<(Dialect, Value)>,
    path: &str,
    losses: &mut Losses,
) -> Value {
    match citations {
        Some((Dialect::Responses, a @ Value::Array(_))) => a.clone(),
        Some(_) => {
            losses.dropped(format!("{path}.citations"), "citations of another dialect");
            json!([])
        }
        None => json!([]),
    }
}

pub(crate) fn output_text_part(text: &str, annotations: Value) -> Value {
    json!({"type": "output_text", "text": text, "annotations": annotations, "logprobs": []})
}

pub(crate) fn message_item(id: &str, status: &str, content: Vec<Value>) -> Value {
    json!({"type": "message", "id": id, "status": status, "role": "assistant", "content": content})
}

pub(crate) fn call_prefix(kind: ToolKind) -> &'static str {
    match kind {
        ToolKind::Function => "fc",
        ToolKind::Custom => "ctc",
    }
}

/// A function or custom tool call item. `call_id` is the canonical id, byte for byte: it is
/// what the client's tool output will reference.
pub(crate) fn call_item(
    kind: ToolKind,
    item_id: &str,
    call_id: &str,
    name: &str,
    arguments: &str,
    status: &str,
) -> Value {
    match kind {
        ToolKind::Function => json!({
            "type": "function_call", "id": item_id, "call_id": call_id, "name": name,
            "arguments": arguments, "status": status,
        }),
        ToolKind::Custom => json!({
            "type": "custom_tool_call", "id": item_id, "call_id": call_id, "name": name,
            "input": arguments, "status": status,
        }),
    }
}

/// OpenAI reasoning keeps its own item id (it travels with the encrypted content); anything
/// else gets a synthesized one.
pub(crate) fn reasoning_item_id(seal: Option<&ReasoningSeal>, base: &str, index: usize) -> String {
    match seal {
        Some(ReasoningSeal {
            family: Family::OpenAi,
            item_id: Some(id),
            ..
        }) => id.clone(),
        _ => format!("rs_{base}_{index}"),
    }
}

/// A reasoning item. Any seal goes in `encrypted_content`: OpenAI's own as is, another family's
/// (an Anthropic signature, a redacted block) wrapped in the envelope, so a client replaying the
/// item hands it back to us intact.
pub(crate) fn reasoning_item(id: &str, text: &str, seal: Option<&ReasoningSeal>) -> Value {
    let summary = if text.is_empty() {
        json!([])
    } else {
        json!([{"type": "summary_text", "text": text}])
    };
    let mut m = Map::new();
    m.insert("type".into(), json!("reasoning"));
    m.insert("id".into(), json!(id));
    m.insert("summary".into(), summary);
    if let Some(s) = seal {
        m.insert(
            "encrypted_content".into(),
            json!(s.carry_in(Family::OpenAi)),
        );
    }
    Value::Object(m)
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
        .map(|u| crate::usage::decode_usage(Some(u)))
}

/// Whether a whole body with a success status is a response that produced something, and its
/// usage. `status: "failed"` and a bare error envelope are failures with the upstream's error;
/// a completed response with no output at all, or anything that is not a response, is
/// malformed (an empty success would be fabricated). One pass over the body, no tree.
pub fn check_response(body: &[u8]) -> Result<dragoman_model::Usage, dragoman_model::ResponseFault> {
    use dragoman_model::{ErrorBody, ErrorKind, Lenient, ResponseFault};
    use serde::de::IgnoredAny;
    #[derive(serde::Deserialize)]
    struct Head {
        #[serde(default)]
        object: Option<String>,
        #[serde(default)]
        status: Option<String>,
        #[serde(default)]
        output: Option<Vec<IgnoredAny>>,
        #[serde(default)]
        error: Lenient<IgnoredAny>,
        #[serde(default)]
        usage: Lenient<crate::usage::Counts>,
    }
    let head: Head = dragoman_model::read_head(body)?;
    let failed = || {
        let mut e = crate::decode_error(None, body);
        if head.error.0.is_none() {
            e = ErrorBody::new(ErrorKind::Server, "the upstream response failed");
        }
        ResponseFault::Failed(e)
    };
    if head.status.as_deref() == Some("failed") {
        return Err(failed());
    }
    let Some(output) = head.output else {
        if head.error.0.is_some() {
            return Err(failed());
        }
        return Err(ResponseFault::Malformed(format!(
            "not a Responses response (object {}, no output)",
            head.object.as_deref().unwrap_or("missing")
        )));
    };
    if output.is_empty() && matches!(head.status.as_deref(), None | Some("completed")) {
        return Err(ResponseFault::Malformed(
            "the upstream response completed with no output".into(),
        ));
    }
    Ok(head.usage.0.map(|c| c.usage()).unwrap_or_default())
}

/// A response's id, model and stop reason (from its status and output), for a trace span: one
/// pass, no tree.
pub fn response_summary(body: &[u8]) -> Option<dragoman_model::ResponseSummary> {
    #[derive(serde::Deserialize)]
    struct Head {
        id: Option<String>,
        model: Option<String>,
        status: Option<String>,
        incomplete_details: Option<Value>,
        #[serde(default)]
        output: Vec<Item>,
    }
    #[derive(serde::Deserialize)]
    struct Item {
        #[serde(rename = "type")]
        ty: Option<String>,
        #[serde(default)]
        content: Option<Vec<Content>>,
    }
    #[derive(serde::Deserialize)]
    struct Content {
        #[serde(rename = "type")]
        ty: Option<String>,
    }
    let h: Head = serde_json::from_slice(body).ok()?;
    let calls = h
        .output
        .iter()
        .any(|i| matches!(i.ty.as_deref(), Some("function_call" | "custom_tool_call")));
    let refusal = h.output.iter().any(|i| {
        i.content
            .iter()
            .flatten()
            .any(|c| c.ty.as_deref() == Some("refusal"))
    });
    Some(dragoman_model::ResponseSummary {
        stop: Some(decode_stop(
            h.status.as_deref(),
            h.incomplete_details.as_ref(),
            calls,
            refusal,
        )),
        id: h.id,
        model: h.model,
    })
}
