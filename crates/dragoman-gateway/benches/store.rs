//! What keeping a Responses answer costs the request path (the aim: at most 10 µs):
//! the capture that watches a streamed answer's writes for its `response.completed` event and
//! hands it to a task. The task's own work (parsing, the store's write) is off the path; the
//! end-to-end benchmark's `responses` against `responses_nostore` measures both together.

#![allow(clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;

/// A Codex-sized streamed answer, one write per event: 64 text deltas around the lifecycle
/// events, the completed event holding the whole response.
fn stream() -> Vec<Bytes> {
    let ev = |name: &str, data: serde_json::Value| {
        Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
    };
    let text: String = (0..64).map(|i| format!("word{i} ")).collect();
    let response = json!({"id": "resp_bench", "object": "response", "status": "completed",
        "model": "gpt-5-codex", "instructions": "x".repeat(4000),
        "output": [{"id": "msg_bench", "type": "message", "role": "assistant", "status": "completed",
            "content": [{"type": "output_text", "text": text, "annotations": []}]}],
        "usage": {"input_tokens": 1200, "input_tokens_details": {"cached_tokens": 1024},
            "output_tokens": 64, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 1264}});
    let mut out = vec![ev(
        "response.created",
        json!({"type": "response.created", "response": {"id": "resp_bench", "status": "in_progress"}}),
    )];
    for i in 0..64 {
        out.push(ev(
            "response.output_text.delta",
            json!({"type": "response.output_text.delta", "item_id": "msg_bench", "output_index": 0, "content_index": 0, "delta": format!("word{i} "), "sequence_number": i + 3}),
        ));
    }
    out.push(ev(
        "response.completed",
        json!({"type": "response.completed", "response": response}),
    ));
    out
}

fn capture(c: &mut Criterion) {
    // One thread: the tasks the captures spawn run after each timed batch, not during it.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => panic!("{e}"),
    };
    let _guard = rt.enter();
    let conv = Arc::new(dragoman_gateway::Conversations::new(
        None,
        Duration::from_secs(60),
    ));
    let request = Bytes::from(
        json!({"model": "bench-responses", "input": [{"role": "user", "content": "hi"}], "stream": true})
            .to_string(),
    );
    let chunks = stream();
    c.bench_function("capture a streamed answer for the store (66 writes)", |b| {
        b.iter_custom(|iters| {
            let t0 = std::time::Instant::now();
            for _ in 0..iters {
                dragoman_gateway::capture_stream(&conv, &request, &chunks);
            }
            let took = t0.elapsed();
            // Each yield lets the scheduler run a batch of the spawned tasks: all of them.
            rt.block_on(async {
                for _ in 0..iters {
                    tokio::task::yield_now().await;
                }
            });
            took
        })
    });
}

criterion_group!(benches, capture);
criterion_main!(benches);
