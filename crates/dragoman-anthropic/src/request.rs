//! Anthropic Messages request bodies ⇄ canonical `Request`, plus the content-block codec that
//! responses share, because Anthropic uses one block vocabulary in both directions.

use std::fmt;

use dragoman_model::{
    CacheControl, DecodeError, Dialect, Effort, Extension, Family, Losses, MediaSource, Message,
    Part, ReasoningConfig, ReasoningSeal, Request, ResponseFormat, Role, SealKind, Tool,
    ToolChoice, ToolKind,
};
use serde_json::{Map, Value, json};

pub(crate) type JsonMap = Map<String, Value>;

/// Extension key (never a real Anthropic field) that keeps client-tool fields the canonical
/// `Tool` has no place for (`defer_loading`, `input_examples`, ...), keyed by tool name, so that
/// Anthropic-to-Anthropic traffic keeps them. Other dialects report it as dropped, which is true.
pub const TOOL_FIELDS_KEY: &str = "x-dragoman-tool-fields";

/// Extension key (never a real Anthropic field) that keeps message-level fields besides `role`
/// and `content` (Claude Code puts `output_config` on system messages), keyed by the canonical
/// message index they belong to.
pub const MESSAGE_FIELDS_KEY: &str = "x-dragoman-message-fields";

/// Extension key (never a real Anthropic field) that keeps block fields the canonical `Part`
/// has no place for (`tool_use.caller`, `document.citations`, ...), keyed by canonical position:
/// `"<message>.<part>"` and `"system.<part>"` in requests, `"<part>"` in responses.
pub const PART_FIELDS_KEY: &str = "x-dragoman-part-fields";

/// Which body a block is written into: request history must only carry Anthropic-verifiable
/// signatures, while responses to clients carry any seal through the envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    Request,
    Response,
}

// ---------------------------------------------------------------------------------------------
// Small JSON readers. Every one names the place of a problem, because decode errors must.

/// A JSON path, formatted only when a loss or an error names it: formatting every block's path
/// up front cost more than decoding the block.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Path<'a> {
    Root(&'a str),
    Key(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

/// The top level of a body, whose fields are named bare (`model`, not `.model`).
pub(crate) const ROOT: Path<'static> = Path::Root("");

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root(s) => f.write_str(s),
            Path::Key(Path::Root(""), k) => f.write_str(k),
            Path::Key(p, k) => write!(f, "{p}.{k}"),
            Path::Index(p, i) => write!(f, "{p}[{i}]"),
        }
    }
}

impl From<Path<'_>> for String {
    fn from(p: Path<'_>) -> String {
        p.to_string()
    }
}

impl From<&Path<'_>> for String {
    fn from(p: &Path<'_>) -> String {
        p.to_string()
    }
}

pub(crate) fn join<'a>(path: &'a Path<'a>, key: &'a str) -> Path<'a> {
    Path::Key(path, key)
}

pub(crate) fn at<'a>(path: &'a Path<'a>, i: usize) -> Path<'a> {
    Path::Index(path, i)
}

pub(crate) fn obj<'a>(v: &'a Value, path: &Path) -> Result<&'a JsonMap, DecodeError> {
    v.as_object()
        .ok_or_else(|| DecodeError::wrong_type(path, "an object"))
}

pub(crate) fn req_str(m: &JsonMap, key: &str, path: &Path) -> Result<String, DecodeError> {
    match m.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        None | Some(Value::Null) => Err(DecodeError::missing(join(path, key))),
        Some(_) => Err(DecodeError::wrong_type(join(path, key), "a string")),
    }
}

pub(crate) fn opt_str(m: &JsonMap, key: &str, path: &Path) -> Result<Option<String>, DecodeError> {
    match m.get(key) {
        Some(Value::String(s)) => Ok(Some(s.clone())),
        None | Some(Value::Null) => Ok(None),
        Some(_) => Err(DecodeError::wrong_type(join(path, key), "a string")),
    }
}

pub(crate) fn opt_u64(m: &JsonMap, key: &str, path: &Path) -> Result<Option<u64>, DecodeError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| DecodeError::wrong_type(join(path, key), "a non-negative integer")),
    }
}

fn opt_f64(m: &JsonMap, key: &str, path: &Path) -> Result<Option<f64>, DecodeError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| DecodeError::wrong_type(join(path, key), "a number")),
    }
}

fn opt_bool(m: &JsonMap, key: &str, path: &Path) -> Result<Option<bool>, DecodeError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(DecodeError::wrong_type(join(path, key), "a boolean")),
    }
}

