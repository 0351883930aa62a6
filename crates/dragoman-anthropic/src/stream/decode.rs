//! Anthropic SSE events → canonical `StreamEvent`s: block indexes renumbered in start order,
//! cumulative usage merged, and the quirks of real upstreams (duplicate `message_start`,
//! missing `message_delta`, content inside `message_start`) absorbed here.

use std::collections::HashMap;

use dragoman_model::{
    BlockKind, DecodeError, Delta, Dialect, ErrorBody, Losses, Part, ReasoningSeal, Response,
    StopReason, StreamEvent, ToolKind, Usage, response_events,
};
use serde::Deserialize;
use serde_json::Value;

use crate::error::from_inner;
use crate::request::{Path, at, decode_block};
use crate::{stop, usage};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Thinking,
    Redacted,
    ToolUse,
    Opaque,
}

#[derive(Debug)]
struct Block {
    canonical: usize,
    kind: Kind,
    open: bool,
}

/// Decoder of one Anthropic stream.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    count: usize,
    started: bool,
    terminal: bool,
    blocks: HashMap<u64, Block>,
    next_index: usize,
    usage: Usage,
    stop: Option<StopReason>,
    has_tool_calls: bool,
}

/// The common events (`content_block_delta` with a text payload, `ping`) read without building
/// a `Value`. Anything this does not read exactly as the `Value` path would (a duplicate key, a
/// field of the wrong type) is an error here, and the caller then takes the `Value` path, which
/// stays the one definition of behaviour.
#[derive(Deserialize)]
struct Fast<'a> {
    #[serde(rename = "type", borrow)]
    ty: Option<&'a str>,
    index: Option<u64>,
    #[serde(borrow)]
    delta: Option<FastDelta<'a>>,
}

#[derive(Deserialize)]
struct FastDelta<'a> {
    #[serde(rename = "type", borrow)]
    ty: Option<&'a str>,
    text: Option<String>,
    partial_json: Option<String>,
    thinking: Option<String>,
}

fn seal_of(signature: &str) -> ReasoningSeal {
    ReasoningSeal::unwrap(signature)
        .unwrap_or_else(|| ReasoningSeal::anthropic_signature(signature))
}

fn text_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

impl StreamDecoder {
    pub fn new() -> Self {
        StreamDecoder::default()
    }

    fn err(&self, n: usize, name: &str, msg: impl Into<String>) -> DecodeError {
        DecodeError::new(format!("event[{n}] ({name})"), msg)
    }

