//! Compaction of a Responses conversation on any upstream (Codex's remote compaction): the
//! gateway asks the request's deployment for a handoff summary and answers with one
//! `compaction` item that holds it; on later turns each such item becomes the user message it
//! stands for, before the request is routed anywhere.
//!
//! Two requests compact: `POST /v1/responses/compact` (answered with a `response.compaction`
//! object: the conversation's user messages, then the compaction item), and a `/v1/responses`
//! call whose last input item is `compaction_trigger` (answered with a response whose only
//! output is the compaction item, streamed when the client asked for a stream). Both go
//! through the gateway's own path (`proxy::handle`) as one ordinary non-streamed Responses
//! call, so keys, limits, routing, retries, fallbacks and the usage record are the same as for
//! any call.
//!
//! The gateway compacts for every upstream, OpenAI's included: a conversation compacted this
//! way can fall back to, or later be routed to, a deployment of another provider, which an
//! item sealed by OpenAI would forbid. The item's `encrypted_content` is the summary, encoded
//! (`dragoman-compaction-v1:` and base64url), not encrypted: the client holds the whole
//! conversation already. A compaction item sealed by OpenAI is sent only to a Responses
//! deployment; any other refuses it (`hub::unresolvable_items`), never drops it.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use dragoman_model::{Dialect, ErrorKind};
use serde_json::{Map, Value, json};

use crate::Gateway;
use crate::errors::render;
use crate::proxy::{self, Endpoint};
use crate::responses_api::fail;

/// What starts the `encrypted_content` of a compaction item this gateway made.
const SEAL: &str = "dragoman-compaction-v1:";

/// The request appended to the conversation to ask for its summary.
const ASK: &str = "Context checkpoint: this conversation is about to be compacted, and the model that continues it will see only what you write now. Write a handoff summary for it: the user's goal and constraints, what has been done and decided (files, commands, results, errors), the current state, and what remains to do, with anything needed to continue without the earlier messages. Reply with the summary only.";

/// What a compacted conversation's summary is introduced by on later turns.
const PREFACE: &str = "The earlier part of this conversation was compacted. Its summary:\n\n";

/// The bound on the summary call's answer read back from the gateway's own path.
const MAX_ANSWER: usize = 64 << 20;

fn seal(summary: &str) -> String {
    format!("{SEAL}{}", URL_SAFE_NO_PAD.encode(summary))
}

fn unseal(content: &str) -> Option<String> {
    let b = URL_SAFE_NO_PAD.decode(content.strip_prefix(SEAL)?).ok()?;
    String::from_utf8(b).ok()
}

fn summary_message(summary: &str) -> Value {
    json!({
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": format!("{PREFACE}{summary}")}],
    })
}

/// Replaces each compaction item this gateway made with the user message it stands for;
/// whether any was replaced.
fn unseal_items(items: &mut [Value]) -> bool {
    let mut any = false;
    for item in items.iter_mut() {
        if item["type"] != "compaction" {
            continue;
        }
        if let Some(summary) = item["encrypted_content"].as_str().and_then(unseal) {
            *item = summary_message(&summary);
            any = true;
        }
    }
    any
}

/// A Responses body with this gateway's compaction items replaced by their messages; `None`
/// when it holds none (decided by a byte search, without parsing, in the usual case).
pub fn unseal_body(body: &[u8]) -> Option<Bytes> {
    memchr::memmem::find(body, SEAL.as_bytes())?;
    let Ok(Value::Object(mut req)) = serde_json::from_slice::<Value>(body) else {
        return None;
    };
    let Some(Value::Array(items)) = req.get_mut("input") else {
        return None;
    };
    if !unseal_items(items) {
        return None;
    }
    serde_json::to_vec(&Value::Object(req))
        .ok()
        .map(Bytes::from)
}

/// Whether a Responses body asks to be compacted: its last input item is `compaction_trigger`.
pub fn triggered(body: &[u8]) -> bool {
    if memchr::memmem::find(body, b"compaction_trigger").is_none() {
        return false;
    }
    serde_json::from_slice::<Value>(body).is_ok_and(|v| {
        v["input"]
            .as_array()
            .and_then(|a| a.last())
            .is_some_and(|i| i["type"] == "compaction_trigger")
    })
}

