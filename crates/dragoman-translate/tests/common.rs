//! Shared helpers for the translate crate's data-driven tests: finding recordings and
//! comparing canonical values across dialects.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use dragoman_model::{Dialect, Part, Response, StopReason, ToolKind, Usage};

pub fn test_data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../test_data")
}

pub fn folder(d: Dialect) -> &'static str {
    d.as_str()
}

/// Files of one kind (`requests`, `responses`, `streams`, `errors`) recorded in dialect `d`.
pub fn files(d: Dialect, kind: &str) -> Vec<PathBuf> {
    let dir = test_data().join(folder(d)).join(kind);
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    out.sort();
    out
}

pub fn name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

/// Visible text in order: text and refusal parts (a refusal becomes text where a dialect has
/// no refusal part), and plain-text documents (which OpenAI dialects carry as text parts).
pub fn visible_text(parts: &[Part]) -> String {
    parts
        .iter()
        .filter_map(|p| match p {
            Part::Text { text, .. } | Part::Refusal { text } => Some(text.as_str()),
            Part::Document {
                source: dragoman_model::MediaSource::Text { text, .. },
                ..
            } => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

pub fn reasoning_text(parts: &[Part]) -> String {
    parts
        .iter()
        .filter_map(|p| match p {
            Part::Reasoning { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

pub fn seals(parts: &[Part]) -> Vec<dragoman_model::ReasoningSeal> {
    parts
        .iter()
        .filter_map(|p| match p {
            Part::Reasoning { seal: Some(s), .. } => Some(s.clone()),
            _ => None,
        })
        .collect()
}

#[derive(Debug, PartialEq)]
pub struct Call {
    pub id: String,
    pub name: String,
    pub kind: ToolKind,
    pub args: ArgValue,
}

/// Tool arguments compared as JSON when they parse (Anthropic carries an object, so whitespace
/// is not preserved through it), as raw text otherwise.
#[derive(Debug, PartialEq)]
pub enum ArgValue {
    Json(serde_json::Value),
    Raw(String),
}

pub fn calls(parts: &[Part]) -> Vec<Call> {
    parts
        .iter()
        .filter_map(|p| match p {
            Part::ToolCall {
                id,
                name,
                arguments,
                kind,
            } => {
                let text = if arguments.trim().is_empty() && *kind == ToolKind::Function {
                    "{}"
                } else {
                    arguments
                };
                let args = match (kind, serde_json::from_str(text)) {
                    (ToolKind::Function, Ok(v)) => ArgValue::Json(v),
                    _ => ArgValue::Raw(arguments.clone()),
                };
                Some(Call {
                    id: id.clone(),
                    name: name.clone(),
                    kind: *kind,
                    args,
                })
            }
            _ => None,
        })
        .collect()
}

pub fn stop_tag(s: &StopReason) -> &'static str {
    match s {
        StopReason::EndTurn => "end_turn",
        StopReason::MaxTokens => "max_tokens",
        StopReason::StopSequence { .. } => "stop_sequence",
        StopReason::ToolUse => "tool_use",
        StopReason::PauseTurn => "pause_turn",
        StopReason::Refusal { .. } => "refusal",
        StopReason::ContextWindowExceeded => "context_window_exceeded",
        StopReason::ContentFilter => "content_filter",
    }
}

/// The stop reasons a target may report for a source stop reason (protocol reference §5.2 and
/// traps §B19, §C26, §D30): exact where the target has the reason, the documented nearest one
/// where it has not.
pub fn allowed_stops(target: Dialect, src: &StopReason) -> &'static [&'static str] {
    use StopReason::*;
    match (target, src) {
        (Dialect::Anthropic, ContentFilter) => &["refusal"],
        (Dialect::Anthropic, s) => match s {
            EndTurn => &["end_turn"],
            MaxTokens => &["max_tokens"],
            StopSequence { .. } => &["stop_sequence"],
            ToolUse => &["tool_use"],
            PauseTurn => &["pause_turn"],
            Refusal { .. } => &["refusal"],
            ContextWindowExceeded => &["context_window_exceeded"],
            ContentFilter => &["refusal"],
        },
        (_, EndTurn | StopSequence { .. } | PauseTurn) => &["end_turn"],
        (_, ToolUse) => &["tool_use"],
        (_, MaxTokens | ContextWindowExceeded) => &["max_tokens"],
        // A refusal must stay one: OpenAI clients read `content_filter` (or a refusal part).
        (_, Refusal { .. }) => &["refusal", "content_filter"],
        (_, ContentFilter) => &["content_filter"],
    }
}

/// Usage buckets a target dialect can carry; the rest may be lost, and the loss is reported.
pub fn check_usage(target: Dialect, src: &Usage, dst: &Usage) -> Result<(), String> {
    let z = |v: Option<u64>| v.unwrap_or(0);
    let mut pairs = vec![
        ("cache_read", src.cache_read, dst.cache_read),
        ("output", src.output, dst.output),
    ];
    if target == Dialect::Gemini {
        // Gemini has no cache-write count: written tokens come back as uncached input (the
        // encoder reports the approximation).
        let sum = |u: &Usage| match (u.input_uncached, u.cache_write) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
        };
        pairs.push(("input_uncached+cache_write", sum(src), sum(dst)));
    } else {
        pairs.push(("input_uncached", src.input_uncached, dst.input_uncached));
        pairs.push(("cache_write", src.cache_write, dst.cache_write));
    }
    if target == Dialect::Gemini {
        // Gemini counts thoughts beside the answer, so a source that reports more reasoning
        // than output (xAI) is clamped to keep the output total right.
        let clamped = match (src.reasoning, src.output) {
            (Some(r), Some(o)) => Some(r.min(o)),
            (r, _) => r,
        };
        pairs.push(("reasoning", clamped, dst.reasoning));
    } else if !matches!(target, Dialect::Anthropic | Dialect::Bedrock) {
        pairs.push(("reasoning", src.reasoning, dst.reasoning));
    } else {
        // Neither reports a reasoning count; both split cache writes by TTL.
        pairs.push(("cache_write_5m", src.cache_write_5m, dst.cache_write_5m));
        pairs.push(("cache_write_1h", src.cache_write_1h, dst.cache_write_1h));
    }
    for (n, a, b) in pairs {
        // An Anthropic (or Bedrock) stream is told a local prompt estimate when the upstream
        // never said.
        let estimated = matches!(target, Dialect::Anthropic | Dialect::Bedrock)
            && n == "input_uncached"
            && a.is_none();
        if z(a) != z(b) && !estimated {
            return Err(format!("usage {n}: source {a:?}, through {target} {b:?}"));
        }
    }
    if src.input_total().is_some() && z(src.input_total()) != z(dst.input_total()) {
        return Err(format!(
            "total input: {:?} vs {:?}",
            src.input_total(),
            dst.input_total()
        ));
    }
    Ok(())
}

/// Everything the conformance matrix asserts about one response carried through a target.
pub fn compare_responses(target: Dialect, src: &Response, dst: &Response) -> Result<(), String> {
    // Chat carries a refusal's explanation as the message's `refusal`, which reads back as
    // refusal text after the answer's own.
    let mut want = visible_text(&src.content);
    if target == Dialect::Chat
        && !src
            .content
            .iter()
            .any(|p| matches!(p, Part::Refusal { .. }))
        && let StopReason::Refusal { details: Some(d) } = &src.stop
        && let Some(why) = d.get("explanation").and_then(|e| e.as_str())
    {
        want.push_str(why);
    }
    if want != visible_text(&dst.content) {
        return Err(format!(
            "text differs:\n  source: {:?}\n  target: {:?}",
            visible_text(&src.content),
            visible_text(&dst.content)
        ));
    }
    let (mut a, b) = (calls(&src.content), calls(&dst.content));
    let custom_wrapped =
        !target.has_freeform_tools() && a.iter().any(|c| c.kind == ToolKind::Custom);
    if target == Dialect::Gemini {
        // Gemini arguments are an object: text that is not one travels as {"input": text}
        // (reported as approximated).
        for c in &mut a {
            if let ArgValue::Raw(r) = &c.args
                && c.kind == ToolKind::Function
            {
                c.args = ArgValue::Json(serde_json::json!({ "input": r }));
            }
        }
    }
    if !custom_wrapped && a != b {
        return Err(format!(
            "tool calls differ:\n  source: {a:?}\n  target: {b:?}"
        ));
    }
    if reasoning_text(&src.content) != reasoning_text(&dst.content) {
        return Err("reasoning text differs".into());
    }
    if target != Dialect::Chat && seals(&src.content) != seals(&dst.content) {
        return Err(format!(
            "reasoning seals differ: {:?} vs {:?}",
            seals(&src.content),
            seals(&dst.content)
        ));
    }
    check_usage(target, &src.usage, &dst.usage)?;
    let mut allowed = allowed_stops(target, &src.stop).to_vec();
    // OpenAI dialects have no stop reason of their own for these; their decoders read it from
    // the content: tool calls mean a tool turn (Anthropic's programmatic tool calling ends
    // `end_turn` with tool_use blocks), a refusal part means a refusal.
    if target != Dialect::Anthropic && !b.is_empty() {
        allowed.push("tool_use");
    }
    if target != Dialect::Anthropic
        && dst
            .content
            .iter()
            .any(|p| matches!(p, Part::Refusal { .. }))
    {
        allowed.push("refusal");
    }
    if !allowed.contains(&stop_tag(&dst.stop)) {
        return Err(format!(
            "stop {:?} became {:?} (allowed {allowed:?})",
            src.stop, dst.stop
        ));
    }
    Ok(())
}
