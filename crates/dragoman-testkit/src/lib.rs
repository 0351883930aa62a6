//! Test helpers: a scripted mock upstream that speaks all three dialects over real HTTP.
//!
//! Test-only code: it may panic when the machine cannot give it a socket.
//!
//! The upstream model name picks the behaviour: `fixture/<name>` replays a recording from
//! `test_data/<dialect>/` byte for byte (real traffic), `script/<scenario>` plays a scripted
//! answer (text with cached tokens, tool calls, reasoning, HTTP 429/529, a mid-stream error, an
//! abrupt close, slow chunks, a hang). Scripted answers are built as canonical responses and
//! encoded by dragoman's own encoders, whose correctness the conformance matrix proves on the
//! recordings. Every request is recorded for assertions, and so is every stream the gateway
//! abandoned.

#![allow(clippy::panic)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use dragoman_model::{
    Dialect, ErrorBody, ErrorKind, Losses, Part, ReasoningSeal, StopReason, StreamEvent,
    StreamOptions, ToolKind, Usage,
};
use dragoman_translate as hub;
use serde_json::{Value, json};

/// One request the mock received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
}

#[derive(Default)]
pub struct MockState {
    requests: Mutex<Vec<Recorded>>,
    /// Streams whose reader went away before the mock finished sending.
    pub cancelled: AtomicUsize,
    /// Streams sent to the end.
    pub completed: AtomicUsize,
}

pub struct MockUpstream {
    pub addr: SocketAddr,
    pub state: Arc<MockState>,
}

/// The usage every scripted answer reports: 1234 prompt tokens of which 1024 were read from the
/// cache (so 210 uncached), 12 output tokens of which 0 reasoning.
pub fn scripted_usage() -> Usage {
    Usage {
        input_uncached: Some(210),
        cache_read: Some(1024),
        output: Some(12),
        reasoning: Some(0),
        ..Usage::default()
    }
}

/// The usage of the `accounting` scenario: every bucket a dialect can carry, non-zero.
pub fn accounting_usage() -> Usage {
    Usage {
        input_uncached: Some(200),
        cache_read: Some(1000),
        cache_write: Some(34),
        output: Some(50),
        reasoning: Some(20),
        ..Usage::default()
    }
}

pub fn test_data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../test_data")
}

impl MockUpstream {
    pub async fn start() -> MockUpstream {
        Self::start_on(0).await
    }

    /// Starts on a given port of 127.0.0.1 (0 picks a free one).
    pub async fn start_on(port: u16) -> MockUpstream {
        let state = Arc::new(MockState::default());
        let app = Router::new()
            .route("/v1/chat/completions", post(chat))
            .route("/v1/responses", post(responses))
            .route("/v1/messages", post(messages))
            .route("/v1/messages/count_tokens", post(count))
            .route("/mock/requests", axum::routing::get(recorded))
            .with_state(state.clone());
        let listener = match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
            Ok(l) => l,
            Err(e) => panic!("mock upstream cannot bind: {e}"),
        };
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        MockUpstream { addr, state }
    }

    /// Base URL with `/v1`, as an OpenAI `api_base`.
    pub fn base_v1(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Base URL without `/v1`, as an Anthropic `api_base`.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state
            .requests
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    pub fn last_request(&self) -> Option<Recorded> {
        self.requests().pop()
    }
}

/// Every request received so far, for end-to-end tests that drive the mock as a process.
async fn recorded(State(s): State<Arc<MockState>>) -> Response {
    let list: Vec<Value> = s
        .requests
        .lock()
        .map(|r| {
            r.iter()
                .map(|x| json!({"path": x.path, "body": x.body}))
                .collect()
        })
        .unwrap_or_default();
    axum::Json(Value::Array(list)).into_response()
}

async fn chat(State(s): State<Arc<MockState>>, req: Request) -> Response {
    serve(s, Dialect::Chat, req).await
}
async fn responses(State(s): State<Arc<MockState>>, req: Request) -> Response {
    serve(s, Dialect::Responses, req).await
}
async fn messages(State(s): State<Arc<MockState>>, req: Request) -> Response {
    serve(s, Dialect::Anthropic, req).await
}
async fn count(State(s): State<Arc<MockState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if let Ok(mut r) = s.requests.lock() {
        r.push(Recorded {
            path: parts.uri.path().to_owned(),
            headers: parts.headers,
            body,
        });
    }
    axum::Json(json!({"input_tokens": 4242})).into_response()
}

async fn serve(state: Arc<MockState>, dialect: Dialect, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if let Ok(mut r) = state.requests.lock() {
        r.push(Recorded {
            path: parts.uri.path().to_owned(),
            headers: parts.headers.clone(),
            body: body.clone(),
        });
    }
    let model = body["model"].as_str().unwrap_or_default().to_owned();
    let stream = body["stream"].as_bool().unwrap_or(false);
    if let Some(name) = model.strip_prefix("fixture/") {
        return fixture(state, dialect, name, stream);
    }
    let scenario = model.strip_prefix("script/").unwrap_or("text");
    scripted(state, dialect, scenario, stream, &body).await
}

