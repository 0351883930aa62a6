//! The hub: picks the one decoder of the source dialect and the one encoder of the target
//! dialect and joins them through the canonical model.
//!
//! Nothing here knows a field of any dialect. Translating A to B is always "decode A into
//! canonical, encode canonical into B"; there is no pairwise code to get wrong for one pair only.

use dragoman_model::{
    DecodeError, Dialect, ErrorBody, Framing, GrammarError, Losses, Request, Response, StreamEvent,
    StreamOptions,
};
use dragoman_sse as sse;
use serde_json::Value;

mod framing;
#[cfg(test)]
mod tests;

pub use dragoman_model as model;

/// Decodes a request body of dialect `d`.
pub fn decode_request(
    d: Dialect,
    body: &[u8],
    losses: &mut Losses,
) -> Result<Request, DecodeError> {
    match d {
        Dialect::Anthropic => dragoman_anthropic::decode_request(body, losses),
        Dialect::Chat => dragoman_openai_chat::decode_request(body, losses),
        Dialect::Responses => dragoman_openai_responses::decode_request(body, losses),
        Dialect::Gemini => dragoman_gemini::decode_request(body, losses),
        Dialect::Bedrock => dragoman_bedrock::decode_request(body, losses),
    }
}

/// Items of a request decoded from `from` that stand for content only `from`'s own server
/// holds (Responses `item_reference`), described for an error: an upstream of another dialect
/// cannot be sent them, and dropping them would change the conversation.
pub fn unresolvable_items(from: Dialect, to: Dialect, req: &Request) -> Vec<String> {
    if from == to {
        return Vec::new();
    }
    match from {
        Dialect::Responses => dragoman_openai_responses::item_references(req),
        Dialect::Anthropic | Dialect::Chat | Dialect::Gemini | Dialect::Bedrock => Vec::new(),
    }
}

/// Decodes a token-count request of dialect `d`: a generation request that may lack what only
/// generation needs. Only Anthropic and Gemini define a counting endpoint.
pub fn decode_count_request(
    d: Dialect,
    body: &[u8],
    losses: &mut Losses,
) -> Result<Request, DecodeError> {
    match d {
        Dialect::Anthropic => dragoman_anthropic::decode_count_request(body, losses),
        Dialect::Gemini => dragoman_gemini::decode_count_request(body, losses),
        Dialect::Chat | Dialect::Responses | Dialect::Bedrock => decode_request(d, body, losses),
    }
}

/// The answer to a token count in dialect `d`.
pub fn encode_token_count(d: Dialect, n: u64) -> Value {
    match d {
        Dialect::Gemini => dragoman_gemini::encode_token_count(n),
        Dialect::Anthropic | Dialect::Chat | Dialect::Responses | Dialect::Bedrock => {
            dragoman_anthropic::encode_token_count(n)
        }
    }
}

/// Asks dialect `d`'s encoder to write the history's reasoning text back on every assistant
/// turn in `field`, for upstreams whose reasoning models need it (DeepSeek, Kimi). Only Chat
/// has such a field; other dialects carry reasoning in their own way already.
pub fn replay_reasoning(d: Dialect, req: &mut Request, field: &str) {
    match d {
        Dialect::Chat => dragoman_openai_chat::replay_reasoning(req, field),
        Dialect::Anthropic | Dialect::Responses | Dialect::Gemini | Dialect::Bedrock => {}
    }
}

/// Encodes a canonical request as dialect `d`.
pub fn encode_request(d: Dialect, req: &Request, losses: &mut Losses) -> Value {
    match d {
        Dialect::Anthropic => dragoman_anthropic::encode_request(req, losses),
        Dialect::Chat => dragoman_openai_chat::encode_request(req, losses),
        Dialect::Responses => dragoman_openai_responses::encode_request(req, losses),
        Dialect::Gemini => dragoman_gemini::encode_request(req, losses),
        Dialect::Bedrock => dragoman_bedrock::encode_request(req, losses),
    }
}

/// Decodes a non-streamed response body of dialect `d`.
pub fn decode_response(
    d: Dialect,
    body: &[u8],
    losses: &mut Losses,
) -> Result<Response, DecodeError> {
    match d {
        Dialect::Anthropic => dragoman_anthropic::decode_response(body, losses),
        Dialect::Chat => dragoman_openai_chat::decode_response(body, losses),
        Dialect::Responses => dragoman_openai_responses::decode_response(body, losses),
        Dialect::Gemini => dragoman_gemini::decode_response(body, losses),
        Dialect::Bedrock => dragoman_bedrock::decode_response(body, losses),
    }
}

/// Whether a whole body that came with a success status is dialect `d`'s successful response,
/// and its usage (see each dialect's `check_response`). Cheap: no tree is built.
pub fn check_response(
    d: Dialect,
    body: &[u8],
) -> Result<dragoman_model::Usage, dragoman_model::ResponseFault> {
    match d {
        Dialect::Anthropic => dragoman_anthropic::check_response(body),
        Dialect::Chat => dragoman_openai_chat::check_response(body),
        Dialect::Responses => dragoman_openai_responses::check_response(body),
        Dialect::Gemini => dragoman_gemini::check_response(body),
        Dialect::Bedrock => dragoman_bedrock::check_response(body),
    }
}

