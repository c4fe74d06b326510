//! Criterion benchmarks: `cargo bench --bench math`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Duration;

use chorus_protocol::math::reputer::{ReputerParams, reputer_scores_keyed};
use chorus_protocol::math::settle_io::{SettleJsonInput, SettleParams, TaskMaps, settle};
use chorus_protocol::math::synthesis::{synthesize_bundle, synthesize_combined};
use criterion::{Criterion, criterion_group, criterion_main};

#[path = "../tests/math_common/inputs.rs"]
mod inputs;

fn bench_exp(c: &mut Criterion) {
    // arguments in the weight function's range p(c − r) ∈ [−6.75, 17.25]
    let xs: Vec<f64> = (0..1000).map(|i| -6.75 + 0.024 * i as f64).collect();
    let mut out = vec![0.0; 1000];
    let mut g = c.benchmark_group("exp_x1000");
    g.bench_function("libm_exp", |b| {
        b.iter(|| {
            for (o, &x) in out.iter_mut().zip(black_box(&xs)) {
                *o = libm::exp(x);
            }
            black_box(&out);
        })
    });
    g.bench_function("util_exp_bit_identical", |b| {
        b.iter(|| {
            for (o, &x) in out.iter_mut().zip(black_box(&xs)) {
                *o = chorus_protocol::math::util::exp(x);
            }
            black_box(&out);
        })
    });
    g.bench_function("util_exp_approx", |b| {
        b.iter(|| {
            for (o, &x) in out.iter_mut().zip(black_box(&xs)) {
                *o = chorus_protocol::math::util::exp_approx_unchecked(x);
            }
            black_box(&out);
        })
    });
    g.finish();
}

/// Σ_k n_k(n_k − 1): weight evaluations of the one-out forecast-implied recomputation.
fn one_out_weight_evals(input: &chorus_protocol::math::synthesis::SynthesisInput<u32>) -> u64 {
    input
        .forecasts
        .values()
        .map(|f| {
            let n = f
                .keys()
                .filter(|j| input.inferences.contains_key(j))
                .count() as u64;
            n * n.saturating_sub(1)
        })
        .sum()
}

fn bench_synthesis(c: &mut Criterion) {
    for &(ni, nf) in &[(5usize, 3usize), (100, 10), (1000, 50)] {
        let input = inputs::random_input(ni, nf, 7);
        eprintln!(
            "synthesis {ni}x{nf}: {} one-out weight evaluations per bundle",
            one_out_weight_evals(&input)
        );
        let mut g = c.benchmark_group(format!("synthesis_{ni}x{nf}"));
        if ni >= 1000 {
            g.sample_size(10).measurement_time(Duration::from_secs(10));
        }
        g.bench_function("combined", |b| {
            b.iter(|| synthesize_combined(black_box(&input)).unwrap())
        });
        g.bench_function("bundle", |b| {
            b.iter(|| synthesize_bundle(black_box(&input)).unwrap())
        });
        g.finish();
    }
}

fn bench_reputers(c: &mut Criterion) {
    let params = ReputerParams::default();
    let mut g = c.benchmark_group("reputer_scores");
    for &(nr, ni, nf) in &[(6usize, 5usize, 3usize), (100, 20, 5)] {
        let (bundles, stakes) = inputs::random_reputer_bundles(nr, ni, nf, 3);
        let coefficients = BTreeMap::new();
        if nr >= 100 {
            g.sample_size(10);
        }
        g.bench_function(format!("{nr}_reputers_{ni}x{nf}"), |b| {
            b.iter(|| {
                reputer_scores_keyed(black_box(&bundles), &stakes, &coefficients, &params).unwrap()
            })
        });
    }
    g.finish();
}

fn bench_settle(c: &mut Criterion) {
    // 100 workers (80 inferers, 20 forecasters), 6 reputers (MaxTopReputersToReward)
    let (bundles, stakes) = inputs::random_reputer_bundles(6, 80, 20, 5);
    let input = SettleJsonInput {
        params: SettleParams::default(),
        reputer_value_bundles: bundles,
        reputer_stakes: stakes,
        previous_regrets: Default::default(),
        listening_coefficients: BTreeMap::new(),
        inferer_score_history: vec![0.1; 10],
        forecaster_score_history: vec![0.2, -0.1, 0.05, 0.3, 0.0, 0.1, -0.2, 0.15, 0.02, 0.04],
        previous_smoothed_fractions: TaskMaps::default(),
        previous_forecaster_score_ratio: 0.5,
        topic_reward: 1e4,
        topic_reward_base_units: Some(10_000_000_000_000_000_000),
    };
    let mut g = c.benchmark_group("settle");
    g.sample_size(20);
    g.bench_function("100_workers_6_reputers", |b| {
        b.iter(|| settle(black_box(&input)).unwrap())
    });
    g.finish();
}

criterion_group!(
    benches,
    bench_exp,
    bench_synthesis,
    bench_reputers,
    bench_settle
);
criterion_main!(benches);
