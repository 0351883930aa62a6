//! Canonical stream events → Responses SSE. Responses items cannot interleave, so a block that
//! starts while another item streams is buffered and replayed when that item is done. The
//! encoder owns every id, `output_index`, `content_index` and `sequence_number`, and keeps the
//! finished items so the terminal `response` object lists exactly what was streamed.

use dragoman_model::{
    BlockKind, Delta, Dialect, ErrorBody, Losses, ReasoningSeal, StopReason, StreamEvent,
    StreamOptions, ToolKind, Usage,
};
use dragoman_sse::Event;
use serde_json::{Value, json};

use crate::error::{response_error_object, stream_error_event};
use crate::json::{self, F};
use crate::response::{
    call_item, call_prefix, message_item, output_text_part, reasoning_item, reasoning_item_id,
};
use crate::stop::encode_stop;
use crate::usage::encode_usage;
use crate::{id_base, response_id};

#[derive(Debug)]
pub struct StreamEncoder {
    seq: u64,
    started: bool,
    finished: bool,
    id: String,
    model: String,
    next_output: usize,
    done_items: Vec<Value>,
    current: Option<Open>,
    /// Blocks that started while another item was open, in start order.
    queue: Vec<Pending>,
    /// Blocks dropped at their start (another dialect's opaque content).
    dropped: Vec<usize>,
    stop: Option<StopReason>,
    usage: Usage,
}

#[derive(Debug)]
struct Pending {
    index: usize,
    events: Vec<StreamEvent>,
    stopped: bool,
}

#[derive(Debug)]
enum OpenKind {
    Text,
    Refusal,
    Call {
        kind: ToolKind,
        call_id: String,
        name: String,
    },
    Reasoning {
        seal: Option<ReasoningSeal>,
        summary_started: bool,
    },
    Opaque(Value),
}

#[derive(Debug)]
struct Open {
    index: usize,
    output_index: usize,
    item_id: String,
    kind: OpenKind,
    text: String,
    annotations: Vec<Value>,
}

impl StreamEncoder {
    /// Neither option applies: Responses reports all usage in the terminal event, always.
    pub fn new(_opts: StreamOptions) -> Self {
        StreamEncoder {
            seq: 0,
            started: false,
            finished: false,
            id: String::new(),
            model: String::new(),
            next_output: 0,
            done_items: Vec::new(),
            current: None,
            queue: Vec::new(),
            dropped: Vec::new(),
            stop: None,
            usage: Usage::default(),
        }
    }

    pub fn push(&mut self, ev: &StreamEvent, out: &mut Vec<Event>, losses: &mut Losses) {
        if self.finished {
            return;
        }
        if let StreamEvent::MessageStart { id, model, usage } = ev {
            if !self.started {
                if !id.is_empty() {
                    self.id = response_id(id);
                }
                self.model.clone_from(model);
                self.usage.merge_from(usage);
                self.start(out);
            }
            return;
        }
        self.start(out);
        match ev {
            StreamEvent::MessageStart { .. } | StreamEvent::Ping => {}
            StreamEvent::BlockStart { index, block } => {
                if let BlockKind::Opaque { dialect, .. } = block
                    && *dialect != Dialect::Responses
                {
                    losses.dropped(
                        format!("content[{index}]"),
                        format!("{dialect} content has no Responses output item"),
                    );
                    self.dropped.push(*index);
                    return;
                }
                if self.current.is_some() || !self.queue.is_empty() {
                    self.queue.push(Pending {
                        index: *index,
                        events: vec![ev.clone()],
                        stopped: false,
                    });
                } else {
                    self.open(*index, block, out);
                }
            }
            StreamEvent::BlockDelta { index, delta } => {
                if self.current.as_ref().is_some_and(|c| c.index == *index) {
                    self.delta(delta, out, losses);
                } else if let Some(p) = self.queue.iter_mut().find(|p| p.index == *index) {
                    p.events.push(ev.clone());
                }
            }
            StreamEvent::BlockStop { index } => {
                if self.current.as_ref().is_some_and(|c| c.index == *index) {
                    self.close(out);
                    self.drain(out, losses, false);
                } else if let Some(p) = self.queue.iter_mut().find(|p| p.index == *index) {
                    p.stopped = true;
                }
            }
            StreamEvent::MessageDelta { stop, usage } => {
                self.stop = Some(stop.clone());
                self.usage.merge_from(usage);
            }
            StreamEvent::MessageStop => {
                if self.current.is_some() {
                    self.close(out);
                }
                self.drain(out, losses, true);
                self.complete(out, losses);
            }
            StreamEvent::Error { error } => self.fail(error, out),
        }
    }

