//! Converse request ⇄ canonical `Request`, and the content-block codec the response and stream
//! codecs share.

use std::collections::BTreeSet;

use base64::Engine as _;
use dragoman_model::{
    CacheControl, DecodeError, Dialect, Effort, Extension, Family, Losses, MediaSource, Message,
    Part, ReasoningConfig, ReasoningSeal, Request, ResponseFormat, Role, SealKind, Tool,
    ToolChoice, ToolKind,
};
use serde_json::{Map, Value, json};

use crate::{AMRF, INF, OUTCFG, as_arr, as_obj, as_str};

/// Top-level fields read into canonical fields; any other key becomes an extension.
const KNOWN_TOP: &[&str] = &[
    "messages",
    "system",
    "inferenceConfig",
    "toolConfig",
    "additionalModelRequestFields",
    "outputConfig",
    "requestMetadata",
    "modelId",
];

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Where the content being coded goes, which decides what may be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// To Bedrock: only Anthropic-family reasoning state can be verified there.
    Upstream,
    /// To a Bedrock client: any provider's state rides in `signature`, wrapped.
    Client,
}

/// The seal a `signature` stands for: an envelope this crate wrote for another provider's
/// state, or Anthropic's own signature.
pub(crate) fn signature_seal(sig: &str) -> Option<ReasoningSeal> {
    if sig.is_empty() {
        return None;
    }
    Some(ReasoningSeal::unwrap(sig).unwrap_or_else(|| ReasoningSeal::anthropic_signature(sig)))
}

/// The seal of a `redactedContent` blob. For Claude its base64 decodes to Anthropic's
/// `redacted_thinking.data`; the seal holds that, so the block crosses to Anthropic unchanged.
/// A blob that does not come back byte for byte from that reading (another vendor's binary
/// state) has no canonical form: `None`, and the caller keeps the block whole.
pub(crate) fn redacted_seal(blob: &str) -> Option<ReasoningSeal> {
    let raw = B64.decode(blob).ok()?;
    let data = String::from_utf8(raw).ok()?;
    (B64.encode(&data) == blob).then(|| ReasoningSeal::anthropic_redacted(data))
}

pub(crate) fn redacted_blob(seal: &ReasoningSeal) -> String {
    B64.encode(&seal.payload)
}

/// MIME type ⇄ Bedrock document format.
const DOC_FORMATS: &[(&str, &str)] = &[
    ("pdf", "application/pdf"),
    ("csv", "text/csv"),
    ("doc", "application/msword"),
    (
        "docx",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ),
    ("xls", "application/vnd.ms-excel"),
    (
        "xlsx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ),
    ("html", "text/html"),
    ("txt", "text/plain"),
    ("md", "text/markdown"),
];

fn doc_mime(format: &str) -> String {
    DOC_FORMATS
        .iter()
        .find(|(f, _)| *f == format)
        .map_or_else(|| format!("application/{format}"), |(_, m)| (*m).to_owned())
}

fn doc_format(mime: &str) -> Option<&'static str> {
    DOC_FORMATS
        .iter()
        .find(|(_, m)| *m == mime)
        .map(|(f, _)| *f)
}

/// A document name Bedrock accepts: letters, digits, single spaces, `-()[]`, at most 200.
fn doc_name(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        let c = if c.is_alphanumeric() || "-()[]".contains(c) {
            c
        } else {
            ' '
        };
        if c == ' ' && (out.is_empty() || out.ends_with(' ')) {
            continue;
        }
        out.push(c);
    }
    let out: String = out.trim_end().chars().take(200).collect();
    out.trim_end().to_owned()
}

fn cache_of(v: &Value) -> CacheControl {
    CacheControl {
        ttl: v.get("ttl").and_then(Value::as_str).map(str::to_owned),
    }
}

fn cache_point(c: &CacheControl) -> Value {
    let mut m = Map::new();
    m.insert("type".into(), json!("default"));
    if let Some(t) = &c.ttl {
        m.insert("ttl".into(), json!(t));
    }
    json!({ "cachePoint": m })
}

/// Puts a `cachePoint` on the part before it; `false` when that part cannot hold one.
fn attach_cache(parts: &mut [Part], c: CacheControl) -> bool {
    match parts.last_mut() {
        Some(
            Part::Text { cache_control, .. }
            | Part::Image { cache_control, .. }
            | Part::Document { cache_control, .. }
            | Part::ToolResult { cache_control, .. },
        ) if cache_control.is_none() => {
            *cache_control = Some(c);
            true
        }
        _ => false,
    }
}

