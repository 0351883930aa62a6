//! Chat SSE chunks → canonical stream events. Chat has no blocks, so this decoder invents them:
//! a run of `content`, `reasoning_content` or `refusal` pieces is one block, each tool call is
//! one block, and everything still open is closed at `finish_reason`.

use dragoman_model::{
    BlockKind, DecodeError, Delta, ErrorBody, StopReason, StreamEvent, ToolKind, Usage,
};
use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::Value;

use super::DONE;
use crate::{error, stop, usage};

/// One tool call seen in the stream. Calls are keyed by their Chat `index` *and* `id`, because
/// some servers put every call at index 0 and tell them apart only by id.
#[derive(Debug)]
struct ToolSlot {
    chat_index: u64,
    id: String,
    /// The upstream sent no id: `id` was made here, and an id arriving later for the same
    /// index is this call's, not a new one.
    made_up: bool,
    block: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Text,
    Reasoning,
    Refusal,
}

#[derive(Debug, Default)]
pub struct StreamDecoder {
    events: usize,
    started: bool,
    done: bool,
    next_block: usize,
    /// Open blocks in the order they were opened, so they close in that order.
    open: Vec<usize>,
    /// The open text-like block, if any (at most one: a new kind closes the previous one).
    flow: Option<(Flow, usize)>,
    tools: Vec<ToolSlot>,
    saw_tool_call: bool,
    stop: Option<StopReason>,
    usage: Usage,
}

