//! The built-in price table, so a gateway with no price config still reports what requests
//! cost for the common models, and the model-name matching that finds a row.
//!
//! Public list prices as of 2026-11 (Anthropic and OpenAI pricing pages, standard tier, no
//! batch or priority discounts). A deployment's configured price always wins over this table
//! (see [`super::merged`]); the table is a default, not a source of truth, and goes stale.

use std::collections::HashMap;
use std::sync::LazyLock;

use super::{LongContext, ModelPrice};

/// Thousandths of a dollar per million tokens, as picodollars per token. Price lists quote
/// dollars per million tokens to at most three decimals, so `m(2_500)` reads as "$2.500/M"
/// and is exact.
const fn m(milli_dollars_per_million: u64) -> u64 {
    milli_dollars_per_million * 1_000
}

/// $10 per 1,000 searches: Anthropic's web search tool and OpenAI's `web_search` tool calls.
const SEARCH_10_PER_1K: u64 = 10_000_000_000;

#[derive(Clone, Copy)]
struct Flat {
    input: u64,
    output: u64,
    cache_read: Option<u64>,
    cache_write_5m: Option<u64>,
    cache_write_1h: Option<u64>,
    web_search: Option<u64>,
}

impl Flat {
    fn price(&self) -> ModelPrice {
        ModelPrice {
            input: Some(self.input),
            output: Some(self.output),
            cache_read: self.cache_read,
            cache_write_5m: self.cache_write_5m,
            cache_write_1h: self.cache_write_1h,
            web_search: self.web_search,
            long_context: None,
        }
    }
}

/// Anthropic's published prompt-caching multipliers: reads 0.1×, 5-minute writes 1.25×,
/// 1-hour writes 2× the base input price. Every multiple of these inputs is exact.
const fn anthropic(input: u64, output: u64) -> Flat {
    Flat {
        input,
        output,
        cache_read: Some(input / 10),
        cache_write_5m: Some(input / 4 * 5),
        cache_write_1h: Some(input * 2),
        web_search: Some(SEARCH_10_PER_1K),
    }
}

/// OpenAI lists a cached-input price; cache writes, where reported at all (traps A2), take
/// the 1.25× fallback of [`ModelPrice::effective_cache_write_5m`].
const fn openai(input: u64, output: u64, cached: Option<u64>) -> Flat {
    Flat {
        input,
        output,
        cache_read: cached,
        cache_write_5m: None,
        cache_write_1h: None,
        web_search: Some(SEARCH_10_PER_1K),
    }
}

/// Embedding models bill their input only.
const fn embedding(input: u64) -> Flat {
    Flat {
        input,
        output: 0,
        cache_read: None,
        cache_write_5m: None,
        cache_write_1h: None,
        web_search: None,
    }
}

struct Row {
    /// Canonical name first, then aliases; all lowercase, no date suffix.
    names: &'static [&'static str],
    price: Flat,
    /// Anthropic's long-context pricing: above 200K prompt tokens the whole request is billed
    /// at the tier (traps A9).
    tier: Option<(u64, Flat)>,
}

const SONNET_4: Flat = anthropic(m(3_000), m(15_000));
const SONNET_4_LONG: Option<(u64, Flat)> = Some((200_000, anthropic(m(6_000), m(22_500))));
const OPUS_4: Flat = anthropic(m(15_000), m(75_000));
const OPUS_45: Flat = anthropic(m(5_000), m(25_000));
const GPT_5: Flat = openai(m(1_250), m(10_000), Some(m(125)));