    /// Continues the numbering of a stream relayed untouched: the ending this encoder adds
    /// after `last` (the last event forwarded) takes the next `sequence_number`, not its own
    /// count, which misses the upstream events it never saw.
    pub fn continue_after(&mut self, last: &Event) {
        #[derive(serde::Deserialize)]
        struct Seq {
            sequence_number: Option<u64>,
        }
        if let Ok(Seq {
            sequence_number: Some(n),
        }) = serde_json::from_str::<Seq>(&last.data)
        {
            self.seq = self.seq.max(n + 1);
        }
    }

    pub fn finish(&mut self, out: &mut Vec<Event>, _losses: &mut Losses) {
        if !self.finished {
            self.start(out);
            self.fail(&ErrorBody::truncated_stream(), out);
        }
    }

    /// The JSON text of a `response` object; `output` is borrowed so the finished items are
    /// not copied into every terminal event.
    fn response_object(
        &self,
        status: &str,
        output: &[Value],
        usage: &Value,
        error: &Value,
        incomplete: &Value,
    ) -> String {
        let mut r = String::with_capacity(256);
        json::object(
            &mut r,
            [
                ("id", F::Str(&self.id)),
                ("object", F::Str("response")),
                ("created_at", F::U64(0)),
                ("status", F::Str(status)),
                ("model", F::Str(&self.model)),
                ("output", F::Array(output)),
                ("usage", F::Value(usage)),
                ("error", F::Value(error)),
                ("incomplete_details", F::Value(incomplete)),
            ],
        );
        r
    }

    fn start(&mut self, out: &mut Vec<Event>) {
        if self.started {
            return;
        }
        self.started = true;
        if self.id.is_empty() {
            self.id = "resp_dragoman".into();
        }
        let r = self.response_object("in_progress", &[], &Value::Null, &Value::Null, &Value::Null);
        emit(
            &mut self.seq,
            out,
            "response.created",
            [("response", F::Raw(&r))],
        );
        emit(
            &mut self.seq,
            out,
            "response.in_progress",
            [("response", F::Raw(&r))],
        );
    }

    fn open(&mut self, index: usize, block: &BlockKind, out: &mut Vec<Event>) {
        let oi = self.next_output;
        self.next_output += 1;
        let base = id_base(&self.id);
        let (kind, item_id, item) = match block {
            BlockKind::Text | BlockKind::Refusal => {
                let id = format!("msg_{base}_{oi}");
                let item = message_item(&id, "in_progress", Vec::new());
                let kind = if matches!(block, BlockKind::Text) {
                    OpenKind::Text
                } else {
                    OpenKind::Refusal
                };
                (kind, id, item)
            }
            BlockKind::ToolCall { id, name, kind } => {
                let item_id = format!("{}_{base}_{oi}", call_prefix(*kind));
                let item = call_item(*kind, &item_id, id, name, "", "in_progress");
                (
                    OpenKind::Call {
                        kind: *kind,
                        call_id: id.clone(),
                        name: name.clone(),
                    },
                    item_id,
                    item,
                )
            }
            BlockKind::Reasoning { seal, id } => {
                // The upstream's own id when it named the item, so `added` and `done` agree.
                let id = match id {
                    Some(id) => id.clone(),
                    None => reasoning_item_id(seal.as_ref(), base, oi),
                };
                let item = json!({"type": "reasoning", "id": id, "summary": []});
                (
                    OpenKind::Reasoning {
                        seal: seal.clone(),
                        summary_started: false,
                    },
                    id,
                    item,
                )
            }
            BlockKind::Opaque { value, .. } => {
                let id = value
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                (OpenKind::Opaque(value.clone()), id, Value::Null)
            }
        };
        let oi64 = oi as u64;
        emit(
            &mut self.seq,
            out,
            "response.output_item.added",
            [
                ("output_index", F::U64(oi64)),
                (
                    "item",
                    F::Value(match &kind {
                        OpenKind::Opaque(v) => v,
                        _ => &item,
                    }),
                ),
            ],
        );
        let mut part = String::new();
        match &kind {
            OpenKind::Text => json::object(
                &mut part,
                [
                    ("type", F::Str("output_text")),
                    ("text", F::Str("")),
                    ("annotations", F::Raw("[]")),
                    ("logprobs", F::Raw("[]")),
                ],
            ),
            OpenKind::Refusal => json::object(
                &mut part,
                [("type", F::Str("refusal")), ("refusal", F::Str(""))],
            ),
            _ => {}
        }
        if !part.is_empty() {
            emit(
                &mut self.seq,
                out,
                "response.content_part.added",
                [
                    ("item_id", F::Str(&item_id)),
                    ("output_index", F::U64(oi64)),
                    ("content_index", F::U64(0)),
                    ("part", F::Raw(&part)),
                ],
            );
        }
        self.current = Some(Open {
            index,
            output_index: oi,
            item_id,
            kind,
            text: String::new(),
            annotations: Vec::new(),
        });
    }

