//! Errors the gateway answers with before the first byte, rendered in the client's dialect.
//! This is the one place a gateway-made error becomes an HTTP response.

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use dragoman_model::{Dialect, ErrorBody, ErrorKind};

/// Renders `err` as `dialect` expects: its envelope and status. `status` overrides the kind's
/// default (an upstream's own status is kept for OpenAI clients).
pub fn render(
    dialect: Dialect,
    err: &ErrorBody,
    status: Option<u16>,
    request_id: &str,
) -> Response {
    let (default_status, body) = dragoman_translate::encode_error(dialect, err);
    let status = status.unwrap_or(default_status);
    let mut resp = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body.to_string(),
    )
        .into_response();
    set_request_id(resp.headers_mut(), request_id);
    if err.kind.retryable() {
        resp.headers_mut()
            .insert("x-should-retry", HeaderValue::from_static("true"));
    }
    resp
}

pub fn error(kind: ErrorKind, message: impl Into<String>) -> ErrorBody {
    ErrorBody::new(kind, message)
}

const REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

pub fn set_request_id(headers: &mut HeaderMap, id: &str) {
    if let Ok(v) = HeaderValue::from_str(id) {
        headers.insert(REQUEST_ID, v);
    }
}

/// Who caused an error: the client's request, the gateway itself, or an upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Client,
    Gateway,
    Upstream,
}

/// What trying again can do about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// The same request would fail the same way anywhere (a bad request, a refusal).
    Never,
    /// This deployment cannot serve it (its credential or model is wrong); another may.
    Elsewhere,
    /// Transient: this deployment or another may serve it, after `after` when the upstream
    /// said so.
    Later { after: Option<std::time::Duration> },
}

/// One error of the gateway, before the first byte: what to tell the client, who caused it,
/// and what the attempt loop may do about it.
#[derive(Debug, Clone)]
pub struct GatewayError {
    /// Boxed: a `Result` carrying this stays small on the success path.
    pub body: Box<ErrorBody>,
    pub source: Source,
    /// The status to answer with; `None`: the kind's own.
    pub status: Option<u16>,
    pub retry: Retry,
    /// The deployment's failure class, when the deployment is to blame (feeds cooldowns).
    pub blame: Option<dragoman_config::FailClass>,
    /// Upstream headers worth passing on (rate limits, retry hints).
    pub headers: Box<HeaderMap>,
    /// The upstream's own error body, kept byte for byte for a client of its dialect.
    pub raw: Option<(dragoman_model::Dialect, bytes::Bytes)>,
    /// The upstream answered with an error status (rather than failing to answer).
    pub answered: bool,
}

impl GatewayError {
    fn new(kind: ErrorKind, message: impl Into<String>, source: Source) -> GatewayError {
        GatewayError {
            body: Box::new(ErrorBody::new(kind, message)),
            source,
            status: None,
            retry: Retry::Never,
            blame: None,
            headers: Box::default(),
            raw: None,
            answered: false,
        }
    }

    /// The client's request is wrong.
    pub fn client(kind: ErrorKind, message: impl Into<String>) -> GatewayError {
        GatewayError::new(kind, message, Source::Client)
    }

    /// The gateway cannot serve it (nothing routable, a limit).
    pub fn gateway(kind: ErrorKind, message: impl Into<String>) -> GatewayError {
        GatewayError::new(kind, message, Source::Gateway)
    }

    pub fn with_status(mut self, status: u16) -> GatewayError {
        self.status = Some(status);
        self
    }

    /// An upstream failure: the deployment could not be reached, did not answer in time, or
    /// answered with an error. Classifies it for retries, cooldowns and fallbacks.
    pub fn upstream(body: ErrorBody, status: u16, headers: HeaderMap) -> GatewayError {
        use dragoman_config::FailClass;
        let after = retry_after(&headers);
        let (retry, blame) = match (status, body.kind) {
            (429, _) | (_, ErrorKind::RateLimited) => {
                (Retry::Later { after }, Some(FailClass::RateLimit))
            }
            (408 | 504, _) | (_, ErrorKind::Timeout) => {
                (Retry::Later { after }, Some(FailClass::Timeout))
            }
            (500 | 502 | 503 | 529, _) | (_, ErrorKind::Server | ErrorKind::Overloaded) => {
                (Retry::Later { after }, Some(FailClass::Server))
            }
            // The gateway holds the provider credential: a refusal of it, or a model the
            // provider does not know, is this deployment's fault and no other's.
            (401 | 403, _) | (_, ErrorKind::Authentication | ErrorKind::Permission) => {
                (Retry::Elsewhere, Some(FailClass::Authentication))
            }
            (402, _) | (_, ErrorKind::Billing) => {
                (Retry::Elsewhere, Some(FailClass::Authentication))
            }
            (404, _) | (_, ErrorKind::NotFound) => (Retry::Elsewhere, None),
            _ => (Retry::Never, None),
        };
        GatewayError {
            body: Box::new(body),
            source: Source::Upstream,
            status: Some(status),
            retry,
            blame,
            headers: Box::new(headers),
            raw: None,
            answered: false,
        }
    }

    /// Which fallback list this failure calls for once the group is exhausted.
    pub fn fallback(&self) -> crate::router::FallbackKind {
        use crate::router::FallbackKind;
        if self.source != Source::Upstream {
            return FallbackKind::None;
        }
        if self.body.is_context_window() {
            return FallbackKind::ContextWindow;
        }
        if self.body.is_content_policy() {
            return FallbackKind::ContentPolicy;
        }
        match self.retry {
            Retry::Never => FallbackKind::None,
            _ => FallbackKind::Generic,
        }
    }
}

/// `retry-after-ms` (OpenAI's, milliseconds) or `retry-after` in seconds; an HTTP date is not
/// honoured (no provider sends one).
pub fn retry_after(headers: &HeaderMap) -> Option<std::time::Duration> {
    let num = |name: &str| -> Option<f64> {
        let v: f64 = headers.get(name)?.to_str().ok()?.trim().parse().ok()?;
        (v.is_finite() && v >= 0.0).then_some(v)
    };
    if let Some(ms) = num("retry-after-ms") {
        return Some(std::time::Duration::from_secs_f64(ms / 1000.0));
    }
    num("retry-after").map(std::time::Duration::from_secs_f64)
}
