//! Gemini `GenerateContentRequest` ⇄ canonical `Request`.

use std::collections::{HashMap, VecDeque};

use dragoman_model::{
    DecodeError, Dialect, Effort, Extension, Family, Losses, MediaSource, Message, Part,
    ReasoningConfig, ReasoningSeal, Request, ResponseFormat, Role, SealKind, Tool, ToolChoice,
    ToolKind,
};
use serde_json::{Map, Value, json};

use crate::{GEN_PREFIX, as_arr, as_obj, as_str, get, made_call_id};

/// Top-level request fields read into canonical fields; any other key becomes an extension.
const KNOWN_TOP: &[&str] = &[
    "contents",
    "systemInstruction",
    "system_instruction",
    "tools",
    "toolConfig",
    "tool_config",
    "generationConfig",
    "generation_config",
    "model",
];

/// `generationConfig` fields read into canonical fields.
const KNOWN_GEN: &[&str] = &[
    "maxOutputTokens",
    "max_output_tokens",
    "temperature",
    "topP",
    "top_p",
    "topK",
    "top_k",
    "seed",
    "stopSequences",
    "stop_sequences",
    "responseMimeType",
    "response_mime_type",
    "responseSchema",
    "response_schema",
    "responseJsonSchema",
    "response_json_schema",
    "thinkingConfig",
    "thinking_config",
];

/// The seal a `thoughtSignature` stands for: Gemini's own signature, or the envelope this
/// crate's encoders put there to carry another provider's reasoning state through a Gemini
/// client.
pub(crate) fn signature_seal(sig: &str) -> ReasoningSeal {
    ReasoningSeal::unwrap(sig).unwrap_or_else(|| ReasoningSeal {
        family: Family::Google,
        kind: SealKind::Signature,
        payload: sig.to_owned(),
        item_id: None,
    })
}

/// Places the seal of a part's signature in `out`. Gemini's own signatures stay where they
/// arrived (just before the part they belong to, which Gemini checks); another provider's state
/// rejoins the thought text it was issued with, which a streamed answer delivers in pieces.
fn push_signature(sig: &str, out: &mut Vec<Part>) {
    let seal = signature_seal(sig);
    if seal.family != Family::Google
        && let Some(Part::Reasoning {
            text,
            seal: none @ None,
        }) = out.last_mut()
        && !text.is_empty()
    {
        *none = Some(seal);
        return;
    }
    out.push(Part::Reasoning {
        text: String::new(),
        seal: Some(seal),
    });
}

/// Pairs function responses that name no id with the calls they answer: the oldest unanswered
/// call of the same name, as Gemini pairs them.
#[derive(Default)]
pub(crate) struct CallIds {
    pending: HashMap<String, VecDeque<String>>,
    made: usize,
}

impl CallIds {
    pub(crate) fn call(&mut self, id: Option<&str>, name: &str, scope: &str, n: usize) -> String {
        let id = id
            .filter(|s| !s.is_empty())
            .map_or_else(|| made_call_id(scope, n), str::to_owned);
        self.pending
            .entry(name.to_owned())
            .or_default()
            .push_back(id.clone());
        id
    }

    fn answer(&mut self, id: Option<&str>, name: &str) -> String {
        let queue = self.pending.entry(name.to_owned()).or_default();
        match id.filter(|s| !s.is_empty()) {
            Some(id) => {
                queue.retain(|p| p != id);
                id.to_owned()
            }
            None => queue.pop_front().unwrap_or_else(|| {
                self.made += 1;
                made_call_id(&format!("orphan_{name}"), self.made)
            }),
        }
    }
}

/// A media part for an inline or file source, by its MIME type.
fn media(mime: &str, source: MediaSource) -> Part {
    if mime.starts_with("image/") {
        Part::Image {
            source,
            detail: None,
            cache_control: None,
        }
    } else if let (Some(format), MediaSource::Base64 { data, .. }) =
        (mime.strip_prefix("audio/"), &source)
    {
        Part::Audio {
            data: data.clone(),
            format: format.to_owned(),
        }
    } else {
        Part::Document {
            source,
            title: None,
            filename: None,
            cache_control: None,
        }
    }
}

