//! Local token counts with OpenAI's tokenizers: the prompt estimate an Anthropic client sees in
//! `message_start` when the upstream reports usage only at the end, and `count_tokens` for
//! OpenAI-dialect deployments.

use dragoman_model::{Part, Request, Tool};
use serde_json::Value;

/// The tokenizer an OpenAI model uses, by name: cl100k for GPT-4/3.5, o200k for everything
/// newer (and as the nearest guess for other servers' models).
pub fn tokenizer_for(model: &str) -> (&'static bpe_openai::Tokenizer, &'static str) {
    let m = model.to_ascii_lowercase();
    let legacy = (m.starts_with("gpt-4") && !m.starts_with("gpt-4o") && !m.starts_with("gpt-4."))
        || m.starts_with("gpt-3.5");
    if legacy {
        (bpe_openai::cl100k_base(), "cl100k_base")
    } else {
        (bpe_openai::o200k_base(), "o200k_base")
    }
}

/// Tokens of every string leaf of a translated request body except the model name and inline
/// media, plus a few tokens of framing per message, as OpenAI's own counting guidance does.
pub fn count_body(body: &Value, model: &str) -> u64 {
    let (tok, _) = tokenizer_for(model);
    let mut total = 0u64;
    fn walk(v: &Value, key: &str, tok: &bpe_openai::Tokenizer, total: &mut u64) {
        match v {
            Value::String(s) => {
                if key == "model"
                    || key == "data"
                    || key == "image_url"
                    || key == "file_data"
                    || key == "url"
                    || s.starts_with("data:")
                {
                    return;
                }
                *total += tok.count(s) as u64;
            }
            Value::Array(a) => {
                for x in a {
                    *total += 3;
                    walk(x, key, tok, total);
                }
            }
            Value::Object(m) => {
                for (k, x) in m {
                    walk(x, k, tok, total);
                }
            }
            _ => {}
        }
    }
    walk(body, "", tok, &mut total);
    total + 3
}

/// A quick prompt estimate from the canonical request (never zero for a non-empty prompt): about
/// four bytes a token over the text, tool calls and tool schemas, and a flat 85 tokens per
/// image or file. The exact figure arrives at the end of the stream; this one only has to be
/// close and cheap, since it runs before the first byte of every translated stream (running
/// the real tokenizer here cost more CPU than the whole translation and ~80 MiB of tables).
pub fn estimate_prompt(req: &Request) -> u64 {
    fn part(p: &Part) -> u64 {
        match p {
            Part::Text { text, .. } | Part::Reasoning { text, .. } | Part::Refusal { text } => {
                text.len() as u64 / 4
            }
            Part::ToolCall {
                name, arguments, ..
            } => (name.len() + arguments.len()) as u64 / 4,
            Part::ToolResult { content, .. } => content.iter().map(part).sum(),
            Part::Image { .. } | Part::Document { .. } | Part::Audio { .. } => 85,
            Part::Opaque { value, .. } => value.to_string().len() as u64 / 8,
        }
    }
    let mut total = 3u64;
    for p in &req.system {
        total += part(p);
    }
    for m in &req.messages {
        total += 4 + m.content.iter().map(part).sum::<u64>();
    }
    for t in &req.tools {
        total += match t {
            Tool::Function {
                name,
                description,
                parameters,
                ..
            } => {
                (name.len()
                    + description.as_deref().map_or(0, str::len)
                    + parameters.to_string().len()) as u64
                    / 4
            }
            Tool::Custom {
                name, description, ..
            } => (name.len() + description.as_deref().map_or(0, str::len)) as u64 / 4,
            Tool::Opaque { value, .. } => value.to_string().len() as u64 / 4,
        };
    }
    total.max(1)
}
