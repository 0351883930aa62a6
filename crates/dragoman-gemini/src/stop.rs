//! Gemini `finishReason` (and a blocked prompt's `blockReason`) ⇄ `StopReason`, in one place so
//! the response and stream codecs cannot disagree.

use dragoman_model::{Losses, StopReason};

/// The canonical reason for a `finishReason`. Gemini ends a function-calling turn with `STOP`,
/// so callers reconcile with the presence of tool calls. Safety and policy stops are content
/// filtering; reasons about malformed or unexpected tool calls and unknown values read as an
/// ordinary end, the reading least likely to make a client loop.
pub(crate) fn decode(reason: &str) -> StopReason {
    match reason {
        "MAX_TOKENS" => StopReason::MaxTokens,
        "SAFETY"
        | "RECITATION"
        | "BLOCKLIST"
        | "PROHIBITED_CONTENT"
        | "SPII"
        | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT"
        | "IMAGE_RECITATION"
        | "MODEL_ARMOR"
        | "LANGUAGE" => StopReason::ContentFilter,
        _ => StopReason::EndTurn,
    }
}

/// The `finishReason` for a canonical reason; reasons Gemini folds into a coarser one are
/// reported as approximated under `path`.
pub(crate) fn encode(stop: &StopReason, path: &str, losses: &mut Losses) -> &'static str {
    match stop {
        StopReason::EndTurn | StopReason::ToolUse => "STOP",
        StopReason::StopSequence { matched } => {
            if matched.is_some() {
                losses.approximated(
                    path,
                    "Gemini reports a stop sequence as `STOP` without the matched string",
                );
            }
            "STOP"
        }
        StopReason::PauseTurn => {
            losses.approximated(path, "pause_turn has no Gemini equivalent; sent as `STOP`");
            "STOP"
        }
        StopReason::MaxTokens => "MAX_TOKENS",
        StopReason::ContextWindowExceeded => {
            losses.approximated(
                path,
                "context window exceeded is reported as `MAX_TOKENS` in Gemini",
            );
            "MAX_TOKENS"
        }
        // `SAFETY` is what the google-genai SDKs and Gemini CLI treat as a blocked answer.
        StopReason::Refusal { .. } | StopReason::ContentFilter => "SAFETY",
    }
}
