//! The router: which path speaks which dialect, plus models and health. Handlers are thin; the
//! work is in `proxy`.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use dragoman_model::Dialect;
use serde_json::json;

use crate::Gateway;
use crate::errors::{render, set_request_id};
use crate::proxy::{self, Endpoint};

/// Builds the HTTP application for a gateway. Tests drive it directly; `serve` binds it.
pub fn app(gw: Arc<Gateway>) -> Router {
    let mut r = Router::new();
    for prefix in ["/v1", ""] {
        r = r
            .route(&format!("{prefix}/messages"), post(messages))
            .route(
                &format!("{prefix}/messages/count_tokens"),
                post(count_tokens),
            )
            .route(&format!("{prefix}/chat/completions"), post(chat))
            .route(&format!("{prefix}/embeddings"), post(embeddings))
            .route(
                &format!("{prefix}/responses"),
                post(responses).get(responses_websocket),
            )
            .route(
                &format!("{prefix}/responses/compact"),
                post(crate::responses_api::compact),
            )
            .route(
                &format!("{prefix}/responses/{{id}}"),
                get(crate::responses_api::get).delete(crate::responses_api::delete),
            )
            .route(
                &format!("{prefix}/responses/{{id}}/input_items"),
                get(crate::responses_api::input_items),
            )
            .route(
                &format!("{prefix}/responses/{{id}}/cancel"),
                post(crate::responses_api::cancel),
            );
    }
    // Gemini names the model and the operation in the path; `{*target}` because model names
    // of a config may hold slashes.
    for prefix in ["/v1beta", "/v1"] {
        r = r.route(&format!("{prefix}/models/{{*target}}"), post(gemini));
    }
    // The management API and its description come from one list (`openapi::router`).
    r.merge(crate::openapi::router())
        .merge(crate::ui::router())
        .fallback(not_found)
        .with_state(gw)
}

async fn messages(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    proxy::handle(gw, Endpoint::Generate(Dialect::Anthropic), req).await
}

async fn chat(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    proxy::handle(gw, Endpoint::Generate(Dialect::Chat), req).await
}

async fn embeddings(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    proxy::handle(gw, Endpoint::Embeddings, req).await
}

async fn responses(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    proxy::handle(gw, Endpoint::Generate(Dialect::Responses), req).await
}

/// `POST /v1beta/models/{model}:generateContent` and `:streamGenerateContent?alt=sse`: the
/// Gemini dialect (google-genai SDKs, Gemini CLI with `GOOGLE_GEMINI_BASE_URL`).
async fn gemini(
    State(gw): State<Arc<Gateway>>,
    axum::extract::Path(target): axum::extract::Path<String>,
    mut req: Request,
) -> Response {
    let refuse = |status: u16, kind, msg: String| {
        let id = proxy::new_request_id();
        render(
            Dialect::Gemini,
            &dragoman_model::ErrorBody::new(kind, msg),
            Some(status),
            &id,
        )
    };
    let Some((model, action)) = target.rsplit_once(':') else {
        return refuse(
            404,
            dragoman_model::ErrorKind::NotFound,
            format!(
                "no operation in `{target}`: expected {{model}}:generateContent or :streamGenerateContent"
            ),
        );
    };
    let stream = match action {
        "countTokens" => {
            let model = model.strip_prefix("models/").unwrap_or(model).to_owned();
            req.extensions_mut().insert(proxy::PathModel {
                model,
                stream: false,
            });
            return proxy::handle(gw, Endpoint::CountTokens(Dialect::Gemini), req).await;
        }
        "generateContent" => false,
        "streamGenerateContent" => {
            // Without `alt=sse` Google streams one JSON array; only the SSE form is served.
            let sse = req
                .uri()
                .query()
                .is_some_and(|q| q.split('&').any(|kv| kv == "alt=sse"));
            if !sse {
                return refuse(
                    400,
                    dragoman_model::ErrorKind::InvalidRequest,
                    "streamGenerateContent is served as server-sent events only: add ?alt=sse"
                        .into(),
                );
            }
            true
        }
        other => {
            return refuse(
                404,
                dragoman_model::ErrorKind::NotFound,
                format!(
                    "operation `{other}` is not served (generateContent, streamGenerateContent and countTokens are)"
                ),
            );
        }
    };
    let model = model.strip_prefix("models/").unwrap_or(model).to_owned();
    req.extensions_mut()
        .insert(proxy::PathModel { model, stream });
    proxy::handle(gw, Endpoint::Generate(Dialect::Gemini), req).await
}

async fn count_tokens(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    proxy::handle(gw, Endpoint::CountTokens(Dialect::Anthropic), req).await
}

/// Codex tries a WebSocket upgrade on `/v1/responses` first; 426 makes it fall back to HTTP at
/// once (404 or 405 make it retry).
async fn responses_websocket(headers: HeaderMap) -> Response {
    let id = proxy::new_request_id();
    let upgrade = headers.get(http::header::UPGRADE).is_some();
    let err = dragoman_model::ErrorBody::new(
        dragoman_model::ErrorKind::InvalidRequest,
        if upgrade {
            "websocket transport is not supported; use HTTP POST /v1/responses"
        } else {
            "use POST /v1/responses"
        },
    );
    render(
        Dialect::Responses,
        &err,
        Some(if upgrade { 426 } else { 405 }),
        &id,
    )
}

