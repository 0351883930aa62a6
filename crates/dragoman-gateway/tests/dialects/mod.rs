//! How a client of each dialect asks and reads: the request body and path it sends, and the
//! text and usage it reads back. Shared by the integration tests that drive every dialect.
#![allow(clippy::unwrap_used, dead_code)]

use dragoman_model::Dialect;
use serde_json::{Value, json};

/// The path a client of dialect `d` posts `body` to, and the body it sends: Gemini takes the
/// model and the stream flag out of the body (where [`body`] keeps them for every dialect)
/// and into the path.
pub fn path_and_body(d: Dialect, body: &Value) -> (String, Value) {
    match d {
        Dialect::Anthropic => ("/v1/messages".into(), body.clone()),
        Dialect::Chat => ("/v1/chat/completions".into(), body.clone()),
        Dialect::Responses => ("/v1/responses".into(), body.clone()),
        Dialect::Gemini => {
            let mut b = body.clone();
            let o = b.as_object_mut().unwrap();
            let model = o
                .remove("model")
                .and_then(|m| m.as_str().map(str::to_owned));
            let stream = o.remove("stream").and_then(|s| s.as_bool()) == Some(true);
            let action = if stream {
                "streamGenerateContent?alt=sse"
            } else {
                "generateContent"
            };
            (
                format!("/v1beta/models/{}:{action}", model.unwrap_or_default()),
                b,
            )
        }
        Dialect::Bedrock => panic!("no client speaks Bedrock"),
    }
}

pub fn body(client: Dialect, model: &str, stream: bool) -> Value {
    match client {
        Dialect::Anthropic => json!({"model": model, "max_tokens": 256, "stream": stream,
            "messages": [{"role": "user", "content": "Say hello"}]}),
        Dialect::Chat => {
            json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "Say hello"}]})
        }
        Dialect::Responses => json!({"model": model, "stream": stream, "input": "Say hello"}),
        Dialect::Gemini => json!({"model": model, "stream": stream,
            "contents": [{"role": "user", "parts": [{"text": "Say hello"}]}]}),
        Dialect::Bedrock => panic!("no client speaks Bedrock"),
    }
}

pub fn data(e: &dragoman_sse::Event) -> Value {
    serde_json::from_str(&e.data).unwrap_or(Value::Null)
}

/// The (uncached input, cache read, output) a client reads from a whole response.
pub fn usage_of(client: Dialect, v: &Value) -> (u64, u64, u64) {
    let n = |x: &Value| x.as_u64().unwrap_or(u64::MAX);
    match client {
        Dialect::Anthropic => (
            n(&v["usage"]["input_tokens"]),
            n(&v["usage"]["cache_read_input_tokens"]),
            n(&v["usage"]["output_tokens"]),
        ),
        Dialect::Chat => {
            let u = &v["usage"];
            (
                n(&u["prompt_tokens"]) - n(&u["prompt_tokens_details"]["cached_tokens"]),
                n(&u["prompt_tokens_details"]["cached_tokens"]),
                n(&u["completion_tokens"]),
            )
        }
        Dialect::Responses => {
            let u = &v["usage"];
            (
                n(&u["input_tokens"]) - n(&u["input_tokens_details"]["cached_tokens"]),
                n(&u["input_tokens_details"]["cached_tokens"]),
                n(&u["output_tokens"]),
            )
        }
        Dialect::Gemini => {
            let u = &v["usageMetadata"];
            let cached = u["cachedContentTokenCount"].as_u64().unwrap_or(0);
            (
                n(&u["promptTokenCount"]) - cached,
                cached,
                n(&u["candidatesTokenCount"]) + u["thoughtsTokenCount"].as_u64().unwrap_or(0),
            )
        }
        Dialect::Bedrock => panic!("no client speaks Bedrock"),
    }
}

pub fn text_of(client: Dialect, v: &Value) -> String {
    match client {
        Dialect::Anthropic => v["content"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|b| b["text"].as_str())
            .collect(),
        Dialect::Chat => v["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        Dialect::Responses => v["output"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["type"] == "message")
            .flat_map(|i| i["content"].as_array().unwrap().iter())
            .filter_map(|c| c["text"].as_str())
            .collect(),
        Dialect::Gemini => v["candidates"][0]["content"]["parts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["thought"] != true)
            .filter_map(|p| p["text"].as_str())
            .collect(),
        Dialect::Bedrock => panic!("no client speaks Bedrock"),
    }
}

/// The final usage a client reads from a stream, and the input it saw at the start.
pub fn stream_usage(
    client: Dialect,
    events: &[dragoman_sse::Event],
) -> ((u64, u64, u64), Option<u64>) {
    match client {
        Dialect::Anthropic => {
            let start = events
                .iter()
                .map(data)
                .find(|d| d["type"] == "message_start")
                .unwrap();
            let delta = events
                .iter()
                .map(data)
                .rfind(|d| d["type"] == "message_delta")
                .unwrap();
            (
                usage_of(client, &delta),
                start["message"]["usage"]["input_tokens"].as_u64(),
            )
        }
        Dialect::Chat => {
            let u = events
                .iter()
                .map(data)
                .find(|d| d["usage"].is_object())
                .unwrap();
            (usage_of(client, &u), None)
        }
        Dialect::Responses => {
            let done = events
                .iter()
                .map(data)
                .find(|d| d["type"] == "response.completed")
                .unwrap();
            (usage_of(client, &done["response"]), None)
        }
        Dialect::Gemini => {
            let last = events
                .iter()
                .map(data)
                .rfind(|d| d["usageMetadata"].is_object())
                .unwrap();
            (usage_of(client, &last), None)
        }
        Dialect::Bedrock => panic!("no client speaks Bedrock"),
    }
}
