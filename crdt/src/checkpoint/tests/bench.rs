//! Numbers, not assertions: `cargo test --release -- --ignored --nocapture bench`.

use std::time::Instant;

use crate::checkpoint::sim::{Harness, NetConfig};

fn measure(n: usize, heights: u64, net: NetConfig) {
    let mut h = Harness::new(n, &[], 1000 + n as u64);
    h.net = net;
    h.start(&[]);
    let started = Instant::now();
    h.run_until(|h| h.all_decided(heights), 50_000_000).unwrap();
    let wall = started.elapsed();
    assert!(h.checker.violations.is_empty());
    let mut latencies: Vec<u64> = Vec::new();
    for node in &h.nodes {
        let mut prev = 0;
        for height in 1..=heights {
            let at = node.decided_at[&height];
            latencies.push(at - prev);
            prev = at;
        }
    }
    latencies.sort_unstable();
    let mean = latencies.iter().sum::<u64>() as f64 / latencies.len() as f64;
    let p50 = latencies[latencies.len() / 2];
    let p99 = latencies[latencies.len() * 99 / 100];
    println!(
        "n={n:>3} heights={heights:>3} net={}..{} ms loss={}‰: virtual finality per height mean {mean:.0} ms, p50 {p50} ms, p99 {p99} ms; wall {:.1} ms per height ({} events)",
        net.min_delay_ms,
        net.max_delay_ms,
        net.drop_per_mille,
        wall.as_secs_f64() * 1000.0 / heights as f64,
        h.steps,
    );
}

#[test]
#[ignore = "benchmark: prints numbers"]
fn bench_finality() {
    let lan = NetConfig::default();
    for (n, heights) in [(4, 50), (20, 20), (50, 10)] {
        measure(n, heights, lan);
    }
    let lossy = NetConfig {
        min_delay_ms: 5,
        max_delay_ms: 50,
        drop_per_mille: 50,
        dup_per_mille: 0,
    };
    for (n, heights) in [(4, 50), (20, 20), (50, 10)] {
        measure(n, heights, lossy);
    }
}
