//! `dragoman-bench bench`: builds and starts the gateway and the mock as processes, drives the
//! scenarios direct and through the gateway in one run (so the ratios compare like with like
//! on a noisy machine), and reports. The children are stopped by a guard's `Drop`, so an
//! error halfway does not leave a gateway running.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use crate::load::{self, ANTHROPIC_DELTA, Plan, RESPONSES_DELTA, Target};
use crate::mock::DEFAULT_CHUNKS;
use crate::procfs::{self, RssSampler};
use crate::report::{Cpu, Paced, Results, Row, RunResult};
use crate::soak;

/// Scenario names as in ../shared/bench, so the numbers compare.
#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum Scenario {
    #[value(name = "chat")]
    Chat,
    #[value(name = "messages_chat")]
    MessagesChat,
    #[value(name = "messages_responses")]
    MessagesResponses,
    #[value(name = "paced")]
    Paced,
    /// Responses in and out (Codex's path), streamed: each answer is kept in the response
    /// store.
    #[value(name = "responses")]
    Responses,
    /// As `responses` with `store: false`: the difference is what storing costs.
    #[value(name = "responses_nostore")]
    ResponsesNoStore,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Chat => "chat",
            Scenario::MessagesChat => "messages_chat",
            Scenario::MessagesResponses => "messages_responses",
            Scenario::Paced => "paced",
            Scenario::Responses => "responses",
            Scenario::ResponsesNoStore => "responses_nostore",
        }
    }
}

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum Side {
    Direct,
    Gateway,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The gateway binary; without it, `cargo build --release -p dragoman` builds one.
    #[arg(long)]
    pub gateway_bin: Option<PathBuf>,
    /// Closed-loop connection counts, each a run of its own.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    pub concurrency: Vec<usize>,
    /// Seconds measured per run.
    #[arg(long, default_value_t = 5.0)]
    pub duration: f64,
    /// Seconds of load before each measured window.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "chat,messages_chat,messages_responses,paced"
    )]
    pub scenarios: Vec<Scenario>,
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "direct,gateway"
    )]
    pub targets: Vec<Side>,
    /// Run the gateway without its accounting store (general_settings.disable_spend_logs).
    #[arg(long)]
    pub no_store: bool,
    /// Call the gateway with a virtual key in a team, with a user, every one of them with rpm,
    /// tpm, parallel and budget limits (high enough never to refuse): the policy stage's cost.
    #[arg(long)]
    pub virtual_key: bool,
    /// Keep those limits in this Redis (`general_settings.redis_url`): the shared limiter's cost.
    #[arg(long)]
    pub redis_url: Option<String>,
    /// Turn LiteLLM's response cache on (`litellm_settings.cache`, in memory): every request
    /// of a scenario after the first is a cache hit, so the numbers are a hit's cost.
    #[arg(long)]
    pub response_cache: bool,
    /// Export traces (OTLP/HTTP, to the mock's `/v1/traces`) and log one JSON line per
    /// request (to a file) while measuring.
    #[arg(long)]
    pub telemetry: bool,
    /// The default logging instead of `warn`: one text `request done` line per request (to a
    /// file), no export: the baseline `--telemetry` is compared with.
    #[arg(long)]
    pub text_logs: bool,
    /// Where results.md and results.json go (default target/bench/<unix time>/).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Paced scenario: the mock's delay before the response head.
    #[arg(long, default_value_t = 300)]
    pub paced_ttft_ms: u64,
    /// Paced scenario: the mock's delay between text deltas.
    #[arg(long, default_value_t = 20)]
    pub paced_gap_ms: u64,
    #[arg(long, default_value_t = 16)]
    pub paced_concurrency: usize,
    #[arg(long, default_value_t = 6.0)]
    pub paced_duration: f64,
    /// Soak instead of the scenarios: this many minutes at a steady open-loop rate.
    #[arg(long)]
    pub soak_minutes: Option<f64>,
    /// Soak: requests per second, spread over 16 connections.
    #[arg(long, default_value_t = 500.0)]
    pub soak_rate: f64,
    /// After the last run, wait this long and read the gateway's RSS again: how much of a
    /// burst's memory it gives back.
    #[arg(long)]
    pub settle_seconds: Option<f64>,
    /// Worker threads of the load generator (default: one per CPU).
    #[arg(long)]
    pub loadgen_threads: Option<usize>,
    /// Worker threads of the mock (default: one per CPU).
    #[arg(long)]
    pub mock_threads: Option<usize>,
    /// Use a mock already listening there instead of starting one (its CPU is then not read).
    #[arg(long)]
    pub mock_addr: Option<SocketAddr>,
}

