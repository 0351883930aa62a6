//! Test helpers: a scripted mock upstream that speaks every dialect over real HTTP.
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

mod aws;
mod embed;

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
    Dialect, ErrorBody, ErrorKind, Framing, Losses, Part, ReasoningSeal, StopReason, StreamEvent,
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
    /// `script/cache-<n>`: the prompt prefixes each scenario (one per deployment) has seen, as
    /// a provider's prompt cache remembers them.
    cached: Mutex<std::collections::HashSet<String>>,
}

pub struct MockUpstream {
    pub addr: SocketAddr,
    pub state: Arc<MockState>,
}

pub use embed::{tokens as embedding_tokens, vector as embedding_vector};

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
            .route("/v1beta/models/{*target}", post(gemini))
            .route(
                "/v1/projects/{project}/locations/{location}/publishers/google/models/{*target}",
                post(vertex_gemini),
            )
            .route(
                "/v1/projects/{project}/locations/{location}/publishers/anthropic/models/{*target}",
                post(vertex_claude),
            )
            .route("/model/{id}/{action}", post(aws::bedrock))
            .route("/v1/embeddings", post(embed::openai))
            .route("/openai/deployments/{dep}/embeddings", post(embed::openai))
            .route(
                "/openai/deployments/{dep}/chat/completions",
                post(azure_chat),
            )
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
/// Azure names the model (its deployment) in the path; Chat's body may still carry one.
async fn azure_chat(
    State(s): State<Arc<MockState>>,
    axum::extract::Path(dep): axum::extract::Path<String>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let mut body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if let Some(o) = body.as_object_mut() {
        o.insert("model".into(), json!(dep));
    }
    let req = Request::from_parts(
        parts,
        axum::body::Body::from(serde_json::to_vec(&body).unwrap_or_default()),
    );
    serve(s, Dialect::Chat, req).await
}
async fn responses(State(s): State<Arc<MockState>>, req: Request) -> Response {
    serve(s, Dialect::Responses, req).await
}
async fn messages(State(s): State<Arc<MockState>>, req: Request) -> Response {
    serve(s, Dialect::Anthropic, req).await
}
/// Vertex refuses a call without an OAuth access token (the tests' tokens start `ya29.`).
fn vertex_unauthorized(req: &Request) -> Option<Response> {
    let ok = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Bearer ya29."));
    (!ok).then(|| {
        (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": {"code": 401, "message": "Request had invalid authentication credentials.", "status": "UNAUTHENTICATED"}})),
        )
            .into_response()
    })
}

/// Gemini on Vertex: the Gemini dialect under a project and location.
async fn vertex_gemini(
    State(s): State<Arc<MockState>>,
    axum::extract::Path((_, _, target)): axum::extract::Path<(String, String, String)>,
    req: Request,
) -> Response {
    if let Some(r) = vertex_unauthorized(&req) {
        return r;
    }
    gemini(State(s), axum::extract::Path(target), req).await
}

/// Claude on Vertex: Anthropic's dialect through `rawPredict` / `streamRawPredict`, the model
/// in the path and Vertex's `anthropic_version` in the body (anything else is refused, as
/// Vertex refuses it).
async fn vertex_claude(
    State(s): State<Arc<MockState>>,
    axum::extract::Path((_, _, target)): axum::extract::Path<(String, String, String)>,
    req: Request,
) -> Response {
    if let Some(r) = vertex_unauthorized(&req) {
        return r;
    }
    let Some((model, action)) = target.rsplit_once(':') else {
        return (StatusCode::NOT_FOUND, "no operation").into_response();
    };
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let mut body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if model == "count-tokens" {
        if let Ok(mut r) = s.requests.lock() {
            r.push(Recorded {
                path: parts.uri.path().to_owned(),
                headers: parts.headers,
                body,
            });
        }
        return axum::Json(json!({"input_tokens": 4242})).into_response();
    }
    let bad = if body.get("model").is_some() {
        Some("model: Extra inputs are not permitted")
    } else if body["anthropic_version"] != "vertex-2023-10-16" {
        Some("anthropic_version: must be vertex-2023-10-16")
    } else if parts.headers.contains_key("anthropic-version") {
        Some("the anthropic-version header is not accepted here")
    } else {
        None
    };
    if let Some(why) = bad {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"type": "error", "error": {"type": "invalid_request_error", "message": why}})),
        )
            .into_response();
    }
    let stream = body["stream"].as_bool().unwrap_or(false);
    if (action == "streamRawPredict") != stream {
        return (
            StatusCode::BAD_REQUEST,
            format!("{action} with stream={stream}"),
        )
            .into_response();
    }
    if let Some(o) = body.as_object_mut() {
        o.insert("model".into(), json!(model));
    }
    let req = Request::from_parts(
        parts,
        axum::body::Body::from(serde_json::to_vec(&body).unwrap_or_default()),
    );
    serve(s, Dialect::Anthropic, req).await
}