fn opaque(v: &Value) -> Part {
    Part::Opaque {
        dialect: Dialect::Bedrock,
        value: v.clone(),
    }
}

/// The `source.bytes` of a media block, if that is its source.
fn bytes_of(b: &Map<String, Value>) -> Option<&str> {
    b.get("source")?.get("bytes")?.as_str()
}

/// Decodes one content block into `out` (a `cachePoint` marks the part before it).
pub(crate) fn decode_block(
    v: &Value,
    path: &str,
    out: &mut Vec<Part>,
    losses: &mut Losses,
) -> Result<(), DecodeError> {
    let m = as_obj(v, path)?;
    let Some((key, b)) = m.iter().next().filter(|_| m.len() == 1) else {
        // Not a one-member union: keep it whole rather than guess.
        out.push(opaque(v));
        return Ok(());
    };
    let bpath = format!("{path}.{key}");
    match key.as_str() {
        "text" => out.push(Part::text(as_str(b, &bpath)?)),
        "cachePoint" => {
            if !attach_cache(out, cache_of(b)) {
                out.push(opaque(v));
            }
        }
        "image" => {
            let b = as_obj(b, &bpath)?;
            match (b.get("format").and_then(Value::as_str), bytes_of(b)) {
                (Some(f), Some(data)) if b.len() == 2 => out.push(Part::Image {
                    source: MediaSource::Base64 {
                        media_type: format!("image/{f}"),
                        data: data.to_owned(),
                    },
                    detail: None,
                    cache_control: None,
                }),
                // S3 sources and anything newer.
                _ => out.push(opaque(v)),
            }
        }
        "document" => {
            let d = as_obj(b, &bpath)?;
            let format = d.get("format").and_then(Value::as_str).unwrap_or("txt");
            let name = d.get("name").and_then(Value::as_str).map(str::to_owned);
            let extra = d
                .keys()
                .any(|k| !["format", "name", "source"].contains(&k.as_str()));
            let source = match d.get("source") {
                Some(s) if !extra => {
                    if let Some(data) = s.get("bytes").and_then(Value::as_str) {
                        Some(MediaSource::Base64 {
                            media_type: doc_mime(format),
                            data: data.to_owned(),
                        })
                    } else {
                        s.get("text")
                            .and_then(Value::as_str)
                            .map(|t| MediaSource::Text {
                                media_type: doc_mime(format),
                                text: t.to_owned(),
                            })
                    }
                }
                _ => None,
            };
            match source {
                Some(source) => out.push(Part::Document {
                    source,
                    title: name,
                    filename: None,
                    cache_control: None,
                }),
                // Citations, context, content lists, S3: whole.
                None => out.push(opaque(v)),
            }
        }
        "audio" => {
            let a = as_obj(b, &bpath)?;
            match (a.get("format").and_then(Value::as_str), bytes_of(a)) {
                (Some(f), Some(data)) if a.len() == 2 => out.push(Part::Audio {
                    data: data.to_owned(),
                    format: f.to_owned(),
                }),
                _ => out.push(opaque(v)),
            }
        }
        "toolUse" => {
            let t = as_obj(b, &bpath)?;
            let server = t
                .get("type")
                .and_then(Value::as_str)
                .is_some_and(|ty| ty != "tool_use");
            if server {
                // A server tool the provider ran itself; only Bedrock can replay it.
                out.push(opaque(v));
                return Ok(());
            }
            let id = as_str(
                t.get("toolUseId")
                    .ok_or_else(|| DecodeError::missing(format!("{bpath}.toolUseId")))?,
                &format!("{bpath}.toolUseId"),
            )?;
            let name = as_str(
                t.get("name")
                    .ok_or_else(|| DecodeError::missing(format!("{bpath}.name")))?,
                &format!("{bpath}.name"),
            )?;
            let arguments = match t.get("input") {
                None | Some(Value::Null) => "{}".to_owned(),
                Some(i) => i.to_string(),
            };
            out.push(Part::ToolCall {
                id: id.to_owned(),
                name: name.to_owned(),
                arguments,
                kind: ToolKind::Function,
            });
        }
        "toolResult" => {
            let t = as_obj(b, &bpath)?;
            if t.get("type").is_some() {
                out.push(opaque(v));
                return Ok(());
            }
            let id = as_str(
                t.get("toolUseId")
                    .ok_or_else(|| DecodeError::missing(format!("{bpath}.toolUseId")))?,
                &format!("{bpath}.toolUseId"),
            )?;
            let mut content = Vec::new();
            if let Some(c) = t.get("content") {
                for (i, item) in as_arr(c, &format!("{bpath}.content"))?.iter().enumerate() {
                    let ipath = format!("{bpath}.content[{i}]");
                    if let Some(j) = item.get("json") {
                        losses.approximated(&ipath, "JSON tool result read as its JSON text");
                        content.push(Part::text(j.to_string()));
                    } else {
                        decode_block(item, &ipath, &mut content, losses)?;
                    }
                }
            }
            out.push(Part::ToolResult {
                call_id: id.to_owned(),
                content,
                is_error: t.get("status").and_then(Value::as_str) == Some("error"),
                kind: ToolKind::Function,
                cache_control: None,
            });
        }
        "reasoningContent" => {
            let r = as_obj(b, &bpath)?;
            if let Some(rt) = r.get("reasoningText") {
                let rt = as_obj(rt, &format!("{bpath}.reasoningText"))?;
                let text = rt.get("text").and_then(Value::as_str).unwrap_or_default();
                let sig = rt.get("signature").and_then(Value::as_str);
                // A block with only a signature is kept: Claude checks the whole chain.
                out.push(Part::Reasoning {
                    text: text.to_owned(),
                    seal: sig.and_then(signature_seal),
                });
            } else if let Some(seal) = r
                .get("redactedContent")
                .and_then(Value::as_str)
                .and_then(redacted_seal)
            {
                out.push(Part::Reasoning {
                    text: String::new(),
                    seal: Some(seal),
                });
            } else {
                out.push(opaque(v));
            }
        }
        // video, citationsContent, searchResult, guardContent, toolAddition, …
        _ => out.push(opaque(v)),
    }
    Ok(())
}

