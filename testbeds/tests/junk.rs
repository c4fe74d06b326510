//! `chorus-testbeds junk`, short (5 in-process nodes; 9 unfunded keys × 256 transfers, 50
//! equivocating pairs, 20 junk evidence messages of ~256 KiB, NaN bundles of a registered
//! worker and 300 unregistered bundles by sync): finality keeps its pace, every epoch
//! finalizes everywhere, nothing of the junk is stored, only the attackers are blamed.

mod common;

#[test]
fn validly_signed_junk_neither_stops_the_network_nor_gets_stored() {
    let s = common::run(&[
        "junk",
        "--nonces",
        "256",
        "--evidence",
        "20",
        "--unregistered",
        "300",
    ]);
    let checks = s["checks"].as_array().expect("checks");
    assert_eq!(checks.len(), 6, "{s}");
    for c in checks {
        assert_eq!(c["pass"], true, "{s}");
    }
    assert_eq!(s["metrics"]["sent_unfunded"], 9 * 256, "{s}");
    assert_eq!(
        s["metrics"]["sync_answers"], s["metrics"]["sent_sync_requests"],
        "{s}"
    );
}
