//! Keys, teams and users: their fields under LiteLLM's names (what the key API takes and
//! shows), and how a request body's fields are applied to them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::meter::Caps;

/// The limits a key, team or user may carry (LiteLLM's fields). Budgets are in US dollars,
/// as LiteLLM takes them; the meters count nano-dollars.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct Limits {
    #[schema(minimum = 0)]
    pub max_budget: Option<f64>,
    /// Never refuses: the log warns once a period when a key's spend reaches it.
    #[schema(minimum = 0)]
    pub soft_budget: Option<f64>,
    /// `30s`, `15m`, `12h`, `30d`, `4w`, `1mo` (30 days).
    #[schema(pattern = r"^[0-9]+(s|m|h|d|w|mo)$")]
    pub budget_duration: Option<String>,
    pub tpm_limit: Option<u64>,
    pub rpm_limit: Option<u64>,
    pub max_parallel_requests: Option<u64>,
    /// Per model group: `{"gpt-4o": {"budget_limit": 1.5, "time_period": "1d"}}`.
    pub model_max_budget: BTreeMap<String, ModelBudget>,
    pub model_rpm_limit: BTreeMap<String, u64>,
    pub model_tpm_limit: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ModelBudget {
    #[schema(minimum = 0)]
    pub budget_limit: Option<f64>,
    #[serde(default)]
    #[schema(pattern = r"^[0-9]+(s|m|h|d|w|mo)$")]
    pub time_period: Option<String>,
}

/// Dollars to nano-dollars, rounded; negative or non-finite budgets are refused where parsed.
pub fn nanos(usd: f64) -> i64 {
    (usd * 1e9).round() as i64
}

/// A LiteLLM duration (`30s`, `15m`, `12h`, `30d`, `4w`, `1mo`) in milliseconds.
pub fn duration_ms(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: i64 = n.parse().map_err(|_| {
        format!("duration `{s}`: expected a number and a unit (30s, 15m, 12h, 30d, 4w, 1mo)")
    })?;
    let unit_ms: i64 = match unit {
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        "mo" => 30 * 86_400_000,
        _ => {
            return Err(format!(
                "duration `{s}`: unknown unit `{unit}` (s, m, h, d, w, mo)"
            ));
        }
    };
    if n <= 0 {
        return Err(format!("duration `{s}` must be positive"));
    }
    n.checked_mul(unit_ms)
        .ok_or_else(|| format!("duration `{s}` is too long"))
}

impl Limits {
    /// The caps the meters apply; `anchor_ms` is where budget periods are counted from.
    pub fn caps(&self, anchor_ms: i64) -> Caps {
        Caps {
            rpm: self.rpm_limit,
            tpm: self.tpm_limit,
            parallel: self.max_parallel_requests,
            budget: self.max_budget.map(nanos),
            period_ms: self
                .budget_duration
                .as_deref()
                .and_then(|d| duration_ms(d).ok()),
            anchor_ms,
        }
    }

    /// The caps of one model group, when the entity limits it specially.
    pub fn model_caps(&self, group: &str, anchor_ms: i64) -> Option<Caps> {
        let budget = self.model_max_budget.get(group);
        let rpm = self.model_rpm_limit.get(group).copied();
        let tpm = self.model_tpm_limit.get(group).copied();
        if budget.is_none() && rpm.is_none() && tpm.is_none() {
            return None;
        }
        Some(Caps {
            rpm,
            tpm,
            parallel: None,
            budget: budget.and_then(|b| b.budget_limit).map(nanos),
            period_ms: budget
                .and_then(|b| b.time_period.as_deref())
                .and_then(|d| duration_ms(d).ok()),
            anchor_ms,
        })
    }

    /// Checks what cannot be stored: negative budgets, unknown durations.
    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in [
            ("max_budget", self.max_budget),
            ("soft_budget", self.soft_budget),
        ] {
            if let Some(v) = v
                && !(v.is_finite() && v >= 0.0)
            {
                return Err(format!("{name}: must be a non-negative number of dollars"));
            }
        }
        if let Some(d) = &self.budget_duration {
            duration_ms(d).map_err(|e| format!("budget_duration: {e}"))?;
        }
        for (model, b) in &self.model_max_budget {
            if let Some(v) = b.budget_limit
                && !(v.is_finite() && v >= 0.0)
            {
                return Err(format!(
                    "model_max_budget.{model}.budget_limit: must be a non-negative number"
                ));
            }
            if let Some(d) = &b.time_period {
                duration_ms(d).map_err(|e| format!("model_max_budget.{model}.time_period: {e}"))?;
            }
        }
        Ok(())
    }
}

