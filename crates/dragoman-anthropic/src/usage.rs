//! Anthropic `usage` objects ⇄ canonical `Usage`: the only place these fields are read or
//! written, so the "input_tokens excludes cache" rule lives in exactly one spot.

use dragoman_model::{Count, Lenient, Losses, Usage};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The counts a usage object carries, read the same way from a tree or straight from bytes.
#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct Counts {
    input_tokens: Count,
    cache_read_input_tokens: Count,
    cache_creation_input_tokens: Count,
    cache_creation: Lenient<CacheCreation>,
    output_tokens: Count,
    output_tokens_details: Lenient<OutputDetails>,
    server_tool_use: Lenient<ServerToolUse>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CacheCreation {
    ephemeral_5m_input_tokens: Count,
    ephemeral_1h_input_tokens: Count,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct OutputDetails {
    thinking_tokens: Count,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ServerToolUse {
    web_search_requests: Count,
    web_fetch_requests: Count,
}

impl Counts {
    pub(crate) fn usage(&self) -> Usage {
        let cc = self.cache_creation.as_ref();
        let stu = self.server_tool_use.as_ref();
        Usage {
            input_uncached: self.input_tokens.0,
            cache_read: self.cache_read_input_tokens.0,
            cache_write: self.cache_creation_input_tokens.0,
            cache_write_5m: cc.and_then(|c| c.ephemeral_5m_input_tokens.0),
            cache_write_1h: cc.and_then(|c| c.ephemeral_1h_input_tokens.0),
            output: self.output_tokens.0,
            reasoning: self
                .output_tokens_details
                .as_ref()
                .and_then(|d| d.thinking_tokens.0),
            web_search_requests: stu.and_then(|s| s.web_search_requests.0),
            web_fetch_requests: stu.and_then(|s| s.web_fetch_requests.0),
        }
    }
}

/// Reads a `Usage` or `MessageDeltaUsage` object; absent or null fields stay unknown.
pub(crate) fn decode(v: Option<&Value>) -> Usage {
    match v {
        Some(v) if v.is_object() => Counts::deserialize(v).unwrap_or_default().usage(),
        _ => Usage::default(),
    }
}

/// The input-side buckets, which is what `message_start` reliably knows.
pub(crate) fn input_side(u: &Usage) -> Usage {
    Usage {
        input_uncached: u.input_uncached,
        cache_read: u.cache_read,
        cache_write: u.cache_write,
        cache_write_5m: u.cache_write_5m,
        cache_write_1h: u.cache_write_1h,
        ..Usage::default()
    }
}

/// Reports usage fields that have no bucket (service tier, geography, per-iteration splits).
pub(crate) fn report_extras(v: Option<&Value>, path: &str, losses: &mut Losses) {
    const KNOWN: &[&str] = &[
        "input_tokens",
        "cache_read_input_tokens",
        "cache_creation_input_tokens",
        "cache_creation",
        "output_tokens",
        "output_tokens_details",
        "server_tool_use",
    ];
    if let Some(m) = v.and_then(Value::as_object) {
        for (k, val) in m {
            if !KNOWN.contains(&k.as_str()) && !val.is_null() {
                losses.dropped(format!("{path}.{k}"), "usage field has no canonical bucket");
            }
        }
    }
}

/// A usage object as written: field order as Anthropic sends it. Serialized straight into
/// stream events, or turned into a tree for whole responses.
#[derive(Serialize)]
pub(crate) struct Written {
    input_tokens: u64,
    cache_creation_input_tokens: u64,
    cache_read_input_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_creation: Option<CacheCreationOut>,
    output_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_tokens_details: Option<OutputDetailsOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_tool_use: Option<ServerToolUseOut>,
}

#[derive(Serialize)]
struct CacheCreationOut {
    ephemeral_5m_input_tokens: u64,
    ephemeral_1h_input_tokens: u64,
}

#[derive(Serialize)]
struct OutputDetailsOut {
    thinking_tokens: u64,
}

#[derive(Serialize)]
struct ServerToolUseOut {
    #[serde(skip_serializing_if = "Option::is_none")]
    web_search_requests: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    web_fetch_requests: Option<u64>,
}

impl Written {
    /// A full usage object (responses and the final `message_delta`): the four required
    /// counts always, 0 where unknown, and the optional details where known.
    pub(crate) fn full(u: &Usage) -> Written {
        Written {
            output_tokens: u.output.unwrap_or(0),
            output_tokens_details: u.reasoning.map(|r| OutputDetailsOut { thinking_tokens: r }),
            server_tool_use: (u.web_search_requests.is_some() || u.web_fetch_requests.is_some())
                .then_some(ServerToolUseOut {
                    web_search_requests: u.web_search_requests,
                    web_fetch_requests: u.web_fetch_requests,
                }),
            ..Written::start(u, None)
        }
    }

    /// `message_start`'s usage: the input side (the local estimate when the upstream has not
    /// said yet) and an output of 1, as Anthropic itself sends.
    pub(crate) fn start(u: &Usage, input_estimate: Option<u64>) -> Written {
        Written {
            input_tokens: u.input_uncached.or(input_estimate).unwrap_or(0),
            cache_creation_input_tokens: u.cache_write.unwrap_or(0),
            cache_read_input_tokens: u.cache_read.unwrap_or(0),
            cache_creation: (u.cache_write_5m.is_some() || u.cache_write_1h.is_some()).then_some(
                CacheCreationOut {
                    ephemeral_5m_input_tokens: u.cache_write_5m.unwrap_or(0),
                    ephemeral_1h_input_tokens: u.cache_write_1h.unwrap_or(0),
                },
            ),
            output_tokens: u.output.unwrap_or(1),
            output_tokens_details: None,
            server_tool_use: None,
        }
    }

    /// Appends the JSON text.
    pub(crate) fn write(&self, out: &mut String) {
        // Serializing plain integers and fixed keys into a String cannot fail.
        if let Ok(s) = serde_json::to_string(self) {
            out.push_str(&s);
        }
    }
}

/// A full usage object as a tree (see [`Written::full`]).
pub(crate) fn encode(u: &Usage) -> Value {
    serde_json::to_value(Written::full(u)).unwrap_or_default()
}
