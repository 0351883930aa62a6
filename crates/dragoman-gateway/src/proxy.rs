//! The life of one request: authenticate, read the body within its limit, route by model,
//! translate (or pass through with the model renamed), call the deployment, answer.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use dragoman_model::{Dialect, ErrorKind, Losses, StreamOptions};
use dragoman_translate as hub;
use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::Gateway;
use crate::errors::{error, render, set_request_id};
use crate::pump::{Context, Mode, Pump};
use crate::upstream::{self, Op};

#[derive(Clone, Copy)]
pub enum Endpoint {
    Generate(Dialect),
    CountTokens,
}

pub fn new_request_id() -> String {
    format!("req_{:016x}{:08x}", fastrand::u64(..), fastrand::u32(..))
}

/// The header listing what translation dropped or approximated.
const LOSSES_HEADER: &str = "x-dragoman-dropped";

pub async fn handle(gw: Arc<Gateway>, ep: Endpoint, req: Request) -> Response {
    let started = Instant::now();
    let id = new_request_id();
    let client = match ep {
        Endpoint::Generate(d) => d,
        Endpoint::CountTokens => Dialect::Anthropic,
    };
    let (parts, body) = req.into_parts();
    let headers = parts.headers;
    if let Err(m) = gw.authorize(&headers) {
        return render(client, &error(ErrorKind::Authentication, m), None, &id);
    }
    let body = match read_body(body, &headers, gw.config.server.max_body_bytes).await {
        Ok(b) => b,
        Err(resp_err) => return render(client, &resp_err, None, &id),
    };
    let envelope: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => {
            return render(
                client,
                &error(
                    ErrorKind::InvalidRequest,
                    "request body must be a JSON object",
                ),
                None,
                &id,
            );
        }
        Err(e) => {
            return render(
                client,
                &error(ErrorKind::InvalidRequest, format!("invalid JSON body: {e}")),
                None,
                &id,
            );
        }
    };
    let Some(model) = envelope
        .get("model")
        .and_then(Value::as_str)
        .map(str::to_owned)
    else {
        return render(
            client,
            &error(
                ErrorKind::InvalidRequest,
                "model: required field is missing",
            ),
            None,
            &id,
        );
    };
    let Some((idx, dep, upstream_model)) = gw.route(&model) else {
        let msg = format!("model `{model}` is not served by this gateway (see GET /v1/models)");
        return render(client, &error(ErrorKind::NotFound, msg), None, &id);
    };
    let ctx = Context {
        request_id: id.clone(),
        model: model.clone(),
        deployment: dep.id.clone(),
        client,
        upstream: dep.dialect,
        started,
    };
    match ep {
        Endpoint::CountTokens => {
            count_tokens(&gw, idx, envelope, &body, upstream_model, &headers, ctx).await
        }
        Endpoint::Generate(_) => {
            generate(&gw, idx, envelope, &body, upstream_model, &headers, ctx).await
        }
    }
}

