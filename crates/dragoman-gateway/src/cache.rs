//! LiteLLM's response cache (`litellm_settings.cache: true`): an answered request asked again
//! is answered from the cache, in the asker's dialect, without calling a provider.
//!
//! The key is the request in canonical form (model group, messages, tools, settings: what the
//! answer depends on), not its bytes, so one prompt asked in two dialects hits one entry; the
//! key, request ids and the `stream` flag are not part of it. An entry is the canonical
//! response, so a hit is written whole or as a stream of the client's own dialect either way.
//! `type: local` keeps entries in this instance's memory (bounded, least recently used out
//! first); `type: redis` shares them across instances. A request's `cache` object
//! (`no-cache`, `no-store`, `ttl`) and its `Cache-Control` header (`no-cache`, `no-store`,
//! `max-age`) override the defaults for that request.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use dragoman_config::CacheSettings;
use dragoman_model::{Dialect, Request, Response};
use serde_json::Value;

/// What a request asked of the cache.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Directives {
    /// Do not answer from the cache.
    pub no_cache: bool,
    /// Do not keep this answer.
    pub no_store: bool,
    /// Keep this answer this long instead of the default.
    pub ttl: Option<Duration>,
}

impl Directives {
    /// From the body's `cache` object (LiteLLM's) and the `Cache-Control` header.
    pub fn read(body: &Value, headers: &HeaderMap) -> Directives {
        let mut d = Directives::default();
        if let Some(c) = body.get("cache") {
            d.no_cache = c["no-cache"] == Value::Bool(true);
            d.no_store = c["no-store"] == Value::Bool(true);
            d.ttl = c["ttl"]
                .as_f64()
                .filter(|t| *t > 0.0)
                .map(Duration::from_secs_f64);
        }
        if let Some(cc) = headers
            .get(http::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
        {
            for part in cc.split(',').map(str::trim) {
                match part {
                    "no-cache" => d.no_cache = true,
                    "no-store" => d.no_store = true,
                    p => {
                        if let Some(age) = p.strip_prefix("max-age=")
                            && let Ok(n) = age.parse::<u64>()
                        {
                            d.ttl = Some(Duration::from_secs(n));
                        }
                    }
                }
            }
        }
        d
    }
}

/// A cached answer and what it cost when it was made (the saving a hit records).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Entry {
    pub response: Response,
    pub cost_nanos: Option<i64>,
}

#[derive(Default)]
struct Lru {
    map: HashMap<String, (Arc<Entry>, Instant)>,
    order: VecDeque<String>,
}

pub struct ResponseCache {
    settings: CacheSettings,
    memory: Mutex<Lru>,
    shared: Option<Arc<crate::tenancy::shared::Shared>>,
}

impl ResponseCache {
    pub fn new(
        settings: CacheSettings,
        shared: Option<Arc<crate::tenancy::shared::Shared>>,
    ) -> ResponseCache {
        ResponseCache {
            shared: if settings.redis { shared } else { None },
            settings,
            memory: Mutex::new(Lru::default()),
        }
    }

    /// Whether calls of dialect `d` are cached.
    pub fn serves(&self, d: Dialect) -> bool {
        self.settings.dialects.contains(&d)
    }

    pub fn ttl(&self) -> Duration {
        self.settings.ttl
    }

    /// The entry's key for a request of group `group` (LiteLLM names the header
    /// `x-litellm-cache-key`): a SHA-256 of the canonical request.
    pub fn key(&self, group: &str, req: &Request) -> String {
        let mut canonical = req.clone();
        canonical.stream = false;
        canonical.model = group.to_owned();
        // Codec-private markers only say how the client's dialect spelled a field.
        canonical.extensions.retain(|e| !e.is_private());
        let bytes = serde_json::to_vec(&canonical).unwrap_or_default();
        let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
        let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        match &self.settings.namespace {
            Some(ns) => format!("{ns}:{hex}"),
            None => hex,
        }
    }

    pub async fn get(&self, key: &str) -> Option<Arc<Entry>> {
        if let Some(shared) = &self.shared {
            let bytes = shared.cache_get(&format!("cache:{key}")).await?;
            return serde_json::from_slice::<Entry>(&bytes).ok().map(Arc::new);
        }
        let mut m = self.memory.lock().ok()?;
        let (entry, until) = m.map.get(key)?.clone();
        if Instant::now() >= until {
            m.map.remove(key);
            m.order.retain(|k| k != key);
            return None;
        }
        // Most recently used last.
        if let Some(pos) = m.order.iter().position(|k| k == key) {
            m.order.remove(pos);
        }
        m.order.push_back(key.to_owned());
        Some(entry)
    }

    /// Keeps `entry` under `key` for `ttl` (off the request path: a Redis write is spawned).
    pub fn put(&self, key: String, entry: Entry, ttl: Duration) {
        if let Some(shared) = self.shared.clone() {
            if let Ok(bytes) = serde_json::to_vec(&entry) {
                tokio::spawn(async move {
                    shared.cache_set(&format!("cache:{key}"), bytes, ttl).await;
                });
            }
            return;
        }
        let Ok(mut m) = self.memory.lock() else {
            return;
        };
        let until = Instant::now() + ttl;
        if m.map
            .insert(key.clone(), (Arc::new(entry), until))
            .is_some()
        {
            m.order.retain(|k| *k != key);
        }
        m.order.push_back(key);
        while m.order.len() > self.settings.max_entries.max(1) {
            if let Some(old) = m.order.pop_front() {
                m.map.remove(&old);
            }
        }
    }
}