/// A gateway error before any answer, in the Responses dialect.
fn refused(e: &crate::errors::GatewayError) -> Box<Response> {
    Box::new(render(
        Dialect::Responses,
        &e.body,
        e.status,
        &proxy::new_request_id(),
    ))
}

/// An input item as text a summariser reads: tool calls and their outputs become plain
/// messages (so the summary call needs no tool definitions on any provider), reasoning is left
/// out (sealed reasoning cannot cross providers, and the summary is of what was done).
fn readable(item: &Value) -> Option<Value> {
    let kind = item["type"].as_str().unwrap_or("message");
    let text = |role: &str, text: String| {
        let part = if role == "assistant" {
            "output_text"
        } else {
            "input_text"
        };
        json!({"type": "message", "role": role, "content": [{"type": part, "text": text}]})
    };
    let as_text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match kind {
        "message" => {
            let mut m = item.clone();
            if let Some(o) = m.as_object_mut() {
                // Output-side fields some upstreams refuse in input.
                o.remove("id");
                o.remove("status");
            }
            Some(m)
        }
        "reasoning" | "compaction_trigger" | "item_reference" => None,
        "function_call" | "custom_tool_call" => Some(text(
            "assistant",
            format!(
                "[called tool `{}` with {}]",
                item["name"].as_str().unwrap_or("?"),
                as_text(
                    item.get("arguments")
                        .or_else(|| item.get("input"))
                        .unwrap_or(&Value::Null)
                )
            ),
        )),
        "function_call_output" | "custom_tool_call_output" => Some(text(
            "user",
            format!(
                "[tool output for call {}]\n{}",
                item["call_id"].as_str().unwrap_or("?"),
                as_text(&item["output"])
            ),
        )),
        // A compaction item still here was sealed elsewhere: it goes as it is, for a
        // deployment that can read it (any other refuses it).
        "compaction" => Some(item.clone()),
        other if other.ends_with("_output") => Some(text("user", format!("[{other}] {item}"))),
        other => Some(text("assistant", format!("[{other}] {item}"))),
    }
}

/// The whole conversation a compaction request stands for, as the client gave it: stored
/// state expanded (`previous_response_id`, `item_reference`).
async fn conversation(
    gw: &Gateway,
    headers: &HeaderMap,
    body: &Bytes,
    req: &Map<String, Value>,
) -> Result<Vec<Value>, Box<Response>> {
    let mut items = match req.get("input") {
        Some(Value::String(s)) => vec![json!({"type": "message", "role": "user", "content": s})],
        Some(Value::Array(a)) => a.clone(),
        None | Some(Value::Null) => Vec::new(),
        Some(_) => {
            return Err(Box::new(fail(
                ErrorKind::InvalidRequest,
                400,
                "input: expected a string or an array of items",
            )));
        }
    };
    let leans = req
        .get("previous_response_id")
        .is_some_and(Value::is_string)
        || items.iter().any(|i| i["type"] == "item_reference");
    if leans {
        let p = gw
            .authenticate(headers)
            .map_err(|e| Box::new(fail(e.kind(), e.kind().status(), e.message())))?;
        let has_previous = req.contains_key("previous_response_id");
        match gw.conversations.expand(body, has_previous, &p).await {
            Ok(Some(x)) => {
                if let Some(e) = x.missing {
                    return Err(refused(&e));
                }
                if let Ok(v) = serde_json::from_slice::<Value>(&x.body)
                    && let Some(a) = v["input"].as_array()
                {
                    items = a.clone();
                }
            }
            Ok(None) if has_previous => {
                return Err(Box::new(fail(
                    ErrorKind::InvalidRequest,
                    400,
                    "previous_response_id cannot be honoured: this gateway has no response store (a database); send the full conversation in `input`",
                )));
            }
            Ok(None) => {}
            Err(e) => return Err(refused(&e)),
        }
    }
    Ok(items)
}

