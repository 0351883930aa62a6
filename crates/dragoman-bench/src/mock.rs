//! The mock upstream the benchmark measures the gateway against: all three dialects, JSON and
//! SSE, with fixed usage numbers. It must cost as little as possible, or a slow mock would
//! flatter the gateway's share of direct throughput, so every body is built once at start and
//! a request only reads `stream` and `stream_options.include_usage` from its JSON.

use std::convert::Infallible;
use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::BodyExt as _;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;

pub const DEFAULT_CHUNKS: usize = 16;
pub const INPUT_TOKENS: u64 = 1234;
pub const CACHED_TOKENS: u64 = 1024;
pub const REASONING_TOKENS: u64 = 8;
/// Anthropic counts uncached input only (INPUT − CACHED).
pub const ANTHROPIC_INPUT_TOKENS: u64 = 210;
const CREATED: u64 = 1_700_000_000;
const CHAT_MODEL: &str = "gpt-4o-mini";
const RESPONSES_MODEL: &str = "gpt-5-codex";
const MESSAGES_MODEL: &str = "claude-sonnet-4-5";
const WORDS: &[&str] = &[
    "Pooled",
    " connections",
    " skip",
    " the",
    " handshake",
    ",",
    " so",
    " each",
    " call",
    " starts",
    " sooner",
    " and",
    " sockets",
    " stay",
    " few",
    ".",
    " Reuse",
    " also",
    " keeps",
    " TLS",
    " sessions",
    " warm",
    ".",
];

/// The routes the mock serves, path without the `/v1` prefix.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Route {
    Chat,
    Responses,
    Messages,
}

/// A stream's events, one `Bytes` per SSE event, and which of them carry text deltas (the
/// per-request chunk delay goes between those).
#[derive(Clone)]
struct Events {
    events: Arc<[Bytes]>,
    deltas: Range<usize>,
}

/// Every body the mock sends for one chunk count.
struct Catalog {
    chat_json: Bytes,
    chat_stream: Events,
    chat_stream_usage: Events,
    responses_json: Bytes,
    responses_stream: Events,
    messages_json: Bytes,
    messages_stream: Events,
}

fn text(chunks: usize) -> String {
    (0..chunks).map(|i| WORDS[i % WORDS.len()]).collect()
}

fn word(i: usize) -> &'static str {
    WORDS[i % WORDS.len()]
}

fn json_bytes(v: &Value) -> anyhow::Result<Bytes> {
    Ok(Bytes::from(serde_json::to_vec(v)?))
}

fn data_event(v: &Value) -> anyhow::Result<Bytes> {
    Ok(Bytes::from(format!(
        "data: {}\n\n",
        serde_json::to_string(v)?
    )))
}

fn named_event(name: &str, v: &Value) -> anyhow::Result<Bytes> {
    Ok(Bytes::from(format!(
        "event: {name}\ndata: {}\n\n",
        serde_json::to_string(v)?
    )))
}

fn output_tokens(chunks: usize) -> u64 {
    chunks as u64 + REASONING_TOKENS
}

fn chat_usage(chunks: usize) -> Value {
    json!({
        "prompt_tokens": INPUT_TOKENS,
        "completion_tokens": output_tokens(chunks),
        "total_tokens": INPUT_TOKENS + output_tokens(chunks),
        "prompt_tokens_details": {"cached_tokens": CACHED_TOKENS, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": REASONING_TOKENS,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0
        }
    })
}

fn chat_chunk(delta: Value, finish: Value, usage_null: bool) -> Value {
    let mut v = json!({
        "id": "chatcmpl-mock",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": CHAT_MODEL,
        "service_tier": "default",
        "system_fingerprint": "fp_mock",
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]
    });
    if usage_null && let Some(o) = v.as_object_mut() {
        o.insert("usage".into(), Value::Null);
    }
    v
}

