//! Calling a deployment: its URL, its auth and version headers, timeouts, and which of its
//! response headers travel back to the client. The provider's key never leaves this module
//! except on the wire to that provider.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use bytes::Bytes;
use dragoman_config::{Deployment, Provider};
use dragoman_model::{Dialect, ErrorBody, ErrorKind};
use hyper_util::client::legacy::Client;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

/// What is asked of the upstream.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Generate,
    /// A streamed generation: the same address as `Generate` where the body says `stream`,
    /// another one where the URL does (Gemini).
    Stream,
    CountTokens,
    /// `/v1/embeddings` on a `mode: embedding` deployment.
    Embed,
}

/// `s` with everything but RFC 3986 unreserved characters percent-encoded: a Bedrock model id
/// as one URL path segment (`:` and an ARN's `/` included; botocore sends `%3A`, and a raw `/`
/// would end the segment), or a form value.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The address of `op` on deployment `dep` for upstream model `model` (the deployment's own
/// unless it is a wildcard).
pub fn url(dep: &Deployment, model: &str, op: Op) -> String {
    let base = dep.api_base.as_str();
    let version = dep.api_version.as_deref().unwrap_or("2024-10-21");
    match (dep.provider, dep.dialect, op) {
        (Provider::Bedrock, dialect, op) => {
            let action = match (op, dialect) {
                (Op::Embed, _) => "invoke",
                (Op::CountTokens, _) => "count-tokens",
                (Op::Generate, Dialect::Bedrock) => "converse",
                (Op::Stream, Dialect::Bedrock) => "converse-stream",
                (Op::Generate, _) => "invoke",
                (Op::Stream, _) => "invoke-with-response-stream",
            };
            format!("{base}/model/{}/{action}", percent_encode(model))
        }
        (Provider::Vertex, _, Op::Embed) => {
            let (project, location) = dep
                .google
                .as_ref()
                .map_or(("", ""), |g| (g.project.as_str(), g.location.as_str()));
            format!(
                "{base}/v1/projects/{project}/locations/{location}/publishers/google/models/{model}:predict"
            )
        }
        (Provider::Vertex, dialect, op) => {
            let (project, location) = dep
                .google
                .as_ref()
                .map_or(("", ""), |g| (g.project.as_str(), g.location.as_str()));
            let (publisher, action) = match (dialect, op) {
                (Dialect::Anthropic, Op::Generate) => ("anthropic", format!("{model}:rawPredict")),
                (Dialect::Anthropic, Op::Stream) => {
                    ("anthropic", format!("{model}:streamRawPredict"))
                }
                (Dialect::Anthropic, Op::CountTokens) => {
                    ("anthropic", "count-tokens:rawPredict".to_owned())
                }
                (_, Op::Generate) => ("google", format!("{model}:generateContent")),
                (_, Op::Stream) => ("google", format!("{model}:streamGenerateContent?alt=sse")),
                (_, Op::CountTokens) => ("google", format!("{model}:countTokens")),
                (_, Op::Embed) => ("google", format!("{model}:predict")),
            };
            format!(
                "{base}/v1/projects/{project}/locations/{location}/publishers/{publisher}/models/{action}"
            )
        }
        (_, Dialect::Anthropic, op) => {
            let root = base.strip_suffix("/v1").unwrap_or(base);
            match op {
                Op::Generate | Op::Stream | Op::Embed => format!("{root}/v1/messages"),
                Op::CountTokens => format!("{root}/v1/messages/count_tokens"),
            }
        }
        (_, Dialect::Gemini, op) => {
            // `api_base` may name the API version (LiteLLM users write either form).
            let root = base
                .strip_suffix("/v1beta")
                .or_else(|| base.strip_suffix("/v1"))
                .unwrap_or(base);
            let version = if base.ends_with("/v1") {
                "v1"
            } else {
                "v1beta"
            };
            let model = model.strip_prefix("models/").unwrap_or(model);
            let action = match op {
                Op::Generate => "generateContent",
                Op::Stream => "streamGenerateContent?alt=sse",
                Op::CountTokens => "countTokens",
                Op::Embed => "batchEmbedContents",
            };
            format!("{root}/{version}/models/{model}:{action}")
        }
        (Provider::Azure, _, Op::Embed) => {
            format!("{base}/openai/deployments/{model}/embeddings?api-version={version}")
        }
        (_, _, Op::Embed) => format!("{base}/embeddings"),
        (Provider::Azure, Dialect::Chat, _) => {
            format!("{base}/openai/deployments/{model}/chat/completions?api-version={version}")
        }
        (Provider::Azure, Dialect::Responses, _) => {
            format!("{base}/openai/responses?api-version={version}")
        }
        (_, Dialect::Chat, _) => format!("{base}/chat/completions"),
        (_, Dialect::Responses, _) => format!("{base}/responses"),
        // Converse is Bedrock's alone (the first arm).
        (_, Dialect::Bedrock, _) => format!("{base}/model/{model}/converse"),
    }
}

