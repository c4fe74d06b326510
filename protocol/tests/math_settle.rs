//! `chorus settle` JSON: the shipped example (fixture epoch 304) reproduces the fixture's values,
//! and errors are typed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "math_common/mod.rs"]
mod common;

use chorus_protocol::math::settle_io::{SettleError, SettleJsonOutput, settle_json};
use common::fixtures::*;

const INPUT: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/settle/epoch304_input.json"
));
const OUTPUT: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/settle/epoch304_output.json"
));
const E: u32 = 304;
const TOL: f64 = 1e-9;

#[test]
fn example_output_is_byte_identical() {
    assert_eq!(settle_json(INPUT).unwrap(), OUTPUT.trim_end());
}

#[test]
fn example_matches_fixture_epoch_304() {
    let out: SettleJsonOutput = serde_json::from_str(OUTPUT).unwrap();
    let mut tally = Tally::default();
    let exp = network_losses(E);
    let got = &out.network_losses;
    tally.check(
        "network loss",
        "combined",
        got.combined_value,
        exp.combined_value,
        TOL,
    );
    tally.check(
        "network loss",
        "naive",
        got.naive_value,
        exp.naive_value,
        TOL,
    );
    tally.check_map(
        "network loss",
        &got.inferer_values,
        &exp.inferer_values,
        TOL,
    );
    tally.check_map(
        "network loss",
        &got.forecaster_values,
        &exp.forecaster_values,
        TOL,
    );
    tally.check_map(
        "network loss",
        &got.one_out_inferer_values,
        &exp.one_out_inferer_values,
        TOL,
    );
    tally.check_map(
        "network loss",
        &got.one_out_forecaster_values,
        &exp.one_out_forecaster_values,
        TOL,
    );
    tally.check_map(
        "network loss",
        &got.one_in_forecaster_values,
        &exp.one_in_forecaster_values,
        TOL,
    );
    let x = regrets(E);
    tally.check_map("regret inferer", &out.regrets.inferer, &x.inferer, TOL);
    tally.check_map(
        "regret forecaster",
        &out.regrets.forecaster,
        &x.forecaster,
        TOL,
    );
    tally.check_map("regret naive", &out.regrets.naive, &x.naive, TOL);
    for (got, exp) in [
        (
            &out.regrets.one_out_inferer_inferer,
            &x.one_out_inferer_inferer,
        ),
        (
            &out.regrets.one_out_inferer_forecaster,
            &x.one_out_inferer_forecaster,
        ),
        (
            &out.regrets.one_out_forecaster_inferer,
            &x.one_out_forecaster_inferer,
        ),
        (
            &out.regrets.one_out_forecaster_forecaster,
            &x.one_out_forecaster_forecaster,
        ),
        (&out.regrets.one_in_forecaster, &x.one_in_forecaster),
    ] {
        for (k, m) in exp {
            tally.check_map("regret one-out/one-in", &got[k], m, TOL);
        }
    }
    tally.check_map(
        "reputer score",
        &out.reputer_scores,
        &keyed("reputer_score_", NR, rk, E),
        TOL,
    );
    tally.check_map(
        "listening coefficient",
        &out.listening_coefficients,
        &coefficients(E),
        TOL,
    );
    tally.check_map(
        "adjusted stake",
        &out.adjusted_stakes,
        &keyed("reputer_adjusted_stake_", NR, rk, E),
        TOL,
    );
    tally.check_map(
        "inferer score",
        &out.inferer_scores,
        &keyed("inferer_score_", NI, ik, E),
        TOL,
    );
    tally.check_map(
        "forecaster score",
        &out.forecaster_scores,
        &keyed("forecaster_score_", NF, fk, E),
        TOL,
    );
    tally.check_map(
        "inferer fraction",
        &out.inferer_reward_fractions,
        &keyed("inferer_reward_fraction_", NI, ik, E),
        TOL,
    );
    tally.check_map(
        "forecaster fraction",
        &out.forecaster_reward_fractions,
        &keyed("forecaster_reward_fraction_", NF, fk, E),
        TOL,
    );
    tally.check_map(
        "reputer fraction",
        &out.reputer_reward_fractions,
        &keyed("reputer_reward_fraction_", NR, rk, E),
        TOL,
    );
    let s = &out.smoothed_fractions;
    tally.check_map(
        "smoothed",
        &s.inferer,
        &keyed("inferer_reward_fraction_smooth_", NI, ik, E),
        TOL,
    );
    tally.check_map(
        "smoothed",
        &s.forecaster,
        &keyed("forecaster_reward_fraction_smooth_", NF, fk, E),
        TOL,
    );
    tally.check_map(
        "smoothed",
        &s.reputer,
        &keyed("reputer_reward_fraction_smooth_", NR, rk, E),
        TOL,
    );
    tally.check(
        "entropy",
        "F",
        out.entropies.inferer,
        t(E, "inferers_entropy"),
        TOL,
    );
    tally.check(
        "entropy",
        "G",
        out.entropies.forecaster,
        t(E, "forecasters_entropy"),
        TOL,
    );
    tally.check(
        "entropy",
        "H",
        out.entropies.reputer,
        t(E, "reputers_entropy"),
        TOL,
    );
    tally.check(
        "T_i",
        "",
        out.forecaster_task_score,
        t(E, "forecaster_task_score"),
        TOL,
    );
    tally.check(
        "tau",
        "",
        out.forecaster_score_ratio,
        t(E, "forecaster_score_ratio"),
        TOL,
    );
    tally.check("chi", "", out.chi, t(E, "forecasters_utility"), TOL);
    let big_e = t(E, "topic_rewards");
    tally.check(
        "U/E",
        "",
        out.task_rewards.inferers / big_e,
        t(E, "inferers_reward_fraction"),
        TOL,
    );
    tally.check(
        "V/E",
        "",
        out.task_rewards.forecasters / big_e,
        t(E, "forecasters_reward_fraction"),
        TOL,
    );
    tally.check(
        "W/E",
        "",
        out.task_rewards.reputers / big_e,
        t(E, "reputers_reward_fraction"),
        TOL,
    );
    tally.check_map(
        "inferer reward",
        &out.inferer_rewards,
        &keyed("inferer_reward_", NI, ik, E),
        TOL,
    );
    tally.check_map(
        "forecaster reward",
        &out.forecaster_rewards,
        &keyed("forecaster_reward_", NF, fk, E),
        TOL,
    );
    tally.check_map(
        "reputer reward",
        &out.reputer_rewards,
        &keyed("reputer_reward_", NR, rk, E),
        TOL,
    );
    // integer payouts conserve supply
    let p = out.payouts.as_ref().unwrap();
    let paid: u128 = p
        .inferers
        .values()
        .chain(p.forecasters.values())
        .chain(p.reputers.values())
        .sum();
    assert_eq!(paid + p.remainder, 7_637_224_369_762_923_000_000);
    assert!(p.remainder < 13);
    tally.report("settle epoch 304");
}

#[test]
fn errors_are_typed() {
    assert!(matches!(settle_json("{"), Err(SettleError::BadJson(_))));
    assert!(matches!(settle_json("[]"), Err(SettleError::BadJson(_))));
    let mut v: serde_json::Value = serde_json::from_str(INPUT).unwrap();
    // serde_json::Value cannot hold a u128 > u64::MAX exactly
    v.as_object_mut().unwrap().remove("topic_reward_base_units");
    let mut no_rep = v.clone();
    no_rep["reputer_value_bundles"] = serde_json::json!({});
    assert!(matches!(
        settle_json(&no_rep.to_string()),
        Err(SettleError::NoReputers)
    ));
    let inf = INPUT.replacen(
        "\"topic_reward\": 7637.224369762923",
        "\"topic_reward\": 1e999",
        1,
    );
    assert_ne!(inf, INPUT);
    let e = settle_json(&inf).unwrap_err();
    assert!(matches!(e, SettleError::NonFinite(_)), "{e}");
    let mut no_stake = v.clone();
    no_stake["reputer_stakes"] = serde_json::json!({"R0": 1.0});
    assert!(matches!(
        settle_json(&no_stake.to_string()),
        Err(SettleError::Invalid(_))
    ));
}
