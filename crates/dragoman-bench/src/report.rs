//! The results of a benchmark as data (results.json, every number) and as Markdown
//! (results.md and standard output, the numbers a reader compares), kept in one place so the
//! two cannot disagree.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;
use serde::Serialize;

use crate::load::{Samples, percentile_ms};

/// CPU seconds a process spent in a run's measured window.
#[derive(Serialize, Clone, Copy, Default, Debug)]
pub struct Cpu {
    pub gateway_s: Option<f64>,
    pub mock_s: Option<f64>,
    pub loadgen_s: Option<f64>,
}

/// One load run: one scenario, one target, one concurrency.
#[derive(Serialize, Clone, Debug)]
pub struct RunResult {
    pub scenario: String,
    pub target: String,
    pub concurrency: usize,
    pub requests: u64,
    pub ok: u64,
    pub errors: u64,
    /// Non-2xx answers by status code.
    pub statuses: BTreeMap<String, u64>,
    pub first_error: Option<String>,
    pub window_s: f64,
    pub rps: f64,
    pub p50_ms: Option<f64>,
    pub p90_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub ttfb_p50_ms: Option<f64>,
    pub ttfb_p99_ms: Option<f64>,
    pub streams: u64,
    pub deltas_per_stream: Option<f64>,
    pub ttft_p50_ms: Option<f64>,
    pub ttft_p99_ms: Option<f64>,
    pub gap_p50_ms: Option<f64>,
    pub gap_p99_ms: Option<f64>,
    pub gaps: u64,
    pub cpu: Cpu,
    pub gateway_cpu_us_per_req: Option<f64>,
    pub mock_cpu_us_per_req: Option<f64>,
    pub loadgen_cpu_us_per_req: Option<f64>,
    pub gateway_peak_rss_mib: Option<f64>,
}

fn round(v: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (v * f).round() / f
}

fn per_req_us(cpu_s: Option<f64>, n: u64) -> Option<f64> {
    cpu_s
        .filter(|_| n > 0)
        .map(|s| round(s * 1e6 / n as f64, 1))
}

impl RunResult {
    pub fn new(
        scenario: &str,
        target: &str,
        concurrency: usize,
        mut s: Samples,
        window_s: f64,
        cpu: Cpu,
        gateway_peak_rss_mib: Option<f64>,
    ) -> RunResult {
        for v in [&mut s.latency, &mut s.ttfb, &mut s.ttft, &mut s.gaps] {
            v.sort_unstable();
        }
        let ms = |v: &[u64], p| percentile_ms(v, p).map(|x| round(x, 3));
        let requests = s.requests();
        RunResult {
            scenario: scenario.to_owned(),
            target: target.to_owned(),
            concurrency,
            requests,
            ok: s.ok,
            errors: s.errors,
            statuses: s
                .statuses
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            first_error: s.first_error.clone(),
            window_s: round(window_s, 3),
            rps: if window_s > 0.0 {
                round(s.ok as f64 / window_s, 1)
            } else {
                0.0
            },
            p50_ms: ms(&s.latency, 50.0),
            p90_ms: ms(&s.latency, 90.0),
            p99_ms: ms(&s.latency, 99.0),
            ttfb_p50_ms: ms(&s.ttfb, 50.0),
            ttfb_p99_ms: ms(&s.ttfb, 99.0),
            streams: s.streams,
            deltas_per_stream: (s.streams > 0)
                .then(|| round(s.deltas as f64 / s.streams as f64, 2)),
            ttft_p50_ms: ms(&s.ttft, 50.0),
            ttft_p99_ms: ms(&s.ttft, 99.0),
            gap_p50_ms: ms(&s.gaps, 50.0),
            gap_p99_ms: ms(&s.gaps, 99.0),
            gaps: s.gaps.len() as u64,
            cpu,
            gateway_cpu_us_per_req: per_req_us(cpu.gateway_s, requests),
            mock_cpu_us_per_req: per_req_us(cpu.mock_s, requests),
            loadgen_cpu_us_per_req: per_req_us(cpu.loadgen_s, requests),
            gateway_peak_rss_mib: gateway_peak_rss_mib.map(|v| round(v, 1)),
        }
    }
}

fn diff(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    Some(round(a? - b?, 3))
}

/// Direct and gateway at one scenario and concurrency, and what the gateway adds.
#[derive(Serialize, Clone, Debug)]
pub struct Row {
    pub scenario: String,
    pub concurrency: usize,
    pub direct: Option<RunResult>,
    pub gateway: Option<RunResult>,
    pub pct_of_direct: Option<f64>,
    pub added_p50_ms: Option<f64>,
    pub added_p99_ms: Option<f64>,
}

