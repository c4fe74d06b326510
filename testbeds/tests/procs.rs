//! The multi-process testbed, short: 4 `chorus node run` processes, node 3 killed -9 at epoch
//! 5 and restarted 3 epochs later; all nodes agree at the end.

mod common;

#[test]
fn four_processes_agree_after_a_kill_9() {
    let s = common::run(&["procs", "--nodes", "4", "--epochs", "16", "--kill", "3@5"]);
    assert!(
        s["metrics"]["final_height"].as_u64().unwrap_or(0) >= 8,
        "{s}"
    );
}
