//! The Responses API's stored-response endpoints, answered from the response store:
//! `GET` and `DELETE /v1/responses/{id}`, `GET /v1/responses/{id}/input_items` (paged as OpenAI
//! pages it: `limit`, `order`, `after`, `before`) and `POST /v1/responses/{id}/cancel`. A
//! response is readable only with the key that created it, or the master key; to anyone else it
//! does not exist (404, not 403: its existence is not disclosed).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::response::{IntoResponse, Response};
use dragoman_model::{Dialect, ErrorBody, ErrorKind};
use serde_json::{Value, json};

use crate::Gateway;
use crate::errors::render;
use crate::principal::Principal;

/// An error in the Responses dialect, for the endpoints around `/v1/responses`.
pub(crate) fn fail(kind: ErrorKind, status: u16, message: impl Into<String>) -> Response {
    render(
        Dialect::Responses,
        &ErrorBody::new(kind, message),
        Some(status),
        &crate::proxy::new_request_id(),
    )
}

fn who(gw: &Gateway, req: &Request) -> Result<Principal, Box<Response>> {
    gw.authenticate(req.headers())
        .map_err(|e| Box::new(fail(e.kind(), e.kind().status(), e.message())))
}

fn missing(id: &str) -> Response {
    fail(
        ErrorKind::NotFound,
        404,
        format!("Response with id '{id}' not found."),
    )
}

pub async fn get(State(gw): State<Arc<Gateway>>, Path(id): Path<String>, req: Request) -> Response {
    let p = match who(&gw, &req) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    match gw.conversations.get(&id, &p).await {
        Some(r) => axum::Json(r.response.clone()).into_response(),
        None => missing(&id),
    }
}

pub async fn delete(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    let p = match who(&gw, &req) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    match gw.conversations.delete(&id, &p).await {
        Ok(true) => {
            axum::Json(json!({"id": id, "object": "response", "deleted": true})).into_response()
        }
        Ok(false) => missing(&id),
        Err(e) => fail(
            ErrorKind::Server,
            500,
            format!("the response store could not delete '{id}': {e}"),
        ),
    }
}

pub async fn input_items(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    req: Request,
) -> Response {
    let p = match who(&gw, &req) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let Some(r) = gw.conversations.get(&id, &p).await else {
        return missing(&id);
    };
    let limit = match q.get("limit").map(|l| l.parse::<usize>()) {
        None => 20,
        Some(Ok(n)) if (1..=100).contains(&n) => n,
        Some(_) => {
            return fail(
                ErrorKind::InvalidRequest,
                400,
                "limit: expected an integer from 1 to 100",
            );
        }
    };
    // OpenAI lists the newest first unless asked otherwise.
    let mut items: Vec<&Value> = r.input_items.iter().collect();
    match q.get("order").map(String::as_str) {
        None | Some("desc") => items.reverse(),
        Some("asc") => {}
        Some(_) => {
            return fail(
                ErrorKind::InvalidRequest,
                400,
                "order: expected asc or desc",
            );
        }
    }
    let position = |cursor: &str| items.iter().position(|i| i["id"].as_str() == Some(cursor));
    let start = match q.get("after") {
        Some(a) => match position(a) {
            Some(i) => i + 1,
            None => {
                return fail(
                    ErrorKind::InvalidRequest,
                    400,
                    format!("after: no input item '{a}' in this response"),
                );
            }
        },
        None => 0,
    };
    let end = match q.get("before") {
        Some(b) => match position(b) {
            Some(i) => i,
            None => {
                return fail(
                    ErrorKind::InvalidRequest,
                    400,
                    format!("before: no input item '{b}' in this response"),
                );
            }
        },
        None => items.len(),
    };
    let window: Vec<Value> = items
        .get(start..end.max(start))
        .unwrap_or_default()
        .iter()
        .take(limit)
        .map(|v| (*v).clone())
        .collect();
    let has_more = end.max(start) - start > window.len();
    axum::Json(json!({
        "object": "list",
        "data": window,
        "first_id": window.first().and_then(|i| i["id"].as_str()),
        "last_id": window.last().and_then(|i| i["id"].as_str()),
        "has_more": has_more,
    }))
    .into_response()
}

/// Only background responses can be cancelled, and dragoman answers every call in the
/// foreground: a stored response is complete, as OpenAI says of a completed one.
pub async fn cancel(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    let p = match who(&gw, &req) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    match gw.conversations.get(&id, &p).await {
        Some(_) => fail(
            ErrorKind::InvalidRequest,
            400,
            "Only responses created with background=true can be cancelled; this one is complete.",
        ),
        None => missing(&id),
    }
}

/// Codex's remote compaction: the deployment is asked for a summary (see `compaction`).
pub async fn compact(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    crate::compaction::compact(gw, req).await
}
