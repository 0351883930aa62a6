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
    label: String,
}

impl Caller {
    pub fn new(
        key: Arc<KeyEntry>,
        team: Option<Arc<TeamEntry>>,
        user: Option<Arc<UserEntry>>,
    ) -> Caller {
        // The alias, else a prefix of the key's id: never the key.
        let label = match &key.doc.key_alias {
            Some(a) => a.clone(),
            None => format!("key-{}", key.doc.key_id.get(..12).unwrap_or_default()),
        };
        Caller {
            key,
            team,
            user,
            label,
        }
    }
}

impl Caller {
    /// How a refusal names the entity `who` (`key`, `key's model`, `team`, `user`).
    pub fn label_for(&self, who: &str) -> String {
        match who {
            "team" => self.team.as_ref().map_or_else(String::new, |t| {
                t.doc
                    .team_alias
                    .clone()
                    .unwrap_or_else(|| t.doc.team_id.clone())
            }),
            "user" => self
                .user
                .as_ref()
                .map_or_else(String::new, |u| u.doc.user_id.clone()),
            _ => self.label.clone(),
        }
    }
}

impl Principal {
    /// The name the usage record and the spend API use.
    pub fn label(&self) -> &str {
        match self {
            Principal::Open => "open",
            Principal::Master => "master",
            Principal::Key(c) => &c.label,
        }
    }
}
