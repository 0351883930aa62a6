//! Non-streamed Chat completions ⇄ canonical `Response`. Only choice 0 is carried: the canonical
//! model has one answer per response, and `n > 1` is reported where it is requested.

use dragoman_model::{DecodeError, Dialect, Extension, JsonMap, Losses, Part, Response};
use serde_json::{Value, json};

use crate::Path;
use crate::request::{as_message_field, decode_assistant, tool_call_value};
use crate::{as_arr, as_obj, field, opt_str, stop, usage};

/// Choice-level fields other than the message and finish reason travel as extensions with this
/// prefix (`choice.logprobs`, Azure's `choice.content_filter_results`).
const CHOICE_PREFIX: &str = "choice.";

pub fn decode_response(body: &[u8], losses: &mut Losses) -> Result<Response, DecodeError> {
    let root: Value = serde_json::from_slice(body).map_err(|e| DecodeError::json("body", &e))?;
    let m = as_obj(&root, "body")?;
    let choices = as_arr(
        m.get("choices")
            .ok_or_else(|| DecodeError::missing("choices"))?,
        "choices",
    )?;
    if choices.len() > 1 {
        losses.dropped(
            "choices[1]",
            "only choice 0 is carried; the other choices are dropped",
        );
    }
    let mut content = Vec::new();
    let mut finish = None;
    let mut extensions = Vec::new();
    if let Some(c) = choices.first() {
        let c = as_obj(c, "choices[0]")?;
        let msg = field(c, "message")
            .map(|v| as_obj(v, "choices[0].message"))
            .transpose()?;
        if let Some(msg) = msg {
            let mut rf = None;
            content = decode_assistant(
                msg,
                &Path::Root("choices[0].message"),
                losses,
                &mut rf,
                None,
            )?;
            for (k, v) in msg {
                let known = matches!(
                    k.as_str(),
                    "role"
                        | "content"
                        | "refusal"
                        | "tool_calls"
                        | "reasoning_content"
                        | "reasoning"
                        | "function_call"
                        | "annotations"
                );
                if !known && !v.is_null() {
                    content.push(Part::Opaque {
                        dialect: Dialect::Chat,
                        value: json!({ crate::MESSAGE_FIELD: { k.clone(): v.clone() } }),
                    });
                }
            }
        }
        finish = opt_str(c, "finish_reason", "choices[0]")?;
        for (k, v) in c {
            if !matches!(k.as_str(), "index" | "message" | "finish_reason") && !v.is_null() {
                extensions.push(Extension::new(
                    Dialect::Chat,
                    format!("{CHOICE_PREFIX}{k}"),
                    v.clone(),
                ));
            }
        }
    }
    let has_calls = content.iter().any(|p| matches!(p, Part::ToolCall { .. }));
    let (usage, usage_extras) = usage::decode(m.get("usage").unwrap_or(&Value::Null));
    if let Some(x) = usage_extras {
        extensions.push(Extension::new(Dialect::Chat, "usage", x));
    }
    for (k, v) in m {
        if !matches!(k.as_str(), "id" | "object" | "model" | "choices" | "usage") {
            extensions.push(Extension::new(Dialect::Chat, k.clone(), v.clone()));
        }
    }
    Ok(Response {
        id: opt_str(m, "id", "")?.unwrap_or_default().to_owned(),
        model: opt_str(m, "model", "")?.unwrap_or_default().to_owned(),
        content,
        stop: stop::decode(finish).reconcile(has_calls),
        usage,
        extensions,
    })
}

