//! The policy stage, between authentication and routing: whether this principal may make
//! this request at all. The master key and an open gateway may use every model; a virtual key
//! must be allowed the model by itself, its team and its user, and each of them (and the key's
//! per-model limits) must have room in its rpm, tpm, parallel and budget meters.
//!
//! Admission counts the request at once (its minute, its slot, its worst-case cost reserved);
//! the [`Admission`] rides with the request to its one exit, where it is settled to the real
//! cost and tokens. Nothing here awaits: the meters are in memory.

use std::sync::Arc;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use dragoman_model::{ErrorKind, RateLimitHeaders};

use crate::errors::GatewayError;
use crate::principal::Principal;
use crate::tenancy::docs::allows;
use crate::tenancy::meter::{Caps, Headroom, Meter, Refusal};
use crate::tenancy::shared::{Part, Shared, Verdict};
use crate::tenancy::{KEY, Tenancy, now_ms, period_start};

/// What the policy stage needs to know about a request.
pub struct Ask<'a> {
    /// The model group, aliases resolved.
    pub group: &'a str,
    /// The request's worst-case cost in nano-dollars, asked for only when a budget applies.
    pub worst_cost: &'a (dyn Fn() -> i64 + Sync),
    /// The request's id: its entry in the shared limiter's windows.
    pub request_id: &'a str,
    /// Whether the request counts against limits and budgets. Token counting does not: it
    /// costs nothing upstream, and Claude Code counts before many turns, so counting it would
    /// spend a developer's rpm on bookkeeping.
    pub metered: bool,
}

struct Charge {
    meter: Arc<Meter>,
    caps: Caps,
    reserved: i64,
    /// Whether the meter holds the request's admission time (it has an rpm).
    counted: bool,
    /// What was left once the request was admitted (globally, when Redis decided).
    room: Headroom,
}

/// The shared limiter's part in an admission: settled there too (or later, if it is away).
struct Global {
    shared: Arc<Shared>,
    rid: String,
    /// (key prefix, period start, spend counter's time to live) per charge.
    parts: Vec<(String, i64, i64)>,
}

/// An admitted request's claims on its meters. Settled at the request's exit; dropped
/// unsettled (refused further on), it gives them back.
pub struct Admission {
    charges: Vec<Charge>,
    global: Option<Global>,
    at_ms: i64,
    settled: bool,
}

impl Admission {
    /// The master key and an open gateway: nothing is metered.
    pub fn free() -> Admission {
        Admission {
            charges: Vec::new(),
            global: None,
            at_ms: 0,
            settled: true,
        }
    }

    /// Ends the request: reservations become the real cost; tokens count against the minute.
    pub fn settle(&mut self, cost: Option<i64>, tokens: u64) {
        if self.settled {
            return;
        }
        self.settled = true;
        let now = now_ms();
        for c in &self.charges {
            c.meter.settle(&c.caps, now, c.reserved, cost, tokens);
        }
        if let Some(g) = self.global.take() {
            g.shared
                .settle(g.rid, g.parts, cost.unwrap_or(0).max(0), tokens);
        }
    }

    /// The tightest headroom of the metered entities, and the key's spend and budget.
    fn headroom(&self) -> Option<Headroom> {
        let mut out = self.charges.first()?.room;
        for c in &self.charges[1..] {
            let h = c.room;
            let tighter = |a: Option<(u64, u64, i64)>, b: Option<(u64, u64, i64)>| match (a, b) {
                (Some(a), Some(b)) => Some(if b.1 < a.1 { b } else { a }),
                (a, b) => a.or(b),
            };
            out.requests = tighter(out.requests, h.requests);
            out.tokens = tighter(out.tokens, h.tokens);
        }
        Some(out)
    }