/// Encodes canonical parts as Bedrock content blocks (a cache marker becomes a `cachePoint`
/// after its block).
pub(crate) fn encode_parts(
    parts: &[Part],
    path: &str,
    target: Target,
    docs: &mut usize,
    losses: &mut Losses,
) -> Vec<Value> {
    let mut out = Vec::new();
    for (k, p) in parts.iter().enumerate() {
        let ppath = format!("{path}[{k}]");
        let (block, cache) = match p {
            Part::Text {
                text,
                cache_control,
                citations,
            } => {
                if citations.is_some() {
                    losses.dropped(
                        format!("{ppath}.citations"),
                        "citations cannot be sent to Bedrock",
                    );
                }
                if text.is_empty() {
                    // Bedrock rejects empty text blocks; a cache marker on one moves nowhere.
                    if cache_control.is_some() {
                        losses.dropped(&ppath, "cache marker on an empty text block");
                    }
                    continue;
                }
                (json!({ "text": text }), cache_control.as_ref())
            }
            Part::Image {
                source,
                cache_control,
                ..
            } => match source {
                MediaSource::Base64 { media_type, data } => {
                    let f = media_type.strip_prefix("image/").unwrap_or(media_type);
                    let f = if f == "jpg" { "jpeg" } else { f };
                    if !["png", "jpeg", "gif", "webp"].contains(&f) {
                        losses.dropped(&ppath, format!("Bedrock takes no {media_type} images"));
                        continue;
                    }
                    (
                        json!({"image": {"format": f, "source": {"bytes": data}}}),
                        cache_control.as_ref(),
                    )
                }
                _ => {
                    losses.dropped(
                        &ppath,
                        "Bedrock takes images only as bytes; a URL or file id cannot be sent",
                    );
                    continue;
                }
            },
            Part::Document {
                source,
                title,
                filename,
                cache_control,
            } => {
                *docs += 1;
                let wanted = title.clone().or_else(|| filename.clone());
                let mut name = wanted.as_deref().map(doc_name).unwrap_or_default();
                if name.is_empty() {
                    name = format!("Document {docs}");
                }
                if wanted.as_deref().is_some_and(|w| w != name) {
                    losses.approximated(
                        format!("{ppath}.title"),
                        "document name reduced to the characters Bedrock allows",
                    );
                }
                let (format, src) = match source {
                    MediaSource::Base64 { media_type, data } => {
                        (doc_format(media_type), json!({ "bytes": data }))
                    }
                    MediaSource::Text { media_type, text } => (
                        Some(doc_format(media_type).unwrap_or("txt")),
                        json!({ "text": text }),
                    ),
                    _ => {
                        losses.dropped(
                            &ppath,
                            "Bedrock takes documents only as bytes or text; a URL or file id cannot be sent",
                        );
                        continue;
                    }
                };
                let Some(format) = format else {
                    losses.dropped(&ppath, "document type Bedrock does not read");
                    continue;
                };
                (
                    json!({"document": {"format": format, "name": name, "source": src}}),
                    cache_control.as_ref(),
                )
            }
            Part::Audio { data, format } => (
                json!({"audio": {"format": format, "source": {"bytes": data}}}),
                None,
            ),
            Part::ToolCall {
                id,
                name,
                arguments,
                kind,
            } => {
                let input = dragoman_model::arguments_object(
                    arguments,
                    *kind,
                    format!("{ppath}.arguments"),
                    losses,
                );
                (
                    json!({"toolUse": {"toolUseId": id, "name": name, "input": input}}),
                    None,
                )
            }
            Part::ToolResult {
                call_id,
                content,
                is_error,
                cache_control,
                ..
            } => {
                let inner =
                    encode_parts(content, &format!("{ppath}.content"), target, docs, losses);
                let mut r = Map::new();
                r.insert("toolUseId".into(), json!(call_id));
                r.insert("content".into(), Value::Array(inner));
                if *is_error {
                    r.insert("status".into(), json!("error"));
                }
                (json!({ "toolResult": r }), cache_control.as_ref())
            }
            Part::Reasoning { text, seal } => {
                let r = match (target, seal) {
                    (_, Some(s))
                        if s.family == Family::Anthropic && s.kind == SealKind::Redacted =>
                    {
                        json!({ "redactedContent": redacted_blob(s) })
                    }
                    (_, Some(s)) if s.family == Family::Anthropic => {
                        json!({"reasoningText": {"text": text, "signature": s.payload}})
                    }
                    (Target::Upstream, Some(s)) => {
                        losses.dropped(
                            &ppath,
                            format!(
                                "reasoning sealed by the {:?} family cannot be verified by Bedrock",
                                s.family
                            ),
                        );
                        continue;
                    }
                    (Target::Upstream, None) => {
                        losses.dropped(
                            &ppath,
                            "reasoning without a signature cannot be replayed to Bedrock",
                        );
                        continue;
                    }
                    (Target::Client, Some(s)) => {
                        json!({"reasoningText": {"text": text, "signature": s.wrap()}})
                    }
                    (Target::Client, None) => json!({"reasoningText": {"text": text}}),
                };
                (json!({ "reasoningContent": r }), None)
            }
            Part::Refusal { text } => {
                losses.approximated(&ppath, "refusal sent as text");
                (json!({ "text": text }), None)
            }
            Part::Opaque { dialect, value } => {
                if *dialect != Dialect::Bedrock {
                    losses.dropped(
                        &ppath,
                        format!("{dialect} content has no Bedrock equivalent"),
                    );
                    continue;
                }
                (value.clone(), None)
            }
        };
        out.push(block);
        if let Some(c) = cache {
            out.push(cache_point(c));
        }
    }
    out
}

