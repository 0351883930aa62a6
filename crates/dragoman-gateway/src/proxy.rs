//! The life of one request: authenticate, read the body within its limit, route by model,
//! translate (or pass through with the model renamed), call the deployment, answer — and leave
//! one usage record whatever happens (see `accounting::Tracker`).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use dragoman_model::{Dialect, ErrorBody, ErrorKind, Losses, StreamOptions, Usage};
use dragoman_translate as hub;
use futures_util::StreamExt;
use serde_json::Value;

use crate::Gateway;
use crate::accounting::Tracker;
use crate::attempt::{Answer, Exchange, Success};
use crate::envelope::{Envelope, EnvelopeError};
use crate::errors::{GatewayError, Source};
use crate::errors::{error, render, set_request_id};
use crate::pump::{Context, Mode, Pump};
use crate::upstream::{self, Op};

#[derive(Clone, Copy)]
pub enum Endpoint {
    Generate(Dialect),
    /// A token count in the dialect's own endpoint (Anthropic's `count_tokens`, Gemini's
    /// `:countTokens`).
    CountTokens(Dialect),
    /// OpenAI's `/v1/embeddings`, served by `mode: embedding` deployments of any provider.
    Embeddings,
}

/// The model and stream flag a dialect carries in its URL rather than its body (Gemini's
/// `/v1beta/models/{model}:streamGenerateContent`), put on the request by its route.
#[derive(Debug, Clone)]
pub struct PathModel {
    pub model: String,
    pub stream: bool,
}

/// A request id that sorts by time: milliseconds first, then randomness. Time order keeps the
/// store's request-id index appending at its end instead of writing pages all over it (measured:
/// 12 µs of SQLite CPU per record with random ids, 6 µs with ordered ones).
pub fn new_request_id() -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let rand = fastrand::u64(..);
    let mut id = String::with_capacity(28);
    id.push_str("req_");
    // 12 hex digits of milliseconds (zero-padded), then 12 of randomness.
    for (v, shift) in [(ms, 44), (rand, 44)] {
        for i in 0..12 {
            let nibble = (v >> (shift - 4 * i)) & 0xf;
            id.push(char::from(HEX[nibble as usize]));
        }
    }
    id
}

/// The header listing what translation dropped or approximated.
const LOSSES_HEADER: HeaderName = HeaderName::from_static("x-dragoman-dropped");
const DEPLOYMENT_HEADER: HeaderName = HeaderName::from_static("x-dragoman-deployment");
const COST_HEADER: HeaderName = HeaderName::from_static("x-dragoman-response-cost");
/// LiteLLM's name for the cost header, which existing dashboards read.
const LITELLM_COST_HEADER: HeaderName = HeaderName::from_static("x-litellm-response-cost");
const ACCEL_BUFFERING: HeaderName = HeaderName::from_static("x-accel-buffering");
/// Whether the response cache answered (`hit`) or will keep this answer (`miss`).
const CACHE_HEADER: HeaderName = HeaderName::from_static("x-dragoman-cache");
/// LiteLLM's name for the entry's key.
const LITELLM_CACHE_KEY: HeaderName = HeaderName::from_static("x-litellm-cache-key");

/// Counts a request or stream in an in-flight gauge for as long as it lives.
pub struct InFlight(prometheus_client::metrics::gauge::Gauge);

