//! Gemini `GenerateContentResponse` ⇄ canonical `Response`, and the pass-through checks.

use std::collections::HashMap;

use dragoman_model::{
    DecodeError, Dialect, Extension, Lenient, Losses, Part, Response, ResponseFault, StopReason,
    Usage,
};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Map, Value, json};

use crate::request::{CallIds, encode_parts};
use crate::{as_arr, as_obj, stop, usage};

/// Candidate fields read into canonical fields; others stay as `candidate.<key>` extensions.
const KNOWN_CANDIDATE: &[&str] = &["content", "finishReason", "index"];
/// Response fields read into canonical fields; others stay as extensions.
const KNOWN_TOP: &[&str] = &["candidates", "usageMetadata", "modelVersion", "responseId"];
pub(crate) const CANDIDATE_PREFIX: &str = "candidate.";
pub(crate) const USAGE_EXTRAS: &str = "usageMetadata";

/// What one response (or one stream chunk) says, decoded: the parts of its first candidate, its
/// finish reason and its usage.
pub(crate) struct Decoded {
    pub parts: Vec<Part>,
    pub finish: Option<StopReason>,
    pub usage: Option<Usage>,
    pub usage_extras: Option<Value>,
    pub candidate_extras: Vec<(String, Value)>,
    pub blocked: bool,
}

/// Decodes a response object. `ids` pairs function calls across the chunks of one stream;
/// `n` counts the calls seen so far (for ids Gemini did not give).
pub(crate) fn decode_chunk(
    m: &Map<String, Value>,
    path: &str,
    scope: &str,
    n: &mut usize,
    ids: &mut CallIds,
    losses: &mut Losses,
) -> Result<Decoded, DecodeError> {
    let mut d = Decoded {
        parts: Vec::new(),
        finish: None,
        usage: None,
        usage_extras: None,
        candidate_extras: Vec::new(),
        blocked: false,
    };
    if let Some(u) = m.get("usageMetadata").filter(|u| u.is_object()) {
        let (usage, extras) = usage::decode(u);
        d.usage = Some(usage);
        d.usage_extras = extras;
    }
    let candidates = match m.get("candidates") {
        None | Some(Value::Null) => &[][..],
        Some(c) => as_arr(c, &format!("{path}.candidates"))?.as_slice(),
    };
    if candidates.is_empty() {
        let block = m
            .get("promptFeedback")
            .and_then(|f| f.get("blockReason"))
            .and_then(Value::as_str);
        if block.is_some() {
            d.blocked = true;
            d.finish = Some(StopReason::ContentFilter);
        }
        return Ok(d);
    }
    if candidates.len() > 1 {
        losses.dropped(
            format!("{path}.candidates[1..]"),
            "only the first candidate is carried",
        );
    }
    let cpath = format!("{path}.candidates[0]");
    let c = as_obj(&candidates[0], &cpath)?;
    if let Some(parts) = c.get("content").and_then(|c| c.get("parts")) {
        let mut results = Vec::new();
        for (j, p) in as_arr(parts, &format!("{cpath}.content.parts"))?
            .iter()
            .enumerate()
        {
            crate::request::decode_model_part(
                p,
                &format!("{cpath}.content.parts[{j}]"),
                scope,
                n,
                ids,
                &mut d.parts,
                &mut results,
            )?;
        }
        if !results.is_empty() {
            losses.dropped(
                format!("{cpath}.content.parts"),
                "function responses in a model answer",
            );
        }
    }
    if let Some(r) = c.get("finishReason").and_then(Value::as_str) {
        d.finish = Some(stop::decode(r));
    }
    for (k, v) in c {
        if !KNOWN_CANDIDATE.contains(&k.as_str()) && !v.is_null() {
            d.candidate_extras.push((k.clone(), v.clone()));
        }
    }
    Ok(d)
}

/// Decodes a whole response body.
pub fn decode_response(body: &[u8], losses: &mut Losses) -> Result<Response, DecodeError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| DecodeError::json("", &e))?;
    let m = as_obj(&v, "")?;
    if m.get("error").is_some_and(Value::is_object) {
        return Err(DecodeError::new(
            "error",
            "the body is an error, not a response",
        ));
    }
    let id = m
        .get("responseId")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let model = m
        .get("modelVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let mut ids = CallIds::default();
    let d = decode_chunk(m, "", &id, &mut 0, &mut ids, losses)?;
    let has_calls = d.parts.iter().any(|p| matches!(p, Part::ToolCall { .. }));
    let stop = d.finish.unwrap_or(StopReason::EndTurn).reconcile(has_calls);
    let mut extensions: Vec<Extension> = d
        .candidate_extras
        .into_iter()
        .map(|(k, v)| Extension::new(Dialect::Gemini, format!("{CANDIDATE_PREFIX}{k}"), v))
        .collect();
    if let Some(x) = d.usage_extras {
        extensions.push(Extension::new(Dialect::Gemini, USAGE_EXTRAS, x));
    }
    for (k, val) in m {
        if !KNOWN_TOP.contains(&k.as_str()) && !val.is_null() {
            extensions.push(Extension::new(Dialect::Gemini, k.clone(), val.clone()));
        }
    }
    Ok(Response {
        id,
        model,
        content: d.parts,
        stop,
        usage: d.usage.unwrap_or_default(),
        extensions,
    })
}

