//! Criterion benchmark of the Converse stream codec: a 200-event ConverseStream (text deltas,
//! as most streams are) decoded to canonical events and encoded back, with and without the
//! binary event-stream framing, to compare with the other dialects' `stream_200_events`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dragoman_bedrock::{StreamDecoder, StreamEncoder};
use dragoman_model::{Losses, StreamOptions};
use dragoman_sse::Event;

fn stream() -> Vec<Event> {
    let mut v = vec![Event::named(
        "messageStart",
        r#"{"p":"abcdefghijklmnopqr","role":"assistant"}"#,
    )];
    for i in 0..196 {
        v.push(Event::named(
            "contentBlockDelta",
            format!(
                r#"{{"contentBlockIndex":0,"delta":{{"text":"token {i} "}},"p":"abcdefghijk"}}"#
            ),
        ));
    }
    v.push(Event::named(
        "contentBlockStop",
        r#"{"contentBlockIndex":0,"p":"abcdefghijklmnopq"}"#,
    ));
    v.push(Event::named(
        "messageStop",
        r#"{"p":"abcdefghij","stopReason":"end_turn"}"#,
    ));
    v.push(Event::named(
        "metadata",
        r#"{"metrics":{"latencyMs":446},"p":"abc","usage":{"inputTokens":13,"outputTokens":196,"totalTokens":209}}"#,
    ));
    v
}

fn translate(events: &[Event]) -> Vec<Event> {
    let mut dec = StreamDecoder::new();
    let mut enc = StreamEncoder::new(StreamOptions::default());
    let mut canon = Vec::with_capacity(events.len() + 4);
    let mut out = Vec::with_capacity(events.len() + 4);
    let mut losses = Losses::new();
    for e in events {
        canon.clear();
        dec.push(e, &mut canon).unwrap();
        for c in &canon {
            enc.push(c, &mut out, &mut losses);
        }
    }
    out
}

fn bench(c: &mut Criterion) {
    let events = stream();
    assert_eq!(events.len(), 200);
    let bytes = dragoman_eventstream::encode_all(&events);
    let mut g = c.benchmark_group("bedrock");
    g.throughput(Throughput::Elements(200));
    g.bench_function("stream_200_events_decode", |b| {
        b.iter(|| {
            let mut dec = StreamDecoder::new();
            let mut canon = Vec::with_capacity(210);
            for e in black_box(&events) {
                dec.push(e, &mut canon).unwrap();
            }
            canon.len()
        })
    });
    g.bench_function("stream_200_events_decode_encode", |b| {
        b.iter(|| translate(black_box(&events)).len())
    });
    g.bench_function("stream_200_events_bytes_to_bytes", |b| {
        b.iter(|| {
            let evs = dragoman_eventstream::decode_all(black_box(&bytes)).unwrap();
            dragoman_eventstream::encode_all(&translate(&evs)).len()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
