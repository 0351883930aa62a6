//! The grammar of a Responses SSE stream as this gateway sends it to clients (reference §3.6,
//! traps §29–31). Tests run every encoder output through it; it is stricter than what the
//! decoder accepts from upstreams.

use dragoman_model::GrammarError;
use dragoman_sse::Event;
use serde_json::Value;

use crate::{get_str, get_u64};

#[derive(Debug, Default)]
pub struct Validator {
    index: usize,
    next_seq: u64,
    started: bool,
    terminal: bool,
    after_error: bool,
    next_output: u64,
    /// The item now streaming: output index, item id, type.
    open: Option<(u64, String, String)>,
    done_items: Vec<Value>,
}

/// Events that belong to the open item and must name it.
const ITEM_EVENTS: &[&str] = &[
    "response.content_part.added",
    "response.content_part.done",
    "response.output_text.delta",
    "response.output_text.done",
    "response.output_text.annotation.added",
    "response.refusal.delta",
    "response.refusal.done",
    "response.function_call_arguments.delta",
    "response.function_call_arguments.done",
    "response.custom_tool_call_input.delta",
    "response.custom_tool_call_input.done",
    "response.reasoning_summary_part.added",
    "response.reasoning_summary_part.done",
    "response.reasoning_summary_text.delta",
    "response.reasoning_summary_text.done",
    "response.reasoning_text.delta",
    "response.reasoning_text.done",
];

impl Validator {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, ev: &Event) -> Result<(), GrammarError> {
        let index = self.index;
        self.index += 1;
        let bad = |m: String| Err(GrammarError { index, message: m });
        if ev.data.trim() == "[DONE]" {
            return bad("[DONE] is not part of a Responses stream".into());
        }
        let v: Value = match serde_json::from_str(&ev.data) {
            Ok(v) => v,
            Err(e) => return bad(format!("data is not JSON: {e}")),
        };
        let Some(ty) = get_str(&v, "type") else {
            return bad("data has no type".into());
        };
        if ev.event.as_deref() != Some(ty) {
            return bad(format!("event line {:?} differs from type {ty}", ev.event));
        }
        match get_u64(&v, "sequence_number") {
            Some(s) if s == self.next_seq => self.next_seq += 1,
            Some(s) => return bad(format!("sequence_number {s}, expected {}", self.next_seq)),
            None => return bad("sequence_number missing".into()),
        }
        if self.terminal {
            return bad(format!("{ty} after the terminal event"));
        }
        if !self.started {
            if ty != "response.created" {
                return bad(format!("first event is {ty}, not response.created"));
            }
            self.started = true;
            return Ok(());
        }
        if self.after_error && ty != "response.failed" {
            return bad(format!("{ty} after error; only response.failed may follow"));
        }
        match ty {
            "response.output_item.added" => {
                let oi = get_u64(&v, "output_index");
                if oi != Some(self.next_output) {
                    return bad(format!(
                        "output_index {oi:?}, expected {}",
                        self.next_output
                    ));
                }
                if let Some((o, _, _)) = &self.open {
                    return bad(format!("item {o} still open when another is added"));
                }
                let item = v.get("item").unwrap_or(&Value::Null);
                let id = get_str(item, "id").unwrap_or_default().to_owned();
                let ity = get_str(item, "type").unwrap_or_default().to_owned();
                self.open = Some((self.next_output, id, ity));
                self.next_output += 1;
            }
            "response.output_item.done" => {
                let oi = get_u64(&v, "output_index");
                match &self.open {
                    Some((o, id, ity)) if Some(*o) == oi => {
                        let item = v.get("item").unwrap_or(&Value::Null);
                        if get_str(item, "type") != Some(ity.as_str()) {
                            return bad(format!("item {o} changed type at done"));
                        }
                        // A client keys its accumulator by the id `added` gave.
                        let done_id = get_str(item, "id").unwrap_or_default();
                        if !id.is_empty() && done_id != id {
                            return bad(format!(
                                "item {o} was added as `{id}` and done as `{done_id}`"
                            ));
                        }
                        self.done_items.push(item.clone());
                        self.open = None;
                    }
                    _ => return bad(format!("output_item.done for {oi:?}, which is not open")),
                }
            }
            t if ITEM_EVENTS.contains(&t) => {
                let oi = get_u64(&v, "output_index");
                let id = get_str(&v, "item_id");
                match &self.open {
                    Some((o, open_id, _)) if Some(*o) == oi && id == Some(open_id.as_str()) => {}
                    _ => {
                        return bad(format!(
                            "{t} for item {id:?} at {oi:?}, which is not the open item"
                        ));
                    }
                }
            }
            "response.completed" | "response.incomplete" => {
                if let Some((o, _, _)) = &self.open {
                    return bad(format!("{ty} while item {o} is open"));
                }
                let output = v
                    .get("response")
                    .and_then(|r| r.get("output"))
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                if output.len() != self.done_items.len() {
                    return bad(format!(
                        "response lists {} items, {} were done",
                        output.len(),
                        self.done_items.len()
                    ));
                }
                for (a, b) in output.iter().zip(&self.done_items) {
                    if get_str(a, "type") != get_str(b, "type")
                        || get_str(a, "call_id") != get_str(b, "call_id")
                    {
                        return bad("response output differs from the done items".into());
                    }
                }
                self.terminal = true;
            }
            "response.failed" => self.terminal = true,
            "error" => self.after_error = true,
            "response.created" => return bad("second response.created".into()),
            _ => {}
        }
        Ok(())
    }

    pub fn finish(&mut self) -> Result<(), GrammarError> {
        if self.terminal {
            Ok(())
        } else {
            Err(GrammarError {
                index: self.index,
                message: "stream ended without a terminal event".into(),
            })
        }
    }
}

pub fn validate(events: &[Event]) -> Result<(), GrammarError> {
    let mut v = Validator::new();
    for e in events {
        v.push(e)?;
    }
    v.finish()
}