    /// The rate-limit and spend headers a client can act on, in its own family's names, plus
    /// LiteLLM's `x-litellm-key-*`.
    pub fn write_headers(&self, style: RateLimitHeaders, headers: &mut HeaderMap) {
        let Some(h) = self.headroom() else {
            return;
        };
        let now = now_ms();
        for (i, hr) in [h.requests, h.tokens].into_iter().enumerate() {
            let Some((limit, remaining, reset_at)) = hr else {
                continue;
            };
            let [limit_name, remaining_name, reset_name] = match style {
                RateLimitHeaders::OpenAi => OPENAI_NAMES[i].clone(),
                RateLimitHeaders::Anthropic => ANTHROPIC_NAMES[i].clone(),
            };
            headers.insert(limit_name, HeaderValue::from(limit));
            headers.insert(remaining_name, HeaderValue::from(remaining));
            let reset = match style {
                RateLimitHeaders::OpenAi => go_duration(reset_at - now),
                RateLimitHeaders::Anthropic => crate::time::iso(reset_at).replace(".000Z", "Z"),
            };
            if let Ok(v) = HeaderValue::try_from(reset) {
                headers.insert(reset_name, v);
            }
            headers.insert(LITELLM_REMAINING[i].clone(), HeaderValue::from(remaining));
        }
        if let Ok(v) = HeaderValue::try_from(dollars(h.spent)) {
            headers.insert(KEY_SPEND, v);
        }
        if let Some(b) = h.budget
            && let Ok(v) = HeaderValue::try_from(dollars(b))
        {
            headers.insert(KEY_MAX_BUDGET, v);
        }
    }
}

const fn name(s: &'static str) -> HeaderName {
    HeaderName::from_static(s)
}

/// Limit, remaining and reset, for requests then tokens.
const OPENAI_NAMES: [[HeaderName; 3]; 2] = [
    [
        name("x-ratelimit-limit-requests"),
        name("x-ratelimit-remaining-requests"),
        name("x-ratelimit-reset-requests"),
    ],
    [
        name("x-ratelimit-limit-tokens"),
        name("x-ratelimit-remaining-tokens"),
        name("x-ratelimit-reset-tokens"),
    ],
];
const ANTHROPIC_NAMES: [[HeaderName; 3]; 2] = [
    [
        name("anthropic-ratelimit-requests-limit"),
        name("anthropic-ratelimit-requests-remaining"),
        name("anthropic-ratelimit-requests-reset"),
    ],
    [
        name("anthropic-ratelimit-tokens-limit"),
        name("anthropic-ratelimit-tokens-remaining"),
        name("anthropic-ratelimit-tokens-reset"),
    ],
];
const LITELLM_REMAINING: [HeaderName; 2] = [
    name("x-litellm-key-remaining-requests"),
    name("x-litellm-key-remaining-tokens"),
];
const KEY_SPEND: HeaderName = name("x-litellm-key-spend");
const KEY_MAX_BUDGET: HeaderName = name("x-litellm-key-max-budget");

impl Drop for Admission {
    fn drop(&mut self) {
        if !self.settled {
            for c in &self.charges {
                c.meter.cancel(self.at_ms, c.reserved, c.counted);
            }
            if let Some(g) = self.global.take() {
                g.shared.settle(g.rid, g.parts, 0, 0);
            }
        }
    }
}

/// Dollars as LiteLLM's headers show them, without trailing zeros: 1.5, 0.001354, 2.
fn dollars(nanos: i64) -> String {
    let sign = if nanos < 0 { "-" } else { "" };
    let n = nanos.unsigned_abs();
    let (whole, mut frac, mut digits) = (n / 1_000_000_000, n % 1_000_000_000, 9);
    if frac == 0 {
        return format!("{sign}{whole}");
    }
    while frac % 10 == 0 {
        frac /= 10;
        digits -= 1;
    }
    format!("{sign}{whole}.{frac:0digits$}")
}

/// Milliseconds as OpenAI writes a reset: `1m30s`, `12s`, `250ms`.
fn go_duration(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let s = (ms + 999) / 1000;
    if s < 60 {
        format!("{s}s")
    } else {
        format!("{}m{}s", s / 60, s % 60)
    }
}

/// One meter a request is charged to.
struct Plan {
    who: &'static str,
    meter: Arc<Meter>,
    caps: Caps,
    /// The shared limiter's key prefix for it.
    base: Option<String>,
}

