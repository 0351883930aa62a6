//! Reads a deployment's price override written in LiteLLM's keys, so configs carried over from
//! LiteLLM keep their prices.
//!
//! LiteLLM writes dollars per token as floats (`0.000003`, `3e-06`). Going through `f64`
//! arithmetic would turn $3/M into 2999999.9999999995 picodollars; instead the number's
//! decimal text is parsed digit by digit, so every price that has a finite decimal form up to
//! the picodollar converts exactly.

use serde_json::{Map, Value};

use super::{LongContext, ModelPrice};

/// Which field of [`ModelPrice`] a LiteLLM key sets.
#[derive(Clone, Copy)]
enum Field {
    Input,
    Output,
    CacheRead,
    CacheWrite5m,
    CacheWrite1h,
    WebSearch,
}

/// Base keys, longest first so that `cache_creation_input_token_cost_above_1hr` is not taken
/// for `cache_creation_input_token_cost` with a suffix.
const KEYS: &[(&str, Field)] = &[
    (
        "cache_creation_input_token_cost_above_1hr",
        Field::CacheWrite1h,
    ),
    ("cache_creation_input_token_cost", Field::CacheWrite5m),
    ("cache_read_input_token_cost", Field::CacheRead),
    ("input_cost_per_token", Field::Input),
    ("output_cost_per_token", Field::Output),
];

fn set(price: &mut ModelPrice, field: Field, v: u64) {
    let slot = match field {
        Field::Input => &mut price.input,
        Field::Output => &mut price.output,
        Field::CacheRead => &mut price.cache_read,
        Field::CacheWrite5m => &mut price.cache_write_5m,
        Field::CacheWrite1h => &mut price.cache_write_1h,
        Field::WebSearch => &mut price.web_search,
    };
    *slot = Some(v);
}

/// Splits `key` into its base field and its long-context threshold, if it has one.
/// `input_cost_per_token_above_200k_tokens` → (Input, Some(200_000)).
fn classify(key: &str) -> Option<(Field, Option<u64>)> {
    for (base, field) in KEYS {
        let Some(rest) = key.strip_prefix(base) else {
            continue;
        };
        if rest.is_empty() {
            return Some((*field, None));
        }
        let n = rest.strip_prefix("_above_")?.strip_suffix("k_tokens")?;
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        return Some((*field, Some(n.parse::<u64>().ok()?.checked_mul(1000)?)));
    }
    None
}

/// The decimal text of a JSON price: numbers in serde_json's own rendering (shortest
/// round-trip, so `0.000003` reads back as `3e-6`), strings as written, `null` as absent.
fn text(key: &str, v: &Value) -> Result<Option<String>, String> {
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => Ok(Some(n.to_string())),
        Value::String(s) => Ok(Some(s.trim().to_owned())),
        _ => Err(format!("{key}: expected a number of dollars, got {v}")),
    }
}

fn dollars(key: &str, v: &Value) -> Result<Option<u64>, String> {
    match text(key, v)? {
        None => Ok(None),
        Some(t) => parse_dollars_to_pico(&t)
            .map(Some)
            .map_err(|e| format!("{key}: {e}")),
    }
}

