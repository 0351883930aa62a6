//! ConverseStream events ⇄ canonical stream events.
//!
//! Bedrock's stream already has Anthropic's block lifecycle, with three differences the codecs
//! bridge: only tool-use (and server-tool, image) blocks have a `contentBlockStart`, so text
//! and reasoning blocks open on their first delta; `messageStop` carries the stop reason but
//! the usage only comes after it in `metadata`, so the canonical `MessageDelta` waits; and
//! nothing names the message or the model.

use std::borrow::Cow;
use std::collections::HashMap;

use dragoman_model::{
    BlockKind, DecodeError, Delta, Dialect, Family, Losses, ReasoningSeal, SealKind, StopReason,
    StreamEvent, StreamOptions, ToolKind, Usage, write_json_str,
};
use dragoman_sse::Event;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::request::{redacted_blob, redacted_seal, signature_seal};
use crate::response::matched_stop;
use crate::{error, made_id, stop, usage};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Reasoning,
    Tool,
    Opaque,
}

#[derive(Debug)]
struct Block {
    canon: usize,
    kind: Kind,
    open: bool,
}

#[derive(Debug, Default)]
pub struct StreamDecoder {
    events: usize,
    started: bool,
    done: bool,
    next: usize,
    blocks: HashMap<u64, Block>,
    stop: Option<StopReason>,
    saw_tool_call: bool,
}

/// The common delta, borrowed. A delta with any other member (citations, tool results,
/// images) fails this reading and is kept whole.
#[derive(Deserialize)]
struct FastDelta<'a> {
    #[serde(rename = "contentBlockIndex")]
    index: u64,
    #[serde(borrow)]
    delta: FastBody<'a>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FastBody<'a> {
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "toolUse")]
    tool_use: Option<FastToolUse<'a>>,
    #[serde(borrow, default, rename = "reasoningContent")]
    reasoning: Option<FastReasoning<'a>>,
}

#[derive(Deserialize)]
struct FastToolUse<'a> {
    #[serde(borrow)]
    input: Cow<'a, str>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FastReasoning<'a> {
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    signature: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "redactedContent")]
    redacted: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Indexed {
    #[serde(rename = "contentBlockIndex")]
    index: u64,
}

