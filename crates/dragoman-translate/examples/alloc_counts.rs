//! Allocation counts of the translation core, per request and per stream, for every dialect
//! pair: `cargo run --release -p dragoman-translate --example alloc_counts`. Allocation was
//! about a third of translation time in the profiles, so its count is worth watching.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dragoman_model::{Dialect, Losses, Message, Part, Request, Role, StreamOptions};
use dragoman_translate as hub;

#[path = "../benches/common/events.rs"]
mod events;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// The load benchmark's request: a ~1.5 KB cacheable system prompt and one user turn.
fn request() -> Request {
    let system = "You are a careful assistant for a benchmark. Answer briefly and precisely. \
                  Do not use tools. Keep answers under fifty words. "
        .repeat(12);
    Request {
        model: "bench-model".into(),
        system: vec![Part::text(system)],
        messages: vec![Message::text(
            Role::User,
            "Summarise the benefits of connection pooling in two sentences.",
        )],
        max_tokens: Some(64),
        ..Request::default()
    }
}

fn count(f: impl FnOnce()) -> u64 {
    let before = dhat::HeapStats::get().total_blocks;
    f();
    dhat::HeapStats::get().total_blocks - before
}

fn main() {
    let canonical = request();
    let events = events::stream_events(16);
    // `ALLOC_PROFILE=responses,anthropic`: profile that pair's stream into dhat-heap.json
    // (allocation sites with stacks, for dh_view or a script) instead of counting.
    if let Ok(pair) = std::env::var("ALLOC_PROFILE") {
        let parse = |s: &str| Dialect::ALL.into_iter().find(|d| d.as_str() == s).unwrap();
        let (from, to) = pair.split_once(',').unwrap();
        let (from, to) = (parse(from), parse(to));
        let stream = dragoman_sse::encode_all(&hub::encode_stream(
            from,
            &events,
            StreamOptions::default(),
            &mut Losses::new(),
        ));
        let _profiler = dhat::Profiler::new_heap();
        for _ in 0..100 {
            let mut losses = Losses::new();
            let out =
                hub::translate_stream(from, to, &stream, StreamOptions::default(), &mut losses)
                    .unwrap();
            std::hint::black_box(out);
        }
        return;
    }
    let _profiler = dhat::Profiler::builder().testing().build();
    println!("| from → to | request (~1.7 KB): allocations | 16-delta stream: allocations |");
    println!("|---|--:|--:|");
    for from in Dialect::ALL {
        let body =
            serde_json::to_vec(&hub::encode_request(from, &canonical, &mut Losses::new())).unwrap();
        let stream = dragoman_sse::encode_all(&hub::encode_stream(
            from,
            &events,
            StreamOptions::default(),
            &mut Losses::new(),
        ));
        for to in Dialect::ALL {
            let req = count(|| {
                let mut losses = Losses::new();
                let v = hub::translate_request(from, to, &body, &mut losses).unwrap();
                std::hint::black_box(serde_json::to_vec(&v).unwrap());
            });
            let st = count(|| {
                let mut losses = Losses::new();
                let out =
                    hub::translate_stream(from, to, &stream, StreamOptions::default(), &mut losses)
                        .unwrap();
                std::hint::black_box(out);
            });
            println!("| {from} → {to} | {req} | {st} |");
        }
    }
}
