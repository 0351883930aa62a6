//! The admin UI at `/ui`: its assets (inside the binary, no build step), its session, and the
//! few views the management API does not already answer (deployments and their state, the
//! running config with secrets masked).
//!
//! The session: the key is sent once, to `POST /ui/api/login`, and never kept by the browser.
//! The answer sets an `HttpOnly`, `SameSite=Strict` cookie holding a signed, expiring session
//! (HMAC-SHA256 under a secret derived from the master key, so every instance sharing the master
//! key accepts it, and changing the master key ends every session). A virtual key's session
//! names the key by its hash and is checked against the directory on every request, so a
//! blocked or deleted key's session ends at once. Every request a session authenticates must
//! also carry `x-dragoman-csrf` (a value derived from the session, handed to the page by
//! `/ui/api/session`): a cross-site page can make the browser send the cookie, never the header.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde_json::{Value, json};

use crate::Gateway;
use crate::auth::AuthError;
use crate::principal::Principal;

pub const COOKIE: &str = "dragoman_ui";
pub const CSRF_HEADER: &str = "x-dragoman-csrf";
/// How long a session lasts.
const SESSION_MS: i64 = 12 * 3_600_000;

struct Asset {
    path: &'static str,
    mime: &'static str,
    body: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        path: "index.html",
        mime: "text/html; charset=utf-8",
        body: include_bytes!("../ui/index.html"),
    },
    Asset {
        path: "app.js",
        mime: "text/javascript; charset=utf-8",
        body: include_bytes!("../ui/app.js"),
    },
    Asset {
        path: "app.css",
        mime: "text/css; charset=utf-8",
        body: include_bytes!("../ui/app.css"),
    },
    Asset {
        path: "favicon.svg",
        mime: "image/svg+xml",
        body: include_bytes!("../ui/favicon.svg"),
    },
];

pub fn router() -> Router<Arc<Gateway>> {
    Router::new()
        .route("/ui", get(index))
        .route("/ui/", get(index))
        .route("/ui/api/login", post(login))
        .route("/ui/api/logout", post(logout))
        .route("/ui/api/session", get(session))
        .route("/ui/{*path}", get(asset))
}

/// Headers every UI answer carries: nothing from elsewhere runs, nothing frames the page.
fn hardened(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
             connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}

fn serve(a: &Asset) -> Response {
    let mut r = (StatusCode::OK, a.body).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(a.mime));
    // The assets change only with the binary; `no-cache` revalidates them cheaply after an
    // upgrade rather than pinning an old page.
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    hardened(r)
}

async fn index() -> Response {
    serve(&ASSETS[0])
}

async fn asset(Path(path): Path<String>) -> Response {
    match ASSETS.iter().find(|a| a.path == path) {
        Some(a) => serve(a),
        None => hardened(fail(StatusCode::NOT_FOUND, "no such UI asset")),
    }
}

fn fail(status: StatusCode, msg: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": {"message": msg, "type": "ui_error", "code": status.as_u16().to_string()}})),
    )
        .into_response()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The signing key of sessions: derived from the master key, so only a gateway that has it
/// can make or read one.
fn signing_key(gw: &Gateway) -> Option<ring::hmac::Key> {
    let master = gw.config().master_key.as_ref()?;
    let derived = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"dragoman ui session v1"),
        master.expose().as_bytes(),
    );
    Some(ring::hmac::Key::new(
        ring::hmac::HMAC_SHA256,
        derived.as_ref(),
    ))
}

/// What a session says: `m` (the master key) or `k` (the key with this SHA-256, hex).
fn make_session(key: &ring::hmac::Key, subject: &str, exp_ms: i64) -> String {
    let body = format!("v1.{subject}.{exp_ms}");
    let tag = ring::hmac::sign(key, body.as_bytes());
    format!("{body}.{}", b64(tag.as_ref()))
}

/// The session's subject when its signature holds and it has not expired.
fn open_session(key: &ring::hmac::Key, token: &str, now_ms: i64) -> Option<String> {
    let (body, tag) = token.rsplit_once('.')?;
    let tag = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(tag)
        .ok()?;
    ring::hmac::verify(key, body.as_bytes(), &tag).ok()?;
    let mut parts = body.splitn(3, '.');
    let (v, subject, exp) = (parts.next()?, parts.next()?, parts.next()?);
    let exp: i64 = exp.parse().ok()?;
    (v == "v1" && exp > now_ms).then(|| subject.to_owned())
}

