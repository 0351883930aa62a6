//! LiteLLM's key management API: `/key/*`, `/team/*`, `/user/*`, with its paths, bodies and
//! answers. Master key only (a virtual key may read its own `/key/info`; without a configured
//! master key the API refuses, as keys would guard nothing). Every change is
//! written to the store before it is answered, then reaches this instance's directory at once
//! and the others' at their next poll.

// The helpers here return the finished error response itself; the key API is off the request
// path, where the size of an `Err` costs nothing worth boxing for.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Map, Value, json};

use super::docs::{self, KeyDoc, Member, TeamDoc, Tenant, UserDoc};
use super::{Entry, Tenancy, hash_key, hex, now_ms};
use crate::Gateway;
use crate::principal::Principal;
use crate::time::iso;

type Params = Query<std::collections::HashMap<String, String>>;

/// Every handler's answer: the response, or the error response that ended it early.
type Answer = Result<Response, Response>;

/// LiteLLM's error envelope for its management API.
fn fail(status: StatusCode, msg: impl Into<String>) -> Response {
    let msg = msg.into();
    let kind = match status {
        StatusCode::UNAUTHORIZED => "auth_error",
        StatusCode::NOT_FOUND => "not_found_error",
        StatusCode::INTERNAL_SERVER_ERROR => "internal_error",
        _ => "bad_request_error",
    };
    (
        status,
        axum::Json(json!({"error": {"message": msg, "type": kind, "param": null, "code": status.as_u16().to_string()}})),
    )
        .into_response()
}

fn bad(msg: impl Into<String>) -> Response {
    fail(StatusCode::BAD_REQUEST, msg)
}

fn missing(what: &str, id: &str) -> Response {
    fail(StatusCode::NOT_FOUND, format!("{what} `{id}` not found"))
}

fn stored(e: String) -> Response {
    tracing::error!(error = %e, "writing to the key store failed");
    fail(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("the key store failed: {e}"),
    )
}

fn admin(gw: &Gateway, headers: &HeaderMap) -> Result<(), Response> {
    match gw.authenticate(headers) {
        Ok(Principal::Master) => Ok(()),
        // Keys mean nothing on a gateway anyone may call without one.
        Ok(Principal::Open) => Err(fail(
            StatusCode::UNAUTHORIZED,
            "managing keys needs a master key: set general_settings.master_key",
        )),
        Ok(Principal::Key(_)) => Err(fail(
            StatusCode::UNAUTHORIZED,
            "only the master key may manage keys, teams and users",
        )),
        Err(e) => Err(fail(StatusCode::UNAUTHORIZED, e.message())),
    }
}

/// The master key's request body, as a JSON object: how every changing endpoint starts.
fn admin_body(
    gw: &Gateway,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Map<String, Value>, Response> {
    admin(gw, headers)?;
    object(body)
}

fn object(body: &Bytes) -> Result<Map<String, Value>, Response> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        // What a client sends for "no fields" when its body is optional.
        Ok(Value::Null) => Ok(Map::new()),
        Ok(_) => Err(bad("request body must be a JSON object")),
        Err(e) => Err(bad(format!("invalid JSON body: {e}"))),
    }
}

/// A required string field, or the 400 naming it.
fn required<'a>(body: &'a Map<String, Value>, name: &str, what: &str) -> Result<&'a str, Response> {
    str_field(body, name).ok_or_else(|| bad(format!("{name}: required{what}")))
}

