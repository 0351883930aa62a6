//! Checks a ConverseStream against the grammar its clients rely on: `messageStart`, then blocks
//! (`contentBlockStart`? `contentBlockDelta`* `contentBlockStop`), `messageStop`, `metadata`;
//! or an exception event, after which nothing follows. Every payload is a JSON object.

use std::collections::HashMap;

use dragoman_model::GrammarError;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Start,
    Blocks,
    Stopped,
    Ended,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Started,
    Delta,
    Stopped,
}

#[derive(Debug)]
pub struct Validator {
    events: usize,
    phase: Phase,
    blocks: HashMap<u64, Block>,
}

impl Default for Validator {
    fn default() -> Self {
        Validator {
            events: 0,
            phase: Phase::Start,
            blocks: HashMap::new(),
        }
    }
}

impl Validator {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, ev: &dragoman_sse::Event) -> Result<(), GrammarError> {
        let index = self.events;
        self.events += 1;
        let bad = |message: String| Err(GrammarError { index, message });
        let Some(name) = ev.event.as_deref() else {
            return bad("Bedrock events are named by their :event-type".into());
        };
        if self.phase == Phase::Ended {
            return bad(format!("`{name}` after the end of the stream"));
        }
        let v: Value = match serde_json::from_str(&ev.data) {
            Ok(v) => v,
            Err(e) => return bad(format!("`{name}` payload is not JSON: {e}")),
        };
        if !v.is_object() {
            return bad(format!("`{name}` payload is not a JSON object"));
        }
        if name.ends_with("Exception") {
            if v.get("message").and_then(Value::as_str).is_none() {
                return bad(format!("`{name}` without a message"));
            }
            self.phase = Phase::Ended;
            return Ok(());
        }
        let block_index = || v.get("contentBlockIndex").and_then(Value::as_u64);
        match (name, self.phase) {
            ("messageStart", Phase::Start) => {
                if v.get("role").and_then(Value::as_str) != Some("assistant") {
                    return bad("messageStart without role assistant".into());
                }
                self.phase = Phase::Blocks;
            }
            ("contentBlockStart", Phase::Blocks) => {
                let Some(i) = block_index() else {
                    return bad("contentBlockStart without contentBlockIndex".into());
                };
                if !v.get("start").is_some_and(Value::is_object) {
                    return bad("contentBlockStart without start".into());
                }
                if self.blocks.insert(i, Block::Started).is_some() {
                    return bad(format!("block {i} started after its first event"));
                }
            }
            ("contentBlockDelta", Phase::Blocks) => {
                let Some(i) = block_index() else {
                    return bad("contentBlockDelta without contentBlockIndex".into());
                };
                if !v.get("delta").is_some_and(Value::is_object) {
                    return bad("contentBlockDelta without delta".into());
                }
                match self.blocks.get(&i) {
                    Some(Block::Stopped) => return bad(format!("delta for stopped block {i}")),
                    _ => {
                        self.blocks.insert(i, Block::Delta);
                    }
                }
            }
            ("contentBlockStop", Phase::Blocks) => {
                let Some(i) = block_index() else {
                    return bad("contentBlockStop without contentBlockIndex".into());
                };
                if self.blocks.insert(i, Block::Stopped) == Some(Block::Stopped) {
                    return bad(format!("block {i} stopped twice"));
                }
            }
            ("messageStop", Phase::Blocks) => {
                if v.get("stopReason").and_then(Value::as_str).is_none() {
                    return bad("messageStop without stopReason".into());
                }
                if let Some((i, _)) = self.blocks.iter().find(|(_, b)| **b != Block::Stopped) {
                    return bad(format!("messageStop with block {i} still open"));
                }
                self.phase = Phase::Stopped;
            }
            ("metadata", Phase::Stopped) => {
                let usage = v.get("usage");
                for k in ["inputTokens", "outputTokens", "totalTokens"] {
                    if usage
                        .and_then(|u| u.get(k))
                        .and_then(Value::as_u64)
                        .is_none()
                    {
                        return bad(format!("metadata.usage without {k}"));
                    }
                }
                self.phase = Phase::Ended;
            }
            (name, phase) => return bad(format!("`{name}` not allowed in phase {phase:?}")),
        }
        Ok(())
    }

    pub fn finish(&mut self) -> Result<(), GrammarError> {
        if self.phase == Phase::Ended {
            Ok(())
        } else {
            Err(GrammarError {
                index: self.events,
                message: format!(
                    "stream ended in phase {:?}, before metadata or an exception",
                    self.phase
                ),
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
