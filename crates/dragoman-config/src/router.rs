//! `router_settings`, and the routing keys LiteLLM also reads from `litellm_settings`: how a
//! model group picks a deployment, retries, cools a failing one down and falls back to other
//! groups. Every key is either honoured, or named in one warning as ignored; a value dragoman
//! cannot honour as written (an unknown strategy) stops the start.

use std::time::Duration;

use serde_json::{Map, Value};

use crate::{ConfigError, boolean, err, object, req_string, seconds, uint};

/// How a group's deployments are ranked (`routing_strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// Weighted random (`weight`, else `rpm`, else `tpm`, else equal).
    #[default]
    SimpleShuffle,
    /// Fewest requests in flight on this instance.
    LeastBusy,
    /// Power of two choices over a peak-EWMA of time to first byte.
    LatencyBased,
    /// Lowest share of its `rpm`/`tpm` used this minute; a deployment at its limit is skipped.
    UsageBased,
}

impl Strategy {
    pub fn name(self) -> &'static str {
        match self {
            Strategy::SimpleShuffle => "simple-shuffle",
            Strategy::LeastBusy => "least-busy",
            Strategy::LatencyBased => "latency-based-routing",
            Strategy::UsageBased => "usage-based-routing-v2",
        }
    }
}

/// The failures a deployment is blamed for: LiteLLM's exception classes that say something
/// about the deployment rather than the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailClass {
    /// 429, or the provider's rate-limit error.
    RateLimit,
    /// No answer in time: connect, first byte or whole body.
    Timeout,
    /// 5xx, 529, overloaded errors, connection failures, unreadable answers.
    Server,
    /// 401/403 from the provider: the gateway's credential for it is wrong, not the client's.
    Authentication,
}

/// A fallback list: when group `from` fails, try these groups in order.
pub type Fallbacks = Vec<(String, Vec<String>)>;

#[derive(Debug, Clone, PartialEq)]
pub struct RouterSettings {
    pub strategy: Strategy,
    /// Retries after the first attempt within one group (LiteLLM `num_retries`).
    pub num_retries: u32,
    /// Per-class overrides of `num_retries` (`retry_policy`).
    pub retry_policy: Vec<(FailClass, u32)>,
    /// Least wait before retrying the same deployment (`retry_after`).
    pub retry_after: Duration,
    /// Longest upstream `retry-after` honoured; a longer one moves on instead of waiting
    /// (`dragoman_settings.max_retry_wait_seconds`).
    pub max_retry_wait: Duration,
    /// Failures per minute a deployment may have before it cools down (`allowed_fails`).
    pub allowed_fails: u32,
    /// Per-class overrides of `allowed_fails` (`allowed_fails_policy`).
    pub allowed_fails_policy: Vec<(FailClass, u32)>,
    pub cooldown_time: Duration,
    pub disable_cooldowns: bool,
    pub fallbacks: Fallbacks,
    pub context_window_fallbacks: Fallbacks,
    pub content_policy_fallbacks: Fallbacks,
    /// Groups tried when a group with no fallbacks of its own fails.
    pub default_fallbacks: Vec<String>,
    /// `model_group_alias`: (alias, group, hidden from `/v1/models`).
    pub aliases: Vec<(String, String, bool)>,
    /// Bound on a whole request, all attempts together (`router_settings.timeout`); without
    /// it, the first deployment's own timeout.
    pub timeout: Option<Duration>,
    /// Keep one conversation on one deployment (`dragoman_settings.sticky_sessions`).
    pub sticky: bool,
    /// `general_settings.background_health_checks` with `health_check_interval`.
    pub health_check_interval: Option<Duration>,
}

impl Default for RouterSettings {
    fn default() -> Self {
        RouterSettings {
            strategy: Strategy::SimpleShuffle,
            // LiteLLM's Router defaults to 0; a group with a healthy deployment should use it.
            num_retries: 2,
            retry_policy: Vec::new(),
            retry_after: Duration::ZERO,
            max_retry_wait: Duration::from_secs(5),
            allowed_fails: 3,
            allowed_fails_policy: Vec::new(),
            cooldown_time: Duration::from_secs(5),
            disable_cooldowns: false,
            fallbacks: Vec::new(),
            context_window_fallbacks: Vec::new(),
            content_policy_fallbacks: Vec::new(),
            default_fallbacks: Vec::new(),
            aliases: Vec::new(),
            timeout: None,
            sticky: true,
            health_check_interval: None,
        }
    }
}

impl RouterSettings {
    /// Retries allowed after a failure of `class`.
    pub fn retries_for(&self, class: FailClass) -> u32 {
        lookup(&self.retry_policy, class).unwrap_or(self.num_retries)
    }

    /// Failures of `class` per minute before a cooldown.
    pub fn allowed_fails_for(&self, class: FailClass) -> u32 {
        lookup(&self.allowed_fails_policy, class).unwrap_or(self.allowed_fails)
    }
}

fn lookup(v: &[(FailClass, u32)], class: FailClass) -> Option<u32> {
    v.iter().find(|(c, _)| *c == class).map(|(_, n)| *n)
}

/// LiteLLM's exception-class prefixes in `retry_policy` and `allowed_fails_policy`.
fn class_of(key: &str, suffix: &str) -> Option<Result<FailClass, &'static str>> {
    let name = key.strip_suffix(suffix)?;
    Some(match name {
        "RateLimitError" => Ok(FailClass::RateLimit),
        "TimeoutError" => Ok(FailClass::Timeout),
        "InternalServerError" => Ok(FailClass::Server),
        "AuthenticationError" => Ok(FailClass::Authentication),
        "BadRequestError" | "ContentPolicyViolationError" => Err(
            "is ignored: a request the provider refused as invalid fails the same way everywhere, so it is never retried and never counts against a deployment",
        ),
        _ => Err("is not a known exception class and is ignored"),
    })
}

