//! The AWS binary event-stream framing (`application/vnd.amazon.eventstream`), turned into the
//! same [`dragoman_sse::Event`] values the SSE framing gives, and back.
//!
//! Bedrock streams (ConverseStream, InvokeModelWithResponseStream) are not SSE but length-prefixed
//! binary messages with two CRC-32s. Mapping them onto `Event` lets every dialect stream codec
//! stay framing-agnostic: a codec sees an event name and a JSON text either way. Frame parsing
//! and both checksums are `aws-smithy-eventstream`'s; this crate adds what a gateway needs on
//! top: incremental buffering under any byte split with stream offsets, limits checked before a
//! hostile length makes it buffer, early rejection of a body that is not frames at all (Bedrock
//! answers failed stream requests with JSON), and the header-to-event mapping.
//!
//! Choices:
//! - Headers are checked before any payload is read; a message must carry `:message-type`
//!   and the header its type names (`:event-type`, `:exception-type`, `:error-code`); a
//!   repeated header name is an error, as botocore treats it.
//! - After the first error the decoder stays failed and repeats that error: resynchronising
//!   inside a corrupt length-prefixed stream would only produce garbage events.
//! - Payloads are passed on untouched (Bedrock's `p` padding key included); the dialect decoder
//!   ignores what it does not know.
//! - SSE `id` and `retry` have no place in an event-stream message; the encoder drops them, and
//!   an event without a name is written as `message`, the name SSE gives it.

use std::borrow::Cow;

use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use base64::Engine as _;
use bytes::Bytes;
use dragoman_sse::Event;

#[cfg(test)]
mod tests;

/// The response content type of every Bedrock streaming operation.
pub const CONTENT_TYPE: &str = "application/vnd.amazon.eventstream";

/// Largest header block accepted (botocore's limit).
pub const MAX_HEADERS_BYTES: u32 = 128 * 1024;
/// Largest payload accepted (botocore's limit).
pub const MAX_PAYLOAD_BYTES: u32 = 24 * 1024 * 1024;

/// Total length, header length and prelude CRC.
const PRELUDE_LEN: usize = 12;
/// Prelude plus the trailing message CRC: the size of a message with no headers or payload.
const MIN_MESSAGE_LEN: u32 = 16;
/// `aws-smithy-eventstream` refuses longer string header values (`i16::MAX`).
const MAX_HEADER_VALUE_LEN: usize = i16::MAX as usize;

/// Why a byte stream is not a valid event stream. Every variant names the stream offset of the
/// message it concerns (its first byte), or of the end of input for a truncated stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error(
        "event stream prelude checksum mismatch in the message at byte {offset} (computed {computed:#010x}, sent {sent:#010x}); a body that is not an event stream, such as a JSON error, fails here"
    )]
    PreludeCrc {
        offset: u64,
        computed: u32,
        sent: u32,
    },
    #[error(
        "event stream message checksum mismatch in the message at byte {offset} (computed {computed:#010x}, sent {sent:#010x})"
    )]
    MessageCrc {
        offset: u64,
        computed: u32,
        sent: u32,
    },
    #[error(
        "event stream message at byte {offset} declares {total_length} bytes of which {headers_length} are headers, which cannot be"
    )]
    BadLength {
        offset: u64,
        total_length: u32,
        headers_length: u32,
    },
    #[error(
        "event stream message at byte {offset} has {len} bytes of {what}, more than the {limit} allowed"
    )]
    TooLarge {
        offset: u64,
        what: &'static str,
        len: u64,
        limit: u64,
    },
    #[error("malformed event stream message at byte {offset}: {reason}")]
    Malformed { offset: u64, reason: String },
    #[error("event stream message at byte {offset} lacks the string header `{name}`")]
    MissingHeader { offset: u64, name: String },
    #[error("event stream message at byte {offset} repeats the header `{name}`")]
    DuplicateHeader { offset: u64, name: String },
    #[error("event stream message at byte {offset} has the unknown :message-type `{value}`")]
    UnknownMessageType { offset: u64, value: String },
    #[error(
        "payload of the event stream message at byte {offset} is not UTF-8 (from payload byte {valid_up_to})"
    )]
    NotUtf8 { offset: u64, valid_up_to: usize },
    #[error(
        "event stream ended at byte {offset} inside a message: {buffered} bytes of it never completed"
    )]
    Truncated { offset: u64, buffered: u64 },
    #[error("InvokeModel chunk in the message at byte {offset} is invalid: {reason}")]
    BadChunk { offset: u64, reason: String },
}

