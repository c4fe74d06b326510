//! The `allora-mad` mechanism against allora-chain's own test values.
//!
//! Provenance: the expected numbers are copied from allora-chain's public test files (after
//! v0.15.1, PR #910 "Regret norm to use MAD"): `math/exp_test.go` (`Exp1DivExp1`),
//! `x/emissions/keeper/inference_synthesis/weight_test.go`
//! (`TestCalcWeightFromNormalizedRegret_Exp1DivExp1_*`, `CalcRegretScalePlusEpsilon`,
//! `GetCombinedInference`, forecast-implied inferences), `x/emissions/keeper/actor_penalties_test.go`
//! (liveness penalty) and `x/emissions/keeper/rewards/scores_test.go` (initial EMA score), each
//! with the tolerance its Go test uses.

// the Go tests' constants are quoted as written
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::excessive_precision)]

use std::collections::BTreeMap;

use chorus_protocol::math::mechanism::MechanismVersion;
use chorus_protocol::math::regrets::NetworkRegrets;
use chorus_protocol::math::synthesis::{
    SynthesisInput, SynthesisParams, forecast_implied_inferences, synthesize_bundle,
    synthesize_bundle_reference, synthesize_combined,
};
use chorus_protocol::math::weights::{
    WeightRule, exp1_div_exp1, logistic_ratio_weight, mad_regret_scale, regret_weights,
};

fn close(got: f64, want: f64, tol: f64, what: &str) {
    assert!(
        (got - want).abs() <= tol,
        "{what}: got {got:e}, want {want:e} (tolerance {tol:e})"
    );
}

fn rel_close(got: f64, want: f64, rel: f64, what: &str) {
    assert!(
        (got - want).abs() <= rel * want.abs(),
        "{what}: got {got:e}, want {want:e} (relative {rel:e})"
    );
}

#[test]
fn exp1_div_exp1_matches_allora() {
    let cases: &[(f64, f64, f64, f64)] = &[
        (0.0, 0.0, 1.0, 1e-10),
        (-1.0, -1.0, 1.0, 1e-10),
        (-2.0, -1.0, 0.8299965984314521, 1e-10),
        (-1.0, -2.0, 1.204824214809825, 1e-10),
        (-10.0, -10.0, 1.0, 1e-10),
        (-10.0, -5.0, 0.9933522451505159, 1e-10),
        (1.0, 0.0, 1.859140914229523, 1e-10),
        (2.0, -1.0, 6.132891427731616, 1e-10),
        (5.0, -2.0, 131.6026739489939, 1e-10),
        (0.1, -10.0, 2.105075347802713, 1e-10),
        (0.0, 1.0, 0.5378828427399902, 1e-10),
        (-1.0, 2.0, 0.1630552263616172, 1e-10),
        (-10.0, 0.1, 0.4750423784325841, 1e-10),
        (-2.0, 5.0, 0.007598629799783373, 1e-10),
        (1.0, 1.0, 1.0, 1e-10),
        (2.0, 1.0, 2.256164671199036, 1e-10),
        (1.0, 2.0, 0.4432300588540602, 1e-10),
        (5.0, 3.0, 7.086049534658406, 1e-10),
        (0.1, 0.2, 0.9476763771641353, 1e-10),
        (0.0, 0.0001, 0.99995, 1e-3),
        (0.0001, 0.0, 1.00005, 1e-3),
        (0.0, -0.0001, 1.00005, 1e-3),
        (-0.0001, 0.0, 0.99995, 1e-3),
        (10.0, 10.0, 1.0, 1e-10),
        (-20.0, -20.0, 1.0, 1e-10),
        (10.0, -10.0, 22026.465794806718074, 1e-3),
        (-10.0, 10.0, 0.0000453999297624848, 1e-6),
    ];
    for &(a, b, want, tol) in cases {
        close(
            exp1_div_exp1(a, b),
            want,
            tol,
            &format!("Exp1DivExp1({a}, {b})"),
        );
    }
    assert!(exp1_div_exp1(f64::NAN, 0.0).is_nan());
    assert!(exp1_div_exp1(0.0, f64::NAN).is_nan());
    // a positive exponent far beyond e^709 still gives the finite ratio
    close(
        exp1_div_exp1(800.0, 799.0),
        std::f64::consts::E,
        1e-12,
        "large exponents",
    );
}