impl StreamDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    fn start(&mut self, data: &str, out: &mut Vec<StreamEvent>) {
        if self.started {
            return;
        }
        self.started = true;
        out.push(StreamEvent::MessageStart {
            id: made_id(data.as_bytes()),
            model: String::new(),
            usage: Usage::default(),
        });
    }

    fn open(&mut self, index: u64, kind: Kind, block: BlockKind, out: &mut Vec<StreamEvent>) {
        let canon = self.next;
        self.next += 1;
        self.blocks.insert(
            index,
            Block {
                canon,
                kind,
                open: true,
            },
        );
        out.push(StreamEvent::BlockStart {
            index: canon,
            block,
        });
    }

    /// The canonical index of Bedrock block `index` for a delta of `kind`, opening the block
    /// on its first delta.
    fn target(
        &mut self,
        index: u64,
        kind: Kind,
        path: &dyn Fn() -> String,
        out: &mut Vec<StreamEvent>,
    ) -> Result<usize, DecodeError> {
        if let Some(b) = self.blocks.get(&index) {
            if !b.open {
                return Err(DecodeError::new(
                    path(),
                    format!("delta for block {index} after its contentBlockStop"),
                ));
            }
            if b.kind != kind && b.kind != Kind::Opaque {
                return Err(DecodeError::new(
                    path(),
                    format!("a {kind:?} delta in a {:?} block", b.kind),
                ));
            }
            return Ok(b.canon);
        }
        let block = match kind {
            Kind::Text => BlockKind::Text,
            Kind::Reasoning => BlockKind::Reasoning {
                seal: None,
                id: None,
            },
            Kind::Tool => {
                return Err(DecodeError::new(
                    path(),
                    format!("toolUse delta for block {index}, which never started"),
                ));
            }
            Kind::Opaque => BlockKind::Opaque {
                dialect: Dialect::Bedrock,
                value: json!({}),
            },
        };
        self.open(index, kind, block, out);
        Ok(self.next - 1)
    }

    fn close_all(&mut self, out: &mut Vec<StreamEvent>) {
        let mut open: Vec<usize> = self
            .blocks
            .values_mut()
            .filter(|b| b.open)
            .map(|b| {
                b.open = false;
                b.canon
            })
            .collect();
        open.sort_unstable();
        out.extend(
            open.into_iter()
                .map(|index| StreamEvent::BlockStop { index }),
        );
    }

    /// One Bedrock event in (named by its `:event-type` or `:exception-type`); zero or more
    /// canonical events appended to `out`.
    pub fn push(&mut self, ev: &Event, out: &mut Vec<StreamEvent>) -> Result<(), DecodeError> {
        let n = self.events;
        self.events += 1;
        if self.done {
            return Ok(());
        }
        let name = ev.name();
        // The hot text-delta path needs no path unless it fails; formatting one per event was
        // a third of the decoder's cost.
        if name == "contentBlockDelta"
            && self.started
            && let Ok(d) = serde_json::from_str::<FastDelta<'_>>(&ev.data)
            && self
                .blocks
                .get(&d.index)
                .is_none_or(|b| b.kind != Kind::Opaque)
        {
            return self.fast_delta(d, &|| format!("event {n} ({name})"), out);
        }
        let path = format!("event {n} ({name})");
        if error::is_exception(name) || name == "error" {
            let v: Value = serde_json::from_str(&ev.data).unwrap_or(Value::Null);
            let err = if name == "error" {
                // A framing-level error message: {"code", "message"} from its headers.
                let code = v.get("code").and_then(Value::as_str).unwrap_or_default();
                error::from_value(&v, Some(code), None)
            } else {
                error::from_value(&v, Some(name), None)
            };
            out.push(StreamEvent::Error { error: err });
            self.done = true;
            return Ok(());
        }
        match name {
            "messageStart" => self.start(&ev.data, out),
            "contentBlockDelta" => {
                self.start(&ev.data, out);
                // Deltas of a block kept whole (server tools) are kept whole too.
                if let Ok(d) = serde_json::from_str::<FastDelta<'_>>(&ev.data)
                    && self
                        .blocks
                        .get(&d.index)
                        .is_none_or(|b| b.kind != Kind::Opaque)
                {
                    return self.fast_delta(d, &|| path.clone(), out);
                }
                let v: Value =
                    serde_json::from_str(&ev.data).map_err(|e| DecodeError::json(&path, &e))?;
                let index = index_of(&v, &path)?;
                let delta = v.get("delta").cloned().unwrap_or(Value::Null);
                let kind = match self.blocks.get(&index) {
                    Some(b) if b.kind == Kind::Text && delta.get("citation").is_some() => {
                        Kind::Text
                    }
                    _ => Kind::Opaque,
                };
                let canon = self.target(index, kind, &|| path.clone(), out)?;
                let d = match (kind, delta.get("citation")) {
                    (Kind::Text, Some(c)) => Delta::Citation {
                        dialect: Dialect::Bedrock,
                        value: c.clone(),
                    },
                    _ => Delta::Opaque {
                        dialect: Dialect::Bedrock,
                        value: delta,
                    },
                };
                out.push(StreamEvent::BlockDelta {
                    index: canon,
                    delta: d,
                });
            }
            "contentBlockStart" => {
                self.start(&ev.data, out);
                let v: Value =
                    serde_json::from_str(&ev.data).map_err(|e| DecodeError::json(&path, &e))?;
                let index = index_of(&v, &path)?;
                if self.blocks.contains_key(&index) {
                    return Err(DecodeError::new(
                        path,
                        format!("block {index} started twice"),
                    ));
                }
                let start = v.get("start").cloned().unwrap_or(Value::Null);
                let tool = start.get("toolUse").filter(|t| {
                    t.get("type")
                        .and_then(Value::as_str)
                        .is_none_or(|ty| ty == "tool_use")
                });
                match tool {
                    Some(t) => {
                        let s = |k: &str| {
                            t.get(k)
                                .and_then(Value::as_str)
                                .map(str::to_owned)
                                .ok_or_else(|| {
                                    DecodeError::missing(format!("{path}.start.toolUse.{k}"))
                                })
                        };
                        let (id, tname) = (s("toolUseId")?, s("name")?);
                        self.saw_tool_call = true;
                        self.open(
                            index,
                            Kind::Tool,
                            BlockKind::ToolCall {
                                id,
                                name: tname,
                                kind: ToolKind::Function,
                            },
                            out,
                        );
                    }
                    None => self.open(
                        index,
                        Kind::Opaque,
                        BlockKind::Opaque {
                            dialect: Dialect::Bedrock,
                            value: start,
                        },
                        out,
                    ),
                }
            }
            "contentBlockStop" => {
                let i: Indexed =
                    serde_json::from_str(&ev.data).map_err(|e| DecodeError::json(&path, &e))?;
                if let Some(b) = self.blocks.get_mut(&i.index)
                    && b.open
                {
                    b.open = false;
                    out.push(StreamEvent::BlockStop { index: b.canon });
                }
            }
            "messageStop" => {
                self.start(&ev.data, out);
                let v: Value =
                    serde_json::from_str(&ev.data).map_err(|e| DecodeError::json(&path, &e))?;
                self.close_all(out);
                let reason = v
                    .get("stopReason")
                    .and_then(Value::as_str)
                    .unwrap_or("end_turn");
                self.stop = Some(stop::decode(
                    reason,
                    matched_stop(v.get("additionalModelResponseFields")),
                ));
            }
            "metadata" => {
                self.start(&ev.data, out);
                let v: Value =
                    serde_json::from_str(&ev.data).map_err(|e| DecodeError::json(&path, &e))?;
                self.close_all(out);
                let u = v.get("usage").map(usage::decode).unwrap_or_default();
                let stop = self
                    .stop
                    .take()
                    .unwrap_or(StopReason::EndTurn)
                    .reconcile(self.saw_tool_call);
                out.push(StreamEvent::MessageDelta { stop, usage: u });
                out.push(StreamEvent::MessageStop);
                self.done = true;
            }
            // Anything newer carries nothing the canonical stream can hold.
            _ => {}
        }
        Ok(())
    }

    fn fast_delta(
        &mut self,
        d: FastDelta<'_>,
        path: &dyn Fn() -> String,
        out: &mut Vec<StreamEvent>,
    ) -> Result<(), DecodeError> {
        let b = d.delta;
        if let Some(t) = b.text {
            // Empty text deltas occur and say nothing; they must not open a block.
            if !t.is_empty() {
                let index = self.target(d.index, Kind::Text, path, out)?;
                out.push(StreamEvent::BlockDelta {
                    index,
                    delta: Delta::Text(t.into_owned()),
                });
            }
        }
        if let Some(tu) = b.tool_use {
            let index = self.target(d.index, Kind::Tool, path, out)?;
            if !tu.input.is_empty() {
                out.push(StreamEvent::BlockDelta {
                    index,
                    delta: Delta::Arguments(tu.input.into_owned()),
                });
            }
        }
        if let Some(r) = b.reasoning {
            if let Some(blob) = r.redacted {
                match (self.blocks.contains_key(&d.index), redacted_seal(&blob)) {
                    (false, Some(seal)) => self.open(
                        d.index,
                        Kind::Reasoning,
                        BlockKind::Reasoning {
                            seal: Some(seal),
                            id: None,
                        },
                        out,
                    ),
                    (true, Some(seal)) => {
                        let index = self.target(d.index, Kind::Reasoning, path, out)?;
                        out.push(StreamEvent::BlockDelta {
                            index,
                            delta: Delta::Seal(seal),
                        });
                    }
                    (_, None) => {
                        let index = self.target(d.index, Kind::Opaque, path, out)?;
                        out.push(StreamEvent::BlockDelta {
                            index,
                            delta: Delta::Opaque {
                                dialect: Dialect::Bedrock,
                                value: json!({"reasoningContent": {"redactedContent": blob}}),
                            },
                        });
                    }
                }
            }
            if let Some(t) = r.text.filter(|t| !t.is_empty()) {
                let index = self.target(d.index, Kind::Reasoning, path, out)?;
                out.push(StreamEvent::BlockDelta {
                    index,
                    delta: Delta::Reasoning(t.into_owned()),
                });
            }
            if let Some(seal) = r.signature.as_deref().and_then(signature_seal) {
                let index = self.target(d.index, Kind::Reasoning, path, out)?;
                out.push(StreamEvent::BlockDelta {
                    index,
                    delta: Delta::Seal(seal),
                });
            }
        }
        Ok(())
    }

    /// End of input. A ConverseStream ends with `metadata` or an exception; one that did not
    /// is left open, and the caller reports it cut short.
    /// End of input: a stream that never reached `metadata` (or an exception) was cut short,
    /// and says so, as every other dialect's decoder does.
    pub fn finish(&mut self, out: &mut Vec<StreamEvent>) {
        if !self.done {
            self.done = true;
            out.push(StreamEvent::Error {
                error: dragoman_model::ErrorBody::truncated_stream(),
            });
        }
    }

    /// Bedrock sends nothing after an exception.
    pub fn is_error_trailer(&self, _ev: &Event) -> bool {
        false
    }
}

