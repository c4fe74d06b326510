//! Runs `chorus-testbeds` commands the way CI does: the command's own pass/fail exit code and
//! its JSON summary. The multi-process commands also need the `chorus` binary next to this
//! one (`target/<profile>/chorus`), which `cargo test --workspace` builds; with
//! `cargo test -p chorus-testbeds` alone, build it first (`cargo build -p chorus`).

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::process::Command;
use std::time::Instant;

/// Run `chorus-testbeds <args> --json`; return the summary. Panics (with the summary) if the
/// command failed.
pub fn run(args: &[&str]) -> serde_json::Value {
    let t0 = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_chorus-testbeds"))
        .args(args)
        .arg("--json")
        .env("RUST_LOG", "error")
        .output()
        .expect("running chorus-testbeds");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON summary from chorus-testbeds {args:?} ({e}); stdout:\n{stdout}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    eprintln!(
        "chorus-testbeds {} → {} in {:.1} s",
        args.join(" "),
        summary["outcome"],
        t0.elapsed().as_secs_f64()
    );
    assert!(
        out.status.success() && summary["outcome"] != "fail",
        "chorus-testbeds {args:?} failed:\n{}",
        serde_json::to_string_pretty(&summary).unwrap()
    );
    summary
}
