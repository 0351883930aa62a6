//! Anthropic `stop_reason` / `stop_sequence` / `stop_details` ⇄ canonical `StopReason`.

use dragoman_model::StopReason;
use serde_json::Value;

/// `None` when no stop reason is given (streaming `message_start`, or a null).
pub(crate) fn decode(
    reason: Option<&Value>,
    sequence: Option<&Value>,
    details: Option<&Value>,
) -> Option<StopReason> {
    let reason = reason.and_then(Value::as_str)?;
    Some(match reason {
        "max_tokens" => StopReason::MaxTokens,
        "stop_sequence" => StopReason::StopSequence {
            matched: sequence
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        },
        "tool_use" => StopReason::ToolUse,
        "pause_turn" => StopReason::PauseTurn,
        "refusal" => StopReason::Refusal {
            details: details.filter(|d| !d.is_null()).cloned(),
        },
        "model_context_window_exceeded" => StopReason::ContextWindowExceeded,
        // end_turn, and any reason newer than this codec: a natural end is the safe reading.
        _ => StopReason::EndTurn,
    })
}

/// `(stop_reason, stop_sequence, stop_details)`; the sequence is never an empty string.
pub(crate) fn encode(stop: &StopReason) -> (&'static str, Option<String>, Option<Value>) {
    match stop {
        StopReason::EndTurn => ("end_turn", None, None),
        StopReason::MaxTokens => ("max_tokens", None, None),
        StopReason::StopSequence { matched } => (
            "stop_sequence",
            matched.clone().filter(|s| !s.is_empty()),
            None,
        ),
        StopReason::ToolUse => ("tool_use", None, None),
        StopReason::PauseTurn => ("pause_turn", None, None),
        StopReason::Refusal { details } => ("refusal", None, details.clone()),
        StopReason::ContextWindowExceeded => ("model_context_window_exceeded", None, None),
        // Reference §5.2: a provider content filter is what Anthropic calls a refusal.
        StopReason::ContentFilter => ("refusal", None, None),
    }
}
