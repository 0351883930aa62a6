//! Who is calling: what authentication proved, carried with the request into the policy
//! stage, the sticky-routing key and the usage record.

use std::sync::Arc;

use crate::tenancy::{KeyEntry, TeamEntry, UserEntry};

/// The caller of one request.
#[derive(Debug, Clone)]
pub enum Principal {
    /// No master key is configured: anyone who can reach the gateway.
    Open,
    /// The master key.
    Master,
    /// A virtual key, with the team and user it belongs to as the directory held them when
    /// the request arrived.
    Key(Arc<Caller>),
}

#[derive(Debug)]
pub struct Caller {
    pub key: Arc<KeyEntry>,
    pub team: Option<Arc<TeamEntry>>,
    pub user: Option<Arc<UserEntry>>,
}

impl Caller {
    /// How a refusal names the entity `who` (`key`, `key's model`, `team`, `user`).
    pub fn label_for(&self, who: &str) -> &str {
        match who {
            "team" => self.team.as_ref().map_or("", |t| t.label.as_str()),
            "user" => self.user.as_ref().map_or("", |u| u.label.as_str()),
            _ => &self.key.label,
        }
    }
}

impl Principal {
    /// The name the usage record and the spend API use.
    pub fn label(&self) -> &str {
        match self {
            Principal::Open => "open",
            Principal::Master => "master",
            Principal::Key(c) => &c.key.label,
        }
    }
}
