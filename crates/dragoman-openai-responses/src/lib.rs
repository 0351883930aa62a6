//! The OpenAI Responses API dialect: pure translation between Responses wire JSON / SSE and the
//! canonical model in `dragoman-model`. No I/O, no async; see `docs/dialect-crate.md`.
//!
//! Choices that apply across the crate:
//! - Item ids (`msg_…`, `fc_…`) of replayed input items are storage handles that only mean
//!   something to a stateful server; they are not kept and not reported. Reasoning item ids are
//!   the exception: they travel inside the `ReasoningSeal` next to `encrypted_content`.
//! - Responses is stateful by default (`store` defaults to true). A request that did not come
//!   from a Responses client is encoded with `store:false` and
//!   `include:["reasoning.encrypted_content"]`, because a stateless gateway must carry reasoning
//!   itself (traps §37).

mod error;
mod json;
mod request;
mod response;
mod stop;
mod stream;
mod usage;
mod validate;

#[cfg(test)]
mod tests;

pub use error::{decode_error, encode_error, stream_error_event};
pub use request::{decode_request, encode_request, item_references};
pub use response::{
    check_response, decode_response, decode_response_usage, encode_response, response_summary,
};
pub use stream::{StreamDecoder, StreamEncoder};
pub use validate::{Validator, validate};

use serde_json::Value;

/// The id the Responses client sees: upstream `resp_…` ids are kept so logs line up, anything
/// else is prefixed so clients that check the prefix accept it.
pub(crate) fn response_id(id: &str) -> String {
    if id.starts_with("resp_") {
        id.to_owned()
    } else {
        format!("resp_{id}")
    }
}

/// The part of a response id that synthesized item ids are built from, so they stay unique per
/// response without a random source.
pub(crate) fn id_base(id: &str) -> &str {
    id.strip_prefix("resp_").unwrap_or(id)
}

pub(crate) fn get_str<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

pub(crate) fn get_u64(v: &Value, key: &str) -> Option<u64> {
    v.get(key).and_then(Value::as_u64)
}

/// A JSON path that is only turned into text when a loss or an error names it: most items
/// report nothing, and formatting a path per item was a large share of the work.
#[derive(Clone, Copy)]
pub(crate) enum Path<'a> {
    Root(&'a str),
    Index(&'a Path<'a>, usize),
    Key(&'a Path<'a>, &'a str),
}

impl<'a> Path<'a> {
    pub(crate) fn index(&'a self, i: usize) -> Path<'a> {
        Path::Index(self, i)
    }

    pub(crate) fn key(&'a self, k: &'a str) -> Path<'a> {
        Path::Key(self, k)
    }
}

impl std::fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Path::Root(s) => f.write_str(s),
            Path::Index(p, i) => write!(f, "{p}[{i}]"),
            Path::Key(p, k) => write!(f, "{p}.{k}"),
        }
    }
}
