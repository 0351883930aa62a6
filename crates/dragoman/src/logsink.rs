//! Where log lines go: standard error, written by a thread of its own every 20 ms, so no
//! request thread waits on a write and no line wakes another thread. A system call per line
//! (and, with a channel-fed writer thread, a wake-up per line) was most of what a request's
//! log line cost under load.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// Past this many bytes waiting, lines are dropped (and counted) rather than memory grown.
const MAX_PENDING: usize = 16 << 20;
const EVERY: Duration = Duration::from_millis(20);

#[derive(Default)]
struct Shared {
    buf: Mutex<Vec<u8>>,
    stop: Mutex<bool>,
    wake: Condvar,
    dropped: AtomicU64,
}

/// The `MakeWriter` of the subscriber: each line is appended to the shared buffer.
#[derive(Clone)]
pub struct Sink(Arc<Shared>);

/// Flushes what is waiting and stops the writer thread when dropped (at the end of `serve`).
pub struct Guard {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

pub fn stderr() -> (Sink, Guard) {
    let shared = Arc::new(Shared::default());
    let s = shared.clone();
    let thread = std::thread::Builder::new()
        .name("dragoman-log".into())
        .spawn(move || {
            let mut out = Vec::new();
            loop {
                let stopping = {
                    let stop = s.stop.lock().unwrap_or_else(|e| e.into_inner());
                    let (stop, _) = s
                        .wake
                        .wait_timeout(stop, EVERY)
                        .unwrap_or_else(|e| e.into_inner());
                    *stop
                };
                if let Ok(mut b) = s.buf.lock() {
                    std::mem::swap(&mut *b, &mut out);
                }
                let n = s.dropped.swap(0, Ordering::Relaxed);
                if n > 0 {
                    out.extend_from_slice(
                        format!("{n} log lines were dropped: standard error could not keep up\n")
                            .as_bytes(),
                    );
                }
                if !out.is_empty() {
                    let mut e = std::io::stderr().lock();
                    let _ = e.write_all(&out);
                    let _ = e.flush();
                    out.clear();
                }
                if stopping {
                    return;
                }
            }
        })
        .ok();
    (Sink(shared.clone()), Guard { shared, thread })
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Ok(mut s) = self.shared.stop.lock() {
            *s = true;
        }
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Write for Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        match self.0.buf.lock() {
            Ok(mut buf) if buf.len() + b.len() <= MAX_PENDING => buf.extend_from_slice(b),
            _ => {
                self.0.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Sink {
    type Writer = Sink;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_kept_in_order_and_flushed_when_the_guard_drops() {
        let (mut sink, guard) = stderr();
        for i in 0..1000 {
            let _ = writeln!(sink, "line {i}");
        }
        let pending = sink.0.buf.lock().map(|b| b.len()).unwrap_or(0);
        assert!(pending <= 1000 * 10);
        drop(guard);
        assert_eq!(sink.0.buf.lock().map(|b| b.len()).unwrap_or(1), 0);
    }
}
