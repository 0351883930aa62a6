//! Anthropic SSE streams: decoding upstream events into canonical ones and encoding canonical
//! events for Anthropic clients.

mod decode;
mod encode;

pub use decode::StreamDecoder;
pub use encode::StreamEncoder;