/// Request headers for the upstream: its auth, Anthropic's version and beta headers (the
/// client's own when the client speaks Anthropic), configured extra headers, and the client's
/// user agent (we add none of our own).
pub fn headers(ep: &Endpoints, client: Dialect, client_headers: &HeaderMap) -> HeaderMap {
    let mut h = ep.fixed_headers.clone();
    if let Some(ua) = client_headers.get(http::header::USER_AGENT) {
        h.insert(http::header::USER_AGENT, ua.clone());
    }
    // Claude on Vertex and Bedrock takes its version in the body (their adapters write it);
    // Bedrock its betas too.
    if ep.provider == Provider::Bedrock {
    } else if ep.dialect == Dialect::Anthropic && ep.provider == Provider::Vertex {
        if client == Dialect::Anthropic
            && let Some(beta) = client_headers.get(ANTHROPIC_BETA)
        {
            h.insert(ANTHROPIC_BETA, beta.clone());
        }
    } else if ep.dialect == Dialect::Anthropic {
        let version = match client {
            Dialect::Anthropic => client_headers.get(ANTHROPIC_VERSION).cloned(),
            _ => None,
        };
        h.insert(
            ANTHROPIC_VERSION,
            version.unwrap_or(HeaderValue::from_static("2023-06-01")),
        );
        if client == Dialect::Anthropic
            && let Some(beta) = client_headers.get(ANTHROPIC_BETA)
        {
            h.insert(ANTHROPIC_BETA, beta.clone());
        }
    }
    // Configured headers have the last word.
    for (n, v) in &ep.extra_headers {
        h.insert(n.clone(), v.clone());
    }
    h
}

const ANTHROPIC_VERSION: HeaderName = HeaderName::from_static("anthropic-version");
const ANTHROPIC_BETA: HeaderName = HeaderName::from_static("anthropic-beta");

/// The headers every call to `dep` carries, built once: content type and credentials.
fn fixed_headers(dep: &Deployment) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let key = |prefix: &str| {
        dep.api_key.as_ref().and_then(|k| {
            let mut v = HeaderValue::from_str(&format!("{prefix}{}", k.expose())).ok()?;
            v.set_sensitive(true);
            Some(v)
        })
    };
    match (dep.provider, dep.dialect) {
        // A bearer token per call, from the Vertex adapter; Bedrock's adapter signs or adds
        // its API key.
        (Provider::Vertex | Provider::Bedrock, _) => {}
        (_, Dialect::Anthropic) => {
            if let Some(k) = key("") {
                h.insert("x-api-key", k);
            }
        }
        // In a header rather than `?key=`, so that no URL (logged by proxies) holds it.
        (_, Dialect::Gemini) => {
            if let Some(k) = key("") {
                h.insert("x-goog-api-key", k);
            }
        }
        (Provider::Azure, _) => {
            if let Some(k) = key("") {
                h.insert("api-key", k);
            }
        }
        _ => {
            if let Some(k) = key("Bearer ") {
                h.insert(http::header::AUTHORIZATION, k);
            }
        }
    }
    h
}

/// The HTTP client for one deployment: hyper's pooled client over rustls (Mozilla's roots,
/// HTTP/2 when the provider offers it by ALPN). hyper directly rather than a convenience
/// client: no URL re-parsing, redirect or retry layers on every call (measured ~10% of the
/// gateway's CPU per request), and the gateway has its own policy for all of those.
pub type HttpClient = Client<hyper_rustls::HttpsConnector<Connector>, http_body_util::Full<Bytes>>;

/// Which upstream calls go through a forward proxy: `HTTPS_PROXY` / `HTTP_PROXY` / `ALL_PROXY`
/// and `NO_PROXY` from the environment (either case), as most HTTP clients read them.
pub type Proxies = Option<Arc<Matcher>>;

