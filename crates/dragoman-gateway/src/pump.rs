//! The stream pump: upstream body chunks in, client bytes out, as they arrive.
//!
//! The pump is the response body itself (a `Stream` polled by hyper), so when the client goes
//! away hyper drops it, which drops the upstream response and cancels the upstream call. Each
//! upstream read is translated and handed on at once, together with whatever else has already
//! arrived (never waiting for more); silence is broken by keep-alives; a
//! silence longer than the deployment's stream timeout, an upstream transport error or an
//! upstream that stops early all end in the client dialect's error event.

use std::pin::Pin;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dragoman_model::{ErrorBody, ErrorKind, Losses};
use dragoman_translate::{Observed, PassthroughTap, StreamTranslator};
use futures_util::{FutureExt, Stream, StreamExt};

use crate::logsafe::Escaped;

/// Scheduler turns given to hyper's connection task to hand over a chunk it has already read
/// (two are needed on a single-threaded runtime: measured); each is one non-blocking poll of
/// the I/O driver when nothing else is waiting, so an idle stream pays microseconds.
const HANDOVER_YIELDS: u32 = 2;

/// How much already-arrived output one client write may gather.
const COALESCE_LIMIT: usize = 64 * 1024;

/// Takes a stream's whole answer and its cost (the response cache's fill).
pub type Fill = Box<dyn FnOnce(dragoman_model::Response, Option<i64>) + Send>;

pub enum Mode {
    Passthrough(Box<PassthroughTap>),
    Translate(Box<StreamTranslator>),
}

/// What the pump's own warnings name.
pub struct Context {
    pub request_id: String,
    pub model: String,
    pub started: Instant,
}

pub struct Pump<S> {
    upstream: S,
    mode: Mode,
    keepalive: Duration,
    idle_limit: Duration,
    silent_since: Instant,
    /// When something last went to the client, data or keep-alive.
    last_out: Instant,
    /// One timer for the pump's whole life, re-armed only when it fires: arming a fresh
    /// timeout around every upstream read cost more than translating a small event.
    timer: Pin<Box<tokio::time::Sleep>>,
    done: bool,
    losses: Losses,
    ctx: Context,
    first_byte: Option<Duration>,
    /// The upstream body ended, or the pump ended the stream itself with an error.
    closed: bool,
    tracker: Option<crate::accounting::Tracker>,
    /// A Responses client's answer, watched for the response store.
    capture: Option<crate::conversations::StreamCapture>,
    /// Where the whole answer goes when it ends well (the response cache), with its cost.
    fill: Option<Fill>,
    _gauge: crate::proxy::InFlight,
}

