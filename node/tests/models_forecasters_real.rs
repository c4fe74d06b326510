//! Loss forecasters on the real EUR/USD range target: they run causally and have skill.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "models_common/mod.rs"]
mod common;

use std::collections::BTreeMap;

use chorus_node::models::{
    BuiltinInferer, EmaLossForecaster, Model, RegimeLossForecaster, Target, default_set,
    forecasters::{DEFAULT_LOSS_FLOOR, log10_loss},
    squared_error,
};

fn correlation(pairs: &[(f64, f64)]) -> f64 {
    let n = pairs.len() as f64;
    let (mx, my) = pairs
        .iter()
        .fold((0.0, 0.0), |(a, b), (x, y)| (a + x / n, b + y / n));
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (x, y) in pairs {
        sxy += (x - mx) * (y - my);
        sxx += (x - mx).powi(2);
        syy += (y - my).powi(2);
    }
    sxy / (sxx * syy).sqrt()
}

#[test]
fn forecasters_predict_realised_log_losses() {
    let bars = common::eurusd();
    let all = bars.as_slice();
    let target = Target::Range;
    let mut models: Vec<BuiltinInferer> = default_set(target)
        .into_iter()
        .map(|(name, m)| BuiltinInferer::new(m, target).unwrap().with_name(name))
        .collect();
    let names: Vec<String> = models.iter().map(|m| m.name().to_string()).collect();
    let mut ema = EmaLossForecaster::new(0.1).unwrap();
    let mut regime = RegimeLossForecaster::new(0.1).unwrap();
    let (mut pairs_ema, mut pairs_regime) = (Vec::new(), Vec::new());
    let mut regimes_seen = BTreeMap::new();
    for (t, bar) in all.iter().enumerate().take(all.len() - 1) {
        models.iter_mut().for_each(|m| m.observe(bar));
        regime.observe_bar(bar);
        let inferences: BTreeMap<String, f64> = models
            .iter()
            .filter_map(|m| m.predict().map(|v| (m.name().to_string(), v)))
            .collect();
        // Forecasts are made before the truth of epoch t is known.
        let f_ema = ema.forecast(&names);
        let r = regime.regime();
        *regimes_seen.entry(format!("{r:?}")).or_insert(0usize) += 1;
        let f_regime = regime.forecast_in(r, &names);
        let truth = bars.truth(target, t).unwrap();
        if t >= 250 {
            for (k, v) in &inferences {
                let realised = log10_loss(squared_error(truth, *v), DEFAULT_LOSS_FLOOR).unwrap();
                pairs_ema.push((f_ema[k], realised));
                pairs_regime.push((f_regime[k], realised));
            }
        }
        ema.observe(truth, &inferences, squared_error);
        regime.observe(r, truth, &inferences, squared_error);
    }
    let c_ema = correlation(&pairs_ema);
    let c_regime = correlation(&pairs_regime);
    println!("regimes: {regimes_seen:?}");
    println!(
        "corr(forecast, realised log10 loss): ema {c_ema:.3}, regime {c_regime:.3} over {} pairs",
        pairs_ema.len()
    );
    assert!(c_ema > 0.1, "{c_ema}");
    assert!(c_regime > 0.1, "{c_regime}");
    assert!(regimes_seen.get("Some(Volatile)").copied().unwrap_or(0) > 1000);
    assert!(regimes_seen.get("Some(Calm)").copied().unwrap_or(0) > 1000);
}
