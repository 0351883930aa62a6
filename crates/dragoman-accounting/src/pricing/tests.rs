//! Pricing tests: hand-computed costs, name matching, exact LiteLLM parsing, and properties
//! (monotonic cost, TTL split neutrality) that hold for every price in the table.

use dragoman_model::Usage;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::*;

fn usage(uncached: u64, read: u64, write: u64, output: u64) -> Usage {
    Usage {
        input_uncached: Some(uncached),
        cache_read: Some(read),
        cache_write: Some(write),
        output: Some(output),
        ..Usage::default()
    }
}

fn map(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("not an object"),
    }
}

fn price(name: &str) -> ModelPrice {
    builtin(name).unwrap_or_else(|| panic!("{name} not in the table"))
}

// ---- hand computations -------------------------------------------------------------------

#[test]
fn sonnet_45_with_cache_read_and_write() {
    // 3 × $3/M + 4004 × $0.30/M + 10 × $3.75/M + 50 × $15/M, in picodollars:
    // 9_000_000 + 1_201_200_000 + 37_500_000 + 750_000_000 = 1_997_700_000 → 1_997_700 n$.
    let p = price("claude-sonnet-4-5");
    let u = usage(3, 4004, 10, 50);
    assert_eq!(cost_nanos(&p, &u), Some(1_997_700));
    let split = Usage {
        cache_write_5m: Some(10),
        cache_write_1h: Some(0),
        ..u
    };
    assert_eq!(cost_nanos(&p, &split), Some(1_997_700));
    let b = breakdown(&p, &u).unwrap();
    assert_eq!(b.input, 9_000_000);
    assert_eq!(b.cache_read, 1_201_200_000);
    assert_eq!(b.cache_write_5m, 37_500_000);
    assert_eq!(b.output, 750_000_000);
    assert!(!b.long_context);
}

#[test]
fn gpt_4o_with_cached_prompt() {
    // 1234 prompt tokens of which 1024 cached, 12 output:
    // 210 × $2.50/M + 1024 × $1.25/M + 12 × $10/M
    // = 525_000_000 + 1_280_000_000 + 120_000_000 p$ = 1_925_000 n$.
    let p = price("gpt-4o");
    let u = Usage {
        output: Some(12),
        ..Usage::from_inclusive_prompt(Some(1234), Some(1024), None)
    };
    assert_eq!(u.input_uncached, Some(210));
    assert_eq!(cost_nanos(&p, &u), Some(1_925_000));
}

#[test]
fn ttl_split_prices_each_bucket() {
    // Opus 4.1: 100 × $18.75/M (5m) + 50 × $30/M (1h) = 1_875_000_000 + 1_500_000_000 p$.
    let p = price("claude-opus-4-1-20250805");
    let u = Usage {
        cache_write: Some(150),
        cache_write_5m: Some(100),
        cache_write_1h: Some(50),
        output: Some(0),
        ..Usage::default()
    };
    assert_eq!(cost_nanos(&p, &u), Some(3_375_000));
    // Only the 1h part reported: the rest of the total is 5m.
    let partial = Usage {
        cache_write_5m: None,
        ..u
    };
    assert_eq!(cost_nanos(&p, &partial), Some(3_375_000));
    // Split says more than the total: the split wins.
    let inconsistent = Usage {
        cache_write: Some(10),
        ..u
    };
    assert_eq!(cost_nanos(&p, &inconsistent), Some(3_375_000));
    // No split: the whole total at the 5m price.
    let total_only = Usage {
        cache_write_5m: None,
        cache_write_1h: None,
        ..u
    };
    assert_eq!(cost_nanos(&p, &total_only), Some(2_812_500));
}

#[test]
fn reasoning_is_not_charged_twice() {
    let p = price("o3");
    let plain = usage(0, 0, 0, 1000);
    let with_reasoning = Usage {
        reasoning: Some(800),
        ..plain
    };
    // 1000 × $8/M = $0.008.
    assert_eq!(cost_nanos(&p, &plain), Some(8_000_000));
    assert_eq!(cost_nanos(&p, &with_reasoning), Some(8_000_000));
}

