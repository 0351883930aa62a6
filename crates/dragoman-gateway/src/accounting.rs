//! Per-request accounting: a [`Tracker`] is created when a request arrives and leaves exactly
//! one usage record however the request ends — answered, refused, failed upstream, timed out,
//! or abandoned by the client (the tracker's `Drop` records that last case, so no early return
//! or dropped future can skip it). Records go to the metrics at once and to the store through
//! the non-blocking writer.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use dragoman_accounting::{Outcome, UsageRecord};
use dragoman_model::{Dialect, ErrorKind, Usage};
use dragoman_translate::Observed;

use crate::Gateway;

pub struct Tracker {
    gw: Arc<Gateway>,
    rec: UsageRecord,
    started: Instant,
    /// The deployment index, for its price.
    deployment: Option<usize>,
    /// A local prompt count, used when the upstream never reported input usage.
    pub input_estimate: Option<u64>,
    done: bool,
    /// The deployment this request holds in flight on the router: begun by `attempt`, ended
    /// by the next attempt or by the finish, whichever comes first.
    leased: Option<usize>,
    /// `deployment:outcome` of each attempt that failed, comma-separated.
    attempted: String,
    /// The policy stage's claims on the caller's meters, settled at the finish.
    admission: Option<crate::policy::Admission>,
    /// The current attempt's slot in its deployment's shared limits (Redis).
    global: Option<GlobalLease>,
    /// The request's trace and its attempts' spans, when traces are exported or the client
    /// sent a `traceparent`.
    trace: Option<Box<Trace>>,
    /// What the request failed with, for the exit's log line and span.
    error: Option<String>,
    /// `gen_ai.operation.name`.
    operation: &'static str,
    finish_reason: Option<&'static str>,
    /// The answer's id and model as the upstream named them, for the span.
    response: (Option<String>, Option<String>),
    /// The caller's team's alias, for the span and LiteLLM's series.
    team_alias: Option<String>,
    /// The conversation itself, kept only for a sampled span when the operator opted in.
    content: Option<Box<crate::telemetry::Captured>>,
    /// A whole answer as sent, for a sampled span to read (see `keep_answer`).
    answer_body: Option<bytes::Bytes>,
}

struct Trace {
    ids: crate::telemetry::TraceIds,
    attempts: Vec<crate::telemetry::AttemptSpan>,
}

/// The GenAI conventions' finish reason.
pub(crate) fn finish_reason(s: &dragoman_model::StopReason) -> &'static str {
    use dragoman_model::StopReason as S;
    match s {
        S::EndTurn | S::StopSequence { .. } | S::PauseTurn => "stop",
        S::MaxTokens | S::ContextWindowExceeded => "length",
        S::ToolUse => "tool_call",
        S::Refusal { .. } | S::ContentFilter => "content_filter",
    }
}

/// A slot in a deployment's limits held across instances, for one attempt.
pub struct GlobalLease {
    pub shared: Arc<crate::tenancy::shared::Shared>,
    pub rid: String,
    pub base: String,
}

impl GlobalLease {
    fn end(self, tokens: u64) {
        self.shared
            .settle(self.rid, vec![(self.base, 0, 0)], 0, tokens);
    }
}

impl Tracker {
    pub fn new(gw: Arc<Gateway>, request_id: &str, client: Dialect) -> Tracker {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let principal = if gw.config.master_key.is_some() {
            "anonymous"
        } else {
            "open"
        };
        Tracker {
            gw,
            rec: UsageRecord {
                request_id: request_id.to_owned(),
                started_at_ms: now_ms,
                principal: principal.to_owned(),
                client_dialect: client,
                upstream_dialect: None,
                model: String::new(),
                deployment: None,
                provider_model: None,
                stream: false,
                outcome: Outcome::GatewayError,
                status: 0,
                latency_ms: 0,
                ttft_ms: None,
                usage: Usage::default(),
                usage_estimated: false,
                cost_nanos: None,
                attempts: 0,
                attempted: None,
                owner: dragoman_accounting::Owner::default(),
                cache_hit: false,
                saved_cost_nanos: None,
                dropped: None,
            },
            started: Instant::now(),
            deployment: None,
            input_estimate: None,
            done: false,
            leased: None,
            attempted: String::new(),
            admission: None,
            global: None,
            trace: None,
            error: None,
            operation: "chat",
            finish_reason: None,
            response: (None, None),
            team_alias: None,
            content: None,
            answer_body: None,
        }
    }

