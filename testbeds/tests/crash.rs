//! Scenario 3, short: 100 kill -9 of a store writer and 5 of a validator node under writes.
//! The full run is `chorus-testbeds crash --node-kills 100`.

mod common;

#[test]
fn no_acknowledged_entry_lost_and_no_double_sign() {
    let s = common::run(&["crash", "--store-kills", "100", "--node-kills", "5"]);
    assert_eq!(s["metrics"]["store_kills"], 100, "{s}");
}
