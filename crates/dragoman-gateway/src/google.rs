//! Vertex AI: Google OAuth access tokens from a service-account key, kept fresh off the request
//! path, and the Vertex adapter that puts them on each call (and reshapes Claude bodies for
//! `rawPredict`).
//!
//! The token flow is RFC 7523's JWT bearer grant: an RS256-signed assertion (ring signs; the
//! PEM key is read by rustls-pki-types) exchanged at the key's `token_uri` over the gateway's
//! own pooled client. A token is used until 30 s before it expires; from 3 min 45 s before (the
//! threshold google-auth uses) one background refresh replaces it, so requests never wait for
//! the token endpoint while a valid token exists. Only when there is none (the first call, or a
//! refresh that kept failing) does a request wait, and concurrent ones share that one fetch.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, HeaderValue};
use base64::Engine as _;
use bytes::Bytes;
use dragoman_config::Deployment;
use dragoman_model::{Dialect, ErrorBody, ErrorKind};
use http_body_util::BodyExt as _;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use rustls_pki_types::PrivatePkcs8KeyDer;
use rustls_pki_types::pem::PemObject as _;
use serde_json::{Value, json};

use crate::provider::{Adapter, AuthFuture, UpstreamRequest};
use crate::upstream::{self, HttpClient, Op};

/// The scope every Vertex call needs.
const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// A token is not used within this much of its expiry (a call may take that long to arrive).
const USE_MARGIN: Duration = Duration::from_secs(30);
/// From this long before expiry, a background refresh replaces the token.
const REFRESH_AHEAD: Duration = Duration::from_secs(225);
/// How long the token endpoint may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(20);
/// Claude on Vertex takes this version in the body, not Anthropic's header.
const VERTEX_ANTHROPIC_VERSION: &str = "vertex-2023-10-16";

/// The parts of a service-account key file the token flow needs.
struct ServiceAccount {
    client_email: String,
    private_key_id: Option<String>,
    token_uri: http::Uri,
    key: RsaKeyPair,
}

impl ServiceAccount {
    fn from_json(json: &str) -> Result<ServiceAccount, String> {
        let v: Value =
            serde_json::from_str(json).map_err(|e| format!("service-account key: {e}"))?;
        let field = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| format!("service-account key: `{k}` is missing"))
        };
        let pem = field("private_key")?;
        let der = PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| {
            format!("service-account key: private_key is not a PKCS#8 PEM key: {e}")
        })?;
        let key = RsaKeyPair::from_pkcs8(der.secret_pkcs8_der())
            .map_err(|e| format!("service-account key: private_key is not an RSA key: {e}"))?;
        let token_uri =
            field("token_uri").unwrap_or_else(|_| "https://oauth2.googleapis.com/token".into());
        Ok(ServiceAccount {
            client_email: field("client_email")?,
            private_key_id: v
                .get("private_key_id")
                .and_then(Value::as_str)
                .map(str::to_owned),
            token_uri: http::Uri::try_from(token_uri.as_str())
                .map_err(|e| format!("service-account key: token_uri: {e}"))?,
            key,
        })
    }

    /// The signed assertion for a token request issued at `now` (Unix seconds).
    fn assertion(&self, now: u64) -> Result<String, String> {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut header = json!({"alg": "RS256", "typ": "JWT"});
        if let Some(kid) = &self.private_key_id {
            header["kid"] = json!(kid);
        }
        let claims = json!({
            "iss": self.client_email,
            "scope": SCOPE,
            "aud": self.token_uri.to_string(),
            "iat": now,
            "exp": now + 3600,
        });
        let mut jwt = b64.encode(header.to_string());
        jwt.push('.');
        jwt.push_str(&b64.encode(claims.to_string()));
        let mut sig = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                jwt.as_bytes(),
                &mut sig,
            )
            .map_err(|_| "could not sign the token request".to_owned())?;
        jwt.push('.');
        jwt.push_str(&b64.encode(sig));
        Ok(jwt)
    }
}

struct Token {
    header: HeaderValue,
    expires: Instant,
}

