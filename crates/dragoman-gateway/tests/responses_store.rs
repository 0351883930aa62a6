//! Conversation state on any upstream: `item_reference` turns (as the Vercel AI SDK sends them)
//! and `previous_response_id` chains reach Anthropic and Chat upstreams as whole histories with
//! signatures byte for byte; stored responses are read, paged, deleted and expire; another key
//! cannot read them; a chain made on an OpenAI Responses deployment goes back to it as it came.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use dragoman_testkit::MockUpstream;
use serde_json::{Value, json};

const KEY: &str = "sk-store-master";

struct Harness {
    url: String,
    http: reqwest::Client,
    mock: MockUpstream,
}

async fn start(settings: &str) -> Harness {
    let mock = MockUpstream::start().await;
    let yaml = format!(
        r#"
model_list:
  - model_name: "a/*"
    litellm_params: {{model: "anthropic/*", api_base: "{base}", api_key: sk-up}}
  - model_name: "c/*"
    litellm_params: {{model: "openai/*", api_base: "{v1}", api_key: sk-up}}
  - model_name: "r/*"
    litellm_params: {{model: "openai/*", api_base: "{v1}", api_key: sk-up}}
    model_info: {{mode: responses}}
general_settings:
  master_key: {KEY}
dragoman_settings:
  {settings}
"#,
        base = mock.base(),
        v1 = mock.base_v1(),
    );
    let config = dragoman_config::parse(&yaml, &|_: &str| None).unwrap();
    let path = std::env::temp_dir().join(format!("dragoman-resp-{:016x}.db", fastrand::u64(..)));
    let store = dragoman_store::Store::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let (writer, _task) = dragoman_store::spawn_writer(
        Arc::new(store.clone()),
        dragoman_store::WriterOptions::default(),
    );
    let gw = dragoman_gateway::Gateway::with_store(config, Some(store), Some(writer)).unwrap();
    gw.load_tenancy().await.unwrap();
    gw.start_background_tasks();
    let url = common::serve(gw).await;
    Harness {
        url,
        http: reqwest::Client::new(),
        mock,
    }
}

impl Harness {
    async fn respond(&self, key: &str, body: Value) -> (u16, Value) {
        self.post(key, "/v1/responses", body).await
    }

