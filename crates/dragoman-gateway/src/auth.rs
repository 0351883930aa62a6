//! Authentication: the master key (compared in constant time) or a virtual key (looked up by
//! its SHA-256 in the in-memory directory, never awaiting the store). Keys are never logged.

use axum::http::HeaderMap;
use dragoman_model::ErrorKind;
use subtle::ConstantTimeEq;

use crate::Gateway;
use crate::principal::{Caller, Principal};

/// The key a client presented: `Authorization: Bearer …`, or `x-api-key` (Anthropic SDKs), or
/// `api-key` (Azure SDKs), or `x-goog-api-key`.
pub fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let v = v.trim();
        if let Some(k) = v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
        {
            let k = k.trim();
            if !k.is_empty() {
                return Some(k);
            }
        }
    }
    // An empty header is no key at all: it must never match anything.
    for name in ["x-api-key", "api-key", "x-goog-api-key"] {
        if let Some(k) = headers.get(name).and_then(|v| v.to_str().ok()) {
            let k = k.trim();
            if !k.is_empty() {
                return Some(k);
            }
        }
    }
    None
}

/// Why a caller was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    Missing,
    Invalid,
    /// Expired at this Unix ms.
    Expired(i64),
    /// The key, or its team, is blocked.
    Blocked(&'static str),
}

impl AuthError {
    pub fn message(&self) -> String {
        match self {
            AuthError::Missing => {
                "missing api key: send Authorization: Bearer <key> or x-api-key".to_owned()
            }
            AuthError::Invalid => "invalid api key".to_owned(),
            AuthError::Expired(at) => {
                format!("this key expired at {}", crate::time::iso(*at))
            }
            AuthError::Blocked(what) => format!("this {what} is blocked; ask your administrator"),
        }
    }

    /// 401 for a key that is not (or no longer) valid, 403 for one that is but may not call.
    pub fn kind(&self) -> ErrorKind {
        match self {
            AuthError::Blocked(_) => ErrorKind::Permission,
            _ => ErrorKind::Authentication,
        }
    }
}

impl Gateway {
    /// Who is calling: `Master` when the presented key equals the master key, `Key` for a
    /// virtual key, `Open` when no master key is configured (warned about at start).
    pub(crate) fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, AuthError> {
        let master = self.config.master_key.as_ref();
        let Some(presented) = presented_key(headers) else {
            return match master {
                None => Ok(Principal::Open),
                // The admin UI's session, in its cookie (with its CSRF header).
                Some(_) => {
                    crate::ui::session_principal(self, headers).unwrap_or(Err(AuthError::Missing))
                }
            };
        };
        if let Some(m) = master
            && bool::from(presented.as_bytes().ct_eq(m.expose().as_bytes()))
        {
            return Ok(Principal::Master);
        }
        // One snapshot for the key, its team and its user: they agree with each other.
        let dir = self.tenancy.directory();
        let found = (!dir.keys.is_empty())
            .then(|| key_caller(&dir, &crate::tenancy::hash_key(presented)))
            .flatten();
        match found {
            Some(caller) => caller,
            None => match master {
                None => Ok(Principal::Open),
                Some(_) => Err(AuthError::Invalid),
            },
        }
    }

    /// The caller a virtual key (by its SHA-256) makes, if it may call now.
    pub(crate) fn key_principal(&self, hash: &[u8; 32]) -> Result<Principal, AuthError> {
        key_caller(&self.tenancy.directory(), hash).unwrap_or(Err(AuthError::Invalid))
    }
}

/// The key with this hash in `dir` as a caller (refused when blocked, expired or orphaned);
/// `None` when there is no such key.
fn key_caller(
    dir: &crate::tenancy::Directory,
    hash: &[u8; 32],
) -> Option<Result<Principal, AuthError>> {
    let key = dir.keys.get(hash)?.clone();
    Some(admit_key(dir, key))
}

fn admit_key(
    dir: &crate::tenancy::Directory,
    key: std::sync::Arc<crate::tenancy::KeyEntry>,
) -> Result<Principal, AuthError> {
    if key.doc.blocked {
        return Err(AuthError::Blocked("key"));
    }
    if let Some(at) = key.doc.expires_ms
        && at <= crate::tenancy::now_ms()
    {
        return Err(AuthError::Expired(at));
    }
    let team = match &key.doc.team_id {
        Some(id) => match dir.teams.get(id) {
            Some(t) if t.doc.blocked => return Err(AuthError::Blocked("key's team")),
            Some(t) => Some(t.clone()),
            // The team was deleted: its keys go with it.
            None => return Err(AuthError::Invalid),
        },
        None => None,
    };
    let user = key
        .doc
        .user_id
        .as_ref()
        .and_then(|u| dir.users.get(u).cloned());
    Ok(Principal::Key(std::sync::Arc::new(Caller {
        key,
        team,
        user,
    })))
}

impl Gateway {
    /// For the management endpoints: only the master key (or an open gateway) passes.
    pub(crate) fn authorize(&self, headers: &HeaderMap) -> Result<(), String> {
        match self.authenticate(headers) {
            Ok(Principal::Master | Principal::Open) => Ok(()),
            Ok(Principal::Key(_)) => Err("this endpoint needs the master key".to_owned()),
            Err(e) => Err(e.message()),
        }
    }
}