fn str_field<'a>(body: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    body.get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn list_field(body: &Map<String, Value>, name: &str) -> Vec<String> {
    match body.get(name) {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

fn usd(nanos: i64) -> Value {
    Value::from(nanos as f64 / 1e9)
}

fn new_key() -> Result<String, Response> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 24];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| fail(StatusCode::INTERNAL_SERVER_ERROR, "no randomness available"))?;
    Ok(format!(
        "sk-{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

/// `sk-...abcd`: recognisable in a list, useless to anyone who reads it.
fn key_name(key: &str) -> String {
    let tail: String = key
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("sk-...{tail}")
}

/// Spend and budget fields every entity shows.
fn money<D>(e: &Entry<D>, out: &mut Map<String, Value>) {
    let now = now_ms();
    let (spent, reserved) = e.meter.spend(&e.caps, now);
    out.insert("spend".into(), usd(spent));
    out.insert("reserved_spend".into(), usd(reserved));
    let reset = e
        .caps
        .period_ms
        .filter(|p| *p > 0)
        .map(|p| e.caps.anchor_ms + ((now - e.caps.anchor_ms).div_euclid(p) + 1) * p);
    out.insert("budget_reset_at".into(), reset.map(iso).into());
}

/// The info endpoints' spend: the larger of this instance's meter and the store's sum of every
/// instance's records this period (the meter is ahead by the records not yet written; the
/// store by what other instances spent without Redis to tell this one).
async fn with_recorded_spend<D>(
    t: &Tenancy,
    e: &Entry<D>,
    by: dragoman_store::GroupBy,
    id: &str,
    out: &mut Map<String, Value>,
) {
    let Some(store) = t.store() else { return };
    let since = super::period_start(&e.caps, now_ms());
    if let Ok(recorded) = store.spend(&[(by, id)], since).await {
        let (local, _) = e.meter.spend(&e.caps, now_ms());
        out.insert("spend".into(), usd(local.max(recorded)));
    }
}

/// A team or user as the API shows it: its fields, its spend, when it was made.
fn entity_json<D: Tenant>(e: &Entry<D>, created_at_ms: i64) -> Map<String, Value> {
    let mut out = match serde_json::to_value(&e.doc) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    money(e, &mut out);
    out.insert("created_at".into(), iso(created_at_ms).into());
    out
}

pub fn key_json(e: &Entry<KeyDoc>) -> Map<String, Value> {
    let mut out = entity_json(e, e.doc.created_at_ms);
    out.insert("expires".into(), e.doc.expires_ms.map(iso).into());
    out.insert("updated_at".into(), iso(e.doc.updated_at_ms).into());
    out
}

fn team_json(e: &Entry<TeamDoc>) -> Map<String, Value> {
    entity_json(e, e.doc.created_at_ms)
}

fn user_json(e: &Entry<UserDoc>) -> Map<String, Value> {
    entity_json(e, e.doc.created_at_ms)
}

fn json(out: Map<String, Value>) -> Answer {
    Ok(axum::Json(Value::Object(out)).into_response())
}

fn with_unsupported(mut out: Map<String, Value>, unsupported: &[String]) -> Answer {
    if !unsupported.is_empty() {
        tracing::warn!(fields = ?unsupported, "key API: fields dragoman does not support were not applied");
        out.insert("unsupported_fields".into(), json!(unsupported));
    }
    json(out)
}

/// The key a body or query names: the key itself (`sk-…`) or its token (hash).
fn find_key(t: &Tenancy, named: &str) -> Result<Arc<Entry<KeyDoc>>, Response> {
    t.key(named)
        .or_else(|| t.key_by_token(named))
        .ok_or_else(|| missing("key", &key_name(named)))
}

fn find_team(t: &Tenancy, id: &str) -> Result<Arc<Entry<TeamDoc>>, Response> {
    t.directory()
        .teams
        .get(id)
        .cloned()
        .ok_or_else(|| missing("team", id))
}

fn find_user(t: &Tenancy, id: &str) -> Result<Arc<Entry<UserDoc>>, Response> {
    t.directory()
        .users
        .get(id)
        .cloned()
        .ok_or_else(|| missing("user", id))
}

/// Writes a key, team or user (a tombstone when `deleted`, stamped after its last change).
async fn put<D: Tenant>(t: &Tenancy, doc: &D, deleted: bool) -> Result<(), Response> {
    let body = serde_json::to_string(doc).map_err(|e| stored(e.to_string()))?;
    let at = if deleted {
        now_ms().max(doc.updated_at_ms() + 1)
    } else {
        doc.updated_at_ms()
    };
    t.write(D::KIND, doc.id().to_owned(), body, at, deleted)
        .await
        .map_err(stored)
}

/// Deletes every key `which` picks (the keys of a deleted team or user go with it).
async fn delete_keys(t: &Tenancy, which: impl Fn(&KeyDoc) -> bool) -> Result<(), Response> {
    let keys: Vec<_> = t
        .directory()
        .keys
        .values()
        .filter(|k| which(&k.doc))
        .cloned()
        .collect();
    for k in keys {
        put(t, &k.doc, true).await?;
    }
    Ok(())
}

fn arrived() -> Response {
    stored("the change did not reach the directory".into())
}

fn expiry(body: &Map<String, Value>, now: i64) -> Result<Option<Option<i64>>, Response> {
    match body.get("duration") {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(d)) => docs::duration_ms(d)
            .map(|ms| Some(Some(now + ms)))
            .map_err(|e| bad(format!("duration: {e}"))),
        Some(_) => Err(bad("duration: expected a string such as 30d")),
    }
}

/// A custom key from `field`, or a new random one.
fn chosen_key(body: &Map<String, Value>, field: &str) -> Result<String, Response> {
    match str_field(body, field) {
        Some(k) if k.starts_with("sk-") && k.len() >= 12 => Ok(k.to_owned()),
        Some(_) => Err(bad(format!(
            "{field}: a custom key must start with `sk-` and be at least 12 characters"
        ))),
        None => new_key(),
    }
}

fn check_key(gw: &Gateway, k: &KeyDoc) -> Result<(), Response> {
    k.limits.validate().map_err(bad)?;
    let dir = gw.tenancy.directory();
    if let Some(team) = &k.team_id
        && !dir.teams.contains_key(team)
    {
        return Err(bad(format!(
            "team_id: team `{team}` does not exist (create it with /team/new)"
        )));
    }
    if let Some(alias) = &k.key_alias
        && dir
            .keys
            .values()
            .any(|e| e.doc.key_alias.as_deref() == Some(alias) && e.doc.token != k.token)
    {
        return Err(bad(format!(
            "key_alias: another key is already called `{alias}`"
        )));
    }
    Ok(())
}

/// `team_id` and `user_id` as a body sets them (`null` or empty clears).
fn set_owner(doc: &mut KeyDoc, body: &Map<String, Value>) {
    if body.contains_key("team_id") {
        doc.team_id = str_field(body, "team_id").map(str::to_owned);
    }
    if body.contains_key("user_id") {
        doc.user_id = str_field(body, "user_id").map(str::to_owned);
    }
}

// ---------------------------------------------------------------------------------------------
// Keys

#[utoipa::path(
    post,
    path = "/key/generate",
    tag = "keys",
    summary = "Creates a virtual key; the key is in this answer only.",
    request_body(content = Option<crate::openapi::KeyGenerateRequest>, description = "every field is optional"),
    responses((status = 200, body = crate::openapi::KeyGenerated), crate::openapi::Failures)
)]
pub async fn key_generate(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let body = admin_body(&gw, &headers, &body)?;
    let (key, mut out, unsupported) = generate_key(&gw, &body).await?;
    out.insert("key".into(), key.into());
    with_unsupported(out, &unsupported)
}