    /// One SSE event in; zero or more canonical events appended to `out`.
    pub fn push(
        &mut self,
        ev: &dragoman_sse::Event,
        out: &mut Vec<StreamEvent>,
    ) -> Result<(), DecodeError> {
        let n = self.count;
        self.count += 1;
        if self.terminal {
            return Ok(());
        }
        let name = ev.event.as_deref().unwrap_or("message");
        let data = ev.data.trim();
        if data.is_empty() || data == "[DONE]" {
            return Ok(());
        }
        if data.starts_with('{')
            && let Ok(f) = serde_json::from_str::<Fast>(data)
            && self.fast(f, out)
        {
            return Ok(());
        }
        let v: Value = serde_json::from_str(data)
            .map_err(|e| self.err(n, name, format!("invalid json: {e}")))?;
        let ty = v
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or(name)
            .to_owned();
        match ty.as_str() {
            "message_start" => self.message_start(&v, n, out),
            "error" => {
                out.push(StreamEvent::Error {
                    error: from_inner(v.get("error"), None, data),
                });
                self.terminal = true;
                Ok(())
            }
            // Before message_start only an error means anything; a ping there would break the
            // canonical contract (MessageStart first).
            "ping" if !self.started => Ok(()),
            "ping" => {
                out.push(StreamEvent::Ping);
                Ok(())
            }
            "content_block_start"
            | "content_block_delta"
            | "content_block_stop"
            | "message_delta"
            | "message_stop"
                if !self.started =>
            {
                Err(self.err(n, &ty, "arrived before message_start"))
            }
            "content_block_start" => self.block_start(&v, n, &ty, out),
            "content_block_delta" => self.block_delta(&v, n, &ty, out),
            "content_block_stop" => {
                let idx = self.index_of(&v, n, &ty)?;
                let Some(b) = self.blocks.get_mut(&idx) else {
                    return Err(self.err(n, &ty, format!("stop for unknown block {idx}")));
                };
                if b.open {
                    b.open = false;
                    out.push(StreamEvent::BlockStop { index: b.canonical });
                }
                Ok(())
            }
            "message_delta" => {
                let delta = v.get("delta");
                if let Some(s) = stop::decode(
                    delta.and_then(|d| d.get("stop_reason")),
                    delta.and_then(|d| d.get("stop_sequence")),
                    delta.and_then(|d| d.get("stop_details")),
                ) {
                    self.stop = Some(s);
                }
                // Cumulative, not incremental: later numbers replace earlier ones.
                self.usage.merge_from(&usage::decode(v.get("usage")));
                Ok(())
            }
            "message_stop" => {
                self.close_all(out);
                // The upstream's reason when it gave one (it is authoritative, see
                // response.rs); otherwise the content decides.
                let has_calls = self.has_tool_calls;
                let stop = self
                    .stop
                    .clone()
                    .unwrap_or_else(|| StopReason::EndTurn.reconcile(has_calls));
                out.push(StreamEvent::MessageDelta {
                    stop,
                    usage: self.usage,
                });
                out.push(StreamEvent::MessageStop);
                self.terminal = true;
                Ok(())
            }
            // Anthropic: unknown event types are to be ignored.
            _ => Ok(()),
        }
    }

    /// End of input: a stream without its terminal event is an error.
    /// Anthropic's error event is its stream's last: nothing may follow it.
    pub fn is_error_trailer(&self, _ev: &dragoman_sse::Event) -> bool {
        false
    }

    pub fn finish(&mut self, out: &mut Vec<StreamEvent>) {
        if !self.terminal {
            self.terminal = true;
            out.push(StreamEvent::Error {
                error: ErrorBody::truncated_stream(),
            });
        }
    }

    /// Handles an event read by `Fast` when it is one of the common shapes, exactly as the
    /// `Value` path would; `false` (nothing done) sends it down that path.
    fn fast(&mut self, f: Fast, out: &mut Vec<StreamEvent>) -> bool {
        match f.ty {
            Some("ping") => {
                if self.started {
                    out.push(StreamEvent::Ping);
                }
                true
            }
            Some("content_block_delta") if self.started => {
                let (Some(idx), Some(d)) = (f.index, f.delta) else {
                    return false;
                };
                let Some(b) = self.blocks.get(&idx) else {
                    return false;
                };
                if !b.open {
                    return true;
                }
                let delta = match (b.kind, d.ty) {
                    (Kind::Text, Some("text_delta")) => d.text.map(Delta::Text),
                    (Kind::Thinking, Some("thinking_delta")) => d.thinking.map(Delta::Reasoning),
                    (Kind::ToolUse, Some("input_json_delta")) => {
                        d.partial_json.map(Delta::Arguments)
                    }
                    _ => None,
                };
                let Some(delta) = delta else {
                    return false;
                };
                out.push(StreamEvent::BlockDelta {
                    index: b.canonical,
                    delta,
                });
                true
            }
            _ => false,
        }
    }

    fn close_all(&mut self, out: &mut Vec<StreamEvent>) {
        let mut open: Vec<usize> = self
            .blocks
            .values_mut()
            .filter(|b| b.open)
            .map(|b| {
                b.open = false;
                b.canonical
            })
            .collect();
        open.sort_unstable();
        out.extend(
            open.into_iter()
                .map(|index| StreamEvent::BlockStop { index }),
        );
    }

    fn index_of(&self, v: &Value, n: usize, ty: &str) -> Result<u64, DecodeError> {
        v.get("index")
            .and_then(Value::as_u64)
            .ok_or_else(|| self.err(n, ty, "index is missing or not an integer"))
    }

