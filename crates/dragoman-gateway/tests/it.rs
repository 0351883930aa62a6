//! Integration tests through the gateway's front door: a real listener, the scripted mock
//! upstream of `dragoman-testkit`, and every client dialect against every upstream dialect.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::Ordering;
use std::time::Duration;

use dragoman_model::Dialect;
use dragoman_testkit::MockUpstream;
use futures_util::StreamExt;
use serde_json::{Value, json};

#[path = "dialects/mod.rs"]
mod dialects;
#[path = "it/faults.rs"]
mod faults;

use dialects::{body, data, path_and_body, stream_usage, text_of, usage_of};

struct Harness {
    mock: MockUpstream,
    url: String,
    http: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    store: Option<dragoman_store::Store>,
}

const PRICES: &str = "input_cost_per_token: 0.000003, output_cost_per_token: 0.000015, cache_read_input_token_cost: 0.0000003, cache_creation_input_token_cost: 0.00000375";

const KEY: &str = "sk-test-master";

async fn start(settings: &str, master_key: bool) -> Harness {
    start_with(settings, master_key, false).await
}

async fn start_with(settings: &str, master_key: bool, with_store: bool) -> Harness {
    let mock = MockUpstream::start().await;
    let yaml = format!(
        r#"
model_list:
  - model_name: "a/*"
    litellm_params: {{model: "anthropic/*", api_base: "{base}", api_key: sk-upstream-anthropic, {prices}}}
  - model_name: "c/*"
    litellm_params: {{model: "openai/*", api_base: "{v1}", api_key: sk-upstream-openai, {prices}}}
  - model_name: "r/*"
    litellm_params: {{model: "openai/*", api_base: "{v1}", api_key: sk-upstream-openai, {prices}}}
    model_info: {{mode: responses}}
  - model_name: "g/*"
    litellm_params: {{model: "gemini/*", api_base: "{base}", api_key: sk-upstream-gemini, {prices}}}
  - model_name: "b/*"
    litellm_params: {{model: "bedrock/converse/*", api_base: "{base}", aws_access_key_id: AKIDTESTEXAMPLE, aws_secret_access_key: test-secret, aws_region_name: us-east-1, {prices}}}
  - model_name: "fg/*"
    litellm_params: {{model: "gemini/*", api_base: "{base}", stream_timeout: 1, timeout: 3}}
  - model_name: "ds/*"
    litellm_params: {{model: "deepseek/*", api_base: "{v1}", api_key: sk-upstream-deepseek}}
  - model_name: "fa/*"
    litellm_params: {{model: "anthropic/*", api_base: "{base}", stream_timeout: 1, timeout: 3}}
  - model_name: "fc/*"
    litellm_params: {{model: "openai/*", api_base: "{v1}", stream_timeout: 1, timeout: 3}}
  - model_name: "fr/*"
    litellm_params: {{model: "openai/*", api_base: "{v1}", stream_timeout: 1, timeout: 3}}
    model_info: {{mode: responses}}
  - model_name: gpt-4o
    litellm_params: {{model: "openai/script/text", api_base: "{v1}"}}
  - model_name: claude-sonnet
    litellm_params: {{model: "anthropic/script/text", api_base: "{base}"}}
general_settings:
  {mk}
dragoman_settings:
  keepalive_seconds: 0.1
  shutdown_grace_seconds: 5
{settings}
"#,
        base = mock.base(),
        v1 = mock.base_v1(),
        prices = PRICES,
        mk = if master_key {
            format!("master_key: {KEY}")
        } else {
            "{}".into()
        },
    );
    let yaml = yaml.replace("general_settings:\n  {}\n", "");
    let config = dragoman_config::parse(&yaml, &|_: &str| None).unwrap();
    let (store, writer) = if with_store {
        let path = std::env::temp_dir().join(format!("dragoman-it-{:016x}.db", fastrand::u64(..)));
        let store = dragoman_store::Store::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        let opts = dragoman_store::WriterOptions {
            flush_interval: Duration::from_millis(20),
            ..Default::default()
        };
        let (writer, _task) =
            dragoman_store::spawn_writer(std::sync::Arc::new(store.clone()), opts);
        (Some(store), Some(writer))
    } else {
        (None, None)
    };
    let gw = dragoman_gateway::Gateway::with_store(config, store.clone(), writer).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(dragoman_gateway::serve(gw, listener, async {
        let _ = rx.await;
    }));
    Harness {
        mock,
        url,
        http: reqwest::Client::new(),
        stop: Some(tx),
        server,
        store,
    }
}

/// Serves `gw` on a free port until the test ends: its URL and its task.
async fn serve_forever(
    gw: std::sync::Arc<dragoman_gateway::Gateway>,
) -> (String, tokio::task::JoinHandle<std::io::Result<()>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(dragoman_gateway::serve(
        gw,
        listener,
        std::future::pending(),
    ));
    (url, server)
}

async fn get_text(http: &reqwest::Client, url: &str) -> String {
    http.get(url).send().await.unwrap().text().await.unwrap()
}

fn prefix(d: Dialect) -> &'static str {
    match d {
        Dialect::Anthropic => "a",
        Dialect::Chat => "c",
        Dialect::Responses => "r",
        Dialect::Gemini => "g",
        Dialect::Bedrock => "b",
    }
}

impl Harness {
    async fn post(&self, client: Dialect, body: &Value) -> reqwest::Response {
        let (path, body) = path_and_body(client, body);
        self.http
            .post(format!("{}{path}", self.url))
            .header("authorization", format!("Bearer {KEY}"))
            .header("anthropic-version", "2023-06-01")
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn stream(
        &self,
        client: Dialect,
        body: &Value,
    ) -> (
        reqwest::header::HeaderMap,
        Vec<u8>,
        Vec<dragoman_sse::Event>,
    ) {
        let r = self.post(client, body).await;
        assert_eq!(r.status(), 200, "{:?}", r.headers());
        let headers = r.headers().clone();
        let bytes = r.bytes().await.unwrap().to_vec();
        let events = dragoman_sse::decode_all(&bytes).unwrap();
        (headers, bytes, events)
    }

    async fn shutdown(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), &mut self.server).await;
    }
}

