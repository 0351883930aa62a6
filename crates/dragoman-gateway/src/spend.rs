//! The spend API (master key only) and the Prometheus endpoint.
//!
//! `GET /spend/logs` returns usage records newest first; `GET /spend/summary` returns totals per
//! model, key or UTC day. Costs are kept in integer nano-dollars and shown both exactly
//! (`cost_nanos`) and as dollars (`cost_usd`).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use dragoman_accounting::UsageRecord;
use dragoman_model::{Dialect, ErrorBody, ErrorKind};
use dragoman_store::{GroupBy, LogQuery};
use serde_json::{Value, json};

use crate::Gateway;
use crate::errors::render;

fn refuse(kind: ErrorKind, msg: impl Into<String>) -> Response {
    render(
        Dialect::Chat,
        &ErrorBody::new(kind, msg),
        None,
        &crate::proxy::new_request_id(),
    )
}

fn usd_value(nanos: Option<i64>) -> Value {
    match nanos {
        Some(n) => crate::accounting::usd(n)
            .parse::<f64>()
            .map(Value::from)
            .unwrap_or(Value::Null),
        None => Value::Null,
    }
}

fn record_json(r: &UsageRecord) -> Value {
    let u = &r.usage;
    json!({
        "request_id": r.request_id,
        "started_at_ms": r.started_at_ms,
        "principal": r.principal,
        "model": r.model,
        "deployment": r.deployment,
        "attempts": r.attempts,
        "attempted": r.attempted.as_deref().map(|a| a.split(',').collect::<Vec<_>>()).unwrap_or_default(),
        "provider_model": r.provider_model,
        "client_dialect": r.client_dialect.as_str(),
        "upstream_dialect": r.upstream_dialect.map(|d| d.as_str()),
        "stream": r.stream,
        "outcome": r.outcome.as_str(),
        "status": r.status,
        "latency_ms": r.latency_ms,
        "ttft_ms": r.ttft_ms,
        "usage": {
            "input_uncached": u.input_uncached,
            "cache_read": u.cache_read,
            "cache_write": u.cache_write,
            "cache_write_5m": u.cache_write_5m,
            "cache_write_1h": u.cache_write_1h,
            "output": u.output,
            "reasoning": u.reasoning,
            "web_search_requests": u.web_search_requests,
        },
        "api_key": r.owner.api_key,
        "key_alias": r.owner.key_alias,
        "team_id": r.owner.team_id,
        "user_id": r.owner.user_id,
        "end_user": r.owner.end_user,
        "usage_estimated": r.usage_estimated,
        "cost_nanos": r.cost_nanos,
        "cost_usd": usd_value(r.cost_nanos),
        // LiteLLM writes it as a string.
        "cache_hit": if r.cache_hit { "True" } else { "False" },
        "saved_cost_usd": usd_value(r.saved_cost_nanos),
        "dropped_fields": r.dropped.as_deref().map(|d| d.lines().collect::<Vec<_>>()).unwrap_or_default(),
    })
}

fn bounds(q: &HashMap<String, String>) -> Result<(Option<i64>, Option<i64>), Box<Response>> {
    let mut out = [None, None];
    for (i, k) in ["since", "until"].iter().enumerate() {
        if let Some(v) = q.get(*k) {
            out[i] = Some(crate::time::parse_time(v).ok_or_else(|| {
                Box::new(refuse(ErrorKind::InvalidRequest, format!("{k}: expected Unix seconds or milliseconds, YYYY-MM-DD, or an RFC 3339 UTC time")))
            })?);
        }
    }
    Ok((out[0], out[1]))
}