    async fn post(&self, key: &str, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// A streamed call; the `response` of its `response.completed` event.
    async fn respond_streamed(&self, key: &str, mut body: Value) -> Value {
        body["stream"] = json!(true);
        let r = self
            .http
            .post(format!("{}/v1/responses", self.url))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let bytes = r.bytes().await.unwrap();
        let events = dragoman_sse::decode_all(&bytes).unwrap();
        let done = events
            .iter()
            .find(|e| e.event.as_deref() == Some("response.completed"))
            .unwrap();
        serde_json::from_str::<Value>(&done.data).unwrap()["response"].clone()
    }

    async fn get(&self, key: &str, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.url))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn new_key(&self) -> String {
        let r = self
            .http
            .post(format!("{}/key/generate", self.url))
            .bearer_auth(KEY)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json::<Value>().await.unwrap()["key"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

fn output_ids(resp: &Value) -> Vec<String> {
    resp["output"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect()
}

/// The Vercel AI SDK's second turn with `store: true`: the first user message, the previous
/// answer as `item_reference`s, the new message. An Anthropic upstream receives the whole
/// conversation, its thinking signature byte for byte; so does a Chat upstream (text only).
#[tokio::test]
async fn item_references_become_the_items_they_name_on_any_upstream() {
    let h = start("{}").await;
    for (model, streamed) in [
        ("a/script/reasoning", false),
        ("a/script/reasoning", true),
        ("c/script/text", false),
    ] {
        let first = json!({"model": model, "input": "Say hello"});
        let resp = if streamed {
            h.respond_streamed(KEY, first).await
        } else {
            let (s, v) = h.respond(KEY, first).await;
            assert_eq!(s, 200, "{v}");
            v
        };
        let mut input = vec![json!({"role": "user", "content": "Say hello"})];
        input.extend(
            output_ids(&resp)
                .into_iter()
                .map(|id| json!({"type": "item_reference", "id": id})),
        );
        input.push(json!({"role": "user", "content": "Again"}));
        let (s, v) = h
            .respond(KEY, json!({"model": model, "input": input}))
            .await;
        assert_eq!(s, 200, "{model}: {v}");
        let seen = h.mock.last_request().unwrap().body;
        let msgs = seen["messages"].as_array().unwrap();
        let tag = format!("{model} streamed={streamed}: {seen}");
        if model.starts_with("a/") {
            assert_eq!(msgs.len(), 3, "{tag}");
            assert_eq!(msgs[1]["role"], "assistant", "{tag}");
            let blocks = msgs[1]["content"].as_array().unwrap();
            let thinking = blocks.iter().find(|b| b["type"] == "thinking").unwrap();
            assert_eq!(thinking["signature"], "sig-mock-1", "{tag}");
            let said: String = resp["output"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|i| i["type"] == "message")
                .flat_map(|i| i["content"].as_array().unwrap().iter())
                .filter_map(|c| c["text"].as_str())
                .collect();
            assert!(!said.is_empty(), "{tag}");
            assert!(blocks.iter().any(|b| b["text"] == said.as_str()), "{tag}");
        } else {
            let roles: Vec<&str> = msgs.iter().map(|m| m["role"].as_str().unwrap()).collect();
            assert_eq!(roles, ["user", "assistant", "user"], "{tag}");
            assert_eq!(msgs[1]["content"], "Hello from the mock.", "{tag}");
        }
    }
}

#[tokio::test]
async fn previous_response_id_chains_rebuild_the_conversation() {
    let h = start("{}").await;
    for model in ["a/script/reasoning", "c/script/text"] {
        let (_, r1) = h
            .respond(KEY, json!({"model": model, "input": "one"}))
            .await;
        let (s, r2) = h
            .respond(
                KEY,
                json!({"model": model, "input": "two", "previous_response_id": r1["id"]}),
            )
            .await;
        assert_eq!(s, 200, "{r2}");
        let r3 = h
            .respond_streamed(KEY, json!({"model": model, "input": [{"role": "user", "content": "three"}], "previous_response_id": r2["id"]}))
            .await;
        assert_eq!(r3["status"], "completed");
        let seen = h.mock.last_request().unwrap().body;
        let msgs = seen["messages"].as_array().unwrap();
        let users: Vec<String> = msgs
            .iter()
            .filter(|m| m["role"] == "user")
            .map(|m| m["content"].to_string())
            .collect();
        assert_eq!(users.len(), 3, "{model}: {seen}");
        assert!(
            users[0].contains("one") && users[1].contains("two") && users[2].contains("three"),
            "{users:?}"
        );
        assert_eq!(
            msgs.iter().filter(|m| m["role"] == "assistant").count(),
            2,
            "{seen}"
        );
        if model.starts_with("a/") {
            assert!(seen.to_string().contains("sig-mock-1"), "{seen}");
        }
    }
}

#[tokio::test]
async fn stored_responses_are_read_paged_deleted_and_private_to_their_key() {
    let h = start("{}").await;
    let alice = h.new_key().await;
    let bob = h.new_key().await;
    let input: Vec<Value> = (0..5)
        .map(|i| json!({"role": "user", "content": format!("m{i}")}))
        .collect();
    let (s, r) = h
        .respond(&alice, json!({"model": "c/script/text", "input": input}))
        .await;
    assert_eq!(s, 200, "{r}");
    let id = r["id"].as_str().unwrap().to_owned();
    let (s, got) = h.get(&alice, &format!("/v1/responses/{id}")).await;
    assert_eq!(s, 200);
    assert_eq!(got, r);
    // Newest first, two at a time.
    let (_, page) = h
        .get(&alice, &format!("/v1/responses/{id}/input_items?limit=2"))
        .await;
    let texts: Vec<&str> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["content"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["m4", "m3"]);
    assert_eq!(page["has_more"], true);
    let last = page["last_id"].as_str().unwrap();
    let (_, page2) = h
        .get(
            &alice,
            &format!("/v1/responses/{id}/input_items?limit=10&after={last}"),
        )
        .await;
    assert_eq!(page2["data"].as_array().unwrap().len(), 3);
    assert_eq!(page2["has_more"], false);
    // Another key neither reads nor continues it.
    let (s, v) = h.get(&bob, &format!("/v1/responses/{id}")).await;
    assert_eq!(s, 404, "{v}");
    let (s, v) = h
        .respond(
            &bob,
            json!({"model": "c/script/text", "input": "x", "previous_response_id": id}),
        )
        .await;
    assert_eq!(s, 404, "{v}");
    assert_eq!(v["error"]["code"], "previous_response_not_found", "{v}");
    // The master key reads every response.
    assert_eq!(h.get(KEY, &format!("/v1/responses/{id}")).await.0, 200);
    // Deleted means gone.
    let r = h
        .http
        .delete(format!("{}/v1/responses/{id}", h.url))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["deleted"], true);
    assert_eq!(h.get(&alice, &format!("/v1/responses/{id}")).await.0, 404);
    // `store: false` keeps nothing.
    let (_, r) = h
        .respond(
            &alice,
            json!({"model": "c/script/text", "input": "x", "store": false}),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        h.get(
            &alice,
            &format!("/v1/responses/{}", r["id"].as_str().unwrap())
        )
        .await
        .0,
        404
    );
}

#[tokio::test]
async fn expired_responses_are_gone() {
    let h = start("response_store_ttl: 1").await;
    let (_, r) = h
        .respond(KEY, json!({"model": "a/script/text", "input": "hi"}))
        .await;
    let id = r["id"].as_str().unwrap().to_owned();
    assert_eq!(h.get(KEY, &format!("/v1/responses/{id}")).await.0, 200);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(h.get(KEY, &format!("/v1/responses/{id}")).await.0, 404);
    let (s, v) = h
        .respond(
            KEY,
            json!({"model": "a/script/text", "input": "x", "previous_response_id": id}),
        )
        .await;
    assert_eq!(s, 404, "{v}");
}

/// A chain made on an OpenAI Responses deployment goes back to it untouched (OpenAI holds its
/// own state); the same chain continued on an Anthropic model is expanded.
#[tokio::test]
async fn a_responses_upstream_resolves_its_own_chain() {
    let h = start("{}").await;
    let (_, r1) = h
        .respond(KEY, json!({"model": "r/script/text", "input": "one"}))
        .await;
    let id = r1["id"].as_str().unwrap().to_owned();
    let (s, _) = h
        .respond(
            KEY,
            json!({"model": "r/script/text", "input": "two", "previous_response_id": id}),
        )
        .await;
    assert_eq!(s, 200);
    let seen = h.mock.last_request().unwrap().body;
    assert_eq!(seen["previous_response_id"], json!(id), "{seen}");
    assert_eq!(seen["input"], "two");
    let (s, _) = h
        .respond(
            KEY,
            json!({"model": "a/script/text", "input": "two", "previous_response_id": id}),
        )
        .await;
    assert_eq!(s, 200);
    let seen = h.mock.last_request().unwrap().body;
    assert_eq!(seen["messages"].as_array().unwrap().len(), 3, "{seen}");
    // An id this gateway never stored still reaches a Responses upstream, which may know it.
    let (s, _) = h
        .respond(KEY, json!({"model": "r/script/text", "input": "x", "previous_response_id": "resp_elsewhere"}))
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        h.mock.last_request().unwrap().body["previous_response_id"],
        "resp_elsewhere"
    );
    let (s, v) = h
        .respond(KEY, json!({"model": "a/script/text", "input": "x", "previous_response_id": "resp_elsewhere"}))
        .await;
    assert_eq!(s, 404, "{v}");
}

/// A Codex-style history: instructions, a user turn, a tool call and its output, reasoning.
fn codex_history() -> Value {
    json!([
        {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "You are Codex."}]},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Fix the failing test."}]},
        {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAAA-sealed"},
        {"type": "function_call", "call_id": "call_1", "name": "shell", "arguments": "{\"cmd\":\"cargo test\"}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "1 failed: parse_empty"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "The parser rejects empty input."}]}
    ])
}

/// `POST /v1/responses/compact` on an Anthropic upstream: the deployment is asked for a
/// summary of the whole history (tool calls as text, no tool definitions needed); the answer
/// keeps the user messages and adds one compaction item; the next turn, sent to a Chat
/// upstream, carries the summary as a user message.
#[tokio::test]
async fn remote_compaction_summarises_on_any_upstream_and_the_summary_comes_back() {
    let h = start("{}").await;
    let (s, v) = h
        .post(KEY, "/v1/responses/compact", json!({"model": "a/script/text", "input": codex_history(), "instructions": "Be brief."}))
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["object"], "response.compaction", "{v}");
    let out = v["output"].as_array().unwrap();
    assert_eq!(out.len(), 2, "{v}");
    assert_eq!(out[0]["role"], "user");
    assert_eq!(out[0]["content"][0]["text"], "Fix the failing test.");
    assert_eq!(out[1]["type"], "compaction");
    assert!(out[1]["id"].as_str().unwrap().starts_with("cmp_"));
    assert!(v["usage"]["input_tokens"].as_u64().unwrap() > 0, "{v}");
    // What the summariser saw: the history, the tool call and its output as text, the ask.
    let seen = h.mock.last_request().unwrap();
    assert_eq!(seen.path, "/v1/messages");
    let text = seen.body["messages"].to_string();
    assert!(text.contains("Fix the failing test."), "{text}");
    assert!(
        text.contains("cargo test") && text.contains("1 failed: parse_empty"),
        "{text}"
    );
    assert!(text.contains("handoff summary"), "{text}");
    assert!(seen.body.get("tools").is_none(), "{}", seen.body);
    assert!(seen.body["system"].to_string().contains("Be brief."));

    // The next turn: the compacted history plus a new message, on a Chat deployment.
    let mut input = v["output"].as_array().unwrap().clone();
    input.push(json!({"type": "message", "role": "user", "content": "Go on."}));
    let (s, r) = h
        .respond(KEY, json!({"model": "c/script/text", "input": input}))
        .await;
    assert_eq!(s, 200, "{r}");
    let seen = h.mock.last_request().unwrap().body;
    let msgs = seen["messages"].to_string();
    assert!(
        msgs.contains("Hello from the mock."),
        "the summary reached the upstream: {msgs}"
    );
    assert!(msgs.contains("compacted"), "{msgs}");
    assert!(!msgs.contains("dragoman-compaction-v1"), "{msgs}");
}

/// Codex's newer compaction: a `/v1/responses` stream ending in `compaction_trigger` is
/// answered with one `compaction` output item, as a stream, or whole when not streamed.
#[tokio::test]
async fn a_compaction_trigger_is_answered_with_one_compaction_item() {
    let h = start("{}").await;
    let mut input = codex_history().as_array().unwrap().clone();
    input.push(json!({"type": "compaction_trigger"}));
    let resp = h
        .respond_streamed(KEY, json!({"model": "a/script/text", "input": input, "tools": [{"type": "function", "name": "shell", "parameters": {"type": "object"}}]}))
        .await;
    let out = resp["output"].as_array().unwrap();
    assert_eq!(out.len(), 1, "{resp}");
    assert_eq!(out[0]["type"], "compaction");
    assert_eq!(resp["status"], "completed");
    let seen = h.mock.last_request().unwrap().body;
    assert!(!seen.to_string().contains("compaction_trigger"), "{seen}");
    assert!(seen["stream"] != json!(true), "{seen}");
    // Not streamed: the whole response, the same item.
    let mut input = codex_history().as_array().unwrap().clone();
    input.push(json!({"type": "compaction_trigger"}));
    let (s, v) = h
        .respond(KEY, json!({"model": "c/script/text", "input": input}))
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["output"][0]["type"], "compaction", "{v}");
}

/// A compaction item sealed by OpenAI cannot be read by another provider: refused, never
/// dropped; a Responses deployment gets it as it came.
#[tokio::test]
async fn a_foreign_compaction_item_goes_only_to_a_responses_deployment() {
    let h = start("{}").await;
    let input = json!([
        {"type": "compaction", "id": "cmp_openai", "encrypted_content": "gAAAAABpM0Yj-sealed"},
        {"type": "message", "role": "user", "content": "Go on."}
    ]);
    let (s, v) = h
        .respond(KEY, json!({"model": "a/script/text", "input": input}))
        .await;
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("compaction item `cmp_openai`"),
        "{v}"
    );
    let (s, v) = h
        .respond(KEY, json!({"model": "r/script/text", "input": input}))
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        h.mock.last_request().unwrap().body["input"][0]["encrypted_content"],
        "gAAAAABpM0Yj-sealed"
    );
}