/// Creates a key from a body's fields; returns the key (shown once), its info and the fields
/// not applied.
async fn generate_key(
    gw: &Gateway,
    body: &Map<String, Value>,
) -> Result<(String, Map<String, Value>, Vec<String>), Response> {
    let t = &gw.tenancy;
    let _lock = t.lock().await;
    let now = now_ms();
    let key = chosen_key(body, "key")?;
    if t.key(&key).is_some() {
        return Err(bad("key: this key already exists"));
    }
    let token = hex(&hash_key(&key));
    let base = KeyDoc {
        token: token.clone(),
        // 96 bits of the hash: unique among any number of keys a gateway will hold, and a third
        // the length in every usage record and its index.
        key_id: token[..24].to_owned(),
        key_name: key_name(&key),
        created_at_ms: now,
        updated_at_ms: now,
        budget_anchor_ms: now,
        ..KeyDoc::default()
    };
    let (mut doc, unsupported) = docs::apply(&base, body, docs::KEY_FIELDS).map_err(bad)?;
    set_owner(&mut doc, body);
    if let Some(e) = expiry(body, now)? {
        doc.expires_ms = e;
    }
    check_key(gw, &doc)?;
    put(t, &doc, false).await?;
    let entry = t.key_by_token(&token).ok_or_else(arrived)?;
    tracing::info!(key = %doc.key_name, alias = ?doc.key_alias, team = ?doc.team_id, "key generated");
    Ok((key, key_json(&entry), unsupported))
}

#[utoipa::path(
    post,
    path = "/key/update",
    tag = "keys",
    summary = "Changes a key's fields and limits.",
    request_body = crate::openapi::KeyUpdateRequest,
    responses((status = 200, body = crate::openapi::KeyInfo), crate::openapi::Failures)
)]
pub async fn key_update(State(gw): State<Arc<Gateway>>, headers: HeaderMap, body: Bytes) -> Answer {
    let body = admin_body(&gw, &headers, &body)?;
    let named = required(&body, "key", " (the key, or its token)")?;
    let t = &gw.tenancy;
    let _lock = t.lock().await;
    let entry = find_key(t, named)?;
    let (mut doc, unsupported) = docs::apply(&entry.doc, &body, docs::KEY_FIELDS).map_err(bad)?;
    set_owner(&mut doc, &body);
    if let Some(e) = expiry(&body, now_ms())? {
        doc.expires_ms = e;
    }
    doc.changed_from(&entry.doc).map_err(bad)?;
    check_key(&gw, &doc)?;
    put(t, &doc, false).await?;
    let e = t.key_by_token(&doc.token).ok_or_else(arrived)?;
    with_unsupported(key_json(&e), &unsupported)
}

#[utoipa::path(
    post,
    path = "/key/delete",
    tag = "keys",
    summary = "Deletes keys by key, token or alias.",
    request_body = crate::openapi::KeyDeleteRequest,
    responses((status = 200, body = crate::openapi::KeysDeleted), crate::openapi::Failures)
)]
pub async fn key_delete(State(gw): State<Arc<Gateway>>, headers: HeaderMap, body: Bytes) -> Answer {
    let body = admin_body(&gw, &headers, &body)?;
    let t = &gw.tenancy;
    let _lock = t.lock().await;
    let mut targets = Vec::new();
    for named in list_field(&body, "keys") {
        targets.push(find_key(t, &named)?);
    }
    for alias in list_field(&body, "key_aliases") {
        let dir = t.directory();
        let e = dir
            .keys
            .values()
            .find(|e| e.doc.key_alias.as_deref() == Some(alias.as_str()))
            .ok_or_else(|| missing("key alias", &alias))?;
        targets.push(e.clone());
    }
    if targets.is_empty() {
        return Err(bad("keys: name at least one key (or key_aliases)"));
    }
    let mut deleted = Vec::new();
    for e in targets {
        put(t, &e.doc, true).await?;
        deleted.push(e.doc.token.clone());
    }
    Ok(axum::Json(json!({"deleted_keys": deleted})).into_response())
}

