//! Scenario 4: a validator signs two checkpoints at one height; every honest node detects it
//! within 1 s, stores the evidence, and the ledger slashes the bond at the next checkpoint.

mod common;

#[test]
fn equivocating_validator_is_detected_and_slashed() {
    let s = common::run(&["equivocation"]);
    assert!(s["metrics"]["detection_ms"].is_object(), "{s}");
}
