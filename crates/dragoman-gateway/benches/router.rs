//! The router's pick must not cost the fast path: ranking a 10-deployment group, per strategy
//! and with a sticky conversation (the aim: at most 2 µs).

#![allow(clippy::panic)]

use criterion::{Criterion, criterion_group, criterion_main};
use dragoman_gateway::router::Router;
use std::hint::black_box;

fn config(strategy: &str) -> dragoman_config::Config {
    let mut y = String::from("model_list:\n");
    for i in 0..10 {
        y.push_str(&format!(
            "  - model_name: g\n    litellm_params: {{model: openai/m{i}, api_key: k, rpm: 100000, tpm: 100000000, weight: {}}}\n",
            i + 1
        ));
    }
    y.push_str(&format!(
        "router_settings: {{routing_strategy: {strategy}}}\n"
    ));
    match dragoman_config::parse(&y, &|_: &str| None) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    }
}

fn pick(c: &mut Criterion) {
    for strategy in [
        "simple-shuffle",
        "least-busy",
        "latency-based-routing",
        "usage-based-routing-v2",
    ] {
        let r = Router::new(&config(strategy));
        let Some(g) = r.group("g") else { return };
        for i in 0..10 {
            r.succeeded(i, std::time::Duration::from_millis(50 + i as u64));
        }
        c.bench_function(&format!("rank 10 deployments, {strategy}"), |b| {
            b.iter(|| black_box(r.rank(black_box(&g), None)))
        });
    }
    let r = Router::new(&config("simple-shuffle"));
    let Some(g) = r.group("g") else { return };
    c.bench_function("rank 10 deployments, sticky", |b| {
        b.iter(|| black_box(r.rank(black_box(&g), Some(0x1234_5678))))
    });
    c.bench_function("group lookup + rank + begin/end", |b| {
        b.iter(|| {
            let g = r.group(black_box("g"));
            if let Some(g) = g
                && let Ok(p) = r.rank(&g, None)
            {
                r.begin(p.order[0]);
                r.end(p.order[0]);
            }
        })
    });
}

criterion_group!(benches, pick);
criterion_main!(benches);
