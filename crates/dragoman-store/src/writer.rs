//! The background writers: take usage records, and stored responses, off the request path
//! without ever making a request wait on the database, batch them, and keep them through store
//! outages. Both kinds share one implementation, generic over what is written.
//!
//! Records sit in one bounded in-memory buffer until written. A failed batch stays where it is
//! (still counting toward the bound) and is retried with backoff, so nothing is lost while the
//! store is down unless the bound overflows, and every overflow is counted and logged.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use dragoman_accounting::UsageRecord;
use serde::Serialize;
use tokio::sync::{Notify, watch};

use crate::error::StoreError;
use crate::responses::StoredResponse;
use crate::store::Store;

type Write<'a> = Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send + 'a>>;

/// Where batches go: the [`Store`], or a test double that fails or hangs on demand.
pub trait Sink: Send + Sync {
    /// Stores `records` all or nothing; must tolerate the same records again after an error
    /// (the writer retries a batch whose outcome it could not see).
    fn insert_batch<'a>(
        &'a self,
        records: &'a [UsageRecord],
    ) -> Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send + 'a>>;
}

impl Sink for Store {
    fn insert_batch<'a>(
        &'a self,
        records: &'a [UsageRecord],
    ) -> Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send + 'a>> {
        Box::pin(Store::insert_batch(self, records))
    }
}

/// Where a writer's batches go, whatever it carries: usage records through the public [`Sink`]
/// (which tests replace), responses straight to the store. Must tolerate the same batch again
/// after an error.
trait Batches<T>: Send + Sync {
    fn write<'a>(&'a self, batch: &'a [T]) -> Write<'a>;
}

struct UsageSink(Arc<dyn Sink>);

impl Batches<UsageRecord> for UsageSink {
    fn write<'a>(&'a self, batch: &'a [UsageRecord]) -> Write<'a> {
        self.0.insert_batch(batch)
    }
}

/// `put_responses` replaces by id, so a retried batch is harmless.
struct ResponseSink(Arc<Store>);

impl Batches<StoredResponse> for ResponseSink {
    fn write<'a>(&'a self, batch: &'a [StoredResponse]) -> Write<'a> {
        Box::pin(self.0.put_responses(batch))
    }
}

/// Names for a writer's log lines, so an operator can tell which buffer is in trouble.
struct Kind {
    writer: &'static str,
    one: &'static str,
    many: &'static str,
}

const USAGE: Kind = Kind {
    writer: "usage",
    one: "usage record",
    many: "usage records",
};

const RESPONSES: Kind = Kind {
    writer: "response",
    one: "stored response",
    many: "stored responses",
};

/// Tuning of [`spawn_writer`] and [`spawn_response_writer`]. The defaults suit usage records;
/// a response can weigh hundreds of KiB, so a response writer wants a far smaller `capacity`.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// Records held in memory at most, a batch being retried included; beyond it new records
    /// are dropped and counted. 100 000 records is some tens of MiB.
    pub capacity: usize,
    /// Records per insert.
    pub batch_size: usize,
    /// How long a partial batch may wait for company before it is written.
    pub flush_interval: Duration,
    /// The first pause after a failed insert; it doubles after each further failure...
    pub retry_backoff: Duration,
    /// ...up to this.
    pub retry_backoff_max: Duration,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            capacity: 100_000,
            batch_size: 500,
            flush_interval: Duration::from_millis(200),
            retry_backoff: Duration::from_millis(100),
            retry_backoff_max: Duration::from_secs(5),
        }
    }
}

/// A snapshot of the writer's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct WriterStats {
    /// Records accepted but not yet written, a batch being retried included. After
    /// [`Writer::close`] these are the records lost to the deadline.
    pub backlog: usize,
    /// Records refused because the buffer was full or the writer closed.
    pub dropped: u64,
    /// Records the sink accepted.
    pub written: u64,
    /// Inserts that failed (each retry of a batch counts).
    pub failed_attempts: u64,
}

