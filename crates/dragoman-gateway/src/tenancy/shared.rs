//! Limits and budgets that hold across instances: with Redis configured, every admission is
//! one atomic script over all of a request's meters (key, key x model, team, user), and every
//! settlement another. Exact sliding windows (sorted sets of admission times), in-flight
//! slots and budget reservations that expire with the request's deadline (an instance that
//! dies cannot leak them), and spend per budget period.
//!
//! When Redis cannot be reached, each instance falls back to its own meters with a share of
//! each limit (the limit over the number of live instances last seen), says so in the log and
//! in `dragoman_redis_up`, and keeps every settlement it could not send to add it when Redis is
//! back: nothing is lost.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::meter::Caps;

/// How long a Redis round trip may take before the instance stops waiting and uses its local
/// share: on loopback one takes ~100 µs.
const TIMEOUT: Duration = Duration::from_millis(250);
/// How long an admitted request may hold its slot and reservation if its instance never
/// settles it (it died): past the longest request a deployment allows.
const LEASE_MS: i64 = 15 * 60_000;
const HEARTBEAT: Duration = Duration::from_millis(500);

// Per meter `b`: `b:r` admission times (sorted set, the exact window); `b:t` tokens per second
// (hash) with `b:tz` its seconds (sorted set) and `b:ts` their sum; `b:p` leases (sorted set
// of request ids by expiry) with `b:h` their reservations (hash) and `b:rs` their sum;
// `b:s:PERIOD` spend. Sums are kept as they change, so a call costs what expired since the
// last one, not the size of the window.
const ADMIT: &str = r#"
local now = tonumber(ARGV[1])
local rid = ARGV[2]
local n = tonumber(ARGV[3])
local lease = tonumber(ARGV[4 + 7 * n])
local sec = math.floor(now / 1000)
local out = {}
for i = 1, n do
  local b = KEYS[i]
  local o = 3 + (i - 1) * 7
  local rpm, tpm, par = tonumber(ARGV[o + 1]), tonumber(ARGV[o + 2]), tonumber(ARGV[o + 3])
  local budget, period, reserve, seed = tonumber(ARGV[o + 4]), ARGV[o + 5], tonumber(ARGV[o + 6]), ARGV[o + 7]
  local reqs, oldest_r = 0, now
  if rpm >= 0 then
    redis.call('ZREMRANGEBYSCORE', b .. ':r', '-inf', now - 60000)
    reqs = redis.call('ZCARD', b .. ':r')
    if reqs > 0 then oldest_r = tonumber(redis.call('ZRANGE', b .. ':r', 0, 0, 'WITHSCORES')[2]) end
    if reqs >= rpm then return {i, 1, oldest_r + 60000 - now, rpm} end
  end
  local toks, oldest_t = 0, sec
  if tpm >= 0 then
    for _, s in ipairs(redis.call('ZRANGEBYSCORE', b .. ':tz', '-inf', sec - 60)) do
      redis.call('DECRBY', b .. ':ts', redis.call('HGET', b .. ':t', s) or 0)
      redis.call('HDEL', b .. ':t', s)
      redis.call('ZREM', b .. ':tz', s)
    end
    toks = tonumber(redis.call('GET', b .. ':ts') or '0')
    local first = redis.call('ZRANGE', b .. ':tz', 0, 0)[1]
    if first then oldest_t = tonumber(first) end
    if toks >= tpm then return {i, 2, oldest_t * 1000 + 60000 - now, tpm} end
  end
  if par >= 0 or budget >= 0 then
    for _, r in ipairs(redis.call('ZRANGEBYSCORE', b .. ':p', '-inf', now)) do
      local v = redis.call('HGET', b .. ':h', r)
      if v then
        redis.call('DECRBY', b .. ':rs', v)
        redis.call('HDEL', b .. ':h', r)
      end
      redis.call('ZREM', b .. ':p', r)
    end
  end
  if par >= 0 and redis.call('ZCARD', b .. ':p') >= par then
    return {i, 3, 1000, par}
  end
  local sk = b .. ':s:' .. period
  redis.call('SET', sk, seed, 'NX')
  local spent = tonumber(redis.call('GET', sk))
  if budget >= 0 then
    local reserved = tonumber(redis.call('GET', b .. ':rs') or '0')
    if spent >= budget or (spent + reserved + reserve > budget and reserved > 0) then
      return {i, 4, spent, budget}
    end
  end
  out[i] = {reqs, oldest_r, toks, oldest_t * 1000, spent}
