//! The router: for a requested model, an ordered plan of the deployments to try, and what it
//! learns from each attempt (failures and cooldowns, latency, requests and tokens per minute,
//! requests in flight). Deciding is synchronous and in memory: no lock is held across an
//! await and nothing here touches the network, so the pick costs a few hundred nanoseconds
//! (see `benches/router.rs`).
//!
//! A plan ranks the group's deployments: those neither cooling down nor at a limit first
//! (priority tier by `order`, then the strategy, or the conversation's deployment when the
//! request is sticky), then those cooling down, least recently failed first; a deployment at
//! its `rpm`, `tpm` or `max_parallel_requests` is left out. Fallback groups are ranked the
//! same way when the attempt loop reaches them, with what the failures taught by then.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dragoman_config::{Config, Deployment, FailClass, RouterSettings, Strategy};

/// Time constant of the latency estimate's decay: a slow answer stops counting against a
/// deployment after a few tens of seconds of fast ones.
const LATENCY_DECAY: Duration = Duration::from_secs(10);

/// What the router knows about one deployment. Counters are atomics; the few fields that
/// change together sit behind a mutex held for a handful of instructions.
#[derive(Default)]
struct DepState {
    in_flight: AtomicU32,
    /// Router milliseconds until which the deployment is cooling down (0: not cooling).
    cooling_until: AtomicU64,
    /// Router milliseconds of the last failure, plus one (0: never failed).
    last_failed: AtomicU64,
    fails: Mutex<FailWindow>,
    latency: Mutex<PeakEwma>,
    usage: Mutex<UsageWindow>,
}

/// Failures per class in the current minute (LiteLLM's `allowed_fails` are per minute).
#[derive(Default)]
struct FailWindow {
    minute: u64,
    counts: [u32; 4],
}

fn class_index(c: FailClass) -> usize {
    match c {
        FailClass::RateLimit => 0,
        FailClass::Timeout => 1,
        FailClass::Server => 2,
        FailClass::Authentication => 3,
    }
}

/// Peak-EWMA of time to first byte (Finagle's load estimator): a slower sample replaces the
/// estimate at once, faster ones pull it down with exponential decay in time. A deployment
/// that turns slow is avoided on its next request, not after a window of averages.
#[derive(Default)]
struct PeakEwma {
    /// Seconds; 0 until the first sample.
    estimate: f64,
    at_ms: u64,
}

impl PeakEwma {
    fn observe(&mut self, sample: f64, now_ms: u64) {
        if sample >= self.estimate || self.at_ms == 0 {
            self.estimate = sample;
        } else {
            let dt = now_ms.saturating_sub(self.at_ms) as f64 / 1000.0;
            let w = (-dt / LATENCY_DECAY.as_secs_f64()).exp();
            self.estimate = self.estimate * w + sample * (1.0 - w);
        }
        self.at_ms = now_ms.max(1);
    }
}

/// Requests and tokens in a sliding minute, estimated from this minute's and the last
/// minute's counts (the last weighted by how much of it the sliding window still covers):
/// two counters instead of a log of every request, within a few percent of exact.
#[derive(Default)]
struct UsageWindow {
    minute: u64,
    requests: [u64; 2],
    tokens: [u64; 2],
}

impl UsageWindow {
    fn roll(&mut self, now_ms: u64) {
        let minute = now_ms / 60_000;
        if minute == self.minute {
            return;
        }
        if minute == self.minute + 1 {
            self.requests = [self.requests[1], 0];
            self.tokens = [self.tokens[1], 0];
        } else {
            self.requests = [0, 0];
            self.tokens = [0, 0];
        }
        self.minute = minute;
    }

    /// (requests, tokens) in the minute before `now_ms`.
    fn estimate(&mut self, now_ms: u64) -> (f64, f64) {
        self.roll(now_ms);
        let into = (now_ms % 60_000) as f64 / 60_000.0;
        let est = |c: [u64; 2]| c[0] as f64 * (1.0 - into) + c[1] as f64;
        (est(self.requests), est(self.tokens))
    }
}

/// A deployment's limits and weights, from the config.
struct Limits {
    rpm: Option<u64>,
    tpm: Option<u64>,
    max_parallel: Option<u32>,
    weight: f64,
    order: u32,
}

