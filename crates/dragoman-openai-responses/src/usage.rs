//! `ResponseUsage` ⇄ canonical `Usage`: the only place Responses usage fields are read or
//! written, so the "input includes cached tokens" rule lives in one spot.

use dragoman_model::{Count, Lenient, Usage};
use serde::Deserialize;
use serde_json::{Value, json};

/// Reads a `usage` object. `input_tokens` includes cached and cache-written tokens; output
/// includes reasoning. A missing or null object is an empty `Usage` (unknown, never zero).
pub(crate) fn decode_usage(v: Option<&Value>) -> Usage {
    match v {
        Some(v) if v.is_object() => Counts::deserialize(v).unwrap_or_default().usage(),
        _ => Usage::default(),
    }
}

/// The counts a usage object carries, read the same way from a tree or straight from bytes.
#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct Counts {
    input_tokens: Count,
    input_tokens_details: Lenient<InputDetails>,
    output_tokens: Count,
    output_tokens_details: Lenient<OutputDetails>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct InputDetails {
    cached_tokens: Count,
    cache_write_tokens: Count,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct OutputDetails {
    reasoning_tokens: Count,
}

impl Counts {
    pub(crate) fn usage(&self) -> Usage {
        let d = self.input_tokens_details.as_ref();
        let mut usage = Usage::from_inclusive_prompt(
            self.input_tokens.0,
            d.and_then(|d| d.cached_tokens.0),
            d.and_then(|d| d.cache_write_tokens.0),
        );
        usage.output = self.output_tokens.0;
        usage.reasoning = self
            .output_tokens_details
            .as_ref()
            .and_then(|d| d.reasoning_tokens.0);
        usage
    }
}

/// Writes a full `usage` object. Fields SDKs require are written as 0 when unknown;
/// `cache_write_tokens` only when known, since older clients do not expect it.
pub(crate) fn encode_usage(u: &Usage) -> Value {
    let input = u.input_total().unwrap_or(0);
    let output = u.output.unwrap_or(0);
    let mut input_details = json!({ "cached_tokens": u.cache_read.unwrap_or(0) });
    if let Some(w) = u.cache_write {
        input_details["cache_write_tokens"] = json!(w);
    }
    json!({
        "input_tokens": input,
        "input_tokens_details": input_details,
        "output_tokens": output,
        "output_tokens_details": { "reasoning_tokens": u.reasoning.unwrap_or(0) },
        "total_tokens": input + output,
    })
}
