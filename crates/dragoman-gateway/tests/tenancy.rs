//! Virtual keys, teams, users, limits and budgets, over real HTTP with the store on a real
//! SQLite file (and PostgreSQL where two instances share one): the key API's answers, what a
//! key may call, exact rpm, parallel slots, budgets under 64 concurrent streams, spend per
//! key, team and user, a restart, and a change on one instance reaching another.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use dragoman_store::Store;
use dragoman_testkit::MockUpstream;
use serde_json::{Value, json};

const MASTER: &str = "sk-master-test";

/// $1 per million prompt tokens, $10 per million output tokens: the mock's scripted answer
/// (1234 prompt tokens, 12 output) costs $0.001354.
const CONFIG: &str = "model_list:
  - model_name: gpt
    litellm_params: {model: openai/gpt, api_base: '{v1}', api_key: k, input_cost_per_token: 0.000001, output_cost_per_token: 0.00001}
  - model_name: slow
    litellm_params: {model: openai/slow, api_base: '{v1}', api_key: k, input_cost_per_token: 0.000001, output_cost_per_token: 0.00001}
  - model_name: slowstart
    litellm_params: {model: openai/script/slowstart, api_base: '{v1}', api_key: k}
  - model_name: claude
    litellm_params: {model: anthropic/claude, api_base: '{base}', api_key: k, input_cost_per_token: 0.000001, output_cost_per_token: 0.00001}
general_settings:
  master_key: sk-master-test
litellm_settings:
  callbacks: [prometheus]
";
const ONE_CALL_NANOS: i64 = 1_354_000;

struct Gw {
    url: String,
    http: reqwest::Client,
    gw: Arc<dragoman_gateway::Gateway>,
    _mock: Arc<MockUpstream>,
    _server: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// One POST with an empty JSON body to a gateway served for it alone: the status.
async fn post_status(gw: Arc<dragoman_gateway::Gateway>, path: &str) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}{path}", listener.local_addr().unwrap());
    let server = tokio::spawn(dragoman_gateway::serve(
        gw,
        listener,
        std::future::pending(),
    ));
    let status = reqwest::Client::new()
        .post(url)
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    server.abort();
    status
}

fn temp_db() -> (std::path::PathBuf, String) {
    let dir = std::env::temp_dir().join(format!("dragoman-tenancy-{:016x}", fastrand::u64(..)));
    let url = format!("sqlite://{}", dir.join("dragoman.db").display());
    (dir, url)
}

async fn gateway_on(mock: Arc<MockUpstream>, store: Store) -> Gw {
    let yaml = CONFIG
        .replace("{v1}", &mock.base_v1())
        .replace("{base}", &mock.base());
    let config = dragoman_config::parse(&yaml, &|_: &str| None).unwrap();
    let (writer, _task) = dragoman_store::spawn_writer(
        Arc::new(store.clone()),
        dragoman_store::WriterOptions {
            flush_interval: Duration::from_millis(20),
            ..Default::default()
        },
    );
    let gw = dragoman_gateway::Gateway::with_store(config, Some(store), Some(writer)).unwrap();
    gw.load_tenancy().await.unwrap();
    gw.start_background_tasks();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(dragoman_gateway::serve(
        gw.clone(),
        listener,
        std::future::pending(),
    ));
    Gw {
        url,
        http: reqwest::Client::new(),
        gw,
        _mock: mock,
        _server: server,
    }
}

async fn gateway() -> (Gw, std::path::PathBuf) {
    let (dir, url) = temp_db();
    let store = Store::connect(&url).await.unwrap();
    let mock = Arc::new(MockUpstream::start().await);
    (gateway_on(mock, store).await, dir)
}

