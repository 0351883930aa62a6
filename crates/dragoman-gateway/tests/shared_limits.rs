//! Limits and budgets across instances: two gateways in one process share PostgreSQL and a
//! real Redis server this test starts on a port of its own (so stopping it disturbs nothing
//! else). A key's `rpm_limit: 60` admits exactly 60 of 200 calls spread over both; with Redis
//! stopped, each instance serves its share on local meters; restarted, the spend each made
//! alone is counted globally and the limits are global again.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dragoman_store::Store;
use dragoman_testkit::MockUpstream;
use serde_json::{Value, json};

const MASTER: &str = "sk-master-test";

struct Redis {
    port: u16,
    child: Option<Child>,
}

impl Redis {
    fn start_on(port: u16) -> Redis {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
                "--bind",
                "127.0.0.1",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (.ci/run installs it)");
        let started = Instant::now();
        loop {
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                use std::io::{Read, Write};
                let _ = s.write_all(b"PING\r\n");
                let mut buf = [0u8; 7];
                if s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n" {
                    break;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Redis {
            port,
            child: Some(child),
        }
    }

    fn start() -> Redis {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        Redis::start_on(port)
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Gw {
    url: String,
    http: reqwest::Client,
    _server: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn instance(mock: &MockUpstream, store: Store, redis_port: u16, prefix: &str) -> Gw {
    let yaml = format!(
        "model_list:
  - model_name: gpt
    litellm_params: {{model: openai/gpt, api_base: '{base}', api_key: k, input_cost_per_token: 0.000001, output_cost_per_token: 0.00001}}
  - model_name: limited
    litellm_params: {{model: openai/limited, api_base: '{base}', api_key: k, rpm: 4}}
general_settings:
  master_key: {MASTER}
  redis_url: redis://127.0.0.1:{redis_port}
dragoman_settings:
  redis_prefix: {prefix}
",
        base = mock.base_v1()
    );
    let config = dragoman_config::parse(&yaml, &|_: &str| None).unwrap();
    let (writer, _task) = dragoman_store::spawn_writer(
        Arc::new(store.clone()),
        dragoman_store::WriterOptions::default(),
    );
    let gw = dragoman_gateway::Gateway::with_store(config, Some(store), Some(writer)).unwrap();
    gw.load_tenancy().await.unwrap();
    gw.start_background_tasks();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(dragoman_gateway::serve(
        gw,
        listener,
        std::future::pending(),
    ));
    Gw {
        url,
        http: reqwest::Client::new(),
        _server: server,
    }
}

impl Gw {
    async fn chat(&self, key: &str) -> reqwest::Response {
        self.http
            .post(format!("{}/v1/chat/completions", self.url))
            .bearer_auth(key)
            .json(&json!({"model": "gpt", "max_tokens": 12, "messages": [{"role": "user", "content": "x".repeat(3800)}]}))
            .send()
            .await
            .unwrap()
    }

    async fn key(&self, body: Value) -> String {
        let r = self
            .http
            .post(format!("{}/key/generate", self.url))
            .bearer_auth(MASTER)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        v["key"].as_str().unwrap().to_owned()
    }

    async fn metric(&self, name: &str) -> f64 {
        let text = self
            .http
            .get(format!("{}/metrics", self.url))
            .bearer_auth(MASTER)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| {
                l.strip_prefix(name)
                    .and_then(|rest| rest.trim().parse().ok())
            })
            .unwrap_or(f64::NAN)
    }

    /// Waits for the first instance poll to see a key made on the other.
    async fn wait_for(&self, key: &str) {
        let started = Instant::now();
        while self
            .http
            .get(format!("{}/key/info", self.url))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
            .status()
            != 200
        {
            assert!(started.elapsed() < Duration::from_secs(3));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Two gateway instances sharing one PostgreSQL schema and a Redis server of their own.
struct Pair {
    a: Gw,
    b: Gw,
    redis: Redis,
    url: String,
    schema: String,
    _mock: MockUpstream,
}

impl Pair {
    /// `None` when PostgreSQL is skipped.
    async fn start() -> Option<Pair> {
        let url = common::pg_url()?;
        let redis = Redis::start();
        let schema = common::schema("dragoman_sl");
        let prefix = format!("t{:08x}", fastrand::u32(..));
        let mock = MockUpstream::start().await;
        let mut gws = Vec::new();
        for _ in 0..2 {
            let store = Store::connect_with_schema(&url, &schema).await.unwrap();
            gws.push(instance(&mock, store, redis.port, &prefix).await);
        }
        let b = gws.pop()?;
        let a = gws.pop()?;
        Some(Pair {
            a,
            b,
            redis,
            url,
            schema,
            _mock: mock,
        })
    }

    async fn finish(self) {
        common::drop_schema(&self.url, &self.schema).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpm_60_admits_exactly_60_of_200_calls_over_two_instances() {
    let Some(pair) = Pair::start().await else {
        return;
    };
    let (a, b) = (&pair.a, &pair.b);
    let key = a.key(json!({"rpm_limit": 60})).await;
    b.wait_for(&key).await;
    let started = Instant::now();
    let gws = [&a, &b];
    let mut statuses = Vec::new();
    // Eight at a time, alternating instances.
    for round in 0..25 {
        let calls = (0..8).map(|i| gws[(round * 8 + i) % 2].chat(&key));
        for r in futures_util::future::join_all(calls).await {
            statuses.push(r.status().as_u16());
        }
    }
    let ok = statuses.iter().filter(|s| **s == 200).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    eprintln!(
        "200 calls over two instances in {:?}: {ok} served, {limited} limited",
        started.elapsed()
    );
    assert_eq!((ok, limited), (60, 140));
    assert_eq!(a.metric("dragoman_redis_up").await, 1.0);
    pair.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_stopped_each_instance_serves_its_share_and_heals_when_it_returns() {
    let Some(pair) = Pair::start().await else {
        return;
    };
    let Pair {
        a,
        b,
        mut redis,
        url,
        schema,
        _mock,
    } = pair;
    let port = redis.port;
    // Both heartbeats have been seen by now: two live instances.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let key = a.key(json!({"rpm_limit": 10, "max_budget": 1.0})).await;
    let free = a.key(json!({"key_alias": "no-limits"})).await;
    b.wait_for(&key).await;

    redis.stop();
    // A call notices at once (the connection is refused); the heartbeat notices within 0.5 s.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(a.metric("dragoman_redis_up").await, 0.0);
    let mut served_a = 0;
    for _ in 0..8 {
        if a.chat(&key).await.status() == 200 {
            served_a += 1;
        }
    }
    assert_eq!(served_a, 5, "alone, an instance serves its half of rpm 10");
    assert_eq!(a.metric("dragoman_limit_local_decisions").await, 8.0);
    // A key that limits nothing has nothing to share: Redis being away changes nothing for it.
    assert_eq!(a.chat(&free).await.status(), 200);
    assert_eq!(a.metric("dragoman_limit_local_decisions").await, 8.0);
    assert!(a.metric("dragoman_redis_pending_settlements").await >= 5.0);
    let spent_alone: f64 = {
        let r = b.chat(&key).await;
        assert_eq!(r.status(), 200, "the other instance keeps serving too");
        r.headers()["x-litellm-key-spend"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(
        spent_alone < 0.002,
        "B knows only its own call while Redis is away: {spent_alone}"
    );

    let _redis = Redis::start_on(port);
    let started = Instant::now();
    while a.metric("dragoman_redis_up").await != 1.0
        || a.metric("dragoman_redis_pending_settlements").await != 0.0
    {
        assert!(started.elapsed() < Duration::from_secs(5), "did not heal");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    while b.metric("dragoman_redis_up").await != 1.0
        || b.metric("dragoman_redis_pending_settlements").await != 0.0
    {
        assert!(started.elapsed() < Duration::from_secs(5), "did not heal");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("healed {:?} after Redis returned", started.elapsed());
    // Global again: the spend each instance made alone is in the shared counter (6 calls).
    let r = b.chat(&key).await;
    assert_eq!(r.status(), 200);
    let spent: f64 = r.headers()["x-litellm-key-spend"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (spent - 6.0 * 0.001354).abs() < 1e-9,
        "global spend after healing: {spent}"
    );
    common::drop_schema(&url, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployments_rpm_holds_across_instances() {
    let Some(pair) = Pair::start().await else {
        return;
    };
    let (a, b) = (&pair.a, &pair.b);
    let mut statuses = Vec::new();
    for i in 0..10 {
        let g = if i % 2 == 0 { &a } else { &b };
        let r = g
            .http
            .post(format!("{}/v1/chat/completions", g.url))
            .bearer_auth(MASTER)
            .json(&json!({"model": "limited", "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    // Each instance alone would have let 4 through: 8 of 10.
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        4,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        6,
        "{statuses:?}"
    );
    pair.finish().await;
}
