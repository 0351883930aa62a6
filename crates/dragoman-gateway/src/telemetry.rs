//! What the request's one exit tells the outside: the structured log line, and, off the
//! request path, OTLP traces (OpenTelemetry's GenAI conventions; to a collector, to Langfuse,
//! or both) and the usage webhook (LiteLLM's `generic_api`).
//!
//! Spans are not recorded as the request runs: they are a projection of the usage record,
//! built by the exporter task from what the tracker hands it at the exit (the record, the trace
//! ids, each attempt's span id and times). The ids are made when the request arrives (or taken
//! from the client's W3C `traceparent`), so each attempt can name its span to the upstream in
//! `traceparent` before any span exists. The request path pays for a few random ids, a record
//! clone and a `try_send`; a full queue drops the export and counts it
//! (`dragoman_telemetry_dropped_total`), it never waits.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use dragoman_accounting::UsageRecord;
use dragoman_config::{Sink, SinkKind, TelemetrySettings};
use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    ResourceSpans, ScopeSpans, Span, Status, span, status,
};
use prometheus_client::metrics::counter::Counter;
use prost::Message;
use tokio::sync::mpsc;

use crate::logsafe::Escaped;

pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// Exports waiting for the exporter; past it they are dropped and counted.
const QUEUE: usize = 8192;
/// Spans (or records) per export request.
const BATCH: usize = 512;
/// How often the exporter looks for finished requests (at most `BATCH` per export, as many
/// exports as there are).
const LINGER: Duration = Duration::from_millis(100);

/// A request's place in a trace: its own span, and its caller's when the client sent one.
#[derive(Clone, Debug)]
pub struct TraceIds {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent: Option<[u8; 8]>,
    pub sampled: bool,
    /// The client's `tracestate`, passed on as it came.
    pub state: Option<HeaderValue>,
}

fn random_span() -> [u8; 8] {
    // Never all zero (an invalid id).
    (fastrand::u64(1..)).to_be_bytes()
}

fn hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    out.iter().any(|b| *b != 0).then_some(out)
}

impl TraceIds {
    /// The client's `traceparent` (version 00, W3C Trace Context), or a new trace, sampled as
    /// `settings` say: a parent's flag decides under a parent-based sampler, else the trace
    /// id's low 8 bytes against the ratio (as OpenTelemetry's `TraceIdRatioBased` does).
    pub fn sampled_by(h: &HeaderMap, settings: &TelemetrySettings) -> TraceIds {
        let mut t = TraceIds::from_headers(h);
        if !(settings.parent_based && t.parent.is_some()) {
            let low = u64::from_be_bytes(t.trace_id[8..].try_into().unwrap_or([0; 8]));
            t.sampled = (low >> 1) < (settings.sample_ratio * (1u64 << 63) as f64) as u64
                || settings.sample_ratio >= 1.0;
        }
        t
    }

    /// The client's `traceparent` (version 00, W3C Trace Context), or a new trace.
    pub fn from_headers(h: &HeaderMap) -> TraceIds {
        let parsed = h
            .get(TRACEPARENT)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let mut p = v.trim().split('-');
                let (ver, t, s, f) = (p.next()?, p.next()?, p.next()?, p.next()?);
                if ver.len() != 2 || ver == "ff" || f.len() != 2 {
                    return None;
                }
                let flags = u8::from_str_radix(f, 16).ok()?;
                Some((hex::<16>(t)?, hex::<8>(s)?, flags & 1 == 1))
            });
        match parsed {
            Some((trace_id, parent, sampled)) => TraceIds {
                trace_id,
                span_id: random_span(),
                parent: Some(parent),
                sampled,
                state: h.get(TRACESTATE).cloned(),
            },
            None => TraceIds {
                trace_id: fastrand::u128(1..).to_be_bytes(),
                span_id: random_span(),
                parent: None,
                sampled: true,
                state: None,
            },
        }
    }

    /// The `traceparent` naming `span` (an attempt's) as the upstream's parent.
    pub fn traceparent(&self, span: &[u8; 8]) -> HeaderValue {
        let v = format!(
            "00-{}-{}-{}",
            crate::tenancy::hex(&self.trace_id),
            crate::tenancy::hex(span),
            if self.sampled { "01" } else { "00" }
        );
        HeaderValue::from_str(&v).unwrap_or(HeaderValue::from_static(""))
    }
}

