//! CPU time and memory of the processes under test, read from /proc: the workspace forbids
//! `unsafe`, so no getrusage, and /proc also reaches the gateway and the mock, which are
//! other processes.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context as _;

/// `None` is this process.
fn proc_dir(pid: Option<u32>) -> String {
    match pid {
        Some(p) => format!("/proc/{p}"),
        None => "/proc/self".to_owned(),
    }
}

/// utime + stime of a process, all threads, in clock ticks.
pub fn cpu_ticks(pid: Option<u32>) -> anyhow::Result<u64> {
    let path = format!("{}/stat", proc_dir(pid));
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    // The command name in field 2 may contain spaces and parentheses: count from its end.
    let rest = text
        .rfind(')')
        .map(|i| &text[i + 1..])
        .with_context(|| format!("{path}: no command name"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    let num = |i: usize| -> anyhow::Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .with_context(|| format!("{path}: field {} missing", i + 3))
    };
    Ok(num(11)? + num(12)?)
}

fn status_kib(pid: Option<u32>, key: &str) -> anyhow::Result<u64> {
    let path = format!("{}/status", proc_dir(pid));
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim_start_matches(':').split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("{path}: no {key}"))
}

/// Resident set size now, in KiB.
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    status_kib(Some(pid), "VmRSS")
}

/// The kernel's own high-water mark of the resident set, in KiB: catches a peak between samples.
pub fn hwm_kib(pid: u32) -> anyhow::Result<u64> {
    status_kib(Some(pid), "VmHWM")
}

/// Clock ticks per second for the /proc CPU fields.
pub fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&t: &u64| t > 0)
        .unwrap_or(100)
}

pub fn nproc() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

pub fn kib_to_mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Samples a process's RSS every 100 ms on its own thread, keeping the peak since the last
/// `take_peak` and over the sampler's whole life, so memory is watched during every run
/// without touching the load generator's hot path.
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    window_peak: Arc<AtomicU64>,
    overall_peak: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl RssSampler {
    pub fn start(pid: u32) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let window_peak = Arc::new(AtomicU64::new(0));
        let overall_peak = Arc::new(AtomicU64::new(0));
        let (s, w, o) = (stop.clone(), window_peak.clone(), overall_peak.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                if let Ok(kib) = rss_kib(pid) {
                    w.fetch_max(kib, Ordering::Relaxed);
                    o.fetch_max(kib, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        RssSampler {
            stop,
            window_peak,
            overall_peak,
            thread: Some(thread),
        }
    }

    /// The peak since the previous call, in KiB; starts a new window.
    pub fn take_peak(&self) -> u64 {
        self.window_peak.swap(0, Ordering::Relaxed)
    }

    pub fn overall_peak(&self) -> u64 {
        self.overall_peak.load(Ordering::Relaxed)
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        assert!(cpu_ticks(None).is_ok());
        let pid = std::process::id();
        assert!(rss_kib(pid).unwrap() > 0);
        assert!(hwm_kib(pid).unwrap() >= rss_kib(pid).unwrap() / 2);
        assert!(clock_ticks() > 0);
    }
}
