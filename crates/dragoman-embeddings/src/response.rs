//! Upstream embedding answers read into vectors in input order, and the OpenAI answer written
//! from them: the half of the translation that must keep float precision and usage honest.

use std::fmt::{self, Write as _};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use dragoman_model::{Count, DecodeError, read_usage_member};
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value, json};

use crate::encode::Wire;
use crate::request::{EmbedRequest, Encoding, Input};

/// One upstream answer, in the order of `encode_request`'s bodies.
#[derive(Clone, Copy, Debug)]
pub struct Part<'a> {
    pub body: &'a [u8],
    /// Bedrock's `x-amzn-bedrock-input-token-count` header, the only count Cohere gives.
    pub header_tokens: Option<u64>,
}

/// The vectors of one client call, in input order.
#[derive(Clone, PartialEq, Debug, Default)]
pub struct EmbedResponse {
    pub vectors: Vec<Vec<f32>>,
    /// The model the upstream reported; empty when it reports none.
    pub model: String,
    /// `None` when the provider reports no count (or not for every part).
    pub input_tokens: Option<u64>,
}

/// Reads the upstream answers (in the order of `encode_request`'s bodies) into vectors in
/// input order.
pub fn decode_response(wire: Wire, parts: &[Part<'_>]) -> Result<EmbedResponse, DecodeError> {
    if parts.is_empty() {
        return Err(DecodeError::new("", "no upstream answer to read"));
    }
    let mut out = EmbedResponse::default();
    // A total only when every part has one: a partial sum would under-bill.
    let mut tokens = Some(0u64);
    for (i, part) in parts.iter().enumerate() {
        let path = if parts.len() == 1 {
            String::new()
        } else {
            format!("part[{i}]")
        };
        let (vectors, model, count) = decode_part(wire, part, &path)?;
        if vectors.is_empty() {
            return Err(DecodeError::new(
                path,
                "the upstream answer holds no embedding",
            ));
        }
        out.vectors.extend(vectors);
        if out.model.is_empty() {
            out.model = model;
        }
        tokens = tokens.zip(count).map(|(a, b)| a.saturating_add(b));
    }
    out.input_tokens = tokens;
    Ok(out)
}

type Decoded = (Vec<Vec<f32>>, String, Option<u64>);

fn decode_part(wire: Wire, part: &Part<'_>, path: &str) -> Result<Decoded, DecodeError> {
    let err = |e: serde_json::Error| DecodeError::json(path, &e);
    match wire {
        Wire::OpenAi => {
            let r = decode_openai_response(part.body)
                .map_err(|e| DecodeError::new(join(path, &e.path), e.message))?;
            Ok((r.vectors, r.model, r.input_tokens.or(part.header_tokens)))
        }
        Wire::Gemini => {
            #[derive(Deserialize)]
            struct Body {
                embeddings: Vec<Values>,
            }
            #[derive(Deserialize)]
            struct Values {
                values: Vec<f32>,
            }
            let b: Body = serde_json::from_slice(part.body).map_err(err)?;
            let vectors = b.embeddings.into_iter().map(|e| e.values).collect();
            Ok((vectors, String::new(), part.header_tokens))
        }
        Wire::Vertex => {
            #[derive(Deserialize)]
            struct Body {
                predictions: Vec<Prediction>,
            }
            #[derive(Deserialize)]
            struct Prediction {
                embeddings: Embeddings,
            }
            #[derive(Deserialize)]
            struct Embeddings {
                values: Vec<f32>,
                #[serde(default)]
                statistics: Option<Statistics>,
            }
            #[derive(Deserialize)]
            struct Statistics {
                #[serde(default)]
                token_count: Option<f64>,
            }
            let b: Body = serde_json::from_slice(part.body).map_err(err)?;
            let mut tokens = Some(0u64);
            let mut vectors = Vec::with_capacity(b.predictions.len());
            for p in b.predictions {
                // Vertex's statistics are a free-form Struct: the count may arrive as 4.0.
                let n = p
                    .embeddings
                    .statistics
                    .and_then(|s| s.token_count)
                    .filter(|n| *n >= 0.0 && n.fract() == 0.0 && *n < 1e18)
                    .map(|n| n as u64);
                tokens = tokens.zip(n).map(|(a, b)| a.saturating_add(b));
                vectors.push(p.embeddings.values);
            }
            Ok((vectors, String::new(), tokens.or(part.header_tokens)))
        }
        Wire::Titan => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct Body {
                #[serde(default)]
                embedding: Option<Vec<f32>>,
                #[serde(default)]
                embeddings_by_type: Option<ByType>,
                #[serde(default)]
                input_text_token_count: Count,
            }
            #[derive(Deserialize)]
            struct ByType {
                #[serde(default)]
                float: Option<Vec<f32>>,
            }
            let b: Body = serde_json::from_slice(part.body).map_err(err)?;
            let vector = b
                .embedding
                .or_else(|| b.embeddings_by_type.and_then(|t| t.float))
                .ok_or_else(|| DecodeError::missing(join(path, "embedding")))?;
            let tokens = b.input_text_token_count.0.or(part.header_tokens);
            Ok((vec![vector], String::new(), tokens))
        }
        Wire::Cohere => {
            #[derive(Deserialize)]
            struct Body {
                embeddings: CohereVectors,
            }
            let b: Body = serde_json::from_slice(part.body).map_err(err)?;
            Ok((b.embeddings.0, String::new(), part.header_tokens))
        }
    }
}

fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_owned(),
        (_, true) => a.to_owned(),
        _ => format!("{a}.{b}"),
    }
}

/// Cohere's `embeddings`: a list of vectors (`embeddings_floats`, v3 without
/// `embedding_types`) or an object keyed by type (`embeddings_by_type`, always on v4), of
/// which only `float` is a vector OpenAI clients can take.
struct CohereVectors(Vec<Vec<f32>>);

impl<'de> Deserialize<'de> for CohereVectors {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CohereVectors;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of float vectors or an object with a `float` list")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<CohereVectors, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(v) = seq.next_element::<Vec<f32>>()? {
                    out.push(v);
                }
                Ok(CohereVectors(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<CohereVectors, A::Error> {
                let mut float = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key == "float" {
                        float = Some(map.next_value::<Vec<Vec<f32>>>()?);
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                float.map(CohereVectors).ok_or_else(|| {
                    de::Error::custom("embeddings has no `float` vectors (only quantised types)")
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// An OpenAI `embedding`: floats, or a base64 string of little-endian f32 bytes.
struct Vector(Vec<f32>);

impl<'de> Deserialize<'de> for Vector {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Vector;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array of numbers or a base64 string")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vector, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(x) = seq.next_element::<f32>()? {
                    out.push(x);
                }
                Ok(Vector(out))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Vector, E> {
                decode_base64(s).map(Vector).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

fn decode_base64(s: &str) -> Result<Vec<f32>, String> {
    let bytes = STANDARD
        .decode(s)
        .map_err(|e| format!("invalid base64 embedding: {e}"))?;
    if bytes.len() % 4 != 0 {
        return Err(format!(
            "base64 embedding holds {} bytes, not a whole number of f32 values",
            bytes.len()
        ));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

fn encode_base64(v: &[f32]) -> String {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    STANDARD.encode(bytes)
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct OpenAiUsage {
    prompt_tokens: Count,
    total_tokens: Count,
}

impl OpenAiUsage {
    fn tokens(&self) -> Option<u64> {
        self.prompt_tokens.0.or(self.total_tokens.0)
    }
}

/// For an OpenAI-family upstream asked in the client's own encoding: the usage of the raw body
/// without building vectors (the passthrough tap). `prompt_tokens`, else `total_tokens`.
pub fn openai_usage(body: &[u8]) -> Option<u64> {
    read_usage_member::<OpenAiUsage>(body)
        .flatten()
        .and_then(|u| u.tokens())
}

/// For an OpenAI-family upstream that answered floats when the client asked base64 (some
/// compatible servers ignore `encoding_format`): the vectors, to re-encode. Accepts float
/// arrays and base64 strings, and orders `data` by `index`.
pub fn decode_openai_response(body: &[u8]) -> Result<EmbedResponse, DecodeError> {
    #[derive(Deserialize)]
    struct Body {
        data: Vec<Item>,
        #[serde(default)]
        model: Option<String>,
        #[serde(default)]
        usage: Option<OpenAiUsage>,
    }
    #[derive(Deserialize)]
    struct Item {
        #[serde(default)]
        index: Option<usize>,
        embedding: Vector,
    }
    let b: Body = serde_json::from_slice(body).map_err(|e| DecodeError::json("", &e))?;
    let n = b.data.len();
    let mut slots: Vec<Option<Vec<f32>>> = vec![None; n];
    for (pos, item) in b.data.into_iter().enumerate() {
        let i = item.index.unwrap_or(pos);
        match slots.get_mut(i) {
            Some(slot @ None) => *slot = Some(item.embedding.0),
            Some(Some(_)) => {
                return Err(DecodeError::new(
                    format!("data[{pos}].index"),
                    format!("index {i} appears twice"),
                ));
            }
            None => {
                return Err(DecodeError::new(
                    format!("data[{pos}].index"),
                    format!("index {i} is outside the {n} items"),
                ));
            }
        }
    }
    // Every slot is filled: n items went into n distinct slots.
    let vectors = slots.into_iter().flatten().collect();
    Ok(EmbedResponse {
        vectors,
        model: b.model.unwrap_or_default(),
        input_tokens: b.usage.and_then(|u| u.tokens()),
    })
}

/// The OpenAI answer: `{"object":"list","data":[{"object":"embedding","index":i,"embedding":
/// [floats] | "<base64 of little-endian f32>"}],"model":…,"usage":{"prompt_tokens":n,
/// "total_tokens":n}}`. `model` is `client_model`. A missing count is written as 0: the gateway
/// fills `input_tokens` from [`estimate_tokens`] first where the provider gives none.
pub fn encode_response(resp: &EmbedResponse, encoding: Encoding, client_model: &str) -> Value {
    let mut buf = String::new();
    let data = resp
        .vectors
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let embedding = match encoding {
                Encoding::Float => {
                    Value::Array(v.iter().map(|x| float_value(*x, &mut buf)).collect())
                }
                Encoding::Base64 => Value::String(encode_base64(v)),
            };
            let mut item = Map::new();
            item.insert("object".into(), "embedding".into());
            item.insert("index".into(), i.into());
            item.insert("embedding".into(), embedding);
            Value::Object(item)
        })
        .collect::<Vec<_>>();
    let n = resp.input_tokens.unwrap_or(0);
    json!({
        "object": "list",
        "data": data,
        "model": client_model,
        "usage": { "prompt_tokens": n, "total_tokens": n },
    })
}

/// An f32 as the JSON number with the shortest decimal that reads back to the same f32.
/// `Value` holds f64, and `f64::from(0.1f32)` prints as `0.10000000149011612`: so the f32's own
/// shortest decimal is read as f64 instead, kept only when it narrows back to the same f32
/// (else the exact widening, which always does). Non-finite values, which JSON cannot hold,
/// become null.
fn float_value(x: f32, buf: &mut String) -> Value {
    buf.clear();
    let _ = write!(buf, "{x}");
    let wide = match buf.parse::<f64>() {
        Ok(d) if d as f32 == x => d,
        _ => f64::from(x),
    };
    Number::from_f64(wide).map_or(Value::Null, Value::Number)
}

/// A documented estimate for providers that report no count (the Gemini API): per input,
/// characters / 4 rounded up (at least 1) for text, the id count for tokens; summed. The
/// gateway marks a usage record built from it as estimated.
pub fn estimate_tokens(req: &EmbedRequest) -> u64 {
    req.inputs
        .iter()
        .map(|input| match input {
            Input::Text(s) => (s.chars().count() as u64).div_ceil(4).max(1),
            Input::Tokens(ids) => ids.len() as u64,
        })
        .sum()
}