/// Checks a prelude and returns the message's total length. Everything that can be known from
/// twelve bytes is checked here, so garbage input fails at once instead of being buffered while
/// waiting for a length it made up.
fn frame_len(prelude: &[u8], offset: u64) -> Result<usize, FrameError> {
    let word = |i: usize| {
        prelude
            .get(i..i + 4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map_or(0, u32::from_be_bytes)
    };
    let (total_length, headers_length, sent) = (word(0), word(4), word(8));
    let computed = crc32fast::hash(prelude.get(..8).unwrap_or_default());
    if computed != sent {
        return Err(FrameError::PreludeCrc {
            offset,
            computed,
            sent,
        });
    }
    if headers_length > MAX_HEADERS_BYTES {
        return Err(FrameError::TooLarge {
            offset,
            what: "headers",
            len: headers_length.into(),
            limit: MAX_HEADERS_BYTES.into(),
        });
    }
    let payload = total_length
        .checked_sub(MIN_MESSAGE_LEN)
        .and_then(|rest| rest.checked_sub(headers_length));
    let Some(payload) = payload else {
        return Err(FrameError::BadLength {
            offset,
            total_length,
            headers_length,
        });
    };
    if payload > MAX_PAYLOAD_BYTES {
        return Err(FrameError::TooLarge {
            offset,
            what: "payload",
            len: payload.into(),
            limit: MAX_PAYLOAD_BYTES.into(),
        });
    }
    usize::try_from(total_length).map_err(|_| FrameError::BadLength {
        offset,
        total_length,
        headers_length,
    })
}

/// The string value of the one header named `name`, if present.
fn header<'m>(m: &'m Message, name: &str, offset: u64) -> Result<Option<&'m str>, FrameError> {
    let mut found = None;
    for h in m.headers() {
        if h.name().as_str() != name {
            continue;
        }
        if found.is_some() {
            return Err(FrameError::DuplicateHeader {
                offset,
                name: name.to_owned(),
            });
        }
        match h.value() {
            HeaderValue::String(s) => found = Some(s.as_str()),
            other => {
                return Err(FrameError::Malformed {
                    offset,
                    reason: format!("header `{name}` is not a string but {other:?}"),
                });
            }
        }
    }
    Ok(found)
}

fn required<'m>(m: &'m Message, name: &str, offset: u64) -> Result<&'m str, FrameError> {
    header(m, name, offset)?.ok_or_else(|| FrameError::MissingHeader {
        offset,
        name: name.to_owned(),
    })
}

/// Checks that no header name repeats. Bedrock sends three or four headers, so the quadratic
/// scan is cheaper than any set.
fn check_unique(m: &Message, offset: u64) -> Result<(), FrameError> {
    let hs = m.headers();
    for (i, h) in hs.iter().enumerate() {
        if hs
            .get(i + 1..)
            .unwrap_or_default()
            .iter()
            .any(|o| o.name() == h.name())
        {
            return Err(FrameError::DuplicateHeader {
                offset,
                name: h.name().as_str().to_owned(),
            });
        }
    }
    Ok(())
}

