//! Prometheus metrics: requests, tokens, cost, latency, time to first token, upstream errors,
//! in-flight work and the usage writer's backlog.
//!
//! Labels are bounded by construction: dialects and outcomes are closed sets, and `model` is
//! always a configured model group (a wildcard group's pattern, never the name a client typed)
//! or `unrouted`.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use dragoman_accounting::{Outcome, UsageRecord};
use dragoman_model::Dialect;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub client_dialect: &'static str,
    pub upstream_dialect: &'static str,
    pub model: String,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    pub model: String,
    pub bucket: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelLabels {
    pub model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LatencyLabels {
    pub client_dialect: &'static str,
    pub model: String,
    pub stream: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AttemptLabels {
    pub deployment: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeploymentLabels {
    pub deployment: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub model: String,
    pub kind: &'static str,
}

const TOKEN_BUCKETS: [&str; 5] = [
    "input_uncached",
    "cache_read",
    "cache_write",
    "output",
    "reasoning",
];

const DIALECTS: usize = Dialect::ALL.len();

fn dialect_index(d: Dialect) -> usize {
    match d {
        Dialect::Anthropic => 0,
        Dialect::Chat => 1,
        Dialect::Responses => 2,
        Dialect::Gemini => 3,
        Dialect::Bedrock => 4,
    }
}

fn outcome_index(o: Outcome) -> usize {
    match o {
        Outcome::Ok => 0,
        Outcome::UpstreamError => 1,
        Outcome::ClientCancelled => 2,
        Outcome::Timeout => 3,
        Outcome::GatewayError => 4,
        Outcome::Shutdown => 5,
    }
}

/// One model group's series handles, each resolved from its family on first use (so
/// `/metrics` still lists only series that counted something). A handle shares its atomics
/// with the family's series.
#[derive(Default)]
pub struct GroupSeries {
    model: String,
    /// client dialect × upstream dialect (or none) × outcome.
    requests: [[[OnceLock<Counter>; 6]; DIALECTS + 1]; DIALECTS],
    tokens: [OnceLock<Counter>; 5],
    cost: OnceLock<Counter>,
    unpriced: OnceLock<Counter>,
    /// client dialect × streamed.
    latency: [[OnceLock<Histogram>; 2]; DIALECTS],
    ttft: [[OnceLock<Histogram>; 2]; DIALECTS],
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    tokens: Family<TokenLabels, Counter>,
    cost: Family<ModelLabels, Counter>,
    unpriced: Family<ModelLabels, Counter>,
    latency: Family<LatencyLabels, Histogram>,
    ttft: Family<LatencyLabels, Histogram>,
    upstream_errors: Family<ErrorLabels, Counter>,
    attempts: Family<AttemptLabels, Counter>,
    cooling: Family<DeploymentLabels, Gauge>,
    deployment_latency: Family<DeploymentLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    deployment_in_flight: Family<DeploymentLabels, Gauge>,
    pub in_flight_requests: Gauge,
    pub in_flight_streams: Gauge,
    writer_backlog: Gauge,
    writer_dropped: Counter,
    writer_dropped_seen: AtomicU64,
    redis_up: Gauge,
    limit_fallbacks: Gauge,
    redis_pending: Gauge,
    /// LiteLLM's names, when the config asks for them (the `prometheus` callback).
    litellm: Option<crate::litellm_metrics::LiteLlmMetrics>,
}

fn latency_buckets() -> Histogram {
    // 0.5 ms … ~8 min, doubling: gateway overhead and model latency both land in range.
    Histogram::new(exponential_buckets(0.0005, 2.0, 20))
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let tokens = Family::<TokenLabels, Counter>::default();
        let cost = Family::<ModelLabels, Counter>::default();
        let unpriced = Family::<ModelLabels, Counter>::default();
        let latency = Family::<LatencyLabels, Histogram>::new_with_constructor(
            latency_buckets as fn() -> Histogram,
        );
        let ttft = Family::<LatencyLabels, Histogram>::new_with_constructor(
            latency_buckets as fn() -> Histogram,
        );
        let upstream_errors = Family::<ErrorLabels, Counter>::default();
        let in_flight_requests = Gauge::default();
        let in_flight_streams = Gauge::default();
        let writer_backlog = Gauge::default();
        let writer_dropped = Counter::default();
        let attempts = Family::<AttemptLabels, Counter>::default();
        let cooling = Family::<DeploymentLabels, Gauge>::default();
        let deployment_latency =
            Family::<DeploymentLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        let deployment_in_flight = Family::<DeploymentLabels, Gauge>::default();
        registry.register(
            "dragoman_upstream_attempts",
            "Upstream attempts by deployment and outcome (ok, an HTTP status, timeout)",
            attempts.clone(),
        );
        registry.register(
            "dragoman_deployment_cooling",
            "1 while the deployment is cooling down after failures",
            cooling.clone(),
        );
        registry.register(
            "dragoman_deployment_latency_estimate_seconds",
            "The router's peak-EWMA estimate of the deployment's time to first byte",
            deployment_latency.clone(),
        );
        registry.register(
            "dragoman_deployment_in_flight",
            "Requests in flight on the deployment (this instance)",
            deployment_in_flight.clone(),
        );
        registry.register(
            "dragoman_requests",
            "Requests by client dialect, upstream dialect, model group and outcome",
            requests.clone(),
        );
        registry.register(
            "dragoman_tokens",
            "Tokens by model group and usage bucket",
            tokens.clone(),
        );
        registry.register(
            "dragoman_cost_nanodollars",
            "Cost in nano-dollars (1e-9 USD) by model group",
            cost.clone(),
        );
        registry.register(
            "dragoman_unpriced_requests",
            "Requests whose model has no known price",
            unpriced.clone(),
        );
        registry.register(
            "dragoman_request_duration_seconds",
            "Request latency, to the last byte",
            latency.clone(),
        );
        registry.register(
            "dragoman_time_to_first_token_seconds",
            "Time to the first byte of the answer",
            ttft.clone(),
        );
        registry.register(
            "dragoman_upstream_errors",
            "Upstream failures by model group and kind",
            upstream_errors.clone(),
        );
        registry.register(
            "dragoman_in_flight_requests",
            "Requests being handled",
            in_flight_requests.clone(),
        );
        registry.register(
            "dragoman_in_flight_streams",
            "Streams being pumped",
            in_flight_streams.clone(),
        );
        registry.register(
            "dragoman_usage_writer_backlog",
            "Usage records waiting to be written",
            writer_backlog.clone(),
        );
        registry.register(
            "dragoman_usage_records_dropped",
            "Usage records dropped because the writer buffer was full",
            writer_dropped.clone(),
        );
        let redis_up = Gauge::default();
        let limit_fallbacks = Gauge::default();
        let redis_pending = Gauge::default();
        registry.register(
            "dragoman_redis_up",
            "1 while the shared limiter (Redis) answers, 0 while each instance decides on its share alone",
            redis_up.clone(),
        );
        registry.register(
            "dragoman_limit_local_decisions",
            "Admissions decided locally because Redis was unreachable, since start",
            limit_fallbacks.clone(),
        );
        registry.register(
            "dragoman_redis_pending_settlements",
            "Settlements waiting for Redis to return",
            redis_pending.clone(),
        );
        Metrics {
            litellm: None,
            redis_up,
            limit_fallbacks,
            redis_pending,
            registry,
            requests,
            tokens,
            cost,
            unpriced,
            latency,
            ttft,
            upstream_errors,
            attempts,
            cooling,
            deployment_latency,
            deployment_in_flight,
            in_flight_requests,
            in_flight_streams,
            writer_backlog,
            writer_dropped,
            writer_dropped_seen: AtomicU64::new(0),
        }
    }

    /// The series of one model group (`model` is its bounded label). Callers keep it: its
    /// handles are resolved once, so counting a request touches atomics only, with no label
    /// hashing or family lock on the request path.
    pub fn group(&self, model: &str) -> GroupSeries {
        GroupSeries {
            model: model.to_owned(),
            ..GroupSeries::default()
        }
    }

    /// Counts one finished request of group `g`.
    pub fn observe(&self, rec: &UsageRecord, team_alias: Option<&str>, g: &GroupSeries) {
        if let Some(l) = &self.litellm {
            l.observe(rec, team_alias);
        }
        let model = g.model.as_str();
        let upstream = rec.upstream_dialect.map(dialect_index).unwrap_or(DIALECTS);
        g.requests[dialect_index(rec.client_dialect)][upstream][outcome_index(rec.outcome)]
            .get_or_init(|| {
                self.requests
                    .get_or_create(&RequestLabels {
                        client_dialect: rec.client_dialect.as_str(),
                        upstream_dialect: rec.upstream_dialect.map_or("none", |d| d.as_str()),
                        model: model.to_owned(),
                        outcome: rec.outcome.as_str(),
                    })
                    .clone()
            })
            .inc();
        let u = &rec.usage;
        for (i, v) in [
            u.input_uncached,
            u.cache_read,
            u.cache_write,
            u.output,
            u.reasoning,
        ]
        .into_iter()
        .enumerate()
        {
            if let Some(v) = v.filter(|v| *v > 0) {
                g.tokens[i]
                    .get_or_init(|| {
                        self.tokens
                            .get_or_create(&TokenLabels {
                                model: model.to_owned(),
                                bucket: TOKEN_BUCKETS[i],
                            })
                            .clone()
                    })
                    .inc_by(v);
            }
        }
        match rec.cost_nanos {
            Some(c) if c > 0 => {
                g.cost
                    .get_or_init(|| {
                        self.cost
                            .get_or_create(&ModelLabels {
                                model: model.to_owned(),
                            })
                            .clone()
                    })
                    .inc_by(c as u64);
            }
            Some(_) => {}
            None => {
                if rec.outcome == Outcome::Ok {
                    g.unpriced
                        .get_or_init(|| {
                            self.unpriced
                                .get_or_create(&ModelLabels {
                                    model: model.to_owned(),
                                })
                                .clone()
                        })
                        .inc();
                }
            }
        }
        let (c, st) = (dialect_index(rec.client_dialect), usize::from(rec.stream));
        let labels = || LatencyLabels {
            client_dialect: rec.client_dialect.as_str(),
            model: model.to_owned(),
            stream: if rec.stream { "true" } else { "false" },
        };
        g.latency[c][st]
            .get_or_init(|| self.latency.get_or_create(&labels()).clone())
            .observe(rec.latency_ms as f64 / 1000.0);
        if let Some(t) = rec.ttft_ms {
            g.ttft[c][st]
                .get_or_init(|| self.ttft.get_or_create(&labels()).clone())
                .observe(t as f64 / 1000.0);
        }
        if matches!(rec.outcome, Outcome::UpstreamError | Outcome::Timeout) {
            let kind = match (rec.outcome, rec.status) {
                (Outcome::Timeout, _) => "timeout",
                (_, 429) => "rate_limited",
                (_, 529 | 503) => "overloaded",
                (_, s) if s >= 500 => "server",
                (_, 200) => "in_stream",
                _ => "rejected",
            };
            self.upstream_errors
                .get_or_create(&ErrorLabels {
                    model: model.to_owned(),
                    kind,
                })
                .inc();
        }
    }

    /// Counts one upstream attempt. Labels are bounded: configured deployment ids, and
    /// statuses or `ok`/`timeout`/`error`.
    pub fn attempt(&self, deployment: &str, outcome: &str) {
        self.attempts
            .get_or_create(&AttemptLabels {
                deployment: deployment.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// Samples the router's view of each deployment into its gauges.
    pub fn sample_router(&self, router: &crate::router::Router) {
        for i in 0..router.len() {
            let l = DeploymentLabels {
                deployment: router.id(i).to_owned(),
            };
            self.cooling
                .get_or_create(&l)
                .set(i64::from(router.is_cooling(i)));
            self.deployment_latency
                .get_or_create(&l)
                .set(router.latency_estimate(i));
            self.deployment_in_flight
                .get_or_create(&l)
                .set(i64::from(router.in_flight(i)));
        }
    }

    /// The shared limiter's state, sampled at scrape time.
    pub fn sample_shared(&self, shared: &crate::tenancy::shared::Shared) {
        self.redis_up.set(i64::from(shared.is_up()));
        self.limit_fallbacks
            .set(shared.fallbacks.load(Ordering::Relaxed) as i64);
        self.redis_pending.set(shared.pending() as i64);
    }

    /// Adds LiteLLM's series (see `litellm_metrics`).
    pub fn enable_litellm(&mut self) {
        self.litellm = Some(crate::litellm_metrics::LiteLlmMetrics::new(
            &mut self.registry,
        ));
    }

    /// Counts an upstream attempt in LiteLLM's deployment series, when they are on.
    pub fn litellm_attempt(&self, d: &dragoman_config::Deployment, ok: bool) {
        if let Some(l) = &self.litellm {
            l.attempt(d, ok);
        }
    }

    /// Samples LiteLLM's deployment states, when they are on.
    pub fn sample_litellm(
        &self,
        deployments: &[dragoman_config::Deployment],
        router: &crate::router::Router,
    ) {
        if let Some(l) = &self.litellm {
            l.sample(deployments, router);
        }
    }

    /// Samples LiteLLM's budget gauges, when they are on.
    pub fn sample_litellm_budgets(&self, tenancy: &crate::tenancy::Tenancy, now_ms: i64) {
        if let Some(l) = &self.litellm {
            l.sample_budgets(tenancy, now_ms);
        }
    }

    pub fn register_counter(&mut self, name: &str, help: &str, c: Counter) {
        self.registry.register(name, help, c);
    }

    /// The text exposition, with the writer's state sampled now.
    pub fn render(&self, writer: Option<&dragoman_store::WriterStats>) -> String {
        if let Some(s) = writer {
            self.writer_backlog.set(s.backlog as i64);
            let seen = self.writer_dropped_seen.swap(s.dropped, Ordering::Relaxed);
            if s.dropped > seen {
                self.writer_dropped.inc_by(s.dropped - seen);
            }
        }
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