async fn read_body(
    body: Body,
    headers: &HeaderMap,
    limit: usize,
) -> Result<Bytes, dragoman_model::ErrorBody> {
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
    let mut buf = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            error(
                ErrorKind::InvalidRequest,
                format!("could not read the request body: {e}"),
            )
        })?;
        if buf.len() + chunk.len() > limit {
            return Err(too_large());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

fn losses_header(headers: &mut HeaderMap, losses: &Losses) {
    if losses.is_empty() {
        return;
    }
    let mut s = String::new();
    for l in losses.iter() {
        let item = format!(
            "{} {}",
            if l.kind == dragoman_model::LossKind::Dropped {
                "dropped"
            } else {
                "approximated"
            },
            l.path
        );
        if s.len() + item.len() > 2000 {
            s.push_str(", …");
            break;
        }
        if !s.is_empty() {
            s.push_str(", ");
        }
        s.push_str(&item);
    }
    let clean: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    if let Ok(v) = HeaderValue::from_str(&clean) {
        headers.insert(LOSSES_HEADER, v);
    }
}

async fn generate(
    gw: &Gateway,
    idx: usize,
    mut envelope: Value,
    body: &Bytes,
    upstream_model: String,
    headers: &HeaderMap,
    ctx: Context,
) -> Response {
    let dep = &gw.config.deployments[idx];
    let client = ctx.client;
    let id = ctx.request_id.clone();
    let stream = envelope
        .get("stream")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut losses = Losses::new();
    let mut estimate = None;
    if client == Dialect::Responses
        && dep.dialect != Dialect::Responses
        && envelope
            .get("previous_response_id")
            .is_some_and(|v| !v.is_null())
    {
        let msg = "previous_response_id cannot be honoured: this model is not served by the Responses API and dragoman keeps no response store; send the full conversation in `input`";
        return render(client, &error(ErrorKind::InvalidRequest, msg), None, &id);
    }
    let upstream_body = if dep.dialect == client {
        envelope["model"] = Value::String(upstream_model);
        if client == Dialect::Chat && stream {
            match envelope.get_mut("stream_options") {
                Some(Value::Object(o)) => {
                    o.insert("include_usage".into(), Value::Bool(true));
                }
                _ => envelope["stream_options"] = json!({"include_usage": true}),
            }
        }
        serde_json::to_vec(&envelope).unwrap_or_default()
    } else {
        let mut req = match hub::decode_request(client, body, &mut losses) {
            Ok(r) => r,
            Err(e) => {
                return render(
                    client,
                    &error(ErrorKind::InvalidRequest, e.to_string()),
                    None,
                    &id,
                );
            }
        };
        req.model = upstream_model;
        if client == Dialect::Anthropic && stream {
            estimate = Some(crate::tokens::estimate_prompt(&req));
        }
        serde_json::to_vec(&hub::encode_request(dep.dialect, &req, &mut losses)).unwrap_or_default()
    };
    if !losses.is_empty() {
        tracing::debug!(request_id = %id, losses = ?losses.iter().map(|l| l.to_string()).collect::<Vec<_>>(), "request translation losses");
    }
    let up_headers = upstream::headers(dep, client, headers);
    let limit = if stream {
        dep.stream_timeout
    } else {
        dep.timeout
    };
    let resp = match upstream::send(
        &gw.clients[idx],
        upstream::url(dep, Op::Generate),
        up_headers,
        upstream_body,
        limit,
    )
    .await
    {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(request_id = %id, deployment = %dep.id, error = %e.body.message, "upstream call failed");
            return render(client, &e.body, Some(e.status), &id);
        }
    };
    let status = resp.status().as_u16();
    let mut out_headers = HeaderMap::new();
    upstream::forwardable(resp.headers(), &mut out_headers);
    set_request_id(&mut out_headers, &id);
    if let Ok(v) = HeaderValue::from_str(&dep.id) {
        out_headers.insert("x-dragoman-deployment", v);
    }
    losses_header(&mut out_headers, &losses);

    if status >= 400 {
        let bytes = read_upstream(resp, dep.timeout).await.unwrap_or_default();
        tracing::info!(request_id = %id, model = %ctx.model, deployment = %dep.id, status, outcome = "upstream_error", "request done");
        if dep.dialect == client {
            out_headers.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            return (
                StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
                out_headers,
                bytes,
            )
                .into_response();
        }
        let err = hub::decode_error(dep.dialect, Some(status), &bytes);
        let out_status = if client == Dialect::Anthropic {
            err.kind.status()
        } else {
            status
        };
        let mut r = render(client, &err, Some(out_status), &id);
        r.headers_mut().extend(out_headers);
        return r;
    }

    if !stream {
        let bytes = match read_upstream(resp, dep.timeout).await {
            Ok(b) => b,
            Err(e) => return render(client, &e, Some(504), &id),
        };
        let out = if dep.dialect == client {
            log_usage(
                &ctx,
                hub::decode_response(dep.dialect, &bytes, &mut Losses::new())
                    .ok()
                    .map(|r| r.usage),
            );
            bytes
        } else {
            let r = match hub::decode_response(dep.dialect, &bytes, &mut losses) {
                Ok(r) => r,
                Err(e) => {
                    let msg = format!("upstream sent a response dragoman cannot read: {e}");
                    return render(client, &error(ErrorKind::Server, msg), Some(502), &id);
                }
            };
            log_usage(&ctx, Some(r.usage));
            Bytes::from(
                serde_json::to_vec(&hub::encode_response(client, &r, &mut losses))
                    .unwrap_or_default(),
            )
        };
        losses_header(&mut out_headers, &losses);
        out_headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        return (StatusCode::OK, out_headers, out).into_response();
    }

    let mode = if dep.dialect == client {
        Mode::Passthrough(Box::new(hub::PassthroughTap::new(client)))
    } else {
        let include_usage = client != Dialect::Chat
            || envelope
                .pointer("/stream_options/include_usage")
                .and_then(Value::as_bool)
                .unwrap_or(false);
        let opts = StreamOptions {
            input_estimate: estimate,
            include_usage,
        };
        Mode::Translate(Box::new(hub::StreamTranslator::new(
            dep.dialect,
            client,
            opts,
        )))
    };
    let pump = Pump::new(
        resp.bytes_stream().boxed(),
        mode,
        gw.config.server.keepalive,
        dep.stream_timeout,
        ctx,
    );
    out_headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    out_headers.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
    out_headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    (
        StatusCode::OK,
        out_headers,
        Body::from_stream(pump.into_stream()),
    )
        .into_response()
}

