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

/// `chorus config validate CONFIG` passes.
fn assert_validates(config: &std::path::Path) {
    let ok = chorus()
        .args(["config", "validate", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
}

/// `chorus node run --config CONFIG` in the background, quiet.
fn run_node(config: &std::path::Path) -> Child {
    chorus()
        .args(["node", "run", "--config", config.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
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
    let port = free_port();
    let (config, info) = one_validator(dir.path(), port, |g| g);
    assert_validates(&config);
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..2 {
        let child = run_node(&config);
        let status = wait_status(&url, Duration::from_secs(30));
        assert_eq!(status["network_id"], info["network_id"]);
        assert_eq!(status["address"], info["validators"][0]["address"]);
        // What others put after /p2p/ to bootstrap from this node.
        let key = dir.path().join("net/keys/validator-0.key");
        let peer = chorus()
            .args(["key", "show", "--key", key.to_str().unwrap(), "--peer-id"])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8(peer.stdout).unwrap().trim(),
            status["peer_id"].as_str().unwrap()
        );
        assert!(dir.path().join("data/node.redb").exists());
        stop(child);
    }
}

/// `chorus join` from a running node's address and the network id: the genesis is fetched and
/// checked, a key and a loadable config are written; a wrong id, an address without its peer
/// id, an unreachable peer and an occupied directory are refused and write nothing.
#[test]
fn a_newcomer_joins_with_one_address_and_the_network_id() {
    let dir = tempfile::tempdir().unwrap();
    let (child, info, status) = listening_validator(dir.path());
    let listen = status["listen"][0].as_str().unwrap().to_owned();
    let bootstrap = format!("{listen}/p2p/{}", status["peer_id"].as_str().unwrap());
    let id = info["network_id"].as_str().unwrap().to_owned();
    let join = |out: &std::path::Path, id: &str, bootstrap: &str| {
        chorus()
            .args([
                "--json",
                "join",
                "--bootstrap",
                bootstrap,
                "--network-id",
                id,
            ])
            .args(["--timeout-secs", "10", "--api", "127.0.0.1:0", "--out"])
            .arg(out)
            .output()
            .unwrap()
    };
    let newcomer = dir.path().join("newcomer");
    let out = join(&newcomer, &id, &bootstrap);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(said["network_id"], info["network_id"]);
    let node_toml = newcomer.join("node.toml");
    let text = std::fs::read_to_string(&node_toml).unwrap();
    assert!(text.contains(&bootstrap), "{text}");
    // The written config and genesis load, and the genesis is the network's.
    assert_validates(&node_toml);
    let written = std::fs::read_to_string(newcomer.join("genesis.toml")).unwrap();
    let g = chorus_protocol::genesis::Genesis::from_toml_str(&written).unwrap();
    assert_eq!(g.network_id().to_hex(), id);
    assert!(newcomer.join("node.key").exists());
    // The peer's certified state, when it had one, is installed in the new data directory.
    if said["state"].is_object() {
        assert_eq!(said["state"]["installed"], true, "{said}");
        assert!(said["state"]["height"].as_u64().unwrap() >= 1, "{said}");
        assert!(newcomer.join("data/node.redb").exists());
    } else {
        assert!(!newcomer.join("data/node.redb").exists());
    }
    // Joining into the same directory again: refused, exit 2.
    let again = join(&newcomer, &id, &bootstrap);
    assert_eq!(
        again.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    // Another network's id: the peer's genesis does not hash to it; nothing written.
    let wrong = dir.path().join("wrong");
    let other = "ab".repeat(32);
    let out = join(&wrong, &other, &bootstrap);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("serves network") && err.contains(&id), "{err}");
    assert!(!wrong.exists());
    // An address without /p2p/: bad input.
    let out = join(&wrong, &id, &listen);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("/p2p/"));
    // Nobody at the address: a clear error, nothing written.
    let closed = format!(
        "/ip4/127.0.0.1/tcp/{}/p2p/{}",
        free_port(),
        status["peer_id"].as_str().unwrap()
    );
    let out = join(&wrong, &id, &closed);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("did not answer"));
    assert!(!wrong.exists());
    // Malformed arguments never reach the network.
    let out = join(&wrong, "xyz", &bootstrap);
    assert_eq!(out.status.code(), Some(2));
    stop(child);
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

/// A one-validator network in `dir`: `chorus genesis new` (its genesis.toml passed through
/// `edit`), and `dir/node.toml` with the API on `port` and the admin token in
/// `dir/admin.token`. Returns the config's path and the genesis command's JSON.
fn one_validator(
    dir: &std::path::Path,
    port: u16,
    edit: impl Fn(String) -> String,
) -> (std::path::PathBuf, serde_json::Value) {
    let net = dir.join("net");
    let info = ok_json(&[
        "genesis",
        "new",
        "--validators",
        "1",
        "--out",
        net.to_str().unwrap(),
    ]);
    let genesis = net.join("genesis.toml");
    let text = std::fs::read_to_string(&genesis).unwrap();
    std::fs::write(&genesis, edit(text)).unwrap();
    let config = dir.join("node.toml");
    std::fs::write(
        &config,
        format!(
            "[node]\ndata_dir = \"data\"\nkey = \"net/keys/validator-0.key\"\ngenesis = \"net/genesis.toml\"\n\
             [api]\nlisten = \"127.0.0.1:{port}\"\nadmin_token_file = \"admin.token\"\n\
             [validator]\nenabled = true\n"
        ),
    )
    .unwrap();
    (config, info)
}

/// A one-validator network's node running with a TCP listen address: the node, the network
/// info of `genesis new`, and the node's status.
fn listening_validator(dir: &std::path::Path) -> (Child, serde_json::Value, serde_json::Value) {
    let port = free_port();
    let (config, info) = one_validator(dir, port, |g| g);
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("[network]\nlisten = [\"/ip4/127.0.0.1/tcp/0\"]\n");
    std::fs::write(&config, text).unwrap();
    let child = run_node(&config);
    let status = wait_status(&format!("http://127.0.0.1:{port}"), Duration::from_secs(30));
    (child, info, status)
}

/// `chorus … --json` that must succeed: its JSON.
fn ok_json(args: &[&str]) -> serde_json::Value {
    let out = chorus().arg("--json").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "chorus {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The worked example of docs/governance.md, command for command, on a one-validator
/// network with 1 s checkpoints and a 3-checkpoint vote.
#[test]
fn governance_worked_example() {
    let dir = tempfile::tempdir().unwrap();
    let net = dir.path().join("net");
    let port = free_port();
    let (config, _) = one_validator(dir.path(), port, |g| {
        g.replace(
            "checkpoint_period_ms = 60000",
            "checkpoint_period_ms = 1000",
        )
        .replace(
            "governance_voting_periods = 60",
            "governance_voting_periods = 3",
        )
    });
    let child = run_node(&config);
    let url = format!("http://127.0.0.1:{port}");
    wait_status(&url, Duration::from_secs(30));
    let key = net.join("keys/validator-0.key");
    let token = dir.path().join("admin.token");
    let tx = [
        "--key",
        key.to_str().unwrap(),
        "--token-file",
        token.to_str().unwrap(),
        "--node",
        &url,
    ];
    let with_tx = |args: &[&str]| -> Vec<String> {
        args.iter()
            .chain(tx.iter())
            .map(|s| s.to_string())
            .collect()
    };
    let run = |args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ok_json(&args)
    };

    // A typo is refused before anything is signed (exit 2).
    let typo = with_tx(&[
        "gov",
        "propose",
        "--title",
        "x",
        "--set-param",
        "create_topic_feee=1",
    ]);
    let out = chorus().args(&typo).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown parameter `create_topic_feee`"));

    // 1. Propose (waits for the checkpoint that applies it).
    let proposed = run(with_tx(&[
        "gov",
        "propose",
        "--title",
        "Cheaper topics",
        "--set-param",
        "create_topic_fee=50000",
        "--wait",
    ]));
    assert_eq!(proposed["ledger"], "applied", "{proposed}");
    let id = proposed["proposal"].as_str().unwrap().to_string();
    // 2. It is listed, voting.
    let list = run(vec![
        "gov".into(),
        "list".into(),
        "--node".into(),
        url.clone(),
    ]);
    assert_eq!(list[0]["id"], id.as_str());
    assert_eq!(list[0]["status"], "voting");
    // 3. Vote yes.
    let voted = run(with_tx(&["gov", "vote", &id, "yes", "--wait"]));
    assert_eq!(voted["ledger"], "applied", "{voted}");
    // 4. After the vote's last checkpoint the tally passes it and the parameter changes.
    let t0 = Instant::now();
    let shown = loop {
        let p = run(vec![
            "gov".into(),
            "show".into(),
            id.clone(),
            "--node".into(),
            url.clone(),
        ]);
        if p["status"] != "voting" {
            break p;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "never tallied: {p}");
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(shown["status"], "passed", "{shown}");
    assert_eq!(shown["votes"].as_array().unwrap().len(), 1);
    let params = run(vec!["params".into(), "--node".into(), url.clone()]);
    assert_eq!(params["create_topic_fee"], "50000");

    // A vote on a tallied proposal is accepted by gossip but refused by the ledger: --wait
    // says so with the ledger's reason (exit 1).
    let late = with_tx(&["gov", "vote", &id, "no", "--wait"]);
    let out = chorus().args(&late).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the ledger refused the vote"), "{err}");
    assert!(err.contains("voting has ended"), "{err}");
    stop(child);
}

/// `chorus store export`, `stats`, then `import` on a stopped node's store: the history goes
/// out and comes back (every height already held: skipped); a running node's store, an existing output
/// file and a file that is not an archive are refused with exit code 2.
#[test]
fn store_export_and_import_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (config, _) = one_validator(dir.path(), port, |g| {
        g.replace("checkpoint_period_ms = 60000", "checkpoint_period_ms = 500")
    });
    let config = config.to_str().unwrap();
    let archive = dir.path().join("history.chorus");
    let archive_s = archive.to_str().unwrap();
    let child = run_node(std::path::Path::new(config));
    let url = format!("http://127.0.0.1:{port}");
    let t0 = Instant::now();
    while wait_status(&url, Duration::from_secs(30))["height"]
        .as_u64()
        .unwrap()
        < 4
    {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "no 4 heights in 60 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let busy = chorus()
        .args(["store", "export", "--config", config, "--out", archive_s])
        .output()
        .unwrap();
    assert_eq!(busy.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&busy.stderr).contains("stop the node first"),
        "{}",
        String::from_utf8_lossy(&busy.stderr)
    );
    assert!(!archive.exists());
    stop(child);
    let out = ok_json(&["store", "export", "--config", config, "--out", archive_s]);
    let heights = out["exported"]["heights"].as_u64().unwrap();
    assert!(heights >= 4, "{out}");
    let again = chorus()
        .args(["store", "export", "--config", config, "--out", archive_s])
        .output()
        .unwrap();
    assert_eq!(
        again.status.code(),
        Some(2),
        "an existing file is overwritten"
    );
    // Where the bytes go: one row per certificate exported, and the tables plus the
    // remainder are the file on disk.
    let st = ok_json(&["store", "stats", "--config", config]);
    let tables = st["tables"].as_array().unwrap();
    let table = |name: &str| tables.iter().find(|t| t["table"] == name).unwrap().clone();
    assert_eq!(
        table("certificates")["rows"].as_u64(),
        Some(heights),
        "{st}"
    );
    // The bytes the file occupies on disk (its length can be up to twice that, sparsely).
    let meta = std::fs::metadata(st["file"].as_str().unwrap()).unwrap();
    let file = chorus_node::store::stats::disk_bytes(&meta);
    assert_eq!(st["file_bytes"].as_u64(), Some(file));
    assert_eq!(st["file_length"].as_u64(), Some(meta.len()));
    let total: u64 = tables
        .iter()
        .map(|t| {
            ["stored_bytes", "metadata_bytes", "fragmented_bytes"]
                .iter()
                .map(|k| t[*k].as_u64().unwrap())
                .sum::<u64>()
        })
        .sum();
    assert_eq!(total + st["other_bytes"].as_u64().unwrap(), file, "{st}");
    let c = ok_json(&["store", "compact", "--config", config]);
    assert_eq!(c["bytes_before"].as_u64(), Some(file), "{c}");
    // A state sync with nobody to ask is refused before anything is opened.
    let lonely = chorus()
        .args(["store", "sync", "--config", config])
        .output()
        .unwrap();
    assert_eq!(lonely.status.code(), Some(2), "{lonely:?}");
    assert!(
        String::from_utf8_lossy(&lonely.stderr).contains("no peer to ask"),
        "{lonely:?}"
    );
    assert!(c["bytes_after"].as_u64().unwrap() <= file, "{c}");
    let back = ok_json(&["store", "import", "--config", config, archive_s]);
    assert_eq!(back["imported"]["heights"].as_u64(), Some(heights));
    assert_eq!(back["imported"]["skipped"].as_u64(), Some(heights));
    let junk = dir.path().join("junk");
    std::fs::write(&junk, b"\x05\x00\x00\x00hello").unwrap();
    let bad = chorus()
        .args([
            "store",
            "import",
            "--config",
            config,
            junk.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("not a Chorus archive"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

/// `node run` with no genesis file but `[node] network_id` and a bootstrap peer: the genesis is
/// fetched, checked against the id and written, and the node runs on that network; with
/// another network's id nothing is written and the node does not start.
#[test]
fn node_run_fetches_a_missing_genesis_from_its_bootstrap_peer() {
    let dir = tempfile::tempdir().unwrap();
    let (child, info, status) = listening_validator(dir.path());
    let bootstrap = format!(
        "{}/p2p/{}",
        status["listen"][0].as_str().unwrap(),
        status["peer_id"].as_str().unwrap()
    );
    let id = info["network_id"].as_str().unwrap();
    let newcomer = dir.path().join("newcomer");
    std::fs::create_dir_all(&newcomer).unwrap();
    let key = newcomer.join("node.key");
    ok_json(&["key", "new", "--out", key.to_str().unwrap()]);
    let port2 = free_port();
    let write_config = |id: &str| {
        let cfg = newcomer.join("node.toml");
        std::fs::write(
            &cfg,
            format!(
                "[node]\ndata_dir = \"data\"\nkey = \"node.key\"\ngenesis = \"genesis.toml\"\n\
                 network_id = \"{id}\"\n\
                 [network]\nlisten = [\"/ip4/127.0.0.1/tcp/0\"]\nbootstrap = [\"{bootstrap}\"]\n\
                 [api]\nlisten = \"127.0.0.1:{port2}\"\nadmin_token_file = \"admin.token\"\n"
            ),
        )
        .unwrap();
        cfg
    };
    // Another network's id: refused, nothing written, exit 1.
    let cfg = write_config(&"ab".repeat(32));
    assert_validates(&cfg);
    let out = chorus()
        .args(["node", "run", "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("serves network"), "{err}");
    assert!(!newcomer.join("genesis.toml").exists());
    // The right id: fetched, written, and the node runs on that network.
    let cfg = write_config(id);
    let newcomer_node = run_node(&cfg);
    let s = wait_status(
        &format!("http://127.0.0.1:{port2}"),
        Duration::from_secs(60),
    );
    assert_eq!(s["network_id"].as_str(), Some(id));
    let written = std::fs::read_to_string(newcomer.join("genesis.toml")).unwrap();
    let g = chorus_protocol::genesis::Genesis::from_toml_str(&written).unwrap();
    assert_eq!(g.network_id().to_hex(), id);
    stop(newcomer_node);
    stop(child);
}

/// The compose network of deploy/compose.yaml without Docker: the same `init.sh` (4
/// validators, here on loopback ports), the same model server (Allora's basic-coin-prediction-node
/// contract), the same `setup.sh` (topic, funding, registration as worker and reputer), then
/// the worker node. The worker's answer is in a finalized network inference, and the epoch is
/// settled with the worker's key scored as inferer and as reputer.
#[test]
fn the_compose_network_runs_natively() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let dir = tempfile::tempdir().unwrap();
    let net = dir.path().join("net");
    let log = dir.path().join("model.log");
    let model_port = free_port();
    // Every process this test starts is killed if it fails (none outlives it).
    let mut procs = Procs(vec![]);
    procs.0.push(
        Command::new("python3")
            .arg(repo.join("deploy/model_server.py"))
            .args(["--port", &model_port.to_string(), "--horizon", "2"])
            .arg("--log")
            .arg(&log)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let nodes: Vec<(u16, u16)> = (0..4).map(|_| (free_port(), free_port())).collect();
    let script = |name: &str| {
        let mut c = Command::new("sh");
        c.arg(repo.join("deploy").join(name))
            .arg(&net)
            .env("CHORUS", env!("CARGO_BIN_EXE_chorus"));
        c
    };
    let init = |c: &mut Command| {
        c.args(nodes.iter().map(|(p, a)| format!("127.0.0.1:{p}:{a}")))
            .env("CHECKPOINT_MS", "500")
            .env("MIN_EPOCH_MS", "1000")
            .output()
            .unwrap()
    };
    let out = init(&mut script("init.sh"));
    assert!(out.status.success(), "{out:?}");
    let genesis = std::fs::read(net.join("genesis.toml")).unwrap();
    // A second run keeps the network it made.
    let again = init(&mut script("init.sh"));
    assert!(again.status.success(), "{again:?}");
    assert_eq!(std::fs::read(net.join("genesis.toml")).unwrap(), genesis);
    for i in 0..4 {
        procs.0.push(run_node(&net.join(format!("node-{i}.toml"))));
    }

    let (worker_p2p, worker_api) = (free_port(), free_port());
    let out = script("setup.sh")
        .env("NODE", format!("http://127.0.0.1:{}", nodes[0].1))
        .env("MODEL", format!("http://127.0.0.1:{model_port}"))
        .env("WORKER", format!("127.0.0.1:{worker_p2p}:{worker_api}"))
        .env("EPOCH_MS", "2000")
        .env("START_IN_MS", "3000")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let topic: u64 = said
        .split("topic ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no topic id in: {said}"));
    procs.0.push(run_node(&net.join("worker.toml")));
    let address = ok_json(&[
        "key",
        "show",
        "--key",
        net.join("keys/worker.key").to_str().unwrap(),
    ])["address"]
        .as_str()
        .unwrap()
        .to_string();
    let url = format!("http://127.0.0.1:{worker_api}");
    wait_status(&url, Duration::from_secs(30));

    // The model server's answer, exactly, in a finalized network inference; then a settled
    // epoch in which the worker's key was scored as inferer and as reputer.
    let t0 = Instant::now();
    let value = loop {
        let i = chorus()
            .args(["--json", "infer", "get", &topic.to_string(), "--node", &url])
            .output()
            .unwrap();
        if i.status.success() {
            let i: serde_json::Value = serde_json::from_slice(&i.stdout).unwrap();
            if i["finalized"] == true
                && let Some(v) = i["inferer_values"][&address].as_f64()
            {
                break v;
            }
        }
        assert!(
            t0.elapsed() < Duration::from_secs(90),
            "no finalized inference with the worker's value"
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    let answers: Vec<serde_json::Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        answers
            .iter()
            .any(|a| a["path"] == "/inference/ETH" && a["value"].as_f64() == Some(value)),
        "{value} was not an answer of the model server: {answers:?}"
    );
    let scores = loop {
        let s = ok_json(&["scores", &topic.to_string(), "--node", &url]);
        if s["inferers"].get(&address).is_some() && s["reputers"].get(&address).is_some() {
            break s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "the worker was never scored as inferer and reputer: {s}"
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(scores["inferers"][&address].is_f64(), "{scores}");
    // The reputer asked the model server for the ground truth with the epoch's start time.
    let truth = std::fs::read_to_string(&log).unwrap();
    assert!(truth.contains("\"/truth/ETH/"), "{truth}");

    // The nodes stop cleanly on SIGTERM (the model server is killed by the guard).
    let model = procs.0.remove(0);
    for node in procs.0.drain(..).rev() {
        stop(node);
    }
    procs.0.push(model);
}

/// Child processes killed when dropped (a failing test leaves nothing running).
struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A one-validator network of `period_ms` checkpoint periods (`validator_toml` appended to its
/// config) at height `at_least` or more, and a follower `chorus join --from-genesis`ed to it with
/// `state_sync_heights = 8`, not started: (validator, its URL, follower dir, its node.toml, its
/// URL).
fn validator_and_follower(
    dir: &std::path::Path,
    period_ms: u64,
    validator_toml: &str,
    at_least: u64,
) -> (
    Child,
    String,
    std::path::PathBuf,
    std::path::PathBuf,
    String,
) {
    let port = free_port();
    let (config, _) = one_validator(dir, port, |g| {
        g.replace(
            "checkpoint_period_ms = 60000",
            &format!("checkpoint_period_ms = {period_ms}"),
        )
    });
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("[network]\nlisten = [\"/ip4/127.0.0.1/tcp/0\"]\n");
    text.push_str(validator_toml);
    std::fs::write(&config, text).unwrap();
    let validator = run_node(&config);
    let url = format!("http://127.0.0.1:{port}");
    let t0 = Instant::now();
    let status = loop {
        let s = wait_status(&url, Duration::from_secs(30));
        if s["height"].as_u64().unwrap() >= at_least {
            break s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "no {at_least} heights"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let bootstrap = format!(
        "{}/p2p/{}",
        status["listen"][0].as_str().unwrap(),
        status["peer_id"].as_str().unwrap()
    );
    let follower = dir.join("follower");
    let port2 = free_port();
    let joined = chorus()
        .args(["join", "--from-genesis", "--bootstrap", &bootstrap])
        .args(["--network-id", status["network_id"].as_str().unwrap()])
        .args(["--listen", "/ip4/127.0.0.1/tcp/0"])
        .args(["--api", &format!("127.0.0.1:{port2}"), "--out"])
        .arg(&follower)
        .output()
        .unwrap();
    assert!(joined.status.success(), "{joined:?}");
    assert!(!follower.join("data/node.redb").exists());
    let node_toml = follower.join("node.toml");
    let text = std::fs::read_to_string(&node_toml).unwrap().replace(
        "genesis = \"genesis.toml\"\n",
        "genesis = \"genesis.toml\"\nstate_sync_heights = 8\n",
    );
    std::fs::write(&node_toml, text).unwrap();
    let url2 = format!("http://127.0.0.1:{port2}");
    (validator, url, follower, node_toml, url2)
}

/// `chorus node run --config node_toml`, its log (`RUST_LOG=info`) in `<follower>/node.log`.
fn run_logged(follower: &std::path::Path, node_toml: &std::path::Path) -> Child {
    let log = std::fs::File::create(follower.join("node.log")).unwrap();
    chorus()
        .args(["node", "run", "--config", node_toml.to_str().unwrap()])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// `chorus node run` far behind its bootstrap peer (`[node] state_sync_heights`): a node
/// joined `--from-genesis` with no store starts from the peer's certified state, not height 0.
#[test]
fn a_node_far_behind_its_peer_starts_from_a_certified_state() {
    let dir = tempfile::tempdir().unwrap();
    let (validator, _, follower, node_toml, url2) = validator_and_follower(dir.path(), 500, "", 20);
    let child = run_logged(&follower, &node_toml);
    // Its first answer is already past the snapshot the validator had (one every 16 heights).
    let first = wait_status(&url2, Duration::from_secs(30));
    stop(child);
    stop(validator);
    let text = std::fs::read_to_string(follower.join("node.log")).unwrap();
    assert!(text.contains("certified state installed"), "{text}");
    assert!(first["height"].as_u64().unwrap() >= 16, "{first}");
}

/// The height `url` reports.
fn height_of(url: &str) -> u64 {
    wait_status(url, Duration::from_secs(30))["height"]
        .as_u64()
        .unwrap()
}

/// A running node that falls far behind (suspended while its only peer went 90 heights on and
/// pruned the windows it would have replayed) restarts from the peer's certified state: its log
/// says so, and it reaches the peer's height again. Without the check while running it could
/// only replay, and the windows are gone.
#[test]
fn a_running_node_far_behind_restarts_from_a_certified_state() {
    let dir = tempfile::tempdir().unwrap();
    let (validator, url, follower, node_toml, url2) =
        validator_and_follower(dir.path(), 250, "[store]\nretention_heights = 64\n", 12);
    let child = run_logged(&follower, &node_toml);
    // It follows; then it is suspended while the validator goes 90 heights on.
    let t1 = Instant::now();
    while height_of(&url2) + 2 < height_of(&url) {
        assert!(
            t1.elapsed() < Duration::from_secs(60),
            "the follower never caught up"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let pid = child.id().to_string();
    let suspended_at = height_of(&url2);
    assert!(
        Command::new("kill")
            .args(["-STOP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let t2 = Instant::now();
    while height_of(&url) < suspended_at + 90 {
        assert!(
            t2.elapsed() < Duration::from_secs(120),
            "the validator stalled"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(
        Command::new("kill")
            .args(["-CONT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let resumed_at = height_of(&url);
    let t3 = Instant::now();
    let reached = loop {
        let h = height_of(&url2);
        if h >= resumed_at {
            break h;
        }
        assert!(
            t3.elapsed() < Duration::from_secs(90),
            "the follower stayed at {h} (the validator resumed it at {resumed_at}): {}",
            std::fs::read_to_string(follower.join("node.log")).unwrap()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    stop(child);
    stop(validator);
    let text = std::fs::read_to_string(follower.join("node.log")).unwrap();
    assert!(
        text.contains("far behind a bootstrap peer while running"),
        "reached {reached} without the check: {text}"
    );
    assert!(
        text.matches("certified state installed").count() >= 2,
        "one install at start, one while running: {text}"
    );
}
