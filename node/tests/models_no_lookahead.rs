//! No look-ahead and numerical sanity of the built-in models on the real EUR/USD series.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "models_common/mod.rs"]
mod common;

use chorus_node::models::{
    Bar, BuiltinInferer, Model, Target, builtin::default_set, predict_series,
};

fn preds(
    model: &chorus_node::models::BuiltinModel,
    target: Target,
    bars: &[Bar],
) -> Vec<Option<f64>> {
    let mut m = BuiltinInferer::new(model.clone(), target).unwrap();
    predict_series(&mut m, bars)
}

#[test]
fn cutting_the_series_never_changes_earlier_predictions() {
    let bars = common::eurusd();
    let all = bars.as_slice();
    let cuts: Vec<usize> = [
        0, 1, 2, 3, 5, 14, 15, 20, 21, 23, 24, 25, 119, 120, 121, 499,
    ]
    .into_iter()
    .chain((0..all.len()).step_by(613))
    .chain([all.len() - 2, all.len() - 1])
    .collect();
    for target in Target::ALL {
        for model in common::all_models(target) {
            let full = preds(&model, target, all);
            assert_eq!(full.len(), all.len());
            for &t in &cuts {
                let cut = bars.cut(t);
                let short = preds(&model, target, cut.as_slice());
                assert_eq!(short.len(), t + 1);
                for (i, (a, b)) in full.iter().zip(&short).enumerate() {
                    assert_eq!(
                        a.map(f64::to_bits),
                        b.map(f64::to_bits),
                        "{model} {target}: epoch {i} differs when cut after {t}"
                    );
                }
            }
        }
    }
}

#[test]
fn changing_future_bars_never_changes_earlier_predictions() {
    let bars = common::eurusd();
    let all = bars.as_slice();
    for target in Target::ALL {
        for model in common::all_models(target) {
            let full = preds(&model, target, all);
            for t in [10usize, 200, 2500] {
                let mut altered = all.to_vec();
                for b in &mut altered[t + 1..] {
                    b.open *= 3.0;
                    b.high *= 3.5;
                    b.low *= 2.5;
                    b.close *= 3.0;
                    b.time = Some("1999-12-31 13:00:00".into());
                }
                let other = preds(&model, target, &altered);
                assert_eq!(
                    full[..=t]
                        .iter()
                        .map(|p| p.map(f64::to_bits))
                        .collect::<Vec<_>>(),
                    other[..=t]
                        .iter()
                        .map(|p| p.map(f64::to_bits))
                        .collect::<Vec<_>>(),
                    "{model} {target}: future bars after {t} leaked"
                );
            }
        }
    }
}

#[test]
fn asking_twice_gives_the_same_answer() {
    let bars = common::eurusd();
    for target in Target::ALL {
        for (name, model) in default_set(target) {
            let mut m = BuiltinInferer::new(model, target).unwrap();
            for bar in &bars.as_slice()[..300] {
                m.observe(bar);
                assert_eq!(
                    m.predict().map(f64::to_bits),
                    m.predict().map(f64::to_bits),
                    "{name}"
                );
            }
        }
    }
}

#[test]
fn outputs_are_finite_and_plausible_after_warm_up() {
    let bars = common::eurusd();
    let all = bars.as_slice();
    let truths = bars.truths(Target::Range);
    let max_range = truths.iter().flatten().fold(0.0f64, |a, &b| a.max(b));
    for target in Target::ALL {
        for model in common::all_models(target) {
            if model == chorus_node::models::BuiltinModel::Zero && target != Target::Return {
                continue; // 0 is finite but not a plausible price or range
            }
            let p = preds(&model, target, all);
            for (t, v) in p.iter().enumerate().skip(50) {
                let v = v.unwrap_or_else(|| panic!("{model} {target}: no prediction at {t}"));
                assert!(v.is_finite(), "{model} {target} at {t}: {v}");
                let close = all[t].close;
                match target {
                    Target::Range => assert!(
                        (-0.01..=3.0 * max_range).contains(&v),
                        "{model} at {t}: {v}"
                    ),
                    Target::Close => assert!(
                        (v / close - 1.0).abs() < 0.2,
                        "{model} at {t}: {v} vs {close}"
                    ),
                    Target::Return => assert!(v.abs() < 0.05, "{model} at {t}: {v}"),
                }
            }
        }
    }
}

/// MSE of each default model relative to `last`, printed for the report; sanity bounds only
/// (a price SMA lags the price, so `sma20` on close is ~7× worse than the random walk).
#[test]
fn default_sets_have_sane_accuracy() {
    let bars = common::eurusd();
    let all = bars.as_slice();
    for target in Target::ALL {
        let truths = bars.truths(target);
        let mse = |p: &[Option<f64>]| {
            let (mut s, mut n) = (0.0, 0usize);
            for t in 50..all.len() - 1 {
                if let (Some(a), Some(b)) = (p[t], truths[t]) {
                    s += (a - b).powi(2);
                    n += 1;
                }
            }
            s / n as f64
        };
        let base = mse(&preds(
            &chorus_node::models::BuiltinModel::Last,
            target,
            all,
        ));
        println!("target {target}: MSE(last) = {base:.4e}");
        for (name, model) in default_set(target) {
            let ratio = mse(&preds(&model, target, all)) / base;
            println!("  {name:>18}: MSE / MSE(last) = {ratio:.4}");
            assert!(
                ratio.is_finite() && ratio < 20.0,
                "{name} {target}: {ratio}"
            );
        }
    }
}
