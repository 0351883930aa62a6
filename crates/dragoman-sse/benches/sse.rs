//! Criterion benchmark of SSE framing throughput (decode and encode of a 200-event stream).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn stream() -> Vec<u8> {
    let mut s = Vec::new();
    for i in 0..200 {
        s.extend_from_slice(
            format!("event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"token {i} \"}}}}\n\n")
                .as_bytes(),
        );
    }
    s
}

fn bench(c: &mut Criterion) {
    let bytes = stream();
    let mut g = c.benchmark_group("sse");
    g.throughput(Throughput::Elements(200));
    g.bench_function("decode_200_events", |b| {
        b.iter(|| dragoman_sse::decode_all(black_box(&bytes)).map(|v| v.len()))
    });
    let events = dragoman_sse::decode_all(&bytes).unwrap_or_default();
    g.bench_function("encode_200_events", |b| {
        b.iter(|| dragoman_sse::encode_all(black_box(&events)).len())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
