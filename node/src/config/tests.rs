#![allow(clippy::unwrap_used)]
use super::check::transport_problem;
use super::*;
use crate::store::stats::CompactPolicy;
use libp2p::Multiaddr;

#[test]
fn defaults_and_overrides() {
    let c = Config::parse("", std::iter::empty()).unwrap();
    assert_eq!(c.api.listen, "127.0.0.1:8080");
    assert!(!c.network.mdns);
    let env = vec![
        (
            "CHORUS_API__LISTEN".to_string(),
            "127.0.0.1:9999".to_string(),
        ),
        ("CHORUS_NETWORK__KADEMLIA".to_string(), "true".to_string()),
        ("OTHER".to_string(), "x".to_string()),
    ];
    let c = Config::parse("[api]\nlisten = \"127.0.0.1:1\"", env.into_iter()).unwrap();
    assert_eq!(c.api.listen, "127.0.0.1:9999");
    assert!(c.network.kademlia);
}

#[test]
fn trusted_checkpoint_parses_or_is_a_problem() {
    let id = "ab".repeat(32);
    let c = Config::parse(
        &format!("[node]\ntrusted_checkpoint = \"42:{id}\""),
        std::iter::empty(),
    )
    .unwrap();
    assert_eq!(
        c.trusted_checkpoint(),
        Some((42, chorus_protocol::ids::Hash32([0xab; 32])))
    );
    assert!(c.value_problems().is_empty());
    for bad in ["42", "x:ab", "42:abcd"] {
        let c = Config::parse(
            &format!("[node]\ntrusted_checkpoint = \"{bad}\""),
            std::iter::empty(),
        )
        .unwrap();
        assert_eq!(c.trusted_checkpoint(), None);
        assert_eq!(c.value_problems().len(), 1, "{bad}");
    }
}

#[test]
fn every_problem_is_reported() {
    let text = r#"
[node]
key = "/nonexistent/key"
genesis = "/nonexistent/genesis.toml"
[network]
listen = ["not an addr"]
bootstrap = ["/ip4/127.0.0.1/tcp/1"]
[api]
listen = "nowhere"
[log]
format = "xml"
"#;
    let c = Config::parse(text, std::iter::empty()).unwrap();
    let err = c.validate().unwrap_err();
    assert_eq!(err.problems.len(), 6, "{:?}", err.problems);
    assert!(Config::parse("[node]\nunknown = 1", std::iter::empty()).is_err());
}

#[test]
fn quic_addresses_are_checked_against_the_build() {
    let text = r#"
[network]
listen = ["/ip4/127.0.0.1/udp/4001/quic-v1"]
"#;
    let c = Config::parse(text, std::iter::empty()).unwrap();
    let quic: Vec<String> = match c.validate() {
        Ok(()) => vec![],
        Err(e) => e
            .problems
            .into_iter()
            .filter(|p| p.contains("QUIC"))
            .collect(),
    };
    if cfg!(feature = "quic") {
        assert!(quic.is_empty(), "{quic:?}");
    } else {
        assert_eq!(quic.len(), 1, "{quic:?}");
        assert!(quic[0].contains("--features quic"));
    }
    // Both builds, whichever this test binary is.
    let quic: Multiaddr = "/ip4/127.0.0.1/udp/4001/quic-v1".parse().unwrap();
    let tcp: Multiaddr = "/ip4/127.0.0.1/tcp/4001".parse().unwrap();
    assert!(
        transport_problem(&quic, false)
            .unwrap()
            .contains("--features quic")
    );
    assert_eq!(transport_problem(&quic, true), None);
    assert_eq!(transport_problem(&tcp, false), None);
}

#[test]
fn consensus_section_round_trips_to_replica_tunables() {
    let c = Config::parse("", std::iter::empty()).unwrap();
    assert_eq!(c.consensus.replica(true), ReplicaConfig::default());
    let c = Config::parse(
        "[consensus]\npropose_grace_ms = 40\npropose_ms = 600",
        std::iter::empty(),
    )
    .unwrap();
    let r = c.consensus.replica(false);
    assert_eq!((r.propose_grace_ms, r.timeouts.propose_ms), (40, 600));
    assert!(!r.validator);
    assert_eq!(ConsensusSection::from_replica(&r), c.consensus);
    let bad = Config::parse("[consensus]\nprevote_ms = 0", std::iter::empty()).unwrap();
    let err = bad.validate().unwrap_err();
    assert!(
        err.problems.iter().any(|p| p.starts_with("[consensus]")),
        "{:?}",
        err.problems
    );
}