fn decode_tools(v: &Value, req: &mut Request) -> Result<(), DecodeError> {
    let tc = as_obj(v, "toolConfig")?;
    if let Some(tools) = tc.get("tools") {
        for (i, t) in as_arr(tools, "toolConfig.tools")?.iter().enumerate() {
            let path = format!("toolConfig.tools[{i}]");
            let m = as_obj(t, &path)?;
            if let Some(cp) = m.get("cachePoint")
                && let Some(Tool::Function { cache_control, .. }) = req.tools.last_mut()
                && cache_control.is_none()
            {
                *cache_control = Some(cache_of(cp));
                continue;
            }
            let Some(spec) = m.get("toolSpec").and_then(Value::as_object) else {
                req.tools.push(Tool::Opaque {
                    dialect: Dialect::Bedrock,
                    value: t.clone(),
                });
                continue;
            };
            let name = as_str(
                spec.get("name")
                    .ok_or_else(|| DecodeError::missing(format!("{path}.toolSpec.name")))?,
                &format!("{path}.toolSpec.name"),
            )?;
            let parameters = spec
                .get("inputSchema")
                .and_then(|s| s.get("json"))
                .cloned()
                .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
            req.tools.push(Tool::Function {
                name: name.to_owned(),
                description: spec
                    .get("description")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                parameters,
                strict: spec.get("strict").and_then(Value::as_bool),
                cache_control: None,
            });
        }
    }
    if let Some(c) = tc.get("toolChoice").and_then(Value::as_object) {
        req.tool_choice = if c.contains_key("any") {
            Some(ToolChoice::Required)
        } else if let Some(name) = c
            .get("tool")
            .and_then(|t| t.get("name"))
            .and_then(Value::as_str)
        {
            Some(ToolChoice::Tool {
                name: name.to_owned(),
            })
        } else {
            Some(ToolChoice::Auto)
        };
    }
    Ok(())
}