/// Logging every dropped record would flood the log exactly when the system is in trouble.
const DROP_WARNING_EVERY: Duration = Duration::from_secs(10);

/// After the deadline the task is told to stop; this is how long `close` then waits for it to
/// let go of the batch before reading the final counters.
const ABORT_GRACE: Duration = Duration::from_millis(100);

/// The handle the request path records through. Cloning is cheap; when the last clone is
/// dropped the task writes what is buffered and ends.
#[derive(Clone)]
pub struct Writer {
    handle: Arc<Handle<UsageRecord>>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("stats", &self.stats())
            .finish()
    }
}

/// The handle the gateway stores responses through, the twin of [`Writer`]. Cloning is cheap;
/// when the last clone is dropped the task writes what is buffered and ends.
#[derive(Clone)]
pub struct ResponseWriter {
    handle: Arc<Handle<StoredResponse>>,
}

impl std::fmt::Debug for ResponseWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseWriter")
            .field("stats", &self.stats())
            .finish()
    }
}

/// Closes the buffer when the last writer clone goes away, so the task does not wait forever.
struct Handle<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Drop for Handle<T> {
    fn drop(&mut self) {
        self.shared.close_buffer();
    }
}

struct Shared<T> {
    buffer: Mutex<Buffer<T>>,
    kind: Kind,
    /// Wakes the task early: a full batch is waiting, or the writer closed.
    wake: Notify,
    /// Wakes the idle task: the first record after an empty spell, or the writer closed. An
    /// idle writer sleeps on this alone, so an idle gateway is not woken five times a second.
    arrived: Notify,
    capacity: usize,
    batch_size: usize,
    dropped: AtomicU64,
    written: AtomicU64,
    failed_attempts: AtomicU64,
    /// Set when `close` runs out of time: the task gives up the batch it is retrying.
    abort: watch::Sender<bool>,
    /// Set when the task has ended, however it ended.
    done: watch::Sender<bool>,
}

struct Buffer<T> {
    pending: VecDeque<T>,
    /// Records taken by the task and not yet written.
    in_flight: usize,
    closed: bool,
    last_drop_warning: Option<Instant>,
}

impl<T> Shared<T> {
    /// Never fails: a poisoned lock only means some thread panicked while holding it, and the
    /// counters and queue it protects are still consistent after every statement.
    fn lock(&self) -> MutexGuard<'_, Buffer<T>> {
        self.buffer.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn close_buffer(&self) {
        self.lock().closed = true;
        self.wake.notify_one();
        self.arrived.notify_one();
    }

    fn stats(&self) -> WriterStats {
        let buffer = self.lock();
        WriterStats {
            backlog: buffer.pending.len() + buffer.in_flight,
            dropped: self.dropped.load(Ordering::Relaxed),
            written: self.written.load(Ordering::Relaxed),
            failed_attempts: self.failed_attempts.load(Ordering::Relaxed),
        }
    }
}

/// Starts the background task (on the current tokio runtime) that writes what `Writer::record`
/// buffers into `sink`. The handle ends after [`Writer::close`] or once every `Writer` clone is
/// dropped and the buffer is written.
pub fn spawn_writer(
    sink: Arc<dyn Sink>,
    opts: WriterOptions,
) -> (Writer, tokio::task::JoinHandle<()>) {
    let (handle, task) = spawn(Arc::new(UsageSink(sink)), opts, USAGE);
    (Writer { handle }, task)
}

/// Starts the background task (on the current tokio runtime) that writes what
/// `ResponseWriter::try_send` buffers into `store`, in batches of `opts.batch_size` or every
/// `opts.flush_interval`. The handle ends after [`ResponseWriter::close`] or once every
/// `ResponseWriter` clone is dropped and the buffer is written.
pub fn spawn_response_writer(
    store: Arc<Store>,
    opts: WriterOptions,
) -> (ResponseWriter, tokio::task::JoinHandle<()>) {
    let (handle, task) = spawn(Arc::new(ResponseSink(store)), opts, RESPONSES);
    (ResponseWriter { handle }, task)
}

