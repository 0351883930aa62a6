//! Responses has no stop reason: it is derived from `status`, `incomplete_details.reason` and
//! the output's content, and written back the same way (reference §3.7, §5.2; traps §30).

use dragoman_model::{Losses, StopReason};
use serde_json::{Value, json};

use crate::get_str;

/// The canonical stop reason for a response's status. `has_tool_calls` and `has_refusal`
/// describe the output, because a completed response says nothing more.
pub(crate) fn decode_stop(
    status: Option<&str>,
    incomplete_details: Option<&Value>,
    has_tool_calls: bool,
    has_refusal: bool,
) -> StopReason {
    let stop = match status {
        Some("incomplete") => match incomplete_details.and_then(|d| get_str(d, "reason")) {
            Some("content_filter") => StopReason::ContentFilter,
            _ => StopReason::MaxTokens,
        },
        _ if has_refusal && !has_tool_calls => StopReason::Refusal { details: None },
        _ => StopReason::EndTurn,
    };
    stop.reconcile(has_tool_calls)
}

/// `(status, incomplete_details)` for a stop reason. `has_refusal`: the output carries a
/// refusal content part, which is how Responses itself says "refused" (with `completed`).
pub(crate) fn encode_stop(
    stop: &StopReason,
    has_refusal: bool,
    losses: &mut Losses,
) -> (&'static str, Value) {
    match stop {
        StopReason::EndTurn | StopReason::ToolUse => ("completed", Value::Null),
        // Without a refusal part, an incomplete response filtered for content is what Responses
        // clients treat as a refusal (the AI SDK's `content-filter`); a plain `completed` with
        // only text would read as an answer.
        StopReason::Refusal { details } => {
            if details.is_some() {
                losses.dropped("stop.details", "Responses has no refusal details");
            }
            if has_refusal {
                ("completed", Value::Null)
            } else {
                ("incomplete", json!({ "reason": "content_filter" }))
            }
        }
        StopReason::StopSequence { .. } => {
            losses.approximated(
                "stop",
                "Responses has no stop sequences; reported as completed",
            );
            ("completed", Value::Null)
        }
        StopReason::PauseTurn => {
            losses.approximated("stop", "Responses has no pause_turn; reported as completed");
            ("completed", Value::Null)
        }
        StopReason::MaxTokens => ("incomplete", json!({ "reason": "max_output_tokens" })),
        StopReason::ContextWindowExceeded => {
            losses.approximated(
                "stop",
                "context window exceeded is reported as max_output_tokens",
            );
            ("incomplete", json!({ "reason": "max_output_tokens" }))
        }
        StopReason::ContentFilter => ("incomplete", json!({ "reason": "content_filter" })),
    }
}