#[test]
fn web_searches_are_charged_per_request_and_fetches_are_free() {
    let p = price("claude-sonnet-4-6");
    let u = Usage {
        output: Some(0),
        web_search_requests: Some(3),
        web_fetch_requests: Some(5),
        ..Usage::default()
    };
    // 3 × $0.01.
    assert_eq!(cost_nanos(&p, &u), Some(30_000_000));
}

#[test]
fn long_context_tier_prices_the_whole_request() {
    let p = price("claude-sonnet-4-5");
    // At the threshold: 200_000 × $3/M + 1000 × $15/M.
    assert_eq!(
        cost_nanos(&p, &usage(200_000, 0, 0, 1000)),
        Some(615_000_000)
    );
    // One over: 200_001 × $6/M + 1000 × $22.50/M, output included.
    assert_eq!(
        cost_nanos(&p, &usage(200_001, 0, 0, 1000)),
        Some(1_222_506_000)
    );
    assert!(
        breakdown(&p, &usage(200_001, 0, 0, 1000))
            .unwrap()
            .long_context
    );
    // Cache reads count toward the threshold and are priced at the tier: 1 × $6/M +
    // 200_000 × $0.60/M.
    assert_eq!(cost_nanos(&p, &usage(1, 200_000, 0, 0)), Some(120_006_000));
    // So do cache writes, including a TTL split with no total.
    let split = Usage {
        input_uncached: Some(1),
        cache_write_1h: Some(200_000),
        output: Some(0),
        ..Usage::default()
    };
    // 1 × $6/M + 200_000 × $12/M.
    assert_eq!(cost_nanos(&p, &split), Some(2_400_006_000));
    // Models without a tier are flat.
    let flat = price("claude-sonnet-4-6");
    assert_eq!(
        cost_nanos(&flat, &usage(200_001, 0, 0, 1000)),
        Some(615_003_000)
    );
}

#[test]
fn tier_gaps_fall_back_to_the_base_price() {
    let p = ModelPrice {
        input: Some(1_000_000),
        output: Some(2_000_000),
        cache_read: Some(100_000),
        long_context: Some(LongContext {
            threshold_tokens: 10,
            price: Box::new(ModelPrice {
                input: Some(3_000_000),
                ..ModelPrice::default()
            }),
        }),
        ..ModelPrice::default()
    };
    // 5 × 3 µ$ + 6 × 0.1 µ$ + 1 × 2 µ$ = 15 + 0.6 + 2 = 17.6 µ$.
    assert_eq!(cost_nanos(&p, &usage(5, 6, 0, 1)), Some(17_600));
}

#[test]
fn rounding_is_half_up_to_the_nanodollar() {
    let at = |pico: u64| ModelPrice {
        input: Some(pico),
        output: Some(0),
        ..ModelPrice::default()
    };
    let one = usage(1, 0, 0, 0);
    assert_eq!(cost_nanos(&at(1_499), &one), Some(1));
    assert_eq!(cost_nanos(&at(1_500), &one), Some(2));
    assert_eq!(cost_nanos(&at(499), &one), Some(0));
    assert_eq!(cost_nanos(&at(500), &one), Some(1));
}

#[test]
fn fallbacks_for_missing_cache_prices() {
    let p = ModelPrice {
        input: Some(4_000_000),
        output: Some(0),
        ..ModelPrice::default()
    };
    assert_eq!(p.effective_cache_read(), Some(4_000_000));
    assert_eq!(p.effective_cache_write_5m(), Some(5_000_000));
    assert_eq!(p.effective_cache_write_1h(), Some(5_000_000));
    let listed_5m = ModelPrice {
        cache_write_5m: Some(4_500_000),
        ..p.clone()
    };
    assert_eq!(listed_5m.effective_cache_write_1h(), Some(4_500_000));
    // OpenAI-style cache writes (traps A2) on an OpenAI model: 1.25 × input.
    let gpt5 = price("gpt-5");
    let u = Usage {
        cache_write: Some(1_000_000),
        output: Some(0),
        ..Usage::default()
    };
    assert_eq!(cost_nanos(&gpt5, &u), Some(1_562_500_000));
}