#[tokio::test]
async fn every_pair_answers_whole_responses_with_exact_usage() {
    let h = start("", true).await;
    for client in Dialect::CLIENTS {
        for up in Dialect::ALL {
            let model = format!("{}/script/cached", prefix(up));
            let r = h.post(client, &body(client, &model, false)).await;
            assert_eq!(r.status(), 200, "{client}←{up}");
            assert!(r.headers().contains_key("x-request-id"));
            let v: Value = r.json().await.unwrap();
            assert_eq!(
                text_of(client, &v),
                "Hello from the mock.",
                "{client}←{up}: {v}"
            );
            assert_eq!(usage_of(client, &v), (210, 1024, 12), "{client}←{up}: {v}");
        }
    }
    h.shutdown().await;
}

#[tokio::test]
async fn every_pair_streams_valid_grammar_with_exact_usage() {
    let h = start("", true).await;
    for client in Dialect::CLIENTS {
        for up in Dialect::ALL {
            let model = format!("{}/script/cached", prefix(up));
            let mut b = body(client, &model, true);
            if client == Dialect::Chat {
                b["stream_options"] = json!({"include_usage": true});
            }
            let (headers, _, events) = h.stream(client, &b).await;
            assert_eq!(headers["content-type"], "text/event-stream");
            dragoman_translate::validate(client, &events)
                .unwrap_or_else(|e| panic!("{client}←{up}: {e}"));
            let (usage, start_input) = stream_usage(client, &events);
            assert_eq!(usage, (210, 1024, 12), "{client}←{up}");
            if client == Dialect::Anthropic {
                let start = start_input.unwrap();
                assert!(
                    start > 0,
                    "message_start input is never zero ({client}←{up})"
                );
                if up == Dialect::Anthropic {
                    assert_eq!(
                        start, 210,
                        "an Anthropic upstream's own figure passes through"
                    );
                }
            }
        }
    }
    h.shutdown().await;
}

#[tokio::test]
async fn same_dialect_streams_pass_through_byte_for_byte() {
    let h = start("", true).await;
    let cases = [
        (
            Dialect::Anthropic,
            "a/fixture/anthropic-sdk-python__tool_use_response",
        ),
        (
            Dialect::Chat,
            "c/fixture/openai-python__f82268f2fefd5cfbc7eeb59c297688be2f6ca0849a6e4f17851b517310841d9b",
        ),
        (
            Dialect::Responses,
            "r/fixture/vercel-ai__openai-reasoning-encrypted-content.1.s1",
        ),
    ];
    for (d, model) in cases {
        let name = model.split_once("fixture/").unwrap().1;
        let want = std::fs::read(
            dragoman_testkit::test_data()
                .join(d.as_str())
                .join("streams")
                .join(format!("{name}.sse")),
        )
        .unwrap();
        // A recording that ends without its last blank line reaches the client completed, so
        // that every SSE parser dispatches the last event: that blank line is all that changes.
        let mut want = want;
        dragoman_sse::terminate(&mut want);
        let (_, got, _) = h.stream(d, &body(d, model, true)).await;
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&want),
            "{d}"
        );
    }
    // Chat upstreams are always asked for usage.
    let sent = h.mock.last_request().unwrap();
    assert!(sent.path.ends_with("/responses"));
    h.stream(Dialect::Chat, &body(Dialect::Chat, "c/script/text", true))
        .await;
    assert_eq!(
        h.mock.last_request().unwrap().body["stream_options"]["include_usage"],
        true
    );
    h.shutdown().await;
}

#[tokio::test]
async fn tool_calls_round_trip_in_both_directions() {
    let h = start("", true).await;
    // Anthropic client, Chat upstream.
    let mut b = body(Dialect::Anthropic, "c/script/tools", false);
    b["tools"] = json!([{"name": "get_weather", "description": "w", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]);
    let v: Value = h.post(Dialect::Anthropic, &b).await.json().await.unwrap();
    assert_eq!(v["stop_reason"], "tool_use");
    let call = v["content"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "tool_use")
        .unwrap()
        .clone();
    assert_eq!(
        (call["id"].clone(), call["input"].clone()),
        (json!("call_mock_1"), json!({"city": "Paris"}))
    );
    let mut follow = b.clone();
    follow["messages"] = json!([
        {"role": "user", "content": "Say hello"},
        {"role": "assistant", "content": v["content"]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_mock_1", "content": "sunny"}]}
    ]);
    assert_eq!(h.post(Dialect::Anthropic, &follow).await.status(), 200);
    let sent = h.mock.last_request().unwrap().body;
    let tool_msg = sent["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "tool")
        .unwrap()
        .clone();
    assert_eq!(tool_msg["tool_call_id"], "call_mock_1");
    assert!(tool_msg["content"].to_string().contains("sunny"));

    // Chat client, Anthropic upstream.
    let mut b = body(Dialect::Chat, "a/script/tools", false);
    b["tools"] = json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}}}]);
    let v: Value = h.post(Dialect::Chat, &b).await.json().await.unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    let call = v["choices"][0]["message"]["tool_calls"][0].clone();
    assert_eq!(call["id"], "call_mock_1");
    let mut follow = b.clone();
    follow["messages"] = json!([
        {"role": "user", "content": "Say hello"},
        v["choices"][0]["message"],
        {"role": "tool", "tool_call_id": "call_mock_1", "content": "sunny"}
    ]);
    assert_eq!(h.post(Dialect::Chat, &follow).await.status(), 200);
    let sent = h.mock.last_request().unwrap().body;
    let last = sent["messages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["content"][0]["type"], "tool_result");
    assert_eq!(last["content"][0]["tool_use_id"], "call_mock_1");
    h.shutdown().await;
}