fn csrf_of(key: &ring::hmac::Key, token: &str) -> String {
    let tag = ring::hmac::sign(key, format!("csrf.{token}").as_bytes());
    b64(&tag.as_ref()[..18])
}

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// The caller a session cookie names, for `authenticate` when no key was presented: `None`
/// without a cookie; an error for a session that is forged, expired, or sent without its CSRF
/// header.
pub(crate) fn session_principal(
    gw: &Gateway,
    headers: &HeaderMap,
) -> Option<Result<Principal, AuthError>> {
    let token = cookie_value(headers, COOKIE)?;
    Some(principal_of(gw, headers, token, true))
}

fn principal_of(
    gw: &Gateway,
    headers: &HeaderMap,
    token: &str,
    need_csrf: bool,
) -> Result<Principal, AuthError> {
    let key = signing_key(gw).ok_or(AuthError::Invalid)?;
    let subject = open_session(&key, token, crate::tenancy::now_ms()).ok_or(AuthError::Invalid)?;
    if need_csrf {
        let sent = headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let want = csrf_of(&key, token);
        use subtle::ConstantTimeEq;
        if !bool::from(sent.as_bytes().ct_eq(want.as_bytes())) {
            return Err(AuthError::Invalid);
        }
    }
    match subject.as_str() {
        "m" => Ok(Principal::Master),
        s => {
            let hash = s
                .strip_prefix('k')
                .and_then(unhex)
                .ok_or(AuthError::Invalid)?;
            gw.key_principal(&hash)
        }
    }
}

#[derive(serde::Deserialize)]
struct Login {
    key: String,
}

async fn login(State(gw): State<Arc<Gateway>>, headers: HeaderMap, body: Bytes) -> Response {
    if !json_posted(&headers) {
        return hardened(fail(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the key as application/json",
        ));
    }
    let Some(signing) = signing_key(&gw) else {
        return hardened(fail(
            StatusCode::BAD_REQUEST,
            "the UI needs a master key: set general_settings.master_key",
        ));
    };
    let Ok(Login { key }) = serde_json::from_slice::<Login>(&body) else {
        return hardened(fail(StatusCode::BAD_REQUEST, "send {\"key\": \"sk-...\"}"));
    };
    let mut h = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&format!("Bearer {}", key.trim())) {
        h.insert(header::AUTHORIZATION, v);
    }
    let subject = match gw.authenticate(&h) {
        Ok(Principal::Master) => "m".to_owned(),
        Ok(Principal::Key(c)) => format!("k{}", c.key.doc.token),
        Ok(Principal::Open) | Err(_) => {
            tracing::info!("UI login refused");
            return hardened(fail(StatusCode::UNAUTHORIZED, "that key is not valid here"));
        }
    };
    let token = make_session(&signing, &subject, crate::tenancy::now_ms() + SESSION_MS);
    let secure = headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    let cookie = format!(
        "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        SESSION_MS / 1000,
        if secure { "; Secure" } else { "" }
    );
    let mut r = session_json(&gw, &h, &token, &signing);
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

