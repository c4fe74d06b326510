//! Scenario 3, `chorus-testbeds crash`: kill -9 during writes.
//!
//! **Store level** (`--store-kills`, default 100): a child process (`store-writer`) writes
//! envelope batches into one redb store through `chorus_node::store::ops`, printing every id
//! once its durable commit returned; the parent kills it with SIGKILL at a random moment (20 to
//! 300 ms after start), reopens the store (redb's crash recovery) and checks that every printed
//! id is there with its window membership; the same store is reused by the next round, so it
//! goes through every crash in turn.
//!
//! **Node level** (`--node-kills`, default 5; the full run uses 100): 4 validators as
//! `chorus node run` processes; validator 3 gets signed transfers through `POST /v1/submit`
//! (answered `accepted: true` only once on disk) while it takes part in consensus, and is
//! killed -9 at a random moment 0.3 to 1.5 s into the writes. With the process dead, its store
//! is opened and every acknowledged id must be in it; then it restarts and catches up. A
//! listening peer in this process subscribes to the consensus channel of every node for the
//! whole run and records every vote and proposal validator 3 signs: two different ones for one
//! (height, round, step) would be a double-sign. At the end no honest node may have slashed it
//! (its bond is unchanged everywhere) and all nodes must agree.

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use arc_malachitebft_core_types::{NilOrVal, VoteType};
use chorus_crdt::checkpoint::ConsensusMessage;
use chorus_node::api::types::Account;
use chorus_node::store::ops;
use chorus_protocol::envelope::Envelope;
use chorus_protocol::ids::{Amount, Hash32, NetworkId};
use chorus_protocol::keys::{Keypair, PublicKey};
use chorus_protocol::messages::{Payload, Transfer};
use clap::Args;
use futures::StreamExt;
use libp2p::Multiaddr;
use libp2p::gossipsub;
use libp2p::swarm::SwarmEvent;

use super::{Rng, store_writer};
use crate::procs;
use crate::procs::check::{self, Observer};
use crate::procs::cluster::{Cluster, RunDir, chorus_bin, loopback_endpoints};
use crate::procs::plan::{NetSpec, write_data};
use crate::report::Report;

/// The validator that is killed.
const VICTIM: usize = 3;
/// Time allowed for one submission (answered after a durable commit).
const SUBMIT_TIMEOUT: Duration = Duration::from_secs(10);

