//! Scenario 4, `chorus-testbeds equivocation`: a validator signs two different checkpoints
//! at one height.
//!
//! The network runs in this process ([`LocalNet`], loopback TCP): `--nodes` nodes, 4
//! validators with equal bonds. Validator 3 is byzantine: its node is stopped right after the
//! start and its key drives a bare libp2p swarm instead (the node's own swarm builder), which
//! waits for an honest proposal of some height `H`, then signs and gossips two prevotes for
//! `(H, round)`: one for the proposed checkpoint, one for a made-up checkpoint id. The honest
//! validators hold 3/4 of the stake, so the network keeps finalizing.
//!
//! Pass:
//! - an honest node reports the conflict ≤ 2 s after the two votes were sent (its own
//!   `evidence` submission, from `/v1/status` `submissions`): the first-ranked reporter at
//!   once, or the next one a step later when the first is the offender;
//! - exactly one honest node reports it (every node saw both votes; the others saw the report
//!   before their turn);
//! - every honest node stores evidence (an `Evidence` envelope in its redb store, checked
//!   after a clean stop);
//! - the ledger slashes the bond (`Slashed` event for the validator, 5 % of its bond, at most
//!   two checkpoints after detection: the evidence joins the current ledger window, which the
//!   next checkpoint finalizes) on every node, once, and every node reports the same reduced
//!   bond at `/v1/accounts/{address}`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use arc_malachitebft_core_types::{NilOrVal, Round, VoteType};
use chorus_crdt::checkpoint::context::{CheckpointHeight, ValidatorAddress, Vote};
use chorus_crdt::checkpoint::messages::VoteMessage;
use chorus_crdt::checkpoint::signing::sign_vote;
use chorus_crdt::checkpoint::{CheckpointId, ConsensusMessage};
use chorus_crdt::ledger::LedgerEvent;
use chorus_node::localnet::{LocalNet, node_key};
use chorus_protocol::ids::{Hash32, NetworkId};
use chorus_protocol::keys::{Keypair, PublicKey};
use clap::Args;
use futures::StreamExt;
use libp2p::gossipsub;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId};

use super::wait_for;
use crate::procs::check;
use crate::procs::cluster::RunDir;
use crate::procs::plan::{NetSpec, now_ms, write_data};
use crate::report::Report;

/// The byzantine validator's node index.
const BYZANTINE: usize = 3;
/// Report deadline (ms): the first-ranked reporter of the offence publishes at once; when that
/// is the offender itself (stopped here), the next one a step later.
const MAX_DETECTION_MS: u64 = chorus_crdt::replica::EVIDENCE_STEP_MS + 1_000;

/// How long the run keeps watching after the first report, to see whether any other node
/// reports the same offence (the turns of the next reporters come one step apart).
const AFTER_REPORT: Duration = Duration::from_millis(3 * chorus_crdt::replica::EVIDENCE_STEP_MS);

