//! Canonical non-streamed responses and the full set of stop reasons.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Extension, Part, Usage};

/// What a trace span says of a whole answer (its id, model and why it stopped), read without
/// decoding the rest.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResponseSummary {
    pub id: Option<String>,
    pub model: Option<String>,
    pub stop: Option<StopReason>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub id: String,
    pub model: String,
    pub content: Vec<Part>,
    pub stop: StopReason,
    pub usage: Usage,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extensions: Vec<Extension>,
}

/// Why generation stopped. Richer than any single dialect; each encoder maps it down as the
/// protocol reference §5.2 says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StopReason {
    EndTurn,
    MaxTokens,
    StopSequence {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        matched: Option<String>,
    },
    ToolUse,
    PauseTurn,
    Refusal {
        /// Anthropic `stop_details` (category, explanation), when given.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        details: Option<Value>,
    },
    ContextWindowExceeded,
    ContentFilter,
}

impl StopReason {
    /// The stop reason to report given what the content holds: a turn that contains client
    /// tool calls is a tool-use turn whatever the upstream said (some servers say `stop`),
    /// unless it was cut short by a limit.
    pub fn reconcile(self, has_tool_calls: bool) -> StopReason {
        match self {
            StopReason::EndTurn | StopReason::StopSequence { .. } if has_tool_calls => {
                StopReason::ToolUse
            }
            StopReason::ToolUse if !has_tool_calls => StopReason::EndTurn,
            other => other,
        }
    }
}
