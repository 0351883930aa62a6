//! Chat Completions request bodies ⇄ canonical `Request`, plus the message and content-part
//! codecs the response codec shares (an assistant message reads the same in both places).

use dragoman_model::{
    CacheControl, DecodeError, Dialect, Effort, Extension, JsonMap, Losses, MediaSource, Message,
    Part, ReasoningConfig, Request, ResponseFormat, Role, Tool, ToolChoice, ToolKind,
};
use serde_json::{Value, json};

use crate::{
    MARKER_MAX_TOKENS, MARKER_REASONING, MARKER_USER, MESSAGE_FIELD, Path, as_arr, as_obj, at,
    field, join, opt_bool, opt_f64, opt_i64, opt_str, opt_u64, req_str,
};

// ---------------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------------

/// Decodes a Chat request body. System and developer messages stay messages where they are;
/// `Request.system` is never filled (it is how other dialects carry a top-level prompt).
pub fn decode_request(body: &[u8], losses: &mut Losses) -> Result<Request, DecodeError> {
    let mut root: Value =
        serde_json::from_slice(body).map_err(|e| DecodeError::json("body", &e))?;
    let mut req = Request {
        model: req_str(as_obj(&root, "body")?, "model", "")?.to_owned(),
        ..Request::default()
    };
    let mut reasoning_field: Option<&'static str> = None;
    // Messages are taken out of the tree so their text moves into the request rather than
    // being copied; the null left behind is skipped like the key itself below.
    let msgs = root
        .get_mut("messages")
        .map(Value::take)
        .ok_or_else(|| DecodeError::missing("messages"))?;
    let Value::Array(msgs) = msgs else {
        return Err(DecodeError::wrong_type("messages", "an array"));
    };
    req.messages = decode_messages(msgs, losses, &mut reasoning_field)?;
    let m = as_obj(&root, "body")?;

    let mut max_completion = None;
    let mut max_tokens = None;
    let mut safety_identifier = None;
    for (key, value) in m {
        // An explicit null for a field the model has a place for means "unset".
        if value.is_null() && CANONICAL_KEYS.contains(&key.as_str()) {
            continue;
        }
        match key.as_str() {
            "model" | "messages" => {}
            "tools" => req.tools = decode_tools(as_arr(value, "tools")?, losses)?,
            "tool_choice" => req.tool_choice = Some(decode_tool_choice(value, losses)?),
            "parallel_tool_calls" => req.parallel_tool_calls = opt_bool(m, key, "")?,
            "max_completion_tokens" => max_completion = opt_u64(m, key, "")?,
            "max_tokens" => max_tokens = opt_u64(m, key, "")?,
            "temperature" => req.temperature = opt_f64(m, key, "")?,
            "top_p" => req.top_p = opt_f64(m, key, "")?,
            "seed" => req.seed = opt_i64(m, key, "")?,
            "stream" => req.stream = opt_bool(m, key, "")?.unwrap_or(false),
            "user" => req.user = opt_str(m, key, "")?.map(str::to_owned),
            "safety_identifier" => safety_identifier = opt_str(m, key, "")?.map(str::to_owned),
            "stop" => req.stop = decode_stop(value)?,
            "metadata" => req.metadata = Some(as_obj(value, "metadata")?.clone()),
            "response_format" => match decode_response_format(value)? {
                Some(f) => req.response_format = Some(f),
                None => req.extensions.push(ext(key, value)),
            },
            "reasoning_effort" => match value.as_str().and_then(Effort::parse) {
                Some(e) => {
                    req.reasoning = Some(ReasoningConfig {
                        enabled: Some(e != Effort::None),
                        effort: Some(e),
                        ..ReasoningConfig::default()
                    })
                }
                None => req.extensions.push(ext(key, value)),
            },
            "n" => {
                if value.as_u64().is_some_and(|n| n != 1) {
                    losses.approximated(
                        "n",
                        "the canonical model carries one choice; only choice 0 is returned",
                    );
                }
                req.extensions.push(ext(key, value));
            }
            // Any other field, and nulls of the fields above, stay as they came.
            _ => req.extensions.push(ext(key, value)),
        }
    }
    match (max_completion, max_tokens) {
        (Some(mc), legacy) => {
            req.max_tokens = Some(mc);
            if legacy.is_some()
                && let Some(v) = m.get("max_tokens")
            {
                req.extensions.push(ext("max_tokens", v));
            }
        }
        (None, Some(mt)) => {
            req.max_tokens = Some(mt);
            req.extensions
                .push(ext(MARKER_MAX_TOKENS, &json!("max_tokens")));
        }
        (None, None) => {}
    }
    match (&req.user, safety_identifier) {
        (Some(_), Some(s)) => req.extensions.push(ext("safety_identifier", &json!(s))),
        (None, Some(s)) => {
            req.user = Some(s);
            req.extensions
                .push(ext(MARKER_USER, &json!("safety_identifier")));
        }
        _ => {}
    }
    if let Some(f) = reasoning_field {
        req.extensions.push(ext(MARKER_REASONING, &json!(f)));
    }
    Ok(req)
}

/// Top-level fields that map onto canonical fields (so a null of one carries nothing).
const CANONICAL_KEYS: &[&str] = &[
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "max_completion_tokens",
    "max_tokens",
    "temperature",
    "top_p",
    "seed",
    "stream",
    "user",
    "safety_identifier",
    "stop",
    "metadata",
    "response_format",
    "reasoning_effort",
];