pub const API_KEY: &str = "sk-bench-1234";
const SYSTEM_SENTENCE: &str = "You are a careful assistant for a benchmark. Answer briefly and precisely. Do not use tools. Keep answers under fifty words. ";
const USER_PROMPT: &str = "Summarise the benefits of connection pooling in two sentences.";

fn system_prompt() -> String {
    // ~1.5 KB, a modest cacheable prefix, as the shared harness sends.
    SYSTEM_SENTENCE.repeat(12)
}

pub fn chat_body(model: &str) -> Value {
    json!({
        "messages": [
            {"role": "system", "content": system_prompt()},
            {"role": "user", "content": USER_PROMPT}
        ],
        "max_tokens": 64,
        "model": model
    })
}

pub fn messages_body(model: &str, stream: bool) -> Value {
    let mut v = json!({
        "max_tokens": 64,
        "system": [{"type": "text", "text": system_prompt(), "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": USER_PROMPT}],
        "model": model
    });
    if stream && let Some(o) = v.as_object_mut() {
        o.insert("stream".into(), json!(true));
    }
    v
}

pub fn responses_body(model: &str) -> Value {
    json!({
        "instructions": system_prompt(),
        "input": [{"role": "user", "content": USER_PROMPT}],
        "max_output_tokens": 64,
        "stream": true,
        "model": model
    })
}

/// The request of `scenario` for one side: to the mock directly (the call the gateway itself
/// makes upstream) or to the gateway.
pub fn target(
    scenario: Scenario,
    side: Side,
    addr: SocketAddr,
    paced: (u64, u64),
) -> anyhow::Result<Target> {
    target_with(scenario, side, addr, paced, API_KEY)
}

/// As [`target`], the gateway side calling with `key` (a virtual key, say).
pub fn target_with(
    scenario: Scenario,
    side: Side,
    addr: SocketAddr,
    paced: (u64, u64),
    gateway_key: &str,
) -> anyhow::Result<Target> {
    let expected = Some(DEFAULT_CHUNKS as u64);
    let pacing = [
        ("x-mock-delay-ms", paced.0.to_string()),
        ("x-mock-chunk-delay-ms", paced.1.to_string()),
    ];
    Ok(match (scenario, side) {
        (Scenario::Chat | Scenario::MessagesChat, Side::Direct) => Target::post(
            addr,
            "/v1/chat/completions",
            &chat_body("gpt-4o-mini"),
            API_KEY,
            &[],
        )?,
        (Scenario::Chat, Side::Gateway) => Target::post(
            addr,
            "/v1/chat/completions",
            &chat_body("bench-chat"),
            gateway_key,
            &[],
        )?,
        (Scenario::MessagesChat, Side::Gateway) => Target::post(
            addr,
            "/v1/messages",
            &messages_body("bench-messages-chat", false),
            gateway_key,
            &[],
        )?,
        (
            Scenario::MessagesResponses | Scenario::Responses | Scenario::ResponsesNoStore,
            Side::Direct,
        ) => Target::post(
            addr,
            "/v1/responses",
            &responses_body("gpt-5-codex"),
            API_KEY,
            &[],
        )?
        .stream(RESPONSES_DELTA, expected),
        (Scenario::MessagesResponses, Side::Gateway) => Target::post(
            addr,
            "/v1/messages",
            &messages_body("bench-responses", true),
            gateway_key,
            &[],
        )?
        .stream(ANTHROPIC_DELTA, expected),
        (Scenario::Responses | Scenario::ResponsesNoStore, Side::Gateway) => {
            let mut body = responses_body("bench-responses");
            if scenario == Scenario::ResponsesNoStore {
                body["store"] = json!(false);
            }
            Target::post(addr, "/v1/responses", &body, gateway_key, &[])?
                .stream(RESPONSES_DELTA, expected)
        }
        (Scenario::Paced, Side::Direct) => Target::post(
            addr,
            "/v1/responses",
            &responses_body("gpt-5-codex"),
            API_KEY,
            &pacing,
        )?
        .stream(RESPONSES_DELTA, expected),
        // The gateway does not forward client headers upstream: the paced deployment carries
        // the pacing headers as its own extra_headers.
        (Scenario::Paced, Side::Gateway) => Target::post(
            addr,
            "/v1/messages",
            &messages_body("bench-responses-paced", true),
            gateway_key,
            &pacing,
        )?
        .stream(ANTHROPIC_DELTA, expected),
    })
}