/// Reads `additionalModelRequestFields`: Claude's thinking, `top_k`, effort and the parallel
/// tool-use switch become canonical fields; the rest stays as extensions.
fn decode_additional(v: &Value, req: &mut Request) -> Result<(), DecodeError> {
    let m = as_obj(v, AMRF)?;
    let mut rest = Map::new();
    for (k, val) in m {
        match (k.as_str(), val) {
            ("thinking", Value::Object(t))
                if t.keys()
                    .all(|k| ["type", "budget_tokens", "display"].contains(&k.as_str())) =>
            {
                let rc = req.reasoning.get_or_insert_with(ReasoningConfig::default);
                match t.get("type").and_then(Value::as_str) {
                    Some("enabled") => rc.enabled = Some(true),
                    Some("adaptive") => {
                        rc.enabled = Some(true);
                        rc.adaptive = true;
                    }
                    Some("disabled") => rc.enabled = Some(false),
                    _ => {
                        rest.insert(k.clone(), val.clone());
                        continue;
                    }
                }
                rc.budget_tokens = t.get("budget_tokens").and_then(Value::as_u64);
                rc.display = t.get("display").and_then(Value::as_str).map(str::to_owned);
            }
            ("top_k", Value::Number(n)) if n.as_u64().is_some() => req.top_k = n.as_u64(),
            ("output_config", Value::Object(o))
                if o.len() == 1
                    && o.get("effort")
                        .and_then(Value::as_str)
                        .and_then(Effort::parse)
                        .is_some() =>
            {
                let rc = req.reasoning.get_or_insert_with(ReasoningConfig::default);
                rc.effort = o
                    .get("effort")
                    .and_then(Value::as_str)
                    .and_then(Effort::parse);
            }
            ("tool_choice", Value::Object(o))
                if o.len() == 1
                    && o.get("disable_parallel_tool_use")
                        .is_some_and(Value::is_boolean) =>
            {
                req.parallel_tool_calls = o
                    .get("disable_parallel_tool_use")
                    .and_then(Value::as_bool)
                    .map(|d| !d);
            }
            _ => {
                rest.insert(k.clone(), val.clone());
            }
        }
    }
    for (k, val) in rest {
        req.extensions
            .push(Extension::new(Dialect::Bedrock, format!("{AMRF}.{k}"), val));
    }
    Ok(())
}

fn decode_output_config(v: &Value, req: &mut Request) -> Result<(), DecodeError> {
    let m = as_obj(v, OUTCFG)?;
    for (k, val) in m {
        let schema = (k == "textFormat")
            .then(|| {
                let js = val.get("structure")?.get("jsonSchema")?;
                let schema = serde_json::from_str::<Value>(js.get("schema")?.as_str()?).ok()?;
                Some((js, schema))
            })
            .flatten()
            .filter(|_| val.get("type").and_then(Value::as_str) == Some("json_schema"));
        match schema {
            Some((js, schema)) => {
                req.response_format = Some(ResponseFormat::JsonSchema {
                    name: js.get("name").and_then(Value::as_str).map(str::to_owned),
                    schema,
                    strict: None,
                    description: js
                        .get("description")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                });
            }
            None => req.extensions.push(Extension::new(
                Dialect::Bedrock,
                format!("{OUTCFG}.{k}"),
                val.clone(),
            )),
        }
    }
    Ok(())
}

/// Decodes messages, splitting tool results out of user turns into `Tool` messages (the
/// canonical home of results), in order.
fn decode_messages(v: &Value, req: &mut Request, losses: &mut Losses) -> Result<(), DecodeError> {
    for (i, m) in as_arr(v, "messages")?.iter().enumerate() {
        let path = format!("messages[{i}]");
        let mo = as_obj(m, &path)?;
        let role = match mo.get("role").and_then(Value::as_str) {
            Some("assistant") => Role::Assistant,
            Some("user") => Role::User,
            Some("system") => Role::System,
            _ => {
                return Err(DecodeError::wrong_type(
                    format!("{path}.role"),
                    "user or assistant",
                ));
            }
        };
        let mut parts = Vec::new();
        if let Some(c) = mo.get("content") {
            for (j, b) in as_arr(c, &format!("{path}.content"))?.iter().enumerate() {
                decode_block(b, &format!("{path}.content[{j}]"), &mut parts, losses)?;
            }
        }
        if role != Role::User {
            req.messages.push(Message::new(role, parts));
            continue;
        }
        let mut run: Vec<Part> = Vec::new();
        let mut run_tool = false;
        for p in parts {
            let is_tool = matches!(p, Part::ToolResult { .. });
            if is_tool != run_tool && !run.is_empty() {
                let r = if run_tool { Role::Tool } else { Role::User };
                req.messages.push(Message::new(r, std::mem::take(&mut run)));
            }
            run_tool = is_tool;
            run.push(p);
        }
        let r = if run_tool { Role::Tool } else { Role::User };
        req.messages.push(Message::new(r, run));
    }
    Ok(())
}

