//! Server-sent-events framing: bytes to events and back, knowing nothing of JSON or dialects.
//!
//! The decoder is incremental and gives the same events whatever way the input bytes are split
//! (CRLF, LF or lone CR line ends, comments, multi-line `data:`, a missing final newline), so a
//! network read boundary can never change what a dialect decoder sees.

#[cfg(test)]
mod tests;

/// One dispatched SSE event. `data` holds the `data:` lines joined by `\n`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Event {
    pub event: Option<String>,
    pub data: String,
    pub id: Option<String>,
    pub retry: Option<u64>,
}

impl Event {
    /// An event with only a data payload (OpenAI Chat style).
    pub fn data(data: impl Into<String>) -> Self {
        Event {
            data: data.into(),
            ..Event::default()
        }
    }

    /// An event with an `event:` name and data (Anthropic and Responses style).
    pub fn named(name: impl Into<String>, data: impl Into<String>) -> Self {
        Event {
            event: Some(name.into()),
            data: data.into(),
            ..Event::default()
        }
    }

    /// The event name, or `message` as the SSE specification defaults it.
    pub fn name(&self) -> &str {
        self.event.as_deref().unwrap_or("message")
    }
}

/// Why a byte stream could not be framed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    #[error("invalid utf-8 in sse line at byte {offset}")]
    InvalidUtf8 { offset: u64 },
    #[error("sse line or event exceeds {limit} bytes at byte {offset}")]
    TooLarge { limit: usize, offset: u64 },
}

/// Default bound on one line or one event's accumulated data, so a hostile peer cannot make the
/// decoder grow without end.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// Incremental SSE decoder (WHATWG event-stream rules, plus dispatch of a final event that lacks
/// its blank line, because real servers close streams that way).
#[derive(Debug)]
pub struct Decoder {
    line: Vec<u8>,
    /// A CR ended the previous chunk: an LF at the start of the next one belongs to it.
    after_cr: bool,
    event: Option<String>,
    data: String,
    has_data: bool,
    id: Option<String>,
    retry: Option<u64>,
    offset: u64,
    max: usize,
    seen_first_line: bool,
    /// Stream offset of the first byte of the line being accumulated, for error messages.
    line_start: u64,
    /// Stream offset after the last line that left no event half read: a relay may insert
    /// its own events there without splitting one of the peer's.
    boundary: u64,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    pub fn new() -> Self {
        Self::with_limit(DEFAULT_MAX_EVENT_BYTES)
    }

    pub fn with_limit(max: usize) -> Self {
        Decoder {
            line: Vec::new(),
            after_cr: false,
            event: None,
            data: String::new(),
            has_data: false,
            id: None,
            retry: None,
            offset: 0,
            max,
            seen_first_line: false,
            line_start: 0,
            boundary: 0,
        }
    }