fn spawn<T: Send + Sync + 'static>(
    sink: Arc<dyn Batches<T>>,
    opts: WriterOptions,
    kind: Kind,
) -> (Arc<Handle<T>>, tokio::task::JoinHandle<()>) {
    let shared = Arc::new(Shared {
        buffer: Mutex::new(Buffer {
            pending: VecDeque::new(),
            in_flight: 0,
            closed: false,
            last_drop_warning: None,
        }),
        kind,
        wake: Notify::new(),
        arrived: Notify::new(),
        capacity: opts.capacity,
        batch_size: opts.batch_size.max(1),
        dropped: AtomicU64::new(0),
        written: AtomicU64::new(0),
        failed_attempts: AtomicU64::new(0),
        abort: watch::Sender::new(false),
        done: watch::Sender::new(false),
    });
    let task = tokio::spawn(run(Arc::clone(&shared), sink, opts));
    (Arc::new(Handle { shared }), task)
}

impl Writer {
    /// Buffers `rec` for writing. Never blocks or awaits: it is called on the request path.
    /// When the buffer is full, or the writer is closed, the record is dropped and counted.
    pub fn record(&self, rec: UsageRecord) {
        self.handle.shared.push(rec);
    }

    /// The current counters.
    pub fn stats(&self) -> WriterStats {
        self.handle.shared.stats()
    }

    /// Stops accepting records (later `record` calls count as dropped), writes everything
    /// buffered, retrying failures until `deadline`, and returns the final counters. A
    /// non-zero `backlog` in the result is what the deadline cut off.
    pub async fn close(self, deadline: Duration) -> WriterStats {
        close(self.handle, deadline).await
    }
}

impl ResponseWriter {
    /// Buffers `r` for writing; false when it was dropped (and counted) because the buffer is
    /// full or the writer closed. Never blocks or awaits: it is called on the request path.
    pub fn try_send(&self, r: StoredResponse) -> bool {
        self.handle.shared.push(r)
    }

    /// Responses refused so far.
    pub fn dropped(&self) -> u64 {
        self.handle.shared.dropped.load(Ordering::Relaxed)
    }

    /// The current counters.
    pub fn stats(&self) -> WriterStats {
        self.handle.shared.stats()
    }

    /// Stops accepting responses (later `try_send` calls return false and count as dropped),
    /// writes everything buffered, retrying failures until `deadline`, and returns the final
    /// counters. A non-zero `backlog` in the result is what the deadline cut off.
    pub async fn close(self, deadline: Duration) -> WriterStats {
        close(self.handle, deadline).await
    }
}

impl<T> Shared<T> {
    fn push(&self, item: T) -> bool {
        let mut warning = None;
        let mut wake = false;
        let mut first = false;
        let accepted;
        {
            let mut buffer = self.lock();
            accepted = !(buffer.closed || buffer.pending.len() + buffer.in_flight >= self.capacity);
            if accepted {
                buffer.pending.push_back(item);
                wake = buffer.pending.len() >= self.batch_size;
                first = buffer.pending.len() == 1;
            } else {
                let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                let now = Instant::now();
                let due = buffer
                    .last_drop_warning
                    .is_none_or(|last| now.duration_since(last) >= DROP_WARNING_EVERY);
                if due {
                    buffer.last_drop_warning = Some(now);
                    warning = Some((dropped, buffer.closed));
                }
            }
        }
        if wake {
            self.wake.notify_one();
        }
        if first {
            self.arrived.notify_one();
        }
        let kind = &self.kind;
        match warning {
            Some((dropped, true)) => tracing::warn!(
                dropped_total = dropped,
                "{} writer is closed: {} dropped",
                kind.writer,
                kind.one
            ),
            Some((dropped, false)) => tracing::warn!(
                dropped_total = dropped,
                capacity = self.capacity,
                "{} buffer full (the store is down or too slow): {} are being dropped",
                kind.writer,
                kind.many
            ),
            None => {}
        }
        accepted
    }
}