/// One upstream attempt, as its span will show it.
#[derive(Clone, Debug)]
pub struct AttemptSpan {
    pub span_id: [u8; 8],
    pub deployment: usize,
    pub model: String,
    pub start_ns: u64,
    pub end_ns: u64,
    /// `ok`, or how it failed (a status, `timeout`, `connect`, …).
    pub outcome: String,
}

pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// What the exit hands the exporter.
pub struct Finished {
    pub rec: UsageRecord,
    /// The index of the deployment that answered (or was tried last).
    pub deployment: Option<usize>,
    pub trace: TraceIds,
    pub attempts: Vec<AttemptSpan>,
    pub end_ns: u64,
    pub operation: &'static str,
    pub error: Option<String>,
    pub dropped: Option<String>,
    pub finish_reason: Option<&'static str>,
    pub response_id: Option<String>,
    pub response_model: Option<String>,
    pub team_alias: Option<String>,
    /// A whole answer as the client got it (its dialect), when the span needs what it says
    /// and the request path did not read it (passed through), or for message content.
    pub answer_body: Option<Bytes>,
    /// The conversation, when the operator opted in to message content.
    pub content: Option<Box<Captured>>,
}

/// The client's request and a stream's answer, kept for a span's message content; decoded by
/// the exporter, never on the request path.
pub struct Captured {
    pub request: Bytes,
    /// A stream's answer, as the pump collected it.
    pub streamed: Option<Box<dragoman_model::Response>>,
}

pub struct Telemetry {
    settings: TelemetrySettings,
    tx: std::sync::OnceLock<mpsc::Sender<Arc<Finished>>>,
    /// Exports dropped because the queue was full; requests exported; export calls failed.
    pub dropped: Counter,
    pub exported: Counter,
    pub failed_exports: Counter,
    /// Shutdown asks the exporter to send what is queued now, and waits for it.
    flush: tokio::sync::Notify,
    flushed: tokio::sync::Notify,
}

impl Telemetry {
    pub fn new(settings: TelemetrySettings) -> Telemetry {
        Telemetry {
            settings,
            tx: std::sync::OnceLock::new(),
            dropped: Counter::default(),
            exported: Counter::default(),
            failed_exports: Counter::default(),
            flush: tokio::sync::Notify::new(),
            flushed: tokio::sync::Notify::new(),
        }
    }

    /// Its counters, in `/metrics`.
    pub fn register(&self, m: &mut crate::Metrics) {
        m.register_counter(
            "dragoman_telemetry_dropped",
            "Requests whose telemetry was dropped because the export queue was full",
            self.dropped.clone(),
        );
        m.register_counter(
            "dragoman_telemetry_exported",
            "Requests exported to a telemetry sink (each sink counts)",
            self.exported.clone(),
        );
        m.register_counter(
            "dragoman_telemetry_export_failures",
            "Export calls to a telemetry sink that failed",
            self.failed_exports.clone(),
        );
    }

    /// Whether anything is exported (and so whether requests carry trace state).
    pub fn active(&self) -> bool {
        !self.settings.sinks.is_empty()
    }

    pub fn traces(&self) -> bool {
        self.settings.traces()
    }

    pub fn settings(&self) -> &TelemetrySettings {
        &self.settings
    }

    /// Whether a request of trace `t` has anything to export (an unsampled one goes only to
    /// record sinks).
    pub fn wants(&self, t: Option<&TraceIds>) -> bool {
        t.is_none_or(|t| t.sampled)
            || self
                .settings
                .sinks
                .iter()
                .any(|s| s.kind == SinkKind::Webhook)
    }