/// A DeepSeek-style thinking model refuses a tool loop's next turn when the history lost its
/// reasoning; dragoman writes it back as `reasoning_content` for such providers, whatever the
/// client speaks. The same scenario behind a plain OpenAI deployment shows the refusal.
#[tokio::test]
async fn reasoning_is_replayed_to_upstreams_that_need_it() {
    let h = start("", true).await;
    for client in [Dialect::Anthropic, Dialect::Responses, Dialect::Gemini] {
        for (prefix, want) in [("ds", 200), ("c", 400)] {
            let tag = format!("{client} → {prefix}");
            let model = format!("{prefix}/script/think-tools");
            let mut b = body(client, &model, false);
            let weather = json!({"type": "object", "properties": {"city": {"type": "string"}}});
            match client {
                Dialect::Anthropic => {
                    b["tools"] = json!([{"name": "get_weather", "input_schema": weather}])
                }
                Dialect::Responses => {
                    b["tools"] =
                        json!([{"type": "function", "name": "get_weather", "parameters": weather}])
                }
                _ => {
                    b["tools"] = json!([{"functionDeclarations": [{"name": "get_weather", "parametersJsonSchema": weather}]}])
                }
            }
            let r = h.post(client, &b).await;
            assert_eq!(r.status(), 200, "{tag}");
            let v: Value = r.json().await.unwrap();
            // The client replays the turn as its SDK would, with the tool's result.
            let mut follow = b.clone();
            match client {
                Dialect::Anthropic => {
                    let id = v["content"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .find(|c| c["type"] == "tool_use")
                        .unwrap()["id"]
                        .clone();
                    follow["messages"] = json!([
                        {"role": "user", "content": "Say hello"},
                        {"role": "assistant", "content": v["content"]},
                        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": id, "content": "sunny"}]}
                    ]);
                }
                Dialect::Responses => {
                    let mut input = vec![json!({"role": "user", "content": "Say hello"})];
                    input.extend(v["output"].as_array().unwrap().iter().cloned());
                    let call = input.iter().find(|i| i["type"] == "function_call").unwrap();
                    let id = call["call_id"].clone();
                    input.push(
                        json!({"type": "function_call_output", "call_id": id, "output": "sunny"}),
                    );
                    follow["input"] = json!(input);
                }
                _ => {
                    let parts = v["candidates"][0]["content"]["parts"].clone();
                    let call = parts
                        .as_array()
                        .unwrap()
                        .iter()
                        .find(|p| p.get("functionCall").is_some())
                        .unwrap()["functionCall"]
                        .clone();
                    follow["contents"] = json!([
                        {"role": "user", "parts": [{"text": "Say hello"}]},
                        {"role": "model", "parts": parts},
                        {"role": "user", "parts": [{"functionResponse": {"id": call["id"], "name": "get_weather", "response": {"output": "sunny"}}}]}
                    ]);
                }
            }
            let r = h.post(client, &follow).await;
            assert_eq!(r.status(), want, "{tag}");
            if want == 200 {
                let sent = h.mock.last_request().unwrap().body;
                let assistant = sent["messages"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|m| m["role"] == "assistant")
                    .unwrap()
                    .clone();
                assert_eq!(
                    assistant["reasoning_content"], "I should use the tool.",
                    "{tag}: {assistant}"
                );
            }
        }
    }
    h.shutdown().await;
}

/// `x-dragoman-strict: true` turns a translation loss into a 400 naming the field; without it
/// the request goes with the loss reported.
#[tokio::test]
async fn strict_translation_refuses_what_it_would_lose() {
    let h = start("", true).await;
    let mut b = body(Dialect::Anthropic, "c/script/text", false);
    b["messages"] = json!([{"role": "user", "content": [
        {"type": "text", "text": "Say hello", "cache_control": {"type": "ephemeral"}}]}]);
    let lenient = h.post(Dialect::Anthropic, &b).await;
    assert_eq!(lenient.status(), 200);
    assert!(
        lenient.headers()["x-dragoman-dropped"]
            .to_str()
            .unwrap()
            .contains("cache_control")
    );
    let strict = h
        .http
        .post(format!("{}/v1/messages", h.url))
        .header("x-api-key", KEY)
        .header("x-dragoman-strict", "true")
        .json(&b)
        .send()
        .await
        .unwrap();
    assert_eq!(strict.status(), 400);
    let v: Value = strict.json().await.unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("strict") && msg.contains("cache_control"),
        "{msg}"
    );
    // Same dialect in and out loses nothing, so strict changes nothing there.
    let mut same = b.clone();
    same["model"] = json!("a/script/text");
    let r = h
        .http
        .post(format!("{}/v1/messages", h.url))
        .header("x-api-key", KEY)
        .header("x-dragoman-strict", "true")
        .json(&same)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    h.shutdown().await;

    // The setting makes it the default; the header can still turn it off.
    let h = start("  strict_translation: true\n", true).await;
    assert_eq!(h.post(Dialect::Anthropic, &b).await.status(), 400);
    let r = h
        .http
        .post(format!("{}/v1/messages", h.url))
        .header("x-api-key", KEY)
        .header("x-dragoman-strict", "false")
        .json(&b)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    h.shutdown().await;
}

#[tokio::test]
async fn auth_is_required_and_rendered_in_each_dialect() {
    let h = start("", true).await;
    for client in Dialect::CLIENTS {
        let (p, b) = path_and_body(client, &body(client, "a/script/text", false));
        let url = format!("{}{p}", h.url);
        let none = h.http.post(&url).json(&b).send().await.unwrap();
        assert_eq!(none.status(), 401);
        let v: Value = none.json().await.unwrap();
        match client {
            Dialect::Anthropic => assert_eq!(v["error"]["type"], "authentication_error"),
            _ => assert!(v["error"]["message"].is_string(), "{v}"),
        }
        let wrong = h
            .http
            .post(&url)
            .header("x-api-key", "sk-wrong")
            .json(&b)
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), 401);
        let right = h
            .http
            .post(&url)
            .header("x-api-key", KEY)
            .json(&b)
            .send()
            .await
            .unwrap();
        assert_eq!(right.status(), 200);
    }
    // The client's key never reaches the provider; the provider's key is sent instead.
    for r in h.mock.requests() {
        let all = format!("{:?}", r.headers);
        assert!(!all.contains(KEY), "master key leaked upstream");
    }
    let last = h.mock.last_request().unwrap();
    assert_eq!(last.headers["x-api-key"], "sk-upstream-anthropic");
    h.shutdown().await;
}

