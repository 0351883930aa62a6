//! The usage record: one per request, written exactly once, whatever the request's end.

use dragoman_model::{Dialect, Usage};
use serde::{Deserialize, Serialize};

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    /// The upstream answered with an error status or an in-stream error.
    UpstreamError,
    /// The client went away before the end.
    ClientCancelled,
    /// The upstream did not answer or went silent past its timeout.
    Timeout,
    /// dragoman refused or failed the request itself (auth, bad input, no route, malformed
    /// upstream answer).
    GatewayError,
    /// Cut off by shutdown: still running when the grace period ended.
    Shutdown,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::UpstreamError => "upstream_error",
            Outcome::ClientCancelled => "client_cancelled",
            Outcome::Timeout => "timeout",
            Outcome::GatewayError => "gateway_error",
            Outcome::Shutdown => "shutdown",
        }
    }

    pub fn parse(s: &str) -> Option<Outcome> {
        Some(match s {
            "ok" => Outcome::Ok,
            "upstream_error" => Outcome::UpstreamError,
            "client_cancelled" => Outcome::ClientCancelled,
            "timeout" => Outcome::Timeout,
            "gateway_error" => Outcome::GatewayError,
            "shutdown" => Outcome::Shutdown,
            _ => return None,
        })
    }
}

/// One request's accounting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageRecord {
    pub request_id: String,
    /// Start time, Unix milliseconds.
    pub started_at_ms: i64,
    /// Who called: a key id, `master`, or `open` when no master key is configured.
    pub principal: String,
    pub client_dialect: Dialect,
    /// `None` when the request failed before a deployment was chosen.
    pub upstream_dialect: Option<Dialect>,
    /// The model name the client asked for (the model group).
    pub model: String,
    pub deployment: Option<String>,
    pub provider_model: Option<String>,
    pub stream: bool,
    pub outcome: Outcome,
    /// The HTTP status the client received (200 for a stream that failed after its start).
    pub status: u16,
    pub latency_ms: u64,
    /// Time to the first byte of the answer (streams and whole responses alike).
    pub ttft_ms: Option<u64>,
    pub usage: Usage,
    /// True when the upstream never reported usage and `usage.output` was estimated locally.
    pub usage_estimated: bool,
    /// Cost in nano-dollars (1e-9 USD); `None` when the model's price is unknown.
    pub cost_nanos: Option<i64>,
    /// Upstream attempts made (0: refused before any).
    pub attempts: u32,
    /// Each attempt as `deployment:outcome`, in order, comma-separated; the last answered
    /// or failed last.
    pub attempted: Option<String>,
    /// Whose request it was: the virtual key (by its hash), its team and user, and the end
    /// user the request named.
    #[serde(default)]
    pub owner: Owner,
    /// Answered from the response cache: no provider was called, and it cost nothing.
    #[serde(default)]
    pub cache_hit: bool,
    /// What a cache hit saved: the cost of the answer when it was made.
    #[serde(default)]
    pub saved_cost_nanos: Option<i64>,
    /// What translation dropped or approximated (`kind: path: why`, one per line), when anything.
    #[serde(default)]
    pub dropped: Option<String>,
}

/// The tenancy a request is charged to. Never the key itself: `api_key` is its SHA-256 in
/// hex, the same value the key API calls `token`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub api_key: Option<String>,
    pub key_alias: Option<String>,
    pub team_id: Option<String>,
    pub user_id: Option<String>,
    /// OpenAI's `user` field or Anthropic's `metadata.user_id`: the caller's own end user.
    pub end_user: Option<String>,
}
