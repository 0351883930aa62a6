//! Bedrock `stopReason` ⇄ `StopReason`, in one place so the response and stream codecs agree.

use dragoman_model::{Losses, StopReason};

/// The canonical reason for a `stopReason`. Guardrail and provider filtering are both content
/// filtering; the two malformed-output reasons (and unknown values) read as an ordinary end,
/// the reading least likely to make a client loop, as the Gemini codec reads its malformed
/// function calls. `matched` is the stop sequence, when the response says it.
pub(crate) fn decode(reason: &str, matched: Option<String>) -> StopReason {
    match reason {
        "tool_use" => StopReason::ToolUse,
        "max_tokens" => StopReason::MaxTokens,
        "stop_sequence" => StopReason::StopSequence { matched },
        "model_context_window_exceeded" => StopReason::ContextWindowExceeded,
        "guardrail_intervened" | "content_filtered" => StopReason::ContentFilter,
        _ => StopReason::EndTurn,
    }
}

/// The `stopReason` for a canonical reason. `original` is the value a Bedrock upstream sent,
/// kept so that a Bedrock-to-Bedrock answer says exactly what it said when it means the same.
pub(crate) fn encode(
    stop: &StopReason,
    original: Option<&str>,
    path: &str,
    losses: &mut Losses,
) -> &'static str {
    let natural = match stop {
        StopReason::EndTurn => "end_turn",
        StopReason::ToolUse => "tool_use",
        StopReason::MaxTokens => "max_tokens",
        StopReason::StopSequence { .. } => "stop_sequence",
        StopReason::ContextWindowExceeded => "model_context_window_exceeded",
        StopReason::ContentFilter => "content_filtered",
        StopReason::Refusal { .. } => {
            losses.approximated(path, "a refusal is reported as `content_filtered`");
            "content_filtered"
        }
        StopReason::PauseTurn => {
            losses.approximated(
                path,
                "pause_turn has no Bedrock equivalent; sent as end_turn",
            );
            "end_turn"
        }
    };
    match original.and_then(known) {
        Some(o) if decode(o, None) == decode(natural, None) => o,
        _ => natural,
    }
}

/// The static spelling of a recorded stop reason, if Bedrock defines it.
fn known(s: &str) -> Option<&'static str> {
    [
        "end_turn",
        "tool_use",
        "max_tokens",
        "stop_sequence",
        "model_context_window_exceeded",
        "guardrail_intervened",
        "content_filtered",
        "malformed_model_output",
        "malformed_tool_use",
    ]
    .into_iter()
    .find(|k| *k == s)
}