#[test]
fn unknown_is_never_zero() {
    let p = price("gpt-4o");
    assert_eq!(cost_nanos(&p, &Usage::default()), None);
    let only_reasoning = Usage {
        reasoning: Some(5),
        web_search_requests: Some(1),
        ..Usage::default()
    };
    assert_eq!(cost_nanos(&p, &only_reasoning), None);
    // Any single known bucket is enough.
    let only_output = Usage {
        output: Some(10),
        ..Usage::default()
    };
    // 10 × $10/M = $0.0001.
    assert_eq!(cost_nanos(&p, &only_output), Some(100_000));
    let only_5m = Usage {
        cache_write_5m: Some(0),
        ..Usage::default()
    };
    assert_eq!(cost_nanos(&p, &only_5m), Some(0));

    // Tokens at an unknown price make the cost unknown; zero tokens do not.
    let no_output_price = ModelPrice {
        input: Some(1),
        ..ModelPrice::default()
    };
    assert_eq!(cost_nanos(&no_output_price, &usage(1000, 0, 0, 5)), None);
    // 1000 tokens × 1 p$ = 1 n$.
    assert_eq!(cost_nanos(&no_output_price, &usage(1000, 0, 0, 0)), Some(1));
    let no_input_price = ModelPrice {
        output: Some(1),
        ..ModelPrice::default()
    };
    // A cache read with no cache-read and no input price is unknown.
    assert_eq!(cost_nanos(&no_input_price, &usage(0, 1, 0, 0)), None);
    let no_search_price = ModelPrice {
        web_search: None,
        ..p
    };
    let searched = Usage {
        web_search_requests: Some(1),
        ..usage(1, 0, 0, 1)
    };
    assert_eq!(cost_nanos(&no_search_price, &searched), None);
}

#[test]
fn overflow_past_i64_is_unknown() {
    let p = price("claude-opus-4");
    assert_eq!(cost_nanos(&p, &usage(0, 0, 0, u64::MAX)), None);
    assert_eq!(
        cost_nanos(&p, &usage(u64::MAX, u64::MAX, u64::MAX, u64::MAX)),
        None
    );
}

// ---- the table and name matching ---------------------------------------------------------

/// (name, input, output, cache read) in thousandths of a dollar per million tokens.
const LISTED: &[(&str, u64, u64, u64)] = &[
    ("claude-opus-4", 15_000, 75_000, 1_500),
    ("claude-opus-4-1", 15_000, 75_000, 1_500),
    ("claude-opus-4-5", 5_000, 25_000, 500),
    ("claude-opus-4-6", 5_000, 25_000, 500),
    ("claude-opus-5", 5_000, 25_000, 500),
    ("claude-sonnet-4", 3_000, 15_000, 300),
    ("claude-sonnet-4-5", 3_000, 15_000, 300),
    ("claude-sonnet-4-6", 3_000, 15_000, 300),
    ("claude-sonnet-5", 3_000, 15_000, 300),
    ("claude-haiku-4-5", 1_000, 5_000, 100),
    ("claude-3-5-haiku", 800, 4_000, 80),
    ("claude-3-opus", 15_000, 75_000, 1_500),
    ("claude-3-haiku", 250, 1_250, 30),
    ("gpt-4o", 2_500, 10_000, 1_250),
    ("gpt-4o-mini", 150, 600, 75),
    ("gpt-4.1", 2_000, 8_000, 500),
    ("gpt-4.1-mini", 400, 1_600, 100),
    ("gpt-4.1-nano", 100, 400, 25),
    ("gpt-5", 1_250, 10_000, 125),
    ("gpt-5.1", 1_250, 10_000, 125),
    ("gpt-5-codex", 1_250, 10_000, 125),
    ("gpt-5-mini", 250, 2_000, 25),
    ("gpt-5-nano", 50, 400, 5),
    ("o3", 2_000, 8_000, 500),
    ("o4-mini", 1_100, 4_400, 275),
    ("o3-mini", 1_100, 4_400, 550),
];

