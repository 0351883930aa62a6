//! Measures what storing one usage record costs on the SQLite path, so a change to the store
//! can be judged against the gateway's accounting budget (a few µs of CPU per request).
//!
//! `cargo run --release -p dragoman-store --example insert_bench [RECORDS] [BATCH] [seq]`
//! inserts RECORDS (default 100 000) in batches of BATCH (default 500, the writer's default)
//! into a fresh SQLite file under the temp directory, then prints records/s and µs per record,
//! both wall-clock and CPU (all threads of the process, from /proc, where there is one).
//! Request ids are random like the gateway's, or with `seq` ascending, to show what
//! time-ordered ids would save.

use std::time::Instant;

use dragoman_accounting::{Outcome, UsageRecord};
use dragoman_model::{Dialect, Usage};
use dragoman_store::Store;

/// The process's user + system CPU time in seconds, all threads together; `None` off Linux.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may hold spaces and parentheses; the fields after its last `)` do not.
    let after = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = after.split(' ').collect();
    // Fields 14 and 15 of proc(5) (utime, stime) are 11 and 12 once pid and comm are gone.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // USER_HZ is 100 on every Linux ABI Rust targets.
    Some((utime + stime) / 100.0)
}

fn record(i: usize, rng: &mut fastrand::Rng, sequential: bool) -> UsageRecord {
    // Random, the gateway's shape of id, sends each insert to a new leaf of the key's index.
    let request_id = if sequential {
        format!("req_{i:016x}{:08x}", rng.u32(..))
    } else {
        format!("req_{:016x}{:08x}", rng.u64(..), rng.u32(..))
    };
    UsageRecord {
        request_id,
        started_at_ms: 1_700_000_000_000 + i as i64,
        principal: format!("team-{}", i % 7),
        client_dialect: Dialect::Chat,
        upstream_dialect: Some(Dialect::Anthropic),
        model: format!("model-{}", i % 5),
        deployment: Some("primary".to_owned()),
        provider_model: Some("claude-sonnet-4-5".to_owned()),
        stream: i.is_multiple_of(2),
        outcome: Outcome::Ok,
        status: 200,
        latency_ms: 120,
        ttft_ms: Some(40),
        usage: Usage {
            input_uncached: Some(1200),
            cache_read: Some(300),
            output: Some(250),
            ..Usage::default()
        },
        usage_estimated: false,
        attempts: 1,
        attempted: None,
        owner: Default::default(),
        cost_nanos: Some(4_200_000),
        cache_hit: false,
        saved_cost_nanos: None,
        dropped: None,
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let total: usize = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(100_000);
    let batch: usize = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(500)
        .max(1);
    let sequential = args.next().is_some_and(|s| s == "seq");

    let dir = std::env::temp_dir().join(format!("dragoman-insert-bench-{}", std::process::id()));
    let url = format!("sqlite://{}", dir.join("usage.db").display());
    let store = Store::connect(&url).await?;

    // Building the records is the gateway's cost, not the store's: keep it out of the timing.
    let mut rng = fastrand::Rng::with_seed(7);
    let records: Vec<UsageRecord> = (0..total)
        .map(|i| record(i, &mut rng, sequential))
        .collect();

    let cpu_start = cpu_seconds();
    let start = Instant::now();
    for chunk in records.chunks(batch) {
        store.insert_batch(chunk).await?;
    }
    let wall = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds().zip(cpu_start).map(|(end, start)| end - start);

    let stored = store.count().await?;
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);

    let n = total as f64;
    println!(
        "{} backend: {total} records in batches of {batch}, {} ids ({stored} stored)",
        store.backend_name(),
        if sequential { "ascending" } else { "random" }
    );
    println!(
        "wall: {wall:.3} s, {:.0} records/s, {:.2} µs/record",
        n / wall,
        wall * 1e6 / n
    );
    match cpu {
        Some(cpu) => println!("cpu:  {cpu:.3} s, {:.2} µs/record", cpu * 1e6 / n),
        None => println!("cpu:  not measurable here (no /proc/self/stat)"),
    }
    Ok(())
}