/// `crash` flags.
#[derive(Debug, Args)]
pub struct CrashArgs {
    /// kill -9 rounds of the store-level writer.
    #[arg(long, default_value_t = 100)]
    pub store_kills: u32,
    /// kill -9 rounds of a validator node (`chorus node run`) under writes.
    #[arg(long, default_value_t = 5)]
    pub node_kills: u32,
    /// Seed of the kill times.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The `chorus` binary (default: the one next to this executable).
    #[arg(long)]
    pub chorus_bin: Option<std::path::PathBuf>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Run the scenario.
pub async fn run(args: CrashArgs) -> anyhow::Result<ExitCode> {
    let json = args.json;
    Ok(Report::run("crash", json, async |report| run_inner(args, report).await).await)
}

async fn run_inner(args: CrashArgs, report: &mut Report) -> anyhow::Result<()> {
    if args.store_kills > 10_000 || args.node_kills > 1_000 {
        bail!("at most 10000 store kills and 1000 node kills");
    }
    let mut rng = Rng::seeded(args.seed);
    if args.store_kills > 0 {
        store_level(args.store_kills, &mut rng, report).await?;
    }
    if args.node_kills > 0 {
        node_level(&args, &mut rng, report).await?;
    }
    Ok(())
}

async fn store_level(kills: u32, rng: &mut Rng, report: &mut Report) -> anyhow::Result<()> {
    let dir = RunDir::new(None, "chorus-crash-store-")?;
    let store = dir.path.join("node.redb");
    let t0 = Instant::now();
    let mut acked_total = 0usize;
    let mut lost: Vec<String> = vec![];
    let mut open_errors: Vec<String> = vec![];
    let mut from = 0u64;
    for round in 0..kills {
        let exe = std::env::current_exe()?;
        let mut child = std::process::Command::new(exe)
            .args(["store-writer", "--store"])
            .arg(&store)
            .args(["--from", &from.to_string()])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        let stdout = child.stdout.take().context("no stdout")?;
        let acked: Arc<Mutex<Vec<String>>> = Arc::default();
        let reader = {
            let acked = acked.clone();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(stdout).lines() {
                    let Ok(l) = line else { break };
                    if l.len() == 64
                        && let Ok(mut v) = acked.lock()
                    {
                        v.push(l);
                    }
                }
            })
        };
        let delay = 20 + rng.below(280);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        let _ = child.kill();
        let _ = child.wait();
        let _ = reader.join();
        let ids = acked.lock().map(|v| v.clone()).unwrap_or_default();
        acked_total += ids.len();
        // Ids never repeat across rounds: the next writer starts past anything this one wrote.
        from += 1_000_000;
        let store2 = store.clone();
        let result = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<String>> {
            let db = ops::open(&store2, &store_writer::network())?;
            let mut missing = vec![];
            for hex_id in &ids {
                let bytes = hex::decode(hex_id)?;
                let id = Hash32(bytes.as_slice().try_into()?);
                if ops::envelope(&db, &id)?.is_none() {
                    missing.push(hex_id.clone());
                }
            }
            Ok(missing)
        })
        .await?;
        match result {
            Ok(missing) => {
                for m in missing.into_iter().take(3) {
                    lost.push(format!("round {round}: {m}"));
                }
            }
            Err(e) => open_errors.push(format!("round {round}: {e:#}")),
        }
    }
    report.metric("store_kills", u64::from(kills));
    report.metric("store_acknowledged_entries", acked_total as u64);
    report.metric(
        "store_level_seconds",
        (t0.elapsed().as_secs_f64() * 10.0).round() / 10.0,
    );
    report.metric("store_file_bytes", super::file_size(&store));
    report.check(
        "store: reopens after every kill -9",
        open_errors.is_empty(),
        if open_errors.is_empty() {
            format!("{kills} crashes, {kills} clean reopens")
        } else {
            open_errors.join("; ")
        },
    );
    report.check(
        "store: no acknowledged entry lost",
        lost.is_empty() && acked_total > 0,
        if lost.is_empty() {
            format!("{acked_total} acknowledged entries over {kills} kills, all present")
        } else {
            lost.join("; ")
        },
    );
    Ok(())
}

/// What a validator signed, as seen by the listener: (height, round, step) → what it said.
#[derive(Debug, Default)]
struct Signed {
    votes: BTreeMap<(u64, u32, u8), BTreeSet<Option<Hash32>>>,
    /// When each (slot, value) was first seen (unix ms).
    first_seen: BTreeMap<(u64, u32, u8, Option<Hash32>), u64>,
    proposals: BTreeMap<(u64, u32), BTreeSet<Hash32>>,
    messages: u64,
}

impl Signed {
    fn conflicts(&self) -> Vec<String> {
        let mut out = vec![];
        for ((h, r, s), vals) in &self.votes {
            if vals.len() > 1 {
                let what: Vec<String> = vals
                    .iter()
                    .map(|v| {
                        let at = self.first_seen.get(&(*h, *r, *s, *v)).copied().unwrap_or(0);
                        match v {
                            None => format!("nil (seen at {at})"),
                            Some(id) => format!("{} (seen at {at})", id.short()),
                        }
                    })
                    .collect();
                out.push(format!(
                    "height {h} round {r} {}: {}",
                    if *s == 1 { "prevote" } else { "precommit" },
                    what.join(" and ")
                ));
            }
        }
        for ((h, r), ids) in &self.proposals {
            if ids.len() > 1 {
                out.push(format!(
                    "height {h} round {r}: {} different proposals",
                    ids.len()
                ));
            }
        }
        out
    }
}