#[test]
fn listed_prices() {
    for &(name, input, output, read) in LISTED {
        let p = price(name);
        assert_eq!(p.input, Some(input * 1000), "{name} input");
        assert_eq!(p.output, Some(output * 1000), "{name} output");
        assert_eq!(p.cache_read, Some(read * 1000), "{name} cache read");
        if name.starts_with("claude") && name != "claude-3-haiku" {
            assert_eq!(p.cache_write_5m, Some(input * 1250), "{name} 5m write");
            assert_eq!(p.cache_write_1h, Some(input * 2000), "{name} 1h write");
        }
    }
    let haiku3 = price("claude-3-haiku");
    assert_eq!(haiku3.cache_write_5m, Some(300_000));
    assert_eq!(haiku3.cache_write_1h, Some(500_000));
    for name in ["claude-sonnet-4", "claude-sonnet-4-5"] {
        let tier = price(name).long_context.unwrap();
        assert_eq!(tier.threshold_tokens, 200_000);
        assert_eq!(tier.price.input, Some(6_000_000));
        assert_eq!(tier.price.output, Some(22_500_000));
        assert_eq!(tier.price.cache_read, Some(600_000));
        assert_eq!(tier.price.cache_write_5m, Some(7_500_000));
        assert_eq!(tier.price.cache_write_1h, Some(12_000_000));
    }
}

#[test]
fn table_is_consistent() {
    let mut seen = std::collections::HashSet::new();
    for name in table::names() {
        assert!(seen.insert(name), "{name} listed twice");
        assert_eq!(name, name.to_ascii_lowercase(), "{name} not lowercase");
        assert!(builtin(name).is_some(), "{name} does not resolve");
        let p = price(name);
        let (input, output) = (p.input.unwrap(), p.output.unwrap());
        assert!(p.effective_cache_read().unwrap() <= input, "{name}");
        assert!(p.effective_cache_write_5m().unwrap() >= input, "{name}");
        assert!(
            p.effective_cache_write_1h().unwrap() >= p.effective_cache_write_5m().unwrap(),
            "{name}"
        );
        if let Some(t) = &p.long_context {
            let (t, _) = p.for_prompt(t.threshold_tokens + 1);
            assert!(
                t.input.unwrap() >= input && t.output.unwrap() >= output,
                "{name}"
            );
        }
    }
}

#[test]
fn name_matching() {
    let sonnet = price("claude-sonnet-4-5");
    for name in [
        "claude-sonnet-4-5-20250929",
        "anthropic/claude-sonnet-4-5-20250929",
        "ANTHROPIC/Claude-Sonnet-4-5",
        "claude-sonnet-4.5",
        "openrouter/anthropic/claude-sonnet-4.5",
        "claude-sonnet-4-5@20250929",
        "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "bedrock/global.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "claude-sonnet-4-5-latest",
        " claude-sonnet-4-5 ",
    ] {
        assert_eq!(builtin(name).as_ref(), Some(&sonnet), "{name}");
    }
    assert_eq!(
        builtin("claude-3-5-haiku-latest"),
        builtin("claude-3-5-haiku")
    );
    assert_eq!(
        builtin("claude-3-5-haiku-20241022"),
        builtin("claude-3-5-haiku")
    );
    assert_eq!(
        builtin("claude-opus-4-1-20250805"),
        builtin("claude-opus-4-1")
    );
    assert_eq!(builtin("claude-opus-4-20250514"), builtin("claude-opus-4"));
    assert_ne!(builtin("claude-opus-4-1"), builtin("claude-opus-4-5"));
    assert_eq!(builtin("gpt-4o-2024-08-06"), builtin("gpt-4o"));
    assert_eq!(builtin("openai/gpt-4.1-2025-04-14"), builtin("gpt-4.1"));
    assert_eq!(builtin("gpt-4o-mini-2024-07-18"), builtin("gpt-4o-mini"));
    assert_eq!(builtin("gpt-5-chat-latest"), builtin("gpt-5"));
    assert_eq!(builtin("o3-mini-2025-01-31"), builtin("o3-mini"));
    // An exact dated row wins over stripping the date.
    assert_eq!(price("gpt-4o-2024-05-13").input, Some(5_000_000));
    assert_eq!(price("openai/gpt-4o-2024-05-13").input, Some(5_000_000));
    for unknown in [
        "",
        "gpt-4",
        "gpt-5.1-codex-mini",
        "claude-sonnet",
        "chatgpt-4o-latest",
        "llama-3-70b",
        "claude-sonnet-4-5-2025",
        "o3-pro",
    ] {
        assert_eq!(builtin(unknown), None, "{unknown}");
    }
}