    fn delta(&mut self, delta: &Delta, out: &mut Vec<Event>, losses: &mut Losses) {
        let Some(cur) = self.current.as_mut() else {
            return;
        };
        let seq = &mut self.seq;
        let (id, oi) = (cur.item_id.as_str(), cur.output_index as u64);
        match (&mut cur.kind, delta) {
            (OpenKind::Text, Delta::Text(t)) if !t.is_empty() => {
                cur.text.push_str(t);
                emit(
                    seq,
                    out,
                    "response.output_text.delta",
                    [
                        ("item_id", F::Str(id)),
                        ("output_index", F::U64(oi)),
                        ("content_index", F::U64(0)),
                        ("delta", F::Str(t)),
                        ("logprobs", F::Raw("[]")),
                    ],
                );
            }
            (
                OpenKind::Text,
                Delta::Citation {
                    dialect: Dialect::Responses,
                    value,
                },
            ) => {
                let n = cur.annotations.len() as u64;
                emit(
                    seq,
                    out,
                    "response.output_text.annotation.added",
                    [
                        ("item_id", F::Str(id)),
                        ("output_index", F::U64(oi)),
                        ("content_index", F::U64(0)),
                        ("annotation_index", F::U64(n)),
                        ("annotation", F::Value(value)),
                    ],
                );
                cur.annotations.push(value.clone());
            }
            (OpenKind::Refusal, Delta::Refusal(t)) if !t.is_empty() => {
                cur.text.push_str(t);
                emit(
                    seq,
                    out,
                    "response.refusal.delta",
                    [
                        ("item_id", F::Str(id)),
                        ("output_index", F::U64(oi)),
                        ("content_index", F::U64(0)),
                        ("delta", F::Str(t)),
                    ],
                );
            }
            (OpenKind::Call { kind, .. }, Delta::Arguments(a)) if !a.is_empty() => {
                cur.text.push_str(a);
                let ty = match kind {
                    ToolKind::Function => "response.function_call_arguments.delta",
                    ToolKind::Custom => "response.custom_tool_call_input.delta",
                };
                emit(
                    seq,
                    out,
                    ty,
                    [
                        ("item_id", F::Str(id)),
                        ("output_index", F::U64(oi)),
                        ("delta", F::Str(a)),
                    ],
                );
            }
            (
                OpenKind::Reasoning {
                    summary_started, ..
                },
                Delta::Reasoning(t),
            ) if !t.is_empty() => {
                if !*summary_started {
                    *summary_started = true;
                    let mut part = String::new();
                    json::object(
                        &mut part,
                        [("type", F::Str("summary_text")), ("text", F::Str(""))],
                    );
                    emit(
                        seq,
                        out,
                        "response.reasoning_summary_part.added",
                        [
                            ("item_id", F::Str(id)),
                            ("output_index", F::U64(oi)),
                            ("summary_index", F::U64(0)),
                            ("part", F::Raw(&part)),
                        ],
                    );
                }
                cur.text.push_str(t);
                emit(
                    seq,
                    out,
                    "response.reasoning_summary_text.delta",
                    [
                        ("item_id", F::Str(id)),
                        ("output_index", F::U64(oi)),
                        ("summary_index", F::U64(0)),
                        ("delta", F::Str(t)),
                    ],
                );
            }
            (OpenKind::Reasoning { seal, .. }, Delta::Seal(s)) => *seal = Some(s.clone()),
            (_, Delta::Text(t) | Delta::Refusal(t) | Delta::Arguments(t) | Delta::Reasoning(t))
                if t.is_empty() => {}
            (_, d) => losses.dropped(
                format!("content[{}]", cur.index),
                format!("delta {} does not fit a Responses item", delta_name(d)),
            ),
        }
    }

