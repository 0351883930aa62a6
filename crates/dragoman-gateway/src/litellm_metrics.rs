//! LiteLLM's Prometheus series under LiteLLM's names and labels, so the Grafana dashboards
//! teams already run keep working after the switch: requests, spend and tokens per key, team,
//! user and model; the proxy's totals and failures by status; each deployment's successes,
//! failures and state; latency and time to first token.
//!
//! On when the config lists the `prometheus` callback (as LiteLLM's own are); `dragoman_*`
//! series are always there. Off by default because these labels name keys, teams and users:
//! their number grows with the tenancy, where `dragoman_*` labels are bounded by the config,
//! and counting them costs a label hash per request.

use dragoman_accounting::{Outcome, UsageRecord};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Who spent: LiteLLM's labels of its per-key series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Spender {
    end_user: String,
    hashed_api_key: String,
    api_key_alias: String,
    model: String,
    team: String,
    team_alias: String,
    user: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProxyRequest {
    end_user: String,
    hashed_api_key: String,
    api_key_alias: String,
    requested_model: String,
    team: String,
    team_alias: String,
    user: String,
    status_code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Deployment {
    litellm_model_name: String,
    model_id: String,
    api_base: String,
    api_provider: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KeyBudget {
    hashed_api_key: String,
    api_key_alias: String,
}

/// LiteLLM's per-model label set for a key's rate limits; `model` is empty for the key's own
/// `rpm_limit` / `tpm_limit` (LiteLLM falls back to those when a model has none).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KeyModel {
    hashed_api_key: String,
    api_key_alias: String,
    model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TeamBudget {
    team: String,
    team_alias: String,
}

type Dollars = Gauge<f64, std::sync::atomic::AtomicU64>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Latency {
    model: String,
    hashed_api_key: String,
    api_key_alias: String,
    team: String,
    team_alias: String,
}

pub struct LiteLlmMetrics {
    requests: Family<Spender, Counter>,
    spend: Family<Spender, Counter<f64, std::sync::atomic::AtomicU64>>,
    total_tokens: Family<Spender, Counter>,
    input_tokens: Family<Spender, Counter>,
    output_tokens: Family<Spender, Counter>,
    proxy_total: Family<ProxyRequest, Counter>,
    proxy_failed: Family<ProxyRequest, Counter>,
    deployment_success: Family<Deployment, Counter>,
    deployment_failure: Family<Deployment, Counter>,
    deployment_total: Family<Deployment, Counter>,
    deployment_state: Family<Deployment, Gauge>,
    latency: Family<Latency, Histogram>,
    ttft: Family<Latency, Histogram>,
    key_remaining: Family<KeyBudget, Dollars>,
    key_max: Family<KeyBudget, Dollars>,
    team_remaining: Family<TeamBudget, Dollars>,
    team_max: Family<TeamBudget, Dollars>,
    key_requests_left: Family<KeyModel, Gauge>,
    key_tokens_left: Family<KeyModel, Gauge>,
}

fn seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 16))
}