#[tokio::test]
async fn upstream_errors_keep_status_and_retry_headers() {
    let h = start("", true).await;
    for client in Dialect::CLIENTS {
        for up in Dialect::ALL {
            let r = h
                .post(
                    client,
                    &body(client, &format!("{}/script/http429", prefix(up)), false),
                )
                .await;
            assert_eq!(r.status(), 429, "{client}←{up}");
            assert_eq!(r.headers()["retry-after"], "7");
            assert!(r.headers().contains_key("x-ratelimit-remaining-requests"));
            let r = h
                .post(
                    client,
                    &body(client, &format!("{}/script/http529", prefix(up)), false),
                )
                .await;
            if client == Dialect::Anthropic {
                assert_eq!(
                    r.status(),
                    529,
                    "overloaded stays 529 for Anthropic clients ({up})"
                );
                let v: Value = r.json().await.unwrap();
                assert_eq!(v["error"]["type"], "overloaded_error");
            } else {
                assert!(r.status().is_server_error());
            }
        }
    }
    let r = h
        .post(Dialect::Chat, &body(Dialect::Chat, "nope", false))
        .await;
    assert_eq!(r.status(), 404);
    h.shutdown().await;
}

#[tokio::test]
async fn failures_after_the_first_byte_become_the_clients_error_event() {
    let h = start("", true).await;
    for scenario in ["midstream", "abrupt"] {
        for client in Dialect::CLIENTS {
            for up in Dialect::ALL {
                let (_, raw, events) = h
                    .stream(
                        client,
                        &body(client, &format!("{}/script/{scenario}", prefix(up)), true),
                    )
                    .await;
                let tag = format!("{scenario} {client}←{up}");
                dragoman_translate::validate(client, &events)
                    .unwrap_or_else(|e| panic!("{tag}: {e}\n{}", String::from_utf8_lossy(&raw)));
                let last = events.last().unwrap();
                match client {
                    Dialect::Anthropic => {
                        assert_eq!(last.event.as_deref(), Some("error"), "{tag}");
                        assert!(
                            !events
                                .iter()
                                .any(|e| e.event.as_deref() == Some("message_stop")),
                            "{tag}"
                        );
                    }
                    Dialect::Chat => {
                        assert!(data(last)["error"].is_object(), "{tag}");
                        assert!(!events.iter().any(|e| e.data == "[DONE]"), "{tag}");
                    }
                    Dialect::Responses => {
                        assert_eq!(data(last)["type"], "response.failed", "{tag}");
                        assert!(
                            !events
                                .iter()
                                .any(|e| data(e)["type"] == "response.completed"),
                            "{tag}"
                        );
                    }
                    Dialect::Gemini => {
                        assert!(data(last)["error"].is_object(), "{tag}");
                        assert!(
                            !events.iter().any(|e| e.data.contains("\"finishReason\"")),
                            "{tag}"
                        );
                    }
                    Dialect::Bedrock => panic!("no client speaks Bedrock"),
                }
            }
        }
    }
    h.shutdown().await;
}

#[tokio::test]
async fn silence_is_filled_with_keepalives_and_streams_are_not_buffered() {
    let h = start("", true).await;
    let (_, raw, events) = h
        .stream(
            Dialect::Anthropic,
            &body(Dialect::Anthropic, "r/script/slow", true),
        )
        .await;
    assert!(
        events.iter().any(|e| e.event.as_deref() == Some("ping")),
        "{}",
        String::from_utf8_lossy(&raw)
    );
    dragoman_translate::validate(Dialect::Anthropic, &events).unwrap();
    let (_, raw, _) = h
        .stream(Dialect::Chat, &body(Dialect::Chat, "a/script/slow", true))
        .await;
    assert!(String::from_utf8_lossy(&raw).contains(": keep-alive"));

    // The first event reaches the client long before the upstream finishes.
    let started = std::time::Instant::now();
    let mut r = h
        .post(
            Dialect::Anthropic,
            &body(Dialect::Anthropic, "c/script/slow", true),
        )
        .await;
    let first = r.chunk().await.unwrap().unwrap();
    assert!(!first.is_empty());
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "first bytes took {:?}",
        started.elapsed()
    );
    drop(r);
    h.shutdown().await;
}

#[tokio::test]
async fn a_client_that_leaves_cancels_the_upstream_call() {
    let h = start("", true).await;
    let mut r = h
        .post(Dialect::Chat, &body(Dialect::Chat, "r/script/slow", true))
        .await;
    let _ = r.chunk().await.unwrap();
    drop(r);
    for _ in 0..50 {
        if h.mock.state.cancelled.load(Ordering::SeqCst) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        h.mock.state.cancelled.load(Ordering::SeqCst),
        1,
        "upstream stream was not abandoned"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn oversized_bodies_get_a_413_in_the_clients_dialect() {
    let h = start("  max_body_bytes: 2000", true).await;
    let mut b = body(Dialect::Anthropic, "a/script/text", false);
    b["messages"][0]["content"] = json!("x".repeat(5000));
    let r = h.post(Dialect::Anthropic, &b).await;
    assert_eq!(r.status(), 413);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "request_too_large");
    h.shutdown().await;
}

/// A body sent in pieces (chunked, no length) is read whole; over the limit it is still a 413.
#[tokio::test]
async fn bodies_arriving_in_pieces_are_read_whole_and_within_the_limit() {
    let h = start("  max_body_bytes: 4000", true).await;
    let send = |text: Vec<u8>| {
        let pieces: Vec<Result<bytes::Bytes, std::io::Error>> = text
            .chunks(text.len() / 3 + 1)
            .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
            .collect();
        let stream = futures_util::stream::iter(pieces).then(|p| async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            p
        });
        h.http
            .post(format!("{}/v1/messages", h.url))
            .header("x-api-key", KEY)
            .header("anthropic-version", "2023-06-01")
            .header("content-type", "application/json")
            .body(reqwest::Body::wrap_stream(stream))
            .send()
    };
    let b = body(Dialect::Anthropic, "a/script/text", false);
    let r = send(serde_json::to_vec(&b).unwrap()).await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert!(!text_of(Dialect::Anthropic, &v).is_empty(), "{v}");
    let mut big = b.clone();
    big["messages"][0]["content"] = json!("x".repeat(5000));
    let r = send(serde_json::to_vec(&big).unwrap()).await.unwrap();
    assert_eq!(r.status(), 413);
    h.shutdown().await;
}