pub fn encode_response(resp: &Response, losses: &mut Losses) -> Value {
    let mut texts = String::new();
    let mut has_text = false;
    let mut annotations: Vec<Value> = Vec::new();
    let mut refusal: Option<String> = None;
    let mut reasoning: Option<String> = None;
    let mut calls = Vec::new();
    let mut fields: Vec<JsonMap> = Vec::new();
    for (j, p) in resp.content.iter().enumerate() {
        let path = format!("content[{j}]");
        match p {
            Part::Text {
                text, citations, ..
            } => {
                has_text = true;
                texts.push_str(text);
                match citations {
                    Some((Dialect::Chat, Value::Array(a))) => annotations.extend(a.iter().cloned()),
                    Some((d, _)) => losses.dropped(
                        format!("{path}.citations"),
                        format!("{d} citations have no Chat annotation form"),
                    ),
                    None => {}
                }
            }
            Part::Refusal { text } => refusal.get_or_insert_with(String::new).push_str(text),
            Part::Reasoning { text, seal } => {
                if seal.is_some() {
                    losses.dropped(
                        format!("{path}.seal"),
                        "Chat carries no opaque reasoning state",
                    );
                }
                if !text.is_empty() || seal.is_none() {
                    reasoning.get_or_insert_with(String::new).push_str(text);
                }
            }
            Part::ToolCall {
                id,
                name,
                arguments,
                kind,
            } => calls.push(tool_call_value(id, name, arguments, *kind)),
            _ => match as_message_field(p) {
                Some(f) => fields.push(f.clone()),
                None => losses.dropped(
                    &path,
                    "Chat responses hold text, refusals and tool calls only",
                ),
            },
        }
    }
    let mut msg = JsonMap::new();
    msg.insert("role".into(), json!("assistant"));
    msg.insert(
        "content".into(),
        if has_text { json!(texts) } else { Value::Null },
    );
    if refusal.is_none() {
        refusal = stop::explanation(&resp.stop).map(str::to_owned);
    }
    msg.insert("refusal".into(), json!(refusal));
    if let Some(r) = reasoning {
        // Not in OpenAI's schema, but the field DeepSeek-style servers use and clients read.
        msg.insert("reasoning_content".into(), json!(r));
    }
    if !calls.is_empty() {
        msg.insert("tool_calls".into(), Value::Array(calls));
    }
    if !annotations.is_empty() {
        msg.insert("annotations".into(), Value::Array(annotations));
    }
    for f in fields {
        for (k, v) in f {
            msg.entry(k).or_insert(v);
        }
    }

    let mut choice = JsonMap::new();
    choice.insert("index".into(), json!(0));
    choice.insert("message".into(), Value::Object(msg));
    let mut top = Vec::new();
    let mut usage_extras = None;
    let mut created = None;
    for e in &resp.extensions {
        if e.dialect != Dialect::Chat && e.is_private() {
            continue;
        }
        if e.dialect == Dialect::Chat
            && let Some(k) = e.key.strip_prefix(CHOICE_PREFIX)
        {
            choice.insert(k.to_owned(), e.value.clone());
        } else if e.dialect == Dialect::Chat && e.key == "usage" {
            usage_extras = Some(&e.value);
        } else if e.dialect == Dialect::Chat && e.key == "created" {
            created = Some(e.value.clone());
        } else if e.portable_to(Dialect::Chat) {
            top.push(e);
        } else {
            losses.dropped(
                &e.key,
                format!("{} field with no Chat equivalent", e.dialect),
            );
        }
    }
    choice.entry("logprobs").or_insert(Value::Null);
    choice.insert(
        "finish_reason".into(),
        json!(stop::encode(&resp.stop, "stop", losses)),
    );

    let mut out = JsonMap::new();
    out.insert("id".into(), json!(resp.id));
    out.insert("object".into(), json!("chat.completion"));
    // The gateway owns the clock and stamps `created` when the upstream gave none.
    out.insert("created".into(), created.unwrap_or_else(|| json!(0)));
    out.insert("model".into(), json!(resp.model));
    out.insert("choices".into(), json!([choice]));
    out.insert("usage".into(), usage::encode(&resp.usage, usage_extras));
    for e in top {
        out.entry(e.key.clone()).or_insert_with(|| e.value.clone());
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
        .map(|u| crate::usage::decode(u).0)
}

/// Whether a whole body with a success status is a chat completion (it has `choices`), and
/// its usage: an error envelope keeps its meaning, anything else is malformed. One pass over
/// the body, no tree.
pub fn check_response(body: &[u8]) -> Result<dragoman_model::Usage, dragoman_model::ResponseFault> {
    use dragoman_model::{Lenient, ResponseFault};
    use serde::de::IgnoredAny;
    #[derive(serde::Deserialize)]
    struct Head {
        #[serde(default)]
        choices: Option<Vec<IgnoredAny>>,
        #[serde(default)]
        error: Lenient<IgnoredAny>,
        #[serde(default)]
        usage: Lenient<crate::usage::Counts>,
    }
    let head: Head = dragoman_model::read_head(body)?;
    if head.error.0.is_some() {
        return Err(ResponseFault::Failed(crate::decode_error(None, body)));
    }
    match head.choices {
        Some(_) => Ok(head.usage.0.map(|c| c.usage()).unwrap_or_default()),
        None => Err(ResponseFault::Malformed(
            "not a chat completion (no choices)".into(),
        )),
    }
}

/// A completion's id, model and stop reason (its first choice's), for a trace span: one pass,
/// no tree.
pub fn response_summary(body: &[u8]) -> Option<dragoman_model::ResponseSummary> {
    use serde::de::IgnoredAny;
    #[derive(serde::Deserialize)]
    struct Head {
        id: Option<String>,
        model: Option<String>,
        #[serde(default)]
        choices: Vec<Choice>,
    }
    #[derive(serde::Deserialize)]
    struct Choice {
        finish_reason: Option<String>,
        message: Option<Message>,
    }
    #[derive(serde::Deserialize)]
    struct Message {
        tool_calls: Option<Vec<IgnoredAny>>,
        function_call: Option<IgnoredAny>,
    }
    let h: Head = serde_json::from_slice(body).ok()?;
    let stop = h.choices.first().map(|c| {
        let calls = c.message.as_ref().is_some_and(|m| {
            m.tool_calls.as_ref().is_some_and(|t| !t.is_empty()) || m.function_call.is_some()
        });
        stop::decode(c.finish_reason.as_deref()).reconcile(calls)
    });
    Some(dragoman_model::ResponseSummary {
        id: h.id,
        model: h.model,
        stop,
    })
}
