//! Criterion benchmark of event-stream framing: decode and encode of 1000 small Bedrock-like
//! events, the size of a ConverseStream text delta; the target is at least a million events a
//! second decoded.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dragoman_sse::Event;

const N: u64 = 1000;

fn events() -> Vec<Event> {
    (0..N)
        .map(|i| {
            Event::named(
                "contentBlockDelta",
                format!(
                    r#"{{"contentBlockIndex":0,"delta":{{"text":"token {i} "}},"p":"abcdefghijklmnopq"}}"#
                ),
            )
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let events = events();
    let bytes = dragoman_eventstream::encode_all(&events);
    let mut g = c.benchmark_group("eventstream");
    g.throughput(Throughput::Elements(N));
    g.bench_function("decode_1000_events", |b| {
        b.iter(|| dragoman_eventstream::decode_all(black_box(&bytes)).map(|v| v.len()))
    });
    g.bench_function("decode_1000_events_in_1k_reads", |b| {
        b.iter(|| {
            let mut d = dragoman_eventstream::Decoder::new();
            let mut out = Vec::with_capacity(N as usize);
            for piece in black_box(&bytes).chunks(1024) {
                d.push(piece, &mut out).unwrap();
            }
            out.len()
        })
    });
    g.bench_function("encode_1000_events", |b| {
        b.iter(|| dragoman_eventstream::encode_all(black_box(&events)).len())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
