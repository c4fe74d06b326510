//! `chorus-testbeds join`: a stranger joins a running network with one address and the network
//! id, and becomes a worker and a validator, using only the `chorus` command line.
//!
//! `--validators` validator processes (1 s epochs, one topic, every node an inferer, two
//! reputers) run until they have finalized `--epochs` heights. Then, exactly as a newcomer
//! would (README, "Join a network"):
//!
//! 1. `chorus join --bootstrap <one node's address> --network-id <id> --out newcomer`: the
//!    genesis comes from that peer and is kept only if it hashes to the id; so is the peer's
//!    newest ledger state, kept only if its certificate chain verifies from the genesis
//!    validators and its root is the certified one (`--from-genesis`: not asked for); a key
//!    and a `node.toml` are written;
//! 2. the operator adds roles to `node.toml` (a `[[worker]]` of topic 1 with a built-in model,
//!    `[validator] enabled = true`, the network's consensus timeouts) and starts
//!    `chorus node run --config newcomer/node.toml`; the node catches up from that state (or
//!    from genesis);
//! 3. a funded account sends it tokens: `chorus transfer <address> <amount> --wait` (against
//!    node 0, with node 0's key);
//! 4. the newcomer registers and bonds through its own node: `chorus register 1 worker --wait`
//!    and `chorus bond <amount> --wait`.
//!
//! Pass: the join writes a genesis that hashes to the id; the newcomer catches up (its height
//! reaches the network's); the three ledger messages are applied; within `--sign-within`
//! heights of its bond the newcomer's signature is on the network's checkpoint certificates
//! (`signed_by` of `GET /v1/checkpoints/latest` on node 0); a finalized network inference of
//! topic 1 on node 0 counts its value; and every node, the newcomer included, holds the same
//! checkpoint id and ledger root at one height.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chorus_node::api::types::{Inference, LatestCheckpoint, Status};
use chorus_node::config::{Config, ValidatorRole, WorkerRole};
use chorus_node::models::{BuiltinModel, BuiltinSpec, ModelSpec, Target};
use chorus_protocol::ids::{Amount, TopicId};
use chorus_protocol::keys::PublicKey;
use clap::Args;

use super::{ChildGuard, wait_for};
use crate::procs::cluster::{Cluster, RunDir, chorus_bin, loopback_endpoints};
use crate::procs::get;
use crate::procs::plan::{NetSpec, write_data};
use crate::report::Report;

/// `join` flags.
#[derive(Debug, Args)]
pub struct JoinArgs {
    /// Validators of the running network (at least 4).
    #[arg(long, default_value_t = 4)]
    pub validators: usize,
    /// Heights the network finalizes before the newcomer arrives (1 s each).
    #[arg(long, default_value_t = 300)]
    pub epochs: u64,
    /// Heights after its bond is applied within which the newcomer must sign.
    #[arg(long, default_value_t = 5)]
    pub sign_within: u64,
    /// Tokens node 0 sends the newcomer (base units).
    #[arg(long, default_value_t = 200_000)]
    pub fund: u128,
    /// The newcomer's validator bond (the genesis validators hold 100 000 each).
    #[arg(long, default_value_t = 100_000)]
    pub bond: u128,
    /// The newcomer replays every window from genesis (`chorus join --from-genesis`) instead
    /// of installing the peer's certified state.
    #[arg(long)]
    pub from_genesis: bool,
    /// Keep the run directory (configs, stores, logs) here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The `chorus` binary (default: the one next to this executable).
    #[arg(long)]
    pub chorus_bin: Option<PathBuf>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Run the scenario.
pub async fn run(args: JoinArgs) -> anyhow::Result<ExitCode> {
    let json = args.json;
    Ok(Report::run("join", json, async |report| run_inner(args, report).await).await)
}

/// `chorus <args>` to completion (off the runtime's threads): exit success, stdout, stderr.
pub(super) async fn chorus(
    bin: &Path,
    args: Vec<String>,
) -> anyhow::Result<(bool, String, String)> {
    let bin = bin.to_path_buf();
    let shown = args.join(" ");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(bin)
            .args(args)
            .stdin(Stdio::null())
            .env("RUST_LOG", "error")
            .output()
    })
    .await?
    .with_context(|| format!("running chorus {shown}"))?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
    ))
}

