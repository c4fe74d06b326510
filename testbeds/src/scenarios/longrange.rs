//! `chorus-testbeds longrange`: the genesis validators unbond on the real chain, then sign
//! another history from the same genesis, and what a newcomer does with it (issue 14, test 4;
//! README, "Join a network").
//!
//! Two networks start from **one genesis** (same validators, same keys, same time): the real
//! one and a fork. On the real chain a successor (a funded node that is no validator at
//! genesis) bonds more than the genesis validators together, then every genesis validator
//! unbonds all of its bond: the successor alone signs the real chain from then on, and once
//! the unbonding period (`--unbonding-secs`) has passed the genesis validators hold their
//! stake again, liquid — they can sign anything at no risk. On the fork they do: a transfer
//! happens there that never happens on the real chain, and the fork's checkpoints, validly
//! signed by the genesis validators, certify that other history. Both run until the genesis
//! and the unbonds are older than the unbonding period. Then three newcomers join with
//! `chorus join`:
//!
//! 1. bootstrap on the fork, trusting the real chain's latest checkpoint
//!    (`--trusted-checkpoint <height>:<id>`): refused, nothing written but the key;
//! 2. bootstrap on the real chain with no trusted checkpoint: refused, the genesis being older
//!    than the unbonding period (its validators' signatures prove nothing any more);
//! 3. bootstrap on the real chain, trusting its checkpoint: joins, and its node
//!    (`chorus node run`) follows the real chain through the change of validators: the same
//!    checkpoint id and ledger root as the real network at one height, and the transfer made
//!    on the fork absent.
//!
//! Not covered here: a forged "ahead" height (the unit test
//! `checkpoint::catchup::tests::catch_up_rotates_over_the_peers_ahead` and the simulator's
//! votes far ahead cover it).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chorus_node::api::types::{Account, LatestCheckpoint, Status};
use chorus_protocol::keys::Keypair;
use clap::Args;

use super::join::{chorus, start_node, tail};
use super::wait_for;
use crate::procs::cluster::{Cluster, RunDir, chorus_bin, loopback_endpoints};
use crate::procs::get;
use crate::procs::plan::{NetSpec, write_data};
use crate::report::Report;