impl Limits {
    fn of(d: &Deployment) -> Limits {
        // LiteLLM's simple-shuffle weighs by `weight`, else by `rpm`, else by `tpm`.
        let weight = d
            .weight
            .or(d.rpm.map(|r| r as f64))
            .or(d.tpm.map(|t| t as f64))
            .unwrap_or(1.0);
        Limits {
            rpm: d.rpm,
            tpm: d.tpm,
            max_parallel: d.max_parallel,
            weight,
            order: d.order.unwrap_or(u32::MAX),
        }
    }
}

/// A model group as requested: its name (aliases resolved) and deployments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub members: Vec<usize>,
}

/// The ranked deployments of one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ranked {
    pub group: String,
    pub order: Vec<usize>,
}

/// Every deployment of the group is at its limit: answer 429, retry after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AtLimit {
    pub retry_after: Duration,
}

/// Why a deployment cannot be used right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Availability {
    Ready,
    Cooling,
    Limited,
}

pub struct Router {
    settings: RouterSettings,
    epoch: Instant,
    state: Vec<DepState>,
    limits: Vec<Limits>,
    ids: Vec<String>,
    /// Exact group names → deployments, in config order.
    groups: HashMap<String, Vec<usize>>,
    /// Wildcard prefixes → deployments, longest prefix first.
    wildcards: Vec<(String, Vec<usize>)>,
    aliases: HashMap<String, String>,
}

impl Router {
    pub fn new(config: &Config) -> Router {
        let mut groups: HashMap<String, Vec<usize>> = HashMap::new();
        let mut wildcards: Vec<(String, Vec<usize>)> = Vec::new();
        for (i, d) in config.deployments.iter().enumerate() {
            match d.model_name.strip_suffix('*') {
                None => groups.entry(d.model_name.clone()).or_default().push(i),
                Some(prefix) => match wildcards.iter_mut().find(|(p, _)| p == prefix) {
                    Some((_, v)) => v.push(i),
                    None => wildcards.push((prefix.to_owned(), vec![i])),
                },
            }
        }
        wildcards.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        Router {
            settings: config.router.clone(),
            epoch: Instant::now(),
            state: config
                .deployments
                .iter()
                .map(|_| DepState::default())
                .collect(),
            limits: config.deployments.iter().map(Limits::of).collect(),
            ids: config.deployments.iter().map(|d| d.id.clone()).collect(),
            groups,
            wildcards,
            aliases: config
                .router
                .aliases
                .iter()
                .map(|(a, g, _)| (a.clone(), g.clone()))
                .collect(),
        }
    }

    pub fn settings(&self) -> &RouterSettings {
        &self.settings
    }

    /// Milliseconds since the router started (never 0, so 0 can mean "never").
    pub fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    /// The group serving `requested`: an alias's target, an exact name, or the longest
    /// wildcard prefix that matches.
    pub fn group(&self, requested: &str) -> Option<Group> {
        let name = self
            .aliases
            .get(requested)
            .map_or(requested, String::as_str);
        if let Some(m) = self.groups.get(name) {
            return Some(Group {
                name: name.to_owned(),
                members: m.clone(),
            });
        }
        self.wildcards
            .iter()
            .find(|(p, _)| name.starts_with(p.as_str()))
            .map(|(_, m)| Group {
                name: name.to_owned(),
                members: m.clone(),
            })
    }

    /// Whether `name` is an alias to hide from the model list.
    pub fn is_hidden_alias(&self, name: &str) -> bool {
        self.settings
            .aliases
            .iter()
            .any(|(a, _, hidden)| *hidden && a == name)
    }

    fn availability(&self, i: usize, now_ms: u64) -> Availability {
        let s = &self.state[i];
        let l = &self.limits[i];
        if let Some(max) = l.max_parallel
            && s.in_flight.load(Ordering::Relaxed) >= max
        {
            return Availability::Limited;
        }
        if l.rpm.is_some() || l.tpm.is_some() {
            let (req, tok) = s
                .usage
                .lock()
                .map(|mut u| u.estimate(now_ms))
                .unwrap_or((0.0, 0.0));
            if l.rpm.is_some_and(|r| req >= r as f64) || l.tpm.is_some_and(|t| tok >= t as f64) {
                return Availability::Limited;
            }
        }
        if s.cooling_until.load(Ordering::Relaxed) > now_ms {
            return Availability::Cooling;
        }
        Availability::Ready
    }