/// The gateway configuration: the shared harness's model names, all served by the mock.
pub fn gateway_config(mock: SocketAddr, db: &Path, store: bool, paced: (u64, u64)) -> String {
    gateway_config_with(mock, db, store, paced, None)
}

/// As [`gateway_config`], with the shared limiter in `redis`.
pub fn gateway_config_with(
    mock: SocketAddr,
    db: &Path,
    store: bool,
    paced: (u64, u64),
    redis: Option<&str>,
) -> String {
    let base = format!("http://{mock}/v1");
    let entry = |name: &str, model: &str, extra: &str| {
        format!(
            "  - model_name: {name}\n    litellm_params:\n      model: {model}\n      api_base: {base}\n      api_key: sk-mock\n{extra}"
        )
    };
    let responses = "    model_info:\n      mode: responses\n";
    let paced_extra = format!(
        "      extra_headers:\n        x-mock-delay-ms: \"{}\"\n        x-mock-chunk-delay-ms: \"{}\"\n{responses}",
        paced.0, paced.1
    );
    // A JSON string is a valid YAML scalar whatever the path holds.
    let db = serde_json::Value::String(db.display().to_string()).to_string();
    let redis = redis.map_or(String::new(), |r| {
        format!("  redis_url: {}\n", serde_json::Value::String(r.to_owned()))
    });
    let prefix = format!("bench{}", unix_time());
    format!(
        "model_list:\n{}{}{}{}general_settings:\n  master_key: {API_KEY}\n  disable_spend_logs: {}\n{redis}dragoman_settings:\n  database_path: {db}\n  redis_prefix: {prefix}\n",
        entry("bench-chat", "openai/gpt-4o-mini", ""),
        entry("bench-messages-chat", "custom_openai/gpt-4o-mini", ""),
        entry("bench-responses", "openai/gpt-5-codex", responses),
        entry("bench-responses-paced", "openai/gpt-5-codex", &paced_extra),
        !store,
    )
}

