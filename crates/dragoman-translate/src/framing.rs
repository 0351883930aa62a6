//! Framings of the hub: how a stream's bytes are cut into the events the dialect codecs read
//! (SSE, or AWS's binary event stream), and how events are written back. The codecs never see
//! bytes, so a dialect streamed in another framing (Claude inside Bedrock's chunks) is the same
//! codec behind another framing.

use dragoman_eventstream as es;
use dragoman_model::{ErrorBody, Framing};
use dragoman_sse as sse;

use crate::StreamError;

/// An incremental decoder of one framing.
pub(crate) enum Frames {
    Sse(sse::Decoder),
    Events(es::Decoder),
    Chunks(es::ChunkDecoder),
}

impl Frames {
    pub(crate) fn new(f: Framing) -> Frames {
        match f {
            Framing::Sse => Frames::Sse(sse::Decoder::new()),
            Framing::EventStream => Frames::Events(es::Decoder::new()),
            Framing::EventStreamChunks => Frames::Chunks(es::ChunkDecoder::new()),
        }
    }

    pub(crate) fn push(
        &mut self,
        bytes: &[u8],
        out: &mut Vec<sse::Event>,
    ) -> Result<(), StreamError> {
        match self {
            Frames::Sse(d) => d.push(bytes, out)?,
            Frames::Events(d) => d.push(bytes, out)?,
            Frames::Chunks(d) => d.push(bytes, out)?,
        }
        Ok(())
    }

    /// End of input: SSE completes a last event without its blank line; a binary message cut
    /// short is an error.
    pub(crate) fn finish(&mut self, out: &mut Vec<sse::Event>) -> Result<(), StreamError> {
        match self {
            Frames::Sse(d) => d.finish(out)?,
            Frames::Events(d) => d.finish()?,
            Frames::Chunks(d) => d.finish()?,
        }
        Ok(())
    }

    /// An exception message inside a chunked stream: the dialect inside knows nothing of
    /// Bedrock's exceptions, so the hub reads it (through the Bedrock codec's error reading)
    /// and ends the stream with it.
    pub(crate) fn exception(&self, ev: &sse::Event) -> Option<ErrorBody> {
        if !matches!(self, Frames::Chunks(_)) {
            return None;
        }
        let name = ev.name();
        if !(name.ends_with("Exception") || name == "error") {
            return None;
        }
        let mut e = dragoman_bedrock::decode_error(None, ev.data.as_bytes());
        e.kind = dragoman_bedrock::error_kind_from_type(name, None);
        Some(e)
    }
}

/// Writes one event in framing `f`.
pub(crate) fn write(f: Framing, ev: &sse::Event, out: &mut Vec<u8>) {
    match f {
        Framing::Sse => sse::encode(ev, out),
        Framing::EventStream => es::encode(ev, out),
        Framing::EventStreamChunks => es::encode_chunk(ev, out),
    }
}
