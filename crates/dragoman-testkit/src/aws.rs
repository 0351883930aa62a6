//! The mock's Amazon Bedrock: Converse and ConverseStream in the Bedrock dialect, InvokeModel
//! and InvokeModelWithResponseStream for Claude (Anthropic bodies, Bedrock's version, chunks
//! inside the binary event stream), and Titan / Cohere embeddings. It refuses a call that is
//! neither SigV4-signed for the `bedrock` scope nor carries a Bedrock API key; the signature
//! itself is checked by botocore in the end-to-end tests.

use super::*;

/// What Bedrock answers an unauthenticated call with.
fn refuse(why: &str) -> Response {
    let mut r = (StatusCode::FORBIDDEN, axum::Json(json!({"message": why}))).into_response();
    r.headers_mut().insert(
        "x-amzn-errortype",
        HeaderValue::from_static("UnrecognizedClientException:http://internal.amazon.com/coral/com.amazon.coral.service/"),
    );
    r
}

fn authenticated(h: &HeaderMap) -> Result<(), &'static str> {
    let auth = h
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if auth.starts_with("Bearer ") {
        return Ok(());
    }
    if !auth.starts_with("AWS4-HMAC-SHA256 Credential=") || !auth.contains("/bedrock/aws4_request")
    {
        return Err("The security token included in the request is invalid.");
    }
    if !h.contains_key("x-amz-date") {
        return Err("Missing Authentication Token");
    }
    Ok(())
}

pub(crate) async fn bedrock(
    State(s): State<Arc<MockState>>,
    axum::extract::Path((id, action)): axum::extract::Path<(String, String)>,
    req: Request,
) -> Response {
    if let Err(why) = authenticated(req.headers()) {
        return refuse(why);
    }
    match action.as_str() {
        "converse" | "converse-stream" => {
            let stream = action == "converse-stream";
            serve_as(
                s,
                Dialect::Bedrock,
                req,
                Some((id, stream)),
                Framing::EventStream,
            )
            .await
        }
        _ if id.contains("throttled") => {
            let mut r = (
                StatusCode::TOO_MANY_REQUESTS,
                axum::Json(
                    json!({"message": "Too many requests, please wait before trying again."}),
                ),
            )
                .into_response();
            r.headers_mut().insert(
                "x-amzn-errortype",
                HeaderValue::from_static(
                    "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/",
                ),
            );
            r
        }
        "invoke" if id.contains("titan-embed") || id.contains("cohere.embed") => {
            super::embed::bedrock(s, &id, req).await
        }
        "invoke" | "invoke-with-response-stream" => invoke_claude(s, id, action, req).await,
        "count-tokens" => {
            let (parts, body) = req.into_parts();
            let bytes = axum::body::to_bytes(body, usize::MAX)
                .await
                .unwrap_or_default();
            if let Ok(mut r) = s.requests.lock() {
                r.push(Recorded {
                    path: parts.uri.path().to_owned(),
                    headers: parts.headers,
                    body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                });
            }
            if id.starts_with("us.") {
                return (
                    StatusCode::BAD_REQUEST,
                    axum::Json(
                        json!({"message": "The provided model doesn't support counting tokens."}),
                    ),
                )
                    .into_response();
            }
            axum::Json(json!({"inputTokens": 4242})).into_response()
        }
        _ => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"message": "no such operation"})),
        )
            .into_response(),
    }
}

/// Claude through InvokeModel: Bedrock refuses `model`, `stream` and a missing or wrong
/// `anthropic_version`, as the real service does.
async fn invoke_claude(s: Arc<MockState>, id: String, action: String, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let mut body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let bad = if body.get("model").is_some() {
        Some("extraneous key [model] is not permitted")
    } else if body.get("stream").is_some() {
        Some("extraneous key [stream] is not permitted")
    } else if body["anthropic_version"] != "bedrock-2023-05-31" {
        Some("anthropic_version: Invalid value")
    } else {
        None
    };
    if let Some(why) = bad {
        if let Ok(mut r) = s.requests.lock() {
            r.push(Recorded {
                path: parts.uri.path().to_owned(),
                headers: parts.headers,
                body,
            });
        }
        return (StatusCode::BAD_REQUEST, axum::Json(json!({"message": why}))).into_response();
    }
    let stream = action == "invoke-with-response-stream";
    if let Some(o) = body.as_object_mut() {
        o.insert("model".into(), json!(id));
        o.insert("stream".into(), json!(stream));
    }
    let req = Request::from_parts(
        parts,
        axum::body::Body::from(serde_json::to_vec(&body).unwrap_or_default()),
    );
    let framing = if stream {
        Framing::EventStreamChunks
    } else {
        Framing::Sse
    };
    serve_as(s, Dialect::Anthropic, req, None, framing).await
}
