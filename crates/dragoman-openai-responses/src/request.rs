//! Request bodies (`POST /v1/responses`) ⇄ canonical `Request`: `instructions`, the `input`
//! item list, tools, `tool_choice`, reasoning and `text.format` (reference §3.1–§3.4).

use dragoman_model::{
    CacheControl, DecodeError, Dialect, Effort, Extension, Family, Losses, MediaSource, Message,
    Part, ReasoningConfig, ReasoningSeal, Request, ResponseFormat, Role, Tool, ToolChoice,
    ToolKind,
};
use serde_json::{Map, Value, json};

use crate::{Path, get_str};

/// Top-level fields kept as extensions that shadow a canonical field: the canonical field holds
/// the nearest meaning for other dialects, and this encoder re-emits the original object.
const SHADOW_KEYS: &[&str] = &["tool_choice", "reasoning", "text"];

/// Fields on replayed items that are storage bookkeeping, not content (see the crate docs).
const ITEM_BOOKKEEPING: &[&str] = &["type", "id", "status"];

pub fn decode_request(body: &[u8], losses: &mut Losses) -> Result<Request, DecodeError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| DecodeError::json("body", &e))?;
    let Value::Object(obj) = v else {
        return Err(DecodeError::wrong_type("body", "a JSON object"));
    };
    let mut req = Request::default();
    let mut model = None;
    let has_user = obj.contains_key("user");
    // The body is consumed field by field, so strings and kept values move instead of being
    // copied out of the parsed document.
    for (key, val) in obj {
        match key.as_str() {
            "model" => match val {
                Value::String(s) => model = Some(s),
                _ => return Err(DecodeError::wrong_type("model", "string")),
            },
            "instructions" => match val {
                Value::String(s) => req.system.push(Part::text(s)),
                Value::Null => {}
                other => req
                    .extensions
                    .push(Extension::new(Dialect::Responses, key, other)),
            },
            "input" => match val {
                Value::String(s) => req.messages.push(Message::text(Role::User, s)),
                Value::Array(items) => req.messages = decode_items(&items, losses)?,
                _ => return Err(DecodeError::wrong_type("input", "string or array of items")),
            },
            "tools" => match val {
                Value::Array(tools) => {
                    let root = Path::Root("tools");
                    for (i, t) in tools.iter().enumerate() {
                        req.tools.push(decode_tool(t, root.index(i))?);
                    }
                }
                Value::Null => {}
                _ => return Err(DecodeError::wrong_type("tools", "array")),
            },
            "tool_choice" => decode_tool_choice(&val, &mut req)?,
            "parallel_tool_calls" => req.parallel_tool_calls = opt_bool(&val, &key)?,
            "max_output_tokens" => {
                req.max_tokens = match val {
                    Value::Null => None,
                    v => Some(
                        v.as_u64()
                            .ok_or_else(|| DecodeError::wrong_type(key, "non-negative integer"))?,
                    ),
                }
            }
            "temperature" => req.temperature = opt_f64(&val, &key)?,
            "top_p" => req.top_p = opt_f64(&val, &key)?,
            "reasoning" => decode_reasoning(&val, &mut req)?,
            "text" => decode_text(&val, &mut req)?,
            "metadata" => match val {
                Value::Object(m) => req.metadata = Some(m),
                Value::Null => {}
                _ => return Err(DecodeError::wrong_type("metadata", "object")),
            },
            "user" => match val {
                Value::String(s) => req.user = Some(s),
                Value::Null => {}
                _ => return Err(DecodeError::wrong_type("user", "string")),
            },
            // Both name the end user; `user` is the older name. With both present the second
            // one is kept as an extension.
            "safety_identifier" if !has_user && val.is_string() => {
                if let Value::String(s) = val {
                    req.user = Some(s);
                }
            }
            "stream" => req.stream = opt_bool(&val, &key)?.unwrap_or(false),
            _ => req
                .extensions
                .push(Extension::new(Dialect::Responses, key, val)),
        }
    }
    req.model = model.ok_or_else(|| DecodeError::missing("model"))?;
    Ok(req)
}

fn opt_bool(v: &Value, path: &str) -> Result<Option<bool>, DecodeError> {
    match v {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(*b)),
        _ => Err(DecodeError::wrong_type(path, "boolean")),
    }
}

fn opt_f64(v: &Value, path: &str) -> Result<Option<f64>, DecodeError> {
    match v {
        Value::Null => Ok(None),
        v => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| DecodeError::wrong_type(path, "number")),
    }
}

fn req_str<'a>(v: &'a Value, key: &str, path: Path<'_>) -> Result<&'a str, DecodeError> {
    match v.get(key) {
        Some(Value::String(s)) => Ok(s),
        None | Some(Value::Null) => Err(DecodeError::missing(format!("{path}.{key}"))),
        Some(_) => Err(DecodeError::wrong_type(format!("{path}.{key}"), "string")),
    }
}

/// Reports fields of a known item or part that the canonical model has no place for.
fn report_unknown(v: &Value, known: &[&str], path: Path<'_>, losses: &mut Losses) {
    if let Value::Object(m) = v {
        for (k, val) in m {
            if known.contains(&k.as_str()) || ITEM_BOOKKEEPING.contains(&k.as_str()) {
                continue;
            }
            if val.is_null() || val.as_array().is_some_and(Vec::is_empty) {
                continue;
            }
            losses.dropped(format!("{path}.{k}"), "no canonical place for this field");
        }
    }
}

