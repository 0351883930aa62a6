//! The attempt loop: walks the router's plan (the group's ranked deployments, then its
//! fallback groups) until one deployment answers. Each attempt is built for its deployment
//! (translated when it speaks another dialect, addressed by its provider adapter), so a
//! fallback may be a model of any dialect.
//!
//! The loop owns the rule that makes retrying safe: it returns as soon as an upstream has
//! produced the first byte of a success, before anything is sent to the client, and never
//! runs again for that request. A stream is therefore never retried once the client can have
//! read from it; what goes wrong later is the pump's to report.

use std::time::Duration;

use axum::http::HeaderMap;
use bytes::Bytes;
use dragoman_config::FailClass;
use dragoman_model::{Dialect, ErrorKind, Losses, Request, ResponseFault, Usage};
use dragoman_translate as hub;
use futures_util::StreamExt;
use tokio::time::Instant;

use crate::Gateway;
use crate::accounting::Tracker;
use crate::envelope::Envelope;
use crate::errors::{GatewayError, Retry, error};
use crate::logsafe::Escaped;
use crate::router::{FallbackKind, Group};
use crate::upstream::{self, Op};

/// What the loop needs to know about the client's request.
pub struct Exchange<'a> {
    pub gw: &'a Gateway,
    pub client: Dialect,
    pub stream: bool,
    pub envelope: &'a Envelope,
    pub body: &'a Bytes,
    pub headers: &'a HeaderMap,
    pub request_id: &'a str,
    /// The client's request in canonical form, decoded on the first attempt that needs it,
    /// with what decoding lost.
    decoded: Option<(Request, Losses)>,
    /// `/v1/embeddings`: the attempts go to embedding deployments only.
    pub embed: bool,
    /// A Responses request that leaned on stored state, expanded (see `conversations`).
    pub conversation: Option<crate::conversations::Expanded>,
    /// The current attempt's W3C `traceparent` and the client's `tracestate`, for the
    /// upstream.
    pub trace: (Option<http::HeaderValue>, Option<http::HeaderValue>),
}

impl<'a> Exchange<'a> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        gw: &'a Gateway,
        client: Dialect,
        stream: bool,
        envelope: &'a Envelope,
        body: &'a Bytes,
        headers: &'a HeaderMap,
        request_id: &'a str,
    ) -> Exchange<'a> {
        Exchange {
            gw,
            client,
            stream,
            envelope,
            body,
            headers,
            request_id,
            decoded: None,
            embed: false,
            conversation: None,
            trace: (None, None),
        }
    }
}

/// An embedding call's upstream bodies, in the deployment's wire format (more than one where
/// the provider embeds one text per call), and what the answer is read with.
pub struct EmbedPlan {
    pub wire: dragoman_embeddings::Wire,
    /// The client's request, where it was decoded (every wire but OpenAI's, whose bodies pass
    /// through with the model renamed).
    pub request: Option<dragoman_embeddings::EmbedRequest>,
    pub bodies: Vec<Bytes>,
}

/// One attempt's request body, in its deployment's dialect.
pub struct Prepared {
    pub upstream_model: String,
    pub body: Bytes,
    pub losses: Losses,
    pub custom_tools: Vec<String>,
    /// The prompt counted locally, for an Anthropic client's `message_start` when the
    /// upstream reports input only at the end.
    pub estimate: Option<u64>,
    pub embed: Option<Box<EmbedPlan>>,
}

pub enum Answer {
    Whole {
        bytes: Bytes,
        usage: Usage,
    },
    /// An embedding answer read from a wire other than OpenAI's.
    Embedded(dragoman_embeddings::EmbedResponse),
    /// The stream's first read, and the rest of it.
    Stream {
        first: Bytes,
        rest: http_body_util::BodyDataStream<hyper::body::Incoming>,
    },
}

/// The deployment that answered, and how.
pub struct Success {
    pub idx: usize,
    pub prepared: Prepared,
    /// Upstream headers worth passing on.
    pub headers: HeaderMap,
    pub answer: Answer,
}

/// How the plan was walked, for the response headers.
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub group: String,
    pub attempts: u32,
    pub retries: u32,
    pub fallbacks: u32,
}