    /// Starts the exporter (once, on the runtime that calls it).
    pub fn start(self: &Arc<Self>, gw: Arc<crate::Gateway>) {
        if !self.active() || self.tx.get().is_some() {
            return;
        }
        for s in &self.settings.sinks {
            // The address only: the headers may hold credentials.
            tracing::info!(callback = %s.name, url = %s.url, on_success = s.on_success, on_failure = s.on_failure, "telemetry export on");
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        if self.tx.set(tx).is_ok() {
            tokio::spawn(export_loop(self.clone(), gw, rx));
        }
    }

    /// Exports what is queued (at shutdown, after the last request), waiting up to `within`.
    pub async fn flush(&self, within: Duration) {
        if self.tx.get().is_none() {
            return;
        }
        let done = self.flushed.notified();
        self.flush.notify_one();
        if tokio::time::timeout(within, done).await.is_err() {
            tracing::warn!("telemetry not flushed before shutdown");
        }
    }

    /// Hands a finished request to the exporter; never waits.
    pub fn send(&self, f: Finished) {
        let Some(tx) = self.tx.get() else { return };
        if tx.try_send(Arc::new(f)).is_err() {
            self.dropped.inc();
        }
    }
}

fn kv(key: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

fn s(key: &str, v: impl Into<String>) -> KeyValue {
    kv(key, any_value::Value::StringValue(v.into()))
}

fn int(key: &str, v: u64) -> KeyValue {
    kv(key, any_value::Value::IntValue(v as i64))
}

/// The GenAI conventions' `gen_ai.provider.name` for a deployment's provider.
fn provider_name(p: dragoman_config::Provider) -> &'static str {
    use dragoman_config::Provider;
    match p {
        Provider::OpenAi => "openai",
        Provider::Anthropic => "anthropic",
        Provider::Azure => "azure.ai.openai",
        Provider::Gemini => "gcp.gemini",
        Provider::Vertex => "gcp.vertex_ai",
        Provider::Bedrock => "aws.bedrock",
        Provider::OpenAiCompatible(n) => n,
    }
}

/// The most of one content attribute a span carries: a coding agent's system prompt alone can
/// be 100 KiB, and collectors refuse oversized spans whole.
const MAX_CONTENT_BYTES: usize = 64 * 1024;

/// The GenAI conventions' `gen_ai.system_instructions`, `gen_ai.input.messages` and
/// `gen_ai.output.messages`, from the canonical request and answer (so every dialect reads the
/// same); media are named, not copied.
fn content_attributes(
    c: &Captured,
    dialect: dragoman_model::Dialect,
    whole: Option<&dragoman_model::Response>,
    finish: Option<&str>,
    a: &mut Vec<KeyValue>,
) {
    use serde_json::{Value, json};
    let mut losses = dragoman_model::Losses::default();
    let put = |key: &str, v: Value, a: &mut Vec<KeyValue>| {
        let mut text = v.to_string();
        if text.len() > MAX_CONTENT_BYTES {
            let mut end = MAX_CONTENT_BYTES;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            a.push(kv(
                "dragoman.content_truncated",
                any_value::Value::BoolValue(true),
            ));
        }
        a.push(s(key, text));
    };
    if let Ok(req) = dragoman_translate::decode_request(dialect, &c.request, &mut losses) {
        if !req.system.is_empty() {
            put(
                "gen_ai.system_instructions",
                Value::Array(req.system.iter().map(part_json).collect()),
                a,
            );
        }
        let messages: Vec<Value> = req
            .messages
            .iter()
            .map(|m| json!({"role": role_name(m.role), "parts": m.content.iter().map(part_json).collect::<Vec<_>>()}))
            .collect();
        put("gen_ai.input.messages", Value::Array(messages), a);
    }
    if let Some(r) = whole.or(c.streamed.as_deref()) {
        let msg = json!({
            "role": "assistant",
            "parts": r.content.iter().map(part_json).collect::<Vec<_>>(),
            "finish_reason": finish,
        });
        put("gen_ai.output.messages", Value::Array(vec![msg]), a);
    }
}

fn role_name(r: dragoman_model::Role) -> &'static str {
    use dragoman_model::Role;
    match r {
        Role::System | Role::Developer => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::Tool => "tool",
    }
}