#[tokio::test]
async fn count_tokens_uses_the_provider_or_the_right_tokenizer() {
    let h = start("", true).await;
    let b = json!({"model": "a/claude-x", "messages": [{"role": "user", "content": "Hello there, how are you?"}]});
    let r = h
        .http
        .post(format!("{}/v1/messages/count_tokens?beta=true", h.url))
        .header("x-api-key", KEY)
        .json(&b)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-dragoman-token-count"], "provider");
    assert_eq!(r.json::<Value>().await.unwrap()["input_tokens"], 4242);
    let b = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "Hello there, how are you?"}],
                   "tools": [{"name": "t", "input_schema": {"type": "object", "properties": {}}}]});
    let r = h
        .http
        .post(format!("{}/v1/messages/count_tokens", h.url))
        .header("x-api-key", KEY)
        .json(&b)
        .send()
        .await
        .unwrap();
    assert!(
        r.headers()["x-dragoman-token-count"]
            .to_str()
            .unwrap()
            .contains("o200k_base")
    );
    let n = r.json::<Value>().await.unwrap()["input_tokens"]
        .as_u64()
        .unwrap();
    assert!((8..60).contains(&n), "{n}");

    // Gemini's :countTokens: Gemini's own endpoint for a Gemini deployment (the body as the
    // client sent it), a local count in Gemini's shape for the others.
    let contents =
        json!({"contents": [{"role": "user", "parts": [{"text": "Hello there, how are you?"}]}]});
    let count = |model: &str, body: Value| {
        h.http
            .post(format!("{}/v1beta/models/{model}:countTokens", h.url))
            .header("x-goog-api-key", KEY)
            .json(&body)
            .send()
    };
    let r = count("g/gemini-x", contents.clone()).await.unwrap();
    assert_eq!(r.headers()["x-dragoman-token-count"], "provider");
    assert_eq!(r.json::<Value>().await.unwrap()["totalTokens"], 4242);
    let sent = h.mock.last_request().unwrap();
    assert_eq!(sent.path, "/v1beta/models/gemini-x:countTokens");
    assert_eq!(sent.body, contents);
    assert_eq!(sent.headers["x-goog-api-key"], "sk-upstream-gemini");
    let wrapped = json!({"generateContentRequest": contents});
    let r = count("gpt-4o", wrapped).await.unwrap();
    assert!(
        r.headers()["x-dragoman-token-count"]
            .to_str()
            .unwrap()
            .starts_with("local")
    );
    let n = r.json::<Value>().await.unwrap()["totalTokens"]
        .as_u64()
        .unwrap();
    assert!((4..60).contains(&n), "{n}");
    h.shutdown().await;
}

#[tokio::test]
async fn models_lists_in_openai_and_anthropic_shapes() {
    let h = start("", true).await;
    let v: Value = h
        .http
        .get(format!("{}/v1/models", h.url))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["object"], "list");
    assert!(
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == "gpt-4o")
    );
    let v: Value = h
        .http
        .get(format!("{}/models", h.url))
        .bearer_auth(KEY)
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["data"][0]["type"], "model");
    assert_eq!(v["has_more"], false);
    h.shutdown().await;
}

#[tokio::test]
async fn translation_losses_are_reported_not_rejected() {
    let h = start_with("", true, true).await;
    let mut b = body(Dialect::Anthropic, "r/script/text", false);
    b["stop_sequences"] = json!(["END"]);
    b["top_k"] = json!(5);
    let r = h.post(Dialect::Anthropic, &b).await;
    assert_eq!(r.status(), 200);
    let dropped = r.headers()["x-dragoman-dropped"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        dropped.contains("stop") && dropped.contains("top_k"),
        "{dropped}"
    );
    // The usage record keeps them, for the request's page in the UI and `/spend/logs`.
    let _ = h.records(1).await;
    let logs: Value = h
        .http
        .get(format!("{}/spend/logs", h.url))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kept: Vec<&str> = logs[0]["dropped_fields"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        kept.iter().any(|d| d.contains("top_k")) && kept.iter().any(|d| d.contains("stop")),
        "{kept:?}"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn codex_quirks_websocket_and_previous_response_id() {
    let h = start("", true).await;
    let r = h
        .http
        .get(format!("{}/v1/responses", h.url))
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 426);
    let mut b = body(Dialect::Responses, "a/script/text", false);
    b["previous_response_id"] = json!("resp_123");
    let r = h.post(Dialect::Responses, &b).await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("previous_response_id"));
    h.shutdown().await;
}

#[tokio::test]
async fn shutdown_lets_in_flight_streams_finish() {
    let h = start("", true).await;
    let mut r = h
        .post(
            Dialect::Anthropic,
            &body(Dialect::Anthropic, "a/script/slow", true),
        )
        .await;
    let first = r.chunk().await.unwrap().unwrap();
    let stop = h.stop;
    if let Some(tx) = stop {
        let _ = tx.send(());
    }
    let mut all = first.to_vec();
    while let Some(c) = r.chunk().await.unwrap() {
        all.extend_from_slice(&c);
    }
    let events = dragoman_sse::decode_all(&all).unwrap();
    assert_eq!(
        events.last().unwrap().event.as_deref(),
        Some("message_stop")
    );
    let _ = tokio::time::timeout(Duration::from_secs(10), h.server).await;
}