/// A peer that listens to the consensus channel of every node and records what `who` signs.
async fn listen(
    network: NetworkId,
    who: PublicKey,
    targets: Vec<Multiaddr>,
    seen: Arc<Mutex<Signed>>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) -> anyhow::Result<()> {
    let key = Keypair::from_seed(&[0xCD; 32]);
    let (mut swarm, _) = super::consensus_swarm(&key, network)?;
    let mut redial = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = &mut stop => return Ok(()),
            _ = redial.tick() => {
                for t in &targets {
                    let peer = t.iter().find_map(|p| match p {
                        libp2p::multiaddr::Protocol::P2p(id) => Some(id),
                        _ => None,
                    });
                    if peer.is_some_and(|p| !swarm.is_connected(&p)) {
                        let _ = swarm.dial(t.clone());
                    }
                }
            }
            ev = swarm.select_next_some() => {
                let SwarmEvent::Behaviour(chorus_node::net::behaviour::BehaviourEvent::Gossipsub(
                    gossipsub::Event::Message { message, .. },
                )) = ev else { continue };
                let Ok(m) = ConsensusMessage::decode(&message.data) else { continue };
                let Ok(mut s) = seen.lock() else { continue };
                match m {
                    ConsensusMessage::Vote(v) if v.vote.validator.0 == who => {
                        s.messages += 1;
                        let step = match v.vote.kind {
                            VoteType::Prevote => 1,
                            VoteType::Precommit => 2,
                        };
                        let value = match v.vote.value {
                            NilOrVal::Nil => None,
                            NilOrVal::Val(id) => Some(id.0),
                        };
                        let round = v.vote.round.as_u32().unwrap_or(u32::MAX);
                        s.votes.entry((v.vote.height.0, round, step)).or_default().insert(value);
                        s.first_seen.entry((v.vote.height.0, round, step, value)).or_insert_with(crate::procs::plan::now_ms);
                    }
                    ConsensusMessage::Proposal(p) if p.proposal.proposer.0 == who => {
                        s.messages += 1;
                        let round = p.proposal.round.as_u32().unwrap_or(u32::MAX);
                        s.proposals
                            .entry((p.proposal.height.0, round))
                            .or_default()
                            .insert(p.proposal.value.id().0);
                    }
                    _ => {}
                }
            }
        }
    }
}

/// A stream of signed transfers to one node's API.
struct Writer {
    api: String,
    token: String,
    key: Keypair,
    network: NetworkId,
    to: PublicKey,
    /// Ids answered `accepted: true`.
    acked: Arc<Mutex<Vec<Hash32>>>,
    /// The next nonce (shared across rounds: a nonce is never reused, even if its envelope
    /// was lost with a crash before the answer).
    next: Arc<Mutex<u64>>,
}

