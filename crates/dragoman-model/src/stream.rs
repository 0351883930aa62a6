//! Canonical stream events (Anthropic's block lifecycle), and the two bridges between streams
//! and whole responses: [`Collector`] folds events into a [`Response`], [`response_events`]
//! unfolds a response into events.
//!
//! Contract every stream decoder keeps: exactly one `MessageStart` first; each block index is
//! started once, gets deltas only while open and is stopped once; indexes are assigned in start
//! order from 0; blocks may interleave (an encoder that cannot interleave buffers); the stream
//! ends with either `MessageDelta` + `MessageStop` or a single `Error`, and nothing follows.
//! `MessageDelta.usage` is the cumulative final usage, merged with what `MessageStart` said.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Dialect, ErrorBody, Part, ReasoningSeal, Response, StopReason, ToolKind, Usage};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum StreamEvent {
    /// `usage` is what is known at the start (Anthropic upstreams report input here; OpenAI
    /// upstreams report nothing until the end).
    MessageStart {
        id: String,
        model: String,
        usage: Usage,
    },
    BlockStart {
        index: usize,
        block: BlockKind,
    },
    BlockDelta {
        index: usize,
        delta: Delta,
    },
    BlockStop {
        index: usize,
    },
    MessageDelta {
        stop: StopReason,
        usage: Usage,
    },
    MessageStop,
    Ping,
    Error {
        error: ErrorBody,
    },
}