fn index_of(v: &Value, path: &str) -> Result<u64, DecodeError> {
    v.get("contentBlockIndex")
        .and_then(Value::as_u64)
        .ok_or_else(|| DecodeError::missing(format!("{path}.contentBlockIndex")))
}

#[derive(Debug)]
enum Out {
    Text,
    Reasoning,
    Tool,
    Opaque,
    Dropped,
}

#[derive(Debug)]
struct OutBlock {
    index: u64,
    kind: Out,
    /// A seal given at the block's start, written as its signature delta before the stop.
    seal: Option<ReasoningSeal>,
}

#[derive(Debug)]
pub struct StreamEncoder {
    opts: StreamOptions,
    usage: Usage,
    stop: Option<StopReason>,
    blocks: HashMap<usize, OutBlock>,
    next: u64,
    done: bool,
}

fn event(name: &str, data: Value) -> Event {
    Event::named(name, data.to_string())
}

/// The signature a seal is written as towards a client: Anthropic's own natively, any other
/// provider's wrapped.
fn signature_of(s: &ReasoningSeal) -> String {
    s.carry_in(Family::Anthropic)
}

fn seal_delta(index: u64, s: &ReasoningSeal) -> Event {
    let r = if s.family == Family::Anthropic && s.kind == SealKind::Redacted {
        json!({ "redactedContent": redacted_blob(s) })
    } else {
        json!({ "signature": signature_of(s) })
    };
    event(
        "contentBlockDelta",
        json!({"contentBlockIndex": index, "delta": {"reasoningContent": r}}),
    )
}