/// The canonical content of a `functionResponse.response` and whether it reports an error.
fn result_content(response: Option<&Value>) -> (Vec<Part>, bool) {
    let Some(v) = response else {
        return (Vec::new(), false);
    };
    if let Some(m) = v.as_object()
        && m.len() == 1
    {
        for (key, is_error) in [("output", false), ("result", false), ("error", true)] {
            if let Some(Value::String(s)) = m.get(key) {
                return (vec![Part::text(s.clone())], is_error);
            }
        }
    }
    (vec![Part::text(v.to_string())], false)
}

/// Decodes one `Part` of a content of role `role`, appending canonical parts to `out`.
/// `turn` and `n` name a function call that carries no id.
#[allow(clippy::too_many_arguments)]
fn decode_part(
    p: &Value,
    path: &str,
    model_turn: bool,
    scope: &str,
    n: &mut usize,
    ids: &mut CallIds,
    out: &mut Vec<Part>,
    results: &mut Vec<Part>,
) -> Result<(), DecodeError> {
    let m = as_obj(p, path)?;
    let signature = get(m, "thoughtSignature", "thought_signature")
        .map(|s| as_str(s, &format!("{path}.thoughtSignature")))
        .transpose()?;
    let thought = m.get("thought").and_then(Value::as_bool) == Some(true);
    if let Some(t) = m.get("text").filter(|t| !t.is_null()) {
        let text = as_str(t, &format!("{path}.text"))?;
        if thought {
            // Thought summaries arrive in pieces; one run of them is one reasoning part.
            match out.last_mut() {
                Some(Part::Reasoning {
                    text: prev,
                    seal: None,
                }) if !prev.is_empty() => prev.push_str(text),
                _ => out.push(Part::Reasoning {
                    text: text.to_owned(),
                    seal: None,
                }),
            }
            if let Some(sig) = signature {
                push_signature(sig, out);
            }
            return Ok(());
        }
        if let Some(sig) = signature {
            push_signature(sig, out);
        }
        // An empty text part only ever carries a signature.
        if !text.is_empty() || signature.is_none() {
            out.push(Part::text(text));
        }
        return Ok(());
    }
    if let Some(sig) = signature {
        push_signature(sig, out);
    }
    if let Some(fc) = get(m, "functionCall", "function_call") {
        let fpath = format!("{path}.functionCall");
        let f = as_obj(fc, &fpath)?;
        // Vertex streams a call's arguments when asked (`streamFunctionCallArguments`): a
        // named opening with `willContinue`, `partialArgs` fragments, an empty closing `{}`.
        // The pieces stay whole here; the stream decoder assembles them.
        if is_call_fragment(f) {
            out.push(Part::Opaque {
                dialect: Dialect::Gemini,
                value: json!({ "functionCall": fc }),
            });
            return Ok(());
        }
        let name = as_str(
            f.get("name")
                .ok_or_else(|| DecodeError::missing(format!("{fpath}.name")))?,
            &format!("{fpath}.name"),
        )?;
        let id = ids.call(f.get("id").and_then(Value::as_str), name, scope, *n);
        *n += 1;
        let arguments = match f.get("args") {
            None | Some(Value::Null) => "{}".to_owned(),
            Some(a) => a.to_string(),
        };
        if !model_turn {
            return Err(DecodeError::new(
                fpath,
                "a functionCall part belongs to a content of role `model`",
            ));
        }
        out.push(Part::ToolCall {
            id,
            name: name.to_owned(),
            arguments,
            kind: ToolKind::Function,
        });
        return Ok(());
    }
    if let Some(fr) = get(m, "functionResponse", "function_response") {
        let fpath = format!("{path}.functionResponse");
        let f = as_obj(fr, &fpath)?;
        let name = f.get("name").and_then(Value::as_str).unwrap_or_default();
        let call_id = ids.answer(f.get("id").and_then(Value::as_str), name);
        let (content, is_error) = result_content(f.get("response"));
        results.push(Part::ToolResult {
            call_id,
            content,
            is_error,
            kind: ToolKind::Function,
            cache_control: None,
        });
        return Ok(());
    }
    if let Some(d) = get(m, "inlineData", "inline_data") {
        let dpath = format!("{path}.inlineData");
        let d = as_obj(d, &dpath)?;
        let mime = get(d, "mimeType", "mime_type")
            .and_then(Value::as_str)
            .unwrap_or("application/octet-stream");
        let data = as_str(
            d.get("data")
                .ok_or_else(|| DecodeError::missing(format!("{dpath}.data")))?,
            &format!("{dpath}.data"),
        )?;
        out.push(media(
            mime,
            MediaSource::Base64 {
                media_type: mime.to_owned(),
                data: data.to_owned(),
            },
        ));
        return Ok(());
    }
    if let Some(d) = get(m, "fileData", "file_data") {
        let dpath = format!("{path}.fileData");
        let d = as_obj(d, &dpath)?;
        let uri = as_str(
            get(d, "fileUri", "file_uri")
                .ok_or_else(|| DecodeError::missing(format!("{dpath}.fileUri")))?,
            &format!("{dpath}.fileUri"),
        )?;
        let mime = get(d, "mimeType", "mime_type")
            .and_then(Value::as_str)
            .unwrap_or("application/octet-stream");
        out.push(media(
            mime,
            MediaSource::Url {
                url: uri.to_owned(),
            },
        ));
        return Ok(());
    }
    // executableCode, codeExecutionResult, videoMetadata-only parts and anything newer.
    let mut whole = m.clone();
    whole.remove("thoughtSignature");
    whole.remove("thought_signature");
    out.push(Part::Opaque {
        dialect: Dialect::Gemini,
        value: Value::Object(whole),
    });
    Ok(())
}