impl InFlight {
    pub fn new(g: &prometheus_client::metrics::gauge::Gauge) -> InFlight {
        g.inc();
        InFlight(g.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Renders an error before the first byte and records how the request ended.
fn refuse(
    mut tracker: Tracker,
    client: Dialect,
    err: &ErrorBody,
    status: Option<u16>,
    id: &str,
    upstream: bool,
) -> Response {
    let resp = render(client, err, status, id);
    tracker.error_message(&err.message);
    tracker.failed(err.kind, resp.status().as_u16(), upstream);
    resp
}

/// What one admitted request carries to the attempt loop.
struct Call<'a> {
    gw: &'a Gateway,
    group: crate::router::Group,
    envelope: Envelope,
    body: Bytes,
    headers: HeaderMap,
    /// The model name as the client sent it.
    model: String,
    request_id: String,
    client: Dialect,
    started: std::time::Instant,
    tracker: Tracker,
    principal: crate::principal::Principal,
    conversation: Option<crate::conversations::Expanded>,
}

/// Session headers coding agents send on every turn of one conversation: Claude Code's, and
/// Codex's (both spellings seen).
const SESSION_HEADERS: [&str; 4] = [
    "x-claude-code-session-id",
    "session_id",
    "session-id",
    "x-session-id",
];

/// What keeps one conversation on one deployment (so the provider's prompt cache keeps
/// hitting): a session header, else the body's conversation fields, else the caller and the
/// prompt's stable prefix. A group of one needs none of it.
fn sticky_key(
    headers: &HeaderMap,
    envelope: &Envelope,
    body: &[u8],
    principal: &str,
    group: &crate::router::Group,
) -> Option<u64> {
    if group.members.len() < 2 {
        return None;
    }
    SESSION_HEADERS
        .iter()
        .find_map(|n| headers.get(*n))
        .map(|v| crate::envelope::hash_bytes(v.as_bytes()))
        .or(envelope.conversation)
        .or_else(|| {
            envelope
                .prefix(body)
                .map(|p| p ^ crate::envelope::hash_bytes(principal.as_bytes()))
        })
}

const ATTEMPTS_HEADER: HeaderName = HeaderName::from_static("x-dragoman-attempts");
const LITELLM_RETRIES: HeaderName = HeaderName::from_static("x-litellm-attempted-retries");
const LITELLM_FALLBACKS: HeaderName = HeaderName::from_static("x-litellm-attempted-fallbacks");
const LITELLM_GROUP: HeaderName = HeaderName::from_static("x-litellm-model-group");

fn routing_headers(h: &mut HeaderMap, r: &crate::attempt::Report) {
    h.insert(ATTEMPTS_HEADER, HeaderValue::from(r.attempts));
    h.insert(LITELLM_RETRIES, HeaderValue::from(r.retries));
    h.insert(LITELLM_FALLBACKS, HeaderValue::from(r.fallbacks));
    if let Ok(v) = HeaderValue::from_str(&r.group) {
        h.insert(LITELLM_GROUP, v);
    }
}

/// Answers a gateway error before the first byte, in the client's dialect (the upstream's
/// own envelope, byte for byte, when the client speaks its dialect), and records it.
fn answer_error(
    mut tracker: Tracker,
    client: Dialect,
    e: GatewayError,
    id: &str,
    mut headers: HeaderMap,
) -> Response {
    tracker.error_message(&e.body.message);
    let upstream = e.source == Source::Upstream;
    headers.extend(*e.headers);
    if let (Some((d, raw)), Some(status)) = (e.raw, e.status)
        && d == client
    {
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        tracker.failed(e.body.kind, status, upstream);
        return (
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
            headers,
            raw,
        )
            .into_response();
    }
    let status = if e.answered {
        client.upstream_error_status(e.body.kind, e.status)
    } else {
        e.status
    };
    let mut r = render(client, &e.body, status, id);
    tracker.failed(e.body.kind, r.status().as_u16(), upstream);
    r.headers_mut().extend(headers);
    r
}

pub async fn handle(gw: Arc<Gateway>, ep: Endpoint, req: Request) -> Response {
    let id = new_request_id();
    let client = match ep {
        Endpoint::Generate(d) => d,
        Endpoint::CountTokens(d) => d,
        // Embedding clients speak OpenAI's API; its errors are Chat's.
        Endpoint::Embeddings => Dialect::Chat,
    };
    let _in_flight = InFlight::new(&gw.metrics.in_flight_requests);
    let mut tracker = Tracker::new(gw.clone(), &id, client);
    let started = tracker.started();
    let (mut parts, body) = req.into_parts();
    let path_model = parts.extensions.remove::<PathModel>();
    let headers = parts.headers;
    tracker.traced(&headers);
    match ep {
        Endpoint::Embeddings => tracker.operation("embeddings"),
        Endpoint::CountTokens(_) => tracker.operation("count_tokens"),
        Endpoint::Generate(_) => {}
    }
    let principal = match gw.authenticate(&headers) {
        Ok(p) => p,
        Err(e) => {
            return refuse(
                tracker,
                client,
                &error(e.kind(), e.message()),
                None,
                &id,
                false,
            );
        }
    };
    tracker.authenticated(&principal);
    let body = match read_body_in_time(&gw, body, &headers).await {
        Ok(b) => b,
        Err((e, status)) => return refuse(tracker, client, &e, status, &id, false),
    };
    tracker.capture_request(&body);
    let envelope = match Envelope::read(&body) {
        Ok(mut e) => {
            if let Some(p) = path_model {
                e.model = Some(p.model);
                e.stream = p.stream;
            }
            e
        }
        Err(EnvelopeError::NotAnObject) => {
            let e = error(
                ErrorKind::InvalidRequest,
                "request body must be a JSON object",
            );
            return refuse(tracker, client, &e, None, &id, false);
        }
        Err(EnvelopeError::Json(e)) => {
            let e = error(ErrorKind::InvalidRequest, format!("invalid JSON body: {e}"));
            return refuse(tracker, client, &e, None, &id, false);
        }
    };
    let Some(model) = envelope.model.clone() else {
        let e = error(
            ErrorKind::InvalidRequest,
            "model: required field is missing",
        );
        return refuse(tracker, client, &e, None, &id, false);
    };
    if client == Dialect::Responses
        && matches!(ep, Endpoint::Generate(_))
        && crate::compaction::triggered(&body)
    {
        tracker.hand_off();
        return Box::pin(crate::compaction::on_trigger(gw.clone(), headers, body)).await;
    }
    let stream = matches!(ep, Endpoint::Generate(_)) && envelope.stream;
    tracker.requested(&model, stream, envelope.end_user.as_deref());
    let Some(group) = gw.router.group(&model) else {
        let msg = format!("model `{model}` is not served by this gateway (see GET /v1/models)");
        return refuse(
            tracker,
            client,
            &error(ErrorKind::NotFound, msg),
            None,
            &id,
            false,
        );
    };
    let admitted = {
        let worst_cost = || gw.worst_cost(&group, body.len(), envelope.max_output);
        let ask = crate::policy::Ask {
            group: &group.name,
            worst_cost: &worst_cost,
            request_id: &id,
            metered: matches!(ep, Endpoint::Generate(_) | Endpoint::Embeddings),
        };
        crate::policy::admit(&gw.tenancy, &principal, &ask).await
    };
    match admitted {
        Ok(a) => tracker.admitted(a),
        Err(e) => {
            let mut h = HeaderMap::new();
            set_request_id(&mut h, &id);
            return answer_error(tracker, client, e, &id, h);
        }
    }
    // A Responses call that leans on stored state is expanded before routing.
    // Compaction items this gateway made become their summaries first (they may also come
    // back from the store, so again after expansion).
    let conversation = if client == Dialect::Responses && matches!(ep, Endpoint::Generate(_)) {
        let unsealed = crate::compaction::unseal_body(&body);
        let base = unsealed.as_ref().unwrap_or(&body);
        match gw
            .conversations
            .expand(base, envelope.previous_response_id, &principal)
            .await
        {
            Ok(Some(mut c)) => {
                if let Some(b) = crate::compaction::unseal_body(&c.body) {
                    c.body = b;
                    c.native = None;
                }
                if unsealed.is_some() {
                    c.native = None;
                }
                Some(c)
            }
            Ok(None) => unsealed.map(crate::conversations::Expanded::rewritten),
            Err(e) => {
                let mut h = HeaderMap::new();
                set_request_id(&mut h, &id);
                return answer_error(tracker, client, e, &id, h);
            }
        }
    } else {
        None
    };
    let call = Call {
        gw: &gw,
        group,
        envelope,
        body,
        headers,
        model,
        request_id: id,
        client,
        started,
        tracker,
        principal,
        conversation,
    };
    match ep {
        Endpoint::CountTokens(_) => count_tokens(call).await,
        Endpoint::Generate(_) => generate(call, stream).await,
        Endpoint::Embeddings => embeddings(call).await,
    }
}

/// The request body, within the size limit and the body timeout (a client that stops sending
/// mid-way must not hold the connection forever); else the error and, for the timeout, its
/// status (408).
pub async fn read_body_in_time(
    gw: &Gateway,
    body: Body,
    headers: &HeaderMap,
) -> Result<Bytes, (ErrorBody, Option<u16>)> {
    let body_timeout = gw.config.server.body_read_timeout;
    let read = read_body(body, headers, gw.config.server.max_body_bytes);
    match tokio::time::timeout(body_timeout, read).await {
        Ok(Ok(b)) => Ok(b),
        Ok(Err(e)) => Err((e, None)),
        Err(_) => Err((
            error(
                ErrorKind::InvalidRequest,
                format!(
                    "the request body did not arrive within {:.0} s",
                    body_timeout.as_secs_f64()
                ),
            ),
            Some(408),
        )),
    }
}

async fn read_body(body: Body, headers: &HeaderMap, limit: usize) -> Result<Bytes, ErrorBody> {
    let too_large = || {
        error(
            ErrorKind::RequestTooLarge,
            format!("request body exceeds the {limit}-byte limit"),
        )
    };
    if let Some(len) = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
        && len > limit
    {
        return Err(too_large());
    }
    let mut stream = body.into_data_stream();
    let mut body = Gathered::default();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            error(
                ErrorKind::InvalidRequest,
                format!("could not read the request body: {e}"),
            )
        })?;
        if !body.add(chunk, limit) {
            return Err(too_large());
        }
    }
    Ok(body.finish())
}

