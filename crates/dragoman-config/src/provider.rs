//! The provider catalogue: who we call (OpenAI, Anthropic, Azure, Google's Gemini API,
//! OpenAI-compatible servers), with
//! their default base URL and native dialect. A provider is not a dialect: Azure and vLLM speak
//! OpenAI's dialects.

use dragoman_model::Dialect;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    OpenAi,
    Anthropic,
    Azure,
    /// The Gemini API (AI Studio keys), LiteLLM's `gemini/` prefix.
    Gemini,
    /// Vertex AI (`vertex_ai/`): Gemini models in the Gemini dialect, Claude models in
    /// Anthropic's, both behind Google OAuth.
    Vertex,
    /// Amazon Bedrock (`bedrock/`): Claude through InvokeModel in Anthropic's dialect, other
    /// models through Converse, embeddings through InvokeModel; SigV4 or a Bedrock API key.
    Bedrock,
    /// Any server speaking the OpenAI dialects (vLLM, Ollama, LM Studio, Groq, DeepSeek, xAI,
    /// OpenRouter, …), named by its LiteLLM prefix.
    OpenAiCompatible(&'static str),
}

/// LiteLLM provider prefixes served as OpenAI-compatible, with their default base URL where the
/// service has a well-known one.
const COMPATIBLE: &[(&str, Option<&str>)] = &[
    ("hosted_vllm", None),
    ("vllm", None),
    ("openai_compatible", None),
    ("custom_openai", None),
    ("ollama_chat", Some("http://localhost:11434/v1")),
    ("ollama", Some("http://localhost:11434/v1")),
    ("lm_studio", Some("http://localhost:1234/v1")),
    ("groq", Some("https://api.groq.com/openai/v1")),
    ("deepseek", Some("https://api.deepseek.com/v1")),
    ("xai", Some("https://api.x.ai/v1")),
    ("openrouter", Some("https://openrouter.ai/api/v1")),
    ("moonshot", Some("https://api.moonshot.ai/v1")),
    (
        "dashscope",
        Some("https://dashscope-intl.aliyuncs.com/compatible-mode/v1"),
    ),
    ("mistral", Some("https://api.mistral.ai/v1")),
    ("together_ai", Some("https://api.together.xyz/v1")),
    (
        "fireworks_ai",
        Some("https://api.fireworks.ai/inference/v1"),
    ),
    ("deepinfra", Some("https://api.deepinfra.com/v1/openai")),
    ("perplexity", Some("https://api.perplexity.ai")),
    ("cerebras", Some("https://api.cerebras.ai/v1")),
];

impl Provider {
    /// Splits LiteLLM's `provider/model`. A bare model name is inferred as LiteLLM does for the
    /// well-known families.
    pub fn split(model: &str) -> Result<(Provider, String), String> {
        if let Some((prefix, rest)) = model.split_once('/') {
            let provider = match prefix {
                "openai" | "text-completion-openai" => Some(Provider::OpenAi),
                "anthropic" => Some(Provider::Anthropic),
                "azure" => Some(Provider::Azure),
                "gemini" => Some(Provider::Gemini),
                "vertex_ai" | "vertex_ai_beta" => Some(Provider::Vertex),
                "bedrock" => Some(Provider::Bedrock),
                p => COMPATIBLE
                    .iter()
                    .find(|(n, _)| *n == p)
                    .map(|(n, _)| Provider::OpenAiCompatible(n)),
            };
            return match provider {
                Some(p) if !rest.is_empty() => Ok((p, rest.to_owned())),
                Some(_) => Err("the model name after the provider is empty".into()),
                None => Err(format!(
                    "provider `{prefix}` is not supported yet (supported: openai, anthropic, azure, gemini, vertex_ai, bedrock, and OpenAI-compatible: {})",
                    COMPATIBLE
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            };
        }
        let lower = model.to_ascii_lowercase();
        if lower.starts_with("claude") {
            Ok((Provider::Anthropic, model.to_owned()))
        } else if [
            "gpt-",
            "o1",
            "o3",
            "o4",
            "chatgpt",
            "codex",
            "text-embedding",
        ]
        .iter()
        .any(|p| lower.starts_with(p))
        {
            Ok((Provider::OpenAi, model.to_owned()))
        } else {
            Err(format!(
                "cannot tell the provider of `{model}`: write it as provider/model, e.g. openai/{model}"
            ))
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Provider::OpenAi => "openai",
            Provider::Anthropic => "anthropic",
            Provider::Azure => "azure",
            Provider::Gemini => "gemini",
            Provider::Vertex => "vertex_ai",
            Provider::Bedrock => "bedrock",
            Provider::OpenAiCompatible(n) => n,
        }
    }

    pub fn native_dialect(self) -> Dialect {
        match self {
            Provider::Anthropic => Dialect::Anthropic,
            Provider::Gemini | Provider::Vertex => Dialect::Gemini,
            Provider::Bedrock => Dialect::Bedrock,
            _ => Dialect::Chat,
        }
    }

    /// The assistant-message field in which the provider's reasoning models want their own
    /// reasoning replayed on later turns (see `Deployment::reasoning_field`).
    pub fn reasoning_field(self) -> Option<&'static str> {
        match self {
            Provider::OpenAiCompatible("deepseek" | "moonshot" | "dashscope") => {
                Some("reasoning_content")
            }
            Provider::OpenAiCompatible("openrouter") => Some("reasoning"),
            _ => None,
        }
    }

    pub fn default_base(self) -> Option<&'static str> {
        match self {
            Provider::OpenAi => Some("https://api.openai.com/v1"),
            Provider::Anthropic => Some("https://api.anthropic.com"),
            Provider::Azure => None,
            Provider::Gemini => Some("https://generativelanguage.googleapis.com"),
            // Per location: see `Deployment::google`.
            Provider::Vertex => None,
            // Per region: see `Deployment::aws`.
            Provider::Bedrock => None,
            Provider::OpenAiCompatible(n) => COMPATIBLE
                .iter()
                .find(|(p, _)| *p == n)
                .and_then(|(_, b)| *b),
        }
    }
}