/// Whether a `functionCall` is a piece of a call whose arguments are streamed.
pub(crate) fn is_call_fragment(f: &Map<String, Value>) -> bool {
    f.get("willContinue").and_then(Value::as_bool) == Some(true)
        || f.contains_key("partialArgs")
        || !f.contains_key("name")
}

/// Decodes one part of a model answer (see [`decode_part`]).
pub(crate) fn decode_model_part(
    p: &Value,
    path: &str,
    scope: &str,
    n: &mut usize,
    ids: &mut CallIds,
    out: &mut Vec<Part>,
    results: &mut Vec<Part>,
) -> Result<(), DecodeError> {
    decode_part(p, path, true, scope, n, ids, out, results)
}

/// Converts a Google `Schema` (OpenAPI 3.0 subset, upper-case type names) to JSON Schema.
fn json_schema(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut out = Map::new();
            let nullable = m.get("nullable").and_then(Value::as_bool) == Some(true);
            for (k, val) in m {
                match k.as_str() {
                    "nullable" => {}
                    "type" => {
                        let t = val
                            .as_str()
                            .map_or_else(|| val.clone(), |s| json!(s.to_ascii_lowercase()));
                        let t = if nullable { json!([t, "null"]) } else { t };
                        out.insert("type".into(), t);
                    }
                    "properties" => {
                        let props = val
                            .as_object()
                            .map(|p| p.iter().map(|(n, s)| (n.clone(), json_schema(s))).collect())
                            .unwrap_or_default();
                        out.insert(k.clone(), Value::Object(props));
                    }
                    "items" | "anyOf" => {
                        out.insert(k.clone(), json_schema(val));
                    }
                    _ => {
                        out.insert(k.clone(), val.clone());
                    }
                }
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(json_schema).collect()),
        other => other.clone(),
    }
}

fn decode_tools(v: &Value, req: &mut Request) -> Result<(), DecodeError> {
    for (i, t) in as_arr(v, "tools")?.iter().enumerate() {
        let path = format!("tools[{i}]");
        let m = as_obj(t, &path)?;
        for (key, val) in m {
            if key != "functionDeclarations" && key != "function_declarations" {
                req.tools.push(Tool::Opaque {
                    dialect: Dialect::Gemini,
                    value: json!({ key: val }),
                });
                continue;
            }
            for (j, f) in as_arr(val, &format!("{path}.functionDeclarations"))?
                .iter()
                .enumerate()
            {
                let fpath = format!("{path}.functionDeclarations[{j}]");
                let f = as_obj(f, &fpath)?;
                let name = as_str(
                    f.get("name")
                        .ok_or_else(|| DecodeError::missing(format!("{fpath}.name")))?,
                    &format!("{fpath}.name"),
                )?;
                let parameters = get(f, "parametersJsonSchema", "parameters_json_schema")
                    .cloned()
                    .or_else(|| f.get("parameters").map(json_schema))
                    .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
                req.tools.push(Tool::Function {
                    name: name.to_owned(),
                    description: f
                        .get("description")
                        .and_then(Value::as_str)
                        .filter(|d| !d.is_empty())
                        .map(str::to_owned),
                    parameters,
                    strict: None,
                    cache_control: None,
                });
            }
        }
    }
    Ok(())
}