#[utoipa::path(
    get,
    path = "/key/info",
    tag = "keys",
    summary = "One key; a virtual key may read its own (without `key`).",
    params(("key" = Option<String>, Query, description = "the key, or its token")),
    responses((status = 200, body = crate::openapi::KeyInfoResponse), crate::openapi::Failures)
)]
pub async fn key_info(State(gw): State<Arc<Gateway>>, headers: HeaderMap, q: Params) -> Answer {
    let caller = gw
        .authenticate(&headers)
        .map_err(|e| fail(StatusCode::UNAUTHORIZED, e.message()))?;
    let named = q.get("key").map(String::as_str);
    let e = match (&caller, named) {
        // A virtual key may read about itself.
        (Principal::Key(c), None) => c.key.clone(),
        (Principal::Key(c), Some(n)) => match find_key(&gw.tenancy, n) {
            Ok(e) if e.doc.key_id == c.key.doc.key_id => e,
            _ => {
                return Err(fail(
                    StatusCode::UNAUTHORIZED,
                    "a virtual key may only read its own info",
                ));
            }
        },
        (_, Some(n)) => find_key(&gw.tenancy, n)?,
        (_, None) => return Err(bad("key: required (the key, or its token)")),
    };
    let mut info = key_json(&e);
    with_recorded_spend(
        &gw.tenancy,
        &e,
        dragoman_store::GroupBy::Key,
        &e.doc.key_id,
        &mut info,
    )
    .await;
    Ok(axum::Json(json!({"key": e.doc.token, "info": info})).into_response())
}

fn page(q: &Params) -> (usize, usize) {
    let page = q
        .get("page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1usize)
        .max(1);
    let size = q
        .get("size")
        .or(q.get("page_size"))
        .and_then(|p| p.parse().ok())
        .unwrap_or(10usize)
        .clamp(1, 1000);
    (page, size)
}

#[utoipa::path(
    get,
    path = "/key/list",
    tag = "keys",
    summary = "Keys, newest first, a page at a time.",
    params(("team_id" = Option<String>, Query), ("user_id" = Option<String>, Query), ("key_alias" = Option<String>, Query), ("page" = Option<u32>, Query, minimum = 1), ("size" = Option<u32>, Query, minimum = 1, maximum = 1000), ("return_full_object" = Option<bool>, Query)),
    responses((status = 200, body = crate::openapi::KeyListResponse), crate::openapi::Failures)
)]
pub async fn key_list(State(gw): State<Arc<Gateway>>, headers: HeaderMap, q: Params) -> Answer {
    admin(&gw, &headers)?;
    let dir = gw.tenancy.directory();
    let is = |want: Option<&String>, have: &Option<String>| {
        want.is_none_or(|w| have.as_ref() == Some(w))
    };
    let mut keys: Vec<_> = dir
        .keys
        .values()
        .filter(|e| is(q.get("team_id"), &e.doc.team_id))
        .filter(|e| is(q.get("user_id"), &e.doc.user_id))
        .filter(|e| is(q.get("key_alias"), &e.doc.key_alias))
        .collect();
    keys.sort_by(|a, b| {
        b.doc
            .created_at_ms
            .cmp(&a.doc.created_at_ms)
            .then_with(|| a.doc.token.cmp(&b.doc.token))
    });
    let (page, size) = page(&q);
    let total = keys.len();
    let full = q.get("return_full_object").is_some_and(|v| v == "true");
    let items: Vec<Value> = keys
        .iter()
        .skip((page - 1) * size)
        .take(size)
        .map(|e| {
            if full {
                Value::Object(key_json(e))
            } else {
                Value::from(e.doc.token.clone())
            }
        })
        .collect();
    Ok(axum::Json(json!({"keys": items, "total_count": total, "current_page": page, "total_pages": total.div_ceil(size)})).into_response())
}

#[utoipa::path(
    post,
    path = "/key/{key}/regenerate",
    tag = "keys",
    summary = "`/key/regenerate` with the key in the path.",
    params(("key" = String, Path, description = "the key, or its token")), request_body(content = Option<crate::openapi::KeyRegenerateRequest>, description = "optional: new_key and field changes"),
    responses((status = 200, body = crate::openapi::KeyGenerated), crate::openapi::Failures)
)]
pub async fn key_regenerate_path(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    Path(key): Path<String>,
    body: Bytes,
) -> Answer {
    regenerate(gw, headers, Some(key), body).await
}

