//! The `chorus` binary end to end: exit codes, JSON output, the shipped examples.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn chorus(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chorus"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(s) = stdin {
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn example(path: &str) -> String {
    format!("{}/../examples/{path}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn synth_prints_the_shipped_example_output() {
    let out = chorus(
        &["synth", "--input", &example("synth/epoch303_input.json")],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected = std::fs::read_to_string(example("synth/epoch303_output.json")).unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        expected.trim()
    );
}

#[test]
fn synth_reads_stdin_and_rejects_bad_input_with_code_2() {
    let input = std::fs::read_to_string(example("synth/epoch303_input.json")).unwrap();
    let out = chorus(&["synth"], Some(&input));
    assert!(out.status.success());
    for bad in [
        "{",
        "{\"params\": 1}",
        &input.replace("0.11896852945769756", "1e999"),
    ] {
        let out = chorus(&["synth"], Some(bad));
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    let none = input.replace("\"inferences\"", "\"ignored\"");
    let out = chorus(&["synth"], Some(&none));
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn settle_prints_the_shipped_example_output() {
    let out = chorus(
        &["settle", "--input", &example("settle/epoch304_input.json")],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected = std::fs::read_to_string(example("settle/epoch304_output.json")).unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        expected.trim()
    );
}

#[test]
fn key_and_genesis_commands_work_and_refuse_open_keys() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("net");
    let out = chorus(
        &[
            "--json",
            "genesis",
            "new",
            "--validators",
            "2",
            "--out",
            out_dir.to_str().unwrap(),
        ],
        None,
    );
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["validators"].as_array().unwrap().len(), 2);
    let key = out_dir.join("keys/validator-0.key");
    let out = chorus(&["key", "show", "--key", key.to_str().unwrap()], None);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        v["validators"][0]["address"].as_str().unwrap()
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = chorus(&["key", "show", "--key", key.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8(out.stderr).unwrap().contains("chmod 600"));
    // A second genesis into the same directory is refused (bad input).
    let out = chorus(
        &["genesis", "new", "--out", out_dir.to_str().unwrap()],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_refused_genesis_writes_nothing_and_can_be_rerun() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("net");
    let long_name = "n".repeat(65);
    let args = |network: &str| {
        vec![
            "genesis".to_string(),
            "new".into(),
            "--validators".into(),
            "2".into(),
            "--network".into(),
            network.into(),
            "--out".into(),
            out_dir.to_str().unwrap().into(),
        ]
    };
    let refused = args(&long_name);
    let refused: Vec<&str> = refused.iter().map(String::as_str).collect();
    let out = chorus(&refused, None);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("genesis would be invalid"),
        "{out:?}"
    );
    assert!(!out_dir.join("keys").exists(), "keys were written");
    assert!(!out_dir.join("genesis.toml").exists());
    let ok = args("fixed-net");
    let ok: Vec<&str> = ok.iter().map(String::as_str).collect();
    let out = chorus(&ok, None);
    assert!(out.status.success(), "{out:?}");
    assert!(out_dir.join("keys/validator-1.key").exists());
}

#[test]
fn a_closed_stdout_ends_quietly_with_exit_0() {
    // The reading end is closed before the command writes anything: every write fails with
    // EPIPE (Rust ignores SIGPIPE), which `println!` would turn into a panic (exit 101).
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_chorus"))
        .args(["synth", "--input", &example("synth/epoch303_input.json")])
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The shipped node configs (examples/node/*.toml) pass `chorus config validate` beside a
/// genesis that defines topic 1 and a key, as their comments say to set them up.
#[test]
fn the_example_node_configs_validate() {
    use chorus_protocol::genesis::{Genesis, GenesisTopic};
    use chorus_protocol::topic::{LossMethod, TopicSpec};
    let dir = tempfile::tempdir().unwrap();
    let out = chorus(
        &[
            "--json",
            "genesis",
            "new",
            "--validators",
            "1",
            "--out",
            dir.path().to_str().unwrap(),
        ],
        None,
    );
    assert!(out.status.success(), "{out:?}");
    let path = dir.path().join("genesis.toml");
    let mut genesis = Genesis::from_toml_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    genesis.topics.push(GenesisTopic {
        id: chorus_protocol::ids::TopicId(1),
        creator: genesis.validators[0].address,
        spec: TopicSpec::new(
            "ETH 1h",
            LossMethod::Mse,
            0,
            3_600_000,
            1_800_000,
            3_600_000,
        ),
        fee_revenue: chorus_protocol::ids::Amount(0),
    });
    std::fs::write(&path, genesis.to_toml_string().unwrap()).unwrap();
    std::fs::copy(
        dir.path().join("keys/validator-0.key"),
        dir.path().join("node.key"),
    )
    .unwrap();
    for name in ["worker.toml", "reputer.toml", "validator.toml"] {
        let config = dir.path().join(name);
        std::fs::copy(example(&format!("node/{name}")), &config).unwrap();
        let out = chorus(&["config", "validate", config.to_str().unwrap()], None);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
