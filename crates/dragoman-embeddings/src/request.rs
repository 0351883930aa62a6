//! The client's `/v1/embeddings` body, read and checked once so that every wire encoder can
//! trust it.

use dragoman_model::DecodeError;
use serde_json::{Map, Value};

/// OpenAI's `encoding_format`: the form the client wants each vector in.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum Encoding {
    #[default]
    Float,
    /// Little-endian f32 bytes, standard base64 with padding. The OpenAI SDK sends this by
    /// default and decodes locally.
    Base64,
}

impl Encoding {
    /// The wire name, as OpenAI spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Float => "float",
            Encoding::Base64 => "base64",
        }
    }
}

/// One item of `input`: text, or pre-tokenized ids (tiktoken, for OpenAI models).
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Input {
    Text(String),
    Tokens(Vec<u32>),
}

/// A decoded, validated client request.
#[derive(Clone, PartialEq, Debug)]
pub struct EmbedRequest {
    pub model: String,
    pub inputs: Vec<Input>,
    /// `input` was one item (a string or one token array), not an array of items: OpenAI-family
    /// upstreams get it back in the same shape.
    pub single: bool,
    pub encoding: Encoding,
    pub dimensions: Option<u32>,
    pub user: Option<String>,
    /// LiteLLM's `input_type` / `task_type` hint, passed where the provider has one.
    pub task: Option<String>,
    /// Other fields, for passthrough to OpenAI-family upstreams.
    pub extra: Map<String, Value>,
}

/// OpenAI's cap on the items of one `input` array.
const MAX_INPUTS: usize = 2048;

/// Reads and validates a client body (see the crate doc for the rules).
pub fn decode_request(body: &[u8]) -> Result<EmbedRequest, DecodeError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| DecodeError::json("", &e))?;
    let Value::Object(mut obj) = v else {
        return Err(DecodeError::wrong_type("", "a JSON object"));
    };
    let model = match obj.remove("model") {
        Some(Value::String(s)) if !s.is_empty() => s,
        Some(Value::String(_)) => return Err(DecodeError::new("model", "must not be empty")),
        None | Some(Value::Null) => return Err(DecodeError::missing("model")),
        Some(_) => return Err(DecodeError::wrong_type("model", "a string")),
    };
    let (inputs, single) = match obj.remove("input") {
        None | Some(Value::Null) => return Err(DecodeError::missing("input")),
        Some(v) => decode_input(&v)?,
    };
    let encoding = match obj.remove("encoding_format") {
        None | Some(Value::Null) => Encoding::Float,
        Some(Value::String(s)) => match s.as_str() {
            "float" => Encoding::Float,
            "base64" => Encoding::Base64,
            _ => {
                return Err(DecodeError::new(
                    "encoding_format",
                    format!("must be \"float\" or \"base64\", not {s:?}"),
                ));
            }
        },
        Some(_) => {
            return Err(DecodeError::wrong_type(
                "encoding_format",
                "\"float\" or \"base64\"",
            ));
        }
    };
    let dimensions = match obj.remove("dimensions") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => match n.as_u64() {
            Some(d @ 1..) => Some(
                u32::try_from(d)
                    .map_err(|_| DecodeError::new("dimensions", format!("{d} is too large")))?,
            ),
            _ => {
                return Err(DecodeError::new(
                    "dimensions",
                    format!("must be an integer of at least 1, not {n}"),
                ));
            }
        },
        Some(_) => return Err(DecodeError::wrong_type("dimensions", "an integer")),
    };
    let user = opt_string(&mut obj, "user")?;
    let input_type = opt_string(&mut obj, "input_type")?;
    let task_type = opt_string(&mut obj, "task_type")?;
    Ok(EmbedRequest {
        model,
        inputs,
        single,
        encoding,
        dimensions,
        user,
        task: input_type.or(task_type),
        extra: obj,
    })
}

fn opt_string(obj: &mut Map<String, Value>, key: &str) -> Result<Option<String>, DecodeError> {
    match obj.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(DecodeError::wrong_type(key, "a string")),
    }
}

/// `input` in any of its four shapes; the flag says it was one item.
fn decode_input(v: &Value) -> Result<(Vec<Input>, bool), DecodeError> {
    match v {
        Value::String(s) if s.is_empty() => {
            Err(DecodeError::new("input", "must not be an empty string"))
        }
        Value::String(s) => Ok((vec![Input::Text(s.clone())], true)),
        Value::Array(items) if items.is_empty() => {
            Err(DecodeError::new("input", "must not be an empty array"))
        }
        Value::Array(items) if items.len() > MAX_INPUTS => Err(DecodeError::new(
            "input",
            format!(
                "has {} items; at most {MAX_INPUTS} are allowed",
                items.len()
            ),
        )),
        // One token array: a single pre-tokenized input. Its first item decides the shape.
        Value::Array(items) if items.first().is_some_and(Value::is_number) => {
            Ok((vec![Input::Tokens(tokens("input", items)?)], true))
        }
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let path = format!("input[{i}]");
                match item {
                    Value::String(s) if s.is_empty() => {
                        return Err(DecodeError::new(path, "must not be an empty string"));
                    }
                    Value::String(s) => out.push(Input::Text(s.clone())),
                    Value::Array(ids) if ids.is_empty() => {
                        return Err(DecodeError::new(path, "must not be an empty token array"));
                    }
                    Value::Array(ids) => out.push(Input::Tokens(tokens(&path, ids)?)),
                    _ => {
                        return Err(DecodeError::wrong_type(
                            path,
                            "a string or an array of token ids",
                        ));
                    }
                }
            }
            Ok((out, false))
        }
        _ => Err(DecodeError::wrong_type(
            "input",
            "a string, an array of strings, or token ids",
        )),
    }
}

fn tokens(path: &str, ids: &[Value]) -> Result<Vec<u32>, DecodeError> {
    ids.iter()
        .enumerate()
        .map(|(i, id)| {
            id.as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| {
                    DecodeError::new(
                        format!("{path}[{i}]"),
                        "expected a token id (an integer from 0 to 4294967295)",
                    )
                })
        })
        .collect()
}