#[test]
fn the_anti_entropy_period_is_configurable_and_bounded() {
    let c = Config::parse("", std::iter::empty()).unwrap();
    assert_eq!(c.anti_entropy(), Duration::from_secs(1));
    let c = Config::parse("[network]\nanti_entropy_ms = 250", std::iter::empty()).unwrap();
    assert_eq!(c.anti_entropy(), Duration::from_millis(250));
    assert!(c.validate_values().is_ok());
    for bad in [0, MAX_ANTI_ENTROPY_MS + 1] {
        let c = Config::parse(
            &format!("[network]\nanti_entropy_ms = {bad}"),
            std::iter::empty(),
        )
        .unwrap();
        let err = c.validate_values().unwrap_err();
        assert_eq!(err.problems.len(), 1, "{:?}", err.problems);
        assert!(err.problems[0].contains("anti_entropy_ms"));
    }
}

#[test]
fn value_checks_read_no_file() {
    let c = Config::parse(
        "[node]\nkey = \"/nonexistent/key\"\ngenesis = \"/nonexistent/genesis.toml\"",
        std::iter::empty(),
    )
    .unwrap();
    assert!(c.validate_values().is_ok());
    assert_eq!(c.validate().unwrap_err().problems.len(), 2);
}

#[test]
fn the_store_cache_is_configurable_and_bounded() {
    let c = Config::parse("", std::iter::empty()).unwrap();
    assert_eq!(
        c.store_cache_bytes(),
        crate::store::ops::DEFAULT_CACHE_BYTES
    );
    assert_eq!(crate::store::ops::DEFAULT_CACHE_BYTES, 16 << 20);
    let c = Config::parse("[node]\nstore_cache_mb = 64", std::iter::empty()).unwrap();
    assert_eq!(c.store_cache_bytes(), 64 << 20);
    let c = Config::parse("[node]\nstore_cache_mb = 100000", std::iter::empty()).unwrap();
    let err = c.validate().unwrap_err();
    assert!(
        err.problems.iter().any(|p| p.contains("store_cache_mb")),
        "{:?}",
        err.problems
    );
}

#[test]
fn retention_is_days_heights_or_archive() {
    use crate::store::prune::Retention;
    let period = 60_000; // one-minute checkpoints
    let year = 365 * 86_400_000;
    let prune = |heights, history_ms| Retention::Prune {
        heights,
        history_ms,
    };
    let c = Config::parse("", std::iter::empty()).unwrap();
    assert_eq!(c.store.retention(period), prune(30 * 24 * 60, year));
    let c = Config::parse("[store]\nretention_days = 2", std::iter::empty()).unwrap();
    assert_eq!(c.store.retention(period), prune(2 * 24 * 60, year));
    let c = Config::parse("[store]\nretention_heights = 500", std::iter::empty()).unwrap();
    assert_eq!(c.store.retention(period), prune(500, year));
    let c = Config::parse("[store]\nhistory_days = 7", std::iter::empty()).unwrap();
    assert_eq!(
        c.store.retention(period),
        prune(30 * 24 * 60, 7 * 86_400_000)
    );
    let c = Config::parse("[store]\narchive = true", std::iter::empty()).unwrap();
    assert_eq!(c.store.retention(period), Retention::Archive);
    // Compaction: at 25 % free pages from 16 MiB on, counted every 10 minutes, archive
    // nodes too.
    let policy = |free_percent, mib: u64, secs: u64| CompactPolicy {
        free_percent,
        min_bytes: mib << 20,
        check_every_ms: secs * 1_000,
    };
    assert_eq!(c.store.compaction(), policy(25, 16, 600));
    let c = Config::parse(
        "[store]\ncompact_free_percent = 0\ncompact_min_mb = 64\ncompact_check_secs = 5",
        std::iter::empty(),
    )
    .unwrap();
    assert_eq!(c.store.compaction(), policy(0, 64, 5));
    assert!(!c.store.compaction().worth(1 << 40, 1 << 40));
    // A day of hour-long checkpoints is less than the floor: the floor.
    let c = Config::parse("[store]\nretention_days = 1", std::iter::empty()).unwrap();
    assert_eq!(c.store.retention(3_600_000), prune(64, year));
    for bad in [
        "retention_heights = 10",
        "retention_days = 0",
        "history_days = 0",
        "compact_free_percent = 101",
        "compact_check_secs = 0",
    ] {
        let c = Config::parse(&format!("[store]\n{bad}"), std::iter::empty()).unwrap();
        let err = c.validate_values().unwrap_err();
        assert!(
            err.problems.iter().any(|p| p.contains("[store]")),
            "{bad}: {err}"
        );
    }
}