impl<S> Pump<S>
where
    S: Stream<Item = Result<Bytes, hyper::Error>> + Unpin + Send + 'static,
{
    pub fn new(
        upstream: S,
        mode: Mode,
        keepalive: Duration,
        idle_limit: Duration,
        ctx: Context,
        tracker: crate::accounting::Tracker,
        gauge: crate::proxy::InFlight,
    ) -> Self {
        Pump {
            upstream,
            mode,
            keepalive,
            idle_limit,
            silent_since: Instant::now(),
            last_out: Instant::now(),
            timer: Box::pin(tokio::time::sleep(keepalive.min(idle_limit))),
            done: false,
            losses: Losses::new(),
            ctx,
            first_byte: None,
            closed: false,
            tracker: Some(tracker),
            capture: None,
            fill: None,
            _gauge: gauge,
        }
    }

    /// Hands the whole answer to `fill` when the stream ends well (the mode must be collecting).
    pub fn fill(mut self, f: Option<Fill>) -> Self {
        self.fill = f;
        self
    }

    /// Keeps the answer in the response store when the stream ends well.
    pub fn capture(mut self, c: Option<crate::conversations::StreamCapture>) -> Self {
        self.capture = c;
        self
    }

    /// The client body: a stream of byte chunks that ends after the terminal event.
    pub fn into_stream(
        self,
    ) -> impl Stream<Item = Result<Bytes, std::convert::Infallible>> + Send + 'static {
        futures_util::stream::unfold(self, |mut p| async move {
            let chunk = p.next_chunk().await?;
            Some((Ok(chunk), p))
        })
    }

    async fn next_chunk(&mut self) -> Option<Bytes> {
        loop {
            if self.done {
                return None;
            }
            let mut out = Vec::new();
            let item = tokio::select! {
                biased;
                item = self.upstream.next() => Some(item),
                () = self.timer.as_mut() => None,
            };
            match item {
                None => {
                    let now = Instant::now();
                    if now.duration_since(self.silent_since) >= self.idle_limit {
                        let msg = format!(
                            "upstream sent nothing for {:.0} s",
                            self.idle_limit.as_secs_f64()
                        );
                        self.fail(ErrorBody::new(ErrorKind::Timeout, msg), &mut out);
                    } else if now.duration_since(self.last_out) >= self.keepalive {
                        match &mut self.mode {
                            Mode::Passthrough(t) => t.keepalive(&mut out),
                            Mode::Translate(t) => t.keepalive(&mut out, &mut self.losses),
                        }
                        self.last_out = now;
                    }
                    let next = (self.last_out + self.keepalive)
                        .min(self.silent_since + self.idle_limit)
                        .max(now + Duration::from_millis(1));
                    self.timer.as_mut().reset(next.into());
                }
                Some(item) => {
                    self.silent_since = Instant::now();
                    if self.first_byte.is_none() {
                        self.first_byte = Some(self.ctx.started.elapsed());
                    }
                    self.handle(item, &mut out);
                    // Whatever else the upstream has already delivered goes out in the same
                    // write: coalescing what is here costs no latency, and one write per
                    // upstream read instead of one per event is most of a stream's CPU.
                    // hyper's client hands the body over one chunk at a time from its connection
                    // task, so "already here" needs a couple of scheduler turns to let that task
                    // decode what it has read: without them every event of a burst went out in
                    // a write of its own (measured: 22 writes per 16-delta stream).
                    let mut yielded = 0u32;
                    while out.len() < COALESCE_LIMIT && !self.closed && !self.finished() {
                        match self.upstream.next().now_or_never() {
                            Some(item) => {
                                self.handle(item, &mut out);
                                yielded = 0;
                            }
                            None if yielded < HANDOVER_YIELDS => {
                                tokio::task::yield_now().await;
                                yielded += 1;
                            }
                            None => break,
                        }
                    }
                    if !out.is_empty() {
                        self.last_out = self.silent_since;
                    }
                }
            }
            // Complete at the terminal event, either way, or when the pump ended the stream
            // itself: nothing more goes to the client, and the connection is not held open
            // for an upstream that has stopped talking.
            if let Some(c) = &mut self.capture
                && !out.is_empty()
            {
                c.see(&out);
            }
            if self.finished() && !self.done {
                self.done = true;
                self.log_end();
            }
            if !out.is_empty() {
                return Some(Bytes::from(out));
            }
        }
    }

    fn finished(&self) -> bool {
        match &self.mode {
            Mode::Translate(_) => self.observed().ended(),
            Mode::Passthrough(t) => self.closed || t.closed(),
        }
    }

    /// One item of the upstream body: a chunk, a transport error, or its end.
    fn handle(&mut self, item: Option<Result<Bytes, hyper::Error>>, out: &mut Vec<u8>) {
        match item {
            Some(Ok(chunk)) => self.take(&chunk, out),
            Some(Err(e)) => {
                let msg = format!(
                    "upstream connection failed mid-stream: {}",
                    crate::upstream::describe(&e)
                );
                self.fail(ErrorBody::new(ErrorKind::Server, msg), out);
                self.closed = true;
            }
            None => {
                self.closed = true;
                match &mut self.mode {
                    Mode::Passthrough(t) => t.finish(out),
                    Mode::Translate(t) => {
                        let _ = t.finish(out, &mut self.losses);
                    }
                }
            }
        }
    }

    /// Hands one upstream chunk to the tap or the translator.
    fn take(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        match &mut self.mode {
            Mode::Passthrough(t) => {
                if let Err(e) = t.push(chunk, out) {
                    tracing::warn!(request_id = %self.ctx.request_id, error = %Escaped(&e.to_string()), "upstream stream is malformed");
                    t.fail(
                        ErrorBody::new(
                            ErrorKind::Server,
                            format!("upstream stream is malformed: {e}"),
                        ),
                        out,
                    );
                }
            }
            Mode::Translate(t) => {
                if let Err(e) = t.push(chunk, out, &mut self.losses) {
                    tracing::warn!(request_id = %self.ctx.request_id, error = %Escaped(&e.to_string()), "upstream stream is malformed");
                }
            }
        }
    }

    fn fail(&mut self, err: ErrorBody, out: &mut Vec<u8>) {
        match &mut self.mode {
            Mode::Passthrough(t) => t.fail(err, out),
            Mode::Translate(t) => t.fail(err, out, &mut self.losses),
        }
    }

    fn observed(&self) -> &Observed {
        match &self.mode {
            Mode::Passthrough(t) => t.observed(),
            Mode::Translate(t) => t.observed(),
        }
    }

    fn log_end(&mut self) {
        if self.observed().success == Some(true)
            && let Some(c) = &mut self.capture
        {
            c.finish();
        }
        let wants_content = self.tracker.as_ref().is_some_and(|t| t.wants_content());
        let whole = if self.fill.is_some() || wants_content {
            match &mut self.mode {
                Mode::Passthrough(t) => t.collected(),
                Mode::Translate(t) => t.collected(),
            }
        } else {
            None
        };
        let mut cost = None;
        if let Some(mut t) = self.tracker.take() {
            let ttfb = self.first_byte.map(|d| d.as_millis() as u64);
            t.losses(&self.losses);
            if wants_content && let Some(r) = &whole {
                t.capture_stream(r);
            }
            cost = t.streamed(self.observed(), ttfb, false);
        }
        if let Some(fill) = self.fill.take()
            && let Some(r) = whole
        {
            fill(r, cost);
        }
        let losses: Vec<String> = self.losses.iter().map(|l| l.to_string()).collect();
        if !losses.is_empty() {
            tracing::debug!(request_id = %self.ctx.request_id, losses = ?losses, "stream translation losses");
        }
    }
}

impl<S> Drop for Pump<S> {
    fn drop(&mut self) {
        if let Some(t) = self.tracker.take() {
            let ttfb = self.first_byte.map(|d| d.as_millis() as u64);
            let observed = match &self.mode {
                Mode::Passthrough(t) => t.observed(),
                Mode::Translate(t) => t.observed(),
            };
            t.streamed(observed, ttfb, true);
        }
        if !self.done {
            tracing::info!(
                request_id = %self.ctx.request_id,
                model = %Escaped(&self.ctx.model),
                outcome = "client_cancelled",
                latency_ms = self.ctx.started.elapsed().as_millis() as u64,
                "client went away; upstream call cancelled"
            );
        }
    }
}
