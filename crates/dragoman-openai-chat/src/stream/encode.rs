//! Canonical stream events → Chat SSE chunks (data-only events). Chat chunks may interleave
//! tool calls by `index`, so nothing is buffered: every delta is written as it arrives.
//!
//! `created` is written as 0 in every chunk: this crate has no clock, and the value only has to
//! be stable across the chunks of one stream (the gateway may rewrite it).

use std::collections::HashMap;

use dragoman_model::{BlockKind, Delta, ErrorBody, Losses, StreamEvent, StreamOptions, ToolKind};
use dragoman_sse::Event;
use serde_json::{Value, json};

use super::DONE;
use crate::{error, stop, usage};

#[derive(Debug, Clone, Copy)]
enum Block {
    Text,
    Reasoning,
    Refusal,
    /// A tool call and its Chat `index`, which counts tool calls only.
    Tool(usize, ToolKind),
    Dropped,
}

#[derive(Debug)]
pub struct StreamEncoder {
    opts: StreamOptions,
    id: String,
    model: String,
    started: bool,
    /// A `finish_reason` chunk went out (`[DONE]` must not come before one).
    finished: bool,
    done: bool,
    blocks: HashMap<usize, Block>,
    next_tool: usize,
}

impl StreamEncoder {
    pub fn new(opts: StreamOptions) -> Self {
        StreamEncoder {
            opts,
            id: String::new(),
            model: String::new(),
            started: false,
            finished: false,
            done: false,
            blocks: HashMap::new(),
            next_tool: 0,
        }
    }

    fn chunk(&self, delta: Value, finish_reason: Option<&str>) -> Event {
        Event::data(
            json!({
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": 0,
                "model": self.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
            })
            .to_string(),
        )
    }

    fn ensure_started(&mut self, out: &mut Vec<Event>) {
        if !self.started {
            self.started = true;
            out.push(self.chunk(json!({"role": "assistant", "content": ""}), None));
        }
    }

    pub fn push(&mut self, ev: &StreamEvent, out: &mut Vec<Event>, losses: &mut Losses) {
        if self.done {
            return;
        }
        match ev {
            StreamEvent::MessageStart { id, model, .. } => {
                if !self.started {
                    self.id.clone_from(id);
                    self.model.clone_from(model);
                }
                self.ensure_started(out);
            }
            StreamEvent::BlockStart { index, block } => {
                self.ensure_started(out);
                let b = match block {
                    BlockKind::Text => Block::Text,
                    BlockKind::Refusal => Block::Refusal,
                    BlockKind::Reasoning { seal } => {
                        if seal.is_some() {
                            losses.dropped(
                                format!("content[{index}].seal"),
                                "Chat carries no opaque reasoning state",
                            );
                        }
                        Block::Reasoning
                    }
                    BlockKind::ToolCall { id, name, kind } => {
                        let t = self.next_tool;
                        self.next_tool += 1;
                        let call = match kind {
                            ToolKind::Function => json!({
                                "index": t, "id": id, "type": "function",
                                "function": {"name": name, "arguments": ""},
                            }),
                            ToolKind::Custom => {
                                losses.approximated(
                                    format!("content[{index}]"),
                                    "custom tool input is streamed as `custom.input` fragments, which few Chat clients read",
                                );
                                json!({
                                    "index": t, "id": id, "type": "custom",
                                    "custom": {"name": name, "input": ""},
                                })
                            }
                        };
                        out.push(self.chunk(json!({"tool_calls": [call]}), None));
                        Block::Tool(t, *kind)
                    }
                    BlockKind::Opaque { dialect, .. } => {
                        losses.dropped(
                            format!("content[{index}]"),
                            format!("{dialect} block has no Chat stream form"),
                        );
                        Block::Dropped
                    }
                };
                self.blocks.insert(*index, b);
            }
            StreamEvent::BlockDelta { index, delta } => {
                self.ensure_started(out);
                let block = self.blocks.get(index).copied().unwrap_or(Block::Dropped);
                let path = format!("content[{index}]");
                let d = match (block, delta) {
                    (_, Delta::Text(t)) if !t.is_empty() => json!({"content": t}),
                    (_, Delta::Refusal(t)) if !t.is_empty() => json!({"refusal": t}),
                    (_, Delta::Reasoning(t)) if !t.is_empty() => {
                        json!({"reasoning_content": t})
                    }
                    (Block::Tool(t, ToolKind::Function), Delta::Arguments(a)) if !a.is_empty() => {
                        json!({"tool_calls": [{"index": t, "function": {"arguments": a}}]})
                    }
                    (Block::Tool(t, ToolKind::Custom), Delta::Arguments(a)) if !a.is_empty() => {
                        json!({"tool_calls": [{"index": t, "custom": {"input": a}}]})
                    }
                    (_, Delta::Seal(_)) => {
                        losses.dropped(
                            format!("{path}.seal"),
                            "Chat carries no opaque reasoning state",
                        );
                        return;
                    }
                    (_, Delta::Citation { .. }) => {
                        losses.dropped(
                            format!("{path}.citations"),
                            "Chat stream chunks carry no citations",
                        );
                        return;
                    }
                    (_, Delta::Opaque { dialect, .. }) => {
                        losses.dropped(&path, format!("{dialect} delta has no Chat stream form"));
                        return;
                    }
                    _ => return,
                };
                out.push(self.chunk(d, None));
            }
            StreamEvent::BlockStop { .. } | StreamEvent::Ping => {}
            StreamEvent::MessageDelta {
                stop: reason,
                usage: u,
            } => {
                self.ensure_started(out);
                let fr = stop::encode(reason, "stop", losses);
                out.push(self.chunk(json!({}), Some(fr)));
                self.finished = true;
                if self.opts.include_usage {
                    out.push(Event::data(
                        json!({
                            "id": self.id,
                            "object": "chat.completion.chunk",
                            "created": 0,
                            "model": self.model,
                            "choices": [],
                            "usage": usage::encode(u, None),
                        })
                        .to_string(),
                    ));
                }
            }
            StreamEvent::MessageStop => {
                self.ensure_started(out);
                if !self.finished {
                    out.push(self.chunk(json!({}), Some("stop")));
                }
                out.push(Event::data(DONE));
                self.done = true;
            }
            StreamEvent::Error { error: e } => {
                // Chat clients see an abnormal end only if `[DONE]` never comes.
                out.push(error::stream_error_event(e));
                self.done = true;
            }
        }
    }

    /// End of input: a stream that never reached a terminal event ends with an error chunk.
    pub fn finish(&mut self, out: &mut Vec<Event>, losses: &mut Losses) {
        if !self.done {
            self.push(
                &StreamEvent::Error {
                    error: ErrorBody::truncated_stream(),
                },
                out,
                losses,
            );
        }
    }
}