end
local flat = {0}
for i = 1, n do
  local b = KEYS[i]
  local o = 3 + (i - 1) * 7
  if tonumber(ARGV[o + 1]) >= 0 then
    redis.call('ZADD', b .. ':r', now, rid)
    redis.call('PEXPIRE', b .. ':r', 61000)
  end
  if tonumber(ARGV[o + 3]) >= 0 or tonumber(ARGV[o + 4]) >= 0 then
    redis.call('ZADD', b .. ':p', now + lease, rid)
    redis.call('PEXPIRE', b .. ':p', lease)
  end
  local reserve = tonumber(ARGV[o + 6])
  if reserve > 0 then
    redis.call('HSET', b .. ':h', rid, reserve)
    redis.call('INCRBY', b .. ':rs', reserve)
    redis.call('PEXPIRE', b .. ':h', lease)
    redis.call('PEXPIRE', b .. ':rs', lease)
  end
  for _, v in ipairs(out[i]) do table.insert(flat, v) end
end
return flat
"#;

const SETTLE: &str = r#"
local now = tonumber(ARGV[1])
local rid = ARGV[2]
local n = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local tokens = tonumber(ARGV[5])
local sec = math.floor(now / 1000)
for i = 1, n do
  local b = KEYS[i]
  local period, ttl = ARGV[5 + (i - 1) * 2 + 1], tonumber(ARGV[5 + (i - 1) * 2 + 2])
  redis.call('ZREM', b .. ':p', rid)
  local v = redis.call('HGET', b .. ':h', rid)
  if v then
    redis.call('DECRBY', b .. ':rs', v)
    redis.call('HDEL', b .. ':h', rid)
  end
  if cost > 0 then
    local sk = b .. ':s:' .. period
    redis.call('INCRBY', sk, cost)
    if ttl > 0 then redis.call('PEXPIRE', sk, ttl) end
  end
  if tokens > 0 then
    redis.call('HINCRBY', b .. ':t', sec, tokens)
    redis.call('ZADD', b .. ':tz', sec, sec)
    redis.call('INCRBY', b .. ':ts', tokens)
    for _, k in ipairs({':t', ':tz', ':ts'}) do redis.call('PEXPIRE', b .. k, 61000) end
  end
end
return 1
"#;

/// What one meter's entry in a Redis admission carries.
#[derive(Debug, Clone)]
pub struct Part {
    /// `PREFIX:k:ID`, `PREFIX:t:ID`, … (see [`Shared::base`]).
    pub base: String,
    pub caps: Caps,
    pub reserve: i64,
    /// This instance's view of the spend this period, to seed a missing counter.
    pub seed: i64,
    pub period_start: i64,
}

/// The global state of one admitted meter, as the script saw it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Seen {
    pub requests: u64,
    pub oldest_request_ms: i64,
    pub tokens: u64,
    pub oldest_token_ms: i64,
    pub spent: i64,
}

impl Seen {
    /// The headroom this meter had globally once the request was admitted (the script counted
    /// before adding it).
    pub fn room(&self, caps: &Caps, now: i64) -> super::meter::Headroom {
        let reset_at = |oldest: i64| (oldest + super::meter::WINDOW_MS).max(now);
        super::meter::Headroom {
            requests: caps.rpm.map(|l| {
                (
                    l,
                    l.saturating_sub(self.requests + 1),
                    reset_at(self.oldest_request_ms),
                )
            }),
            tokens: caps.tpm.map(|l| {
                (
                    l,
                    l.saturating_sub(self.tokens),
                    reset_at(self.oldest_token_ms),
                )
            }),
            spent: self.spent,
            budget: caps.budget,
        }
    }
}

/// Why Redis refused, by the part's index.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Admitted(Vec<Seen>),
    /// (part, what: 1 rpm, 2 tpm, 3 parallel, 4 budget, retry-after ms or spent, limit)
    Refused(usize, i64, i64, i64),
}

struct Pending {
    now: i64,
    rid: String,
    parts: Vec<(String, i64, i64)>,
    cost: i64,
    tokens: u64,
}

pub struct Shared {
    client: redis::Client,
    /// One connection per serving thread (and one for the heartbeat): a connection's driver
    /// runs on the runtime that opened it, so each thread talks to Redis without a hop.
    conns: Vec<ArcSwapOption<ConnectionManager>>,
    prefix: String,
    instance: String,
    up: AtomicBool,
    instances: AtomicU64,
    pending: std::sync::Mutex<Vec<Pending>>,
    admit: redis::Script,
    settle: redis::Script,
    /// Admissions decided locally because Redis was unreachable.
    pub fallbacks: AtomicU64,
}