/// The newcomer's `node.toml` as `chorus join` wrote it, plus what its operator adds: a worker
/// of topic 1 (a built-in model on the bars), the validator role and `timeouts` (the network's
/// consensus section: its epochs are 1 s, the defaults suit minutes).
fn add_roles(node_toml: &Path, data: &Path, timeouts: &Config) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(node_toml)?;
    let mut cfg: Config =
        toml::from_str(&text).with_context(|| format!("{} does not load", node_toml.display()))?;
    cfg.worker = vec![WorkerRole {
        topic: TopicId(1),
        model: Some(ModelSpec::Builtin(BuiltinSpec {
            target: Target::Range,
            model: BuiltinModel::Ema { alpha: 0.1 },
        })),
        forecaster: None,
        jitter_ms: 100,
        data: Some(data.to_path_buf()),
        truth: None,
    }];
    cfg.validator = ValidatorRole { enabled: true };
    cfg.consensus = timeouts.consensus.clone();
    cfg.network.anti_entropy_ms = timeouts.network.anti_entropy_ms;
    cfg.network.max_backoff_ms = timeouts.network.max_backoff_ms;
    cfg.validate_values()?;
    std::fs::write(node_toml, toml::to_string(&cfg)?)?;
    Ok(())
}

/// Start `chorus node run --config <config>`, its stderr appended to `log`.
pub(super) fn start_node(bin: &Path, config: &Path, log: &Path) -> anyhow::Result<ChildGuard> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let child = Command::new(bin)
        .args(["node", "run", "--config"])
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .context("starting the newcomer's node")?;
    Ok(ChildGuard(Some(child)))
}

/// Everything the scenario needs to reach one node.
pub(super) struct Node {
    pub(super) api: String,
    pub(super) key: PathBuf,
    pub(super) token: PathBuf,
}

impl Node {
    /// `--key K --node URL --token-file T --wait`.
    pub(super) fn tx_flags(&self) -> Vec<String> {
        vec![
            "--key".into(),
            self.key.display().to_string(),
            "--node".into(),
            format!("http://{}", self.api),
            "--token-file".into(),
            self.token.display().to_string(),
            "--wait".into(),
            "--wait-timeout".into(),
            "60".into(),
        ]
    }

    async fn status(&self) -> anyhow::Result<Status> {
        get(&self.api, "/v1/status").await
    }
}

/// A `chorus … --wait` write, checked: `name` passes when the ledger applied it. Returns the
/// height of the checkpoint that applied it.
async fn write(
    report: &mut Report,
    bin: &Path,
    name: &str,
    mut args: Vec<String>,
    via: &Node,
) -> anyhow::Result<Option<u64>> {
    let shown = format!("chorus {}", args.join(" "));
    args.extend(via.tx_flags());
    let (ok, stdout, stderr) = chorus(bin, args).await?;
    let said = if ok { stdout } else { stderr };
    // "…, applied at checkpoint <height>"
    let height = said
        .rsplit_once("applied at checkpoint ")
        .and_then(|(_, h)| h.trim().parse::<u64>().ok())
        .filter(|_| ok);
    report.check(
        name,
        height.is_some(),
        format!("{shown}: {}", said.lines().last().unwrap_or("")),
    );
    Ok(height)
}

