//! Gemini `usageMetadata` ⇄ canonical `Usage`: the only place Gemini usage fields are read or
//! written. `promptTokenCount` includes the cached share (`cachedContentTokenCount`) and excludes
//! tool-use prompt tokens; `candidatesTokenCount` excludes thoughts, which Gemini reports beside
//! it as `thoughtsTokenCount`.

use dragoman_model::{Count, JsonMap, Losses, Usage};
use serde::Deserialize;
use serde_json::{Value, json};

/// Fields that map onto buckets; the rest (per-modality details) stay as extras so that a
/// same-dialect round trip loses nothing.
const KNOWN: &[&str] = &[
    "promptTokenCount",
    "cachedContentTokenCount",
    "candidatesTokenCount",
    "thoughtsTokenCount",
    "toolUsePromptTokenCount",
    "totalTokenCount",
];

/// The counts a usage object carries, read the same way from a tree or straight from bytes.
#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct Counts {
    prompt_token_count: Count,
    cached_content_token_count: Count,
    candidates_token_count: Count,
    thoughts_token_count: Count,
    tool_use_prompt_token_count: Count,
}

impl Counts {
    pub(crate) fn usage(&self) -> Usage {
        let prompt = match (
            self.prompt_token_count.0,
            self.tool_use_prompt_token_count.0,
        ) {
            (None, None) => None,
            (p, t) => Some(p.unwrap_or(0) + t.unwrap_or(0)),
        };
        let cached = self.cached_content_token_count.0;
        let output = match (self.candidates_token_count.0, self.thoughts_token_count.0) {
            (None, None) => None,
            (c, t) => Some(c.unwrap_or(0) + t.unwrap_or(0)),
        };
        Usage {
            input_uncached: prompt.map(|p| p.saturating_sub(cached.unwrap_or(0))),
            cache_read: cached,
            output,
            reasoning: self.thoughts_token_count.0,
            ..Usage::default()
        }
    }
}

/// Reads a usage object; the second value holds the fields no bucket takes, if any.
pub(crate) fn decode(v: &Value) -> (Usage, Option<Value>) {
    let Some(m) = v.as_object() else {
        return (Usage::default(), None);
    };
    let usage = Counts::deserialize(v).unwrap_or_default().usage();
    let extras: JsonMap = m
        .iter()
        .filter(|(k, _)| !KNOWN.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    (usage, (!extras.is_empty()).then_some(Value::Object(extras)))
}

/// Writes a usage object. Cache writes have no Gemini field: they are counted in
/// `promptTokenCount` (the total stays right) and reported as approximated under `path`.
pub(crate) fn encode(u: &Usage, extras: Option<&Value>, path: &str, losses: &mut Losses) -> Value {
    let mut m = JsonMap::new();
    if let Some(total) = u.input_total() {
        m.insert("promptTokenCount".into(), json!(total));
    }
    if let Some(c) = u.cache_read.filter(|c| *c > 0) {
        m.insert("cachedContentTokenCount".into(), json!(c));
    }
    if u.cache_write.is_some_and(|w| w > 0) {
        losses.approximated(
            format!("{path}.cache_write"),
            "Gemini has no cache-write count; written tokens are counted in promptTokenCount",
        );
    }
    // Reasoning is a share of output; a source that reported more (xAI counts it apart) is
    // clamped so that candidates + thoughts is still the output billed.
    let reasoning = match (u.reasoning, u.output) {
        (Some(r), Some(o)) if r > o => {
            losses.approximated(
                format!("{path}.reasoning"),
                "more reasoning than output reported; thoughtsTokenCount clamped to the output",
            );
            Some(o)
        }
        (r, _) => r,
    };
    if let Some(out) = u.output {
        m.insert(
            "candidatesTokenCount".into(),
            json!(out.saturating_sub(reasoning.unwrap_or(0))),
        );
    }
    if let Some(r) = reasoning {
        m.insert("thoughtsTokenCount".into(), json!(r));
    }
    if u.input_total().is_some() || u.output.is_some() {
        m.insert(
            "totalTokenCount".into(),
            json!(u.input_total().unwrap_or(0) + u.output.unwrap_or(0)),
        );
    }
    if let Some(Value::Object(x)) = extras {
        for (k, v) in x {
            m.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    Value::Object(m)
}