    fn close(&mut self, out: &mut Vec<Event>) {
        let Some(cur) = self.current.take() else {
            return;
        };
        let seq = &mut self.seq;
        let (id, oi) = (cur.item_id, cur.output_index as u64);
        let item = match cur.kind {
            OpenKind::Text => {
                emit(
                    seq,
                    out,
                    "response.output_text.done",
                    [
                        ("item_id", F::Str(&id)),
                        ("output_index", F::U64(oi)),
                        ("content_index", F::U64(0)),
                        ("text", F::Str(&cur.text)),
                        ("logprobs", F::Raw("[]")),
                    ],
                );
                let part = output_text_part(&cur.text, Value::Array(cur.annotations));
                emit(
                    seq,
                    out,
                    "response.content_part.done",
                    [
                        ("item_id", F::Str(&id)),
                        ("output_index", F::U64(oi)),
                        ("content_index", F::U64(0)),
                        ("part", F::Value(&part)),
                    ],
                );
                message_item(&id, "completed", vec![part])
            }
            OpenKind::Refusal => {
                emit(
                    seq,
                    out,
                    "response.refusal.done",
                    [
                        ("item_id", F::Str(&id)),
                        ("output_index", F::U64(oi)),
                        ("content_index", F::U64(0)),
                        ("refusal", F::Str(&cur.text)),
                    ],
                );
                let part = json!({"type": "refusal", "refusal": cur.text});
                emit(
                    seq,
                    out,
                    "response.content_part.done",
                    [
                        ("item_id", F::Str(&id)),
                        ("output_index", F::U64(oi)),
                        ("content_index", F::U64(0)),
                        ("part", F::Value(&part)),
                    ],
                );
                message_item(&id, "completed", vec![part])
            }
            OpenKind::Call {
                kind,
                call_id,
                name,
            } => {
                match kind {
                    ToolKind::Function => emit(
                        seq,
                        out,
                        "response.function_call_arguments.done",
                        [
                            ("item_id", F::Str(&id)),
                            ("output_index", F::U64(oi)),
                            ("name", F::Str(&name)),
                            ("arguments", F::Str(&cur.text)),
                        ],
                    ),
                    ToolKind::Custom => emit(
                        seq,
                        out,
                        "response.custom_tool_call_input.done",
                        [
                            ("item_id", F::Str(&id)),
                            ("output_index", F::U64(oi)),
                            ("input", F::Str(&cur.text)),
                        ],
                    ),
                }
                call_item(kind, &id, &call_id, &name, &cur.text, "completed")
            }
            OpenKind::Reasoning {
                seal,
                summary_started,
            } => {
                if summary_started {
                    emit(
                        seq,
                        out,
                        "response.reasoning_summary_text.done",
                        [
                            ("item_id", F::Str(&id)),
                            ("output_index", F::U64(oi)),
                            ("summary_index", F::U64(0)),
                            ("text", F::Str(&cur.text)),
                        ],
                    );
                    let mut part = String::with_capacity(cur.text.len() + 40);
                    json::object(
                        &mut part,
                        [
                            ("type", F::Str("summary_text")),
                            ("text", F::Str(&cur.text)),
                        ],
                    );
                    emit(
                        seq,
                        out,
                        "response.reasoning_summary_part.done",
                        [
                            ("item_id", F::Str(&id)),
                            ("output_index", F::U64(oi)),
                            ("summary_index", F::U64(0)),
                            ("part", F::Raw(&part)),
                        ],
                    );
                }
                // `done` names the item as `added` did; every upstream that names its items
                // names them at their start, and the seal's id is that same one.
                reasoning_item(&id, &cur.text, seal.as_ref())
            }
            OpenKind::Opaque(value) => value,
        };
        emit(
            seq,
            out,
            "response.output_item.done",
            [("output_index", F::U64(oi)), ("item", F::Value(&item))],
        );
        self.done_items.push(item);
    }

