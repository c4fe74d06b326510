//! Access to the allora-chain v0.6 fixtures (tests only).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use chorus_protocol::math::losses::ValueBundle;
use chorus_protocol::math::regrets::NetworkRegrets;
use serde_json::Value;

pub const ALL_EPOCHS: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/allora-v0.6/allora_chain_testdata_all_epochs.json"
));
pub const V1: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/allora-v0.6/v1_network_inference_epoch303.json"
));
pub const V2: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/allora-v0.6/v2_network_losses_and_regrets_epoch301.json"
));
pub const V3: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/allora-v0.6/v3_reputer_consensus_scores_epoch301.json"
));
pub const V4: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/allora-v0.6/v4_worker_scores_rewards_epoch304.json"
));
pub const V5: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/allora-v0.6/v5_new_workers_initial_regret_epoch302.json"
));

pub fn tables() -> &'static Value {
    static T: OnceLock<Value> = OnceLock::new();
    T.get_or_init(|| serde_json::from_str(ALL_EPOCHS).unwrap())
}

pub fn parse(v: &Value) -> f64 {
    match v {
        Value::String(s) => s.parse().unwrap(),
        Value::Number(n) => n.as_f64().unwrap(),
        other => panic!("not a number: {other}"),
    }
}

/// Main simulator table: value of column `h` at epoch `e`.
pub fn t(e: u32, h: &str) -> f64 {
    let v = &tables()["GetSimulatedValuesGetterForEpochs"]["epochs"][e.to_string()][h];
    assert!(!v.is_null(), "missing column {h} at epoch {e}");
    parse(v)
}

pub fn ik(j: usize) -> String {
    format!("I{j}")
}
pub fn fk(k: usize) -> String {
    format!("F{k}")
}
pub fn rk(m: usize) -> String {
    format!("R{m}")
}
/// Worker index 0..7 of the regret columns → name.
pub fn wk(w: usize) -> String {
    if w < 5 { ik(w) } else { fk(w - 5) }
}

pub const NI: usize = 5;
pub const NF: usize = 3;
pub const NR: usize = 5;

pub fn inferences(e: u32) -> BTreeMap<String, f64> {
    (0..NI)
        .map(|j| (ik(j), t(e, &format!("inference_{j}"))))
        .collect()
}

pub fn forecasts(e: u32) -> BTreeMap<String, BTreeMap<String, f64>> {
    (0..NF)
        .map(|k| {
            (
                fk(k),
                (0..NI)
                    .map(|j| (ik(j), t(e, &format!("forecasted_loss_{k}_for_{j}"))))
                    .collect(),
            )
        })
        .collect()
}

/// All 95 regrets stored after epoch `e`, restricted to the given inferers/forecasters
/// (testutil `SetRegretsFromPreviousEpoch`).
pub fn regrets_subset(e: u32, infs: &[usize], fcs: &[usize]) -> NetworkRegrets<String> {
    let mut r = NetworkRegrets::default();
    for &j in infs {
        r.inferer
            .insert(ik(j), t(e, &format!("inference_regret_worker_{j}")));
        r.naive
            .insert(ik(j), t(e, &format!("naive_inference_regret_worker_{j}")));
        for &i in infs {
            r.one_out_inferer_inferer.entry(ik(j)).or_default().insert(
                ik(i),
                t(e, &format!("inference_regret_worker_{i}_oneout_{j}")),
            );
        }
        for &k in fcs {
            r.one_out_inferer_forecaster
                .entry(ik(j))
                .or_default()
                .insert(
                    fk(k),
                    t(e, &format!("inference_regret_worker_{}_oneout_{j}", k + 5)),
                );
        }
    }
    for &k in fcs {
        r.forecaster
            .insert(fk(k), t(e, &format!("inference_regret_worker_{}", k + 5)));
        for &i in infs {
            r.one_out_forecaster_inferer
                .entry(fk(k))
                .or_default()
                .insert(
                    ik(i),
                    t(e, &format!("inference_regret_worker_{i}_oneout_{}", k + 5)),
                );
            r.one_in_forecaster.entry(fk(k)).or_default().insert(
                ik(i),
                t(e, &format!("inference_regret_worker_{i}_onein_{k}")),
            );
        }
        for &k2 in fcs {
            r.one_out_forecaster_forecaster
                .entry(fk(k))
                .or_default()
                .insert(
                    fk(k2),
                    t(
                        e,
                        &format!("inference_regret_worker_{}_oneout_{}", k2 + 5, k + 5),
                    ),
                );
        }
        r.one_in_forecaster
            .entry(fk(k))
            .or_default()
            .insert(fk(k), t(e, &format!("inference_regret_worker_5_onein_{k}")));
    }
    r
}

