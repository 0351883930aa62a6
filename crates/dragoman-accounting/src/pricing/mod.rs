//! Prices and cost: turns a request's usage buckets into integer nano-dollars.
//!
//! Money never touches a float. Prices are integer picodollars (1e-12 USD) per token, so every
//! public list price is exact; a request's cost is summed exactly in `u128` picodollars and
//! rounded once, half-up, to the nano-dollars a [`crate::UsageRecord`] stores.
//!
//! A price that is not known is `None`, never zero: a bucket with tokens whose price is unknown
//! makes the whole cost unknown, because a partial sum reported as the cost would be a lie that
//! budgets and invoices then believe.

mod litellm;
mod table;
#[cfg(test)]
mod tests;

use dragoman_model::Usage;
use serde::{Deserialize, Serialize};

pub use litellm::{from_litellm, parse_dollars_to_pico};
pub use table::builtin;

/// Picodollars in one dollar.
pub const PICO_PER_DOLLAR: u64 = 1_000_000_000_000;

/// What a model charges, in picodollars per token (or per request for web searches).
///
/// Every field is optional so that a deployment can override only some prices; see [`merged`]
/// for how a partial override is completed and [`cost_nanos`] for what a missing price means.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelPrice {
    /// Uncached prompt tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<u64>,
    /// Generated tokens, reasoning included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<u64>,
    /// Prompt tokens served from a cache. Missing: priced as `input`, which can only
    /// overestimate, since no provider charges more for a cache hit than for a miss.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read: Option<u64>,
    /// Prompt tokens written to a cache with the short (5-minute, or provider default) TTL.
    /// Missing: `input` × 1.25, Anthropic's and OpenAI's published write premium.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_5m: Option<u64>,
    /// Prompt tokens written with a 1-hour TTL. Missing: the effective 5-minute write price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_1h: Option<u64>,
    /// One billable server-side web search, picodollars per request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_search: Option<u64>,
    /// A higher tier that prices the whole request once its prompt crosses a size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub long_context: Option<LongContext>,
}

/// A long-context tier: when a request's prompt (uncached + cache read + cache write) is
/// strictly greater than `threshold_tokens`, every bucket of that request, output included,
/// is priced at `price` (traps A9). Fields `price` leaves unset fall back to the base price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LongContext {
    pub threshold_tokens: u64,
    pub price: Box<ModelPrice>,
}

impl ModelPrice {
    /// The price that applies to a request whose prompt totals `prompt_tokens`: the tier, with
    /// its gaps filled from the base, when the prompt exceeds the tier's threshold.
    pub fn for_prompt(&self, prompt_tokens: u64) -> (ModelPrice, bool) {
        match &self.long_context {
            Some(tier) if prompt_tokens > tier.threshold_tokens => {
                let mut base = self.clone();
                base.long_context = None;
                let mut flat = fill(tier.price.as_ref().clone(), &base);
                flat.long_context = None;
                (flat, true)
            }
            _ => (self.clone(), false),
        }
    }

    /// The effective cache-read price, after the documented fallback.
    pub fn effective_cache_read(&self) -> Option<u64> {
        self.cache_read.or(self.input)
    }

    /// The effective 5-minute cache-write price, after the documented fallback. The 1.25×
    /// premium is rounded half-up to a whole picodollar, a rounding far below a nano-dollar.
    pub fn effective_cache_write_5m(&self) -> Option<u64> {
        self.cache_write_5m.or_else(|| {
            self.input
                .map(|p| u64::try_from((u128::from(p) * 5 + 2) / 4).unwrap_or(u64::MAX))
        })
    }

    /// The effective 1-hour cache-write price, after the documented fallback.
    pub fn effective_cache_write_1h(&self) -> Option<u64> {
        self.cache_write_1h
            .or_else(|| self.effective_cache_write_5m())
    }

    /// True when no field is set: such a price prices nothing.
    pub fn is_empty(&self) -> bool {
        *self == ModelPrice::default()
    }
}

