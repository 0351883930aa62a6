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

use super::docs::{self, KeyDoc, Member, TeamDoc, UserDoc};
use super::{Entry, KEY, TEAM, Tenancy, USER, hash_key, hex, now_ms};
use crate::Gateway;
use crate::principal::Principal;

type Params = Query<std::collections::HashMap<String, String>>;

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

fn object(body: &Bytes) -> Result<Map<String, Value>, Response> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(bad("request body must be a JSON object")),
        Err(e) => Err(bad(format!("invalid JSON body: {e}"))),
    }
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

/// Unix ms as LiteLLM shows times: RFC 3339, UTC.
pub fn iso(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    // Civil date from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000
    )
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

fn doc_json<T: serde::Serialize>(doc: &T) -> Map<String, Value> {
    match serde_json::to_value(doc) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

pub fn key_json(e: &Entry<KeyDoc>) -> Map<String, Value> {
    let mut out = doc_json(&e.doc);
    money(e, &mut out);
    out.insert("expires".into(), e.doc.expires_ms.map(iso).into());
    out.insert("created_at".into(), iso(e.doc.created_at_ms).into());
    out.insert("updated_at".into(), iso(e.doc.updated_at_ms).into());
    out
}

fn team_json(e: &Entry<TeamDoc>) -> Map<String, Value> {
    let mut out = doc_json(&e.doc);
    money(e, &mut out);
    out.insert("created_at".into(), iso(e.doc.created_at_ms).into());
    out
}

fn user_json(e: &Entry<UserDoc>) -> Map<String, Value> {
    let mut out = doc_json(&e.doc);
    money(e, &mut out);
    out.insert("created_at".into(), iso(e.doc.created_at_ms).into());
    out
}

fn with_unsupported(mut out: Map<String, Value>, unsupported: &[String]) -> Response {
    if !unsupported.is_empty() {
        tracing::warn!(fields = ?unsupported, "key API: fields dragoman does not support were not applied");
        out.insert("unsupported_fields".into(), json!(unsupported));
    }
    axum::Json(Value::Object(out)).into_response()
}

/// The key a body or query names: the key itself (`sk-…`) or its token (hash).
fn find_key(t: &Tenancy, named: &str) -> Option<Arc<Entry<KeyDoc>>> {
    t.key(named).or_else(|| t.key_by_token(named))
}

async fn put_key(t: &Tenancy, doc: &KeyDoc, deleted: bool) -> Result<(), Response> {
    let body = serde_json::to_string(doc).map_err(|e| stored(e.to_string()))?;
    let at = if deleted {
        now_ms().max(doc.updated_at_ms + 1)
    } else {
        doc.updated_at_ms
    };
    t.write(KEY, doc.token.clone(), body, at, deleted)
        .await
        .map_err(stored)
}

async fn put_team(t: &Tenancy, doc: &TeamDoc, deleted: bool) -> Result<(), Response> {
    let body = serde_json::to_string(doc).map_err(|e| stored(e.to_string()))?;
    let at = if deleted {
        now_ms().max(doc.updated_at_ms + 1)
    } else {
        doc.updated_at_ms
    };
    t.write(TEAM, doc.team_id.clone(), body, at, deleted)
        .await
        .map_err(stored)
}

async fn put_user(t: &Tenancy, doc: &UserDoc, deleted: bool) -> Result<(), Response> {
    let body = serde_json::to_string(doc).map_err(|e| stored(e.to_string()))?;
    let at = if deleted {
        now_ms().max(doc.updated_at_ms + 1)
    } else {
        doc.updated_at_ms
    };
    t.write(USER, doc.user_id.clone(), body, at, deleted)
        .await
        .map_err(stored)
}

/// A change time strictly after the document's last, so every instance orders them.
fn bump(previous: i64) -> i64 {
    now_ms().max(previous + 1)
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

fn check_key(gw: &Gateway, k: &KeyDoc, token: &str) -> Result<(), Response> {
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
            .any(|e| e.doc.key_alias.as_deref() == Some(alias) && e.doc.token != token)
    {
        return Err(bad(format!(
            "key_alias: another key is already called `{alias}`"
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Keys

pub async fn key_generate(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = admin(&gw, &headers) {
        return r;
    }
    let body = match object(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    match generate_key(&gw, &body).await {
        Ok((key, out, unsupported)) => {
            let mut out = out;
            out.insert("key".into(), key.into());
            with_unsupported(out, &unsupported)
        }
        Err(r) => r,
    }
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
    let key = match str_field(body, "key") {
        Some(k) if k.starts_with("sk-") && k.len() >= 12 => k.to_owned(),
        Some(_) => {
            return Err(bad(
                "key: a custom key must start with `sk-` and be at least 12 characters",
            ));
        }
        None => new_key()?,
    };
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
    if let Some(team) = str_field(body, "team_id") {
        doc.team_id = Some(team.to_owned());
    }
    if let Some(user) = str_field(body, "user_id") {
        doc.user_id = Some(user.to_owned());
    }
    if let Some(e) = expiry(body, now)? {
        doc.expires_ms = e;
    }
    check_key(gw, &doc, &token)?;
    put_key(t, &doc, false).await?;
    let entry = t
        .key_by_token(&token)
        .ok_or_else(|| stored("the new key did not reach the directory".into()))?;
    tracing::info!(key = %doc.key_name, alias = ?doc.key_alias, team = ?doc.team_id, "key generated");
    Ok((key, key_json(&entry), unsupported))
}

pub async fn key_update(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = admin(&gw, &headers) {
        return r;
    }
    let body = match object(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(named) = str_field(&body, "key") else {
        return bad("key: required (the key, or its token)");
    };
    let t = &gw.tenancy;
    let _lock = t.lock().await;
    let Some(entry) = find_key(t, named) else {
        return missing("key", &key_name(named));
    };
    let (mut doc, unsupported) = match docs::apply(&entry.doc, &body, docs::KEY_FIELDS) {
        Ok(v) => v,
        Err(e) => return bad(e),
    };
    if body.contains_key("team_id") {
        doc.team_id = str_field(&body, "team_id").map(str::to_owned);
    }
    if body.contains_key("user_id") {
        doc.user_id = str_field(&body, "user_id").map(str::to_owned);
    }
    let now = now_ms();
    match expiry(&body, now) {
        Ok(Some(e)) => doc.expires_ms = e,
        Ok(None) => {}
        Err(r) => return r,
    }
    if doc.limits.budget_duration != entry.doc.limits.budget_duration {
        doc.budget_anchor_ms = now;
    }
    doc.updated_at_ms = bump(entry.doc.updated_at_ms);
    if let Err(r) = check_key(&gw, &doc, &doc.token.clone()) {
        return r;
    }
    if let Err(r) = put_key(t, &doc, false).await {
        return r;
    }
    match t.key_by_token(&doc.token) {
        Some(e) => with_unsupported(key_json(&e), &unsupported),
        None => stored("the key did not reach the directory".into()),
    }
}

pub async fn key_delete(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = admin(&gw, &headers) {
        return r;
    }
    let body = match object(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let t = &gw.tenancy;
    let _lock = t.lock().await;
    let mut targets = Vec::new();
    for named in list_field(&body, "keys") {
        match find_key(t, &named) {
            Some(e) => targets.push(e),
            None => return missing("key", &key_name(&named)),
        }
    }
    for alias in list_field(&body, "key_aliases") {
        let dir = t.directory();
        match dir
            .keys
            .values()
            .find(|e| e.doc.key_alias.as_deref() == Some(alias.as_str()))
        {
            Some(e) => targets.push(e.clone()),
            None => return missing("key alias", &alias),
        }
    }
    if targets.is_empty() {
        return bad("keys: name at least one key (or key_aliases)");
    }
    let mut deleted = Vec::new();
    for e in targets {
        if let Err(r) = put_key(t, &e.doc, true).await {
            return r;
        }
        deleted.push(e.doc.token.clone());
    }
    axum::Json(json!({"deleted_keys": deleted})).into_response()
}

pub async fn key_info(State(gw): State<Arc<Gateway>>, headers: HeaderMap, q: Params) -> Response {
    let caller = match gw.authenticate(&headers) {
        Ok(p) => p,
        Err(e) => return fail(StatusCode::UNAUTHORIZED, e.message()),
    };
    let named = q.get("key").map(String::as_str);
    let entry = match (&caller, named) {
        // A virtual key may read about itself.
        (Principal::Key(c), None) => Some(c.key.clone()),
        (Principal::Key(c), Some(n)) => match find_key(&gw.tenancy, n) {
            Some(e) if e.doc.key_id == c.key.doc.key_id => Some(e),
            _ => {
                return fail(
                    StatusCode::UNAUTHORIZED,
                    "a virtual key may only read its own info",
                );
            }
        },
        (_, Some(n)) => find_key(&gw.tenancy, n),
        (_, None) => return bad("key: required (the key, or its token)"),
    };
    match entry {
        Some(e) => {
            let mut info = key_json(&e);
            with_recorded_spend(
                &gw.tenancy,
                &e,
                dragoman_store::GroupBy::Key,
                &e.doc.key_id,
                &mut info,
            )
            .await;
            axum::Json(json!({"key": e.doc.token, "info": info})).into_response()
        }
        None => missing("key", &key_name(named.unwrap_or_default())),
    }
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

pub async fn key_list(State(gw): State<Arc<Gateway>>, headers: HeaderMap, q: Params) -> Response {
    if let Err(r) = admin(&gw, &headers) {
        return r;
    }
    let dir = gw.tenancy.directory();
    let mut keys: Vec<_> = dir
        .keys
        .values()
        .filter(|e| {
            q.get("team_id")
                .is_none_or(|t| e.doc.team_id.as_ref() == Some(t))
        })
        .filter(|e| {
            q.get("user_id")
                .is_none_or(|u| e.doc.user_id.as_ref() == Some(u))
        })
        .filter(|e| {
            q.get("key_alias")
                .is_none_or(|a| e.doc.key_alias.as_ref() == Some(a))
        })
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
    axum::Json(json!({"keys": items, "total_count": total, "current_page": page, "total_pages": total.div_ceil(size)})).into_response()
}

pub async fn key_regenerate_path(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    Path(key): Path<String>,
    body: Bytes,
) -> Response {
    regenerate(gw, headers, Some(key), body).await
}

pub async fn key_regenerate(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    regenerate(gw, headers, None, body).await
}

/// A new secret for an existing key: same id, limits, spend and history; the old secret is
/// refused from now on.
async fn regenerate(
    gw: Arc<Gateway>,
    headers: HeaderMap,
    path_key: Option<String>,
    body: Bytes,
) -> Response {
    if let Err(r) = admin(&gw, &headers) {
        return r;
    }
    let body = match object(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(named) = path_key.or_else(|| str_field(&body, "key").map(str::to_owned)) else {
        return bad("key: required (the key, or its token)");
    };
    let t = &gw.tenancy;
    let _lock = t.lock().await;
    let Some(old) = find_key(t, &named) else {
        return missing("key", &key_name(&named));
    };
    let key = match str_field(&body, "new_key") {
        Some(k) if k.starts_with("sk-") && k.len() >= 12 => k.to_owned(),
        Some(_) => {
            return bad(
                "new_key: a custom key must start with `sk-` and be at least 12 characters",
            );
        }
        None => match new_key() {
            Ok(k) => k,
            Err(r) => return r,
        },
    };
    let mut fields = body.clone();
    fields.remove("key");
    fields.remove("new_key");
    let (mut doc, unsupported) = match docs::apply(&old.doc, &fields, docs::KEY_FIELDS) {
        Ok(v) => v,
        Err(e) => return bad(e),
    };
    doc.token = hex(&hash_key(&key));
    doc.key_name = key_name(&key);
    doc.updated_at_ms = bump(old.doc.updated_at_ms);
    if let Err(r) = put_key(t, &doc, false).await {
        return r;
    }
    if let Err(r) = put_key(t, &old.doc, true).await {
        return r;
    }
    match t.key_by_token(&doc.token) {
        Some(e) => {
            let mut out = key_json(&e);
            out.insert("key".into(), key.into());
            with_unsupported(out, &unsupported)
        }
        None => stored("the key did not reach the directory".into()),
    }
}

pub async fn key_block(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    set_blocked(gw, headers, body, true).await
}

pub async fn key_unblock(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    set_blocked(gw, headers, body, false).await
}

async fn set_blocked(gw: Arc<Gateway>, headers: HeaderMap, body: Bytes, blocked: bool) -> Response {
    if let Err(r) = admin(&gw, &headers) {
        return r;
    }
    let body = match object(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(named) = str_field(&body, "key") else {
        return bad("key: required (the key, or its token)");
    };
    let t = &gw.tenancy;
    let _lock = t.lock().await;
    let Some(e) = find_key(t, named) else {
        return missing("key", &key_name(named));
    };
    let mut doc = e.doc.clone();
    doc.blocked = blocked;
    doc.updated_at_ms = bump(doc.updated_at_ms);
    if let Err(r) = put_key(t, &doc, false).await {
        return r;
    }
    match t.key_by_token(&doc.token) {
        Some(e) => axum::Json(Value::Object(key_json(&e))).into_response(),
        None => stored("the key did not reach the directory".into()),
    }
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

pub async fn team_new(State(gw): State<Arc<Gateway>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = admin(&gw, &headers) {
        return r;
    }
    let body = match object(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let t = &gw.tenancy;
    let _lock = t.lock().await;
    let now = now_ms();
    let id = match str_field(&body, "team_id") {
        Some(id) => id.to_owned(),
        None => match new_key() {
            Ok(k) => format!("team-{}", &k[3..19]),
            Err(r) => return r,
        },
    };
    if t.directory().teams.contains_key(&id) {
        return bad(format!("team_id: team `{id}` already exists"));
    }
    let base = TeamDoc {
        team_id: id.clone(),
        created_at_ms: now,
        updated_at_ms: now,
        budget_anchor_ms: now,
        ..TeamDoc::default()
    };
    let (mut doc, unsupported) = match docs::apply(&base, &body, docs::TEAM_FIELDS) {
        Ok(v) => v,
        Err(e) => return bad(e),
    };
    doc.members_with_roles = match members(&body, "members_with_roles") {
        Ok(m) => m,
        Err(r) => return r,
    };
    if let Err(e) = doc.limits.validate() {
        return bad(e);
    }
    if let Err(r) = put_team(t, &doc, false).await {
        return r;
    }
    match t.directory().teams.get(&id) {
        Some(e) => with_unsupported(team_json(e), &unsupported),
        None => stored("the team did not reach the directory".into()),
    }
}

pub async fn team_update(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = admin(&gw, &headers) {
        return r;
    }
    let body = match object(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(id) = str_field(&body, "team_id") else {
        return bad("team_id: required");
    };
    let t = &gw.tenancy;
    let _lock = t.lock().await;
    let Some(e) = t.directory().teams.get(id).cloned() else {
        return missing("team", id);
    };
    let (mut doc, unsupported) = match docs::apply(&e.doc, &body, docs::TEAM_FIELDS) {
        Ok(v) => v,
        Err(e) => return bad(e),
    };
    if body.contains_key("members_with_roles") {
        doc.members_with_roles = match members(&body, "members_with_roles") {
            Ok(m) => m,
            Err(r) => return r,
        };
    }
    if let Err(e) = doc.limits.validate() {
        return bad(e);
    }
    if doc.limits.budget_duration != e.doc.limits.budget_duration {
        doc.budget_anchor_ms = now_ms();
    }
    doc.updated_at_ms = bump(e.doc.updated_at_ms);
    if let Err(r) = put_team(t, &doc, false).await {
        return r;
    }
    match t.directory().teams.get(id) {
        Some(e) => with_unsupported(team_json(e), &unsupported),
        None => stored("the team did not reach the directory".into()),
    }
}

pub async fn team_delete(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = admin(&gw, &headers) {
        return r;
    }
    let body = match object(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let ids = list_field(&body, "team_ids");
    if ids.is_empty() {
        return bad("team_ids: name at least one team");
    }
    let t = &gw.tenancy;
    let _lock = t.lock().await;
    let dir = t.directory();
    let mut teams = Vec::new();
    for id in &ids {
        match dir.teams.get(id) {
            Some(e) => teams.push(e.clone()),
            None => return missing("team", id),
        }
    }
    // As LiteLLM does: a team's keys go with it.
    let keys: Vec<_> = dir
        .keys
        .values()
        .filter(|k| k.doc.team_id.as_ref().is_some_and(|t| ids.contains(t)))
        .cloned()
        .collect();
    drop(dir);
    for k in keys {
        if let Err(r) = put_key(t, &k.doc, true).await {
            return r;
        }
    }
    let mut out = Vec::new();
    for e in teams {
        if let Err(r) = put_team(t, &e.doc, true).await {
            return r;
        }
        out.push(Value::Object(team_json(&e)));
    }
    axum::Json(json!({"deleted_teams": out})).into_response()
}

pub async fn team_info(State(gw): State<Arc<Gateway>>, headers: HeaderMap, q: Params) -> Response {
    if let Err(r) = admin(&gw, &headers) {
        return r;
    }
    let Some(id) = q.get("team_id") else {
        return bad("team_id: required");
    };
    let dir = gw.tenancy.directory();
    let Some(e) = dir.teams.get(id).cloned() else {
        return missing("team", id);
    };
    let keys: Vec<Value> = dir
        .keys
        .values()
        .filter(|k| k.doc.team_id.as_ref() == Some(id))
        .map(|k| Value::Object(key_json(k)))
        .collect();
    drop(dir);
    let mut info = team_json(&e);
    with_recorded_spend(
        &gw.tenancy,
        &e,
        dragoman_store::GroupBy::Team,
        id,
        &mut info,
    )
    .await;
    axum::Json(json!({"team_id": id, "team_info": info, "keys": keys, "team_memberships": e.doc.members_with_roles})).into_response()
}

pub async fn team_list(State(gw): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    if let Err(r) = admin(&gw, &headers) {
        return r;
    }
    let dir = gw.tenancy.directory();
    let mut teams: Vec<_> = dir.teams.values().collect();
    teams.sort_by(|a, b| a.doc.team_id.cmp(&b.doc.team_id));
    let out: Vec<Value> = teams
        .into_iter()
        .map(|e| Value::Object(team_json(e)))
        .collect();
    axum::Json(Value::Array(out)).into_response()
}

pub async fn team_member_add(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    team_members(gw, headers, body, true).await
}

pub async fn team_member_delete(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    team_members(gw, headers, body, false).await
}

async fn team_members(gw: Arc<Gateway>, headers: HeaderMap, body: Bytes, add: bool) -> Response {
    if let Err(r) = admin(&gw, &headers) {
        return r;
    }
    let body = match object(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(id) = str_field(&body, "team_id") else {
        return bad("team_id: required");
    };
    let t = &gw.tenancy;
    let _lock = t.lock().await;
    let Some(e) = t.directory().teams.get(id).cloned() else {
        return missing("team", id);
    };
    let mut doc = e.doc.clone();
    let same = |m: &Member, user: Option<&str>, email: Option<&str>| {
        (user.is_some() && m.user_id.as_deref() == user)
            || (email.is_some() && m.user_email.as_deref() == email)
    };
    let mut touched_users = Vec::new();
    if add {
        let list = match members(&body, "member") {
            Ok(m) if !m.is_empty() => m,
            Ok(_) => return bad("member: required ({\"user_id\": …, \"role\": \"user\"})"),
            Err(r) => return r,
        };
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
            return bad("user_id or user_email: required");
        }
        let before = doc.members_with_roles.len();
        doc.members_with_roles.retain(|x| !same(x, user, email));
        if doc.members_with_roles.len() == before {
            return missing("team member", user.or(email).unwrap_or_default());
        }
        touched_users.extend(user.map(str::to_owned));
    }
    doc.updated_at_ms = bump(e.doc.updated_at_ms);
    if let Err(r) = put_team(t, &doc, false).await {
        return r;
    }
    // The user's own list of teams follows, as LiteLLM keeps both.
    for uid in touched_users {
        let Some(u) = t.directory().users.get(&uid).cloned() else {
            continue;
        };
        let mut ud = u.doc.clone();
        ud.teams.retain(|x| x != id);
        if add {
            ud.teams.push(id.to_owned());
        }
        ud.updated_at_ms = bump(ud.updated_at_ms);
        if let Err(r) = put_user(t, &ud, false).await {
            return r;
        }
    }
    match t.directory().teams.get(id) {
        Some(e) => axum::Json(Value::Object(team_json(e))).into_response(),
        None => stored("the team did not reach the directory".into()),
    }
}

// ---------------------------------------------------------------------------------------------
// Users

pub async fn user_new(State(gw): State<Arc<Gateway>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = admin(&gw, &headers) {
        return r;
    }
    let body = match object(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let now = now_ms();
    let id = match str_field(&body, "user_id") {
        Some(id) => id.to_owned(),
        None => match new_key() {
            Ok(k) => format!("user-{}", &k[3..19]),
            Err(r) => return r,
        },
    };
    let user_out = {
        let t = &gw.tenancy;
        let _lock = t.lock().await;
        if t.directory().users.contains_key(&id) {
            return bad(format!("user_id: user `{id}` already exists"));
        }
        let base = UserDoc {
            user_id: id.clone(),
            created_at_ms: now,
            updated_at_ms: now,
            budget_anchor_ms: now,
            ..UserDoc::default()
        };
        let (doc, mut unsupported) = match docs::apply(&base, &body, docs::USER_FIELDS) {
            Ok(v) => v,
            Err(e) => return bad(e),
        };
        if let Err(e) = doc.limits.validate() {
            return bad(e);
        }
        if let Err(r) = put_user(t, &doc, false).await {
            return r;
        }
        unsupported.retain(|f| f != "key_alias" && f != "duration");
        match t.directory().users.get(&id) {
            Some(e) => (user_json(e), unsupported),
            None => return stored("the user did not reach the directory".into()),
        }
    };
    let (mut out, unsupported) = user_out;
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
        match generate_key(&gw, &key_body).await {
            Ok((key, info, _)) => {
                out.insert("key".into(), key.into());
                out.insert(
                    "token".into(),
                    info.get("token").cloned().unwrap_or(Value::Null),
                );
            }
            Err(r) => return r,
        }
    }
    with_unsupported(out, &unsupported)
}

pub async fn user_update(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = admin(&gw, &headers) {
        return r;
    }
    let body = match object(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(id) = str_field(&body, "user_id") else {
        return bad("user_id: required");
    };
    let t = &gw.tenancy;
    let _lock = t.lock().await;
    let Some(e) = t.directory().users.get(id).cloned() else {
        return missing("user", id);
    };
    let (mut doc, unsupported) = match docs::apply(&e.doc, &body, docs::USER_FIELDS) {
        Ok(v) => v,
        Err(e) => return bad(e),
    };
    if let Err(e) = doc.limits.validate() {
        return bad(e);
    }
    if doc.limits.budget_duration != e.doc.limits.budget_duration {
        doc.budget_anchor_ms = now_ms();
    }
    doc.updated_at_ms = bump(e.doc.updated_at_ms);
    if let Err(r) = put_user(t, &doc, false).await {
        return r;
    }
    match t.directory().users.get(id) {
        Some(e) => with_unsupported(user_json(e), &unsupported),
        None => stored("the user did not reach the directory".into()),
    }
}

pub async fn user_delete(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = admin(&gw, &headers) {
        return r;
    }
    let body = match object(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let ids = list_field(&body, "user_ids");
    if ids.is_empty() {
        return bad("user_ids: name at least one user");
    }
    let t = &gw.tenancy;
    let _lock = t.lock().await;
    let dir = t.directory();
    let mut users = Vec::new();
    for id in &ids {
        match dir.users.get(id) {
            Some(e) => users.push(e.clone()),
            None => return missing("user", id),
        }
    }
    // A person's keys go with them.
    let keys: Vec<_> = dir
        .keys
        .values()
        .filter(|k| k.doc.user_id.as_ref().is_some_and(|u| ids.contains(u)))
        .cloned()
        .collect();
    drop(dir);
    for k in keys {
        if let Err(r) = put_key(t, &k.doc, true).await {
            return r;
        }
    }
    for e in &users {
        if let Err(r) = put_user(t, &e.doc, true).await {
            return r;
        }
    }
    axum::Json(json!({"deleted_users": ids})).into_response()
}

pub async fn user_info(State(gw): State<Arc<Gateway>>, headers: HeaderMap, q: Params) -> Response {
    if let Err(r) = admin(&gw, &headers) {
        return r;
    }
    let Some(id) = q.get("user_id") else {
        return bad("user_id: required");
    };
    let dir = gw.tenancy.directory();
    let Some(e) = dir.users.get(id).cloned() else {
        return missing("user", id);
    };
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
    drop(dir);
    let mut info = user_json(&e);
    with_recorded_spend(
        &gw.tenancy,
        &e,
        dragoman_store::GroupBy::User,
        id,
        &mut info,
    )
    .await;
    axum::Json(json!({"user_id": id, "user_info": info, "keys": keys, "teams": teams}))
        .into_response()
}

pub async fn user_list(State(gw): State<Arc<Gateway>>, headers: HeaderMap, q: Params) -> Response {
    if let Err(r) = admin(&gw, &headers) {
        return r;
    }
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
    axum::Json(json!({"users": out, "total": total, "page": page, "page_size": size, "total_pages": total.div_ceil(size)})).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(iso(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso(1_798_761_600_123), "2027-01-01T00:00:00.123Z");
        assert_eq!(iso(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn key_names_show_only_the_tail() {
        assert_eq!(key_name("sk-abcdefghijkl"), "sk-...ijkl");
    }
}
