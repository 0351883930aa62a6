//! Amazon Bedrock: the adapter that addresses a deployment's model, reshapes Claude bodies for
//! InvokeModel, and authenticates each call, either with a Bedrock API key (a bearer token) or
//! by signing it with SigV4 (the maintained `aws-sigv4` crate: canonical request, double
//! percent-encoded path, payload hash, signed headers).
//!
//! Where the signing keys come from, and how temporary ones stay fresh, is `aws_creds`'s job.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use axum::http::{HeaderMap, HeaderValue};
use base64::Engine as _;
use bytes::Bytes;
use dragoman_config::Deployment;
use dragoman_model::{Dialect, ErrorBody, ErrorKind, Framing};
use serde_json::{Value, json};

use crate::aws_creds::{KeySource, KeySources};
use crate::provider::{Adapter, AuthFuture, UpstreamRequest};
use crate::upstream::{self, HttpClient, Op};

/// Claude on Bedrock takes this version in the body, not Anthropic's header.
const BEDROCK_ANTHROPIC_VERSION: &str = "bedrock-2023-05-31";
/// Bedrock signs as `bedrock`, although its host is `bedrock-runtime`.
const SIGNING_NAME: &str = "bedrock";
/// Signs `req` (whose body is `body`) in place: adds `x-amz-date`, the session token when the
/// keys are temporary, and `authorization`.
pub fn sign_request<B>(
    req: &mut http::Request<B>,
    creds: &Credentials,
    region: &str,
    service: &str,
    body: &[u8],
) -> Result<(), String> {
    let identity = creds.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| format!("signing: {e}"))?
        .into();
    let uri = req.uri().to_string();
    let headers: Vec<(&str, &str)> = req
        .headers()
        .iter()
        .filter_map(|(n, v)| Some((n.as_str(), v.to_str().ok()?)))
        .collect();
    let signable = SignableRequest::new(
        req.method().as_str(),
        &uri,
        headers.into_iter(),
        SignableBody::Bytes(body),
    )
    .map_err(|e| format!("signing: {e}"))?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| format!("signing: {e}"))?
        .into_parts();
    instructions.apply_to_request_http1x(req);
    if let Some(v) = req.headers_mut().get_mut(http::header::AUTHORIZATION) {
        v.set_sensitive(true);
    }
    Ok(())
}

enum Auth {
    Bearer(HeaderValue),
    Sign(Arc<KeySource>),
}

/// A Bedrock deployment.
pub struct Bedrock {
    endpoints: crate::provider::Static,
    /// The runtime endpoint, for counting, which takes a foundation model id rather than the
    /// deployment's own.
    base: String,
    region: String,
    auth: Auth,
    dialect: Dialect,
}