async fn read_upstream(
    resp: reqwest::Response,
    limit: std::time::Duration,
) -> Result<Bytes, dragoman_model::ErrorBody> {
    match tokio::time::timeout(limit, resp.bytes()).await {
        Ok(Ok(b)) => Ok(b),
        Ok(Err(e)) => Err(error(
            ErrorKind::Server,
            format!("upstream response failed: {}", upstream::without_url(&e)),
        )),
        Err(_) => Err(error(
            ErrorKind::Timeout,
            "upstream response did not complete in time",
        )),
    }
}

fn log_usage(ctx: &Context, usage: Option<dragoman_model::Usage>) {
    let u = usage.unwrap_or_default();
    tracing::info!(
        request_id = %ctx.request_id,
        model = %ctx.model,
        deployment = %ctx.deployment,
        client = %ctx.client,
        upstream = %ctx.upstream,
        stream = false,
        outcome = "ok",
        latency_ms = ctx.started.elapsed().as_millis() as u64,
        input_uncached = u.input_uncached,
        cache_read = u.cache_read,
        cache_write = u.cache_write,
        output = u.output,
        reasoning = u.reasoning,
        "request done"
    );
}

/// `count_tokens`: the provider's own counting endpoint for Anthropic deployments; OpenAI's
/// tokenizer over the translated request for the others. The `x-dragoman-token-count` header
/// says which.
async fn count_tokens(
    gw: &Gateway,
    idx: usize,
    mut envelope: Value,
    _body: &Bytes,
    upstream_model: String,
    headers: &HeaderMap,
    ctx: Context,
) -> Response {
    let dep = &gw.config.deployments[idx];
    let id = ctx.request_id.clone();
    if dep.dialect == Dialect::Anthropic {
        envelope["model"] = Value::String(upstream_model);
        let up_headers = upstream::headers(dep, Dialect::Anthropic, headers);
        let body = serde_json::to_vec(&envelope).unwrap_or_default();
        let resp = match upstream::send(
            &gw.clients[idx],
            upstream::url(dep, Op::CountTokens),
            up_headers,
            body,
            dep.timeout,
        )
        .await
        {
            Ok(r) => r,
            Err(e) => return render(Dialect::Anthropic, &e.body, Some(e.status), &id),
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
        let bytes = read_upstream(resp, dep.timeout).await.unwrap_or_default();
        return (status, out_headers, bytes).into_response();
    }
    // count_tokens bodies carry no max_tokens; the request decoder may want one.
    if envelope.get("max_tokens").is_none() {
        envelope["max_tokens"] = json!(1);
    }
    let mut losses = Losses::new();
    let bytes = serde_json::to_vec(&envelope).unwrap_or_default();
    let mut req = match hub::decode_request(Dialect::Anthropic, &bytes, &mut losses) {
        Ok(r) => r,
        Err(e) => {
            return render(
                Dialect::Anthropic,
                &error(ErrorKind::InvalidRequest, e.to_string()),
                None,
                &id,
            );
        }
    };
    req.model = upstream_model.clone();
    req.max_tokens = None;
    let translated = hub::encode_request(dep.dialect, &req, &mut losses);
    let n = crate::tokens::count_body(&translated, &upstream_model);
    let (_, name) = crate::tokens::tokenizer_for(&upstream_model);
    let mut resp = axum::Json(json!({"input_tokens": n})).into_response();
    set_request_id(resp.headers_mut(), &id);
    if let Ok(v) = HeaderValue::from_str(&format!("local; tokenizer={name}")) {
        resp.headers_mut().insert("x-dragoman-token-count", v);
    }
    resp
}
