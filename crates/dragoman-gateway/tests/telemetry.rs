//! What the gateway tells the tools people watch: OTLP spans (decoded here with the
//! OpenTelemetry protobufs) for a streamed translated request, a retried one and a failed one,
//! following the GenAI conventions and the client's `traceparent`, which the upstream receives
//! too; Langfuse's OTLP endpoint with its Basic auth; and LiteLLM's `generic_api` webhook.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use dragoman_testkit::MockUpstream;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::{Value, json};

const KEY: &str = "sk-otel-master";

#[derive(Default)]
struct Received {
    /// (path, authorization header, spans)
    otlp: Vec<(String, Option<String>, Vec<Span>)>,
    webhook: Vec<Value>,
}

type Shared = Arc<Mutex<Received>>;

async fn traces(State(r): State<Shared>, uri: axum::http::Uri, headers: HeaderMap, body: Bytes) {
    let req = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf body");
    let spans = req
        .resource_spans
        .into_iter()
        .flat_map(|rs| rs.scope_spans)
        .flat_map(|ss| ss.spans)
        .collect();
    let auth = headers
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_owned());
    r.lock()
        .unwrap()
        .otlp
        .push((uri.path().to_owned(), auth, spans));
}

async fn webhook(State(r): State<Shared>, body: Bytes) {
    let v: Value = serde_json::from_slice(&body).unwrap();
    r.lock()
        .unwrap()
        .webhook
        .extend(v.as_array().unwrap().iter().cloned());
}

struct Harness {
    url: String,
    http: reqwest::Client,
    mock: MockUpstream,
    got: Shared,
    gw: Arc<dragoman_gateway::Gateway>,
}

async fn start() -> Harness {
    start_with(
        r#"litellm_settings:
  callbacks: ["otel", "generic_api"]
  success_callback: ["langfuse"]"#,
        3,
    )
    .await
}

async fn start_with(callbacks: &str, sinks: usize) -> Harness {
    let got: Shared = Arc::default();
    let app = axum::Router::new()
        .route("/v1/traces", post(traces))
        .route("/api/public/otel/v1/traces", post(traces))
        .route("/hook", post(webhook))
        .with_state(got.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let receiver = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await });
    let mock = MockUpstream::start().await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    drop(dead);
    let yaml = format!(
        r#"
model_list:
  - model_name: "a/*"
    litellm_params: {{model: "anthropic/*", api_base: "{base}", api_key: sk-up, input_cost_per_token: 0.000003, output_cost_per_token: 0.000015}}
  - model_name: routed
    litellm_params: {{model: "openai/script/text", api_base: "http://127.0.0.1:{dead_port}/v1", api_key: sk-up, order: 1}}
    model_info: {{id: dead}}
  - model_name: routed
    litellm_params: {{model: "anthropic/script/text", api_base: "{base}", api_key: sk-up, order: 2}}
    model_info: {{id: live}}
general_settings:
  master_key: {KEY}
{callbacks}
"#,
        base = mock.base(),
    );
    let mut env: HashMap<&str, String> = HashMap::from([
        ("LANGFUSE_HOST", receiver.clone()),
        ("LANGFUSE_PUBLIC_KEY", "pk-lf-test".into()),
        ("LANGFUSE_SECRET_KEY", "sk-lf-test".into()),
        ("GENERIC_LOGGER_ENDPOINT", format!("{receiver}/hook")),
        ("GENERIC_LOGGER_HEADERS", "x-hook=yes".into()),
    ]);
    if sinks > 0 {
        env.insert("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.clone());
    }
    let config = dragoman_config::parse(&yaml, &|k: &str| env.get(k).cloned()).unwrap();
    assert_eq!(
        config.telemetry.sinks.len(),
        sinks,
        "{:?}",
        config.telemetry.sinks
    );
    let gw = dragoman_gateway::Gateway::with_store(config, None, None).unwrap();
    gw.load_tenancy().await.unwrap();
    gw.start_background_tasks();
    let url = common::serve(gw.clone()).await;
    Harness {
        url,
        http: reqwest::Client::new(),
        mock,
        got,
        gw,
    }
}