async fn run_inner(args: JoinArgs, report: &mut Report) -> anyhow::Result<()> {
    if !(4..=16).contains(&args.validators)
        || !(3..=100_000).contains(&args.epochs)
        || !(1..=100).contains(&args.sign_within)
        || args.bond == 0
        || args.fund < args.bond + 1_000
    {
        bail!(
            "--validators in 4..=16, --epochs in 3..=100000, --sign-within in 1..=100, \
             --bond > 0 and --fund ≥ bond + 1000 (fees)"
        );
    }
    let (mut cluster, data, bin) = start_network(&args).await?;
    // The network runs.
    let Some(height_at_join) = network_runs(&args, report, &cluster).await else {
        cluster.keep_dir();
        return Ok(());
    };

    // 1. chorus join.
    let Some(Joined {
        dir: newcomer_dir,
        ports,
        state_height,
    }) = join_step(&args, report, &cluster, &bin, height_at_join).await?
    else {
        cluster.keep_dir();
        return Ok(());
    };

    // 2. Roles, then the node: it catches up from its state (or from genesis).
    let node_toml = newcomer_dir.join("node.toml");
    add_roles(&node_toml, &data, &cluster.config_of(0, "warn")?)?;
    let log = newcomer_dir.join("node.log");
    let mut child = start_node(&bin, &node_toml, &log)?;
    let newcomer = Node {
        api: format!("127.0.0.1:{}", ports[1]),
        key: newcomer_dir.join("node.key"),
        token: newcomer_dir.join("admin.token"),
    };
    let node0 = Node {
        api: cluster.nodes[0].api(),
        key: cluster.nodes[0].dir.join("node.key"),
        token: cluster.nodes[0].dir.join("admin.token"),
    };
    let t_catch = Instant::now();
    let target = cluster.status(0).await.map_or(height_at_join, |s| s.height);
    let caught_up = wait_for(Duration::from_secs(120), || async {
        newcomer.status().await.is_ok_and(|s| s.height >= target)
    })
    .await;
    let catchup_s = t_catch.elapsed().as_secs_f64();
    let me: PublicKey = match newcomer.status().await {
        Ok(s) => s.address,
        Err(e) => {
            report.check(
                "the newcomer caught up",
                false,
                format!(
                    "its node does not answer ({e}; running: {}); its log ends: {}",
                    child.running(),
                    tail(&log)
                ),
            );
            cluster.keep_dir();
            return Ok(());
        }
    };
    report.metric("catchup_seconds", (catchup_s * 10.0).round() / 10.0);
    report.check(
        "the newcomer caught up",
        caught_up,
        format!(
            "from {} to height {target} in {catchup_s:.1} s ({:.0} heights/s)",
            match state_height {
                Some(h) => format!("the installed state of height {h}"),
                None => "genesis".into(),
            },
            target.saturating_sub(state_height.unwrap_or(0)) as f64 / catchup_s.max(1e-3)
        ),
    );

    // 3. Funded by node 0's account; the newcomer's own node must see the tokens before it
    //    accepts its messages (an account that cannot pay the fee is ignored at gossip).
    let fund = Amount(args.fund);
    let funded = write(
        report,
        &bin,
        "a funded account sent it tokens (chorus transfer)",
        vec!["transfer".into(), me.to_string(), args.fund.to_string()],
        &node0,
    )
    .await?;
    let sees = funded.is_some()
        && wait_for(Duration::from_secs(30), || async {
            newcomer.status().await.is_ok_and(|s| s.balance == fund)
        })
        .await;
    report.check(
        "its node shows the balance",
        sees,
        format!(
            "balance on its node: {:?} (sent {fund})",
            newcomer.status().await.map(|s| s.balance)
        ),
    );

    // 4. Register as a worker of topic 1 and bond, through its own node.
    write(
        report,
        &bin,
        "it registered as a worker (chorus register)",
        vec!["register".into(), "1".into(), "worker".into()],
        &newcomer,
    )
    .await?;
    let bond_height = write(
        report,
        &bin,
        "it bonded as a validator (chorus bond)",
        vec!["bond".into(), args.bond.to_string()],
        &newcomer,
    )
    .await?;

    check_signing(report, &node0, &me, bond_height, args.sign_within).await;
    check_counted(report, &node0, &me).await;
    check_agreement(report, &cluster, &newcomer).await;

    report.check(
        "the newcomer's node kept running",
        child.running(),
        "its process is alive at the end",
    );
    if !report.passing() {
        report.note(format!(
            "the run directory (configs, stores, node logs; the newcomer's in newcomer/) is \
             kept: {}; the newcomer's log ends: {}",
            cluster.keep_dir().display(),
            tail(&log)
        ));
    }
    drop(child);
    for i in 0..args.validators {
        cluster.terminate(i, Duration::from_secs(20))?;
    }
    Ok(())
}