impl Bedrock {
    pub fn new(
        dep: &Deployment,
        client: impl FnOnce() -> HttpClient,
        sources: &mut KeySources,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Bedrock, String> {
        let aws = dep
            .aws
            .as_ref()
            .ok_or_else(|| format!("deployment {}: no AWS settings", dep.id))?;
        let auth = match &aws.bearer {
            Some(key) => {
                let mut v =
                    HeaderValue::from_str(&format!("Bearer {}", key.expose())).map_err(|_| {
                        format!(
                            "deployment {}: the Bedrock API key is not a valid header value",
                            dep.id
                        )
                    })?;
                v.set_sensitive(true);
                Auth::Bearer(v)
            }
            None => {
                let source = sources
                    .for_settings(aws, env, client)
                    .map_err(|e| format!("deployment {}: {e}", dep.id))?;
                tracing::info!(deployment = %dep.id, credentials = %source.describe(), "Bedrock deployment signs with SigV4");
                Auth::Sign(source)
            }
        };
        Ok(Bedrock {
            endpoints: crate::provider::Static(upstream::Endpoints::new(dep)?),
            base: dep.api_base.clone(),
            region: aws.region.clone(),
            auth,
            dialect: dep.dialect,
        })
    }
}

/// A Claude request body as InvokeModel takes it: no `model` and no `stream` (the path says
/// both), Bedrock's `anthropic_version`, and the client's beta flags as `anthropic_beta`.
fn claude_body(
    body: &[u8],
    client_headers: &HeaderMap,
    client: Dialect,
) -> Result<Bytes, ErrorBody> {
    let mut v: Value = serde_json::from_slice(body).map_err(|e| {
        ErrorBody::new(
            ErrorKind::InvalidRequest,
            format!("request body is not JSON: {e}"),
        )
    })?;
    if let Some(o) = v.as_object_mut() {
        o.remove("model");
        o.remove("stream");
        o.insert("anthropic_version".into(), json!(BEDROCK_ANTHROPIC_VERSION));
        if client == Dialect::Anthropic
            && let Some(beta) = client_headers
                .get("anthropic-beta")
                .and_then(|b| b.to_str().ok())
        {
            let flags: Vec<&str> = beta
                .split(',')
                .map(str::trim)
                .filter(|f| !f.is_empty())
                .collect();
            if !flags.is_empty() {
                o.insert("anthropic_beta".into(), json!(flags));
            }
        }
    }
    Ok(Bytes::from(serde_json::to_vec(&v).unwrap_or_default()))
}

/// CountTokens takes the InvokeModel body base64-encoded, and only a foundation model id (a
/// cross-region profile's prefix is refused).
fn count_body(invoke_body: &[u8]) -> Bytes {
    let b64 = base64::engine::general_purpose::STANDARD.encode(invoke_body);
    Bytes::from(json!({"input": {"invokeModel": {"body": b64}}}).to_string())
}

/// The foundation model id of a cross-region inference profile id (`us.anthropic.…`).
fn foundation_id(model: &str) -> &str {
    for p in ["us.", "eu.", "apac.", "jp.", "au.", "us-gov.", "global."] {
        if let Some(rest) = model.strip_prefix(p) {
            return rest;
        }
    }
    model
}

impl Adapter for Bedrock {
    fn pending_auth(&self) -> Option<AuthFuture<'_>> {
        match &self.auth {
            Auth::Sign(s) if s.current().is_none() => {
                Some(Box::pin(s.refresh(false)) as Pin<Box<dyn Future<Output = _> + Send + '_>>)
            }
            _ => None,
        }
    }

    fn error_dialect(&self) -> Option<Dialect> {
        Some(Dialect::Bedrock)
    }

    fn refine_error(&self, headers: &HeaderMap, error: &mut ErrorBody) {
        if let Some(t) = headers
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
        {
            error.kind = dragoman_bedrock::error_kind_from_type(t, error.status);
        }
    }

    fn token_count(&self, body: &[u8]) -> Option<u64> {
        serde_json::from_slice::<Value>(body)
            .ok()?
            .get("inputTokens")?
            .as_u64()
    }

    fn framing(&self) -> Option<Framing> {
        // Claude's own events, each inside an event-stream `chunk`.
        (self.dialect != Dialect::Bedrock).then_some(Framing::EventStreamChunks)
    }