async fn close<T>(handle: Arc<Handle<T>>, deadline: Duration) -> WriterStats {
    let shared = Arc::clone(&handle.shared);
    shared.close_buffer();
    drop(handle);
    let mut done = shared.done.subscribe();
    let finished = tokio::time::timeout(deadline, done.wait_for(|d| *d))
        .await
        .is_ok();
    if !finished {
        shared.abort.send_replace(true);
        let _ = tokio::time::timeout(ABORT_GRACE, done.wait_for(|d| *d)).await;
        let stats = shared.stats();
        tracing::error!(
            lost = stats.backlog,
            written = stats.written,
            "{} writer closed at its deadline with records still unwritten",
            shared.kind.writer
        );
        return stats;
    }
    shared.stats()
}

/// Marks the task finished however it ends (returned, aborted, or its future dropped), so
/// `close` never waits on a task that is gone.
struct DoneGuard<T>(Arc<Shared<T>>);

impl<T> Drop for DoneGuard<T> {
    fn drop(&mut self) {
        self.0.done.send_replace(true);
    }
}

async fn run<T>(shared: Arc<Shared<T>>, sink: Arc<dyn Batches<T>>, opts: WriterOptions) {
    let _done = DoneGuard(Arc::clone(&shared));
    let mut abort = shared.abort.subscribe();
    let mut batch: Vec<T> = Vec::new();
    loop {
        let (full, closed, empty) = {
            let buffer = shared.lock();
            (
                buffer.pending.len() >= shared.batch_size,
                buffer.closed,
                buffer.pending.is_empty(),
            )
        };
        if empty && !closed {
            // Nothing to write: sleep until something is (a stale permit from a record taken
            // in the last batch only costs one empty turn).
            shared.arrived.notified().await;
            continue;
        }
        if !full && !closed {
            tokio::select! {
                _ = shared.wake.notified() => {}
                _ = tokio::time::sleep(opts.flush_interval) => {}
            }
        }
        let closed = {
            let mut buffer = shared.lock();
            let n = shared.batch_size.min(buffer.pending.len());
            batch.extend(buffer.pending.drain(..n));
            buffer.in_flight = batch.len();
            buffer.closed
        };
        if batch.is_empty() {
            if closed {
                return;
            }
            continue;
        }
        if !write_with_retry(&shared, sink.as_ref(), &batch, &opts, &mut abort).await {
            return;
        }
        batch.clear();
    }
}

/// Writes `batch` until it succeeds (true) or `close` gives up on it (false).
async fn write_with_retry<T>(
    shared: &Shared<T>,
    sink: &dyn Batches<T>,
    batch: &[T],
    opts: &WriterOptions,
    abort: &mut watch::Receiver<bool>,
) -> bool {
    let mut backoff = opts.retry_backoff;
    let mut failures: u64 = 0;
    loop {
        let result = tokio::select! {
            r = sink.write(batch) => r,
            _ = abort.wait_for(|a| *a) => return false,
        };
        match result {
            Ok(()) => {
                {
                    // Under the lock so `stats` never sees a batch both in flight and written.
                    let mut buffer = shared.lock();
                    shared
                        .written
                        .fetch_add(batch.len() as u64, Ordering::Relaxed);
                    buffer.in_flight = 0;
                }
                if failures > 0 {
                    tracing::info!(
                        failed_attempts = failures,
                        records = batch.len(),
                        "{} store is back: buffered {} written",
                        shared.kind.writer,
                        shared.kind.many
                    );
                }
                return true;
            }
            Err(error) => {
                shared.failed_attempts.fetch_add(1, Ordering::Relaxed);
                failures += 1;
                // One line per outage, not per retry.
                if failures == 1 {
                    tracing::warn!(
                        %error,
                        records = batch.len(),
                        "writing {} failed; keeping them in memory and retrying",
                        shared.kind.many
                    );
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = abort.wait_for(|a| *a) => return false,
                }
                backoff = (backoff * 2).min(opts.retry_backoff_max.max(opts.retry_backoff));
            }
        }
    }
}
