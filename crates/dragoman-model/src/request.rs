//! Canonical requests: system blocks, messages of content parts, tools and generation settings.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Dialect, JsonMap, ReasoningSeal};

/// A request in no dialect.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub model: String,
    /// Top-level system prompt blocks (Anthropic `system`, Responses `instructions`). System and
    /// developer messages inside the conversation stay in `messages` where they were.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub system: Vec<Part>,
    pub messages: Vec<Message>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<Tool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormat>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<ReasoningConfig>,
    /// Anthropic `metadata`, OpenAI `metadata` (string map).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<JsonMap>,
    /// End-user identity: Anthropic `metadata.user_id`, OpenAI `user` / `safety_identifier`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default)]
    pub stream: bool,
    /// Fields one dialect knows and the canonical model does not. Re-emitted when encoding to a
    /// dialect that understands them (see [`Extension::portable_to`]), reported as dropped
    /// otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extensions: Vec<Extension>,
}

/// A top-level field kept verbatim from the dialect it arrived in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Extension {
    pub dialect: Dialect,
    pub key: String,
    pub value: Value,
}

/// Top-level fields that mean the same in OpenAI Chat and Responses, so they cross between them.
const OPENAI_SHARED_KEYS: &[&str] = &[
    "service_tier",
    "store",
    "prompt_cache_key",
    "prompt_cache_retention",
    "safety_identifier",
    "top_logprobs",
    "background",
];

/// The extensions of `dialect` among `extensions`, for its encoder; every other dialect's
/// field is reported as dropped (`label` names the dialect in the report), except codec-private
/// markers, which are skipped silently.
pub fn own_extensions<'a>(
    dialect: Dialect,
    label: &str,
    extensions: &'a [Extension],
    losses: &mut crate::Losses,
) -> Vec<&'a Extension> {
    let mut own = Vec::new();
    for e in extensions {
        if e.dialect == dialect {
            own.push(e);
        } else if !e.is_private() {
            losses.dropped(
                format!("extensions.{}", e.key),
                format!("{} field has no {label} equivalent", e.dialect),
            );
        }
    }
    own
}

/// Canonical tool-call arguments as the JSON object a tool-use block's input must be: an
/// object as it is, nothing as `{}`; a custom tool's raw input, or arguments that are not an
/// object, wrapped as `{"input": <text>}` (reported at `path`).
pub fn arguments_object(
    arguments: &str,
    kind: crate::ToolKind,
    path: String,
    losses: &mut crate::Losses,
) -> Value {
    if kind == crate::ToolKind::Custom {
        losses.approximated(path, "custom tool input sent as {\"input\": <text>}");
        return serde_json::json!({ "input": arguments });
    }
    if arguments.trim().is_empty() {
        return serde_json::json!({});
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            losses.approximated(
                path,
                "tool arguments that are not a JSON object sent as {\"input\": <text>}",
            );
            serde_json::json!({ "input": arguments })
        }
    }
}

impl Extension {
    pub fn new(dialect: Dialect, key: impl Into<String>, value: Value) -> Self {
        Extension {
            dialect,
            key: key.into(),
            value,
        }
    }

    /// Codec-private markers (keys starting `x-dragoman-`) that only steer their own dialect's
    /// encoder towards an exact round trip. Other dialects skip them without reporting a loss:
    /// they carry no information of the client's beyond what the canonical fields already say.
    pub fn is_private(&self) -> bool {
        self.key.starts_with("x-dragoman-")
    }

    /// Whether `target` can take this field as it is.
    pub fn portable_to(&self, target: Dialect) -> bool {
        self.dialect == target
            || (self.dialect.family() == crate::Family::OpenAi
                && target.family() == crate::Family::OpenAi
                && OPENAI_SHARED_KEYS.contains(&self.key.as_str()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    System,
    Developer,
    User,
    Assistant,
    /// Tool results. Anthropic carries them in user turns; its decoder splits them out and its
    /// encoder merges them back, so the other dialects see one place for them.
    Tool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: Vec<Part>,
}

impl Message {
    pub fn new(role: Role, content: Vec<Part>) -> Self {
        Message { role, content }
    }

    pub fn text(role: Role, text: impl Into<String>) -> Self {
        Message {
            role,
            content: vec![Part::text(text)],
        }
    }
}

/// Prompt-cache breakpoint (Anthropic `cache_control`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheControl {
    /// `5m` or `1h`; `None` is the provider default (5m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
}

/// Where media bytes are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MediaSource {
    /// Bare base64 (no `data:` prefix) and its MIME type.
    Base64 {
        media_type: String,
        data: String,
    },
    Url {
        url: String,
    },
    FileId {
        file_id: String,
    },
    /// Plain text given as a document.
    Text {
        media_type: String,
        text: String,
    },
}

impl MediaSource {
    /// Parses a `data:<mime>;base64,<data>` URL, or keeps any other URL as a URL.
    pub fn from_url(url: &str) -> MediaSource {
        if let Some(rest) = url.strip_prefix("data:")
            && let Some((meta, data)) = rest.split_once(',')
            && let Some(media_type) = meta.strip_suffix(";base64")
        {
            return MediaSource::Base64 {
                media_type: media_type.to_owned(),
                data: data.to_owned(),
            };
        }
        MediaSource::Url {
            url: url.to_owned(),
        }
    }