impl StreamEvent {
    pub fn is_terminal(&self) -> bool {
        matches!(self, StreamEvent::MessageStop | StreamEvent::Error { .. })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BlockKind {
    Text,
    /// A reasoning block; a redacted block arrives with its seal here and has no deltas.
    Reasoning {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seal: Option<ReasoningSeal>,
        /// The upstream's own id for the item, when its dialect names reasoning items
        /// (Responses' `rs_…`) before their seal arrives: an encoder that announces the item
        /// at its start names it the same as at its end.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
    },
    ToolCall {
        id: String,
        name: String,
        #[serde(default)]
        kind: ToolKind,
    },
    Refusal,
    /// A block the canonical model does not know, complete at start (server-tool results) or
    /// completed by `Delta::Opaque` fragments.
    Opaque {
        dialect: Dialect,
        value: Value,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum Delta {
    Text(String),
    Reasoning(String),
    /// The block's opaque reasoning state, whole (Anthropic `signature_delta`, Responses
    /// `encrypted_content` at `output_item.done`).
    Seal(ReasoningSeal),
    /// A fragment of tool-call arguments (JSON text, or raw input for custom tools).
    Arguments(String),
    Refusal(String),
    /// A citation attached to the text block, in its dialect's shape.
    Citation {
        dialect: Dialect,
        value: Value,
    },
    /// A delta the canonical model does not know, in its dialect's shape.
    Opaque {
        dialect: Dialect,
        value: Value,
    },
}

/// Folds a canonical event stream into a response, checking the stream contract as it goes.
#[derive(Debug, Default)]
pub struct Collector {
    id: String,
    model: String,
    started: bool,
    blocks: Vec<(usize, Part, bool)>,
    usage: Usage,
    stop: Option<StopReason>,
    done: bool,
}

impl Collector {
    pub fn new() -> Self {
        Collector::default()
    }

    /// Applies one event. An `Error` event or a contract violation ends collection with an error.
    pub fn push(&mut self, event: &StreamEvent) -> Result<(), ErrorBody> {
        let bad = |m: String| Err(ErrorBody::new(crate::ErrorKind::Server, m));
        if self.done {
            return bad(format!("event after the end of the stream: {event:?}"));
        }
        match event {
            StreamEvent::MessageStart { id, model, usage } => {
                if self.started {
                    return bad("second message_start".into());
                }
                self.started = true;
                self.id.clone_from(id);
                self.model.clone_from(model);
                self.usage.merge_from(usage);
            }
            _ if !self.started => return bad("event before message_start".into()),
            StreamEvent::BlockStart { index, block } => {
                if self.blocks.iter().any(|(i, _, _)| i == index) {
                    return bad(format!("block {index} started twice"));
                }
                let part = match block {
                    BlockKind::Text => Part::text(""),
                    BlockKind::Reasoning { seal, .. } => Part::Reasoning {
                        text: String::new(),
                        seal: seal.clone(),
                    },
                    BlockKind::ToolCall { id, name, kind } => Part::ToolCall {
                        id: id.clone(),
                        name: name.clone(),
                        arguments: String::new(),
                        kind: *kind,
                    },
                    BlockKind::Refusal => Part::Refusal {
                        text: String::new(),
                    },
                    BlockKind::Opaque { dialect, value } => Part::Opaque {
                        dialect: *dialect,
                        value: value.clone(),
                    },
                };
                self.blocks.push((*index, part, true));
            }
            StreamEvent::BlockDelta { index, delta } => {
                let Some((_, part, open)) = self.blocks.iter_mut().find(|(i, _, _)| i == index)
                else {
                    return bad(format!("delta for unknown block {index}"));
                };
                if !*open {
                    return bad(format!("delta for closed block {index}"));
                }
                match (part, delta) {
                    (Part::Text { text, .. }, Delta::Text(t)) => text.push_str(t),
                    (Part::Text { citations, .. }, Delta::Citation { dialect, value }) => {
                        let entry =
                            citations.get_or_insert_with(|| (*dialect, Value::Array(Vec::new())));
                        if let Value::Array(a) = &mut entry.1 {
                            a.push(value.clone());
                        }
                    }
                    (Part::Reasoning { text, .. }, Delta::Reasoning(t)) => text.push_str(t),
                    (Part::Reasoning { seal, .. }, Delta::Seal(s)) => *seal = Some(s.clone()),
                    (Part::ToolCall { arguments, .. }, Delta::Arguments(a)) => {
                        arguments.push_str(a)
                    }
                    (Part::Refusal { text }, Delta::Refusal(t)) => text.push_str(t),
                    (Part::Opaque { value, .. }, Delta::Opaque { value: d, .. }) => {
                        if let Value::Object(m) = value {
                            let deltas = m
                                .entry("deltas")
                                .or_insert_with(|| Value::Array(Vec::new()));
                            if let Value::Array(a) = deltas {
                                a.push(d.clone());
                            }
                        }
                    }
                    (p, d) => return bad(format!("delta {d:?} does not fit block {p:?}")),
                }
            }
            StreamEvent::BlockStop { index } => {
                let Some((_, _, open)) = self.blocks.iter_mut().find(|(i, _, _)| i == index) else {
                    return bad(format!("stop for unknown block {index}"));
                };
                if !*open {
                    return bad(format!("block {index} stopped twice"));
                }
                *open = false;
            }
            StreamEvent::MessageDelta { stop, usage } => {
                self.usage.merge_from(usage);
                self.stop = Some(stop.clone());
            }
            StreamEvent::MessageStop => {
                if self.blocks.iter().any(|(_, _, open)| *open) {
                    return bad("message_stop with a block still open".into());
                }
                if self.stop.is_none() {
                    return bad("message_stop without message_delta".into());
                }
                self.done = true;
            }
            StreamEvent::Ping => {}
            StreamEvent::Error { error } => {
                self.done = true;
                return Err(error.clone());
            }
        }
        Ok(())
    }

    /// The collected response; an error unless the stream ended with `MessageStop`.
    pub fn finish(self) -> Result<Response, ErrorBody> {
        if !self.done {
            return Err(ErrorBody::truncated_stream());
        }
        let mut blocks = self.blocks;
        blocks.sort_by_key(|(i, _, _)| *i);
        Ok(Response {
            id: self.id,
            model: self.model,
            content: blocks.into_iter().map(|(_, p, _)| p).collect(),
            stop: self.stop.unwrap_or(StopReason::EndTurn),
            usage: self.usage,
            extensions: Vec::new(),
        })
    }
}

/// Folds a whole event list into a response.
pub fn collect(events: &[StreamEvent]) -> Result<Response, ErrorBody> {
    let mut c = Collector::new();
    for e in events {
        c.push(e)?;
    }
    c.finish()
}

/// Unfolds a response into the canonical events that would have streamed it. Input usage goes
/// in `MessageStart`, the full usage in `MessageDelta`.
pub fn response_events(response: &Response) -> Vec<StreamEvent> {
    let start_usage = Usage {
        input_uncached: response.usage.input_uncached,
        cache_read: response.usage.cache_read,
        cache_write: response.usage.cache_write,
        cache_write_5m: response.usage.cache_write_5m,
        cache_write_1h: response.usage.cache_write_1h,
        ..Usage::default()
    };
    let mut out = vec![StreamEvent::MessageStart {
        id: response.id.clone(),
        model: response.model.clone(),
        usage: start_usage,
    }];
    for (index, part) in response.content.iter().enumerate() {
        let (block, deltas): (BlockKind, Vec<Delta>) = match part {
            Part::Text {
                text, citations, ..
            } => {
                let mut d = Vec::new();
                if let Some((dialect, Value::Array(list))) = citations {
                    for c in list {
                        d.push(Delta::Citation {
                            dialect: *dialect,
                            value: c.clone(),
                        });
                    }
                }
                if !text.is_empty() {
                    d.push(Delta::Text(text.clone()));
                }
                (BlockKind::Text, d)
            }
            Part::Reasoning { text, seal } => match seal {
                Some(s) if s.kind == crate::reasoning::SealKind::Redacted => (
                    BlockKind::Reasoning {
                        seal: Some(s.clone()),
                        id: s.item_id.clone(),
                    },
                    Vec::new(),
                ),
                _ => {
                    let mut d = Vec::new();
                    if !text.is_empty() {
                        d.push(Delta::Reasoning(text.clone()));
                    }
                    if let Some(s) = seal {
                        d.push(Delta::Seal(s.clone()));
                    }
                    let id = seal.as_ref().and_then(|s| s.item_id.clone());
                    (BlockKind::Reasoning { seal: None, id }, d)
                }
            },
            Part::ToolCall {
                id,
                name,
                arguments,
                kind,
            } => {
                let d = if arguments.is_empty() {
                    Vec::new()
                } else {
                    vec![Delta::Arguments(arguments.clone())]
                };
                (
                    BlockKind::ToolCall {
                        id: id.clone(),
                        name: name.clone(),
                        kind: *kind,
                    },
                    d,
                )
            }
            Part::Refusal { text } => (BlockKind::Refusal, vec![Delta::Refusal(text.clone())]),
            Part::Opaque { dialect, value } => (
                BlockKind::Opaque {
                    dialect: *dialect,
                    value: value.clone(),
                },
                Vec::new(),
            ),
            // Responses never hold these; keep them visible rather than lose them.
            other => (
                BlockKind::Opaque {
                    dialect: Dialect::Anthropic,
                    value: serde_json::to_value(other).unwrap_or(Value::Null),
                },
                Vec::new(),
            ),
        };
        out.push(StreamEvent::BlockStart { index, block });
        for delta in deltas {
            out.push(StreamEvent::BlockDelta { index, delta });
        }
        out.push(StreamEvent::BlockStop { index });
    }
    out.push(StreamEvent::MessageDelta {
        stop: response.stop.clone(),
        usage: response.usage,
    });
    out.push(StreamEvent::MessageStop);
    out
}