/// Decodes a Converse body. The model id is in Bedrock's URL and streaming is the endpoint,
/// so `model` is left empty and `stream` false (see the crate docs).
pub fn decode_request(body: &[u8], losses: &mut Losses) -> Result<Request, DecodeError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| DecodeError::json("", &e))?;
    decode_request_value(&v, losses)
}

pub(crate) fn decode_request_value(v: &Value, losses: &mut Losses) -> Result<Request, DecodeError> {
    let top = as_obj(v, "")?;
    let mut req = Request::default();
    if let Some(s) = top.get("system") {
        let mut parts = Vec::new();
        for (j, b) in as_arr(s, "system")?.iter().enumerate() {
            decode_block(b, &format!("system[{j}]"), &mut parts, losses)?;
        }
        req.system = parts;
    }
    if let Some(m) = top.get("messages") {
        decode_messages(m, &mut req, losses)?;
    }
    if let Some(ic) = top.get("inferenceConfig") {
        let ic = as_obj(ic, INF)?;
        for (k, val) in ic {
            match k.as_str() {
                "maxTokens" => req.max_tokens = val.as_u64(),
                "temperature" => req.temperature = val.as_f64(),
                "topP" => req.top_p = val.as_f64(),
                "stopSequences" => {
                    req.stop = as_arr(val, "inferenceConfig.stopSequences")?
                        .iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect();
                }
                _ => req.extensions.push(Extension::new(
                    Dialect::Bedrock,
                    format!("{INF}.{k}"),
                    val.clone(),
                )),
            }
        }
    }
    if let Some(tc) = top.get("toolConfig") {
        decode_tools(tc, &mut req)?;
    }
    if let Some(a) = top.get("additionalModelRequestFields") {
        decode_additional(a, &mut req)?;
    }
    if let Some(o) = top.get("outputConfig") {
        decode_output_config(o, &mut req)?;
    }
    if let Some(Value::Object(md)) = top.get("requestMetadata") {
        req.metadata = Some(md.clone());
    }
    for (k, val) in top {
        if !KNOWN_TOP.contains(&k.as_str()) && !val.is_null() {
            req.extensions
                .push(Extension::new(Dialect::Bedrock, k.clone(), val.clone()));
        }
    }
    Ok(req)
}

fn encode_tools(req: &Request, losses: &mut Losses) -> Vec<Value> {
    let mut out = Vec::new();
    for (i, t) in req.tools.iter().enumerate() {
        let path = format!("tools[{i}]");
        match t {
            Tool::Function {
                name,
                description,
                parameters,
                strict,
                cache_control,
            } => {
                let mut s = Map::new();
                s.insert("name".into(), json!(name));
                if let Some(d) = description.as_ref().filter(|d| !d.is_empty()) {
                    s.insert("description".into(), json!(d));
                }
                s.insert("inputSchema".into(), json!({ "json": parameters }));
                if let Some(st) = strict {
                    s.insert("strict".into(), json!(st));
                }
                out.push(json!({ "toolSpec": s }));
                if let Some(c) = cache_control {
                    out.push(cache_point(c));
                }
            }
            Tool::Custom {
                name,
                description,
                format,
            } => {
                losses.approximated(
                    &path,
                    "custom tool sent as a function with one string property `input`",
                );
                if format.is_some() {
                    losses.dropped(format!("{path}.format"), "Bedrock tools take no grammar");
                }
                let mut s = Map::new();
                s.insert("name".into(), json!(name));
                if let Some(d) = description {
                    s.insert("description".into(), json!(d));
                }
                s.insert(
                    "inputSchema".into(),
                    json!({"json": {"type": "object", "properties": {"input": {"type": "string"}}, "required": ["input"]}}),
                );
                out.push(json!({ "toolSpec": s }));
            }
            Tool::Opaque { dialect, value } => {
                if *dialect == Dialect::Bedrock {
                    out.push(value.clone());
                } else {
                    losses.dropped(&path, format!("{dialect} tool has no Bedrock equivalent"));
                }
            }
        }
    }
    out
}

