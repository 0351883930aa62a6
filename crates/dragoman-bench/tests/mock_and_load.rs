//! The mock and the load generator together, in process: every route answers, every stream
//! carries the text deltas it should, errors are counted. Nothing here is timed: a slow machine
//! only makes fewer requests in the window.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use dragoman_bench::bench::{API_KEY, chat_body, messages_body, responses_body};
use dragoman_bench::load::{self, ANTHROPIC_DELTA, CHAT_DELTA, Plan, RESPONSES_DELTA, Target};
use dragoman_bench::mock;
use serde_json::json;
use tokio::net::TcpListener;

fn plan() -> Plan {
    Plan {
        concurrency: 2,
        warmup: Duration::ZERO,
        duration: Duration::from_millis(300),
        rate: None,
        stagger: Duration::ZERO,
    }
}

async fn start_mock() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(mock::serve(listener, mock::DEFAULT_CHUNKS));
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_and_streams_carry_every_delta() {
    let addr = start_mock().await;
    let mut chat_stream = chat_body("gpt-4o-mini");
    chat_stream["stream"] = json!(true);
    chat_stream["stream_options"] = json!({"include_usage": true});
    let no_headers: &[(&str, String)] = &[];
    let five = [("x-mock-chunks", "5".to_owned())];
    let cases = vec![
        (
            "chat",
            Target::post(
                addr,
                "/v1/chat/completions",
                &chat_body("m"),
                API_KEY,
                no_headers,
            )
            .unwrap(),
        ),
        (
            "chat stream",
            Target::post(
                addr,
                "/v1/chat/completions",
                &chat_stream,
                API_KEY,
                no_headers,
            )
            .unwrap()
            .stream(CHAT_DELTA, Some(16)),
        ),
        (
            "responses stream",
            Target::post(
                addr,
                "/v1/responses",
                &responses_body("m"),
                API_KEY,
                no_headers,
            )
            .unwrap()
            .stream(RESPONSES_DELTA, Some(16)),
        ),
        (
            "responses (no /v1)",
            Target::post(
                addr,
                "/responses",
                &json!({"model": "m", "input": "hi"}),
                API_KEY,
                no_headers,
            )
            .unwrap(),
        ),
        (
            "messages",
            Target::post(
                addr,
                "/v1/messages",
                &messages_body("m", false),
                API_KEY,
                no_headers,
            )
            .unwrap(),
        ),
        (
            "messages stream",
            Target::post(
                addr,
                "/v1/messages",
                &messages_body("m", true),
                API_KEY,
                no_headers,
            )
            .unwrap()
            .stream(ANTHROPIC_DELTA, Some(16)),
        ),
        (
            "messages stream, 5 chunks",
            Target::post(
                addr,
                "/v1/messages",
                &messages_body("m", true),
                API_KEY,
                &five,
            )
            .unwrap()
            .stream(ANTHROPIC_DELTA, Some(5)),
        ),
    ];
    for (name, t) in cases {
        let expected = t.expected_deltas;
        let out = load::run(vec![t], &plan(), || ()).await;
        let s = &out.samples;
        assert!(s.ok > 0, "{name}: no request completed");
        assert_eq!(s.errors, 0, "{name}: {:?}", s.first_error);
        assert_eq!(s.latency.len() as u64, s.ok, "{name}");
        assert_eq!(s.ttfb.len() as u64, s.ok, "{name}");
        if let Some(want) = expected {
            assert_eq!(s.streams, s.ok, "{name}");
            assert_eq!(s.deltas, want * s.streams, "{name}");
            assert_eq!(s.ttft.len() as u64, s.streams, "{name}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pacing_headers_delay_the_stream() {
    let addr = start_mock().await;
    let pacing = [
        ("x-mock-delay-ms", "20".to_owned()),
        ("x-mock-chunk-delay-ms", "2".to_owned()),
        ("x-mock-chunks", "4".to_owned()),
    ];
    let t = Target::post(
        addr,
        "/v1/responses",
        &responses_body("m"),
        API_KEY,
        &pacing,
    )
    .unwrap()
    .stream(RESPONSES_DELTA, Some(4));
    let out = load::run(vec![t], &plan(), || ()).await;
    let s = &out.samples;
    assert!(s.ok > 0);
    assert_eq!(s.errors, 0, "{:?}", s.first_error);
    // Sleeps never end early, so these lower bounds hold on any machine.
    assert!(s.ttft.iter().all(|&t| t >= 20_000_000), "{:?}", s.ttft);
    assert!(s.latency.iter().all(|&t| t >= 26_000_000));
    assert!(!s.gaps.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_counted_with_their_status() {
    let addr = start_mock().await;
    let no_headers: &[(&str, String)] = &[];
    let t = Target::post(addr, "/v1/nowhere", &json!({}), API_KEY, no_headers).unwrap();
    let out = load::run(vec![t], &plan(), || ()).await;
    let s = &out.samples;
    assert_eq!(s.ok, 0);
    assert!(s.errors > 0);
    assert_eq!(s.statuses.get(&404).copied(), Some(s.errors));
    assert!(s.first_error.as_deref().unwrap().contains("unknown route"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_releases_requests_at_the_rate() {
    let addr = start_mock().await;
    let no_headers: &[(&str, String)] = &[];
    let t = Target::post(
        addr,
        "/v1/chat/completions",
        &chat_body("m"),
        API_KEY,
        no_headers,
    )
    .unwrap();
    let plan = Plan {
        concurrency: 4,
        warmup: Duration::ZERO,
        duration: Duration::from_millis(500),
        rate: Some(100.0),
        stagger: Duration::ZERO,
    };
    let out = load::run(vec![t], &plan, || ()).await;
    let s = &out.samples;
    assert_eq!(s.errors, 0, "{:?}", s.first_error);
    // At most rate × (duration + one tick) can have been released, however fast the machine.
    assert!(s.ok > 0 && s.ok <= 52, "{} requests", s.ok);
}
