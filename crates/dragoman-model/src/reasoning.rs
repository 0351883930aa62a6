//! Opaque reasoning state (signatures, encrypted reasoning, redacted thinking) and the versioned
//! envelope that carries one provider's state through another dialect's opaque field.
//!
//! An Anthropic thinking signature can only be checked by Anthropic, an OpenAI `encrypted_content`
//! only by OpenAI. When a client speaks a dialect other than the upstream's, the state is wrapped
//! in an envelope (`dgm1.` + base64url JSON) and placed in the client dialect's own opaque field;
//! when the client replays it, the decoder unwraps it and the upstream gets its bytes back
//! unchanged. State of the wrong family for the next upstream is dropped and reported, never sent.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// Prefix that marks an envelope. The digit is the envelope version.
pub const SEAL_PREFIX: &str = "dgm1.";

/// Provider families whose opaque reasoning is mutually unintelligible.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    Anthropic,
    #[serde(rename = "openai")]
    OpenAi,
    /// Gemini `thoughtSignature`s.
    Google,
}

/// What the opaque payload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SealKind {
    /// Anthropic `thinking.signature`, Gemini `thoughtSignature`.
    Signature,
    /// Anthropic `redacted_thinking.data`: the whole block is opaque.
    Redacted,
    /// OpenAI reasoning item `encrypted_content`.
    Encrypted,
}

/// Opaque reasoning state, exactly as its provider issued it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReasoningSeal {
    pub family: Family,
    pub kind: SealKind,
    pub payload: String,
    /// OpenAI reasoning item id (`rs_…`), which must travel with its encrypted content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_id: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    f: Family,
    k: SealKind,
    p: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    i: Option<String>,
}

impl ReasoningSeal {
    pub fn anthropic_signature(signature: impl Into<String>) -> Self {
        ReasoningSeal {
            family: Family::Anthropic,
            kind: SealKind::Signature,
            payload: signature.into(),
            item_id: None,
        }
    }

    pub fn anthropic_redacted(data: impl Into<String>) -> Self {
        ReasoningSeal {
            family: Family::Anthropic,
            kind: SealKind::Redacted,
            payload: data.into(),
            item_id: None,
        }
    }

    pub fn openai_encrypted(item_id: Option<String>, encrypted: impl Into<String>) -> Self {
        ReasoningSeal {
            family: Family::OpenAi,
            kind: SealKind::Encrypted,
            payload: encrypted.into(),
            item_id,
        }
    }

    /// The envelope string for carrying this seal through a dialect of another family.
    pub fn wrap(&self) -> String {
        let env = Envelope {
            f: self.family,
            k: self.kind,
            p: self.payload.clone(),
            i: self.item_id.clone(),
        };
        // Serializing a struct of strings and enums into a Vec cannot fail.
        let json = serde_json::to_vec(&env).unwrap_or_default();
        let mut out = String::with_capacity(SEAL_PREFIX.len() + json.len() * 4 / 3 + 4);
        out.push_str(SEAL_PREFIX);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode_string(json, &mut out);
        out
    }

    /// Reads an envelope produced by [`ReasoningSeal::wrap`]; `None` for anything else, which
    /// then is a native value of the dialect it arrived in.
    pub fn unwrap(text: &str) -> Option<ReasoningSeal> {
        let body = text.strip_prefix(SEAL_PREFIX)?;
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(body)
            .ok()?;
        let env: Envelope = serde_json::from_slice(&json).ok()?;
        Some(ReasoningSeal {
            family: env.f,
            kind: env.k,
            payload: env.p,
            item_id: env.i,
        })
    }

    /// The value to put in a dialect's opaque field: the native payload when the dialect is of
    /// this seal's family, otherwise the envelope.
    pub fn carry_in(&self, family: Family) -> String {
        if family == self.family && self.kind != SealKind::Redacted {
            self.payload.clone()
        } else {
            self.wrap()
        }
    }
}