/// `equivocation` flags.
#[derive(Debug, Args)]
pub struct EquivocationArgs {
    /// Nodes (≥ 5: 4 validators, one of them byzantine, and at least one more).
    #[arg(long, default_value_t = 6)]
    pub nodes: usize,
    /// Epoch length = checkpoint period (ms).
    #[arg(long, default_value_t = 1_000)]
    pub epoch_ms: u64,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Run the scenario.
pub async fn run(args: EquivocationArgs) -> anyhow::Result<ExitCode> {
    let json = args.json;
    Ok(Report::run("equivocation", json, async |report| {
        run_inner(args, report).await
    })
    .await)
}

/// A node's stream of finalized ledger records.
type LedgerReceiver = tokio::sync::broadcast::Receiver<chorus_node::actor::LedgerRecord>;

/// What the byzantine swarm did.
#[derive(Debug, Default)]
struct Equivocated {
    height: u64,
    round: u32,
    sent_ms: u64,
    attempts: u32,
}

fn prevote(
    key: &Keypair,
    network: &NetworkId,
    height: u64,
    round: u32,
    id: CheckpointId,
) -> Vec<u8> {
    let vote = Vote {
        height: CheckpointHeight(height),
        round: Round::new(round),
        kind: VoteType::Prevote,
        value: NilOrVal::Val(id),
        validator: ValidatorAddress(key.public()),
    };
    let signature = sign_vote(key, network, &vote);
    ConsensusMessage::Vote(VoteMessage { vote, signature }).to_bytes()
}

/// Drive the byzantine validator until it equivocated once (and the honest nodes detected it,
/// as told by `detected`), or `timeout`.
async fn byzantine(
    key: Keypair,
    network: NetworkId,
    targets: Vec<Multiaddr>,
    mut detected: tokio::sync::watch::Receiver<bool>,
    timeout: Duration,
) -> anyhow::Result<Equivocated> {
    let (mut swarm, topic) = super::consensus_swarm(&key, network)?;
    for t in &targets {
        let _ = swarm.dial(t.clone());
    }
    let peers: Vec<PeerId> = targets
        .iter()
        .filter_map(|a| {
            a.iter().find_map(|p| match p {
                libp2p::multiaddr::Protocol::P2p(id) => Some(id),
                _ => None,
            })
        })
        .collect();
    let t0 = Instant::now();
    let mut done = Equivocated::default();
    let mut last_height = 0;
    let mut retry_at: Option<Instant> = None;
    loop {
        tokio::select! {
            ev = swarm.select_next_some() => {
                let SwarmEvent::Behaviour(chorus_node::net::behaviour::BehaviourEvent::Gossipsub(
                    gossipsub::Event::Message { message, .. },
                )) = ev else { continue };
                let Ok(ConsensusMessage::Proposal(p)) = ConsensusMessage::decode(&message.data) else {
                    continue;
                };
                let height = p.proposal.height.0;
                let round = p.proposal.round.as_u32().unwrap_or(0);
                let ready = peers.iter().all(|p| swarm.is_connected(p))
                    && t0.elapsed() > Duration::from_secs(2)
                    && retry_at.is_none_or(|r| Instant::now() >= r)
                    && height > last_height
                    && done.attempts < 3;
                if !ready || *detected.borrow() {
                    continue;
                }
                let real = p.proposal.value.id();
                let fake = CheckpointId(Hash32::of(&[b"fake checkpoint".as_slice(), &height.to_le_bytes()].concat()));
                for id in [real, fake] {
                    let bytes = prevote(&key, &network, height, round, id);
                    if let Err(e) = swarm.behaviour_mut().gossipsub.publish(topic.clone(), bytes) {
                        tracing::warn!(error = %e, "byzantine publish failed");
                    }
                }
                done = Equivocated { height, round, sent_ms: now_ms(), attempts: done.attempts + 1 };
                last_height = height;
                // Not detected within 3 s (e.g. the height was decided before the votes
                // arrived): try again at a later height.
                retry_at = Some(Instant::now() + Duration::from_secs(3));
                tracing::info!(height, round, "byzantine validator sent two prevotes");
            }
            _ = detected.changed() => {
                if *detected.borrow() {
                    return Ok(done);
                }
            }
            _ = tokio::time::sleep(Duration::from_millis(100)) => {
                if t0.elapsed() > timeout {
                    return Ok(done);
                }
            }
        }
    }
}

/// The evidence submission time of each node (`None`: not yet), from `/v1/status`.
async fn evidence_times(net: &LocalNet, nodes: &[usize]) -> BTreeMap<usize, Option<u64>> {
    let mut out = BTreeMap::new();
    for i in nodes {
        let t = match net.handle(*i) {
            Some(h) => h
                .status()
                .await
                .ok()
                .and_then(|s| check::accepted(&s, "evidence").next().map(|x| x.time_ms)),
            None => None,
        };
        out.insert(*i, t);
    }
    out
}

/// Evidence envelopes in a (closed) store.
fn stored_evidence(path: &std::path::Path) -> anyhow::Result<usize> {
    use chorus_node::store::schema::ENVELOPES;
    use redb::{ReadableDatabase, ReadableTable};
    let db = redb::Database::open(path)?;
    let tx = db.begin_read()?;
    let table = tx.open_table(ENVELOPES)?;
    let mut n = 0;
    for row in table.iter()? {
        let (_, v) = row?;
        if let Ok(env) = chorus_protocol::envelope::Envelope::from_bytes(v.value())
            && matches!(
                env.payload_unverified(),
                Ok(chorus_protocol::messages::Payload::Evidence(_))
            )
        {
            n += 1;
        }
    }
    Ok(n)
}

async fn run_inner(args: EquivocationArgs, report: &mut Report) -> anyhow::Result<()> {
    if !(5..=32).contains(&args.nodes) {
        bail!("--nodes must be in 5..=32");
    }
    let dir = RunDir::new(None, "chorus-equivocation-")?;
    let data = write_data(&dir.path)?;
    let mut spec = NetSpec::new(
        "chorus-equivocation",
        args.nodes,
        Duration::from_millis(2_000 + 150 * args.nodes as u64),
    );
    spec.epoch_ms = args.epoch_ms;
    spec.validators = 4;
    let plan = spec.plan(&data, dir.path.clone());
    let mut net = LocalNet::start(plan)
        .await
        .context("starting the network")?;
    net.stop_node(BYZANTINE).await;
    let honest: Vec<usize> = (0..args.nodes).filter(|i| *i != BYZANTINE).collect();
    let byz_key = node_key(spec.seed, BYZANTINE);
    let byz = byz_key.public();
    let bond_before = net
        .genesis
        .validators
        .iter()
        .find(|v| v.address == byz)
        .map(|v| v.bond.0)
        .context("the byzantine validator has no bond")?;
    let mut ledger_rx: Vec<(usize, LedgerReceiver)> = honest
        .iter()
        .filter_map(|i| Some((*i, net.handle(*i)?.subscribe_ledger()?)))
        .collect();
    let targets: Vec<Multiaddr> = honest
        .iter()
        .filter_map(|i| net.addrs[*i].clone())
        .collect();
    let (detected_tx, detected_rx) = tokio::sync::watch::channel(false);
    let byz_task = tokio::spawn(byzantine(
        byz_key,
        net.genesis.network_id(),
        targets,
        detected_rx,
        Duration::from_secs(60),
    ));
    // Watch for the first report, stop the byzantine validator from trying again, then see
    // whether anyone else reports the same offence.
    first_report(&net, &honest, &byz_task).await;
    let _ = detected_tx.send(true);
    tokio::time::sleep(AFTER_REPORT).await;
    let times = evidence_times(&net, &honest).await;
    // The ledger height when the last node detected it.
    let mut detect_height = 0;
    for i in &honest {
        if let Some(h) = net.handle(*i)
            && let Ok(s) = h.status().await
        {
            detect_height = detect_height.max(s.height);
        }
    }
    report.metric("ledger_height_at_detection", detect_height);
    let eq = byz_task.await.context("byzantine task")??;
    if eq.attempts == 0 {
        bail!("the byzantine validator never saw a proposal to equivocate on");
    }
    report.metric("equivocation_height", eq.height);
    report.metric("equivocation_round", u64::from(eq.round));
    report.metric("attempts", u64::from(eq.attempts));
    let delays: BTreeMap<String, Option<i64>> = times
        .iter()
        .map(|(i, t)| (format!("node-{i}"), t.map(|t| t as i64 - eq.sent_ms as i64)))
        .collect();
    report.metric("detection_ms", serde_json::to_value(&delays)?);
    let first = delays.values().flatten().copied().min().unwrap_or(i64::MAX);
    let reporters = delays.values().filter(|d| d.is_some()).count();
    report.check(
        "an honest node reports it within 2 s",
        first <= MAX_DETECTION_MS as i64,
        format!(
            "first report {first} ms after the two votes (height {}, round {}, attempt {})",
            eq.height, eq.round, eq.attempts
        ),
    );
    report.check(
        "one report network-wide",
        reporters == 1,
        format!(
            "{reporters}/{} honest nodes published evidence of the offence",
            honest.len()
        ),
    );
    // Slashing: every honest node's ledger.
    let expected = bond_before * u128::from(spec.params().slash_fraction_ppm) / 1_000_000;
    let slash_heights = check_slashing(
        &net,
        &honest,
        &mut ledger_rx,
        byz,
        bond_before,
        expected,
        report,
    )
    .await;
    let late: Vec<u64> = slash_heights
        .iter()
        .copied()
        .filter(|h| *h > detect_height + 2)
        .collect();
    report.check(
        "slashed at the next checkpoint",
        !slash_heights.is_empty() && late.is_empty(),
        format!(
            "ledger height {detect_height} when detected; slashed at height {:?} (allowed: \
             ≤ {})",
            slash_heights.iter().max(),
            detect_height + 2
        ),
    );
    // Stop cleanly and look into the stores.
    check_stores(&mut net, &honest, &dir.path, report).await;
    Ok(())
}

/// Watch for every honest node's evidence (at most 60 s, or until the byzantine task ends).
async fn first_report<T>(
    net: &LocalNet,
    honest: &[usize],
    byz_task: &tokio::task::JoinHandle<T>,
) -> BTreeMap<usize, Option<u64>> {
    let t0 = Instant::now();
    let mut times = BTreeMap::new();
    while t0.elapsed() < Duration::from_secs(60) {
        times = evidence_times(net, honest).await;
        if times.values().any(Option::is_some) || byz_task.is_finished() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    times
}

/// Slashing: every honest node's ledger slashes the bond once, by `expected`; returns the
/// heights it was slashed at.
async fn check_slashing(
    net: &LocalNet,
    honest: &[usize],
    ledger_rx: &mut [(usize, LedgerReceiver)],
    byz: PublicKey,
    bond_before: u128,
    expected: u128,
    report: &mut Report,
) -> Vec<u64> {
    let mut slashed: BTreeMap<usize, Vec<(u64, u128)>> = BTreeMap::new();
    let collected = wait_for(Duration::from_secs(30), || {
        for (i, rx) in ledger_rx.iter_mut() {
            while let Ok(rec) = rx.try_recv() {
                for e in rec.events.iter() {
                    if let LedgerEvent::Slashed { offender, amount } = e
                        && *offender == byz
                    {
                        slashed.entry(*i).or_default().push((rec.height, amount.0));
                    }
                }
            }
        }
        let done = honest.iter().all(|i| slashed.contains_key(i));
        async move { done }
    })
    .await;
    let slash_heights: Vec<u64> = slashed.values().flatten().map(|(h, _)| *h).collect();
    let once = slashed.values().all(|v| v.len() == 1);
    let amounts: Vec<u128> = slashed.values().flatten().map(|(_, a)| *a).collect();
    report.metric("slashed_at_heights", slash_heights.clone());
    let mut bonds = vec![];
    for i in honest {
        if let Some(h) = net.handle(*i)
            && let Ok(a) = h.account(byz).await
        {
            bonds.push(a.bond.to_string());
        }
    }
    let bond_after = (bond_before - expected).to_string();
    report.check(
        "the ledger slashes the bond once, on every node",
        collected
            && once
            && amounts.iter().all(|a| *a == expected)
            && bonds.len() == honest.len()
            && bonds.iter().all(|b| *b == bond_after),
        format!(
            "Slashed {{amount {expected}}} at height(s) {:?}; bond {bond_before} → {:?} on \
             {} nodes",
            slash_heights
                .iter()
                .collect::<std::collections::BTreeSet<_>>(),
            bonds.iter().collect::<std::collections::BTreeSet<_>>(),
            bonds.len()
        ),
    );
    slash_heights
}

/// Stop cleanly and look into the stores.
async fn check_stores(net: &mut LocalNet, honest: &[usize], dir: &Path, report: &mut Report) {
    let paths: Vec<(usize, std::path::PathBuf)> = honest
        .iter()
        .map(|i| (*i, dir.join(format!("node-{i}")).join("node.redb")))
        .collect();
    for i in honest {
        net.stop_node(*i).await;
    }
    let mut stored = vec![];
    for (i, p) in &paths {
        stored.push((*i, stored_evidence(p).unwrap_or(0)));
    }
    report.check(
        "every honest node stores the evidence",
        stored.iter().all(|(_, n)| *n >= 1),
        format!(
            "evidence envelopes per store: {}",
            stored
                .iter()
                .map(|(i, n)| format!("node {i}: {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
}