impl StreamDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// One SSE event in; zero or more canonical events appended to `out`.
    pub fn push(
        &mut self,
        ev: &dragoman_sse::Event,
        out: &mut Vec<StreamEvent>,
    ) -> Result<(), DecodeError> {
        let n = self.events;
        self.events += 1;
        if self.done {
            return Ok(());
        }
        let data = ev.data.trim();
        if data == DONE {
            self.start("", "", out);
            self.close_all(out);
            let stop = self
                .stop
                .take()
                .unwrap_or(StopReason::EndTurn)
                .reconcile(self.saw_tool_call);
            out.push(StreamEvent::MessageDelta {
                stop,
                usage: self.usage,
            });
            out.push(StreamEvent::MessageStop);
            self.done = true;
            return Ok(());
        }
        // Most chunks are a plain text or arguments delta: read those without building a DOM,
        // and leave anything the borrowed shape cannot hold to the general path below.
        if let Ok(fast) = serde_json::from_str::<FastChunk<'_>>(data)
            && fast.error.is_none()
            && fast.usage.is_none()
            && fast.choices.iter().flatten().all(FastChoice::is_plain)
        {
            return self.push_fast(fast, n, out);
        }
        let chunk: Value =
            serde_json::from_str(data).map_err(|e| DecodeError::json(format!("event {n}"), &e))?;
        let Some(m) = chunk.as_object() else {
            return Err(DecodeError::wrong_type(
                format!("event {n}"),
                "a JSON object",
            ));
        };
        if let Some(err) = m.get("error").filter(|e| !e.is_null()) {
            let wrapped = serde_json::json!({ "error": err });
            out.push(StreamEvent::Error {
                error: error::from_value(&wrapped, None),
            });
            self.done = true;
            return Ok(());
        }
        let choices = match m.get("choices") {
            None | Some(Value::Null) => &[][..],
            Some(Value::Array(a)) => a.as_slice(),
            Some(_) => {
                return Err(DecodeError::wrong_type(
                    format!("event {n}.choices"),
                    "an array",
                ));
            }
        };
        let chunk_usage = m.get("usage").filter(|u| u.is_object());
        if choices.is_empty() && chunk_usage.is_none() {
            // Azure's prompt_filter_results preamble and other bookkeeping chunks.
            return Ok(());
        }
        let id = m.get("id").and_then(Value::as_str).unwrap_or_default();
        let model = m.get("model").and_then(Value::as_str).unwrap_or_default();
        self.start(id, model, out);
        if let Some(u) = chunk_usage {
            self.usage.merge_from(&usage::decode(u).0);
        }
        for (k, c) in choices.iter().enumerate() {
            let path = ChoicePath {
                event: n,
                choice: k,
            };
            let Some(c) = c.as_object() else {
                return Err(DecodeError::wrong_type(path.to_string(), "an object"));
            };
            // The canonical stream has one answer; other choices (n > 1) are not carried.
            if c.get("index").and_then(Value::as_u64).unwrap_or(0) != 0 {
                continue;
            }
            if let Some(d) = c.get("delta").and_then(Value::as_object) {
                self.delta(d, &path, out)?;
            }
            if let Some(fr) = c.get("finish_reason").and_then(Value::as_str) {
                self.close_all(out);
                self.stop = Some(stop::decode(Some(fr)));
            }
        }
        Ok(())
    }

    /// End of input. Without `[DONE]` (or an error chunk) the stream was cut, even when a
    /// `finish_reason` arrived: the usage chunk may be what was lost.
    /// A Chat error chunk is the stream's last word: not even `[DONE]` may follow it (a
    /// `[DONE]` would tell SDKs the stream completed).
    pub fn is_error_trailer(&self, _ev: &dragoman_sse::Event) -> bool {
        false
    }

    pub fn finish(&mut self, out: &mut Vec<StreamEvent>) {
        if !self.done {
            out.push(StreamEvent::Error {
                error: ErrorBody::truncated_stream(),
            });
            self.done = true;
        }
    }

    fn start(&mut self, id: &str, model: &str, out: &mut Vec<StreamEvent>) {
        if !self.started {
            self.started = true;
            out.push(StreamEvent::MessageStart {
                id: id.to_owned(),
                model: model.to_owned(),
                usage: Usage::default(),
            });
        }
    }

    fn open_block(&mut self, block: BlockKind, out: &mut Vec<StreamEvent>) -> usize {
        let index = self.next_block;
        self.next_block += 1;
        self.open.push(index);
        out.push(StreamEvent::BlockStart { index, block });
        index
    }

    fn close(&mut self, index: usize, out: &mut Vec<StreamEvent>) {
        if let Some(pos) = self.open.iter().position(|&i| i == index) {
            self.open.remove(pos);
            out.push(StreamEvent::BlockStop { index });
        }
    }

    fn close_all(&mut self, out: &mut Vec<StreamEvent>) {
        for index in std::mem::take(&mut self.open) {
            out.push(StreamEvent::BlockStop { index });
        }
        self.flow = None;
    }

    fn close_flow(&mut self, out: &mut Vec<StreamEvent>) {
        if let Some((_, index)) = self.flow.take() {
            self.close(index, out);
        }
    }

    /// Appends a text-like piece to the open block of its kind, opening one (and closing a
    /// block of another kind) when needed.
    fn flow_piece(&mut self, kind: Flow, text: &str, out: &mut Vec<StreamEvent>) {
        if text.is_empty() {
            return;
        }
        let index = match self.flow {
            Some((k, i)) if k == kind => i,
            _ => {
                self.close_flow(out);
                let block = match kind {
                    Flow::Text => BlockKind::Text,
                    Flow::Reasoning => BlockKind::Reasoning {
                        seal: None,
                        id: None,
                    },
                    Flow::Refusal => BlockKind::Refusal,
                };
                let i = self.open_block(block, out);
                self.flow = Some((kind, i));
                i
            }
        };
        let delta = match kind {
            Flow::Text => Delta::Text(text.to_owned()),
            Flow::Reasoning => Delta::Reasoning(text.to_owned()),
            Flow::Refusal => Delta::Refusal(text.to_owned()),
        };
        out.push(StreamEvent::BlockDelta { index, delta });
    }

    /// The fast path's counterpart of the loop over choices in `push`.
    fn push_fast(
        &mut self,
        chunk: FastChunk<'_>,
        n: usize,
        out: &mut Vec<StreamEvent>,
    ) -> Result<(), DecodeError> {
        let choices = chunk.choices.unwrap_or_default();
        if choices.is_empty() {
            // Azure's prompt_filter_results preamble and other bookkeeping chunks.
            return Ok(());
        }
        self.start(
            chunk.id.as_deref().unwrap_or_default(),
            chunk.model.as_deref().unwrap_or_default(),
            out,
        );
        for c in choices {
            // The canonical stream has one answer; other choices (n > 1) are not carried.
            if c.index.unwrap_or(0) != 0 {
                continue;
            }
            if let Some(d) = c.delta {
                let reasoning = match str_of(&d.reasoning_content) {
                    "" => str_of(&d.reasoning),
                    r => r,
                };
                self.flow_piece(Flow::Reasoning, reasoning, out);
                self.flow_piece(Flow::Text, str_of(&d.content), out);
                self.flow_piece(Flow::Refusal, str_of(&d.refusal), out);
                for (pos, call) in d.tool_calls.iter().flatten().enumerate() {
                    let (name, fragment) = match &call.function {
                        Some(f) => (str_of(&f.name), str_of(&f.arguments)),
                        None => ("", ""),
                    };
                    self.tool_piece(
                        call.index.unwrap_or(pos as u64),
                        call.id.as_deref().filter(|s| !s.is_empty()),
                        false,
                        name,
                        fragment,
                        out,
                    )
                    .map_err(|m| {
                        DecodeError::new(format!("event {n}.choices[0].delta.tool_calls[{pos}]"), m)
                    })?;
                }
            }
            if let Some(fr) = c.finish_reason.as_deref() {
                self.close_all(out);
                self.stop = Some(stop::decode(Some(fr)));
            }
        }
        Ok(())
    }

    fn delta(
        &mut self,
        d: &serde_json::Map<String, Value>,
        path: &ChoicePath,
        out: &mut Vec<StreamEvent>,
    ) -> Result<(), DecodeError> {
        let str_of = |k: &str| d.get(k).and_then(Value::as_str).unwrap_or_default();
        let reasoning = match str_of("reasoning_content") {
            "" => str_of("reasoning"),
            r => r,
        };
        self.flow_piece(Flow::Reasoning, reasoning, out);
        self.flow_piece(Flow::Text, str_of("content"), out);
        self.flow_piece(Flow::Refusal, str_of("refusal"), out);
        let calls = match d.get("tool_calls") {
            None | Some(Value::Null) => &[][..],
            Some(Value::Array(a)) => a.as_slice(),
            Some(_) => {
                return Err(DecodeError::wrong_type(
                    format!("{path}.delta.tool_calls"),
                    "an array",
                ));
            }
        };
        // The deprecated `function_call` delta is one call with no id; it gets an index no
        // real tool call uses.
        let function_call = d
            .get("function_call")
            .filter(|f| f.is_object())
            .map(|fc| serde_json::json!({"index": u64::MAX, "function": fc}));
        for (pos, call) in calls.iter().chain(function_call.as_ref()).enumerate() {
            let Some(call) = call.as_object() else {
                return Err(DecodeError::wrong_type(
                    format!("{path}.delta.tool_calls[{pos}]"),
                    "an object",
                ));
            };
            let chat_index = call
                .get("index")
                .and_then(Value::as_u64)
                .unwrap_or(pos as u64);
            let id = call
                .get("id")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty());
            let custom = call.get("type").and_then(Value::as_str) == Some("custom")
                || call.get("custom").is_some_and(Value::is_object);
            let inner = call
                .get(if custom { "custom" } else { "function" })
                .and_then(Value::as_object);
            let name = inner
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            let fragment = inner
                .and_then(|f| f.get(if custom { "input" } else { "arguments" }))
                .and_then(Value::as_str)
                .unwrap_or_default();
            self.tool_piece(chat_index, id, custom, name, fragment, out)
                .map_err(|m| DecodeError::new(format!("{path}.delta.tool_calls[{pos}]"), m))?;
        }
        Ok(())
    }

    /// One tool-call entry of a delta: opens the call's block the first time it is seen and
    /// forwards its argument fragment. A call that arrives without an id gets one made from its
    /// place in the stream (the same on every replay of the stream); one without a name cannot
    /// be carried to any client, and fails the stream.
    fn tool_piece(
        &mut self,
        chat_index: u64,
        id: Option<&str>,
        custom: bool,
        name: &str,
        fragment: &str,
        out: &mut Vec<StreamEvent>,
    ) -> Result<(), &'static str> {
        let existing = self
            .tools
            .iter()
            .rev()
            .find(|s| s.chat_index == chat_index && (s.made_up || id.is_none_or(|id| s.id == id)))
            .map(|s| s.block);
        let block = match existing {
            Some(b) => b,
            None => {
                if name.is_empty() {
                    return Err("a tool call without a function name");
                }
                self.close_flow(out);
                self.saw_tool_call = true;
                let kind = if custom {
                    ToolKind::Custom
                } else {
                    ToolKind::Function
                };
                let made_up = id.is_none();
                let id = match id {
                    Some(id) => id.to_owned(),
                    None => format!("call_{}", self.tools.len()),
                };
                let b = self.open_block(
                    BlockKind::ToolCall {
                        id: id.clone(),
                        name: name.to_owned(),
                        kind,
                    },
                    out,
                );
                self.tools.push(ToolSlot {
                    chat_index,
                    id,
                    made_up,
                    block: b,
                });
                b
            }
        };
        // Fragments for a call closed by an earlier finish_reason have no block to go to.
        if !fragment.is_empty() && self.open.contains(&block) {
            out.push(StreamEvent::BlockDelta {
                index: block,
                delta: Delta::Arguments(fragment.to_owned()),
            });
        }
        Ok(())
    }
}