fn ext(key: &str, value: &Value) -> Extension {
    Extension::new(Dialect::Chat, key, value.clone())
}

fn decode_messages(
    list: Vec<Value>,
    losses: &mut Losses,
    reasoning_field: &mut Option<&'static str>,
) -> Result<Vec<Message>, DecodeError> {
    let mut out: Vec<Message> = Vec::new();
    let root = Path::Root("messages");
    for (i, v) in list.into_iter().enumerate() {
        let path = root.idx(i);
        let Value::Object(mut m) = v else {
            return Err(DecodeError::wrong_type(path, "an object"));
        };
        // Resolved to a static name so `m` can give up its content below; an unknown role is
        // the first error this message can raise, so failing here reports the same thing.
        let role = match req_str(&m, "role", &path)? {
            "system" => "system",
            "developer" => "developer",
            "user" => "user",
            "assistant" => "assistant",
            "tool" => "tool",
            "function" => "function",
            other => {
                return Err(DecodeError::new(
                    join(&path, "role"),
                    format!("unknown role `{other}`"),
                ));
            }
        };
        let known: &[&str] = match role {
            "assistant" => &[
                "role",
                "content",
                "refusal",
                "tool_calls",
                "reasoning_content",
                "reasoning",
                "function_call",
                "annotations",
            ],
            "tool" => &["role", "content", "tool_call_id"],
            "function" => &["role", "content", "name"],
            _ => &["role", "content"],
        };
        let extra = message_fields(&m, known);
        let (role, mut content) = match role {
            "system" | "developer" | "user" => {
                let c = m
                    .get_mut("content")
                    .map(Value::take)
                    .ok_or_else(|| DecodeError::missing(join(&path, "content")))?;
                let r = match role {
                    "system" => Role::System,
                    "developer" => Role::Developer,
                    _ => Role::User,
                };
                (r, decode_content_owned(c, &path.key("content"))?)
            }
            "assistant" => {
                let content = match m.get_mut("content") {
                    Some(c) => Some(decode_content_owned(c.take(), &path.key("content"))?),
                    None => None,
                };
                (
                    Role::Assistant,
                    decode_assistant(&m, &path, losses, reasoning_field, content)?,
                )
            }
            "tool" | "function" => {
                let (call_id, kind) = if role == "tool" {
                    (req_str(&m, "tool_call_id", &path)?, ToolKind::Function)
                } else {
                    losses.approximated(
                        join(&path, "role"),
                        "deprecated `function` message read as a tool result keyed by the function name",
                    );
                    (req_str(&m, "name", &path)?, ToolKind::Function)
                };
                let call_id = call_id.to_owned();
                let c = m.get_mut("content").map(Value::take).unwrap_or(Value::Null);
                let mut inner = decode_content_owned(c, &path.key("content"))?;
                inner.extend(extra.iter().cloned());
                let part = Part::ToolResult {
                    call_id,
                    content: inner,
                    is_error: false,
                    kind,
                    cache_control: None,
                };
                // Consecutive tool messages answer one assistant turn: keep them together.
                if let Some(last) = out.last_mut()
                    && last.role == Role::Tool
                {
                    last.content.push(part);
                } else {
                    out.push(Message::new(Role::Tool, vec![part]));
                }
                continue;
            }
            _ => return Err(DecodeError::new(join(&path, "role"), "unknown role")),
        };
        content.extend(extra);
        out.push(Message::new(role, content));
    }
    Ok(out)
}

/// Unknown message-level fields, each as an opaque part the encoder merges back.
fn message_fields(m: &JsonMap, known: &[&str]) -> Vec<Part> {
    m.iter()
        .filter(|(k, v)| !known.contains(&k.as_str()) && !v.is_null())
        .map(|(k, v)| Part::Opaque {
            dialect: Dialect::Chat,
            value: json!({ MESSAGE_FIELD: { k.clone(): v.clone() } }),
        })
        .collect()
}

/// The message field an opaque part carries, if it is one.
pub(crate) fn as_message_field(part: &Part) -> Option<&JsonMap> {
    match part {
        Part::Opaque {
            dialect: Dialect::Chat,
            value,
        } => value.get(MESSAGE_FIELD).and_then(Value::as_object),
        _ => None,
    }
}

/// Message content: a string, an array of parts, or null (no parts).
pub(crate) fn decode_content(v: &Value, path: &Path<'_>) -> Result<Vec<Part>, DecodeError> {
    match v {
        Value::Null => Ok(Vec::new()),
        // An empty string carries nothing, and dialects that reject empty text blocks would
        // have to drop it anyway.
        Value::String(s) if s.is_empty() => Ok(Vec::new()),
        Value::String(s) => Ok(vec![Part::text(s.clone())]),
        Value::Array(list) => list
            .iter()
            .enumerate()
            .map(|(j, p)| decode_part(p, &path.idx(j)))
            .collect(),
        _ => Err(DecodeError::wrong_type(
            path,
            "a string or an array of parts",
        )),
    }
}

/// `decode_content` on an owned value, moving text out instead of copying it.
fn decode_content_owned(v: Value, path: &Path<'_>) -> Result<Vec<Part>, DecodeError> {
    match v {
        Value::String(s) if s.is_empty() => Ok(Vec::new()),
        Value::String(s) => Ok(vec![Part::text(s)]),
        Value::Array(list) => list
            .into_iter()
            .enumerate()
            .map(|(j, p)| decode_part_owned(p, &path.idx(j)))
            .collect(),
        other => decode_content(&other, path),
    }
}

