//! The soak: a steady open-loop rate through the gateway for minutes, mixing the three
//! scenarios, while the gateway's RSS is read every 10 s. A leak shows as growth between the
//! second minute (after warm-up effects) and the last, which a few seconds of closed loop
//! cannot show.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::bench::{Probes, Scenario, Side, target};
use crate::load::{self, Plan};
use crate::procfs;
use crate::report::{RunResult, Soak};

const CONNECTIONS: usize = 16;
const EVERY: Duration = Duration::from_secs(10);

pub fn run(
    rt: &tokio::runtime::Runtime,
    gateway: SocketAddr,
    pid: u32,
    minutes: f64,
    rate: f64,
    warmup_s: f64,
    probes: Probes,
) -> anyhow::Result<Soak> {
    let targets = [
        Scenario::Chat,
        Scenario::MessagesChat,
        Scenario::MessagesResponses,
    ]
    .into_iter()
    .map(|s| target(s, Side::Gateway, gateway, (0, 0)))
    .collect::<anyhow::Result<Vec<_>>>()?;
    let plan = Plan {
        concurrency: CONNECTIONS,
        warmup: Duration::from_secs_f64(warmup_s.max(0.0)),
        duration: Duration::from_secs_f64((minutes * 60.0).max(1.0)),
        rate: Some(rate),
        stagger: Duration::ZERO,
    };
    eprintln!(
        "soak: {minutes} min at {rate} req/s over {CONNECTIONS} connections through the gateway"
    );
    let (out, series) = rt.block_on(async {
        let start = Instant::now() + plan.warmup;
        let total = plan.duration;
        let sampler = tokio::spawn(async move {
            let mut series = Vec::new();
            let mut k = 0u32;
            loop {
                let offset = EVERY * k;
                if offset > total {
                    break;
                }
                tokio::time::sleep_until(tokio::time::Instant::from_std(start + offset)).await;
                if let Ok(kib) = procfs::rss_kib(pid) {
                    let mib = procfs::kib_to_mib(kib);
                    eprintln!(
                        "soak: t={:>5} s  gateway RSS {mib:.1} MiB",
                        offset.as_secs()
                    );
                    series.push((offset.as_secs_f64(), (mib * 100.0).round() / 100.0));
                }
                k += 1;
            }
            series
        });
        let out = load::run(targets, &plan, || probes.ticks()).await;
        let series = sampler.await.unwrap_or_default();
        (out, series)
    });
    let cpu = probes.cpu(out.at_start, probes.ticks());
    let run = RunResult::new(
        "soak",
        "gateway",
        CONNECTIONS,
        out.samples,
        out.elapsed.as_secs_f64(),
        cpu,
        series.iter().map(|(_, m)| *m).reduce(f64::max),
    );
    Ok(Soak {
        minutes,
        rate,
        connections: CONNECTIONS,
        backlog: out.backlog,
        growth_mib: Soak::growth(&series, plan.duration.as_secs_f64()),
        max_rss_mib: series.iter().map(|(_, m)| *m).reduce(f64::max),
        rss_series_mib: series,
        run,
    })
}