/// A virtual key. The key itself is never kept: `token` is its SHA-256 (hex).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct KeyDoc {
    pub token: String,
    /// The key's lasting id: the first 24 hex digits of its first token. A regenerated key
    /// keeps it, and so its spend, meters and usage records (whose `api_key` column holds it).
    pub key_id: String,
    /// `sk-...abcd`: enough to recognise a key in a list, never enough to use it.
    pub key_name: String,
    pub key_alias: Option<String>,
    /// Model groups, aliases or wildcards (`gpt-*`) the key may call; empty: every model its
    /// team allows (or all). `all-proxy-models` and `*` mean all.
    pub models: Vec<String>,
    #[serde(flatten)]
    pub limits: Limits,
    /// Unix ms after which the key is refused.
    pub expires_ms: Option<i64>,
    pub team_id: Option<String>,
    pub user_id: Option<String>,
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
    pub blocked: bool,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// Where budget periods count from: creation, or the last change of `budget_duration`.
    pub budget_anchor_ms: i64,
}

/// A team: its keys share its limits and budget (beside their own).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct TeamDoc {
    pub team_id: String,
    pub team_alias: Option<String>,
    pub models: Vec<String>,
    #[serde(flatten)]
    pub limits: Limits,
    pub members_with_roles: Vec<Member>,
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
    pub blocked: bool,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub budget_anchor_ms: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct Member {
    pub user_id: Option<String>,
    pub user_email: Option<String>,
    /// `admin` or `user`.
    pub role: String,
}

/// A user (a person): their keys share their limits and budget.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct UserDoc {
    pub user_id: String,
    pub user_email: Option<String>,
    pub user_alias: Option<String>,
    /// LiteLLM's roles (`proxy_admin`, `internal_user`, …): kept and shown; only the master
    /// key manages, whatever the role.
    pub user_role: Option<String>,
    pub models: Vec<String>,
    #[serde(flatten)]
    pub limits: Limits,
    pub teams: Vec<String>,
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub budget_anchor_ms: i64,
}

/// What the key API does alike for keys, teams and users: store them under their kind and id,
/// and order their changes.
pub trait Tenant: Serialize + serde::de::DeserializeOwned + Clone {
    /// The store's kind (`key`, `team`, `user`).
    const KIND: &'static str;
    /// The store's id: a key's token, a team's or a user's id.
    fn id(&self) -> &str;
    fn limits(&self) -> &Limits;
    fn stamps(&mut self) -> (&mut i64, &mut i64);
    fn updated_at_ms(&self) -> i64;

    /// Makes `self` the change of `previous`: its limits checked, its budget periods counted
    /// afresh when their duration changed, its change time after the last.
    fn changed_from(&mut self, previous: &Self) -> Result<(), String> {
        self.limits().validate()?;
        let restart = self.limits().budget_duration != previous.limits().budget_duration;
        let now = super::now_ms();
        let (updated, anchor) = self.stamps();
        *updated = now.max(previous.updated_at_ms() + 1);
        if restart {
            *anchor = now;
        }
        Ok(())
    }
}

macro_rules! tenant {
    ($ty:ty, $kind:expr, $id:ident) => {
        impl Tenant for $ty {
            const KIND: &'static str = $kind;
            fn id(&self) -> &str {
                &self.$id
            }
            fn limits(&self) -> &Limits {
                &self.limits
            }
            fn stamps(&mut self) -> (&mut i64, &mut i64) {
                (&mut self.updated_at_ms, &mut self.budget_anchor_ms)
            }
            fn updated_at_ms(&self) -> i64 {
                self.updated_at_ms
            }
        }
    };
}

impl KeyDoc {
    /// How records and refusals name the key: its alias, else a prefix of its id (never the
    /// key).
    pub fn label(&self) -> String {
        match &self.key_alias {
            Some(a) => a.clone(),
            None => format!("key-{}", self.key_id.get(..12).unwrap_or_default()),
        }
    }
}

impl TeamDoc {
    pub fn label(&self) -> String {
        self.team_alias
            .clone()
            .unwrap_or_else(|| self.team_id.clone())
    }
}

impl UserDoc {
    pub fn label(&self) -> String {
        self.user_id.clone()
    }
}

tenant!(KeyDoc, super::KEY, token);
tenant!(TeamDoc, super::TEAM, team_id);
tenant!(UserDoc, super::USER, user_id);

/// Fields every kind takes from a request body.
const LIMIT_FIELDS: &[&str] = &[
    "max_budget",
    "soft_budget",
    "budget_duration",
    "tpm_limit",
    "rpm_limit",
    "max_parallel_requests",
    "model_max_budget",
    "model_rpm_limit",
    "model_tpm_limit",
];