/// `decode_part` on an owned value: a text part (nearly every part) moves its text, anything
/// else goes through `decode_part`.
fn decode_part_owned(v: Value, path: &Path<'_>) -> Result<Part, DecodeError> {
    if let Value::Object(mut m) = v {
        if m.get("type").and_then(Value::as_str) == Some("text")
            && let Some(Value::String(t)) = m.get_mut("text")
        {
            return Ok(Part::text(std::mem::take(t)));
        }
        return decode_part(&Value::Object(m), path);
    }
    decode_part(&v, path)
}

fn decode_part(v: &Value, path: &Path<'_>) -> Result<Part, DecodeError> {
    let m = as_obj(v, path)?;
    let ty = req_str(m, "type", path)?;
    Ok(match ty {
        "text" => Part::text(req_str(m, "text", path)?),
        "refusal" => Part::Refusal {
            text: req_str(m, "refusal", path)?.to_owned(),
        },
        "image_url" => {
            let p = path.key("image_url");
            let img = m.get("image_url").ok_or_else(|| DecodeError::missing(p))?;
            let (url, detail) = match img {
                Value::String(s) => (s.as_str(), None),
                _ => {
                    let o = as_obj(img, &p)?;
                    (req_str(o, "url", &p)?, opt_str(o, "detail", &p)?)
                }
            };
            Part::Image {
                source: MediaSource::from_url(url),
                detail: detail.map(str::to_owned),
                cache_control: None,
            }
        }
        "input_audio" => {
            let p = path.key("input_audio");
            let o = as_obj(
                m.get("input_audio")
                    .ok_or_else(|| DecodeError::missing(p))?,
                &p,
            )?;
            Part::Audio {
                data: req_str(o, "data", &p)?.to_owned(),
                format: req_str(o, "format", &p)?.to_owned(),
            }
        }
        "file" => {
            let p = path.key("file");
            let o = as_obj(m.get("file").ok_or_else(|| DecodeError::missing(p))?, &p)?;
            let source = match (opt_str(o, "file_data", &p)?, opt_str(o, "file_id", &p)?) {
                (Some(d), _) if d.starts_with("data:") => MediaSource::from_url(d),
                // Some clients send bare base64; PDF is the only file type Chat accepts inline.
                (Some(d), _) => MediaSource::Base64 {
                    media_type: "application/pdf".into(),
                    data: d.to_owned(),
                },
                (None, Some(id)) => MediaSource::FileId {
                    file_id: id.to_owned(),
                },
                (None, None) => {
                    return Err(DecodeError::new(p, "file needs `file_data` or `file_id`"));
                }
            };
            Part::Document {
                source,
                title: None,
                filename: opt_str(o, "filename", &p)?.map(str::to_owned),
                cache_control: None,
            }
        }
        _ => Part::Opaque {
            dialect: Dialect::Chat,
            value: v.clone(),
        },
    })
}

/// An assistant message (request history or response choice) as parts: reasoning first, then
/// content, refusal and tool calls, then unknown fields as opaque parts (added by the caller for
/// requests, here for responses via `known`).
pub(crate) fn decode_assistant(
    m: &JsonMap,
    path: &Path<'_>,
    losses: &mut Losses,
    reasoning_field: &mut Option<&'static str>,
    content: Option<Vec<Part>>,
) -> Result<Vec<Part>, DecodeError> {
    let mut parts = Vec::new();
    for key in ["reasoning_content", "reasoning"] {
        if let Some(Value::String(s)) = field(m, key) {
            *reasoning_field = Some(if key == "reasoning" {
                "reasoning"
            } else {
                "reasoning_content"
            });
            parts.push(Part::Reasoning {
                text: s.clone(),
                seal: None,
            });
            break;
        }
    }
    // A non-string `reasoning` (OpenRouter's object form) is kept as a message field.
    if let Some(v) = field(m, "reasoning")
        && !v.is_string()
    {
        parts.push(Part::Opaque {
            dialect: Dialect::Chat,
            value: json!({ MESSAGE_FIELD: { "reasoning": v.clone() } }),
        });
    }
    let first_content = parts.len();
    // `content` is the message's content already decoded by a caller that owned it.
    match content {
        Some(c) => parts.extend(c),
        None => {
            if let Some(c) = m.get("content") {
                parts.extend(decode_content(c, &path.key("content"))?);
            }
        }
    }
    if let Some(Value::Array(a)) = field(m, "annotations")
        && !a.is_empty()
    {
        let target = parts[first_content..]
            .iter_mut()
            .find(|p| matches!(p, Part::Text { .. }));
        match target {
            Some(Part::Text { citations, .. }) => {
                *citations = Some((Dialect::Chat, Value::Array(a.clone())))
            }
            _ => parts.push(Part::Opaque {
                dialect: Dialect::Chat,
                value: json!({ MESSAGE_FIELD: { "annotations": a.clone() } }),
            }),
        }
    }
    if let Some(r) = opt_str(m, "refusal", path)? {
        parts.push(Part::Refusal { text: r.to_owned() });
    }
    if let Some(tc) = field(m, "tool_calls") {
        let p = path.key("tool_calls");
        for (k, call) in as_arr(tc, &p)?.iter().enumerate() {
            parts.push(decode_tool_call(call, k, &p.idx(k), losses)?);
        }
    }
    if let Some(fc) = field(m, "function_call") {
        let p = path.key("function_call");
        let o = as_obj(fc, &p)?;
        losses.approximated(
            p,
            "deprecated `function_call` read as a tool call without id",
        );
        parts.push(Part::ToolCall {
            id: String::new(),
            name: req_str(o, "name", &p)?.to_owned(),
            arguments: args_text(o.get("arguments")),
            kind: ToolKind::Function,
        });
    }
    Ok(parts)
}