    /// Feeds bytes; complete events are appended to `out`.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<Event>) -> Result<(), SseError> {
        self.push_inner(bytes, out, None)
    }

    /// As [`Decoder::push`], and `ends` gets, for each event appended to `out`, the stream
    /// offset just past the blank line that completed it, so a relay can forward exactly the
    /// bytes of the events it accepted.
    pub fn push_framed(
        &mut self,
        bytes: &[u8],
        out: &mut Vec<Event>,
        ends: &mut Vec<u64>,
    ) -> Result<(), SseError> {
        self.push_inner(bytes, out, Some(ends))
    }

    /// Bytes fed so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The stream offset after the last line that left no event half read (see `boundary`).
    pub fn boundary(&self) -> u64 {
        self.boundary
    }

    fn push_inner(
        &mut self,
        mut bytes: &[u8],
        out: &mut Vec<Event>,
        mut ends: Option<&mut Vec<u64>>,
    ) -> Result<(), SseError> {
        if self.after_cr && !bytes.is_empty() {
            self.after_cr = false;
            if bytes[0] == b'\n' {
                bytes = &bytes[1..];
                self.offset += 1;
            }
        }
        while !bytes.is_empty() {
            match memchr::memchr2(b'\n', b'\r', bytes) {
                None => {
                    self.extend_line(bytes)?;
                    self.offset += bytes.len() as u64;
                    return Ok(());
                }
                Some(pos) => {
                    let terminator = bytes[pos];
                    let mut consumed = pos + 1;
                    if terminator == b'\r' {
                        match bytes.get(pos + 1) {
                            Some(b'\n') => consumed += 1,
                            Some(_) => {}
                            None => self.after_cr = true,
                        }
                    }
                    let before = out.len();
                    let result = if self.line.is_empty() {
                        // The whole line is in this chunk (the usual case): read it in place.
                        self.check_line(pos)?;
                        self.offset += consumed as u64;
                        self.process_line(&bytes[..pos], out)
                    } else {
                        self.extend_line(&bytes[..pos])?;
                        self.offset += consumed as u64;
                        let line = std::mem::take(&mut self.line);
                        let r = self.process_line(&line, out);
                        self.line = line;
                        self.line.clear();
                        r
                    };
                    bytes = &bytes[consumed..];
                    self.line_start = self.offset;
                    result?;
                    if let Some(ends) = ends.as_deref_mut()
                        && out.len() > before
                    {
                        ends.push(self.offset);
                    }
                    if !self.has_data && self.event.is_none() {
                        self.boundary = self.offset;
                    }
                }
            }
        }
        Ok(())
    }

    /// Ends the input: a partial last line is processed and a pending event dispatched.
    pub fn finish(&mut self, out: &mut Vec<Event>) -> Result<(), SseError> {
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.process_line(&line, out)?;
        }
        self.dispatch(out);
        self.after_cr = false;
        self.boundary = self.offset;
        Ok(())
    }

    /// True when bytes have been seen that are not yet part of a dispatched event.
    pub fn has_pending(&self) -> bool {
        !self.line.is_empty() || self.has_data || self.event.is_some()
    }

    /// Refuses a line that `extra` more bytes would take past the bound.
    fn check_line(&self, extra: usize) -> Result<(), SseError> {
        if self.line.len() + extra > self.max {
            return Err(SseError::TooLarge {
                limit: self.max,
                offset: self.offset,
            });
        }
        Ok(())
    }

    fn extend_line(&mut self, bytes: &[u8]) -> Result<(), SseError> {
        self.check_line(bytes.len())?;
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    fn process_line(&mut self, raw: &[u8], out: &mut Vec<Event>) -> Result<(), SseError> {
        let mut raw = raw;
        let mut start = self.line_start;
        if !self.seen_first_line {
            self.seen_first_line = true;
            if let Some(rest) = raw.strip_prefix(b"\xEF\xBB\xBF") {
                raw = rest;
                start += 3;
            }
        }
        if raw.is_empty() {
            self.dispatch(out);
            return Ok(());
        }
        let line = std::str::from_utf8(raw).map_err(|e| SseError::InvalidUtf8 {
            offset: start + e.valid_up_to() as u64,
        })?;
        if line.starts_with(':') {
            return Ok(());
        }
        let (field, value) = match line.find(':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(' ').unwrap_or(v))
            }
            None => (line, ""),
        };
        match field {
            "data" => {
                if self.data.len() + value.len() + 1 > self.max {
                    return Err(SseError::TooLarge {
                        limit: self.max,
                        offset: self.offset,
                    });
                }
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.event = Some(value.to_owned()),
            "id" if !value.contains('\0') => self.id = Some(value.to_owned()),
            "retry" => self.retry = value.parse().ok().or(self.retry),
            _ => {}
        }
        Ok(())
    }

    fn dispatch(&mut self, out: &mut Vec<Event>) {
        if self.has_data {
            out.push(Event {
                event: self.event.take().filter(|e| !e.is_empty()),
                data: std::mem::take(&mut self.data),
                id: self.id.clone(),
                retry: self.retry.take(),
            });
        }
        self.event = None;
        self.has_data = false;
        self.data.clear();
    }
}

/// Decodes a whole byte buffer in one call.
pub fn decode_all(bytes: &[u8]) -> Result<Vec<Event>, SseError> {
    let mut decoder = Decoder::new();
    let mut out = Vec::new();
    decoder.push(bytes, &mut out)?;
    decoder.finish(&mut out)?;
    Ok(out)
}

/// Appends the wire form of `event` to `out`: optional `event:` line, one `data:` line per data
/// line, blank line.
pub fn encode(event: &Event, out: &mut Vec<u8>) {
    if let Some(name) = &event.event {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(name.as_bytes());
        out.push(b'\n');
    }
    if let Some(id) = &event.id {
        out.extend_from_slice(b"id: ");
        out.extend_from_slice(id.as_bytes());
        out.push(b'\n');
    }
    if let Some(retry) = event.retry {
        out.extend_from_slice(format!("retry: {retry}\n").as_bytes());
    }
    for line in event.data.split('\n') {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line.strip_suffix('\r').unwrap_or(line).as_bytes());
        out.push(b'\n');
    }
    out.push(b'\n');
}

/// Encodes a sequence of events into one buffer.
pub fn encode_all<'a>(events: impl IntoIterator<Item = &'a Event>) -> Vec<u8> {
    let mut out = Vec::new();
    for e in events {
        encode(e, &mut out);
    }
    out
}

/// Completes the event whose bytes `out` ends with: adds the line end and blank line a peer
/// left off before closing, so the client dispatches it.
pub fn terminate(out: &mut Vec<u8>) {
    if out.ends_with(b"\n\n") || out.ends_with(b"\r\n\r\n") || out.ends_with(b"\r\r") {
        return;
    }
    if !(out.ends_with(b"\n") || out.ends_with(b"\r")) {
        out.push(b'\n');
    }
    out.push(b'\n');
}

/// An SSE comment line, used as a keep-alive that every client ignores.
pub fn comment(text: &str, out: &mut Vec<u8>) {
    out.push(b':');
    if !text.is_empty() {
        out.push(b' ');
        out.extend_from_slice(text.replace(['\n', '\r'], " ").as_bytes());
    }
    out.extend_from_slice(b"\n\n");
}