fn decode_tool_config(v: &Value, losses: &mut Losses) -> Option<ToolChoice> {
    let fc = get(
        v.as_object()?,
        "functionCallingConfig",
        "function_calling_config",
    )?;
    let fc = fc.as_object()?;
    let names: Vec<&str> = get(fc, "allowedFunctionNames", "allowed_function_names")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    match fc.get("mode").and_then(Value::as_str) {
        Some("NONE") => Some(ToolChoice::None),
        Some("ANY") => match names.as_slice() {
            [one] => Some(ToolChoice::Tool {
                name: (*one).to_owned(),
            }),
            [] => Some(ToolChoice::Required),
            _ => {
                losses.approximated(
                    "toolConfig.functionCallingConfig.allowedFunctionNames",
                    "several allowed functions read as: must call some tool",
                );
                Some(ToolChoice::Required)
            }
        },
        Some("VALIDATED") => {
            losses.approximated(
                "toolConfig.functionCallingConfig.mode",
                "VALIDATED read as AUTO",
            );
            Some(ToolChoice::Auto)
        }
        _ => Some(ToolChoice::Auto),
    }
}

fn effort_of_level(level: &str) -> Option<Effort> {
    Effort::parse(&level.to_ascii_lowercase())
}

fn decode_generation(v: &Value, req: &mut Request) -> Result<(), DecodeError> {
    let g = as_obj(v, "generationConfig")?;
    let num = |a: &str, b: &str| get(g, a, b).and_then(Value::as_f64);
    let int = |a: &str, b: &str| get(g, a, b).and_then(Value::as_u64);
    req.max_tokens = int("maxOutputTokens", "max_output_tokens");
    req.temperature = num("temperature", "temperature");
    req.top_p = num("topP", "top_p");
    req.top_k = int("topK", "top_k");
    req.seed = get(g, "seed", "seed").and_then(Value::as_i64);
    if let Some(s) = get(g, "stopSequences", "stop_sequences") {
        req.stop = as_arr(s, "generationConfig.stopSequences")?
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect();
    }
    let mime = get(g, "responseMimeType", "response_mime_type").and_then(Value::as_str);
    let schema = get(g, "responseJsonSchema", "response_json_schema")
        .cloned()
        .or_else(|| get(g, "responseSchema", "response_schema").map(json_schema));
    req.response_format = match (mime, schema) {
        (_, Some(schema)) => Some(ResponseFormat::JsonSchema {
            name: None,
            schema,
            strict: None,
            description: None,
        }),
        (Some("application/json"), None) => Some(ResponseFormat::JsonObject),
        (Some("text/plain"), None) => Some(ResponseFormat::Text),
        _ => None,
    };
    if let Some(Value::Object(t)) = get(g, "thinkingConfig", "thinking_config") {
        let budget = get(t, "thinkingBudget", "thinking_budget").and_then(Value::as_i64);
        let level = get(t, "thinkingLevel", "thinking_level").and_then(Value::as_str);
        let include = get(t, "includeThoughts", "include_thoughts").and_then(Value::as_bool);
        let mut rc = ReasoningConfig::default();
        match budget {
            Some(0) => rc.enabled = Some(false),
            Some(-1) => {
                rc.enabled = Some(true);
                rc.adaptive = true;
            }
            Some(b) if b > 0 => {
                rc.enabled = Some(true);
                rc.budget_tokens = u64::try_from(b).ok();
            }
            _ => {}
        }
        if let Some(e) = level.and_then(effort_of_level) {
            rc.effort = Some(e);
            rc.enabled.get_or_insert(true);
        }
        if include == Some(true) {
            rc.summary = Some("auto".into());
        }
        req.reasoning = Some(rc);
    }
    for (k, val) in g {
        if !KNOWN_GEN.contains(&k.as_str()) && !val.is_null() {
            req.extensions.push(Extension::new(
                Dialect::Gemini,
                format!("{GEN_PREFIX}{k}"),
                val.clone(),
            ));
        }
    }
    Ok(())
}

/// Decodes a Gemini request body. `model` and `stream` come from the URL (see the crate docs).
pub fn decode_request(body: &[u8], losses: &mut Losses) -> Result<Request, DecodeError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| DecodeError::json("", &e))?;
    decode_request_value(&v, losses)
}