    /// Joins the client's trace (its `traceparent`), or starts one when traces are exported.
    pub fn traced(&mut self, headers: &http::HeaderMap) {
        if self.gw.telemetry.traces() || headers.contains_key(crate::telemetry::TRACEPARENT) {
            self.trace = Some(Box::new(Trace {
                ids: crate::telemetry::TraceIds::sampled_by(headers, self.gw.telemetry.settings()),
                attempts: Vec::new(),
            }));
        }
    }

    /// `gen_ai.operation.name` of this request (`chat` unless said).
    pub fn operation(&mut self, op: &'static str) {
        self.operation = op;
    }

    /// The `traceparent` the current attempt sends upstream: its own span as the parent.
    pub fn traceparent(&self) -> Option<http::HeaderValue> {
        let t = self.trace.as_ref()?;
        // Without trace export no span of ours exists: the client's own parent goes on, so
        // the upstream's span joins the client's tree.
        let span = match (self.gw.telemetry.traces(), t.ids.parent) {
            (false, Some(p)) => p,
            _ => t.attempts.last().map_or(t.ids.span_id, |a| a.span_id),
        };
        Some(t.ids.traceparent(&span))
    }

    /// The client's `tracestate`, passed upstream with the `traceparent`.
    pub fn tracestate(&self) -> Option<http::HeaderValue> {
        self.trace.as_ref()?.ids.state.clone()
    }

    /// What the request failed with (for the log line and the span; never a secret: error
    /// messages are the gateway's or the upstream's own).
    pub fn error_message(&mut self, m: &str) {
        self.error = Some(m.to_owned());
    }

    /// What translation dropped or approximated.
    pub fn losses(&mut self, l: &dragoman_model::Losses) {
        if !l.is_empty() {
            self.rec.dropped = Some(
                l.iter()
                    .map(|x| x.to_string())
                    .collect::<Vec<_>>()
                    .join("\n"),
            );
        }
    }

    /// Whether this request's span is exported; what only a span shows is worth reading then.
    pub fn sampled(&self) -> bool {
        self.gw.telemetry.traces() && self.trace.as_ref().is_some_and(|t| t.ids.sampled)
    }

    /// Keeps the client's body for the span, when message content is captured.
    pub fn capture_request(&mut self, body: &bytes::Bytes) {
        if self.gw.telemetry.settings().capture_content && self.sampled() {
            self.content = Some(Box::new(crate::telemetry::Captured {
                request: body.clone(),
                streamed: None,
            }));
        }
    }

    /// Whether the answer should be kept for the span.
    pub fn wants_content(&self) -> bool {
        self.content.is_some()
    }

    /// A stream's collected answer, for message content.
    pub fn capture_stream(&mut self, answer: &dragoman_model::Response) {
        if let Some(c) = &mut self.content {
            c.streamed = Some(Box::new(answer.clone()));
        }
    }

    /// A whole answer as the client got it, for the span: `unread` when the request path
    /// passed it through without decoding (its id and stop reason are read by the exporter).
    /// Only a sampled request keeps it; a refcount, not a copy.
    pub fn keep_answer(&mut self, body: &bytes::Bytes, unread: bool) {
        if (unread && self.sampled()) || self.content.is_some() {
            self.answer_body = Some(body.clone());
        }
    }