impl StreamEncoder {
    pub fn new(opts: StreamOptions) -> Self {
        StreamEncoder {
            opts,
            usage: Usage::default(),
            stop: None,
            blocks: HashMap::new(),
            next: 0,
            done: false,
        }
    }

    /// A text or reasoning-text delta written straight as JSON text, byte for byte what
    /// serializing the tree gives (text deltas are most of a stream).
    fn text_delta(index: u64, text: &str, reasoning: bool, out: &mut Vec<Event>) {
        let mut s = String::with_capacity(text.len() + 64);
        s.push_str(r#"{"contentBlockIndex":"#);
        s.push_str(&index.to_string());
        if reasoning {
            s.push_str(r#","delta":{"reasoningContent":{"text":"#);
            write_json_str(&mut s, text);
            s.push_str("}}}");
        } else {
            s.push_str(r#","delta":{"text":"#);
            write_json_str(&mut s, text);
            s.push_str("}}");
        }
        out.push(Event::named("contentBlockDelta", s));
    }

    pub fn push(&mut self, ev: &StreamEvent, out: &mut Vec<Event>, losses: &mut Losses) {
        if self.done {
            return;
        }
        match ev {
            StreamEvent::MessageStart { usage, .. } => {
                self.usage.merge_from(usage);
                out.push(event("messageStart", json!({"role": "assistant"})));
            }
            StreamEvent::BlockStart { index, block } => {
                let at = self.next;
                let (kind, seal) = match block {
                    BlockKind::Text => (Out::Text, None),
                    BlockKind::Refusal => {
                        losses.approximated(format!("content[{index}]"), "refusal sent as text");
                        (Out::Text, None)
                    }
                    BlockKind::Reasoning { seal, .. } => match seal {
                        Some(s)
                            if s.family == Family::Anthropic && s.kind == SealKind::Redacted =>
                        {
                            out.push(seal_delta(at, s));
                            (Out::Reasoning, None)
                        }
                        s => (Out::Reasoning, s.clone()),
                    },
                    BlockKind::ToolCall { id, name, kind } => {
                        if *kind == ToolKind::Custom {
                            losses.approximated(
                                format!("content[{index}]"),
                                "custom tool input sent as a function's input text",
                            );
                        }
                        out.push(event(
                            "contentBlockStart",
                            json!({"contentBlockIndex": at, "start": {"toolUse": {"toolUseId": id, "name": name}}}),
                        ));
                        (Out::Tool, None)
                    }
                    BlockKind::Opaque { dialect, value } if *dialect == Dialect::Bedrock => {
                        let is_start = value.as_object().is_some_and(|m| {
                            m.len() == 1
                                && ["toolUse", "toolResult", "image"]
                                    .iter()
                                    .any(|k| m.contains_key(*k))
                        });
                        if is_start {
                            out.push(event(
                                "contentBlockStart",
                                json!({"contentBlockIndex": at, "start": value}),
                            ));
                        } else if value.as_object().is_some_and(|m| !m.is_empty()) {
                            out.push(event(
                                "contentBlockDelta",
                                json!({"contentBlockIndex": at, "delta": value}),
                            ));
                        }
                        (Out::Opaque, None)
                    }
                    BlockKind::Opaque { dialect, .. } => {
                        losses.dropped(
                            format!("content[{index}]"),
                            format!("{dialect} content has no Bedrock equivalent"),
                        );
                        self.blocks.insert(
                            *index,
                            OutBlock {
                                index: 0,
                                kind: Out::Dropped,
                                seal: None,
                            },
                        );
                        return;
                    }
                };
                self.next += 1;
                self.blocks.insert(
                    *index,
                    OutBlock {
                        index: at,
                        kind,
                        seal,
                    },
                );
            }
            StreamEvent::BlockDelta { index, delta } => {
                let Some(b) = self.blocks.get_mut(index) else {
                    return;
                };
                let at = b.index;
                match (&b.kind, delta) {
                    (Out::Dropped, _) => {}
                    (Out::Text, Delta::Text(t) | Delta::Refusal(t)) => {
                        if !t.is_empty() {
                            Self::text_delta(at, t, false, out);
                        }
                    }
                    (Out::Text, Delta::Citation { dialect, value })
                        if *dialect == Dialect::Bedrock =>
                    {
                        out.push(event(
                            "contentBlockDelta",
                            json!({"contentBlockIndex": at, "delta": {"citation": value}}),
                        ));
                    }
                    (Out::Reasoning, Delta::Reasoning(t)) => {
                        if !t.is_empty() {
                            Self::text_delta(at, t, true, out);
                        }
                    }
                    (Out::Reasoning, Delta::Seal(s)) => {
                        b.seal = None;
                        out.push(seal_delta(at, s));
                    }
                    (Out::Tool, Delta::Arguments(a)) => {
                        if !a.is_empty() {
                            let mut s = String::with_capacity(a.len() + 64);
                            s.push_str(r#"{"contentBlockIndex":"#);
                            s.push_str(&at.to_string());
                            s.push_str(r#","delta":{"toolUse":{"input":"#);
                            write_json_str(&mut s, a);
                            s.push_str("}}}");
                            out.push(Event::named("contentBlockDelta", s));
                        }
                    }
                    (Out::Opaque, Delta::Opaque { dialect, value })
                        if *dialect == Dialect::Bedrock =>
                    {
                        out.push(event(
                            "contentBlockDelta",
                            json!({"contentBlockIndex": at, "delta": value}),
                        ));
                    }
                    (_, d) => losses.dropped(
                        format!("content[{index}]"),
                        format!("delta {d:?} has no Bedrock stream form"),
                    ),
                }
            }
            StreamEvent::BlockStop { index } => {
                let Some(b) = self.blocks.remove(index) else {
                    return;
                };
                if matches!(b.kind, Out::Dropped) {
                    return;
                }
                if let Some(s) = &b.seal {
                    out.push(seal_delta(b.index, s));
                }
                out.push(event(
                    "contentBlockStop",
                    json!({ "contentBlockIndex": b.index }),
                ));
            }
            StreamEvent::MessageDelta { stop, usage } => {
                self.stop = Some(stop.clone());
                self.usage.merge_from(usage);
            }
            StreamEvent::MessageStop => {
                let stop = self.stop.take().unwrap_or(StopReason::EndTurn);
                let mut m = serde_json::Map::new();
                m.insert(
                    "stopReason".into(),
                    json!(stop::encode(&stop, None, "stop", losses)),
                );
                if let StopReason::StopSequence { matched: Some(s) } = &stop {
                    m.insert(
                        "additionalModelResponseFields".into(),
                        json!({ "stop_sequence": s }),
                    );
                }
                out.push(event("messageStop", Value::Object(m)));
                let mut u = self.usage;
                if u.input_uncached.is_none() {
                    u.input_uncached = self.opts.input_estimate;
                }
                out.push(event(
                    "metadata",
                    json!({"usage": usage::encode(&u), "metrics": {"latencyMs": 0}}),
                ));
                self.done = true;
            }
            StreamEvent::Ping => {}
            StreamEvent::Error { error } => {
                out.push(error::stream_error_event(error));
                self.done = true;
            }
        }
    }

    /// Bedrock events carry no running counts to continue.
    pub fn continue_after(&mut self, _last: &Event) {}

    pub fn finish(&mut self, _out: &mut Vec<Event>, _losses: &mut Losses) {}
}