/// Admits or refuses a request before any deployment is chosen. With Redis, one round trip
/// decides for every instance; without it (or while it is away), this instance's meters do.
pub async fn admit(
    tenancy: &Tenancy,
    principal: &Principal,
    ask: &Ask<'_>,
) -> Result<Admission, GatewayError> {
    let caller = match principal {
        Principal::Open | Principal::Master => return Ok(Admission::free()),
        Principal::Key(c) => c,
    };
    let key = &caller.key;
    let lists: [(&str, &[String]); 3] = [
        ("key", &key.doc.models),
        (
            "team",
            caller.team.as_ref().map_or(&[][..], |t| &t.doc.models),
        ),
        (
            "user",
            caller.user.as_ref().map_or(&[][..], |u| &u.doc.models),
        ),
    ];
    for (who, models) in lists {
        if !allows(models, ask.group) {
            return Err(GatewayError::client(
                ErrorKind::Permission,
                format!(
                    "this {who} may not use model `{}` (allowed: {})",
                    ask.group,
                    models.join(", ")
                ),
            )
            .with_status(403));
        }
    }
    if !ask.metered {
        return Ok(Admission::free());
    }
    let shared = tenancy.shared();
    let base = |kind: &str, id: &str| shared.map(|s| s.base(kind, id));
    let mut plans = Vec::with_capacity(4);
    plans.push(Plan {
        who: "key",
        meter: key.meter.clone(),
        caps: key.caps,
        base: base("k", &key.doc.key_id),
    });
    if let Some(caps) = key.doc.limits.model_caps(ask.group, key.caps.anchor_ms) {
        plans.push(Plan {
            who: "key's model",
            meter: tenancy.model_meter(KEY, &key.doc.key_id, ask.group),
            caps,
            base: base("km", &format!("{}:{}", key.doc.key_id, ask.group)),
        });
    }
    if let Some(t) = &caller.team {
        plans.push(Plan {
            who: "team",
            meter: t.meter.clone(),
            caps: t.caps,
            base: base("t", &t.doc.team_id),
        });
    }
    if let Some(u) = &caller.user {
        plans.push(Plan {
            who: "user",
            meter: u.meter.clone(),
            caps: u.caps,
            base: base("u", &u.doc.user_id),
        });
    }
    if let Some(soft) = key.doc.limits.soft_budget.map(crate::tenancy::docs::nanos)
        && key.meter.crossed_soft(&key.caps, now_ms(), soft)
    {
        tracing::warn!(key = %caller.label_for("key"), soft_budget = %dollars(soft), "a key has reached its soft budget");
    }
    let reserve = if plans.iter().any(|p| p.caps.budget.is_some()) {
        (ask.worst_cost)().max(0)
    } else {
        0
    };
    let reserve_for = |caps: &Caps| if caps.budget.is_some() { reserve } else { 0 };
    let now = now_ms();
    // Only meters that limit something are shared; the others count spend, which the records
    // already hold for every instance.
    let limited: Vec<usize> = (0..plans.len())
        .filter(|&i| plans[i].caps.limits_anything())
        .collect();
    let shared = shared.filter(|_| !limited.is_empty());
    let global = |shared: &Arc<Shared>, plans: &[Plan]| Global {
        shared: shared.clone(),
        rid: ask.request_id.to_owned(),
        parts: limited
            .iter()
            .map(|&i| &plans[i])
            .map(|p| {
                let ttl = p
                    .caps
                    .period_ms
                    .filter(|d| *d > 0)
                    .map_or(0, |d| d + 86_400_000);
                (
                    p.base.clone().unwrap_or_default(),
                    period_start(&p.caps, now),
                    ttl,
                )
            })
            .collect(),
    };
    if let Some(shared) = shared
        && shared.is_up()
    {
        let parts: Vec<Part> = limited
            .iter()
            .map(|&i| &plans[i])
            .map(|p| Part {
                base: p.base.clone().unwrap_or_default(),
                caps: p.caps,
                reserve: reserve_for(&p.caps),
                seed: p.meter.spend(&p.caps, now).0,
                period_start: period_start(&p.caps, now),
            })
            .collect();
        match shared.admit(ask.request_id, &parts, now).await {
            Ok(Verdict::Admitted(seen)) => {
                let g = global(shared, &plans);
                let mut seen = seen.into_iter();
                let charges = plans
                    .into_iter()
                    .enumerate()
                    .map(|(i, p)| {
                        let reserved = reserve_for(&p.caps);
                        let seen = if limited.contains(&i) {
                            seen.next()
                        } else {
                            None
                        };
                        let room = p
                            .meter
                            .record(&p.caps, now, reserved, seen.map(|s| s.spent));
                        Charge {
                            counted: p.caps.rpm.is_some(),
                            room: seen.map_or(room, |s| s.room(&p.caps, now)),
                            meter: p.meter,
                            caps: p.caps,
                            reserved,
                        }
                    })
                    .collect();
                return Ok(Admission {
                    charges,
                    global: Some(g),
                    at_ms: now,
                    settled: false,
                });
            }
            Ok(Verdict::Refused(i, what, value, limit)) => {
                let Some(p) = limited.get(i).and_then(|&i| plans.get(i)) else {
                    return Err(GatewayError::gateway(
                        ErrorKind::Server,
                        "the shared limiter answered for a meter it was not asked about",
                    ));
                };
                let r = match what {
                    4 => Refusal::Budget {
                        budget: limit,
                        spent: value,
                        resets_at_ms: p
                            .caps
                            .period_ms
                            .filter(|d| *d > 0)
                            .map(|d| period_start(&p.caps, now) + d),
                    },
                    _ => Refusal::Limit {
                        what: match what {
                            1 => "requests per minute",
                            2 => "tokens per minute",
                            _ => "parallel requests",
                        },
                        limit: limit.max(0) as u64,
                        retry_after_ms: value.max(1),
                    },
                };
                return Err(refusal(p.who, caller.label_for(p.who), r, ask.group));
            }
            // Unreachable or too slow: decided below, alone.
            Err(_) => {}
        }
    }
    // Alone: this instance's meters, each limit shared with the other live instances when
    // the limits are meant to be global.
    let mut admission = Admission {
        charges: Vec::with_capacity(plans.len()),
        global: shared.map(|s| global(s, &plans)),
        at_ms: now,
        settled: false,
    };
    let n = shared.map_or(1, |s| {
        s.fallbacks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        s.instances()
    });
    for p in plans {
        let reserved = reserve_for(&p.caps);
        let caps = if n > 1 {
            p.caps.share(n, p.meter.spend(&p.caps, now).0)
        } else {
            p.caps
        };
        match p.meter.admit(&caps, now, reserved) {
            // Dropping the admission gives back what the earlier meters took.
            Err(r) => return Err(refusal(p.who, caller.label_for(p.who), r, ask.group)),
            Ok(room) => admission.charges.push(Charge {
                meter: p.meter,
                counted: caps.rpm.is_some(),
                caps: p.caps,
                reserved,
                room,
            }),
        }
    }
    Ok(admission)
}