#[rustfmt::skip]
const TABLE: &[Row] = &[
    // Anthropic.
    Row { names: &["claude-opus-4", "claude-opus-4-0", "claude-4-opus"], price: OPUS_4, tier: None },
    Row { names: &["claude-opus-4-1"], price: OPUS_4, tier: None },
    Row { names: &["claude-opus-4-5"], price: OPUS_45, tier: None },
    Row { names: &["claude-opus-4-6"], price: OPUS_45, tier: None },
    Row { names: &["claude-opus-5", "claude-opus-5-0"], price: OPUS_45, tier: None },
    Row { names: &["claude-sonnet-4", "claude-sonnet-4-0", "claude-4-sonnet"], price: SONNET_4, tier: SONNET_4_LONG },
    Row { names: &["claude-sonnet-4-5"], price: SONNET_4, tier: SONNET_4_LONG },
    Row { names: &["claude-sonnet-4-6"], price: SONNET_4, tier: None },
    Row { names: &["claude-sonnet-5", "claude-sonnet-5-0"], price: SONNET_4, tier: None },
    Row { names: &["claude-haiku-4-5"], price: anthropic(m(1_000), m(5_000)), tier: None },
    Row { names: &["claude-3-7-sonnet"], price: SONNET_4, tier: None },
    Row { names: &["claude-3-5-sonnet"], price: SONNET_4, tier: None },
    Row { names: &["claude-3-5-haiku"], price: anthropic(m(800), m(4_000)), tier: None },
    Row { names: &["claude-3-opus"], price: OPUS_4, tier: None },
    // Haiku 3's cache prices are listed rounded ($0.30, $0.50, $0.03), not as exact multiples.
    Row {
        names: &["claude-3-haiku"],
        price: Flat {
            input: m(250),
            output: m(1_250),
            cache_read: Some(m(30)),
            cache_write_5m: Some(m(300)),
            cache_write_1h: Some(m(500)),
            web_search: Some(SEARCH_10_PER_1K),
        },
        tier: None,
    },
    // OpenAI.
    Row { names: &["gpt-4o"], price: openai(m(2_500), m(10_000), Some(m(1_250))), tier: None },
    // The first gpt-4o snapshot kept its launch price and has no prompt caching; only an exact
    // name reaches this row because lookup tries the name before stripping its date.
    Row { names: &["gpt-4o-2024-05-13"], price: openai(m(5_000), m(15_000), None), tier: None },
    Row { names: &["gpt-4o-mini"], price: openai(m(150), m(600), Some(m(75))), tier: None },
    Row { names: &["gpt-4.1"], price: openai(m(2_000), m(8_000), Some(m(500))), tier: None },
    Row { names: &["gpt-4.1-mini"], price: openai(m(400), m(1_600), Some(m(100))), tier: None },
    Row { names: &["gpt-4.1-nano"], price: openai(m(100), m(400), Some(m(25))), tier: None },
    Row { names: &["gpt-5", "gpt-5-chat", "gpt-5-codex"], price: GPT_5, tier: None },
    Row { names: &["gpt-5.1", "gpt-5.1-chat", "gpt-5.1-codex"], price: GPT_5, tier: None },
    Row { names: &["gpt-5-mini"], price: openai(m(250), m(2_000), Some(m(25))), tier: None },
    Row { names: &["gpt-5-nano"], price: openai(m(50), m(400), Some(m(5))), tier: None },
    Row { names: &["o3"], price: openai(m(2_000), m(8_000), Some(m(500))), tier: None },
    Row { names: &["o4-mini"], price: openai(m(1_100), m(4_400), Some(m(275))), tier: None },
    Row { names: &["o3-mini"], price: openai(m(1_100), m(4_400), Some(m(550))), tier: None },
    // Embeddings (OpenAI, Google and AWS list prices).
    Row { names: &["text-embedding-3-small"], price: embedding(m(20)), tier: None },
    Row { names: &["text-embedding-3-large"], price: embedding(m(130)), tier: None },
    Row { names: &["text-embedding-ada-002"], price: embedding(m(100)), tier: None },
    Row { names: &["gemini-embedding-001"], price: embedding(m(150)), tier: None },
    Row { names: &["amazon.titan-embed-text-v2:0", "amazon.titan-embed-text-v2"], price: embedding(m(20)), tier: None },
    Row { names: &["amazon.titan-embed-text-v1"], price: embedding(m(100)), tier: None },
    Row { names: &["cohere.embed-english-v3", "cohere.embed-multilingual-v3"], price: embedding(m(100)), tier: None },
];

static INDEX: LazyLock<HashMap<&'static str, &'static Row>> = LazyLock::new(|| {
    TABLE
        .iter()
        .flat_map(|row| row.names.iter().map(move |n| (*n, row)))
        .collect()
});

impl Row {
    fn price(&self) -> ModelPrice {
        let mut p = self.price.price();
        p.long_context = self.tier.map(|(threshold_tokens, t)| LongContext {
            threshold_tokens,
            price: Box::new(t.price()),
        });
        p
    }
}

/// The built-in list price for `model`, or `None` when the model is not in the table (cost
/// unknown, never zero).
///
/// Matching, case-insensitive, first hit wins: the name as given; without any provider
/// prefix up to the last `/` (`anthropic/`, `openai/`, `openrouter/anthropic/`); then with
/// cloud decorations removed (Bedrock `us.anthropic.…-v1:0`, Vertex `…@20250929`), a trailing
/// `-latest` or date (`-20250929`, `-2024-08-06`) removed, and Claude version dots written as
/// dashes (`claude-sonnet-4.5` → `claude-sonnet-4-5`).
pub fn builtin(model: &str) -> Option<ModelPrice> {
    let lower = model.trim().to_ascii_lowercase();
    let bare = lower.rsplit('/').next().unwrap_or(&lower);
    let normal = normalize(bare);
    [lower.as_str(), bare, normal.as_str()]
        .into_iter()
        .find_map(|name| INDEX.get(name))
        .map(|row| row.price())
}

fn normalize(name: &str) -> String {
    let mut s = name;
    // Vertex: `claude-sonnet-4-5@20250929`.
    if let Some((head, _)) = s.split_once('@') {
        s = head;
    }
    // Bedrock: `us.anthropic.claude-sonnet-4-5-20250929-v1:0`.
    if let Some(i) = s.find("anthropic.") {
        s = &s[i + "anthropic.".len()..];
    }
    s = strip_bedrock_version(s);
    loop {
        let before = s.len();
        if let Some(head) = s.strip_suffix("-latest") {
            s = head;
        }
        s = strip_date(s);
        if s.len() == before {
            break;
        }
    }
    if s.starts_with("claude") {
        s.replace('.', "-")
    } else {
        s.to_owned()
    }
}

/// Drops Bedrock's `-v1:0` / `-v2` model version.
fn strip_bedrock_version(s: &str) -> &str {
    let Some(i) = s.rfind("-v") else {
        return s;
    };
    let tail = &s[i + 2..];
    let (major, minor) = tail.split_once(':').unwrap_or((tail, "0"));
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    if digits(major) && digits(minor) {
        &s[..i]
    } else {
        s
    }
}

/// Drops a trailing `-YYYYMMDD` or `-YYYY-MM-DD`.
fn strip_date(s: &str) -> &str {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    let n = b.len();
    if n > 9 && b[n - 9] == b'-' && digits(n - 8..n) {
        return &s[..n - 9];
    }
    if n > 11
        && b[n - 11] == b'-'
        && digits(n - 10..n - 6)
        && b[n - 6] == b'-'
        && digits(n - 5..n - 3)
        && b[n - 3] == b'-'
        && digits(n - 2..n)
    {
        return &s[..n - 11];
    }
    s
}

/// Every name the table answers to.
#[cfg(test)]
pub(super) fn names() -> impl Iterator<Item = &'static str> {
    TABLE.iter().flat_map(|row| row.names.iter().copied())
}