pub fn regrets(e: u32) -> NetworkRegrets<String> {
    regrets_subset(e, &[0, 1, 2, 3, 4], &[0, 1, 2])
}

/// Reputer m's reported log10 losses at epoch `e`.
pub fn reputer_bundle(e: u32, m: usize) -> ValueBundle<String> {
    let g = |h: String| t(e, &format!("reputer_{m}_loss_{h}"));
    let mut b = ValueBundle::new(
        g("network_inference".into()),
        g("naive_network_inference".into()),
    );
    for j in 0..NI {
        b.inferer_values.insert(ik(j), g(format!("inference_{j}")));
        b.one_out_inferer_values
            .insert(ik(j), g(format!("network_inference_oneout_{j}")));
    }
    for k in 0..NF {
        b.forecaster_values
            .insert(fk(k), g(format!("forecast_implied_inference_{k}")));
        b.one_out_forecaster_values
            .insert(fk(k), g(format!("network_inference_oneout_{}", k + 5)));
        b.one_in_forecaster_values
            .insert(fk(k), g(format!("naive_network_inference_onein_{k}")));
        for j in 0..NI {
            b.one_out_inferer_forecaster_values
                .entry(fk(k))
                .or_default()
                .insert(
                    ik(j),
                    g(format!("forecast_implied_inference_{k}_oneout_{j}")),
                );
        }
    }
    b
}

pub fn reputer_bundles(e: u32) -> BTreeMap<String, ValueBundle<String>> {
    (0..NR).map(|m| (rk(m), reputer_bundle(e, m))).collect()
}

pub fn stakes(e: u32) -> BTreeMap<String, f64> {
    (0..NR)
        .map(|m| (rk(m), t(e, &format!("reputer_stake_{m}"))))
        .collect()
}

/// The fixture's network losses at epoch `e`.
pub fn network_losses(e: u32) -> ValueBundle<String> {
    let mut b = ValueBundle::new(t(e, "network_loss"), t(e, "network_naive_loss"));
    for j in 0..NI {
        b.inferer_values
            .insert(ik(j), t(e, &format!("inference_loss_{j}")));
        b.one_out_inferer_values
            .insert(ik(j), t(e, &format!("network_loss_oneout_{j}")));
    }
    for k in 0..NF {
        b.forecaster_values
            .insert(fk(k), t(e, &format!("forecast_implied_inference_loss_{k}")));
        b.one_out_forecaster_values
            .insert(fk(k), t(e, &format!("network_loss_oneout_{}", k + 5)));
        b.one_in_forecaster_values
            .insert(fk(k), t(e, &format!("network_naive_loss_onein_{k}")));
        for j in 0..NI {
            b.one_out_inferer_forecaster_values
                .entry(fk(k))
                .or_default()
                .insert(
                    ik(j),
                    t(
                        e,
                        &format!("forecast_implied_inference_loss_{k}_oneout_{j}"),
                    ),
                );
        }
    }
    b
}

pub fn coefficients(e: u32) -> BTreeMap<String, f64> {
    (0..NR)
        .map(|m| (rk(m), t(e, &format!("reputer_listening_coefficient_{m}"))))
        .collect()
}

pub fn keyed(prefix: &str, n: usize, name: fn(usize) -> String, e: u32) -> BTreeMap<String, f64> {
    (0..n)
        .map(|i| (name(i), t(e, &format!("{prefix}{i}"))))
        .collect()
}

/// Relative error (absolute when the expected value is 0).
pub fn rel(got: f64, expected: f64) -> f64 {
    if expected == 0.0 {
        got.abs()
    } else {
        ((got - expected) / expected).abs()
    }
}

/// Collects the maximum relative error per category.
#[derive(Default)]
pub struct Tally {
    pub max: BTreeMap<String, (f64, usize)>,
}

impl Tally {
    pub fn check(&mut self, cat: &str, what: &str, got: f64, expected: f64, tol: f64) {
        let r = rel(got, expected);
        assert!(
            r <= tol,
            "{cat} / {what}: got {got:e}, expected {expected:e}, relative error {r:e} > {tol:e}"
        );
        let e = self.max.entry(cat.to_string()).or_insert((0.0, 0));
        e.0 = e.0.max(r);
        e.1 += 1;
    }
    pub fn check_map(
        &mut self,
        cat: &str,
        got: &BTreeMap<String, f64>,
        expected: &BTreeMap<String, f64>,
        tol: f64,
    ) {
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            expected.keys().collect::<Vec<_>>(),
            "{cat}: keys differ"
        );
        for (k, v) in expected {
            self.check(cat, k, got[k], *v, tol);
        }
    }
    pub fn report(&self, title: &str) {
        eprintln!("== {title}: max relative error per quantity (count)");
        for (k, (m, n)) in &self.max {
            eprintln!("  {k:<48} {m:9.3e}  ({n})");
        }
    }
}
