//! Master-key authentication, compared in constant time; keys are never logged.

use axum::http::HeaderMap;
use subtle::ConstantTimeEq;

use crate::Gateway;
use crate::principal::Principal;

/// The key a client presented: `Authorization: Bearer …`, or `x-api-key` (Anthropic SDKs), or
/// `api-key` (Azure SDKs).
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
    for name in ["x-api-key", "api-key"] {
        if let Some(k) = headers.get(name).and_then(|v| v.to_str().ok()) {
            let k = k.trim();
            if !k.is_empty() {
                return Some(k);
            }
        }
    }
    None
}

impl Gateway {
    /// Who is calling: `Open` when no master key is configured (warned about at start),
    /// `Master` when the presented key equals it.
    pub(crate) fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, &'static str> {
        let Some(master) = &self.config.master_key else {
            return Ok(Principal::Open);
        };
        match presented_key(headers) {
            None => Err("missing api key: send Authorization: Bearer <key> or x-api-key"),
            Some(k) if bool::from(k.as_bytes().ct_eq(master.expose().as_bytes())) => {
                Ok(Principal::Master)
            }
            Some(_) => Err("invalid api key"),
        }
    }

    /// For the management endpoints: only the master key (or an open gateway) passes.
    pub(crate) fn authorize(&self, headers: &HeaderMap) -> Result<(), &'static str> {
        self.authenticate(headers).map(|_| ())
    }
}