fn compact(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

fn report_unknown(m: &JsonMap, known: &[&str], path: &Path, what: &str, losses: &mut Losses) {
    for k in m.keys() {
        if !known.contains(&k.as_str()) {
            losses.dropped(
                join(path, k),
                format!("{what} field `{k}` has no canonical form"),
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Content blocks.

fn decode_cache_control(m: &JsonMap, path: &Path) -> Result<Option<CacheControl>, DecodeError> {
    match m.get("cache_control") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => {
            let cm = obj(v, &join(path, "cache_control"))?;
            Ok(Some(CacheControl {
                ttl: opt_str(cm, "ttl", &join(path, "cache_control"))?,
            }))
        }
    }
}

fn put_cache_control(m: &mut JsonMap, cc: &Option<CacheControl>) {
    if let Some(cc) = cc {
        let mut c = Map::new();
        c.insert("type".into(), json!("ephemeral"));
        if let Some(ttl) = &cc.ttl {
            c.insert("ttl".into(), json!(ttl));
        }
        m.insert("cache_control".into(), Value::Object(c));
    }
}

/// `None` for source shapes the canonical model has no form for (the block then stays opaque).
fn decode_source(v: Option<&Value>, path: &Path) -> Result<Option<MediaSource>, DecodeError> {
    let v = v.ok_or_else(|| DecodeError::missing(path))?;
    let m = obj(v, path)?;
    let ty = req_str(m, "type", path)?;
    Ok(Some(match ty.as_str() {
        "base64" => MediaSource::Base64 {
            media_type: req_str(m, "media_type", path)?,
            data: req_str(m, "data", path)?,
        },
        "url" => MediaSource::Url {
            url: req_str(m, "url", path)?,
        },
        "file" => MediaSource::FileId {
            file_id: req_str(m, "file_id", path)?,
        },
        "text" => MediaSource::Text {
            media_type: opt_str(m, "media_type", path)?.unwrap_or_else(|| "text/plain".into()),
            text: req_str(m, "data", path)?,
        },
        _ => return Ok(None),
    }))
}

fn encode_source(
    src: &MediaSource,
    image: bool,
    path: &Path,
    losses: &mut Losses,
) -> Option<Value> {
    Some(match src {
        MediaSource::Base64 { media_type, data } => {
            json!({"type": "base64", "media_type": media_type, "data": data})
        }
        MediaSource::Url { url } => json!({"type": "url", "url": url}),
        MediaSource::FileId { file_id } => json!({"type": "file", "file_id": file_id}),
        MediaSource::Text { media_type, text } => {
            if image {
                losses.dropped(path, "an image cannot have a text source");
                return None;
            }
            json!({"type": "text", "media_type": media_type, "data": text})
        }
    })
}

fn decode_seal(signature: &str) -> Option<ReasoningSeal> {
    if signature.is_empty() {
        return None;
    }
    Some(
        ReasoningSeal::unwrap(signature)
            .unwrap_or_else(|| ReasoningSeal::anthropic_signature(signature)),
    )
}

/// One content block where there is no place to keep fields the canonical part lacks: they are
/// reported (a direct `caller` is the default and means nothing).
pub(crate) fn decode_block(
    v: &Value,
    path: &Path,
    losses: &mut Losses,
) -> Result<Part, DecodeError> {
    let (part, extra) = decode_block_extra(v, path, losses)?;
    for (k, val) in extra {
        if k == "type" || (k == "caller" && val == json!({"type": "direct"})) {
            continue;
        }
        losses.dropped(
            join(path, &k),
            format!("block field `{k}` has no canonical form"),
        );
    }
    Ok(part)
}

/// One content block, and the fields of it the canonical part has no place for.
pub(crate) fn decode_block_extra(
    v: &Value,
    path: &Path,
    losses: &mut Losses,
) -> Result<(Part, JsonMap), DecodeError> {
    let m = obj(v, path)?;
    let ty = match m.get("type") {
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err(DecodeError::wrong_type(join(path, "type"), "a string")),
        None => return Err(DecodeError::missing(join(path, "type"))),
    };
    let opaque = || Part::Opaque {
        dialect: Dialect::Anthropic,
        value: v.clone(),
    };
    let (part, known): (Part, &[&str]) = match ty {
        "text" => (
            Part::Text {
                text: req_str(m, "text", path)?,
                cache_control: decode_cache_control(m, path)?,
                citations: match m.get("citations") {
                    None | Some(Value::Null) => None,
                    Some(c) => Some((Dialect::Anthropic, c.clone())),
                },
            },
            &["type", "text", "cache_control", "citations"],
        ),
        "image" => {
            let Some(source) = decode_source(m.get("source"), &join(path, "source"))? else {
                return Ok((opaque(), Map::new()));
            };
            (
                Part::Image {
                    source,
                    detail: None,
                    cache_control: decode_cache_control(m, path)?,
                },
                &["type", "source", "cache_control"],
            )
        }
        "document" => {
            let Some(source) = decode_source(m.get("source"), &join(path, "source"))? else {
                return Ok((opaque(), Map::new()));
            };
            (
                Part::Document {
                    source,
                    title: opt_str(m, "title", path)?,
                    filename: None,
                    cache_control: decode_cache_control(m, path)?,
                },
                &["type", "source", "title", "cache_control"],
            )
        }
        "tool_use" => {
            let input = m
                .get("input")
                .ok_or_else(|| DecodeError::missing(join(path, "input")))?;
            (
                Part::ToolCall {
                    id: req_str(m, "id", path)?,
                    name: req_str(m, "name", path)?,
                    arguments: compact(input),
                    kind: ToolKind::Function,
                },
                &["type", "id", "name", "input"],
            )
        }
        "tool_result" => {
            let cpath = join(path, "content");
            let content = match m.get("content") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::String(s)) => vec![Part::text(s.clone())],
                Some(Value::Array(a)) => a
                    .iter()
                    .enumerate()
                    .map(|(i, b)| decode_block(b, &at(&cpath, i), losses))
                    .collect::<Result<_, _>>()?,
                Some(_) => return Err(DecodeError::wrong_type(cpath, "a string or an array")),
            };
            (
                Part::ToolResult {
                    call_id: req_str(m, "tool_use_id", path)?,
                    content,
                    is_error: opt_bool(m, "is_error", path)?.unwrap_or(false),
                    kind: ToolKind::Function,
                    cache_control: decode_cache_control(m, path)?,
                },
                &[
                    "type",
                    "tool_use_id",
                    "content",
                    "is_error",
                    "cache_control",
                ],
            )
        }
        "thinking" => (
            Part::Reasoning {
                text: opt_str(m, "thinking", path)?.unwrap_or_default(),
                seal: decode_seal(&opt_str(m, "signature", path)?.unwrap_or_default()),
            },
            &["type", "thinking", "signature"],
        ),
        "redacted_thinking" => (
            Part::Reasoning {
                text: String::new(),
                seal: Some(ReasoningSeal::anthropic_redacted(req_str(m, "data", path)?)),
            },
            &["type", "data"],
        ),
        _ => return Ok((opaque(), Map::new())),
    };
    let mut extra: JsonMap = m
        .iter()
        .filter(|(k, _)| !known.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !extra.is_empty() {
        // The block type goes along so that the fields are only ever put back on a block of
        // the same type, even if something reordered the parts in between.
        extra.insert("type".into(), json!(ty));
    }
    Ok((part, extra))
}

/// The `input` object of a `tool_use` block for canonical arguments.
fn tool_input(arguments: &str, kind: ToolKind, path: &Path, losses: &mut Losses) -> Value {
    dragoman_model::arguments_object(arguments, kind, join(path, "input").to_string(), losses)
}

/// A tool-call id Anthropic accepts (`^[a-zA-Z0-9_-]+$`). Other servers issue ids like
/// `functions.get_weather:0`; the same id always maps to the same safe id, and a hash suffix keeps
/// distinct ids distinct, so calls and results in one history still pair up.
fn safe_tool_id(id: &str, path: &Path, losses: &mut Losses) -> String {
    let ok = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if !id.is_empty() && id.chars().all(ok) {
        return id.to_owned();
    }
    // FNV-1a: stable across runs and platforms, which std's hasher does not promise.
    let hash = id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let cleaned: String = id.chars().map(|c| if ok(c) { c } else { '_' }).collect();
    losses.approximated(
        path,
        "tool call id rewritten to the characters Anthropic accepts",
    );
    format!("{cleaned}_{:08x}", hash & 0xffff_ffff)
}

pub(crate) fn is_plain_text_block(v: &Value) -> Option<&str> {
    let m = v.as_object()?;
    if m.len() == 2 && m.get("type")? == "text" {
        return m.get("text")?.as_str();
    }
    None
}

/// A turn's blocks from `encode_parts`, whose plain text blocks are still bare strings.
fn message_content(mut blocks: Vec<Value>) -> Value {
    if blocks.len() == 1 && blocks[0].is_string() {
        return blocks.pop().unwrap_or_default();
    }
    for b in &mut blocks {
        if let Value::String(s) = b {
            let mut m = Map::new();
            m.insert("type".into(), Value::String("text".into()));
            m.insert("text".into(), Value::String(std::mem::take(s)));
            *b = Value::Object(m);
        }
    }
    content_value(blocks)
}

/// Blocks as Anthropic content: a lone plain text block becomes the string form.
fn content_value(mut blocks: Vec<Value>) -> Value {
    if blocks.len() == 1
        && is_plain_text_block(&blocks[0]).is_some()
        && let Some(Value::Object(mut m)) = blocks.pop()
    {
        // Moved out rather than copied; `is_plain_text_block` vouched for the string.
        return m.remove("text").unwrap_or_default();
    }
    Value::Array(blocks)
}

/// One canonical part as an Anthropic block; `None` when it cannot be expressed (reported).
pub(crate) fn encode_part(
    part: &Part,
    path: &Path,
    target: Target,
    extra: Option<&Value>,
    losses: &mut Losses,
) -> Option<Value> {
    let mut v = encode_part_plain(part, path, target, losses)?;
    if let (Some(Value::Object(extra)), Some(m)) = (extra, v.as_object_mut())
        && extra.get("type") == m.get("type")
    {
        for (k, val) in extra {
            m.entry(k.clone()).or_insert_with(|| val.clone());
        }
    }
    Some(v)
}

fn encode_part_plain(
    part: &Part,
    path: &Path,
    target: Target,
    losses: &mut Losses,
) -> Option<Value> {
    let mut m = Map::new();
    match part {
        Part::Text {
            text,
            cache_control,
            citations,
        } => {
            m.insert("type".into(), json!("text"));
            m.insert("text".into(), json!(text));
            if let Some((dialect, c)) = citations {
                if *dialect == Dialect::Anthropic {
                    m.insert("citations".into(), c.clone());
                } else {
                    losses.dropped(
                        join(path, "citations"),
                        format!("{dialect} annotations have no Anthropic form"),
                    );
                }
            }
            put_cache_control(&mut m, cache_control);
        }
        Part::Image {
            source,
            detail,
            cache_control,
        } => {
            let src = encode_source(source, true, path, losses)?;
            if detail.is_some() {
                losses.dropped(
                    join(path, "detail"),
                    "Anthropic images have no detail level",
                );
            }
            m.insert("type".into(), json!("image"));
            m.insert("source".into(), src);
            put_cache_control(&mut m, cache_control);
        }
        Part::Document {
            source,
            title,
            filename,
            cache_control,
        } => {
            let src = encode_source(source, false, path, losses)?;
            m.insert("type".into(), json!("document"));
            m.insert("source".into(), src);
            match (title, filename) {
                (Some(t), f) => {
                    m.insert("title".into(), json!(t));
                    if f.is_some() {
                        losses.dropped(
                            join(path, "filename"),
                            "Anthropic documents have no filename",
                        );
                    }
                }
                (None, Some(f)) => {
                    losses.approximated(
                        join(path, "filename"),
                        "document filename sent as its title",
                    );
                    m.insert("title".into(), json!(f));
                }
                (None, None) => {}
            }
            put_cache_control(&mut m, cache_control);
        }
        Part::Audio { .. } => {
            losses.dropped(path, "Anthropic does not accept audio input");
            return None;
        }
        Part::ToolCall {
            id,
            name,
            arguments,
            kind,
        } => {
            m.insert("type".into(), json!("tool_use"));
            let id = match target {
                Target::Request => safe_tool_id(id, &join(path, "id"), losses),
                Target::Response => id.clone(),
            };
            m.insert("id".into(), json!(id));
            m.insert("name".into(), json!(name));
            m.insert("input".into(), tool_input(arguments, *kind, path, losses));
        }
        Part::ToolResult {
            call_id,
            content,
            is_error,
            kind: _,
            cache_control,
        } => {
            m.insert("type".into(), json!("tool_result"));
            let call_id = match target {
                Target::Request => safe_tool_id(call_id, &join(path, "tool_use_id"), losses),
                Target::Response => call_id.clone(),
            };
            m.insert("tool_use_id".into(), json!(call_id));
            if !content.is_empty() {
                let cpath = join(path, "content");
                let blocks: Vec<Value> = content
                    .iter()
                    .enumerate()
                    .filter_map(|(i, p)| encode_part(p, &at(&cpath, i), target, None, losses))
                    .collect();
                m.insert("content".into(), content_value(blocks));
            }
            if *is_error {
                m.insert("is_error".into(), json!(true));
            }
            put_cache_control(&mut m, cache_control);
        }
        Part::Reasoning { text, seal } => match (target, seal) {
            (_, Some(s)) if s.family == Family::Anthropic && s.kind == SealKind::Redacted => {
                m.insert("type".into(), json!("redacted_thinking"));
                m.insert("data".into(), json!(s.payload));
            }
            (Target::Request, Some(s)) if s.family == Family::Anthropic => {
                m.insert("type".into(), json!("thinking"));
                m.insert("thinking".into(), json!(text));
                m.insert("signature".into(), json!(s.payload));
            }
            (Target::Request, Some(s)) => {
                losses.dropped(
                    path,
                    format!(
                        "reasoning sealed by the {:?} family cannot be verified by Anthropic",
                        s.family
                    ),
                );
                return None;
            }
            (Target::Request, None) => {
                losses.dropped(
                    path,
                    "reasoning without an Anthropic signature cannot be replayed",
                );
                return None;
            }
            (Target::Response, s) => {
                m.insert("type".into(), json!("thinking"));
                m.insert("thinking".into(), json!(text));
                let sig = s
                    .as_ref()
                    .map(|s| s.carry_in(Family::Anthropic))
                    .unwrap_or_default();
                m.insert("signature".into(), json!(sig));
            }
        },
        Part::Refusal { text } => {
            losses.approximated(path, "refusal sent as a text block");
            m.insert("type".into(), json!("text"));
            m.insert("text".into(), json!(text));
        }
        Part::Opaque { dialect, value } => {
            if *dialect == Dialect::Anthropic {
                return Some(value.clone());
            }
            losses.dropped(path, format!("{dialect} content has no Anthropic form"));
            return None;
        }
    }
    Some(Value::Object(m))
}

// ---------------------------------------------------------------------------------------------
// Requests.

fn decode_content(
    v: Option<&Value>,
    path: &Path,
    losses: &mut Losses,
) -> Result<Vec<(Part, JsonMap)>, DecodeError> {
    match v {
        Some(Value::String(s)) => Ok(vec![(Part::text(s.clone()), Map::new())]),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, b)| decode_block_extra(b, &at(path, i), losses))
            .collect(),
        None | Some(Value::Null) => Err(DecodeError::missing(path)),
        Some(_) => Err(DecodeError::wrong_type(
            path,
            "a string or an array of blocks",
        )),
    }
}

fn push_message(
    messages: &mut Vec<Message>,
    role: Role,
    parts: Vec<(Part, JsonMap)>,
    fields: &mut JsonMap,
) {
    let mut content = Vec::with_capacity(parts.len());
    place(&mut content, &messages.len(), parts, fields);
    messages.push(Message::new(role, content));
}

/// Appends parts to `target`, remembering their extra fields under `<prefix>.<position>`.
fn place(
    target: &mut Vec<Part>,
    prefix: &dyn fmt::Display,
    parts: Vec<(Part, JsonMap)>,
    fields: &mut JsonMap,
) {
    for (p, extra) in parts {
        if !extra.is_empty() {
            fields.insert(format!("{prefix}.{}", target.len()), Value::Object(extra));
        }
        target.push(p);
    }
}

fn decode_tool(v: &Value, path: &Path, fields: &mut JsonMap) -> Result<Tool, DecodeError> {
    let m = obj(v, path)?;
    if let Some(t) = m.get("type")
        && t != "custom"
    {
        return Ok(Tool::Opaque {
            dialect: Dialect::Anthropic,
            value: v.clone(),
        });
    }
    let name = req_str(m, "name", path)?;
    let known = [
        "type",
        "name",
        "description",
        "input_schema",
        "strict",
        "cache_control",
    ];
    let extra: JsonMap = m
        .iter()
        .filter(|(k, _)| !known.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !extra.is_empty() {
        fields.insert(name.clone(), Value::Object(extra));
    }
    Ok(Tool::Function {
        description: opt_str(m, "description", path)?,
        parameters: m
            .get("input_schema")
            .cloned()
            .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
        strict: opt_bool(m, "strict", path)?,
        cache_control: decode_cache_control(m, path)?,
        name,
    })
}

/// Decodes an Anthropic Messages request body.
pub fn decode_request(body: &[u8], losses: &mut Losses) -> Result<Request, DecodeError> {
    let mut v: Value = serde_json::from_slice(body).map_err(|e| DecodeError::json("$", &e))?;
    let Value::Object(m) = &mut v else {
        return Err(DecodeError::wrong_type("$", "an object"));
    };
    let mut req = Request {
        model: req_str(m, "model", &ROOT)?,
        ..Request::default()
    };
    let mut part_fields = Map::new();
    if let Some(s) = m.get("system")
        && !s.is_null()
    {
        let parts = decode_content(Some(s), &Path::Root("system"), losses)?;
        place(&mut req.system, &"system", parts, &mut part_fields);
    }
    // Taken out so that message text moves into the canonical parts instead of being copied;
    // nothing reads `messages` from the body after this.
    let msgs = match m.get_mut("messages") {
        Some(Value::Array(a)) => std::mem::take(a),
        Some(_) => return Err(DecodeError::wrong_type("messages", "an array")),
        None => return Err(DecodeError::missing("messages")),
    };
    let mut conversation_started = false;
    let mut message_fields = Map::new();
    let messages_path = Path::Root("messages");
    for (i, mv) in msgs.into_iter().enumerate() {
        let path = at(&messages_path, i);
        let Value::Object(mut extra) = mv else {
            return Err(DecodeError::wrong_type(path, "an object"));
        };
        let content_value = extra.remove("content");
        let role = match extra.remove("role") {
            Some(Value::String(s)) => s,
            None | Some(Value::Null) => return Err(DecodeError::missing(join(&path, "role"))),
            Some(_) => return Err(DecodeError::wrong_type(join(&path, "role"), "a string")),
        };
        let first_index = req.messages.len();
        let cpath = join(&path, "content");
        let content = match content_value {
            Some(Value::String(s)) => vec![(Part::text(s), Map::new())],
            other => decode_content(other.as_ref(), &cpath, losses)?,
        };
        match role.as_str() {
            "user"
                if !content
                    .iter()
                    .any(|(p, _)| matches!(p, Part::ToolResult { .. })) =>
            {
                conversation_started = true;
                push_message(&mut req.messages, Role::User, content, &mut part_fields);
            }
            "user" => {
                conversation_started = true;
                let (results, rest): (Vec<_>, Vec<_>) = content
                    .into_iter()
                    .partition(|(p, _)| matches!(p, Part::ToolResult { .. }));
                let had_results = !results.is_empty();
                if had_results {
                    push_message(&mut req.messages, Role::Tool, results, &mut part_fields);
                }
                if !rest.is_empty() || !had_results {
                    push_message(&mut req.messages, Role::User, rest, &mut part_fields);
                }
            }
            "assistant" => {
                conversation_started = true;
                push_message(
                    &mut req.messages,
                    Role::Assistant,
                    content,
                    &mut part_fields,
                );
            }
            "system" | "developer" => {
                // A leading system message means exactly what the top-level `system` means;
                // folding it there keeps decode(encode(x)) equal to x.
                if conversation_started {
                    let role = if role == "system" {
                        Role::System
                    } else {
                        Role::Developer
                    };
                    push_message(&mut req.messages, role, content, &mut part_fields);
                } else {
                    place(&mut req.system, &"system", content, &mut part_fields);
                }
            }
            other => {
                return Err(DecodeError::new(
                    join(&path, "role"),
                    format!("unknown role `{other}`"),
                ));
            }
        }
        if !extra.is_empty() {
            if req.messages.len() > first_index {
                // The role goes along so the fields only land on a turn of the same role.
                let mut extra = extra;
                extra.insert("role".into(), json!(role));
                message_fields.insert(first_index.to_string(), Value::Object(extra));
            } else {
                report_unknown(&extra, &["role", "content"], &path, "message", losses);
            }
        }
    }
    req.max_tokens = opt_u64(m, "max_tokens", &ROOT)?;
    req.temperature = opt_f64(m, "temperature", &ROOT)?;
    req.top_p = opt_f64(m, "top_p", &ROOT)?;
    req.top_k = opt_u64(m, "top_k", &ROOT)?;
    req.stream = opt_bool(m, "stream", &ROOT)?.unwrap_or(false);
    if let Some(s) = m.get("stop_sequences")
        && !s.is_null()
    {
        let a = s
            .as_array()
            .ok_or_else(|| DecodeError::wrong_type("stop_sequences", "an array"))?;
        for (i, x) in a.iter().enumerate() {
            req.stop.push(
                x.as_str()
                    .ok_or_else(|| {
                        DecodeError::wrong_type(format!("stop_sequences[{i}]"), "a string")
                    })?
                    .to_owned(),
            );
        }
    }
    let mut tool_fields = Map::new();
    if let Some(t) = m.get("tools")
        && !t.is_null()
    {
        let a = t
            .as_array()
            .ok_or_else(|| DecodeError::wrong_type("tools", "an array"))?;
        for (i, tv) in a.iter().enumerate() {
            req.tools.push(decode_tool(
                tv,
                &at(&Path::Root("tools"), i),
                &mut tool_fields,
            )?);
        }
    }
    if let Some(tc) = m.get("tool_choice")
        && !tc.is_null()
    {
        let tm = obj(tc, &Path::Root("tool_choice"))?;
        req.tool_choice = Some(
            match req_str(tm, "type", &Path::Root("tool_choice"))?.as_str() {
                "auto" => ToolChoice::Auto,
                "any" => ToolChoice::Required,
                "none" => ToolChoice::None,
                "tool" => ToolChoice::Tool {
                    name: req_str(tm, "name", &Path::Root("tool_choice"))?,
                },
                other => {
                    return Err(DecodeError::new(
                        "tool_choice.type",
                        format!("unknown tool_choice type `{other}`"),
                    ));
                }
            },
        );
        if let Some(d) = opt_bool(tm, "disable_parallel_tool_use", &Path::Root("tool_choice"))? {
            req.parallel_tool_calls = Some(!d);
        }
        report_unknown(
            tm,
            &["type", "name", "disable_parallel_tool_use"],
            &Path::Root("tool_choice"),
            "tool_choice",
            losses,
        );
    }
    let mut rc = ReasoningConfig::default();
    let mut has_reasoning = false;
    if let Some(t) = m.get("thinking")
        && !t.is_null()
    {
        let tm = obj(t, &Path::Root("thinking"))?;
        has_reasoning = true;
        match req_str(tm, "type", &Path::Root("thinking"))?.as_str() {
            "enabled" => {
                rc.enabled = Some(true);
                rc.budget_tokens = opt_u64(tm, "budget_tokens", &Path::Root("thinking"))?;
            }
            "adaptive" => {
                rc.enabled = Some(true);
                rc.adaptive = true;
            }
            "disabled" => rc.enabled = Some(false),
            other => {
                return Err(DecodeError::new(
                    "thinking.type",
                    format!("unknown thinking type `{other}`"),
                ));
            }
        }
        rc.display = opt_str(tm, "display", &Path::Root("thinking"))?;
        report_unknown(
            tm,
            &["type", "budget_tokens", "display"],
            &Path::Root("thinking"),
            "thinking",
            losses,
        );
    }
    if let Some(oc) = m.get("output_config")
        && !oc.is_null()
    {
        let om = obj(oc, &Path::Root("output_config"))?;
        if let Some(e) = opt_str(om, "effort", &Path::Root("output_config"))? {
            rc.effort = Some(Effort::parse(&e).ok_or_else(|| {
                DecodeError::new("output_config.effort", format!("unknown effort `{e}`"))
            })?);
            has_reasoning = true;
        }
        if let Some(f) = om.get("format")
            && !f.is_null()
        {
            let fm = obj(f, &Path::Root("output_config.format"))?;
            match req_str(fm, "type", &Path::Root("output_config.format"))?.as_str() {
                "json_schema" => {
                    req.response_format = Some(ResponseFormat::JsonSchema {
                        name: None,
                        schema: fm.get("schema").cloned().unwrap_or(Value::Null),
                        strict: None,
                        description: None,
                    });
                }
                other => losses.dropped(
                    "output_config.format",
                    format!("output format `{other}` has no canonical form"),
                ),
            }
        }
        report_unknown(
            om,
            &["effort", "format"],
            &Path::Root("output_config"),
            "output_config",
            losses,
        );
    }
    if has_reasoning {
        req.reasoning = Some(rc);
    }
    if let Some(md) = m.get("metadata")
        && !md.is_null()
    {
        let mut mm = obj(md, &Path::Root("metadata"))?.clone();
        match mm.remove("user_id") {
            Some(Value::String(u)) => req.user = Some(u),
            None | Some(Value::Null) => {}
            Some(_) => return Err(DecodeError::wrong_type("metadata.user_id", "a string")),
        }
        if !mm.is_empty() {
            req.metadata = Some(mm);
        }
    }
    const KNOWN: &[&str] = &[
        "model",
        "system",
        "messages",
        "max_tokens",
        "temperature",
        "top_p",
        "top_k",
        "stream",
        "stop_sequences",
        "tools",
        "tool_choice",
        "thinking",
        "output_config",
        "metadata",
    ];
    for (k, val) in m {
        if !KNOWN.contains(&k.as_str()) {
            req.extensions
                .push(Extension::new(Dialect::Anthropic, k.clone(), val.clone()));
        }
    }
    if !part_fields.is_empty() {
        req.extensions.push(Extension::new(
            Dialect::Anthropic,
            PART_FIELDS_KEY,
            Value::Object(part_fields),
        ));
    }
    if !message_fields.is_empty() {
        req.extensions.push(Extension::new(
            Dialect::Anthropic,
            MESSAGE_FIELDS_KEY,
            Value::Object(message_fields),
        ));
    }
    if !tool_fields.is_empty() {
        req.extensions.push(Extension::new(
            Dialect::Anthropic,
            TOOL_FIELDS_KEY,
            Value::Object(tool_fields),
        ));
    }
    Ok(req)
}

/// The `max_tokens` to send when the client gave none (other dialects make it optional).
pub fn default_max_tokens(model: &str) -> u64 {
    let m = model.to_ascii_lowercase();
    if m.contains("claude-3-opus") || m.contains("claude-3-haiku") || m.contains("claude-2") {
        return 4096;
    }
    if m.contains("claude-3-5") || m.contains("claude-3.5") {
        return 8192;
    }
    if m.contains("claude-3-7") || m.contains("claude-3.7") {
        return 64000;
    }
    if let Some(pos) = m.find("opus-4") {
        let rest = &m[pos + "opus-4".len()..];
        let old = rest.is_empty()
            || rest.starts_with('@')
            || rest.starts_with("-2")
            || rest == "-1"
            || rest.starts_with("-1-")
            || rest.starts_with("-1@")
            || rest.starts_with(".1");
        return if old { 32000 } else { 64000 };
    }
    if m.contains("claude") && !m.contains("claude-3") {
        return 64000;
    }
    8192
}

fn encode_effort(e: Effort, losses: &mut Losses) -> Option<&'static str> {
    match e {
        Effort::None => None,
        Effort::Minimal => {
            losses.approximated("reasoning.effort", "effort `minimal` sent as `low`");
            Some("low")
        }
        other => Some(other.as_str()),
    }
}

/// Writes `thinking` and `output_config.effort` for the canonical reasoning settings.
/// Returns whether thinking was switched on here for a dialect that only speaks efforts, in
/// which case the caller must keep the sampling settings thinking forbids off the wire.
fn encode_reasoning(
    r: &ReasoningConfig,
    max_tokens: u64,
    forced_tool: bool,
    out: &mut JsonMap,
    output_config: &mut JsonMap,
    losses: &mut Losses,
) -> bool {
    let mut synthesized = false;
    let mut thinking = Map::new();
    let mut effort = None;
    if r.enabled == Some(false)
        || (r.effort == Some(Effort::None) && r.budget_tokens.is_none() && !r.adaptive)
    {
        thinking.insert("type".into(), json!("disabled"));
        effort = r.effort;
    } else if r.adaptive {
        thinking.insert("type".into(), json!("adaptive"));
        effort = r.effort;
    } else if let Some(b) = r.budget_tokens {
        thinking.insert("type".into(), json!("enabled"));
        thinking.insert("budget_tokens".into(), json!(b));
        effort = r.effort;
    } else if r.enabled == Some(true) && forced_tool {
        losses.dropped(
            "reasoning",
            "Anthropic cannot think while tool_choice forces a tool call",
        );
    } else if r.enabled == Some(true) {
        // An effort from a dialect that speaks only efforts: Anthropic wants a budget, and it
        // must stay below max_tokens because thinking counts toward it.
        let wanted = r.effort.and_then(Effort::budget_tokens).unwrap_or(8192);
        // A quarter of max_tokens stays for the answer itself.
        let b = wanted.min(max_tokens / 4 * 3);
        if b >= 1024 {
            thinking.insert("type".into(), json!("enabled"));
            thinking.insert("budget_tokens".into(), json!(b));
            synthesized = true;
            losses.approximated(
                "reasoning.effort",
                format!("reasoning effort sent as a thinking budget of {b} tokens"),
            );
        } else {
            losses.dropped(
                "reasoning",
                "max_tokens leaves no room for the minimum thinking budget of 1024",
            );
        }
    } else {
        // Effort alone: Anthropic's own `output_config.effort` without a thinking switch.
        effort = r.effort;
    }
    if let Some(d) = &r.display {
        if thinking.get("type").is_some_and(|t| t != "disabled") {
            thinking.insert("display".into(), json!(d));
        } else {
            losses.dropped(
                "reasoning.display",
                "display only applies when thinking is on",
            );
        }
    }
    if r.summary.is_some() {
        losses.dropped(
            "reasoning.summary",
            "Anthropic has no reasoning summary setting",
        );
    }
    if !thinking.is_empty() {
        out.insert("thinking".into(), Value::Object(thinking));
    }
    if let Some(e) = effort.and_then(|e| encode_effort(e, losses)) {
        output_config.insert("effort".into(), json!(e));
    }
    synthesized
}

fn encode_tool(
    t: &Tool,
    path: &Path,
    fields: Option<&JsonMap>,
    losses: &mut Losses,
) -> Option<Value> {
    match t {
        Tool::Function {
            name,
            description,
            parameters,
            strict,
            cache_control,
        } => {
            let mut m = Map::new();
            m.insert("name".into(), json!(name));
            if let Some(d) = description {
                m.insert("description".into(), json!(d));
            }
            // Anthropic requires an object schema; other dialects may send none or `{}`.
            let schema = if parameters.as_object().is_none_or(|o| o.is_empty()) {
                json!({"type": "object", "properties": {}})
            } else {
                parameters.clone()
            };
            m.insert("input_schema".into(), schema);
            if let Some(s) = strict {
                m.insert("strict".into(), json!(s));
            }
            put_cache_control(&mut m, cache_control);
            if let Some(Value::Object(extra)) = fields.and_then(|f| f.get(name)) {
                for (k, v) in extra {
                    m.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
            Some(Value::Object(m))
        }
        Tool::Custom {
            name,
            description,
            format,
        } => {
            losses.approximated(
                path,
                "custom tool sent as a function with one string property `input`",
            );
            if format.is_some() {
                losses.dropped(
                    join(path, "format"),
                    "Anthropic tools take no input grammar",
                );
            }
            let mut m = Map::new();
            m.insert("name".into(), json!(name));
            if let Some(d) = description {
                m.insert("description".into(), json!(d));
            }
            m.insert(
                "input_schema".into(),
                json!({"type": "object", "properties": {"input": {"type": "string"}}, "required": ["input"]}),
            );
            Some(Value::Object(m))
        }
        Tool::Opaque { dialect, value } => {
            if *dialect == Dialect::Anthropic {
                Some(value.clone())
            } else {
                losses.dropped(
                    path,
                    format!("{dialect} built-in tool has no Anthropic form"),
                );
                None
            }
        }
    }
}

fn encode_parts(
    parts: &[Part],
    path: &Path,
    message: usize,
    fields: Option<&JsonMap>,
    losses: &mut Losses,
) -> Vec<Value> {
    parts
        .iter()
        .enumerate()
        .filter(|(_, p)| {
            // Anthropic rejects empty text blocks; other dialects produce them next to tool calls.
            !matches!(p, Part::Text { text, cache_control: None, citations: None } if text.is_empty())
        })
        .filter_map(|(j, p)| {
            let extra = fields.and_then(|f| f.get(&format!("{message}.{j}")));
            if extra.is_none()
                && let Part::Text {
                    text,
                    cache_control: None,
                    citations: None,
                } = p
            {
                // Stands for `{"type": "text", "text": ...}` until `message_content` knows
                // whether the turn takes the string form, which saves building the block.
                return Some(Value::String(text.clone()));
            }
            encode_part(p, &at(path, j), Target::Request, extra, losses)
        })
        .collect()
}

/// Encodes a canonical request as an Anthropic Messages body.
pub fn encode_request(req: &Request, losses: &mut Losses) -> Value {
    let mut out = Map::new();
    out.insert("model".into(), json!(req.model));
    let max_tokens = match req.max_tokens {
        Some(n) => n,
        None => {
            let n = default_max_tokens(&req.model);
            losses.approximated(
                "max_tokens",
                format!("Anthropic requires max_tokens; sent the model default {n}"),
            );
            n
        }
    };
    out.insert("max_tokens".into(), json!(max_tokens));

    let ext = |key: &str| {
        req.extensions.iter().find_map(|e| {
            (e.dialect == Dialect::Anthropic && e.key == key)
                .then(|| e.value.as_object())
                .flatten()
        })
    };
    let part_fields = ext(PART_FIELDS_KEY);

    // System prompt: the top-level parts, then leading system/developer messages.
    let mut system = Vec::new();
    let lead = req
        .messages
        .iter()
        .take_while(|m| matches!(m.role, Role::System | Role::Developer))
        .count();
    // Each part with the message it came from (`None`: the top-level system prompt).
    let sys_parts = req
        .system
        .iter()
        .enumerate()
        .map(|(j, p)| (None, j, p))
        .chain(
            req.messages
                .iter()
                .enumerate()
                .take(lead)
                .flat_map(|(i, msg)| {
                    msg.content
                        .iter()
                        .enumerate()
                        .map(move |(j, p)| (Some(i), j, p))
                }),
        );
    let system_root = Path::Root("system");
    let messages_root = Path::Root("messages");
    for (msg, j, p) in sys_parts {
        let msg_path;
        let content_path;
        let path = match msg {
            None => at(&system_root, j),
            Some(i) => {
                msg_path = at(&messages_root, i);
                content_path = join(&msg_path, "content");
                at(&content_path, j)
            }
        };
        match p {
            Part::Text { .. } | Part::Refusal { .. } | Part::Opaque { .. } => {
                let extra = part_fields.and_then(|f| {
                    f.get(&match msg {
                        None => format!("system.{j}"),
                        Some(i) => format!("{i}.{j}"),
                    })
                });
                if let Some(b) = encode_part(p, &path, Target::Request, extra, losses) {
                    system.push(b);
                }
            }
            _ => losses.dropped(path, "the Anthropic system prompt holds only text"),
        }
    }
    if !system.is_empty() {
        out.insert("system".into(), content_value(system));
    }

    // Turns: tool results and a directly following user message share one user turn, results
    // first, as Anthropic requires.
    let message_fields = ext(MESSAGE_FIELDS_KEY);
    let mut turns: Vec<(&'static str, Vec<Value>, bool, Option<&Value>)> = Vec::new();
    for (i, msg) in req.messages.iter().enumerate().skip(lead) {
        let path = at(&messages_root, i);
        let blocks = encode_parts(
            &msg.content,
            &join(&path, "content"),
            i,
            part_fields,
            losses,
        );
        if blocks.is_empty() && !msg.content.is_empty() {
            losses.dropped(path, "no content of this message can be sent to Anthropic");
            continue;
        }
        let fields = message_fields.and_then(|f| f.get(&i.to_string()));
        let open_tool_turn = matches!(turns.last(), Some((_, _, true, _)));
        match msg.role {
            Role::Tool | Role::User if open_tool_turn => {
                if let Some(last) = turns.last_mut() {
                    last.1.extend(blocks);
                    last.2 = msg.role == Role::Tool;
                }
            }
            Role::Tool => turns.push(("user", blocks, true, fields)),
            Role::User => turns.push(("user", blocks, false, fields)),
            Role::Assistant => turns.push(("assistant", blocks, false, fields)),
            Role::System => turns.push(("system", blocks, false, fields)),
            Role::Developer => {
                losses.approximated(
                    join(&path, "role"),
                    "developer message sent as a system message",
                );
                turns.push(("system", blocks, false, fields));
            }
        }
    }
    let messages: Vec<Value> = turns
        .into_iter()
        .map(|(role, blocks, _, fields)| {
            let mut m = Map::new();
            m.insert("role".into(), json!(role));
            m.insert("content".into(), message_content(blocks));
            if let Some(Value::Object(extra)) = fields
                && extra.get("role") == m.get("role")
            {
                for (k, v) in extra {
                    m.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
            Value::Object(m)
        })
        .collect();
    out.insert("messages".into(), Value::Array(messages));

    // Tools and tool choice.
    let fields = ext(TOOL_FIELDS_KEY);
    let tools: Vec<Value> = req
        .tools
        .iter()
        .enumerate()
        .filter_map(|(i, t)| encode_tool(t, &at(&Path::Root("tools"), i), fields, losses))
        .collect();
    let has_tools = !tools.is_empty();
    if has_tools {
        out.insert("tools".into(), Value::Array(tools));
    }
    let disable = req.parallel_tool_calls.map(|p| !p);
    let choice = match (&req.tool_choice, disable) {
        (Some(c), d) => {
            let mut cm = Map::new();
            match c {
                ToolChoice::Auto => {
                    cm.insert("type".into(), json!("auto"));
                }
                ToolChoice::Required => {
                    cm.insert("type".into(), json!("any"));
                }
                ToolChoice::None => {
                    cm.insert("type".into(), json!("none"));
                }
                ToolChoice::Tool { name } => {
                    cm.insert("type".into(), json!("tool"));
                    cm.insert("name".into(), json!(name));
                }
            }
            if let Some(d) = d
                && *c != ToolChoice::None
            {
                cm.insert("disable_parallel_tool_use".into(), json!(d));
            }
            Some(Value::Object(cm))
        }
        (None, Some(true)) => Some(json!({"type": "auto", "disable_parallel_tool_use": true})),
        (None, _) => None,
    };
    if let Some(c) = choice {
        if has_tools {
            out.insert("tool_choice".into(), c);
        } else if req.tool_choice.is_some() {
            losses.dropped("tool_choice", "no tools to choose from");
        }
    }

    // Sampling.
    if let Some(t) = req.temperature {
        if t > 1.0 {
            losses.approximated("temperature", "Anthropic temperature is at most 1; clamped");
            out.insert("temperature".into(), json!(1.0));
        } else {
            out.insert("temperature".into(), json!(t));
        }
    }
    if let Some(p) = req.top_p {
        out.insert("top_p".into(), json!(p));
    }
    if let Some(k) = req.top_k {
        out.insert("top_k".into(), json!(k));
    }
    if !req.stop.is_empty() {
        out.insert("stop_sequences".into(), json!(req.stop));
    }
    if req.seed.is_some() {
        losses.dropped("seed", "Anthropic has no seed");
    }

    let mut output_config = Map::new();
    match &req.response_format {
        None | Some(ResponseFormat::Text) => {}
        Some(ResponseFormat::JsonObject) => {
            losses.dropped(
                "response_format",
                "Anthropic has no JSON mode without a schema",
            );
        }
        Some(ResponseFormat::JsonSchema {
            schema,
            description,
            ..
        }) => {
            output_config.insert(
                "format".into(),
                json!({"type": "json_schema", "schema": schema}),
            );
            if description.is_some() {
                losses.dropped(
                    "response_format.description",
                    "Anthropic output formats have no description",
                );
            }
        }
    }
    if let Some(r) = &req.reasoning {
        let forced = matches!(
            out.get("tool_choice")
                .and_then(|c| c.get("type"))
                .and_then(Value::as_str),
            Some("any" | "tool")
        );
        if encode_reasoning(r, max_tokens, forced, &mut out, &mut output_config, losses) {
            // Anthropic rejects these with thinking on; the client never asked for thinking by
            // that name, so its sampling settings give way.
            if out
                .get("temperature")
                .and_then(Value::as_f64)
                .is_some_and(|t| t != 1.0)
            {
                out.remove("temperature");
                losses.dropped("temperature", "thinking requires the default temperature");
            }
            if out.remove("top_k").is_some() {
                losses.dropped("top_k", "thinking does not allow top_k");
            }
            if out
                .get("top_p")
                .and_then(Value::as_f64)
                .is_some_and(|p| p < 0.95)
            {
                out.remove("top_p");
                losses.dropped("top_p", "thinking allows top_p only from 0.95 to 1");
            }
        }
    }
    if !output_config.is_empty() {
        out.insert("output_config".into(), Value::Object(output_config));
    }

    let mut metadata = req.metadata.clone().unwrap_or_default();
    if let Some(u) = &req.user {
        metadata.insert("user_id".into(), json!(u));
    }
    if !metadata.is_empty() {
        out.insert("metadata".into(), Value::Object(metadata));
    }
    if req.stream {
        out.insert("stream".into(), json!(true));
    }

    for e in &req.extensions {
        if e.dialect != Dialect::Anthropic && e.is_private() {
            continue;
        }
        if e.dialect != Dialect::Anthropic {
            losses.dropped(
                format!("extensions.{}", e.key),
                format!("{} field has no Anthropic equivalent", e.dialect),
            );
        } else if [TOOL_FIELDS_KEY, MESSAGE_FIELDS_KEY, PART_FIELDS_KEY].contains(&e.key.as_str()) {
            continue;
        } else if out.contains_key(&e.key) {
            losses.dropped(
                format!("extensions.{}", e.key),
                "collides with a field already set",
            );
        } else {
            out.insert(e.key.clone(), e.value.clone());
        }
    }
    Value::Object(out)
}