/// Adds parts to the conversation. Consecutive assistant items (text, calls, reasoning,
/// built-in items) form one canonical assistant turn, and consecutive tool outputs one tool
/// message, because other dialects group them that way.
fn push_parts(messages: &mut Vec<Message>, role: Role, parts: Vec<Part>) {
    if matches!(role, Role::Assistant | Role::Tool)
        && let Some(last) = messages.last_mut()
        && last.role == role
    {
        last.content.extend(parts);
        return;
    }
    messages.push(Message::new(role, parts));
}

pub(crate) fn decode_items(
    items: &[Value],
    losses: &mut Losses,
) -> Result<Vec<Message>, DecodeError> {
    let mut messages = Vec::new();
    let root = Path::Root("input");
    for (i, item) in items.iter().enumerate() {
        let path = root.index(i);
        if !item.is_object() {
            return Err(DecodeError::wrong_type(path.to_string(), "object"));
        }
        let ty = match item.get("type") {
            Some(Value::String(s)) => s.as_str(),
            None | Some(Value::Null) if item.get("role").is_some() => "message",
            None | Some(Value::Null) => return Err(DecodeError::missing(format!("{path}.type"))),
            Some(_) => return Err(DecodeError::wrong_type(format!("{path}.type"), "string")),
        };
        match ty {
            "message" => {
                let (role, parts) = decode_message(item, path, losses)?;
                push_parts(&mut messages, role, parts);
            }
            "function_call" | "custom_tool_call" => {
                let custom = ty == "custom_tool_call";
                let id = req_str(item, "call_id", path)?.to_owned();
                let name = req_str(item, "name", path)?.to_owned();
                let arg_key = if custom { "input" } else { "arguments" };
                let arguments = match item.get(arg_key) {
                    Some(Value::String(s)) => s.clone(),
                    None | Some(Value::Null) => String::new(),
                    Some(other) if !custom => other.to_string(),
                    Some(_) => {
                        return Err(DecodeError::wrong_type(
                            format!("{path}.{arg_key}"),
                            "string",
                        ));
                    }
                };
                report_unknown(item, &["call_id", "name", arg_key], path, losses);
                let kind = if custom {
                    ToolKind::Custom
                } else {
                    ToolKind::Function
                };
                push_parts(
                    &mut messages,
                    Role::Assistant,
                    vec![Part::ToolCall {
                        id,
                        name,
                        arguments,
                        kind,
                    }],
                );
            }
            "function_call_output" | "custom_tool_call_output" => {
                let call_id = req_str(item, "call_id", path)?.to_owned();
                let content = match item.get("output") {
                    Some(Value::String(s)) if s.is_empty() => Vec::new(),
                    Some(Value::String(s)) => vec![Part::text(s.clone())],
                    Some(Value::Array(parts)) => {
                        let mut out = Vec::new();
                        let opath = path.key("output");
                        for (j, p) in parts.iter().enumerate() {
                            out.push(
                                decode_content_part(p, opath.index(j), losses)?
                                    .unwrap_or_else(|| opaque(p)),
                            );
                        }
                        out
                    }
                    None | Some(Value::Null) => {
                        return Err(DecodeError::missing(format!("{path}.output")));
                    }
                    Some(_) => {
                        return Err(DecodeError::wrong_type(
                            format!("{path}.output"),
                            "string or array",
                        ));
                    }
                };
                report_unknown(item, &["call_id", "output"], path, losses);
                let kind = if ty == "custom_tool_call_output" {
                    ToolKind::Custom
                } else {
                    ToolKind::Function
                };
                push_parts(
                    &mut messages,
                    Role::Tool,
                    vec![Part::ToolResult {
                        call_id,
                        content,
                        is_error: false,
                        kind,
                        cache_control: None,
                    }],
                );
            }
            "reasoning" => {
                let part = decode_reasoning_item(item, path)?;
                report_unknown(
                    item,
                    &["summary", "content", "encrypted_content"],
                    path,
                    losses,
                );
                push_parts(&mut messages, Role::Assistant, vec![part]);
            }
            other => {
                let role = if other.ends_with("_output") {
                    Role::User
                } else {
                    Role::Assistant
                };
                push_parts(&mut messages, role, vec![opaque(item)]);
            }
        }
    }
    Ok(messages)
}

fn opaque(v: &Value) -> Part {
    Part::Opaque {
        dialect: Dialect::Responses,
        value: v.clone(),
    }
}