/// Completes `over` with `base`, field by field: a field the override sets wins, a field it
/// leaves unset comes from the base.
fn fill(over: ModelPrice, base: &ModelPrice) -> ModelPrice {
    ModelPrice {
        input: over.input.or(base.input),
        output: over.output.or(base.output),
        cache_read: over.cache_read.or(base.cache_read),
        cache_write_5m: over.cache_write_5m.or(base.cache_write_5m),
        cache_write_1h: over.cache_write_1h.or(base.cache_write_1h),
        web_search: over.web_search.or(base.web_search),
        long_context: over.long_context.or_else(|| base.long_context.clone()),
    }
}

/// Combines a deployment's override with a base price (usually [`builtin`] for the provider
/// model). The rule:
///
/// - each price the override sets wins; each it leaves unset comes from the base, so an
///   override of `input` alone keeps the base's output and cache prices;
/// - the long-context tier: an override tier with the same threshold as the base tier is
///   merged field by field into it; an override tier with another threshold replaces the base
///   tier; no override tier keeps the base tier;
/// - either side missing yields the other; both missing yields `None` (cost unknown).
///
/// Fallbacks that derive one price from another (cache read from input, cache write from
/// input × 1.25) are applied only at cost time, after merging, so an overridden input never
/// sits beside a derived cache price computed from the base's input.
pub fn merged(override_: Option<ModelPrice>, base: Option<ModelPrice>) -> Option<ModelPrice> {
    match (override_, base) {
        (None, None) => None,
        (Some(o), None) => Some(o),
        (None, Some(b)) => Some(b),
        (Some(mut o), Some(b)) => {
            let tier = match (o.long_context.take(), &b.long_context) {
                (Some(ot), Some(bt)) if ot.threshold_tokens == bt.threshold_tokens => {
                    Some(LongContext {
                        threshold_tokens: ot.threshold_tokens,
                        price: Box::new(fill(*ot.price, &bt.price)),
                    })
                }
                (Some(ot), _) => Some(ot),
                (None, bt) => bt.clone(),
            };
            let mut out = fill(o, &b);
            out.long_context = tier;
            Some(out)
        }
    }
}

/// A cost split by bucket, in picodollars, for logs and explanations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CostBreakdown {
    /// True when the long-context tier priced the request.
    pub long_context: bool,
    pub input: u128,
    pub cache_read: u128,
    pub cache_write_5m: u128,
    pub cache_write_1h: u128,
    pub output: u128,
    pub web_search: u128,
}

impl CostBreakdown {
    pub fn total_pico(&self) -> u128 {
        self.input
            + self.cache_read
            + self.cache_write_5m
            + self.cache_write_1h
            + self.output
            + self.web_search
    }

    /// The total in nano-dollars, rounded half-up; `None` only past `i64::MAX` nano-dollars.
    pub fn total_nanos(&self) -> Option<i64> {
        pico_to_nanos(self.total_pico())
    }
}

fn pico_to_nanos(pico: u128) -> Option<i64> {
    i64::try_from((pico + 500) / 1000).ok()
}

/// Tokens (or requests) times a price, where a price is needed only if there is something to
/// price: zero tokens at an unknown price cost exactly zero, any tokens at one cost unknown.
fn charge(count: u64, price: Option<u64>) -> Option<u128> {
    if count == 0 {
        return Some(0);
    }
    price.map(|p| u128::from(count) * u128::from(p))
}