/// Arguments as text; a few servers send an object instead of the JSON string.
fn args_text(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// One tool call of an assistant message. A call without an id (some OpenAI-compatible
/// servers) gets one from its place in the message, so its result can still be matched to it;
/// one without a name cannot be carried and is refused.
fn decode_tool_call(
    v: &Value,
    k: usize,
    path: &Path<'_>,
    losses: &mut Losses,
) -> Result<Part, DecodeError> {
    let m = as_obj(v, path)?;
    let ty = opt_str(m, "type", path)?.unwrap_or("function");
    let id = match opt_str(m, "id", path)?.unwrap_or_default() {
        "" => format!("call_{k}"),
        id => id.to_owned(),
    };
    for k in m.keys() {
        if !matches!(k.as_str(), "id" | "type" | "function" | "custom" | "index") {
            losses.dropped(
                join(path, k),
                "tool-call fields other than id, type and the call have no canonical place",
            );
        }
    }
    let (inner_key, kind) = match ty {
        "custom" => ("custom", ToolKind::Custom),
        "function" => ("function", ToolKind::Function),
        other => {
            return Err(DecodeError::new(
                join(path, "type"),
                format!("unknown tool call type `{other}`"),
            ));
        }
    };
    let p = path.key(inner_key);
    let o = as_obj(m.get(inner_key).ok_or_else(|| DecodeError::missing(p))?, &p)?;
    let arguments = if kind == ToolKind::Custom {
        args_text(o.get("input"))
    } else {
        args_text(o.get("arguments"))
    };
    let name = req_str(o, "name", &p)?;
    if name.is_empty() {
        return Err(DecodeError::new(
            join(&p, "name"),
            "a tool call needs a name",
        ));
    }
    Ok(Part::ToolCall {
        id,
        name: name.to_owned(),
        arguments,
        kind,
    })
}

fn decode_tools(list: &[Value], losses: &mut Losses) -> Result<Vec<Tool>, DecodeError> {
    let mut out = Vec::new();
    let root = Path::Root("tools");
    for (i, v) in list.iter().enumerate() {
        let path = root.idx(i);
        let m = as_obj(v, &path)?;
        let tool = match opt_str(m, "type", &path)? {
            Some("function") => {
                let p = path.key("function");
                let f = as_obj(
                    m.get("function").ok_or_else(|| DecodeError::missing(p))?,
                    &p,
                )?;
                // A function tool is worth keeping usable in every dialect, so unknown keys of
                // its definition are reported rather than turning the tool opaque.
                for k in f.keys() {
                    if !matches!(k.as_str(), "name" | "description" | "parameters" | "strict") {
                        losses.dropped(join(&p, k), "unknown function-definition field");
                    }
                }
                Tool::Function {
                    name: req_str(f, "name", &p)?.to_owned(),
                    description: opt_str(f, "description", &p)?.map(str::to_owned),
                    parameters: field(f, "parameters")
                        .cloned()
                        .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
                    strict: opt_bool(f, "strict", &p)?,
                    cache_control: None,
                }
            }
            Some("custom") => {
                let p = path.key("custom");
                let c = as_obj(m.get("custom").ok_or_else(|| DecodeError::missing(p))?, &p)?;
                Tool::Custom {
                    name: req_str(c, "name", &p)?.to_owned(),
                    description: opt_str(c, "description", &p)?.map(str::to_owned),
                    format: field(c, "format").cloned(),
                }
            }
            _ => Tool::Opaque {
                dialect: Dialect::Chat,
                value: v.clone(),
            },
        };
        out.push(tool);
    }
    Ok(out)
}

fn decode_tool_choice(v: &Value, losses: &mut Losses) -> Result<ToolChoice, DecodeError> {
    let path = "tool_choice";
    match v {
        Value::String(s) => match s.as_str() {
            "none" => Ok(ToolChoice::None),
            "auto" => Ok(ToolChoice::Auto),
            "required" => Ok(ToolChoice::Required),
            other => Err(DecodeError::new(
                path,
                format!("unknown tool_choice `{other}`"),
            )),
        },
        Value::Object(m) => match req_str(m, "type", path)? {
            ty @ ("function" | "custom") => {
                let p = join(path, ty);
                let o = as_obj(m.get(ty).ok_or_else(|| DecodeError::missing(&p))?, &p)?;
                Ok(ToolChoice::Tool {
                    name: req_str(o, "name", &p)?.to_owned(),
                })
            }
            "allowed_tools" => {
                let p = join(path, "allowed_tools");
                let mode = field(m, "allowed_tools")
                    .and_then(Value::as_object)
                    .and_then(|o| o.get("mode"))
                    .and_then(Value::as_str);
                losses.approximated(
                    &p,
                    "the allowed-tools subset is not carried; all tools stay allowed",
                );
                Ok(if mode == Some("required") {
                    ToolChoice::Required
                } else {
                    ToolChoice::Auto
                })
            }
            other => Err(DecodeError::new(
                join(path, "type"),
                format!("unknown tool_choice type `{other}`"),
            )),
        },
        _ => Err(DecodeError::wrong_type(path, "a string or an object")),
    }
}

fn decode_stop(v: &Value) -> Result<Vec<String>, DecodeError> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, s)| {
                s.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| DecodeError::wrong_type(at("stop", i), "a string"))
            })
            .collect(),
        _ => Err(DecodeError::wrong_type("stop", "a string or an array")),
    }
}