/// `--validators` node processes of a one-topic network, started and ready; the bars file and
/// the `chorus` binary.
async fn start_network(args: &JoinArgs) -> anyhow::Result<(Cluster, PathBuf, PathBuf)> {
    let n = args.validators;
    let dir = RunDir::new(args.out.clone(), "chorus-join-")?;
    let data = write_data(&dir.path)?;
    let spec = NetSpec::new("chorus-join", n, Duration::from_secs(4));
    let mut plan = spec.plan(&data, dir.path.clone());
    // Bonds of whole tokens are the default; this network's token has no decimals.
    plan.params.min_validator_bond = Amount(1_000);
    let bin = chorus_bin(args.chorus_bin.as_deref())?;
    let mut cluster = Cluster::create(plan, loopback_endpoints(n)?, bin.clone(), dir, "warn")?;
    cluster.start_all()?;
    for i in 0..n {
        cluster.wait_ready(i, Duration::from_secs(60)).await?;
    }
    Ok((cluster, data, bin))
}

/// Wait until the network finalized `--epochs` heights; its height then (`None`: it did not,
/// reported).
async fn network_runs(args: &JoinArgs, report: &mut Report, cluster: &Cluster) -> Option<u64> {
    let t_run = Instant::now();
    let ran = wait_for(Duration::from_secs(args.epochs * 3 + 60), || async {
        cluster
            .status(0)
            .await
            .is_ok_and(|s| s.height > args.epochs)
    })
    .await;
    let height_at_join = cluster.status(0).await.map_or(0, |s| s.height);
    report.metric("network_height_at_join", height_at_join);
    report
        .check(
            "the network ran",
            ran,
            format!(
                "node 0 at height {height_at_join} after {:.0} s (wanted > {})",
                t_run.elapsed().as_secs_f64(),
                args.epochs
            ),
        )
        .then_some(height_at_join)
}

/// Step 1, `chorus join` from node 0's address: the genesis and the certified state it
/// wrote (checked). `None`: the join failed (reported).
async fn join_step(
    args: &JoinArgs,
    report: &mut Report,
    cluster: &Cluster,
    bin: &Path,
    height_at_join: u64,
) -> anyhow::Result<Option<Joined>> {
    let status0 = cluster.status(0).await?;
    let newcomer_dir = cluster.dir.join("newcomer");
    let ports = chorus_node::localnet::free_loopback_ports(2)?;
    let mut join_args: Vec<String> = vec!["--json".into(), "join".into()];
    if args.from_genesis {
        join_args.push("--from-genesis".into());
    }
    let (ok, stdout, stderr) = chorus(
        bin,
        join_args
            .into_iter()
            .chain([
                "--bootstrap".into(),
                cluster.nodes[0].p2p_addr(),
                "--network-id".into(),
                status0.network_id.to_hex(),
                "--out".into(),
                newcomer_dir.display().to_string(),
                "--listen".into(),
                format!("/ip4/127.0.0.1/tcp/{}", ports[0]),
                "--api".into(),
                format!("127.0.0.1:{}", ports[1]),
                "--timeout-secs".into(),
                "20".into(),
            ])
            .collect(),
    )
    .await?;
    let said: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_default();
    let state_height = said["state"]["height"].as_u64();
    let genesis_ok = std::fs::read_to_string(newcomer_dir.join("genesis.toml"))
        .ok()
        .and_then(|t| chorus_protocol::genesis::Genesis::from_toml_str(&t).ok())
        .is_some_and(|g| g.network_id() == status0.network_id);
    if !report.check(
        "chorus join fetched the network's genesis",
        ok && genesis_ok,
        if ok {
            format!(
                "wrote genesis.toml, node.key and node.toml for address {} (network {})",
                said["address"].as_str().unwrap_or("?"),
                said["network_id"].as_str().unwrap_or("?")
            )
        } else {
            format!("chorus join failed: {stderr}")
        },
    ) {
        return Ok(None);
    }
    // Node 0 keeps a ledger snapshot every 16 heights: the state is at most that far behind.
    if let Some(h) = state_height {
        report.metric("state_height", h);
    }
    let state_ok = match state_height {
        None => args.from_genesis,
        Some(h) => !args.from_genesis && h + 16 > height_at_join && h <= status0.height + 16,
    };
    report.check(
        "chorus join installed the peer's certified state",
        state_ok,
        match state_height {
            Some(h) => format!(
                "height {h} (network at {height_at_join} when it joined), {} KiB, {}/{} of the \
                 power signed",
                said["state"]["snapshot_bytes"].as_u64().unwrap_or(0) / 1024,
                said["state"]["signed_power"],
                said["state"]["total_power"]
            ),
            None if args.from_genesis => "--from-genesis: none asked for".into(),
            None => format!("no state: {stderr}"),
        },
    );

    Ok(Some(Joined {
        dir: newcomer_dir,
        ports,
        state_height,
    }))
}