    /// Ranks `group`'s deployments for one request. `sticky` is the conversation's hash: the
    /// same conversation gets the same first choice while that deployment is ready.
    pub fn rank(&self, group: &Group, sticky: Option<u64>) -> Result<Ranked, AtLimit> {
        let now = self.now_ms();
        let mut ready = Vec::with_capacity(group.members.len());
        let mut cooling = Vec::new();
        for &i in &group.members {
            match self.availability(i, now) {
                Availability::Ready => ready.push(i),
                Availability::Cooling => cooling.push(i),
                Availability::Limited => {}
            }
        }
        if ready.is_empty() && cooling.is_empty() {
            // Limits are per minute: the sliding window frees capacity within it.
            let wait = 60_000 - (now % 60_000);
            return Err(AtLimit {
                retry_after: Duration::from_millis(wait.clamp(1000, 60_000)),
            });
        }
        self.order_ready(&mut ready, sticky);
        // All cooling: the one that failed longest ago is the best bet.
        cooling.sort_by_key(|&i| self.state[i].last_failed.load(Ordering::Relaxed));
        ready.extend(cooling);
        Ok(Ranked {
            group: group.name.clone(),
            order: ready,
        })
    }

    /// Orders ready deployments: priority tiers by `order`, then within each tier by the
    /// sticky hash or the strategy.
    fn order_ready(&self, ready: &mut [usize], sticky: Option<u64>) {
        if ready.len() < 2 {
            return;
        }
        let sticky = sticky.filter(|_| self.settings.sticky);
        // Each deployment gets a sort key within its tier; tiers sort first.
        let mut keys: Vec<(u32, f64, usize)> = ready
            .iter()
            .map(|&i| (self.limits[i].order, 0.0, i))
            .collect();
        match (sticky, self.settings.strategy) {
            (Some(h), _) => {
                for k in &mut keys {
                    k.1 = weighted_score(unit(mix(h, k.2 as u64)), self.limits[k.2].weight);
                }
            }
            (None, Strategy::SimpleShuffle) => {
                for k in &mut keys {
                    k.1 = weighted_score(unit(fastrand::u64(..)), self.limits[k.2].weight);
                }
            }
            (None, Strategy::LeastBusy) => {
                for k in &mut keys {
                    // Random fractions break ties between equally busy deployments.
                    k.1 = self.state[k.2].in_flight.load(Ordering::Relaxed) as f64
                        + fastrand::f64() * 0.5;
                }
            }
            (None, Strategy::LatencyBased) => {
                for k in &mut keys {
                    k.1 = self.load_cost(k.2);
                }
            }
            (None, Strategy::UsageBased) => {
                let now = self.now_ms();
                for k in &mut keys {
                    k.1 = self.utilisation(k.2, now) + fastrand::f64() * 1e-3;
                }
            }
        }
        keys.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
        if sticky.is_none() && self.settings.strategy == Strategy::LatencyBased {
            power_of_two(&mut keys);
        }
        for (slot, k) in ready.iter_mut().zip(&keys) {
            *slot = k.2;
        }
    }

    /// Peak-EWMA load cost: the latency estimate scaled by the requests waiting on it.
    fn load_cost(&self, i: usize) -> f64 {
        let s = &self.state[i];
        let est = s.latency.lock().map(|l| l.estimate).unwrap_or(0.0);
        est * (s.in_flight.load(Ordering::Relaxed) as f64 + 1.0)
    }

    /// The larger of the shares of `rpm` and `tpm` used in the last minute (0 without limits).
    fn utilisation(&self, i: usize, now_ms: u64) -> f64 {
        let l = &self.limits[i];
        let (req, tok) = self.state[i]
            .usage
            .lock()
            .map(|mut u| u.estimate(now_ms))
            .unwrap_or((0.0, 0.0));
        let r = l.rpm.map_or(0.0, |r| req / r.max(1) as f64);
        let t = l.tpm.map_or(0.0, |t| tok / t.max(1) as f64);
        r.max(t)
    }