async fn logout(headers: HeaderMap) -> Response {
    if !json_posted(&headers) {
        return hardened(fail(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "log out with an application/json POST",
        ));
    }
    let mut r = hardened(axum::Json(json!({"ok": true})).into_response());
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("dragoman_ui=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    r
}

/// Who the session is, and the CSRF value its requests carry.
async fn session(State(gw): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    let (Some(signing), Some(token)) = (signing_key(&gw), cookie_value(&headers, COOKIE)) else {
        return hardened(fail(StatusCode::UNAUTHORIZED, "not logged in"));
    };
    session_json(&gw, &headers, token, &signing)
}

fn session_json(
    gw: &Gateway,
    headers: &HeaderMap,
    token: &str,
    signing: &ring::hmac::Key,
) -> Response {
    let who = match gw.authenticate(headers) {
        // At login the key is in `headers`; afterwards the cookie is.
        Ok(p @ (Principal::Master | Principal::Key(_))) => p,
        _ => match principal_of(gw, headers, token, false) {
            Ok(p) => p,
            Err(e) => return hardened(fail(StatusCode::UNAUTHORIZED, &e.message())),
        },
    };
    let body = match &who {
        Principal::Key(c) => json!({
            "role": "key",
            "label": c.key.doc.label(),
            "token": c.key.doc.token,
            "key_id": c.key.doc.key_id,
            "team_id": c.key.doc.team_id,
            "csrf": csrf_of(signing, token),
        }),
        _ => json!({"role": "admin", "label": "master key", "csrf": csrf_of(signing, token)}),
    };
    let mut r = hardened(axum::Json(body).into_response());
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The refusal for anyone but the master key, or `None` to go on.
fn admin_only(gw: &Gateway, headers: &HeaderMap) -> Option<Response> {
    match gw.authenticate(headers) {
        Ok(Principal::Master) => None,
        Ok(_) => Some(hardened(fail(
            StatusCode::FORBIDDEN,
            "only the master key sees this",
        ))),
        Err(e) => Some(hardened(fail(StatusCode::UNAUTHORIZED, &e.message()))),
    }
}

/// Every deployment: where it points, its state on this instance's router, its limits and
/// its price per million tokens.
#[utoipa::path(
    get,
    path = "/ui/api/deployments",
    tag = "models",
    summary = "Every deployment with its router state (cooling down, latency estimate, in flight), last health probe, limits and price per million tokens.",
    responses((status = 200, body = crate::openapi::Deployments), crate::openapi::Failures)
)]
pub(crate) async fn deployments(State(gw): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    if let Some(r) = admin_only(&gw, &headers) {
        return r;
    }
    let last = gw.health.lock().ok().and_then(|h| h.clone());
    let probe = |id: &str| -> Value {
        let Some(h) = &last else { return Value::Null };
        for (list, ok) in [("healthy_endpoints", true), ("unhealthy_endpoints", false)] {
            if let Some(e) = h[list]
                .as_array()
                .and_then(|a| a.iter().find(|e| e["deployment"] == id))
            {
                return json!({"healthy": ok, "error": e.get("error"), "latency_ms": e.get("latency_ms")});
            }
        }
        Value::Null
    };
    let per_million = |p: Option<u64>| p.map(|p| p as f64 / 1e6);
    let out: Vec<Value> = gw
        .config()
        .deployments
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let price = gw.price_of(i);
            json!({
                "id": d.id,
                "model_name": d.model_name,
                "provider": d.provider.name(),
                "model": d.upstream_model,
                "api_base": mask_url(&d.api_base),
                "dialect": d.dialect.as_str(),
                "cooling_down": gw.router.is_cooling(i),
                "latency_estimate_ms": (gw.router.latency_estimate(i) * 1000.0).round(),
                "in_flight": gw.router.in_flight(i),
                "rpm": d.rpm,
                "tpm": d.tpm,
                "max_parallel_requests": d.max_parallel,
                "weight": d.weight,
                "order": d.order,
                "price_per_million": price.map(|p| json!({
                    "input": per_million(p.input),
                    "output": per_million(p.output),
                    "cache_read": per_million(p.cache_read),
                    "cache_write": per_million(p.cache_write_5m),
                })),
                "last_probe": probe(&d.id),
            })
        })
        .collect();
    hardened(axum::Json(json!({"deployments": out})).into_response())
}

const MASK: &str = "********";