/// A refusal's explanation, which Gemini carries as the candidate's `finishMessage`.
pub(crate) fn finish_message(stop: &StopReason) -> Option<&str> {
    match stop {
        StopReason::Refusal { details: Some(d) } => d.get("explanation")?.as_str(),
        _ => None,
    }
}

/// Encodes a canonical response as a Gemini body.
pub fn encode_response(resp: &Response, losses: &mut Losses) -> Value {
    let names: HashMap<String, String> = HashMap::new();
    let parts = encode_parts(&resp.content, "content", &names, false, losses);
    let mut cand = Map::new();
    cand.insert("content".into(), json!({"role": "model", "parts": parts}));
    cand.insert(
        "finishReason".into(),
        json!(stop::encode(&resp.stop, "stop", losses)),
    );
    if let Some(m) = finish_message(&resp.stop) {
        cand.insert("finishMessage".into(), json!(m));
    }
    cand.insert("index".into(), json!(0));
    let mut out = Map::new();
    let mut usage_extras = None;
    let mut top = Vec::new();
    for e in crate::own_extensions(&resp.extensions, losses) {
        if let Some(k) = e.key.strip_prefix(CANDIDATE_PREFIX) {
            cand.entry(k.to_owned()).or_insert_with(|| e.value.clone());
        } else if e.key == USAGE_EXTRAS {
            usage_extras = Some(&e.value);
        } else {
            top.push(e);
        }
    }
    out.insert("candidates".into(), json!([Value::Object(cand)]));
    out.insert(
        "usageMetadata".into(),
        usage::encode(&resp.usage, usage_extras, "usage", losses),
    );
    out.insert("modelVersion".into(), json!(resp.model));
    out.insert("responseId".into(), json!(resp.id));
    for e in top {
        out.entry(e.key.clone()).or_insert_with(|| e.value.clone());
    }
    Value::Object(out)
}

/// The usage of a whole response, read without decoding the rest. Agrees with
/// `decode_response(..).usage`.
pub fn decode_response_usage(body: &[u8]) -> Option<Usage> {
    #[derive(Deserialize)]
    struct Envelope {
        #[serde(default, rename = "usageMetadata")]
        usage: Lenient<usage::Counts>,
    }
    let e: Envelope = serde_json::from_slice(body).ok()?;
    e.usage.0.map(|c| c.usage())
}

/// Whether a whole body with a success status is a Gemini response (it has `candidates`, or a
/// `promptFeedback` saying why there are none), and its usage: an error envelope keeps its
/// meaning, anything else is malformed.
pub fn check_response(body: &[u8]) -> Result<Usage, ResponseFault> {
    #[derive(Deserialize)]
    struct Head {
        #[serde(default)]
        candidates: Option<Vec<IgnoredAny>>,
        #[serde(default, rename = "promptFeedback")]
        prompt_feedback: Option<IgnoredAny>,
        #[serde(default)]
        error: Lenient<IgnoredAny>,
        #[serde(default, rename = "usageMetadata")]
        usage: Lenient<usage::Counts>,
    }
    let head: Head = dragoman_model::read_head(body)?;
    if head.error.0.is_some() {
        return Err(ResponseFault::Failed(crate::decode_error(None, body)));
    }
    if head.candidates.is_none() && head.prompt_feedback.is_none() {
        return Err(ResponseFault::Malformed(
            "not a Gemini response (no candidates)".into(),
        ));
    }
    Ok(head.usage.0.map(|c| c.usage()).unwrap_or_default())
}

/// A response's id, model version and stop reason (its first candidate's), for a trace span:
/// one pass, no tree.
pub fn response_summary(body: &[u8]) -> Option<dragoman_model::ResponseSummary> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Head {
        response_id: Option<String>,
        model_version: Option<String>,
        #[serde(default)]
        candidates: Vec<Candidate>,
        prompt_feedback: Option<Feedback>,
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Feedback {
        block_reason: Option<IgnoredAny>,
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Candidate {
        finish_reason: Option<String>,
        content: Option<Content>,
    }
    #[derive(serde::Deserialize)]
    struct Content {
        #[serde(default)]
        parts: Vec<PartHead>,
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct PartHead {
        function_call: Option<IgnoredAny>,
    }
    let h: Head = serde_json::from_slice(body).ok()?;
    let blocked = h
        .prompt_feedback
        .as_ref()
        .is_some_and(|f| f.block_reason.is_some());
    let stop = match h.candidates.first() {
        // A blocked prompt has no candidates and says why in its feedback.
        None if blocked => Some(StopReason::ContentFilter),
        None => Some(StopReason::EndTurn),
        Some(c) => Some({
            let calls = c
                .content
                .as_ref()
                .is_some_and(|c| c.parts.iter().any(|p| p.function_call.is_some()));
            c.finish_reason
                .as_deref()
                .map_or(StopReason::EndTurn, stop::decode)
                .reconcile(calls)
        }),
    };
    Some(dragoman_model::ResponseSummary {
        id: h.response_id,
        model: h.model_version,
        stop,
    })
}