/// `None` for a format type the canonical model does not know (kept as an extension).
fn decode_response_format(v: &Value) -> Result<Option<ResponseFormat>, DecodeError> {
    let path = "response_format";
    let m = as_obj(v, path)?;
    Ok(match req_str(m, "type", path)? {
        "text" if m.len() == 1 => Some(ResponseFormat::Text),
        "json_object" if m.len() == 1 => Some(ResponseFormat::JsonObject),
        "json_schema" => {
            let p = join(path, "json_schema");
            let o = as_obj(
                m.get("json_schema")
                    .ok_or_else(|| DecodeError::missing(&p))?,
                &p,
            )?;
            Some(ResponseFormat::JsonSchema {
                name: opt_str(o, "name", &p)?.map(str::to_owned),
                schema: field(o, "schema").cloned().unwrap_or_else(|| json!({})),
                strict: opt_bool(o, "strict", &p)?,
                description: opt_str(o, "description", &p)?.map(str::to_owned),
            })
        }
        _ => None,
    })
}

// ---------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------

/// Asks the encoder to write the history's reasoning back in `field` (`reasoning_content` or
/// `reasoning`) on every assistant message: the upstream needs it, whatever the client spoke.
pub fn replay_reasoning(req: &mut Request, field: &str) {
    req.extensions
        .retain(|e| !(e.dialect == Dialect::Chat && e.key == MARKER_REASONING));
    req.extensions.push(Extension::new(
        Dialect::Chat,
        MARKER_REASONING,
        Value::String(field.to_owned()),
    ));
}

fn marker<'a>(req: &'a Request, key: &str) -> Option<&'a str> {
    req.extensions
        .iter()
        .find(|e| e.dialect == Dialect::Chat && e.key == key)
        .and_then(|e| e.value.as_str())
}

fn cache_loss(cc: &Option<CacheControl>, path: &Path<'_>, losses: &mut Losses) {
    if cc.is_some() {
        losses.dropped(
            join(path, "cache_control"),
            "Chat has no cache breakpoints; OpenAI caches prefixes automatically",
        );
    }
}