/// Walks the plan for `group`. `sticky` keeps a conversation on its deployment.
pub async fn run(
    ex: &mut Exchange<'_>,
    tracker: &mut Tracker,
    group: Group,
    sticky: Option<u64>,
) -> (Result<Success, GatewayError>, Report) {
    let gw = ex.gw;
    let settings = gw.router.settings();
    let mut report = Report {
        group: group.name.clone(),
        ..Report::default()
    };
    // The whole request, every attempt and wait included, stays within `router_settings
    // .timeout`, or else within the longest timeout of the group's deployments (each attempt
    // also within its own deployment's).
    let budget = settings.timeout.unwrap_or_else(|| {
        group
            .members
            .iter()
            .map(|&i| {
                let d = &gw.config.deployments[i];
                if ex.stream {
                    d.stream_timeout
                } else {
                    d.timeout
                }
            })
            .max()
            .unwrap_or(Duration::from_secs(600))
    });
    let deadline = Instant::now() + budget;
    let mut last: Option<GatewayError> = None;
    let mut tiers = std::collections::VecDeque::from([(group, false)]);
    while let Some((group, is_fallback)) = tiers.pop_front() {
        if Instant::now() >= deadline {
            break;
        }
        if is_fallback {
            report.fallbacks += 1;
            tracing::info!(request_id = %ex.request_id, group = %Escaped(&group.name), "falling back");
        }
        let ranked = match gw.router.rank(&group, sticky) {
            Ok(r) => r,
            Err(at) => {
                let mut e = GatewayError::gateway(
                    ErrorKind::RateLimited,
                    format!(
                        "every deployment of `{}` is at its rpm, tpm or max_parallel_requests limit",
                        group.name
                    ),
                )
                .with_status(429);
                e.retry = Retry::Later {
                    after: Some(at.retry_after),
                };
                if let Ok(v) = http::HeaderValue::from_str(&at.retry_after.as_secs().to_string()) {
                    e.headers.insert(http::header::RETRY_AFTER, v);
                }
                if !is_fallback {
                    extend_fallbacks(gw, &mut tiers, &group.name, FallbackKind::Generic);
                }
                last = Some(e);
                continue;
            }
        };
        let mut banned: Vec<usize> = Vec::new();
        let mut tried: Vec<usize> = Vec::new();
        let mut retries_used = 0u32;
        let mut again = 0u32;
        loop {
            let usable = |i: &usize| !banned.contains(i);
            // The next deployment not yet tried; once all have been, round again.
            let Some(idx) = ranked
                .order
                .iter()
                .copied()
                .find(|i| usable(i) && !tried.contains(i))
                .or_else(|| {
                    let n = ranked.order.iter().filter(|i| usable(i)).count();
                    let k = again as usize % n.max(1);
                    ranked.order.iter().copied().filter(usable).nth(k)
                })
            else {
                break;
            };
            if tried.contains(&idx) {
                // Every deployment has been tried: the same one again, after a backoff.
                let Some(wait) = backoff(last.as_ref(), again, settings) else {
                    break;
                };
                if Instant::now() + wait >= deadline {
                    break;
                }
                again += 1;
                tokio::time::sleep(wait).await;
            }
            let prepared = match prepare(ex, idx, &ranked.group) {
                Ok(p) => p,
                Err(e) if e.retry == Retry::Elsewhere => {
                    banned.push(idx);
                    last.get_or_insert(e);
                    continue;
                }
                Err(e) => return (Err(e), report),
            };
            // With Redis, a deployment's rpm/tpm/max_parallel_requests hold across instances:
            // at its global limit it is passed over like one at its local limit.
            let lease = match global_lease(ex, idx, report.attempts).await {
                Ok(lease) => lease,
                Err(e) => {
                    banned.push(idx);
                    last = Some(e);
                    continue;
                }
            };
            if !tried.is_empty() {
                report.retries += 1;
            }
            tracker.input_estimate = prepared.estimate;
            tracker.attempt(idx, &prepared.upstream_model);
            ex.trace = (tracker.traceparent(), tracker.tracestate());
            tracker.lease_globally(lease);
            tried.push(idx);
            report.attempts += 1;
            let started = Instant::now();
            match try_once(ex, idx, &prepared, deadline).await {
                Ok((headers, answer)) => {
                    gw.router.succeeded(idx, started.elapsed());
                    gw.metrics.attempt(gw.router.id(idx), "ok");
                    gw.metrics
                        .litellm_attempt(&gw.config.deployments[idx], true);
                    return (
                        Ok(Success {
                            idx,
                            prepared,
                            headers,
                            answer,
                        }),
                        report,
                    );
                }
                Err(e) => {
                    let label = outcome_label(&e);
                    tracker.attempt_failed(&label);
                    gw.metrics.attempt(gw.router.id(idx), &label);
                    gw.metrics
                        .litellm_attempt(&gw.config.deployments[idx], false);
                    let after = match e.retry {
                        Retry::Later { after } => after,
                        _ => None,
                    };
                    if let Some(class) = e.blame {
                        gw.router.failed(idx, class, after, started.elapsed());
                    }
                    tracing::warn!(request_id = %ex.request_id, deployment = %gw.router.id(idx), outcome = %label, error = %Escaped(&e.body.message), "upstream attempt failed");
                    let allowed = gw.config.deployments[idx].max_retries.unwrap_or_else(|| {
                        settings.retries_for(e.blame.unwrap_or(FailClass::Server))
                    });
                    let retry = e.retry;
                    last = Some(e);
                    match retry {
                        Retry::Never => break,
                        Retry::Elsewhere => banned.push(idx),
                        Retry::Later { .. } => {}
                    }
                    if retries_used >= allowed {
                        break;
                    }
                    retries_used += 1;
                }
            }
        }
        if !is_fallback && let Some(e) = &last {
            extend_fallbacks(gw, &mut tiers, &group.name, e.fallback());
        }
    }
    let err = last.unwrap_or_else(|| {
        GatewayError::gateway(
            ErrorKind::Timeout,
            "no deployment could be tried within the request's timeout",
        )
        .with_status(504)
    });
    (Err(err), report)
}

