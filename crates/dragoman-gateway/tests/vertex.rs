//! Vertex AI end to end: a fake Google token endpoint that checks each service-account
//! assertion's RS256 signature and claims and counts the token requests, the mock upstream
//! speaking Vertex's Gemini and Claude routes, and every client dialect in front.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "dialects/mod.rs"]
mod dialects;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::State;
use base64::Engine as _;
use dialects::{body, path_and_body, stream_usage, text_of, usage_of};
use dragoman_model::Dialect;
use dragoman_testkit::MockUpstream;
use serde_json::{Value, json};

const KEY: &str = "sk-vertex-test";

fn test_data() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../test_data/vertex")
}

/// The fake token endpoint: what it saw and how it answers.
struct TokenEndpoint {
    granted: AtomicUsize,
    refused: AtomicUsize,
    /// `expires_in` of the tokens it grants.
    lifetime: u64,
    public_key: Vec<u8>,
}

/// Checks an RFC 7523 assertion as Google does: RS256 over `header.claims` with the key's
/// public half, issuer, audience, scope and a one-hour lifetime.
fn check_assertion(jwt: &str, public_key: &[u8], aud: &str) -> Result<(), String> {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut parts = jwt.split('.');
    let (Some(h), Some(c), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("not three parts".into());
    };
    let header: Value = serde_json::from_slice(&b64.decode(h).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    if header["alg"] != "RS256" || header["kid"] != "kid-test-1" {
        return Err(format!("header {header}"));
    }
    let sig = b64.decode(sig).map_err(|e| e.to_string())?;
    ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        public_key,
    )
    .verify(format!("{h}.{c}").as_bytes(), &sig)
    .map_err(|_| "bad signature".to_owned())?;
    let claims: Value = serde_json::from_slice(&b64.decode(c).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    let iat = claims["iat"].as_u64().unwrap_or(0);
    let ok = claims["iss"] == "gateway@dragoman-test.iam.gserviceaccount.com"
        && claims["scope"] == "https://www.googleapis.com/auth/cloud-platform"
        && claims["aud"] == aud
        && claims["exp"].as_u64() == Some(iat + 3600);
    if ok {
        Ok(())
    } else {
        Err(format!("claims {claims}"))
    }
}

async fn token(
    State((t, aud)): State<(Arc<TokenEndpoint>, String)>,
    headers: axum::http::HeaderMap,
    form: String,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let assertion = form
        .split('&')
        .find_map(|kv| kv.strip_prefix("assertion="))
        .unwrap_or_default();
    let grant = form.contains("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer");
    let form_ct = headers
        .get("content-type")
        .is_some_and(|v| v == "application/x-www-form-urlencoded");
    match check_assertion(assertion, &t.public_key, &aud) {
        Ok(()) if grant && form_ct => {
            let n = t.granted.fetch_add(1, Ordering::SeqCst) + 1;
            axum::Json(json!({"access_token": format!("ya29.test-{n}"), "expires_in": t.lifetime, "token_type": "Bearer"}))
                .into_response()
        }
        Ok(()) => (axum::http::StatusCode::BAD_REQUEST, "bad form").into_response(),
        Err(why) => {
            t.refused.fetch_add(1, Ordering::SeqCst);
            (
                axum::http::StatusCode::BAD_REQUEST,
                axum::Json(json!({"error": "invalid_grant", "error_description": format!("Invalid JWT Signature ({why}).")})),
            )
                .into_response()
        }
    }
}

struct Harness {
    url: String,
    http: reqwest::Client,
    mock: MockUpstream,
    tokens: Arc<TokenEndpoint>,
    _dir: std::path::PathBuf,
}

async fn start(key_file: &str, lifetime: u64) -> Harness {
    let tokens = Arc::new(TokenEndpoint {
        granted: AtomicUsize::new(0),
        refused: AtomicUsize::new(0),
        lifetime,
        public_key: std::fs::read(test_data().join("service-account.pub.der")).unwrap(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let token_uri = format!("http://{}/token", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .route("/token", axum::routing::post(token))
        .with_state((tokens.clone(), token_uri.clone()));
    tokio::spawn(async move { axum::serve(listener, app).await });
    // The key file as an operator has it, pointing at the fake endpoint.
    let dir = std::env::temp_dir().join(format!("dragoman-vertex-{:016x}", fastrand::u64(..)));
    std::fs::create_dir_all(&dir).unwrap();
    let key = std::fs::read_to_string(test_data().join(key_file))
        .unwrap()
        .replace("TOKEN_URI", &token_uri);
    let key_path = dir.join("key.json");
    std::fs::write(&key_path, key).unwrap();
    let mock = MockUpstream::start().await;
    let yaml = format!(
        r#"
model_list:
  - model_name: "vg/*"
    litellm_params: {{model: "vertex_ai/*", api_base: "{base}", vertex_project: proj-1, vertex_location: europe-west4, vertex_credentials: "{key}", input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}}
  - model_name: vertex-claude
    litellm_params: {{model: "vertex_ai/claude-sonnet-4-5@20250929", api_base: "{base}", vertex_project: proj-1, vertex_location: us-east5, vertex_credentials: "{key}"}}
  - model_name: vertex-embed
    litellm_params: {{model: "vertex_ai/text-embedding-005", api_base: "{base}", vertex_project: proj-1, vertex_location: us-central1, vertex_credentials: "{key}"}}
    model_info: {{mode: embedding}}
general_settings:
  master_key: {KEY}
"#,
        base = mock.base(),
        key = key_path.display(),
    );
    let config = dragoman_config::parse(&yaml, &|_: &str| None).unwrap();
    let gw = dragoman_gateway::Gateway::new(config).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(dragoman_gateway::serve(
        gw,
        listener,
        std::future::pending(),
    ));
    Harness {
        url,
        http: reqwest::Client::new(),
        mock,
        tokens,
        _dir: dir,
    }
}

impl Harness {
    async fn post(&self, client: Dialect, b: &Value) -> reqwest::Response {
        let (path, b) = path_and_body(client, b);
        self.http
            .post(format!("{}{path}", self.url))
            .header("authorization", format!("Bearer {KEY}"))
            .header("anthropic-version", "2023-06-01")
            .json(&b)
            .send()
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn every_dialect_reaches_gemini_and_claude_on_vertex_with_one_token() {
    let h = start("service-account.json", 3600).await;
    for client in Dialect::CLIENTS {
        for (model, want_usage) in [
            ("vg/script/cached", (210, 1024, 12)),
            ("vertex-claude", (210, 1024, 12)),
        ] {
            let tag = format!("{client} → {model}");
            let r = h.post(client, &body(client, model, false)).await;
            assert_eq!(r.status(), 200, "{tag}");
            let v: Value = r.json().await.unwrap();
            assert_eq!(text_of(client, &v), "Hello from the mock.", "{tag}: {v}");
            assert_eq!(usage_of(client, &v), want_usage, "{tag}");

            let mut b = body(client, model, true);
            if client == Dialect::Chat {
                b["stream_options"] = json!({"include_usage": true});
            }
            let r = h.post(client, &b).await;
            assert_eq!(r.status(), 200, "{tag} streamed");
            let bytes = r.bytes().await.unwrap();
            let events = dragoman_sse::decode_all(&bytes).unwrap();
            dragoman_translate::validate(client, &events).unwrap_or_else(|e| panic!("{tag}: {e}"));
            assert_eq!(
                stream_usage(client, &events).0,
                want_usage,
                "{tag} streamed"
            );
        }
    }
    // Sixteen calls, one token: it is fetched once and reused until near its expiry.
    assert_eq!(h.tokens.granted.load(Ordering::SeqCst), 1);
    let paths: Vec<String> = h.mock.requests().iter().map(|r| r.path.clone()).collect();
    assert!(paths.contains(
        &"/v1/projects/proj-1/locations/europe-west4/publishers/google/models/script/cached:streamGenerateContent".to_owned()
    ), "{paths:?}");
    assert!(paths.contains(
        &"/v1/projects/proj-1/locations/us-east5/publishers/anthropic/models/claude-sonnet-4-5@20250929:rawPredict".to_owned()
    ), "{paths:?}");
    for r in h.mock.requests() {
        assert_eq!(r.headers["authorization"], "Bearer ya29.test-1");
        assert!(r.headers.get("x-goog-api-key").is_none() && r.headers.get("x-api-key").is_none());
    }
}

/// A token close to its expiry is replaced in the background: the call that notices it is
/// served with the current token, and a later one gets the new token.
#[tokio::test]
async fn tokens_are_refreshed_ahead_of_expiry_off_the_request_path() {
    // 200 s of life: usable (more than 30 s left) but inside the 225 s refresh window.
    let h = start("service-account.json", 200).await;
    let b = body(Dialect::Chat, "vg/script/text", false);
    assert_eq!(h.post(Dialect::Chat, &b).await.status(), 200);
    assert_eq!(
        h.mock.last_request().unwrap().headers["authorization"],
        "Bearer ya29.test-1"
    );
    // The first call saw a token near expiry and started one refresh.
    for _ in 0..100 {
        if h.tokens.granted.load(Ordering::SeqCst) >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(h.tokens.granted.load(Ordering::SeqCst), 2);
    assert_eq!(h.post(Dialect::Chat, &b).await.status(), 200);
    assert_eq!(
        h.mock.last_request().unwrap().headers["authorization"],
        "Bearer ya29.test-2"
    );
}

/// A key the token endpoint refuses: the client is told in its own dialect that the
/// gateway's upstream credentials failed (a 502, not its own key's fault), and no call
/// reaches Vertex.
#[tokio::test]
async fn refused_credentials_are_the_gateways_error_not_the_clients() {
    let h = start("service-account-other.json", 3600).await;
    let r = h
        .post(
            Dialect::Anthropic,
            &body(Dialect::Anthropic, "vertex-claude", false),
        )
        .await;
    assert_eq!(r.status(), 502);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "error");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("Vertex AI credentials") && msg.contains("Invalid JWT Signature"),
        "{msg}"
    );
    assert!(h.tokens.refused.load(Ordering::SeqCst) >= 1);
    assert!(h.mock.requests().is_empty());
}

/// Vertex embeddings: `:predict` with the deployment's token, `outputDimensionality` from the
/// client's `dimensions`, the token counts Vertex reports summed into the usage.
#[tokio::test]
async fn vertex_embeddings_answer_openais_shape() {
    let h = start("service-account.json", 3600).await;
    let r = h
        .http
        .post(format!("{}/v1/embeddings", h.url))
        .header("authorization", format!("Bearer {KEY}"))
        .json(&json!({"model": "vertex-embed", "input": ["one two", "three"], "dimensions": 16}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["usage"]["prompt_tokens"], 3, "{v}");
    let first: Vec<f32> = v["data"][0]["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    assert_eq!(first, dragoman_testkit::embedding_vector("one two", 16));
    let seen = h.mock.last_request().unwrap();
    assert_eq!(
        seen.path,
        "/v1/projects/proj-1/locations/us-central1/publishers/google/models/text-embedding-005:predict"
    );
    assert_eq!(seen.body["parameters"]["outputDimensionality"], 16);
    assert_eq!(seen.headers["authorization"], "Bearer ya29.test-1");
}
