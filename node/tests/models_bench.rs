//! Timing of the default model sets over the whole EUR/USD series.
//! `cargo test --release --test bench -- --nocapture` prints the release numbers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "models_common/mod.rs"]
mod common;

use std::time::Instant;

use chorus_node::models::{BuiltinInferer, Model, Target, default_set};

#[test]
fn default_range_and_close_sets_over_5000_bars() {
    let bars = common::eurusd();
    let all = bars.as_slice();
    let mut report = Vec::new();
    let mut total = std::time::Duration::ZERO;
    let mut checksum = 0.0;
    for target in [Target::Range, Target::Close, Target::Return] {
        let mut models: Vec<BuiltinInferer> = default_set(target)
            .into_iter()
            .map(|(name, m)| BuiltinInferer::new(m, target).unwrap().with_name(name))
            .collect();
        let start = Instant::now();
        for bar in all {
            for m in &mut models {
                m.observe(bar);
                checksum += m.predict().unwrap_or(0.0);
            }
        }
        let took = start.elapsed();
        if target != Target::Return {
            total += took;
        }
        report.push(format!(
            "{target}: {} models x {} bars in {:.2} ms ({:.0} ns per model-epoch)",
            models.len(),
            all.len(),
            took.as_secs_f64() * 1e3,
            took.as_secs_f64() * 1e9 / (models.len() * all.len()) as f64
        ));
    }
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    println!("[{profile}] {}", report.join("; "));
    println!(
        "[{profile}] range + close sets: {:.2} ms total (checksum {checksum:.6})",
        total.as_secs_f64() * 1e3
    );
    let limit = if cfg!(debug_assertions) { 10.0 } else { 1.0 };
    assert!(total.as_secs_f64() < limit, "{total:?}");
}