    fn message_start(
        &mut self,
        v: &Value,
        n: usize,
        out: &mut Vec<StreamEvent>,
    ) -> Result<(), DecodeError> {
        let msg = v
            .get("message")
            .filter(|m| m.is_object())
            .ok_or_else(|| self.err(n, "message_start", "message is missing"))?;
        let u = usage::decode(msg.get("usage"));
        if self.started {
            // A proxy replayed message_start: one message, so only its numbers count.
            self.usage.merge_from(&u);
            return Ok(());
        }
        self.started = true;
        self.usage = u;
        out.push(StreamEvent::MessageStart {
            id: text_of(msg, "id").to_owned(),
            model: text_of(msg, "model").to_owned(),
            usage: usage::input_side(&u),
        });
        if let Some(s) = stop::decode(
            msg.get("stop_reason"),
            msg.get("stop_sequence"),
            msg.get("stop_details"),
        ) {
            self.stop = Some(s);
        }
        // Some upstreams (programmatic tool calling) deliver whole blocks inside message_start.
        if let Some(Value::Array(content)) = msg.get("content")
            && !content.is_empty()
        {
            let mut losses = Losses::new();
            let parts = content
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    let root = format!("event[{n}].message.content");
                    decode_block(b, &at(&Path::Root(&root), i), &mut losses)
                })
                .collect::<Result<Vec<Part>, _>>()?;
            self.has_tool_calls |= parts.iter().any(|p| matches!(p, Part::ToolCall { .. }));
            let fake = Response {
                id: String::new(),
                model: String::new(),
                content: parts,
                stop: StopReason::EndTurn,
                usage: Usage::default(),
                extensions: Vec::new(),
            };
            let base = self.next_index;
            for e in response_events(&fake) {
                match e {
                    StreamEvent::BlockStart { index, block } => {
                        self.next_index = self.next_index.max(base + index + 1);
                        out.push(StreamEvent::BlockStart {
                            index: base + index,
                            block,
                        });
                    }
                    StreamEvent::BlockDelta { index, delta } => out.push(StreamEvent::BlockDelta {
                        index: base + index,
                        delta,
                    }),
                    StreamEvent::BlockStop { index } => out.push(StreamEvent::BlockStop {
                        index: base + index,
                    }),
                    _ => {}
                }
            }
        }
        Ok(())
    }

    fn block_start(
        &mut self,
        v: &Value,
        n: usize,
        ty: &str,
        out: &mut Vec<StreamEvent>,
    ) -> Result<(), DecodeError> {
        let idx = self.index_of(v, n, ty)?;
        let cb = v
            .get("content_block")
            .filter(|c| c.is_object())
            .ok_or_else(|| self.err(n, ty, "content_block is missing"))?;
        // An index reused after a spliced message_start starts a new block.
        if let Some(old) = self.blocks.get_mut(&idx)
            && old.open
        {
            old.open = false;
            out.push(StreamEvent::BlockStop {
                index: old.canonical,
            });
        }
        let index = self.next_index;
        self.next_index += 1;
        let btype = text_of(cb, "type");
        let mut deltas = Vec::new();
        let (kind, block) = match btype {
            "text" => {
                if let Some(Value::Array(cites)) = cb.get("citations") {
                    for c in cites {
                        deltas.push(Delta::Citation {
                            dialect: Dialect::Anthropic,
                            value: c.clone(),
                        });
                    }
                }
                let t = text_of(cb, "text");
                if !t.is_empty() {
                    deltas.push(Delta::Text(t.to_owned()));
                }
                (Kind::Text, BlockKind::Text)
            }
            "thinking" => {
                let t = text_of(cb, "thinking");
                if !t.is_empty() {
                    deltas.push(Delta::Reasoning(t.to_owned()));
                }
                let s = text_of(cb, "signature");
                if !s.is_empty() {
                    deltas.push(Delta::Seal(seal_of(s)));
                }
                (
                    Kind::Thinking,
                    BlockKind::Reasoning {
                        seal: None,
                        id: None,
                    },
                )
            }
            "redacted_thinking" => (
                Kind::Redacted,
                BlockKind::Reasoning {
                    seal: Some(ReasoningSeal::anthropic_redacted(text_of(cb, "data"))),
                    id: None,
                },
            ),
            "tool_use" => {
                self.has_tool_calls = true;
                if let Some(Value::Object(input)) = cb.get("input")
                    && !input.is_empty()
                {
                    deltas.push(Delta::Arguments(
                        serde_json::to_string(input).unwrap_or_default(),
                    ));
                }
                (
                    Kind::ToolUse,
                    BlockKind::ToolCall {
                        id: text_of(cb, "id").to_owned(),
                        name: text_of(cb, "name").to_owned(),
                        kind: ToolKind::Function,
                    },
                )
            }
            _ => (
                Kind::Opaque,
                BlockKind::Opaque {
                    dialect: Dialect::Anthropic,
                    value: cb.clone(),
                },
            ),
        };
        out.push(StreamEvent::BlockStart { index, block });
        out.extend(
            deltas
                .into_iter()
                .map(|delta| StreamEvent::BlockDelta { index, delta }),
        );
        self.blocks.insert(
            idx,
            Block {
                canonical: index,
                kind,
                open: true,
            },
        );
        Ok(())
    }

    fn block_delta(
        &mut self,
        v: &Value,
        n: usize,
        ty: &str,
        out: &mut Vec<StreamEvent>,
    ) -> Result<(), DecodeError> {
        let idx = self.index_of(v, n, ty)?;
        let Some(b) = self.blocks.get(&idx) else {
            return Err(self.err(n, ty, format!("delta for unknown block {idx}")));
        };
        if !b.open {
            return Ok(());
        }
        let (index, kind) = (b.canonical, b.kind);
        let d = v
            .get("delta")
            .filter(|d| d.is_object())
            .ok_or_else(|| self.err(n, ty, "delta is missing"))?;
        let dty = text_of(d, "type");
        // A delta of a known kind must carry its payload, on any block: forwarding one without
        // it would hand the client a delta its SDK cannot apply.
        let required = match dty {
            "text_delta" => Some("text"),
            "input_json_delta" => Some("partial_json"),
            "thinking_delta" => Some("thinking"),
            "signature_delta" => Some("signature"),
            _ => None,
        };
        if let Some(k) = required
            && !d.get(k).is_some_and(Value::is_string)
        {
            return Err(self.err(n, ty, format!("delta.{k}: required string is missing")));
        }
        let delta = match (kind, dty) {
            (Kind::Text, "text_delta") => Delta::Text(text_of(d, "text").to_owned()),
            (Kind::Text, "citations_delta") => Delta::Citation {
                dialect: Dialect::Anthropic,
                value: d.get("citation").cloned().unwrap_or(Value::Null),
            },
            (Kind::Thinking, "thinking_delta") => {
                Delta::Reasoning(text_of(d, "thinking").to_owned())
            }
            (Kind::Thinking, "signature_delta") => {
                let s = text_of(d, "signature");
                if s.is_empty() {
                    return Ok(());
                }
                Delta::Seal(seal_of(s))
            }
            (Kind::ToolUse, "input_json_delta") => {
                Delta::Arguments(text_of(d, "partial_json").to_owned())
            }
            (Kind::Opaque, _) => Delta::Opaque {
                dialect: Dialect::Anthropic,
                value: d.clone(),
            },
            (
                _,
                "text_delta" | "citations_delta" | "thinking_delta" | "signature_delta"
                | "input_json_delta",
            ) => {
                return Err(self.err(n, ty, format!("{dty} does not fit block {idx} ({kind:?})")));
            }
            // Unknown delta kinds on known blocks carry nothing the block can hold.
            _ => return Ok(()),
        };
        out.push(StreamEvent::BlockDelta { index, delta });
        Ok(())
    }
}