#[utoipa::path(
    post,
    path = "/key/regenerate",
    tag = "keys",
    summary = "A new secret for a key (same id, limits and spend); the old one is refused from now on.",
    request_body = crate::openapi::KeyRegenerateRequest,
    responses((status = 200, body = crate::openapi::KeyGenerated), crate::openapi::Failures)
)]
pub async fn key_regenerate(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    regenerate(gw, headers, None, body).await
}

/// A new secret for an existing key: same id, limits, spend and history; the old secret is
/// refused from now on.
async fn regenerate(
    gw: Arc<Gateway>,
    headers: HeaderMap,
    path_key: Option<String>,
    body: Bytes,
) -> Answer {
    let body = admin_body(&gw, &headers, &body)?;
    let named = match path_key {
        Some(k) => k,
        None => required(&body, "key", " (the key, or its token)")?.to_owned(),
    };
    let t = &gw.tenancy;
    let _lock = t.lock().await;
    let old = find_key(t, &named)?;
    let key = chosen_key(&body, "new_key")?;
    let mut fields = body.clone();
    fields.remove("key");
    fields.remove("new_key");
    let (mut doc, unsupported) = docs::apply(&old.doc, &fields, docs::KEY_FIELDS).map_err(bad)?;
    doc.token = hex(&hash_key(&key));
    doc.key_name = key_name(&key);
    doc.changed_from(&old.doc).map_err(bad)?;
    put(t, &doc, false).await?;
    put(t, &old.doc, true).await?;
    let e = t.key_by_token(&doc.token).ok_or_else(arrived)?;
    let mut out = key_json(&e);
    out.insert("key".into(), key.into());
    with_unsupported(out, &unsupported)
}

#[utoipa::path(
    post,
    path = "/key/block",
    tag = "keys",
    summary = "Blocks a key: it is refused until unblocked.",
    request_body = crate::openapi::KeyNamed,
    responses((status = 200, body = crate::openapi::KeyInfo), crate::openapi::Failures)
)]
pub async fn key_block(State(gw): State<Arc<Gateway>>, headers: HeaderMap, body: Bytes) -> Answer {
    set_blocked(gw, headers, body, true).await
}

#[utoipa::path(
    post,
    path = "/key/unblock",
    tag = "keys",
    summary = "Unblocks a key.",
    request_body = crate::openapi::KeyNamed,
    responses((status = 200, body = crate::openapi::KeyInfo), crate::openapi::Failures)
)]
pub async fn key_unblock(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    set_blocked(gw, headers, body, false).await
}

async fn set_blocked(gw: Arc<Gateway>, headers: HeaderMap, body: Bytes, blocked: bool) -> Answer {
    let body = admin_body(&gw, &headers, &body)?;
    let named = required(&body, "key", " (the key, or its token)")?;
    let t = &gw.tenancy;
    let _lock = t.lock().await;
    let e = find_key(t, named)?;
    let mut doc = e.doc.clone();
    doc.blocked = blocked;
    doc.changed_from(&e.doc).map_err(bad)?;
    put(t, &doc, false).await?;
    json(key_json(&*t.key_by_token(&doc.token).ok_or_else(arrived)?))
}

// ---------------------------------------------------------------------------------------------
// Teams

fn members(body: &Map<String, Value>, field: &str) -> Result<Vec<Member>, Response> {
    let v = match body.get(field) {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) => Value::Array(a.clone()),
        Some(one) => Value::Array(vec![one.clone()]),
    };
    let mut list: Vec<Member> =
        serde_json::from_value(v).map_err(|e| bad(format!("{field}: {e}")))?;
    for m in &mut list {
        if m.user_id.is_none() && m.user_email.is_none() {
            return Err(bad(format!(
                "{field}: each member needs a user_id or user_email"
            )));
        }
        if m.role.is_empty() {
            m.role = "user".into();
        }
    }
    Ok(list)
}

/// A new id with a readable prefix, for a team or user the body does not name.
fn new_id(body: &Map<String, Value>, field: &str, prefix: &str) -> Result<String, Response> {
    match str_field(body, field) {
        Some(id) => Ok(id.to_owned()),
        None => Ok(format!("{prefix}-{}", &new_key()?[3..19])),
    }
}