    /// The URL form OpenAI dialects want (`data:` URL for inline bytes).
    pub fn to_url(&self) -> Option<String> {
        match self {
            MediaSource::Base64 { media_type, data } => {
                Some(format!("data:{media_type};base64,{data}"))
            }
            MediaSource::Url { url } => Some(url.clone()),
            MediaSource::FileId { .. } | MediaSource::Text { .. } => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolKind {
    /// JSON arguments against a schema.
    #[default]
    Function,
    /// Freeform text input (OpenAI custom tools).
    Custom,
}

/// One piece of message content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Part {
    Text {
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cache_control: Option<CacheControl>,
        /// Citations or annotations, in the arriving dialect's shape (tagged by `dialect`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        citations: Option<(Dialect, Value)>,
    },
    Image {
        source: MediaSource,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cache_control: Option<CacheControl>,
    },
    Document {
        source: MediaSource,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        filename: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cache_control: Option<CacheControl>,
    },
    Audio {
        data: String,
        format: String,
    },
    ToolCall {
        id: String,
        name: String,
        /// The arguments as JSON text (function tools) or the raw input (custom tools). An
        /// Anthropic `input` object is serialized compactly; an empty string means `{}`.
        arguments: String,
        #[serde(default)]
        kind: ToolKind,
    },
    ToolResult {
        call_id: String,
        content: Vec<Part>,
        #[serde(default)]
        is_error: bool,
        #[serde(default)]
        kind: ToolKind,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cache_control: Option<CacheControl>,
    },
    /// Reasoning text (Anthropic thinking, Responses summary or reasoning text, Chat
    /// `reasoning_content`) with the provider's opaque state, if any.
    Reasoning {
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seal: Option<ReasoningSeal>,
    },
    Refusal {
        text: String,
    },
    /// Content of a type the canonical model does not know (server-tool blocks, built-in tool
    /// items), kept whole so that same-dialect encoding loses nothing.
    Opaque {
        dialect: Dialect,
        value: Value,
    },
}

impl Part {
    pub fn text(text: impl Into<String>) -> Part {
        Part::Text {
            text: text.into(),
            cache_control: None,
            citations: None,
        }
    }

    pub fn as_text(&self) -> Option<&str> {
        match self {
            Part::Text { text, .. } => Some(text),
            _ => None,
        }
    }
}

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Tool {
    Function {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
        /// JSON Schema of the arguments; `{"type":"object","properties":{}}` when none given.
        parameters: Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        strict: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cache_control: Option<CacheControl>,
    },
    /// A freeform tool whose input is one string, optionally constrained by a grammar.
    Custom {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        format: Option<Value>,
    },
    /// A provider-executed or typed tool (Anthropic server tools, Responses built-ins).
    Opaque { dialect: Dialect, value: Value },
}

impl Tool {
    pub fn name(&self) -> Option<&str> {
        match self {
            Tool::Function { name, .. } | Tool::Custom { name, .. } => Some(name),
            Tool::Opaque { value, .. } => value.get("name").and_then(Value::as_str),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToolChoice {
    Auto,
    None,
    /// Must call some tool (Anthropic `any`, OpenAI `required`).
    Required,
    /// Must call this tool.
    Tool {
        name: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    Text,
    JsonObject,
    JsonSchema {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        schema: Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        strict: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Effort {
    None,
    Minimal,
    Low,
    Medium,
    High,
    Xhigh,
    Max,
}

impl Effort {
    pub fn as_str(self) -> &'static str {
        match self {
            Effort::None => "none",
            Effort::Minimal => "minimal",
            Effort::Low => "low",
            Effort::Medium => "medium",
            Effort::High => "high",
            Effort::Xhigh => "xhigh",
            Effort::Max => "max",
        }
    }

    pub fn parse(s: &str) -> Option<Effort> {
        Some(match s {
            "none" => Effort::None,
            "minimal" => Effort::Minimal,
            "low" => Effort::Low,
            "medium" => Effort::Medium,
            "high" => Effort::High,
            "xhigh" => Effort::Xhigh,
            "max" => Effort::Max,
            _ => return None,
        })
    }

    /// A thinking budget for this effort. There is no official table; these are the midpoints
    /// of the buckets the protocol reference recommends.
    pub fn budget_tokens(self) -> Option<u64> {
        match self {
            Effort::None => None,
            Effort::Minimal => Some(1024),
            Effort::Low => Some(2048),
            Effort::Medium => Some(8192),
            Effort::High => Some(24576),
            Effort::Xhigh => Some(32768),
            Effort::Max => Some(65536),
        }
    }

    /// The nearest effort for a thinking budget.
    pub fn from_budget(budget: u64) -> Effort {
        match budget {
            0 => Effort::None,
            1..=1535 => Effort::Minimal,
            1536..=4095 => Effort::Low,
            4096..=16383 => Effort::Medium,
            16384..=28671 => Effort::High,
            28672..=49151 => Effort::Xhigh,
            _ => Effort::Max,
        }
    }
}

/// Reasoning switches. Anthropic speaks budgets and modes, OpenAI speaks efforts; both are kept
/// when given so same-dialect encoding is exact, and derived from each other otherwise.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReasoningConfig {
    /// `Some(false)`: explicitly off. `Some(true)`: on. `None`: provider default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Anthropic adaptive thinking: the model picks the amount.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub adaptive: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effort: Option<Effort>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_tokens: Option<u64>,
    /// Responses `reasoning.summary` (`auto`, `concise`, `detailed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// Anthropic `thinking.display` (`summarized`, `omitted`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
}