/// Decodes one complete message (`msg` is exactly its bytes) into an event.
fn decode_message(msg: &[u8], offset: u64) -> Result<Event, FrameError> {
    let m = aws_smithy_eventstream::frame::read_message_from(msg).map_err(|e| {
        // The library reports a checksum failure only after parsing the headers it covers, so a
        // flipped bit in a header surfaces as a header error; the checksum is the truer cause.
        let split = msg.len().saturating_sub(4);
        let computed = crc32fast::hash(msg.get(..split).unwrap_or_default());
        let sent = msg
            .get(split..)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map_or(0, u32::from_be_bytes);
        if computed != sent {
            FrameError::MessageCrc {
                offset,
                computed,
                sent,
            }
        } else {
            FrameError::Malformed {
                offset,
                reason: e.to_string(),
            }
        }
    })?;
    check_unique(&m, offset)?;
    let name = match required(&m, ":message-type", offset)? {
        "event" => required(&m, ":event-type", offset)?.to_owned(),
        "exception" => required(&m, ":exception-type", offset)?.to_owned(),
        "error" => {
            let code = required(&m, ":error-code", offset)?;
            let message = header(&m, ":error-message", offset)?.unwrap_or_default();
            let data = serde_json::json!({ "code": code, "message": message }).to_string();
            return Ok(Event::named("error", data));
        }
        other => {
            return Err(FrameError::UnknownMessageType {
                offset,
                value: other.to_owned(),
            });
        }
    };
    let data = match std::str::from_utf8(m.payload()) {
        Ok(s) => s.to_owned(),
        Err(e) => {
            return Err(FrameError::NotUtf8 {
                offset,
                valid_up_to: e.valid_up_to(),
            });
        }
    };
    Ok(Event {
        event: Some(name),
        data,
        id: None,
        retry: None,
    })
}

/// Incremental event-stream decoder: gives the same events whatever way the input is split.
#[derive(Debug, Default)]
pub struct Decoder {
    /// The start of a message that has not fully arrived yet; empty between messages.
    partial: Vec<u8>,
    /// Stream offset of `partial[0]`, which is also where the next message starts.
    start: u64,
    /// Bytes fed so far.
    offset: u64,
    failed: Option<FrameError>,
}

impl Decoder {
    pub fn new() -> Self {
        Decoder::default()
    }

    /// Appends every complete message in `bytes` as an [`Event`]:
    /// `event` messages are named by `:event-type`, `exception` messages by `:exception-type`
    /// (Bedrock's names end in `Exception`), and `error` messages become an `error` event whose
    /// data is `{"code": <:error-code>, "message": <:error-message>}`. Payloads are kept as
    /// they are. A bad checksum, a length over the limits, a missing header or a payload that
    /// is not UTF-8 is an error naming the offending message's offset.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<Event>) -> Result<(), FrameError> {
        self.push_inner(bytes, out, None)
    }

    /// As [`Decoder::push`], and `ends` gets, for each event appended to `out`, the stream
    /// offset just after its message, so a relay can forward exactly the bytes it accepted.
    pub fn push_framed(
        &mut self,
        bytes: &[u8],
        out: &mut Vec<Event>,
        ends: &mut Vec<u64>,
    ) -> Result<(), FrameError> {
        self.push_inner(bytes, out, Some(ends))
    }

    /// End of input: an error if part of a message is still waiting for the rest.
    pub fn finish(&mut self) -> Result<(), FrameError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if self.partial.is_empty() {
            return Ok(());
        }
        let e = FrameError::Truncated {
            offset: self.offset,
            buffered: self.partial.len() as u64,
        };
        self.failed = Some(e.clone());
        Err(e)
    }

    /// Bytes fed so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Whether part of a message is buffered.
    pub fn has_pending(&self) -> bool {
        !self.partial.is_empty()
    }

    fn push_inner(
        &mut self,
        bytes: &[u8],
        out: &mut Vec<Event>,
        ends: Option<&mut Vec<u64>>,
    ) -> Result<(), FrameError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        self.offset += bytes.len() as u64;
        let r = self.frames(bytes, out, ends);
        if let Err(e) = &r {
            self.failed = Some(e.clone());
            self.partial.clear();
        }
        r
    }

    fn frames(
        &mut self,
        mut input: &[u8],
        out: &mut Vec<Event>,
        mut ends: Option<&mut Vec<u64>>,
    ) -> Result<(), FrameError> {
        let mut emit = |start: &mut u64, ev: Event, len: usize| {
            *start += len as u64;
            out.push(ev);
            if let Some(e) = ends.as_deref_mut() {
                e.push(*start);
            }
        };
        // Complete the message a previous push left half read, copying only its own bytes so
        // the rest of the input can be framed in place.
        while !self.partial.is_empty() {
            let need = if self.partial.len() < PRELUDE_LEN {
                PRELUDE_LEN
            } else {
                frame_len(&self.partial, self.start)?
            };
            let take = need.saturating_sub(self.partial.len()).min(input.len());
            let (head, rest) = input.split_at(take);
            self.partial.extend_from_slice(head);
            input = rest;
            if self.partial.len() < need {
                return Ok(());
            }
            if need > PRELUDE_LEN {
                let ev = decode_message(&self.partial, self.start)?;
                let len = self.partial.len();
                self.partial.clear();
                emit(&mut self.start, ev, len);
            } else {
                // Exactly a prelude so far: validate it on the next turn, which then knows the
                // total length. A message cannot be only a prelude (16 bytes at least).
                frame_len(&self.partial, self.start)?;
            }
        }
        while input.len() >= PRELUDE_LEN {
            let len = frame_len(input, self.start)?;
            let Some(msg) = input.get(..len) else {
                break;
            };
            let ev = decode_message(msg, self.start)?;
            emit(&mut self.start, ev, len);
            input = input.get(len..).unwrap_or_default();
        }
        self.partial.extend_from_slice(input);
        Ok(())
    }
}

