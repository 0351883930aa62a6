//! Gemini `streamGenerateContent?alt=sse` ⇄ canonical stream events.
//!
//! Each Gemini event is a whole `GenerateContentResponse` holding the next pieces: text and
//! thought text arrive in increments, function calls whole. There is no terminator: the chunk
//! with a `finishReason` is the last, and its `usageMetadata` is the final usage. Gemini has no
//! blocks, so the decoder invents them as the Chat decoder does (a run of text or of thought
//! text is one block, each call one block), and the encoder writes one chunk per delta.

use std::collections::HashMap;

use dragoman_model::{
    BlockKind, DecodeError, Delta, Dialect, Family, Losses, Part, StopReason, StreamEvent,
    StreamOptions, ToolKind, Usage, write_json_str,
};
use dragoman_sse::Event;
use serde_json::{Map, Value, json};

use crate::request::{CallIds, encode_parts};
use crate::response::{decode_chunk, finish_message};
use crate::{error, stop, usage};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Text,
    Reasoning,
}

#[derive(Default)]
pub struct StreamDecoder {
    events: usize,
    started: bool,
    done: bool,
    next_block: usize,
    open: Option<(Flow, usize)>,
    ids: CallIds,
    calls: usize,
    scope: String,
    saw_tool_call: bool,
    usage: Usage,
    /// A call whose arguments are arriving in `partialArgs` pieces: its block and the
    /// arguments so far.
    partial: Option<(usize, Value)>,
}

/// Applies one `partialArgs` entry (`{jsonPath, stringValue|numberValue|boolValue|nullValue}`)
/// to the arguments being assembled. String values arrive in pieces and are appended.
fn apply_partial(args: &mut Value, entry: &Value) -> Result<(), String> {
    let path = entry
        .get("jsonPath")
        .and_then(Value::as_str)
        .ok_or("partialArgs entry without a jsonPath")?;
    let rest = path
        .strip_prefix('$')
        .ok_or("jsonPath does not start with $")?;
    let mut at = args;
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '.' => {
                let mut key = String::new();
                while let Some(&k) = chars.peek() {
                    if k == '.' || k == '[' {
                        break;
                    }
                    key.push(k);
                    chars.next();
                }
                if !at.is_object() {
                    *at = json!({});
                }
                at = at
                    .as_object_mut()
                    .ok_or("not an object")?
                    .entry(key)
                    .or_insert(Value::Null);
            }
            '[' => {
                let mut num = String::new();
                for k in chars.by_ref() {
                    if k == ']' {
                        break;
                    }
                    num.push(k);
                }
                let i: usize = num.parse().map_err(|_| format!("bad index in {path}"))?;
                if !at.is_array() {
                    *at = json!([]);
                }
                let a = at.as_array_mut().ok_or("not an array")?;
                while a.len() <= i {
                    a.push(Value::Null);
                }
                at = &mut a[i];
            }
            _ => return Err(format!("unexpected `{c}` in jsonPath {path}")),
        }
    }
    if let Some(piece) = entry.get("stringValue").and_then(Value::as_str) {
        match at {
            Value::String(s) => s.push_str(piece),
            other => *other = json!(piece),
        }
    } else if let Some(v) = entry.get("numberValue").or_else(|| entry.get("boolValue")) {
        *at = v.clone();
    } else if entry.get("nullValue").is_some() {
        *at = Value::Null;
    }
    Ok(())
}