/// A body gathered from its chunks: one that arrives in one piece (the usual case) is kept as
/// it came, not copied.
#[derive(Default)]
struct Gathered {
    first: Option<Bytes>,
    buf: BytesMut,
}

impl Gathered {
    /// Adds a chunk; false when it would take the body past `limit` bytes.
    fn add(&mut self, chunk: Bytes, limit: usize) -> bool {
        let so_far = self.first.as_ref().map_or(0, Bytes::len) + self.buf.len();
        if so_far + chunk.len() > limit {
            return false;
        }
        if self.first.is_none() && self.buf.is_empty() {
            self.first = Some(chunk);
        } else {
            if let Some(f) = self.first.take() {
                self.buf.extend_from_slice(&f);
            }
            self.buf.extend_from_slice(&chunk);
        }
        true
    }

    fn finish(self) -> Bytes {
        self.first.unwrap_or_else(|| self.buf.freeze())
    }
}

fn losses_header(headers: &mut HeaderMap, losses: &Losses) {
    if losses.is_empty() {
        return;
    }
    // Paths carry client-chosen names (tool names, unknown keys): anything a header value
    // cannot hold becomes `?`.
    let mut s: Vec<u8> = Vec::with_capacity(64 * losses.len());
    for l in losses.iter() {
        let kind: &[u8] = if l.kind == dragoman_model::LossKind::Dropped {
            b"dropped "
        } else {
            b"approximated "
        };
        let sep = if s.is_empty() { 0 } else { 2 };
        if s.len() + sep + kind.len() + l.path.len() > 2000 {
            s.extend_from_slice(b", ...");
            break;
        }
        if sep > 0 {
            s.extend_from_slice(b", ");
        }
        s.extend_from_slice(kind);
        s.extend(l.path.bytes().map(|b| {
            if b.is_ascii_graphic() || b == b' ' {
                b
            } else {
                b'?'
            }
        }));
    }
    if let Ok(v) = HeaderValue::from_maybe_shared(Bytes::from(s)) {
        headers.insert(LOSSES_HEADER, v);
    }
}