#[utoipa::path(
    post,
    path = "/team/new",
    tag = "teams",
    summary = "Creates a team.",
    request_body(content = Option<crate::openapi::TeamNewRequest>, description = "every field is optional"),
    responses((status = 200, body = crate::openapi::TeamInfo), crate::openapi::Failures)
)]
pub async fn team_new(State(gw): State<Arc<Gateway>>, headers: HeaderMap, body: Bytes) -> Answer {
    let body = admin_body(&gw, &headers, &body)?;
    let t = &gw.tenancy;
    let _lock = t.lock().await;
    let now = now_ms();
    let id = new_id(&body, "team_id", "team")?;
    if t.directory().teams.contains_key(&id) {
        return Err(bad(format!("team_id: team `{id}` already exists")));
    }
    let base = TeamDoc {
        team_id: id.clone(),
        created_at_ms: now,
        updated_at_ms: now,
        budget_anchor_ms: now,
        ..TeamDoc::default()
    };
    let (mut doc, unsupported) = docs::apply(&base, &body, docs::TEAM_FIELDS).map_err(bad)?;
    doc.members_with_roles = members(&body, "members_with_roles")?;
    doc.limits.validate().map_err(bad)?;
    put(t, &doc, false).await?;
    with_unsupported(team_json(&*find_team(t, &id)?), &unsupported)
}

#[utoipa::path(
    post,
    path = "/team/update",
    tag = "teams",
    summary = "Changes a team (`team_id` required).",
    request_body = crate::openapi::TeamUpdateRequest,
    responses((status = 200, body = crate::openapi::TeamInfo), crate::openapi::Failures)
)]
pub async fn team_update(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let body = admin_body(&gw, &headers, &body)?;
    let id = required(&body, "team_id", "")?;
    let t = &gw.tenancy;
    let _lock = t.lock().await;
    let e = find_team(t, id)?;
    let (mut doc, unsupported) = docs::apply(&e.doc, &body, docs::TEAM_FIELDS).map_err(bad)?;
    if body.contains_key("members_with_roles") {
        doc.members_with_roles = members(&body, "members_with_roles")?;
    }
    doc.changed_from(&e.doc).map_err(bad)?;
    put(t, &doc, false).await?;
    with_unsupported(team_json(&*find_team(t, id)?), &unsupported)
}

#[utoipa::path(
    post,
    path = "/team/delete",
    tag = "teams",
    summary = "Deletes teams and their keys.",
    request_body = crate::openapi::TeamIds,
    responses((status = 200, body = crate::openapi::TeamsDeleted), crate::openapi::Failures)
)]
pub async fn team_delete(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let body = admin_body(&gw, &headers, &body)?;
    let ids = list_field(&body, "team_ids");
    if ids.is_empty() {
        return Err(bad("team_ids: name at least one team"));
    }
    let t = &gw.tenancy;
    let _lock = t.lock().await;
    let teams = ids
        .iter()
        .map(|id| find_team(t, id))
        .collect::<Result<Vec<_>, _>>()?;
    // As LiteLLM does: a team's keys go with it.
    delete_keys(t, |k| k.team_id.as_ref().is_some_and(|t| ids.contains(t))).await?;
    let mut out = Vec::new();
    for e in teams {
        put(t, &e.doc, true).await?;
        out.push(Value::Object(team_json(&e)));
    }
    Ok(axum::Json(json!({"deleted_teams": out})).into_response())
}

#[utoipa::path(
    get,
    path = "/team/info",
    tag = "teams",
    summary = "One team, its keys and members.",
    params(("team_id" = String, Query)),
    responses((status = 200, body = crate::openapi::TeamInfoResponse), crate::openapi::Failures)
)]
pub async fn team_info(State(gw): State<Arc<Gateway>>, headers: HeaderMap, q: Params) -> Answer {
    admin(&gw, &headers)?;
    let id = q.get("team_id").ok_or_else(|| bad("team_id: required"))?;
    let e = find_team(&gw.tenancy, id)?;
    let keys: Vec<Value> = gw
        .tenancy
        .directory()
        .keys
        .values()
        .filter(|k| k.doc.team_id.as_ref() == Some(id))
        .map(|k| Value::Object(key_json(k)))
        .collect();
    let mut info = team_json(&e);
    with_recorded_spend(
        &gw.tenancy,
        &e,
        dragoman_store::GroupBy::Team,
        id,
        &mut info,
    )
    .await;
    Ok(axum::Json(json!({"team_id": id, "team_info": info, "keys": keys, "team_memberships": e.doc.members_with_roles})).into_response())
}

#[utoipa::path(
    get,
    path = "/team/list",
    tag = "teams",
    summary = "Every team.",
    responses((status = 200, body = Vec<crate::openapi::TeamInfo>), crate::openapi::Failures)
)]
pub async fn team_list(State(gw): State<Arc<Gateway>>, headers: HeaderMap) -> Answer {
    admin(&gw, &headers)?;
    let dir = gw.tenancy.directory();
    let mut teams: Vec<_> = dir.teams.values().collect();
    teams.sort_by(|a, b| a.doc.team_id.cmp(&b.doc.team_id));
    let out: Vec<Value> = teams
        .into_iter()
        .map(|e| Value::Object(team_json(e)))
        .collect();
    Ok(axum::Json(Value::Array(out)).into_response())
}

