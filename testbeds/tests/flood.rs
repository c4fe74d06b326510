//! Scenario 1, short: an attacker process floods 10 nodes (debug build) with 10 000 invalid
//! messages per second for 10 s. The full run (20 nodes, 15 s, release) is
//! `chorus-testbeds flood`.

mod common;

#[test]
fn flooding_attacker_is_graylisted_and_honest_traffic_flows() {
    let s = common::run(&["flood", "--nodes", "10", "--seconds", "10"]);
    assert!(
        s["metrics"]["rejects_before_graylist_max"]
            .as_f64()
            .unwrap_or(99.0)
            <= 13.0,
        "{s}"
    );
}