/// Asks the request's deployment, through the gateway's own path, for the summary of `items`;
/// the Responses answer and the headers it came with, or the error response to give.
async fn summarise(
    gw: Arc<Gateway>,
    headers: &HeaderMap,
    req: &Map<String, Value>,
    items: &[Value],
) -> Result<(String, Value, HeaderMap), Box<Response>> {
    let mut input: Vec<Value> = items.iter().filter_map(readable).collect();
    unseal_items(&mut input);
    input.push(json!({
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": ASK}],
    }));
    let mut ask = Map::new();
    for k in [
        "model",
        "instructions",
        "prompt_cache_key",
        "service_tier",
        "reasoning",
        "metadata",
        "user",
    ] {
        if let Some(v) = req.get(k).filter(|v| !v.is_null()) {
            ask.insert(k.into(), v.clone());
        }
    }
    ask.insert("input".into(), Value::Array(input));
    ask.insert("stream".into(), json!(false));
    ask.insert("store".into(), json!(false));
    let body = serde_json::to_vec(&Value::Object(ask)).unwrap_or_default();
    let mut call = Request::new(Body::from(body));
    *call.method_mut() = http::Method::POST;
    *call.uri_mut() = http::Uri::from_static("/v1/responses");
    let h = call.headers_mut();
    for (k, v) in headers {
        if k != http::header::CONTENT_LENGTH && k != http::header::CONTENT_ENCODING {
            h.append(k, v.clone());
        }
    }
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let resp = proxy::handle(gw, Endpoint::Generate(Dialect::Responses), call).await;
    if !resp.status().is_success() {
        // Already the Responses dialect's own error.
        return Err(Box::new(resp));
    }
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_ANSWER).await.map_err(|e| {
        fail(
            ErrorKind::Server,
            502,
            format!("the summary's answer could not be read: {e}"),
        )
    })?;
    let answer: Value = serde_json::from_slice(&bytes).map_err(|e| {
        fail(
            ErrorKind::Server,
            502,
            format!("the summary's answer is not JSON: {e}"),
        )
    })?;
    let summary: String = answer["output"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| i["type"] == "message")
        .flat_map(|i| i["content"].as_array().into_iter().flatten())
        .filter(|p| p["type"] == "output_text")
        .filter_map(|p| p["text"].as_str())
        .collect();
    if summary.trim().is_empty() {
        return Err(Box::new(fail(
            ErrorKind::Server,
            502,
            "the deployment answered the compaction request with no summary text",
        )));
    }
    let mut headers = parts.headers;
    headers.remove(http::header::CONTENT_LENGTH);
    Ok((summary, answer, headers))
}

fn compaction_item(summary: &str) -> Value {
    json!({
        "type": "compaction",
        "id": format!("cmp_{:032x}", fastrand::u128(..)),
        "encrypted_content": seal(summary),
    })
}

fn object(body: &[u8]) -> Result<Map<String, Value>, Box<Response>> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(Box::new(fail(
            ErrorKind::InvalidRequest,
            400,
            "request body must be a JSON object",
        ))),
        Err(e) => Err(Box::new(fail(
            ErrorKind::InvalidRequest,
            400,
            format!("invalid JSON body: {e}"),
        ))),
    }
}

/// `POST /v1/responses/compact`.
pub async fn compact(gw: Arc<Gateway>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    if let Err(e) = gw.authenticate(&parts.headers) {
        return fail(e.kind(), e.kind().status(), e.message());
    }
    let body = match proxy::read_body_in_time(&gw, body, &parts.headers).await {
        Ok(b) => b,
        Err((e, status)) => {
            let status = status.unwrap_or(e.kind.status());
            return render(
                Dialect::Responses,
                &e,
                Some(status),
                &proxy::new_request_id(),
            );
        }
    };
    let req = match object(&body) {
        Ok(m) => m,
        Err(r) => return *r,
    };
    if !req.get("model").is_some_and(Value::is_string) {
        return fail(
            ErrorKind::InvalidRequest,
            400,
            "model: required field is missing",
        );
    }
    let items = match conversation(&gw, &parts.headers, &body, &req).await {
        Ok(i) => i,
        Err(r) => return *r,
    };
    let (summary, answer, headers) = match summarise(gw, &parts.headers, &req, &items).await {
        Ok(x) => x,
        Err(r) => return *r,
    };
    // What the conversation keeps: its user messages (a summary of an earlier compaction is
    // superseded by this one), then the compaction item.
    let mut output: Vec<Value> = items
        .iter()
        .filter(|i| i["type"].as_str().unwrap_or("message") == "message" && i["role"] == "user")
        .cloned()
        .collect();
    output.push(compaction_item(&summary));
    let out = json!({
        "id": answer["id"],
        "object": "response.compaction",
        "created_at": answer["created_at"],
        "output": output,
        "usage": answer["usage"],
    });
    (headers, axum::Json(out)).into_response()
}

