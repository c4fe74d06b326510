//! `chorus-testbeds scale`, short: 4 topics × 500 workers for 2 epochs of 3 s (2 000 bundles in
//! one height) through two node processes. The full run is `chorus-testbeds scale` (10 topics ×
//! 1 000 workers, 3 epochs: 10 000 bundles in one height).

mod common;

#[test]
fn one_height_finalizes_every_bundle_of_an_epoch() {
    let s = common::run(&[
        "scale",
        "--topics",
        "4",
        "--workers",
        "500",
        "--epochs",
        "2",
        // The debug build's nodes keep up with 1 000 bundles in a 1 s epoch, not 2 000.
        "--epoch-ms",
        "3000",
    ]);
    let m = &s["metrics"];
    assert_eq!(m["published"], 4_000, "{s}");
    // Every window whole on both nodes (checked by the scenario), and one height holds an
    // epoch of them: 2 000 worker bundles plus the reputer windows it closes.
    for node in ["validator", "follower"] {
        let most = m[format!("{node}_max_height_entries")]
            .as_u64()
            .unwrap_or(0);
        assert!((2_000..=2_010).contains(&most), "{node}: {most}\n{s}");
    }
    assert_eq!(m["node0_graylisted"], 0.0, "{s}");
    assert_eq!(m["node1_graylisted"], 0.0, "{s}");
}