impl StreamDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    fn close(&mut self, out: &mut Vec<StreamEvent>) {
        if let Some((_, index)) = self.open.take() {
            out.push(StreamEvent::BlockStop { index });
        }
        if let Some((index, args)) = self.partial.take() {
            out.push(StreamEvent::BlockDelta {
                index,
                delta: Delta::Arguments(args.to_string()),
            });
            out.push(StreamEvent::BlockStop { index });
        }
    }

    /// One piece of a call whose arguments are streamed.
    fn fragment(
        &mut self,
        f: &serde_json::Map<String, Value>,
        path: &str,
        out: &mut Vec<StreamEvent>,
    ) -> Result<(), DecodeError> {
        if let Some(name) = f.get("name").and_then(Value::as_str) {
            self.saw_tool_call = true;
            let id = self.ids.call(
                f.get("id").and_then(Value::as_str),
                name,
                &self.scope.clone(),
                self.calls,
            );
            self.calls += 1;
            let index = self.block(
                BlockKind::ToolCall {
                    id,
                    name: name.to_owned(),
                    kind: ToolKind::Function,
                },
                out,
            );
            let args = f.get("args").cloned().unwrap_or_else(|| json!({}));
            self.partial = Some((index, args));
        }
        if let Some(entries) = f.get("partialArgs").and_then(Value::as_array) {
            let Some((_, args)) = self.partial.as_mut() else {
                return Err(DecodeError::new(
                    path,
                    "partialArgs outside a function call",
                ));
            };
            for e in entries {
                apply_partial(args, e).map_err(|m| DecodeError::new(path, m))?;
            }
        }
        if f.get("willContinue").and_then(Value::as_bool) != Some(true) {
            self.close(out);
        }
        Ok(())
    }

    fn block(&mut self, block: BlockKind, out: &mut Vec<StreamEvent>) -> usize {
        self.close(out);
        let index = self.next_block;
        self.next_block += 1;
        out.push(StreamEvent::BlockStart { index, block });
        index
    }

    /// Appends `delta` to the open block of kind `flow`, opening one if needed.
    fn flow(&mut self, flow: Flow, delta: Delta, out: &mut Vec<StreamEvent>) {
        let index = match self.open {
            Some((f, i)) if f == flow => i,
            _ => {
                let kind = match flow {
                    Flow::Text => BlockKind::Text,
                    Flow::Reasoning => BlockKind::Reasoning {
                        seal: None,
                        id: None,
                    },
                };
                let i = self.block(kind, out);
                self.open = Some((flow, i));
                i
            }
        };
        out.push(StreamEvent::BlockDelta { index, delta });
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
        if data.is_empty() {
            return Ok(());
        }
        // Most chunks are text or thought text and usage: read those without building a tree,
        // and leave any other shape to the general path below.
        if let Ok(fast) = serde_json::from_str::<FastChunk<'_>>(data)
            && fast.error.is_none()
            && fast.prompt_feedback.is_none()
            && fast.candidates.as_ref().is_some_and(|c| c.len() == 1)
        {
            self.push_fast(fast, out);
            return Ok(());
        }
        let path = format!("event {n}");
        let chunk: Value =
            serde_json::from_str(data).map_err(|e| DecodeError::json(path.clone(), &e))?;
        let Some(m) = chunk.as_object() else {
            return Err(DecodeError::wrong_type(path, "a JSON object"));
        };
        if m.get("error").is_some_and(Value::is_object) {
            out.push(StreamEvent::Error {
                error: error::from_value(&chunk, None),
            });
            self.done = true;
            return Ok(());
        }
        if !self.started {
            let first = m
                .get("usageMetadata")
                .map(|u| usage::decode(u).0)
                .unwrap_or_default();
            self.start(
                m.get("responseId")
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
                m.get("modelVersion")
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
                &first,
                out,
            );
        }
        let mut losses = Losses::new();
        let scope = self.scope.clone();
        let d = decode_chunk(
            m,
            &path,
            &scope,
            &mut self.calls,
            &mut self.ids,
            &mut losses,
        )?;
        if let Some(u) = &d.usage {
            self.usage.merge_from(u);
        }
        for part in d.parts {
            match part {
                Part::Text { text, .. } => {
                    if !text.is_empty() {
                        self.flow(Flow::Text, Delta::Text(text), out);
                    }
                }
                Part::Reasoning { text, seal } if !text.is_empty() => {
                    self.flow(Flow::Reasoning, Delta::Reasoning(text), out);
                    if let (Some(s), Some((_, index))) = (seal, self.open) {
                        out.push(StreamEvent::BlockDelta {
                            index,
                            delta: Delta::Seal(s),
                        });
                        self.close(out);
                    }
                }
                Part::Reasoning { seal, .. } => {
                    // A signature on its own: a complete block, sealed at its start.
                    let index = self.block(BlockKind::Reasoning { seal, id: None }, out);
                    out.push(StreamEvent::BlockStop { index });
                }
                Part::ToolCall {
                    id,
                    name,
                    arguments,
                    kind,
                } => {
                    self.saw_tool_call = true;
                    let index = self.block(BlockKind::ToolCall { id, name, kind }, out);
                    out.push(StreamEvent::BlockDelta {
                        index,
                        delta: Delta::Arguments(arguments),
                    });
                    out.push(StreamEvent::BlockStop { index });
                }
                Part::Opaque { value, .. }
                    if value.get("functionCall").is_some_and(Value::is_object) =>
                {
                    if let Some(f) = value.get("functionCall").and_then(Value::as_object) {
                        self.fragment(f, &path, out)?;
                    }
                }
                other => {
                    // Code execution, media and anything newer: whole, as Gemini sent it.
                    let value = match other {
                        Part::Opaque { value, .. } => value,
                        media => encode_parts(
                            std::slice::from_ref(&media),
                            "",
                            &HashMap::new(),
                            false,
                            &mut losses,
                        )
                        .into_iter()
                        .next()
                        .unwrap_or(Value::Null),
                    };
                    let index = self.block(
                        BlockKind::Opaque {
                            dialect: Dialect::Gemini,
                            value,
                        },
                        out,
                    );
                    out.push(StreamEvent::BlockStop { index });
                }
            }
        }
        if let Some(stop) = d.finish {
            self.close(out);
            out.push(StreamEvent::MessageDelta {
                stop: stop.reconcile(self.saw_tool_call),
                usage: self.usage,
            });
            out.push(StreamEvent::MessageStop);
            self.done = true;
        }
        Ok(())
    }

    fn start(&mut self, id: &str, model: &str, first: &Usage, out: &mut Vec<StreamEvent>) {
        self.started = true;
        self.scope = id.to_owned();
        // The prompt is counted from the first chunk on: Anthropic clients read it here.
        out.push(StreamEvent::MessageStart {
            id: self.scope.clone(),
            model: model.to_owned(),
            usage: Usage {
                input_uncached: first.input_uncached,
                cache_read: first.cache_read,
                ..Usage::default()
            },
        });
    }

    fn push_fast(&mut self, fast: FastChunk<'_>, out: &mut Vec<StreamEvent>) {
        let usage = fast.usage.map(|c| c.usage());
        if !self.started {
            self.start(
                fast.id.as_deref().unwrap_or_default(),
                fast.model.as_deref().unwrap_or_default(),
                &usage.unwrap_or_default(),
                out,
            );
        }
        if let Some(u) = &usage {
            self.usage.merge_from(u);
        }
        let Some(c) = fast.candidates.and_then(|mut c| c.pop()) else {
            return;
        };
        for p in c.content.map(|c| c.parts).unwrap_or_default() {
            if p.text.is_empty() {
                continue;
            }
            if p.thought == Some(true) {
                self.flow(Flow::Reasoning, Delta::Reasoning(p.text.into_owned()), out);
            } else {
                self.flow(Flow::Text, Delta::Text(p.text.into_owned()), out);
            }
        }
        if let Some(r) = c.finish_reason {
            self.close(out);
            out.push(StreamEvent::MessageDelta {
                stop: stop::decode(&r).reconcile(self.saw_tool_call),
                usage: self.usage,
            });
            out.push(StreamEvent::MessageStop);
            self.done = true;
        }
    }

    /// End of input. A Gemini stream ends with its `finishReason` chunk; one that did not is
    /// left open, and the caller reports it cut short.
    pub fn finish(&mut self, _out: &mut Vec<StreamEvent>) {}

    /// Gemini sends nothing after an error event.
    pub fn is_error_trailer(&self, _ev: &dragoman_sse::Event) -> bool {
        false
    }
}

