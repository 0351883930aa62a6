//! `ResponseUsage` ⇄ canonical `Usage`: the only place Responses usage fields are read or
//! written, so the "input includes cached tokens" rule lives in one spot.

use dragoman_model::Usage;
use serde_json::{Value, json};

use crate::get_u64;

/// Reads a `usage` object. `input_tokens` includes cached and cache-written tokens; output
/// includes reasoning. A missing or null object is an empty `Usage` (unknown, never zero).
pub(crate) fn decode_usage(v: Option<&Value>) -> Usage {
    let Some(v) = v.filter(|v| v.is_object()) else {
        return Usage::default();
    };
    let details = v.get("input_tokens_details");
    let cached = details.and_then(|d| get_u64(d, "cached_tokens"));
    let written = details.and_then(|d| get_u64(d, "cache_write_tokens"));
    let mut usage = Usage::from_inclusive_prompt(get_u64(v, "input_tokens"), cached, written);
    usage.output = get_u64(v, "output_tokens");
    usage.reasoning = v
        .get("output_tokens_details")
        .and_then(|d| get_u64(d, "reasoning_tokens"));
    usage
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