/// The usage of a whole response of dialect `d`, without decoding the rest (the passthrough
/// tap's need).
pub fn decode_response_usage(d: Dialect, body: &[u8]) -> Option<dragoman_model::Usage> {
    match d {
        Dialect::Anthropic => dragoman_anthropic::decode_response_usage(body),
        Dialect::Chat => dragoman_openai_chat::decode_response_usage(body),
        Dialect::Responses => dragoman_openai_responses::decode_response_usage(body),
        Dialect::Gemini => dragoman_gemini::decode_response_usage(body),
        Dialect::Bedrock => dragoman_bedrock::decode_response_usage(body),
    }
}

/// A whole response's id, model and stop reason, for a trace span, without decoding the rest
/// (Bedrock, never a client's dialect, is decoded whole).
pub fn response_summary(d: Dialect, body: &[u8]) -> Option<dragoman_model::ResponseSummary> {
    match d {
        Dialect::Anthropic => dragoman_anthropic::response_summary(body),
        Dialect::Chat => dragoman_openai_chat::response_summary(body),
        Dialect::Responses => dragoman_openai_responses::response_summary(body),
        Dialect::Gemini => dragoman_gemini::response_summary(body),
        Dialect::Bedrock => {
            let r = dragoman_bedrock::decode_response(body, &mut Losses::default()).ok()?;
            Some(dragoman_model::ResponseSummary {
                id: Some(r.id),
                model: Some(r.model),
                stop: Some(r.stop),
            })
        }
    }
}

/// Encodes a canonical response as dialect `d`.
pub fn encode_response(d: Dialect, resp: &Response, losses: &mut Losses) -> Value {
    match d {
        Dialect::Anthropic => dragoman_anthropic::encode_response(resp, losses),
        Dialect::Chat => dragoman_openai_chat::encode_response(resp, losses),
        Dialect::Responses => dragoman_openai_responses::encode_response(resp, losses),
        Dialect::Gemini => dragoman_gemini::encode_response(resp, losses),
        Dialect::Bedrock => dragoman_bedrock::encode_response(resp, losses),
    }
}

/// Reads an error body of dialect `d` (never fails: a body that is not the dialect's envelope
/// becomes the message).
pub fn decode_error(d: Dialect, status: Option<u16>, body: &[u8]) -> ErrorBody {
    match d {
        Dialect::Anthropic => dragoman_anthropic::decode_error(status, body),
        Dialect::Chat => dragoman_openai_chat::decode_error(status, body),
        Dialect::Responses => dragoman_openai_responses::decode_error(status, body),
        Dialect::Gemini => dragoman_gemini::decode_error(status, body),
        Dialect::Bedrock => dragoman_bedrock::decode_error(status, body),
    }
}

/// Renders an error as dialect `d` expects it before the first byte: status and body.
pub fn encode_error(d: Dialect, err: &ErrorBody) -> (u16, Value) {
    match d {
        Dialect::Anthropic => dragoman_anthropic::encode_error(err),
        Dialect::Chat => dragoman_openai_chat::encode_error(err),
        Dialect::Responses => dragoman_openai_responses::encode_error(err),
        Dialect::Gemini => dragoman_gemini::encode_error(err),
        Dialect::Bedrock => dragoman_bedrock::encode_error(err),
    }
}

/// Request translation in one call.
pub fn translate_request(
    from: Dialect,
    to: Dialect,
    body: &[u8],
    losses: &mut Losses,
) -> Result<Value, DecodeError> {
    let req = decode_request(from, body, losses)?;
    Ok(encode_request(to, &req, losses))
}

/// Response translation in one call.
pub fn translate_response(
    from: Dialect,
    to: Dialect,
    body: &[u8],
    losses: &mut Losses,
) -> Result<Value, DecodeError> {
    let resp = decode_response(from, body, losses)?;
    Ok(encode_response(to, &resp, losses))
}

/// The upstream's error when a stream opens with one before any content (Anthropic's
/// `overloaded_error` after a 200, say): nothing has reached the client yet, so the caller may
/// still try elsewhere. `chunk` is the first read of the body, framed as `framing`; events it
/// cuts short are not looked at.
pub fn stream_opening_error(d: Dialect, framing: Framing, chunk: &[u8]) -> Option<ErrorBody> {
    let mut frames = framing::Frames::new(framing);
    let mut events = Vec::new();
    // A first read that does not even frame is the relay's problem to report, not a retry.
    frames.push(chunk, &mut events).ok()?;
    let mut dec = StreamDecoder::new(d);
    let mut out = Vec::new();
    for ev in &events {
        if let Some(e) = frames.exception(ev) {
            return Some(e);
        }
        dec.push(ev, &mut out).ok()?;
        for e in out.drain(..) {
            match e {
                StreamEvent::Error { error } => return Some(error),
                StreamEvent::MessageStart { .. } | StreamEvent::Ping => {}
                _ => return None,
            }
        }
    }
    None
}

/// A dialect's stream decoder, chosen at run time.
#[allow(clippy::large_enum_variant)]
pub enum StreamDecoder {
    Anthropic(dragoman_anthropic::StreamDecoder),
    Chat(dragoman_openai_chat::StreamDecoder),
    Responses(dragoman_openai_responses::StreamDecoder),
    Gemini(dragoman_gemini::StreamDecoder),
    Bedrock(dragoman_bedrock::StreamDecoder),
}

impl StreamDecoder {
    pub fn new(d: Dialect) -> Self {
        match d {
            Dialect::Anthropic => {
                StreamDecoder::Anthropic(dragoman_anthropic::StreamDecoder::new())
            }
            Dialect::Chat => StreamDecoder::Chat(dragoman_openai_chat::StreamDecoder::new()),
            Dialect::Responses => {
                StreamDecoder::Responses(dragoman_openai_responses::StreamDecoder::new())
            }
            Dialect::Gemini => StreamDecoder::Gemini(dragoman_gemini::StreamDecoder::new()),
            Dialect::Bedrock => StreamDecoder::Bedrock(dragoman_bedrock::StreamDecoder::new()),
        }
    }

