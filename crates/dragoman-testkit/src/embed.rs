//! The mock's embedding endpoints: OpenAI's `/v1/embeddings`, Gemini's `batchEmbedContents`,
//! Vertex's `predict`, and Bedrock's Titan and Cohere models. Every provider answers the same
//! deterministic vector for the same text and size, so a test can check that a vector reached
//! the client unchanged whichever way it travelled.

use base64::Engine as _;

use super::*;

/// The vector every mock provider gives `text` at `dims` dimensions.
pub fn vector(text: &str, dims: usize) -> Vec<f32> {
    let mut h: u32 = 2_166_136_261;
    for b in text.bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(16_777_619);
    }
    (0..dims)
        .map(|i| {
            let x = h.wrapping_add(i as u32).wrapping_mul(2_654_435_761) % 2001;
            (x as f32 - 1000.0) / 1000.0
        })
        .collect()
}

/// Tokens the mock bills for `text`: one per whitespace-separated word.
pub fn tokens(text: &str) -> u64 {
    text.split_whitespace().count().max(1) as u64
}

async fn read(s: &Arc<MockState>, req: Request) -> Value {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if let Ok(mut r) = s.requests.lock() {
        r.push(Recorded {
            path: parts.uri.path().to_owned(),
            headers: parts.headers,
            body: body.clone(),
        });
    }
    body
}

fn texts(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

fn bad(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({"error": {"message": message, "type": "invalid_request_error"}})),
    )
        .into_response()
}

pub(crate) async fn openai(State(s): State<Arc<MockState>>, req: Request) -> Response {
    let body = read(&s, req).await;
    let inputs = texts(&body["input"]);
    if inputs.is_empty() {
        return bad("input is required");
    }
    if body["model"].as_str() == Some("script/http500") {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(
                json!({"error": {"message": "mock embedding failure", "type": "server_error"}}),
            ),
        )
            .into_response();
    }
    let dims = body["dimensions"].as_u64().unwrap_or(8) as usize;
    let b64 = body["encoding_format"] == "base64";
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let v = vector(t, dims);
            let embedding = if b64 {
                let bytes: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    let n: u64 = inputs.iter().map(|t| tokens(t)).sum();
    axum::Json(
        json!({"object": "list", "data": data, "model": body["model"],
        "usage": {"prompt_tokens": n, "total_tokens": n}}),
    )
    .into_response()
}

/// Gemini's `batchEmbedContents` (no usage, as the real API) and Vertex's `predict`
/// (`statistics.token_count` per instance).
pub(crate) async fn google(s: Arc<MockState>, action: &str, req: Request) -> Response {
    let body = read(&s, req).await;
    if action == "predict" {
        let dims = body["parameters"]["outputDimensionality"]
            .as_u64()
            .unwrap_or(8) as usize;
        let preds: Vec<Value> = body["instances"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|i| {
                let t = i["content"].as_str().unwrap_or_default();
                json!({"embeddings": {"values": vector(t, dims),
                    "statistics": {"token_count": tokens(t), "truncated": false}}})
            })
            .collect();
        return axum::Json(json!({"predictions": preds})).into_response();
    }
    let embeddings: Vec<Value> = body["requests"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|r| {
            let t: String = r["content"]["parts"]
                .as_array()
                .map(|ps| ps.iter().filter_map(|p| p["text"].as_str()).collect())
                .unwrap_or_default();
            let dims = r["outputDimensionality"].as_u64().unwrap_or(8) as usize;
            json!({"values": vector(&t, dims)})
        })
        .collect();
    axum::Json(json!({"embeddings": embeddings})).into_response()
}

/// Titan (one text per call, `inputTextTokenCount`) and Cohere (a batch; the count only in
/// Bedrock's header).
pub(crate) async fn bedrock(s: Arc<MockState>, id: &str, req: Request) -> Response {
    let body = read(&s, req).await;
    if id.contains("titan-embed") {
        let t = body["inputText"].as_str().unwrap_or_default();
        let dims = body["dimensions"].as_u64().unwrap_or(8) as usize;
        let n = tokens(t);
        let mut r = axum::Json(json!({"embedding": vector(t, dims), "inputTextTokenCount": n}))
            .into_response();
        if let Ok(v) = HeaderValue::from_str(&n.to_string()) {
            r.headers_mut()
                .insert("x-amzn-bedrock-input-token-count", v);
        }
        return r;
    }
    let inputs = texts(&body["texts"]);
    let dims = body["output_dimension"].as_u64().unwrap_or(8) as usize;
    let n: u64 = inputs.iter().map(|t| tokens(t)).sum();
    let vectors: Vec<Vec<f32>> = inputs.iter().map(|t| vector(t, dims)).collect();
    let mut r = axum::Json(json!({"id": "mock-cohere", "texts": inputs,
        "embeddings": {"float": vectors}, "response_type": "embeddings_by_type"}))
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&n.to_string()) {
        r.headers_mut()
            .insert("x-amzn-bedrock-input-token-count", v);
    }
    r
}