pub fn proxies_from_env() -> Proxies {
    let m = Matcher::from_env();
    let probe = |u: &'static str| http::Uri::from_static(u);
    // No proxy configured at all: skip the per-connection lookup.
    if m.intercept(&probe("https://example.com")).is_none()
        && m.intercept(&probe("http://example.com")).is_none()
    {
        return None;
    }
    Some(Arc::new(m))
}

/// Connects to the upstream directly, or through a proxy's `CONNECT` tunnel when the proxy
/// settings name one for it (TLS then runs inside the tunnel, end to end with the provider).
#[derive(Clone)]
pub struct Connector {
    http: HttpConnector,
    proxies: Proxies,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower_service::Service<http::Uri> for Connector {
    type Response = TokioIo<tokio::net::TcpStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> Poll<Result<(), BoxError>> {
        self.http.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, dst: http::Uri) -> Self::Future {
        let via = self.proxies.as_ref().and_then(|m| m.intercept(&dst));
        let mut http = self.http.clone();
        match via {
            None => Box::pin(async move { http.call(dst).await.map_err(Into::into) }),
            Some(proxy) => {
                let mut tunnel = Tunnel::new(proxy.uri().clone(), http);
                if let Some(auth) = proxy.basic_auth() {
                    tunnel = tunnel.with_auth(auth.clone());
                }
                Box::pin(async move {
                    // The tunnel assumes 443 when the address names no port.
                    let port = dst.port_u16().unwrap_or(match dst.scheme_str() {
                        Some("http") => 80,
                        _ => 443,
                    });
                    let host = dst.host().unwrap_or_default();
                    let target: http::Uri = format!("tcp://{host}:{port}").parse()?;
                    tunnel.call(target).await.map_err(Into::into)
                })
            }
        }
    }
}

/// An upstream answer whose body has not been read yet.
pub type UpstreamResponse = http::Response<hyper::body::Incoming>;

/// The TLS settings every upstream client shares: Mozilla's roots, ring's crypto.
pub fn tls_config() -> Result<rustls::ClientConfig, String> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    Ok(
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth(),
    )
}

/// Idle upstream connections kept per deployment and serving thread.
const POOL_MAX_IDLE: usize = 32;

pub fn client(
    connect_timeout: Duration,
    tls: rustls::ClientConfig,
    proxies: Proxies,
) -> HttpClient {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    http.enforce_http(false);
    let http = Connector { http, proxies };
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_all_versions()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        // After a burst of streams, keep a working set of connections per deployment and
        // thread, not one per stream of the burst (each holds its buffers, ~20 KiB).
        .pool_max_idle_per_host(POOL_MAX_IDLE)
        .pool_timer(TokioTimer::new())
        .build(https)
}

/// The parsed address of each operation of a deployment, made once at start, except where the
/// model is part of the address and the deployment is a wildcard (Gemini, Azure Chat): those
/// are made per call from `per_model`.
pub struct Endpoints {
    generate: http::Uri,
    stream: http::Uri,
    count_tokens: http::Uri,
    embed: http::Uri,
    per_model: Option<Box<Deployment>>,
    dialect: Dialect,
    provider: Provider,
    fixed_headers: HeaderMap,
    /// `extra_headers` from the config, parsed (invalid names or values are skipped).
    extra_headers: Vec<(HeaderName, HeaderValue)>,
}

