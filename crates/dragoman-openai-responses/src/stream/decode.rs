//! Responses SSE → canonical stream events. Output items become blocks; state is keyed by
//! `output_index` because some backends rotate item ids between `added` and `done`
//! (reference §3.6), and missing deltas are recovered from the `*.done` events (traps §32–33).

use std::borrow::Cow;
use std::collections::BTreeMap;

use dragoman_model::{
    BlockKind, DecodeError, Delta, Dialect, ErrorBody, Lenient, StreamEvent, ToolKind, Usage,
};
use dragoman_sse::Event;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::error::error_from_object;
use crate::request::{reasoning_seal, reasoning_text};
use crate::stop::decode_stop;
use crate::usage::{self, decode_usage};
use crate::{get_str, get_u64};

#[derive(Debug, Default)]
pub struct StreamDecoder {
    /// Events seen, for error messages.
    count: usize,
    started: bool,
    done: bool,
    next_block: usize,
    items: BTreeMap<u64, Item>,
    last_index: Option<u64>,
    any_tool_call: bool,
    any_refusal: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ItemKind {
    Message,
    Call,
    Reasoning,
    Other,
}

#[derive(Debug)]
struct Item {
    kind: ItemKind,
    item_id: Option<String>,
    /// The block of a call or reasoning item.
    block: Option<usize>,
    /// Text already emitted for a call (arguments) or reasoning item.
    emitted: String,
    /// Which summary or content part of a reasoning item the last delta belonged to, so parts
    /// are separated by a blank line as in the non-streamed form.
    reasoning_part: Option<(bool, u64)>,
    /// Content parts of a message, by `content_index`.
    parts: BTreeMap<u64, TextPart>,
    done: bool,
}

#[derive(Debug)]
struct TextPart {
    block: usize,
    refusal: bool,
    emitted: String,
    citations: usize,
    open: bool,
}

/// The fields of a delta event, read without building a `Value`. A field of an unexpected
/// type, or a repeated one, fails this parse and the event takes the general path, which then
/// reads it exactly as before.
#[derive(Deserialize)]
struct DeltaEvent<'a> {
    #[serde(rename = "type", borrow)]
    ty: Option<Text<'a>>,
    #[serde(borrow)]
    delta: Option<Text<'a>>,
    #[serde(borrow)]
    item_id: Option<Text<'a>>,
    output_index: Option<u64>,
    content_index: Option<u64>,
    summary_index: Option<u64>,
    /// The full value a `*.done` event repeats: `text`, `refusal`, `arguments` or `input`.
    #[serde(borrow)]
    text: Option<Text<'a>>,
    #[serde(borrow)]
    refusal: Option<Text<'a>>,
    #[serde(borrow)]
    arguments: Option<Text<'a>>,
    #[serde(borrow)]
    input: Option<Text<'a>>,
    /// Of the lifecycle events: all the stream needs of the response object is its start.
    #[serde(borrow)]
    response: Option<ResponseHead<'a>>,
    /// Of the content part events.
    #[serde(borrow)]
    part: Option<PartHead<'a>>,
}

/// A message content part as its `added` and `done` events carry it. Annotations stay text
/// until there are some.
#[derive(Deserialize)]
struct PartHead<'a> {
    #[serde(rename = "type", borrow)]
    ty: Option<Text<'a>>,
    #[serde(borrow)]
    text: Option<Text<'a>>,
    #[serde(borrow)]
    refusal: Option<Text<'a>>,
    #[serde(borrow)]
    annotations: Option<&'a RawValue>,
}

/// The response object of a lifecycle event. Its `output` repeats every item the stream
/// already sent, so it is kept as unparsed text, read only when nothing was streamed.
#[derive(Deserialize)]
struct ResponseHead<'a> {
    #[serde(borrow)]
    id: Option<Text<'a>>,
    #[serde(borrow)]
    model: Option<Text<'a>>,
    #[serde(borrow)]
    status: Option<Text<'a>>,
    incomplete_details: Option<Value>,
    #[serde(default)]
    usage: Lenient<usage::Counts>,
    #[serde(borrow)]
    output: Option<&'a RawValue>,
}

