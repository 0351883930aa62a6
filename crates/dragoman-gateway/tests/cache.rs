//! The response cache: one prompt asked in two dialects hits one entry, whole and streamed
//! (a stream's answer fills it too), `no-cache` and `no-store` are honoured, a hit costs nothing
//! and records what it saved, and with `type: redis` two instances share their entries.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

#[path = "dialects/mod.rs"]
mod dialects;

use std::sync::Arc;
use std::time::Duration;

use dialects::{body, path_and_body, stream_usage, text_of, usage_of};
use dragoman_model::Dialect;
use dragoman_testkit::MockUpstream;
use serde_json::{Value, json};

const KEY: &str = "sk-cache-master";
const PRICES: &str = "input_cost_per_token: 0.000003, output_cost_per_token: 0.000015, cache_read_input_token_cost: 0.0000003";

struct Harness {
    url: String,
    http: reqwest::Client,
    store: dragoman_store::Store,
}

async fn start(mock: &MockUpstream, cache_params: &str) -> Harness {
    let yaml = format!(
        r#"
model_list:
  - model_name: "a/*"
    litellm_params: {{model: "anthropic/*", api_base: "{base}", api_key: sk-up, {PRICES}}}
  - model_name: "c/*"
    litellm_params: {{model: "openai/*", api_base: "{v1}", api_key: sk-up, {PRICES}}}
general_settings:
  master_key: {KEY}
litellm_settings:
  cache: true
  cache_params: {cache_params}
"#,
        base = mock.base(),
        v1 = mock.base_v1(),
    );
    let config = dragoman_config::parse(&yaml, &|_: &str| None).unwrap();
    let path = std::env::temp_dir().join(format!("dragoman-cache-{:016x}.db", fastrand::u64(..)));
    let store = dragoman_store::Store::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let opts = dragoman_store::WriterOptions {
        flush_interval: Duration::from_millis(20),
        ..Default::default()
    };
    let (writer, _task) = dragoman_store::spawn_writer(Arc::new(store.clone()), opts);
    let gw =
        dragoman_gateway::Gateway::with_store(config, Some(store.clone()), Some(writer)).unwrap();
    gw.start_background_tasks();
    let url = common::serve(gw).await;
    Harness {
        url,
        http: reqwest::Client::new(),
        store,
    }
}

impl Harness {
    async fn post(&self, client: Dialect, b: &Value) -> reqwest::Response {
        let (path, b) = path_and_body(client, b);
        self.http
            .post(format!("{}{path}", self.url))
            .header("authorization", format!("Bearer {KEY}"))
            .header("anthropic-version", "2023-06-01")
            .json(&b)
            .send()
            .await
            .unwrap()
    }

