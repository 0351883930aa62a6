//! Amazon Bedrock and `/v1/embeddings` end to end: every client dialect reaches Claude through
//! InvokeModel and any model through Converse, whole and streamed, signed with SigV4 (or a
//! Bedrock API key, or an assumed role from a fake STS); embedding deployments of each provider
//! answer OpenAI's embeddings API in floats and base64, with a usage record per call.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "dialects/mod.rs"]
mod dialects;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use dialects::{body, path_and_body, stream_usage, text_of, usage_of};
use dragoman_model::Dialect;
use dragoman_testkit::MockUpstream;
use serde_json::{Value, json};

const KEY: &str = "sk-bedrock-test";
const AWS: &str = "aws_access_key_id: AKIDTESTEXAMPLE, aws_secret_access_key: test-secret, aws_region_name: us-east-1";

/// The fake STS: grants temporary keys to a caller that signed for `sts` with the base key.
struct Sts {
    calls: AtomicUsize,
}

async fn sts(
    axum::extract::State(s): axum::extract::State<Arc<Sts>>,
    headers: axum::http::HeaderMap,
    form: String,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    s.calls.fetch_add(1, Ordering::SeqCst);
    if form.contains("Action=AssumeRoleWithWebIdentity") {
        // Unsigned: the OIDC token is the proof.
        let ok = form.contains("WebIdentityToken=eyJ.oidc.token")
            && form.contains("RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fweb")
            && !headers.contains_key("authorization");
        if !ok {
            return (
                axum::http::StatusCode::FORBIDDEN,
                "<ErrorResponse><Error><Message>bad token</Message></Error></ErrorResponse>",
            )
                .into_response();
        }
        return "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>ASIAWEBID</AccessKeyId><SecretAccessKey>web-secret</SecretAccessKey><SessionToken>web-token</SessionToken><Expiration>2999-01-01T00:00:00Z</Expiration></Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>".into_response();
    }
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let signed = auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDTESTEXAMPLE/")
        && auth.contains("/us-east-1/sts/aws4_request");
    let asks = form.contains("Action=AssumeRole")
        && form.contains("RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fbedrock-caller")
        && form.contains("RoleSessionName=dragoman");
    if !(signed && asks) {
        return (
            axum::http::StatusCode::FORBIDDEN,
            "<ErrorResponse><Error><Code>AccessDenied</Code><Message>not allowed</Message></Error></ErrorResponse>",
        )
            .into_response();
    }
    "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><AssumeRoleResult><Credentials><AccessKeyId>ASIAASSUMED</AccessKeyId><SecretAccessKey>assumed-secret</SecretAccessKey><SessionToken>assumed-token</SessionToken><Expiration>2999-01-01T00:00:00Z</Expiration></Credentials></AssumeRoleResult></AssumeRoleResponse>".into_response()
}

struct Harness {
    url: String,
    http: reqwest::Client,
    mock: MockUpstream,
    sts: Arc<Sts>,
    store: dragoman_store::Store,
}