    fn build(
        &self,
        op: Op,
        model: &str,
        client: Dialect,
        client_headers: &HeaderMap,
        body: Bytes,
    ) -> Result<UpstreamRequest, ErrorBody> {
        let claude = self.dialect == Dialect::Anthropic && op != Op::Embed;
        let (body, model) = match (claude, op) {
            (true, Op::CountTokens) => (
                count_body(&claude_body(&body, client_headers, client)?),
                foundation_id(model),
            ),
            (true, _) => (claude_body(&body, client_headers, client)?, model),
            (false, Op::CountTokens) => (body, foundation_id(model)),
            (false, _) => (body, model),
        };
        let mut req = self
            .endpoints
            .build(op, model, client, client_headers, body.clone())?;
        if op == Op::CountTokens {
            let url = format!(
                "{}/model/{}/count-tokens",
                self.base,
                upstream::percent_encode(model)
            );
            *req.uri_mut() = http::Uri::try_from(url.as_str()).map_err(|e| {
                ErrorBody::new(ErrorKind::InvalidRequest, format!("model `{model}`: {e}"))
            })?;
        }
        // The user agent is the client's and proxies may rewrite it: never signed, never
        // needed.
        req.headers_mut().remove(http::header::USER_AGENT);
        match &self.auth {
            Auth::Bearer(v) => {
                req.headers_mut()
                    .insert(http::header::AUTHORIZATION, v.clone());
            }
            Auth::Sign(source) => {
                let Some((creds, expires)) = source.current() else {
                    return Err(ErrorBody::new(
                        ErrorKind::Server,
                        "AWS credentials: no temporary keys yet",
                    ));
                };
                if let Some(e) = expires {
                    source.refresh_ahead(e);
                }
                sign_request(&mut req, &creds, &self.region, SIGNING_NAME, &body)
                    .map_err(|m| ErrorBody::new(ErrorKind::Server, m))?;
            }
        }
        Ok(req)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn claude_bodies_lose_model_and_stream_and_gain_bedrocks_version_and_betas() {
        let mut h = HeaderMap::new();
        h.insert("anthropic-beta", HeaderValue::from_static("a-1, b-2"));
        let b = br#"{"model":"x","max_tokens":5,"stream":true,"messages":[]}"#;
        let v: Value =
            serde_json::from_slice(&claude_body(b, &h, Dialect::Anthropic).unwrap()).unwrap();
        assert!(v.get("model").is_none() && v.get("stream").is_none());
        assert_eq!(v["anthropic_version"], "bedrock-2023-05-31");
        assert_eq!(v["anthropic_beta"], json!(["a-1", "b-2"]));
        // Another dialect's client sent no Anthropic betas.
        let v: Value = serde_json::from_slice(&claude_body(b, &h, Dialect::Chat).unwrap()).unwrap();
        assert!(v.get("anthropic_beta").is_none());
    }

    #[test]
    fn counting_wraps_the_invoke_body_and_names_the_foundation_model() {
        let v: Value = serde_json::from_slice(&count_body(b"{\"a\":1}")).unwrap();
        assert_eq!(v["input"]["invokeModel"]["body"], "eyJhIjoxfQ==");
        assert_eq!(
            foundation_id("us.anthropic.claude-haiku-4-5-20251001-v1:0"),
            "anthropic.claude-haiku-4-5-20251001-v1:0"
        );
        assert_eq!(
            foundation_id("amazon.nova-micro-v1:0"),
            "amazon.nova-micro-v1:0"
        );
    }

    /// The key is scoped to the region and `bedrock`, and temporary keys sign their token
    /// (botocore checks the signature itself in the end-to-end tests).
    #[test]
    fn signing_adds_date_token_and_authorization_for_the_bedrock_scope() {
        let creds = Credentials::new("AKIDEXAMPLE", "secret", Some("tok".into()), None, "t");
        let mut req = http::Request::post(
            "https://bedrock-runtime.us-east-1.amazonaws.com/model/a%3A0/converse",
        )
        .header("content-type", "application/json")
        .body(())
        .unwrap();
        sign_request(&mut req, &creds, "us-east-1", "bedrock", b"{}").unwrap();
        let auth = req.headers()["authorization"].to_str().unwrap();
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"),
            "{auth}"
        );
        assert!(auth.contains("/us-east-1/bedrock/aws4_request"), "{auth}");
        assert!(
            auth.contains("SignedHeaders=content-type;host;x-amz-date;x-amz-security-token"),
            "{auth}"
        );
        assert_eq!(req.headers()["x-amz-security-token"], "tok");
        assert!(req.headers()["authorization"].is_sensitive());
    }
}