fn part_json(p: &dragoman_model::Part) -> serde_json::Value {
    use dragoman_model::{MediaSource, Part};
    use serde_json::json;
    let media = |modality: &str, src: &MediaSource| match src {
        MediaSource::Url { url } if !url.starts_with("data:") => {
            json!({"type": "uri", "modality": modality, "uri": url})
        }
        MediaSource::Base64 { media_type, .. } => {
            json!({"type": "blob", "modality": modality, "mime_type": media_type})
        }
        MediaSource::FileId { file_id } => {
            json!({"type": "file", "modality": modality, "file_id": file_id})
        }
        MediaSource::Text { text, .. } => json!({"type": "text", "content": text}),
        MediaSource::Url { .. } => json!({"type": "blob", "modality": modality}),
    };
    match p {
        Part::Text { text, .. } => json!({"type": "text", "content": text}),
        Part::Image { source, .. } => media("image", source),
        Part::Document { source, .. } => media("document", source),
        Part::Audio { format, .. } => {
            json!({"type": "blob", "modality": "audio", "mime_type": format!("audio/{format}")})
        }
        Part::ToolCall {
            id,
            name,
            arguments,
            ..
        } => {
            let args = serde_json::from_str::<serde_json::Value>(arguments)
                .unwrap_or_else(|_| serde_json::Value::String(arguments.clone()));
            json!({"type": "tool_call", "id": id, "name": name, "arguments": args})
        }
        Part::ToolResult {
            call_id, content, ..
        } => {
            let text: Vec<&str> = content.iter().filter_map(|p| p.as_text()).collect();
            json!({"type": "tool_call_response", "id": call_id, "response": text.join("\n")})
        }
        Part::Reasoning { text, .. } => json!({"type": "reasoning", "content": text}),
        Part::Refusal { text } => json!({"type": "refusal", "content": text}),
        Part::Opaque { value, .. } => {
            json!({"type": value.get("type").and_then(|t| t.as_str()).unwrap_or("opaque")})
        }
    }
}

