//! Unit and property tests for the canonical model's own logic (usage arithmetic, seals,
//! stream folding).

use proptest::prelude::*;

use crate::*;

#[test]
fn inclusive_prompt_is_split_into_buckets_and_clamped() {
    let u = Usage::from_inclusive_prompt(Some(1234), Some(1024), None);
    assert_eq!(
        (u.input_uncached, u.cache_read, u.cache_write),
        (Some(210), Some(1024), None)
    );
    assert_eq!(u.input_total(), Some(1234));
    let clamped = Usage::from_inclusive_prompt(Some(10), Some(20), None);
    assert_eq!(clamped.input_uncached, Some(0));
}

#[test]
fn merge_takes_later_reports_and_keeps_the_rest() {
    let mut u = Usage {
        input_uncached: Some(5),
        cache_read: Some(7),
        output: Some(1),
        ..Usage::default()
    };
    u.merge_from(&Usage {
        output: Some(40),
        input_uncached: Some(9),
        ..Usage::default()
    });
    assert_eq!(
        u,
        Usage {
            input_uncached: Some(9),
            cache_read: Some(7),
            output: Some(40),
            ..Usage::default()
        }
    );
}

#[test]
fn seals_round_trip_through_the_envelope() {
    let s = ReasoningSeal::openai_encrypted(Some("rs_1".into()), "gAAAA==opaque+/");
    let wrapped = s.carry_in(Family::Anthropic);
    assert!(wrapped.starts_with(SEAL_PREFIX));
    assert_eq!(ReasoningSeal::unwrap(&wrapped), Some(s.clone()));
    assert_eq!(s.carry_in(Family::OpenAi), "gAAAA==opaque+/");
    assert_eq!(ReasoningSeal::unwrap("EqQBCkYIBxgCKkD"), None);
    let redacted = ReasoningSeal::anthropic_redacted("xyz");
    assert!(
        redacted
            .carry_in(Family::Anthropic)
            .starts_with(SEAL_PREFIX)
    );
}

#[test]
fn data_urls_parse_into_base64_sources() {
    assert_eq!(
        MediaSource::from_url("data:image/png;base64,AAA"),
        MediaSource::Base64 {
            media_type: "image/png".into(),
            data: "AAA".into()
        }
    );
    assert_eq!(
        MediaSource::from_url("https://x/y.png"),
        MediaSource::Url {
            url: "https://x/y.png".into()
        }
    );
}

#[test]
fn stop_reason_follows_content() {
    assert_eq!(StopReason::EndTurn.reconcile(true), StopReason::ToolUse);
    assert_eq!(StopReason::ToolUse.reconcile(false), StopReason::EndTurn);
    assert_eq!(StopReason::MaxTokens.reconcile(true), StopReason::MaxTokens);
}

#[test]
fn collector_rejects_deltas_outside_blocks_and_truncation() {
    let start = StreamEvent::MessageStart {
        id: "m".into(),
        model: "x".into(),
        usage: Usage::default(),
    };
    let mut c = Collector::new();
    c.push(&start).unwrap();
    assert!(
        c.push(&StreamEvent::BlockDelta {
            index: 0,
            delta: Delta::Text("a".into())
        })
        .is_err()
    );
    let mut c = Collector::new();
    c.push(&start).unwrap();
    assert_eq!(c.finish().unwrap_err(), ErrorBody::truncated_stream());
}

fn arb_usage() -> impl Strategy<Value = Usage> {
    let o = || proptest::option::of(0u64..1_000_000);
    (o(), o(), o(), o(), o()).prop_map(|(a, b, c, d, e)| Usage {
        input_uncached: a,
        cache_read: b,
        cache_write: c,
        output: d,
        reasoning: e.map(|r| r.min(d.unwrap_or(r))),
        ..Usage::default()
    })
}

fn arb_part() -> impl Strategy<Value = Part> {
    prop_oneof![
        "[a-z ]{0,20}".prop_map(Part::text),
        ("[a-z]{1,8}", "\\{\"a\":[0-9]{1,3}\\}").prop_map(|(n, a)| Part::ToolCall {
            id: format!("call_{n}"),
            name: n,
            arguments: a,
            kind: ToolKind::Function
        }),
        ("[a-z ]{0,20}", proptest::option::of("[A-Za-z0-9]{4,20}")).prop_map(|(t, s)| {
            Part::Reasoning {
                text: t,
                seal: s.map(ReasoningSeal::anthropic_signature),
            }
        }),
    ]
}

proptest! {
    #[test]
    fn unfold_then_fold_is_identity(
        content in proptest::collection::vec(arb_part(), 0..6),
        usage in arb_usage(),
    ) {
        let r = Response { id: "msg_1".into(), model: "m".into(), content, stop: StopReason::EndTurn, usage, extensions: vec![] };
        let back = collect(&response_events(&r)).unwrap();
        prop_assert_eq!(back, r);
    }

    #[test]
    fn inclusive_split_conserves_the_total(prompt in 0u64..1_000_000, cached in 0u64..1_000_000) {
        let u = Usage::from_inclusive_prompt(Some(prompt), Some(cached.min(prompt)), None);
        prop_assert_eq!(u.input_total(), Some(prompt));
    }
}

#[test]
fn bedrock_dialect_names_family_and_url_model() {
    use crate::{Dialect, Family};
    assert_eq!("bedrock".parse::<Dialect>(), Ok(Dialect::Bedrock));
    assert_eq!("converse".parse::<Dialect>(), Ok(Dialect::Bedrock));
    assert_eq!(Dialect::Bedrock.as_str(), "bedrock");
    assert_eq!(
        Dialect::Bedrock.to_string().parse::<Dialect>(),
        Ok(Dialect::Bedrock)
    );
    assert_eq!(Dialect::Bedrock.family(), Family::Anthropic);
    assert!(!Dialect::Bedrock.model_in_body());
    assert!(Dialect::Anthropic.model_in_body());
    assert!(!Dialect::Bedrock.has_freeform_tools());
    assert!(Dialect::ALL.contains(&Dialect::Bedrock));
    assert!(
        Dialect::ALL
            .iter()
            .all(|d| d.as_str().parse::<Dialect>() == Ok(*d))
    );
}
