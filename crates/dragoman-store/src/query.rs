//! The shapes of the spend API's questions and answers, kept apart from SQL so the HTTP layer
//! can parse and serialise them without touching the database code.

use serde::{Deserialize, Serialize};

/// Which records `Store::logs` returns. Time bounds are Unix milliseconds: `since_ms`
/// inclusive, `until_ms` exclusive, so adjacent windows never count a record twice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LogQuery {
    /// At most this many records (default 100; capped at 1000; 0 or less returns none).
    pub limit: i64,
    pub model: Option<String>,
    pub principal: Option<String>,
    /// A virtual key's hash (the key API's `token`).
    pub api_key: Option<String>,
    pub team_id: Option<String>,
    pub user_id: Option<String>,
    pub end_user: Option<String>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
}

impl LogQuery {
    pub const DEFAULT_LIMIT: i64 = 100;
    /// Bounds the memory and time one API call can demand.
    pub const MAX_LIMIT: i64 = 1000;

    /// The limit actually applied.
    pub fn effective_limit(&self) -> i64 {
        self.limit.clamp(0, Self::MAX_LIMIT)
    }
}

impl Default for LogQuery {
    fn default() -> Self {
        LogQuery {
            limit: Self::DEFAULT_LIMIT,
            model: None,
            principal: None,
            api_key: None,
            team_id: None,
            user_id: None,
            end_user: None,
            since_ms: None,
            until_ms: None,
        }
    }
}

/// The key `Store::summary` totals by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    /// The model name the client asked for.
    Model,
    Principal,
    /// The virtual key's hash (`""` for requests made without one).
    Key,
    Team,
    User,
    /// The end user the request named (`user`, `metadata.user_id`).
    EndUser,
    /// The UTC date of `started_at_ms`, `YYYY-MM-DD`.
    Day,
}

impl GroupBy {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupBy::Model => "model",
            GroupBy::Principal => "principal",
            GroupBy::Key => "key",
            GroupBy::Team => "team",
            GroupBy::User => "user",
            GroupBy::EndUser => "end_user",
            GroupBy::Day => "day",
        }
    }
}

impl std::str::FromStr for GroupBy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "model" => Ok(GroupBy::Model),
            "principal" => Ok(GroupBy::Principal),
            "key" | "api_key" => Ok(GroupBy::Key),
            "team" | "team_id" => Ok(GroupBy::Team),
            "user" | "user_id" => Ok(GroupBy::User),
            "end_user" => Ok(GroupBy::EndUser),
            "day" => Ok(GroupBy::Day),
            other => Err(format!(
                "unknown group `{other}` (expected model, principal, key, team, user, end_user or day)"
            )),
        }
    }
}

/// Totals for one key. Token sums count an unreported bucket as 0; `cost_nanos` sums the
/// known costs only, and `unknown_cost_requests` says how many requests it is missing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct SummaryRow {
    #[sqlx(rename = "group_key")]
    pub key: String,
    pub requests: i64,
    pub input_uncached: i64,
    pub cache_read: i64,
    pub cache_write: i64,
    pub output: i64,
    pub reasoning: i64,
    pub cost_nanos: i64,
    pub unknown_cost_requests: i64,
}