#[test]
fn logistic_ratio_weights_match_allora() {
    // TestCalcWeightFromNormalizedRegret_Exp1DivExp1_*: p = 3, c = 0.75, (r̂, r̂_max) → w
    let cases: &[(f64, f64, f64, f64)] = &[
        (-24.5, -24.5, 1.0, 1e-15),
        (-20.0, -19.5, 0.2231301601484298, 1e-10),
        (-15.0, -14.0, 0.04978706836786394, 1e-10),
        (-10.5, -10.0, 0.2231301601484315, 1e-10),
        (-5.75, -5.0, 0.1053992276019573, 1e-10),
        (-1.0, -0.5, 0.2271855183599896, 1e-10),
        (-0.25, 0.0, 0.4973900296949617, 1e-10),
        (0.0, 0.0, 1.0, 1e-15),
        (0.5, 0.5, 1.0, 1e-15),
        (1.0, 1.0, 1.0, 1e-15),
        (-0.8712641, -0.8712641, 1.0, 1e-15),
        (0.01987392, 0.01987392, 1.0, 1e-15),
        (-1.32345, 0.1238729, 0.0149696696173212, 1e-10),
        (-50.0, -50.0, 1.0, 1e-15),
        (10.0, 10.0, 1.0, 1e-15),
        (0.0, 1.0, 0.1403893629392022, 1e-10),
        (-1.0, 0.0, 0.05474729930662831, 1e-10),
        (0.1, 2.0, 0.1274825724107806, 1e-10),
        (-10.0, -0.1, 1.361775598712234e-13, 1e-20),
        (-0.001, -0.001, 1.0, 1e-15),
        (0.001, 0.001, 1.0, 1e-15),
        (-5.0, 2.0, 3.300012235137296e-08, 1e-15),
        (2.0, -5.0, 30302917.95140558, 1e-2),
    ];
    for &(r, r_max, want, tol) in cases {
        close(
            logistic_ratio_weight(r, r_max, 3.0, 0.75),
            want,
            tol,
            &format!("w({r}, {r_max})"),
        );
    }
    for (p, c) in [(1.0, 0.1), (5.0, 1.5), (1.5, 2.0), (4.0, 0.25)] {
        for r in [-3.0, 0.0, 0.7, 4.0] {
            close(logistic_ratio_weight(r, r, p, c), 1.0, 1e-15, "identity");
        }
    }
}

#[test]
fn mad_regret_scale_matches_allora() {
    let cases: &[(&[f64], f64, f64)] = &[
        (&[0.1, 0.2, 0.3], 0.01, 0.15826),
        (&[0.1, 0.1, 0.1], 0.01, 0.01),
        (&[0.0, 0.5, 1.0], 0.1, 0.8413),
        (&[0.1, 0.2, 0.3], 0.5, 0.64826),
        // outlier dominated: MAD stays zero
        (&[0.0, 0.0, 0.0, 100.0], 0.01, 0.01),
    ];
    for &(regrets, eps, want) in cases {
        close(
            mad_regret_scale(regrets, eps),
            want,
            1e-8,
            &format!("{regrets:?}"),
        );
    }
}

#[test]
fn weights_of_a_regret_list_give_the_best_worker_one() {
    let rule = WeightRule {
        version: MechanismVersion::AlloraMad,
        ..WeightRule::v06(3.0, 0.75, 0.01)
    };
    let w = regret_weights(&[0.1, 0.2, 0.5, -0.4], &rule).unwrap();
    close(
        w.scale,
        mad_regret_scale(&[0.1, 0.2, 0.5, -0.4], 0.01),
        0.0,
        "scale",
    );
    assert_eq!(w.weights[2], 1.0);
    assert!(w.weights.iter().all(|&x| x > 0.0 && x <= 1.0));
    assert!(w.weights[3] < w.weights[0] && w.weights[0] < w.weights[1]);
    // a fixed network scale replaces the list's own
    let fixed = regret_weights(
        &[0.1, 0.2],
        &WeightRule {
            network_scale: 2.0,
            ..rule
        },
    )
    .unwrap();
    assert_eq!(fixed.scale, 2.0);
    assert_eq!(fixed.normalized, vec![0.05, 0.1]);
}

fn mad_params(p_norm: f64, epsilon: f64) -> SynthesisParams {
    SynthesisParams {
        p_norm,
        c_norm: 0.75,
        epsilon,
        epsilon_safe_div: 1e-7,
        mechanism: MechanismVersion::AlloraMad,
    }
}

