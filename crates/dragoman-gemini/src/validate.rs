//! Checks a Gemini stream against the grammar its clients rely on: every event is a JSON
//! `GenerateContentResponse` (or an error), the chunk with a `finishReason` or an error is the
//! last, and the stream reaches one of them.

use dragoman_model::GrammarError;
use serde_json::Value;

#[derive(Debug, Default)]
pub struct Validator {
    events: usize,
    ended: bool,
}

impl Validator {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, ev: &dragoman_sse::Event) -> Result<(), GrammarError> {
        let index = self.events;
        self.events += 1;
        let bad = |message: String| Err(GrammarError { index, message });
        if ev.event.is_some() {
            return bad("Gemini events carry no `event:` name".into());
        }
        if self.ended {
            return bad("event after the final chunk".into());
        }
        let v: Value = match serde_json::from_str(ev.data.trim()) {
            Ok(v) => v,
            Err(e) => return bad(format!("data is not JSON: {e}")),
        };
        let Some(m) = v.as_object() else {
            return bad("data is not a JSON object".into());
        };
        if m.get("error").is_some_and(Value::is_object) {
            self.ended = true;
            return Ok(());
        }
        let candidates = match m.get("candidates") {
            Some(Value::Array(c)) => c,
            None if m.contains_key("promptFeedback") => {
                self.ended = true;
                return Ok(());
            }
            None => return bad("chunk without candidates".into()),
            Some(_) => return bad("candidates is not an array".into()),
        };
        for c in candidates {
            if let Some(parts) = c.get("content").and_then(|c| c.get("parts")) {
                let Some(parts) = parts.as_array() else {
                    return bad("content.parts is not an array".into());
                };
                for p in parts {
                    if let Some(fc) = p.get("functionCall") {
                        let Some(f) = fc.as_object() else {
                            return bad("functionCall is not an object".into());
                        };
                        if !crate::request::is_call_fragment(f)
                            && f.get("name").and_then(Value::as_str).is_none()
                        {
                            return bad("functionCall without a name".into());
                        }
                    }
                }
            }
            if c.get("finishReason").and_then(Value::as_str).is_some() {
                self.ended = true;
            }
        }
        Ok(())
    }

    pub fn finish(&mut self) -> Result<(), GrammarError> {
        if self.ended {
            Ok(())
        } else {
            Err(GrammarError {
                index: self.events,
                message: "stream ended without a finishReason or an error".into(),
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