/// Access tokens for one service account, fetched ahead of need.
pub struct TokenSource {
    account: ServiceAccount,
    client: HttpClient,
    token: RwLock<Option<Token>>,
    /// One fetch at a time; callers that found no token wait on it together.
    fetching: tokio::sync::Mutex<()>,
    refreshing: AtomicBool,
}

impl TokenSource {
    fn new(credentials: &str, client: HttpClient) -> Result<TokenSource, String> {
        Ok(TokenSource {
            account: ServiceAccount::from_json(credentials)?,
            client,
            token: RwLock::new(None),
            fetching: tokio::sync::Mutex::new(()),
            refreshing: AtomicBool::new(false),
        })
    }

    /// The `Authorization` value of a token that is still good, if there is one.
    fn current(&self) -> Option<(HeaderValue, Instant)> {
        let t = self.token.read().ok()?;
        let t = t.as_ref()?;
        (Instant::now() + USE_MARGIN < t.expires).then(|| (t.header.clone(), t.expires))
    }

    /// Fetches a token unless one that is good arrived while waiting (`force`: fetch anyway,
    /// to replace one that is about to expire).
    async fn refresh(&self, force: bool) -> Result<(), ErrorBody> {
        let _one = self.fetching.lock().await;
        if let Some((_, expires)) = self.current()
            && (!force || Instant::now() + REFRESH_AHEAD < expires)
        {
            return Ok(());
        }
        let token = self.fetch().await.map_err(|m| {
            ErrorBody::new(ErrorKind::Server, format!("Vertex AI credentials: {m}"))
        })?;
        if let Ok(mut t) = self.token.write() {
            *t = Some(token);
        }
        Ok(())
    }

    async fn fetch(&self) -> Result<Token, String> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let assertion = self.account.assertion(now)?;
        // The assertion is base64url and dots: nothing in it needs form-encoding.
        let form = format!(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={assertion}"
        );
        let req = http::Request::post(self.account.token_uri.clone())
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(http_body_util::Full::new(Bytes::from(form)))
            .map_err(|e| format!("token request: {e}"))?;
        let started = Instant::now();
        let resp = tokio::time::timeout(FETCH_TIMEOUT, self.client.request(req))
            .await
            .map_err(|_| "the token endpoint did not answer in time".to_owned())?
            .map_err(|e| format!("the token endpoint is unreachable: {e}"))?;
        let status = resp.status();
        let body = tokio::time::timeout(FETCH_TIMEOUT, resp.into_body().collect())
            .await
            .map_err(|_| "the token endpoint did not finish its answer".to_owned())?
            .map_err(|e| format!("reading the token answer: {e}"))?
            .to_bytes();
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if !status.is_success() {
            // OAuth's error shape: `error` and `error_description`, never the key.
            let why = v
                .get("error_description")
                .or_else(|| v.get("error"))
                .and_then(Value::as_str)
                .unwrap_or("no reason given");
            return Err(format!("the token endpoint refused ({status}): {why}"));
        }
        let access = v
            .get("access_token")
            .and_then(Value::as_str)
            .ok_or("the token answer has no access_token")?;
        let lifetime = v.get("expires_in").and_then(Value::as_u64).unwrap_or(3600);
        let mut header = HeaderValue::from_str(&format!("Bearer {access}"))
            .map_err(|_| "the access token is not a valid header value".to_owned())?;
        header.set_sensitive(true);
        Ok(Token {
            header,
            expires: started + Duration::from_secs(lifetime),
        })
    }

    /// Starts one background refresh when the token is close to expiry.
    fn refresh_ahead(self: &Arc<Self>, expires: Instant) {
        if Instant::now() + REFRESH_AHEAD < expires || self.refreshing.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            if let Err(e) = this.refresh(true).await {
                tracing::warn!(error = %e.message, "Vertex AI token refresh failed; the current token is used until it expires");
            }
            this.refreshing.store(false, Ordering::Release);
        });
    }
}

/// A Vertex AI deployment: Gemini (`publishers/google`) or Claude (`publishers/anthropic`,
/// `rawPredict`), with a bearer token from the deployment's service account.
pub struct Vertex {
    /// The address and headers, as for a static-key deployment; the token is added per call.
    endpoints: crate::provider::Static,
    auth: Arc<TokenSource>,
}

