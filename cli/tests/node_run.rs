//! `chorus node run` end to end: a one-validator network from `chorus genesis new`, the REST
//! API answering `chorus status`, a clean stop on SIGTERM, a restart on the same store; and
//! `chorus config validate` explaining every problem.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn chorus() -> Command {
    Command::new(env!("CARGO_BIN_EXE_chorus"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_status(url: &str, timeout: Duration) -> serde_json::Value {
    let t0 = Instant::now();
    loop {
        let out = chorus()
            .args(["--json", "status", "--node", url])
            .output()
            .unwrap();
        if out.status.success() {
            return serde_json::from_slice(&out.stdout).unwrap();
        }
        assert!(
            t0.elapsed() < timeout,
            "node never answered: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn stop(mut child: Child) {
    let pid = child.id() as i32;
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let t0 = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "node exited with {status}");
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "node did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_node_runs_answers_stops_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let net = dir.path().join("net");
    let out = chorus()
        .args([
            "--json",
            "genesis",
            "new",
            "--validators",
            "1",
            "--out",
            net.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let port = free_port();
    let config = dir.path().join("node.toml");
    std::fs::write(
        &config,
        format!(
            "[node]\ndata_dir = \"data\"\nkey = \"net/keys/validator-0.key\"\ngenesis = \"net/genesis.toml\"\n\
             [api]\nlisten = \"127.0.0.1:{port}\"\n[validator]\nenabled = true\n"
        ),
    )
    .unwrap();
    let ok = chorus()
        .args(["config", "validate", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..2 {
        let child = chorus()
            .args(["node", "run", "--config", config.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let status = wait_status(&url, Duration::from_secs(30));
        assert_eq!(status["network_id"], info["network_id"]);
        assert_eq!(status["address"], info["validators"][0]["address"]);
        assert!(dir.path().join("data/node.redb").exists());
        stop(child);
    }
}

#[test]
fn config_validate_lists_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(
        &config,
        "[network]\nlisten = [\"nonsense\"]\n[api]\nlisten = \"nowhere\"\n[log]\nformat = \"xml\"\n\
         [[worker]]\ntopic = 1\nmodel = { kind = \"http\", url = \"http://127.0.0.1:8000/inference/{Tokn}\" }\n\
         [[worker]]\ntopic = 1\nmodel = { kind = \"http\", url = \"ftp://127.0.0.1/x\" }\n\
         [[worker]]\ntopic = 1\nmodel = { kind = \"http\", url = \"http://{Token}.example.invalid/x\" }\n\
         [[worker]]\ntopic = 1\nmodel = { kind = \"http\", url = \"https://127.0.0.1/inference/{Token}\", params = { Token = \"ETH\" } }\n",
    )
    .unwrap();
    let out = chorus()
        .args(["config", "validate", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    // One line per problem after the heading; the https URL with a Token param is fine.
    let lines: Vec<&str> = err.lines().collect();
    assert!(lines[0].contains("has 8 problem(s)"), "{err}");
    assert_eq!(lines.len(), 9, "{err}");
    for needle in [
        "listen[0]",
        "[api] listen",
        "[log] format",
        "[node] key",
        "[node] genesis",
        "#0 (topic 1) model: URL template: unknown placeholder `{Tokn}`",
        "#1 (topic 1) model: unsupported URL scheme",
        "#2 (topic 1) model: URL template \"http://{Token}.example.invalid/x\": the scheme, host and port must be literal",
    ] {
        assert_eq!(
            lines.iter().filter(|l| l.contains(needle)).count(),
            1,
            "{needle:?} not on exactly one line of {err}"
        );
    }
    let out = chorus()
        .args(["config", "validate", "/nonexistent/config.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