/// The request's span and one child per attempt.
fn spans(gw: &crate::Gateway, f: &Finished) -> Vec<Span> {
    let r = &f.rec;
    let u = &r.usage;
    let start = (r.started_at_ms as u64).saturating_mul(1_000_000);
    let dep = f.deployment.map(|i| &gw.config.deployments[i]);
    let mut a = vec![
        s("gen_ai.operation.name", f.operation),
        s("gen_ai.request.model", r.model.clone()),
        s("dragoman.request_id", r.request_id.clone()),
        s("dragoman.client_dialect", r.client_dialect.as_str()),
        s("dragoman.outcome", r.outcome.as_str()),
        int("http.response.status_code", u64::from(r.status)),
        kv(
            "gen_ai.request.stream",
            any_value::Value::BoolValue(r.stream),
        ),
        int("dragoman.attempts", u64::from(r.attempts)),
    ];
    if let Some(d) = dep {
        a.push(s("gen_ai.provider.name", provider_name(d.provider)));
        a.push(s("dragoman.deployment", d.id.clone()));
    }
    if let Some(up) = r.upstream_dialect {
        a.push(s("dragoman.upstream_dialect", up.as_str()));
    }
    // A whole answer the request path passed through unread is read here: its head only,
    // unless message content wants all of it.
    let whole = f
        .answer_body
        .as_ref()
        .filter(|_| f.content.is_some())
        .and_then(|b| {
            dragoman_translate::decode_response(
                r.client_dialect,
                b,
                &mut dragoman_model::Losses::default(),
            )
            .ok()
        });
    let head = match (&whole, &f.answer_body) {
        (Some(w), _) => Some(dragoman_model::ResponseSummary {
            id: Some(w.id.clone()),
            model: Some(w.model.clone()),
            stop: Some(w.stop.clone()),
        }),
        (None, Some(b)) if f.response_id.is_none() => {
            dragoman_translate::response_summary(r.client_dialect, b)
        }
        _ => None,
    };
    let head = head.unwrap_or_default();
    let finish = f
        .finish_reason
        .or_else(|| head.stop.as_ref().map(crate::accounting::finish_reason));
    if let Some(m) = f
        .response_model
        .as_ref()
        .or(head.model.as_ref())
        .or(r.provider_model.as_ref())
    {
        a.push(s("gen_ai.response.model", m.clone()));
    }
    if let Some(id) = f.response_id.as_ref().or(head.id.as_ref()) {
        a.push(s("gen_ai.response.id", id.clone()));
    }
    if let Some(fr) = finish {
        a.push(kv(
            "gen_ai.response.finish_reasons",
            any_value::Value::ArrayValue(opentelemetry_proto::tonic::common::v1::ArrayValue {
                values: vec![AnyValue {
                    value: Some(any_value::Value::StringValue(fr.into())),
                }],
            }),
        ));
    }
    if let Some(n) = u.input_total() {
        a.push(int("gen_ai.usage.input_tokens", n));
    }
    if let Some(n) = u.output {
        a.push(int("gen_ai.usage.output_tokens", n));
    }
    if let Some(n) = u.cache_read {
        a.push(int("gen_ai.usage.cache_read.input_tokens", n));
    }
    if let Some(n) = u.cache_write {
        a.push(int("gen_ai.usage.cache_creation.input_tokens", n));
    }
    if let Some(n) = u.reasoning {
        a.push(int("gen_ai.usage.reasoning.output_tokens", n));
    }
    if let Some(n) = u.input_uncached {
        a.push(int("dragoman.usage.input_uncached_tokens", n));
    }
    if let Some(c) = r.cost_nanos {
        a.push(kv(
            "dragoman.cost_usd",
            any_value::Value::DoubleValue(c as f64 / 1e9),
        ));
    }
    if r.cache_hit {
        a.push(kv("dragoman.cache_hit", any_value::Value::BoolValue(true)));
    }
    if let Some(v) = &r.owner.key_alias {
        a.push(s("dragoman.key_alias", v.clone()));
    }
    if let Some(v) = &r.owner.team_id {
        a.push(s("dragoman.team_id", v.clone()));
    }
    if let Some(v) = &f.team_alias {
        a.push(s("dragoman.team_alias", v.clone()));
    }
    if let Some(c) = &f.content {
        content_attributes(c, r.client_dialect, whole.as_ref(), finish, &mut a);
    }
    if let Some(v) = &r.owner.user_id {
        a.push(s("dragoman.user_id", v.clone()));
    }
    if let Some(v) = &r.owner.end_user {
        a.push(s("gen_ai.request.user", v.clone()));
    }
    if let Some(v) = &f.dropped {
        a.push(s("dragoman.dropped_fields", v.clone()));
    }
    if let Some(v) = &f.error {
        a.push(s("error.message", v.clone()));
    }
    let ok = r.outcome == dragoman_accounting::Outcome::Ok;
    let status_of = |ok: bool, msg: Option<&str>| {
        Some(Status {
            code: if ok {
                status::StatusCode::Unset as i32
            } else {
                status::StatusCode::Error as i32
            },
            message: msg.unwrap_or_default().to_owned(),
        })
    };
    if !ok {
        a.push(s("error.type", r.outcome.as_str()));
    }
    let mut out = Vec::with_capacity(1 + f.attempts.len());
    out.push(Span {
        trace_id: f.trace.trace_id.to_vec(),
        span_id: f.trace.span_id.to_vec(),
        parent_span_id: f.trace.parent.map(|p| p.to_vec()).unwrap_or_default(),
        name: format!("{} {}", f.operation, r.model),
        kind: span::SpanKind::Server as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: f.end_ns.max(start),
        attributes: a,
        status: status_of(ok, f.error.as_deref()),
        ..Default::default()
    });
    for at in &f.attempts {
        let d = &gw.config.deployments[at.deployment];
        let ok = at.outcome == "ok";
        let mut a = vec![
            s("gen_ai.operation.name", f.operation),
            s("gen_ai.provider.name", provider_name(d.provider)),
            s("gen_ai.request.model", at.model.clone()),
            s("dragoman.deployment", d.id.clone()),
            s("dragoman.upstream_dialect", d.dialect.as_str()),
            s("dragoman.attempt_outcome", at.outcome.clone()),
        ];
        if !ok {
            a.push(s("error.type", at.outcome.clone()));
        }
        out.push(Span {
            trace_id: f.trace.trace_id.to_vec(),
            span_id: at.span_id.to_vec(),
            parent_span_id: f.trace.span_id.to_vec(),
            name: format!("{} {}", f.operation, at.model),
            kind: span::SpanKind::Client as i32,
            start_time_unix_nano: at.start_ns,
            end_time_unix_nano: at.end_ns.max(at.start_ns),
            attributes: a,
            status: status_of(ok, None),
            ..Default::default()
        });
    }
    out
}