/// Claims a slot in deployment `idx`'s shared limits (Redis), when it has limits and Redis
/// answers; `Ok(None)` when there is nothing to claim or Redis is away (the router's local
/// count then decides alone). `Err`: the deployment is at its global limit.
async fn global_lease(
    ex: &Exchange<'_>,
    idx: usize,
    attempt: u32,
) -> Result<Option<crate::accounting::GlobalLease>, GatewayError> {
    use crate::tenancy::shared::{Part, Verdict};
    let gw = ex.gw;
    let d = &gw.config.deployments[idx];
    let Some(shared) = gw.tenancy.shared() else {
        return Ok(None);
    };
    if (d.rpm.is_none() && d.tpm.is_none() && d.max_parallel.is_none()) || !shared.is_up() {
        return Ok(None);
    }
    let base = shared.base("d", &d.id);
    let rid = format!("{}#{attempt}", ex.request_id);
    let part = Part {
        base: base.clone(),
        caps: crate::tenancy::meter::Caps {
            rpm: d.rpm,
            tpm: d.tpm,
            parallel: d.max_parallel.map(u64::from),
            ..Default::default()
        },
        reserve: 0,
        seed: 0,
        period_start: 0,
    };
    match shared.admit(&rid, &[part], crate::tenancy::now_ms()).await {
        Ok(Verdict::Admitted(_)) => Ok(Some(crate::accounting::GlobalLease {
            shared: shared.clone(),
            rid,
            base,
        })),
        Ok(Verdict::Refused(_, what, value, limit)) => {
            let after = Duration::from_millis(value.max(1) as u64);
            let what = match what {
                1 => "requests per minute",
                2 => "tokens per minute",
                _ => "parallel requests",
            };
            let mut e = GatewayError::gateway(
                ErrorKind::RateLimited,
                format!(
                    "deployment `{}` is at its limit of {limit} {what} across instances",
                    d.id
                ),
            )
            .with_status(429);
            e.retry = Retry::Later { after: Some(after) };
            if let Ok(v) = http::HeaderValue::from_str(&after.as_secs().max(1).to_string()) {
                e.headers.insert(http::header::RETRY_AFTER, v);
            }
            Err(e)
        }
        Err(_) => Ok(None),
    }
}