    /// Starts a request on deployment `i`: counted in flight and against its `rpm`. Every
    /// `begin` is matched by one [`Router::end`]: the request's tracker owns that (its drop
    /// ends what it began, however the request ends).
    pub fn begin(&self, i: usize) {
        let s = &self.state[i];
        s.in_flight.fetch_add(1, Ordering::Relaxed);
        if self.limits[i].rpm.is_some() || self.limits[i].tpm.is_some() {
            let now = self.now_ms();
            if let Ok(mut u) = s.usage.lock() {
                u.roll(now);
                u.requests[1] += 1;
            }
        }
    }

    /// Ends a request [`Router::begin`] started on deployment `i`.
    pub fn end(&self, i: usize) {
        self.state[i].in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// Counts the tokens a finished request used against deployment `i`'s `tpm`.
    pub fn settle(&self, i: usize, tokens: u64) {
        if self.limits[i].tpm.is_none() || tokens == 0 {
            return;
        }
        let now = self.now_ms();
        if let Ok(mut u) = self.state[i].usage.lock() {
            u.roll(now);
            u.tokens[1] += tokens;
        }
    }

    /// Deployment `i` answered; `ttfb` is its time to the first byte of the answer.
    pub fn succeeded(&self, i: usize, ttfb: Duration) {
        let now = self.now_ms();
        if let Ok(mut l) = self.state[i].latency.lock() {
            l.observe(ttfb.as_secs_f64(), now);
        }
    }

    /// Deployment `i` failed with `class` after `elapsed`. A 429 cools it down at once, for
    /// the provider's `retry-after` when longer than `cooldown_time` (the provider has said
    /// it will refuse until then); other classes cool it once their failures this minute
    /// exceed their allowance. Returns whether it is now cooling.
    pub fn failed(
        &self,
        i: usize,
        class: FailClass,
        retry_after: Option<Duration>,
        elapsed: Duration,
    ) -> bool {
        let now = self.now_ms();
        let s = &self.state[i];
        s.last_failed.store(now, Ordering::Relaxed);
        if class == FailClass::Timeout
            && let Ok(mut l) = s.latency.lock()
        {
            l.observe(elapsed.as_secs_f64(), now);
        }
        if self.settings.disable_cooldowns {
            return false;
        }
        let count = match s.fails.lock() {
            Ok(mut w) => {
                let minute = now / 60_000;
                if w.minute != minute {
                    *w = FailWindow {
                        minute,
                        counts: [0; 4],
                    };
                }
                let c = &mut w.counts[class_index(class)];
                *c += 1;
                *c
            }
            Err(_) => 0,
        };
        let mut cool = self.settings.cooldown_time;
        let trip = if class == FailClass::RateLimit {
            if let Some(ra) = retry_after {
                cool = cool.max(ra.min(Duration::from_secs(300)));
            }
            true
        } else {
            count > self.settings.allowed_fails_for(class)
        };
        if trip && !cool.is_zero() {
            s.cooling_until
                .fetch_max(now + cool.as_millis() as u64, Ordering::Relaxed);
            tracing::warn!(deployment = %self.ids[i], ?class, cooldown_seconds = cool.as_secs_f64(), "deployment cooling down");
        }
        trip
    }

    /// Cools deployment `i` down for `d` at once (a health check found it failing: it stays
    /// out until the next check finds it well).
    pub fn cool_for(&self, i: usize, d: Duration) {
        let now = self.now_ms();
        let s = &self.state[i];
        s.last_failed.store(now, Ordering::Relaxed);
        if !self.settings.disable_cooldowns {
            s.cooling_until
                .fetch_max(now + d.as_millis() as u64, Ordering::Relaxed);
        }
    }

    /// Ends deployment `i`'s cooldown (a health check found it well).
    pub fn recovered(&self, i: usize) {
        self.state[i].cooling_until.store(0, Ordering::Relaxed);
    }

    /// Whether deployment `i` is cooling down now.
    pub fn is_cooling(&self, i: usize) -> bool {
        self.state[i].cooling_until.load(Ordering::Relaxed) > self.now_ms()
    }

    /// Deployment `i`'s latency estimate, seconds (0 before its first answer).
    pub fn latency_estimate(&self, i: usize) -> f64 {
        self.state[i]
            .latency
            .lock()
            .map(|l| l.estimate)
            .unwrap_or(0.0)
    }

    pub fn in_flight(&self, i: usize) -> u32 {
        self.state[i].in_flight.load(Ordering::Relaxed)
    }

    /// Number of deployments.
    pub fn len(&self) -> usize {
        self.state.len()
    }

    pub fn is_empty(&self) -> bool {
        self.state.is_empty()
    }

    pub fn id(&self, i: usize) -> &str {
        &self.ids[i]
    }

    /// The fallback groups for `group` after a failure of `kind`, in order.
    pub fn fallbacks(&self, group: &str, kind: FallbackKind) -> Vec<String> {
        let s = &self.settings;
        let list = match kind {
            FallbackKind::None => return Vec::new(),
            FallbackKind::Generic => &s.fallbacks,
            FallbackKind::ContextWindow => &s.context_window_fallbacks,
            FallbackKind::ContentPolicy => &s.content_policy_fallbacks,
        };
        let own = list
            .iter()
            .find(|(from, _)| from == group)
            .map(|(_, to)| to.clone());
        match (own, kind) {
            (Some(to), _) => to,
            // `default_fallbacks` stand in for groups with no fallbacks of their own.
            (None, FallbackKind::Generic) => s
                .default_fallbacks
                .iter()
                .filter(|g| *g != group)
                .cloned()
                .collect(),
            (None, _) => Vec::new(),
        }
    }
}

/// Which fallback list a failure calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FallbackKind {
    None,
    Generic,
    ContextWindow,
    ContentPolicy,
}