impl Gw {
    async fn admin(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(MASTER)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str, key: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.url))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn chat(&self, key: &str, model: &str) -> reqwest::Response {
        self.http
            .post(format!("{}/v1/chat/completions", self.url))
            .bearer_auth(key)
            .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap()
    }

    async fn key(&self, body: Value) -> String {
        let (s, v) = self.admin("/key/generate", body).await;
        assert_eq!(s, 200, "{v}");
        v["key"].as_str().unwrap().to_owned()
    }

    /// Waits for the records of finished requests to reach the store (a stream's record is
    /// made when its pump ends, just after the client read its last byte).
    async fn flush(&self) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if let Some(w) = self.gw.writer() {
            let started = Instant::now();
            while w.stats().backlog > 0 && started.elapsed() < Duration::from_secs(5) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_api_answers_as_litellm_does_and_keys_are_kept_only_as_hashes() {
    let (g, dir) = gateway().await;
    // Master key only.
    let (s, v) = g.get("/key/list", "sk-nope").await;
    assert_eq!(s, 401, "{v}");
    // And a gateway without one does not hand out keys at all.
    let open = dragoman_gateway::Gateway::new(
        dragoman_config::parse("model_list: []\n", &|_: &str| None).unwrap(),
    )
    .unwrap();
    let r = post_status(open, "/key/generate").await;
    assert_eq!(r, 401);

    let (s, team) = g.admin("/team/new", json!({"team_alias": "platform", "models": ["gpt", "slow"], "max_budget": 10.0, "members_with_roles": [{"user_id": "ann", "role": "admin"}]})).await;
    assert_eq!(s, 200, "{team}");
    let team_id = team["team_id"].as_str().unwrap().to_owned();
    assert_eq!(team["team_alias"], "platform");
    assert_eq!(team["max_budget"], 10.0);
    assert_eq!(team["spend"], 0.0);

    let (s, user) = g.admin("/user/new", json!({"user_id": "ann", "user_email": "ann@example.com", "user_role": "internal_user", "max_budget": 5.0})).await;
    assert_eq!(s, 200, "{user}");
    // As LiteLLM does, a new user comes with a key of their own.
    let ann_key = user["key"].as_str().unwrap().to_owned();
    assert!(ann_key.starts_with("sk-"));

    let (s, k) = g
        .admin(
            "/key/generate",
            json!({"key_alias": "ann-laptop", "team_id": team_id, "user_id": "ann", "models": ["gpt"], "rpm_limit": 100, "metadata": {"env": "dev"}, "duration": "30d", "tags": ["x"]}),
        )
        .await;
    assert_eq!(s, 200, "{k}");
    let key = k["key"].as_str().unwrap().to_owned();
    let token = k["token"].as_str().unwrap().to_owned();
    assert_eq!(token.len(), 64, "the token is the key's SHA-256");
    assert_eq!(k["key_name"], format!("sk-...{}", &key[key.len() - 4..]));
    assert_eq!(k["models"], json!(["gpt"]));
    assert_eq!(k["rpm_limit"], 100);
    assert_eq!(k["metadata"]["env"], "dev");
    assert!(k["expires"].as_str().unwrap().ends_with('Z'));
    // What dragoman does not take is named, not dropped in silence.
    assert_eq!(k["unsupported_fields"], json!(["tags"]));
    // A team that does not exist is refused.
    let (s, v) = g.admin("/key/generate", json!({"team_id": "nope"})).await;
    assert_eq!(s, 400, "{v}");
    // Aliases are unique.
    let (s, _) = g
        .admin("/key/generate", json!({"key_alias": "ann-laptop"}))
        .await;
    assert_eq!(s, 400);

    // info by key or by token; the key itself is never shown again.
    for named in [&key, &token] {
        let (s, info) = g.get(&format!("/key/info?key={named}"), MASTER).await;
        assert_eq!(s, 200, "{info}");
        assert_eq!(info["info"]["key_alias"], "ann-laptop");
        assert!(!info.to_string().contains(&key));
    }
    // A virtual key reads its own info, and only its own.
    let (s, own) = g.get("/key/info", &key).await;
    assert_eq!(s, 200);
    assert_eq!(own["info"]["token"], token);
    let (s, _) = g.get(&format!("/key/info?key={ann_key}"), &key).await;
    assert_eq!(s, 401);
    // ... and may not manage.
    let (s, _) = g.get("/key/list", &key).await;
    assert_eq!(s, 401);

    let (s, list) = g.get(&format!("/key/list?team_id={team_id}"), MASTER).await;
    assert_eq!(s, 200);
    assert_eq!(list["keys"], json!([token]));
    assert_eq!(list["total_count"], 1);
    let (_, list) = g
        .get("/key/list?return_full_object=true&size=1", MASTER)
        .await;
    assert_eq!(list["keys"].as_array().unwrap().len(), 1);
    assert_eq!(list["total_pages"], 2);

    // The key works, for the models it has.
    assert_eq!(g.chat(&key, "gpt").await.status(), 200);
    let r = g.chat(&key, "claude").await;
    assert_eq!(r.status(), 403);
    let e: Value = r.json().await.unwrap();
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("may not use model `claude`"),
        "{e}"
    );
    // The Anthropic dialect gets its own error envelope.
    let r = g
        .http
        .post(format!("{}/v1/messages", g.url))
        .header("x-api-key", "sk-unknown-key")
        .json(&json!({"model": "gpt", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["type"], "error");
    assert_eq!(e["error"]["type"], "authentication_error");

    // update: limits change, null clears, unknown team refused.
    let (s, u) = g
        .admin(
            "/key/update",
            json!({"key": token, "models": null, "max_budget": 1.5, "key_alias": "ann-2"}),
        )
        .await;
    assert_eq!(s, 200, "{u}");
    assert_eq!(u["models"], json!([]));
    assert_eq!(u["max_budget"], 1.5);
    // Its team still limits it to the team's models.
    assert_eq!(g.chat(&key, "claude").await.status(), 403);
    assert_eq!(g.chat(&key, "slow").await.status(), 200);

    // block / unblock.
    let (s, b) = g.admin("/key/block", json!({"key": key})).await;
    assert_eq!((s, b["blocked"].clone()), (200, json!(true)));
    let r = g.chat(&key, "gpt").await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("blocked"));
    g.admin("/key/unblock", json!({"key": key})).await;
    assert_eq!(g.chat(&key, "gpt").await.status(), 200);

    // regenerate: a new secret, the same key (spend and all); the old secret is refused.
    g.flush().await;
    let (s, re) = g.admin(&format!("/key/{key}/regenerate"), json!({})).await;
    assert_eq!(s, 200, "{re}");
    let new_key = re["key"].as_str().unwrap().to_owned();
    assert_ne!(new_key, key);
    assert_eq!(re["key_alias"], "ann-2");
    assert!(
        re["spend"].as_f64().unwrap() > 0.0,
        "spend survives regeneration: {re}"
    );
    assert_eq!(g.chat(&key, "gpt").await.status(), 401);
    assert_eq!(g.chat(&new_key, "gpt").await.status(), 200);

    // team and user info show their keys and members.
    let (s, ti) = g
        .get(&format!("/team/info?team_id={team_id}"), MASTER)
        .await;
    assert_eq!(s, 200);
    assert_eq!(ti["keys"].as_array().unwrap().len(), 1);
    assert_eq!(ti["team_memberships"][0]["user_id"], "ann");
    let (s, _) = g
        .admin(
            "/team/member_add",
            json!({"team_id": team_id, "member": {"user_id": "bob", "role": "user"}}),
        )
        .await;
    assert_eq!(s, 200);
    let (s, t2) = g
        .admin(
            "/team/member_delete",
            json!({"team_id": team_id, "user_id": "ann"}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        t2["members_with_roles"],
        json!([{"user_id": "bob", "user_email": null, "role": "user"}])
    );
    let (s, ui) = g.get("/user/info?user_id=ann", MASTER).await;
    assert_eq!(s, 200);
    assert_eq!(ui["keys"].as_array().unwrap().len(), 2);
    let (_, ul) = g.get("/user/list", MASTER).await;
    assert_eq!(ul["total"], 1);
    let (_, tl) = g.get("/team/list", MASTER).await;
    assert_eq!(tl.as_array().unwrap().len(), 1);
    let (s, _) = g
        .admin("/user/update", json!({"user_id": "ann", "rpm_limit": 7}))
        .await;
    assert_eq!(s, 200);
    let (s, _) = g
        .admin("/team/update", json!({"team_id": team_id, "rpm_limit": 9}))
        .await;
    assert_eq!(s, 200);
    let (s, _) = g.admin("/team/update", json!({"team_id": "missing"})).await;
    assert_eq!(s, 404);

    // expiry
    let short = g.key(json!({"duration": "1s"})).await;
    assert_eq!(g.chat(&short, "gpt").await.status(), 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = g.chat(&short, "gpt").await;
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("expired"));

    // delete: by key and by alias; a deleted team takes its keys with it.
    let (s, d) = g.admin("/key/delete", json!({"keys": [new_key]})).await;
    assert_eq!(s, 200);
    assert_eq!(d["deleted_keys"].as_array().unwrap().len(), 1);
    assert_eq!(g.chat(&new_key, "gpt").await.status(), 401);
    let teamed = g.key(json!({"team_id": team_id})).await;
    let (s, _) = g
        .admin("/team/delete", json!({"team_ids": [team_id]}))
        .await;
    assert_eq!(s, 200);
    assert_eq!(g.chat(&teamed, "gpt").await.status(), 401);
    let (s, _) = g.admin("/user/delete", json!({"user_ids": ["ann"]})).await;
    assert_eq!(s, 200);
    assert_eq!(g.chat(&ann_key, "gpt").await.status(), 401);

    // No key in plain text anywhere in the database.
    g.flush().await;
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        bytes.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    let text = String::from_utf8_lossy(&bytes);
    for k in [&key, &new_key, &ann_key, &short, &teamed] {
        assert!(!text.contains(k.as_str()), "a key is stored in plain text");
    }
    assert!(text.contains(&token[..16]), "the hash is what is stored");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpm_is_exact_and_clients_see_their_limits_in_their_own_headers() {
    let (g, dir) = gateway().await;
    let key = g.key(json!({"rpm_limit": 5, "max_budget": 2.0})).await;
    let mut remaining = Vec::new();
    let mut refused = 0;
    for _ in 0..8 {
        let r = g.chat(&key, "gpt").await;
        match r.status().as_u16() {
            200 => {
                remaining.push(
                    r.headers()["x-ratelimit-remaining-requests"]
                        .to_str()
                        .unwrap()
                        .to_owned(),
                );
                assert_eq!(r.headers()["x-ratelimit-limit-requests"], "5");
                assert_eq!(r.headers()["x-litellm-key-max-budget"], "2");
                assert!(r.headers().contains_key("x-litellm-key-spend"));
            }
            429 => {
                refused += 1;
                let secs: u64 = r.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!((1..=60).contains(&secs));
                let e: Value = r.json().await.unwrap();
                assert!(
                    e["error"]["message"]
                        .as_str()
                        .unwrap()
                        .contains("5 requests per minute"),
                    "{e}"
                );
            }
            s => panic!("unexpected {s}"),
        }
    }
    assert_eq!(remaining, ["4", "3", "2", "1", "0"]);
    assert_eq!(refused, 3);
    // Token counting is not a call against the limits (Claude Code counts before turns), but
    // the key must still be allowed the model.
    let counter = g.key(json!({"rpm_limit": 1, "models": ["claude"]})).await;
    for model in ["claude", "claude", "gpt"] {
        let r = g
            .http
            .post(format!("{}/v1/messages/count_tokens", g.url))
            .header("x-api-key", &counter)
            .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        let want = if model == "claude" { 200 } else { 403 };
        assert_eq!(r.status(), want, "{model}: {}", r.text().await.unwrap());
    }
    let r = g
        .http
        .post(format!("{}/v1/messages", g.url))
        .header("x-api-key", &counter)
        .json(&json!({"model": "claude", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        200,
        "the one request of the minute is still there"
    );
    // An Anthropic client reads Anthropic's names.
    let other = g.key(json!({"rpm_limit": 10, "tpm_limit": 100000})).await;
    let r = g
        .http
        .post(format!("{}/v1/messages", g.url))
        .header("x-api-key", &other)
        .json(&json!({"model": "claude", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["anthropic-ratelimit-requests-limit"], "10");
    assert_eq!(r.headers()["anthropic-ratelimit-requests-remaining"], "9");
    assert_eq!(r.headers()["anthropic-ratelimit-tokens-limit"], "100000");
    assert!(
        r.headers()["anthropic-ratelimit-requests-reset"]
            .to_str()
            .unwrap()
            .ends_with('Z')
    );
    assert!(!r.headers().contains_key("x-ratelimit-limit-requests"));
    // Tokens are counted when a request ends: the next one sees them.
    let r = g
        .http
        .post(format!("{}/v1/messages", g.url))
        .header("x-api-key", &other)
        .json(&json!({"model": "claude", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["anthropic-ratelimit-tokens-remaining"],
        (100000 - 1246).to_string()
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn team_and_parallel_limits_hold_for_every_key() {
    let (g, dir) = gateway().await;
    let (_, team) = g
        .admin("/team/new", json!({"team_id": "t", "rpm_limit": 3}))
        .await;
    assert_eq!(team["rpm_limit"], 3);
    let a = g.key(json!({"team_id": "t"})).await;
    let b = g.key(json!({"team_id": "t"})).await;
    let mut ok = 0;
    for k in [&a, &b, &a, &b, &a, &b] {
        if g.chat(k, "gpt").await.status() == 200 {
            ok += 1;
        }
    }
    assert_eq!(ok, 3, "the team's 3 rpm hold across its keys");
    let r = g.chat(&b, "gpt").await;
    assert!(r.text().await.unwrap().contains("team `t`"));

    // One slot: a second call while the first streams slowly is refused, then admitted.
    let one = g.key(json!({"max_parallel_requests": 1})).await;
    let stream = |k: String| {
        let http = g.http.clone();
        let url = format!("{}/v1/chat/completions", g.url);
        async move {
            let r = http
                .post(url)
                .bearer_auth(k)
                .json(&json!({"model": "slowstart", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let _ = r.bytes().await;
            status
        }
    };
    let first = tokio::spawn(stream(one.clone()));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let second = stream(one.clone()).await;
    assert_eq!(second, 429);
    assert_eq!(first.await.unwrap(), 200);
    assert_eq!(stream(one.clone()).await, 200);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_holds_under_64_concurrent_streams_and_spend_is_kept_per_key_team_and_user() {
    let (g, dir) = gateway().await;
    let (_, _) = g.admin("/team/new", json!({"team_id": "eng"})).await;
    let (_, _) = g
        .admin(
            "/user/new",
            json!({"user_id": "dev", "auto_create_key": false}),
        )
        .await;
    // Ten calls' worth.
    let budget = 10 * ONE_CALL_NANOS;
    let key = g.key(json!({"max_budget": budget as f64 / 1e9, "team_id": "eng", "user_id": "dev", "budget_duration": "30d"})).await;
    // A prompt whose size bounds its tokens from above, and max_tokens that bounds the output:
    // what a budget reserves is at least what the call costs.
    let prompt = "x".repeat(3800);
    let started = Instant::now();
    let calls = (0..64).map(|i| {
        let http = g.http.clone();
        let url = format!("{}/v1/chat/completions", g.url);
        let key = key.clone();
        let prompt = prompt.clone();
        tokio::spawn(async move {
            let r = http
                .post(url)
                .bearer_auth(key)
                .json(&json!({"model": "gpt", "stream": true, "max_tokens": 12, "user": format!("customer-{}", i % 2), "messages": [{"role": "user", "content": prompt}]}))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let body = r.text().await.unwrap();
            (status, body)
        })
    });
    let results: Vec<(u16, String)> = futures_util::future::join_all(calls)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let ok = results.iter().filter(|(s, _)| *s == 200).count();
    let refused: Vec<_> = results.iter().filter(|(s, _)| *s == 400).collect();
    assert_eq!(
        ok + refused.len(),
        64,
        "{:?}",
        results.iter().map(|r| r.0).collect::<Vec<_>>()
    );
    assert!(refused[0].1.contains("budget_exceeded"), "{}", refused[0].1);
    assert!(refused[0].1.contains("resets at"), "{}", refused[0].1);
    assert!(ok >= 1);
    g.flush().await;
    let (_, info) = g.get(&format!("/key/info?key={key}"), MASTER).await;
    let spent = (info["info"]["spend"].as_f64().unwrap() * 1e9).round() as i64;
    assert!(
        spent <= budget + ONE_CALL_NANOS,
        "spent {spent} of {budget}"
    );
    assert_eq!(spent, ok as i64 * ONE_CALL_NANOS);
    assert_eq!(
        info["info"]["reserved_spend"], 0.0,
        "every reservation was settled"
    );
    eprintln!(
        "64 concurrent streams against a budget of 10 calls: {ok} served, {} refused, spend {spent} nano-$ ({:?})",
        refused.len(),
        started.elapsed()
    );

    // The store agrees, by key, team, user and end user.
    let token = info["key"].as_str().unwrap();
    let (_, logs) = g
        .get(&format!("/spend/logs?api_key={key}&limit=1000"), MASTER)
        .await;
    let logs = logs.as_array().unwrap();
    assert_eq!(logs.len(), 64);
    assert!(logs.iter().all(|r| r["team_id"] == "eng"
        && r["user_id"] == "dev"
        && r["api_key"].as_str().unwrap().len() == 24));
    let (_, by_token) = g
        .get(&format!("/spend/logs?api_key={token}&limit=1000"), MASTER)
        .await;
    assert_eq!(by_token.as_array().unwrap().len(), 64);
    for (group, want) in [("team", "eng"), ("user", "dev")] {
        let (s, sum) = g
            .get(&format!("/spend/summary?group_by={group}"), MASTER)
            .await;
        assert_eq!(s, 200, "{sum}");
        let row = sum
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["key"] == want)
            .unwrap_or_else(|| panic!("{sum}"));
        assert_eq!(row["cost_nanos"], spent);
    }
    let (_, eu) = g.get("/spend/summary?group_by=end_user", MASTER).await;
    assert_eq!(eu.as_array().unwrap().len(), 2, "{eu}");
    let (_, ti) = g.get("/team/info?team_id=eng", MASTER).await;
    assert_eq!(
        (ti["team_info"]["spend"].as_f64().unwrap() * 1e9).round() as i64,
        spent
    );
    let (_, ui) = g.get("/user/info?user_id=dev", MASTER).await;
    assert_eq!(
        (ui["user_info"]["spend"].as_f64().unwrap() * 1e9).round() as i64,
        spent
    );

    // A restart reads the keys and their spend back.
    let store = Store::connect(&format!("sqlite://{}", dir.join("dragoman.db").display()))
        .await
        .unwrap();
    let again = gateway_on(g._mock.clone(), store).await;
    let (_, info) = again.get(&format!("/key/info?key={key}"), MASTER).await;
    assert_eq!(
        (info["info"]["spend"].as_f64().unwrap() * 1e9).round() as i64,
        spent
    );
    // Alone, a call is admitted while any budget is left; once it is spent, none is.
    let mut served = ok;
    while again.chat(&key, "gpt").await.status() == 200 {
        served += 1;
        assert!(served <= 10, "the budget of 10 calls survives a restart");
    }
    assert_eq!(served, 10);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_model_limits_apply_to_their_model_only() {
    let (g, dir) = gateway().await;
    let key = g.key(json!({"model_rpm_limit": {"gpt": 1}, "model_max_budget": {"slow": {"budget_limit": 0.000001, "time_period": "1d"}}})).await;
    assert_eq!(g.chat(&key, "gpt").await.status(), 200);
    let r = g.chat(&key, "gpt").await;
    assert_eq!(r.status(), 429);
    assert!(r.text().await.unwrap().contains("on `gpt`"));
    assert_eq!(g.chat(&key, "claude").await.status(), 200);
    // The first call on `slow` is admitted while its budget is unspent, the next is not.
    assert_eq!(g.chat(&key, "slow").await.status(), 200);
    let r = g.chat(&key, "slow").await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("on `slow`"));
    assert_eq!(g.chat(&key, "claude").await.status(), 200);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_on_one_instance_reaches_another_within_a_second() {
    let Some(url) = common::pg_url() else {
        eprintln!("DRAGOMAN_TEST_POSTGRES_URL=skip: skipped");
        return;
    };
    let schema = common::schema("dragoman_ten");
    let mock = Arc::new(MockUpstream::start().await);
    let a = gateway_on(
        mock.clone(),
        Store::connect_with_schema(&url, &schema).await.unwrap(),
    )
    .await;
    let b = gateway_on(
        mock.clone(),
        Store::connect_with_schema(&url, &schema).await.unwrap(),
    )
    .await;
    let key = a.key(json!({"key_alias": "shared"})).await;
    let seen = |g: &Gw, key: String, want: u16| {
        let http = g.http.clone();
        let url = format!("{}/v1/chat/completions", g.url);
        async move {
            let started = Instant::now();
            loop {
                let r = http
                    .post(&url)
                    .bearer_auth(&key)
                    .json(&json!({"model": "gpt", "messages": [{"role": "user", "content": "hi"}]}))
                    .send()
                    .await
                    .unwrap();
                if r.status().as_u16() == want {
                    return started.elapsed();
                }
                assert!(
                    started.elapsed() < Duration::from_secs(3),
                    "instance B still answers {} after 3 s",
                    r.status()
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let created = seen(&b, key.clone(), 200).await;
    // Without Redis, A learns what B spent from the store's records.
    b.flush().await;
    let (_, info) = a.get(&format!("/key/info?key={key}"), MASTER).await;
    let spent = (info["info"]["spend"].as_f64().unwrap() * 1e9).round() as i64;
    assert!(
        spent >= ONE_CALL_NANOS,
        "A's /key/info shows B's spend: {info}"
    );
    a.admin("/key/delete", json!({"keys": [key.clone()]})).await;
    let deleted = seen(&b, key.clone(), 401).await;
    eprintln!(
        "a key created on A served by B after {created:?}; deleted on A refused by B after {deleted:?}"
    );
    assert!(
        created < Duration::from_secs(1) && deleted < Duration::from_secs(1),
        "{created:?} {deleted:?}"
    );
    common::drop_schema(&url, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_to_the_key_api_gets_a_clear_400_or_404() {
    let (g, dir) = gateway().await;
    let raw = |path: &'static str, body: &'static str| {
        let http = g.http.clone();
        let url = format!("{}{path}", g.url);
        async move {
            let r = http
                .post(url)
                .bearer_auth(MASTER)
                .body(body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let v: Value = r.json().await.unwrap();
            (
                status,
                v["error"]["message"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        }
    };
    assert_eq!(raw("/key/generate", "{not json").await.0, 400);
    assert!(raw("/key/generate", "[1]").await.1.contains("JSON object"));
    for (body, says) in [
        (json!({"max_budget": -1}), "max_budget"),
        (json!({"budget_duration": "5y"}), "budget_duration"),
        (json!({"rpm_limit": "ten"}), "invalid field"),
        (json!({"duration": 30}), "duration"),
        (json!({"key": "short"}), "sk-"),
        (
            json!({"model_max_budget": {"gpt": {"budget_limit": -2}}}),
            "model_max_budget.gpt",
        ),
    ] {
        let (s, v) = g.admin("/key/generate", body.clone()).await;
        assert_eq!(s, 400, "{body} → {v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(says),
            "{body} → {v}"
        );
    }
    let (s, _) = g.admin("/key/update", json!({"rpm_limit": 1})).await;
    assert_eq!(s, 400);
    let (s, v) = g
        .admin("/key/update", json!({"key": "sk-not-a-known-key"}))
        .await;
    assert_eq!(s, 404, "{v}");
    assert!(
        !v.to_string().contains("sk-not-a-known-key"),
        "the key is not echoed: {v}"
    );
    let (s, _) = g.admin("/key/delete", json!({})).await;
    assert_eq!(s, 400);
    let (s, _) = g.admin("/team/new", json!({"team_id": "t1"})).await;
    assert_eq!(s, 200);
    let (s, _) = g.admin("/team/new", json!({"team_id": "t1"})).await;
    assert_eq!(s, 400, "a team id is taken once");
    let (s, _) = g.admin("/team/member_add", json!({"team_id": "t1"})).await;
    assert_eq!(s, 400);
    let (s, _) = g
        .admin(
            "/team/member_add",
            json!({"team_id": "t1", "member": {"role": "user"}}),
        )
        .await;
    assert_eq!(s, 400, "a member needs a user_id or user_email");
    let (s, _) = g
        .admin(
            "/team/member_delete",
            json!({"team_id": "t1", "user_id": "nobody"}),
        )
        .await;
    assert_eq!(s, 404);
    let (s, _) = g
        .admin("/user/delete", json!({"user_ids": ["nobody"]}))
        .await;
    assert_eq!(s, 404);
    let (s, _) = g.get("/team/info", MASTER).await;
    assert_eq!(s, 400);

    // The body forms of regenerate and delete-by-alias.
    let key = g.key(json!({"key_alias": "to-rotate"})).await;
    let (s, re) = g
        .admin(
            "/key/regenerate",
            json!({"key": key, "new_key": "sk-rotated-0123456789"}),
        )
        .await;
    assert_eq!(s, 200, "{re}");
    assert_eq!(re["key"], "sk-rotated-0123456789");
    assert_eq!(g.chat("sk-rotated-0123456789", "gpt").await.status(), 200);
    let (s, d) = g
        .admin("/key/delete", json!({"key_aliases": ["to-rotate"]}))
        .await;
    assert_eq!(s, 200, "{d}");
    assert_eq!(g.chat("sk-rotated-0123456789", "gpt").await.status(), 401);
    let _ = std::fs::remove_dir_all(dir);
}

/// LiteLLM's budget gauges: each budgeted key's and team's budget and what is left of it, in
/// dollars, as LiteLLM's dashboards read them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budget_and_limit_gauges_show_what_is_left_per_key_and_team() {
    let (g, _dir) = gateway().await;
    let (s, team) = g
        .admin(
            "/team/new",
            json!({"team_alias": "platform", "max_budget": 10.0}),
        )
        .await;
    assert_eq!(s, 200, "{team}");
    let team_id = team["team_id"].as_str().unwrap().to_owned();
    let key = g
        .key(
            json!({"key_alias": "ann", "max_budget": 5.0, "team_id": team_id,
            "rpm_limit": 10, "tpm_limit": 100000, "model_rpm_limit": {"gpt": 3}}),
        )
        .await;
    assert_eq!(g.chat(&key, "gpt").await.status(), 200);
    assert_eq!(g.chat(&key, "claude").await.status(), 200);
    g.flush().await;
    let m = g
        .http
        .get(format!("{}/metrics", g.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |prefix: &str| -> f64 {
        m.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in\n{m}"))
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(value("litellm_api_key_max_budget_metric{"), 5.0);
    let left = value("litellm_remaining_api_key_budget_metric{");
    assert!(
        (left - (5.0 - 2.0 * ONE_CALL_NANOS as f64 / 1e9)).abs() < 1e-9,
        "{left}"
    );
    assert!(m.contains("api_key_alias=\"ann\""), "{m}");
    // Spend and budget name the key alike, so a dashboard can join them.
    let label = |prefix: &str| -> String {
        let l = m.lines().find(|l| l.starts_with(prefix)).unwrap();
        let i = l.find("hashed_api_key=\"").unwrap() + 16;
        l[i..i + l[i..].find('"').unwrap()].to_owned()
    };
    assert_eq!(
        label("litellm_spend_metric_total{"),
        label("litellm_remaining_api_key_budget_metric{")
    );
    assert_eq!(value("litellm_team_max_budget_metric{"), 10.0);
    let left = value("litellm_remaining_team_budget_metric{");
    assert!(
        (left - (10.0 - 2.0 * ONE_CALL_NANOS as f64 / 1e9)).abs() < 1e-9,
        "{left}"
    );
    assert!(
        m.contains(&format!("team=\"{team_id}\",team_alias=\"platform\"")),
        "{m}"
    );
    // The per-request series name the team's alias too.
    assert!(
        m.lines()
            .any(|l| l.starts_with("litellm_requests_metric_total{")
                && l.contains("team_alias=\"platform\"")),
        "{m}"
    );
    // Rate limits left this minute: the key's own (model empty) counts both calls; its
    // per-model limit on gpt counts the gpt call only.
    let gauge = |name: &str, model: &str| -> f64 {
        m.lines()
            .find(|l| l.starts_with(name) && l.contains(&format!("model=\"{model}\"")))
            .unwrap_or_else(|| panic!("no {name} for model {model:?} in\n{m}"))
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(
        gauge("litellm_remaining_api_key_requests_for_model{", ""),
        8.0
    );
    assert_eq!(
        gauge("litellm_remaining_api_key_requests_for_model{", "gpt"),
        2.0
    );
    // Two calls of 1234 + 12 tokens each.
    assert_eq!(
        gauge("litellm_remaining_api_key_tokens_for_model{", ""),
        100000.0 - 2.0 * 1246.0
    );
}

/// `/openapi.json` and the router agree: every operation the spec names is served (never the
/// fallback's 404 or a 405), and the spec names every management endpoint LiteLLM's users
/// call, so dropping one from either side fails here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_spec_and_the_routes_agree() {
    let (g, dir) = gateway().await;
    let r = g
        .http
        .get(format!("{}/openapi.json", g.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let spec: Value = r.json().await.unwrap();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3."));
    let mut ops = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            assert!(
                op["responses"]["200"].is_object(),
                "{method} {path} describes its answer"
            );
            ops.push(format!("{} {path}", method.to_uppercase()));
        }
    }
    ops.sort();
    let mut expected = vec![
        "POST /key/generate",
        "POST /key/update",
        "POST /key/delete",
        "GET /key/info",
        "GET /key/list",
        "POST /key/regenerate",
        "POST /key/{key}/regenerate",
        "POST /key/block",
        "POST /key/unblock",
        "POST /team/new",
        "POST /team/update",
        "POST /team/delete",
        "GET /team/info",
        "GET /team/list",
        "POST /team/member_add",
        "POST /team/member_delete",
        "POST /user/new",
        "POST /user/update",
        "POST /user/delete",
        "GET /user/info",
        "GET /user/list",
        "GET /spend/logs",
        "GET /spend/summary",
        "GET /metrics",
        "GET /health",
        "GET /health/liveliness",
        "GET /health/liveness",
        "GET /health/readiness",
        "GET /models",
        "GET /v1/models",
        "GET /ui/api/deployments",
        "GET /ui/api/config",
    ];
    expected.sort();
    assert_eq!(ops, expected);
    for op in &ops {
        let (method, path) = op.split_once(' ').unwrap();
        let url = format!("{}{}", g.url, path.replace("{key}", "sk-not-a-key-at-all"));
        let req = match method {
            "GET" => g.http.get(url),
            _ => g.http.post(url).json(&json!({})),
        };
        let r = req.bearer_auth(MASTER).send().await.unwrap();
        let status = r.status().as_u16();
        let body = r.text().await.unwrap();
        assert_ne!(status, 405, "{op}: {body}");
        assert!(!body.contains("no route for"), "{op} is not routed: {body}");
        assert!(status < 500, "{op}: {status} {body}");
    }
    // And the fallback still answers what is not there.
    let r = g
        .http
        .get(format!("{}/key/nothing", g.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    drop(g);
    let _ = std::fs::remove_dir_all(dir);
}

/// The admin UI's session: a key signs in once and gets a cookie the page cannot read; the
/// cookie authenticates only with its CSRF header; a virtual key's session ends when the key
/// is blocked, and never reaches the admin views.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ui_session_is_a_signed_cookie_guarded_by_its_csrf_header() {
    let (g, dir) = gateway().await;
    let login = |key: &str| {
        let http = g.http.clone();
        let url = format!("{}/ui/api/login", g.url);
        let key = key.to_owned();
        async move {
            http.post(url)
                .json(&json!({ "key": key }))
                .send()
                .await
                .unwrap()
        }
    };
    // What a cross-site form can send: JSON in a text/plain body. Refused before it is read.
    let r = g
        .http
        .post(format!("{}/ui/api/login", g.url))
        .header("content-type", "text/plain")
        .body(format!("{{\"key\": \"{MASTER}\"}}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    assert!(r.headers().get("set-cookie").is_none());
    let r = login("sk-not-a-key").await;
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("set-cookie").is_none());
    let r = login(MASTER).await;
    assert_eq!(r.status(), 200);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(!cookie.contains(MASTER));
    let session = cookie.split(';').next().unwrap().to_owned();
    let me: Value = r.json().await.unwrap();
    assert_eq!(me["role"], "admin");
    let csrf = me["csrf"].as_str().unwrap().to_owned();
    let get = |path: &str, csrf: Option<&str>| {
        let mut req = g
            .http
            .get(format!("{}{path}", g.url))
            .header("cookie", session.clone());
        if let Some(c) = csrf {
            req = req.header("x-dragoman-csrf", c);
        }
        req.send()
    };
    assert_eq!(get("/key/list", Some(&csrf)).await.unwrap().status(), 200);
    assert_eq!(
        get("/ui/api/config", Some(&csrf)).await.unwrap().status(),
        200
    );
    // Without the header (what a cross-site page can make a browser send), or with another
    // session's, the cookie is nothing.
    assert_eq!(get("/key/list", None).await.unwrap().status(), 401);
    assert_eq!(
        get("/key/list", Some("forged")).await.unwrap().status(),
        401
    );
    // A tampered cookie is refused.
    let r = g
        .http
        .get(format!("{}/key/list", g.url))
        .header("cookie", session.replace("v1.m.", "v1.m.9"))
        .header("x-dragoman-csrf", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // The config view masks every credential.
    let cfg = get("/ui/api/config", Some(&csrf))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!cfg.contains(MASTER) && cfg.contains("********"), "{cfg}");

    // A virtual key's session: its own data only, and it ends with the key.
    let key = g.key(json!({"key_alias": "kim"})).await;
    let r = login(&key).await;
    assert_eq!(r.status(), 200);
    let kc = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let kme: Value = r.json().await.unwrap();
    assert_eq!(kme["role"], "key");
    let kcsrf = kme["csrf"].as_str().unwrap().to_owned();
    let as_key = |path: &str| {
        g.http
            .get(format!("{}{path}", g.url))
            .header("cookie", kc.clone())
            .header("x-dragoman-csrf", kcsrf.clone())
            .send()
    };
    assert_eq!(as_key("/key/info").await.unwrap().status(), 200);
    assert_eq!(as_key("/key/list").await.unwrap().status(), 401);
    assert_eq!(as_key("/ui/api/deployments").await.unwrap().status(), 403);
    let (s, _) = g.admin("/key/block", json!({"key": key})).await;
    assert_eq!(s, 200);
    let r = as_key("/key/info").await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("blocked"));
    drop(g);
    let _ = std::fs::remove_dir_all(dir);
}
