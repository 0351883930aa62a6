//! Token usage in non-overlapping buckets, where `None` means "not reported" and never zero.
//!
//! Every dialect decodes its own usage into these buckets exactly once and encodes from them
//! exactly once; that is what makes a bridge that reads the wrong field impossible.

use serde::{Deserialize, Serialize};

/// Usage buckets. Input buckets do not overlap: total input is
/// `input_uncached + cache_read + cache_write`. `reasoning` is a subset of `output`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens neither read from nor written to a cache.
    pub input_uncached: Option<u64>,
    /// Prompt tokens served from a cache.
    pub cache_read: Option<u64>,
    /// Prompt tokens written to a cache (all TTLs).
    pub cache_write: Option<u64>,
    /// The part of `cache_write` written with a 5-minute TTL.
    pub cache_write_5m: Option<u64>,
    /// The part of `cache_write` written with a 1-hour TTL.
    pub cache_write_1h: Option<u64>,
    /// All generated tokens, reasoning included.
    pub output: Option<u64>,
    /// The part of `output` that was reasoning.
    pub reasoning: Option<u64>,
    /// Billable server-side web searches.
    pub web_search_requests: Option<u64>,
    /// Billable server-side web fetches.
    pub web_fetch_requests: Option<u64>,
}

impl Usage {
    /// Total prompt tokens, when at least the uncached part is known.
    pub fn input_total(&self) -> Option<u64> {
        if self.input_uncached.is_none() && self.cache_read.is_none() && self.cache_write.is_none()
        {
            return None;
        }
        Some(
            self.input_uncached.unwrap_or(0)
                + self.cache_read.unwrap_or(0)
                + self.cache_write.unwrap_or(0),
        )
    }

    /// Builds buckets from an OpenAI-style report where `prompt` includes cached and written
    /// tokens. Subtractions clamp at zero because some servers report cached > prompt.
    pub fn from_inclusive_prompt(
        prompt: Option<u64>,
        cached: Option<u64>,
        written: Option<u64>,
    ) -> Usage {
        let input_uncached = prompt.map(|p| {
            p.saturating_sub(cached.unwrap_or(0))
                .saturating_sub(written.unwrap_or(0))
        });
        Usage {
            input_uncached,
            cache_read: cached,
            cache_write: written,
            ..Usage::default()
        }
    }

    /// Takes every bucket `later` reports and keeps the rest: the merge rule for cumulative
    /// reports such as Anthropic's `message_start` followed by `message_delta`.
    pub fn merge_from(&mut self, later: &Usage) {
        macro_rules! take {
            ($($f:ident),*) => { $( if later.$f.is_some() { self.$f = later.$f; } )* };
        }
        take!(
            input_uncached,
            cache_read,
            cache_write,
            cache_write_5m,
            cache_write_1h,
            output,
            reasoning,
            web_search_requests,
            web_fetch_requests
        );
    }

    /// True when no bucket is known.
    pub fn is_empty(&self) -> bool {
        *self == Usage::default()
    }
}