async fn generate(call: Call<'_>, stream: bool) -> Response {
    let Call {
        gw,
        group,
        envelope,
        body,
        headers,
        model,
        request_id: id,
        client,
        started,
        mut tracker,
        principal,
        conversation,
    } = call;
    // The response cache: a hit answers here; a miss remembers where its answer goes.
    let cache = gw.cache.clone().filter(|c| c.serves(client));
    let lookup = cache
        .as_ref()
        .and_then(|c| c.lookup(client, &group.name, &body, &headers));
    if let (Some(c), Some(l)) = (&cache, &lookup)
        && !l.directives.no_cache
        && let Some(entry) = c.get(&l.key).await
    {
        let include_usage = client != Dialect::Chat || envelope.include_usage;
        let (bytes, ct) = crate::cache::replay(client, &entry, stream, include_usage);
        let mut h = HeaderMap::with_capacity(8);
        set_request_id(&mut h, &id);
        h.insert(CACHE_HEADER, HeaderValue::from_static("hit"));
        if let Ok(v) = HeaderValue::from_str(&l.key) {
            h.insert(LITELLM_CACHE_KEY, v);
        }
        h.insert(http::header::CONTENT_TYPE, HeaderValue::from_static(ct));
        h.insert(COST_HEADER, HeaderValue::from_static("0"));
        h.insert(LITELLM_COST_HEADER, HeaderValue::from_static("0"));
        tracker.cache_hit(stream, entry.cost_nanos);
        return with_headers(Body::from(bytes), h);
    }
    let body = lookup
        .as_ref()
        .and_then(|l| l.stripped.clone())
        .unwrap_or(body);
    // Where a miss's answer goes, unless the request said not to keep it.
    let fill = match (&cache, &lookup) {
        (Some(c), Some(l)) if !l.directives.no_store => Some((
            c.clone(),
            l.key.clone(),
            l.directives.ttl.unwrap_or_else(|| c.ttl()),
        )),
        _ => None,
    };
    let sticky = sticky_key(&headers, &envelope, &body, tracker.principal(), &group);
    let mut ex = Exchange::new(gw, client, stream, &envelope, &body, &headers, &id);
    ex.conversation = conversation;
    let (result, report) = crate::attempt::run(&mut ex, &mut tracker, group, sticky).await;
    // Sized for the routing, rate-limit and upstream headers at once: growing a header map
    // rehashes it, and that was most of what the rate-limit headers cost.
    let mut out_headers = HeaderMap::with_capacity(48);
    set_request_id(&mut out_headers, &id);
    routing_headers(&mut out_headers, &report);
    if let Some(l) = &lookup
        && let Ok(v) = HeaderValue::from_str(&l.key)
    {
        out_headers.insert(CACHE_HEADER, HeaderValue::from_static("miss"));
        out_headers.insert(LITELLM_CACHE_KEY, v);
    }
    if let Some(a) = tracker.admission() {
        a.write_headers(client.rate_limit_headers(), &mut out_headers);
    }
    let Success {
        idx,
        prepared,
        headers: upstream_headers,
        answer,
    } = match result {
        Ok(s) => s,
        Err(e) => {
            return answer_error(tracker, client, e, &id, out_headers);
        }
    };
    let dep = &gw.config.deployments[idx];
    out_headers.extend(upstream_headers);
    if let Ok(v) = HeaderValue::from_str(&dep.id) {
        out_headers.insert(DEPLOYMENT_HEADER, v);
    }
    let mut losses = prepared.losses;
    let pending = (client == Dialect::Responses && gw.conversations.enabled()).then(|| {
        crate::conversations::Pending {
            conv: gw.conversations.clone(),
            owner: crate::conversations::owner_of(&principal),
            model: model.clone(),
            deployment: dep.id.clone(),
            upstream: dep.dialect,
            request: body.clone(),
        }
    });
    let ctx = Context {
        request_id: id,
        model,
        started,
    };
    let (first, rest) = match answer {
        Answer::Whole { bytes, usage } => {
            let (out, usage) = if dep.dialect == client {
                // The bytes pass as they came; a span still names the answer, so the exporter
                // reads it.
                tracker.keep_answer(&bytes, true);
                (bytes, usage)
            } else {
                let mut r = match hub::decode_response(dep.dialect, &bytes, &mut losses) {
                    Ok(r) => r,
                    Err(e) => {
                        let msg = format!("upstream sent a response dragoman cannot read: {e}");
                        let mut r = refuse(
                            tracker,
                            client,
                            &error(ErrorKind::Server, msg),
                            Some(502),
                            &ctx.request_id,
                            true,
                        );
                        r.headers_mut().extend(out_headers);
                        return r;
                    }
                };
                hub::unwrap_custom_calls(&mut r, &prepared.custom_tools);
                let body = serde_json::to_vec(&hub::encode_response(client, &r, &mut losses))
                    .unwrap_or_default();
                tracker.answer(&r);
                (Bytes::from(body), r.usage)
            };
            tracker.losses(&losses);
            tracker.keep_answer(&out, false);
            let cost = tracker.answered(200, usage);
            if let Some((c, key, ttl)) = fill {
                c.fill_from_body(key, ttl, client, out.clone(), cost);
            }
            if let Some(c) = cost
                && let Ok(v) = HeaderValue::from_str(&crate::accounting::usd(c))
            {
                out_headers.insert(COST_HEADER, v.clone());
                out_headers.insert(LITELLM_COST_HEADER, v);
            }
            losses_header(&mut out_headers, &losses);
            out_headers.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            if let Some(p) = pending {
                p.keep_body(out.clone());
            }
            return with_headers(Body::from(out), out_headers);
        }
        Answer::Stream { first, rest } => (first, rest),
        Answer::Embedded(_) => {
            let e = error(
                ErrorKind::Server,
                "a generation was answered with embeddings",
            );
            return refuse(tracker, client, &e, Some(502), &ctx.request_id, true);
        }
    };
    losses_header(&mut out_headers, &losses);
    let framing = gw.adapters[idx]
        .framing()
        .unwrap_or_else(|| dep.dialect.framing());
    // Bytes pass through when nothing about them changes; the same dialect in another
    // framing (Claude inside Bedrock's chunks) is re-framed through the hub.
    let collect = fill.is_some() || tracker.wants_content();
    let mode = if dep.dialect == client && framing == client.framing() {
        let tap = hub::PassthroughTap::new(client);
        Mode::Passthrough(Box::new(if collect { tap.collecting() } else { tap }))
    } else {
        let include_usage = client != Dialect::Chat || envelope.include_usage;
        let opts = StreamOptions {
            input_estimate: prepared.estimate.filter(|_| client == Dialect::Anthropic),
            include_usage,
        };
        let t = hub::StreamTranslator::new(dep.dialect, client, opts)
            .with_input_framing(framing)
            .unwrap_custom_tools(prepared.custom_tools);
        Mode::Translate(Box::new(if collect { t.collecting() } else { t }))
    };
    let gauge = InFlight::new(&gw.metrics.in_flight_streams);
    // The first read was taken to be sure the stream is a success; it goes out first.
    let upstream = futures_util::stream::once(std::future::ready(Ok(first))).chain(rest);
    let pump = Pump::new(
        upstream,
        mode,
        gw.config.server.keepalive,
        dep.stream_timeout,
        ctx,
        tracker,
        gauge,
    )
    .capture(pending.map(crate::conversations::StreamCapture::new))
    .fill(fill.map(|(c, key, ttl)| {
        Box::new(move |response, cost_nanos| {
            c.put(
                key,
                crate::cache::Entry {
                    response,
                    cost_nanos,
                },
                ttl,
            )
        }) as crate::pump::Fill
    }));
    out_headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    out_headers.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
    out_headers.insert(ACCEL_BUFFERING, HeaderValue::from_static("no"));
    with_headers(Body::from_stream(pump.into_stream()), out_headers)
}

