//! The policy stage, between authentication and routing: whether this principal may make
//! this request at all (models it may use, limits and budgets it holds). The master key and
//! an open gateway may use every model; virtual keys with their teams, limits and budgets
//! bring their rules here.

use crate::errors::GatewayError;
use crate::principal::Principal;

/// What the policy stage needs to know about a request.
pub struct Ask<'a> {
    /// The model group, aliases resolved.
    pub group: &'a str,
}

/// Admits or refuses a request before any deployment is chosen.
pub fn admit(principal: &Principal, ask: &Ask<'_>) -> Result<(), GatewayError> {
    match principal {
        Principal::Open | Principal::Master => {
            let _ = ask.group;
            Ok(())
        }
    }
}