pub(crate) fn decode_request_value(v: &Value, losses: &mut Losses) -> Result<Request, DecodeError> {
    let top = as_obj(v, "")?;
    let mut req = Request::default();
    if let Some(Value::String(m)) = top.get("model") {
        req.model = m.strip_prefix("models/").unwrap_or(m).to_owned();
    }
    if let Some(si) = get(top, "systemInstruction", "system_instruction") {
        let parts = match si {
            Value::String(s) => vec![Part::text(s.clone())],
            _ => {
                let si = as_obj(si, "systemInstruction")?;
                let mut out = Vec::new();
                let mut results = Vec::new();
                let mut ids = CallIds::default();
                if let Some(ps) = si.get("parts") {
                    for (j, p) in as_arr(ps, "systemInstruction.parts")?.iter().enumerate() {
                        decode_part(
                            p,
                            &format!("systemInstruction.parts[{j}]"),
                            false,
                            "system",
                            &mut 0,
                            &mut ids,
                            &mut out,
                            &mut results,
                        )?;
                    }
                }
                out
            }
        };
        req.system = parts;
    }
    let contents = top
        .get("contents")
        .ok_or_else(|| DecodeError::missing("contents"))?;
    let contents = match contents {
        // A single content object is accepted by the API as well.
        Value::Object(_) => std::slice::from_ref(contents),
        _ => as_arr(contents, "contents")?.as_slice(),
    };
    let mut ids = CallIds::default();
    for (i, c) in contents.iter().enumerate() {
        let path = format!("contents[{i}]");
        let c = as_obj(c, &path)?;
        let role = c.get("role").and_then(Value::as_str).unwrap_or("user");
        let model_turn = match role {
            "model" | "assistant" => true,
            "user" | "function" | "tool" => false,
            other => {
                return Err(DecodeError::new(
                    format!("{path}.role"),
                    format!("unknown role `{other}` (expected user or model)"),
                ));
            }
        };
        let role = if model_turn {
            Role::Assistant
        } else {
            Role::User
        };
        // Tool results and other parts keep their order: each run of one becomes a message.
        let mut segments: Vec<Message> = Vec::new();
        let mut n = 0;
        let scope = format!("t{i}");
        let (mut parts, mut results) = (Vec::new(), Vec::new());
        if let Some(ps) = c.get("parts") {
            for (j, p) in as_arr(ps, &format!("{path}.parts"))?.iter().enumerate() {
                decode_part(
                    p,
                    &format!("{path}.parts[{j}]"),
                    model_turn,
                    &scope,
                    &mut n,
                    &mut ids,
                    &mut parts,
                    &mut results,
                )?;
                for (r, got) in [(role, &mut parts), (Role::Tool, &mut results)] {
                    if got.is_empty() {
                        continue;
                    }
                    match segments.last_mut() {
                        Some(last) if last.role == r => last.content.append(got),
                        _ => segments.push(Message::new(r, std::mem::take(got))),
                    }
                }
            }
        }
        if segments.is_empty() {
            segments.push(Message::new(role, Vec::new()));
        }
        req.messages.extend(segments);
    }
    if let Some(t) = top.get("tools").filter(|t| !t.is_null()) {
        decode_tools(t, &mut req)?;
    }
    if let Some(tc) = get(top, "toolConfig", "tool_config") {
        req.tool_choice = decode_tool_config(tc, losses);
    }
    if let Some(g) = get(top, "generationConfig", "generation_config") {
        decode_generation(g, &mut req)?;
    }
    for (k, val) in top {
        if !KNOWN_TOP.contains(&k.as_str()) && !val.is_null() {
            req.extensions
                .push(Extension::new(Dialect::Gemini, k.clone(), val.clone()));
        }
    }
    Ok(req)
}

/// The `functionResponse.response` object for a result's content.
fn result_response(content: &[Part], is_error: bool, path: &str, losses: &mut Losses) -> Value {
    let mut text = String::new();
    for (k, p) in content.iter().enumerate() {
        match p {
            Part::Text { text: t, .. } => text.push_str(t),
            _ => losses.dropped(
                format!("{path}.content[{k}]"),
                "Gemini function responses carry JSON only; non-text result content dropped",
            ),
        }
    }
    if !is_error && let Ok(v @ Value::Object(_)) = serde_json::from_str::<Value>(&text) {
        return v;
    }
    if is_error {
        json!({ "error": text })
    } else {
        json!({ "output": text })
    }
}