    /// How a translated whole answer ended, and what it was called.
    pub fn answer(&mut self, r: &dragoman_model::Response) {
        self.finish_reason = Some(finish_reason(&r.stop));
        if self.trace.is_some() {
            self.response = (Some(r.id.clone()), Some(r.model.clone()));
        }
    }

    fn end_attempt(&mut self, outcome: &str) {
        if let Some(t) = &mut self.trace
            && let Some(a) = t.attempts.last_mut()
            && a.end_ns == 0
        {
            a.end_ns = crate::telemetry::now_ns();
            a.outcome = outcome.to_owned();
        }
    }

    /// The caller's label, once authenticated.
    pub fn principal(&self) -> &str {
        &self.rec.principal
    }

    pub fn started(&self) -> Instant {
        self.started
    }

    pub fn authenticated(&mut self, principal: &crate::principal::Principal) {
        self.rec.principal = principal.label().to_owned();
        if let crate::principal::Principal::Key(c) = principal {
            let o = &mut self.rec.owner;
            o.api_key = Some(c.key.doc.key_id.clone());
            o.key_alias = c.key.doc.key_alias.clone();
            o.team_id = c.key.doc.team_id.clone();
            o.user_id = c.key.doc.user_id.clone();
            self.team_alias = c.team.as_ref().and_then(|t| t.doc.team_alias.clone());
        }
    }

    /// The call is answered by another pass through the gateway's path (a compaction asks
    /// its deployment through it), which leaves the usage record: this one leaves none.
    pub fn hand_off(mut self) {
        self.done = true;
    }

    pub fn requested(&mut self, model: &str, stream: bool, end_user: Option<&str>) {
        self.rec.model = model.to_owned();
        self.rec.stream = stream;
        self.rec.owner.end_user = end_user.map(str::to_owned);
    }

    /// The request holds these claims on its caller's meters until it ends.
    pub fn admitted(&mut self, admission: crate::policy::Admission) {
        self.admission = Some(admission);
    }

    pub fn admission(&self) -> Option<&crate::policy::Admission> {
        self.admission.as_ref()
    }

    /// An attempt on deployment `idx` begins: it is counted in flight there until it fails
    /// or the request ends.
    pub fn attempt(&mut self, idx: usize, upstream_model: &str) {
        self.release();
        self.gw.router.begin(idx);
        self.leased = Some(idx);
        self.rec.attempts += 1;
        let d = &self.gw.config.deployments[idx];
        self.rec.upstream_dialect = Some(d.dialect);
        self.rec.deployment = Some(d.id.clone());
        self.rec.provider_model = Some(upstream_model.to_owned());
        self.deployment = Some(idx);
        if let Some(t) = &mut self.trace {
            t.attempts.push(crate::telemetry::AttemptSpan {
                span_id: fastrand::u64(1..).to_be_bytes(),
                deployment: idx,
                model: upstream_model.to_owned(),
                start_ns: crate::telemetry::now_ns(),
                end_ns: 0,
                outcome: String::new(),
            });
        }
    }

    /// The current attempt failed with `outcome` (a status, `timeout`, `connect`, …).
    pub fn attempt_failed(&mut self, outcome: &str) {
        if let Some(idx) = self.leased {
            self.note(idx, outcome);
        }
        self.end_attempt(outcome);
        self.release();
    }

    fn note(&mut self, idx: usize, outcome: &str) {
        if !self.attempted.is_empty() {
            self.attempted.push(',');
        }
        self.attempted.push_str(&self.gw.config.deployments[idx].id);
        self.attempted.push(':');
        self.attempted.push_str(outcome);
    }

    /// The attempt just begun holds this slot of its deployment's shared limits.
    pub fn lease_globally(&mut self, lease: Option<GlobalLease>) {
        self.global = lease;
    }

