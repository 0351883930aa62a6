//! Chat `usage` (`CompletionUsage`) ⇄ canonical `Usage`: the only place Chat usage fields are
//! read or written. `prompt_tokens` includes cached and cache-written tokens, so it is split into
//! buckets here and summed back here.

use dragoman_model::{Count, JsonMap, Lenient, Usage};
use serde::Deserialize;
use serde_json::{Value, json};

/// Fields of the usage object and its details that map onto buckets; everything else is kept
/// as extras (modality splits, vendor cost fields) so a same-dialect round trip loses nothing.
const KNOWN_TOP: &[&str] = &[
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "prompt_tokens_details",
    "completion_tokens_details",
];

/// The counts a usage object carries, read the same way from a tree or straight from bytes.
#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct Counts {
    prompt_tokens: Count,
    completion_tokens: Count,
    prompt_tokens_details: Lenient<PromptDetails>,
    completion_tokens_details: Lenient<CompletionDetails>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PromptDetails {
    cached_tokens: Count,
    cache_write_tokens: Count,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CompletionDetails {
    reasoning_tokens: Count,
}

impl Counts {
    /// Splits the inclusive prompt count into buckets.
    pub(crate) fn usage(&self) -> Usage {
        let pd = self.prompt_tokens_details.as_ref();
        let mut usage = Usage::from_inclusive_prompt(
            self.prompt_tokens.0,
            pd.and_then(|d| d.cached_tokens.0),
            pd.and_then(|d| d.cache_write_tokens.0),
        );
        usage.output = self.completion_tokens.0;
        usage.reasoning = self
            .completion_tokens_details
            .as_ref()
            .and_then(|d| d.reasoning_tokens.0);
        usage
    }
}

/// Reads a usage object. Unknown counts stay `None`; the second value holds the fields no bucket
/// takes, in the same nesting, or `None` when there are none.
pub(crate) fn decode(v: &Value) -> (Usage, Option<Value>) {
    let Some(m) = v.as_object() else {
        return (Usage::default(), None);
    };
    let usage = Counts::deserialize(v).unwrap_or_default().usage();
    let pd = m.get("prompt_tokens_details").and_then(Value::as_object);
    let cd = m
        .get("completion_tokens_details")
        .and_then(Value::as_object);

    let mut extras = JsonMap::new();
    for (k, val) in m {
        if !KNOWN_TOP.contains(&k.as_str()) {
            extras.insert(k.clone(), val.clone());
        }
    }
    let mut rest = |name: &str, d: Option<&JsonMap>, known: &[&str]| {
        if let Some(d) = d {
            let left: JsonMap = d
                .iter()
                .filter(|(k, _)| !known.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if !left.is_empty() {
                extras.insert(name.to_owned(), Value::Object(left));
            }
        }
    };
    rest(
        "prompt_tokens_details",
        pd,
        &["cached_tokens", "cache_write_tokens"],
    );
    rest("completion_tokens_details", cd, &["reasoning_tokens"]);
    let extras = (!extras.is_empty()).then_some(Value::Object(extras));
    (usage, extras)
}

/// Writes a usage object. Required counts whose bucket is unknown are written as 0; the
/// `cache_write_tokens` detail only when known, because older clients do not expect it.
/// `extras` (from [`decode`]) are merged back without overriding computed fields.
pub(crate) fn encode(u: &Usage, extras: Option<&Value>) -> Value {
    let prompt = u.input_total().unwrap_or(0);
    let completion = u.output.unwrap_or(0);
    let mut pd = JsonMap::new();
    pd.insert("cached_tokens".into(), json!(u.cache_read.unwrap_or(0)));
    if let Some(w) = u.cache_write {
        pd.insert("cache_write_tokens".into(), json!(w));
    }
    let mut cd = JsonMap::new();
    cd.insert("reasoning_tokens".into(), json!(u.reasoning.unwrap_or(0)));
    let mut out = JsonMap::new();
    out.insert("prompt_tokens".into(), json!(prompt));
    out.insert("completion_tokens".into(), json!(completion));
    out.insert("total_tokens".into(), json!(prompt + completion));
    if let Some(Value::Object(x)) = extras {
        for (k, v) in x {
            match (k.as_str(), v) {
                ("prompt_tokens_details", Value::Object(d)) => merge(&mut pd, d),
                ("completion_tokens_details", Value::Object(d)) => merge(&mut cd, d),
                _ => {
                    if !out.contains_key(k) {
                        out.insert(k.clone(), v.clone());
                    }
                }
            }
        }
    }
    out.insert("prompt_tokens_details".into(), Value::Object(pd));
    out.insert("completion_tokens_details".into(), Value::Object(cd));
    Value::Object(out)
}

fn merge(into: &mut JsonMap, from: &JsonMap) {
    for (k, v) in from {
        if !into.contains_key(k) {
            into.insert(k.clone(), v.clone());
        }
    }
}