/// Efraimidis–Spirakis: sorting by `-ln(u) / w` ascending is a weighted random permutation;
/// with `u` from a hash instead of a random draw it is weighted rendezvous hashing, so a
/// conversation keeps its deployment, and only the conversations of a deployment that leaves
/// move.
fn weighted_score(u: f64, weight: f64) -> f64 {
    if weight <= 0.0 {
        return f64::INFINITY;
    }
    -u.ln() / weight
}

/// A 64-bit value as a number in (0, 1].
fn unit(x: u64) -> f64 {
    ((x >> 11) as f64 + 1.0) / (1u64 << 53) as f64
}

/// SplitMix64 finaliser over a conversation hash and a deployment index.
fn mix(h: u64, i: u64) -> u64 {
    let mut z = h ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Power of two choices within the first tier: of two deployments drawn at random, the
/// cheaper goes first. Sorting alone would send every request to the single fastest until
/// its estimate rose (a herd); two random choices spread load while still avoiding the slow.
fn power_of_two(keys: &mut [(u32, f64, usize)]) {
    let tier = keys[0].0;
    let n = keys.iter().take_while(|k| k.0 == tier).count();
    if n < 2 {
        return;
    }
    let a = fastrand::usize(..n);
    let mut b = fastrand::usize(..n - 1);
    if b >= a {
        b += 1;
    }
    let first = if keys[a].1 <= keys[b].1 { a } else { b };
    keys[..=first].rotate_right(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(yaml: &str) -> Router {
        let c = dragoman_config::parse(yaml, &|_: &str| None).unwrap();
        Router::new(&c)
    }

    const THREE: &str = "model_list:\n  - model_name: g\n    litellm_params: {model: openai/a, api_key: k}\n  - model_name: g\n    litellm_params: {model: openai/b, api_key: k}\n  - model_name: g\n    litellm_params: {model: openai/c, api_key: k}\n";

    #[test]
    fn weights_shape_the_shuffle() {
        let r = router(
            "model_list:\n  - model_name: g\n    litellm_params: {model: openai/a, weight: 9}\n  - model_name: g\n    litellm_params: {model: openai/b, weight: 1}\n",
        );
        let g = r.group("g").unwrap();
        let first_a = (0..4000)
            .filter(|_| r.rank(&g, None).unwrap().order[0] == 0)
            .count();
        // 90% expected; 4000 draws put 3500..3700 far outside chance.
        assert!((3450..3750).contains(&first_a), "{first_a}");
    }

    #[test]
    fn a_cooling_deployment_goes_last_and_all_cooling_still_serves() {
        let r = router(THREE);
        let g = r.group("g").unwrap();
        r.failed(1, FailClass::RateLimit, None, Duration::ZERO);
        for _ in 0..50 {
            let o = r.rank(&g, None).unwrap().order;
            assert_eq!(o.len(), 3);
            assert_eq!(o[2], 1);
        }
        std::thread::sleep(Duration::from_millis(3));
        r.failed(0, FailClass::RateLimit, None, Duration::ZERO);
        std::thread::sleep(Duration::from_millis(3));
        r.failed(2, FailClass::RateLimit, None, Duration::ZERO);
        // All cooling: least recently failed first (1, then 0, then 2).
        assert_eq!(r.rank(&g, None).unwrap().order, vec![1, 0, 2]);
    }

    #[test]
    fn allowed_fails_are_per_class_and_per_minute() {
        let r = router(&format!(
            "{THREE}router_settings: {{allowed_fails: 2, allowed_fails_policy: {{TimeoutErrorAllowedFails: 0}}}}\n"
        ));
        assert!(!r.failed(0, FailClass::Server, None, Duration::ZERO));
        assert!(!r.failed(0, FailClass::Server, None, Duration::ZERO));
        assert!(!r.is_cooling(0));
        assert!(r.failed(0, FailClass::Server, None, Duration::ZERO));
        assert!(r.is_cooling(0));
        assert!(r.failed(1, FailClass::Timeout, None, Duration::ZERO));
        let off = router(&format!(
            "{THREE}router_settings: {{disable_cooldowns: true}}\n"
        ));
        assert!(!off.failed(0, FailClass::RateLimit, None, Duration::ZERO));
        assert!(!off.is_cooling(0));
    }

    #[test]
    fn limits_leave_a_deployment_out_until_all_are_limited() {
        let r = router(
            "model_list:\n  - model_name: g\n    litellm_params: {model: openai/a, rpm: 2}\n  - model_name: g\n    litellm_params: {model: openai/b, max_parallel_requests: 1}\n",
        );
        let g = r.group("g").unwrap();
        r.begin(0);
        r.begin(0);
        r.end(0);
        r.end(0);
        assert_eq!(
            r.rank(&g, None).unwrap().order,
            vec![1],
            "rpm counts requests begun"
        );
        r.begin(1);
        let e = r.rank(&g, None).unwrap_err();
        assert!(e.retry_after >= Duration::from_secs(1));
        r.end(1);
        assert_eq!(r.rank(&g, None).unwrap().order, vec![1]);
    }

    #[test]
    fn tokens_count_against_tpm() {
        let r = router(
            "model_list:\n  - model_name: g\n    litellm_params: {model: openai/a, tpm: 1000}\n  - model_name: g\n    litellm_params: {model: openai/b}\n",
        );
        let g = r.group("g").unwrap();
        r.settle(0, 999);
        assert_eq!(r.rank(&g, None).unwrap().order.len(), 2);
        r.settle(0, 1);
        assert_eq!(r.rank(&g, None).unwrap().order, vec![1]);
    }

    #[test]
    fn order_tiers_come_first_whatever_the_strategy() {
        for strategy in [
            "simple-shuffle",
            "least-busy",
            "latency-based-routing",
            "usage-based-routing-v2",
        ] {
            let r = router(&format!(
                "model_list:\n  - model_name: g\n    litellm_params: {{model: openai/a, order: 2}}\n  - model_name: g\n    litellm_params: {{model: openai/b, order: 1}}\n  - model_name: g\n    litellm_params: {{model: openai/c}}\nrouter_settings: {{routing_strategy: {strategy}}}\n"
            ));
            let g = r.group("g").unwrap();
            for _ in 0..20 {
                assert_eq!(r.rank(&g, None).unwrap().order, vec![1, 0, 2], "{strategy}");
            }
        }
    }

    #[test]
    fn least_busy_picks_the_idlest() {
        let r = router(&format!(
            "{THREE}router_settings: {{routing_strategy: least-busy}}\n"
        ));
        let g = r.group("g").unwrap();
        for i in [0, 0, 2] {
            r.begin(i);
        }
        for _ in 0..20 {
            assert_eq!(r.rank(&g, None).unwrap().order[0], 1);
        }
    }

    #[test]
    fn latency_routing_avoids_the_slow_without_herding() {
        let r = router(&format!(
            "{THREE}router_settings: {{routing_strategy: latency-based-routing}}\n"
        ));
        let g = r.group("g").unwrap();
        r.succeeded(0, Duration::from_millis(50));
        r.succeeded(1, Duration::from_millis(60));
        r.succeeded(2, Duration::from_millis(900));
        let mut firsts = [0; 3];
        for _ in 0..600 {
            firsts[r.rank(&g, None).unwrap().order[0]] += 1;
        }
        // Two random choices: the slowest is picked only when drawn against... never, since
        // it loses every pairing; the two fast ones share the load.
        assert_eq!(firsts[2], 0, "{firsts:?}");
        assert!(firsts[0] > 250 && firsts[1] > 100, "{firsts:?}");
        // A slow sample counts at once (peak), not after a window of averages.
        r.succeeded(0, Duration::from_secs(2));
        assert!(r.latency_estimate(0) >= 2.0);
    }

    #[test]
    fn sticky_requests_keep_their_deployment_and_move_only_when_it_fails() {
        let r = router(THREE);
        let g = r.group("g").unwrap();
        let mut moved = 0;
        let mut firsts = [0; 3];
        for conv in 0..300u64 {
            let h = mix(conv, 77);
            let a = r.rank(&g, Some(h)).unwrap().order[0];
            for _ in 0..5 {
                assert_eq!(r.rank(&g, Some(h)).unwrap().order[0], a);
            }
            firsts[a] += 1;
            if a == 1 {
                moved += 1;
            }
        }
        assert!(firsts.iter().all(|&n| n > 60), "spread: {firsts:?}");
        // Deployment 1 cools: only its conversations move.
        r.failed(1, FailClass::RateLimit, None, Duration::ZERO);
        let mut changed = 0;
        for conv in 0..300u64 {
            let h = mix(conv, 77);
            let before = [0usize, 2].contains(&r.rank(&g, Some(h)).unwrap().order[0]);
            assert!(before);
            let first_with_all = {
                let mut keys: Vec<(f64, usize)> = (0..3)
                    .map(|i| (weighted_score(unit(mix(h, i as u64)), 1.0), i))
                    .collect();
                keys.sort_by(|a, b| a.0.total_cmp(&b.0));
                keys[0].1
            };
            if first_with_all != r.rank(&g, Some(h)).unwrap().order[0] {
                changed += 1;
            }
        }
        assert_eq!(changed, moved);
    }

    #[test]
    fn aliases_and_wildcards_find_their_group() {
        let r = router(
            "model_list:\n  - model_name: g\n    litellm_params: {model: openai/a}\n  - model_name: \"claude-*\"\n    litellm_params: {model: \"anthropic/claude-*\"}\n  - model_name: \"claude-3-*\"\n    litellm_params: {model: \"anthropic/claude-3-*\"}\nrouter_settings: {model_group_alias: {fast: g, old: {model: claude-3-haiku, hidden: true}}}\n",
        );
        assert_eq!(r.group("fast").unwrap().members, vec![0]);
        assert_eq!(r.group("claude-sonnet-4").unwrap().members, vec![1]);
        assert_eq!(r.group("claude-3-opus").unwrap().members, vec![2]);
        assert_eq!(r.group("old").unwrap().name, "claude-3-haiku");
        assert!(r.is_hidden_alias("old") && !r.is_hidden_alias("fast"));
        assert!(r.group("nope").is_none());
    }

    #[test]
    fn fallbacks_follow_the_failure() {
        let r = router(
            "model_list:\n  - model_name: a\n    litellm_params: {model: openai/a}\nrouter_settings:\n  fallbacks: [{a: [b, c]}]\n  context_window_fallbacks: [{a: [big]}]\n  default_fallbacks: [d]\n",
        );
        assert_eq!(r.fallbacks("a", FallbackKind::Generic), ["b", "c"]);
        assert_eq!(r.fallbacks("a", FallbackKind::ContextWindow), ["big"]);
        assert!(r.fallbacks("a", FallbackKind::ContentPolicy).is_empty());
        assert_eq!(r.fallbacks("x", FallbackKind::Generic), ["d"]);
        assert!(r.fallbacks("d", FallbackKind::Generic).is_empty());
        assert!(r.fallbacks("a", FallbackKind::None).is_empty());
    }
}
