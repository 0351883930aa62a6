//! Deployment health, as LiteLLM's `/health` reports it: each deployment probed with a
//! minimal request (one user word, one output token) in its own dialect, healthy and unhealthy
//! ones listed. With `background_health_checks`, probes run every `health_check_interval`,
//! feed the router's cooldowns, and `/health` answers from the last round.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dragoman_model::{Dialect, Losses};
use dragoman_translate as hub;
use serde_json::{Value, json};

use crate::Gateway;
use crate::upstream::{self, Op};

/// A probe waits at most this long for a deployment (its own timeout if shorter).
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

/// One round of probes over every deployment, in parallel, in deployment order.
async fn probe_all(gw: &Gateway) -> Vec<Probe> {
    let tls = match upstream::tls_config() {
        Ok(t) => t,
        Err(e) => {
            return gw
                .config
                .deployments
                .iter()
                .map(|_| Probe::Unhealthy(e.clone()))
                .collect();
        }
    };
    let proxies = upstream::proxies_from_env();
    let probes = (0..gw.config.deployments.len()).map(|i| {
        let client = upstream::client(
            gw.config.deployments[i].connect_timeout,
            tls.clone(),
            proxies.clone(),
        );
        async move { probe(gw, i, &client).await }
    });
    futures_util::future::join_all(probes).await
}

/// A probe round now, as LiteLLM's `/health` body.
pub async fn check_all(gw: &Gateway) -> Value {
    report(gw, &probe_all(gw).await)
}

/// LiteLLM's `/health` body for one round of probes.
fn report(gw: &Gateway, probes: &[Probe]) -> Value {
    let (mut healthy, mut unhealthy) = (Vec::new(), Vec::new());
    for (d, r) in gw.config.deployments.iter().zip(probes) {
        let mut entry = json!({
            "model_name": d.model_name,
            "model": format!("{}/{}", d.provider.name(), d.upstream_model),
            "api_base": d.api_base,
            "deployment": d.id,
        });
        match r {
            Probe::Healthy(t) => {
                entry["latency_ms"] = json!(t.as_millis() as u64);
                healthy.push(entry);
            }
            Probe::Unhealthy(e) => {
                entry["error"] = json!(e);
                unhealthy.push(entry);
            }
            Probe::Skipped(why) => {
                entry["skipped"] = json!(why);
                healthy.push(entry);
            }
        }
    }
    json!({
        "healthy_count": healthy.len(),
        "unhealthy_count": unhealthy.len(),
        "healthy_endpoints": healthy,
        "unhealthy_endpoints": unhealthy,
    })
}

enum Probe {
    Healthy(Duration),
    Unhealthy(String),
    /// Not probed (a wildcard deployment has no one model to ask for).
    Skipped(&'static str),
}

async fn probe(gw: &Gateway, i: usize, client: &upstream::HttpClient) -> Probe {
    let d = &gw.config.deployments[i];
    if d.upstream_model.ends_with('*') {
        return Probe::Skipped("wildcard deployment: not probed");
    }
    // An embedding deployment is probed with an embedding of one word, as LiteLLM does.
    let (op, body) = if d.embedding {
        let ping = br#"{"model":"probe","input":"ping"}"#;
        let body = crate::attempt::embed_wire(d, &d.upstream_model).and_then(|wire| {
            let req = dragoman_embeddings::decode_request(ping).ok()?;
            let bodies = dragoman_embeddings::encode_request(wire, &req, &d.upstream_model).ok()?;
            let mut first = bodies.into_iter().next()?;
            if wire == dragoman_embeddings::Wire::OpenAi {
                first["model"] = serde_json::Value::String(d.upstream_model.clone());
            }
            serde_json::to_vec(&first).ok()
        });
        let Some(body) = body else {
            return Probe::Unhealthy("cannot build the embedding probe".into());
        };
        (Op::Embed, bytes::Bytes::from(body))
    } else {
        let ping =
            br#"{"model":"probe","max_tokens":1,"messages":[{"role":"user","content":"ping"}]}"#;
        let mut losses = Losses::new();
        let Ok(mut req) = hub::decode_request(Dialect::Chat, ping, &mut losses) else {
            return Probe::Unhealthy("cannot build the probe request".into());
        };
        req.model = d.upstream_model.clone();
        let body = serde_json::to_vec(&hub::encode_request(d.dialect, &req, &mut losses))
            .unwrap_or_default();
        (Op::Generate, bytes::Bytes::from(body))
    };
    if let Some(auth) = gw.adapters[i].pending_auth()
        && let Err(e) = auth.await
    {
        return Probe::Unhealthy(e.message);
    }
    let http_req = match gw.adapters[i].build(
        op,
        &d.upstream_model,
        d.dialect,
        &http::HeaderMap::new(),
        body,
    ) {
        Ok(r) => r,
        Err(e) => return Probe::Unhealthy(e.message),
    };
    let limit = d.timeout.min(PROBE_TIMEOUT);
    let started = Instant::now();
    let resp = match upstream::send(client, http_req, limit).await {
        Ok(r) => r,
        Err(e) => return Probe::Unhealthy(e.body.message),
    };
    let status = resp.status().as_u16();
    let deadline = tokio::time::Instant::now() + limit;
    let bytes = crate::proxy::read_upstream(resp, deadline, 1 << 20)
        .await
        .unwrap_or_default();
    if status >= 400 {
        let e = hub::decode_error(
            gw.adapters[i].error_dialect().unwrap_or(d.dialect),
            Some(status),
            &bytes,
        );
        return Probe::Unhealthy(format!("{status}: {}", e.message));
    }
    Probe::Healthy(started.elapsed())
}

/// Runs a probe round every `interval` for as long as the gateway lives, feeding the router:
/// an unhealthy deployment cools down, a healthy one that was cooling is released.
pub fn spawn_background(gw: Arc<Gateway>, interval: Duration) {
    tokio::spawn(async move {
        loop {
            let probes = probe_all(&gw).await;
            for (i, p) in probes.iter().enumerate() {
                match p {
                    Probe::Healthy(_) => gw.router.recovered(i),
                    Probe::Unhealthy(_) => gw.router.cool_for(i, interval),
                    Probe::Skipped(_) => {}
                }
            }
            let report = report(&gw, &probes);
            if let Ok(mut last) = gw.health.lock() {
                *last = Some(report);
            }
            tokio::time::sleep(interval).await;
        }
    });
}