fn extend_fallbacks(
    gw: &Gateway,
    tiers: &mut std::collections::VecDeque<(Group, bool)>,
    group: &str,
    kind: FallbackKind,
) {
    for name in gw.router.fallbacks(group, kind) {
        match gw.router.group(&name) {
            Some(g) => tiers.push_back((g, true)),
            None => {
                tracing::warn!(group = %Escaped(&name), "fallback names a model this gateway does not serve")
            }
        }
    }
}

/// How long to wait before trying a deployment that already failed this request: the
/// upstream's `retry-after` when it gave one and it is within `max_retry_wait` (past it,
/// `None`: waiting that long is not a retry but a stall), else exponential backoff with full
/// jitter from 250 ms, at least `retry_after` from the config.
pub fn backoff(
    last: Option<&GatewayError>,
    again: u32,
    settings: &dragoman_config::RouterSettings,
) -> Option<Duration> {
    let told = match last.map(|e| e.retry) {
        Some(Retry::Later { after }) => after,
        Some(Retry::Never | Retry::Elsewhere) => return None,
        None => None,
    };
    if let Some(t) = told {
        if t > settings.max_retry_wait {
            return None;
        }
        return Some(t.max(settings.retry_after));
    }
    let cap = Duration::from_millis(250u64.saturating_mul(1 << again.min(5)));
    Some(cap.mul_f64(fastrand::f64()).max(settings.retry_after))
}

/// The attempt's outcome as the usage record and metrics name it.
fn outcome_label(e: &GatewayError) -> String {
    if e.body.kind == ErrorKind::Timeout {
        return "timeout".into();
    }
    match e.status {
        Some(s) => s.to_string(),
        None => "error".into(),
    }
}

/// Whether losses refuse the request: `x-dragoman-strict: true|false` decides, else
/// `dragoman_settings.strict_translation`.
fn strict(ex: &Exchange<'_>) -> bool {
    match ex
        .headers
        .get("x-dragoman-strict")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
    {
        Some("true" | "1") => true,
        Some("false" | "0") => false,
        _ => ex.gw.config.server.strict_translation,
    }
}

