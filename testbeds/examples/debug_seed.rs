//! Run one seed through the real runner and print every node's consensus height, applied
//! height and round timers every 250 virtual ms (debugging aid).
//!
//! `cargo run --release -p chorus-testbeds --example debug_seed -- SEED [NODES VALIDATORS BYZ]`
#![allow(missing_docs, clippy::unwrap_used)]
use chorus_testbeds::sim::{SimConfig, run_seed_observed};

fn main() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
    let a: Vec<String> = std::env::args().collect();
    let seed: u64 = a[1].parse().unwrap();
    let mut config = SimConfig::default();
    if a.len() > 4 {
        config.nodes = a[2].parse().unwrap();
        config.validators = a[3].parse().unwrap();
        config.byzantine_stake = a[4].parse().unwrap();
    }
    let mut next = 0u64;
    let (report, _) = run_seed_observed(&config, seed, &mut |sim| {
        if sim.now < next {
            return;
        }
        next = sim.now + 250;
        let line: Vec<String> = sim
            .nodes
            .iter()
            .map(|n| match n.replica.as_ref() {
                Some(r) => {
                    let round = n.timers.keys().map(|t| t.round).max().unwrap_or(0);
                    format!(
                        "h{}r{}/l{}",
                        r.consensus_height(),
                        round,
                        r.ledger().next_height
                    )
                }
                None => "down".into(),
            })
            .collect();
        println!("t={:>5} {}", sim.now - 1_000_000, line.join(" "));
        if std::env::var("STATS").is_ok() {
            println!("      {:?}", sim.stats);
            for (i, n) in sim.nodes.iter().enumerate() {
                if let Some(r) = n.replica.as_ref() {
                    println!("      node {i}: {:?}", r.engine().stats());
                }
            }
            for f in &sim.faults {
                println!("      fault {f}");
            }
        }
    });
    println!("{}", report.line());
}