impl Shared {
    pub fn new(url: &str, prefix: &str, workers: usize) -> Result<Arc<Shared>, String> {
        let client = redis::Client::open(url).map_err(|e| format!("redis url: {e}"))?;
        let instance = format!("{:016x}", fastrand::u64(..));
        Ok(Arc::new(Shared {
            client,
            conns: (0..=workers).map(|_| ArcSwapOption::empty()).collect(),
            prefix: prefix.to_owned(),
            instance,
            up: AtomicBool::new(false),
            instances: AtomicU64::new(1),
            pending: std::sync::Mutex::new(Vec::new()),
            admit: redis::Script::new(ADMIT),
            settle: redis::Script::new(SETTLE),
            fallbacks: AtomicU64::new(0),
        }))
    }

    /// A response-cache entry (`key` under this gateway's prefix); `None` when absent or when
    /// Redis does not answer in time (a miss, never an error).
    pub async fn cache_get(&self, key: &str) -> Option<Vec<u8>> {
        let mut c = self.connection().await.ok()?;
        let k = format!("{}:{key}", self.prefix);
        tokio::time::timeout(
            TIMEOUT,
            redis::AsyncCommands::get::<_, Option<Vec<u8>>>(&mut c, k),
        )
        .await
        .ok()?
        .ok()?
    }

    /// Keeps a response-cache entry for `ttl`; a failure only costs a later miss.
    pub async fn cache_set(&self, key: &str, value: Vec<u8>, ttl: Duration) {
        let Ok(mut c) = self.connection().await else {
            return;
        };
        let k = format!("{}:{key}", self.prefix);
        let secs = ttl.as_secs().max(1);
        let _ = tokio::time::timeout(
            TIMEOUT,
            redis::AsyncCommands::set_ex::<_, _, ()>(&mut c, k, value, secs),
        )
        .await;
    }

