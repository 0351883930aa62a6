//! Who is calling: what authentication proved, carried with the request into the policy
//! stage, the sticky-routing key and the usage record.

/// The caller of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// No master key is configured: anyone who can reach the gateway.
    Open,
    /// The master key.
    Master,
}

impl Principal {
    /// The name the usage record and the spend API use.
    pub fn label(&self) -> &str {
        match self {
            Principal::Open => "open",
            Principal::Master => "master",
        }
    }
}