#[utoipa::path(
    post,
    path = "/team/member_add",
    tag = "teams",
    summary = "Adds members to a team (a member already there takes the new role).",
    request_body = crate::openapi::MemberAddRequest,
    responses((status = 200, body = crate::openapi::TeamInfo), crate::openapi::Failures)
)]
pub async fn team_member_add(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    team_members(gw, headers, body, true).await
}

#[utoipa::path(
    post,
    path = "/team/member_delete",
    tag = "teams",
    summary = "Removes a member from a team.",
    request_body = crate::openapi::MemberDeleteRequest,
    responses((status = 200, body = crate::openapi::TeamInfo), crate::openapi::Failures)
)]
pub async fn team_member_delete(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    team_members(gw, headers, body, false).await
}

async fn team_members(gw: Arc<Gateway>, headers: HeaderMap, body: Bytes, add: bool) -> Answer {
    let body = admin_body(&gw, &headers, &body)?;
    let id = required(&body, "team_id", "")?;
    let t = &gw.tenancy;
    let _lock = t.lock().await;
    let e = find_team(t, id)?;
    let mut doc = e.doc.clone();
    let same = |m: &Member, user: Option<&str>, email: Option<&str>| {
        (user.is_some() && m.user_id.as_deref() == user)
            || (email.is_some() && m.user_email.as_deref() == email)
    };
    let mut touched_users = Vec::new();
    if add {
        let list = members(&body, "member")?;
        if list.is_empty() {
            return Err(bad(
                "member: required ({\"user_id\": …, \"role\": \"user\"})",
            ));
        }
        for m in list {
            doc.members_with_roles
                .retain(|x| !same(x, m.user_id.as_deref(), m.user_email.as_deref()));
            touched_users.extend(m.user_id.clone());
            doc.members_with_roles.push(m);
        }
    } else {
        let user = str_field(&body, "user_id");
        let email = str_field(&body, "user_email");
        if user.is_none() && email.is_none() {
            return Err(bad("user_id or user_email: required"));
        }
        let before = doc.members_with_roles.len();
        doc.members_with_roles.retain(|x| !same(x, user, email));
        if doc.members_with_roles.len() == before {
            return Err(missing("team member", user.or(email).unwrap_or_default()));
        }
        touched_users.extend(user.map(str::to_owned));
    }
    doc.changed_from(&e.doc).map_err(bad)?;
    put(t, &doc, false).await?;
    // The user's own list of teams follows, as LiteLLM keeps both.
    for uid in touched_users {
        let Ok(u) = find_user(t, &uid) else {
            continue;
        };
        let mut ud = u.doc.clone();
        ud.teams.retain(|x| x != id);
        if add {
            ud.teams.push(id.to_owned());
        }
        ud.changed_from(&u.doc).map_err(bad)?;
        put(t, &ud, false).await?;
    }
    json(team_json(&*find_team(t, id)?))
}

// ---------------------------------------------------------------------------------------------
// Users

#[utoipa::path(
    post,
    path = "/user/new",
    tag = "users",
    summary = "Creates a user, and a key for them unless `auto_create_key` is false.",
    request_body(content = Option<crate::openapi::UserNewRequest>, description = "every field is optional"),
    responses((status = 200, body = crate::openapi::UserInfo), crate::openapi::Failures)
)]
pub async fn user_new(State(gw): State<Arc<Gateway>>, headers: HeaderMap, body: Bytes) -> Answer {
    let body = admin_body(&gw, &headers, &body)?;
    let now = now_ms();
    let id = new_id(&body, "user_id", "user")?;
    let (mut out, unsupported) = {
        let t = &gw.tenancy;
        let _lock = t.lock().await;
        if t.directory().users.contains_key(&id) {
            return Err(bad(format!("user_id: user `{id}` already exists")));
        }
        let base = UserDoc {
            user_id: id.clone(),
            created_at_ms: now,
            updated_at_ms: now,
            budget_anchor_ms: now,
            ..UserDoc::default()
        };
        let (doc, mut unsupported) = docs::apply(&base, &body, docs::USER_FIELDS).map_err(bad)?;
        doc.limits.validate().map_err(bad)?;
        put(t, &doc, false).await?;
        // These two are the new key's, below.
        unsupported.retain(|f| f != "key_alias" && f != "duration");
        (user_json(&*find_user(t, &id)?), unsupported)
    };
    // As LiteLLM does, a new user gets a key of their own unless asked not to.
    if body.get("auto_create_key").and_then(Value::as_bool) != Some(false) {
        let mut key_body = Map::new();
        key_body.insert("user_id".into(), id.clone().into());
        for f in ["key_alias", "duration", "models"] {
            if let Some(v) = body.get(f) {
                key_body.insert(f.into(), v.clone());
            }
        }
        if let Some(team) = list_field(&body, "teams").first() {
            key_body.insert("team_id".into(), team.clone().into());
        }
        let (key, info, _) = generate_key(&gw, &key_body).await?;
        out.insert("key".into(), key.into());
        out.insert(
            "token".into(),
            info.get("token").cloned().unwrap_or(Value::Null),
        );
    }
    with_unsupported(out, &unsupported)
}