/// Child processes stopped with SIGTERM (then SIGKILL after 10 s) when dropped, in reverse
/// order of start.
#[derive(Default)]
pub struct Children(Vec<(&'static str, Child)>);

impl Children {
    fn add(&mut self, name: &'static str, child: Child) -> u32 {
        let pid = child.id();
        self.0.push((name, child));
        pid
    }

    fn exited(&mut self, name: &str) -> Option<String> {
        let (_, c) = self.0.iter_mut().find(|(n, _)| *n == name)?;
        match c.try_wait() {
            Ok(Some(st)) => Some(st.to_string()),
            _ => None,
        }
    }

    fn stop(&mut self, name: &str) {
        if let Some(i) = self.0.iter().position(|(n, _)| *n == name) {
            let (n, c) = self.0.remove(i);
            stop(n, c);
        }
    }
}

fn stop(name: &str, mut c: Child) {
    if matches!(c.try_wait(), Ok(Some(_))) {
        return;
    }
    let _ = Command::new("kill")
        .args(["-TERM", &c.id().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(10) {
        if matches!(c.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("{name} did not stop within 10 s of SIGTERM: killing it");
    let _ = c.kill();
    let _ = c.wait();
}

impl Drop for Children {
    fn drop(&mut self) {
        while let Some((n, c)) = self.0.pop() {
            stop(n, c);
        }
    }
}

/// A fresh folder under $TMPDIR (or /tmp), removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> anyhow::Result<TempDir> {
        let base = std::env::var_os("TMPDIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/tmp"));
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir = base.join(format!("dragoman-bench-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A blocking GET that is true on a 200: cheap enough to poll every millisecond.
fn get_ok(addr: SocketAddr, path: &str) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}

/// A JSON POST with the master key, for setting up keys; the answer's body.
fn admin_post(addr: SocketAddr, path: &str, body: &Value) -> anyhow::Result<Value> {
    let body = body.to_string();
    let mut s = TcpStream::connect(addr)?;
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {API_KEY}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let (head, rest) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    if !head.starts_with("HTTP/1.1 200") {
        bail!("{path}: {head}");
    }
    Ok(serde_json::from_str(rest)?)
}

/// A team, a user and a key in both, each with every kind of limit, high enough never to
/// refuse: what the benchmark measures is the checking.
pub fn virtual_key(addr: SocketAddr) -> anyhow::Result<String> {
    let limits = json!({"rpm_limit": 100_000_000, "tpm_limit": 100_000_000_000u64, "max_parallel_requests": 100_000, "max_budget": 1_000_000.0, "budget_duration": "30d"});
    let with = |extra: Value| {
        let mut v = limits.clone();
        if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        v
    };
    admin_post(addr, "/team/new", &with(json!({"team_id": "bench-team"})))?;
    admin_post(
        addr,
        "/user/new",
        &with(json!({"user_id": "bench-user", "auto_create_key": false})),
    )?;
    let k = admin_post(
        addr,
        "/key/generate",
        &with(json!({"team_id": "bench-team", "user_id": "bench-user", "key_alias": "bench"})),
    )?;
    k["key"]
        .as_str()
        .map(str::to_owned)
        .context("no key in the /key/generate answer")
}

fn wait_ready(
    children: &mut Children,
    name: &str,
    addr: SocketAddr,
    path: &str,
    every: Duration,
) -> anyhow::Result<()> {
    let t0 = Instant::now();
    loop {
        if get_ok(addr, path) {
            return Ok(());
        }
        if let Some(st) = children.exited(name) {
            bail!("{name} exited ({st}) before {path} answered");
        }
        if t0.elapsed() > Duration::from_secs(60) {
            bail!("{name}: {path} did not answer within 60 s");
        }
        std::thread::sleep(every);
    }
}

pub fn workspace_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize()
        .unwrap_or_else(|_| std::env::current_dir().unwrap_or_default())
}

fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => root.join(d),
        None => root.join("target"),
    }
}

fn build_gateway(root: &Path) -> anyhow::Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("building the gateway: cargo build --release -p dragoman");
    let st = Command::new(cargo)
        .args(["build", "--release", "-p", "dragoman"])
        .current_dir(root)
        .status()
        .context("cannot run cargo")?;
    if !st.success() {
        bail!("cargo build --release -p dragoman failed ({st})");
    }
    Ok(target_dir(root).join("release").join("dragoman"))
}

fn date() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M:%S UTC"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("unix {}", unix_time()))
}

fn unix_time() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The processes whose CPU a run reads, and the clock those readings count in.
#[derive(Clone, Copy)]
pub struct Probes {
    pub gateway: Option<u32>,
    pub mock: Option<u32>,
    pub clk_tck: u64,
}

impl Probes {
    pub fn ticks(&self) -> [Option<u64>; 3] {
        [
            self.gateway.and_then(|p| procfs::cpu_ticks(Some(p)).ok()),
            self.mock.and_then(|p| procfs::cpu_ticks(Some(p)).ok()),
            procfs::cpu_ticks(None).ok(),
        ]
    }

    pub fn cpu(&self, before: [Option<u64>; 3], after: [Option<u64>; 3]) -> Cpu {
        let s = |i: usize| match (before[i], after[i]) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / self.clk_tck as f64),
            _ => None,
        };
        Cpu {
            gateway_s: s(0),
            mock_s: s(1),
            loadgen_s: s(2),
        }
    }
}