/// A cacheable request's key and directives, and its body without LiteLLM's `cache` object
/// when it had one (no provider accepts that field).
pub struct Lookup {
    pub key: String,
    pub directives: Directives,
    pub stripped: Option<bytes::Bytes>,
}

impl ResponseCache {
    /// The lookup for a request of dialect `client` to group `group`; `None` when the body
    /// cannot be read (the request goes on uncached, and its own path reports the problem).
    pub fn lookup(
        &self,
        client: Dialect,
        group: &str,
        body: &bytes::Bytes,
        headers: &HeaderMap,
    ) -> Option<Lookup> {
        // One parse when the body has no `cache` object (the usual case); a tree to take it
        // out of the body when it has.
        let (directives, stripped) = if memchr::memmem::find(body, b"\"cache\"").is_some() {
            let mut v: Value = serde_json::from_slice(body).ok()?;
            let directives = Directives::read(&v, headers);
            let stripped = match v.as_object_mut().and_then(|o| o.remove("cache")) {
                Some(_) => Some(bytes::Bytes::from(serde_json::to_vec(&v).ok()?)),
                None => None,
            };
            (directives, stripped)
        } else {
            (Directives::read(&Value::Null, headers), None)
        };
        let mut losses = dragoman_model::Losses::new();
        let mut req = dragoman_translate::decode_request(
            client,
            stripped.as_ref().unwrap_or(body),
            &mut losses,
        )
        .ok()?;
        // The key is what the answer depends on: how it is delivered is not part of it (the
        // `stream` flag is cleared by `key`; the rest travels as the dialect's extensions).
        let delivery = client.delivery_fields();
        req.extensions
            .retain(|e| !delivery.contains(&e.key.as_str()));
        Some(Lookup {
            key: self.key(group, &req),
            directives,
            stripped,
        })
    }

    /// Keeps a whole answer of `dialect` (its bytes, decoded in a task, off the request path).
    pub fn fill_from_body(
        self: &Arc<Self>,
        key: String,
        ttl: Duration,
        dialect: Dialect,
        body: bytes::Bytes,
        cost_nanos: Option<i64>,
    ) {
        let this = self.clone();
        tokio::spawn(async move {
            let mut losses = dragoman_model::Losses::new();
            if let Ok(response) = dragoman_translate::decode_response(dialect, &body, &mut losses) {
                this.put(
                    key,
                    Entry {
                        response,
                        cost_nanos,
                    },
                    ttl,
                );
            }
        });
    }
}

/// An answer from the cache, in the client's dialect: whole, or as its own stream.
pub fn replay(
    client: Dialect,
    entry: &Entry,
    stream: bool,
    include_usage: bool,
) -> (bytes::Bytes, &'static str) {
    let mut losses = dragoman_model::Losses::new();
    if !stream {
        let v = dragoman_translate::encode_response(client, &entry.response, &mut losses);
        return (
            bytes::Bytes::from(serde_json::to_vec(&v).unwrap_or_default()),
            "application/json",
        );
    }
    let events = dragoman_model::response_events(&entry.response);
    let opts = dragoman_model::StreamOptions {
        input_estimate: None,
        include_usage,
    };
    let out = dragoman_translate::encode_stream(client, &events, opts, &mut losses);
    (
        bytes::Bytes::from(dragoman_translate::encode_events(client, &out)),
        "text/event-stream",
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn cache(max: usize) -> ResponseCache {
        ResponseCache::new(
            CacheSettings {
                redis: false,
                ttl: Duration::from_secs(60),
                namespace: Some("ns".into()),
                dialects: Dialect::CLIENTS.to_vec(),
                max_entries: max,
            },
            None,
        )
    }

    fn entry(text: &str) -> Entry {
        Entry {
            response: Response {
                id: "r".into(),
                model: "m".into(),
                content: vec![dragoman_model::Part::text(text)],
                stop: dragoman_model::StopReason::EndTurn,
                usage: dragoman_model::Usage::default(),
                extensions: Vec::new(),
            },
            cost_nanos: Some(7),
        }
    }

    #[tokio::test]
    async fn the_least_recently_used_goes_first_and_expired_entries_miss() {
        let c = cache(2);
        c.put("a".into(), entry("A"), Duration::from_secs(60));
        c.put("b".into(), entry("B"), Duration::from_secs(60));
        assert!(c.get("a").await.is_some());
        c.put("c".into(), entry("C"), Duration::from_secs(60));
        assert!(c.get("b").await.is_none(), "b was least recently used");
        assert!(c.get("a").await.is_some() && c.get("c").await.is_some());
        c.put("d".into(), entry("D"), Duration::from_millis(1));
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(c.get("d").await.is_none());
    }

    #[test]
    fn keys_ignore_the_stream_flag_and_name_the_group_and_namespace() {
        let c = cache(2);
        let mut r = Request {
            model: "upstream-name".into(),
            ..Request::default()
        };
        let k = c.key("g", &r);
        r.stream = true;
        r.model = "other".into();
        assert_eq!(c.key("g", &r), k);
        assert_ne!(c.key("h", &r), k);
        assert!(k.starts_with("ns:") && k.len() == 3 + 64);
    }

    #[test]
    fn directives_come_from_the_body_and_cache_control() {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::CACHE_CONTROL,
            "no-store, max-age=30".parse().unwrap(),
        );
        let d = Directives::read(&serde_json::json!({"cache": {"no-cache": true}}), &h);
        assert_eq!(
            d,
            Directives {
                no_cache: true,
                no_store: true,
                ttl: Some(Duration::from_secs(30)),
            }
        );
    }
}