#[utoipa::path(
    post,
    path = "/user/update",
    tag = "users",
    summary = "Changes a user (`user_id` required).",
    request_body = crate::openapi::UserUpdateRequest,
    responses((status = 200, body = crate::openapi::UserInfo), crate::openapi::Failures)
)]
pub async fn user_update(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let body = admin_body(&gw, &headers, &body)?;
    let id = required(&body, "user_id", "")?;
    let t = &gw.tenancy;
    let _lock = t.lock().await;
    let e = find_user(t, id)?;
    let (mut doc, unsupported) = docs::apply(&e.doc, &body, docs::USER_FIELDS).map_err(bad)?;
    doc.changed_from(&e.doc).map_err(bad)?;
    put(t, &doc, false).await?;
    with_unsupported(user_json(&*find_user(t, id)?), &unsupported)
}

#[utoipa::path(
    post,
    path = "/user/delete",
    tag = "users",
    summary = "Deletes users and their keys.",
    request_body = crate::openapi::UserIds,
    responses((status = 200, body = crate::openapi::UsersDeleted), crate::openapi::Failures)
)]
pub async fn user_delete(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let body = admin_body(&gw, &headers, &body)?;
    let ids = list_field(&body, "user_ids");
    if ids.is_empty() {
        return Err(bad("user_ids: name at least one user"));
    }
    let t = &gw.tenancy;
    let _lock = t.lock().await;
    let users = ids
        .iter()
        .map(|id| find_user(t, id))
        .collect::<Result<Vec<_>, _>>()?;
    // A person's keys go with them.
    delete_keys(t, |k| k.user_id.as_ref().is_some_and(|u| ids.contains(u))).await?;
    for e in &users {
        put(t, &e.doc, true).await?;
    }
    Ok(axum::Json(json!({"deleted_users": ids})).into_response())
}

#[utoipa::path(
    get,
    path = "/user/info",
    tag = "users",
    summary = "One user, their keys and teams.",
    params(("user_id" = String, Query)),
    responses((status = 200, body = crate::openapi::UserInfoResponse), crate::openapi::Failures)
)]
pub async fn user_info(State(gw): State<Arc<Gateway>>, headers: HeaderMap, q: Params) -> Answer {
    admin(&gw, &headers)?;
    let id = q.get("user_id").ok_or_else(|| bad("user_id: required"))?;
    let e = find_user(&gw.tenancy, id)?;
    let (keys, teams) = {
        let dir = gw.tenancy.directory();
        let keys: Vec<Value> = dir
            .keys
            .values()
            .filter(|k| k.doc.user_id.as_ref() == Some(id))
            .map(|k| Value::Object(key_json(k)))
            .collect();
        let teams: Vec<Value> = dir
            .teams
            .values()
            .filter(|t| {
                e.doc.teams.contains(&t.doc.team_id)
                    || t.doc
                        .members_with_roles
                        .iter()
                        .any(|m| m.user_id.as_ref() == Some(id))
            })
            .map(|t| Value::Object(team_json(t)))
            .collect();
        (keys, teams)
    };
    let mut info = user_json(&e);
    with_recorded_spend(
        &gw.tenancy,
        &e,
        dragoman_store::GroupBy::User,
        id,
        &mut info,
    )
    .await;
    Ok(
        axum::Json(json!({"user_id": id, "user_info": info, "keys": keys, "teams": teams}))
            .into_response(),
    )
}

#[utoipa::path(
    get,
    path = "/user/list",
    tag = "users",
    summary = "Users, a page at a time.",
    params(("role" = Option<String>, Query), ("page" = Option<u32>, Query, minimum = 1), ("page_size" = Option<u32>, Query, minimum = 1, maximum = 1000)),
    responses((status = 200, body = crate::openapi::UserListResponse), crate::openapi::Failures)
)]
pub async fn user_list(State(gw): State<Arc<Gateway>>, headers: HeaderMap, q: Params) -> Answer {
    admin(&gw, &headers)?;
    let dir = gw.tenancy.directory();
    let mut users: Vec<_> = dir
        .users
        .values()
        .filter(|u| {
            q.get("role")
                .is_none_or(|r| u.doc.user_role.as_ref() == Some(r))
        })
        .collect();
    users.sort_by(|a, b| a.doc.user_id.cmp(&b.doc.user_id));
    let (page, size) = page(&q);
    let total = users.len();
    let out: Vec<Value> = users
        .iter()
        .skip((page - 1) * size)
        .take(size)
        .map(|e| Value::Object(user_json(e)))
        .collect();
    Ok(axum::Json(json!({"users": out, "total": total, "page": page, "page_size": size, "total_pages": total.div_ceil(size)})).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_names_show_only_the_tail() {
        assert_eq!(key_name("sk-abcdefghijkl"), "sk-...ijkl");
    }
}