/// A 200 with `headers` as its header map: handing the map over whole, where axum's
/// `(status, headers, body)` inserts each header again into an empty map that grows as it
/// goes (measured: ~8000 instructions a request with the rate-limit headers).
fn with_headers(body: Body, headers: HeaderMap) -> Response {
    let mut r = Response::new(body);
    *r.headers_mut() = headers;
    r
}

/// Reads a whole upstream body by `deadline` and within `max` bytes.
pub(crate) async fn read_upstream(
    resp: upstream::UpstreamResponse,
    deadline: tokio::time::Instant,
    max: usize,
) -> Result<Bytes, ErrorBody> {
    use http_body_util::BodyExt;
    let read = async move {
        let mut body = resp.into_body();
        let mut gathered = Gathered::default();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| {
                error(
                    ErrorKind::Server,
                    format!("upstream response failed: {}", upstream::describe(&e)),
                )
            })?;
            let Ok(chunk) = frame.into_data() else {
                continue;
            };
            if !gathered.add(chunk, max) {
                return Err(error(
                    ErrorKind::Server,
                    format!(
                        "upstream response exceeds the {max}-byte limit (max_upstream_body_bytes)"
                    ),
                ));
            }
        }
        Ok(gathered.finish())
    };
    match tokio::time::timeout_at(deadline, read).await {
        Ok(r) => r,
        Err(_) => Err(error(
            ErrorKind::Timeout,
            "upstream response did not complete in time",
        )),
    }
}