pub(crate) fn decode_message(
    item: &Value,
    path: Path<'_>,
    losses: &mut Losses,
) -> Result<(Role, Vec<Part>), DecodeError> {
    let role = match item.get("role").and_then(Value::as_str) {
        Some("user") => Role::User,
        Some("assistant") => Role::Assistant,
        Some("system") => Role::System,
        Some("developer") => Role::Developer,
        Some(_) => {
            return Err(DecodeError::new(
                format!("{path}.role"),
                "expected user, assistant, system or developer",
            ));
        }
        None => return Err(DecodeError::missing(format!("{path}.role"))),
    };
    let parts = match item.get("content") {
        Some(Value::String(s)) if s.is_empty() => Vec::new(),
        Some(Value::String(s)) => vec![Part::text(s.clone())],
        Some(Value::Array(list)) => {
            let mut parts = Vec::new();
            let cpath = path.key("content");
            for (j, p) in list.iter().enumerate() {
                match decode_content_part(p, cpath.index(j), losses)? {
                    Some(part) => parts.push(part),
                    // A content type the model does not know: keep the whole item, so that
                    // this dialect re-emits it unchanged and others report it.
                    None => return Ok((role, vec![opaque(item)])),
                }
            }
            parts
        }
        None | Some(Value::Null) => Vec::new(),
        Some(_) => {
            return Err(DecodeError::wrong_type(
                format!("{path}.content"),
                "string or array",
            ));
        }
    };
    report_unknown(item, &["role", "content"], path, losses);
    Ok((role, parts))
}

/// One content part; `None` for a type the canonical model has no part for.
fn decode_content_part(
    p: &Value,
    path: Path<'_>,
    losses: &mut Losses,
) -> Result<Option<Part>, DecodeError> {
    let Some(ty) = get_str(p, "type") else {
        return Err(DecodeError::missing(format!("{path}.type")));
    };
    let part = match ty {
        "input_text" | "output_text" | "text" => {
            let text = req_str(p, "text", path)?.to_owned();
            let cache_control = match p.get("prompt_cache_breakpoint") {
                Some(Value::Object(b)) => Some(CacheControl {
                    ttl: b.get("ttl").and_then(Value::as_str).map(str::to_owned),
                }),
                _ => None,
            };
            let citations = match p.get("annotations") {
                Some(Value::Array(a)) if !a.is_empty() => {
                    Some((Dialect::Responses, Value::Array(a.clone())))
                }
                _ => None,
            };
            report_unknown(
                p,
                // Non-empty `logprobs` are reported: they have no canonical place.
                &["text", "prompt_cache_breakpoint", "annotations"],
                path,
                losses,
            );
            Part::Text {
                text,
                cache_control,
                citations,
            }
        }
        "refusal" => Part::Refusal {
            text: req_str(p, "refusal", path)?.to_owned(),
        },
        "input_image" => {
            let source = if let Some(url) = get_str(p, "image_url") {
                MediaSource::from_url(url)
            } else if let Some(id) = get_str(p, "file_id") {
                MediaSource::FileId {
                    file_id: id.to_owned(),
                }
            } else {
                return Err(DecodeError::missing(format!("{path}.image_url")));
            };
            report_unknown(p, &["image_url", "file_id", "detail"], path, losses);
            Part::Image {
                source,
                detail: get_str(p, "detail").map(str::to_owned),
                cache_control: None,
            }
        }
        "input_file" => {
            let filename = get_str(p, "filename").map(str::to_owned);
            let source = if let Some(data) = get_str(p, "file_data") {
                if data.starts_with("data:") {
                    MediaSource::from_url(data)
                } else {
                    MediaSource::Base64 {
                        media_type: guess_mime(filename.as_deref()).to_owned(),
                        data: data.to_owned(),
                    }
                }
            } else if let Some(url) = get_str(p, "file_url") {
                MediaSource::Url {
                    url: url.to_owned(),
                }
            } else if let Some(id) = get_str(p, "file_id") {
                MediaSource::FileId {
                    file_id: id.to_owned(),
                }
            } else {
                return Err(DecodeError::missing(format!("{path}.file_data")));
            };
            report_unknown(
                p,
                &["file_data", "file_url", "file_id", "filename"],
                path,
                losses,
            );
            Part::Document {
                source,
                title: None,
                filename,
                cache_control: None,
            }
        }
        _ => return Ok(None),
    };
    Ok(Some(part))
}

fn default_filename(media_type: &str) -> String {
    match media_type {
        "application/pdf" => "document.pdf".into(),
        "text/plain" => "document.txt".into(),
        _ => "document".into(),
    }
}

fn guess_mime(filename: Option<&str>) -> &'static str {
    let ext = filename
        .and_then(|f| f.rsplit_once('.'))
        .map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("pdf") => "application/pdf",
        Some("txt") => "text/plain",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        _ => "application/octet-stream",
    }
}