fn attr<'a>(s: &'a Span, key: &str) -> Option<&'a Any> {
    s.attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_ref()?.value.as_ref())
}

fn text(s: &Span, key: &str) -> String {
    match attr(s, key) {
        Some(Any::StringValue(v)) => v.clone(),
        other => panic!("{key}: {other:?} in {:?}", s.name),
    }
}

fn number(s: &Span, key: &str) -> i64 {
    match attr(s, key) {
        Some(Any::IntValue(v)) => *v,
        other => panic!("{key}: {other:?} in {:?}", s.name),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Harness {
    async fn metrics(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The spans of request `request_id`'s trace sent to `path`, waiting for the batch.
    async fn spans(&self, path: &str, request_id: &str) -> Vec<Span> {
        for _ in 0..100 {
            let all: Vec<Span> = self
                .got
                .lock()
                .unwrap()
                .otlp
                .iter()
                .filter(|(p, _, _)| p == path)
                .flat_map(|(_, _, s)| s.iter().cloned())
                .collect();
            if let Some(root) = all.iter().find(|s| {
                matches!(attr(s, "dragoman.request_id"), Some(Any::StringValue(v)) if v == request_id)
            }) {
                let t = root.trace_id.clone();
                let sid = root.span_id.clone();
                return all
                    .into_iter()
                    .filter(|s| s.trace_id == t && (s.span_id == sid || s.parent_span_id == sid))
                    .collect();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no span for {request_id} at {path}");
    }
}

/// A streamed Responses call to a Claude deployment, inside the client's trace: the request
/// span continues it, names the operation, provider, models and every usage bucket; the
/// attempt's span is its child, and the upstream was told so in `traceparent`.
#[tokio::test]
async fn a_streamed_translated_request_is_one_span_with_its_attempt() {
    let h = start().await;
    let r = h
        .http
        .post(format!("{}/v1/responses", h.url))
        .bearer_auth(KEY)
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .json(&json!({"model": "a/script/text", "input": "hi", "stream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let _ = r.bytes().await.unwrap();
    let spans = h.spans("/v1/traces", &id).await;
    assert_eq!(spans.len(), 2, "{spans:?}");
    let root = spans
        .iter()
        .find(|s| s.parent_span_id == [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7])
        .unwrap();
    assert_eq!(hex(&root.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(root.name, "chat a/script/text");
    assert_eq!(text(root, "gen_ai.operation.name"), "chat");
    assert_eq!(text(root, "gen_ai.provider.name"), "anthropic");
    assert_eq!(text(root, "gen_ai.request.model"), "a/script/text");
    assert_eq!(text(root, "gen_ai.response.model"), "script/text");
    assert!(
        text(root, "gen_ai.response.id").starts_with("msg_mock_"),
        "the upstream's own id"
    );
    assert_eq!(text(root, "dragoman.client_dialect"), "responses");
    assert_eq!(text(root, "dragoman.upstream_dialect"), "anthropic");
    // The mock's scripted usage: 210 uncached, 1024 read from the cache, 12 out.
    assert_eq!(number(root, "gen_ai.usage.input_tokens"), 1234);
    assert_eq!(number(root, "gen_ai.usage.cache_read.input_tokens"), 1024);
    assert_eq!(number(root, "gen_ai.usage.output_tokens"), 12);
    match attr(root, "gen_ai.response.finish_reasons") {
        Some(Any::ArrayValue(a)) => {
            assert!(matches!(&a.values[0].value, Some(Any::StringValue(v)) if v == "stop"))
        }
        other => panic!("finish reasons: {other:?}"),
    }
    assert!(matches!(attr(root, "dragoman.cost_usd"), Some(Any::DoubleValue(c)) if *c > 0.0));
    // No message content unless the operator opts in.
    assert!(attr(root, "gen_ai.input.messages").is_none());
    assert!(attr(root, "gen_ai.output.messages").is_none());
    let attempt = spans
        .iter()
        .find(|s| s.parent_span_id == root.span_id)
        .unwrap();
    assert_eq!(text(attempt, "dragoman.attempt_outcome"), "ok");
    assert!(attempt.start_time_unix_nano >= root.start_time_unix_nano);
    assert!(attempt.end_time_unix_nano <= root.end_time_unix_nano);
    let seen = h.mock.last_request().unwrap();
    assert_eq!(
        seen.headers["traceparent"].to_str().unwrap(),
        format!(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-{}-01",
            hex(&attempt.span_id)
        )
    );
    // Langfuse got the same spans, with its keys as Basic auth.
    let lf = h.spans("/api/public/otel/v1/traces", &id).await;
    assert_eq!(lf.len(), 2);
    let got = h.got.lock().unwrap();
    let (_, auth, _) = got
        .otlp
        .iter()
        .find(|(p, _, _)| p == "/api/public/otel/v1/traces")
        .unwrap();
    assert_eq!(auth.as_deref(), Some("Basic cGstbGYtdGVzdDpzay1sZi10ZXN0"));
}

/// A request whose first deployment is down: two attempt spans, the failed one marked.
#[tokio::test]
async fn a_retried_request_has_a_span_per_attempt() {
    let h = start().await;
    let r = h
        .http
        .post(format!("{}/v1/chat/completions", h.url))
        .bearer_auth(KEY)
        .json(&json!({"model": "routed", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let spans = h.spans("/v1/traces", &id).await;
    assert_eq!(spans.len(), 3, "{spans:?}");
    let mut attempts: Vec<&Span> = spans
        .iter()
        .filter(|s| !s.parent_span_id.is_empty())
        .collect();
    attempts.sort_by_key(|s| s.start_time_unix_nano);
    assert_eq!(text(attempts[0], "dragoman.deployment"), "dead");
    assert_eq!(
        attempts[0].status.as_ref().unwrap().code,
        2,
        "an error status"
    );
    assert_eq!(text(attempts[1], "dragoman.deployment"), "live");
    assert_eq!(text(attempts[1], "dragoman.attempt_outcome"), "ok");
    let root = spans.iter().find(|s| s.parent_span_id.is_empty()).unwrap();
    assert_eq!(number(root, "dragoman.attempts"), 2);
    // A translated whole answer: its id and stop reason as the Claude deployment gave them.
    assert!(text(root, "gen_ai.response.id").starts_with("msg_mock_"));
    assert!(attr(root, "gen_ai.response.finish_reasons").is_some());
    let m = h.metrics().await;
    let exported = m
        .lines()
        .find(|l| l.starts_with("dragoman_telemetry_exported_total"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("{m}"));
    assert!(exported >= 1);
    assert!(m.contains("dragoman_telemetry_dropped_total 0"), "{m}");
}

/// A failed request: the span says so, with the message; Langfuse, a success callback here,
/// is not sent it; the webhook is sent every record.
#[tokio::test]
async fn a_failed_request_is_an_error_span_and_a_webhook_record() {
    let h = start().await;
    let r = h
        .http
        .post(format!("{}/v1/messages", h.url))
        .bearer_auth(KEY)
        .json(&json!({"model": "a/script/http400", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let spans = h.spans("/v1/traces", &id).await;
    let root = spans.iter().find(|s| s.parent_span_id.is_empty()).unwrap();
    assert_eq!(root.status.as_ref().unwrap().code, 2);
    assert_eq!(text(root, "error.type"), "upstream_error");
    assert!(!text(root, "error.message").is_empty());
    for _ in 0..100 {
        if h.got
            .lock()
            .unwrap()
            .webhook
            .iter()
            .any(|r| r["request_id"] == id)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = h.got.lock().unwrap();
    let rec = got.webhook.iter().find(|r| r["request_id"] == id).unwrap();
    assert_eq!(rec["status"], 400);
    assert!(
        !got.otlp.iter().any(|(p, _, s)| p.starts_with("/api/public")
            && s.iter().any(
                |s| matches!(attr(s, "dragoman.request_id"), Some(Any::StringValue(v)) if *v == id)
            )),
        "a failure reached the success-only Langfuse callback"
    );
}

/// Without trace export the client's `traceparent` reaches the upstream as it came (no span of
/// the gateway's would ever be exported to hang the upstream's under).
#[tokio::test]
async fn without_export_the_clients_traceparent_goes_upstream_unchanged() {
    let h = start_with("", 0).await;
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let r = h
        .http
        .post(format!("{}/v1/chat/completions", h.url))
        .bearer_auth(KEY)
        .header("traceparent", tp)
        .header("tracestate", "vendor=1")
        .json(&json!({"model": "a/script/text", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen = h.mock.last_request().unwrap();
    assert_eq!(seen.headers["traceparent"], tp);
    assert_eq!(seen.headers["tracestate"], "vendor=1");
}

/// With the `prometheus` callback `/metrics` has LiteLLM's series under LiteLLM's names and
/// labels, and every series the shipped Grafana dashboard queries exists after some traffic.
#[tokio::test]
async fn litellm_metric_names_serve_the_shipped_dashboard() {
    let h = start_with("litellm_settings:\n  callbacks: [\"prometheus\"]", 0).await;
    for (path, body) in [
        (
            "/v1/chat/completions",
            json!({"model": "a/script/text", "user": "u-1", "messages": [{"role": "user", "content": "hi"}]}),
        ),
        (
            "/v1/chat/completions",
            json!({"model": "routed", "messages": [{"role": "user", "content": "hi"}]}),
        ),
        (
            "/v1/chat/completions",
            json!({"model": "a/script/http400", "messages": [{"role": "user", "content": "hi"}]}),
        ),
        (
            "/v1/chat/completions",
            json!({"model": "a/script/text", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
        ),
    ] {
        let r = h
            .http
            .post(format!("{}{path}", h.url))
            .bearer_auth(KEY)
            .json(&body)
            .send()
            .await
            .unwrap();
        let _ = r.bytes().await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let m = h.metrics().await;
    let line = |prefix: &str, has: &str| {
        m.lines()
            .find(|l| l.starts_with(prefix) && l.contains(has))
            .unwrap_or_else(|| panic!("no {prefix} with {has} in\n{m}"))
            .to_owned()
    };
    let value = |l: &str| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap();
    line(
        "litellm_requests_metric_total{end_user=\"u-1\"",
        "model=\"a/script/text\"",
    );
    // The scripted usage, twice (whole and streamed): 1234 in, 12 out each.
    let input = line("litellm_input_tokens_total{", "model=\"a/script/text\"");
    assert_eq!(
        value(&input) + value(&line("litellm_input_tokens_total{end_user=\"u-1\"", "")),
        2468.0,
        "{m}"
    );
    assert!(value(&line("litellm_spend_metric_total{", "")) > 0.0);
    line(
        "litellm_proxy_failed_requests_metric_total{",
        "status_code=\"400\"",
    );
    line(
        "litellm_deployment_failure_responses_total{",
        "model_id=\"dead\"",
    );
    line(
        "litellm_deployment_success_responses_total{",
        "api_provider=\"anthropic\"",
    );
    assert!(m.contains("litellm_deployment_state{"), "{m}");
    // Every series the dashboard queries.
    let dash: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../docs/grafana/dragoman.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let mut names = Vec::new();
    for p in dash["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            let e = t["expr"].as_str().unwrap();
            let mut rest = e;
            while let Some(i) = rest.find(['l', 'd']) {
                let word: String = rest[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if word.starts_with("litellm_") || word.starts_with("dragoman_") {
                    names.push(word.clone());
                }
                rest = &rest[i + word.len().max(1)..];
            }
        }
    }
    assert!(names.len() >= 10, "{names:?}");
    for n in names {
        assert!(
            m.lines().any(|l| l.starts_with(&n) && !l.starts_with('#')),
            "the dashboard queries {n}, which /metrics does not have:\n{m}"
        );
    }
}

/// Shutdown's flush sends what is queued at once, without waiting for the exporter's clock.
#[tokio::test]
async fn shutdown_flushes_queued_spans() {
    let h = start().await;
    let r = h
        .http
        .post(format!("{}/v1/chat/completions", h.url))
        .bearer_auth(KEY)
        .json(&json!({"model": "a/script/text", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let _ = r.bytes().await.unwrap();
    let t = std::time::Instant::now();
    dragoman_gateway::flush_usage(&h.gw, Duration::from_secs(5)).await;
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    let got = h.got.lock().unwrap();
    assert!(
        got.otlp.iter().any(|(p, _, s)| p == "/v1/traces"
            && s.iter().any(
                |s| matches!(attr(s, "dragoman.request_id"), Some(Any::StringValue(v)) if *v == id)
            )),
        "the request's span was not exported by the flush"
    );
}

/// With `otel.capture_message_content`, spans carry the conversation in the GenAI conventions'
/// shape, whatever the dialect: here a passed-through whole Anthropic call (whose answer is
/// read only because it is traced: its id and stop reason) and a Chat stream translated from
/// Claude's.
#[tokio::test]
async fn message_content_is_in_spans_only_when_opted_in() {
    let h = start_with(
        r#"litellm_settings:
  callbacks: ["otel"]
dragoman_settings:
  otel: {capture_message_content: true}"#,
        1,
    )
    .await;
    let r = h
        .http
        .post(format!("{}/v1/messages", h.url))
        .bearer_auth(KEY)
        .header("anthropic-version", "2023-06-01")
        .json(
            &json!({"model": "a/script/text", "max_tokens": 64, "system": "be brief",
            "messages": [{"role": "user", "content": "hello there"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let answer: Value = r.json().await.unwrap();
    let spans = h.spans("/v1/traces", &id).await;
    let root = spans.iter().find(|s| s.parent_span_id.is_empty()).unwrap();
    assert_eq!(text(root, "dragoman.upstream_dialect"), "anthropic");
    assert_eq!(
        text(root, "gen_ai.response.id"),
        answer["id"].as_str().unwrap()
    );
    assert!(attr(root, "gen_ai.response.finish_reasons").is_some());
    let system: Value = serde_json::from_str(&text(root, "gen_ai.system_instructions")).unwrap();
    assert_eq!(system, json!([{"type": "text", "content": "be brief"}]));
    let input: Value = serde_json::from_str(&text(root, "gen_ai.input.messages")).unwrap();
    assert_eq!(
        input,
        json!([{"role": "user", "parts": [{"type": "text", "content": "hello there"}]}])
    );
    let output: Value = serde_json::from_str(&text(root, "gen_ai.output.messages")).unwrap();
    assert_eq!(output[0]["role"], "assistant");
    assert_eq!(
        output[0]["parts"][0]["content"], answer["content"][0]["text"],
        "{output}"
    );
    assert_eq!(output[0]["finish_reason"], "stop");

    let r = h
        .http
        .post(format!("{}/v1/chat/completions", h.url))
        .bearer_auth(KEY)
        .json(&json!({"model": "a/script/text", "stream": true,
            "messages": [{"role": "user", "content": "stream it"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body = r.text().await.unwrap();
    let spans = h.spans("/v1/traces", &id).await;
    let root = spans.iter().find(|s| s.parent_span_id.is_empty()).unwrap();
    let input: Value = serde_json::from_str(&text(root, "gen_ai.input.messages")).unwrap();
    assert_eq!(input[0]["parts"][0]["content"], "stream it");
    let output: Value = serde_json::from_str(&text(root, "gen_ai.output.messages")).unwrap();
    let streamed = output[0]["parts"][0]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!streamed.is_empty());
    // The text the client read, delta by delta, is the text the span holds.
    let read: String = body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(read, streamed);
}