    pub fn push(&mut self, ev: &sse::Event, out: &mut Vec<StreamEvent>) -> Result<(), DecodeError> {
        match self {
            StreamDecoder::Anthropic(d) => d.push(ev, out),
            StreamDecoder::Chat(d) => d.push(ev, out),
            StreamDecoder::Responses(d) => d.push(ev, out),
            StreamDecoder::Gemini(d) => d.push(ev, out),
            StreamDecoder::Bedrock(d) => d.push(ev, out),
        }
    }

    pub fn finish(&mut self, out: &mut Vec<StreamEvent>) {
        match self {
            StreamDecoder::Anthropic(d) => d.finish(out),
            StreamDecoder::Chat(d) => d.finish(out),
            StreamDecoder::Responses(d) => d.finish(out),
            StreamDecoder::Gemini(d) => d.finish(out),
            StreamDecoder::Bedrock(d) => d.finish(out),
        }
    }

    /// Whether `ev`, arriving right after the upstream's own error event, is the closing event
    /// its dialect sends after one (a relay forwards it; anything else after an error is cut).
    pub fn is_error_trailer(&self, ev: &sse::Event) -> bool {
        match self {
            StreamDecoder::Anthropic(d) => d.is_error_trailer(ev),
            StreamDecoder::Chat(d) => d.is_error_trailer(ev),
            StreamDecoder::Responses(d) => d.is_error_trailer(ev),
            StreamDecoder::Gemini(d) => d.is_error_trailer(ev),
            StreamDecoder::Bedrock(d) => d.is_error_trailer(ev),
        }
    }
}

/// A dialect's stream encoder, chosen at run time. One lives per stream, on the heap inside
/// the pump, so the variants' size difference costs nothing worth an extra allocation.
#[allow(clippy::large_enum_variant)]
pub enum StreamEncoder {
    Anthropic(dragoman_anthropic::StreamEncoder),
    Chat(dragoman_openai_chat::StreamEncoder),
    Responses(dragoman_openai_responses::StreamEncoder),
    Gemini(dragoman_gemini::StreamEncoder),
    Bedrock(dragoman_bedrock::StreamEncoder),
}

impl StreamEncoder {
    pub fn new(d: Dialect, opts: StreamOptions) -> Self {
        match d {
            Dialect::Anthropic => {
                StreamEncoder::Anthropic(dragoman_anthropic::StreamEncoder::new(opts))
            }
            Dialect::Chat => StreamEncoder::Chat(dragoman_openai_chat::StreamEncoder::new(opts)),
            Dialect::Responses => {
                StreamEncoder::Responses(dragoman_openai_responses::StreamEncoder::new(opts))
            }
            Dialect::Gemini => StreamEncoder::Gemini(dragoman_gemini::StreamEncoder::new(opts)),
            Dialect::Bedrock => StreamEncoder::Bedrock(dragoman_bedrock::StreamEncoder::new(opts)),
        }
    }

    pub fn push(&mut self, ev: &StreamEvent, out: &mut Vec<sse::Event>, losses: &mut Losses) {
        match self {
            StreamEncoder::Anthropic(e) => e.push(ev, out, losses),
            StreamEncoder::Chat(e) => e.push(ev, out, losses),
            StreamEncoder::Responses(e) => e.push(ev, out, losses),
            StreamEncoder::Gemini(e) => e.push(ev, out, losses),
            StreamEncoder::Bedrock(e) => e.push(ev, out, losses),
        }
    }

    /// Continues the running counts of a relayed stream after `last`, the last event
    /// forwarded, so an ending added to it is numbered as the upstream would have.
    pub fn continue_after(&mut self, last: &sse::Event) {
        match self {
            StreamEncoder::Anthropic(e) => e.continue_after(last),
            StreamEncoder::Chat(e) => e.continue_after(last),
            StreamEncoder::Responses(e) => e.continue_after(last),
            StreamEncoder::Gemini(e) => e.continue_after(last),
            StreamEncoder::Bedrock(e) => e.continue_after(last),
        }
    }

    pub fn finish(&mut self, out: &mut Vec<sse::Event>, losses: &mut Losses) {
        match self {
            StreamEncoder::Anthropic(e) => e.finish(out, losses),
            StreamEncoder::Chat(e) => e.finish(out, losses),
            StreamEncoder::Responses(e) => e.finish(out, losses),
            StreamEncoder::Gemini(e) => e.finish(out, losses),
            StreamEncoder::Bedrock(e) => e.finish(out, losses),
        }
    }
}

/// A dialect's stream grammar checker, chosen at run time.
#[allow(clippy::large_enum_variant)]
pub enum Validator {
    Anthropic(dragoman_anthropic::Validator),
    Chat(dragoman_openai_chat::Validator),
    Responses(dragoman_openai_responses::Validator),
    Gemini(dragoman_gemini::Validator),
    Bedrock(dragoman_bedrock::Validator),
}

impl Validator {
    pub fn new(d: Dialect) -> Self {
        match d {
            Dialect::Anthropic => Validator::Anthropic(dragoman_anthropic::Validator::new()),
            Dialect::Chat => Validator::Chat(dragoman_openai_chat::Validator::new()),
            Dialect::Responses => Validator::Responses(dragoman_openai_responses::Validator::new()),
            Dialect::Gemini => Validator::Gemini(dragoman_gemini::Validator::new()),
            Dialect::Bedrock => Validator::Bedrock(dragoman_bedrock::Validator::new()),
        }
    }

