//! The grammar of a Chat SSE stream as sent to clients, checked event by event so tests (and a
//! debug mode of the gateway) can prove an encoder's output is something OpenAI SDKs accept.

use std::collections::HashMap;

use dragoman_model::GrammarError;
use serde_json::Value;

use crate::stream::DONE;

#[derive(Debug, Default)]
struct ToolState {
    id: String,
    function: bool,
    arguments: String,
}

#[derive(Debug, Default)]
pub struct Validator {
    index: usize,
    id: Option<String>,
    role_seen: bool,
    /// Per choice index: its finish_reason once sent.
    finished: HashMap<u64, String>,
    /// Per (choice, tool index).
    tools: HashMap<(u64, u64), ToolState>,
    usage_seen: bool,
    terminal: bool,
}

impl Validator {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, ev: &dragoman_sse::Event) -> Result<(), GrammarError> {
        let index = self.index;
        self.index += 1;
        let fail = |m: String| Err(GrammarError { index, message: m });
        if self.terminal {
            return fail("event after the terminal event".into());
        }
        if let Some(name) = &ev.event {
            return fail(format!(
                "Chat streams have no `event:` lines (got `{name}`)"
            ));
        }
        if ev.data == DONE {
            if self.finished.is_empty() {
                return fail("[DONE] before any finish_reason".into());
            }
            self.terminal = true;
            return Ok(());
        }
        let v: Value = match serde_json::from_str(&ev.data) {
            Ok(v) => v,
            Err(e) => return fail(format!("data is not JSON: {e}")),
        };
        let Some(m) = v.as_object() else {
            return fail("chunk is not an object".into());
        };
        if let Some(err) = m.get("error") {
            if !err.get("message").is_some_and(Value::is_string) {
                return fail("error chunk without a string `error.message`".into());
            }
            self.terminal = true;
            return Ok(());
        }
        if m.get("object").and_then(Value::as_str) != Some("chat.completion.chunk") {
            return fail("object is not `chat.completion.chunk`".into());
        }
        let Some(id) = m.get("id").and_then(Value::as_str) else {
            return fail("chunk without a string id".into());
        };
        match &self.id {
            None => self.id = Some(id.to_owned()),
            Some(first) if first != id => {
                return fail(format!("id changed from `{first}` to `{id}`"));
            }
            Some(_) => {}
        }
        let Some(choices) = m.get("choices").and_then(Value::as_array) else {
            return fail("chunk without a choices array".into());
        };
        let usage = m.get("usage").filter(|u| !u.is_null());
        if let Some(u) = usage {
            if !choices.is_empty() {
                return fail("usage on a chunk that has choices".into());
            }
            if self.usage_seen {
                return fail("second usage chunk".into());
            }
            if !u.is_object() {
                return fail("usage is not an object".into());
            }
            self.usage_seen = true;
            return Ok(());
        }
        if choices.is_empty() {
            return fail("chunk with empty choices and no usage".into());
        }
        if self.usage_seen {
            return fail("choice chunk after the usage chunk".into());
        }
        for c in choices {
            let ci = c.get("index").and_then(Value::as_u64).unwrap_or(0);
            if self.finished.contains_key(&ci) {
                return fail(format!("chunk for choice {ci} after its finish_reason"));
            }
            if let Some(d) = c.get("delta").filter(|d| !d.is_null()) {
                let Some(d) = d.as_object() else {
                    return fail("delta is not an object".into());
                };
                if d.get("role").is_some_and(|r| !r.is_null()) {
                    if self.role_seen {
                        return fail("role sent in more than one chunk".into());
                    }
                    self.role_seen = true;
                }
                if let Some(calls) = d.get("tool_calls").filter(|t| !t.is_null()) {
                    let Some(calls) = calls.as_array() else {
                        return fail("tool_calls is not an array".into());
                    };
                    for call in calls {
                        self.tool_fragment(ci, call).or_else(fail)?;
                    }
                }
            }
            match c.get("finish_reason") {
                None | Some(Value::Null) => {}
                Some(Value::String(fr)) => {
                    if fr != "length" {
                        for ((choice, t), st) in &self.tools {
                            if *choice == ci
                                && st.function
                                && !st.arguments.is_empty()
                                && serde_json::from_str::<Value>(&st.arguments).is_err()
                            {
                                return fail(format!(
                                    "tool call {t} arguments are not valid JSON at finish"
                                ));
                            }
                        }
                    }
                    self.finished.insert(ci, fr.clone());
                }
                Some(_) => return fail("finish_reason is not a string".into()),
            }
        }
        Ok(())
    }

    fn tool_fragment(&mut self, choice: u64, call: &Value) -> Result<(), String> {
        let Some(t) = call.get("index").and_then(Value::as_u64) else {
            return Err("tool call fragment without an index".into());
        };
        let id = call.get("id").and_then(Value::as_str);
        let custom = call.get("custom").is_some_and(Value::is_object);
        let inner = call.get(if custom { "custom" } else { "function" });
        let name = inner.and_then(|f| f.get("name")).and_then(Value::as_str);
        let fragment = inner
            .and_then(|f| f.get(if custom { "input" } else { "arguments" }))
            .and_then(Value::as_str)
            .unwrap_or_default();
        match self.tools.get_mut(&(choice, t)) {
            None => {
                let (Some(id), Some(_)) = (id, name) else {
                    return Err(format!(
                        "first fragment of tool call {t} lacks an id or a name"
                    ));
                };
                self.tools.insert(
                    (choice, t),
                    ToolState {
                        id: id.to_owned(),
                        function: !custom,
                        arguments: fragment.to_owned(),
                    },
                );
            }
            Some(st) => {
                if let Some(id) = id
                    && id != st.id
                {
                    return Err(format!("tool call {t} changed its id to `{id}`"));
                }
                st.arguments.push_str(fragment);
            }
        }
        Ok(())
    }

    /// End of stream: exactly one terminal (`[DONE]` or an error chunk) must have been seen.
    pub fn finish(&mut self) -> Result<(), GrammarError> {
        if self.terminal {
            Ok(())
        } else {
            Err(GrammarError {
                index: self.index,
                message: "stream ended without [DONE] or an error chunk".into(),
            })
        }
    }
}

/// Checks a whole stream.
pub fn validate(events: &[dragoman_sse::Event]) -> Result<(), GrammarError> {
    let mut v = Validator::new();
    for e in events {
        v.push(e)?;
    }
    v.finish()
}