/// Which fields of a request body a kind takes (beside the limits); the rest are named back
/// to the caller as unsupported, never dropped in silence.
pub const KEY_FIELDS: &[&str] = &[
    "key_alias",
    "models",
    "team_id",
    "user_id",
    "metadata",
    "blocked",
];
pub const TEAM_FIELDS: &[&str] = &[
    "team_alias",
    "models",
    "metadata",
    "blocked",
    "members_with_roles",
];
pub const USER_FIELDS: &[&str] = &[
    "user_email",
    "user_alias",
    "user_role",
    "models",
    "metadata",
    "teams",
];

/// Fields the key API reads for itself rather than storing (ids, the key, durations).
const CONTROL_FIELDS: &[&str] = &[
    "key",
    "keys",
    "token",
    "duration",
    "team_id",
    "user_id",
    "member",
    "auto_create_key",
    "send_invite_email",
    "key_aliases",
    "team_ids",
    "user_ids",
];

/// Applies the fields of `body` that `allowed` (or the limits) name onto `doc`, returning the
/// names of those it does not take. `null` clears a field.
pub fn apply<T: Serialize + serde::de::DeserializeOwned>(
    doc: &T,
    body: &Map<String, Value>,
    allowed: &[&str],
) -> Result<(T, Vec<String>), String> {
    let mut v = serde_json::to_value(doc).map_err(|e| e.to_string())?;
    let mut unsupported = Vec::new();
    if let Some(obj) = v.as_object_mut() {
        for (k, val) in body {
            if allowed.contains(&k.as_str()) || LIMIT_FIELDS.contains(&k.as_str()) {
                let val = match (k.as_str(), val) {
                    // LiteLLM clients send `null` for "no limit" and `{}` for "no per-model
                    // limits"; both are the default here.
                    ("models" | "teams" | "members_with_roles", Value::Null) => {
                        Value::Array(vec![])
                    }
                    (
                        "metadata" | "model_max_budget" | "model_rpm_limit" | "model_tpm_limit",
                        Value::Null,
                    ) => Value::Object(Map::new()),
                    ("blocked", Value::Null) => Value::Bool(false),
                    _ => val.clone(),
                };
                obj.insert(k.clone(), val);
            } else if !CONTROL_FIELDS.contains(&k.as_str()) {
                unsupported.push(k.clone());
            }
        }
    }
    let doc: T = serde_json::from_value(v).map_err(|e| format!("invalid field: {e}"))?;
    Ok((doc, unsupported))
}

/// Whether a model list lets `group` through: empty and `*` / `all-proxy-models` allow all;
/// an entry ending in `*` matches by prefix.
pub fn allows(models: &[String], group: &str) -> bool {
    models.is_empty()
        || models.iter().any(|m| {
            m == group
                || m == "*"
                || m == "all-proxy-models"
                || m.strip_suffix('*').is_some_and(|p| group.starts_with(p))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations_follow_litellm() {
        assert_eq!(duration_ms("30s"), Ok(30_000));
        assert_eq!(duration_ms("1h"), Ok(3_600_000));
        assert_eq!(duration_ms("30d"), Ok(30 * 86_400_000));
        assert_eq!(duration_ms("1mo"), Ok(30 * 86_400_000));
        assert!(duration_ms("0d").is_err());
        assert!(duration_ms("5y").is_err());
        assert!(duration_ms("d").is_err());
    }

    #[test]
    fn applying_a_body_sets_clears_and_names_what_it_does_not_take() {
        let key = KeyDoc {
            key_alias: Some("a".into()),
            models: vec!["gpt".into()],
            ..KeyDoc::default()
        };
        let body = json!({"models": null, "max_budget": 2.5, "rpm_limit": 10, "tags": ["x"], "key": "sk-1", "key_alias": "b"});
        let (k, unsupported) = apply(&key, body.as_object().unwrap(), KEY_FIELDS).unwrap();
        assert_eq!(k.models, Vec::<String>::new());
        assert_eq!(k.key_alias.as_deref(), Some("b"));
        assert_eq!(k.limits.max_budget, Some(2.5));
        assert_eq!(k.limits.rpm_limit, Some(10));
        assert_eq!(unsupported, ["tags"]);
        let bad = json!({"rpm_limit": "ten"});
        assert!(apply(&key, bad.as_object().unwrap(), KEY_FIELDS).is_err());
    }

    #[test]
    fn model_lists_allow_by_name_wildcard_or_all() {
        assert!(allows(&[], "x"));
        assert!(allows(&["gpt-*".into()], "gpt-4o"));
        assert!(!allows(&["gpt-*".into()], "claude"));
        assert!(allows(&["all-proxy-models".into()], "claude"));
        assert!(!allows(&["claude-opus".into()], "claude"));
    }
}
