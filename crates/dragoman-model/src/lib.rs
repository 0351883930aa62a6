//! The canonical model: the one vocabulary every dialect decodes into and encodes from.
//!
//! No dialect crate ever sees another dialect's types; they meet only here. The stream events
//! follow Anthropic's block lifecycle because it is the richest of the three, so encoders only
//! drop or reshape information and never have to invent it. Everything is plain data: no I/O,
//! no async, no HTTP.

mod error;
mod fault;
mod json;
mod lenient;
mod loss;
mod options;
mod reasoning;
mod request;
mod response;
mod stream;
mod usage;

#[cfg(test)]
mod tests;

pub use error::{DecodeError, ErrorBody, ErrorKind};
pub use fault::{ResponseFault, read_head};
pub use json::write_json_str;
pub use lenient::{Count, Lenient, read_usage_member};
pub use loss::{Loss, LossKind, Losses};
pub use options::{GrammarError, StreamOptions};
pub use reasoning::{Family, ReasoningSeal, SEAL_PREFIX, SealKind};
pub use request::{
    CacheControl, Effort, Extension, MediaSource, Message, Part, ReasoningConfig, Request,
    ResponseFormat, Role, Tool, ToolChoice, ToolKind, arguments_object, own_extensions,
};
pub use response::{Response, ResponseSummary, StopReason};
pub use stream::{BlockKind, Collector, Delta, StreamEvent, collect, response_events};
pub use usage::Usage;

/// The wire formats dragoman speaks. A dialect is not a provider: Azure and vLLM speak the
/// OpenAI dialects; Bedrock can speak Anthropic's.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Dialect {
    Anthropic,
    Chat,
    Responses,
    /// Google Gemini `generateContent` (the Gemini API and Vertex AI).
    Gemini,
    /// Amazon Bedrock Converse / ConverseStream (Bedrock's own JSON, streamed as the AWS
    /// binary event stream). Bedrock's InvokeModel speaks the model vendor's dialect instead.
    Bedrock,
}

impl Dialect {
    pub const ALL: [Dialect; 5] = [
        Dialect::Anthropic,
        Dialect::Chat,
        Dialect::Responses,
        Dialect::Gemini,
        Dialect::Bedrock,
    ];

    /// The dialects clients speak: every one but Bedrock's, which only upstreams do.
    pub const CLIENTS: [Dialect; 4] = [
        Dialect::Anthropic,
        Dialect::Chat,
        Dialect::Responses,
        Dialect::Gemini,
    ];

    /// The status to answer an upstream's error with: Anthropic clients get the kind's own
    /// status (their SDKs decide retries by it, 529 for overload); OpenAI clients keep the
    /// upstream's.
    pub fn upstream_error_status(self, kind: ErrorKind, upstream: Option<u16>) -> Option<u16> {
        match self {
            Dialect::Anthropic => Some(kind.status()),
            Dialect::Chat | Dialect::Responses | Dialect::Gemini | Dialect::Bedrock => upstream,
        }
    }

    /// Which rate-limit headers this dialect's clients read (Claude Code reads Anthropic's).
    pub fn rate_limit_headers(self) -> RateLimitHeaders {
        match self {
            Dialect::Anthropic => RateLimitHeaders::Anthropic,
            // Google and AWS send no rate-limit headers; the OpenAI form is the common one.
            Dialect::Chat | Dialect::Responses | Dialect::Gemini | Dialect::Bedrock => {
                RateLimitHeaders::OpenAi
            }
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::Anthropic => "anthropic",
            Dialect::Chat => "chat",
            Dialect::Responses => "responses",
            Dialect::Gemini => "gemini",
            Dialect::Bedrock => "bedrock",
        }
    }

    /// The provider family whose opaque reasoning this dialect's upstreams accept. Bedrock's
    /// reasoning blocks are Claude's: its signatures and redacted data are Anthropic's own and
    /// are accepted across Anthropic's API, Bedrock and Vertex, so they travel natively.
    pub fn family(self) -> Family {
        match self {
            Dialect::Anthropic | Dialect::Bedrock => Family::Anthropic,
            Dialect::Chat | Dialect::Responses => Family::OpenAi,
            Dialect::Gemini => Family::Google,
        }
    }

    /// Whether requests name their model in the body; Gemini and Bedrock name it in the URL
    /// path (`/v1beta/models/{model}:generateContent`, `/model/{modelId}/converse`), and their
    /// codecs leave `model` empty.
    pub fn model_in_body(self) -> bool {
        !matches!(self, Dialect::Gemini | Dialect::Bedrock)
    }

    /// Top-level request fields that only shape how an answer is delivered (streamed or not,
    /// with usage chunks or not), never what it says: a response cache leaves them out of its
    /// key.
    pub fn delivery_fields(self) -> &'static [&'static str] {
        match self {
            Dialect::Chat | Dialect::Responses => &["stream", "stream_options"],
            Dialect::Anthropic | Dialect::Bedrock => &["stream"],
            // Gemini streams by URL.
            Dialect::Gemini => &[],
        }
    }

    /// How the dialect's streams are cut into events on the wire.
    pub fn framing(self) -> Framing {
        match self {
            Dialect::Bedrock => Framing::EventStream,
            Dialect::Anthropic | Dialect::Chat | Dialect::Responses | Dialect::Gemini => {
                Framing::Sse
            }
        }
    }

    /// Whether the dialect declares freeform (custom) tools; where it does not, they travel as
    /// functions taking one string `input`.
    pub fn has_freeform_tools(self) -> bool {
        matches!(self, Dialect::Chat | Dialect::Responses)
    }
}

impl std::str::FromStr for Dialect {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "anthropic" | "messages" => Ok(Dialect::Anthropic),
            "chat" | "openai-chat" | "chat_completions" => Ok(Dialect::Chat),
            "responses" | "openai-responses" => Ok(Dialect::Responses),
            "gemini" | "google" => Ok(Dialect::Gemini),
            "bedrock" | "converse" => Ok(Dialect::Bedrock),
            other => Err(format!(
                "unknown dialect `{other}` (expected anthropic, chat, responses, gemini or bedrock)"
            )),
        }
    }
}

impl std::fmt::Display for Dialect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a stream's bytes are cut into events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Framing {
    /// Server-sent events (`text/event-stream`).
    Sse,
    /// AWS's binary `application/vnd.amazon.eventstream` messages, one event each.
    EventStream,
    /// Event-stream `chunk` messages each carrying one base64 event of the dialect inside
    /// (Bedrock's InvokeModelWithResponseStream).
    EventStreamChunks,
}

/// The rate-limit headers a family of clients reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimitHeaders {
    /// `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`, resets as durations (`1m0s`).
    OpenAi,
    /// `anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}`, resets as RFC 3339
    /// times.
    Anthropic,
}

/// A JSON object, the form extension fields and opaque values keep.
pub type JsonMap = serde_json::Map<String, serde_json::Value>;