/// A Gemini part for a canonical media source.
fn media_part(source: &MediaSource, fallback_mime: &str) -> Option<Value> {
    match source {
        MediaSource::Base64 { media_type, data } => {
            Some(json!({"inlineData": {"mimeType": media_type, "data": data}}))
        }
        MediaSource::Url { url } => {
            Some(json!({"fileData": {"mimeType": fallback_mime, "fileUri": url}}))
        }
        MediaSource::Text { text, .. } => Some(json!({ "text": text })),
        MediaSource::FileId { .. } => None,
    }
}

/// Guesses a MIME type from a URL's extension, which `fileData` asks for.
fn mime_of_url(url: &str, default: &'static str) -> &'static str {
    let lower = url.to_ascii_lowercase();
    let ext = lower.rsplit('.').next().unwrap_or_default();
    match ext {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "pdf" => "application/pdf",
        "txt" => "text/plain",
        _ => default,
    }
}

/// Encodes the parts of one message as Gemini parts, for an upstream request (`to_upstream`)
/// or for a client's answer. `names` maps call ids to function names.
pub(crate) fn encode_parts(
    parts: &[Part],
    path: &str,
    names: &HashMap<String, String>,
    to_upstream: bool,
    losses: &mut Losses,
) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::with_capacity(parts.len());
    // A signature waiting for the part it belongs to.
    let mut sig: Option<String> = None;
    let attach = |v: &mut Value, sig: &mut Option<String>| {
        if let (Some(s), Value::Object(m)) = (sig.take(), v) {
            m.insert("thoughtSignature".into(), json!(s));
        }
    };
    for (k, p) in parts.iter().enumerate() {
        let ppath = format!("{path}[{k}]");
        let mut v = match p {
            Part::Text { text, .. } => json!({ "text": text }),
            Part::Reasoning { text, seal } => {
                // Towards Gemini only its own signatures go; towards a Gemini client any
                // provider's state rides in `thoughtSignature` (as an envelope when foreign).
                let google = match seal {
                    Some(s) if s.family == Family::Google => Some(s.payload.clone()),
                    Some(s) if !to_upstream => Some(s.carry_in(Family::Google)),
                    Some(_) => {
                        losses.dropped(
                            &ppath,
                            "reasoning state of another provider cannot be sent to Gemini",
                        );
                        None
                    }
                    None => None,
                };
                if text.is_empty() {
                    if let Some(s) = google {
                        // Two signatures in a row: the first belongs to no part of its own.
                        if let Some(prev) = sig.replace(s) {
                            out.push(json!({ "text": "", "thoughtSignature": prev }));
                        }
                    }
                    continue;
                }
                let mut v = json!({ "text": text, "thought": true });
                if let (Some(s), Value::Object(m)) = (google, &mut v) {
                    m.insert("thoughtSignature".into(), json!(s));
                }
                out.push(v);
                continue;
            }
            Part::Refusal { text } => {
                losses.approximated(&ppath, "refusal sent as text");
                json!({ "text": text })
            }
            Part::Image { source, .. } | Part::Document { source, .. } => {
                let default = if matches!(p, Part::Image { .. }) {
                    "image/jpeg"
                } else {
                    "application/pdf"
                };
                let mime = match source {
                    MediaSource::Url { url } => mime_of_url(url, default),
                    _ => default,
                };
                match media_part(source, mime) {
                    Some(v) => v,
                    None => {
                        losses.dropped(&ppath, "file ids of another provider cannot reach Gemini");
                        continue;
                    }
                }
            }
            Part::Audio { data, format } => {
                json!({"inlineData": {"mimeType": format!("audio/{format}"), "data": data}})
            }
            Part::ToolCall {
                id,
                name,
                arguments,
                kind,
            } => {
                let args = dragoman_model::arguments_object(
                    arguments,
                    *kind,
                    format!("{ppath}.arguments"),
                    losses,
                );
                let mut call = json!({"name": name, "args": args});
                if !to_upstream || is_gemini_id(id) {
                    call["id"] = json!(id);
                }
                json!({ "functionCall": call })
            }
            Part::ToolResult {
                call_id,
                content,
                is_error,
                ..
            } => {
                let name = names.get(call_id).cloned().unwrap_or_else(|| {
                    losses.approximated(
                        format!("{ppath}.call_id"),
                        "result of a call not in the history; its function name is unknown",
                    );
                    call_id.clone()
                });
                let response = result_response(content, *is_error, &ppath, losses);
                let mut r = json!({"name": name, "response": response});
                if !to_upstream || is_gemini_id(call_id) {
                    r["id"] = json!(call_id);
                }
                json!({ "functionResponse": r })
            }
            Part::Opaque { dialect, value } => {
                if *dialect == Dialect::Gemini {
                    value.clone()
                } else {
                    losses.dropped(
                        &ppath,
                        format!("{dialect} content has no Gemini equivalent"),
                    );
                    continue;
                }
            }
        };
        attach(&mut v, &mut sig);
        out.push(v);
    }
    if let Some(s) = sig {
        out.push(json!({ "text": "", "thoughtSignature": s }));
    }
    out
}

