//! Bedrock `TokenUsage` ⇄ canonical `Usage`: the only place Bedrock usage fields are read or
//! written. `inputTokens` excludes cache reads and writes (Anthropic's semantics);
//! `cacheDetails` splits the cache write by TTL; `totalTokens` is the sum of everything.

use dragoman_model::{Count, Usage};
use serde::Deserialize;
use serde_json::{Map, Value, json};

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct Counts {
    input_tokens: Count,
    output_tokens: Count,
    cache_read_input_tokens: Count,
    cache_write_input_tokens: Count,
    /// Undeclared duplicates some responses carry; read when the declared key is absent.
    cache_read_input_token_count: Count,
    cache_write_input_token_count: Count,
    cache_details: Option<Vec<Detail>>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Detail {
    ttl: Option<String>,
    input_tokens: Count,
}

impl Counts {
    pub(crate) fn usage(&self) -> Usage {
        let mut u = Usage {
            input_uncached: self.input_tokens.0,
            output: self.output_tokens.0,
            cache_read: self
                .cache_read_input_tokens
                .0
                .or(self.cache_read_input_token_count.0),
            cache_write: self
                .cache_write_input_tokens
                .0
                .or(self.cache_write_input_token_count.0),
            ..Usage::default()
        };
        for d in self.cache_details.iter().flatten() {
            let bucket = match d.ttl.as_deref() {
                Some("1h") => &mut u.cache_write_1h,
                // The default TTL is five minutes.
                _ => &mut u.cache_write_5m,
            };
            *bucket = Some(bucket.unwrap_or(0) + d.input_tokens.0.unwrap_or(0));
        }
        u
    }
}

/// Reads a `usage` object.
pub(crate) fn decode(v: &Value) -> Usage {
    Counts::deserialize(v).unwrap_or_default().usage()
}

/// Writes a `usage` object: the required three counts always, cache counts when known, the
/// TTL split 1h first as Bedrock lists it.
pub(crate) fn encode(u: &Usage) -> Value {
    let input = u.input_uncached.unwrap_or(0);
    let output = u.output.unwrap_or(0);
    let mut m = Map::new();
    m.insert("inputTokens".into(), json!(input));
    m.insert("outputTokens".into(), json!(output));
    m.insert(
        "totalTokens".into(),
        json!(input + output + u.cache_read.unwrap_or(0) + u.cache_write.unwrap_or(0)),
    );
    if let Some(r) = u.cache_read {
        m.insert("cacheReadInputTokens".into(), json!(r));
    }
    if let Some(w) = u.cache_write {
        m.insert("cacheWriteInputTokens".into(), json!(w));
    }
    let mut details = Vec::new();
    for (ttl, n) in [("1h", u.cache_write_1h), ("5m", u.cache_write_5m)] {
        if let Some(n) = n.filter(|n| *n > 0) {
            details.push(json!({"inputTokens": n, "ttl": ttl}));
        }
    }
    if !details.is_empty() {
        m.insert("cacheDetails".into(), Value::Array(details));
    }
    Value::Object(m)
}