fn otlp_body(service: &str, spans: Vec<Span>) -> Vec<u8> {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    s("service.name", service),
                    s("service.version", env!("CARGO_PKG_VERSION")),
                ],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "dragoman".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

fn wants(sink: &Sink, f: &Finished) -> bool {
    let ok = f.rec.outcome == dragoman_accounting::Outcome::Ok;
    (ok && sink.on_success) || (!ok && sink.on_failure)
}

async fn post(
    client: &crate::upstream::HttpClient,
    sink: &Sink,
    content_type: &'static str,
    body: Vec<u8>,
) -> Result<(), String> {
    let mut req = http::Request::new(http_body_util::Full::new(Bytes::from(body)));
    *req.method_mut() = http::Method::POST;
    *req.uri_mut() = sink.url.parse().map_err(|e| format!("{e}"))?;
    let h = req.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    for (k, v) in &sink.headers {
        if let (Ok(k), Ok(mut v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v.expose()),
        ) {
            v.set_sensitive(true);
            h.insert(k, v);
        }
    }
    let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .map_err(|_| "timed out".to_owned())?
        .map_err(|e| crate::upstream::describe(&e))?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(format!("status {}", resp.status().as_u16()))
    }
}

async fn export_loop(
    t: Arc<Telemetry>,
    gw: Arc<crate::Gateway>,
    mut rx: mpsc::Receiver<Arc<Finished>>,
) {
    let client = match crate::upstream::tls_config() {
        Ok(tls) => crate::upstream::client(
            Duration::from_secs(5),
            tls,
            crate::upstream::proxies_from_env(),
        ),
        Err(e) => {
            tracing::error!(error = %e, "telemetry export off: no TLS");
            return;
        }
    };
    let mut batch: Vec<Arc<Finished>> = Vec::with_capacity(BATCH);
    let mut tick = tokio::time::interval(LINGER);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut more = false;
    loop {
        // Woken by the clock, not by each request: a wake-up per request (a futex and a
        // context switch on the sending thread) cost more than building its spans. A full
        // batch means more are waiting: no wait then.
        let mut flushing = false;
        if !more {
            tokio::select! {
                _ = tick.tick() => {}
                _ = t.flush.notified() => flushing = true,
            }
        }
        loop {
            match rx.try_recv() {
                Ok(f) => {
                    batch.push(f);
                    if batch.len() == BATCH {
                        break;
                    }
                }
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    if batch.is_empty() {
                        return;
                    }
                    break;
                }
            }
        }
        more = batch.len() == BATCH;
        if batch.is_empty() {
            if flushing {
                t.flushed.notify_one();
            }
            continue;
        }
        for sink in &t.settings.sinks {
            let mine: Vec<&Arc<Finished>> = batch.iter().filter(|f| wants(sink, f)).collect();
            if mine.is_empty() {
                continue;
            }
            let (ct, body) = match sink.kind {
                SinkKind::Otlp => {
                    let spans: Vec<Span> = mine
                        .iter()
                        .filter(|f| f.trace.sampled)
                        .flat_map(|f| spans(&gw, f))
                        .collect();
                    if spans.is_empty() {
                        continue;
                    }
                    (
                        "application/x-protobuf",
                        otlp_body(&t.settings.service_name, spans),
                    )
                }
                SinkKind::Webhook => {
                    let recs: Vec<&UsageRecord> = mine.iter().map(|f| &f.rec).collect();
                    (
                        "application/json",
                        serde_json::to_vec(&recs).unwrap_or_default(),
                    )
                }
            };
            match post(&client, sink, ct, body).await {
                Ok(()) => {
                    t.exported.inc_by(mine.len() as u64);
                }
                Err(e) => {
                    t.failed_exports.inc();
                    tracing::warn!(callback = %sink.name, error = %Escaped(&e), requests = mine.len(), "telemetry export failed");
                }
            }
        }
        batch.clear();
        if flushing {
            if more {
                // The rest of the queue, then the signal.
                t.flush.notify_one();
            } else {
                t.flushed.notify_one();
            }
        }
    }
}

