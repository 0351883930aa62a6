//! Why a whole upstream body is not a successful answer, and the one reader of a body's head
//! that every dialect's check shares (so each dialect names only its own fields).

use serde::de::DeserializeOwned;

use crate::ErrorBody;

/// Why a whole upstream body with a success status is not the dialect's successful response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseFault {
    /// Not a response of the dialect at all: not UTF-8, not JSON, cut short, another shape.
    Malformed(String),
    /// The dialect's error envelope, or a response that says it failed.
    Failed(ErrorBody),
}

/// Reads the few top-level members `H` names from a whole body, checking on the way that the
/// whole body is UTF-8 JSON. A typed reading that refuses the body (a repeated key, say) falls
/// back to the tree, as the usage taps do.
pub fn read_head<H: DeserializeOwned>(body: &[u8]) -> Result<H, ResponseFault> {
    if let Err(e) = std::str::from_utf8(body) {
        return Err(ResponseFault::Malformed(format!(
            "not UTF-8 at byte {}",
            e.valid_up_to()
        )));
    }
    match serde_json::from_slice::<H>(body) {
        Ok(h) => Ok(h),
        Err(typed) => {
            let v: serde_json::Value = serde_json::from_slice(body)
                .map_err(|e| ResponseFault::Malformed(format!("not JSON: {e}")))?;
            H::deserialize(&v).map_err(|_| {
                ResponseFault::Malformed(format!("not a response of this API: {typed}"))
            })
        }
    }
}