/// The token sources of a gateway's Vertex deployments, one per service account: deployments
/// that share a key share its token.
#[derive(Default)]
pub struct TokenSources(std::collections::HashMap<String, Arc<TokenSource>>);

impl Vertex {
    pub fn new(
        dep: &Deployment,
        token_client: impl FnOnce() -> HttpClient,
        sources: &mut TokenSources,
    ) -> Result<Vertex, String> {
        let google = dep
            .google
            .as_ref()
            .ok_or_else(|| format!("deployment {}: no Vertex AI settings", dep.id))?;
        let credentials = google.credentials.expose();
        let auth = match sources.0.get(credentials) {
            Some(a) => a.clone(),
            None => {
                let a = Arc::new(
                    TokenSource::new(credentials, token_client())
                        .map_err(|e| format!("deployment {}: {e}", dep.id))?,
                );
                sources.0.insert(credentials.to_owned(), a.clone());
                a
            }
        };
        Ok(Vertex {
            endpoints: crate::provider::Static(upstream::Endpoints::new(dep)?),
            auth,
        })
    }
}

/// A Claude request body as `rawPredict` takes it: no `model` (it is in the path), Vertex's
/// `anthropic_version`. The counting endpoint keeps the model, without its `@version`.
fn claude_body(body: &[u8], op: Op, model: &str) -> Result<Bytes, ErrorBody> {
    let mut v: Value = serde_json::from_slice(body).map_err(|e| {
        ErrorBody::new(
            ErrorKind::InvalidRequest,
            format!("request body is not JSON: {e}"),
        )
    })?;
    if let Some(o) = v.as_object_mut() {
        match op {
            Op::CountTokens => {
                let bare = model.split_once('@').map_or(model, |(m, _)| m);
                o.insert("model".into(), json!(bare));
            }
            Op::Generate | Op::Stream | Op::Embed => {
                o.remove("model");
                o.insert("anthropic_version".into(), json!(VERTEX_ANTHROPIC_VERSION));
            }
        }
    }
    Ok(Bytes::from(serde_json::to_vec(&v).unwrap_or_default()))
}

impl Adapter for Vertex {
    fn pending_auth(&self) -> Option<AuthFuture<'_>> {
        if self.auth.current().is_some() {
            return None;
        }
        Some(Box::pin(self.auth.refresh(false)) as Pin<Box<dyn Future<Output = _> + Send + '_>>)
    }

    fn build(
        &self,
        op: Op,
        model: &str,
        client: Dialect,
        client_headers: &HeaderMap,
        body: Bytes,
    ) -> Result<UpstreamRequest, ErrorBody> {
        let Some((token, expires)) = self.auth.current() else {
            return Err(ErrorBody::new(
                ErrorKind::Server,
                "Vertex AI credentials: no access token yet",
            ));
        };
        self.auth.refresh_ahead(expires);
        let body = if self.endpoints.0.dialect() == Dialect::Anthropic {
            claude_body(&body, op, model)?
        } else {
            body
        };
        let mut req = self
            .endpoints
            .build(op, model, client, client_headers, body)?;
        req.headers_mut().insert(http::header::AUTHORIZATION, token);
        Ok(req)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn claude_bodies_lose_the_model_and_gain_vertexs_version() {
        let b =
            br#"{"model":"claude-sonnet-4-5@20250929","max_tokens":5,"stream":true,"messages":[]}"#;
        let v: Value = serde_json::from_slice(
            &claude_body(b, Op::Stream, "claude-sonnet-4-5@20250929").unwrap(),
        )
        .unwrap();
        assert!(v.get("model").is_none());
        assert_eq!(v["anthropic_version"], "vertex-2023-10-16");
        assert_eq!(v["stream"], true);
        let v: Value = serde_json::from_slice(
            &claude_body(b, Op::CountTokens, "claude-sonnet-4-5@20250929").unwrap(),
        )
        .unwrap();
        assert_eq!(v["model"], "claude-sonnet-4-5");
    }
}
