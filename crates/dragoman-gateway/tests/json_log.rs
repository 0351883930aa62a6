//! The one JSON log line per request, as `DRAGOMAN_LOG_FORMAT=json` writes it: its own test
//! binary, because the subscriber it installs is the thread's, and tracing's per-callsite
//! cache is shared by every test of a binary.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use dragoman_testkit::MockUpstream;
use serde_json::{Value, json};

const KEY: &str = "sk-log-master";

struct Harness {
    url: String,
    http: reqwest::Client,
    _mock: MockUpstream,
}

async fn start() -> Harness {
    let mock = MockUpstream::start().await;
    let yaml = format!(
        r#"
model_list:
  - model_name: "a/*"
    litellm_params: {{model: "anthropic/*", api_base: "{base}", api_key: sk-up, input_cost_per_token: 0.000003, output_cost_per_token: 0.000015}}
general_settings:
  master_key: {KEY}
litellm_settings:
  success_callback: ["langfuse"]
"#,
        base = mock.base(),
    );
    let env = |k: &str| match k {
        "LANGFUSE_PUBLIC_KEY" => Some("pk-lf-test".to_owned()),
        "LANGFUSE_SECRET_KEY" => Some("sk-lf-test".to_owned()),
        "LANGFUSE_HOST" => Some("http://127.0.0.1:9".to_owned()),
        _ => None,
    };
    let config = dragoman_config::parse(&yaml, &env).unwrap();
    let gw = dragoman_gateway::Gateway::with_store(config, None, None).unwrap();
    gw.load_tenancy().await.unwrap();
    gw.start_background_tasks();
    let url = common::serve(gw).await;
    Harness {
        url,
        http: reqwest::Client::new(),
        _mock: mock,
    }
}

/// Where a test's log lines go.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Lines {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `DRAGOMAN_LOG_FORMAT=json` (the binary's subscriber, as `serve` sets it up): one JSON line
/// per request with its dialects, outcome, timings, tokens by bucket and cost; no secret in
/// any line.
#[tokio::test]
async fn each_request_is_one_json_log_line_without_secrets() {
    let lines = Lines::default();
    let w = lines.clone();
    let sub = tracing_subscriber::fmt()
        .event_format(dragoman_gateway::jsonlog::JsonLines)
        .with_writer(move || w.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(sub);
    let h = start().await;
    let r = h
        .http
        .post(format!("{}/v1/messages", h.url))
        .bearer_auth(KEY)
        .json(&json!({"model": "a/script/text", "max_tokens": 10, "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let _ = r.bytes().await.unwrap();
    // The line is written when the stream's end has been handled, just after its last byte.
    let mut text = String::new();
    for _ in 0..100 {
        text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        if text.contains(&id) && text.contains("request done") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let done: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .filter(|v| v["message"] == "request done" && v["request_id"] == id.as_str())
        .collect();
    assert_eq!(done.len(), 1, "{text}");
    let d = &done[0];
    assert_eq!(d["level"], "INFO");
    assert_eq!(d["model"], "a/script/text");
    assert_eq!(d["client"], "anthropic");
    assert_eq!(d["upstream"], "anthropic");
    assert_eq!(d["stream"], true);
    assert_eq!(d["status"], 200);
    assert_eq!(d["outcome"], "ok");
    assert_eq!(d["input_uncached"], 210);
    assert_eq!(d["cache_read"], 1024);
    assert_eq!(d["output"], 12);
    assert!(d["latency_ms"].is_u64() && d["ttft_ms"].is_u64(), "{d}");
    assert!(d["cost_usd"].as_str().unwrap().starts_with("0.0"), "{d}");
    for secret in [KEY, "sk-up", "pk-lf-test", "sk-lf-test"] {
        assert!(!text.contains(secret), "{secret} in the logs");
    }
}