/// `longrange` flags.
#[derive(Debug, Args)]
pub struct LongRangeArgs {
    /// Validators of each network (at least 4).
    #[arg(long, default_value_t = 4)]
    pub validators: usize,
    /// Heights both networks finalize before the newcomers arrive (1 s each; the run also
    /// waits until the genesis is older than the unbonding period).
    #[arg(long, default_value_t = 30)]
    pub heights: u64,
    /// The validator unbonding period of the genesis (seconds).
    #[arg(long, default_value_t = 20)]
    pub unbonding_secs: u64,
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
pub async fn run(args: LongRangeArgs) -> anyhow::Result<ExitCode> {
    let json = args.json;
    Ok(Report::run("longrange", json, async |report| {
        run_inner(args, report).await
    })
    .await)
}

/// The two networks of one genesis.
struct Networks {
    real: Cluster,
    fork: Cluster,
    bin: PathBuf,
    genesis_ms: u64,
}

async fn start(args: &LongRangeArgs) -> anyhow::Result<Networks> {
    let n = args.validators;
    let real_dir = RunDir::new(args.out.clone(), "chorus-longrange-")?;
    let data = write_data(&real_dir.path)?;
    // The validators and the successor (node `n`): every node runs as a validator, the
    // successor with no bond at genesis (removed from the genesis below).
    let mut spec = NetSpec::new("chorus-longrange", n + 1, Duration::from_secs(6));
    spec.validators = n + 1;
    let mut plan = spec.plan(&data, real_dir.path.clone());
    plan.params.validator_unbonding_ms = args.unbonding_secs * 1_000;
    // The plan's token has no decimals: bonds of 100 000 are whole bonds here.
    plan.params.min_validator_bond = chorus_protocol::ids::Amount(1_000);
    let fork_path = real_dir.path.join("fork");
    std::fs::create_dir_all(&fork_path)?;
    let fork_dir = RunDir::new(Some(fork_path.clone()), "chorus-longrange-fork-")?;
    let mut fork_plan = plan.clone();
    fork_plan.data_root = fork_path;
    let bin = chorus_bin(args.chorus_bin.as_deref())?;
    let genesis_ms = plan.genesis_time_ms;
    let mut real = Cluster::create(
        plan,
        loopback_endpoints(n + 1)?,
        bin.clone(),
        real_dir,
        "warn",
    )?;
    let mut fork = Cluster::create(
        fork_plan,
        loopback_endpoints(n + 1)?,
        bin.clone(),
        fork_dir,
        "warn",
    )?;
    let successor = real.nodes[n].key.public();
    let mut genesis = real.genesis.clone();
    genesis.validators.retain(|v| v.address != successor);
    real.replace_genesis(genesis.clone())?;
    fork.replace_genesis(genesis)?;
    if real.genesis.network_id() != fork.genesis.network_id() {
        bail!("the fork's genesis differs from the real network's");
    }
    // The fork is the genesis validators' alone: its successor node never starts.
    real.start_all()?;
    for i in 0..n {
        fork.start(i)?;
    }
    for i in 0..n {
        real.wait_ready(i, Duration::from_secs(60)).await?;
        fork.wait_ready(i, Duration::from_secs(60)).await?;
    }
    real.wait_ready(n, Duration::from_secs(60)).await?;
    Ok(Networks {
        real,
        fork,
        bin,
        genesis_ms,
    })
}

/// `--key K --node URL --token-file T --wait` for node `i` of `c`.
fn tx_flags(c: &Cluster, i: usize) -> Vec<String> {
    let n = &c.nodes[i];
    super::join::Node {
        api: n.api(),
        key: n.dir.join("node.key"),
        token: n.dir.join("admin.token"),
    }
    .tx_flags()
}

/// `chorus join` against `bootstrap` into `out` (with `trusted` if given): (success, what it
/// said).
async fn join(
    bin: &Path,
    network_id: &str,
    bootstrap: String,
    out: &Path,
    trusted: Option<&str>,
) -> anyhow::Result<(bool, String)> {
    let ports = chorus_node::localnet::free_loopback_ports(2)?;
    let mut a: Vec<String> = vec![
        "join".into(),
        "--bootstrap".into(),
        bootstrap,
        "--network-id".into(),
        network_id.into(),
        "--out".into(),
        out.display().to_string(),
        "--listen".into(),
        format!("/ip4/127.0.0.1/tcp/{}", ports[0]),
        "--api".into(),
        format!("127.0.0.1:{}", ports[1]),
        "--timeout-secs".into(),
        "20".into(),
    ];
    if let Some(t) = trusted {
        a.extend(["--trusted-checkpoint".into(), t.into()]);
    }
    let (ok, stdout, stderr) = chorus(bin, a).await?;
    Ok((ok, if ok { stdout } else { stderr }))
}

async fn run_inner(args: LongRangeArgs, report: &mut Report) -> anyhow::Result<()> {
    if !(4..=8).contains(&args.validators)
        || !(5..=10_000).contains(&args.heights)
        || !(5..=3_600).contains(&args.unbonding_secs)
    {
        bail!("--validators in 4..=8, --heights in 5..=10000, --unbonding-secs in 5..=3600");
    }
    let Networks {
        mut real,
        mut fork,
        bin,
        genesis_ms,
    } = start(&args).await?;
    let id = real.status(0).await?.network_id.to_hex();

    // The fork's own history: a transfer the real network never sees (once the networks have
    // started: before its genesis time a ledger message is too early). Without it the two
    // would certify the very same checkpoints: same genesis, keys and clock.
    wait_for(Duration::from_secs(60), || async {
        fork.status(0).await.is_ok_and(|s| s.height >= 2)
    })
    .await;
    let outsider = Keypair::from_seed(&[0x5a; 32]).public();
    let mut a = vec!["transfer".into(), outsider.to_string(), "777".into()];
    a.extend(tx_flags(&fork, 0));
    let (sent, stdout, stderr) = chorus(&bin, a).await?;
    report.check(
        "the fork made its own history",
        sent,
        format!(
            "a transfer of 777 to {outsider} on the fork: {}",
            if sent { stdout } else { stderr }
        ),
    );

    // On the real chain the genesis validators hand over to the successor and unbond.
    let unbonded_at = hand_over(report, &real, &bin, args.validators).await?;

    // Both run past --heights and until the genesis and the unbonds are older than the
    // unbonding period.
    let old_at = genesis_ms.max(unbonded_at) + args.unbonding_secs * 1_000 + 2_000;
    let t0 = Instant::now();
    let ran = wait_for(
        Duration::from_secs(args.heights * 3 + args.unbonding_secs + 60),
        || async {
            let past = |s: anyhow::Result<Status>| s.is_ok_and(|s| s.height > args.heights);
            now_ms() > old_at && past(real.status(0).await) && past(fork.status(0).await)
        },
    )
    .await;
    let real_cp: LatestCheckpoint = get(&real.nodes[0].api(), "/v1/checkpoints/latest").await?;
    let fork_cp: LatestCheckpoint = get(&fork.nodes[0].api(), "/v1/checkpoints/latest").await?;
    report.metric("real_height", real_cp.height);
    report.metric("fork_height", fork_cp.height);
    let on = |c: &Cluster| {
        let api = c.nodes[0].api();
        async move {
            get::<Account>(&api, &format!("/v1/accounts/{outsider}"))
                .await
                .map(|a| a.balance.0)
                .unwrap_or(0)
        }
    };
    let (on_real, on_fork) = (on(&real).await, on(&fork).await);
    let (back, seen) = releases(&real, args.validators, false).await;
    report.check(
        "their stake was released before they signed the fork",
        back,
        format!("on the real chain after the unbonding period: {seen}"),
    );
    report.check(
        "two histories from one genesis",
        ran && on_real == 0 && on_fork == 777,
        format!(
            "after {:.0} s: real at height {} ({}), fork at {} ({}); the outsider holds {on_real} \
             on the real chain, {on_fork} on the fork",
            t0.elapsed().as_secs_f64(),
            real_cp.height,
            real_cp.id,
            fork_cp.height,
            fork_cp.id
        ),
    );
    let trusted = format!("{}:{}", real_cp.height, real_cp.id);

    // 1. Trusting the real chain, bootstrapped on the fork: refused.
    let a_dir = real.dir.join("newcomer-fork");
    let (ok, said) = join(&bin, &id, fork.nodes[0].p2p_addr(), &a_dir, Some(&trusted)).await?;
    // The fork node has no state at or after the trusted height to give (a snapshot every 16
    // heights), so `chorus join` writes the node's files to replay from genesis; the node
    // must then stop before the fork's checkpoint of the trusted height.
    let refused = if ok {
        refuses_in_replay(&real, &bin, &a_dir, real_cp.height).await?
    } else {
        Ok(format!(
            "chorus join refused: {}",
            said.lines().last().unwrap_or("")
        ))
    };
    report.check(
        "a newcomer trusting the real chain refuses the fork",
        refused.is_ok(),
        match refused {
            Ok(how) | Err(how) => {
                format!("--trusted-checkpoint {trusted}, bootstrap on the fork: {how}")
            }
        },
    );

    // 2. No trusted checkpoint, genesis older than the unbonding period: refused.
    let c_dir = real.dir.join("newcomer-untrusting");
    let (ok, said) = join(&bin, &id, real.nodes[0].p2p_addr(), &c_dir, None).await?;
    report.check(
        "without a trusted checkpoint an old genesis is refused",
        !ok && said.contains("unbonding period") && !c_dir.join("node.toml").exists(),
        format!(
            "chorus join with no trusted checkpoint: {}{}",
            if ok { "accepted: " } else { "refused: " },
            said.lines().last().unwrap_or("")
        ),
    );

    // 3. Trusting the real chain, bootstrapped on it: joins and follows it.
    let b_dir = real.dir.join("newcomer");
    let (ok, said) = join(&bin, &id, real.nodes[0].p2p_addr(), &b_dir, Some(&trusted)).await?;
    report.check(
        "a newcomer trusting the real chain joins it",
        ok,
        format!(
            "chorus join --trusted-checkpoint {trusted}: {}",
            said.lines().last().unwrap_or("")
        ),
    );
    if ok {
        follow(report, &real, &bin, &b_dir, outsider).await?;
    }
    if !report.passing() {
        report.note(format!(
            "the run directory (configs, stores, logs; the fork's in fork/) is kept: {}",
            real.keep_dir().display()
        ));
        fork.keep_dir();
    }
    for i in 0..args.validators {
        real.terminate(i, Duration::from_secs(20))?;
        fork.terminate(i, Duration::from_secs(20))?;
    }
    real.terminate(args.validators, Duration::from_secs(20))?;
    Ok(())
}

/// On the real chain: the successor (node `n`) bonds more than the `n` genesis validators
/// together, then each of them unbonds all of its bond, through its own node. Returns when
/// (unix ms) the last unbond was applied.
async fn hand_over(
    report: &mut Report,
    real: &Cluster,
    bin: &Path,
    n: usize,
) -> anyhow::Result<u64> {
    let genesis_bond = real.genesis.validators.first().map_or(0, |v| v.bond.0);
    let successor_bond = genesis_bond * (n as u128 + 1);
    let successor = real.status(n).await?.address;
    let mut a = vec!["bond".into(), successor_bond.to_string()];
    a.extend(tx_flags(real, n));
    let (ok, stdout, stderr) = chorus(bin, a).await?;
    report.check(
        "the successor bonded on the real chain",
        ok,
        format!(
            "{successor} bonded {successor_bond} (the {n} genesis validators hold {genesis_bond} each): {}",
            if ok { stdout } else { stderr }
        ),
    );
    let mut said = vec![];
    let mut all = ok;
    for i in 0..n {
        let mut a = vec!["unbond".into(), genesis_bond.to_string()];
        a.extend(tx_flags(real, i));
        let (ok, stdout, stderr) = chorus(bin, a).await?;
        all &= ok;
        said.push(format!(
            "node {i}: {}",
            if ok { stdout } else { stderr }
                .lines()
                .last()
                .unwrap_or("")
        ));
    }
    let unbonded_at = now_ms();
    let mut set = vec![];
    for i in 0..=n {
        if account_of(real, i).await.is_ok_and(|a| a.in_validator_set) {
            set.push(i);
        }
    }
    let (pending, seen) = releases(real, n, true).await;
    report.check(
        "the genesis validators unbonded on the real chain",
        all && set == [n] && pending,
        format!(
            "each unbonded {genesis_bond} ({}); the validator set is now nodes {set:?}; {seen}",
            said.join("; ")
        ),
    );
    Ok(unbonded_at)
}

/// Node `i`'s account as node 0 of `c` sees it.
async fn account_of(c: &Cluster, i: usize) -> anyhow::Result<Account> {
    let address = c.status(i).await?.address;
    get(&c.nodes[0].api(), &format!("/v1/accounts/{address}")).await
}

/// The genesis validators' unbonded stake: pending on the real chain right after the unbonds
/// (`before`), paid back into their balances after the unbonding period (`!before`): no bond
/// and nothing pending. What each account shows, and whether all are as expected.
async fn releases(real: &Cluster, n: usize, before: bool) -> (bool, String) {
    let mut seen = vec![];
    let mut all = true;
    for i in 0..n {
        let genesis_bond = real.genesis.validators.get(i).map_or(0, |v| v.bond.0);
        let account = account_of(real, i).await;
        all &= account.as_ref().is_ok_and(|a| {
            let pending: Vec<u128> = a.pending_releases.iter().map(|r| r.amount.0).collect();
            a.bond.0 == 0 && pending == if before { vec![genesis_bond] } else { vec![] }
        });
        seen.push(match account {
            Ok(a) => format!(
                "node {i}: bond {}, pending {:?}",
                a.bond,
                a.pending_releases
                    .iter()
                    .map(|r| r.amount.0)
                    .collect::<Vec<_>>()
            ),
            Err(e) => format!("node {i}: {e}"),
        });
    }
    (all, seen.join(", "))
}

/// Give the node `chorus join` wrote in `dir` the network's timings (the defaults suit
/// minutes) and start it: its API address and log file.
fn start_newcomer(
    real: &Cluster,
    bin: &Path,
    dir: &Path,
) -> anyhow::Result<(String, PathBuf, super::ChildGuard)> {
    let node_toml = dir.join("node.toml");
    let mut cfg: chorus_node::config::Config = toml::from_str(
        &std::fs::read_to_string(&node_toml)
            .with_context(|| format!("reading {}", node_toml.display()))?,
    )?;
    let network = real.config_of(0, "warn")?;
    cfg.consensus = network.consensus.clone();
    cfg.network.anti_entropy_ms = network.network.anti_entropy_ms;
    cfg.network.max_backoff_ms = network.network.max_backoff_ms;
    std::fs::write(&node_toml, toml::to_string(&cfg)?)?;
    let log = dir.join("node.log");
    let child = start_node(bin, &node_toml, &log)?;
    Ok((cfg.api.listen.clone(), log, child))
}

/// The node `chorus join` wrote in `dir` (bootstrapped on the fork) replays from genesis and
/// must stall at the trusted height `trusted` without applying the fork's checkpoint there:
/// `Ok` with what it did, `Err` with what went wrong.
async fn refuses_in_replay(
    real: &Cluster,
    bin: &Path,
    dir: &Path,
    trusted: u64,
) -> anyhow::Result<Result<String, String>> {
    let (api, log, child) = start_newcomer(real, bin, dir)?;
    let mut last: Option<Status> = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(s) = get::<Status>(&api, "/v1/status").await {
            let stalled = s.stalled.is_some();
            last = Some(s);
            if stalled {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(child);
    Ok(match last {
        Some(Status {
            stalled: Some(st),
            height,
            ..
        }) if st.height == trusted && height < trusted && st.reason.contains("does not extend") => {
            Ok(format!(
                "chorus join wrote a node to replay; it applied heights below {trusted} and stopped there: {}",
                st.reason
            ))
        }
        Some(s) => Err(format!(
            "its node is at height {} (stalled: {:?}); its log ends: {}",
            s.height,
            s.stalled,
            tail(&log)
        )),
        None => Err(format!(
            "its node never answered; its log ends: {}",
            tail(&log)
        )),
    })
}

/// The joined newcomer's node (in `dir`) runs and reaches the real network's checkpoint id
/// and ledger root at one height; the fork's transfer to `outsider` is not in its ledger.
async fn follow(
    report: &mut Report,
    real: &Cluster,
    bin: &Path,
    dir: &Path,
    outsider: chorus_protocol::keys::PublicKey,
) -> anyhow::Result<()> {
    let (api, log, child) = start_newcomer(real, bin, dir)?;
    let real_api = real.nodes[0].api();
    let mut seen = String::new();
    let mut same = false;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !same && Instant::now() < deadline {
        let latest = "/v1/checkpoints/latest";
        if let (Ok(mine), Ok(theirs)) = (
            get::<LatestCheckpoint>(&api, latest).await,
            get::<LatestCheckpoint>(&real_api, latest).await,
        ) {
            seen = format!(
                "newcomer at height {} ({}), real network at {} ({})",
                mine.height, mine.id, theirs.height, theirs.id
            );
            same = mine.height == theirs.height
                && mine.id == theirs.id
                && mine.ledger_root == theirs.ledger_root;
        }
        if !same {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let balance = get::<Account>(&api, &format!("/v1/accounts/{outsider}"))
        .await
        .map(|a| a.balance.0);
    report.check(
        "the newcomer follows the real chain",
        same && balance.as_ref().is_ok_and(|b| *b == 0),
        format!(
            "{seen}; the fork's transfer on its ledger: {balance:?}; its log ends: {}",
            tail(&log)
        ),
    );
    drop(child);
    Ok(())
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
