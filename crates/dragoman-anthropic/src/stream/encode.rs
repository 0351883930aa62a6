//! Canonical `StreamEvent`s → Anthropic SSE events. Anthropic blocks cannot interleave, so
//! blocks that start while another is open are buffered and flushed in start order; the encoder
//! owns wire indexes and the usage that `message_start` and `message_delta` must carry.

use std::collections::HashMap;
use std::fmt::Write as _;

use dragoman_model::{
    BlockKind, Delta, Dialect, ErrorBody, Family, Losses, ReasoningSeal, SealKind, StopReason,
    StreamEvent, StreamOptions, ToolKind, Usage,
};
use dragoman_sse::Event;
use serde_json::{Value, json};

use crate::error::stream_error_event;
use crate::{stop, usage};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Text,
    Thinking,
    Redacted,
    ToolUse {
        custom: bool,
    },
    Opaque,
    /// A block with no Anthropic form: nothing of it goes on the wire.
    Dropped,
}

#[derive(Debug)]
struct Pending {
    canonical: usize,
    kind: BlockKind,
    deltas: Vec<Delta>,
    stopped: bool,
    started: bool,
    mode: Mode,
    wire: usize,
    seal: Option<ReasoningSeal>,
    sealed: bool,
}

/// Encoder of one Anthropic stream.
#[derive(Debug)]
pub struct StreamEncoder {
    opts: StreamOptions,
    started: bool,
    terminal: bool,
    delta_sent: bool,
    start_usage: Usage,
    blocks: Vec<Pending>,
    by_index: HashMap<usize, usize>,
    cursor: usize,
    next_wire: usize,
}

fn event(ty: &str, data: Value) -> Event {
    Event::named(ty, data.to_string())
}

fn block_path(canonical: usize) -> String {
    format!("content[{canonical}]")
}

/// Appends `s` as a JSON string literal (the shared escaping of `dragoman_model`).
pub(crate) fn push_json_str(out: &mut String, s: &str) {
    dragoman_model::write_json_str(out, s);
}

/// A `content_block_delta` whose delta is `{"type": ty, key: text}`, written directly: this is
/// nearly every event of a stream. Keys are in `serde_json`'s (sorted) order.
fn text_delta_event(index: usize, ty: &str, key: &str, text: &str) -> Event {
    let mut data = String::with_capacity(text.len() + ty.len() + key.len() + 80);
    data.push_str("{\"delta\":{\"");
    data.push_str(key);
    data.push_str("\":");
    push_json_str(&mut data, text);
    data.push_str(",\"type\":\"");
    data.push_str(ty);
    data.push_str("\"},\"index\":");
    // Writing into a String cannot fail.
    let _ = write!(data, "{index}");
    data.push_str(",\"type\":\"content_block_delta\"}");
    Event::named("content_block_delta", data)
}

impl StreamEncoder {
    pub fn new(opts: StreamOptions) -> Self {
        StreamEncoder {
            opts,
            started: false,
            terminal: false,
            delta_sent: false,
            start_usage: Usage::default(),
            blocks: Vec::new(),
            by_index: HashMap::new(),
            cursor: 0,
            next_wire: 0,
        }
    }