/// The names of the tools the history calls, for the specs Bedrock insists on.
fn called_names(req: &Request) -> (bool, BTreeSet<String>) {
    let mut any = false;
    let mut names = BTreeSet::new();
    for m in &req.messages {
        for p in &m.content {
            match p {
                Part::ToolCall { name, .. } => {
                    any = true;
                    names.insert(name.clone());
                }
                Part::ToolResult { .. } => any = true,
                _ => {}
            }
        }
    }
    (any, names)
}

fn encode_thinking(rc: &ReasoningConfig, amrf: &mut Map<String, Value>, losses: &mut Losses) {
    let mut t = Map::new();
    if rc.enabled == Some(false) || rc.effort == Some(Effort::None) {
        t.insert("type".into(), json!("disabled"));
    } else if rc.adaptive {
        t.insert("type".into(), json!("adaptive"));
    } else if let Some(b) = rc.budget_tokens {
        t.insert("type".into(), json!("enabled"));
        t.insert("budget_tokens".into(), json!(b));
    } else if let Some(b) = rc.effort.and_then(Effort::budget_tokens) {
        if !rc.adaptive {
            losses.approximated("reasoning.effort", "effort sent as a thinking budget");
        }
        t.insert("type".into(), json!("enabled"));
        t.insert("budget_tokens".into(), json!(b));
    } else if rc.enabled == Some(true) {
        losses.approximated(
            "reasoning",
            "thinking without a budget sent with the smallest budget Claude takes",
        );
        t.insert("type".into(), json!("enabled"));
        t.insert("budget_tokens".into(), json!(1024));
    }
    if t.is_empty() {
        return;
    }
    if let Some(d) = &rc.display {
        t.insert("display".into(), json!(d));
    }
    amrf.insert("thinking".into(), Value::Object(t));
    if rc.adaptive
        && let Some(e) = rc.effort
    {
        amrf.insert("output_config".into(), json!({ "effort": e.as_str() }));
    }
}