/// Encodes a canonical request as a Chat body. A streamed request always asks for
/// `stream_options.include_usage`, because a Chat stream carries no usage otherwise and the
/// gateway must always account for tokens.
pub fn encode_request(req: &Request, losses: &mut Losses) -> Value {
    let mut out = JsonMap::new();
    out.insert("model".into(), json!(req.model));
    let reasoning_field = marker(req, MARKER_REASONING);

    let mut messages = Vec::new();
    if !req.system.is_empty() {
        let mut texts = Vec::new();
        let root = Path::Root("system");
        for (j, p) in req.system.iter().enumerate() {
            let path = root.idx(j);
            match p {
                Part::Text {
                    text,
                    cache_control,
                    citations,
                } => {
                    cache_loss(cache_control, &path, losses);
                    if citations.is_some() {
                        losses.dropped(
                            join(&path, "citations"),
                            "Chat system text has no citations",
                        );
                    }
                    texts.push(text.as_str());
                }
                _ => losses.dropped(path, "Chat system messages hold text only"),
            }
        }
        let content = if let [one] = texts.as_slice() {
            json!(one)
        } else {
            Value::Array(
                texts
                    .iter()
                    .map(|t| json!({"type": "text", "text": t}))
                    .collect(),
            )
        };
        messages.push(json!({"role": "system", "content": content}));
    }
    let root = Path::Root("messages");
    for (i, msg) in req.messages.iter().enumerate() {
        encode_message(msg, &root.idx(i), reasoning_field, losses, &mut messages);
    }
    out.insert("messages".into(), Value::Array(messages));

    let mut tools = Vec::new();
    let root = Path::Root("tools");
    for (i, t) in req.tools.iter().enumerate() {
        let path = root.idx(i);
        match t {
            Tool::Function {
                name,
                description,
                parameters,
                strict,
                cache_control,
            } => {
                cache_loss(cache_control, &path, losses);
                let mut f = JsonMap::new();
                f.insert("name".into(), json!(name));
                if let Some(d) = description {
                    f.insert("description".into(), json!(d));
                }
                f.insert("parameters".into(), parameters.clone());
                if let Some(s) = strict {
                    f.insert("strict".into(), json!(s));
                }
                tools.push(json!({"type": "function", "function": f}));
            }
            Tool::Custom {
                name,
                description,
                format,
            } => {
                let mut c = JsonMap::new();
                c.insert("name".into(), json!(name));
                if let Some(d) = description {
                    c.insert("description".into(), json!(d));
                }
                if let Some(f) = format {
                    c.insert("format".into(), f.clone());
                }
                tools.push(json!({"type": "custom", "custom": c}));
            }
            Tool::Opaque {
                dialect: Dialect::Chat,
                value,
            } => tools.push(value.clone()),
            Tool::Opaque { dialect, .. } => losses.dropped(
                path,
                format!("a {dialect} built-in or server tool cannot be offered to a Chat upstream"),
            ),
        }
    }
    let tools_gone = tools.is_empty() && !req.tools.is_empty();
    if !tools.is_empty() {
        out.insert("tools".into(), Value::Array(tools));
    }
    if let Some(tc) = &req.tool_choice {
        if tools_gone {
            losses.dropped(
                "tool_choice",
                "every tool was dropped, so the choice is too",
            );
        } else {
            let v = match tc {
                ToolChoice::Auto => json!("auto"),
                ToolChoice::None => json!("none"),
                ToolChoice::Required => json!("required"),
                ToolChoice::Tool { name } => {
                    let custom = req
                        .tools
                        .iter()
                        .any(|t| matches!(t, Tool::Custom { name: n, .. } if n == name));
                    if custom {
                        json!({"type": "custom", "custom": {"name": name}})
                    } else {
                        json!({"type": "function", "function": {"name": name}})
                    }
                }
            };
            out.insert("tool_choice".into(), v);
        }
    }
    if let Some(p) = req.parallel_tool_calls {
        if tools_gone {
            losses.dropped("parallel_tool_calls", "every tool was dropped");
        } else {
            out.insert("parallel_tool_calls".into(), json!(p));
        }
    }
    if let Some(mt) = req.max_tokens {
        let key = if marker(req, MARKER_MAX_TOKENS) == Some("max_tokens") {
            "max_tokens"
        } else {
            "max_completion_tokens"
        };
        out.insert(key.into(), json!(mt));
    }
    if let Some(t) = req.temperature {
        out.insert("temperature".into(), json!(t));
    }
    if let Some(t) = req.top_p {
        out.insert("top_p".into(), json!(t));
    }
    if req.top_k.is_some() {
        losses.dropped("top_k", "Chat has no top_k");
    }
    match req.stop.len() {
        0 => {}
        1 => {
            out.insert("stop".into(), json!(req.stop[0]));
        }
        _ => {
            out.insert("stop".into(), json!(req.stop));
        }
    }
    if let Some(s) = req.seed {
        out.insert("seed".into(), json!(s));
    }
    if let Some(f) = &req.response_format {
        let v = match f {
            ResponseFormat::Text => json!({"type": "text"}),
            ResponseFormat::JsonObject => json!({"type": "json_object"}),
            ResponseFormat::JsonSchema {
                name,
                schema,
                strict,
                description,
            } => {
                let mut o = JsonMap::new();
                let name = name.clone().unwrap_or_else(|| {
                    losses.approximated(
                        "response_format.name",
                        "Chat requires a schema name; `response` was used",
                    );
                    "response".into()
                });
                o.insert("name".into(), json!(name));
                if let Some(d) = description {
                    o.insert("description".into(), json!(d));
                }
                o.insert("schema".into(), schema.clone());
                if let Some(s) = strict {
                    o.insert("strict".into(), json!(s));
                }
                json!({"type": "json_schema", "json_schema": o})
            }
        };
        out.insert("response_format".into(), v);
    }
    if let Some(r) = &req.reasoning {
        encode_reasoning(r, &mut out, losses);
    }
    if let Some(m) = &req.metadata {
        out.insert("metadata".into(), Value::Object(m.clone()));
    }
    if let Some(u) = &req.user {
        let key = if marker(req, MARKER_USER) == Some("safety_identifier") {
            "safety_identifier"
        } else {
            "user"
        };
        out.insert(key.into(), json!(u));
    }
    out.insert("stream".into(), json!(req.stream));
    let stream_options = req
        .extensions
        .iter()
        .find(|e| e.dialect == Dialect::Chat && e.key == "stream_options")
        .map(|e| e.value.clone());
    if req.stream {
        let mut so = match stream_options {
            Some(Value::Object(m)) => m,
            _ => JsonMap::new(),
        };
        so.insert("include_usage".into(), json!(true));
        out.insert("stream_options".into(), Value::Object(so));
    } else if let Some(so) = stream_options {
        out.insert("stream_options".into(), so);
    }
    for e in &req.extensions {
        if e.dialect != Dialect::Chat && e.is_private() {
            continue;
        }
        let k = e.key.as_str();
        if e.dialect == Dialect::Chat
            && matches!(
                k,
                MARKER_MAX_TOKENS | MARKER_USER | MARKER_REASONING | "stream_options"
            )
        {
            continue;
        }
        if !e.portable_to(Dialect::Chat) {
            losses.dropped(k, format!("{} field with no Chat equivalent", e.dialect));
        } else if out.contains_key(k) {
            losses.dropped(k, "extension conflicts with a field already written");
        } else {
            out.insert(k.to_owned(), e.value.clone());
        }
    }
    Value::Object(out)
}

fn encode_reasoning(r: &ReasoningConfig, out: &mut JsonMap, losses: &mut Losses) {
    let effort = if let Some(e) = r.effort {
        Some(e)
    } else if r.enabled == Some(false) {
        Some(Effort::None)
    } else if let Some(b) = r.budget_tokens {
        losses.approximated(
            "reasoning.budget_tokens",
            "Chat takes an effort, not a budget; the nearest effort was used",
        );
        Some(Effort::from_budget(b))
    } else {
        if r.adaptive {
            losses.approximated(
                "reasoning.adaptive",
                "adaptive thinking is the provider's default effort in Chat",
            );
        }
        None
    };
    if let Some(e) = effort {
        out.insert("reasoning_effort".into(), json!(e.as_str()));
    }
    if r.summary.is_some() {
        losses.dropped("reasoning.summary", "Chat returns no reasoning summaries");
    }
    if r.display.is_some() {
        losses.dropped("reasoning.display", "Chat has no thinking display option");
    }
}