fn chat_stream(chunks: usize, include_usage: bool) -> anyhow::Result<Events> {
    let mut ev = vec![data_event(&chat_chunk(
        json!({"role": "assistant", "content": "", "refusal": null}),
        Value::Null,
        include_usage,
    ))?];
    for i in 0..chunks {
        ev.push(data_event(&chat_chunk(
            json!({"content": word(i)}),
            Value::Null,
            include_usage,
        ))?);
    }
    ev.push(data_event(&chat_chunk(
        json!({}),
        json!("stop"),
        include_usage,
    ))?);
    if include_usage {
        ev.push(data_event(&json!({
            "id": "chatcmpl-mock",
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": CHAT_MODEL,
            "service_tier": "default",
            "system_fingerprint": "fp_mock",
            "choices": [],
            "usage": chat_usage(chunks)
        }))?);
    }
    ev.push(Bytes::from_static(b"data: [DONE]\n\n"));
    Ok(Events {
        events: ev.into(),
        deltas: 1..1 + chunks,
    })
}

fn responses_usage(chunks: usize) -> Value {
    json!({
        "input_tokens": INPUT_TOKENS,
        "input_tokens_details": {"cached_tokens": CACHED_TOKENS},
        "output_tokens": output_tokens(chunks),
        "output_tokens_details": {"reasoning_tokens": REASONING_TOKENS},
        "total_tokens": INPUT_TOKENS + output_tokens(chunks)
    })
}

fn response_object(status: &str, output: Value, usage: Value) -> Value {
    json!({
        "id": "resp_mock",
        "object": "response",
        "created_at": CREATED,
        "status": status,
        "background": false,
        "error": null,
        "incomplete_details": null,
        "instructions": null,
        "max_output_tokens": null,
        "model": RESPONSES_MODEL,
        "output": output,
        "parallel_tool_calls": true,
        "previous_response_id": null,
        "reasoning": {"effort": null, "summary": null},
        "service_tier": "default",
        "store": false,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": usage,
        "user": null,
        "metadata": {}
    })
}

fn output_text_part(text: &str) -> Value {
    json!({"type": "output_text", "annotations": [], "logprobs": [], "text": text})
}

fn message_item(status: &str, content: Value) -> Value {
    json!({"id": "msg_mock", "type": "message", "status": status, "role": "assistant", "content": content})
}

fn responses_stream(chunks: usize) -> anyhow::Result<Events> {
    let full = text(chunks);
    let done_item = message_item("completed", json!([output_text_part(&full)]));
    let mut seq = 0u64;
    let mut ev = Vec::new();
    let mut push = |ty: &str, mut v: Value| -> anyhow::Result<()> {
        if let Some(o) = v.as_object_mut() {
            // `type` and `sequence_number` lead every event, as OpenAI writes them.
            let mut lead = serde_json::Map::new();
            lead.insert("type".into(), json!(ty));
            lead.insert("sequence_number".into(), json!(seq));
            lead.append(o);
            *o = lead;
        }
        seq += 1;
        ev.push(named_event(ty, &v)?);
        Ok(())
    };
    let in_progress = response_object("in_progress", json!([]), Value::Null);
    push("response.created", json!({"response": in_progress}))?;
    push("response.in_progress", json!({"response": in_progress}))?;
    push(
        "response.output_item.added",
        json!({"output_index": 0, "item": message_item("in_progress", json!([]))}),
    )?;
    push(
        "response.content_part.added",
        json!({"item_id": "msg_mock", "output_index": 0, "content_index": 0, "part": output_text_part("")}),
    )?;
    for i in 0..chunks {
        push(
            "response.output_text.delta",
            json!({"item_id": "msg_mock", "output_index": 0, "content_index": 0, "delta": word(i), "logprobs": []}),
        )?;
    }
    push(
        "response.output_text.done",
        json!({"item_id": "msg_mock", "output_index": 0, "content_index": 0, "text": full, "logprobs": []}),
    )?;
    push(
        "response.content_part.done",
        json!({"item_id": "msg_mock", "output_index": 0, "content_index": 0, "part": output_text_part(&full)}),
    )?;
    push(
        "response.output_item.done",
        json!({"output_index": 0, "item": done_item}),
    )?;
    push(
        "response.completed",
        json!({"response": response_object("completed", json!([done_item]), responses_usage(chunks))}),
    )?;
    Ok(Events {
        events: ev.into(),
        deltas: 4..4 + chunks,
    })
}

fn anthropic_usage(output: u64) -> Value {
    json!({
        "input_tokens": ANTHROPIC_INPUT_TOKENS,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": CACHED_TOKENS,
        "output_tokens": output,
        "service_tier": "standard"
    })
}

