//! Criterion benchmarks of the translation core: requests of 200 B, 10 KB, 100 KB and 1 MB and
//! a 200-event stream for every dialect pair, beside a plain `serde_json` parse of the same
//! bytes as the floor.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dragoman_model::{Dialect, Losses, Message, Part, Request, Role, StreamOptions, Tool};
use dragoman_translate as hub;
use serde_json::json;

#[path = "common/events.rs"]
mod events;
use events::stream_events;

// The binary runs on jemalloc; measure what it runs.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// A canonical request of about `size` bytes: a system prompt, a tool and a conversation.
fn request(size: usize) -> Request {
    let mut messages = Vec::new();
    let mut total = 0;
    let mut i = 0;
    while total < size {
        let text =
            format!("Message {i}: the quick brown fox jumps over the lazy dog, again and again. ");
        total += text.len() + 40;
        let role = if i % 2 == 0 {
            Role::User
        } else {
            Role::Assistant
        };
        messages.push(Message::new(role, vec![Part::text(text)]));
        i += 1;
    }
    if messages.len() % 2 == 0 {
        messages.push(Message::text(Role::User, "Go on."));
    }
    Request {
        model: "bench-model".into(),
        system: vec![Part::text("You are a helpful assistant.")],
        messages,
        tools: vec![Tool::Function {
            name: "get_weather".into(),
            description: Some("Weather for a city".into()),
            parameters: json!({"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}),
            strict: None,
            cache_control: None,
        }],
        max_tokens: Some(1024),
        ..Request::default()
    }
}

fn bench_requests(c: &mut Criterion) {
    for (label, size) in [
        ("200b", 200),
        ("10kb", 10 * 1024),
        ("100kb", 100 * 1024),
        ("1mb", 1024 * 1024),
    ] {
        let canonical = request(size);
        let mut g = c.benchmark_group(format!("request_{label}"));
        if size >= 100 * 1024 {
            // Milliseconds per iteration: fewer samples keep the run to minutes.
            g.sample_size(10);
        }
        for from in Dialect::ALL {
            let body =
                serde_json::to_vec(&hub::encode_request(from, &canonical, &mut Losses::new()))
                    .unwrap_or_default();
            g.throughput(Throughput::Bytes(body.len() as u64));
            g.bench_with_input(BenchmarkId::new("parse_only", from), &body, |b, body| {
                b.iter(|| {
                    serde_json::from_slice::<serde_json::Value>(black_box(body))
                        .map(|v| v.is_object())
                })
            });
            for to in Dialect::ALL {
                g.bench_with_input(
                    BenchmarkId::new(format!("{from}_to_{to}"), body.len()),
                    &body,
                    |b, body| {
                        b.iter(|| {
                            let mut losses = Losses::new();
                            let v = hub::translate_request(from, to, black_box(body), &mut losses);
                            serde_json::to_vec(&v.unwrap_or_default()).map(|b| b.len())
                        })
                    },
                );
            }
        }
        g.finish();
    }
}

fn bench_streams(c: &mut Criterion) {
    let events = stream_events(200);
    let mut g = c.benchmark_group("stream_200_events");
    for from in Dialect::ALL {
        // Each dialect in its own framing (Bedrock's binary event stream, SSE for the rest).
        let bytes = hub::encode_events(
            from,
            &hub::encode_stream(from, &events, StreamOptions::default(), &mut Losses::new()),
        );
        let n = hub::decode_events(from, &bytes)
            .map(|e| e.len())
            .unwrap_or(0);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(
            BenchmarkId::new("frame_and_parse_only", from),
            &bytes,
            |b, bytes| {
                b.iter(|| {
                    let ev = hub::decode_events(from, black_box(bytes)).unwrap_or_default();
                    ev.iter()
                        .filter(|e| serde_json::from_str::<serde_json::Value>(&e.data).is_ok())
                        .count()
                })
            },
        );
        for to in Dialect::ALL {
            g.bench_with_input(
                BenchmarkId::new(format!("{from}_to_{to}"), n),
                &bytes,
                |b, bytes| {
                    b.iter(|| {
                        let mut losses = Losses::new();
                        hub::translate_stream(
                            from,
                            to,
                            black_box(bytes),
                            StreamOptions::default(),
                            &mut losses,
                        )
                        .map(|o| o.len())
                    })
                },
            );
        }
    }
    g.finish();
}

criterion_group!(benches, bench_requests, bench_streams);
criterion_main!(benches);