/// Encodes a canonical request as a Converse body (without the model id, which goes in the
/// URL).
pub fn encode_request(req: &Request, losses: &mut Losses) -> Value {
    let mut out = Map::new();
    let mut docs = 0;
    let mut system = encode_parts(&req.system, "system", Target::Upstream, &mut docs, losses);
    let mut messages: Vec<Value> = Vec::new();
    let mut seen_turn = false;
    for (i, m) in req.messages.iter().enumerate() {
        let path = format!("messages[{i}].content");
        let role = match m.role {
            Role::System | Role::Developer => {
                if seen_turn {
                    losses.approximated(
                        format!("messages[{i}]"),
                        "Bedrock takes system prompts only before the conversation; a later system message joins them",
                    );
                }
                system.extend(encode_parts(
                    &m.content,
                    &path,
                    Target::Upstream,
                    &mut docs,
                    losses,
                ));
                continue;
            }
            Role::Assistant => "assistant",
            Role::User | Role::Tool => "user",
        };
        seen_turn = true;
        let blocks = encode_parts(&m.content, &path, Target::Upstream, &mut docs, losses);
        // Consecutive turns of one role are one message: Bedrock wants the results of one turn
        // together, and turns alternating.
        if let Some(last) = messages.last_mut()
            && last.get("role").and_then(Value::as_str) == Some(role)
            && let Some(Value::Array(bs)) = last.get_mut("content")
        {
            bs.extend(blocks);
            continue;
        }
        messages.push(json!({ "role": role, "content": blocks }));
    }
    out.insert("messages".into(), Value::Array(messages));
    if !system.is_empty() {
        out.insert("system".into(), Value::Array(system));
    }

    let mut inf = Map::new();
    if let Some(n) = req.max_tokens {
        inf.insert("maxTokens".into(), json!(n));
    }
    if let Some(t) = req.temperature {
        let t = if t > 1.0 {
            losses.approximated("temperature", "Bedrock takes temperatures up to 1; capped");
            1.0
        } else {
            t
        };
        inf.insert("temperature".into(), json!(t));
    }
    if let Some(p) = req.top_p {
        inf.insert("topP".into(), json!(p));
    }
    if !req.stop.is_empty() {
        inf.insert("stopSequences".into(), json!(req.stop));
    }

    let (tool_blocks, names) = called_names(req);
    let mut tools = encode_tools(req, losses);
    let declared: BTreeSet<&str> = req.tools.iter().filter_map(Tool::name).collect();
    let mut choice = match &req.tool_choice {
        Some(ToolChoice::Auto) => Some(json!({"auto": {}})),
        Some(ToolChoice::Required) => Some(json!({"any": {}})),
        Some(ToolChoice::Tool { name }) => Some(json!({"tool": {"name": name}})),
        Some(ToolChoice::None) | None => None,
    };
    if req.tool_choice == Some(ToolChoice::None) {
        if tool_blocks {
            losses.approximated(
                "tool_choice",
                "Bedrock cannot forbid tool calls; the tools stay because the history uses them",
            );
        } else {
            if !tools.is_empty() {
                losses.approximated(
                    "tool_choice",
                    "Bedrock cannot forbid tool calls; the tools are left out instead",
                );
            }
            tools.clear();
            choice = None;
        }
    }
    if tool_blocks && tools.is_empty() {
        // Bedrock refuses toolUse/toolResult blocks without a toolConfig.
        losses.approximated(
            "tools",
            "Bedrock needs a toolConfig for a history with tool blocks; minimal specs were made for the tools it calls",
        );
        for n in names.iter().filter(|n| !declared.contains(n.as_str())) {
            tools.push(json!({"toolSpec": {"name": n, "inputSchema": {"json": {"type": "object", "properties": {}}}}}));
        }
        if tools.is_empty() {
            // Only results: any one spec satisfies the check.
            tools.push(json!({"toolSpec": {"name": "tool", "inputSchema": {"json": {"type": "object", "properties": {}}}}}));
        }
    }
    if !tools.is_empty() {
        let mut tc = Map::new();
        tc.insert("tools".into(), Value::Array(tools));
        if let Some(c) = choice {
            tc.insert("toolChoice".into(), c);
        }
        out.insert("toolConfig".into(), Value::Object(tc));
    }

    let mut amrf = Map::new();
    if let Some(rc) = &req.reasoning {
        encode_thinking(rc, &mut amrf, losses);
    }
    if let Some(k) = req.top_k {
        amrf.insert("top_k".into(), json!(k));
    }
    if req.parallel_tool_calls == Some(false) {
        amrf.insert(
            "tool_choice".into(),
            json!({"disable_parallel_tool_use": true}),
        );
    }
    let mut outcfg = Map::new();
    match &req.response_format {
        Some(ResponseFormat::JsonSchema {
            name,
            schema,
            description,
            ..
        }) => {
            let mut js = Map::new();
            js.insert("schema".into(), json!(schema.to_string()));
            if let Some(n) = name {
                js.insert("name".into(), json!(n));
            }
            if let Some(d) = description {
                js.insert("description".into(), json!(d));
            }
            outcfg.insert(
                "textFormat".into(),
                json!({"type": "json_schema", "structure": {"jsonSchema": js}}),
            );
        }
        Some(ResponseFormat::JsonObject) => {
            losses.dropped(
                "response_format",
                "Bedrock has a JSON-schema mode but no plain JSON mode",
            );
        }
        Some(ResponseFormat::Text) | None => {}
    }
    if req.seed.is_some() {
        losses.dropped("seed", "Converse takes no seed");
    }
    if req.user.is_some() {
        losses.dropped("user", "Converse requests carry no end-user id");
    }
    if let Some(md) = req.metadata.as_ref().filter(|m| !m.is_empty()) {
        out.insert("requestMetadata".into(), Value::Object(md.clone()));
    }
    for e in crate::own_extensions(&req.extensions, losses) {
        let (map, key) = if let Some(k) = e.key.strip_prefix(&format!("{AMRF}.")) {
            (&mut amrf, k)
        } else if let Some(k) = e.key.strip_prefix(&format!("{INF}.")) {
            (&mut inf, k)
        } else if let Some(k) = e.key.strip_prefix(&format!("{OUTCFG}.")) {
            (&mut outcfg, k)
        } else {
            (&mut out, e.key.as_str())
        };
        if map.contains_key(key) {
            losses.dropped(
                format!("extensions.{}", e.key),
                "collides with a field already set",
            );
        } else {
            map.insert(key.to_owned(), e.value.clone());
        }
    }
    if !inf.is_empty() {
        out.insert("inferenceConfig".into(), Value::Object(inf));
    }
    if !amrf.is_empty() {
        out.insert("additionalModelRequestFields".into(), Value::Object(amrf));
    }
    if !outcfg.is_empty() {
        out.insert("outputConfig".into(), Value::Object(outcfg));
    }
    Value::Object(out)
}