fn fixture(state: Arc<MockState>, dialect: Dialect, name: &str, stream: bool) -> Response {
    let dir = test_data().join(dialect.as_str());
    if stream {
        let path = dir.join("streams").join(format!("{name}.sse"));
        let Ok(bytes) = std::fs::read(&path) else {
            return (
                StatusCode::NOT_FOUND,
                format!("no fixture {}", path.display()),
            )
                .into_response();
        };
        // One write per SSE event, as providers send them.
        let mut chunks = Vec::new();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let mut rest = text.as_str();
        while let Some(i) = rest.find("\n\n") {
            chunks.push(Bytes::from(rest[..i + 2].to_owned()));
            rest = &rest[i + 2..];
        }
        if !rest.is_empty() {
            chunks.push(Bytes::from(rest.to_owned()));
        }
        sse_response(state, chunks, Duration::ZERO, true)
    } else {
        let path = dir.join("responses").join(format!("{name}.json"));
        match std::fs::read(&path) {
            Ok(b) => (
                [(http_ct(), HeaderValue::from_static("application/json"))],
                b,
            )
                .into_response(),
            Err(_) => (
                StatusCode::NOT_FOUND,
                format!("no fixture {}", path.display()),
            )
                .into_response(),
        }
    }
}

fn http_ct() -> axum::http::HeaderName {
    axum::http::header::CONTENT_TYPE
}

/// The scripted canonical answer for a scenario.
fn script(dialect: Dialect, scenario: &str, request: &Value) -> dragoman_model::Response {
    let mut content = Vec::new();
    let mut stop = StopReason::EndTurn;
    let mut usage = scripted_usage();
    match scenario {
        "tools" | "reasoning-tools" if has_tool_result(request) => {
            // The follow-up turn: the client ran the tool and sent its output back.
            content.push(Part::text("The tool ran."));
        }
        "tools" | "reasoning-tools" => {
            if scenario == "reasoning-tools" {
                // Reasoning sealed by this upstream's family: a client must replay it untouched.
                let seal = match dialect.family() {
                    dragoman_model::Family::Anthropic => {
                        ReasoningSeal::anthropic_signature("sig-mock-1")
                    }
                    dragoman_model::Family::OpenAi => {
                        ReasoningSeal::openai_encrypted(Some("rs_mock_1".into()), "enc-mock-1")
                    }
                };
                content.push(Part::Reasoning {
                    text: "I should use the tool.".into(),
                    seal: Some(seal),
                });
            }
            let names = tool_names(request);
            let pick = ["Bash", "exec_command", "shell", "apply_patch"]
                .iter()
                .find(|n| names.iter().any(|x| x == *n));
            let name = pick
                .map(|n| (*n).to_owned())
                .or_else(|| names.first().cloned())
                .unwrap_or_else(|| "get_weather".into());
            let marker =
                "echo dragoman-tool-ok > dragoman_tool_marker.txt && cat dragoman_tool_marker.txt";
            let args = match name.as_str() {
                "Bash" => {
                    json!({"command": marker, "description": "Create the marker file"}).to_string()
                }
                "exec_command" => json!({"cmd": marker}).to_string(),
                "shell" => json!({"command": ["bash", "-lc", marker]}).to_string(),
                // A custom (freeform) tool reaches a function-only upstream wrapped in `input`.
                "apply_patch" => json!({"input": "*** Begin Patch\n*** End Patch\n"}).to_string(),
                _ => json!({"city": "Paris"}).to_string(),
            };
            content.push(Part::text("Let me check."));
            content.push(Part::ToolCall {
                id: "call_mock_1".into(),
                name,
                arguments: args,
                kind: ToolKind::Function,
            });
            stop = StopReason::ToolUse;
        }
        "reasoning" => {
            let seal = match dialect.family() {
                dragoman_model::Family::Anthropic => {
                    ReasoningSeal::anthropic_signature("sig-mock-1")
                }
                dragoman_model::Family::OpenAi => {
                    ReasoningSeal::openai_encrypted(Some("rs_mock_1".into()), "enc-mock-1")
                }
            };
            content.push(Part::Reasoning {
                text: "Thinking it over.".into(),
                seal: Some(seal),
            });
            content.push(Part::text("Done thinking."));
            usage.output = Some(30);
            usage.reasoning = Some(20);
        }
        "echo" => content.push(Part::text(request.to_string())),
        "accounting" => {
            content.push(Part::text("Counted."));
            usage = accounting_usage();
        }
        _ => content.push(Part::text("Hello from the mock.")),
    }
    dragoman_model::Response {
        id: match dialect {
            Dialect::Anthropic => "msg_mock_1".into(),
            Dialect::Chat => "chatcmpl-mock1".into(),
            Dialect::Responses => "resp_mock_1".into(),
        },
        model: request["model"].as_str().unwrap_or("mock").to_owned(),
        content,
        stop,
        usage,
        extensions: Vec::new(),
    }
}