/// Decodes a whole stream.
pub fn decode_all(bytes: &[u8]) -> Result<Vec<Event>, FrameError> {
    let mut d = Decoder::new();
    let mut out = Vec::new();
    d.push(bytes, &mut out)?;
    d.finish()?;
    Ok(out)
}

/// Decoder for InvokeModelWithResponseStream, where every `chunk` event's payload is
/// `{"bytes":"<base64>","p":…}` and the decoded bytes are one event of the model vendor's own
/// stream (for Claude, an Anthropic stream event JSON). Each chunk becomes an event named by
/// that JSON's `type` with the decoded text as data, so the vendor's stream decoder reads it as
/// if it had come over SSE. Exceptions, errors and any other event pass through as
/// [`Decoder`] gives them.
#[derive(Debug, Default)]
pub struct ChunkDecoder {
    inner: Decoder,
    /// Stream offset where the next message starts, for naming a bad chunk.
    next_start: u64,
    scratch: Vec<Event>,
    scratch_ends: Vec<u64>,
}

#[derive(serde::Deserialize)]
struct ChunkPayload<'a> {
    #[serde(borrow)]
    bytes: Cow<'a, str>,
}

#[derive(serde::Deserialize)]
struct TypeField<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
}

fn unwrap_chunk(ev: Event, offset: u64) -> Result<Event, FrameError> {
    if ev.event.as_deref() != Some("chunk") {
        return Ok(ev);
    }
    let bad = |reason: String| FrameError::BadChunk { offset, reason };
    let payload: ChunkPayload<'_> = serde_json::from_str(&ev.data)
        .map_err(|e| bad(format!("payload is not {{\"bytes\": …}}: {e}")))?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(payload.bytes.as_bytes())
        .map_err(|e| bad(format!("`bytes` is not base64: {e}")))?;
    let text =
        String::from_utf8(raw).map_err(|e| bad(format!("decoded `bytes` is not UTF-8: {e}")))?;
    let kind = serde_json::from_str::<TypeField<'_>>(&text)
        .map_err(|e| {
            bad(format!(
                "decoded `bytes` is not a JSON event with a `type`: {e}"
            ))
        })?
        .kind
        .into_owned();
    Ok(Event::named(kind, text))
}