/// The cost of `usage` at `price`, by bucket. See [`cost_nanos`] for the rules.
pub fn breakdown(price: &ModelPrice, usage: &Usage) -> Option<CostBreakdown> {
    let any_input = usage.input_uncached.is_some()
        || usage.cache_read.is_some()
        || usage.cache_write.is_some()
        || usage.cache_write_5m.is_some()
        || usage.cache_write_1h.is_some();
    if !any_input && usage.output.is_none() {
        return None;
    }
    let uncached = usage.input_uncached.unwrap_or(0);
    let read = usage.cache_read.unwrap_or(0);
    // The TTL split may be partial or disagree with the total: the part of the total the split
    // does not account for is written at the default (5-minute) TTL, and when the split says
    // more than the total the split wins, so an inconsistent report never lowers the cost.
    let write_1h = usage.cache_write_1h.unwrap_or(0);
    let write_5m = usage
        .cache_write_5m
        .unwrap_or(0)
        .max(usage.cache_write.unwrap_or(0).saturating_sub(write_1h));
    let prompt = uncached
        .saturating_add(read)
        .saturating_add(write_5m)
        .saturating_add(write_1h);
    let (p, long_context) = price.for_prompt(prompt);
    Some(CostBreakdown {
        long_context,
        input: charge(uncached, p.input)?,
        cache_read: charge(read, p.effective_cache_read())?,
        cache_write_5m: charge(write_5m, p.effective_cache_write_5m())?,
        cache_write_1h: charge(write_1h, p.effective_cache_write_1h())?,
        // Reasoning is part of output already; pricing it again would double-charge.
        output: charge(usage.output.unwrap_or(0), p.output)?,
        web_search: charge(usage.web_search_requests.unwrap_or(0), p.web_search)?,
    })
}

/// The cost of `usage` at `price` in nano-dollars (1e-9 USD), rounded half-up from the exact
/// picodollar sum.
///
/// - Buckets: uncached input at `input`; cache reads at `cache_read` (fallback `input`);
///   cache writes split by TTL when the split is reported, each at its own price (1h falls
///   back to the 5m price, 5m falls back to `input` × 1.25), else the whole `cache_write` at
///   the 5m price; `output` at `output` (reasoning is inside it and never added again); web
///   searches at `web_search` per request. Web fetches are not charged: providers bill only
///   the tokens they bring in.
/// - An unknown (`None`) bucket counts as zero, but when `output` and every input bucket are
///   unknown there is nothing to price and the result is `None`.
/// - A bucket with a positive count whose price is unknown (after fallbacks) makes the result
///   `None`: cost unknown, never a silent undercount.
/// - Long-context tier: when uncached + cache read + cache write exceeds the tier threshold,
///   the whole request is priced at the tier.
pub fn cost_nanos(price: &ModelPrice, usage: &Usage) -> Option<i64> {
    breakdown(price, usage)?.total_nanos()
}

/// A one-line, human-readable summary of a price in dollars per million tokens.
pub fn describe(price: &ModelPrice) -> String {
    let mut parts = Vec::new();
    let mut push = |label: &str, v: Option<u64>, unit: &str, scale: u128| {
        if let Some(v) = v {
            parts.push(format!("{label} ${}{unit}", dollars(u128::from(v) * scale)));
        }
    };
    push("in", price.input, "/M", 1_000_000);
    push("out", price.output, "/M", 1_000_000);
    push("cache read", price.cache_read, "/M", 1_000_000);
    push("cache write 5m", price.cache_write_5m, "/M", 1_000_000);
    push("cache write 1h", price.cache_write_1h, "/M", 1_000_000);
    push("web search", price.web_search, "/request", 1);
    let mut s = if parts.is_empty() {
        "no prices".to_owned()
    } else {
        parts.join(", ")
    };
    if let Some(tier) = &price.long_context {
        s.push_str(&format!(
            "; above {} prompt tokens: {}",
            tier.threshold_tokens,
            describe(&tier.price)
        ));
    }
    s
}

/// Picodollars as a dollar amount with no trailing zeros.
fn dollars(pico: u128) -> String {
    let whole = pico / u128::from(PICO_PER_DOLLAR);
    let frac = pico % u128::from(PICO_PER_DOLLAR);
    if frac == 0 {
        return format!("{whole}.00");
    }
    let frac = format!("{frac:012}");
    let frac = frac.trim_end_matches('0');
    // Keep at least cents, the way price lists print dollars.
    if frac.len() < 2 {
        format!("{whole}.{frac:0<2}")
    } else {
        format!("{whole}.{frac}")
    }
}