#[utoipa::path(
    get,
    path = "/v1/models",
    tag = "models",
    summary = "The model groups and aliases the caller may call.",
    responses((status = 200, body = crate::openapi::ModelList), crate::openapi::Failures)
)]
pub(crate) async fn models_v1(gw: State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    models(gw, headers).await
}

#[utoipa::path(
    get,
    path = "/models",
    tag = "models",
    summary = "`/v1/models` without the prefix.",
    responses((status = 200, body = crate::openapi::ModelList), crate::openapi::Failures)
)]
pub(crate) async fn models(State(gw): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    let id = proxy::new_request_id();
    let anthropic = headers.contains_key("anthropic-version");
    let dialect = if anthropic {
        Dialect::Anthropic
    } else {
        Dialect::Chat
    };
    let caller = match gw.authenticate(&headers) {
        Ok(p) => p,
        Err(e) => {
            return render(
                dialect,
                &dragoman_model::ErrorBody::new(e.kind(), e.message()),
                None,
                &id,
            );
        }
    };
    let mut names: Vec<&str> = gw
        .config()
        .deployments
        .iter()
        .map(|d| d.model_name.as_str())
        .filter(|n| !n.ends_with('*'))
        .collect();
    // Aliases are model names too, unless marked hidden.
    for (alias, _, hidden) in &gw.config().router.aliases {
        if !hidden {
            names.push(alias.as_str());
        }
    }
    // A virtual key sees the models it may call.
    if let crate::principal::Principal::Key(c) = &caller {
        use crate::tenancy::docs::allows;
        names.retain(|n| {
            allows(&c.key.doc.models, n)
                && c.team.as_ref().is_none_or(|t| allows(&t.doc.models, n))
                && c.user.as_ref().is_none_or(|u| allows(&u.doc.models, n))
        });
    }
    names.dedup();
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(*n));
    let body = if anthropic {
        let data: Vec<_> = names
            .iter()
            .map(|n| json!({"type": "model", "id": n, "display_name": n, "created_at": "1970-01-01T00:00:00Z"}))
            .collect();
        json!({"data": data, "has_more": false, "first_id": names.first(), "last_id": names.last()})
    } else {
        let data: Vec<_> = names
            .iter()
            .map(|n| json!({"id": n, "object": "model", "created": 0, "owned_by": "dragoman"}))
            .collect();
        json!({"object": "list", "data": data})
    };
    let mut resp = axum::Json(body).into_response();
    set_request_id(resp.headers_mut(), &id);
    resp
}

#[utoipa::path(
    get,
    path = "/health/liveliness",
    tag = "health",
    summary = "Answers while the process serves (LiteLLM's spelling).",
    security(()),
    responses((status = 200, content_type = "text/plain", body = String))
)]
pub(crate) async fn live() -> &'static str {
    "I'm alive!"
}

#[utoipa::path(
    get,
    path = "/health/liveness",
    tag = "health",
    summary = "Answers while the process serves.",
    security(()),
    responses((status = 200, content_type = "text/plain", body = String))
)]
pub(crate) async fn liveness() -> &'static str {
    live().await
}

#[utoipa::path(
    get,
    path = "/health/readiness",
    tag = "health",
    summary = "Ready to serve, and how many deployments are configured.",
    security(()),
    responses((status = 200, body = crate::openapi::Readiness))
)]
pub(crate) async fn ready(State(gw): State<Arc<Gateway>>) -> Response {
    axum::Json(json!({"status": "healthy", "models": gw.config().deployments.len()}))
        .into_response()
}

/// LiteLLM's `/health`: master key required; probes every deployment now, or answers the
/// last background round when background checks run.
#[utoipa::path(
    get,
    path = "/health",
    tag = "health",
    summary = "Probes every deployment (or answers the last background round).",
    responses((status = 200, body = crate::openapi::HealthReport), crate::openapi::Failures)
)]
pub(crate) async fn health(State(gw): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    let id = proxy::new_request_id();
    if let Err(m) = gw.authorize(&headers) {
        return render(
            Dialect::Chat,
            &dragoman_model::ErrorBody::new(dragoman_model::ErrorKind::Authentication, m),
            None,
            &id,
        );
    }
    let last = gw.health.lock().ok().and_then(|h| h.clone());
    let body = match last {
        Some(b) => b,
        None => crate::health::check_all(&gw).await,
    };
    axum::Json(body).into_response()
}

async fn not_found(req: Request<Body>) -> Response {
    let id = proxy::new_request_id();
    let mut resp = (
        StatusCode::NOT_FOUND,
        axum::Json(json!({"error": {"message": format!("no route for {} {}", req.method(), req.uri().path()), "type": "not_found_error", "param": null, "code": "not_found"}})),
    )
        .into_response();
    resp.headers_mut().insert(
        "x-request-id",
        HeaderValue::from_str(&id).unwrap_or(HeaderValue::from_static("-")),
    );
    resp
}
