//! Provider adapters: how a request to one deployment is addressed and authenticated. The
//! attempt loop asks the deployment's adapter for each attempt's request, so a provider that
//! signs every request (SigV4, short-lived OAuth tokens) is one more adapter, not a change to
//! the loop.

use axum::http::HeaderMap;
use bytes::Bytes;
use dragoman_model::{Dialect, ErrorBody};

use crate::upstream::{self, Op};

/// The request one attempt sends.
pub type UpstreamRequest = http::Request<http_body_util::Full<Bytes>>;

/// Credentials an adapter must fetch before it can build a request.
pub type AuthFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), ErrorBody>> + Send + 'a>>;

pub trait Adapter: Send + Sync {
    /// What to await before [`Adapter::build`] when the adapter has no usable credential yet
    /// (a short-lived token that is missing or expired). `None`, the usual case, costs
    /// nothing; adapters with static keys never have anything to wait for.
    fn pending_auth(&self) -> Option<AuthFuture<'_>> {
        None
    }

    /// How this deployment's streams are framed when it is not its dialect's own way (Claude
    /// inside Bedrock's event-stream chunks).
    fn framing(&self) -> Option<dragoman_model::Framing> {
        None
    }

    /// The dialect this deployment's error bodies come in when it is not the deployment's
    /// (Bedrock answers `{"message"}` whatever the model inside speaks).
    fn error_dialect(&self) -> Option<Dialect> {
        None
    }

    /// Sharpens an upstream error from the answer's headers where the provider puts its type
    /// there (Bedrock's `x-amzn-ErrorType`).
    fn refine_error(&self, _headers: &HeaderMap, _error: &mut ErrorBody) {}

    /// The count in a successful answer of the provider's counting endpoint when it is not the
    /// client dialect's own shape (Bedrock's `{"inputTokens": n}`); `None`: the answer passes
    /// through.
    fn token_count(&self, _body: &[u8]) -> Option<u64> {
        None
    }

    /// Builds the request for `op` on upstream model `model` carrying `body` (already in the
    /// deployment's dialect), from the client's headers where the provider reads any
    /// (Anthropic's beta flags).
    fn build(
        &self,
        op: Op,
        model: &str,
        client: Dialect,
        client_headers: &HeaderMap,
        body: Bytes,
    ) -> Result<UpstreamRequest, ErrorBody>;
}

/// OpenAI, Azure, Anthropic and OpenAI-compatible servers: a fixed URL per operation and a
/// static credential header.
pub struct Static(pub upstream::Endpoints);

impl Adapter for Static {
    fn build(
        &self,
        op: Op,
        model: &str,
        client: Dialect,
        client_headers: &HeaderMap,
        body: Bytes,
    ) -> Result<UpstreamRequest, ErrorBody> {
        let mut req = http::Request::new(http_body_util::Full::new(body));
        *req.method_mut() = http::Method::POST;
        *req.uri_mut() = self
            .0
            .get(op, model)
            .map_err(|m| ErrorBody::new(dragoman_model::ErrorKind::InvalidRequest, m))?;
        *req.headers_mut() = upstream::headers(&self.0, client, client_headers);
        Ok(req)
    }
}