/// Whether a call id is one Gemini issued, which must come back to it in `functionResponse.id`.
/// Ids this crate made (`call_…`) and other providers' (`toolu_…`, `call_…`, `fc_…`) are not
/// sent: Gemini pairs calls by order and name, and Vertex's v1 API has no `id` field at all.
fn is_gemini_id(id: &str) -> bool {
    !["call_", "toolu_", "fc_"].iter().any(|p| id.starts_with(p))
}

/// The function name of every tool call in the history, by call id.
fn call_names(req: &Request) -> HashMap<String, String> {
    let mut names = HashMap::new();
    for m in &req.messages {
        for p in &m.content {
            if let Part::ToolCall { id, name, .. } = p {
                names.insert(id.clone(), name.clone());
            }
        }
    }
    names
}

fn encode_tools(req: &Request, losses: &mut Losses) -> Vec<Value> {
    let mut decls = Vec::new();
    let mut others = Vec::new();
    for (i, t) in req.tools.iter().enumerate() {
        let path = format!("tools[{i}]");
        match t {
            Tool::Function {
                name,
                description,
                parameters,
                strict,
                ..
            } => {
                if strict == &Some(true) {
                    losses.dropped(format!("{path}.strict"), "Gemini has no strict tool mode");
                }
                let mut m = Map::new();
                m.insert("name".into(), json!(name));
                if let Some(d) = description {
                    m.insert("description".into(), json!(d));
                }
                // Plain JSON Schema goes through untouched, so nothing is lost converting it
                // down to Google's OpenAPI subset.
                m.insert("parametersJsonSchema".into(), parameters.clone());
                decls.push(Value::Object(m));
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
                    losses.dropped(
                        format!("{path}.format"),
                        "Gemini tools take no input grammar",
                    );
                }
                let mut m = Map::new();
                m.insert("name".into(), json!(name));
                if let Some(d) = description {
                    m.insert("description".into(), json!(d));
                }
                m.insert(
                    "parametersJsonSchema".into(),
                    json!({"type": "object", "properties": {"input": {"type": "string"}}, "required": ["input"]}),
                );
                decls.push(Value::Object(m));
            }
            Tool::Opaque { dialect, value } => {
                if *dialect == Dialect::Gemini {
                    others.push(value.clone());
                } else {
                    losses.dropped(&path, format!("{dialect} tool has no Gemini equivalent"));
                }
            }
        }
    }
    let mut out = Vec::new();
    if !decls.is_empty() {
        out.push(json!({ "functionDeclarations": decls }));
    }
    out.extend(others);
    out
}

fn level_of_effort(e: Effort) -> &'static str {
    match e {
        Effort::None | Effort::Minimal => "MINIMAL",
        Effort::Low => "LOW",
        Effort::Medium => "MEDIUM",
        Effort::High | Effort::Xhigh | Effort::Max => "HIGH",
    }
}