/// A deployment's price override from LiteLLM keys (dollars per token).
///
/// Read: `input_cost_per_token`, `output_cost_per_token`, `cache_read_input_token_cost`,
/// `cache_creation_input_token_cost` (5-minute writes), `cache_creation_input_token_cost_above_1hr`,
/// each also with an `_above_<N>k_tokens` suffix (one tier, threshold N × 1000, exclusive), and
/// `web_search_cost_per_request` or `search_context_cost_per_query` (dollars per search; when
/// the latter is LiteLLM's object by context size, its `search_context_size_medium`, the
/// default size). Other keys are ignored, so the whole `litellm_params` map can be passed.
///
/// `Ok(None)` when no price key is present; `Err` naming the key for a negative, non-numeric
/// or out-of-range value, or when keys name two different tier thresholds.
pub fn from_litellm(keys: &Map<String, Value>) -> Result<Option<ModelPrice>, String> {
    let mut base = ModelPrice::default();
    let mut tier = ModelPrice::default();
    let mut threshold: Option<(u64, &str)> = None;
    let mut any = false;

    for (key, v) in keys {
        let Some((field, above)) = classify(key) else {
            continue;
        };
        let Some(pico) = dollars(key, v)? else {
            continue;
        };
        any = true;
        match above {
            None => set(&mut base, field, pico),
            Some(t) => {
                match threshold {
                    Some((seen, first)) if seen != t => {
                        return Err(format!(
                            "{key}: only one long-context tier is supported, and {first} \
                             names another threshold"
                        ));
                    }
                    _ => threshold = Some((t, key)),
                }
                set(&mut tier, field, pico);
            }
        }
    }

    // An explicit per-request price wins over the per-query form.
    let search = match keys.get("web_search_cost_per_request") {
        Some(v) => dollars("web_search_cost_per_request", v)?,
        None => None,
    };
    let search = match (search, keys.get("search_context_cost_per_query")) {
        (Some(p), _) => Some(p),
        (None, Some(Value::Object(sizes))) => match sizes.get("search_context_size_medium") {
            Some(v) => dollars(
                "search_context_cost_per_query.search_context_size_medium",
                v,
            )?,
            None => None,
        },
        (None, Some(v)) => dollars("search_context_cost_per_query", v)?,
        (None, None) => None,
    };
    if let Some(p) = search {
        any = true;
        set(&mut base, Field::WebSearch, p);
    }

    if !any {
        return Ok(None);
    }
    if let Some((t, _)) = threshold {
        base.long_context = Some(LongContext {
            threshold_tokens: t,
            price: Box::new(tier),
        });
    }
    Ok(Some(base))
}

/// Parses a non-negative decimal dollar amount (`0.000003`, `3e-06`, `1.5E-7`, `+2`, `.5`)
/// into picodollars, exactly. Digits below a picodollar round half-up; LiteLLM's price map has
/// none, so in practice the conversion is exact.
pub fn parse_dollars_to_pico(s: &str) -> Result<u64, String> {
    let bad = || format!("not a decimal dollar amount: {s:?}");
    let t = s.trim();
    let (negative, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (mantissa, exponent) = match t.find(['e', 'E']) {
        Some(i) => (&t[..i], Some(&t[i + 1..])),
        None => (t, None),
    };
    let exponent: i64 = match exponent {
        None => 0,
        Some(e) => {
            let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            // Exponents this large can only mean zero or overflow; clamp to keep the
            // arithmetic below in range.
            e.parse::<i64>()
                .unwrap_or(if e.starts_with('-') { -10_000 } else { 10_000 })
        }
    };
    let (int_part, frac_part) = match mantissa.find('.') {
        Some(i) => (&mantissa[..i], &mantissa[i + 1..]),
        None => (mantissa, ""),
    };
    if int_part.is_empty() && frac_part.is_empty() {
        return Err(bad());
    }
    if !int_part
        .bytes()
        .chain(frac_part.bytes())
        .all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }

    // value = digits × 10^(exponent − fraction length); picodollars = value × 10^12.
    let digits: String = int_part.chars().chain(frac_part.chars()).collect();
    let digits = digits.trim_start_matches('0');
    let trimmed = digits.trim_end_matches('0');
    let dropped_zeros = (digits.len() - trimmed.len()) as i64;
    if trimmed.is_empty() {
        return Ok(0);
    }
    if negative {
        return Err(format!("negative price: {s:?}"));
    }
    let scale = exponent - frac_part.len() as i64 + dropped_zeros + 12;
    let too_big = || format!("price out of range: {s:?}");
    if trimmed.len() > 38 {
        return Err(format!("too many digits: {s:?}"));
    }
    let n: u128 = trimmed.parse().map_err(|_| bad())?;
    let pico = if scale >= 0 {
        let mul = u32::try_from(scale)
            .ok()
            .and_then(|k| 10u128.checked_pow(k))
            .ok_or_else(too_big)?;
        n.checked_mul(mul).ok_or_else(too_big)?
    } else {
        match u32::try_from(-scale)
            .ok()
            .and_then(|k| 10u128.checked_pow(k))
        {
            Some(div) => n / div + u128::from(n % div >= div.div_ceil(2)),
            // Far below a picodollar: rounds to zero.
            None => 0,
        }
    };
    u64::try_from(pico).map_err(|_| too_big())
}