fn refusal(who: &str, name: &str, r: Refusal, group: &str) -> GatewayError {
    match r {
        Refusal::Limit {
            what,
            limit,
            retry_after_ms,
        } => {
            let secs = ((retry_after_ms + 999) / 1000).max(1);
            let mut e = GatewayError::gateway(
                ErrorKind::RateLimited,
                format!(
                    "rate limit reached for {who} `{name}`: {limit} {what}{}; retry in {secs} s",
                    if who.contains("model") {
                        format!(" on `{group}`")
                    } else {
                        String::new()
                    }
                ),
            )
            .with_status(429);
            if let Ok(v) = HeaderValue::try_from(secs.to_string()) {
                e.headers.insert(http::header::RETRY_AFTER, v);
            }
            e
        }
        Refusal::Budget {
            budget,
            spent,
            resets_at_ms,
        } => {
            let when = match resets_at_ms {
                Some(at) => format!("it resets at {}", crate::time::iso(at)),
                None => "it does not reset (no budget_duration)".to_owned(),
            };
            let mut e = GatewayError::client(
                ErrorKind::Billing,
                format!(
                    "Budget has been exceeded for {who} `{name}`: spent ${} of its ${} budget{}; {when}",
                    dollars(spent),
                    dollars(budget),
                    if who.contains("model") { format!(" on `{group}`") } else { String::new() }
                ),
            )
            .with_status(400);
            e.body.type_name = Some("budget_exceeded".to_owned());
            e.body.code = Some("budget_exceeded".to_owned());
            e
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollars_drop_trailing_zeros_only() {
        assert_eq!(dollars(0), "0");
        assert_eq!(dollars(2_000_000_000), "2");
        assert_eq!(dollars(1_500_000_000), "1.5");
        assert_eq!(dollars(1_354_000), "0.001354");
        assert_eq!(dollars(1_000_000_001), "1.000000001");
        assert_eq!(dollars(-50_000_000), "-0.05");
    }

    #[test]
    fn resets_read_as_openai_writes_them() {
        assert_eq!(go_duration(250), "250ms");
        assert_eq!(go_duration(1000), "1s");
        assert_eq!(go_duration(59_001), "1m0s");
        assert_eq!(go_duration(90_000), "1m30s");
    }
}