/// Gemini names the model and whether to stream in the path.
async fn gemini(
    State(s): State<Arc<MockState>>,
    axum::extract::Path(target): axum::extract::Path<String>,
    req: Request,
) -> Response {
    let Some((model, action)) = target.rsplit_once(':') else {
        return (StatusCode::NOT_FOUND, "no operation").into_response();
    };
    if action == "batchEmbedContents" || action == "predict" {
        return embed::google(s, action, req).await;
    }
    if action == "countTokens" {
        let (parts, body) = req.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX)
            .await
            .unwrap_or_default();
        if let Ok(mut r) = s.requests.lock() {
            r.push(Recorded {
                path: parts.uri.path().to_owned(),
                headers: parts.headers,
                body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            });
        }
        return axum::Json(json!({"totalTokens": 4242})).into_response();
    }
    let stream = action == "streamGenerateContent";
    let model = model.to_owned();
    serve_as(s, Dialect::Gemini, req, Some((model, stream)), Framing::Sse).await
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
    serve_as(state, dialect, req, None, dialect.framing()).await
}

/// Serves one request; `path` is the model and stream flag a dialect gives in its URL.
async fn serve_as(
    state: Arc<MockState>,
    dialect: Dialect,
    req: Request,
    path: Option<(String, bool)>,
    framing: Framing,
) -> Response {
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
    let (model, stream) = path.unwrap_or_else(|| {
        (
            body["model"].as_str().unwrap_or_default().to_owned(),
            body["stream"].as_bool().unwrap_or(false),
        )
    });
    let mut body = body;
    if !dialect.model_in_body()
        && let Some(o) = body.as_object_mut()
    {
        // What the scripts read of any request.
        o.insert("model".into(), json!(model));
    }
    if let Some(name) = model.strip_prefix("fixture/") {
        return fixture(state, dialect, name, stream);
    }
    if let Some(name) = model.strip_prefix("fault/") {
        return match Fault::parse(name) {
            Some(f) => fault(state, dialect, f, stream, &body),
            None => (StatusCode::NOT_FOUND, format!("no fault {name}")).into_response(),
        };
    }
    let scenario = model.strip_prefix("script/").unwrap_or("text");
    scripted(state, dialect, scenario, stream, &body, framing).await
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

/// Reasoning state sealed by this upstream's family: a client must replay it untouched.
fn mock_seal(dialect: Dialect) -> ReasoningSeal {
    match dialect.family() {
        dragoman_model::Family::Anthropic => ReasoningSeal::anthropic_signature("sig-mock-1"),
        dragoman_model::Family::OpenAi => {
            ReasoningSeal::openai_encrypted(Some("rs_mock_1".into()), "enc-mock-1")
        }
        dragoman_model::Family::Google => ReasoningSeal {
            family: dragoman_model::Family::Google,
            kind: dragoman_model::SealKind::Signature,
            payload: "Z2VtaW5pLXNpZy1tb2NrLTE=".into(),
            item_id: None,
        },
    }
}

/// Answers scripted so far, in this process: each gets its own id.
static ANSWERS: AtomicUsize = AtomicUsize::new(0);

/// The scripted canonical answer for a scenario.
fn script(dialect: Dialect, scenario: &str, request: &Value) -> dragoman_model::Response {
    let mut content = Vec::new();
    let mut stop = StopReason::EndTurn;
    let mut usage = scripted_usage();
    // `compacting`: `tools` for an agent that compacts between turns. Asked for a summary, it
    // says the tool ran; a conversation holding that summary has had its tool result.
    let compacted = scenario == "compacting" && request.to_string().contains("SUMMARY-TOOL-RAN");
    match scenario {
        "compacting" if request.to_string().contains("Context checkpoint") => {
            content.push(Part::text("SUMMARY-TOOL-RAN: the marker file was created."));
        }
        "tools" | "reasoning-tools" | "think-tools" | "compacting"
            if has_tool_result(request) || compacted =>
        {
            // The follow-up turn: the client ran the tool and sent its output back.
            content.push(Part::text("The tool ran."));
        }
        "tools" | "reasoning-tools" | "think-tools" | "compacting" => {
            if scenario == "reasoning-tools" {
                // Reasoning sealed by this upstream's family: a client must replay it untouched.
                content.push(Part::Reasoning {
                    text: "I should use the tool.".into(),
                    seal: Some(mock_seal(dialect)),
                });
            }
            if scenario == "think-tools" {
                // DeepSeek's and Kimi's reasoning: plain text, no opaque state.
                content.push(Part::Reasoning {
                    text: "I should use the tool.".into(),
                    seal: None,
                });
            }
            let names = tool_names(request);
            let pick = [
                "Bash",
                "exec_command",
                "shell",
                "run_shell_command",
                "apply_patch",
            ]
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
                // Gemini CLI's shell tool.
                "run_shell_command" => {
                    json!({"command": marker, "description": "Create the marker file"}).to_string()
                }
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
            content.push(Part::Reasoning {
                text: "Thinking it over.".into(),
                seal: Some(mock_seal(dialect)),
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
        // Unique per answer, as a provider's ids are (a response store keys on them).
        id: {
            let n = ANSWERS.fetch_add(1, Ordering::Relaxed) + 1;
            match dialect {
                Dialect::Anthropic => format!("msg_mock_{n}"),
                Dialect::Chat => format!("chatcmpl-mock{n}"),
                Dialect::Responses => format!("resp_mock_{n}"),
                Dialect::Gemini => format!("gemini_mock_{n}"),
                Dialect::Bedrock => format!("bedrock_mock_{n}"),
            }
        },
        model: request["model"].as_str().unwrap_or("mock").to_owned(),
        content,
        stop,
        usage,
        extensions: Vec::new(),
    }
}

/// Names of the function tools a request offers, in any dialect.
fn tool_names(request: &Value) -> Vec<String> {
    request["tools"]
        .as_array()
        .map(|tools| {
            tools
                .iter()
                .flat_map(|t| {
                    let own = t["name"]
                        .as_str()
                        .or_else(|| t["function"]["name"].as_str())
                        .map(str::to_owned);
                    let gemini = t["functionDeclarations"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|f| f["name"].as_str().map(str::to_owned));
                    own.into_iter().chain(gemini).collect::<Vec<_>>()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The index of the first Chat assistant message with tool calls but no `reasoning_content`.
fn missing_reasoning(request: &Value) -> Option<usize> {
    request["messages"].as_array()?.iter().position(|m| {
        m["role"] == "assistant"
            && m["tool_calls"].as_array().is_some_and(|c| !c.is_empty())
            && !m["reasoning_content"].is_string()
    })
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
    let in_contents = request["contents"].as_array().is_some_and(|cs| {
        cs.iter().any(|c| {
            c["parts"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p.get("functionResponse").is_some()))
        })
    });
    in_messages || in_input || in_contents
}

async fn scripted(
    state: Arc<MockState>,
    dialect: Dialect,
    scenario: &str,
    stream: bool,
    request: &Value,
    framing: Framing,
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
    if scenario == "think-tools"
        && let Some(i) = missing_reasoning(request)
    {
        // DeepSeek's thinking models refuse a tool loop whose history lost their reasoning.
        let e = ErrorBody::new(
            ErrorKind::InvalidRequest,
            format!(
                "Missing `reasoning_content` field in the assistant message at message index {i}"
            ),
        );
        let (_, body) = hub::encode_error(dialect, &e);
        return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
    }
    match scenario {
        "http429" => return error_answer(ErrorKind::RateLimited, 429, Some("7")),
        "http429-now" => {
            let mut r = error_answer(ErrorKind::RateLimited, 429, None);
            r.headers_mut()
                .insert("retry-after-ms", HeaderValue::from_static("0"));
            return r;
        }
        "http500" => return error_answer(ErrorKind::Server, 500, None),
        "http401" => return error_answer(ErrorKind::Authentication, 401, None),
        "http400-context" => {
            let mut e = ErrorBody::new(
                ErrorKind::InvalidRequest,
                "This model's maximum context length is 8192 tokens",
            );
            e.code = Some("context_length_exceeded".into());
            let (_, body) = hub::encode_error(dialect, &e);
            return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
        }
        "slowstart" => tokio::time::sleep(Duration::from_millis(150)).await,
        "http529" => return error_answer(ErrorKind::Overloaded, 529, None),
        "http400" => return error_answer(ErrorKind::InvalidRequest, 400, None),
        "hang" => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        _ => {}
    }
    let mut resp = script(dialect, scenario, request);
    if scenario.starts_with("cache-") {
        // The prefix is the conversation's first message: every later turn repeats it.
        let first = request["messages"]
            .get(0)
            .or_else(|| request["input"].get(0))
            .or_else(|| request["contents"].get(0))
            .map(|m| m.to_string())
            .unwrap_or_default();
        let hit = state
            .cached
            .lock()
            .map(|mut c| !c.insert(format!("{scenario}|{first}")))
            .unwrap_or(false);
        resp.usage = if hit {
            Usage {
                input_uncached: Some(10),
                cache_read: Some(1000),
                output: Some(5),
                ..Usage::default()
            }
        } else {
            Usage {
                input_uncached: Some(10),
                cache_write: Some(1000),
                output: Some(5),
                ..Usage::default()
            }
        };
    }
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
            if framing == Framing::EventStreamChunks && e.name() == "error" {
                // Bedrock ends a chunked stream with an exception message, not the model's
                // own error event.
                let message = serde_json::from_str::<Value>(&e.data)
                    .ok()
                    .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                let ex = dragoman_sse::Event::named(
                    "modelStreamErrorException",
                    json!({"message": message, "originalStatusCode": 529}).to_string(),
                );
                hub::write_event(Framing::EventStream, &ex, &mut b);
            } else {
                hub::write_event(framing, e, &mut b);
            }
            Bytes::from(b)
        })
        .collect();
    let delay = if scenario == "slow" {
        Duration::from_millis(300)
    } else {
        Duration::ZERO
    };
    let mut r = sse_response(state, chunks, delay, finish);
    if framing != Framing::Sse {
        r.headers_mut().insert(
            http_ct(),
            HeaderValue::from_static("application/vnd.amazon.eventstream"),
        );
    }
    r
}

/// An upstream misbehaving: `fault/<name>` as the upstream model. Streams are the scripted
/// text answer with the fault spliced in halfway; whole bodies are replaced by the fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// A pause of 400 ms inside an event, between its two halves (stream); the answer is
    /// otherwise complete.
    PauseMidEvent,
    /// A line that is not JSON (`data: this is not json`), then the rest of the answer.
    Garbage,
    /// JSON cut short (`data: {"type":"con`), then the rest of the answer.
    CutJson,
    /// Bytes that are not UTF-8, then the rest of the answer.
    BadUtf8,
    /// One event over the SSE size bound (stream), or a body of over 1 MiB (whole).
    Oversized,
    /// The dialect's own error event, then the rest of the answer including its success
    /// terminal (stream); a 200 carrying the dialect's error envelope (whole).
    ErrorThenMore,
    /// Silence after half the answer, the connection held open (stream); no answer (whole).
    Hang,
    /// The body ends after half the answer, without its terminal event (or half a JSON body).
    Cut,
    /// The connection is reset after half the answer.
    Reset,
    /// An HTML error page from a proxy: status 502, `text/html`.
    Html502,
    /// Responses only: a response with `status: failed` and an error.
    Failed,
    /// Responses only: a completed response with no output at all.
    NoOutput,
}

impl Fault {
    pub const ALL: [Fault; 12] = [
        Fault::PauseMidEvent,
        Fault::Garbage,
        Fault::CutJson,
        Fault::BadUtf8,
        Fault::Oversized,
        Fault::ErrorThenMore,
        Fault::Hang,
        Fault::Cut,
        Fault::Reset,
        Fault::Html502,
        Fault::Failed,
        Fault::NoOutput,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fault::PauseMidEvent => "pause-mid-event",
            Fault::Garbage => "garbage",
            Fault::CutJson => "cut-json",
            Fault::BadUtf8 => "bad-utf8",
            Fault::Oversized => "oversized",
            Fault::ErrorThenMore => "error-then-more",
            Fault::Hang => "hang",
            Fault::Cut => "cut",
            Fault::Reset => "reset",
            Fault::Html502 => "html502",
            Fault::Failed => "failed",
            Fault::NoOutput => "no-output",
        }
    }

    pub fn parse(s: &str) -> Option<Fault> {
        Fault::ALL.into_iter().find(|f| f.name() == s)
    }

    /// Whether `upstream` can have this fault in this form (the last two are Responses
    /// answers; a pause inside an event needs a stream).
    pub fn applies(self, upstream: Dialect, stream: bool) -> bool {
        // The faults are written as SSE damage; the binary event stream's own damage (any
        // split, any flipped bit) is proven by dragoman-eventstream's property tests.
        if upstream.framing() != Framing::Sse {
            return false;
        }
        match self {
            Fault::Failed => upstream == Dialect::Responses,
            // A completed stream with no output passes as the upstream said; only a whole
            // body can be refused before anything was sent.
            Fault::NoOutput => upstream == Dialect::Responses && !stream,
            Fault::PauseMidEvent => stream,
            _ => true,
        }
    }
}

/// One step of a faulty body.
enum Step {
    Bytes(Bytes),
    Sleep(Duration),
    Reset,
    Hang,
}

fn whole_fault(dialect: Dialect, f: Fault, resp: &dragoman_model::Response) -> Vec<Step> {
    let good = hub::encode_response(dialect, resp, &mut Losses::new());
    let good_bytes = serde_json::to_vec(&good).unwrap_or_default();
    let half = || Step::Bytes(Bytes::copy_from_slice(&good_bytes[..good_bytes.len() / 2]));
    match f {
        Fault::Garbage => vec![Step::Bytes(Bytes::from_static(b"this is not json"))],
        Fault::CutJson | Fault::Cut => vec![half()],
        Fault::BadUtf8 => {
            // A byte that is never UTF-8, inside the answer's text.
            let text = good_bytes;
            let at = text
                .windows(5)
                .position(|w| w == b"Hello")
                .unwrap_or(text.len() / 2);
            let mut bad = text[..at].to_vec();
            bad.push(0xff);
            bad.extend_from_slice(&text[at..]);
            vec![Step::Bytes(Bytes::from(bad))]
        }
        Fault::Oversized => {
            let mut v = good;
            if let Some(o) = v.as_object_mut() {
                o.insert("padding".into(), Value::String("x".repeat(1024 * 1024)));
            }
            vec![Step::Bytes(Bytes::from(
                serde_json::to_vec(&v).unwrap_or_default(),
            ))]
        }
        Fault::ErrorThenMore => {
            let (_, body) = hub::encode_error(
                dialect,
                &ErrorBody::new(ErrorKind::Overloaded, "mock overloaded in a 200"),
            );
            vec![Step::Bytes(Bytes::from(
                serde_json::to_vec(&body).unwrap_or_default(),
            ))]
        }
        Fault::Hang => vec![Step::Hang],
        Fault::Reset => vec![half(), Step::Reset],
        Fault::Failed => {
            let body = json!({"id": "resp_mock_1", "object": "response", "status": "failed",
                "model": resp.model, "output": [],
                "error": {"code": "server_error", "message": "mock: the model failed"},
                "usage": {"input_tokens": 10, "output_tokens": 0, "total_tokens": 10}});
            vec![Step::Bytes(Bytes::from(body.to_string()))]
        }
        Fault::NoOutput => {
            let body = json!({"id": "resp_mock_1", "object": "response", "status": "completed",
                "model": resp.model, "output": [],
                "usage": {"input_tokens": 10, "output_tokens": 0, "total_tokens": 10}});
            vec![Step::Bytes(Bytes::from(body.to_string()))]
        }
        Fault::PauseMidEvent | Fault::Html502 => vec![Step::Bytes(Bytes::from(good_bytes))],
    }
}

fn stream_fault(dialect: Dialect, f: Fault, resp: &dragoman_model::Response) -> Vec<Step> {
    let mut losses = Losses::new();
    let mut events = dragoman_model::response_events(resp);
    match f {
        Fault::Failed => {
            // The response fails after its text began: `response.failed` ends the stream.
            events.truncate(events.len().saturating_sub(3));
            events.push(StreamEvent::Error {
                error: ErrorBody::new(ErrorKind::Server, "mock: the model failed"),
            });
        }
        Fault::NoOutput => events.retain(|e| {
            matches!(
                e,
                StreamEvent::MessageStart { .. }
                    | StreamEvent::MessageDelta { .. }
                    | StreamEvent::MessageStop
            )
        }),
        _ => {}
    }
    let sse = hub::encode_stream(dialect, &events, StreamOptions::default(), &mut losses);
    let chunks: Vec<Bytes> = sse
        .iter()
        .map(|e| {
            let mut b = Vec::new();
            dragoman_sse::encode(e, &mut b);
            Bytes::from(b)
        })
        .collect();
    let half = chunks.len() / 2;
    let mut steps: Vec<Step> = chunks[..half].iter().cloned().map(Step::Bytes).collect();
    let mut rest_from = half;
    match f {
        Fault::PauseMidEvent => {
            let c = &chunks[half];
            let mid = c.len() / 2;
            steps.push(Step::Bytes(c.slice(..mid)));
            steps.push(Step::Sleep(Duration::from_millis(400)));
            steps.push(Step::Bytes(c.slice(mid..)));
            rest_from = half + 1;
        }
        Fault::Garbage => steps.push(Step::Bytes(Bytes::from_static(
            b"data: this is not json\n\n",
        ))),
        Fault::CutJson => steps.push(Step::Bytes(Bytes::from_static(
            b"data: {\"type\":\"con\n\n",
        ))),
        Fault::BadUtf8 => steps.push(Step::Bytes(Bytes::from_static(
            b"data: {\"x\": \"\xff\xfe\"}\n\n",
        ))),
        Fault::Oversized => {
            let mut big = b"data: ".to_vec();
            big.resize(dragoman_sse::DEFAULT_MAX_EVENT_BYTES + 1024, b'a');
            big.extend_from_slice(b"\n\n");
            steps.push(Step::Bytes(Bytes::from(big)));
        }
        Fault::ErrorThenMore => {
            // The first half and the dialect's error through one encoder (so the error is
            // numbered as that dialect numbers it), then the rest of the good answer.
            let cut = events.len() / 2;
            let mut head = events[..cut].to_vec();
            head.push(StreamEvent::Error {
                error: ErrorBody::new(ErrorKind::Overloaded, "mock overloaded mid-stream"),
            });
            let sse = hub::encode_stream(dialect, &head, StreamOptions::default(), &mut losses);
            steps = vec![Step::Bytes(Bytes::from(dragoman_sse::encode_all(&sse)))];
        }
        Fault::Hang => {
            steps.push(Step::Hang);
            rest_from = chunks.len();
        }
        Fault::Cut => rest_from = chunks.len(),
        Fault::Reset => {
            steps.push(Step::Reset);
            rest_from = chunks.len();
        }
        Fault::Failed | Fault::NoOutput | Fault::Html502 => {}
    }
    steps.extend(chunks[rest_from..].iter().cloned().map(Step::Bytes));
    steps
}

fn fault(
    state: Arc<MockState>,
    dialect: Dialect,
    f: Fault,
    stream: bool,
    request: &Value,
) -> Response {
    if f == Fault::Html502 {
        return (
            StatusCode::BAD_GATEWAY,
            [(http_ct(), HeaderValue::from_static("text/html"))],
            "<html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1></body></html>",
        )
            .into_response();
    }
    let resp = script(dialect, "text", request);
    if stream {
        stepped(state, stream_fault(dialect, f, &resp), "text/event-stream")
    } else {
        stepped(state, whole_fault(dialect, f, &resp), "application/json")
    }
}

/// A body played step by step; counts whether the reader stayed to the end.
fn stepped(state: Arc<MockState>, steps: Vec<Step>, content_type: &'static str) -> Response {
    let guard = StreamGuard { state, done: false };
    let stream = futures_util::stream::unfold(
        (steps.into_iter(), guard),
        move |(mut it, mut guard)| async move {
            loop {
                match it.next() {
                    Some(Step::Bytes(b)) => {
                        return Some((Ok::<Bytes, std::io::Error>(b), (it, guard)));
                    }
                    Some(Step::Sleep(d)) => tokio::time::sleep(d).await,
                    Some(Step::Reset) => {
                        guard.finished();
                        let e = std::io::Error::other("mock reset");
                        return Some((Err(e), (Vec::new().into_iter(), guard)));
                    }
                    Some(Step::Hang) => tokio::time::sleep(Duration::from_secs(3600)).await,
                    None => {
                        guard.finished();
                        return None;
                    }
                }
            }
        },
    );
    let mut r = Response::new(Body::from_stream(stream));
    r.headers_mut()
        .insert(http_ct(), HeaderValue::from_static(content_type));
    r
}

/// Counts, when a body is dropped, whether its reader stayed to the end.
struct StreamGuard {
    state: Arc<MockState>,
    done: bool,
}

impl StreamGuard {
    fn finished(&mut self) {
        self.done = true;
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        if self.done {
            self.state.completed.fetch_add(1, Ordering::SeqCst);
        } else {
            self.state.cancelled.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Streams `chunks` with `delay` before each; counts whether the reader stayed to the end.
fn sse_response(
    state: Arc<MockState>,
    chunks: Vec<Bytes>,
    delay: Duration,
    _complete: bool,
) -> Response {
    let guard = StreamGuard { state, done: false };
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
                    guard.finished();
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
