//! The load generator: N keep-alive HTTP/1.1 connections, each its own task looping
//! send → read the whole body frame by frame → record. Closed loop (each connection sends
//! again as soon as its answer ends) for throughput and latency; open loop (a ticker releases
//! requests at a fixed rate) for the soak. Samples stay in each connection's own vectors, so
//! the hot path takes no lock, and are merged when the run ends.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use http::header::{CONTENT_TYPE, HOST, HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request};
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use memchr::memmem::Finder;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// One kind of request: where it goes, what it sends, and, for a stream, the bytes that mark
/// a text delta in its answer.
pub struct Target {
    pub addr: SocketAddr,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub delta_marker: Option<&'static [u8]>,
    /// A stream that carries another number of text deltas counts as an error: a gateway that
    /// drops or merges deltas must not look fast for it.
    pub expected_deltas: Option<u64>,
}

impl Target {
    /// A JSON POST with the benchmark's client credentials in both header forms.
    pub fn post(
        addr: SocketAddr,
        path: &str,
        body: &serde_json::Value,
        key: &str,
        extra: &[(&str, String)],
    ) -> anyhow::Result<Target> {
        let mut headers = HeaderMap::new();
        headers.insert(HOST, HeaderValue::from_str(&addr.to_string())?);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {key}"))?,
        );
        headers.insert("x-api-key", HeaderValue::from_str(key)?);
        if path.ends_with("/messages") {
            headers.insert("anthropic-version", HeaderValue::from_static("2023-06-01"));
        }
        for (k, v) in extra {
            headers.insert(
                HeaderName::from_bytes(k.as_bytes())?,
                HeaderValue::from_str(v)?,
            );
        }
        Ok(Target {
            addr,
            path: path.to_owned(),
            headers,
            body: Bytes::from(serde_json::to_vec(body)?),
            delta_marker: None,
            expected_deltas: None,
        })
    }

    /// Marks this target as a stream whose text deltas are recognised by `marker`.
    pub fn stream(mut self, marker: &'static [u8], expected: Option<u64>) -> Target {
        self.delta_marker = Some(marker);
        self.expected_deltas = expected;
        self
    }

    fn request(&self) -> anyhow::Result<Request<Full<Bytes>>> {
        let mut req = Request::new(Full::new(self.body.clone()));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = self.path.parse()?;
        *req.headers_mut() = self.headers.clone();
        Ok(req)
    }
}

/// Text-delta markers as they appear once per event in each dialect's SSE.
pub const ANTHROPIC_DELTA: &[u8] = b"\"text_delta\"";
pub const RESPONSES_DELTA: &[u8] = b"\"response.output_text.delta\"";
pub const CHAT_DELTA: &[u8] = b"\"delta\":{\"content\"";

/// Counts a marker across body frames, including one split between two frames.
struct DeltaCounter {
    finder: Finder<'static>,
    /// The last `marker − 1` bytes seen, where a split marker begins.
    carry: Vec<u8>,
    scratch: Vec<u8>,
}

impl DeltaCounter {
    fn new(marker: &'static [u8]) -> DeltaCounter {
        DeltaCounter {
            finder: Finder::new(marker),
            carry: Vec::with_capacity(marker.len()),
            scratch: Vec::with_capacity(2 * marker.len()),
        }
    }

    fn feed(&mut self, data: &[u8]) -> u64 {
        let keep = self.finder.needle().len().saturating_sub(1);
        self.scratch.clear();
        self.scratch.extend_from_slice(&self.carry);
        self.scratch
            .extend_from_slice(&data[..data.len().min(keep)]);
        // Both parts are shorter than the marker, so a match here straddles the split and is
        // not seen again in `data` alone.
        let mut n = self.finder.find_iter(&self.scratch).count() as u64;
        n += self.finder.find_iter(data).count() as u64;
        self.carry.clear();
        if data.len() >= keep {
            self.carry.extend_from_slice(&data[data.len() - keep..]);
        } else {
            let from = self.scratch.len().saturating_sub(keep);
            self.carry.extend_from_slice(&self.scratch[from..]);
        }
        n
    }
}

/// Everything one connection (or, merged, one run) observed in the measured window.
/// Durations are nanoseconds.
#[derive(Default, Debug)]
pub struct Samples {
    pub ok: u64,
    pub errors: u64,
    /// Non-2xx answers by status.
    pub statuses: BTreeMap<u16, u64>,
    pub first_error: Option<String>,
    pub latency: Vec<u64>,
    pub ttfb: Vec<u64>,
    /// Send → first frame carrying a text delta (streams only).
    pub ttft: Vec<u64>,
    /// Between consecutive frames carrying text deltas (streams only).
    pub gaps: Vec<u64>,
    pub streams: u64,
    pub deltas: u64,
}