/// A `/v1/responses` call ending in `compaction_trigger` (already authenticated and read by
/// `proxy::handle`): answered with a response whose only output is the compaction item.
pub async fn on_trigger(gw: Arc<Gateway>, headers: HeaderMap, body: Bytes) -> Response {
    let req = match object(&body) {
        Ok(m) => m,
        Err(r) => return *r,
    };
    let stream = req.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let items = match conversation(&gw, &headers, &body, &req).await {
        Ok(i) => i,
        Err(r) => return *r,
    };
    let (summary, mut answer, mut headers) = match summarise(gw, &headers, &req, &items).await {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let item = compaction_item(&summary);
    answer["output"] = json!([item]);
    if !stream {
        return (headers, axum::Json(answer)).into_response();
    }
    // The answer is one opaque item, whole at once: its stream is the lifecycle around it.
    let mut started = answer.clone();
    started["status"] = json!("in_progress");
    started["output"] = json!([]);
    started["usage"] = Value::Null;
    let events = [
        ("response.created", json!({"response": started})),
        ("response.in_progress", json!({"response": started})),
        (
            "response.output_item.added",
            json!({"output_index": 0, "item": item}),
        ),
        (
            "response.output_item.done",
            json!({"output_index": 0, "item": item}),
        ),
        ("response.completed", json!({"response": answer})),
    ];
    let mut sse = Vec::new();
    for (n, (name, mut data)) in events.into_iter().enumerate() {
        data["type"] = json!(name);
        data["sequence_number"] = json!(n);
        dragoman_sse::encode(
            &dragoman_sse::Event::named(name, data.to_string()),
            &mut sse,
        );
    }
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    (headers, Body::from(sse)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_summary_opens_to_itself_and_foreign_content_does_not() {
        let s = "goal: ship it\nline two — ünïcode";
        assert_eq!(unseal(&seal(s)).as_deref(), Some(s));
        assert_eq!(unseal("gAAAAABpM0Yj-openai-sealed"), None);
        assert_eq!(unseal("dragoman-compaction-v1:!!!"), None);
    }

    #[test]
    fn unsealing_a_body_replaces_only_this_gateways_items() {
        let body = json!({"model": "m", "input": [
            {"type": "message", "role": "user", "content": "hi"},
            {"type": "compaction", "id": "cmp_1", "encrypted_content": seal("SUMMARY")},
            {"type": "compaction", "id": "cmp_2", "encrypted_content": "gAAAA-openai"},
        ]});
        let out = unseal_body(body.to_string().as_bytes()).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["input"][1]["role"], "user");
        assert!(
            v["input"][1]["content"][0]["text"]
                .as_str()
                .unwrap()
                .ends_with("SUMMARY")
        );
        assert_eq!(v["input"][2]["encrypted_content"], "gAAAA-openai");
        assert!(
            unseal_body(br#"{"input":[{"type":"compaction","encrypted_content":"x"}]}"#).is_none()
        );
    }

    #[test]
    fn only_a_final_trigger_compacts() {
        assert!(triggered(
            br#"{"input":[{"role":"user","content":"x"},{"type":"compaction_trigger"}]}"#
        ));
        assert!(!triggered(
            br#"{"input":[{"type":"compaction_trigger"},{"role":"user","content":"x"}]}"#
        ));
        assert!(!triggered(br#"{"input":"compaction_trigger"}"#));
    }
}