    pub fn push(&mut self, ev: &sse::Event) -> Result<(), GrammarError> {
        match self {
            Validator::Anthropic(v) => v.push(ev),
            Validator::Chat(v) => v.push(ev),
            Validator::Responses(v) => v.push(ev),
            Validator::Gemini(v) => v.push(ev),
            Validator::Bedrock(v) => v.push(ev),
        }
    }

    pub fn finish(&mut self) -> Result<(), GrammarError> {
        match self {
            Validator::Anthropic(v) => v.finish(),
            Validator::Chat(v) => v.finish(),
            Validator::Responses(v) => v.finish(),
            Validator::Gemini(v) => v.finish(),
            Validator::Bedrock(v) => v.finish(),
        }
    }
}

/// Checks a whole stream against dialect `d`'s grammar.
pub fn validate(d: Dialect, events: &[sse::Event]) -> Result<(), GrammarError> {
    let mut v = Validator::new(d);
    for e in events {
        v.push(e)?;
    }
    v.finish()
}

/// Why a stream translation stopped early.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    #[error("sse framing: {0}")]
    Framing(#[from] sse::SseError),
    #[error("{0}")]
    EventStream(#[from] dragoman_eventstream::FrameError),
    #[error("{0}")]
    Decode(#[from] DecodeError),
}

/// Bytes of one dialect's stream in, bytes of another's out, incrementally: every complete
/// input event is translated and written as soon as it arrives, nothing is held back beyond
/// what the target grammar forces (blocks that cannot interleave).
pub struct StreamTranslator {
    framing: framing::Frames,
    /// The target's framing.
    out_framing: Framing,
    decoder: StreamDecoder,
    encoder: StreamEncoder,
    sse_events: Vec<sse::Event>,
    canonical: Vec<StreamEvent>,
    encoded: Vec<sse::Event>,
    failed: bool,
    observed: Observed,
    args: ArgsGuard,
    custom: CustomUnwrap,
    collector: Gather,
}

/// The custom tools of `req` that `upstream` cannot declare and receives wrapped as functions
/// taking one string `input` (Anthropic and Gemini have no freeform tools; the OpenAI dialects do).
pub fn custom_tools_to_unwrap(req: &Request, upstream: Dialect) -> Vec<String> {
    if upstream.has_freeform_tools() {
        return Vec::new();
    }
    req.tools
        .iter()
        .filter_map(|t| match t {
            dragoman_model::Tool::Custom { name, .. } => Some(name.clone()),
            _ => None,
        })
        .collect()
}

/// The raw input of a wrapped custom tool call: the `input` string of `{"input": "..."}`.
fn unwrapped_input(arguments: &str) -> Option<String> {
    match serde_json::from_str::<serde_json::Value>(arguments).ok()? {
        serde_json::Value::Object(mut m) => match m.remove("input")? {
            serde_json::Value::String(s) => Some(s),
            _ => None,
        },
        _ => None,
    }
}

/// Turns calls of wrapped custom tools in a whole response back into custom tool calls.
pub fn unwrap_custom_calls(resp: &mut Response, names: &[String]) {
    if names.is_empty() {
        return;
    }
    for part in &mut resp.content {
        if let dragoman_model::Part::ToolCall {
            name,
            arguments,
            kind,
            ..
        } = part
            && *kind == dragoman_model::ToolKind::Function
            && names.contains(name)
            && let Some(raw) = unwrapped_input(arguments)
        {
            *arguments = raw;
            *kind = dragoman_model::ToolKind::Custom;
        }
    }
}

/// The streaming form of [`unwrap_custom_calls`]: a wrapped call's block is held until it
/// stops (its JSON is only whole then) and released as one custom tool call block.
#[derive(Default)]
struct CustomUnwrap {
    names: Vec<String>,
    held: Vec<(usize, String, String, String)>,
}

impl CustomUnwrap {
    fn apply(&mut self, events: &mut Vec<StreamEvent>) {
        if self.names.is_empty() {
            return;
        }
        use dragoman_model::{BlockKind, Delta, ToolKind};
        let mut out = Vec::with_capacity(events.len());
        for ev in events.drain(..) {
            match ev {
                StreamEvent::BlockStart {
                    index,
                    block:
                        BlockKind::ToolCall {
                            id,
                            name,
                            kind: ToolKind::Function,
                        },
                } if self.names.contains(&name) => {
                    self.held.push((index, id, name, String::new()));
                }
                StreamEvent::BlockDelta {
                    index,
                    delta: Delta::Arguments(a),
                } if self.held.iter().any(|h| h.0 == index) => {
                    if let Some(h) = self.held.iter_mut().find(|h| h.0 == index) {
                        h.3.push_str(&a);
                    }
                }
                StreamEvent::BlockStop { index } if self.held.iter().any(|h| h.0 == index) => {
                    if let Some(pos) = self.held.iter().position(|h| h.0 == index) {
                        let (index, id, name, args) = self.held.remove(pos);
                        let (kind, args) = match unwrapped_input(&args) {
                            Some(raw) => (ToolKind::Custom, raw),
                            None => (ToolKind::Function, args),
                        };
                        out.push(StreamEvent::BlockStart {
                            index,
                            block: BlockKind::ToolCall { id, name, kind },
                        });
                        if !args.is_empty() {
                            out.push(StreamEvent::BlockDelta {
                                index,
                                delta: Delta::Arguments(args),
                            });
                        }
                        out.push(StreamEvent::BlockStop { index });
                    }
                }
                other => out.push(other),
            }
        }
        *events = out;
    }
}

/// Keeps the arguments of function tool calls and, when a stream would end successfully with
/// arguments that are not JSON, ends it with an error instead (traps §23): a client must not
/// run a tool on truncated or garbled arguments. A stream cut by the token limit keeps its
/// partial arguments, as every dialect reports them then.
#[derive(Default)]
struct ArgsGuard {
    calls: Vec<(usize, String, String)>,
}

impl ArgsGuard {
    fn check(&mut self, events: &mut Vec<StreamEvent>) {
        let mut bad = None;
        for ev in events.iter() {
            match ev {
                StreamEvent::BlockStart {
                    index,
                    block:
                        dragoman_model::BlockKind::ToolCall {
                            name,
                            kind: dragoman_model::ToolKind::Function,
                            ..
                        },
                } => self.calls.push((*index, name.clone(), String::new())),
                StreamEvent::BlockDelta {
                    index,
                    delta: dragoman_model::Delta::Arguments(a),
                } => {
                    if let Some(c) = self.calls.iter_mut().find(|c| c.0 == *index) {
                        c.2.push_str(a);
                    }
                }
                StreamEvent::MessageDelta { stop, .. }
                    if !matches!(
                        stop,
                        dragoman_model::StopReason::MaxTokens
                            | dragoman_model::StopReason::ContextWindowExceeded
                    ) =>
                {
                    bad = self
                        .calls
                        .iter()
                        .find(|c| {
                            !c.2.trim().is_empty()
                                && serde_json::from_str::<serde_json::Value>(&c.2).is_err()
                        })
                        .map(|c| c.1.clone());
                }
                _ => {}
            }
        }
        if let Some(name) = bad
            && let Some(pos) = events
                .iter()
                .position(|e| matches!(e, StreamEvent::MessageDelta { .. }))
        {
            events.truncate(pos);
            events.push(StreamEvent::Error {
                error: ErrorBody::new(
                    dragoman_model::ErrorKind::Server,
                    format!(
                        "upstream produced arguments for tool `{name}` that are not valid JSON"
                    ),
                ),
            });
        }
    }
}

/// The whole answer of a stream, gathered in canonical form as its events pass, when asked
/// for (a response cache's entry). A stream the collector refuses is simply not gathered.
#[derive(Default)]
struct Gather(Option<dragoman_model::Collector>);

impl Gather {
    fn on() -> Gather {
        Gather(Some(dragoman_model::Collector::new()))
    }

    fn see(&mut self, ev: &StreamEvent) {
        if let Some(c) = &mut self.0
            && c.push(ev).is_err()
        {
            self.0 = None;
        }
    }

    fn take(&mut self, observed: &Observed) -> Option<Response> {
        if observed.success != Some(true) {
            return None;
        }
        self.0.take()?.finish().ok()
    }
}

/// What a stream said about itself, gathered as it passes: for logs and accounting.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    /// Cumulative usage: `MessageStart` merged with `MessageDelta`.
    pub usage: dragoman_model::Usage,
    pub stop: Option<dragoman_model::StopReason>,
    /// `Some(true)`: ended with `MessageStop`; `Some(false)`: ended with an error.
    pub success: Option<bool>,
    /// The error the stream ended with, if any.
    pub error: Option<ErrorBody>,
    /// Whether any canonical event has passed (the client has been sent the start).
    pub started: bool,
    /// Characters of generated text, reasoning and tool arguments seen: the basis of an output
    /// estimate when the upstream never reports usage (a cut or cancelled stream).
    pub output_chars: u64,
    /// The answer's id and model as the upstream named them (its first `MessageStart`).
    pub response_id: Option<String>,
    pub response_model: Option<String>,
}

impl Observed {
    fn see(&mut self, ev: &StreamEvent) {
        self.started = true;
        match ev {
            StreamEvent::MessageStart { usage, id, model } => {
                self.usage.merge_from(usage);
                if self.response_id.is_none() {
                    self.response_id = (!id.is_empty()).then(|| id.clone());
                    self.response_model = (!model.is_empty()).then(|| model.clone());
                }
            }
            StreamEvent::MessageDelta { stop, usage } => {
                self.usage.merge_from(usage);
                self.stop = Some(stop.clone());
            }
            StreamEvent::MessageStop => self.success = Some(true),
            StreamEvent::BlockDelta { delta, .. } => {
                let n = match delta {
                    dragoman_model::Delta::Text(t)
                    | dragoman_model::Delta::Reasoning(t)
                    | dragoman_model::Delta::Arguments(t)
                    | dragoman_model::Delta::Refusal(t) => t.chars().count(),
                    _ => 0,
                };
                self.output_chars += n as u64;
            }
            StreamEvent::Error { error } => {
                self.success = Some(false);
                self.error = Some(error.clone());
            }
            _ => {}
        }
    }

    /// True once the stream reached its terminal event, either way.
    pub fn ended(&self) -> bool {
        self.success.is_some()
    }
}

impl StreamTranslator {
    pub fn new(from: Dialect, to: Dialect, opts: StreamOptions) -> Self {
        StreamTranslator {
            framing: framing::Frames::new(from.framing()),
            out_framing: to.framing(),
            decoder: StreamDecoder::new(from),
            encoder: StreamEncoder::new(to, opts),
            sse_events: Vec::new(),
            canonical: Vec::new(),
            encoded: Vec::new(),
            failed: false,
            observed: Observed::default(),
            args: ArgsGuard::default(),
            custom: CustomUnwrap::default(),
            collector: Gather::default(),
        }
    }

    /// Also gathers the whole answer, in canonical form, for [`StreamTranslator::collected`].
    pub fn collecting(mut self) -> Self {
        self.collector = Gather::on();
        self
    }

    /// The answer gathered so far, once the stream has ended well.
    pub fn collected(&mut self) -> Option<Response> {
        self.collector.take(&self.observed)
    }

    /// Names of the client's custom (freeform) tools that were sent to the upstream wrapped as
    /// one-string functions (see [`custom_tools_to_unwrap`]): their calls are unwrapped back into
    /// custom tool calls on the way to the client.
    pub fn unwrap_custom_tools(mut self, names: Vec<String>) -> Self {
        self.custom.names = names;
        self
    }

    /// Reads the upstream in `f` rather than its dialect's own framing (Claude's events inside
    /// Bedrock's event-stream chunks).
    pub fn with_input_framing(mut self, f: Framing) -> Self {
        self.framing = framing::Frames::new(f);
        self
    }

    /// What the stream has said so far.
    pub fn observed(&self) -> &Observed {
        &self.observed
    }

    /// A keep-alive for a silent stream: the target's own ping event where it has one and the
    /// stream has started, otherwise an SSE comment, which every client ignores.
    pub fn keepalive(&mut self, out: &mut Vec<u8>, losses: &mut Losses) {
        if self.observed.started && !self.observed.ended() {
            self.encoded.clear();
            self.encoder
                .push(&StreamEvent::Ping, &mut self.encoded, losses);
            if !self.encoded.is_empty() {
                for e in &self.encoded {
                    framing::write(self.out_framing, e, out);
                }
                return;
            }
        }
        // Only SSE has comments; a binary stream's client waits silently.
        if self.out_framing == Framing::Sse {
            sse::comment("keep-alive", out);
        }
    }

    /// Translates the complete events in `bytes`, appending target bytes to `out`. On malformed
    /// input the target receives its dialect's error event (never a success terminal) and the
    /// error is returned; later input is ignored.
    pub fn push(
        &mut self,
        bytes: &[u8],
        out: &mut Vec<u8>,
        losses: &mut Losses,
    ) -> Result<(), StreamError> {
        if self.failed {
            return Ok(());
        }
        self.sse_events.clear();
        if let Err(e) = self.framing.push(bytes, &mut self.sse_events) {
            self.fail(
                ErrorBody::new(dragoman_model::ErrorKind::Server, e.to_string()),
                out,
                losses,
            );
            return Err(e);
        }
        self.translate_pending(out, losses)
    }

    /// Ends the input: a stream that never reached its terminal event ends with the target's
    /// error event.
    pub fn finish(&mut self, out: &mut Vec<u8>, losses: &mut Losses) -> Result<(), StreamError> {
        if self.failed {
            return Ok(());
        }
        self.sse_events.clear();
        if let Err(e) = self.framing.finish(&mut self.sse_events) {
            self.fail(
                ErrorBody::new(dragoman_model::ErrorKind::Server, e.to_string()),
                out,
                losses,
            );
            return Err(e);
        }
        self.translate_pending(out, losses)?;
        self.canonical.clear();
        self.decoder.finish(&mut self.canonical);
        self.emit(out, losses);
        if !self.observed.ended() {
            // The input stopped short of its end and its decoder said nothing of it (Gemini's
            // has no terminal event to miss): the client still gets its dialect's error ending,
            // not a stream that just stops.
            self.canonical.clear();
            self.canonical.push(StreamEvent::Error {
                error: ErrorBody::truncated_stream(),
            });
            self.emit(out, losses);
        }
        self.encoded.clear();
        self.encoder.finish(&mut self.encoded, losses);
        for e in &self.encoded {
            framing::write(self.out_framing, e, out);
        }
        Ok(())
    }

    /// Ends the stream with `error` in the target dialect (used when the upstream connection
    /// fails or the input is malformed).
    pub fn fail(&mut self, error: ErrorBody, out: &mut Vec<u8>, losses: &mut Losses) {
        if self.failed {
            return;
        }
        self.failed = true;
        self.canonical.clear();
        self.canonical.push(StreamEvent::Error { error });
        self.emit(out, losses);
    }

    fn translate_pending(
        &mut self,
        out: &mut Vec<u8>,
        losses: &mut Losses,
    ) -> Result<(), StreamError> {
        let events = std::mem::take(&mut self.sse_events);
        for ev in &events {
            if let Some(error) = self.framing.exception(ev) {
                self.fail(error, out, losses);
                break;
            }
            self.canonical.clear();
            if let Err(e) = self.decoder.push(ev, &mut self.canonical) {
                self.emit(out, losses);
                self.fail(
                    ErrorBody::new(dragoman_model::ErrorKind::Server, e.to_string()),
                    out,
                    losses,
                );
                self.sse_events = events;
                return Err(e.into());
            }
            self.emit(out, losses);
        }
        self.sse_events = events;
        Ok(())
    }

    fn emit(&mut self, out: &mut Vec<u8>, losses: &mut Losses) {
        self.encoded.clear();
        self.custom.apply(&mut self.canonical);
        self.args.check(&mut self.canonical);
        for ev in &self.canonical {
            if self.observed.ended() {
                break;
            }
            self.observed.see(ev);
            self.collector.see(ev);
            self.encoder.push(ev, &mut self.encoded, losses);
        }
        for e in &self.encoded {
            framing::write(self.out_framing, e, out);
        }
    }
}

/// Relays a stream that passes through untouched (client and upstream speak the same
/// dialect): forwards the upstream's bytes event by event, decodes a copy for usage and for
/// its end, and, when the upstream fails or ends without its terminal event, supplies the
/// dialect's own error ending. A shadow encoder is fed what was seen so that the ending closes
/// exactly the blocks the client saw open.
///
/// Only whole events that decoded are forwarded: the part of an event still arriving is held
/// until its blank line (so a keep-alive or an error ending can never land inside it), and an
/// event the decoder refuses is not sent at all. After the stream's end nothing more is
/// forwarded, except the one trailer a dialect sends after its error event (see
/// [`StreamDecoder::is_error_trailer`]).
pub struct PassthroughTap {
    framing: sse::Decoder,
    decoder: StreamDecoder,
    shadow: StreamEncoder,
    sse_events: Vec<sse::Event>,
    ends: Vec<u64>,
    canonical: Vec<StreamEvent>,
    scratch: Vec<sse::Event>,
    observed: Observed,
    /// Received bytes not yet forwarded: an event still arriving.
    held: Vec<u8>,
    /// Stream offset of `held[0]`: everything before it was forwarded or dropped.
    held_at: u64,
    /// The last event forwarded, for numbering an ending the tap adds.
    last_forwarded: Option<sse::Event>,
    state: TapState,
    collector: Gather,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TapState {
    Open,
    /// The upstream sent its error event; its dialect's trailer may follow.
    AfterUpstreamError,
    /// Nothing more goes to the client.
    Closed,
}

impl PassthroughTap {
    pub fn new(d: Dialect) -> Self {
        PassthroughTap {
            framing: sse::Decoder::new(),
            decoder: StreamDecoder::new(d),
            shadow: StreamEncoder::new(d, StreamOptions::default()),
            sse_events: Vec::new(),
            ends: Vec::new(),
            canonical: Vec::new(),
            scratch: Vec::new(),
            observed: Observed::default(),
            held: Vec::new(),
            held_at: 0,
            last_forwarded: None,
            state: TapState::Open,
            collector: Gather::default(),
        }
    }

    /// Also gathers the whole answer, in canonical form, for [`PassthroughTap::collected`].
    pub fn collecting(mut self) -> Self {
        self.collector = Gather::on();
        self
    }

    /// The answer gathered, once the stream has ended well.
    pub fn collected(&mut self) -> Option<Response> {
        self.collector.take(&self.observed)
    }

    pub fn observed(&self) -> &Observed {
        &self.observed
    }

    /// True once nothing more will be forwarded: the stream reached its end (and, after an
    /// upstream error, its trailer), or the tap ended it.
    pub fn closed(&self) -> bool {
        self.state == TapState::Closed
    }

    /// Takes upstream bytes and appends to `out` the complete events among them that may go to
    /// the client. An error means the upstream broke its own grammar: nothing of the bad event
    /// was forwarded, and the caller should end the stream with [`PassthroughTap::fail`].
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), StreamError> {
        if self.state == TapState::Closed {
            return Ok(());
        }
        self.sse_events.clear();
        self.ends.clear();
        let framed = self
            .framing
            .push_framed(chunk, &mut self.sse_events, &mut self.ends);
        let (accepted, decoded) = self.observe_pending();
        let result = decoded.and(framed.map_err(StreamError::from));
        let upto = if result.is_ok() && self.state == TapState::Open {
            // Comments and blank lines after the last event go too; a partial event stays.
            self.framing.boundary()
        } else {
            accepted
        };
        self.forward(upto, chunk, out);
        if result.is_ok() && self.state != TapState::Closed && self.held.len() > MAX_HELD_BYTES {
            return Err(sse::SseError::TooLarge {
                limit: MAX_HELD_BYTES,
                offset: self.held_at,
            }
            .into());
        }
        result
    }

    /// Decodes the framed events in order; returns the stream offset up to which they may be
    /// forwarded, and the decoder's refusal if there was one.
    fn observe_pending(&mut self) -> (u64, Result<(), StreamError>) {
        let mut events = std::mem::take(&mut self.sse_events);
        let mut accepted = self.held_at;
        let mut result = Ok(());
        let mut last = None;
        for (i, (ev, &end)) in events.iter().zip(&self.ends).enumerate() {
            match self.state {
                TapState::Closed => break,
                TapState::AfterUpstreamError => {
                    if self.decoder.is_error_trailer(ev) {
                        accepted = end;
                    }
                    self.state = TapState::Closed;
                    break;
                }
                TapState::Open => {}
            }
            self.canonical.clear();
            let r = self.decoder.push(ev, &mut self.canonical);
            let mut losses = Losses::new();
            for c in &self.canonical {
                if self.observed.ended() {
                    break;
                }
                self.observed.see(c);
                self.collector.see(c);
                self.scratch.clear();
                self.shadow.push(c, &mut self.scratch, &mut losses);
            }
            if let Err(e) = r {
                result = Err(e.into());
                break;
            }
            accepted = end;
            last = Some(i);
            match self.observed.success {
                Some(true) => self.state = TapState::Closed,
                Some(false) => self.state = TapState::AfterUpstreamError,
                None => {}
            }
        }
        if let Some(i) = last {
            // Taken, not cloned: the list is cleared before the next chunk anyway.
            self.last_forwarded = Some(std::mem::take(&mut events[i]));
        }
        self.sse_events = events;
        (accepted, result)
    }

    /// Appends the stream's bytes from `held_at` up to `upto` to `out` (they lie in `held`,
    /// then in `chunk`) and keeps the rest of `chunk` held, unless nothing more will be sent.
    fn forward(&mut self, upto: u64, chunk: &[u8], out: &mut Vec<u8>) {
        let n = usize::try_from(upto.saturating_sub(self.held_at)).unwrap_or(usize::MAX);
        if n <= self.held.len() {
            out.extend_from_slice(&self.held[..n]);
            self.held.drain(..n);
            self.held.extend_from_slice(chunk);
        } else {
            let k = (n - self.held.len()).min(chunk.len());
            out.extend_from_slice(&self.held);
            out.extend_from_slice(&chunk[..k]);
            self.held.clear();
            self.held.extend_from_slice(&chunk[k..]);
        }
        self.held_at = upto;
        if self.state == TapState::Closed {
            self.held = Vec::new();
        }
    }

    /// End of upstream bytes: a last event without its blank line is completed and forwarded,
    /// then the ending the client still needs (nothing when the upstream reached its terminal
    /// event; the dialect's error ending when it did not).
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.state == TapState::Closed {
            return;
        }
        if self.state == TapState::Open {
            self.sse_events.clear();
            self.ends.clear();
            if self.framing.finish(&mut self.sse_events).is_ok() {
                // The last event ends at the end of the stream.
                self.ends.push(self.framing.offset());
                self.ends.truncate(self.sse_events.len());
                let (accepted, decoded) = self.observe_pending();
                let tail_is_event = accepted > self.held_at;
                self.forward(accepted, &[], out);
                if tail_is_event {
                    sse::terminate(out);
                }
                if decoded.is_ok() && self.observed.ended() {
                    self.state = TapState::Closed;
                    return;
                }
            }
        }
        self.fail(ErrorBody::truncated_stream(), out);
    }

    /// Ends the client's stream with `error` in the dialect's own form (nothing when the
    /// stream already ended), and forwards nothing after it.
    pub fn fail(&mut self, error: ErrorBody, out: &mut Vec<u8>) {
        let open = self.state == TapState::Open && !self.observed.ended();
        self.state = TapState::Closed;
        self.held = Vec::new();
        if !open {
            return;
        }
        let ev = StreamEvent::Error { error };
        self.observed.see(&ev);
        self.scratch.clear();
        let mut losses = Losses::new();
        if let Some(last) = &self.last_forwarded {
            self.shadow.continue_after(last);
        }
        self.shadow.push(&ev, &mut self.scratch, &mut losses);
        for e in &self.scratch {
            sse::encode(e, out);
        }
    }

    /// A keep-alive in the dialect's own form (see [`StreamTranslator::keepalive`]). Always
    /// between events: a half-arrived event is held, not forwarded.
    pub fn keepalive(&mut self, out: &mut Vec<u8>) {
        if self.observed.started && !self.observed.ended() {
            self.scratch.clear();
            self.shadow
                .push(&StreamEvent::Ping, &mut self.scratch, &mut Losses::new());
            if !self.scratch.is_empty() {
                for e in &self.scratch {
                    sse::encode(e, out);
                }
                return;
            }
        }
        sse::comment("keep-alive", out);
    }
}