/// Builds deployment `idx`'s request body. An error with `Retry::Elsewhere` means this
/// deployment cannot take this request (another of the group may); others end the request.
fn prepare(ex: &mut Exchange<'_>, idx: usize, group: &str) -> Result<Prepared, GatewayError> {
    let dep = &ex.gw.config.deployments[idx];
    let client = ex.client;
    let Some(upstream_model) = dep.resolve(group) else {
        let mut e = GatewayError::gateway(
            ErrorKind::NotFound,
            format!("deployment {} does not serve `{group}`", dep.id),
        );
        e.retry = Retry::Elsewhere;
        return Err(e);
    };
    if ex.embed || dep.embedding {
        return prepare_embed(ex, idx, group, upstream_model);
    }
    // A conversation expanded from the store goes as expanded, except to the deployment that
    // holds it itself (OpenAI resolves its own ids), or to any Responses deployment when it
    // names ids this gateway does not hold.
    let (body, reencode) = match &ex.conversation {
        None => (ex.body, false),
        Some(c) => {
            let own = dep.dialect == Dialect::Responses
                && (c.missing.is_some() || c.native.as_deref() == Some(dep.id.as_str()));
            if own {
                // With ids it does not hold, the body as given (its compaction items opened).
                (
                    if c.missing.is_some() {
                        &c.body
                    } else {
                        ex.body
                    },
                    false,
                )
            } else if let Some(e) = &c.missing {
                let mut e = e.clone();
                e.retry = Retry::Elsewhere;
                return Err(e);
            } else {
                // Another Responses server must not be sent reasoning sealed by a foreign
                // family: through the canonical model, whose encoder drops what it cannot take.
                (&c.body, dep.dialect == Dialect::Responses && !c.relay)
            }
        }
    };
    if dep.dialect == client && !reencode {
        // A dialect that names its model in the URL has the upstream's in the deployment's
        // address already; its body goes as it came.
        let body = if client.model_in_body() {
            ex.envelope.passthrough_body(
                body,
                &upstream_model,
                client == Dialect::Chat && ex.stream,
            )
        } else {
            body.clone()
        };
        return Ok(Prepared {
            body,
            upstream_model,
            losses: Losses::new(),
            custom_tools: Vec::new(),
            estimate: None,
            embed: None,
        });
    }
    let elsewhere = |msg: String| {
        let mut e = GatewayError::client(ErrorKind::InvalidRequest, msg);
        e.retry = Retry::Elsewhere;
        e
    };
    if client == Dialect::Responses && ex.envelope.previous_response_id && ex.conversation.is_none()
    {
        return Err(elsewhere("previous_response_id cannot be honoured: this model is not served by the Responses API and this gateway has no response store (a database); send the full conversation in `input`".into()));
    }
    if ex.decoded.is_none() {
        let mut losses = Losses::new();
        let req = hub::decode_request(client, body, &mut losses)
            .map_err(|e| GatewayError::client(ErrorKind::InvalidRequest, e.to_string()))?;
        ex.decoded = Some((req, losses));
    }
    let Some((req, decode_losses)) = ex.decoded.as_mut() else {
        return Err(GatewayError::gateway(
            ErrorKind::Server,
            "request not decoded",
        ));
    };
    let unresolvable = hub::unresolvable_items(client, dep.dialect, req);
    if !unresolvable.is_empty() {
        return Err(elsewhere(format!(
            "input: {} cannot be sent to this model (served by the {} API): only the server that made it can read it (a reference into its conversation store, or a compaction it sealed); send the item itself, or the conversation uncompacted",
            unresolvable.join(", "),
            dep.dialect
        )));
    }
    req.model = upstream_model.clone();
    // Gemini clients say it in the path, not the body.
    req.stream = ex.stream;
    if let Some(field) = &dep.reasoning_field {
        hub::replay_reasoning(dep.dialect, req, field);
    }
    let mut losses = decode_losses.clone();
    let custom_tools = hub::custom_tools_to_unwrap(req, dep.dialect);
    let estimate = (ex.stream && dep.dialect != Dialect::Anthropic)
        .then(|| crate::tokens::estimate_prompt(req));
    let body = Bytes::from(
        serde_json::to_vec(&hub::encode_request(dep.dialect, req, &mut losses)).unwrap_or_default(),
    );
    if !losses.is_empty() {
        tracing::debug!(request_id = %ex.request_id, losses = ?losses.iter().map(|l| l.to_string()).collect::<Vec<_>>(), "request translation losses");
        if strict(ex) {
            let list: Vec<String> = losses.iter().map(|l| l.to_string()).collect();
            return Err(elsewhere(format!(
                "strict translation: this request cannot reach `{group}` (served by the {} API) without loss: {}",
                dep.dialect,
                list.join("; ")
            )));
        }
    }
    Ok(Prepared {
        upstream_model,
        body,
        losses,
        custom_tools,
        estimate,
        embed: None,
    })
}

/// The wire an embedding deployment speaks.
pub(crate) fn embed_wire(
    dep: &dragoman_config::Deployment,
    model: &str,
) -> Option<dragoman_embeddings::Wire> {
    use dragoman_config::Provider;
    use dragoman_embeddings::Wire;
    match dep.provider {
        Provider::Gemini => Some(Wire::Gemini),
        Provider::Vertex => Some(Wire::Vertex),
        Provider::Bedrock => Wire::for_bedrock_model(model),
        Provider::Anthropic => None,
        Provider::OpenAi | Provider::Azure | Provider::OpenAiCompatible(_) => Some(Wire::OpenAi),
    }
}