// ---- LiteLLM overrides -------------------------------------------------------------------

#[test]
fn litellm_exact_parsing() {
    let p = from_litellm(&map(json!({
        "input_cost_per_token": 0.000003,
        "output_cost_per_token": "3e-06",
        "cache_read_input_token_cost": 1.5e-7,
        "cache_creation_input_token_cost": 3.75e-06,
        "cache_creation_input_token_cost_above_1hr": "0.000006",
        "model": "anthropic/claude-sonnet-4-5",
        "api_base": "https://example.invalid",
    })))
    .unwrap()
    .unwrap();
    assert_eq!(p.input, Some(3_000_000));
    assert_eq!(p.output, Some(3_000_000));
    assert_eq!(p.cache_read, Some(150_000));
    assert_eq!(p.cache_write_5m, Some(3_750_000));
    assert_eq!(p.cache_write_1h, Some(6_000_000));
    assert_eq!(p.long_context, None);
    assert_eq!(p.web_search, None);
}

#[test]
fn litellm_tiers() {
    let p = from_litellm(&map(json!({
        "input_cost_per_token": 3e-06,
        "input_cost_per_token_above_200k_tokens": 6e-06,
        "output_cost_per_token_above_200k_tokens": 2.25e-05,
        "cache_read_input_token_cost_above_200k_tokens": 6e-07,
        "cache_creation_input_token_cost_above_1hr_above_200k_tokens": 1.2e-05,
    })))
    .unwrap()
    .unwrap();
    let tier = p.long_context.unwrap();
    assert_eq!(tier.threshold_tokens, 200_000);
    assert_eq!(tier.price.input, Some(6_000_000));
    assert_eq!(tier.price.output, Some(22_500_000));
    assert_eq!(tier.price.cache_read, Some(600_000));
    assert_eq!(tier.price.cache_write_1h, Some(12_000_000));
    assert_eq!(tier.price.cache_write_5m, None);

    let p = from_litellm(&map(
        json!({"input_cost_per_token_above_272k_tokens": 2.5e-06}),
    ))
    .unwrap()
    .unwrap();
    assert_eq!(p.input, None);
    assert_eq!(p.long_context.unwrap().threshold_tokens, 272_000);

    let err = from_litellm(&map(json!({
        "input_cost_per_token_above_200k_tokens": 1e-6,
        "output_cost_per_token_above_272k_tokens": 1e-6,
    })))
    .unwrap_err();
    assert!(err.contains("above_272k_tokens") || err.contains("above_200k_tokens"));
}

#[test]
fn litellm_web_search() {
    let p = from_litellm(&map(json!({"web_search_cost_per_request": 0.01})))
        .unwrap()
        .unwrap();
    assert_eq!(p.web_search, Some(10_000_000_000));
    let p = from_litellm(&map(json!({
        "search_context_cost_per_query": {
            "search_context_size_low": 0.03,
            "search_context_size_medium": 0.035,
            "search_context_size_high": 0.05,
        }
    })))
    .unwrap()
    .unwrap();
    assert_eq!(p.web_search, Some(35_000_000_000));
}

#[test]
fn litellm_rejects_bad_values_naming_the_key() {
    for (key, v) in [
        ("output_cost_per_token", json!(-1e-6)),
        ("input_cost_per_token", json!("-0.000003")),
        ("cache_read_input_token_cost", json!("cheap")),
        ("input_cost_per_token", json!(true)),
        ("input_cost_per_token", json!([1])),
        ("input_cost_per_token", json!("NaN")),
        ("input_cost_per_token", json!(1e30)),
        ("web_search_cost_per_request", json!(-0.01)),
    ] {
        let mut m = Map::new();
        m.insert(key.to_owned(), v.clone());
        let err = from_litellm(&m).unwrap_err();
        assert!(err.contains(key), "{key}={v}: {err}");
    }
}