/// An error status whose body is not the dialect's error envelope (a proxy's HTML page, an
/// empty body): its status and a printable start of what came.
pub(crate) fn not_an_error_envelope(status: u16, bytes: &[u8]) -> ErrorBody {
    let text: String = String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut e = ErrorBody::new(
        ErrorKind::from_status(status),
        if text.trim().is_empty() {
            format!("upstream answered {status} with no error body")
        } else {
            format!("upstream answered {status}: {}", text.trim())
        },
    );
    e.status = Some(status);
    e
}

/// `/v1/embeddings`: the attempt loop with embedding deployments (retries, fallbacks and
/// limits as for generation); an OpenAI-family answer passes through, any other is written as
/// OpenAI's in the encoding the client asked for.
async fn embeddings(call: Call<'_>) -> Response {
    let Call {
        gw,
        group,
        envelope,
        body,
        headers,
        model,
        request_id: id,
        client,
        mut tracker,
        ..
    } = call;
    let mut ex = Exchange::new(gw, client, false, &envelope, &body, &headers, &id);
    ex.embed = true;
    let (result, report) = crate::attempt::run(&mut ex, &mut tracker, group, None).await;
    let mut out_headers = HeaderMap::with_capacity(16);
    set_request_id(&mut out_headers, &id);
    routing_headers(&mut out_headers, &report);
    let s = match result {
        Ok(s) => s,
        Err(e) => {
            return answer_error(tracker, client, e, &id, out_headers);
        }
    };
    let dep = &gw.config.deployments[s.idx];
    if let Ok(v) = HeaderValue::from_str(&dep.id) {
        out_headers.insert(DEPLOYMENT_HEADER, v);
    }
    let (bytes, usage) = match s.answer {
        Answer::Whole { bytes, usage } => (bytes, usage),
        Answer::Embedded(resp) => {
            let encoding = s
                .prepared
                .embed
                .as_ref()
                .and_then(|p| p.request.as_ref())
                .map(|r| r.encoding)
                .unwrap_or(dragoman_embeddings::Encoding::Float);
            let usage = Usage {
                input_uncached: resp.input_tokens,
                output: Some(0),
                ..Usage::default()
            };
            let v = dragoman_embeddings::encode_response(&resp, encoding, &model);
            (
                Bytes::from(serde_json::to_vec(&v).unwrap_or_default()),
                usage,
            )
        }
        Answer::Stream { .. } => {
            let e = error(
                ErrorKind::Server,
                "an embedding call was answered with a stream",
            );
            return refuse(tracker, client, &e, Some(502), &id, true);
        }
    };
    let cost = tracker.answered(200, usage);
    if let Some(c) = cost
        && let Ok(v) = HeaderValue::from_str(&crate::accounting::usd(c))
    {
        out_headers.insert(COST_HEADER, v.clone());
        out_headers.insert(LITELLM_COST_HEADER, v);
    }
    out_headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    with_headers(Body::from(bytes), out_headers)
}