fn keyed(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

#[test]
fn forecast_implied_inferences_match_allora() {
    // L = 0.5, ε = 1e-4, p = 2, c = 0.75, scale from each forecast's regrets; tolerance 1e-4
    let params = mad_params(2.0, 1e-4);
    let inferences = keyed(&[("w0", 1.0), ("w1", 2.0)]);
    let forecasts = BTreeMap::from([("f0".to_string(), keyed(&[("w0", 3.0), ("w1", 4.0)]))]);
    let out = forecast_implied_inferences(&params, &inferences, &forecasts, 0.5, false).unwrap();
    close(out["f0"], 1.063129668414686, 1e-4, "two elements");

    let forecasts = BTreeMap::from([("worker0".to_string(), keyed(&[("w1", 4.0)]))]);
    let out = forecast_implied_inferences(&params, &inferences, &forecasts, 0.5, false).unwrap();
    close(out["worker0"], 2.0, 1e-5, "one element");

    let inferences = keyed(&[("w0", 1.0), ("w1", 2.0), ("w2", 3.0)]);
    let forecasts = BTreeMap::from([
        (
            "w0".to_string(),
            keyed(&[("w0", 1.0), ("w1", 2.0), ("w2", 3.0)]),
        ),
        (
            "w1".to_string(),
            keyed(&[("w0", 4.0), ("w1", 5.0), ("w2", 6.0)]),
        ),
    ]);
    let out = forecast_implied_inferences(&params, &inferences, &forecasts, 0.5, false).unwrap();
    close(
        out["w0"],
        1.317025398914864,
        1e-4,
        "three elements, forecaster w0",
    );
    close(
        out["w1"],
        1.2974778440227044,
        1e-4,
        "three elements, forecaster w1",
    );

    // all inferers new: the median of the forecast's inferers
    let out = forecast_implied_inferences(&params, &inferences, &forecasts, 0.5, true).unwrap();
    assert_eq!(out["w0"], 2.0);
}

fn input(
    inferences: &[(&str, f64)],
    inferer_regrets: &[(&str, f64)],
    initial_regret: f64,
) -> SynthesisInput<String> {
    let regrets = NetworkRegrets {
        inferer: keyed(inferer_regrets),
        ..NetworkRegrets::default()
    };
    SynthesisInput {
        params: mad_params(2.0, 1e-4),
        initial_regret,
        previous_network_loss: Some(0.5),
        inferences: keyed(inferences),
        forecasts: BTreeMap::new(),
        regrets,
    }
}

#[test]
fn combined_inference_matches_allora() {
    // GetCombinedInference: p = 2, c = 0.75, ε = 1e-4, ε_safe = 1e-7 (allora-chain fixes the
    // scale at 1 there; these cases do not depend on it)
    // all inferers new: the mean, forecasters ignored
    let mut all_new = input(&[("i1", 1.0), ("i2", 5.0)], &[], 0.0);
    all_new.forecasts = BTreeMap::from([("f1".to_string(), keyed(&[("i1", 100.0)]))]);
    assert_eq!(synthesize_combined(&all_new).unwrap().combined_value, 3.0);
    // equal regrets: equal weights
    let equal = input(
        &[("i1", 1.0), ("i2", 3.0)],
        &[("i1", 0.2), ("i2", 0.2)],
        0.1,
    );
    close(
        synthesize_combined(&equal).unwrap().combined_value,
        2.0,
        1e-12,
        "equal regrets",
    );
    // regrets 0.1, 0.2, 0.5 on values 1, 2, 10: w3 > w2 > w1 and 13/3 < I < 10
    let ordered = input(
        &[("i1", 1.0), ("i2", 2.0), ("i3", 10.0)],
        &[("i1", 0.1), ("i2", 0.2), ("i3", 0.5)],
        0.1,
    );
    let out = synthesize_combined(&ordered).unwrap();
    let w = &out.inferer_weights;
    assert!(w["i3"] > w["i2"] && w["i2"] > w["i1"], "{w:?}");
    assert_eq!(w["i3"], 1.0);
    assert!(out.combined_value > 13.0 / 3.0 && out.combined_value < 10.0);
    // a worker without a stored regret reads the topic's initial regret
    let missing = input(&[("i1", 1.0), ("i2", 3.0)], &[("i1", 0.2)], 0.2);
    close(
        synthesize_combined(&missing).unwrap().combined_value,
        2.0,
        1e-12,
        "missing regret",
    );
}

#[test]
fn without_a_network_loss_the_inferences_are_weighted_not_medianed() {
    let mut first = input(
        &[("i1", 1.0), ("i2", 2.0), ("i3", 10.0)],
        &[("i1", 0.1), ("i2", 0.2), ("i3", 0.5)],
        0.1,
    );
    first.previous_network_loss = None;
    first.forecasts = BTreeMap::from([("f1".to_string(), keyed(&[("i1", 0.3), ("i2", 0.1)]))]);
    let out = synthesize_bundle(&first).unwrap();
    assert!(out.combined_value > 13.0 / 3.0, "{}", out.combined_value);
    assert!(out.forecaster_values.is_empty() && out.forecaster_weights.is_empty());
    let mut v06 = first.clone();
    v06.params.mechanism = MechanismVersion::AlloraV06;
    assert_eq!(
        synthesize_bundle(&v06).unwrap().combined_value,
        2.0,
        "v0.6: the median"
    );
}

#[test]
fn the_bundle_paths_agree_and_the_versions_differ() {
    let mut regrets = NetworkRegrets::default();
    let workers: Vec<String> = (0..9).map(|i| format!("w{i}")).collect();
    let mut inferences = BTreeMap::new();
    let mut forecasts = BTreeMap::new();
    for (i, w) in workers.iter().enumerate() {
        let x = i as f64;
        inferences.insert(w.clone(), 1.0 + 0.1 * x);
        regrets
            .inferer
            .insert(w.clone(), 0.05 * (x - 4.0) + 0.01 * x * x);
        regrets.naive.insert(w.clone(), -0.02 * x);
        if i % 3 == 0 {
            let f: BTreeMap<String, f64> = workers
                .iter()
                .enumerate()
                .map(|(j, v)| (v.clone(), -1.0 - 0.03 * (j as f64 - x).abs()))
                .collect();
            forecasts.insert(w.clone(), f);
            regrets.forecaster.insert(w.clone(), 0.1 - 0.02 * x);
        }
    }
    let mad = SynthesisInput {
        params: mad_params(3.0, 0.01),
        initial_regret: 0.05,
        previous_network_loss: Some(-0.8),
        inferences,
        forecasts,
        regrets,
    };
    let fast = synthesize_bundle(&mad).unwrap();
    let reference = synthesize_bundle_reference(&mad).unwrap();
    assert_eq!(fast, reference, "allora-mad has one path");
    assert_eq!(
        synthesize_combined(&mad).unwrap().combined_value,
        fast.combined_value
    );
    assert_eq!(fast.one_out_inferer_values.len(), 9);
    assert_eq!(fast.one_in_forecaster_values.len(), 3);
    let best = fast
        .inferer_weights
        .values()
        .chain(fast.forecaster_weights.values())
        .fold(f64::MIN, |a, &b| a.max(b));
    assert_eq!(best, 1.0, "the best worker weighs 1");
    let mut v06 = mad.clone();
    v06.params.mechanism = MechanismVersion::AlloraV06;
    let old = synthesize_bundle(&v06).unwrap();
    assert_ne!(old.combined_value, fast.combined_value);
}

#[test]
fn newcomer_score_and_liveness_penalty_match_allora() {
    use chorus_protocol::math::scores::{initial_ema_score, liveness_penalty};
    // rewards/scores_test: min − 2·σ_sample, σ ≈ 0.1581139 (tolerance 1e-6)
    close(
        initial_ema_score(&[0.5, 0.3, 0.1, 0.4, 0.2]),
        -0.2162278,
        1e-6,
        "initial score",
    );
    assert_eq!(initial_ema_score(&[]), 0.0);
    assert_eq!(initial_ema_score(&[0.7]), 0.7);
    // actor_penalties_test: α 0.1, score 300, asymptote 200, 4 missed epochs → 265.61 (1e-4)
    rel_close(
        liveness_penalty(0.1, 200.0, 300.0, 4),
        265.61,
        1e-4,
        "penalty",
    );
    assert_eq!(liveness_penalty(0.1, 200.0, 300.0, 0), 300.0);
    assert_eq!(liveness_penalty(0.1, 200.0, 200.0, 9), 200.0);
    close(
        liveness_penalty(0.1, 200.0, 300.0, u64::MAX),
        200.0,
        1e-9,
        "saturates",
    );
}