    fn release(&mut self) {
        if let Some(g) = self.global.take() {
            g.end(0);
        }
        if let Some(idx) = self.leased.take() {
            self.gw.router.end(idx);
        }
    }

    /// Ends a request that failed before any answer body was sent.
    pub fn failed(mut self, kind: ErrorKind, status: u16, upstream: bool) {
        let outcome = if kind == ErrorKind::Timeout {
            Outcome::Timeout
        } else if upstream {
            Outcome::UpstreamError
        } else {
            Outcome::GatewayError
        };
        self.finish(outcome, status, Usage::default(), false);
    }

    /// Ends a whole (non-streamed) answer; returns its cost for the response header.
    pub fn answered(mut self, status: u16, usage: Usage) -> Option<i64> {
        self.rec.ttft_ms = Some(self.started.elapsed().as_millis() as u64);
        self.finish(Outcome::Ok, status, usage, false)
    }

    /// Ends a request answered from the response cache: no provider was called, it cost
    /// nothing, and `saved` is what the answer cost when it was made.
    pub fn cache_hit(mut self, stream: bool, saved: Option<i64>) {
        self.rec.ttft_ms = Some(self.started.elapsed().as_millis() as u64);
        self.rec.stream = stream;
        self.rec.cache_hit = true;
        self.rec.saved_cost_nanos = saved;
        // No deployment was called, so `finish` prices nothing: the cost stays this zero.
        self.rec.cost_nanos = Some(0);
        self.finish(Outcome::Ok, 200, Usage::default(), false);
    }

    /// Ends a stream from what passed through it. `None` means the client went away first.
    pub fn streamed(
        mut self,
        observed: &Observed,
        ttft_ms: Option<u64>,
        client_gone: bool,
    ) -> Option<i64> {
        self.rec.ttft_ms = ttft_ms;
        self.finish_reason = observed.stop.as_ref().map(finish_reason);
        if self.trace.is_some() {
            self.response = (
                observed.response_id.clone(),
                observed.response_model.clone(),
            );
        }
        if let Some(e) = &observed.error {
            self.error = Some(e.message.clone());
        }
        let mut usage = observed.usage;
        let mut estimated = false;
        if usage.output.is_none() {
            // The upstream never said: estimate from what it sent, about four characters a token.
            usage.output = Some(observed.output_chars.div_ceil(4));
            estimated = true;
        }
        if usage.input_total().is_none()
            && let Some(e) = self.input_estimate
        {
            usage.input_uncached = Some(e);
            estimated = true;
        }
        let outcome = if client_gone && self.gw.is_cut_off() {
            Outcome::Shutdown
        } else if client_gone {
            Outcome::ClientCancelled
        } else if observed.success == Some(true) {
            Outcome::Ok
        } else if observed
            .error
            .as_ref()
            .is_some_and(|e| e.kind == ErrorKind::Timeout)
        {
            Outcome::Timeout
        } else {
            Outcome::UpstreamError
        };
        self.finish(outcome, 200, usage, estimated)
    }