/// The common chunk, borrowed: text or thought-text parts only (any other part, or a part
/// with any other field, such as a signature, makes this reading fail and the tree decode it).
#[derive(serde::Deserialize)]
struct FastChunk<'a> {
    #[serde(borrow, default)]
    candidates: Option<Vec<FastCandidate<'a>>>,
    #[serde(default, rename = "usageMetadata")]
    usage: Option<usage::Counts>,
    #[serde(borrow, default, rename = "modelVersion")]
    model: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default, rename = "responseId")]
    id: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    error: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "promptFeedback")]
    prompt_feedback: Option<serde::de::IgnoredAny>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FastCandidate<'a> {
    #[serde(borrow, default)]
    content: Option<FastContent<'a>>,
    #[serde(borrow, default, rename = "finishReason")]
    finish_reason: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    #[allow(dead_code)]
    index: Option<serde::de::IgnoredAny>,
}

#[derive(serde::Deserialize)]
struct FastContent<'a> {
    #[serde(borrow, default)]
    parts: Vec<FastPart<'a>>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FastPart<'a> {
    #[serde(borrow)]
    text: std::borrow::Cow<'a, str>,
    #[serde(default)]
    thought: Option<bool>,
}

#[derive(Debug)]
enum Block {
    Text,
    Reasoning,
    /// A tool call whose arguments are gathered until it stops (Gemini sends calls whole).
    Tool {
        id: String,
        name: String,
        kind: ToolKind,
        args: String,
    },
    Opaque(Value),
    Dropped,
}

