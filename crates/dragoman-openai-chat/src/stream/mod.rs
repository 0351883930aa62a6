//! Chat streaming: `data:`-only chunk events ending in `data: [DONE]`, decoded into and encoded
//! from the canonical block lifecycle.

mod decode;
mod encode;

pub use decode::StreamDecoder;
pub use encode::StreamEncoder;

/// The terminal data payload of a successful Chat stream.
pub(crate) const DONE: &str = "[DONE]";
