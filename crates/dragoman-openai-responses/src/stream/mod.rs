//! Responses SSE streams: the decoder (upstream events → canonical events) and the encoder
//! (canonical events → events a Responses client accepts).

mod decode;
mod encode;

pub use decode::StreamDecoder;
pub use encode::StreamEncoder;