/// The one structured line per request (JSON with `DRAGOMAN_LOG_FORMAT=json`).
pub fn log_exit(r: &UsageRecord, error: Option<&str>) {
    let dropped = r.dropped.as_deref();
    let u = &r.usage;
    let cost = r.cost_nanos.map(crate::accounting::usd);
    tracing::info!(
        request_id = %r.request_id,
        key_alias = r.owner.key_alias.as_deref().map(Escaped).map(tracing::field::display),
        team_id = r.owner.team_id.as_deref().map(Escaped).map(tracing::field::display),
        model = %Escaped(&r.model),
        deployment = r.deployment.as_deref(),
        client = r.client_dialect.as_str(),
        upstream = r.upstream_dialect.map(|d| d.as_str()),
        stream = r.stream,
        status = r.status,
        outcome = r.outcome.as_str(),
        cache_hit = r.cache_hit,
        attempts = r.attempts,
        attempted = r.attempted.as_deref(),
        latency_ms = r.latency_ms,
        ttft_ms = r.ttft_ms,
        input_uncached = u.input_uncached,
        cache_read = u.cache_read,
        cache_write = u.cache_write,
        output = u.output,
        reasoning = u.reasoning,
        usage_estimated = r.usage_estimated,
        cost_usd = cost.as_deref(),
        dropped = dropped.map(Escaped).map(tracing::field::display),
        error = error.map(Escaped).map(tracing::field::display),
        "request done"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ratio_samples_about_its_share_and_a_parent_decides_when_parent_based() {
        let mut t = TelemetrySettings {
            sample_ratio: 0.25,
            parent_based: true,
            ..TelemetrySettings::default()
        };
        let n = (0..4000)
            .filter(|_| TraceIds::sampled_by(&HeaderMap::new(), &t).sampled)
            .count();
        assert!((800..1200).contains(&n), "{n} of 4000 at 0.25");
        let mut h = HeaderMap::new();
        h.insert(
            TRACEPARENT,
            HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"),
        );
        assert!(
            !TraceIds::sampled_by(&h, &t).sampled,
            "the parent said not sampled"
        );
        t.sample_ratio = 1.0;
        t.parent_based = false;
        assert!(TraceIds::sampled_by(&h, &t).sampled);
    }

    #[test]
    fn a_client_traceparent_is_continued_and_a_bad_one_starts_a_trace() {
        let mut h = HeaderMap::new();
        h.insert(
            TRACEPARENT,
            HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        );
        let t = TraceIds::from_headers(&h);
        assert_eq!(
            crate::tenancy::hex(&t.trace_id),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(
            t.parent.map(|p| crate::tenancy::hex(&p)).as_deref(),
            Some("00f067aa0ba902b7")
        );
        assert!(t.sampled);
        let span = [1, 2, 3, 4, 5, 6, 7, 8];
        assert_eq!(
            t.traceparent(&span),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0102030405060708-01"
        );
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "garbage",
        ] {
            let mut h = HeaderMap::new();
            h.insert(TRACEPARENT, HeaderValue::from_static(bad));
            let t = TraceIds::from_headers(&h);
            assert!(t.parent.is_none(), "{bad}");
            assert_ne!(t.trace_id, [0; 16]);
        }
    }
}