/// One measured run of one target.
#[allow(clippy::too_many_arguments)]
pub fn measure(
    rt: &tokio::runtime::Runtime,
    scenario: &str,
    side: &str,
    targets: Vec<Target>,
    plan: &Plan,
    probes: Probes,
    sampler: Option<&RssSampler>,
) -> RunResult {
    if let Some(s) = sampler {
        s.take_peak();
    }
    let out = rt.block_on(load::run(targets, plan, || probes.ticks()));
    let cpu = probes.cpu(out.at_start, probes.ticks());
    let peak = sampler.map(|s| procfs::kib_to_mib(s.take_peak()));
    let mut r = RunResult::new(
        scenario,
        side,
        plan.concurrency,
        out.samples,
        out.elapsed.as_secs_f64(),
        cpu,
        peak.filter(|_| side == "gateway"),
    );
    if side != "gateway" {
        // The gateway idles through a direct run: its CPU then is no cost per request.
        r.gateway_cpu_us_per_req = None;
    }
    eprintln!(
        "{scenario:>18} {side:>7} c={:<3} {:>8.0} req/s  p50 {:>7.3} ms  p99 {:>7.3} ms  errors {}{}",
        r.concurrency,
        r.rps,
        r.p50_ms.unwrap_or(f64::NAN),
        r.p99_ms.unwrap_or(f64::NAN),
        r.errors,
        r.first_error
            .as_deref()
            .map(|e| format!(" (first: {e})"))
            .unwrap_or_default()
    );
    r
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let root = workspace_root();
    let want_gateway = a.targets.contains(&Side::Gateway) || a.soak_minutes.is_some();
    let want_direct = a.targets.contains(&Side::Direct) && a.soak_minutes.is_none();
    let clk_tck = procfs::clock_ticks();
    let paced = (a.paced_ttft_ms, a.paced_gap_ms);
    let tmp = TempDir::new()?;
    // Declared after `tmp`, so dropped before it: the gateway stops before its folder goes.
    let mut children = Children::default();

    let gateway_bin = match (&a.gateway_bin, want_gateway) {
        (Some(b), true) => Some(b.clone()),
        (None, true) => Some(build_gateway(&root)?),
        (_, false) => None,
    };

    let exe = std::env::current_exe().context("cannot find this executable")?;
    let (mock_addr, mock_pid) = match a.mock_addr {
        Some(addr) => (addr, None),
        None => {
            let port = free_port()?;
            let mut cmd = Command::new(&exe);
            cmd.args(["mock", "--port", &port.to_string()])
                .stdout(Stdio::null());
            if let Some(t) = a.mock_threads {
                cmd.args(["--threads", &t.to_string()]);
            }
            let child = cmd.spawn().context("cannot start the mock")?;
            let pid = children.add("mock", child);
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            wait_ready(
                &mut children,
                "mock",
                addr,
                "/health",
                Duration::from_millis(5),
            )?;
            (addr, Some(pid))
        }
    };

    let mut results = Results {
        date: date(),
        nproc: procfs::nproc(),
        clk_tck,
        gateway_bin: gateway_bin.as_ref().map(|b| b.display().to_string()),
        store: !a.no_store,
        duration_s: a.duration,
        warmup_s: a.warmup,
        concurrency: a.concurrency.clone(),
        mock_chunks: DEFAULT_CHUNKS,
        startup_ms: None,
        idle_rss_mib: None,
        peak_rss_mib: None,
        hwm_rss_mib: None,
        end_rss_mib: None,
        settled_rss_mib: None,
        settle_s: a.settle_seconds,
        runs: Vec::new(),
        paced: None,
        soak: None,
    };

    let mut gateway = None;
    let mut gateway_key = API_KEY.to_owned();
    if let Some(bin) = &gateway_bin {
        let config = tmp.0.join("dragoman.yaml");
        std::fs::write(
            &config,
            gateway_config_with(
                mock_addr,
                &tmp.0.join("bench.db"),
                !a.no_store,
                paced,
                a.redis_url.as_deref(),
            ) + if a.response_cache {
                "litellm_settings:\n  cache: true\n  cache_params: {type: local, ttl: 3600}\n"
            } else {
                ""
            },
        )?;
        let port = free_port()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let t0 = Instant::now();
        let mut cmd = Command::new(bin);
        cmd.arg("serve")
            .arg("--config")
            .arg(&config)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .env("DRAGOMAN_LOG", "warn")
            .stdout(Stdio::null());
        if a.text_logs && !a.telemetry {
            let log = std::fs::File::create(tmp.0.join("gateway.log"))?;
            cmd.env("DRAGOMAN_LOG", "info").stderr(log);
        }
        if a.telemetry {
            let log = std::fs::File::create(tmp.0.join("gateway.log"))?;
            cmd.env("DRAGOMAN_LOG", "info")
                .env("DRAGOMAN_LOG_FORMAT", "json")
                .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{mock_addr}"))
                .stderr(log);
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let pid = children.add("gateway", child);
        wait_ready(
            &mut children,
            "gateway",
            addr,
            "/health/liveliness",
            Duration::from_millis(1),
        )?;
        results.startup_ms = Some((t0.elapsed().as_secs_f64() * 1e4).round() / 10.0);
        std::thread::sleep(Duration::from_secs(1));
        results.idle_rss_mib = Some(procfs::kib_to_mib(procfs::rss_kib(pid)?));
        eprintln!(
            "gateway ready after {:.1} ms; idle RSS {:.1} MiB",
            results.startup_ms.unwrap_or_default(),
            results.idle_rss_mib.unwrap_or_default()
        );
        if a.virtual_key {
            gateway_key = virtual_key(addr)?;
            eprintln!("calling the gateway with a virtual key (team, user, limits on each)");
        }
        gateway = Some((addr, pid, RssSampler::start(pid)));
    }

    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(t) = a.loadgen_threads {
        rt.worker_threads(t.max(1));
    }
    let rt = rt
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let probes = Probes {
        gateway: gateway.as_ref().map(|g| g.1),
        mock: mock_pid,
        clk_tck,
    };
    let sampler = gateway.as_ref().map(|g| &g.2);

    if let (Some(minutes), Some((addr, pid, _))) = (a.soak_minutes, &gateway) {
        results.soak = Some(soak::run(
            &rt,
            *addr,
            *pid,
            minutes,
            a.soak_rate,
            a.warmup,
            probes,
        )?);
    } else {
        let secs = |s: f64| Duration::from_secs_f64(s.max(0.0));
        // One scenario at one plan: direct to the mock, then through the gateway.
        let pair = |sc: Scenario, plan: &Plan| -> anyhow::Result<_> {
            let direct = if want_direct {
                let t = target(sc, Side::Direct, mock_addr, paced)?;
                let r = measure(&rt, sc.name(), "direct", vec![t], plan, probes, sampler);
                Some(r)
            } else {
                None
            };
            let gw = match &gateway {
                Some((addr, _, s)) => {
                    let t = target_with(sc, Side::Gateway, *addr, paced, &gateway_key)?;
                    Some(measure(
                        &rt,
                        sc.name(),
                        "gateway",
                        vec![t],
                        plan,
                        probes,
                        Some(s),
                    ))
                }
                None => None,
            };
            Ok((direct, gw))
        };
        for &sc in a.scenarios.iter().filter(|s| **s != Scenario::Paced) {
            for &c in &a.concurrency {
                let plan = Plan {
                    concurrency: c,
                    warmup: secs(a.warmup),
                    duration: secs(a.duration),
                    rate: None,
                    stagger: Duration::ZERO,
                };
                let (direct, gw) = pair(sc, &plan)?;
                results.runs.push(Row::new(sc.name(), c, direct, gw));
            }
        }
        if a.scenarios.contains(&Scenario::Paced) {
            let plan = Plan {
                concurrency: a.paced_concurrency,
                warmup: secs(a.warmup),
                duration: secs(a.paced_duration),
                rate: None,
                stagger: Duration::from_millis(a.paced_gap_ms),
            };
            let (direct, gw) = pair(Scenario::Paced, &plan)?;
            results.paced = Some(Paced::new(
                a.paced_concurrency,
                a.paced_duration,
                a.paced_ttft_ms,
                a.paced_gap_ms,
                direct,
                gw,
            ));
        }
    }

    if let Some((_, pid, s)) = &gateway {
        results.end_rss_mib = procfs::rss_kib(*pid).ok().map(procfs::kib_to_mib);
        if let Some(s) = a.settle_seconds {
            std::thread::sleep(Duration::from_secs_f64(s.max(0.0)));
            results.settled_rss_mib = procfs::rss_kib(*pid).ok().map(procfs::kib_to_mib);
            let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
            eprintln!("gateway after {s:.0} s: {fds} open files");
        }
        results.hwm_rss_mib = procfs::hwm_kib(*pid).ok().map(procfs::kib_to_mib);
        results.peak_rss_mib = Some(procfs::kib_to_mib(s.overall_peak()));
    }
    drop(gateway);
    children.stop("gateway");
    children.stop("mock");

    let out = a.out.clone().unwrap_or_else(|| {
        target_dir(&root)
            .join("bench")
            .join(unix_time().to_string())
    });
    results.write(&out)?;
    print!("{}", results.markdown());
    eprintln!("\nwritten: {}", out.join("results.md").display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_config_names_the_harness_models() {
        let y = gateway_config(
            "127.0.0.1:9".parse().unwrap(),
            Path::new("/tmp/x/bench.db"),
            false,
            (300, 20),
        );
        for m in [
            "bench-chat",
            "bench-messages-chat",
            "bench-responses",
            "bench-responses-paced",
            "custom_openai/gpt-4o-mini",
            "api_base: http://127.0.0.1:9/v1",
            "disable_spend_logs: true",
            "database_path: \"/tmp/x/bench.db\"",
            "x-mock-delay-ms: \"300\"",
            "mode: responses",
        ] {
            assert!(y.contains(m), "{m} missing from\n{y}");
        }
    }

    #[test]
    fn bodies_match_the_shared_harness() {
        assert!(system_prompt().len() > 1400);
        let m = messages_body("bench-responses", true);
        assert_eq!(m["stream"], true);
        assert_eq!(m["system"][0]["cache_control"]["type"], "ephemeral");
        assert_eq!(responses_body("gpt-5-codex")["stream"], true);
        assert!(chat_body("x").get("stream").is_none());
    }
}