/// One key of `router_settings` or `litellm_settings`; false when it is not a routing key.
pub(crate) fn key(
    r: &mut RouterSettings,
    k: &str,
    v: &Value,
    path: &str,
    warnings: &mut Vec<String>,
) -> Result<bool, ConfigError> {
    match k {
        "routing_strategy" => {
            r.strategy = match req_string(v, path)?.as_str() {
                "simple-shuffle" => Strategy::SimpleShuffle,
                "least-busy" => Strategy::LeastBusy,
                "latency-based-routing" => Strategy::LatencyBased,
                "usage-based-routing-v2" => Strategy::UsageBased,
                "usage-based-routing" => {
                    warnings.push(format!(
                        "{path}: usage-based-routing is served as usage-based-routing-v2 (LiteLLM's successor)"
                    ));
                    Strategy::UsageBased
                }
                "cost-based-routing" | "lar1" => {
                    warnings.push(format!(
                        "{path}: `{}` is not supported yet; using simple-shuffle",
                        req_string(v, path)?
                    ));
                    Strategy::SimpleShuffle
                }
                other => {
                    return Err(err(
                        path,
                        format!(
                            "unknown routing strategy `{other}` (simple-shuffle, least-busy, latency-based-routing, usage-based-routing-v2)"
                        ),
                    ));
                }
            }
        }
        "num_retries" => r.num_retries = small(v, path)?,
        "retry_after" => r.retry_after = seconds_or_zero(v, path)?,
        "allowed_fails" => r.allowed_fails = small(v, path)?,
        "cooldown_time" => r.cooldown_time = seconds_or_zero(v, path)?,
        "disable_cooldowns" => r.disable_cooldowns = boolean(v, path)?,
        "timeout" | "request_timeout" => r.timeout = Some(seconds(v, path)?),
        "retry_policy" | "allowed_fails_policy" => {
            let suffix = if k == "retry_policy" {
                "Retries"
            } else {
                "AllowedFails"
            };
            let mut out = Vec::new();
            for (pk, pv) in object(v, path)? {
                let pp = format!("{path}.{pk}");
                match class_of(pk, suffix) {
                    Some(Ok(class)) => out.push((class, small(pv, &pp)?)),
                    Some(Err(why)) => warnings.push(format!("{pp} {why}")),
                    None => warnings.push(format!("{pp} is not a known key and is ignored")),
                }
            }
            if k == "retry_policy" {
                r.retry_policy = out;
            } else {
                r.allowed_fails_policy = out;
            }
        }
        "fallbacks" => r.fallbacks = fallbacks(v, path)?,
        "context_window_fallbacks" => r.context_window_fallbacks = fallbacks(v, path)?,
        "content_policy_fallbacks" => r.content_policy_fallbacks = fallbacks(v, path)?,
        "default_fallbacks" => r.default_fallbacks = names(v, path)?,
        "model_group_alias" => {
            r.aliases.clear();
            for (alias, target) in object(v, path)? {
                let ap = format!("{path}.{alias}");
                let (group, hidden) = match target {
                    Value::Object(m) => (
                        match m.get("model") {
                            Some(g) => req_string(g, &format!("{ap}.model"))?,
                            None => return Err(err(format!("{ap}.model"), "required")),
                        },
                        match m.get("hidden") {
                            Some(h) => boolean(h, &format!("{ap}.hidden"))?,
                            None => false,
                        },
                    ),
                    other => (req_string(other, &ap)?, false),
                };
                r.aliases.push((alias.clone(), group, hidden));
            }
        }
        _ => return Ok(false),
    }
    Ok(true)
}

fn small(v: &Value, path: &str) -> Result<u32, ConfigError> {
    u32::try_from(uint(v, path)?).map_err(|_| err(path, "too large"))
}

fn seconds_or_zero(v: &Value, path: &str) -> Result<Duration, ConfigError> {
    match v {
        Value::Number(n) if n.as_f64() == Some(0.0) => Ok(Duration::ZERO),
        _ => seconds(v, path),
    }
}

fn names(v: &Value, path: &str) -> Result<Vec<String>, ConfigError> {
    match v {
        Value::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, x)| req_string(x, &format!("{path}[{i}]")))
            .collect(),
        Value::String(s) => Ok(vec![s.clone()]),
        _ => Err(err(path, "expected a list of model names")),
    }
}

/// LiteLLM writes fallbacks as a list of one-key maps (`[{gpt-4o: [gpt-4o-mini]}]`); a plain
/// map is read the same way.
fn fallbacks(v: &Value, path: &str) -> Result<Fallbacks, ConfigError> {
    let mut out = Vec::new();
    let mut add = |m: &Map<String, Value>, p: &str| -> Result<(), ConfigError> {
        for (from, to) in m {
            out.push((from.clone(), names(to, &format!("{p}.{from}"))?));
        }
        Ok(())
    };
    match v {
        Value::Array(list) => {
            for (i, item) in list.iter().enumerate() {
                let p = format!("{path}[{i}]");
                add(object(item, &p)?, &p)?;
            }
        }
        Value::Object(m) => add(m, path)?,
        Value::Null => {}
        _ => return Err(err(path, "expected a list of {group: [fallback groups]}")),
    }
    Ok(out)
}