    /// The key prefix of one meter.
    pub fn base(&self, kind: &str, id: &str) -> String {
        format!("{}:{kind}:{id}", self.prefix)
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Live instances at the last heartbeat (at least 1).
    pub fn instances(&self) -> u64 {
        self.instances.load(Ordering::Relaxed).max(1)
    }

    fn went_down(&self, e: &str) {
        if self.up.swap(false, Ordering::Relaxed) {
            tracing::warn!(error = %e, share_of = self.instances(), "Redis is unreachable: limits and budgets fall back to this instance's share until it returns");
        }
    }

    /// Connects, and then every [`HEARTBEAT`] registers this instance, counts the live ones
    /// and sends the settlements Redis missed.
    pub fn spawn(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(s) = weak.upgrade() else { return };
                s.beat().await;
                drop(s);
                tokio::time::sleep(HEARTBEAT).await;
            }
        });
    }

    /// This thread's connection (the heartbeat's outside the serving threads).
    async fn connection(&self) -> Result<ConnectionManager, String> {
        let slot = crate::worker_index()
            .map_or(self.conns.len() - 1, |w| w % (self.conns.len() - 1).max(1));
        let slot = &self.conns[slot];
        if let Some(c) = slot.load_full() {
            return Ok((*c).clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let c = tokio::time::timeout(
            TIMEOUT * 2,
            ConnectionManager::new_with_config(self.client.clone(), config),
        )
        .await
        .map_err(|_| "connecting timed out".to_owned())?
        .map_err(|e| e.to_string())?;
        slot.store(Some(Arc::new(c.clone())));
        Ok(c)
    }

    /// Registers this instance and learns whether Redis answers; the first call is made
    /// before serving, so no request is decided on a guess.
    pub async fn beat(&self) {
        let result = async {
            let mut c = self.connection().await?;
            let now = super::now_ms();
            let key = format!("{}:instances", self.prefix);
            let (_, _, n): ((), (), u64) = redis::pipe()
                .zadd(&key, &self.instance, now)
                .zrembyscore(&key, "-inf", now - 3 * HEARTBEAT.as_millis() as i64)
                .zcard(&key)
                .query_async(&mut c)
                .await
                .map_err(|e| e.to_string())?;
            Ok::<u64, String>(n)
        }
        .await;
        match result {
            Ok(n) => {
                self.instances.store(n.max(1), Ordering::Relaxed);
                if !self.up.swap(true, Ordering::Relaxed) {
                    tracing::info!(
                        instances = n,
                        "Redis reachable: limits and budgets are global"
                    );
                }
                self.flush().await;
            }
            Err(e) => self.went_down(&e),
        }
    }

    /// Sends the settlements made while Redis was away.
    async fn flush(&self) {
        let jobs = match self.pending.lock() {
            Ok(mut p) => std::mem::take(&mut *p),
            Err(_) => return,
        };
        let n = jobs.len();
        let mut failed = Vec::new();
        for j in jobs {
            if let Err(e) = self.send_settle(&j).await {
                self.went_down(&e);
                failed.push(j);
            }
        }
        if !failed.is_empty() {
            if let Ok(mut p) = self.pending.lock() {
                p.extend(failed);
            }
        } else if n > 0 {
            tracing::info!(
                settlements = n,
                "settlements made while Redis was away are counted globally again"
            );
        }
    }

    /// One atomic admission over every part; `Err` when Redis cannot answer in time.
    pub async fn admit(&self, rid: &str, parts: &[Part], now: i64) -> Result<Verdict, String> {
        if !self.is_up() {
            return Err("Redis is down".into());
        }
        let mut c = self.connection().await?;
        let mut inv = self.admit.prepare_invoke();
        for p in parts {
            inv.key(&p.base);
        }
        inv.arg(now).arg(rid).arg(parts.len());
        for p in parts {
            let lim = |v: Option<u64>| v.map_or(-1, |v| v as i64);
            inv.arg(lim(p.caps.rpm))
                .arg(lim(p.caps.tpm))
                .arg(lim(p.caps.parallel))
                .arg(p.caps.budget.unwrap_or(-1))
                .arg(p.period_start)
                .arg(p.reserve)
                .arg(p.seed);
        }
        inv.arg(LEASE_MS);
        let r: Vec<i64> = match tokio::time::timeout(TIMEOUT, inv.invoke_async(&mut c)).await {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => {
                let e = e.to_string();
                self.went_down(&e);
                return Err(e);
            }
            Err(_) => {
                self.went_down("timed out");
                return Err("timed out".into());
            }
        };
        match r.first().copied() {
            Some(0) => Ok(Verdict::Admitted(
                r[1..]
                    .chunks(5)
                    .map(|c| Seen {
                        requests: c.first().copied().unwrap_or(0).max(0) as u64,
                        oldest_request_ms: c.get(1).copied().unwrap_or(0),
                        tokens: c.get(2).copied().unwrap_or(0).max(0) as u64,
                        oldest_token_ms: c.get(3).copied().unwrap_or(0),
                        spent: c.get(4).copied().unwrap_or(0),
                    })
                    .collect(),
            )),
            Some(i) if r.len() >= 4 => {
                Ok(Verdict::Refused((i - 1).max(0) as usize, r[1], r[2], r[3]))
            }
            _ => Err("unexpected answer from the admission script".into()),
        }
    }

    /// Settles an admission in Redis, off the request's path; kept for later if Redis is away.
    pub fn settle(
        self: &Arc<Self>,
        rid: String,
        parts: Vec<(String, i64, i64)>,
        cost: i64,
        tokens: u64,
    ) {
        let job = Pending {
            now: super::now_ms(),
            rid,
            parts,
            cost,
            tokens,
        };
        if !self.is_up() {
            if let Ok(mut p) = self.pending.lock() {
                p.push(job);
            }
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            if let Err(e) = me.send_settle(&job).await {
                me.went_down(&e);
                if let Ok(mut p) = me.pending.lock() {
                    p.push(job);
                }
            }
        });
    }

    async fn send_settle(&self, j: &Pending) -> Result<(), String> {
        let mut c = self.connection().await?;
        let mut inv = self.settle.prepare_invoke();
        for (base, _, _) in &j.parts {
            inv.key(base);
        }
        inv.arg(j.now)
            .arg(&j.rid)
            .arg(j.parts.len())
            .arg(j.cost)
            .arg(j.tokens);
        for (_, period, ttl) in &j.parts {
            inv.arg(*period).arg(*ttl);
        }
        match tokio::time::timeout(TIMEOUT, inv.invoke_async::<i64>(&mut c)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("timed out".into()),
        }
    }

    /// Settlements waiting for Redis.
    pub fn pending(&self) -> usize {
        self.pending.lock().map_or(0, |p| p.len())
    }
}