    /// Replays buffered blocks once no item is open. With `force`, blocks that never got their
    /// stop are closed too (the message is ending).
    fn drain(&mut self, out: &mut Vec<Event>, losses: &mut Losses, force: bool) {
        while self.current.is_none() && !self.queue.is_empty() {
            let p = self.queue.remove(0);
            for ev in &p.events {
                match ev {
                    StreamEvent::BlockStart { index, block } => self.open(*index, block, out),
                    StreamEvent::BlockDelta { delta, .. } => self.delta(delta, out, losses),
                    _ => {}
                }
            }
            if p.stopped || force {
                self.close(out);
            }
        }
    }

    fn complete(&mut self, out: &mut Vec<Event>, losses: &mut Losses) {
        let has_calls = self.done_items.iter().any(|i| {
            matches!(
                i.get("type").and_then(Value::as_str),
                Some("function_call" | "custom_tool_call")
            )
        });
        let stop = self
            .stop
            .clone()
            .unwrap_or(StopReason::EndTurn)
            .reconcile(has_calls);
        let has_refusal = self.done_items.iter().any(|i| {
            i.get("content").and_then(Value::as_array).is_some_and(|c| {
                c.iter()
                    .any(|p| p.get("type").and_then(Value::as_str) == Some("refusal"))
            })
        });
        let (status, incomplete) = encode_stop(&stop, has_refusal, losses);
        let r = self.response_object(
            status,
            &self.done_items,
            &encode_usage(&self.usage),
            &Value::Null,
            &incomplete,
        );
        let ty = if status == "incomplete" {
            "response.incomplete"
        } else {
            "response.completed"
        };
        emit(&mut self.seq, out, ty, [("response", F::Raw(&r))]);
        self.finished = true;
    }

    /// Responses has no way to close an item on error: the `error` event and `response.failed`
    /// end the stream, and the failed response lists the items that did finish.
    fn fail(&mut self, err: &ErrorBody, out: &mut Vec<Event>) {
        out.push(stream_error_event(err, self.seq));
        self.seq += 1;
        let usage = if self.usage.is_empty() {
            Value::Null
        } else {
            encode_usage(&self.usage)
        };
        let r = self.response_object(
            "failed",
            &self.done_items,
            &usage,
            &response_error_object(err),
            &Value::Null,
        );
        emit(
            &mut self.seq,
            out,
            "response.failed",
            [("response", F::Raw(&r))],
        );
        self.finished = true;
    }
}

/// Writes one event; `sequence_number` is taken from and advanced in `seq`.
fn emit<const N: usize>(seq: &mut u64, out: &mut Vec<Event>, ty: &str, fields: [(&str, F<'_>); N]) {
    let data = json::event(ty, *seq, fields);
    *seq += 1;
    out.push(Event::named(ty, data));
}

fn delta_name(d: &Delta) -> &'static str {
    match d {
        Delta::Text(_) => "text",
        Delta::Reasoning(_) => "reasoning",
        Delta::Seal(_) => "seal",
        Delta::Arguments(_) => "arguments",
        Delta::Refusal(_) => "refusal",
        Delta::Citation { .. } => "citation",
        Delta::Opaque { .. } => "opaque",
    }
}
