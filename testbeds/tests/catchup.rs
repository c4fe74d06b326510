//! Scenario 6, tiny: a node offline for 30 epochs × 2 topics × 5 workers catches up. The full
//! run is `chorus-testbeds catchup` (1000 epochs × 10 topics × 20 workers).

mod common;

#[test]
fn offline_node_catches_up() {
    let s = common::run(&[
        "catchup",
        "--epochs",
        "30",
        "--topics",
        "2",
        "--workers",
        "5",
        "--epoch-ms",
        "500",
    ]);
    assert!(s["metrics"]["catch_up_seconds"].as_f64().is_some(), "{s}");
}
