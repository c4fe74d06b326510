#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use chorus_node::models::{Bars, BuiltinModel, Target, builtin::VOL_RANGE_SCALE};

pub fn eurusd() -> Bars {
    Bars::load_csv(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../data/eurusd_1h.csv"
    ))
    .unwrap()
}

/// Every model kind with non-default parameters too, for every target it applies to.
pub fn all_models(target: Target) -> Vec<BuiltinModel> {
    use BuiltinModel as M;
    let mut v = vec![
        M::Zero,
        M::Last,
        M::Sma { n: 1 },
        M::Sma { n: 7 },
        M::Ema { alpha: 1.0 },
        M::Ema { alpha: 0.05 },
        M::LongMean,
        M::Ar { p: 1 },
        M::Ar { p: 3 },
        M::Ar { p: 6 },
        M::Drift { n: 1 },
        M::Drift { n: 50 },
        M::Momentum { n: 3 },
        M::MeanReversion { n: 10, k: 0.3 },
        M::Seasonal {
            days: 3,
            fallback: 12,
        },
        M::Noisy {
            sigma: 0.2,
            seed: 3,
        },
    ];
    if target == Target::Range {
        v.push(M::Volatility {
            n: 5,
            scale: VOL_RANGE_SCALE,
        });
    }
    v.extend(
        chorus_node::models::default_set(target)
            .into_iter()
            .map(|(_, m)| m),
    );
    v
}