impl LiteLlmMetrics {
    pub fn new(registry: &mut Registry) -> LiteLlmMetrics {
        let m = LiteLlmMetrics {
            requests: Family::default(),
            spend: Family::default(),
            total_tokens: Family::default(),
            input_tokens: Family::default(),
            output_tokens: Family::default(),
            proxy_total: Family::default(),
            proxy_failed: Family::default(),
            deployment_success: Family::default(),
            deployment_failure: Family::default(),
            deployment_total: Family::default(),
            deployment_state: Family::default(),
            latency: Family::new_with_constructor(seconds),
            ttft: Family::new_with_constructor(seconds),
            key_remaining: Family::default(),
            key_max: Family::default(),
            team_remaining: Family::default(),
            team_max: Family::default(),
            key_requests_left: Family::default(),
            key_tokens_left: Family::default(),
        };
        registry.register(
            "litellm_remaining_api_key_requests_for_model",
            "Requests a key may still make this minute (model empty: the key's own rpm_limit)",
            m.key_requests_left.clone(),
        );
        registry.register(
            "litellm_remaining_api_key_tokens_for_model",
            "Tokens a key may still use this minute (model empty: the key's own tpm_limit)",
            m.key_tokens_left.clone(),
        );
        registry.register(
            "litellm_remaining_api_key_budget_metric",
            "A key's budget left this period, USD",
            m.key_remaining.clone(),
        );
        registry.register(
            "litellm_api_key_max_budget_metric",
            "A key's budget per period, USD",
            m.key_max.clone(),
        );
        registry.register(
            "litellm_remaining_team_budget_metric",
            "A team's budget left this period, USD",
            m.team_remaining.clone(),
        );
        registry.register(
            "litellm_team_max_budget_metric",
            "A team's budget per period, USD",
            m.team_max.clone(),
        );
        registry.register(
            "litellm_requests_metric",
            "Total number of LLM calls, per key, team, user and model",
            m.requests.clone(),
        );
        registry.register(
            "litellm_spend_metric",
            "Total spend in USD, per key, team, user and model",
            m.spend.clone(),
        );
        registry.register(
            "litellm_total_tokens",
            "Input and output tokens, per key, team, user and model",
            m.total_tokens.clone(),
        );
        registry.register(
            "litellm_input_tokens",
            "Input tokens (cached included), per key, team, user and model",
            m.input_tokens.clone(),
        );
        registry.register(
            "litellm_output_tokens",
            "Output tokens, per key, team, user and model",
            m.output_tokens.clone(),
        );
        registry.register(
            "litellm_proxy_total_requests_metric",
            "Requests the proxy answered, by status",
            m.proxy_total.clone(),
        );
        registry.register(
            "litellm_proxy_failed_requests_metric",
            "Requests the proxy answered with an error",
            m.proxy_failed.clone(),
        );
        registry.register(
            "litellm_deployment_success_responses",
            "Successful calls to a deployment",
            m.deployment_success.clone(),
        );
        registry.register(
            "litellm_deployment_failure_responses",
            "Failed calls to a deployment",
            m.deployment_failure.clone(),
        );
        registry.register(
            "litellm_deployment_total_requests",
            "Calls to a deployment",
            m.deployment_total.clone(),
        );
        registry.register(
            "litellm_deployment_state",
            "A deployment's state: 0 healthy, 2 cooling down (out of rotation)",
            m.deployment_state.clone(),
        );
        registry.register(
            "litellm_request_total_latency_metric",
            "Whole request latency in seconds",
            m.latency.clone(),
        );
        registry.register(
            "litellm_llm_api_time_to_first_token_metric",
            "Time to the first token in seconds",
            m.ttft.clone(),
        );
        m
    }

    /// Counts one finished request.
    pub fn observe(&self, r: &UsageRecord, team_alias: Option<&str>) {
        let o = &r.owner;
        let team_alias = team_alias.unwrap_or_default().to_owned();
        let s = |v: &Option<String>| v.clone().unwrap_or_default();
        let who = Spender {
            end_user: s(&o.end_user),
            hashed_api_key: s(&o.api_key),
            api_key_alias: s(&o.key_alias),
            model: r.model.clone(),
            team: s(&o.team_id),
            team_alias: team_alias.clone(),
            user: s(&o.user_id),
        };
        let proxy = ProxyRequest {
            end_user: who.end_user.clone(),
            hashed_api_key: who.hashed_api_key.clone(),
            api_key_alias: who.api_key_alias.clone(),
            requested_model: r.model.clone(),
            team: who.team.clone(),
            team_alias: team_alias.clone(),
            user: who.user.clone(),
            status_code: r.status.to_string(),
        };
        self.proxy_total.get_or_create(&proxy).inc();
        if r.outcome != Outcome::Ok {
            self.proxy_failed.get_or_create(&proxy).inc();
        }
        let lat = Latency {
            model: r.model.clone(),
            hashed_api_key: who.hashed_api_key.clone(),
            api_key_alias: who.api_key_alias.clone(),
            team: who.team.clone(),
            team_alias: team_alias.clone(),
        };
        self.latency
            .get_or_create(&lat)
            .observe(r.latency_ms as f64 / 1000.0);
        if let Some(t) = r.ttft_ms {
            self.ttft.get_or_create(&lat).observe(t as f64 / 1000.0);
        }
        if r.outcome != Outcome::Ok {
            return;
        }
        self.requests.get_or_create(&who).inc();
        if let Some(c) = r.cost_nanos.filter(|c| *c > 0) {
            self.spend.get_or_create(&who).inc_by(c as f64 / 1e9);
        }
        let input = r.usage.input_total().unwrap_or(0);
        let output = r.usage.output.unwrap_or(0);
        self.input_tokens.get_or_create(&who).inc_by(input);
        self.output_tokens.get_or_create(&who).inc_by(output);
        self.total_tokens.get_or_create(&who).inc_by(input + output);
    }