#[test]
fn litellm_without_price_keys_is_none() {
    assert_eq!(from_litellm(&Map::new()), Ok(None));
    assert_eq!(
        from_litellm(&map(json!({
            "model": "openai/gpt-4o",
            "max_tokens": 4096,
            "input_cost_per_token": null,
            "input_cost_per_tokenish": 1,
        }))),
        Ok(None)
    );
    // Zero is a price (free), not an absence.
    let free = from_litellm(&map(json!({"input_cost_per_token": 0}))).unwrap();
    assert_eq!(free.unwrap().input, Some(0));
}

#[test]
fn decimal_parsing() {
    for (text, pico) in [
        ("0", 0),
        ("-0", 0),
        ("0.0", 0),
        ("1", 1_000_000_000_000),
        ("+2", 2_000_000_000_000),
        (".5", 500_000_000_000),
        ("5.", 5_000_000_000_000),
        ("0.000003", 3_000_000),
        ("3e-06", 3_000_000),
        ("3E-6", 3_000_000),
        ("3.0e-6", 3_000_000),
        ("0.3e-5", 3_000_000),
        ("30000e-10", 3_000_000),
        ("1.5e-7", 150_000),
        ("2.5e-08", 25_000),
        ("1e-12", 1),
        ("4e-13", 0),
        ("5e-13", 1),
        ("1e-400", 0),
        ("000.000003000", 3_000_000),
        (" 0.000003 ", 3_000_000),
        ("1e7", 10_000_000_000_000_000_000),
    ] {
        assert_eq!(parse_dollars_to_pico(text), Ok(pico), "{text}");
    }
    for bad in [
        "", ".", "e5", "1e", "1e+", "1.2.3", "nan", "inf", "0x10", "1,5", "--1", "-1e-6", "2e7",
        "1e400", "1 e5",
    ] {
        assert!(parse_dollars_to_pico(bad).is_err(), "{bad:?}");
    }
}

// ---- merging -----------------------------------------------------------------------------

#[test]
fn merged_fills_a_partial_override_from_the_base() {
    let base = builtin("claude-sonnet-4-5");
    let over = from_litellm(&map(json!({"input_cost_per_token": 2e-06}))).unwrap();
    let m = merged(over, base.clone()).unwrap();
    assert_eq!(m.input, Some(2_000_000));
    assert_eq!(m.output, Some(15_000_000));
    // The base's listed cache prices stay; they are not rederived from the new input.
    assert_eq!(m.cache_read, Some(300_000));
    assert_eq!(m.long_context, base.as_ref().unwrap().long_context);

    assert_eq!(merged(None, None), None);
    assert_eq!(merged(None, base.clone()), base);
    let alone = from_litellm(&map(json!({"output_cost_per_token": 1e-6}))).unwrap();
    assert_eq!(merged(alone.clone(), None), alone);
}

#[test]
fn merged_tiers() {
    let base = builtin("claude-sonnet-4-5");
    // Same threshold: field by field.
    let over = from_litellm(&map(
        json!({"output_cost_per_token_above_200k_tokens": 3e-05}),
    ))
    .unwrap();
    let tier = merged(over, base.clone()).unwrap().long_context.unwrap();
    assert_eq!(tier.threshold_tokens, 200_000);
    assert_eq!(tier.price.output, Some(30_000_000));
    assert_eq!(tier.price.input, Some(6_000_000));
    // Another threshold: replaces.
    let over = from_litellm(&map(
        json!({"input_cost_per_token_above_272k_tokens": 1e-05}),
    ))
    .unwrap();
    let tier = merged(over, base).unwrap().long_context.unwrap();
    assert_eq!(tier.threshold_tokens, 272_000);
    assert_eq!(tier.price.output, None);
}

#[test]
fn describe_reads_like_a_price_list() {
    let d = describe(&price("claude-sonnet-4-5"));
    assert!(
        d.starts_with("in $3.00/M, out $15.00/M, cache read $0.30/M"),
        "{d}"
    );
    assert!(d.contains("web search $0.01/request"), "{d}");
    assert!(
        d.contains("above 200000 prompt tokens: in $6.00/M, out $22.50/M"),
        "{d}"
    );
    assert!(describe(&price("gpt-5-nano")).contains("cache read $0.005/M"));
    assert_eq!(describe(&ModelPrice::default()), "no prices");
}