/// Names of the function tools a request offers, in any of the three dialects.
fn tool_names(request: &Value) -> Vec<String> {
    request["tools"]
        .as_array()
        .map(|tools| {
            tools
                .iter()
                .filter_map(|t| {
                    t["name"]
                        .as_str()
                        .or_else(|| t["function"]["name"].as_str())
                        .map(str::to_owned)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Whether the conversation already carries a tool's output (any dialect).
fn has_tool_result(request: &Value) -> bool {
    let in_messages = request["messages"].as_array().is_some_and(|ms| {
        ms.iter().any(|m| {
            m["role"] == "tool"
                || m["content"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|b| b["type"] == "tool_result"))
        })
    });
    let in_input = request["input"].as_array().is_some_and(|items| {
        items
            .iter()
            .any(|i| i["type"] == "function_call_output" || i["type"] == "custom_tool_call_output")
    });
    in_messages || in_input
}

async fn scripted(
    state: Arc<MockState>,
    dialect: Dialect,
    scenario: &str,
    stream: bool,
    request: &Value,
) -> Response {
    let error_answer = |kind: ErrorKind, status: u16, retry_after: Option<&'static str>| {
        let (_, body) =
            hub::encode_error(dialect, &ErrorBody::new(kind, format!("mock {scenario}")));
        let mut r = (
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            axum::Json(body),
        )
            .into_response();
        if let Some(ra) = retry_after {
            r.headers_mut()
                .insert("retry-after", HeaderValue::from_static(ra));
            r.headers_mut().insert(
                "x-ratelimit-remaining-requests",
                HeaderValue::from_static("0"),
            );
        }
        r
    };
    match scenario {
        "http429" => return error_answer(ErrorKind::RateLimited, 429, Some("7")),
        "http529" => return error_answer(ErrorKind::Overloaded, 529, None),
        "http400" => return error_answer(ErrorKind::InvalidRequest, 400, None),
        "hang" => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        _ => {}
    }
    let resp = script(dialect, scenario, request);
    if !stream {
        let body = hub::encode_response(dialect, &resp, &mut Losses::new());
        return axum::Json(body).into_response();
    }
    let mut events = dragoman_model::response_events(&resp);
    let mut finish = true;
    match scenario {
        "midstream" => {
            events.truncate(events.len().saturating_sub(3));
            events.push(StreamEvent::Error {
                error: ErrorBody::new(ErrorKind::Overloaded, "Overloaded"),
            });
        }
        "abrupt" => {
            events.truncate(events.len().saturating_sub(3));
            finish = false;
        }
        _ => {}
    }
    let mut enc = hub::StreamEncoder::new(dialect, StreamOptions::default());
    let mut sse = Vec::new();
    let mut losses = Losses::new();
    for e in &events {
        enc.push(e, &mut sse, &mut losses);
    }
    if finish && !matches!(events.last(), Some(StreamEvent::Error { .. })) {
        enc.finish(&mut sse, &mut losses);
    }
    let chunks: Vec<Bytes> = sse
        .iter()
        .map(|e| {
            let mut b = Vec::new();
            dragoman_sse::encode(e, &mut b);
            Bytes::from(b)
        })
        .collect();
    let delay = if scenario == "slow" {
        Duration::from_millis(300)
    } else {
        Duration::ZERO
    };
    sse_response(state, chunks, delay, finish)
}

/// Streams `chunks` with `delay` before each; counts whether the reader stayed to the end.
fn sse_response(
    state: Arc<MockState>,
    chunks: Vec<Bytes>,
    delay: Duration,
    _complete: bool,
) -> Response {
    struct Guard {
        state: Arc<MockState>,
        done: bool,
    }
    impl Guard {
        fn mark_done(&mut self) {
            self.done = true;
        }
    }
    impl Drop for Guard {
        fn drop(&mut self) {
            if self.done {
                self.state.completed.fetch_add(1, Ordering::SeqCst);
            } else {
                self.state.cancelled.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
    let guard = Guard { state, done: false };
    let stream = futures_util::stream::unfold(
        (chunks.into_iter(), guard),
        move |(mut it, mut guard)| async move {
            match it.next() {
                Some(c) => {
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    Some((Ok::<Bytes, std::convert::Infallible>(c), (it, guard)))
                }
                None => {
                    guard.mark_done();
                    None
                }
            }
        },
    );
    let mut r = Response::new(Body::from_stream(stream));
    r.headers_mut()
        .insert(http_ct(), HeaderValue::from_static("text/event-stream"));
    r
}