/// A string borrowed from the event when it has no escapes. serde borrows a `Cow` only when it
/// is the field's whole type, hence the wrapper inside `Option`.
#[derive(Deserialize)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

impl Text<'_> {
    fn as_str(&self) -> &str {
        &self.0
    }
}

/// What the end of a response says, read from the narrow or the general parse.
struct End<'a> {
    id: &'a str,
    model: &'a str,
    status: Option<&'a str>,
    incomplete_details: Option<&'a Value>,
    usage: Usage,
}

/// Event types `DeltaEvent` carries everything for: the bulk of any stream, and the `*.done`
/// events that repeat a whole text.
fn is_delta_event(ty: &str) -> bool {
    matches!(
        ty,
        "response.output_text.delta"
            | "response.refusal.delta"
            | "response.function_call_arguments.delta"
            | "response.custom_tool_call_input.delta"
            | "response.reasoning_summary_text.delta"
            | "response.reasoning_text.delta"
            | "response.output_text.done"
            | "response.refusal.done"
            | "response.function_call_arguments.done"
            | "response.custom_tool_call_input.done"
    )
}

/// Events `DeltaEvent` carries everything for, read without a tree.
fn is_narrow_event(ty: &str) -> bool {
    is_delta_event(ty) || is_start_event(ty) || is_end_event(ty) || is_part_event(ty)
}

/// A JSON array kept as text by the narrow parse, as values; `None` when it is not an array
/// (what the tree path's `as_array` reads).
fn raw_array(raw: &RawValue) -> Option<Vec<Value>> {
    match serde_json::from_str::<Value>(raw.get()) {
        Ok(Value::Array(items)) => Some(items),
        _ => None,
    }
}

/// Content part events: a part's type, its full text and its annotations.
fn is_part_event(ty: &str) -> bool {
    matches!(
        ty,
        "response.content_part.added" | "response.content_part.done"
    )
}

/// The end of a response, which repeats the whole response object (output included).
fn is_end_event(ty: &str) -> bool {
    matches!(ty, "response.completed" | "response.incomplete")
}

/// Lifecycle events that only start the stream.
fn is_start_event(ty: &str) -> bool {
    matches!(
        ty,
        "response.created" | "response.in_progress" | "response.queued"
    )
}

/// An output item event's `item`: an object with a string `type`, or the event is malformed.
fn item_of<'v>(v: &'v Value, n: usize, ty: &str) -> Result<&'v Value, DecodeError> {
    match v.get("item") {
        Some(item @ Value::Object(m)) if m.get("type").is_some_and(Value::is_string) => Ok(item),
        _ => Err(DecodeError::new(
            format!("event {n} ({ty}).item"),
            "expected an object with a string type",
        )),
    }
}

/// The part of `full` not yet emitted, when what was emitted is a prefix of it.
fn remainder<'a>(emitted: &str, full: &'a str) -> Option<&'a str> {
    (full.len() > emitted.len() && full.starts_with(emitted)).then(|| &full[emitted.len()..])
}