impl Samples {
    fn error(&mut self, what: String) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(what);
        }
    }

    pub fn requests(&self) -> u64 {
        self.ok + self.errors
    }

    pub fn merge(&mut self, o: Samples) {
        self.ok += o.ok;
        self.errors += o.errors;
        for (k, v) in o.statuses {
            *self.statuses.entry(k).or_default() += v;
        }
        if self.first_error.is_none() {
            self.first_error = o.first_error;
        }
        self.latency.extend(o.latency);
        self.ttfb.extend(o.ttfb);
        self.ttft.extend(o.ttft);
        self.gaps.extend(o.gaps);
        self.streams += o.streams;
        self.deltas += o.deltas;
    }
}

/// Nearest-rank percentile of a sorted slice, in milliseconds; `None` when empty.
pub fn percentile_ms(sorted_ns: &[u64], p: f64) -> Option<f64> {
    if sorted_ns.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted_ns.len() as f64).ceil() as usize;
    let i = rank.clamp(1, sorted_ns.len()) - 1;
    Some(sorted_ns[i] as f64 / 1e6)
}

async fn connect(addr: SocketAddr) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let tcp = TcpStream::connect(addr)
        .await
        .with_context(|| format!("cannot connect to {addr}"))?;
    tcp.set_nodelay(true)?;
    let (sender, conn) = http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(async move {
        // Ends when the sender is dropped or the peer closes; the error shows at the sender.
        let _ = conn.await;
    });
    Ok(sender)
}

/// One request on an open connection. `Err` means the connection is unusable.
async fn exchange(
    tx: &mut SendRequest<Full<Bytes>>,
    target: &Target,
    record: bool,
    s: &mut Samples,
) -> anyhow::Result<()> {
    let req = target.request()?;
    tx.ready().await?;
    let t0 = Instant::now();
    let resp = tx.send_request(req).await?;
    let status = resp.status();
    let mut body = resp.into_body();
    let mut counter = target.delta_marker.map(DeltaCounter::new);
    let mut first_frame = None;
    let mut first_delta = None;
    let mut last_delta: Option<Instant> = None;
    let mut deltas = 0u64;
    let mut error_text = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let now = Instant::now();
        first_frame.get_or_insert(now);
        if !status.is_success() {
            if error_text.len() < 300 {
                error_text.extend_from_slice(&data[..data.len().min(300)]);
            }
            continue;
        }
        if let Some(c) = counter.as_mut() {
            let n = c.feed(&data);
            if n > 0 {
                deltas += n;
                first_delta.get_or_insert(now);
                if record && let Some(prev) = last_delta {
                    s.gaps.push((now - prev).as_nanos() as u64);
                }
                last_delta = Some(now);
            }
        }
    }
    let end = Instant::now();
    if !record {
        return Ok(());
    }
    if !status.is_success() {
        *s.statuses.entry(status.as_u16()).or_default() += 1;
        s.error(format!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(&error_text)
        ));
        return Ok(());
    }
    if target.delta_marker.is_some() {
        s.streams += 1;
        s.deltas += deltas;
        if let Some(ft) = first_delta {
            s.ttft.push((ft - t0).as_nanos() as u64);
        }
        if let Some(want) = target.expected_deltas
            && deltas != want
        {
            s.error(format!(
                "stream carried {deltas} text deltas, expected {want}"
            ));
            return Ok(());
        }
    }
    s.ok += 1;
    s.latency.push((end - t0).as_nanos() as u64);
    s.ttfb
        .push((first_frame.unwrap_or(end) - t0).as_nanos() as u64);
    Ok(())
}

/// Sends `target` `n` times, one after another on one connection, and fails on the first
/// answer that is not a clean success: for counting the work a request costs, not timing it.
pub async fn sequential(target: &Target, n: usize) -> anyhow::Result<()> {
    let mut tx = connect(target.addr).await?;
    let mut s = Samples::default();
    for _ in 0..n {
        exchange(&mut tx, target, true, &mut s).await?;
        if let Some(e) = s.first_error.take() {
            anyhow::bail!("{e}");
        }
    }
    Ok(())
}

/// When a run measures, and whether requests are released by a ticker.
#[derive(Clone)]
struct Window {
    start: Instant,
    end: Instant,
    permits: Option<Arc<Semaphore>>,
}