#[derive(Debug)]
pub struct StreamEncoder {
    id: String,
    model: String,
    usage: Usage,
    stop: Option<StopReason>,
    blocks: HashMap<usize, Block>,
    /// A signature waiting for the next part, which it belongs to.
    signature: Option<String>,
    done: bool,
}

impl StreamEncoder {
    pub fn new(_opts: StreamOptions) -> Self {
        StreamEncoder {
            id: String::new(),
            model: String::new(),
            usage: Usage::default(),
            stop: None,
            blocks: HashMap::new(),
            signature: None,
            done: false,
        }
    }

    /// A text or thought-text chunk written straight as JSON text (building a tree per delta
    /// was most of a stream's cost), byte for byte what [`StreamEncoder::chunk`] writes.
    fn text_chunk(&mut self, text: &str, thought: bool, out: &mut Vec<Event>) {
        if self.signature.is_some() {
            let part = if thought {
                json!({ "text": text, "thought": true })
            } else {
                json!({ "text": text })
            };
            return self.chunk(part, out);
        }
        let mut s = String::with_capacity(text.len() + self.id.len() + self.model.len() + 120);
        s.push_str(r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"#);
        write_json_str(&mut s, text);
        if thought {
            s.push_str(r#","thought":true"#);
        }
        s.push_str(r#"}]},"index":0}],"modelVersion":"#);
        write_json_str(&mut s, &self.model);
        s.push_str(r#","responseId":"#);
        write_json_str(&mut s, &self.id);
        s.push('}');
        out.push(Event::data(s));
    }

    fn chunk(&mut self, mut part: Value, out: &mut Vec<Event>) {
        if let (Some(s), Value::Object(m)) = (self.signature.take(), &mut part) {
            m.insert("thoughtSignature".into(), json!(s));
        }
        let body = json!({
            "candidates": [{"content": {"role": "model", "parts": [part]}, "index": 0}],
            "modelVersion": self.model,
            "responseId": self.id,
        });
        out.push(Event::data(body.to_string()));
    }

    pub fn push(&mut self, ev: &StreamEvent, out: &mut Vec<Event>, losses: &mut Losses) {
        if self.done {
            return;
        }
        match ev {
            StreamEvent::MessageStart { id, model, usage } => {
                self.id.clone_from(id);
                self.model.clone_from(model);
                self.usage.merge_from(usage);
            }
            StreamEvent::BlockStart { index, block } => {
                let b = match block {
                    BlockKind::Text | BlockKind::Refusal => Block::Text,
                    BlockKind::Reasoning { seal, .. } => {
                        if let Some(s) = seal
                            && let Some(prev) = self.signature.replace(s.carry_in(Family::Google))
                        {
                            // Two signatures in a row: the first belongs to no part of its own.
                            self.signature = Some(prev);
                            self.chunk(json!({ "text": "" }), out);
                            self.signature = Some(s.carry_in(Family::Google));
                        }
                        Block::Reasoning
                    }
                    BlockKind::ToolCall { id, name, kind } => Block::Tool {
                        id: id.clone(),
                        name: name.clone(),
                        kind: *kind,
                        args: String::new(),
                    },
                    BlockKind::Opaque { dialect, value } => {
                        if *dialect == Dialect::Gemini {
                            Block::Opaque(value.clone())
                        } else {
                            losses.dropped(
                                format!("content[{index}]"),
                                format!("{dialect} content has no Gemini equivalent"),
                            );
                            Block::Dropped
                        }
                    }
                };
                self.blocks.insert(*index, b);
            }
            StreamEvent::BlockDelta { index, delta } => {
                let Some(b) = self.blocks.get_mut(index) else {
                    return;
                };
                match (b, delta) {
                    (Block::Text, Delta::Text(t) | Delta::Refusal(t)) => {
                        self.text_chunk(t, false, out);
                    }
                    (Block::Reasoning, Delta::Reasoning(t)) => {
                        self.text_chunk(t, true, out);
                    }
                    (Block::Reasoning, Delta::Seal(s)) => {
                        // The state of the thought just sent: on an empty thought part, which
                        // the decoder joins back to the text before it.
                        let sig = s.carry_in(Family::Google);
                        self.chunk(
                            json!({ "text": "", "thought": true, "thoughtSignature": sig }),
                            out,
                        );
                    }
                    (Block::Tool { args, .. }, Delta::Arguments(a)) => args.push_str(a),
                    (Block::Text, Delta::Citation { .. }) => losses.dropped(
                        format!("content[{index}].citations"),
                        "citations of another dialect have no Gemini stream form",
                    ),
                    (Block::Dropped, _) => {}
                    (_, d) => losses.dropped(
                        format!("content[{index}]"),
                        format!("delta {d:?} has no Gemini form"),
                    ),
                }
            }
            StreamEvent::BlockStop { index } => match self.blocks.remove(index) {
                Some(Block::Tool {
                    id,
                    name,
                    kind,
                    args,
                }) => {
                    let part = Part::ToolCall {
                        id,
                        name,
                        arguments: args,
                        kind,
                    };
                    let v = encode_parts(
                        std::slice::from_ref(&part),
                        &format!("content[{index}]"),
                        &HashMap::new(),
                        false,
                        losses,
                    );
                    for p in v {
                        self.chunk(p, out);
                    }
                }
                Some(Block::Opaque(v)) => self.chunk(v, out),
                _ => {}
            },
            StreamEvent::MessageDelta { stop, usage } => {
                self.stop = Some(stop.clone());
                self.usage.merge_from(usage);
            }
            StreamEvent::MessageStop => {
                let stop = self.stop.take().unwrap_or(StopReason::EndTurn);
                let mut cand = Map::new();
                if let Some(s) = self.signature.take() {
                    cand.insert(
                        "content".into(),
                        json!({"role": "model", "parts": [{"text": "", "thoughtSignature": s}]}),
                    );
                }
                cand.insert(
                    "finishReason".into(),
                    json!(stop::encode(&stop, "stop", losses)),
                );
                if let Some(m) = finish_message(&stop) {
                    cand.insert("finishMessage".into(), json!(m));
                }
                cand.insert("index".into(), json!(0));
                let body = json!({
                    "candidates": [Value::Object(cand)],
                    "usageMetadata": usage::encode(&self.usage, None, "usage", losses),
                    "modelVersion": self.model,
                    "responseId": self.id,
                });
                out.push(Event::data(body.to_string()));
                self.done = true;
            }
            StreamEvent::Ping => {}
            StreamEvent::Error { error } => {
                out.push(error::stream_error_event(error));
                self.done = true;
            }
        }
    }

    /// Gemini chunks carry no running counts to continue.
    pub fn continue_after(&mut self, _last: &dragoman_sse::Event) {}

    pub fn finish(&mut self, _out: &mut Vec<Event>, _losses: &mut Losses) {}
}