    /// Records the request once; returns its cost.
    fn finish(
        &mut self,
        outcome: Outcome,
        status: u16,
        usage: Usage,
        estimated: bool,
    ) -> Option<i64> {
        if self.done {
            return self.rec.cost_nanos;
        }
        self.done = true;
        if let Some(idx) = self.leased {
            self.note(idx, outcome.as_str());
            let tokens = usage.input_total().unwrap_or(0) + usage.output.unwrap_or(0);
            self.gw.router.settle(idx, tokens);
            if let Some(g) = self.global.take() {
                g.end(tokens);
            }
        }
        self.release();
        if !self.attempted.is_empty() {
            self.rec.attempted = Some(std::mem::take(&mut self.attempted));
        }
        self.rec.outcome = outcome;
        self.rec.status = status;
        self.rec.latency_ms = self.started.elapsed().as_millis() as u64;
        self.rec.usage = usage;
        self.rec.usage_estimated = estimated;
        if let (Some(idx), Some(model)) = (self.deployment, self.rec.provider_model.as_deref()) {
            self.rec.cost_nanos = self.gw.cost(idx, model, &usage);
        }
        if let Some(a) = &mut self.admission {
            let tokens = usage.input_total().unwrap_or(0) + usage.output.unwrap_or(0);
            a.settle(self.rec.cost_nanos, tokens);
        }
        self.gw.metrics.observe(
            &self.rec,
            self.team_alias.as_deref(),
            self.gw.group_series(self.deployment),
        );
        let attempt_outcome = if outcome == Outcome::Ok {
            "ok"
        } else {
            outcome.as_str()
        };
        self.end_attempt(attempt_outcome);
        crate::telemetry::log_exit(&self.rec, self.error.as_deref());
        if self.gw.telemetry.active()
            && self
                .gw
                .telemetry
                .wants(self.trace.as_deref().map(|t| &t.ids))
        {
            let trace = match self.trace.take() {
                Some(t) => *t,
                None => Trace {
                    ids: crate::telemetry::TraceIds::from_headers(&http::HeaderMap::new()),
                    attempts: Vec::new(),
                },
            };
            self.gw.telemetry.send(crate::telemetry::Finished {
                rec: self.rec.clone(),
                deployment: self.deployment,
                trace: trace.ids,
                attempts: trace.attempts,
                end_ns: crate::telemetry::now_ns(),
                operation: self.operation,
                error: self.error.take(),
                dropped: self.rec.dropped.clone(),
                finish_reason: self.finish_reason,
                response_id: self.response.0.take(),
                response_model: self.response.1.take(),
                team_alias: self.team_alias.take(),
                answer_body: self.answer_body.take(),
                content: self.content.take(),
            });
        }
        let cost = self.rec.cost_nanos;
        if let Some(w) = &self.gw.writer {
            // The tracker is done with its record: it moves to the writer, strings and all.
            let r = &mut self.rec;
            // Fields are taken in order, before the base copies what is left (no strings).
            w.record(UsageRecord {
                request_id: std::mem::take(&mut r.request_id),
                principal: std::mem::take(&mut r.principal),
                model: std::mem::take(&mut r.model),
                deployment: r.deployment.take(),
                provider_model: r.provider_model.take(),
                attempted: r.attempted.take(),
                owner: std::mem::take(&mut r.owner),
                dropped: r.dropped.take(),
                ..r.clone()
            });
        }
        cost
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        if !self.done {
            // The handler future was dropped before an answer: the client went away.
            let usage = Usage {
                input_uncached: self.input_estimate,
                ..Usage::default()
            };
            let estimated = self.input_estimate.is_some();
            let outcome = if self.gw.is_cut_off() {
                Outcome::Shutdown
            } else {
                Outcome::ClientCancelled
            };
            self.finish(outcome, 499, usage, estimated);
        }
    }
}

/// Nano-dollars as a decimal dollar string, exactly (no float): 1234567 → `0.001234567`.
pub fn usd(nanos: i64) -> String {
    let sign = if nanos < 0 { "-" } else { "" };
    let n = nanos.unsigned_abs();
    format!("{sign}{}.{:09}", n / 1_000_000_000, n % 1_000_000_000)
}

#[cfg(test)]
mod tests {
    use super::usd;

    #[test]
    fn usd_is_exact() {
        for (n, want) in [
            (0, "0.000000000"),
            (1, "0.000000001"),
            (1_234_567, "0.001234567"),
            (999_999_999, "0.999999999"),
            (1_000_000_000, "1.000000000"),
            (12_345_000_000_123, "12345.000000123"),
            (-1_500_000_000, "-1.500000000"),
            (i64::MIN, "-9223372036.854775808"),
            (i64::MAX, "9223372036.854775807"),
        ] {
            assert_eq!(usd(n), want);
        }
    }
}