fn encode_generation(req: &Request, losses: &mut Losses) -> Map<String, Value> {
    let mut g = Map::new();
    if let Some(n) = req.max_tokens {
        g.insert("maxOutputTokens".into(), json!(n));
    }
    if let Some(t) = req.temperature {
        g.insert("temperature".into(), json!(t));
    }
    if let Some(t) = req.top_p {
        g.insert("topP".into(), json!(t));
    }
    if let Some(k) = req.top_k {
        g.insert("topK".into(), json!(k));
    }
    if let Some(s) = req.seed {
        g.insert("seed".into(), json!(s));
    }
    if !req.stop.is_empty() {
        if req.stop.len() > 5 {
            losses.dropped(
                "stop",
                "Gemini takes at most 5 stop sequences; the rest dropped",
            );
        }
        let stops: Vec<&String> = req.stop.iter().take(5).collect();
        g.insert("stopSequences".into(), json!(stops));
    }
    match &req.response_format {
        Some(ResponseFormat::JsonSchema { schema, .. }) => {
            g.insert("responseMimeType".into(), json!("application/json"));
            g.insert("responseJsonSchema".into(), schema.clone());
        }
        Some(ResponseFormat::JsonObject) => {
            g.insert("responseMimeType".into(), json!("application/json"));
        }
        Some(ResponseFormat::Text) => {
            g.insert("responseMimeType".into(), json!("text/plain"));
        }
        None => {}
    }
    if let Some(rc) = &req.reasoning {
        let mut t = Map::new();
        match (rc.enabled, rc.budget_tokens, rc.adaptive, rc.effort) {
            (Some(false), ..) | (_, _, _, Some(Effort::None)) => {
                t.insert("thinkingBudget".into(), json!(0));
            }
            (_, Some(b), _, _) => {
                t.insert("thinkingBudget".into(), json!(b));
            }
            (_, None, _, Some(e)) => {
                t.insert("thinkingLevel".into(), json!(level_of_effort(e)));
            }
            (_, None, true, None) => {
                t.insert("thinkingBudget".into(), json!(-1));
            }
            _ => {}
        }
        // Other dialects' clients ask for reasoning summaries or thinking text by turning
        // reasoning on; Gemini only sends thoughts when asked.
        if rc.enabled != Some(false) && rc.display.as_deref() != Some("omitted") {
            t.insert("includeThoughts".into(), json!(true));
        }
        if !t.is_empty() {
            g.insert("thinkingConfig".into(), Value::Object(t));
        }
    }
    g
}

/// Encodes a canonical request as a Gemini body (without `model` and `stream`, which go in the
/// URL).
pub fn encode_request(req: &Request, losses: &mut Losses) -> Value {
    let mut out = Map::new();
    let names = call_names(req);
    let mut system = encode_parts(&req.system, "system", &names, true, losses);
    let mut contents: Vec<Value> = Vec::new();
    let mut seen_turn = false;
    for (i, m) in req.messages.iter().enumerate() {
        let path = format!("messages[{i}].content");
        let role = match m.role {
            Role::System | Role::Developer => {
                if seen_turn {
                    losses.approximated(
                        format!("messages[{i}]"),
                        "Gemini has one system instruction; a later system message joins it",
                    );
                }
                system.extend(encode_parts(&m.content, &path, &names, true, losses));
                continue;
            }
            Role::Assistant => "model",
            Role::User | Role::Tool => "user",
        };
        seen_turn = true;
        let parts = encode_parts(&m.content, &path, &names, true, losses);
        // Consecutive turns of one role are one content (tool results and the next user
        // message, say).
        if let Some(last) = contents.last_mut()
            && last.get("role").and_then(Value::as_str) == Some(role)
            && let Some(Value::Array(ps)) = last.get_mut("parts")
        {
            ps.extend(parts);
            continue;
        }
        contents.push(json!({ "role": role, "parts": parts }));
    }
    if !system.is_empty() {
        out.insert("systemInstruction".into(), json!({ "parts": system }));
    }
    out.insert("contents".into(), Value::Array(contents));
    let tools = encode_tools(req, losses);
    if !tools.is_empty() {
        out.insert("tools".into(), Value::Array(tools));
    }
    if let Some(tc) = &req.tool_choice {
        let fc = match tc {
            ToolChoice::Auto => json!({"mode": "AUTO"}),
            ToolChoice::None => json!({"mode": "NONE"}),
            ToolChoice::Required => json!({"mode": "ANY"}),
            ToolChoice::Tool { name } => json!({"mode": "ANY", "allowedFunctionNames": [name]}),
        };
        out.insert("toolConfig".into(), json!({ "functionCallingConfig": fc }));
    }
    if req.parallel_tool_calls == Some(false) {
        losses.dropped(
            "parallel_tool_calls",
            "Gemini has no switch for parallel function calls",
        );
    }
    let mut g = encode_generation(req, losses);
    if req.metadata.as_ref().is_some_and(|m| !m.is_empty()) {
        losses.dropped("metadata", "Gemini requests carry no metadata");
    }
    if req.user.is_some() {
        losses.dropped("user", "Gemini requests carry no end-user id");
    }
    for e in crate::own_extensions(&req.extensions, losses) {
        let (map, key) = match e.key.strip_prefix(GEN_PREFIX) {
            Some(k) => (&mut g, k),
            None => (&mut out, e.key.as_str()),
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
    if !g.is_empty() {
        out.insert("generationConfig".into(), Value::Object(g));
    }
    Value::Object(out)
}
