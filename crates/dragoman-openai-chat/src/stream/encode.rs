//! Canonical stream events → Chat SSE chunks (data-only events). Chat chunks may interleave
//! tool calls by `index`, so nothing is buffered: every delta is written as it arrives.
//!
//! `created` is written as 0 in every chunk: this crate has no clock, and the value only has to
//! be stable across the chunks of one stream (the gateway may rewrite it).

use std::collections::HashMap;
use std::fmt::Write as _;

use dragoman_model::{BlockKind, Delta, ErrorBody, Losses, StreamEvent, StreamOptions, ToolKind};
use dragoman_sse::Event;
use serde_json::json;

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

    /// A chunk written straight as JSON text: building a `Value` per delta was most of the cost
    /// of a stream. The key order is the one `serde_json`'s sorted maps produce, so output stays
    /// byte-identical to the `json!` form this replaced.
    fn chunk_raw(&self, delta: &str, finish_reason: Option<&str>) -> Event {
        let mut s =
            String::with_capacity(delta.len() + self.id.len() + self.model.len() + FRAME_OVERHEAD);
        s.push_str("{\"choices\":[{\"delta\":");
        s.push_str(delta);
        s.push_str(",\"finish_reason\":");
        match finish_reason {
            Some(f) => push_json_str(&mut s, f),
            None => s.push_str("null"),
        }
        s.push_str(",\"index\":0}],\"created\":0,\"id\":");
        push_json_str(&mut s, &self.id);
        s.push_str(",\"model\":");
        push_json_str(&mut s, &self.model);
        s.push_str(",\"object\":\"chat.completion.chunk\"}");
        Event::data(s)
    }

    fn ensure_started(&mut self, out: &mut Vec<Event>) {
        if !self.started {
            self.started = true;
            out.push(self.chunk_raw(r#"{"content":"","role":"assistant"}"#, None));
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
                    BlockKind::Reasoning { seal, .. } => {
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
                        let mut d = String::with_capacity(96 + id.len() + name.len());
                        match kind {
                            ToolKind::Function => {
                                d.push_str(r#"{"tool_calls":[{"function":{"arguments":"","name":"#);
                                push_json_str(&mut d, name);
                                d.push_str(r#"},"id":"#);
                                push_json_str(&mut d, id);
                                let _ = write!(d, r#","index":{t},"type":"function"}}]}}"#);
                            }
                            ToolKind::Custom => {
                                losses.approximated(
                                    format!("content[{index}]"),
                                    "custom tool input is streamed as `custom.input` fragments, which few Chat clients read",
                                );
                                d.push_str(r#"{"tool_calls":[{"custom":{"input":"","name":"#);
                                push_json_str(&mut d, name);
                                d.push_str(r#"},"id":"#);
                                push_json_str(&mut d, id);
                                let _ = write!(d, r#","index":{t},"type":"custom"}}]}}"#);
                            }
                        }
                        out.push(self.chunk_raw(&d, None));
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
                let mut d = String::new();
                match (block, delta) {
                    (_, Delta::Text(t)) if !t.is_empty() => text_delta(&mut d, "content", t),
                    (_, Delta::Refusal(t)) if !t.is_empty() => text_delta(&mut d, "refusal", t),
                    (_, Delta::Reasoning(t)) if !t.is_empty() => {
                        text_delta(&mut d, "reasoning_content", t)
                    }
                    (Block::Tool(t, ToolKind::Function), Delta::Arguments(a)) if !a.is_empty() => {
                        d.reserve(a.len() + 64);
                        d.push_str(r#"{"tool_calls":[{"function":{"arguments":"#);
                        push_json_str(&mut d, a);
                        let _ = write!(d, r#"}},"index":{t}}}]}}"#);
                    }
                    (Block::Tool(t, ToolKind::Custom), Delta::Arguments(a)) if !a.is_empty() => {
                        d.reserve(a.len() + 64);
                        d.push_str(r#"{"tool_calls":[{"custom":{"input":"#);
                        push_json_str(&mut d, a);
                        let _ = write!(d, r#"}},"index":{t}}}]}}"#);
                    }
                    (_, Delta::Seal(_)) => {
                        losses.dropped(
                            format!("content[{index}].seal"),
                            "Chat carries no opaque reasoning state",
                        );
                        return;
                    }
                    (_, Delta::Citation { .. }) => {
                        losses.dropped(
                            format!("content[{index}].citations"),
                            "Chat stream chunks carry no citations",
                        );
                        return;
                    }
                    (_, Delta::Opaque { dialect, .. }) => {
                        losses.dropped(
                            format!("content[{index}]"),
                            format!("{dialect} delta has no Chat stream form"),
                        );
                        return;
                    }
                    _ => return,
                };
                out.push(self.chunk_raw(&d, None));
            }
            StreamEvent::BlockStop { .. } | StreamEvent::Ping => {}
            StreamEvent::MessageDelta {
                stop: reason,
                usage: u,
            } => {
                self.ensure_started(out);
                if let Some(why) = stop::explanation(reason) {
                    let mut delta = String::from("{\"refusal\":");
                    push_json_str(&mut delta, why);
                    delta.push('}');
                    out.push(self.chunk_raw(&delta, None));
                }
                let fr = stop::encode(reason, "stop", losses);
                out.push(self.chunk_raw("{}", Some(fr)));
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
                    out.push(self.chunk_raw("{}", Some("stop")));
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
    /// Nothing to continue: this dialect's events carry no running count.
    pub fn continue_after(&mut self, _last: &dragoman_sse::Event) {}

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

/// Bytes of a chunk besides the delta, id and model, so one allocation usually suffices.
const FRAME_OVERHEAD: usize = 128;

/// `{"<key>":<text>}`, the delta of a text-like piece.
fn text_delta(d: &mut String, key: &str, text: &str) {
    d.reserve(text.len() + key.len() + 8);
    d.push_str("{\"");
    d.push_str(key);
    d.push_str("\":");
    push_json_str(d, text);
    d.push('}');
}

/// Appends `s` as a JSON string literal (the shared escaping of `dragoman_model`).
fn push_json_str(out: &mut String, s: &str) {
    dragoman_model::write_json_str(out, s);
}

#[cfg(test)]
mod tests {
    use super::push_json_str;

    #[test]
    fn escapes_like_serde_json() {
        let mut all: String = (0u8..0x80).map(char::from).collect();
        all.push_str("é€😀\u{2028}\u{7f}/");
        for s in [all.as_str(), "", "plain", "\"", "a\\b", "\u{0}x\u{1f}"] {
            let mut mine = String::new();
            push_json_str(&mut mine, s);
            assert_eq!(mine, serde_json::to_string(s).unwrap_or_default());
        }
    }
}