// ---- properties --------------------------------------------------------------------------

fn any_usage() -> impl Strategy<Value = Usage> {
    let b = || proptest::option::of(0u64..400_000);
    (
        (b(), b(), b(), b(), b()),
        (b(), b(), proptest::option::of(0u64..50), b()),
    )
        .prop_map(|((u, r, w, w5, w1), (o, re, ws, wf))| Usage {
            input_uncached: u,
            cache_read: r,
            cache_write: w,
            cache_write_5m: w5,
            cache_write_1h: w1,
            output: o,
            reasoning: re,
            web_search_requests: ws,
            web_fetch_requests: wf,
        })
}

fn any_model() -> impl Strategy<Value = &'static str> {
    proptest::sample::select(table::names().collect::<Vec<_>>())
}

fn bump(u: &Usage, bucket: usize, by: u64) -> Usage {
    let mut u = *u;
    let slot = match bucket {
        0 => &mut u.input_uncached,
        1 => &mut u.cache_read,
        2 => &mut u.cache_write,
        3 => &mut u.cache_write_5m,
        4 => &mut u.cache_write_1h,
        5 => &mut u.output,
        6 => &mut u.reasoning,
        7 => &mut u.web_search_requests,
        _ => &mut u.web_fetch_requests,
    };
    *slot = Some(slot.unwrap_or(0) + by);
    u
}

proptest! {
    #[test]
    fn cost_is_monotonic_in_every_bucket(
        model in any_model(),
        u in any_usage(),
        bucket in 0usize..9,
        by in 0u64..300_000,
    ) {
        let p = price(model);
        let more = bump(&u, bucket, by);
        let before = cost_nanos(&p, &u);
        let after = cost_nanos(&p, &more);
        // A token bucket makes a known cost, unless the usage also holds server-tool calls
        // the model has no price for (embedding models have no web search).
        let tools_priced = u.web_search_requests.is_none() || p.web_search.is_some();
        if bucket <= 5 && tools_priced {
            prop_assert!(after.is_some(), "a known bucket makes a known cost");
        }
        if let (Some(b), Some(a)) = (before, after) {
            prop_assert!(a >= b, "{model}: bucket {bucket} +{by}: {b} -> {a}");
        }
    }

    #[test]
    fn splitting_writes_at_equal_prices_changes_nothing(
        model in any_model(),
        u in any_usage(),
        five in 0u64..300_000,
        hour in 0u64..300_000,
    ) {
        let mut p = price(model);
        p.cache_write_1h = p.effective_cache_write_5m();
        if let Some(t) = p.long_context.as_mut() {
            t.price.cache_write_1h = t.price.cache_write_5m;
        }
        let total = Usage {
            cache_write: Some(five + hour),
            cache_write_5m: None,
            cache_write_1h: None,
            ..u
        };
        let split = Usage {
            cache_write_5m: Some(five),
            cache_write_1h: Some(hour),
            ..total
        };
        prop_assert_eq!(cost_nanos(&p, &total), cost_nanos(&p, &split));
    }

    #[test]
    fn split_cost_is_the_sum_of_its_parts(
        model in any_model(),
        five in 0u64..100_000,
        hour in 0u64..100_000,
    ) {
        let p = price(model);
        let u = Usage {
            cache_write: Some(five + hour),
            cache_write_5m: Some(five),
            cache_write_1h: Some(hour),
            ..Usage::default()
        };
        let pico = u128::from(five) * u128::from(p.effective_cache_write_5m().unwrap())
            + u128::from(hour) * u128::from(p.effective_cache_write_1h().unwrap());
        prop_assert_eq!(cost_nanos(&p, &u), Some(((pico + 500) / 1000) as i64));
    }

    #[test]
    fn json_floats_convert_exactly(pico in 0u64..1_000_000_000_000) {
        // Any price with at most 12 decimals survives serde_json's float rendering exactly.
        let f = pico as f64 / 1e12;
        let v = serde_json::Number::from_f64(f).unwrap();
        let mut m = Map::new();
        m.insert("input_cost_per_token".to_owned(), Value::Number(v));
        prop_assert_eq!(from_litellm(&m).unwrap().unwrap().input, Some(pico));
    }
}