fn text_parts_value(texts: &[&str]) -> Value {
    match texts {
        [one] => json!(one),
        _ => Value::Array(
            texts
                .iter()
                .map(|t| json!({"type": "text", "text": t}))
                .collect(),
        ),
    }
}

/// One user-side content part as Chat renders it, or `None` (reported) when Chat cannot hold it.
fn encode_user_part(p: &Part, path: &Path<'_>, losses: &mut Losses) -> Option<Value> {
    match p {
        Part::Text {
            text,
            cache_control,
            citations,
        } => {
            cache_loss(cache_control, path, losses);
            if citations.is_some() {
                losses.dropped(join(path, "citations"), "Chat input text has no citations");
            }
            Some(json!({"type": "text", "text": text}))
        }
        Part::Image {
            source,
            detail,
            cache_control,
        } => {
            cache_loss(cache_control, path, losses);
            let Some(url) = source.to_url() else {
                losses.dropped(path, "Chat takes images only as URLs or data URLs");
                return None;
            };
            let mut o = JsonMap::new();
            o.insert("url".into(), json!(url));
            if let Some(d) = detail {
                o.insert("detail".into(), json!(d));
            }
            Some(json!({"type": "image_url", "image_url": o}))
        }
        Part::Document {
            source,
            title,
            filename,
            cache_control,
        } => {
            cache_loss(cache_control, path, losses);
            if title.is_some() {
                losses.dropped(join(path, "title"), "Chat files have no title");
            }
            let mut o = JsonMap::new();
            match source {
                MediaSource::Base64 { .. } => {
                    o.insert("file_data".into(), json!(source.to_url()));
                }
                MediaSource::FileId { file_id } => {
                    o.insert("file_id".into(), json!(file_id));
                }
                MediaSource::Text { text, .. } => {
                    losses.approximated(path, "a plain-text document is sent as a text part");
                    return Some(json!({"type": "text", "text": text}));
                }
                MediaSource::Url { .. } => {
                    losses.dropped(path, "Chat cannot fetch a document from a URL");
                    return None;
                }
            }
            if let Some(f) = filename {
                o.insert("filename".into(), json!(f));
            }
            Some(json!({"type": "file", "file": o}))
        }
        Part::Audio { data, format } => {
            Some(json!({"type": "input_audio", "input_audio": {"data": data, "format": format}}))
        }
        Part::Opaque {
            dialect: Dialect::Chat,
            value,
        } => Some(value.clone()),
        Part::Opaque { dialect, .. } => {
            losses.dropped(path, format!("{dialect} content has no Chat equivalent"));
            None
        }
        Part::Reasoning { .. } => {
            losses.dropped(
                path,
                "Chat has no reasoning input; provider reasoning state is lost",
            );
            None
        }
        Part::Refusal { .. } | Part::ToolCall { .. } | Part::ToolResult { .. } => {
            losses.dropped(path, "this part cannot appear in a Chat user-side message");
            None
        }
    }
}

fn encode_message(
    msg: &Message,
    path: &Path<'_>,
    reasoning_field: Option<&str>,
    losses: &mut Losses,
    out: &mut Vec<Value>,
) {
    match msg.role {
        Role::Assistant => out.push(encode_assistant(msg, path, reasoning_field, losses)),
        Role::Tool => encode_tool_results(msg, path, losses, out),
        Role::System | Role::Developer | Role::User => {
            let role = match msg.role {
                Role::System => "system",
                Role::Developer => "developer",
                _ => "user",
            };
            let mut o = JsonMap::new();
            o.insert("role".into(), json!(role));
            let mut parts = Vec::new();
            let mut results = Vec::new();
            let content_path = path.key("content");
            for (j, p) in msg.content.iter().enumerate() {
                let pp = content_path.idx(j);
                if let Some(f) = as_message_field(p) {
                    merge_fields(&mut o, f);
                } else if matches!(p, Part::ToolResult { .. }) {
                    results.push(p.clone());
                } else if role != "user" && !matches!(p, Part::Text { .. }) {
                    losses.dropped(pp, "Chat system and developer messages hold text only");
                } else if let Some(v) = encode_user_part(p, &pp, losses) {
                    parts.push(v);
                }
            }
            if !results.is_empty() {
                // Tool results misplaced in a user turn still have to be tool messages.
                encode_tool_results(&Message::new(Role::Tool, results), path, losses, out);
            }
            o.insert("content".into(), parts_value(parts));
            out.push(Value::Object(o));
        }
    }
}

/// A single plain text part becomes a string (the form every server accepts); anything else
/// stays an array.
fn parts_value(mut parts: Vec<Value>) -> Value {
    match parts.as_mut_slice() {
        [] => json!(""),
        [Value::Object(one)]
            if one.len() == 2 && one.get("type").and_then(Value::as_str) == Some("text") =>
        {
            // Moved out rather than cloned: the part is dropped right after.
            one.get_mut("text")
                .map(Value::take)
                .unwrap_or_else(|| json!(""))
        }
        _ => Value::Array(parts),
    }
}

fn merge_fields(o: &mut JsonMap, f: &JsonMap) {
    for (k, v) in f {
        if !o.contains_key(k) {
            o.insert(k.clone(), v.clone());
        }
    }
}