/// Builds an embedding attempt: only `mode: embedding` deployments take `/v1/embeddings`, and
/// they take nothing else.
fn prepare_embed(
    ex: &mut Exchange<'_>,
    idx: usize,
    group: &str,
    upstream_model: String,
) -> Result<Prepared, GatewayError> {
    let dep = &ex.gw.config.deployments[idx];
    let refuse = |msg: String| {
        let mut e = GatewayError::client(ErrorKind::InvalidRequest, msg);
        e.retry = Retry::Elsewhere;
        Err(e)
    };
    if !ex.embed {
        return refuse(format!(
            "`{group}` is an embedding model: call POST /v1/embeddings"
        ));
    }
    if !dep.embedding {
        return refuse(format!(
            "`{group}` is not an embedding model (its deployments need model_info.mode: embedding)"
        ));
    }
    let Some(wire) = embed_wire(dep, &upstream_model) else {
        return refuse(format!(
            "{} has no embedding API dragoman speaks for `{upstream_model}`",
            dep.provider.name()
        ));
    };
    let plan = if wire == dragoman_embeddings::Wire::OpenAi {
        EmbedPlan {
            wire,
            request: None,
            bodies: vec![
                ex.envelope
                    .passthrough_body(ex.body, &upstream_model, false),
            ],
        }
    } else {
        let req = dragoman_embeddings::decode_request(ex.body)
            .map_err(|e| GatewayError::client(ErrorKind::InvalidRequest, e.to_string()))?;
        let bodies = dragoman_embeddings::encode_request(wire, &req, &upstream_model)
            .map_err(|e| {
                let mut g = GatewayError::client(ErrorKind::InvalidRequest, e.to_string());
                // Another deployment of the group may take what this one cannot.
                g.retry = Retry::Elsewhere;
                g
            })?
            .iter()
            .map(|v| Bytes::from(serde_json::to_vec(v).unwrap_or_default()))
            .collect();
        EmbedPlan {
            wire,
            request: Some(req),
            bodies,
        }
    };
    Ok(Prepared {
        body: plan.bodies.first().cloned().unwrap_or_default(),
        upstream_model,
        losses: Losses::new(),
        custom_tools: Vec::new(),
        estimate: None,
        embed: Some(Box::new(plan)),
    })
}

/// One attempt: send, and read until success is certain (a whole body checked, or a
/// stream's first read that is not an error) or a failure is known.
async fn try_once(
    ex: &Exchange<'_>,
    idx: usize,
    prepared: &Prepared,
    deadline: Instant,
) -> Result<(HeaderMap, Answer), GatewayError> {
    if let Some(plan) = &prepared.embed {
        return embed_once(ex, idx, prepared, plan, deadline).await;
    }
    let op = if ex.stream { Op::Stream } else { Op::Generate };
    let (fwd, resp, until, own) = send(
        ex,
        idx,
        op,
        &prepared.upstream_model,
        prepared.body.clone(),
        deadline,
    )
    .await?;
    let gw = ex.gw;
    let dep = &gw.config.deployments[idx];
    let max = gw.config.server.max_upstream_body_bytes;
    if !ex.stream {
        let bytes = read_whole(resp, until, max, &fwd).await?;
        // A 200 is not a success until the body says so.
        return match hub::check_response(dep.dialect, &bytes) {
            Ok(usage) => Ok((fwd, Answer::Whole { bytes, usage })),
            Err(ResponseFault::Malformed(m)) => Err(GatewayError::upstream(
                error(
                    ErrorKind::Server,
                    format!("upstream sent a response dragoman cannot read: {m}"),
                ),
                502,
                fwd,
            )),
            Err(ResponseFault::Failed(e)) => {
                let s = e.status.unwrap_or(e.kind.status());
                Err(GatewayError::upstream(e, s, fwd))
            }
        };
    }
    let mut rest = http_body_util::BodyDataStream::new(resp.into_body());
    let first = match tokio::time::timeout_at(until, rest.next()).await {
        Err(_) => {
            return Err(GatewayError::upstream(
                error(
                    ErrorKind::Timeout,
                    format!(
                        "upstream sent no stream data within {:.0} s",
                        own.as_secs_f64()
                    ),
                ),
                504,
                fwd,
            ));
        }
        Ok(None) => {
            return Err(GatewayError::upstream(
                error(
                    ErrorKind::Server,
                    "upstream ended the stream before sending anything",
                ),
                502,
                fwd,
            ));
        }
        Ok(Some(Err(e))) => {
            return Err(GatewayError::upstream(
                error(
                    ErrorKind::Server,
                    format!(
                        "upstream stream failed before its first byte: {}",
                        upstream::describe(&e)
                    ),
                ),
                502,
                fwd,
            ));
        }
        Ok(Some(Ok(chunk))) => chunk,
    };
    let framing = gw.adapters[idx]
        .framing()
        .unwrap_or_else(|| dep.dialect.framing());
    if let Some(e) = hub::stream_opening_error(dep.dialect, framing, &first) {
        let s = e.status.unwrap_or(e.kind.status());
        return Err(GatewayError::upstream(e, s, fwd));
    }
    Ok((fwd, Answer::Stream { first, rest }))
}

