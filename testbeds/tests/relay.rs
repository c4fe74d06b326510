//! `chorus-testbeds relay` at full size (10 nodes in a line, 20 random-byte and 20
//! bad-signature consensus messages into one end): only the attacker is graylisted, nothing is
//! relayed, no honest link drops.

mod common;

#[test]
fn hostile_consensus_messages_blame_only_their_sender() {
    let s = common::run(&["relay"]);
    assert_eq!(s["metrics"]["graylisted_per_node"][0], 1.0, "{s}");
    let sent = s["metrics"]["attacker_garbage_sent"].as_u64().unwrap_or(0)
        + s["metrics"]["attacker_forged_sent"].as_u64().unwrap_or(0);
    assert!(sent >= 1, "{s}");
}