pub(crate) fn tool_call_value(id: &str, name: &str, arguments: &str, kind: ToolKind) -> Value {
    match kind {
        ToolKind::Function => {
            // Zero-argument calls arrive as "" from some servers; Chat clients parse "{}".
            let args = if arguments.is_empty() {
                "{}"
            } else {
                arguments
            };
            json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}})
        }
        ToolKind::Custom => {
            json!({"id": id, "type": "custom", "custom": {"name": name, "input": arguments}})
        }
    }
}

fn encode_assistant(
    msg: &Message,
    path: &Path<'_>,
    reasoning_field: Option<&str>,
    losses: &mut Losses,
) -> Value {
    let mut o = JsonMap::new();
    o.insert("role".into(), json!("assistant"));
    let mut texts = Vec::new();
    let mut refusal: Option<String> = None;
    let mut reasoning: Option<String> = None;
    let mut calls = Vec::new();
    let mut fields = Vec::new();
    let content_path = path.key("content");
    for (j, p) in msg.content.iter().enumerate() {
        let pp = content_path.idx(j);
        match p {
            Part::Text {
                text,
                cache_control,
                citations,
            } => {
                cache_loss(cache_control, &pp, losses);
                if citations.is_some() {
                    losses.dropped(join(&pp, "citations"), "Chat history text has no citations");
                }
                texts.push(text.as_str());
            }
            Part::Refusal { text } => refusal.get_or_insert_with(String::new).push_str(text),
            Part::Reasoning { text, seal } => {
                if reasoning_field.is_some() {
                    if seal.is_some() {
                        losses.dropped(join(&pp, "seal"), "Chat carries no opaque reasoning state");
                    }
                    reasoning.get_or_insert_with(String::new).push_str(text);
                } else {
                    losses.dropped(
                        pp,
                        "Chat has no reasoning input; the reasoning text and provider state are lost",
                    );
                }
            }
            Part::ToolCall {
                id,
                name,
                arguments,
                kind,
            } => calls.push(tool_call_value(id, name, arguments, *kind)),
            _ => {
                if let Some(f) = as_message_field(p) {
                    fields.push(f.clone());
                } else {
                    losses.dropped(
                        pp,
                        "Chat assistant messages hold text, refusals and tool calls only",
                    );
                }
            }
        }
    }
    if let (Some(key), Some(r)) = (reasoning_field, reasoning) {
        o.insert(key.to_owned(), json!(r));
    }
    let content = if texts.is_empty() {
        if calls.is_empty() && refusal.is_none() {
            json!("")
        } else {
            Value::Null
        }
    } else {
        text_parts_value(&texts)
    };
    o.insert("content".into(), content);
    if let Some(r) = refusal {
        o.insert("refusal".into(), json!(r));
    }
    if !calls.is_empty() {
        o.insert("tool_calls".into(), Value::Array(calls));
    }
    for f in &fields {
        merge_fields(&mut o, f);
    }
    Value::Object(o)
}

/// One `tool` message per result; media a tool returned go into a user message after them,
/// because Chat tool messages are text only.
fn encode_tool_results(msg: &Message, path: &Path<'_>, losses: &mut Losses, out: &mut Vec<Value>) {
    let mut follow = Vec::new();
    let content_path = path.key("content");
    for (j, p) in msg.content.iter().enumerate() {
        let pp = content_path.idx(j);
        let Part::ToolResult {
            call_id,
            content,
            is_error,
            kind: _,
            cache_control,
        } = p
        else {
            if as_message_field(p).is_none()
                && let Some(v) = encode_user_part(p, &pp, losses)
            {
                follow.push(v);
            }
            continue;
        };
        cache_loss(cache_control, &pp, losses);
        if *is_error {
            losses.approximated(
                join(&pp, "is_error"),
                "Chat tool messages have no error flag; the result is sent as ordinary text",
            );
        }
        let mut o = JsonMap::new();
        o.insert("role".into(), json!("tool"));
        o.insert("tool_call_id".into(), json!(call_id));
        let mut texts = Vec::new();
        let mut fields = Vec::new();
        let inner_path = pp.key("content");
        for (k, inner) in content.iter().enumerate() {
            let ip = inner_path.idx(k);
            match inner {
                Part::Text {
                    text,
                    cache_control,
                    ..
                } => {
                    cache_loss(cache_control, &ip, losses);
                    texts.push(text.as_str());
                }
                _ => {
                    if let Some(f) = as_message_field(inner) {
                        fields.push(f.clone());
                    } else if let Some(v) = encode_user_part(inner, &ip, losses) {
                        losses.approximated(
                            ip,
                            "Chat tool messages are text only; moved to a following user message",
                        );
                        follow.push(v);
                    }
                }
            }
        }
        // Tool content goes as one string: many Chat-compatible servers take nothing else here.
        if texts.len() > 1 {
            losses.approximated(
                join(&pp, "content"),
                "several text parts of a tool result were joined into one string",
            );
        }
        // One text (the usual case) is written without the copy `join` would make.
        let content = match texts.as_slice() {
            [one] => json!(one),
            _ => json!(texts.join("\n")),
        };
        o.insert("content".into(), content);
        for f in &fields {
            merge_fields(&mut o, f);
        }
        out.push(Value::Object(o));
    }
    if !follow.is_empty() {
        out.push(json!({"role": "user", "content": Value::Array(follow)}));
    }
}