/// The most a passed-through stream may hold of one event still arriving (the SSE decoder's
/// own bound on a line or an event's data).
const MAX_HELD_BYTES: usize = sse::DEFAULT_MAX_EVENT_BYTES;

/// Writes one event in framing `f` (what an upstream of that framing would send).
pub fn write_event(f: Framing, ev: &sse::Event, out: &mut Vec<u8>) {
    framing::write(f, ev, out);
}

/// Cuts a whole stream of dialect `d`, in its own framing, into its events.
pub fn decode_events(d: Dialect, bytes: &[u8]) -> Result<Vec<sse::Event>, StreamError> {
    let mut frames = framing::Frames::new(d.framing());
    let mut events = Vec::new();
    frames.push(bytes, &mut events)?;
    frames.finish(&mut events)?;
    Ok(events)
}

/// Writes events of dialect `d` in its own framing.
pub fn encode_events<'a>(d: Dialect, events: impl IntoIterator<Item = &'a sse::Event>) -> Vec<u8> {
    let mut out = Vec::new();
    for e in events {
        framing::write(d.framing(), e, &mut out);
    }
    out
}

/// Decodes a whole stream of dialect `d` into canonical events.
pub fn decode_stream(d: Dialect, bytes: &[u8]) -> Result<Vec<StreamEvent>, StreamError> {
    let events = decode_events(d, bytes)?;
    let mut dec = StreamDecoder::new(d);
    let mut out = Vec::new();
    for e in &events {
        dec.push(e, &mut out)?;
    }
    dec.finish(&mut out);
    Ok(out)
}

/// Encodes canonical events as dialect `d`'s SSE events.
pub fn encode_stream(
    d: Dialect,
    events: &[StreamEvent],
    opts: StreamOptions,
    losses: &mut Losses,
) -> Vec<sse::Event> {
    let mut enc = StreamEncoder::new(d, opts);
    let mut out = Vec::new();
    for e in events {
        enc.push(e, &mut out, losses);
    }
    enc.finish(&mut out, losses);
    out
}

/// Whole-buffer stream translation.
pub fn translate_stream(
    from: Dialect,
    to: Dialect,
    bytes: &[u8],
    opts: StreamOptions,
    losses: &mut Losses,
) -> Result<Vec<u8>, StreamError> {
    let mut t = StreamTranslator::new(from, to, opts);
    let mut out = Vec::new();
    t.push(bytes, &mut out, losses)?;
    t.finish(&mut out, losses)?;
    Ok(out)
}
