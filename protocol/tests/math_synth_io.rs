//! `chorus synth` JSON: the shipped example is reproduced byte for byte; errors are typed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chorus_protocol::math::synth_io::{
    SynthError, SynthJsonOptions, SynthJsonOutput, synth_json, synth_json_with,
};

const INPUT: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/synth/epoch303_input.json"
));
const OUTPUT: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/synth/epoch303_output.json"
));

#[test]
fn example_is_byte_identical() {
    assert_eq!(synth_json(INPUT).unwrap(), OUTPUT.trim_end());
}

#[test]
fn confidence_interval_on_request() {
    let out = synth_json_with(
        INPUT,
        SynthJsonOptions {
            confidence_interval: true,
        },
    )
    .unwrap();
    let parsed: SynthJsonOutput = serde_json::from_str(&out).unwrap();
    let ci = parsed.confidence_interval_values.clone().unwrap();
    assert_eq!(ci.len(), 5);
    assert!(ci.windows(2).all(|w| w[0] <= w[1]));
    // the bulk of the weight sits on the forecast-implied inferences around the combined value
    assert!(ci[2] > 0.128 && ci[2] < 0.1283, "{ci:?}");
    let mut plain = parsed.clone();
    plain.confidence_interval_values = None;
    let base: SynthJsonOutput = serde_json::from_str(OUTPUT).unwrap();
    assert_eq!(plain, base);
}

#[test]
fn errors_are_typed() {
    assert!(matches!(
        synth_json("not json"),
        Err(SynthError::BadJson(_))
    ));
    let no_inf = r#"{"params":{"p_norm":3,"c_norm":0.75,"epsilon":0.01,"epsilon_safe_div":1e-7},"initial_regret":0,"previous_network_loss":null,"inferences":{}}"#;
    assert_eq!(synth_json(no_inf).unwrap_err(), SynthError::NoInferences);
    let inf = no_inf.replace("\"inferences\":{}", "\"inferences\":{\"a\":1e999}");
    assert!(matches!(synth_json(&inf), Err(SynthError::NonFinite(_))));
    let bad_p = no_inf
        .replace("\"p_norm\":3", "\"p_norm\":-1")
        .replace("{}", "{\"a\":1}");
    assert!(matches!(synth_json(&bad_p), Err(SynthError::Invalid(_))));
    for e in [SynthError::NoInferences, SynthError::BadJson("x".into())] {
        assert!(!e.to_string().contains('\n'));
    }
}

#[test]
fn null_previous_loss_is_median_and_null_naive() {
    let input = r#"{"params":{"p_norm":3,"c_norm":0.75,"epsilon":0.01,"epsilon_safe_div":1e-7},"initial_regret":-1,"previous_network_loss":null,"inferences":{"a":1,"b":5,"c":2}}"#;
    let out: SynthJsonOutput = serde_json::from_str(&synth_json(input).unwrap()).unwrap();
    assert_eq!(out.combined_value, 2.0);
    assert_eq!(out.naive_value, None);
    assert!(out.one_out_inferer_values.is_empty());
    let single = input
        .replace("\"b\":5,\"c\":2", "")
        .replace("\"a\":1,", "\"a\":1");
    let out: SynthJsonOutput = serde_json::from_str(&synth_json(&single).unwrap()).unwrap();
    assert_eq!(out.combined_value, 1.0);
}