/// A token count (Anthropic's `count_tokens`, Gemini's `:countTokens`): the provider's own
/// counting endpoint for deployments of the client's dialect; a local tokenizer over the
/// translated request for the others. The `x-dragoman-token-count` header says which.
async fn count_tokens(call: Call<'_>) -> Response {
    let Call {
        gw,
        group,
        body,
        headers,
        request_id: id,
        client,
        mut tracker,
        ..
    } = call;
    // Counting is cheap and idempotent, but not worth a retry plan: the best-ranked
    // deployment counts.
    let idx = match gw.router.rank(&group, None) {
        Ok(r) => r.order[0],
        Err(at) => {
            let e = error(
                ErrorKind::RateLimited,
                format!(
                    "every deployment of `{}` is at its limit; retry in {} s",
                    group.name,
                    at.retry_after.as_secs()
                ),
            );
            return refuse(tracker, client, &e, Some(429), &id, false);
        }
    };
    let dep = &gw.config.deployments[idx];
    let upstream_model = dep.resolve(&group.name).unwrap_or_default();
    tracker.attempt(idx, &upstream_model);
    // Not on the hot path: the counting endpoint edits the body as a tree.
    let mut envelope: Value = serde_json::from_slice(&body).unwrap_or_default();
    // A deployment of the client's own dialect counts with the provider's endpoint.
    if dep.dialect == client {
        let body = if client.model_in_body() {
            envelope["model"] = Value::String(upstream_model.clone());
            Bytes::from(serde_json::to_vec(&envelope).unwrap_or_default())
        } else {
            body
        };
        if let Some(auth) = gw.adapters[idx].pending_auth()
            && let Err(e) = auth.await
        {
            return refuse(tracker, client, &e, Some(502), &id, true);
        }
        let req = match gw.adapters[idx].build(
            Op::CountTokens,
            &upstream_model,
            client,
            &headers,
            body,
        ) {
            Ok(r) => r,
            Err(e) => return refuse(tracker, client, &e, Some(500), &id, false),
        };
        let resp = match upstream::send(gw.client(idx), req, dep.timeout).await {
            Ok(r) => r,
            Err(e) => {
                return refuse(tracker, client, &e.body, Some(e.status), &id, true);
            }
        };
        let status = resp.status();
        let mut out_headers = HeaderMap::new();
        upstream::forwardable(resp.headers(), &mut out_headers);
        set_request_id(&mut out_headers, &id);
        out_headers.insert(
            "x-dragoman-token-count",
            HeaderValue::from_static("provider"),
        );
        out_headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let deadline = tokio::time::Instant::now() + dep.timeout;
        let bytes = read_upstream(resp, deadline, gw.config.server.max_upstream_body_bytes)
            .await
            .unwrap_or_default();
        if status.is_success() {
            tracker.answered(status.as_u16(), Usage::default());
            if let Some(n) = gw.adapters[idx].token_count(&bytes) {
                let mut resp = axum::Json(hub::encode_token_count(client, n)).into_response();
                resp.headers_mut().extend(out_headers);
                return resp;
            }
        } else {
            tracker.failed(
                ErrorKind::from_status(status.as_u16()),
                status.as_u16(),
                true,
            );
        }
        return (status, out_headers, bytes).into_response();
    }
    let mut losses = Losses::new();
    let mut req = match hub::decode_count_request(client, &body, &mut losses) {
        Ok(r) => r,
        Err(e) => {
            return refuse(
                tracker,
                client,
                &error(ErrorKind::InvalidRequest, e.to_string()),
                None,
                &id,
                false,
            );
        }
    };
    req.model = upstream_model.clone();
    req.max_tokens = None;
    let translated = hub::encode_request(dep.dialect, &req, &mut losses);
    let n = crate::tokens::count_body(&translated, &upstream_model);
    let (_, name) = crate::tokens::tokenizer_for(&upstream_model);
    tracker.answered(200, Usage::default());
    let mut resp = axum::Json(hub::encode_token_count(client, n as u64)).into_response();
    set_request_id(resp.headers_mut(), &id);
    if let Ok(v) = HeaderValue::from_str(&format!("local; tokenizer={name}")) {
        resp.headers_mut().insert("x-dragoman-token-count", v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ids are `req_`, 12 hex digits of Unix milliseconds, 12 random: they sort by time, which
    /// keeps the store's index appending.
    #[test]
    fn request_ids_carry_the_time_and_sort_by_it() {
        let before = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let a = new_request_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = new_request_id();
        for id in [&a, &b] {
            assert_eq!(id.len(), 28, "{id}");
            assert!(id.starts_with("req_"));
            assert!(
                id[4..]
                    .bytes()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
            );
        }
        let ms = u64::from_str_radix(&a[4..16], 16).unwrap_or(0);
        assert!(ms >= before && ms < before + 1000, "{ms} vs {before}");
        assert!(a < b);
        assert_ne!(a[16..], b[16..]);
    }
}