/// The running config, as parsed: every credential shown as set or not, never its value.
#[utoipa::path(
    get,
    path = "/ui/api/config",
    tag = "health",
    summary = "The running config as parsed; every credential shows only whether it is set.",
    responses((status = 200, body = Object), crate::openapi::Failures)
)]
pub(crate) async fn config(State(gw): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    if let Some(r) = admin_only(&gw, &headers) {
        return r;
    }
    let c = gw.config();
    let masked = |set: bool| if set { Value::from(MASK) } else { Value::Null };
    let deployments: Vec<Value> = c
        .deployments
        .iter()
        .map(|d| {
            json!({
                "model_name": d.model_name,
                "id": d.id,
                "provider": d.provider.name(),
                "model": d.upstream_model,
                "api_base": mask_url(&d.api_base),
                "api_key": masked(d.api_key.is_some()),
                "api_version": d.api_version,
                "timeout_s": d.timeout.as_secs_f64(),
                "stream_timeout_s": d.stream_timeout.as_secs_f64(),
                // Header names only: their values are often credentials.
                "extra_headers": d.extra_headers.iter().map(|(k, _)| (k.clone(), Value::from(MASK))).collect::<serde_json::Map<_, _>>(),
                "rpm": d.rpm,
                "tpm": d.tpm,
                "max_parallel_requests": d.max_parallel,
                "weight": d.weight,
                "order": d.order,
                "max_retries": d.max_retries,
                "base_model": d.base_model,
                "aws_region": d.aws.as_ref().map(|a| a.region.clone()),
                "aws_secret_access_key": masked(d.aws.as_ref().is_some_and(|a| a.secret_access_key.is_some())),
                "embedding": d.embedding,
            })
        })
        .collect();
    let r = &c.router;
    let body = json!({
        "master_key": masked(c.master_key.is_some()),
        "server": {
            "host": c.server.host,
            "port": c.server.port,
            "max_body_bytes": c.server.max_body_bytes,
            "public_metrics": c.server.public_metrics,
            "strict_translation": c.server.strict_translation,
        },
        "router": {
            "strategy": format!("{:?}", r.strategy),
            "num_retries": r.num_retries,
            "allowed_fails": r.allowed_fails,
            "cooldown_time_s": r.cooldown_time.as_secs_f64(),
            "disable_cooldowns": r.disable_cooldowns,
            "fallbacks": format!("{:?}", r.fallbacks),
            "aliases": r.aliases.iter().map(|(a, t, _)| json!([a, t])).collect::<Vec<_>>(),
        },
        "redis": masked(c.redis.is_some()),
        "cache": c.cache.as_ref().map(|k| json!({"redis": k.redis, "ttl_s": k.ttl.as_secs_f64()})),
        "callbacks": c.telemetry.sinks.iter().map(|s| json!({"name": s.name, "url": mask_url(&s.url)})).collect::<Vec<_>>(),
        "deployments": deployments,
        "warnings": c.warnings,
    });
    hardened(axum::Json(body).into_response())
}

/// A URL with its user information, query and fragment (where keys hide: `?key=…`) masked.
fn mask_url(url: &str) -> String {
    let cut = url.find(['?', '#']);
    let (base, tail) = match cut {
        Some(i) => (&url[..i], Some(MASK)),
        None => (url, None),
    };
    let base = match base.split_once("://") {
        Some((scheme, rest)) => {
            // User information lives in the authority only: before the path's first `/`, up
            // to its last `@` (a password may hold `@` too).
            let end = rest.find('/').unwrap_or(rest.len());
            let (authority, path) = rest.split_at(end);
            match authority.rsplit_once('@') {
                Some((_, host)) => format!("{scheme}://{MASK}@{host}{path}"),
                None => base.to_owned(),
            }
        }
        None => base.to_owned(),
    };
    match tail {
        Some(t) => format!("{base}?{t}"),
        None => base,
    }
}

/// A cross-site form can post `text/plain` that parses as JSON; only a script of this origin
/// can send `application/json` (anything else needs a CORS preflight this server never grants).
fn json_posted(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/json")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_hold_only_with_their_signature_and_before_their_expiry() {
        let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"secret");
        let t = make_session(&k, "m", 2_000);
        assert_eq!(open_session(&k, &t, 1_000).as_deref(), Some("m"));
        assert_eq!(open_session(&k, &t, 2_000), None, "expired");
        let other = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"other");
        assert_eq!(open_session(&other, &t, 1_000), None, "another master key");
        let forged = t.replace("v1.m.2000", "v1.m.9999");
        assert_eq!(open_session(&k, &forged, 1_000), None, "a changed expiry");
        assert_ne!(csrf_of(&k, &t), csrf_of(&k, &make_session(&k, "m", 3_000)));
    }

    #[test]
    fn urls_lose_their_passwords_and_queries() {
        assert_eq!(
            mask_url("postgres://u:pw@db:5432/x"),
            "postgres://********@db:5432/x"
        );
        assert_eq!(
            mask_url("https://g.example/v1?key=abc"),
            "https://g.example/v1?********"
        );
        assert_eq!(mask_url("http://127.0.0.1:4000"), "http://127.0.0.1:4000");
        assert_eq!(
            mask_url("redis://u:p@ss@host:6379/0"),
            "redis://********@host:6379/0"
        );
        assert_eq!(
            mask_url("https://host/v1/users/a@b#token"),
            "https://host/v1/users/a@b?********"
        );
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; dragoman_ui=tok.en; b=2"),
        );
        assert_eq!(cookie_value(&h, COOKIE), Some("tok.en"));
        assert_eq!(cookie_value(&h, "c"), None);
    }
}