fn messages_stream(chunks: usize) -> anyhow::Result<Events> {
    let mut ev = vec![
        named_event(
            "message_start",
            &json!({"type": "message_start", "message": {
                "id": "msg_mock", "type": "message", "role": "assistant", "model": MESSAGES_MODEL,
                "content": [], "stop_reason": null, "stop_sequence": null, "usage": anthropic_usage(1)
            }}),
        )?,
        named_event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        )?,
    ];
    for i in 0..chunks {
        ev.push(named_event(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": word(i)}}),
        )?);
    }
    ev.push(named_event(
        "content_block_stop",
        &json!({"type": "content_block_stop", "index": 0}),
    )?);
    ev.push(named_event(
        "message_delta",
        &json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                "usage": anthropic_usage(output_tokens(chunks))}),
    )?);
    ev.push(named_event(
        "message_stop",
        &json!({"type": "message_stop"}),
    )?);
    Ok(Events {
        events: ev.into(),
        deltas: 2..2 + chunks,
    })
}

impl Catalog {
    fn new(chunks: usize) -> anyhow::Result<Catalog> {
        let full = text(chunks);
        let chat_json = json_bytes(&json!({
            "id": "chatcmpl-mock",
            "object": "chat.completion",
            "created": CREATED,
            "model": CHAT_MODEL,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": full, "refusal": null, "annotations": []},
                "logprobs": null,
                "finish_reason": "stop"
            }],
            "usage": chat_usage(chunks),
            "service_tier": "default",
            "system_fingerprint": "fp_mock"
        }))?;
        let done_item = message_item("completed", json!([output_text_part(&full)]));
        let responses_json = json_bytes(&response_object(
            "completed",
            json!([done_item]),
            responses_usage(chunks),
        ))?;
        let messages_json = json_bytes(&json!({
            "id": "msg_mock",
            "type": "message",
            "role": "assistant",
            "model": MESSAGES_MODEL,
            "content": [{"type": "text", "text": full}],
            "stop_reason": "end_turn",
            "stop_sequence": null,
            "usage": anthropic_usage(output_tokens(chunks))
        }))?;
        Ok(Catalog {
            chat_json,
            chat_stream: chat_stream(chunks, false)?,
            chat_stream_usage: chat_stream(chunks, true)?,
            responses_json,
            responses_stream: responses_stream(chunks)?,
            messages_json,
            messages_stream: messages_stream(chunks)?,
        })
    }

    fn json(&self, route: Route) -> Bytes {
        match route {
            Route::Chat => self.chat_json.clone(),
            Route::Responses => self.responses_json.clone(),
            Route::Messages => self.messages_json.clone(),
        }
    }

    fn stream(&self, route: Route, include_usage: bool) -> Events {
        match route {
            Route::Chat if include_usage => self.chat_stream_usage.clone(),
            Route::Chat => self.chat_stream.clone(),
            Route::Responses => self.responses_stream.clone(),
            Route::Messages => self.messages_stream.clone(),
        }
    }
}

/// The response body: a prebuilt JSON document, or a stream of prebuilt SSE events.
pub enum MockBody {
    Full(Option<Bytes>),
    Events(EventBody),
}

/// Hands hyper one event per poll and returns `Pending` once between events (waking itself at
/// once), because hyper's dispatcher flushes its write buffer when the body is pending: so each
/// event goes out in its own write, as a provider generating tokens sends them, instead of the
/// whole stream coalescing into one write.
pub struct EventBody {
    events: Events,
    next: usize,
    flush_first: bool,
    gap: Duration,
    sleep: Option<tokio::sync::oneshot::Receiver<()>>,
}

/// Waits `d` precisely. tokio's timers tick in whole milliseconds, which would quantize the
/// paced scenario's TTFT and gaps by up to 1 ms (the very resolution the gateway's added
/// latency is judged at), so pacing sleeps on a blocking thread with the OS's own timer.
fn precise_sleep(d: Duration) -> tokio::sync::oneshot::Receiver<()> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::task::spawn_blocking(move || {
        std::thread::sleep(d);
        let _ = tx.send(());
    });
    rx
}