/// Where a choice sits, formatted only when an error names it.
struct ChoicePath {
    event: usize,
    choice: usize,
}

impl fmt::Display for ChoicePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "event {}.choices[{}]", self.event, self.choice)
    }
}

/// The borrowed shape of a common chunk. Fields that need the general path (`error`, `usage`,
/// custom tools, `function_call`) are only noted as present; a chunk with any of them, or one
/// that does not fit these types, is decoded again as a `Value`.
#[derive(Deserialize)]
struct FastChunk<'a> {
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    #[serde(borrow)]
    choices: Option<Vec<FastChoice<'a>>>,
    usage: Option<IgnoredAny>,
    error: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct FastChoice<'a> {
    index: Option<u64>,
    #[serde(borrow)]
    delta: Option<FastDelta<'a>>,
    #[serde(borrow)]
    finish_reason: Option<Cow<'a, str>>,
}

impl FastChoice<'_> {
    fn is_plain(&self) -> bool {
        self.delta.as_ref().is_none_or(|d| {
            d.function_call.is_none()
                && d.tool_calls
                    .iter()
                    .flatten()
                    .all(|c| c.custom.is_none() && c.kind.as_deref() != Some("custom"))
        })
    }
}

#[derive(Deserialize)]
struct FastDelta<'a> {
    #[serde(borrow)]
    content: Option<Cow<'a, str>>,
    #[serde(borrow)]
    reasoning_content: Option<Cow<'a, str>>,
    #[serde(borrow)]
    reasoning: Option<Cow<'a, str>>,
    #[serde(borrow)]
    refusal: Option<Cow<'a, str>>,
    #[serde(borrow)]
    tool_calls: Option<Vec<FastCall<'a>>>,
    function_call: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct FastCall<'a> {
    index: Option<u64>,
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    function: Option<FastFunction<'a>>,
    custom: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct FastFunction<'a> {
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    arguments: Option<Cow<'a, str>>,
}

fn str_of<'a>(t: &'a Option<Cow<'_, str>>) -> &'a str {
    t.as_deref().unwrap_or_default()
}
