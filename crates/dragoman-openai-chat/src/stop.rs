//! Chat `finish_reason` ⇄ `StopReason`, kept in one place so the response and stream codecs
//! cannot disagree about what a reason means.

use dragoman_model::{Losses, StopReason};

/// The canonical reason for a Chat `finish_reason`. Unknown values (vendor additions such as
/// `error` or `insufficient_system_resource`) become `EndTurn`, the reading least likely to make
/// a client loop; callers still reconcile with the presence of tool calls.
pub(crate) fn decode(finish_reason: Option<&str>) -> StopReason {
    match finish_reason {
        Some("length") => StopReason::MaxTokens,
        Some("tool_calls") | Some("function_call") => StopReason::ToolUse,
        Some("content_filter") => StopReason::ContentFilter,
        _ => StopReason::EndTurn,
    }
}

/// The Chat `finish_reason` for a canonical reason; reasons Chat folds into a coarser one are
/// reported as approximated under `path`.
pub(crate) fn encode(stop: &StopReason, path: &str, losses: &mut Losses) -> &'static str {
    match stop {
        StopReason::EndTurn => "stop",
        StopReason::StopSequence { matched } => {
            if matched.is_some() {
                losses.approximated(
                    path,
                    "Chat reports a stop sequence as `stop` without the matched string",
                );
            }
            "stop"
        }
        StopReason::PauseTurn => {
            losses.approximated(path, "pause_turn has no Chat equivalent; sent as `stop`");
            "stop"
        }
        // `content_filter` is what makes Chat clients' refusal handling fire (the AI SDK's
        // `content-filter`); the explanation travels in `message.refusal` (see `explanation`).
        StopReason::Refusal { details } => {
            if details
                .as_ref()
                .is_some_and(|d| d.get("category").is_some_and(|c| !c.is_null()))
            {
                losses.dropped(
                    format!("{path}.details.category"),
                    "a refusal's category has no Chat equivalent",
                );
            }
            "content_filter"
        }
        StopReason::MaxTokens => "length",
        StopReason::ContextWindowExceeded => {
            losses.approximated(
                path,
                "context window exceeded is reported as `length` in Chat",
            );
            "length"
        }
        StopReason::ToolUse => "tool_calls",
        StopReason::ContentFilter => "content_filter",
    }
}

/// A refusal's explanation (Anthropic `stop_details.explanation`), which Chat carries as the
/// message's `refusal`.
pub(crate) fn explanation(stop: &StopReason) -> Option<&str> {
    match stop {
        StopReason::Refusal { details: Some(d) } => d.get("explanation")?.as_str(),
        _ => None,
    }
}