async fn start() -> Harness {
    let sts_state = Arc::new(Sts {
        calls: AtomicUsize::new(0),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sts_url = format!("http://{}/", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .route("/", axum::routing::post(sts))
        .with_state(sts_state.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let mock = MockUpstream::start().await;
    let yaml = format!(
        r#"
model_list:
  - model_name: claude-bedrock
    litellm_params: {{model: "bedrock/us.anthropic.claude-haiku-4-5-20251001-v1:0", api_base: "{base}", {AWS}}}
  - model_name: "bi/*"
    litellm_params: {{model: "bedrock/invoke/*", api_base: "{base}", {AWS}}}
  - model_name: "b/*"
    litellm_params: {{model: "bedrock/converse/*", api_base: "{base}", {AWS}}}
  - model_name: nova
    litellm_params: {{model: "bedrock/amazon.nova-micro-v1:0", api_base: "{base}", api_key: br-api-key}}
  - model_name: assumed
    litellm_params: {{model: "bedrock/converse/script/text", api_base: "{base}", {AWS}, aws_role_name: "arn:aws:iam::123456789012:role/bedrock-caller", aws_sts_endpoint: "{sts_url}"}}
  - model_name: web-identity
    litellm_params: {{model: "bedrock/converse/script/text", api_base: "{base}", aws_region_name: us-east-1, aws_web_identity_token: eyJ.oidc.token, aws_role_name: "arn:aws:iam::123456789012:role/web", aws_sts_endpoint: "{sts_url}"}}
  - model_name: throttled
    litellm_params: {{model: "bedrock/anthropic.claude-throttled", api_base: "{base}", {AWS}}}
  - model_name: emb-openai
    litellm_params: {{model: "openai/text-embedding-3-small", api_base: "{v1}", api_key: sk-up, input_cost_per_token: 0.00000002}}
    model_info: {{mode: embedding}}
  - model_name: emb-gemini
    litellm_params: {{model: "gemini/gemini-embedding-001", api_base: "{base}", api_key: g-key}}
    model_info: {{mode: embedding}}
  - model_name: emb-titan
    litellm_params: {{model: "bedrock/amazon.titan-embed-text-v2:0", api_base: "{base}", {AWS}}}
    model_info: {{mode: embedding}}
  - model_name: emb-cohere
    litellm_params: {{model: "bedrock/cohere.embed-english-v3", api_base: "{base}", {AWS}}}
    model_info: {{mode: embedding}}
  - model_name: emb-fallback
    litellm_params: {{model: "openai/script/http500", api_base: "{v1}", api_key: sk-up}}
    model_info: {{mode: embedding}}
  - model_name: emb-fallback
    litellm_params: {{model: "bedrock/amazon.titan-embed-text-v2:0", api_base: "{base}", {AWS}}}
    model_info: {{mode: embedding}}
general_settings:
  master_key: {KEY}
router_settings:
  num_retries: 1
"#,
        base = mock.base(),
        v1 = mock.base_v1(),
    );
    let config = dragoman_config::parse(&yaml, &|_: &str| None).unwrap();
    assert!(
        config.warnings.iter().all(|w| !w.contains("skipped")),
        "{:?}",
        config.warnings
    );
    let path = std::env::temp_dir().join(format!("dragoman-bedrock-{:016x}.db", fastrand::u64(..)));
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
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(dragoman_gateway::serve(
        gw,
        listener,
        std::future::pending(),
    ));
    Harness {
        url,
        http: reqwest::Client::new(),
        mock,
        sts: sts_state,
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

    async fn stream(&self, client: Dialect, model: &str) -> Vec<dragoman_sse::Event> {
        let mut b = body(client, model, true);
        if client == Dialect::Chat {
            b["stream_options"] = json!({"include_usage": true});
        }
        let r = self.post(client, &b).await;
        assert_eq!(r.status(), 200, "{client} {model}");
        assert_eq!(r.headers()["content-type"], "text/event-stream");
        let bytes = r.bytes().await.unwrap();
        let events = dragoman_sse::decode_all(&bytes).unwrap();
        dragoman_translate::validate(client, &events).unwrap_or_else(|e| {
            panic!("{client} {model}: {e}\n{}", String::from_utf8_lossy(&bytes))
        });
        events
    }

    async fn embed(&self, body: Value) -> reqwest::Response {
        self.http
            .post(format!("{}/v1/embeddings", self.url))
            .header("authorization", format!("Bearer {KEY}"))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn records(&self, n: usize) -> Vec<dragoman_accounting::UsageRecord> {
        for _ in 0..200 {
            let q = dragoman_store::LogQuery {
                limit: 1000,
                ..Default::default()
            };
            let rows = self.store.logs(&q).await.unwrap();
            if rows.len() >= n {
                return rows;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("fewer than {n} usage records");
    }
}

fn sigv4(h: &axum::http::HeaderMap, key_id: &str) -> bool {
    let auth = h["authorization"].to_str().unwrap();
    auth.starts_with(&format!("AWS4-HMAC-SHA256 Credential={key_id}/"))
        && auth.contains("/us-east-1/bedrock/aws4_request")
        && h.contains_key("x-amz-date")
}

#[tokio::test]
async fn every_dialect_reaches_claude_through_invoke_model_and_converse() {
    let h = start().await;
    for client in Dialect::CLIENTS {
        for model in ["claude-bedrock", "b/script/text"] {
            let tag = format!("{client} → {model}");
            let r = h.post(client, &body(client, model, false)).await;
            assert_eq!(r.status(), 200, "{tag}");
            let v: Value = r.json().await.unwrap();
            assert_eq!(text_of(client, &v), "Hello from the mock.", "{tag}: {v}");
            assert_eq!(usage_of(client, &v), (210, 1024, 12), "{tag}");
            let events = h.stream(client, model).await;
            assert_eq!(
                stream_usage(client, &events).0,
                (210, 1024, 12),
                "{tag} streamed"
            );
        }
    }
    let reqs = h.mock.requests();
    let paths: Vec<&str> = reqs.iter().map(|r| r.path.as_str()).collect();
    for p in [
        "/model/us.anthropic.claude-haiku-4-5-20251001-v1%3A0/invoke",
        "/model/us.anthropic.claude-haiku-4-5-20251001-v1%3A0/invoke-with-response-stream",
        "/model/script%2Ftext/converse",
        "/model/script%2Ftext/converse-stream",
    ] {
        assert!(paths.contains(&p), "{p} not in {paths:?}");
    }
    for r in &reqs {
        assert!(
            sigv4(&r.headers, "AKIDTESTEXAMPLE"),
            "{}: {:?}",
            r.path,
            r.headers
        );
        assert!(r.headers.get("anthropic-version").is_none(), "{}", r.path);
        assert!(r.headers.get("x-api-key").is_none());
        if r.path.contains("/invoke") {
            // The mock refuses a body with `model` or `stream`, as Bedrock does.
            assert_eq!(r.body["anthropic_version"], "bedrock-2023-05-31");
        } else {
            assert!(
                r.body["messages"][0]["content"][0]["text"].is_string(),
                "{}",
                r.body
            );
        }
    }
}

/// A thinking signature Bedrock issued comes back byte for byte on the next turn, through
/// InvokeModel (Claude's own blocks) and through Converse (`reasoningContent`).
#[tokio::test]
async fn thinking_signatures_return_byte_identical_on_the_next_turn() {
    let h = start().await;
    for model in ["bi/script/reasoning", "b/script/reasoning"] {
        let events = h.stream(Dialect::Anthropic, model).await;
        let sig: String = events
            .iter()
            .map(dialects::data)
            .filter(|d| d["delta"]["type"] == "signature_delta")
            .map(|d| d["delta"]["signature"].as_str().unwrap().to_owned())
            .collect();
        let thinking: String = events
            .iter()
            .map(dialects::data)
            .filter(|d| d["delta"]["type"] == "thinking_delta")
            .map(|d| d["delta"]["thinking"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(sig, "sig-mock-1", "{model}");
        let next = json!({"model": model, "max_tokens": 256, "messages": [
            {"role": "user", "content": "Say hello"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": thinking, "signature": sig},
                {"type": "text", "text": "Hello from the mock."}]},
            {"role": "user", "content": "Again"}]});
        let r = h.post(Dialect::Anthropic, &next).await;
        assert_eq!(r.status(), 200, "{model}");
        let seen = h.mock.last_request().unwrap().body;
        let replayed = if model.starts_with("bi/") {
            seen["messages"][1]["content"][0]["signature"].clone()
        } else {
            seen["messages"][1]["content"][0]["reasoningContent"]["reasoningText"]["signature"]
                .clone()
        };
        assert_eq!(replayed, "sig-mock-1", "{model}: {seen}");
    }
}

#[tokio::test]
async fn api_keys_replace_signing_and_assumed_roles_are_fetched_once() {
    let h = start().await;
    let r = h
        .post(Dialect::Chat, &body(Dialect::Chat, "nova", false))
        .await;
    assert_eq!(r.status(), 200);
    let seen = h.mock.last_request().unwrap();
    assert_eq!(seen.path, "/model/amazon.nova-micro-v1%3A0/converse");
    assert_eq!(seen.headers["authorization"], "Bearer br-api-key");
    assert!(seen.headers.get("x-amz-date").is_none());

    for _ in 0..3 {
        let r = h
            .post(Dialect::Chat, &body(Dialect::Chat, "assumed", false))
            .await;
        assert_eq!(r.status(), 200);
        let seen = h.mock.last_request().unwrap();
        assert!(sigv4(&seen.headers, "ASIAASSUMED"), "{:?}", seen.headers);
        assert_eq!(seen.headers["x-amz-security-token"], "assumed-token");
    }
    assert_eq!(h.sts.calls.load(Ordering::SeqCst), 1);

    for _ in 0..2 {
        let r = h
            .post(Dialect::Chat, &body(Dialect::Chat, "web-identity", false))
            .await;
        assert_eq!(r.status(), 200);
        let seen = h.mock.last_request().unwrap();
        assert!(sigv4(&seen.headers, "ASIAWEBID"), "{:?}", seen.headers);
        assert_eq!(seen.headers["x-amz-security-token"], "web-token");
    }
    assert_eq!(h.sts.calls.load(Ordering::SeqCst), 2);
}

/// Bedrock's error type travels in a header: a throttled call is a rate limit in the client's
/// own dialect, and a mid-stream exception ends the client's stream with its error event.
#[tokio::test]
async fn bedrock_errors_and_exceptions_reach_the_client_in_its_dialect() {
    let h = start().await;
    let r = h
        .post(
            Dialect::Anthropic,
            &body(Dialect::Anthropic, "throttled", false),
        )
        .await;
    assert_eq!(r.status(), 429);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "rate_limit_error", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Too many requests")
    );

    for client in Dialect::CLIENTS {
        let mut b = body(client, "bi/script/midstream", true);
        if client == Dialect::Chat {
            b["stream_options"] = json!({"include_usage": true});
        }
        let r = h.post(client, &b).await;
        assert_eq!(r.status(), 200, "{client}");
        let bytes = r.bytes().await.unwrap();
        let events = dragoman_sse::decode_all(&bytes).unwrap();
        dragoman_translate::validate(client, &events)
            .unwrap_or_else(|e| panic!("{client}: {e}\n{}", String::from_utf8_lossy(&bytes)));
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("Overloaded"), "{client}: {text}");
    }
}

fn floats(v: &Value) -> Vec<f32> {
    match v {
        Value::String(s) => base64::engine::general_purpose::STANDARD
            .decode(s)
            .unwrap()
            .chunks(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Value::Array(a) => a.iter().map(|x| x.as_f64().unwrap() as f32).collect(),
        other => panic!("not an embedding: {other}"),
    }
}

#[tokio::test]
async fn embeddings_reach_every_provider_in_floats_and_base64() {
    let h = start().await;
    let inputs = ["the quick brown fox", "hello"];
    let mut ids = Vec::new();
    for (model, dims, tokens) in [
        ("emb-openai", 8, Some(5)),
        ("emb-gemini", 8, None),
        ("emb-titan", 256, Some(5)),
        ("emb-cohere", 8, Some(5)),
    ] {
        for encoding in ["float", "base64"] {
            let mut b = json!({"model": model, "input": inputs, "encoding_format": encoding});
            if model == "emb-titan" {
                b["dimensions"] = json!(256);
            }
            let r = h.embed(b).await;
            let tag = format!("{model} {encoding}");
            assert_eq!(r.status(), 200, "{tag}");
            ids.push((
                r.headers()["x-request-id"].to_str().unwrap().to_owned(),
                model,
                tokens,
            ));
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["object"], "list", "{tag}");
            let data = v["data"].as_array().unwrap();
            assert_eq!(data.len(), 2, "{tag}");
            for (i, text) in inputs.iter().enumerate() {
                assert_eq!(data[i]["index"], i, "{tag}");
                if encoding == "base64" {
                    assert!(data[i]["embedding"].is_string(), "{tag}");
                }
                assert_eq!(
                    floats(&data[i]["embedding"]),
                    dragoman_testkit::embedding_vector(text, dims),
                    "{tag} #{i}"
                );
            }
            if let Some(n) = tokens {
                assert_eq!(v["usage"]["prompt_tokens"], n, "{tag}");
            } else {
                assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() > 0, "{tag}");
            }
        }
    }
    // Titan embeds one text per call: two calls for the two inputs, each signed.
    let titan: Vec<_> = h
        .mock
        .requests()
        .into_iter()
        .filter(|r| r.path == "/model/amazon.titan-embed-text-v2%3A0/invoke")
        .collect();
    assert_eq!(titan.len(), 4);
    assert!(titan.iter().all(|r| sigv4(&r.headers, "AKIDTESTEXAMPLE")));
    assert_eq!(titan[0].body["dimensions"], 256);
    let rows = h.records(ids.len()).await;
    for (id, model, tokens) in ids {
        let rec = rows.iter().find(|r| r.request_id == id).unwrap();
        assert_eq!(rec.outcome, dragoman_accounting::Outcome::Ok, "{model}");
        if let Some(n) = tokens {
            assert_eq!(rec.usage.input_uncached, Some(n), "{model}");
        }
        if model == "emb-openai" {
            // 5 tokens at $0.00000002: 100 nano-dollars.
            assert_eq!(rec.cost_nanos, Some(100), "{model}");
        }
    }
}

#[tokio::test]
async fn embedding_and_chat_models_refuse_each_others_calls_and_embeddings_fall_over() {
    let h = start().await;
    let r = h
        .embed(json!({"model": "claude-bedrock", "input": "x"}))
        .await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not an embedding model"),
        "{v}"
    );

    let r = h
        .post(Dialect::Chat, &body(Dialect::Chat, "emb-titan", false))
        .await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/v1/embeddings"),
        "{v}"
    );

    let r = h.embed(json!({"model": "emb-openai", "input": []})).await;
    assert_eq!(r.status(), 400);

    // One deployment of the group fails with a 500: the other serves the call.
    for _ in 0..3 {
        let r = h
            .embed(json!({"model": "emb-fallback", "input": "hi there"}))
            .await;
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["data"][0]["embedding"].as_array().unwrap().len(), 8);
    }
}

/// `/health` probes Bedrock with a signed call and embedding deployments with an embedding, so
/// every healthy deployment of this config reports healthy (and the failing ones do not).
#[tokio::test]
async fn health_probes_sign_bedrock_calls_and_embed_for_embedding_models() {
    let h = start().await;
    let v: Value = h
        .http
        .get(format!("{}/health", h.url))
        .header("authorization", format!("Bearer {KEY}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names = |k: &str| -> Vec<String> {
        v[k].as_array()
            .unwrap()
            .iter()
            .map(|e| e["deployment"].as_str().unwrap().to_owned())
            .collect()
    };
    let unhealthy = names("unhealthy_endpoints");
    for healthy in [
        "claude-bedrock#0",
        "nova#3",
        "emb-openai#7",
        "emb-gemini#8",
        "emb-titan#9",
        "emb-cohere#10",
    ] {
        assert!(
            names("healthy_endpoints").contains(&healthy.to_owned()),
            "{healthy}: {v}"
        );
    }
    assert!(unhealthy.contains(&"throttled#6".to_owned()), "{v}");
    assert!(unhealthy.contains(&"emb-fallback#11".to_owned()), "{v}");
    let probes: Vec<_> = h
        .mock
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/invoke") && r.path.contains("titan"))
        .collect();
    assert!(probes.iter().all(|r| r.body["inputText"] == "ping"));
}

/// Claude on Bedrock counts with Bedrock's CountTokens (the foundation model id, the body
/// base64 inside `invokeModel`), answered in Anthropic's shape.
#[tokio::test]
async fn count_tokens_uses_bedrocks_counting_endpoint() {
    let h = start().await;
    let r = h
        .http
        .post(format!("{}/v1/messages/count_tokens", h.url))
        .header("authorization", format!("Bearer {KEY}"))
        .json(&json!({"model": "claude-bedrock", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-dragoman-token-count"], "provider");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v, json!({"input_tokens": 4242}));
    let seen = h.mock.last_request().unwrap();
    assert_eq!(
        seen.path,
        "/model/anthropic.claude-haiku-4-5-20251001-v1%3A0/count-tokens"
    );
    let inner = base64::engine::general_purpose::STANDARD
        .decode(seen.body["input"]["invokeModel"]["body"].as_str().unwrap())
        .unwrap();
    let inner: Value = serde_json::from_slice(&inner).unwrap();
    assert_eq!(inner["anthropic_version"], "bedrock-2023-05-31");
    assert_eq!(inner["messages"][0]["content"], "hi");
    assert!(sigv4(&seen.headers, "AKIDTESTEXAMPLE"));
}