    fn deployment(d: &dragoman_config::Deployment) -> Deployment {
        Deployment {
            litellm_model_name: format!("{}/{}", d.provider.name(), d.upstream_model),
            model_id: d.id.clone(),
            api_base: d.api_base.clone(),
            api_provider: d.provider.name().to_owned(),
        }
    }

    /// Counts one upstream attempt on `d`.
    pub fn attempt(&self, d: &dragoman_config::Deployment, ok: bool) {
        let l = Self::deployment(d);
        self.deployment_total.get_or_create(&l).inc();
        if ok {
            self.deployment_success.get_or_create(&l).inc();
        } else {
            self.deployment_failure.get_or_create(&l).inc();
        }
    }

    /// Samples each key's and team's budget and what is left of it, and what is left of each
    /// key's rate limits this minute, at scrape time (a deleted key's series go with it).
    pub fn sample_budgets(&self, tenancy: &crate::tenancy::Tenancy, now_ms: i64) {
        let dir = tenancy.directory();
        self.key_remaining.clear();
        self.key_max.clear();
        self.team_remaining.clear();
        self.team_max.clear();
        self.key_requests_left.clear();
        self.key_tokens_left.clear();
        let usd = |n: i64| n as f64 / 1e9;
        for k in dir.keys.values() {
            let alias = k.doc.key_alias.clone().unwrap_or_default();
            let limits = &k.doc.limits;
            let mut windows = vec![(String::new(), k.caps, k.meter.clone())];
            let groups = limits
                .model_rpm_limit
                .keys()
                .chain(limits.model_tpm_limit.keys());
            for g in groups.collect::<std::collections::BTreeSet<_>>() {
                if let Some(c) = limits.model_caps(g, k.caps.anchor_ms) {
                    let meter = tenancy.model_meter(crate::tenancy::KEY, &k.doc.key_id, g);
                    windows.push((g.clone(), c, meter));
                }
            }
            for (model, caps, meter) in windows {
                let room = meter.headroom(&caps, now_ms);
                let l = KeyModel {
                    hashed_api_key: k.doc.key_id.clone(),
                    api_key_alias: alias.clone(),
                    model,
                };
                if let Some((_, left, _)) = room.requests {
                    self.key_requests_left
                        .get_or_create(&l)
                        .set(i64::try_from(left).unwrap_or(i64::MAX));
                }
                if let Some((_, left, _)) = room.tokens {
                    self.key_tokens_left
                        .get_or_create(&l)
                        .set(i64::try_from(left).unwrap_or(i64::MAX));
                }
            }
            let Some(budget) = k.caps.budget else {
                continue;
            };
            let (spent, _) = k.meter.spend(&k.caps, now_ms);
            let l = KeyBudget {
                // The same value as the per-request series (the usage record's key): the
                // key's lasting id, so a regenerated key keeps its series.
                hashed_api_key: k.doc.key_id.clone(),
                api_key_alias: alias,
            };
            self.key_max.get_or_create(&l).set(usd(budget));
            self.key_remaining
                .get_or_create(&l)
                .set(usd(budget.saturating_sub(spent)));
        }
        for (id, t) in &dir.teams {
            let Some(budget) = t.caps.budget else {
                continue;
            };
            let (spent, _) = t.meter.spend(&t.caps, now_ms);
            let l = TeamBudget {
                team: id.clone(),
                team_alias: t.doc.team_alias.clone().unwrap_or_default(),
            };
            self.team_max.get_or_create(&l).set(usd(budget));
            self.team_remaining
                .get_or_create(&l)
                .set(usd(budget.saturating_sub(spent)));
        }
    }

    /// Samples each deployment's state from the router, at scrape time.
    pub fn sample(
        &self,
        deployments: &[dragoman_config::Deployment],
        router: &crate::router::Router,
    ) {
        for (i, d) in deployments.iter().enumerate() {
            self.deployment_state
                .get_or_create(&Self::deployment(d))
                .set(if router.is_cooling(i) { 2 } else { 0 });
        }
    }
}
