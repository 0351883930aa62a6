//! The grammar of an Anthropic SSE stream as sent to clients, checked event by event, so tests
//! (and a debug mode of the server) can prove every encoder output is one the SDKs accept.

use dragoman_model::GrammarError;
use serde_json::Value;

#[derive(Debug)]
struct Open {
    index: u64,
    btype: String,
    json: String,
}

/// Incremental checker of one Anthropic stream.
#[derive(Debug, Default)]
pub struct Validator {
    count: usize,
    started: bool,
    terminal: bool,
    open: Option<Open>,
    next_index: u64,
    delta_sent: bool,
    /// Concatenated `partial_json` of closed tool blocks, judged at `message_delta` because a
    /// `max_tokens` stop legitimately cuts them.
    tool_inputs: Vec<(u64, String)>,
}

fn is_tool_block(t: &str) -> bool {
    matches!(t, "tool_use" | "server_tool_use" | "mcp_tool_use")
}

impl Validator {
    pub fn new() -> Self {
        Validator::default()
    }

    pub fn push(&mut self, ev: &dragoman_sse::Event) -> Result<(), GrammarError> {
        let index = self.count;
        self.count += 1;
        let bad = |m: String| Err(GrammarError { index, message: m });
        if self.terminal {
            return bad("event after the terminal event".into());
        }
        if ev.data.trim() == "[DONE]" {
            return bad("[DONE] is not part of the Anthropic protocol".into());
        }
        let Some(name) = ev.event.as_deref().filter(|n| !n.is_empty()) else {
            return bad("missing `event:` line".into());
        };
        let v: Value = match serde_json::from_str(&ev.data) {
            Ok(v) => v,
            Err(e) => return bad(format!("data is not json: {e}")),
        };
        let Some(ty) = v.get("type").and_then(Value::as_str) else {
            return bad("data has no type".into());
        };
        if ty != name {
            return bad(format!("event name `{name}` differs from data type `{ty}`"));
        }
        if !self.started && !matches!(ty, "ping" | "message_start" | "error") {
            return bad(format!("`{ty}` before message_start"));
        }
        match ty {
            "ping" => {}
            "message_start" => {
                if self.started {
                    return bad("second message_start".into());
                }
                if v.get("message").and_then(|m| m.get("id")).is_none() {
                    return bad("message_start without message.id".into());
                }
                self.started = true;
            }
            "content_block_start" => {
                if self.delta_sent {
                    return bad("content_block_start after message_delta".into());
                }
                if let Some(o) = &self.open {
                    return bad(format!("block {} is still open", o.index));
                }
                let i = v.get("index").and_then(Value::as_u64);
                if i != Some(self.next_index) {
                    return bad(format!("expected index {}, got {i:?}", self.next_index));
                }
                self.next_index += 1;
                let btype = v
                    .get("content_block")
                    .and_then(|c| c.get("type"))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned();
                self.open = Some(Open {
                    index: self.next_index - 1,
                    btype,
                    json: String::new(),
                });
            }
            "content_block_delta" => {
                let i = v.get("index").and_then(Value::as_u64);
                let Some(open) = self.open.as_mut().filter(|o| Some(o.index) == i) else {
                    return bad(format!("delta for block {i:?}, which is not open"));
                };
                let d = v.get("delta");
                let dty = d
                    .and_then(|d| d.get("type"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let b = open.btype.as_str();
                // Blocks of a type this validator does not know may take any delta.
                let known =
                    matches!(b, "text" | "thinking" | "redacted_thinking") || is_tool_block(b);
                let fits = !known
                    || match dty {
                        "text_delta" | "citations_delta" => b == "text",
                        "input_json_delta" => is_tool_block(b),
                        "thinking_delta" | "signature_delta" => b == "thinking",
                        _ => !matches!(b, "text" | "thinking" | "redacted_thinking" | "tool_use"),
                    };
                if !fits {
                    return bad(format!("{dty} does not fit a {b} block"));
                }
                if dty == "input_json_delta" {
                    match d
                        .and_then(|d| d.get("partial_json"))
                        .and_then(Value::as_str)
                    {
                        Some(p) => open.json.push_str(p),
                        None => return bad("input_json_delta without partial_json".into()),
                    }
                }
            }
            "content_block_stop" => {
                let i = v.get("index").and_then(Value::as_u64);
                match self.open.take() {
                    Some(o) if Some(o.index) == i => {
                        // Only a client tool call is run by the client, so only its input must
                        // parse; server tool blocks report what the provider already ran.
                        if o.btype == "tool_use" {
                            self.tool_inputs.push((o.index, o.json));
                        }
                    }
                    other => {
                        self.open = other;
                        return bad(format!("stop for block {i:?}, which is not open"));
                    }
                }
            }
            "message_delta" => {
                if let Some(o) = &self.open {
                    return bad(format!("message_delta while block {} is open", o.index));
                }
                let delta = v.get("delta");
                if delta
                    .and_then(|d| d.get("stop_sequence"))
                    .and_then(Value::as_str)
                    == Some("")
                {
                    return bad("stop_sequence is an empty string".into());
                }
                if v.get("usage")
                    .and_then(|u| u.get("output_tokens"))
                    .is_none()
                {
                    return bad("message_delta usage without output_tokens".into());
                }
                let reason = delta
                    .and_then(|d| d.get("stop_reason"))
                    .and_then(Value::as_str);
                if reason != Some("max_tokens") {
                    for (i, j) in &self.tool_inputs {
                        if !j.is_empty() && serde_json::from_str::<Value>(j).is_err() {
                            return bad(format!("tool input of block {i} is not valid json"));
                        }
                    }
                }
                self.tool_inputs.clear();
                self.delta_sent = true;
            }
            "message_stop" => {
                if !self.delta_sent {
                    return bad("message_stop without message_delta".into());
                }
                self.terminal = true;
            }
            "error" => {
                if v.get("error").and_then(|e| e.get("type")).is_none() {
                    return bad("error event without error.type".into());
                }
                self.terminal = true;
            }
            // Unknown event types are allowed: clients must ignore them.
            _ => {}
        }
        Ok(())
    }

    pub fn finish(&mut self) -> Result<(), GrammarError> {
        if self.terminal {
            Ok(())
        } else {
            Err(GrammarError {
                index: self.count,
                message: "stream ended without message_stop or error".into(),
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