impl Row {
    pub fn new(
        scenario: &str,
        concurrency: usize,
        direct: Option<RunResult>,
        gateway: Option<RunResult>,
    ) -> Row {
        let (d, g) = (direct.as_ref(), gateway.as_ref());
        Row {
            scenario: scenario.to_owned(),
            concurrency,
            pct_of_direct: match (d, g) {
                (Some(d), Some(g)) if d.rps > 0.0 => Some(round(100.0 * g.rps / d.rps, 1)),
                _ => None,
            },
            added_p50_ms: diff(g.and_then(|g| g.p50_ms), d.and_then(|d| d.p50_ms)),
            added_p99_ms: diff(g.and_then(|g| g.p99_ms), d.and_then(|d| d.p99_ms)),
            direct,
            gateway,
        }
    }
}

/// Streams with model-like pacing: what the gateway adds to time to first token and to the
/// gaps between tokens.
#[derive(Serialize, Clone, Debug)]
pub struct Paced {
    pub concurrency: usize,
    pub duration_s: f64,
    pub ttft_ms: u64,
    pub gap_ms: u64,
    pub direct: Option<RunResult>,
    pub gateway: Option<RunResult>,
    pub added_ttft_p50_ms: Option<f64>,
    pub added_gap_p99_ms: Option<f64>,
}

impl Paced {
    pub fn new(
        concurrency: usize,
        duration_s: f64,
        ttft_ms: u64,
        gap_ms: u64,
        direct: Option<RunResult>,
        gateway: Option<RunResult>,
    ) -> Paced {
        let (d, g) = (direct.as_ref(), gateway.as_ref());
        Paced {
            concurrency,
            duration_s,
            ttft_ms,
            gap_ms,
            added_ttft_p50_ms: diff(g.and_then(|g| g.ttft_p50_ms), d.and_then(|d| d.ttft_p50_ms)),
            added_gap_p99_ms: diff(g.and_then(|g| g.gap_p99_ms), d.and_then(|d| d.gap_p99_ms)),
            direct,
            gateway,
        }
    }
}

/// A long open-loop run watching the gateway's memory.
#[derive(Serialize, Clone, Debug)]
pub struct Soak {
    pub minutes: f64,
    pub rate: f64,
    pub connections: usize,
    pub run: RunResult,
    /// Releases the connections could not keep up with at the end.
    pub backlog: u64,
    /// (seconds into the measured window, RSS MiB), every 10 s.
    pub rss_series_mib: Vec<(f64, f64)>,
    /// Mean RSS of the last minute minus mean RSS of minute 2; needs two minutes or more.
    pub growth_mib: Option<f64>,
    pub max_rss_mib: Option<f64>,
}