impl Endpoints {
    pub fn new(dep: &Deployment) -> Result<Endpoints, String> {
        let parse = |op| {
            let u = url(dep, &dep.upstream_model, op);
            http::Uri::try_from(u.as_str())
                .map_err(|e| format!("deployment {}: api_base is not a valid URL: {e}", dep.id))
        };
        let extra_headers = dep
            .extra_headers
            .iter()
            .filter_map(|(name, value)| {
                Some((
                    HeaderName::try_from(name.as_str()).ok()?,
                    HeaderValue::from_str(value).ok()?,
                ))
            })
            .collect();
        Ok(Endpoints {
            generate: parse(Op::Generate)?,
            stream: parse(Op::Stream)?,
            count_tokens: parse(Op::CountTokens)?,
            embed: parse(Op::Embed)?,
            per_model: (dep.upstream_model.contains('*')
                && url(dep, "a", Op::Generate) != url(dep, "b", Op::Generate))
            .then(|| Box::new(dep.clone())),
            dialect: dep.dialect,
            provider: dep.provider,
            fixed_headers: fixed_headers(dep),
            extra_headers,
        })
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The address of `op` for upstream model `model`.
    pub fn get(&self, op: Op, model: &str) -> Result<http::Uri, String> {
        if let Some(dep) = &self.per_model {
            return http::Uri::try_from(url(dep, model, op).as_str())
                .map_err(|e| format!("model `{model}` does not make a valid URL: {e}"));
        }
        Ok(match op {
            Op::Generate => self.generate.clone(),
            Op::Stream => self.stream.clone(),
            Op::CountTokens => self.count_tokens.clone(),
            Op::Embed => self.embed.clone(),
        })
    }
}

/// Why an upstream call failed before it answered: rendered to the client with `status`.
pub struct CallError {
    pub status: u16,
    pub body: ErrorBody,
}

/// Sends the request; `limit` bounds the wait for the response head.
pub async fn send(
    client: &HttpClient,
    req: crate::provider::UpstreamRequest,
    limit: Duration,
) -> Result<UpstreamResponse, CallError> {
    match tokio::time::timeout(limit, client.request(req)).await {
        Err(_) => Err(CallError {
            status: 504,
            body: ErrorBody::new(
                ErrorKind::Timeout,
                format!(
                    "upstream did not answer within {:.0} s",
                    limit.as_secs_f64()
                ),
            ),
        }),
        Ok(Err(e)) => Err(CallError {
            status: 502,
            body: ErrorBody::new(
                ErrorKind::Server,
                if e.is_connect() {
                    format!("upstream unreachable: connection failed: {}", describe(&e))
                } else {
                    format!("upstream request failed: {}", describe(&e))
                },
            ),
        }),
        Ok(Ok(r)) => Ok(r),
    }
}

/// An error with its chain of causes, for messages to clients and logs. hyper's errors name
/// no URL, so no key in a query string can leak through them.
pub fn describe(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let c_s = c.to_string();
        if !s.contains(&c_s) {
            s.push_str(": ");
            s.push_str(&c_s);
        }
        cause = c.source();
    }
    s
}