impl EventBody {
    fn poll_event(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let Some(event) = self.events.events.get(self.next).cloned() else {
            return Poll::Ready(None);
        };
        if self.flush_first {
            self.flush_first = false;
            // The gap goes between text deltas only, like a model's inter-token time.
            if !self.gap.is_zero()
                && self.events.deltas.contains(&self.next)
                && self.next > self.events.deltas.start
            {
                self.sleep = Some(precise_sleep(self.gap));
            } else {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
        }
        if let Some(s) = self.sleep.as_mut() {
            let _ = ready!(Pin::new(s).poll(cx));
            self.sleep = None;
        }
        self.next += 1;
        self.flush_first = true;
        Poll::Ready(Some(Ok(Frame::data(event))))
    }
}

impl Body for MockBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            MockBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            MockBody::Events(e) => e.poll_event(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            MockBody::Full(b) => b.is_none(),
            MockBody::Events(e) => e.next >= e.events.events.len(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            MockBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            MockBody::Full(None) => SizeHint::with_exact(0),
            MockBody::Events(_) => SizeHint::default(),
        }
    }
}

/// What the mock reads of a request body; everything else is skipped unparsed.
#[derive(Deserialize)]
struct Probe {
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
}

struct State {
    chunks: usize,
    catalog: Catalog,
}

static JSON: HeaderValue = HeaderValue::from_static("application/json");
static SSE: HeaderValue = HeaderValue::from_static("text/event-stream; charset=utf-8");
static NO_CACHE: HeaderValue = HeaderValue::from_static("no-cache");

fn header_u64(h: &HeaderMap, name: &str) -> Option<u64> {
    h.get(name)?.to_str().ok()?.trim().parse().ok()
}

fn reply(status: StatusCode, ctype: &HeaderValue, body: Bytes) -> Response<MockBody> {
    let mut r = Response::new(MockBody::Full(Some(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, ctype.clone());
    r
}

fn error(status: StatusCode, message: &str) -> Response<MockBody> {
    let body =
        json!({"error": {"message": format!("mock: {message}"), "type": "invalid_request_error"}});
    reply(
        status,
        &JSON,
        Bytes::from(serde_json::to_vec(&body).unwrap_or_default()),
    )
}

async fn handle(
    req: Request<Incoming>,
    state: Arc<State>,
) -> Result<Response<MockBody>, Infallible> {
    let path = req.uri().path();
    let path = path
        .strip_prefix("/v1")
        .filter(|p| p.starts_with('/'))
        .unwrap_or(path);
    let route = match (req.method(), path) {
        (&Method::GET, "/health") => {
            return Ok(reply(
                StatusCode::OK,
                &HeaderValue::from_static("text/plain"),
                Bytes::from_static(b"ok"),
            ));
        }
        // An OTLP receiver for the gateway's traces (`--telemetry`): read and acknowledged.
        (&Method::POST, "/traces") => {
            let _ = req.into_body().collect().await;
            return Ok(reply(
                StatusCode::OK,
                &HeaderValue::from_static("application/x-protobuf"),
                Bytes::new(),
            ));
        }
        (&Method::POST, "/chat/completions") => Route::Chat,
        (&Method::POST, "/responses") => Route::Responses,
        (&Method::POST, "/messages") => Route::Messages,
        _ => return Ok(error(StatusCode::NOT_FOUND, "unknown route")),
    };
    let delay = header_u64(req.headers(), "x-mock-delay-ms").unwrap_or(0);
    let gap = header_u64(req.headers(), "x-mock-chunk-delay-ms").unwrap_or(0);
    let chunks = header_u64(req.headers(), "x-mock-chunks").map(|n| n.max(1) as usize);
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Ok(error(StatusCode::BAD_REQUEST, "unreadable body")),
    };
    let probe: Probe = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => return Ok(error(StatusCode::BAD_REQUEST, &format!("bad JSON: {e}"))),
    };
    if delay > 0 {
        let _ = precise_sleep(Duration::from_millis(delay)).await;
    }
    // A chunk count other than the default is rare (tests, experiments): build it per request.
    let custom;
    let catalog = match chunks {
        Some(n) if n != state.chunks => match Catalog::new(n) {
            Ok(c) => {
                custom = c;
                &custom
            }
            Err(e) => return Ok(error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string())),
        },
        _ => &state.catalog,
    };
    if !probe.stream.unwrap_or(false) {
        return Ok(reply(StatusCode::OK, &JSON, catalog.json(route)));
    }
    let include_usage = probe
        .stream_options
        .and_then(|o| o.include_usage)
        .unwrap_or(false);
    let mut r = Response::new(MockBody::Events(EventBody {
        events: catalog.stream(route, include_usage),
        next: 0,
        flush_first: false,
        gap: Duration::from_millis(gap),
        sleep: None,
    }));
    r.headers_mut().insert(CONTENT_TYPE, SSE.clone());
    r.headers_mut().insert(CACHE_CONTROL, NO_CACHE.clone());
    Ok(r)
}