impl Soak {
    pub fn growth(series: &[(f64, f64)], total_s: f64) -> Option<f64> {
        let mean = |lo: f64, hi: f64| {
            let v: Vec<f64> = series
                .iter()
                .filter(|(t, _)| *t >= lo && *t <= hi)
                .map(|(_, m)| *m)
                .collect();
            (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
        };
        if total_s < 120.0 {
            return None;
        }
        Some(round(
            mean(total_s - 60.0, total_s)? - mean(60.0, 119.999)?,
            2,
        ))
    }
}

/// The whole benchmark.
#[derive(Serialize, Clone, Debug)]
pub struct Results {
    pub date: String,
    pub nproc: usize,
    pub clk_tck: u64,
    pub gateway_bin: Option<String>,
    pub store: bool,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub concurrency: Vec<usize>,
    pub mock_chunks: usize,
    pub startup_ms: Option<f64>,
    pub idle_rss_mib: Option<f64>,
    /// Highest RSS sampled every 100 ms over the whole benchmark.
    pub peak_rss_mib: Option<f64>,
    /// The kernel's high-water mark (VmHWM) at the end, which no sampling can miss.
    pub hwm_rss_mib: Option<f64>,
    pub end_rss_mib: Option<f64>,
    /// RSS `settle_s` after the last run, once the burst's memory could be given back.
    #[serde(default)]
    pub settled_rss_mib: Option<f64>,
    #[serde(default)]
    pub settle_s: Option<f64>,
    pub runs: Vec<Row>,
    pub paced: Option<Paced>,
    pub soak: Option<Soak>,
}

fn f(v: Option<f64>, digits: usize) -> String {
    match v {
        Some(x) => format!("{x:.digits$}"),
        None => "–".to_owned(),
    }
}

fn errs(r: Option<&RunResult>) -> String {
    r.map_or("–".to_owned(), |r| r.errors.to_string())
}

impl Results {
    pub fn markdown(&self) -> String {
        let mut m = String::new();
        let _ = writeln!(m, "# dragoman load benchmark\n");
        let closed = if self.runs.is_empty() {
            String::new()
        } else {
            format!(
                " closed loop, {} s per run after {} s warm-up;",
                self.duration_s, self.warmup_s
            )
        };
        let _ = writeln!(
            m,
            "{}; {} CPUs; gateway `{}`; accounting store {};{closed} mock streams {} text deltas.\n",
            self.date,
            self.nproc,
            self.gateway_bin.as_deref().unwrap_or("–"),
            if self.store { "on (SQLite)" } else { "off" },
            self.mock_chunks,
        );
        if !self.runs.is_empty() {
            let _ = writeln!(
                m,
                "| scenario | c | direct req/s | gateway req/s | % of direct | direct p50/p99 ms | gateway p50/p99 ms | +p50 ms | +p99 ms | gw TTFB p50 ms | gw CPU µs/req | mock CPU µs/req | errors d/g |"
            );
            let _ = writeln!(m, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
            for r in &self.runs {
                let (d, g) = (r.direct.as_ref(), r.gateway.as_ref());
                let lat = |x: Option<&RunResult>| {
                    x.map_or("–".to_owned(), |x| {
                        format!("{} / {}", f(x.p50_ms, 2), f(x.p99_ms, 2))
                    })
                };
                let _ = writeln!(
                    m,
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {}/{} |",
                    r.scenario,
                    r.concurrency,
                    f(d.map(|d| d.rps), 0),
                    f(g.map(|g| g.rps), 0),
                    r.pct_of_direct
                        .map_or("–".to_owned(), |p| format!("{p:.1}%")),
                    lat(d),
                    lat(g),
                    f(r.added_p50_ms, 3),
                    f(r.added_p99_ms, 3),
                    f(g.and_then(|g| g.ttfb_p50_ms), 3),
                    f(g.and_then(|g| g.gateway_cpu_us_per_req), 0),
                    f(g.or(d).and_then(|x| x.mock_cpu_us_per_req), 0),
                    errs(d),
                    errs(g),
                );
            }
            let _ = writeln!(m);
        }
        if let Some(p) = &self.paced {
            let _ = writeln!(
                m,
                "Paced streams (/v1/messages → Responses, c={}, {} s; mock TTFT {} ms, {} ms between deltas):\n",
                p.concurrency, p.duration_s, p.ttft_ms, p.gap_ms
            );
            let _ = writeln!(
                m,
                "| target | streams | TTFT p50 ms | TTFT p99 ms | gap p50 ms | gap p99 ms | gw CPU µs/stream | errors |"
            );
            let _ = writeln!(m, "|---|--:|--:|--:|--:|--:|--:|--:|");
            for r in [&p.direct, &p.gateway].into_iter().flatten() {
                let _ = writeln!(
                    m,
                    "| {} | {} | {} | {} | {} | {} | {} | {} |",
                    r.target,
                    r.streams,
                    f(r.ttft_p50_ms, 2),
                    f(r.ttft_p99_ms, 2),
                    f(r.gap_p50_ms, 2),
                    f(r.gap_p99_ms, 2),
                    f(r.gateway_cpu_us_per_req, 0),
                    r.errors
                );
            }
            let _ = writeln!(
                m,
                "\nAdded by the gateway: TTFT p50 {} ms, gap p99 {} ms.\n",
                f(p.added_ttft_p50_ms, 3),
                f(p.added_gap_p99_ms, 3)
            );
        }
        if let Some(s) = &self.soak {
            let r = &s.run;
            let _ = writeln!(
                m,
                "Soak: {} min open loop at {} req/s over {} connections (the three scenarios in turn, through the gateway): {} requests, {:.1} req/s achieved, {} errors, p50 {} ms, p99 {} ms, gw CPU {} µs/req, backlog {}.\n",
                s.minutes,
                s.rate,
                s.connections,
                r.requests,
                r.rps,
                r.errors,
                f(r.p50_ms, 2),
                f(r.p99_ms, 2),
                f(r.gateway_cpu_us_per_req, 0),
                s.backlog,
            );
            let series: Vec<String> = s
                .rss_series_mib
                .iter()
                .map(|(t, v)| format!("{t:.0}s {v:.1}"))
                .collect();
            let _ = writeln!(m, "Gateway RSS MiB every 10 s: {}.\n", series.join(", "));
            let _ = writeln!(
                m,
                "Growth (mean of the last minute − mean of minute 2): {}; max {} MiB.\n",
                s.growth_mib
                    .map_or("– (needs ≥ 2 minutes)".to_owned(), |g| format!(
                        "{g:+.2} MiB"
                    )),
                f(s.max_rss_mib, 1)
            );
        }
        if self.startup_ms.is_some() {
            let _ = writeln!(
                m,
                "Gateway: start-up to ready {} ms; idle RSS {} MiB; peak RSS {} MiB (sampled every 100 ms; kernel high-water mark {} MiB); RSS at the end {} MiB.",
                f(self.startup_ms, 1),
                f(self.idle_rss_mib, 1),
                f(self.peak_rss_mib, 1),
                f(self.hwm_rss_mib, 1),
                f(self.end_rss_mib, 1),
            );
            if let (Some(s), Some(r)) = (self.settle_s, self.settled_rss_mib) {
                let per_stream = match (&self.paced, self.peak_rss_mib, self.idle_rss_mib) {
                    (Some(p), Some(peak), Some(idle)) if p.concurrency > 0 => format!(
                        "; {:.1} KiB per open stream at the peak",
                        (peak - idle) * 1024.0 / p.concurrency as f64
                    ),
                    _ => String::new(),
                };
                let _ = writeln!(
                    m,
                    "RSS {s:.0} s after the last run: {r:.1} MiB{per_stream}."
                );
            }
        }
        let errors: Vec<String> = self
            .runs
            .iter()
            .flat_map(|r| [&r.direct, &r.gateway])
            .chain(self.paced.iter().flat_map(|p| [&p.direct, &p.gateway]))
            .flatten()
            .chain(self.soak.iter().map(|s| &s.run))
            .filter_map(|r| {
                r.first_error.as_ref().map(|e| {
                    format!(
                        "- {} {} c={}: {} errors, first: {}",
                        r.scenario, r.target, r.concurrency, r.errors, e
                    )
                })
            })
            .collect();
        if !errors.is_empty() {
            let _ = writeln!(m, "\nErrors:\n{}", errors.join("\n"));
        }
        m
    }

    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        std::fs::write(dir.join("results.md"), self.markdown())?;
        std::fs::write(
            dir.join("results.json"),
            serde_json::to_string_pretty(self)? + "\n",
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_compares_the_last_minute_with_minute_two() {
        let series: Vec<(f64, f64)> = (0..=18)
            .map(|k| (k as f64 * 10.0, 10.0 + k as f64))
            .collect();
        // minute 2: t = 60..110 → 16..21, mean 18.5; last minute: t = 120..180 → 22..28, mean 25.
        assert_eq!(Soak::growth(&series, 180.0), Some(6.5));
        assert_eq!(Soak::growth(&series[..7], 60.0), None);
    }

    #[test]
    fn added_latency_is_gateway_minus_direct() {
        let mk = |target: &str, lat: Vec<u64>| {
            let s = Samples {
                ok: lat.len() as u64,
                latency: lat.clone(),
                ttfb: lat,
                ..Samples::default()
            };
            RunResult::new("chat", target, 1, s, 1.0, Cpu::default(), None)
        };
        let row = Row::new(
            "chat",
            1,
            Some(mk("direct", vec![1_000_000; 10])),
            Some(mk("gateway", vec![3_000_000; 5])),
        );
        assert_eq!(row.added_p50_ms, Some(2.0));
        assert_eq!(row.pct_of_direct, Some(50.0));
        assert!(
            Results {
                date: "d".into(),
                nproc: 2,
                clk_tck: 100,
                gateway_bin: None,
                store: true,
                duration_s: 1.0,
                warmup_s: 0.0,
                concurrency: vec![1],
                mock_chunks: 16,
                startup_ms: None,
                idle_rss_mib: None,
                peak_rss_mib: None,
                hwm_rss_mib: None,
                end_rss_mib: None,
                settled_rss_mib: None,
                settle_s: None,
                runs: vec![row],
                paced: None,
                soak: None,
            }
            .markdown()
            .contains("| chat | 1 | 10 | 5 | 50.0% |")
        );
    }
}