/// A reasoning item's visible text: summary parts joined by a blank line, or the raw
/// `reasoning_text` content when there is no summary.
pub(crate) fn reasoning_text(item: &Value) -> String {
    let texts = |key: &str| -> Vec<String> {
        item.get(key)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|p| get_str(p, "text").map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let summary = texts("summary");
    if summary.is_empty() {
        texts("content").join("\n\n")
    } else {
        summary.join("\n\n")
    }
}

/// The seal of a reasoning item: an envelope from another family unwrapped, else OpenAI's own
/// encrypted content with its item id. An item without encrypted content only makes sense to a
/// server that stored it, so it has no seal (and its id goes with the other storage handles).
pub(crate) fn reasoning_seal(item: &Value) -> Option<ReasoningSeal> {
    let ec = get_str(item, "encrypted_content")?;
    Some(ReasoningSeal::unwrap(ec).unwrap_or_else(|| {
        ReasoningSeal::openai_encrypted(get_str(item, "id").map(str::to_owned), ec)
    }))
}

pub(crate) fn decode_reasoning_item(item: &Value, path: Path<'_>) -> Result<Part, DecodeError> {
    if let Some(s) = item.get("summary")
        && !s.is_array()
        && !s.is_null()
    {
        return Err(DecodeError::wrong_type(format!("{path}.summary"), "array"));
    }
    Ok(Part::Reasoning {
        text: reasoning_text(item),
        seal: reasoning_seal(item),
    })
}

fn decode_tool(t: &Value, path: Path<'_>) -> Result<Tool, DecodeError> {
    let Some(ty) = get_str(t, "type") else {
        return Err(DecodeError::missing(format!("{path}.type")));
    };
    let known = |keys: &[&str]| {
        t.as_object()
            .is_some_and(|m| m.keys().all(|k| keys.contains(&k.as_str())))
    };
    Ok(match ty {
        "function" if known(&["type", "name", "description", "parameters", "strict"]) => {
            let parameters = match t.get("parameters") {
                Some(Value::Null) | None => json!({"type": "object", "properties": {}}),
                Some(p) => p.clone(),
            };
            Tool::Function {
                name: req_str(t, "name", path)?.to_owned(),
                description: get_str(t, "description").map(str::to_owned),
                parameters,
                strict: t.get("strict").and_then(Value::as_bool),
                cache_control: None,
            }
        }
        "custom" if known(&["type", "name", "description", "format"]) => Tool::Custom {
            name: req_str(t, "name", path)?.to_owned(),
            description: get_str(t, "description").map(str::to_owned),
            format: t.get("format").filter(|f| !f.is_null()).cloned(),
        },
        // Built-ins, and function tools with fields the model has no place for (deferred
        // loading, output schemas), are kept whole.
        _ => Tool::Opaque {
            dialect: Dialect::Responses,
            value: t.clone(),
        },
    })
}

fn decode_tool_choice(v: &Value, req: &mut Request) -> Result<(), DecodeError> {
    let choice = match v {
        Value::Null => return Ok(()),
        Value::String(s) => match s.as_str() {
            "auto" => ToolChoice::Auto,
            "none" => ToolChoice::None,
            "required" => ToolChoice::Required,
            _ => {
                return Err(DecodeError::new(
                    "tool_choice",
                    "expected auto, none or required",
                ));
            }
        },
        Value::Object(_) => {
            match (get_str(v, "type"), get_str(v, "name")) {
                (Some("function" | "custom"), Some(name))
                    if v.as_object().is_some_and(|m| m.len() == 2) =>
                {
                    ToolChoice::Tool {
                        name: name.to_owned(),
                    }
                }
                (Some(_), _) => {
                    // allowed_tools, built-in and MCP choices: the canonical field gets the
                    // nearest meaning, the original object is kept for this dialect.
                    req.extensions.push(Extension::new(
                        Dialect::Responses,
                        "tool_choice",
                        v.clone(),
                    ));
                    match (get_str(v, "type"), get_str(v, "mode")) {
                        (Some("allowed_tools"), Some("auto")) => ToolChoice::Auto,
                        _ => ToolChoice::Required,
                    }
                }
                (None, _) => return Err(DecodeError::missing("tool_choice.type")),
            }
        }
        _ => return Err(DecodeError::wrong_type("tool_choice", "string or object")),
    };
    req.tool_choice = Some(choice);
    Ok(())
}

fn decode_reasoning(v: &Value, req: &mut Request) -> Result<(), DecodeError> {
    let Value::Object(m) = v else {
        if v.is_null() {
            return Ok(());
        }
        return Err(DecodeError::wrong_type("reasoning", "object"));
    };
    let mut cfg = ReasoningConfig::default();
    let mut exact = true;
    for (k, val) in m {
        match (k.as_str(), val) {
            (_, Value::Null) => {}
            ("effort", Value::String(s)) => match Effort::parse(s) {
                Some(Effort::None) => {
                    cfg.enabled = Some(false);
                    cfg.effort = Some(Effort::None);
                }
                Some(Effort::Max) | None => exact = false,
                Some(e) => {
                    // An OpenAI effort asks for reasoning: a budget-based upstream must switch
                    // thinking on, not merely pass an effort hint.
                    cfg.enabled = Some(true);
                    cfg.effort = Some(e);
                }
            },
            ("summary", Value::String(s)) => cfg.summary = Some(s.clone()),
            _ => exact = false,
        }
    }
    if !exact {
        req.extensions
            .push(Extension::new(Dialect::Responses, "reasoning", v.clone()));
    }
    req.reasoning = Some(cfg);
    Ok(())
}

fn decode_text(v: &Value, req: &mut Request) -> Result<(), DecodeError> {
    let Value::Object(m) = v else {
        if v.is_null() {
            return Ok(());
        }
        return Err(DecodeError::wrong_type("text", "object"));
    };
    let mut rest = m.clone();
    if let Some(f) = rest.remove("format").filter(|f| !f.is_null()) {
        req.response_format = Some(match get_str(&f, "type") {
            Some("text") => ResponseFormat::Text,
            Some("json_object") => ResponseFormat::JsonObject,
            Some("json_schema") => ResponseFormat::JsonSchema {
                name: get_str(&f, "name").map(str::to_owned),
                schema: f
                    .get("schema")
                    .cloned()
                    .ok_or_else(|| DecodeError::missing("text.format.schema"))?,
                strict: f.get("strict").and_then(Value::as_bool),
                description: get_str(&f, "description").map(str::to_owned),
            },
            _ => {
                return Err(DecodeError::new(
                    "text.format.type",
                    "expected text, json_object or json_schema",
                ));
            }
        });
    }
    if !rest.is_empty() {
        // `verbosity` and future siblings of `format`.
        req.extensions.push(Extension::new(
            Dialect::Responses,
            "text",
            Value::Object(rest),
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Encoding

struct Enc<'a> {
    losses: &'a mut Losses,
    /// Whether prompt-cache breakpoints may be sent: only when the client itself opted in to
    /// explicit caching (`prompt_cache_options`), since a breakpoint alone may be rejected.
    breakpoints: bool,
}

pub fn encode_request(req: &Request, losses: &mut Losses) -> Value {
    let from_responses = req
        .extensions
        .iter()
        .any(|e| e.dialect == Dialect::Responses);
    let mut enc = Enc {
        losses,
        breakpoints: req
            .extensions
            .iter()
            .any(|e| e.dialect == Dialect::Responses && e.key == "prompt_cache_options"),
    };
    let mut out = Map::new();
    out.insert("model".into(), Value::String(req.model.clone()));

    if !req.system.is_empty() {
        let mut texts = Vec::new();
        for (i, p) in req.system.iter().enumerate() {
            match p {
                Part::Text {
                    text,
                    cache_control,
                    ..
                } => {
                    if cache_control.is_some() {
                        enc.losses.approximated(
                            format!("system[{i}].cache_control"),
                            "instructions carry no cache breakpoints",
                        );
                    }
                    texts.push(text.as_str());
                }
                _ => enc
                    .losses
                    .dropped(format!("system[{i}]"), "instructions hold text only"),
            }
        }
        if texts.len() > 1 {
            enc.losses.approximated(
                "system",
                "several system blocks joined into one instructions string",
            );
        }
        out.insert("instructions".into(), Value::String(texts.join("\n\n")));
    }

    let mut items = Vec::new();
    let root = Path::Root("messages");
    for (i, m) in req.messages.iter().enumerate() {
        enc.message(m, root.index(i), &mut items);
    }
    out.insert("input".into(), Value::Array(items));

    let mut tools_lost = false;
    if !req.tools.is_empty() {
        let mut tools = Vec::new();
        let root = Path::Root("tools");
        for (i, t) in req.tools.iter().enumerate() {
            if let Some(t) = enc.tool(t, root.index(i)) {
                tools.push(t);
            }
        }
        // A tool choice without tools is rejected upstream (traps §45).
        tools_lost = tools.is_empty();
        if !tools_lost {
            out.insert("tools".into(), Value::Array(tools));
        }
    }
    let shadow = |key: &str| {
        req.extensions
            .iter()
            .find(|e| e.dialect == Dialect::Responses && e.key == key)
            .map(|e| e.value.clone())
    };
    if tools_lost {
        if req.tool_choice.is_some() {
            enc.losses.dropped(
                "tool_choice",
                "every tool was dropped, so the choice was too",
            );
        }
    } else if let Some(tc) = shadow("tool_choice") {
        out.insert("tool_choice".into(), tc);
    } else if let Some(tc) = &req.tool_choice {
        out.insert("tool_choice".into(), encode_tool_choice(tc, &req.tools));
    }
    if let Some(p) = req.parallel_tool_calls {
        out.insert("parallel_tool_calls".into(), Value::Bool(p));
    }
    if let Some(n) = req.max_tokens {
        out.insert("max_output_tokens".into(), json!(n));
    }
    if let Some(t) = req.temperature {
        out.insert("temperature".into(), json!(t));
    }
    if let Some(t) = req.top_p {
        out.insert("top_p".into(), json!(t));
    }
    if req.top_k.is_some() {
        enc.losses.dropped("top_k", "Responses has no top_k");
    }
    if !req.stop.is_empty() {
        enc.losses
            .dropped("stop", "Responses has no stop sequences");
    }
    if req.seed.is_some() {
        enc.losses.dropped("seed", "Responses has no seed");
    }
    if let Some(r) = shadow("reasoning") {
        out.insert("reasoning".into(), r);
    } else if let Some(cfg) = &req.reasoning {
        out.insert("reasoning".into(), enc.reasoning_config(cfg));
    }
    let mut text = match shadow("text") {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    if let Some(f) = &req.response_format {
        text.insert("format".into(), encode_format(f));
    }
    if !text.is_empty() {
        out.insert("text".into(), Value::Object(text));
    }
    if let Some(m) = &req.metadata {
        out.insert("metadata".into(), Value::Object(m.clone()));
    }
    if let Some(u) = &req.user {
        out.insert("user".into(), Value::String(u.clone()));
    }
    if req.stream {
        out.insert("stream".into(), Value::Bool(true));
    }
    // A request from another dialect has no client that could chain on stored responses, and
    // its reasoning must come back to us to be replayed (crate docs; traps §37).
    if !from_responses {
        out.insert("store".into(), Value::Bool(false));
        out.insert("include".into(), json!(["reasoning.encrypted_content"]));
    }
    for e in &req.extensions {
        if e.dialect != Dialect::Responses && e.is_private() {
            continue;
        }
        if e.dialect == Dialect::Responses && SHADOW_KEYS.contains(&e.key.as_str()) {
            continue;
        }
        if e.portable_to(Dialect::Responses) {
            if e.dialect == Dialect::Responses || !out.contains_key(&e.key) || e.key == "store" {
                out.insert(e.key.clone(), e.value.clone());
            }
        } else {
            enc.losses.dropped(
                format!("extensions.{}", e.key),
                format!("{} field has no Responses equivalent", e.dialect),
            );
        }
    }
    Value::Object(out)
}

fn encode_tool_choice(tc: &ToolChoice, tools: &[Tool]) -> Value {
    match tc {
        ToolChoice::Auto => json!("auto"),
        ToolChoice::None => json!("none"),
        ToolChoice::Required => json!("required"),
        ToolChoice::Tool { name } => {
            let custom = tools
                .iter()
                .any(|t| matches!(t, Tool::Custom { name: n, .. } if n == name));
            json!({"type": if custom { "custom" } else { "function" }, "name": name})
        }
    }
}

fn encode_format(f: &ResponseFormat) -> Value {
    match f {
        ResponseFormat::Text => json!({"type": "text"}),
        ResponseFormat::JsonObject => json!({"type": "json_object"}),
        ResponseFormat::JsonSchema {
            name,
            schema,
            strict,
            description,
        } => {
            let mut m = Map::new();
            m.insert("type".into(), json!("json_schema"));
            m.insert(
                "name".into(),
                json!(name.clone().unwrap_or_else(|| "response".to_owned())),
            );
            m.insert("schema".into(), schema.clone());
            if let Some(s) = strict {
                m.insert("strict".into(), json!(s));
            }
            if let Some(d) = description {
                m.insert("description".into(), json!(d));
            }
            Value::Object(m)
        }
    }
}

fn text_part(text: &str, input: bool) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert(
        "type".into(),
        json!(if input { "input_text" } else { "output_text" }),
    );
    m.insert("text".into(), json!(text));
    m
}

impl Enc<'_> {
    fn reasoning_config(&mut self, cfg: &ReasoningConfig) -> Value {
        let mut m = Map::new();
        let effort = if cfg.enabled == Some(false) {
            Some(Effort::None)
        } else if let Some(e) = cfg.effort {
            if e == Effort::Max {
                self.losses
                    .approximated("reasoning.effort", "max is sent as xhigh");
                Some(Effort::Xhigh)
            } else {
                Some(e)
            }
        } else if let Some(b) = cfg.budget_tokens {
            self.losses.approximated(
                "reasoning.budget_tokens",
                "thinking budget sent as the nearest effort",
            );
            Some(Effort::from_budget(b))
        } else {
            None
        };
        if let Some(e) = effort {
            m.insert("effort".into(), json!(e.as_str()));
        }
        if let Some(s) = &cfg.summary {
            m.insert("summary".into(), json!(s));
        }
        if cfg.display.is_some() {
            self.losses.dropped(
                "reasoning.display",
                "Responses has no thinking display switch",
            );
        }
        Value::Object(m)
    }

    fn tool(&mut self, t: &Tool, path: Path<'_>) -> Option<Value> {
        match t {
            Tool::Function {
                name,
                description,
                parameters,
                strict,
                cache_control,
            } => {
                if cache_control.is_some() {
                    self.losses.dropped(
                        format!("{path}.cache_control"),
                        "no cache breakpoints on tools",
                    );
                }
                let mut m = Map::new();
                m.insert("type".into(), json!("function"));
                m.insert("name".into(), json!(name));
                if let Some(d) = description {
                    m.insert("description".into(), json!(d));
                }
                m.insert("parameters".into(), parameters.clone());
                // Responses defaults `strict` to true, which rejects most schemas written for
                // other dialects; unset means not strict.
                m.insert("strict".into(), json!(strict.unwrap_or(false)));
                Some(Value::Object(m))
            }
            Tool::Custom {
                name,
                description,
                format,
            } => {
                let mut m = Map::new();
                m.insert("type".into(), json!("custom"));
                m.insert("name".into(), json!(name));
                if let Some(d) = description {
                    m.insert("description".into(), json!(d));
                }
                if let Some(f) = format {
                    m.insert("format".into(), f.clone());
                }
                Some(Value::Object(m))
            }
            Tool::Opaque {
                dialect: Dialect::Responses,
                value,
            } => Some(value.clone()),
            Tool::Opaque { dialect, .. } => {
                self.losses.dropped(
                    path.to_string(),
                    format!("{dialect} tool has no Responses equivalent"),
                );
                None
            }
        }
    }

    fn cache_breakpoint(
        &mut self,
        cc: &Option<CacheControl>,
        path: Path<'_>,
        m: &mut Map<String, Value>,
    ) {
        let Some(cc) = cc else { return };
        if !self.breakpoints {
            self.losses.dropped(
                format!("{path}.cache_control"),
                "Responses caches prefixes automatically",
            );
            return;
        }
        let mut b = Map::new();
        b.insert("mode".into(), json!("explicit"));
        if let Some(ttl) = &cc.ttl {
            b.insert("ttl".into(), json!(ttl));
        }
        m.insert("prompt_cache_breakpoint".into(), Value::Object(b));
    }

    /// A content part inside a message or tool output; `None` when it has no Responses form.
    fn content_part(&mut self, p: &Part, input: bool, path: Path<'_>) -> Option<Value> {
        match p {
            Part::Text {
                text,
                cache_control,
                citations,
            } => {
                let mut m = text_part(text, input);
                self.cache_breakpoint(cache_control, path, &mut m);
                if !input {
                    let ann = match citations {
                        Some((Dialect::Responses, a @ Value::Array(_))) => a.clone(),
                        Some(_) => {
                            self.losses.dropped(
                                format!("{path}.citations"),
                                "citations of another dialect",
                            );
                            json!([])
                        }
                        None => json!([]),
                    };
                    m.insert("annotations".into(), ann);
                } else if citations.is_some() {
                    self.losses.dropped(
                        format!("{path}.citations"),
                        "input text carries no annotations",
                    );
                }
                Some(Value::Object(m))
            }
            Part::Refusal { text } if !input => Some(json!({"type": "refusal", "refusal": text})),
            // Assistant history holds only output text and refusals.
            Part::Image { .. } | Part::Document { .. } if !input => {
                self.losses.dropped(
                    path.to_string(),
                    format!(
                        "{} part in an assistant turn has no Responses form",
                        part_name(p)
                    ),
                );
                None
            }
            Part::Image {
                source,
                detail,
                cache_control,
            } => {
                if cache_control.is_some() {
                    self.losses.dropped(
                        format!("{path}.cache_control"),
                        "no cache breakpoints on images",
                    );
                }
                let mut m = Map::new();
                m.insert("type".into(), json!("input_image"));
                match source {
                    MediaSource::FileId { file_id } => {
                        m.insert("file_id".into(), json!(file_id));
                    }
                    MediaSource::Text { .. } => {
                        self.losses
                            .dropped(path.to_string(), "a text source is not an image");
                        return None;
                    }
                    other => {
                        m.insert("image_url".into(), json!(other.to_url()));
                    }
                }
                if let Some(d) = detail {
                    m.insert("detail".into(), json!(d));
                }
                Some(Value::Object(m))
            }
            Part::Document {
                source,
                title,
                filename,
                cache_control,
            } => {
                if cache_control.is_some() {
                    self.losses.dropped(
                        format!("{path}.cache_control"),
                        "no cache breakpoints on files",
                    );
                }
                if title.is_some() && filename.is_some() {
                    self.losses
                        .dropped(format!("{path}.title"), "input_file has no title");
                }
                let mut m = Map::new();
                match source {
                    MediaSource::Text { text, .. } => {
                        self.losses.approximated(
                            path.to_string(),
                            "plain-text document sent as input_text",
                        );
                        return Some(Value::Object(text_part(text, true)));
                    }
                    MediaSource::Base64 { .. } => {
                        m.insert("type".into(), json!("input_file"));
                        m.insert("file_data".into(), json!(source.to_url()));
                    }
                    MediaSource::Url { url } => {
                        m.insert("type".into(), json!("input_file"));
                        m.insert("file_url".into(), json!(url));
                    }
                    MediaSource::FileId { file_id } => {
                        m.insert("type".into(), json!("input_file"));
                        m.insert("file_id".into(), json!(file_id));
                    }
                }
                // Inline file data needs a filename upstream; documents from other dialects
                // carry at most a title.
                let name = match (filename, title, source) {
                    (Some(f), _, _) => Some(f.clone()),
                    (None, Some(t), MediaSource::Base64 { .. }) => {
                        self.losses
                            .approximated(format!("{path}.title"), "title sent as the filename");
                        Some(t.clone())
                    }
                    (None, None, MediaSource::Base64 { media_type, .. }) => {
                        Some(default_filename(media_type))
                    }
                    (None, Some(_), _) => {
                        self.losses
                            .dropped(format!("{path}.title"), "input_file has no title");
                        None
                    }
                    (None, None, _) => None,
                };
                if let Some(f) = name {
                    m.insert("filename".into(), json!(f));
                }
                Some(Value::Object(m))
            }
            Part::Opaque {
                dialect: Dialect::Responses,
                value,
            } => Some(value.clone()),
            other => {
                self.losses.dropped(
                    path.to_string(),
                    format!("{} part has no place here in Responses", part_name(other)),
                );
                None
            }
        }
    }

    fn message(&mut self, m: &Message, path: Path<'_>, items: &mut Vec<Value>) {
        let role = match m.role {
            Role::System => "system",
            Role::Developer => "developer",
            Role::User | Role::Tool => "user",
            Role::Assistant => "assistant",
        };
        let assistant = m.role == Role::Assistant;
        let mut group: Vec<Value> = Vec::new();
        let start = items.len();
        let flush = |group: &mut Vec<Value>, items: &mut Vec<Value>| {
            if !group.is_empty() {
                items.push(
                    json!({"type": "message", "role": role, "content": std::mem::take(group)}),
                );
            }
        };
        let cpath = path.key("content");
        for (j, p) in m.content.iter().enumerate() {
            let ppath = cpath.index(j);
            match p {
                Part::ToolResult {
                    call_id,
                    content,
                    is_error,
                    kind,
                    cache_control,
                } => {
                    flush(&mut group, items);
                    if *is_error {
                        self.losses.approximated(
                            format!("{ppath}.is_error"),
                            "Responses tool outputs have no error flag",
                        );
                    }
                    if cache_control.is_some() {
                        self.losses.dropped(
                            format!("{ppath}.cache_control"),
                            "no cache breakpoints on tool outputs",
                        );
                    }
                    let output = self.tool_output(content, ppath);
                    let ty = match kind {
                        ToolKind::Function => "function_call_output",
                        ToolKind::Custom => "custom_tool_call_output",
                    };
                    items.push(json!({"type": ty, "call_id": call_id, "output": output}));
                }
                Part::ToolCall {
                    id,
                    name,
                    arguments,
                    kind,
                } if assistant => {
                    flush(&mut group, items);
                    items.push(match kind {
                        ToolKind::Function => json!({
                            "type": "function_call",
                            "call_id": id,
                            "name": name,
                            // The canonical "" means no arguments; OpenAI wants a JSON object.
                            "arguments": if arguments.is_empty() { "{}" } else { arguments.as_str() },
                        }),
                        ToolKind::Custom => json!({
                            "type": "custom_tool_call",
                            "call_id": id,
                            "name": name,
                            "input": arguments,
                        }),
                    });
                }
                Part::Reasoning { text, seal } if assistant => {
                    flush(&mut group, items);
                    match seal {
                        Some(s) if s.family == Family::OpenAi => {
                            let mut r = Map::new();
                            r.insert("type".into(), json!("reasoning"));
                            if let Some(id) = &s.item_id {
                                r.insert("id".into(), json!(id));
                            }
                            // The canonical model keeps one text, so several summary parts come
                            // back as one; the encrypted content is what OpenAI checks.
                            let summary = if text.is_empty() {
                                json!([])
                            } else {
                                json!([{"type": "summary_text", "text": text}])
                            };
                            r.insert("summary".into(), summary);
                            r.insert("encrypted_content".into(), json!(s.payload));
                            items.push(Value::Object(r));
                        }
                        Some(_) => self.losses.dropped(
                            ppath.to_string(),
                            "reasoning state of another provider family cannot be sent to OpenAI",
                        ),
                        None => self.losses.dropped(
                            ppath.to_string(),
                            "reasoning without encrypted content cannot be replayed to OpenAI",
                        ),
                    }
                }
                Part::Opaque {
                    dialect: Dialect::Responses,
                    value,
                } => {
                    flush(&mut group, items);
                    items.push(value.clone());
                }
                Part::Opaque { dialect, .. } => {
                    self.losses.dropped(
                        ppath.to_string(),
                        format!("{dialect} content has no Responses equivalent"),
                    );
                }
                other => {
                    if m.role == Role::Tool {
                        self.losses.approximated(
                            ppath.to_string(),
                            "non-result content of a tool message sent as a user message",
                        );
                    }
                    if let Some(v) = self.content_part(other, !assistant, ppath) {
                        group.push(v);
                    }
                }
            }
        }
        flush(&mut group, items);
        if items.len() == start && m.content.is_empty() {
            items.push(json!({"type": "message", "role": role, "content": []}));
        }
    }

    fn tool_output(&mut self, content: &[Part], path: Path<'_>) -> Value {
        match content {
            [] => json!(""),
            [
                Part::Text {
                    text,
                    cache_control: None,
                    citations: None,
                },
            ] => json!(text),
            parts => {
                let mut out = Vec::new();
                let cpath = path.key("content");
                for (k, p) in parts.iter().enumerate() {
                    let ppath = cpath.index(k);
                    let p = match p {
                        Part::Text { text, .. } => Some(Value::Object(text_part(text, true))),
                        other => self.content_part(other, true, ppath),
                    };
                    out.extend(p);
                }
                Value::Array(out)
            }
        }
    }
}

pub(crate) fn part_name(p: &Part) -> &'static str {
    match p {
        Part::Text { .. } => "text",
        Part::Image { .. } => "image",
        Part::Document { .. } => "document",
        Part::Audio { .. } => "audio",
        Part::ToolCall { .. } => "tool call",
        Part::ToolResult { .. } => "tool result",
        Part::Reasoning { .. } => "reasoning",
        Part::Refusal { .. } => "refusal",
        Part::Opaque { .. } => "opaque",
    }
}

/// The items of a decoded request that only the Responses server that made them can read
/// (`item_reference` items, and `compaction` items it sealed), named: a request carrying one
/// cannot be sent to an upstream of another dialect without changing the conversation.
pub fn item_references(req: &Request) -> Vec<String> {
    req.messages
        .iter()
        .flat_map(|m| &m.content)
        .filter_map(|p| match p {
            Part::Opaque {
                dialect: Dialect::Responses,
                value,
            } => {
                let id = value.get("id").and_then(Value::as_str).unwrap_or("(no id)");
                match value.get("type").and_then(Value::as_str) {
                    Some("item_reference") => Some(format!("item_reference `{id}`")),
                    // Sealed by the server that made it; a gateway's own compactions are
                    // opened before they get here.
                    Some("compaction") => Some(format!("compaction item `{id}`")),
                    _ => None,
                }
            }
            _ => None,
        })
        .collect()
}
