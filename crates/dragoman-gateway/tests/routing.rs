//! Routing that survives failure, over real HTTP against the testkit's mock upstream: each
//! rule of the router and the attempt loop driven by an upstream fault (429 with
//! `retry-after-ms: 0`, 529, 500, 401, a reset before the first byte, a reset after it, a
//! hang), fallbacks across dialects, cooldowns, limits, and sticky conversations measured by
//! a mock that caches prompts per deployment.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use dragoman_testkit::MockUpstream;
use futures_util::StreamExt;
use serde_json::{Value, json};

struct Gw {
    mock: MockUpstream,
    url: String,
    http: reqwest::Client,
    _server: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// A gateway over one mock; `{v1}` and `{base}` in `yaml` are the mock's addresses, `{dead}`
/// an address that refuses connections and `{drop}` one that accepts and drops them.
async fn gateway(yaml: &str) -> Gw {
    let mock = MockUpstream::start().await;
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let a = l.local_addr().unwrap();
        drop(l);
        format!("http://{a}/v1")
    };
    let dropper = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let drop_url = format!("http://{}/v1", dropper.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((conn, _)) = dropper.accept().await {
            drop(conn);
        }
    });
    let yaml = yaml
        .replace("{v1}", &mock.base_v1())
        .replace("{base}", &mock.base())
        .replace("{dead}", &dead)
        .replace("{drop}", &drop_url);
    let config = dragoman_config::parse(&yaml, &|_: &str| None).unwrap();
    let gw = dragoman_gateway::Gateway::new(config).unwrap();
    gw.start_background_tasks();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(dragoman_gateway::serve(
        gw,
        listener,
        std::future::pending(),
    ));
    Gw {
        mock,
        url,
        http: reqwest::Client::new(),
        _server: server,
    }
}

impl Gw {
    /// A client and the chat URL, to time calls without borrowing the gateway.
    fn clone_handle(&self) -> (reqwest::Client, String) {
        (
            self.http.clone(),
            format!("{}/v1/chat/completions", self.url),
        )
    }

    async fn chat(&self, model: &str, stream: bool) -> reqwest::Response {
        self.chat_with(model, stream, "hi", &[]).await
    }