async fn connection(targets: Arc<[Target]>, offset: usize, w: Window) -> Samples {
    let mut s = Samples::default();
    let mut tx: Option<SendRequest<Full<Bytes>>> = None;
    let mut i = offset;
    loop {
        if Instant::now() >= w.end {
            break;
        }
        if let Some(p) = &w.permits {
            let deadline = tokio::time::Instant::from_std(w.end);
            tokio::select! {
                permit = p.acquire() => match permit {
                    Ok(permit) => permit.forget(),
                    Err(_) => break,
                },
                _ = tokio::time::sleep_until(deadline) => break,
            }
            if Instant::now() >= w.end {
                break;
            }
        }
        let target = &targets[i % targets.len()];
        i += 1;
        let sender = match tx.as_mut() {
            Some(t) => t,
            None => match connect(target.addr).await {
                Ok(t) => tx.insert(t),
                Err(e) => {
                    if Instant::now() >= w.start {
                        s.error(format!("{e:#}"));
                    }
                    // A refused connect returns at once: do not spin on it.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let record = Instant::now() >= w.start;
        if let Err(e) = exchange(sender, target, record, &mut s).await {
            if record {
                s.error(format!("{e:#}"));
            }
            tx = None;
        }
    }
    s
}

/// How a run loads its targets.
pub struct Plan {
    pub concurrency: usize,
    pub warmup: Duration,
    pub duration: Duration,
    /// Open loop at this many requests per second, across all connections; `None`: closed loop.
    pub rate: Option<f64>,
    /// Connection k starts k/N of this late. Paced streams all take the same time, so without
    /// it every connection's events would land in the same instant, forever, and the gateway
    /// would be measured on a 16-way burst that real traffic does not have.
    pub stagger: Duration,
}

pub struct Outcome<S> {
    pub samples: Samples,
    /// From the start of the measured window until the last connection finished its last
    /// request (requests in flight at the deadline are waited for, like `oha -w`).
    pub elapsed: Duration,
    /// What `at_start` returned at the start of the measured window.
    pub at_start: S,
    /// Open loop only: releases the connections could not keep up with.
    pub backlog: u64,
}

/// Runs `plan` against `targets` (connection k starts at target k and goes round robin),
/// calling `at_start` when the measured window opens (to take CPU readings).
pub async fn run<S>(targets: Vec<Target>, plan: &Plan, at_start: impl FnOnce() -> S) -> Outcome<S> {
    let targets: Arc<[Target]> = targets.into();
    let begin = Instant::now();
    let w = Window {
        start: begin + plan.warmup,
        end: begin + plan.warmup + plan.duration,
        permits: plan.rate.map(|_| Arc::new(Semaphore::new(0))),
    };
    let mut set = JoinSet::new();
    let n = plan.concurrency.max(1);
    for k in 0..n {
        let delay = plan.stagger.mul_f64(k as f64 / n as f64);
        let (targets, w) = (targets.clone(), w.clone());
        set.spawn(async move {
            tokio::time::sleep(delay).await;
            connection(targets, k, w).await
        });
    }
    let ticker = match (&w.permits, plan.rate) {
        (Some(p), Some(rate)) => Some(tokio::spawn(release(p.clone(), rate, begin, w.end))),
        _ => None,
    };
    tokio::time::sleep_until(tokio::time::Instant::from_std(w.start)).await;
    let first = at_start();
    let mut samples = Samples::default();
    while let Some(r) = set.join_next().await {
        match r {
            Ok(s) => samples.merge(s),
            Err(e) => samples.error(format!("load task failed: {e}")),
        }
    }
    let elapsed = w.start.elapsed();
    let mut backlog = 0;
    if let Some(t) = ticker {
        t.abort();
    }
    if let Some(p) = &w.permits {
        backlog = p.available_permits() as u64;
        p.close();
    }
    Outcome {
        samples,
        elapsed,
        at_start: first,
        backlog,
    }
}

/// Adds permits so that `rate × elapsed` requests have been released at every tick: ticks
/// may come late, the total does not drift.
async fn release(p: Arc<Semaphore>, rate: f64, begin: Instant, end: Instant) {
    let mut released = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while Instant::now() < end {
        tick.tick().await;
        let elapsed = begin.elapsed().min(end - begin);
        let due = (elapsed.as_secs_f64() * rate) as u64;
        if due > released {
            p.add_permits((due - released) as usize);
            released = due;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<u64> = (1..=100).map(|i| i * 1_000_000).collect();
        assert_eq!(percentile_ms(&v, 50.0), Some(50.0));
        assert_eq!(percentile_ms(&v, 90.0), Some(90.0));
        assert_eq!(percentile_ms(&v, 99.0), Some(99.0));
        assert_eq!(percentile_ms(&v, 100.0), Some(100.0));
        assert_eq!(percentile_ms(&v, 0.0), Some(1.0));
        assert_eq!(percentile_ms(&[7_000_000], 99.0), Some(7.0));
        assert_eq!(percentile_ms(&[], 50.0), None);
        let v = [1_000_000, 2_000_000, 3_000_000];
        assert_eq!(percentile_ms(&v, 50.0), Some(2.0));
    }

    #[test]
    fn delta_counter_sees_markers_split_across_frames() {
        let text = b"xx\"text_delta\"yy\"text_delta\"\"text_delta\"z";
        for split in 0..text.len() {
            let mut c = DeltaCounter::new(ANTHROPIC_DELTA);
            let n = c.feed(&text[..split]) + c.feed(&text[split..]);
            assert_eq!(n, 3, "split at {split}");
        }
        let mut c = DeltaCounter::new(ANTHROPIC_DELTA);
        let n: u64 = text.iter().map(|b| c.feed(std::slice::from_ref(b))).sum();
        assert_eq!(n, 3);
    }
}