/// What step 1 wrote: the newcomer's directory, its two ports (p2p, API), the height of the
/// state it installed.
struct Joined {
    dir: PathBuf,
    ports: Vec<u16>,
    state_height: Option<u64>,
}

/// Its signature on the certificates (`signed_by` on `node0`) within `sign_within` heights of
/// the checkpoint that applied its bond.
async fn check_signing(
    report: &mut Report,
    node0: &Node,
    me: &PublicKey,
    bond_height: Option<u64>,
    sign_within: u64,
) {
    // In the validator set: its signature on the certificates.
    let mut first_signed = None;
    let mut last_seen = 0;
    let deadline = Instant::now() + Duration::from_secs((sign_within + 10) * 3);
    while bond_height.is_some() && first_signed.is_none() && Instant::now() < deadline {
        if let Ok(cp) = get::<LatestCheckpoint>(&node0.api, "/v1/checkpoints/latest").await {
            last_seen = cp.height;
            if cp.signed_by.contains(me) {
                first_signed = Some(cp.height);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let bond_height = bond_height.unwrap_or(0);
    report.metric("bond_applied_height", bond_height);
    report.metric("first_signed_height", first_signed.unwrap_or(0));
    report.check(
        "it signs checkpoints",
        first_signed.is_some_and(|h| h <= bond_height + sign_within),
        match first_signed {
            Some(h) => format!(
                "its signature on the certificate of height {h}, {} after its bond \
                 (applied at height {bond_height}; allowed {})",
                h.saturating_sub(bond_height),
                sign_within
            ),
            None => format!(
                "not on any certificate up to height {last_seen} (bond applied at \
                 height {bond_height})"
            ),
        },
    );
}

/// A finalized network inference of topic 1 on `node0` counts its value.
async fn check_counted(report: &mut Report, node0: &Node, me: &PublicKey) {
    // Its inferences in the network inference (finalized, on another node).
    let mut counted = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    while counted.is_none() && Instant::now() < deadline {
        if let Ok(inf) = get::<Inference>(&node0.api, "/v1/topics/1/inference").await
            && inf.finalized
            && inf.bundle.inferer_values.contains_key(me)
        {
            counted = Some((inf.epoch, inf.bundle.inferer_values.len()));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    report.check(
        "its inferences are in the network inference",
        counted.is_some(),
        match counted {
            Some((epoch, k)) => format!(
                "node 0's finalized inference of topic 1, epoch {epoch}, counts its value \
                 among {k} inferers"
            ),
            None => "no finalized inference of topic 1 on node 0 counted it within 60 s".into(),
        },
    );
}

/// Every node of `cluster` and the newcomer at one height with one checkpoint id and root.
async fn check_agreement(report: &mut Report, cluster: &Cluster, newcomer: &Node) {
    let n = cluster.nodes.len();
    // Agreement: every node, the newcomer included, at one height with one id and root.
    let mut agreed = None;
    let mut last = vec![];
    for _ in 0..40 {
        let mut seen = vec![];
        for i in 0..n {
            seen.push(cluster.status(i).await.ok());
        }
        seen.push(newcomer.status().await.ok());
        last = seen
            .iter()
            .map(|s| s.as_ref().map(|s| (s.height, s.tip, s.ledger_root)))
            .collect();
        if let Some(Some(first)) = last.first()
            && last.iter().all(|s| s.as_ref() == Some(first))
        {
            agreed = Some(first.0);
            break;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    report.check(
        "every node agrees, the newcomer included",
        agreed.is_some(),
        match agreed {
            Some(h) => format!(
                "{} nodes at height {h}: one checkpoint id, one ledger root",
                n + 1
            ),
            None => format!("no common (height, id, root) in 40 polls; last: {last:?}"),
        },
    );
}

/// The last line of a log file, without terminal colour codes.
pub(super) fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let line = text.lines().last().unwrap_or("(empty)");
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // ESC [ … letter
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