impl Harness {
    /// Waits until the store holds `n` records (the writer flushes every 20 ms in tests).
    async fn records(&self, n: usize) -> Vec<dragoman_accounting::UsageRecord> {
        let store = self.store.as_ref().unwrap();
        let q = dragoman_store::LogQuery {
            limit: 1000,
            ..Default::default()
        };
        for _ in 0..200 {
            let rows = store.logs(&q).await.unwrap();
            if rows.len() >= n {
                return rows;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        store.logs(&q).await.unwrap()
    }
}

/// What an upstream of dialect `up` reports of the accounting scenario, and its cost in
/// nano-dollars: 200×3 + 1000×0.3 + 34×3.75 + 50×15 micro-dollars = 1 777 500. Gemini has no
/// cache-write count, so there the 34 written tokens arrive as uncached input (234×3 + 1000×0.3
/// + 50×15 = 1 752 000).
fn accounting_seen(up: Dialect) -> (dragoman_model::Usage, i64) {
    let mut u = dragoman_testkit::accounting_usage();
    if up == Dialect::Gemini {
        u.input_uncached = Some(234);
        u.cache_write = None;
        return (u, 1_752_000);
    }
    if up == Dialect::Bedrock {
        // Converse reports no reasoning count (its cost is in the output's).
        u.reasoning = None;
    }
    (u, 1_777_500)
}

#[tokio::test]
async fn every_pair_leaves_one_exact_usage_record_with_its_cost() {
    let h = start_with("", true, true).await;
    let mut expected = Vec::new();
    for client in Dialect::CLIENTS {
        for up in Dialect::ALL {
            for stream in [false, true] {
                let model = format!("{}/script/accounting", prefix(up));
                let r = h.post(client, &body(client, &model, stream)).await;
                assert_eq!(r.status(), 200);
                let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
                if !stream {
                    assert_eq!(
                        r.headers()["x-litellm-response-cost"],
                        format!("0.00{}", accounting_seen(up).1),
                        "{client}←{up}"
                    );
                }
                let _ = r.bytes().await.unwrap();
                expected.push((id, client, up, stream));
            }
        }
    }
    let rows = h.records(expected.len()).await;
    assert_eq!(rows.len(), expected.len());
    for (id, client, up, stream) in expected {
        let rec = rows
            .iter()
            .find(|r| r.request_id == id)
            .unwrap_or_else(|| panic!("no record for {id}"));
        let tag = format!("{client}←{up} stream={stream}");
        let (usage, cost) = accounting_seen(up);
        assert_eq!(rec.usage, usage, "{tag}");
        assert_eq!(rec.cost_nanos, Some(cost), "{tag}");
        assert_eq!(rec.outcome, dragoman_accounting::Outcome::Ok, "{tag}");
        assert_eq!(
            (rec.client_dialect, rec.upstream_dialect, rec.stream),
            (client, Some(up), stream),
            "{tag}"
        );
        assert_eq!(rec.provider_model.as_deref(), Some("script/accounting"));
        assert_eq!(rec.principal, "master");
        assert!(!rec.usage_estimated, "{tag}");
        assert!(rec.ttft_ms.is_some(), "{tag}");
    }
    h.shutdown().await;
}

#[tokio::test]
async fn refused_and_failed_requests_leave_records_too() {
    let h = start_with("", true, true).await;
    let url = format!("{}/v1/messages", h.url);
    let r = h
        .http
        .post(&url)
        .json(&body(Dialect::Anthropic, "a/script/text", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = h
        .post(Dialect::Chat, &body(Dialect::Chat, "nope", false))
        .await;
    assert_eq!(r.status(), 404);
    let r = h
        .post(
            Dialect::Chat,
            &body(Dialect::Chat, "a/script/http429", false),
        )
        .await;
    assert_eq!(r.status(), 429);
    let (_, _, _) = h
        .stream(
            Dialect::Anthropic,
            &body(Dialect::Anthropic, "r/script/midstream", true),
        )
        .await;
    let rows = h.records(4).await;
    let outcomes: std::collections::BTreeSet<(&str, u16)> = rows
        .iter()
        .map(|r| (r.outcome.as_str(), r.status))
        .collect();
    assert!(outcomes.contains(&("gateway_error", 401)), "{outcomes:?}");
    assert!(outcomes.contains(&("gateway_error", 404)), "{outcomes:?}");
    assert!(outcomes.contains(&("upstream_error", 429)), "{outcomes:?}");
    assert!(outcomes.contains(&("upstream_error", 200)), "{outcomes:?}");
    h.shutdown().await;
}

#[tokio::test]
async fn a_client_that_leaves_mid_stream_leaves_one_cancelled_record() {
    let h = start_with("", true, true).await;
    let mut r = h
        .post(
            Dialect::Anthropic,
            &body(Dialect::Anthropic, "c/script/slow", true),
        )
        .await;
    let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let _ = r.chunk().await.unwrap();
    let _ = r.chunk().await.unwrap();
    drop(r);
    let rows = h.records(1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rows2 = h.records(1).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows2.len(), 1, "exactly one record");
    let rec = &rows[0];
    assert_eq!(rec.request_id, id);
    assert_eq!(rec.outcome, dragoman_accounting::Outcome::ClientCancelled);
    assert!(
        rec.usage_estimated,
        "the upstream never sent usage: output is estimated and says so"
    );
    assert!(
        rec.usage.input_uncached.unwrap_or(0) > 0,
        "the local prompt count stands in for input"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn shutdown_under_load_leaves_one_record_per_accepted_request() {
    let h = start_with("", true, true).await;
    let n = 12;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(n);
    let mut tasks = Vec::new();
    for i in 0..n {
        let http = h.http.clone();
        let url = format!("{}/v1/chat/completions", h.url);
        let tx = tx.clone();
        let up = ["a", "c", "r"][i % 3];
        tasks.push(tokio::spawn(async move {
            let mut r = http
                .post(url)
                .bearer_auth(KEY)
                .json(&body(Dialect::Chat, &format!("{up}/script/slow"), true))
                .send()
                .await
                .unwrap();
            let mut all = r.chunk().await.unwrap().unwrap().to_vec();
            tx.send(()).await.unwrap();
            while let Some(c) = r.chunk().await.unwrap() {
                all.extend_from_slice(&c);
            }
            String::from_utf8(all).unwrap()
        }));
    }
    for _ in 0..n {
        rx.recv().await.unwrap();
    }
    let store = h.store.clone().unwrap();
    let Harness { stop, server, .. } = h;
    let _ = stop.unwrap().send(());
    for t in tasks {
        let out = t.await.unwrap();
        assert!(
            out.contains("[DONE]"),
            "in-flight streams finish during the drain"
        );
    }
    let _ = tokio::time::timeout(Duration::from_secs(20), server).await;
    let q = dragoman_store::LogQuery {
        limit: 1000,
        ..Default::default()
    };
    let rows = store.logs(&q).await.unwrap();
    assert_eq!(
        rows.len(),
        n,
        "one record per accepted request, flushed at shutdown"
    );
    assert!(
        rows.iter()
            .all(|r| r.outcome == dragoman_accounting::Outcome::Ok)
    );
}

#[tokio::test]
async fn spend_api_and_metrics() {
    let h = start_with("", true, true).await;
    for _ in 0..3 {
        let r = h
            .post(
                Dialect::Chat,
                &body(Dialect::Chat, "a/script/accounting", false),
            )
            .await;
        assert_eq!(r.status(), 200);
    }
    let _ = h.records(3).await;
    let logs: Value = h
        .http
        .get(format!(
            "{}/spend/logs?limit=2&model=a/script/accounting",
            h.url
        ))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let logs = logs.as_array().unwrap();
    assert_eq!(logs.len(), 2);
    assert_eq!(logs[0]["usage"]["cache_read"], 1000);
    assert_eq!(logs[0]["cost_usd"], 0.0017775);
    assert_eq!(logs[0]["client_dialect"], "chat");
    assert_eq!(logs[0]["upstream_dialect"], "anthropic");
    let sum: Value = h
        .http
        .get(format!("{}/spend/summary?group_by=model", h.url))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(sum[0]["group"], "a/script/accounting");
    assert_eq!(sum[0]["requests"], 3);
    assert_eq!(sum[0]["cost_nanos"], 3 * 1_777_500);
    let denied = h
        .http
        .get(format!("{}/spend/logs", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 401);
    let bad = h
        .http
        .get(format!("{}/spend/logs?since=yesterday", h.url))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);

    let m = get_text(&h.http, &format!("{}/metrics", h.url)).await;
    assert!(m.contains("dragoman_requests_total{client_dialect=\"chat\",upstream_dialect=\"anthropic\",model=\"a/*\",outcome=\"ok\"} 3"), "{m}");
    assert!(
        m.contains("dragoman_tokens_total{model=\"a/*\",bucket=\"cache_read\"} 3000"),
        "{m}"
    );
    assert!(
        m.contains("dragoman_cost_nanodollars_total{model=\"a/*\"} 5332500"),
        "{m}"
    );
    assert!(m.contains("dragoman_usage_writer_backlog"), "{m}");
    assert!(
        !m.contains("script/accounting"),
        "labels use the configured group, never the requested name"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn custom_tools_are_wrapped_for_anthropic_and_unwrapped_on_the_way_back() {
    let h = start("", true).await;
    let tools = json!([{"type": "custom", "name": "apply_patch", "description": "Apply a patch",
                        "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/"}}]);
    let patch = "*** Begin Patch\n*** End Patch\n";
    // Whole response.
    let mut b = body(Dialect::Responses, "a/script/tools", false);
    b["tools"] = tools.clone();
    let v: Value = h.post(Dialect::Responses, &b).await.json().await.unwrap();
    let sent = h.mock.last_request().unwrap().body;
    assert_eq!(sent["tools"][0]["name"], "apply_patch");
    assert_eq!(
        sent["tools"][0]["input_schema"]["properties"]["input"]["type"],
        "string"
    );
    let call = v["output"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["type"] == "custom_tool_call")
        .cloned()
        .unwrap_or_else(|| panic!("{v}"));
    assert_eq!(call["input"], patch);
    assert_eq!(call["call_id"], "call_mock_1");
    // Streamed.
    b["stream"] = json!(true);
    let (_, raw, events) = h.stream(Dialect::Responses, &b).await;
    dragoman_translate::validate(Dialect::Responses, &events).unwrap();
    let done = events
        .iter()
        .map(data)
        .find(|d| d["type"] == "response.completed")
        .unwrap();
    let call = done["response"]["output"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["type"] == "custom_tool_call")
        .cloned();
    assert_eq!(
        call.map(|c| c["input"].clone()),
        Some(json!(patch)),
        "{}",
        String::from_utf8_lossy(&raw)
    );
    // The output goes back as a tool result of the wrapped call.
    let mut follow = body(Dialect::Responses, "a/script/tools", false);
    follow["tools"] = tools;
    follow["input"] = json!([
        {"role": "user", "content": "patch it"},
        {"type": "custom_tool_call", "call_id": "call_mock_1", "name": "apply_patch", "input": patch},
        {"type": "custom_tool_call_output", "call_id": "call_mock_1", "output": "Done"}
    ]);
    let v: Value = h
        .post(Dialect::Responses, &follow)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["output"][0]["content"][0]["text"], "The tool ran.", "{v}");
    let sent = h.mock.last_request().unwrap().body;
    let blocks: Vec<Value> = sent["messages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|m| m["content"].as_array().cloned().unwrap_or_default())
        .collect();
    let call = blocks.iter().find(|b| b["type"] == "tool_use").unwrap();
    assert_eq!(call["input"], json!({"input": patch}));
    assert!(
        blocks
            .iter()
            .any(|b| b["type"] == "tool_result" && b["tool_use_id"] == "call_mock_1")
    );
    h.shutdown().await;
}

/// An upstream nobody listens on: the client gets a 502 in its own dialect saying so, at once,
/// and the request leaves one record that blames the upstream.
#[tokio::test]
async fn an_unreachable_upstream_is_a_clear_502_in_each_dialect() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let yaml = format!(
        "model_list:\n  - model_name: gone\n    litellm_params: {{model: openai/gpt-4o, api_base: \"http://{closed}/v1\", api_key: sk-x}}\n"
    );
    let config = dragoman_config::parse(&yaml, &|_: &str| None).unwrap();
    let gw = dragoman_gateway::Gateway::new(config).unwrap();
    let (url, server) = serve_forever(gw).await;
    let http = reqwest::Client::new();
    for client in Dialect::CLIENTS {
        let (p, b) = path_and_body(client, &body(client, "gone", false));
        let r = http
            .post(format!("{url}{p}"))
            .json(&b)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 502, "{client}");
        let v: Value = r.json().await.unwrap();
        let message = match client {
            Dialect::Anthropic => {
                assert_eq!(v["type"], "error");
                v["error"]["message"].as_str().unwrap().to_owned()
            }
            _ => v["error"]["message"].as_str().unwrap().to_owned(),
        };
        assert!(
            message.starts_with("upstream unreachable: connection failed"),
            "{client}: {message}"
        );
        assert!(!message.contains("sk-x"), "no key in errors");
    }
    let metrics = get_text(&http, &format!("{url}/metrics")).await;
    assert!(
        metrics.contains("outcome=\"upstream_error\"") && metrics.contains("model=\"gone\""),
        "{metrics}"
    );
    server.abort();
}

/// A forward proxy that only tunnels (`CONNECT`), counting the tunnels it opened.
async fn connect_proxy() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let tunnels = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = tunnels.clone();
    tokio::spawn(async move {
        loop {
            let (mut client, _) = listener.accept().await.unwrap();
            let count = count.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if client.read(&mut byte).await.unwrap() == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8(head).unwrap();
                let target = head
                    .strip_prefix("CONNECT ")
                    .and_then(|r| r.split_whitespace().next())
                    .unwrap()
                    .to_owned();
                let mut upstream = tokio::net::TcpStream::connect(target).await.unwrap();
                count.fetch_add(1, Ordering::SeqCst);
                client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await
                    .unwrap();
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    (url, tunnels)
}

/// Upstream calls go through the configured forward proxy's tunnel, except for hosts the
/// no-proxy list names.
#[tokio::test]
async fn upstream_calls_use_the_forward_proxy_unless_excluded() {
    let mock = MockUpstream::start().await;
    let (proxy, tunnels) = connect_proxy().await;
    let yaml = format!(
        "model_list:\n  - model_name: m\n    litellm_params: {{model: openai/script/text, api_base: \"{}\", api_key: sk-x}}\n",
        mock.base_v1()
    );
    // Tunnels opened so far: one for the proxied call, none more for the excluded host.
    for (no_proxy, want_tunnels) in [("", 1), ("127.0.0.1", 1)] {
        let config = dragoman_config::parse(&yaml, &|_: &str| None).unwrap();
        let matcher = dragoman_gateway::ProxyMatcher::builder()
            .http(proxy.clone())
            .https(proxy.clone())
            .no(no_proxy)
            .build();
        let gw = dragoman_gateway::Gateway::with_proxies(
            config,
            None,
            None,
            1,
            Some(std::sync::Arc::new(matcher)),
        )
        .unwrap();
        let (url, server) = serve_forever(gw).await;
        let r = reqwest::Client::new()
            .post(format!("{url}/v1/chat/completions"))
            .json(&body(Dialect::Chat, "m", false))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "no_proxy={no_proxy:?}");
        assert_eq!(
            tunnels.load(Ordering::SeqCst),
            want_tunnels,
            "no_proxy={no_proxy:?}"
        );
        server.abort();
    }
}

#[tokio::test]
async fn item_references_are_refused_where_they_cannot_be_resolved() {
    let h = start("", true).await;
    let input = json!([
        {"type": "item_reference", "id": "msg_earlier_1"},
        {"role": "user", "content": "And then?"}
    ]);
    for up in [Dialect::Anthropic, Dialect::Chat] {
        let model = format!("{}/script/text", prefix(up));
        let r = h
            .post(
                Dialect::Responses,
                &json!({"model": model, "input": input.clone()}),
            )
            .await;
        assert_eq!(r.status(), 400, "{up}");
        let v: Value = r.json().await.unwrap();
        let msg = v["error"]["message"].as_str().unwrap_or_default();
        assert!(msg.contains("item_reference `msg_earlier_1`"), "{up}: {v}");
    }
    // A Responses upstream resolves its own references: the item passes through.
    let r = h
        .post(
            Dialect::Responses,
            &json!({"model": "r/script/text", "input": input}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let sent = h.mock.last_request().unwrap();
    assert_eq!(sent.body["input"][0]["type"], "item_reference");
    h.shutdown().await;
}

#[tokio::test]
async fn an_empty_key_header_never_authenticates() {
    let h = start("", true).await;
    for (name, value) in [
        ("x-api-key", ""),
        ("authorization", "Bearer "),
        ("api-key", " "),
    ] {
        let r = h
            .http
            .post(format!("{}/v1/messages", h.url))
            .header(name, value)
            .header("anthropic-version", "2023-06-01")
            .json(&body(Dialect::Anthropic, "a/script/text", false))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{name}: {value:?}");
    }
    h.shutdown().await;
}

#[tokio::test]
async fn stalled_clients_are_cut_off_by_the_read_timeouts() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let h = start(
        "  header_read_timeout_seconds: 0.3\n  body_read_timeout_seconds: 0.3\n",
        true,
    )
    .await;
    let addr = h.url.trim_start_matches("http://").to_owned();
    // Headers that never finish: the connection is closed.
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"POST /v1/messages HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
        .await
        .expect("a stalled header must not hold the connection")
        .unwrap_or(0);
    assert!(
        n == 0 || String::from_utf8_lossy(&buf).contains(" 408"),
        "{buf:?}"
    );
    // A body that stops half-way: a 408 in the client's dialect.
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {KEY}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"model\":"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("a stalled body must not hold the request")
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("\"error\""), "{text}");
    h.shutdown().await;
}