/// Response headers worth passing back: rate limits and retry hints (Claude Code reads the
/// `anthropic-ratelimit-unified-*` family; SDKs honour `retry-after`), and the upstream's own
/// request id under a name that does not clash with ours.
pub fn forwardable(upstream: &HeaderMap, out: &mut HeaderMap) {
    for (name, value) in upstream {
        let n = name.as_str();
        if n == "retry-after"
            || n == "retry-after-ms"
            || n == "x-should-retry"
            || n.starts_with("x-ratelimit-")
            || n.starts_with("anthropic-ratelimit-")
        {
            out.append(name.clone(), value.clone());
        } else if n == "request-id" || n == "x-request-id" {
            out.insert("x-upstream-request-id", value.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dep(yaml_model: &str, base: &str, mode: &str) -> Deployment {
        let yaml = format!(
            "model_list:\n  - model_name: m\n    litellm_params: {{model: \"{yaml_model}\", api_base: \"{base}\", api_key: sk-up, api_version: \"2025-01-01\", extra_headers: {{x-team: blue}}}}\n    model_info: {{mode: {mode}}}\n"
        );
        dragoman_config::parse(&yaml, &|_: &str| None)
            .unwrap()
            .deployments
            .remove(0)
    }

    #[test]
    fn urls_follow_each_provider() {
        assert_eq!(
            {
                let d = dep("azure/gpt4o-prod", "https://x.openai.azure.com", "chat");
                url(&d, &d.upstream_model, Op::Generate)
            },
            "https://x.openai.azure.com/openai/deployments/gpt4o-prod/chat/completions?api-version=2025-01-01"
        );
        assert_eq!(
            {
                let d = dep("azure/gpt5", "https://x.openai.azure.com", "responses");
                url(&d, &d.upstream_model, Op::Generate)
            },
            "https://x.openai.azure.com/openai/responses?api-version=2025-01-01"
        );
        assert_eq!(
            {
                let d = dep("anthropic/claude", "https://api.anthropic.com/v1", "chat");
                url(&d, &d.upstream_model, Op::CountTokens)
            },
            "https://api.anthropic.com/v1/messages/count_tokens"
        );
        assert_eq!(
            {
                let d = dep("hosted_vllm/q", "http://h:8000/v1", "responses");
                url(&d, &d.upstream_model, Op::Generate)
            },
            "http://h:8000/v1/responses"
        );
        let g = dep(
            "gemini/gemini-2.5-pro",
            "https://generativelanguage.googleapis.com",
            "chat",
        );
        assert_eq!(
            url(&g, &g.upstream_model, Op::Stream),
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse"
        );
        assert_eq!(
            url(&g, &g.upstream_model, Op::Generate),
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-pro:generateContent"
        );
        assert_eq!(
            url(
                &dep("gemini/gemini-2.5-flash", "http://h/v1", "chat"),
                "gemini-2.5-flash",
                Op::CountTokens
            ),
            "http://h/v1/models/gemini-2.5-flash:countTokens"
        );
        // Embeddings: Azure's per-deployment path, OpenAI-compatible `/embeddings`, Gemini's
        // batch call, Bedrock's InvokeModel with the id encoded as one path segment.
        let a = dep("azure/ada-prod", "https://x.openai.azure.com", "embedding");
        assert_eq!(
            url(&a, &a.upstream_model, Op::Embed),
            "https://x.openai.azure.com/openai/deployments/ada-prod/embeddings?api-version=2025-01-01"
        );
        let v = dep("hosted_vllm/bge", "http://h:8000/v1", "embedding");
        assert_eq!(
            url(&v, &v.upstream_model, Op::Embed),
            "http://h:8000/v1/embeddings"
        );
        assert_eq!(
            url(&g, "gemini-embedding-001", Op::Embed),
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-embedding-001:batchEmbedContents"
        );
        let t = dep(
            "bedrock/amazon.titan-embed-text-v2:0",
            "https://bedrock-runtime.us-east-1.amazonaws.com",
            "embedding",
        );
        assert_eq!(
            url(&t, &t.upstream_model, Op::Embed),
            "https://bedrock-runtime.us-east-1.amazonaws.com/model/amazon.titan-embed-text-v2%3A0/invoke"
        );
        let b = dep(
            "bedrock/arn:aws:bedrock:us-east-1:1:application-inference-profile/x",
            "https://bedrock-runtime.us-east-1.amazonaws.com",
            "chat",
        );
        assert_eq!(
            url(&b, &b.upstream_model, Op::Stream),
            "https://bedrock-runtime.us-east-1.amazonaws.com/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Aapplication-inference-profile%2Fx/converse-stream"
        );
    }

    #[test]
    fn each_provider_gets_its_own_auth_and_only_it() {
        let mut client = HeaderMap::new();
        client.insert(
            "authorization",
            HeaderValue::from_static("Bearer sk-master"),
        );
        client.insert("anthropic-version", HeaderValue::from_static("2023-06-01"));
        client.insert(
            "anthropic-beta",
            HeaderValue::from_static("context-1m-2025-08-07"),
        );
        let az = headers(
            &Endpoints::new(&dep("azure/d", "https://x.openai.azure.com", "chat")).unwrap(),
            Dialect::Anthropic,
            &client,
        );
        assert_eq!(az["api-key"], "sk-up");
        assert!(az.get("authorization").is_none() && az.get("anthropic-beta").is_none());
        assert_eq!(az["x-team"], "blue");
        let an = headers(
            &Endpoints::new(&dep("anthropic/c", "https://api.anthropic.com", "chat")).unwrap(),
            Dialect::Anthropic,
            &client,
        );
        assert_eq!(an["x-api-key"], "sk-up");
        assert_eq!(an["anthropic-beta"], "context-1m-2025-08-07");
        assert!(
            an.get("authorization").is_none(),
            "the client's key never travels upstream"
        );
        let oa = headers(
            &Endpoints::new(&dep("openai/g", "https://api.openai.com/v1", "chat")).unwrap(),
            Dialect::Chat,
            &client,
        );
        assert_eq!(oa["authorization"], "Bearer sk-up");
        let ge = headers(
            &Endpoints::new(&dep(
                "gemini/g",
                "https://generativelanguage.googleapis.com",
                "chat",
            ))
            .unwrap(),
            Dialect::Anthropic,
            &client,
        );
        assert_eq!(ge["x-goog-api-key"], "sk-up");
        assert!(ge.get("authorization").is_none() && ge.get("x-api-key").is_none());
    }
}