/// Sends one request of an attempt and reads an error answer whole: a success comes back as
/// the response with its forwardable headers, the time it must finish by, and the deployment's
/// own timeout.
async fn send(
    ex: &Exchange<'_>,
    idx: usize,
    op: Op,
    model: &str,
    body: Bytes,
    deadline: Instant,
) -> Result<(HeaderMap, upstream::UpstreamResponse, Instant, Duration), GatewayError> {
    let gw = ex.gw;
    let dep = &gw.config.deployments[idx];
    let adapter = &gw.adapters[idx];
    if let Some(auth) = adapter.pending_auth() {
        auth.await
            .map_err(|b| GatewayError::gateway(b.kind, b.message).with_status(502))?;
    }
    let mut req = adapter
        .build(op, model, ex.client, ex.headers, body)
        .map_err(|b| GatewayError::gateway(b.kind, b.message))?;
    // After signing: SigV4 leaves unsigned headers alone.
    if let Some(tp) = &ex.trace.0 {
        req.headers_mut()
            .insert(crate::telemetry::TRACEPARENT, tp.clone());
        if let Some(ts) = &ex.trace.1 {
            req.headers_mut()
                .insert(http::HeaderName::from_static("tracestate"), ts.clone());
        }
    }
    let now = Instant::now();
    // `timeout` bounds a whole answer from the call to its last byte; a stream's first byte
    // must come within `stream_timeout` (later ones: the pump's idle limit).
    let own = if op == Op::Stream {
        dep.stream_timeout
    } else {
        dep.timeout
    };
    let until = deadline.min(now + own);
    let resp = upstream::send(gw.client(idx), req, until.saturating_duration_since(now))
        .await
        .map_err(|e| GatewayError::upstream(e.body, e.status, HeaderMap::new()))?;
    let status = resp.status().as_u16();
    let mut fwd = HeaderMap::new();
    upstream::forwardable(resp.headers(), &mut fwd);
    if status >= 400 {
        let err_dialect = adapter.error_dialect().unwrap_or(dep.dialect);
        let upstream_headers = resp.headers().clone();
        let bytes =
            crate::proxy::read_upstream(resp, until, gw.config.server.max_upstream_body_bytes)
                .await
                .unwrap_or_default();
        // The upstream's own error envelope is kept for a client of its dialect; anything
        // else (a proxy's HTML page, an empty body) is described with its status.
        let envelope = matches!(
            hub::check_response(err_dialect, &bytes),
            Err(ResponseFault::Failed(_))
        );
        let mut body = if envelope {
            hub::decode_error(err_dialect, Some(status), &bytes)
        } else {
            crate::proxy::not_an_error_envelope(status, &bytes)
        };
        adapter.refine_error(&upstream_headers, &mut body);
        let mut e = GatewayError::upstream(body, status, fwd);
        e.answered = true;
        if envelope {
            e.raw = Some((err_dialect, bytes));
        }
        return Err(e);
    }
    Ok((fwd, resp, until, own))
}

async fn read_whole(
    resp: upstream::UpstreamResponse,
    until: Instant,
    max: usize,
    fwd: &HeaderMap,
) -> Result<Bytes, GatewayError> {
    crate::proxy::read_upstream(resp, until, max)
        .await
        .map_err(|e| {
            let s = if e.kind == ErrorKind::Timeout {
                504
            } else {
                502
            };
            GatewayError::upstream(e, s, fwd.clone())
        })
}