/// Serves the mock on `listener` until the process ends.
pub async fn serve(listener: TcpListener, chunks: usize) -> anyhow::Result<()> {
    let state = Arc::new(State {
        chunks,
        catalog: Catalog::new(chunks)?,
    });
    let mut builder = http1::Builder::new();
    builder.keep_alive(true).header_read_timeout(None);
    let builder = Arc::new(builder);
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // Out of file descriptors and the like: keep serving the connections we have.
                eprintln!("mock: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let builder = builder.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| handle(req, state.clone()));
            let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
        });
    }
}

/// `dragoman-bench mock`: the mock as its own process, so its CPU is attributable.
pub fn run(port: u16, threads: Option<usize>, chunks: usize) -> anyhow::Result<()> {
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(t) = threads {
        rt.worker_threads(t.max(1));
    }
    let rt = rt
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    rt.block_on(async {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .with_context(|| format!("cannot bind 127.0.0.1:{port}"))?;
        println!("mock listening on http://{}", listener.local_addr()?);
        serve(listener, chunks.max(1)).await
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(events: &Events) -> Vec<Value> {
        events
            .events
            .iter()
            .filter_map(|e| {
                let s = std::str::from_utf8(e).unwrap();
                let data = s.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
                (data != "[DONE]").then(|| serde_json::from_str(data).unwrap())
            })
            .collect()
    }

    #[test]
    fn usage_numbers_are_the_contracted_ones() {
        let c = Catalog::new(DEFAULT_CHUNKS).unwrap();
        let chat: Value = serde_json::from_slice(&c.chat_json).unwrap();
        assert_eq!(chat["usage"]["prompt_tokens"], 1234);
        assert_eq!(
            chat["usage"]["prompt_tokens_details"]["cached_tokens"],
            1024
        );
        assert_eq!(chat["usage"]["completion_tokens"], 24);
        assert_eq!(
            chat["usage"]["completion_tokens_details"]["reasoning_tokens"],
            8
        );
        let resp: Value = serde_json::from_slice(&c.responses_json).unwrap();
        assert_eq!(resp["usage"]["input_tokens"], 1234);
        assert_eq!(resp["usage"]["input_tokens_details"]["cached_tokens"], 1024);
        assert_eq!(resp["usage"]["output_tokens"], 24);
        assert_eq!(
            resp["usage"]["output_tokens_details"]["reasoning_tokens"],
            8
        );
        let msg: Value = serde_json::from_slice(&c.messages_json).unwrap();
        assert_eq!(msg["usage"]["input_tokens"], 210);
        assert_eq!(msg["usage"]["cache_read_input_tokens"], 1024);
        assert_eq!(msg["usage"]["cache_creation_input_tokens"], 0);
        assert_eq!(msg["usage"]["output_tokens"], 24);
    }

    #[test]
    fn streams_have_the_full_event_sequence() {
        let c = Catalog::new(3).unwrap();
        let types: Vec<String> = parse_all(&c.responses_stream)
            .iter()
            .map(|v| v["type"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            types,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.completed"
            ]
        );
        let seq: Vec<u64> = parse_all(&c.responses_stream)
            .iter()
            .map(|v| v["sequence_number"].as_u64().unwrap())
            .collect();
        assert_eq!(seq, (0..11).collect::<Vec<_>>());
        let types: Vec<String> = parse_all(&c.messages_stream)
            .iter()
            .map(|v| v["type"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            types,
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        let chat = parse_all(&c.chat_stream_usage);
        assert_eq!(chat.len(), 6);
        assert_eq!(chat[5]["usage"]["prompt_tokens"], 1234);
        assert_eq!(chat[4]["choices"][0]["finish_reason"], "stop");
        assert_eq!(parse_all(&c.chat_stream).len(), 5);
        assert_eq!(
            c.chat_stream.events.last().unwrap().as_ref(),
            b"data: [DONE]\n\n"
        );
        for s in [&c.chat_stream, &c.responses_stream, &c.messages_stream] {
            assert_eq!(s.deltas.len(), 3);
        }
    }
}
