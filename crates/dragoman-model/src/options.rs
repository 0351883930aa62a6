//! Knobs that callers of a stream encoder set, and the grammar error every validator reports.

/// What the caller of a stream encoder knows that the stream itself does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamOptions {
    /// A local count of the prompt tokens, for dialects that must report input usage at the
    /// start of a stream (Anthropic `message_start`) when the upstream only reports it at the end.
    pub input_estimate: Option<u64>,
    /// Chat clients only receive a usage chunk when they asked for it
    /// (`stream_options.include_usage`).
    pub include_usage: bool,
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions {
            input_estimate: None,
            include_usage: true,
        }
    }
}

/// A stream that breaks its dialect's grammar, naming the offending event by position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event {index}: {message}")]
pub struct GrammarError {
    pub index: usize,
    pub message: String,
}
