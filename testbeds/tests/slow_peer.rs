//! Scenario 5, short: a peer reading at 1 KB/s for 20 s. The full soak is
//! `chorus-testbeds slow-peer` (10 minutes).

mod common;

#[test]
fn slow_peer_does_not_grow_the_others() {
    common::run(&[
        "slow-peer",
        "--nodes",
        "4",
        "--seconds",
        "20",
        "--warmup",
        "10",
    ]);
}