/// Submit transfers with increasing nonces until the node stops answering.
async fn submit_loop(w: Writer) {
    let Writer {
        api,
        token,
        key,
        network,
        to,
        acked,
        next,
    } = w;
    let Ok(node) = procs::api(&api) else {
        return;
    };
    // A durable commit per submission: allow more than a read.
    let node = node.with_timeout(SUBMIT_TIMEOUT);
    let mut nonce = next.lock().map(|n| *n).unwrap_or(1);
    loop {
        let payload = Payload::Transfer(Transfer {
            nonce,
            to,
            amount: Amount(1),
        });
        let bytes = Envelope::seal(&key, &network, &payload).to_bytes();
        nonce += 1;
        if let Ok(mut n) = next.lock() {
            *n = nonce;
        }
        match node.submit(bytes.clone(), &token).await {
            Ok(v) if v.accepted => {
                if let Ok(mut a) = acked.lock() {
                    a.push(Hash32::of(&bytes));
                }
            }
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

async fn node_level(args: &CrashArgs, rng: &mut Rng, report: &mut Report) -> anyhow::Result<()> {
    let bin = chorus_bin(args.chorus_bin.as_deref())?;
    let dir = RunDir::new(None, "chorus-crash-nodes-")?;
    let data = write_data(&dir.path)?;
    let mut spec = NetSpec::new("chorus-crash", 4, Duration::from_secs(4));
    spec.validators = 4;
    spec.workers = 2;
    spec.reputers = 1;
    let plan = spec.plan(&data, dir.path.clone());
    let mut cluster = Cluster::create(plan, loopback_endpoints(4)?, bin, dir, "info")?;
    cluster.start_all()?;
    for i in 0..4 {
        cluster.wait_ready(i, Duration::from_secs(60)).await?;
    }
    let network = cluster.genesis.network_id();
    let apis: Vec<String> = cluster.nodes.iter().map(|n| n.api()).collect();
    let victim_key = cluster.nodes[VICTIM].key.clone();
    let victim = victim_key.public();
    let targets = cluster.p2p_addrs();
    let seen: Arc<Mutex<Signed>> = Arc::default();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
    let listener = tokio::spawn(listen(network, victim, targets, seen.clone(), stop_rx));
    let bond_before = cluster
        .genesis
        .validators
        .iter()
        .find(|v| v.address == victim)
        .map(|v| v.bond.0.to_string())
        .context("victim has no bond")?;
    // The network is up: wait for a few checkpoints.
    let start = spec.topic_spec(0);
    let ok = super::wait_for(Duration::from_secs(60), || {
        let apis = &apis;
        async move {
            check::statuses(apis)
                .await
                .iter()
                .all(|s| s.as_ref().is_some_and(|s| s.height >= 2))
        }
    })
    .await;
    if !ok {
        bail!(
            "the network did not reach height 2 (epoch 0 starts at {})",
            start.start_ms
        );
    }
    let account: Account =
        procs::get(&apis[VICTIM], &format!("/v1/accounts/{}", victim.to_hex())).await?;
    let writes = Victim {
        key: victim_key,
        network,
        to: cluster.nodes[0].key.public(),
        next: Arc::new(Mutex::new(account.next_nonce)),
    };
    let t0 = Instant::now();
    let mut acc = Rounds::default();
    for round in 0..args.node_kills {
        kill_round(round, &mut cluster, &apis, &writes, &seen, rng, &mut acc).await?;
    }
    report.metric("node_kills", u64::from(args.node_kills));
    report.metric("node_acknowledged_submissions", acc.acked as u64);
    report.metric(
        "node_level_seconds",
        (t0.elapsed().as_secs_f64() * 10.0).round() / 10.0,
    );
    if !acc.catchup_s.is_empty() {
        report.metric(
            "node_restart_to_voting_s_max",
            acc.catchup_s.iter().copied().fold(0.0, f64::max),
        );
    }
    report.check(
        "node: no acknowledged submission lost",
        acc.lost.is_empty() && acc.acked > 0,
        if acc.lost.is_empty() {
            format!(
                "{} submissions answered accepted over {} kills, all in the store after each \
                 crash",
                acc.acked, args.node_kills
            )
        } else {
            acc.lost.join("; ")
        },
    );
    // Let the restarted validator vote a few heights, then look at what it signed.
    let conv = check::converge(&apis, Duration::from_secs(60), &mut acc.obs).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = stop_tx.send(());
    let _ = listener.await;
    let (conflicts, messages) = seen
        .lock()
        .map(|s| (s.conflicts(), s.messages))
        .unwrap_or_default();
    report.metric("victim_signed_messages_seen", messages);
    report.metric("kill_times_ms", acc.kills_at.clone());
    report.check(
        "no double-sign after restarts",
        conflicts.is_empty() && messages > 0,
        if conflicts.is_empty() {
            format!(
                "{messages} votes and proposals of validator {VICTIM} observed, one per (height, \
                 round, step)"
            )
        } else {
            conflicts.join("; ")
        },
    );
    let mut bonds = BTreeSet::new();
    for a in &apis {
        let path = format!("/v1/accounts/{}", victim.to_hex());
        if let Ok(v) = procs::get::<Account>(a, &path).await {
            bonds.insert(v.bond.to_string());
        }
    }
    report.check(
        "no slashing of the restarted validator",
        bonds.len() == 1 && bonds.contains(&bond_before),
        format!("bond {bond_before} → {bonds:?}"),
    );
    report.check(
        "all nodes agree at the end",
        conv.is_ok() && acc.obs.conflicts.is_empty(),
        match &conv {
            Ok(h) => format!("height {} on all 4 nodes", h.height),
            Err(e) => e.clone(),
        },
    );
    Ok(())
}

/// The validator under writes.
struct Victim {
    key: Keypair,
    network: NetworkId,
    /// Where its transfers go.
    to: PublicKey,
    /// The next nonce, shared across rounds.
    next: Arc<Mutex<u64>>,
}

/// What the kill rounds saw.
#[derive(Default)]
struct Rounds {
    /// Submissions answered accepted.
    acked: usize,
    /// Acknowledged submissions missing from the store after a crash.
    lost: Vec<String>,
    /// Restart to voting again, per round after the first (s).
    catchup_s: Vec<f64>,
    /// When each kill happened (unix ms).
    kills_at: Vec<u64>,
    obs: Observer,
}

/// One round: wait until the victim votes, write to it, kill -9 it mid-write, check that
/// every acknowledged submission is in its store, restart it.
async fn kill_round(
    round: u32,
    cluster: &mut Cluster,
    apis: &[String],
    victim: &Victim,
    seen: &Arc<Mutex<Signed>>,
    rng: &mut Rng,
    acc: &mut Rounds,
) -> anyhow::Result<()> {
    // Caught up and voting again: the listener saw new votes of the validator.
    let tc = Instant::now();
    let seen_before = seen.lock().map(|s| s.messages).unwrap_or(0);
    let voting = super::wait_for(Duration::from_secs(60), || {
        let n = seen.lock().map(|s| s.messages).unwrap_or(0);
        async move { n >= seen_before + 2 }
    })
    .await;
    if !voting {
        bail!("round {round}: node {VICTIM} did not vote within 60 s after its restart");
    }
    if round > 0 {
        acc.catchup_s.push(tc.elapsed().as_secs_f64());
    }
    let token = cluster.nodes[VICTIM].admin_token()?;
    let acked: Arc<Mutex<Vec<Hash32>>> = Arc::default();
    let writer = tokio::spawn(submit_loop(Writer {
        api: apis[VICTIM].clone(),
        token,
        key: victim.key.clone(),
        network: victim.network,
        to: victim.to,
        acked: acked.clone(),
        next: victim.next.clone(),
    }));
    tokio::time::sleep(Duration::from_millis(300 + rng.below(1_200))).await;
    cluster.kill9(VICTIM)?;
    acc.kills_at.push(crate::procs::plan::now_ms());
    let _ = writer.await;
    let ids = acked.lock().map(|v| v.clone()).unwrap_or_default();
    acc.acked += ids.len();
    let path = cluster.nodes[VICTIM].store_path();
    let network = victim.network;
    let missing = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<Hash32>> {
        let db = ops::open(&path, &network)?;
        let mut missing = vec![];
        for id in &ids {
            if ops::envelope(&db, id)?.is_none() {
                missing.push(*id);
            }
        }
        Ok(missing)
    })
    .await??;
    for m in missing.iter().take(3) {
        acc.lost.push(format!("round {round}: {}", m.to_hex()));
    }
    cluster.start(VICTIM)?;
    cluster.wait_ready(VICTIM, Duration::from_secs(60)).await?;
    for (i, s) in check::statuses(apis).await.iter().enumerate() {
        if let Some(h) = s.as_ref().map(check::Head::of) {
            acc.obs.record(i, h);
        }
    }
    Ok(())
}