impl StreamDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, ev: &Event, out: &mut Vec<StreamEvent>) -> Result<(), DecodeError> {
        let n = self.count;
        self.count += 1;
        let data = ev.data.trim();
        if data.is_empty() || data == "[DONE]" {
            return Ok(());
        }
        // Only events named as deltas (or unnamed) try the narrow parse first, so the others are
        // not parsed twice. Only an object: serde would also fill the struct from an array.
        if data.starts_with('{')
            && ev.event.as_deref().is_none_or(is_narrow_event)
            && let Ok(d) = serde_json::from_str::<DeltaEvent>(data)
            && let Some(ty) = d.ty.as_ref().map(Text::as_str).or(ev.event.as_deref())
            && is_narrow_event(ty)
        {
            if !self.done {
                self.push_delta(ty, &d, out);
            }
            return Ok(());
        }
        let v: Value = serde_json::from_str(data).map_err(|e| {
            DecodeError::json(
                format!("event {n} ({})", ev.event.as_deref().unwrap_or("data")),
                &e,
            )
        })?;
        if self.done {
            return Ok(());
        }
        let ty = get_str(&v, "type")
            .or(ev.event.as_deref())
            .unwrap_or_default();
        match ty {
            "response.created" | "response.in_progress" | "response.queued" => {
                self.start(v.get("response"), out);
            }
            "response.output_item.added" => {
                self.start(None, out);
                let idx = self.index(&v);
                let item = item_of(&v, n, ty)?;
                self.item_added(idx, item, out);
            }
            "response.output_item.done" => {
                self.start(None, out);
                let idx = self.index(&v);
                let item = item_of(&v, n, ty)?;
                self.item_done(idx, item, out);
            }
            "response.content_part.added" => {
                self.start(None, out);
                let idx = self.index(&v);
                let ci = get_u64(&v, "content_index").unwrap_or(0);
                let part_ty = v.get("part").and_then(|p| get_str(p, "type"));
                match part_ty {
                    Some("output_text") => {
                        self.text_part(idx, ci, false, out);
                    }
                    Some("refusal") => {
                        self.text_part(idx, ci, true, out);
                    }
                    _ => {}
                }
            }
            "response.output_text.delta" | "response.refusal.delta" => {
                self.start(None, out);
                let idx = self.index(&v);
                let ci = get_u64(&v, "content_index").unwrap_or(0);
                let refusal = ty == "response.refusal.delta";
                let delta = get_str(&v, "delta").unwrap_or_default();
                self.text_delta(idx, ci, refusal, delta, out);
            }
            "response.output_text.done" | "response.refusal.done" => {
                let idx = self.index(&v);
                let ci = get_u64(&v, "content_index").unwrap_or(0);
                let refusal = ty == "response.refusal.done";
                let key = if refusal { "refusal" } else { "text" };
                if let Some(full) = get_str(&v, key) {
                    self.text_remainder(idx, ci, refusal, full, out);
                }
            }
            "response.output_text.annotation.added" => {
                let idx = self.index(&v);
                let ci = get_u64(&v, "content_index").unwrap_or(0);
                let block = self.text_part(idx, ci, false, out);
                if let (Some(block), Some(a)) = (block, v.get("annotation")) {
                    if let Some(p) = self.part_mut(idx, ci) {
                        p.citations += 1;
                    }
                    out.push(StreamEvent::BlockDelta {
                        index: block,
                        delta: Delta::Citation {
                            dialect: Dialect::Responses,
                            value: a.clone(),
                        },
                    });
                }
            }
            "response.content_part.done" => {
                let idx = self.index(&v);
                let ci = get_u64(&v, "content_index").unwrap_or(0);
                let part = v.get("part").unwrap_or(&Value::Null);
                if matches!(get_str(part, "type"), Some("output_text" | "refusal")) {
                    self.close_part(idx, ci, part, out);
                }
            }
            "response.function_call_arguments.delta" | "response.custom_tool_call_input.delta" => {
                let idx = self.index(&v);
                let delta = get_str(&v, "delta").unwrap_or_default();
                self.item_delta(idx, delta, out);
            }
            "response.function_call_arguments.done" | "response.custom_tool_call_input.done" => {
                let idx = self.index(&v);
                let key = if ty.starts_with("response.function") {
                    "arguments"
                } else {
                    "input"
                };
                if let Some(full) = get_str(&v, key) {
                    self.item_remainder(idx, full, out);
                }
            }
            "response.reasoning_summary_text.delta" | "response.reasoning_text.delta" => {
                let idx = self.index(&v);
                let summary = ty == "response.reasoning_summary_text.delta";
                let part = get_u64(
                    &v,
                    if summary {
                        "summary_index"
                    } else {
                        "content_index"
                    },
                )
                .unwrap_or(0);
                let delta = get_str(&v, "delta").unwrap_or_default();
                self.reasoning_delta(idx, summary, part, delta, out);
            }
            "response.completed" | "response.incomplete" => {
                let resp = v.get("response").unwrap_or(&Value::Null);
                let end = End {
                    id: get_str(resp, "id").unwrap_or_default(),
                    model: get_str(resp, "model").unwrap_or_default(),
                    status: get_str(resp, "status"),
                    incomplete_details: resp.get("incomplete_details"),
                    usage: decode_usage(resp.get("usage")),
                };
                let output = resp.get("output").and_then(Value::as_array);
                self.end(ty, end, || output.cloned(), out);
            }
            "response.failed" => {
                let resp = v.get("response").unwrap_or(&Value::Null);
                self.start(Some(resp), out);
                let err = match resp.get("error").filter(|e| e.is_object()) {
                    Some(e) => error_from_object(e, None),
                    None => ErrorBody::new(dragoman_model::ErrorKind::Server, "response failed"),
                };
                out.push(StreamEvent::Error { error: err });
                self.done = true;
            }
            "error" => {
                self.start(None, out);
                let err = match v.get("error").filter(|e| e.is_object()) {
                    Some(e) => error_from_object(e, None),
                    None => {
                        let flat = json!({
                            "code": v.get("code").cloned().unwrap_or(Value::Null),
                            "message": v.get("message").cloned().unwrap_or(Value::Null),
                            "param": v.get("param").cloned().unwrap_or(Value::Null),
                        });
                        error_from_object(&flat, None)
                    }
                };
                out.push(StreamEvent::Error { error: err });
                self.done = true;
            }
            // Built-in tool progress, audio and anything newer: their items still arrive
            // whole at `output_item.done`.
            _ => {}
        }
        Ok(())
    }

    /// The delta events of `DeltaEvent`, with the same effects as the general path below.
    fn push_delta(&mut self, ty: &str, d: &DeltaEvent, out: &mut Vec<StreamEvent>) {
        if is_end_event(ty) {
            let head = d.response.as_ref();
            let end = End {
                id: head.and_then(|h| h.id.as_ref()).map_or("", Text::as_str),
                model: head.and_then(|h| h.model.as_ref()).map_or("", Text::as_str),
                status: head.and_then(|h| h.status.as_ref()).map(Text::as_str),
                incomplete_details: head.and_then(|h| h.incomplete_details.as_ref()),
                usage: head
                    .and_then(|h| h.usage.as_ref())
                    .map(usage::Counts::usage)
                    .unwrap_or_default(),
            };
            let output = head.and_then(|h| h.output);
            self.end(ty, end, || output.and_then(raw_array), out);
            return;
        }
        if is_start_event(ty) {
            let head = d.response.as_ref();
            let id = head.and_then(|h| h.id.as_ref()).map_or("", Text::as_str);
            let model = head.and_then(|h| h.model.as_ref()).map_or("", Text::as_str);
            self.start_with(id, model, out);
            return;
        }
        let idx = self.index_of(d.output_index, d.item_id.as_ref().map(Text::as_str));
        let delta = d.delta.as_ref().map_or("", Text::as_str);
        let part_ty = d
            .part
            .as_ref()
            .and_then(|p| p.ty.as_ref())
            .map(Text::as_str);
        match ty {
            "response.content_part.added" => {
                self.start_with("", "", out);
                match part_ty {
                    Some("output_text") => {
                        self.text_part(idx, d.content_index.unwrap_or(0), false, out);
                    }
                    Some("refusal") => {
                        self.text_part(idx, d.content_index.unwrap_or(0), true, out);
                    }
                    _ => {}
                }
            }
            "response.content_part.done" => {
                if let (Some(p), Some(t @ ("output_text" | "refusal"))) = (&d.part, part_ty) {
                    let refusal = t == "refusal";
                    let full = if refusal { &p.refusal } else { &p.text };
                    // Only an array of annotations counts, as on the general path.
                    let annotations = p
                        .annotations
                        .filter(|raw| raw.get() != "[]")
                        .and_then(raw_array);
                    self.end_part(
                        idx,
                        d.content_index.unwrap_or(0),
                        refusal,
                        full.as_ref().map(Text::as_str),
                        annotations.as_deref(),
                        out,
                    );
                }
            }
            "response.output_text.done" | "response.refusal.done" => {
                let refusal = ty == "response.refusal.done";
                let full = if refusal { &d.refusal } else { &d.text };
                if let Some(full) = full.as_ref().map(Text::as_str) {
                    let ci = d.content_index.unwrap_or(0);
                    self.text_remainder(idx, ci, refusal, full, out);
                }
            }
            "response.function_call_arguments.done" | "response.custom_tool_call_input.done" => {
                let full = if ty.starts_with("response.function") {
                    &d.arguments
                } else {
                    &d.input
                };
                if let Some(full) = full.as_ref().map(Text::as_str) {
                    self.item_remainder(idx, full, out);
                }
            }
            "response.output_text.delta" | "response.refusal.delta" => {
                self.start(None, out);
                let ci = d.content_index.unwrap_or(0);
                self.text_delta(idx, ci, ty == "response.refusal.delta", delta, out);
            }
            "response.function_call_arguments.delta" | "response.custom_tool_call_input.delta" => {
                self.item_delta(idx, delta, out);
            }
            _ => {
                let summary = ty == "response.reasoning_summary_text.delta";
                let part = if summary {
                    d.summary_index
                } else {
                    d.content_index
                };
                self.reasoning_delta(idx, summary, part.unwrap_or(0), delta, out);
            }
        }
    }

    fn reasoning_delta(
        &mut self,
        idx: u64,
        summary: bool,
        part: u64,
        delta: &str,
        out: &mut Vec<StreamEvent>,
    ) {
        if delta.is_empty() {
            return;
        }
        if let Some(item) = self.items.get_mut(&idx)
            && item.kind == ItemKind::Reasoning
            && !item.done
        {
            let key = Some((summary, part));
            if item.reasoning_part != key {
                if item.reasoning_part.is_some() && !item.emitted.is_empty() {
                    item.emitted.push_str("\n\n");
                    if let Some(b) = item.block {
                        out.push(StreamEvent::BlockDelta {
                            index: b,
                            delta: Delta::Reasoning("\n\n".into()),
                        });
                    }
                }
                item.reasoning_part = key;
            }
        }
        self.item_delta(idx, delta, out);
    }

    /// `response.completed` / `response.incomplete`, however it was read. `output` is asked
    /// for only when no item was streamed.
    fn end(
        &mut self,
        ty: &str,
        end: End<'_>,
        output: impl FnOnce() -> Option<Vec<Value>>,
        out: &mut Vec<StreamEvent>,
    ) {
        self.start_with(end.id, end.model, out);
        // Trap §32: some backends put items only in the final output. Only used when
        // nothing streamed, since servers that number `output_index` from 1 would
        // otherwise see their items twice.
        if self.items.is_empty()
            && let Some(items) = output()
        {
            for (i, item) in items.iter().enumerate() {
                self.item_done(i as u64, item, out);
            }
        }
        self.close_all(out);
        let status = end.status.unwrap_or(if ty == "response.incomplete" {
            "incomplete"
        } else {
            "completed"
        });
        if self.items.is_empty() && status == "completed" {
            // Nothing at all, yet "completed": passing it on would be an empty success the
            // upstream never produced (as for a whole body, `check_response`).
            out.push(StreamEvent::Error {
                error: ErrorBody::new(
                    dragoman_model::ErrorKind::Server,
                    "the upstream response completed with no output",
                ),
            });
            self.done = true;
            return;
        }
        let stop = decode_stop(
            Some(status),
            end.incomplete_details,
            self.any_tool_call,
            self.any_refusal,
        );
        out.push(StreamEvent::MessageDelta {
            stop,
            usage: end.usage,
        });
        out.push(StreamEvent::MessageStop);
        self.done = true;
    }

    /// Responses follows its `error` event with `response.failed`, which closes the response
    /// object the SDKs were building.
    pub fn is_error_trailer(&self, ev: &Event) -> bool {
        #[derive(Deserialize)]
        struct Typed<'a> {
            #[serde(rename = "type", borrow)]
            ty: Option<Cow<'a, str>>,
        }
        let named = ev.event.as_deref();
        let ty = serde_json::from_str::<Typed>(ev.data.trim())
            .ok()
            .and_then(|t| t.ty);
        ty.as_deref().or(named) == Some("response.failed")
    }

    pub fn finish(&mut self, out: &mut Vec<StreamEvent>) {
        if !self.done {
            self.done = true;
            out.push(StreamEvent::Error {
                error: ErrorBody::truncated_stream(),
            });
        }
    }

    fn start(&mut self, resp: Option<&Value>, out: &mut Vec<StreamEvent>) {
        let resp = resp.unwrap_or(&Value::Null);
        self.start_with(
            get_str(resp, "id").unwrap_or_default(),
            get_str(resp, "model").unwrap_or_default(),
            out,
        );
    }

    fn start_with(&mut self, id: &str, model: &str, out: &mut Vec<StreamEvent>) {
        if self.started {
            return;
        }
        self.started = true;
        out.push(StreamEvent::MessageStart {
            id: id.to_owned(),
            model: model.to_owned(),
            usage: Usage::default(),
        });
    }

    /// The `output_index` an event refers to; by item id, then the latest item, for servers
    /// that leave it out.
    fn index(&self, v: &Value) -> u64 {
        self.index_of(get_u64(v, "output_index"), get_str(v, "item_id"))
    }

    fn index_of(&self, output_index: Option<u64>, item_id: Option<&str>) -> u64 {
        if let Some(i) = output_index {
            return i;
        }
        if let Some(id) = item_id
            && let Some((i, _)) = self
                .items
                .iter()
                .find(|(_, it)| it.item_id.as_deref() == Some(id))
        {
            return *i;
        }
        self.last_index.unwrap_or(0)
    }

    fn new_block(&mut self) -> usize {
        let b = self.next_block;
        self.next_block += 1;
        b
    }

    fn item_added(&mut self, idx: u64, item: &Value, out: &mut Vec<StreamEvent>) {
        if self.items.contains_key(&idx) {
            return;
        }
        self.last_index = Some(idx);
        let mut state = Item {
            kind: ItemKind::Other,
            item_id: get_str(item, "id").map(str::to_owned),
            block: None,
            emitted: String::new(),
            reasoning_part: None,
            parts: BTreeMap::new(),
            done: false,
        };
        match get_str(item, "type") {
            Some("message") => state.kind = ItemKind::Message,
            Some(ty @ ("function_call" | "custom_tool_call")) => {
                let custom = ty == "custom_tool_call";
                let b = self.new_block();
                state.kind = ItemKind::Call;
                state.block = Some(b);
                self.any_tool_call = true;
                out.push(StreamEvent::BlockStart {
                    index: b,
                    block: BlockKind::ToolCall {
                        id: get_str(item, "call_id")
                            .or_else(|| get_str(item, "id"))
                            .unwrap_or_default()
                            .to_owned(),
                        name: get_str(item, "name").unwrap_or_default().to_owned(),
                        kind: if custom {
                            ToolKind::Custom
                        } else {
                            ToolKind::Function
                        },
                    },
                });
                let args =
                    get_str(item, if custom { "input" } else { "arguments" }).unwrap_or_default();
                if !args.is_empty() {
                    state.emitted.push_str(args);
                    out.push(StreamEvent::BlockDelta {
                        index: b,
                        delta: Delta::Arguments(args.to_owned()),
                    });
                }
            }
            Some("reasoning") => {
                let b = self.new_block();
                state.kind = ItemKind::Reasoning;
                state.block = Some(b);
                out.push(StreamEvent::BlockStart {
                    index: b,
                    block: BlockKind::Reasoning {
                        seal: None,
                        id: get_str(item, "id")
                            .filter(|s| !s.is_empty())
                            .map(str::to_owned),
                    },
                });
            }
            _ => {}
        }
        self.items.insert(idx, state);
    }

    fn item_done(&mut self, idx: u64, item: &Value, out: &mut Vec<StreamEvent>) {
        if !self.items.contains_key(&idx) {
            // Never announced: open it now so the rules below apply.
            if matches!(
                get_str(item, "type"),
                Some("function_call" | "custom_tool_call" | "reasoning" | "message")
            ) {
                let mut bare = item.clone();
                if let Some(m) = bare.as_object_mut() {
                    m.remove("arguments");
                    m.remove("input");
                }
                self.item_added(idx, &bare, out);
            } else {
                self.item_added(idx, &Value::Null, out);
            }
        }
        let Some(state) = self.items.get(&idx) else {
            return;
        };
        if state.done {
            return;
        }
        let kind = state.kind;
        let block = state.block;
        match kind {
            ItemKind::Message => {
                let content = item
                    .get("content")
                    .and_then(Value::as_array)
                    .map_or(&[][..], Vec::as_slice);
                for (ci, part) in content.iter().enumerate() {
                    let ci = ci as u64;
                    let refusal = match get_str(part, "type") {
                        Some("output_text") => false,
                        Some("refusal") => true,
                        _ => continue,
                    };
                    let known = self
                        .items
                        .get(&idx)
                        .is_some_and(|s| s.parts.contains_key(&ci));
                    if !known {
                        self.text_part(idx, ci, refusal, out);
                    }
                    self.close_part(idx, ci, part, out);
                }
                self.close_item(idx, out);
            }
            ItemKind::Call => {
                let key = if get_str(item, "type") == Some("custom_tool_call") {
                    "input"
                } else {
                    "arguments"
                };
                if let Some(full) = get_str(item, key) {
                    self.item_remainder(idx, full, out);
                }
                self.close_item(idx, out);
            }
            ItemKind::Reasoning => {
                let full = reasoning_text(item);
                self.item_remainder(idx, &full, out);
                if let (Some(seal), Some(b)) = (reasoning_seal(item), block) {
                    out.push(StreamEvent::BlockDelta {
                        index: b,
                        delta: Delta::Seal(seal),
                    });
                }
                self.close_item(idx, out);
            }
            ItemKind::Other => {
                let b = self.new_block();
                out.push(StreamEvent::BlockStart {
                    index: b,
                    block: BlockKind::Opaque {
                        dialect: Dialect::Responses,
                        value: item.clone(),
                    },
                });
                out.push(StreamEvent::BlockStop { index: b });
                if let Some(s) = self.items.get_mut(&idx) {
                    s.done = true;
                }
            }
        }
    }

    fn close_item(&mut self, idx: u64, out: &mut Vec<StreamEvent>) {
        let Some(state) = self.items.get_mut(&idx) else {
            return;
        };
        if state.done {
            return;
        }
        state.done = true;
        for p in state.parts.values_mut() {
            if p.open {
                p.open = false;
                out.push(StreamEvent::BlockStop { index: p.block });
            }
        }
        if let Some(b) = state.block {
            out.push(StreamEvent::BlockStop { index: b });
        }
    }

    fn close_all(&mut self, out: &mut Vec<StreamEvent>) {
        let open: Vec<u64> = self
            .items
            .iter()
            .filter(|(_, s)| !s.done)
            .map(|(i, _)| *i)
            .collect();
        for i in open {
            self.close_item(i, out);
        }
    }

    fn part_mut(&mut self, idx: u64, ci: u64) -> Option<&mut TextPart> {
        self.items.get_mut(&idx)?.parts.get_mut(&ci)
    }

    /// The block of a message content part, opening it when this is its first event.
    fn text_part(
        &mut self,
        idx: u64,
        ci: u64,
        refusal: bool,
        out: &mut Vec<StreamEvent>,
    ) -> Option<usize> {
        if !self.items.contains_key(&idx) {
            self.item_added(idx, &json!({"type": "message"}), out);
        }
        let state = self.items.get(&idx)?;
        if state.kind != ItemKind::Message || state.done {
            return None;
        }
        if let Some(p) = state.parts.get(&ci) {
            return p.open.then_some(p.block);
        }
        let b = self.new_block();
        if refusal {
            self.any_refusal = true;
        }
        out.push(StreamEvent::BlockStart {
            index: b,
            block: if refusal {
                BlockKind::Refusal
            } else {
                BlockKind::Text
            },
        });
        let state = self.items.get_mut(&idx)?;
        state.parts.insert(
            ci,
            TextPart {
                block: b,
                refusal,
                emitted: String::new(),
                citations: 0,
                open: true,
            },
        );
        Some(b)
    }

    fn text_delta(
        &mut self,
        idx: u64,
        ci: u64,
        refusal: bool,
        delta: &str,
        out: &mut Vec<StreamEvent>,
    ) {
        if delta.is_empty() {
            return;
        }
        let Some(b) = self.text_part(idx, ci, refusal, out) else {
            return;
        };
        let Some(p) = self.part_mut(idx, ci) else {
            return;
        };
        p.emitted.push_str(delta);
        let delta = delta.to_owned();
        out.push(StreamEvent::BlockDelta {
            index: b,
            delta: if p.refusal {
                Delta::Refusal(delta)
            } else {
                Delta::Text(delta)
            },
        });
    }

    fn text_remainder(
        &mut self,
        idx: u64,
        ci: u64,
        refusal: bool,
        full: &str,
        out: &mut Vec<StreamEvent>,
    ) {
        let emitted = self.part_mut(idx, ci).map_or("", |p| p.emitted.as_str());
        let start = remainder(emitted, full).map(|_| emitted.len());
        if let Some(n) = start {
            self.text_delta(idx, ci, refusal, &full[n..], out);
        }
    }

    fn close_part(&mut self, idx: u64, ci: u64, part: &Value, out: &mut Vec<StreamEvent>) {
        let refusal = get_str(part, "type") == Some("refusal");
        let full = get_str(part, if refusal { "refusal" } else { "text" });
        let annotations = part
            .get("annotations")
            .and_then(Value::as_array)
            .map(Vec::as_slice);
        self.end_part(idx, ci, refusal, full, annotations, out);
    }

    /// A content part is done: the text it still lacks, its remaining citations, its end.
    fn end_part(
        &mut self,
        idx: u64,
        ci: u64,
        refusal: bool,
        full: Option<&str>,
        annotations: Option<&[Value]>,
        out: &mut Vec<StreamEvent>,
    ) {
        if let Some(full) = full {
            self.text_remainder(idx, ci, refusal, full, out);
        }
        let Some(p) = self.part_mut(idx, ci) else {
            return;
        };
        if !p.open {
            return;
        }
        if let Some(ann) = annotations {
            for a in ann.iter().skip(p.citations) {
                out.push(StreamEvent::BlockDelta {
                    index: p.block,
                    delta: Delta::Citation {
                        dialect: Dialect::Responses,
                        value: a.clone(),
                    },
                });
            }
            p.citations = p.citations.max(ann.len());
        }
        p.open = false;
        out.push(StreamEvent::BlockStop { index: p.block });
    }

    fn item_delta(&mut self, idx: u64, delta: &str, out: &mut Vec<StreamEvent>) {
        if delta.is_empty() {
            return;
        }
        let Some(state) = self.items.get_mut(&idx) else {
            return;
        };
        if state.done {
            return;
        }
        let Some(b) = state.block else { return };
        state.emitted.push_str(delta);
        let delta = match state.kind {
            ItemKind::Reasoning => Delta::Reasoning(delta.to_owned()),
            _ => Delta::Arguments(delta.to_owned()),
        };
        out.push(StreamEvent::BlockDelta { index: b, delta });
    }

    fn item_remainder(&mut self, idx: u64, full: &str, out: &mut Vec<StreamEvent>) {
        let Some(state) = self.items.get(&idx) else {
            return;
        };
        if remainder(&state.emitted, full).is_some() {
            let rest = &full[state.emitted.len()..];
            self.item_delta(idx, rest, out);
        }
    }
}
