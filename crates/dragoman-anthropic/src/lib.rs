//! The Anthropic Messages dialect: request, response, stream and error codecs between
//! Anthropic's wire format and dragoman's canonical model. Pure translation: no I/O, no async.

mod error;
mod request;
mod response;
mod stop;
mod stream;
mod usage;
mod validate;

#[cfg(test)]
mod tests;

pub use error::{decode_error, encode_error, stream_error_event};
pub use request::{
    MESSAGE_FIELDS_KEY, TOOL_FIELDS_KEY, decode_request, default_max_tokens, encode_request,
};
pub use response::{decode_response, encode_response};
pub use stream::{StreamDecoder, StreamEncoder};
pub use validate::{Validator, validate};
