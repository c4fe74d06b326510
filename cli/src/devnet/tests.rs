//! The devnet's flags and plan, without starting a network.

use chorus_node::config::Config;
use chorus_node::localnet::{LocalNet, LocalNetError};
use chorus_node::setup::SetupError;

use super::plan::DevnetPlan;
use super::procs::write_run_dir;
use super::*;

fn args(epoch_ms: u64) -> DevnetArgs {
    DevnetArgs {
        epochs: "1000".into(),
        data: None,
        target: None,
        alpha_regret: 0.01,
        p_norm: 3.0,
        nodes: 14,
        epoch_ms: Some(epoch_ms),
        seed: 1,
        out: None,
        keep: false,
        processes: true,
        warmup: WARMUP,
        mechanism: MechanismVersion::AlloraV06,
        replay: false,
        commit_reveal: false,
        copycat: false,
    }
}

/// `--commit-reveal --copycat` on the stepped clock: the copycat gets a 15th node, the topics a
/// reveal phase, every node config is valid, and the stepped clock's events of an epoch come in
/// the order the design needs: workers commit, the copycat looks, the last height is ready,
/// reveals.
#[test]
fn commit_reveal_and_the_copycat_plan_a_stepped_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("eurusd_1h.csv");
    std::fs::write(&data, EURUSD).unwrap();
    let a = DevnetArgs {
        epoch_ms: None,
        processes: false,
        commit_reveal: true,
        copycat: true,
        ..args(0)
    };
    let plan = DevnetPlan::new(
        &a,
        &data,
        &[TargetArg::Range],
        1_700_000_000_000,
        dir.path().join("nodes"),
    )
    .unwrap();
    assert_eq!(plan.local.nodes, 15);
    let spec = &plan.local.topics[0].spec;
    assert_eq!(
        (spec.submission_window_ms, spec.reveal_window_ms),
        (15_000, 30_000)
    );
    let copycat = plan.local.topics[0].workers.last().unwrap();
    assert_eq!((copycat.node, copycat.name.as_str()), (14, "copycat"));
    let ports: Vec<u16> = (0..30).map(|p| 20_000 + p).collect();
    for node in write_run_dir(&plan.local, &ports).unwrap() {
        Config::load(&node.config).unwrap().validate().unwrap();
    }
    let schedule = stepped::Schedule::of(&plan).unwrap();
    assert_eq!(schedule.topics[0].copycats, vec![14]);
    assert_eq!(schedule.topics[0].workers.len(), 11);
    let offsets: Vec<u64> = schedule
        .events(1, 10)
        .iter()
        .map(|(at, _, _)| at - 1_700_000_000_000 - 60_000)
        .collect();
    assert_eq!(offsets, vec![3_750, 6_000, 24_000, 30_750]);
    let names: Vec<String> = schedule
        .events(1, 10)
        .iter()
        .map(|(_, step, _)| format!("{step:?}"))
        .map(|s| s.split_whitespace().next().unwrap_or_default().to_string())
        .collect();
    assert_eq!(names, ["Workers", "Workers", "Ready", "Reveals"]);
}

/// Issue 19: the timeouts derived from the epoch length exceeded the fixed `max_ms` above
/// 6 s epochs, so `--processes --epoch-ms 8000` wrote configs its own nodes refused. Every
/// node config the plan writes, for epoch lengths across the whole accepted range, passes what
/// `chorus config validate` runs (load the file, then `Config::validate`).
#[test]
fn every_node_config_is_valid_at_every_accepted_epoch_length() {
    let epoch_lengths = [
        MIN_EPOCH_MS,
        200,
        1_000,
        6_000,
        6_001,
        8_000,
        60_000,
        120_000,
        MAX_EPOCH_MS,
    ];
    for epoch_ms in epoch_lengths {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("eurusd_1h.csv");
        std::fs::write(&data, EURUSD).unwrap();
        let targets = [TargetArg::Range, TargetArg::Close];
        let plan = DevnetPlan::new(
            &args(epoch_ms),
            &data,
            &targets,
            1_700_000_000_000,
            dir.path().join("nodes"),
        )
        .unwrap_or_else(|e| panic!("--epoch-ms {epoch_ms}: {e:#}"));
        let ports: Vec<u16> = (0..2 * plan.local.nodes as u16)
            .map(|p| 20_000 + p)
            .collect();
        let nodes = write_run_dir(&plan.local, &ports)
            .unwrap_or_else(|e| panic!("--epoch-ms {epoch_ms}: {e:#}"));
        assert_eq!(nodes.len(), 14);
        for node in nodes {
            let cfg = Config::load(&node.config).unwrap();
            if let Err(e) = cfg.validate() {
                panic!("--epoch-ms {epoch_ms}, {}: {e}", node.config.display());
            }
        }
    }
}

#[test]
fn epoch_lengths_outside_the_accepted_range_are_bad_input_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    for epoch_ms in [0, MIN_EPOCH_MS - 1, MAX_EPOCH_MS + 1, u64::MAX] {
        let out = dir.path().join(format!("out-{epoch_ms}"));
        let a = DevnetArgs {
            out: Some(out.clone()),
            ..args(epoch_ms)
        };
        let Err(err) = inputs(&a) else {
            panic!("--epoch-ms {epoch_ms} accepted");
        };
        let bad = err.downcast_ref::<BadInput>().expect("bad input (exit 2)");
        assert!(
            bad.0.starts_with("--epoch-ms must be in 50..=600000"),
            "{}",
            bad.0
        );
        assert!(
            !out.exists(),
            "--epoch-ms {epoch_ms} created {}",
            out.display()
        );
    }
    for epoch_ms in [MIN_EPOCH_MS, MAX_EPOCH_MS] {
        let a = DevnetArgs {
            out: Some(dir.path().join(format!("ok-{epoch_ms}"))),
            ..args(epoch_ms)
        };
        assert!(inputs(&a).is_ok(), "--epoch-ms {epoch_ms} refused");
    }
}

/// One node with an invalid config (node 1's inferer loses its model): the in-process network
/// refuses the plan before any node starts.
#[test]
fn an_invalid_node_config_fails_before_any_node_starts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("eurusd_1h.csv");
    std::fs::write(&data, EURUSD).unwrap();
    let root = dir.path().join("nodes");
    let mut plan = DevnetPlan::new(
        &args(200),
        &data,
        &[TargetArg::Range],
        1_700_000_000_000,
        root.clone(),
    )
    .unwrap();
    let worker = plan.local.topics[0]
        .workers
        .iter_mut()
        .find(|w| w.node == 1)
        .unwrap();
    worker.model = None;
    // A node that starts panics on this runtime (its store opens with `block_in_place`):
    // nothing may start.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let err = match runtime.block_on(LocalNet::start(plan.local)) {
        Ok(_) => panic!("an invalid plan started"),
        Err(e) => e,
    };
    assert!(
        matches!(
            err,
            LocalNetError::Setup {
                node: 1,
                source: SetupError::Config(_)
            }
        ),
        "{err:?}"
    );
    assert!(!root.exists(), "a node store was created");
}