    async fn chat_with(
        &self,
        model: &str,
        stream: bool,
        text: &str,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut req = self
            .http
            .post(format!("{}/v1/chat/completions", self.url))
            .json(&json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": text}]}));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().await.unwrap()
    }

    async fn get_json(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn metrics(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    fn calls_to(&self, upstream_model: &str) -> usize {
        self.mock
            .requests()
            .iter()
            .filter(|r| r.body["model"] == upstream_model)
            .count()
    }
}

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// A whole Chat answer's text, or the stream's text (panicking on an error event).
async fn text(r: reqwest::Response) -> String {
    assert_eq!(r.status(), 200, "{:?}", r.headers());
    let ct = header(&r, "content-type");
    let bytes = r.bytes().await.unwrap();
    if ct.starts_with("application/json") {
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        return v["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
    }
    let mut out = String::new();
    for e in dragoman_sse::decode_all(&bytes).unwrap() {
        if e.data == "[DONE]" {
            continue;
        }
        let v: Value = serde_json::from_str(&e.data).unwrap();
        assert!(v.get("error").is_none(), "error event: {v}");
        if let Some(t) = v["choices"][0]["delta"]["content"].as_str() {
            out.push_str(t);
        }
    }
    out
}

const LIVE: &str = "script/text";

/// The first finding: a group of one dead and one live deployment failed 9 calls of
/// 12. Now every call is served, whole and streamed, and the dead one cools down.
#[tokio::test]
async fn a_dead_deployment_never_fails_a_call_a_live_one_can_serve() {
    let g = gateway(
        "model_list:
  - model_name: g
    litellm_params: {model: openai/script/text, api_base: \"{dead}\"}
    model_info: {id: dead}
  - model_name: g
    litellm_params: {model: openai/script/text, api_base: \"{v1}\"}
    model_info: {id: live}
",
    )
    .await;
    let mut attempts = 0;
    for i in 0..24 {
        // Distinct conversations: one conversation would stick to one deployment.
        let r = g.chat_with("g", i % 2 == 0, &format!("hi {i}"), &[]).await;
        assert_eq!(header(&r, "x-dragoman-deployment"), "live");
        assert_eq!(header(&r, "x-litellm-model-group"), "g");
        attempts += header(&r, "x-dragoman-attempts").parse::<u32>().unwrap();
        assert!(!text(r).await.is_empty());
    }
    // Three connection failures cool it down (allowed_fails: 3), so few calls pay a retry.
    assert!(attempts <= 24 + 4, "attempts {attempts}");
    let m = g.metrics().await;
    assert!(
        m.contains("dragoman_upstream_attempts_total{deployment=\"dead\",outcome=\"502\"}"),
        "{m}"
    );
    assert!(
        m.contains("dragoman_deployment_cooling{deployment=\"dead\"} 1"),
        "{m}"
    );
}

/// Each transient fault on the first deployment (forced first by `order`) is retried on the
/// second, before anything reached the client.
#[tokio::test]
async fn transient_faults_are_retried_on_another_deployment() {
    for (fault, base) in [
        ("script/http429-now", "{v1}"),
        ("script/http529", "{v1}"),
        ("script/http500", "{v1}"),
        ("script/http401", "{v1}"),
        ("script/hang", "{v1}"),
        ("script/text", "{drop}"),
    ] {
        let g = gateway(&format!(
            "model_list:
  - model_name: g
    litellm_params: {{model: openai/{fault}, api_base: \"{base}\", order: 1, timeout: 1}}
  - model_name: g
    litellm_params: {{model: openai/script/text, api_base: \"{{v1}}\", order: 2}}
router_settings: {{disable_cooldowns: true}}
"
        ))
        .await;
        for stream in [false, true] {
            let t = Instant::now();
            let r = g.chat("g", stream).await;
            assert_eq!(
                header(&r, "x-dragoman-attempts"),
                "2",
                "{fault} stream={stream}"
            );
            assert_eq!(header(&r, "x-litellm-attempted-retries"), "1");
            assert!(!text(r).await.is_empty(), "{fault}");
            assert!(
                t.elapsed() < Duration::from_secs(3),
                "{fault}: {:?}",
                t.elapsed()
            );
        }
    }
}

/// A 429 with `retry-after-ms: 0` on a group of one is retried in place at once, up to
/// `num_retries`; the answer is the upstream's own 429 with its headers.
#[tokio::test]
async fn a_lone_deployment_is_retried_in_place_up_to_num_retries() {
    let g = gateway(
        "model_list:
  - model_name: g
    litellm_params: {model: openai/script/http429-now, api_base: \"{v1}\"}
router_settings: {num_retries: 3}
",
    )
    .await;
    let t = Instant::now();
    let r = g.chat("g", false).await;
    assert_eq!(r.status(), 429);
    assert_eq!(header(&r, "x-dragoman-attempts"), "4");
    assert_eq!(header(&r, "retry-after-ms"), "0");
    assert_eq!(g.calls_to("script/http429-now"), 4);
    let four = t.elapsed();
    assert!(four < Duration::from_secs(1), "{four:?}");
    // What one retry adds: 4 attempts against 1 (`num_retries: 0`), best of 20 each.
    let once = gateway(
        "model_list:
  - model_name: g
    litellm_params: {model: openai/script/http429-now, api_base: \"{v1}\"}
router_settings: {num_retries: 0}
",
    )
    .await;
    let best = |g: &Gw| {
        let g = g.clone_handle();
        async move {
            let mut best = Duration::MAX;
            for _ in 0..20 {
                let t = Instant::now();
                let r = g
                    .0
                    .post(&g.1)
                    .json(&json!({"model": "g", "messages": [{"role": "user", "content": "hi"}]}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 429);
                best = best.min(t.elapsed());
            }
            best
        }
    };
    let (one, four) = (best(&once).await, best(&g).await);
    eprintln!(
        "one 429 retry (retry-after-ms: 0) adds {:?} (1 attempt {one:?}, 4 attempts {four:?})",
        four.saturating_sub(one) / 3
    );
}

/// Client errors are never retried: the same request would fail the same way anywhere.
#[tokio::test]
async fn client_errors_are_not_retried() {
    let g = gateway(
        "model_list:
  - model_name: g
    litellm_params: {model: openai/script/http400, api_base: \"{v1}\", order: 1}
  - model_name: g
    litellm_params: {model: openai/script/text, api_base: \"{v1}\", order: 2}
",
    )
    .await;
    let r = g.chat("g", false).await;
    assert_eq!(r.status(), 400);
    assert_eq!(header(&r, "x-dragoman-attempts"), "1");
    assert_eq!(g.calls_to("script/text"), 0);
}

/// Once the stream has started, a failure is the client's error event, never a retry: the
/// second deployment is not called. (A reset that lands before the first read is a failure
/// before the first byte, and is retried: the race is the network's, the rule is the same.)
#[tokio::test]
async fn a_stream_that_started_is_never_retried() {
    for fault in ["fault/hang", "fault/cut", "script/midstream"] {
        let g = gateway(&format!(
            "model_list:
  - model_name: g
    litellm_params: {{model: openai/{fault}, api_base: \"{{v1}}\", order: 1, stream_timeout: 1}}
  - model_name: g
    litellm_params: {{model: openai/script/text, api_base: \"{{v1}}\", order: 2}}
"
        ))
        .await;
        let r = g.chat("g", true).await;
        assert_eq!(r.status(), 200);
        let mut body = r.bytes_stream();
        let mut all = Vec::new();
        while let Some(Ok(c)) = body.next().await {
            all.extend_from_slice(&c);
        }
        let s = String::from_utf8_lossy(&all);
        assert!(s.contains("Hello"), "{fault}: the first byte went out: {s}");
        assert_eq!(g.calls_to(fault), 1, "{fault}");
        assert_eq!(
            g.calls_to("script/text"),
            0,
            "{fault}: retried after the first byte"
        );
    }
}

/// Fallbacks: a failing group falls back to another group, here served in another dialect
/// (Anthropic), translated per attempt; a context-window error goes to
/// `context_window_fallbacks` only.
#[tokio::test]
async fn fallbacks_cross_groups_and_dialects() {
    let g = gateway(
        "model_list:
  - model_name: small
    litellm_params: {model: openai/script/http529, api_base: \"{v1}\"}
  - model_name: short
    litellm_params: {model: openai/script/http400-context, api_base: \"{v1}\"}
  - model_name: claude
    litellm_params: {model: anthropic/script/text, api_base: \"{base}\"}
  - model_name: long
    litellm_params: {model: openai/script/text, api_base: \"{v1}\"}
router_settings:
  num_retries: 0
  fallbacks: [{small: [claude]}, {short: [claude]}]
  context_window_fallbacks: [{short: [long]}]
",
    )
    .await;
    for stream in [false, true] {
        let r = g.chat("small", stream).await;
        assert_eq!(header(&r, "x-litellm-attempted-fallbacks"), "1");
        assert_eq!(header(&r, "x-litellm-model-group"), "small");
        assert!(header(&r, "x-dragoman-deployment").starts_with("claude"));
        assert!(!text(r).await.is_empty());
        let r = g.chat("short", stream).await;
        assert!(header(&r, "x-dragoman-deployment").starts_with("long"));
        assert!(!text(r).await.is_empty());
    }
    assert!(
        g.mock.requests().iter().any(|r| r.path == "/v1/messages"),
        "the fallback was sent to the Anthropic upstream in its dialect"
    );
}

/// A deployment past `allowed_fails` cools down and is not tried while another is healthy.
#[tokio::test]
async fn a_cooling_deployment_is_skipped() {
    let g = gateway(
        "model_list:
  - model_name: g
    litellm_params: {model: openai/script/http500, api_base: \"{v1}\", order: 1}
  - model_name: g
    litellm_params: {model: openai/script/text, api_base: \"{v1}\", order: 2}
router_settings: {allowed_fails: 1, cooldown_time: 60}
",
    )
    .await;
    assert_eq!(
        header(&g.chat("g", false).await, "x-dragoman-attempts"),
        "2"
    );
    assert_eq!(
        header(&g.chat("g", false).await, "x-dragoman-attempts"),
        "2"
    );
    for _ in 0..5 {
        assert_eq!(
            header(&g.chat("g", false).await, "x-dragoman-attempts"),
            "1"
        );
    }
    assert_eq!(g.calls_to("script/http500"), 2);
}

/// `rpm` holds on this instance: past it the group answers 429 with `retry-after`, without
/// calling the upstream.
#[tokio::test]
async fn rpm_limits_are_enforced() {
    let g = gateway(
        "model_list:
  - model_name: g
    litellm_params: {model: openai/script/text, api_base: \"{v1}\", rpm: 2}
",
    )
    .await;
    let codes: Vec<u16> = futures_util::future::join_all((0..5).map(|_| g.chat("g", false)))
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert_eq!(codes.iter().filter(|&&c| c == 200).count(), 2, "{codes:?}");
    assert_eq!(codes.iter().filter(|&&c| c == 429).count(), 3, "{codes:?}");
    assert_eq!(g.calls_to(LIVE), 2);
    let r = g.chat("g", false).await;
    assert!(header(&r, "retry-after").parse::<u64>().unwrap() >= 1);
}

/// Sticky conversations against random picks, on a mock that caches each conversation's
/// prompt per deployment as a provider does: 4 deployments, 20 conversations of 5 turns.
#[tokio::test]
async fn sticky_conversations_keep_the_prompt_cache_hitting() {
    let config = |sticky: bool| {
        let mut y = String::from("model_list:\n");
        for i in 0..4 {
            y.push_str(&format!(
                "  - model_name: g\n    litellm_params: {{model: openai/script/cache-{i}, api_base: \"{{v1}}\"}}\n"
            ));
        }
        y.push_str(&format!(
            "dragoman_settings: {{sticky_sessions: {sticky}}}\n"
        ));
        y
    };
    let mut ratios = Vec::new();
    // Keyed by Claude Code's session header; random picks; keyed by the prompt prefix alone.
    for (sticky, with_header) in [(true, true), (false, true), (true, false)] {
        let g = gateway(&config(sticky)).await;
        let (mut hits, mut turns) = (0, 0);
        for conv in 0..20 {
            let session = format!("session-{conv}");
            let with = [("x-claude-code-session-id", session.as_str())];
            let headers: &[(&str, &str)] = if with_header { &with } else { &[] };
            for _ in 0..5 {
                let r = g
                    .chat_with("g", false, &format!("conversation {conv}"), headers)
                    .await;
                let v: Value = r.json().await.unwrap();
                turns += 1;
                if v["usage"]["prompt_tokens_details"]["cached_tokens"].as_u64() == Some(1000) {
                    hits += 1;
                }
            }
        }
        ratios.push(hits as f64 / turns as f64);
    }
    let (sticky, random, prefix) = (ratios[0], ratios[1], ratios[2]);
    // Sticky: every turn after the first hits (0.8). Random over 4: about 0.45.
    assert!(sticky >= 0.79, "sticky {sticky}");
    assert!(prefix >= 0.79, "prefix {prefix}");
    assert!(random < sticky - 0.15, "random {random} vs sticky {sticky}");
    eprintln!(
        "cache-hit ratio: sticky {sticky:.2} (session header), {prefix:.2} (prompt prefix), random {random:.2}"
    );
}

/// A LiteLLM config with entries dragoman does not serve yet starts, and serves the rest;
/// aliases route and are listed unless hidden.
#[tokio::test]
async fn unsupported_entries_are_skipped_and_aliases_served() {
    let g = gateway(
        "model_list:
  - model_name: sagemaker
    litellm_params: {model: sagemaker/jumpstart-llama, api_key: x}
  - model_name: images
    litellm_params: {model: openai/dall-e-3, api_base: \"{v1}\"}
    model_info: {mode: image_generation}
  - model_name: g
    litellm_params: {model: openai/script/text, api_base: \"{v1}\"}
router_settings:
  model_group_alias: {fast: g, secret: {model: g, hidden: true}}
",
    )
    .await;
    for name in ["g", "fast", "secret"] {
        assert!(!text(g.chat(name, false).await).await.is_empty(), "{name}");
    }
    let r = g.chat("sagemaker", false).await;
    assert_eq!(r.status(), 404);
    let models = g.get_json("/v1/models").await;
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(ids, ["g", "fast"]);
}

/// `/health` probes each deployment in its own dialect, as LiteLLM's does; with background
/// checks the dead one cools down before any request meets it.
#[tokio::test]
async fn health_probes_every_deployment_and_feeds_cooldowns() {
    let yaml = "model_list:
  - model_name: g
    litellm_params: {model: openai/script/text, api_base: \"{dead}\"}
    model_info: {id: dead}
  - model_name: g
    litellm_params: {model: anthropic/script/text, api_base: \"{base}\"}
    model_info: {id: live}
  - model_name: \"w-*\"
    litellm_params: {model: \"openai/*\", api_base: \"{v1}\"}
";
    let g = gateway(yaml).await;
    let h = g.get_json("/health").await;
    assert_eq!(h["unhealthy_count"], 1, "{h}");
    assert_eq!(h["unhealthy_endpoints"][0]["deployment"], "dead");
    assert_eq!(h["healthy_count"], 2, "{h}");
    assert!(
        g.mock
            .requests()
            .iter()
            .any(|r| r.path == "/v1/messages" && r.body["max_tokens"] == 1)
    );
    let g = gateway(&format!(
        "{yaml}general_settings: {{background_health_checks: true, health_check_interval: 60}}\n"
    ))
    .await;
    let mut cooled = false;
    for _ in 0..50 {
        if g.metrics()
            .await
            .contains("dragoman_deployment_cooling{deployment=\"dead\"} 1")
        {
            cooled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(cooled, "the background round cooled the dead deployment");
    let r = g.chat("g", false).await;
    assert_eq!(header(&r, "x-dragoman-attempts"), "1");
    assert_eq!(header(&r, "x-dragoman-deployment"), "live");
}