impl ChunkDecoder {
    pub fn new() -> Self {
        ChunkDecoder::default()
    }

    /// As [`Decoder::push`], with each `chunk` event unwrapped.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<Event>) -> Result<(), FrameError> {
        let mut ends = Vec::new();
        self.push_framed(bytes, out, &mut ends)
    }

    /// As [`Decoder::push_framed`], with each `chunk` event unwrapped.
    pub fn push_framed(
        &mut self,
        bytes: &[u8],
        out: &mut Vec<Event>,
        ends: &mut Vec<u64>,
    ) -> Result<(), FrameError> {
        self.scratch.clear();
        self.scratch_ends.clear();
        let framed = self
            .inner
            .push_framed(bytes, &mut self.scratch, &mut self.scratch_ends);
        // Messages before a framing error are still delivered, as `Decoder` delivers them.
        for (ev, end) in self.scratch.drain(..).zip(self.scratch_ends.drain(..)) {
            match unwrap_chunk(ev, self.next_start) {
                Ok(ev) => {
                    out.push(ev);
                    ends.push(end);
                    self.next_start = end;
                }
                Err(e) => {
                    self.inner.failed = Some(e.clone());
                    self.inner.partial.clear();
                    return Err(e);
                }
            }
        }
        framed
    }

    pub fn finish(&mut self) -> Result<(), FrameError> {
        self.inner.finish()
    }

    pub fn offset(&self) -> u64 {
        self.inner.offset()
    }
}

/// Cuts a header value to the library's limit at a char boundary: an event name that long is
/// nonsense, and writing a cut name beats writing nothing.
fn clip(s: &str) -> &str {
    if s.len() <= MAX_HEADER_VALUE_LEN {
        return s;
    }
    let mut end = MAX_HEADER_VALUE_LEN;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

fn string(v: &str) -> HeaderValue {
    HeaderValue::String(v.to_owned().into())
}

/// Appends `ev` as one message. A name ending in `Exception` is written as an `exception`
/// message (`:exception-type`), any other as an `event` (`:event-type`); the content type is
/// always `application/json`. Headers are in the order Bedrock sends them, so re-encoding a
/// decoded Bedrock stream gives its bytes back.
pub fn encode(ev: &Event, out: &mut Vec<u8>) {
    let name = clip(ev.name());
    let headers = if name.ends_with("Exception") {
        vec![
            Header::new(":message-type", string("exception")),
            Header::new(":exception-type", string(name)),
            Header::new(":content-type", string("application/json")),
        ]
    } else {
        vec![
            Header::new(":event-type", string(name)),
            Header::new(":content-type", string("application/json")),
            Header::new(":message-type", string("event")),
        ]
    };
    let msg = Message::new_from_parts(headers, Bytes::copy_from_slice(ev.data.as_bytes()));
    // Fails only for a payload over 4 GiB, which no JSON event in memory reaches; the library
    // writes nothing in that case.
    let _ = aws_smithy_eventstream::frame::write_message_to(&msg, out);
}

/// Appends `ev` in the InvokeModelWithResponseStream form: a `chunk` event whose payload is
/// `{"bytes": base64(ev.data)}`. The event name is not written: the vendor JSON in `data`
/// carries its own `type`.
pub fn encode_chunk(ev: &Event, out: &mut Vec<u8>) {
    let mut data = String::with_capacity(ev.data.len() * 4 / 3 + 16);
    data.push_str("{\"bytes\":\"");
    base64::engine::general_purpose::STANDARD.encode_string(ev.data.as_bytes(), &mut data);
    data.push_str("\"}");
    encode(&Event::named("chunk", data), out);
}

/// Encodes every event, one message each.
pub fn encode_all<'a>(events: impl IntoIterator<Item = &'a Event>) -> Vec<u8> {
    let mut out = Vec::new();
    for e in events {
        encode(e, &mut out);
    }
    out
}