    async fn records(&self, n: usize) -> Vec<dragoman_accounting::UsageRecord> {
        let q = dragoman_store::LogQuery {
            limit: 1000,
            ..Default::default()
        };
        for _ in 0..200 {
            let rows = self.store.logs(&q).await.unwrap();
            if rows.len() >= n {
                return rows;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("fewer than {n} records");
    }
}

/// The same prompt in every dialect (same `max_tokens`, so the same canonical request).
fn ask(client: Dialect, model: &str, stream: bool) -> Value {
    let mut b = body(client, model, stream);
    match client {
        Dialect::Chat => b["max_tokens"] = json!(256),
        Dialect::Responses => b["max_output_tokens"] = json!(256),
        Dialect::Gemini => b["generationConfig"] = json!({"maxOutputTokens": 256}),
        _ => {}
    }
    b
}

async fn wait_filled() {
    // Fills are written off the request path.
    tokio::time::sleep(Duration::from_millis(150)).await;
}

#[tokio::test]
async fn one_prompt_in_any_dialect_hits_one_entry_whole_and_streamed() {
    let mock = MockUpstream::start().await;
    let h = start(&mock, "{type: local, ttl: 60}").await;
    let r = h
        .post(
            Dialect::Anthropic,
            &ask(Dialect::Anthropic, "a/script/cached", false),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-dragoman-cache"], "miss");
    let key = r.headers()["x-litellm-cache-key"]
        .to_str()
        .unwrap()
        .to_owned();
    let first: Value = r.json().await.unwrap();
    wait_filled().await;
    let calls = mock.requests().len();
    for client in Dialect::CLIENTS {
        for stream in [false, true] {
            let tag = format!("{client} stream={stream}");
            let mut b = ask(client, "a/script/cached", stream);
            if client == Dialect::Chat && stream {
                b["stream_options"] = json!({"include_usage": true});
            }
            let r = h.post(client, &b).await;
            assert_eq!(r.status(), 200, "{tag}");
            assert_eq!(r.headers()["x-dragoman-cache"], "hit", "{tag}");
            assert_eq!(r.headers()["x-litellm-cache-key"], key.as_str(), "{tag}");
            if stream {
                let bytes = r.bytes().await.unwrap();
                let events = dragoman_sse::decode_all(&bytes).unwrap();
                dragoman_translate::validate(client, &events)
                    .unwrap_or_else(|e| panic!("{tag}: {e}"));
                assert_eq!(stream_usage(client, &events).0, (210, 1024, 12), "{tag}");
            } else {
                let v: Value = r.json().await.unwrap();
                assert_eq!(
                    text_of(client, &v),
                    text_of(Dialect::Anthropic, &first),
                    "{tag}"
                );
                assert_eq!(usage_of(client, &v), (210, 1024, 12), "{tag}");
            }
        }
    }
    assert_eq!(mock.requests().len(), calls, "no provider call on a hit");

    // `no-cache` asks the provider; `no-store` keeps nothing; another prompt misses.
    let mut b = ask(Dialect::Chat, "a/script/cached", false);
    b["cache"] = json!({"no-cache": true});
    let r = h.post(Dialect::Chat, &b).await;
    assert_eq!(r.headers()["x-dragoman-cache"], "miss");
    assert_eq!(mock.requests().len(), calls + 1);
    assert!(
        mock.last_request().unwrap().body.get("cache").is_none(),
        "the cache object is not sent upstream"
    );
    let mut other = ask(Dialect::Chat, "a/script/cached", false);
    other["messages"][0]["content"] = json!("Something else");
    let r = h
        .http
        .post(format!("{}/v1/chat/completions", h.url))
        .bearer_auth(KEY)
        .header("cache-control", "no-store")
        .json(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-dragoman-cache"], "miss");
    wait_filled().await;
    let r = h.post(Dialect::Chat, &other).await;
    assert_eq!(
        r.headers()["x-dragoman-cache"],
        "miss",
        "no-store kept nothing"
    );
}

#[tokio::test]
async fn a_streamed_answer_fills_the_cache_and_hits_record_what_they_saved() {
    let mock = MockUpstream::start().await;
    let h = start(&mock, "{type: local}").await;
    let r = h
        .post(Dialect::Chat, &ask(Dialect::Chat, "c/script/cached", true))
        .await;
    assert_eq!(r.headers()["x-dragoman-cache"], "miss");
    let miss_id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let _ = r.bytes().await.unwrap();
    wait_filled().await;
    let r = h
        .post(
            Dialect::Anthropic,
            &ask(Dialect::Anthropic, "c/script/cached", false),
        )
        .await;
    assert_eq!(r.headers()["x-dragoman-cache"], "hit");
    assert_eq!(r.headers()["x-litellm-response-cost"], "0");
    let hit_id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let v: Value = r.json().await.unwrap();
    assert_eq!(usage_of(Dialect::Anthropic, &v), (210, 1024, 12));
    let rows = h.records(2).await;
    let miss = rows.iter().find(|r| r.request_id == miss_id).unwrap();
    let hit = rows.iter().find(|r| r.request_id == hit_id).unwrap();
    assert!(!miss.cache_hit && hit.cache_hit);
    assert_eq!(hit.cost_nanos, Some(0));
    assert_eq!(hit.saved_cost_nanos, miss.cost_nanos);
    assert!(miss.cost_nanos.unwrap() > 0);
    assert_eq!(hit.attempts, 0);
}

/// `type: redis`: what one instance answered, another answers from the cache.
#[tokio::test]
async fn two_instances_share_entries_through_redis() {
    let mock = MockUpstream::start().await;
    let ns = format!("t{:016x}", fastrand::u64(..));
    let params = format!("{{type: redis, host: 127.0.0.1, port: 6379, namespace: {ns}, ttl: 30}}");
    let a = start(&mock, &params).await;
    let b = start(&mock, &params).await;
    let q = ask(Dialect::Responses, "c/script/cached", false);
    let r = a.post(Dialect::Responses, &q).await;
    assert_eq!(r.headers()["x-dragoman-cache"], "miss");
    let _ = r.bytes().await.unwrap();
    let calls = mock.requests().len();
    let mut hit = false;
    for _ in 0..40 {
        let r = b.post(Dialect::Responses, &q).await;
        if r.headers()["x-dragoman-cache"] == "hit" {
            let v: Value = r.json().await.unwrap();
            assert_eq!(usage_of(Dialect::Responses, &v), (210, 1024, 12));
            hit = true;
            break;
        }
        let _ = r.bytes().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(hit, "instance b never saw instance a's entry");
    assert!(mock.requests().len() <= calls + 40);
}