/// An embedding attempt: every body of the plan is sent (at once, where the provider takes
/// one text per call) and all must succeed; the answers are read into vectors here, so an
/// answer dragoman cannot read fails the attempt and the next deployment is tried.
async fn embed_once(
    ex: &Exchange<'_>,
    idx: usize,
    prepared: &Prepared,
    plan: &EmbedPlan,
    deadline: Instant,
) -> Result<(HeaderMap, Answer), GatewayError> {
    let max = ex.gw.config.server.max_upstream_body_bytes;
    let calls = plan.bodies.iter().map(|b| async {
        let (fwd, resp, until, _) = send(
            ex,
            idx,
            Op::Embed,
            &prepared.upstream_model,
            b.clone(),
            deadline,
        )
        .await?;
        let tokens = resp
            .headers()
            .get("x-amzn-bedrock-input-token-count")
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        let bytes = read_whole(resp, until, max, &fwd).await?;
        Ok::<_, GatewayError>((fwd, bytes, tokens))
    });
    let answers = futures_util::future::try_join_all(calls).await?;
    let unreadable = |m: String, fwd: HeaderMap| {
        GatewayError::upstream(
            error(
                ErrorKind::Server,
                format!("upstream sent an embedding answer dragoman cannot read: {m}"),
            ),
            502,
            fwd,
        )
    };
    let fwd = answers.first().map(|a| a.0.clone()).unwrap_or_default();
    if plan.wire == dragoman_embeddings::Wire::OpenAi {
        let (fwd, bytes, _) = answers.into_iter().next().unwrap_or_default();
        let Some(n) = dragoman_embeddings::openai_usage(&bytes) else {
            return Err(unreadable("no usage".into(), fwd));
        };
        let usage = Usage {
            input_uncached: Some(n),
            output: Some(0),
            ..Usage::default()
        };
        return Ok((fwd, Answer::Whole { bytes, usage }));
    }
    let parts: Vec<dragoman_embeddings::Part<'_>> = answers
        .iter()
        .map(|(_, b, t)| dragoman_embeddings::Part {
            body: b,
            header_tokens: *t,
        })
        .collect();
    let mut resp = dragoman_embeddings::decode_response(plan.wire, &parts)
        .map_err(|e| unreadable(e.to_string(), fwd.clone()))?;
    if resp.input_tokens.is_none()
        && let Some(req) = &plan.request
    {
        resp.input_tokens = Some(dragoman_embeddings::estimate_tokens(req));
    }
    Ok((fwd, Answer::Embedded(resp)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn failure(status: u16, after_ms: Option<u64>) -> GatewayError {
        let mut h = HeaderMap::new();
        if let Some(ms) = after_ms {
            h.insert("retry-after-ms", ms.to_string().parse().unwrap());
        }
        GatewayError::upstream(
            dragoman_model::ErrorBody::new(ErrorKind::from_status(status), "x"),
            status,
            h,
        )
    }

    #[test]
    fn only_transient_failures_are_retried_in_place() {
        for s in [408, 429, 500, 502, 503, 504, 529] {
            assert!(matches!(failure(s, None).retry, Retry::Later { .. }), "{s}");
        }
        for s in [401, 403, 404] {
            assert_eq!(failure(s, None).retry, Retry::Elsewhere, "{s}");
        }
        for s in [400, 413, 422] {
            assert_eq!(failure(s, None).retry, Retry::Never, "{s}");
        }
    }

    proptest! {
        /// Retry waits honour the upstream's hint up to the cap, never wait on a failure that
        /// will not change, and stay under the backoff cap otherwise.
        #[test]
        fn backoff_is_bounded(status in prop::sample::select(vec![400u16, 401, 429, 500, 529]), after in prop::option::of(0u64..30_000), again in 0u32..10) {
            let s = dragoman_config::RouterSettings::default();
            let e = failure(status, after);
            match backoff(Some(&e), again, &s) {
                None => {
                    let later = matches!(e.retry, Retry::Later { .. });
                    prop_assert!(
                        !later || after.is_some_and(|a| Duration::from_millis(a) > s.max_retry_wait)
                    );
                }
                Some(w) => {
                    let later = matches!(e.retry, Retry::Later { .. });
                    prop_assert!(later);
                    match after {
                        Some(a) => prop_assert_eq!(w, Duration::from_millis(a)),
                        None => prop_assert!(w <= Duration::from_secs(8)),
                    }
                }
            }
        }
    }
}