    fn start_message(&mut self, id: &str, model: &str, u: Usage, out: &mut Vec<Event>) {
        self.started = true;
        self.start_usage = u;
        // Written directly, in the field order of `json!` (as Anthropic sends it).
        let mut data = String::with_capacity(id.len() + model.len() + 320);
        data.push_str("{\"type\":\"message_start\",\"message\":{\"id\":");
        push_json_str(&mut data, id);
        data.push_str(",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":");
        push_json_str(&mut data, model);
        data.push_str(",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":");
        usage::Written::start(&u, self.opts.input_estimate).write(&mut data);
        data.push_str("}}");
        out.push(Event::named("message_start", data));
    }

    fn ensure_started(&mut self, out: &mut Vec<Event>) {
        if !self.started {
            self.start_message("msg_dragoman", "unknown", Usage::default(), out);
        }
    }

    pub fn push(&mut self, ev: &StreamEvent, out: &mut Vec<Event>, losses: &mut Losses) {
        if self.terminal {
            return;
        }
        match ev {
            StreamEvent::MessageStart { id, model, usage } => {
                if !self.started {
                    self.start_message(id, model, *usage, out);
                }
            }
            // Anthropic allows ping anywhere, even before message_start.
            StreamEvent::Ping => {
                out.push(Event::named("ping", "{\"type\":\"ping\"}"));
            }
            StreamEvent::BlockStart { index, block } => {
                self.ensure_started(out);
                if self.by_index.contains_key(index) || self.delta_sent {
                    losses.dropped(block_path(*index), "block started twice or after the end");
                    return;
                }
                self.by_index.insert(*index, self.blocks.len());
                self.blocks.push(Pending {
                    canonical: *index,
                    kind: block.clone(),
                    deltas: Vec::new(),
                    stopped: false,
                    started: false,
                    mode: Mode::Dropped,
                    wire: 0,
                    seal: None,
                    sealed: false,
                });
                self.pump(out, losses);
            }
            StreamEvent::BlockDelta { index, delta } => {
                self.ensure_started(out);
                match self.by_index.get(index) {
                    Some(&pos) if !self.blocks[pos].stopped => {
                        let b = &mut self.blocks[pos];
                        if pos == self.cursor && b.started && b.deltas.is_empty() {
                            // On the wire already with nothing buffered: what pump would do,
                            // without buffering a copy of the delta first.
                            emit_delta(b, delta, out, losses);
                        } else {
                            b.deltas.push(delta.clone());
                            self.pump(out, losses);
                        }
                    }
                    _ => losses.dropped(block_path(*index), "delta outside its block"),
                }
            }
            StreamEvent::BlockStop { index } => {
                if let Some(&pos) = self.by_index.get(index) {
                    self.blocks[pos].stopped = true;
                    self.pump(out, losses);
                }
            }
            StreamEvent::MessageDelta { stop, usage } => {
                self.ensure_started(out);
                self.flush_all(out, losses);
                self.message_delta(stop, usage, out);
            }
            StreamEvent::MessageStop => {
                self.ensure_started(out);
                self.flush_all(out, losses);
                if !self.delta_sent {
                    let has_calls = self
                        .blocks
                        .iter()
                        .any(|b| matches!(b.kind, BlockKind::ToolCall { .. }));
                    let u = self.start_usage;
                    self.message_delta(&StopReason::EndTurn.reconcile(has_calls), &u, out);
                }
                out.push(event("message_stop", json!({"type": "message_stop"})));
                self.terminal = true;
            }
            StreamEvent::Error { error } => self.fail(error, out, losses),
        }
    }

    /// End of input; a stream that never reached its terminal event ends with an error.
    /// Nothing to continue: this dialect's events carry no running count.
    pub fn continue_after(&mut self, _last: &dragoman_sse::Event) {}

    pub fn finish(&mut self, out: &mut Vec<Event>, losses: &mut Losses) {
        if !self.terminal {
            self.fail(&ErrorBody::truncated_stream(), out, losses);
        }
    }

    fn fail(&mut self, error: &ErrorBody, out: &mut Vec<Event>, losses: &mut Losses) {
        if self.started {
            self.flush_all(out, losses);
        }
        out.push(stream_error_event(error));
        self.terminal = true;
    }

    fn message_delta(&mut self, stop: &StopReason, u: &Usage, out: &mut Vec<Event>) {
        let mut total = self.start_usage;
        total.merge_from(u);
        if total.input_uncached.is_none() {
            total.input_uncached = self.opts.input_estimate;
        }
        let (reason, sequence, details) = stop::encode(stop);
        let mut data = String::with_capacity(256);
        data.push_str("{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":");
        push_json_str(&mut data, reason);
        data.push_str(",\"stop_sequence\":");
        match &sequence {
            Some(seq) => push_json_str(&mut data, seq),
            None => data.push_str("null"),
        }
        if let Some(d) = details {
            data.push_str(",\"stop_details\":");
            data.push_str(&d.to_string());
        }
        data.push_str("},\"usage\":");
        usage::Written::full(&total).write(&mut data);
        data.push('}');
        out.push(Event::named("message_delta", data));
        self.delta_sent = true;
    }

    fn flush_all(&mut self, out: &mut Vec<Event>, losses: &mut Losses) {
        for b in &mut self.blocks[self.cursor..] {
            b.stopped = true;
        }
        self.pump(out, losses);
    }

    /// Emits what can go on the wire now: the block at the cursor (start, buffered deltas, and
    /// stop once it stopped), then the next ones, until one is still open.
    fn pump(&mut self, out: &mut Vec<Event>, losses: &mut Losses) {
        while let Some(b) = self.blocks.get_mut(self.cursor) {
            if !b.started {
                emit_start(b, &mut self.next_wire, out, losses);
            }
            for d in std::mem::take(&mut b.deltas) {
                emit_delta(b, &d, out, losses);
            }
            if !b.stopped {
                break;
            }
            emit_stop(b, out);
            self.cursor += 1;
        }
    }
}

fn emit_start(b: &mut Pending, next_wire: &mut usize, out: &mut Vec<Event>, losses: &mut Losses) {
    b.started = true;
    let path = || block_path(b.canonical);
    let (mode, content) = match &b.kind {
        BlockKind::Text => (Mode::Text, json!({"type": "text", "text": ""})),
        BlockKind::Refusal => {
            losses.approximated(path(), "refusal sent as a text block");
            (Mode::Text, json!({"type": "text", "text": ""}))
        }
        BlockKind::Reasoning { seal: Some(s), .. }
            if s.family == Family::Anthropic && s.kind == SealKind::Redacted =>
        {
            (
                Mode::Redacted,
                json!({"type": "redacted_thinking", "data": s.payload}),
            )
        }
        BlockKind::Reasoning { seal, .. } => {
            b.seal = seal.clone();
            (
                Mode::Thinking,
                json!({"type": "thinking", "thinking": "", "signature": ""}),
            )
        }
        BlockKind::ToolCall { id, name, kind } => {
            let custom = *kind == ToolKind::Custom;
            if custom {
                losses.approximated(path(), "custom tool input sent as {\"input\": <text>}");
            }
            (
                Mode::ToolUse { custom },
                json!({"type": "tool_use", "id": id, "name": name, "input": {}}),
            )
        }
        BlockKind::Opaque { dialect, value } => {
            if *dialect == Dialect::Anthropic {
                (Mode::Opaque, value.clone())
            } else {
                losses.dropped(path(), format!("{dialect} block has no Anthropic form"));
                b.mode = Mode::Dropped;
                return;
            }
        }
    };
    b.mode = mode;
    b.wire = *next_wire;
    *next_wire += 1;
    out.push(event(
        "content_block_start",
        json!({"type": "content_block_start", "index": b.wire, "content_block": content}),
    ));
    if mode == (Mode::ToolUse { custom: true }) {
        out.push(delta_event(
            b.wire,
            json!({"type": "input_json_delta", "partial_json": "{\"input\":\""}),
        ));
    }
}

fn delta_event(index: usize, delta: Value) -> Event {
    event(
        "content_block_delta",
        json!({"type": "content_block_delta", "index": index, "delta": delta}),
    )
}

fn emit_delta(b: &mut Pending, d: &Delta, out: &mut Vec<Event>, losses: &mut Losses) {
    let delta = match (b.mode, d) {
        (Mode::Dropped, _) => return,
        (Mode::Text, Delta::Text(t) | Delta::Refusal(t)) => {
            out.push(text_delta_event(b.wire, "text_delta", "text", t));
            return;
        }
        (Mode::Text, Delta::Citation { dialect, value }) => {
            if *dialect != Dialect::Anthropic {
                losses.dropped(
                    format!("{}.citations", block_path(b.canonical)),
                    format!("{dialect} annotations have no Anthropic form"),
                );
                return;
            }
            json!({"type": "citations_delta", "citation": value})
        }
        (Mode::Thinking, Delta::Reasoning(t)) => {
            out.push(text_delta_event(b.wire, "thinking_delta", "thinking", t));
            return;
        }
        (Mode::Thinking, Delta::Seal(s)) => {
            b.sealed = true;
            json!({"type": "signature_delta", "signature": s.carry_in(Family::Anthropic)})
        }
        (Mode::ToolUse { custom: false }, Delta::Arguments(a)) => {
            out.push(text_delta_event(
                b.wire,
                "input_json_delta",
                "partial_json",
                a,
            ));
            return;
        }
        (Mode::ToolUse { custom: true }, Delta::Arguments(a)) => {
            // JSON string escaping works per character, so escaped fragments concatenate into
            // the escaped whole.
            let quoted = serde_json::to_string(a).unwrap_or_default();
            let inner = quoted
                .strip_prefix('"')
                .and_then(|s| s.strip_suffix('"'))
                .unwrap_or("");
            json!({"type": "input_json_delta", "partial_json": inner})
        }
        (Mode::Opaque, Delta::Opaque { dialect, value }) if *dialect == Dialect::Anthropic => {
            value.clone()
        }
        (_, other) => {
            losses.dropped(
                block_path(b.canonical),
                format!("delta {other:?} does not fit an Anthropic block"),
            );
            return;
        }
    };
    out.push(delta_event(b.wire, delta));
}

fn emit_stop(b: &mut Pending, out: &mut Vec<Event>) {
    match b.mode {
        Mode::Dropped => return,
        Mode::Thinking if !b.sealed => {
            if let Some(s) = &b.seal {
                out.push(delta_event(
                    b.wire,
                    json!({"type": "signature_delta", "signature": s.carry_in(Family::Anthropic)}),
                ));
            }
        }
        Mode::ToolUse { custom: true } => {
            out.push(delta_event(
                b.wire,
                json!({"type": "input_json_delta", "partial_json": "\"}"}),
            ));
        }
        _ => {}
    }
    out.push(Event::named(
        "content_block_stop",
        format!("{{\"index\":{},\"type\":\"content_block_stop\"}}", b.wire),
    ));
}