#[utoipa::path(
    get,
    path = "/spend/logs",
    tag = "spend",
    summary = "Usage records, newest first; a virtual key reads only its own.",
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "at most this many (default 100)"),
        ("model" = Option<String>, Query, description = "model group"),
        ("key" = Option<String>, Query, description = "principal label (key alias)"),
        ("api_key" = Option<String>, Query, description = "a key, its token or its id"),
        ("team_id" = Option<String>, Query),
        ("user_id" = Option<String>, Query),
        ("end_user" = Option<String>, Query),
        ("since" = Option<String>, Query, description = "Unix seconds or ms, YYYY-MM-DD, or RFC 3339 UTC"),
        ("until" = Option<String>, Query, description = "as `since`"),
    ),
    responses((status = 200, body = Vec<crate::openapi::SpendLog>), crate::openapi::Failures)
)]
pub async fn logs(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    // A virtual key reads its own records only, whatever it asks for.
    let own = match gw.authenticate(&headers) {
        Ok(crate::principal::Principal::Key(c)) => Some(c.key.doc.key_id.clone()),
        Ok(_) => None,
        Err(e) => return refuse(ErrorKind::Authentication, e.message()),
    };
    let Some(store) = &gw.store else {
        return refuse(
            ErrorKind::NotFound,
            "no usage store is configured (spend logs are disabled)",
        );
    };
    let (since_ms, until_ms) = match bounds(&q) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let limit = match q.get("limit").map(|l| l.parse::<i64>()) {
        None => 100,
        Some(Ok(l)) if l > 0 => l.min(1000),
        Some(_) => {
            return refuse(
                ErrorKind::InvalidRequest,
                "limit: expected a positive integer",
            );
        }
    };
    let query = LogQuery {
        limit,
        model: q.get("model").cloned(),
        principal: q.get("key").or_else(|| q.get("principal")).cloned(),
        api_key: own.or_else(|| q.get("api_key").map(|k| gw.key_id_of(k))),
        team_id: q.get("team_id").cloned(),
        user_id: q.get("user_id").cloned(),
        end_user: q.get("end_user").cloned(),
        since_ms,
        until_ms,
    };
    match store.logs(&query).await {
        Ok(rows) => {
            axum::Json(Value::Array(rows.iter().map(record_json).collect())).into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "spend logs query failed");
            refuse(ErrorKind::Server, "the usage store is not available")
        }
    }
}

#[utoipa::path(
    get,
    path = "/spend/summary",
    tag = "spend",
    summary = "Totals per model, key, team, user or UTC day.",
    params(
        ("group_by" = Option<String>, Query, description = "model (default), principal, key, team, user, end_user, day"),
        ("since" = Option<String>, Query, description = "Unix seconds or ms, YYYY-MM-DD, or RFC 3339 UTC"),
        ("until" = Option<String>, Query, description = "as `since`"),
    ),
    responses((status = 200, body = Vec<crate::openapi::SpendSummaryRow>), crate::openapi::Failures)
)]
pub async fn summary(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(m) = gw.authorize(&headers) {
        return refuse(ErrorKind::Authentication, m);
    }
    let Some(store) = &gw.store else {
        return refuse(
            ErrorKind::NotFound,
            "no usage store is configured (spend logs are disabled)",
        );
    };
    let group_by = match q
        .get("group_by")
        .map(String::as_str)
        .unwrap_or("model")
        .parse::<GroupBy>()
    {
        Ok(g) => g,
        Err(e) => return refuse(ErrorKind::InvalidRequest, format!("group_by: {e}")),
    };
    let (since_ms, until_ms) = match bounds(&q) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    match store.summary(group_by, since_ms, until_ms).await {
        Ok(rows) => {
            let out: Vec<Value> = rows
                .iter()
                .map(|r| {
                    json!({
                        "group": r.key,
                        "key": r.key,
                        "requests": r.requests,
                        "usage": {
                            "input_uncached": r.input_uncached,
                            "cache_read": r.cache_read,
                            "cache_write": r.cache_write,
                            "output": r.output,
                            "reasoning": r.reasoning,
                        },
                        "cost_nanos": r.cost_nanos,
                        "cost_usd": usd_value(Some(r.cost_nanos)),
                        "unknown_cost_requests": r.unknown_cost_requests,
                    })
                })
                .collect();
            axum::Json(Value::Array(out)).into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "spend summary query failed");
            refuse(ErrorKind::Server, "the usage store is not available")
        }
    }
}

/// `/metrics`: open by default, as LiteLLM's (scrapers rarely carry keys, and the series hold
/// counts, never prompts or keys); `general_settings.public_metrics: false` puts it behind the
/// master key.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    summary = "Prometheus metrics (OpenMetrics text); open unless general_settings.public_metrics is false.",
    security((), ("bearer" = [])),
    responses((status = 200, content_type = "application/openmetrics-text", body = String), crate::openapi::Failures)
)]
pub async fn metrics(State(gw): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    if !gw.config.server.public_metrics
        && let Err(m) = gw.authorize(&headers)
    {
        return refuse(ErrorKind::Authentication, m);
    }
    let stats = gw.writer.as_ref().map(|w| w.stats());
    gw.metrics.sample_router(&gw.router);
    gw.metrics
        .sample_litellm(&gw.config.deployments, &gw.router);
    gw.metrics
        .sample_litellm_budgets(&gw.tenancy, crate::tenancy::now_ms());
    if let Some(s) = gw.tenancy.shared() {
        gw.metrics.sample_shared(s);
    }
    let body = gw.metrics.render(stats.as_ref());
    let mut r = (StatusCode::OK, body).into_response();
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    r
}
