//! `chorus-testbeds junk`: validly signed junk from strangers, by gossip and by sync, against a
//! running network.
//!
//! `--nodes` honest nodes in this process ([`LocalNet`], loopback TCP, 4 validators, an
//! inferer on every node, 2 reputers, 1 s epochs). After a warm-up an attacker (a bare libp2p
//! peer built with the node's swarm builder) connects to node 0 only and sends, every message
//! correctly signed:
//!
//! 1. `--unfunded-keys` fresh keys × `--nonces` ledger transfers each (nonces 1..), within one
//!    checkpoint period, on the ledger channel: none of those accounts holds anything;
//! 2. `--pairs` fresh keys each signing two different transfers with one nonce (a ledger
//!    equivocation by an account that cannot pay);
//! 3. `--evidence` fresh keys each sending one evidence message of ~256 KiB of random bytes;
//! 4. by sync (`Request::Sync`, the one request that carries raw automerge changes): a bundle
//!    whose inference is NaN, signed by a registered worker (node 1's key), for a window that
//!    closed; then `--unregistered` bundles of the open epoch from fresh keys registered
//!    nowhere.
//!
//! Pass:
//! - the junk arrived: node 0's validation counted at least every gossiped message, and it
//!   answered or refused the sync requests;
//! - the chain kept its pace: on every node no gap between two new heights exceeded 3 periods
//!   (no more than 2 periods late) from the attack's start to 5 s after its end;
//! - every epoch whose window closed in that time has a finalized network inference on every
//!   node, and no node is stalled (a checkpoint that fails to apply, e.g. a settlement that a
//!   NaN broke, stalls it);
//! - nobody was slashed and no ledger accepted an offence (the junk proves nothing);
//! - none of the junk is stored: after the nodes stop, no junk envelope is in any store;
//! - node 0 penalised the attacker, and no other node penalised or graylisted anyone.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chorus_crdt::window::{Phase, Window, WindowKey, build_change, slot_key};
use chorus_node::api::client::metric_sum;
use chorus_node::localnet::{LocalNet, node_key};
use chorus_node::net::rpc::Request;
use chorus_protocol::envelope::Envelope;
use chorus_protocol::ids::{Amount, Hash32, NetworkId, TopicId};
use chorus_protocol::keys::Keypair;
use chorus_protocol::messages::{Evidence, EvidenceKind, Payload, Transfer, WorkerBundle};
use chorus_protocol::rng::SplitMix64;
use chorus_protocol::validation::ChannelKind;
use clap::Args;
use futures::StreamExt;
use libp2p::gossipsub::IdentTopic;
use libp2p::request_response;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm};

use super::{InferenceLog, graylisted, metrics_of, wait_for};
use crate::procs::cluster::RunDir;
use crate::procs::plan::{NetSpec, now_ms, write_data};
use crate::report::Report;
use chorus_testbeds::sim::hostile::sync_message_carrying;

/// `junk` flags.
#[derive(Debug, Args)]
pub struct JunkArgs {
    /// Honest nodes (at least 4).
    #[arg(long, default_value_t = 5)]
    pub nodes: usize,
    /// Fresh keys sending unfunded ledger messages.
    #[arg(long, default_value_t = 9)]
    pub unfunded_keys: usize,
    /// Ledger messages per unfunded key (nonces 1..=this).
    #[arg(long, default_value_t = 1024)]
    pub nonces: u64,
    /// Fresh keys each signing two transfers with one nonce.
    #[arg(long, default_value_t = 50)]
    pub pairs: usize,
    /// Fresh keys each sending ~256 KiB of junk evidence.
    #[arg(long, default_value_t = 100)]
    pub evidence: usize,
    /// Bundles from unregistered keys carried by sync.
    #[arg(long, default_value_t = 1000)]
    pub unregistered: usize,
    /// Keep the run directory here.
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Run the scenario.
pub async fn run(args: JunkArgs) -> anyhow::Result<ExitCode> {
    let json = args.json;
    Ok(Report::run("junk", json, async |report| run_inner(args, report).await).await)
}

/// A fresh key from the generator.
fn fresh(rng: &mut SplitMix64) -> Keypair {
    let mut seed = [0u8; 32];
    for chunk in seed.chunks_mut(8) {
        chunk.copy_from_slice(&rng.next_u64().to_le_bytes());
    }
    Keypair::from_seed(&seed)
}

fn random_bytes(rng: &mut SplitMix64, n: usize) -> Vec<u8> {
    (0..n).map(|_| rng.next_u64() as u8).collect()
}

/// What the attacker sends, built before it connects.
struct Junk {
    /// Ledger-channel messages: unfunded transfers, equivocating pairs, junk evidence.
    ledger: Vec<Vec<u8>>,
    /// How many of `ledger` are of each kind.
    counts: BTreeMap<&'static str, usize>,
    /// Every junk envelope's id and kind (none may be stored).
    ids: Vec<(Hash32, &'static str)>,
}

fn build_gossip_junk(args: &JunkArgs, network: &NetworkId, rng: &mut SplitMix64) -> Junk {
    let mut j = Junk {
        ledger: vec![],
        counts: BTreeMap::new(),
        ids: vec![],
    };
    let push = |j: &mut Junk, kind: &'static str, env: Envelope| {
        j.ids.push((env.id(), kind));
        j.ledger.push(env.to_bytes());
        *j.counts.entry(kind).or_default() += 1;
    };
    let sink = fresh(rng).public();
    for _ in 0..args.unfunded_keys {
        let key = fresh(rng);
        for nonce in 1..=args.nonces {
            let p = Payload::Transfer(Transfer {
                nonce,
                to: sink,
                amount: Amount(1_000),
            });
            push(&mut j, "unfunded", Envelope::seal(&key, network, &p));
        }
    }
    for _ in 0..args.pairs {
        let key = fresh(rng);
        for amount in [1, 2] {
            let p = Payload::Transfer(Transfer {
                nonce: 1,
                to: sink,
                amount: Amount(amount),
            });
            push(&mut j, "equivocating", Envelope::seal(&key, network, &p));
        }
    }
    // Two halves of 127 KiB: the envelope stays under its 256 KiB bound.
    for _ in 0..args.evidence {
        let key = fresh(rng);
        let p = Payload::Evidence(Evidence {
            kind: EvidenceKind::LedgerNonce,
            first: random_bytes(rng, 127 * 1024),
            second: random_bytes(rng, 127 * 1024),
        });
        push(&mut j, "evidence", Envelope::seal(&key, network, &p));
    }
    j
}

/// Sync requests carrying `bundles` (signed by their keys) for `window`, at most `per` changes
/// each, built against an empty document (as a newcomer's first message would be).
fn sync_requests(
    network: &NetworkId,
    window: WindowKey,
    bundles: &[(Keypair, WorkerBundle)],
    per: usize,
    kind: &'static str,
    ids: &mut Vec<(Hash32, &'static str)>,
) -> anyhow::Result<Vec<Request>> {
    let empty = Window::new(window, *network);
    let mut out = vec![];
    for chunk in bundles.chunks(per.max(1)) {
        let mut changes = vec![];
        for (key, bundle) in chunk {
            let payload = Payload::WorkerBundle(bundle.clone());
            let env = Envelope::seal(key, network, &payload);
            ids.push((env.id(), kind));
            let change = build_change(
                &slot_key(&key.public(), &payload),
                &key.public(),
                &env.to_bytes(),
            )
            .map_err(|e| anyhow::anyhow!("junk change: {e}"))?;
            changes.push(change.raw_bytes().to_vec());
        }
        let message = sync_message_carrying(&empty, changes).map_err(anyhow::Error::msg)?;
        out.push(Request::Sync { window, message });
    }
    Ok(out)
}

/// Node `i`'s height (0 when it does not answer).
async fn height(net: &LocalNet, i: usize) -> u64 {
    match net.handle(i) {
        Some(h) => h.status().await.map(|s| s.height).unwrap_or(0),
        None => 0,
    }
}

/// Validation verdicts a node gave on one channel kind (every outcome).
fn validated(page: &str, kind: &str) -> f64 {
    metric_sum(
        page,
        "chorus_validation_outcomes_total",
        &[&format!("kind=\"{kind}\"")],
    )
}

fn penalties(page: &str) -> f64 {
    metric_sum(page, "chorus_peer_penalties_total", &[])
}

/// The attacker's swarm, connected to `target` and subscribed to the ledger and topic-1
/// worker channels (it must be subscribed for its messages to be sent on them).
struct Attacker {
    swarm: Swarm<chorus_node::net::Behaviour>,
    peer: PeerId,
    ledger: IdentTopic,
    answers: usize,
    failures: usize,
    publish_errors: usize,
}

impl Attacker {
    /// A peer with key `seed`: one per kind of junk, so that node 0 graylisting one (as it
    /// should) does not keep the next kind from arriving.
    async fn connect(network: NetworkId, target: Multiaddr, seed: u8) -> anyhow::Result<Attacker> {
        let me = Keypair::from_seed(&[seed; 32]);
        let (mut swarm, ledger) = super::channel_swarm(&me, network, ChannelKind::Ledger)?;
        let peer = target
            .iter()
            .find_map(|p| match p {
                libp2p::multiaddr::Protocol::P2p(id) => Some(id),
                _ => None,
            })
            .context("node 0's address has no /p2p/")?;
        swarm.dial(target)?;
        let mut a = Attacker {
            swarm,
            peer,
            ledger,
            answers: 0,
            failures: 0,
            publish_errors: 0,
        };
        let t0 = Instant::now();
        while !a.swarm.is_connected(&a.peer) {
            if t0.elapsed() > Duration::from_secs(15) {
                bail!("the attacker could not connect to node 0 within 15 s");
            }
            a.drive(Duration::from_millis(50)).await;
        }
        // Let the subscriptions reach node 0.
        a.drive(Duration::from_secs(1)).await;
        Ok(a)
    }

    /// Poll the swarm for `d`.
    async fn drive(&mut self, d: Duration) {
        let until = tokio::time::Instant::now() + d;
        loop {
            tokio::select! {
                ev = self.swarm.select_next_some() => {
                    if let SwarmEvent::Behaviour(chorus_node::net::behaviour::BehaviourEvent::Rpc(e)) = ev {
                        match e {
                            request_response::Event::Message {
                                message: request_response::Message::Response { .. },
                                ..
                            } => self.answers += 1,
                            request_response::Event::OutboundFailure { .. } => self.failures += 1,
                            _ => {}
                        }
                    }
                }
                _ = tokio::time::sleep_until(until) => return,
            }
        }
    }

    /// Publish `messages` on the ledger channel, `per_tick` every 20 ms.
    async fn publish(&mut self, messages: &[Vec<u8>], per_tick: usize) {
        for chunk in messages.chunks(per_tick.max(1)) {
            for m in chunk {
                if self
                    .swarm
                    .behaviour_mut()
                    .gossipsub
                    .publish(self.ledger.clone(), m.clone())
                    .is_err()
                {
                    self.publish_errors += 1;
                }
            }
            self.drive(Duration::from_millis(20)).await;
        }
    }

    fn request(&mut self, r: Request) {
        self.swarm.behaviour_mut().rpc.send_request(&self.peer, r);
    }
}

/// Sample every node's height every 100 ms until the sender is used; the task answers each
/// node's longest time between two new heights, in ms (a node stuck at the end counts too).
fn height_gaps(
    handles: Vec<chorus_node::actor::NodeHandle>,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Vec<u128>>,
) {
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        // Per node: (last height, when it last changed, longest gap in ms).
        let mut seen: Vec<(u64, Instant, u128)> = vec![(0, Instant::now(), 0); handles.len()];
        loop {
            for (i, h) in handles.iter().enumerate() {
                if let Ok(s) = h.status().await {
                    let (last, at, gap) = &mut seen[i];
                    if s.height != *last {
                        if *last != 0 {
                            *gap = (*gap).max(at.elapsed().as_millis());
                        }
                        *last = s.height;
                        *at = Instant::now();
                    }
                }
            }
            tokio::select! {
                _ = &mut stop_rx => break,
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
        // A node stuck at the end counts too.
        seen.iter()
            .map(|(_, at, gap)| (*gap).max(at.elapsed().as_millis()))
            .collect::<Vec<u128>>()
    });
    (stop_tx, task)
}

/// Per node (stores under `root/node-<i>`), the junk envelopes of `ids` it holds, by kind.
fn junk_held(
    root: &std::path::Path,
    n: usize,
    network: &NetworkId,
    ids: &[(Hash32, &'static str)],
) -> anyhow::Result<Vec<BTreeMap<&'static str, usize>>> {
    let mut stored = vec![];
    for i in 0..n {
        let path = root.join(format!("node-{i}")).join("node.redb");
        let db = chorus_node::store::ops::open(&path, network)
            .with_context(|| format!("opening {}", path.display()))?;
        let mut held: BTreeMap<&'static str, usize> = BTreeMap::new();
        for (id, kind) in ids {
            if chorus_node::store::ops::envelope(&db, id)?.is_some() {
                *held.entry(*kind).or_default() += 1;
            }
        }
        stored.push(held);
    }
    Ok(stored)
}

async fn run_inner(args: JunkArgs, report: &mut Report) -> anyhow::Result<()> {
    check_bounds(&args)?;
    let n = args.nodes;
    let mut dir = RunDir::new(args.out.clone(), "chorus-junk-")?;
    let data = write_data(&dir.path)?;
    let spec = NetSpec::new("chorus-junk", n, Duration::from_millis(3_000));
    let topic = spec.topic_spec(0);
    let net = start(spec.plan(&data, dir.path.clone())).await?;
    let log = InferenceLog::start(
        (0..n)
            .filter_map(|i| net.handle(i).map(|h| (i, h.clone())))
            .collect(),
    );
    let mut rng = SplitMix64::seeded(0x7A11);
    let t_build = Instant::now();
    let mut junk = build_gossip_junk(&args, &net.genesis.network_id(), &mut rng);
    report.metric("junk_built_seconds", t_build.elapsed().as_secs());
    let before: Vec<String> = (0..n).map(|i| metrics_of(&net, i)).collect();
    // Heights of every node, sampled until told to stop.
    let (stop_sampling, sampler) =
        height_gaps((0..n).filter_map(|i| net.handle(i).cloned()).collect());
    let attack = attack(&net, &spec, &args, &mut junk, &mut rng).await?;
    attack.record(report, &junk);
    // Let 5 s pass, then stop sampling.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let _ = stop_sampling.send(());
    let gaps = sampler.await.unwrap_or_default();
    let after: Vec<String> = (0..n).map(|i| metrics_of(&net, i)).collect();
    judge_arrival(report, &attack, &junk, &before[0], &after[0]);
    judge_pace(report, &gaps, n, spec.epoch_ms);
    judge_epochs(report, &net, &log, &topic, &attack).await;
    judge_blame(report, &before, &after);
    let network = net.genesis.network_id();
    net.shutdown().await;
    // Nothing of the junk stored.
    let stored = junk_held(&dir.path, n, &network, &junk.ids)?;
    report.check(
        "none of the junk is stored",
        stored.iter().all(BTreeMap::is_empty),
        format!(
            "{} junk envelopes looked up in every store; held per node: {stored:?}",
            junk.ids.len()
        ),
    );
    if !report.passing() {
        report.note(format!(
            "the run directory is kept: {}",
            dir.keep().display()
        ));
    }
    Ok(())
}

/// The flags' bounds (the attack is bounded in count, like every flood in the testbeds).
fn check_bounds(args: &JunkArgs) -> anyhow::Result<()> {
    if !(4..=16).contains(&args.nodes)
        || args.unfunded_keys > 64
        || args.nonces > 4_096
        || args.pairs > 1_000
        || args.evidence > 200
        || args.unregistered > 5_000
    {
        bail!(
            "--nodes in 4..=16, --unfunded-keys ≤ 64, --nonces ≤ 4096, --pairs ≤ 1000, \
             --evidence ≤ 200, --unregistered ≤ 5000"
        );
    }
    Ok(())
}

/// Start the honest network and wait until every node finalized 3 heights.
async fn start(plan: chorus_node::localnet::LocalPlan) -> anyhow::Result<LocalNet> {
    let net = LocalNet::start(plan)
        .await
        .context("starting the network")?;
    let ready = wait_for(Duration::from_secs(40), || {
        let net = &net;
        async move {
            let mut ok = true;
            for i in 0..net.nodes.len() {
                ok &= height(net, i).await >= 3;
            }
            ok
        }
    })
    .await;
    if !ready {
        bail!("the network did not finalize 3 heights within 40 s");
    }
    Ok(net)
}

/// What the attack sent and got.
struct Attack {
    /// Unix ms at its start and end.
    start_ms: u64,
    end_ms: u64,
    /// The epoch open when the sync junk was built.
    open: u64,
    /// Unfunded and equivocating transfers (all ignorable).
    ignorable: usize,
    /// How long publishing the unfunded transfers took (ms).
    unfunded_published_ms: u64,
    /// Publish errors of the first peer (gossip junk) and of the second (evidence).
    spammer_errors: usize,
    accuser_errors: usize,
    /// Sync requests sent, answered, refused.
    sync_sent: usize,
    answers: usize,
    failures: usize,
}

impl Attack {
    fn record(&self, report: &mut Report, junk: &Junk) {
        report.metric("unfunded_published_ms", self.unfunded_published_ms);
        report.metric("attack_seconds", (self.end_ms - self.start_ms) / 1_000);
        for (k, v) in &junk.counts {
            report.metric(&format!("sent_{k}"), *v);
        }
        report.metric("sent_sync_requests", self.sync_sent);
        report.metric("sync_answers", self.answers);
        report.metric("sync_refused", self.failures);
        report.metric("publish_errors", [self.spammer_errors, self.accuser_errors]);
    }
}

/// Send the junk to node 0: 1–2 from one peer (the unfunded transfers within one period), 3
/// from another, 4 (sync) from a third.
async fn attack(
    net: &LocalNet,
    spec: &NetSpec,
    args: &JunkArgs,
    junk: &mut Junk,
    rng: &mut SplitMix64,
) -> anyhow::Result<Attack> {
    let network = net.genesis.network_id();
    let start_ms = now_ms();
    let target = net.addrs[0].clone().context("node 0 has no address")?;
    let unfunded = junk.counts.get("unfunded").copied().unwrap_or(0);
    let ignorable = unfunded + junk.counts.get("equivocating").copied().unwrap_or(0);
    let per_tick = (unfunded * 20 / spec.epoch_ms as usize).max(1) + 1;
    let mut spammer = Attacker::connect(network, target.clone(), 0xE1).await?;
    let t_gossip = Instant::now();
    spammer.publish(&junk.ledger[..unfunded], per_tick).await;
    let unfunded_published_ms = t_gossip.elapsed().as_millis() as u64;
    spammer.publish(&junk.ledger[unfunded..ignorable], 10).await;
    spammer.drive(Duration::from_secs(1)).await;
    let mut accuser = Attacker::connect(network, target.clone(), 0xE2).await?;
    accuser.publish(&junk.ledger[ignorable..], 2).await;
    accuser.drive(Duration::from_secs(1)).await;
    let mut attacker = Attacker::connect(network, target, 0xE3).await?;
    let (open, requests) = sync_junk(spec, args, &network, junk, rng)?;
    let sync_sent = requests.len();
    for r in requests {
        attacker.request(r);
        attacker.drive(Duration::from_millis(100)).await;
    }
    attacker.drive(Duration::from_secs(3)).await;
    Ok(Attack {
        start_ms,
        end_ms: now_ms(),
        open,
        ignorable,
        unfunded_published_ms,
        spammer_errors: spammer.publish_errors,
        accuser_errors: accuser.publish_errors,
        sync_sent,
        answers: attacker.answers,
        failures: attacker.failures,
    })
}

/// 4: the sync requests, and the epoch open when they were built. A NaN bundle of a closed
/// window signed by a registered worker (node 1), then bundles of the open epoch from keys
/// registered nowhere. The NaN bundle goes to the last three epochs' windows: whichever is
/// closed but not yet finalized judges it (a finalized one admits nothing, whoever offers it).
fn sync_junk(
    spec: &NetSpec,
    args: &JunkArgs,
    network: &NetworkId,
    junk: &mut Junk,
    rng: &mut SplitMix64,
) -> anyhow::Result<(u64, Vec<Request>)> {
    let open = spec
        .topic_spec(0)
        .epoch_at(now_ms())
        .context("no open epoch")?;
    let worker_key = node_key(spec.seed, 1);
    let key_of = |epoch| WindowKey::Topic {
        topic: TopicId(1),
        epoch,
        phase: Phase::Workers,
    };
    let mut requests = vec![];
    for epoch in open.saturating_sub(2)..=open {
        let nan = WorkerBundle {
            topic: TopicId(1),
            epoch,
            inference: Some(f64::NAN),
            forecasts: vec![],
        };
        requests.extend(sync_requests(
            network,
            key_of(epoch),
            &[(worker_key.clone(), nan)],
            1,
            "nan",
            &mut junk.ids,
        )?);
    }
    let strangers: Vec<(Keypair, WorkerBundle)> = (0..args.unregistered)
        .map(|k| {
            (
                fresh(rng),
                WorkerBundle {
                    topic: TopicId(1),
                    epoch: open,
                    inference: Some(k as f64 / 1_000.0),
                    forecasts: vec![],
                },
            )
        })
        .collect();
    requests.extend(sync_requests(
        network,
        key_of(open),
        &strangers,
        250,
        "unregistered",
        &mut junk.ids,
    )?);
    Ok((open, requests))
}

/// The junk arrived: node 0 judged every message the first peer sent (all of them can be
/// ignored, none penalised), at least one junk evidence before it cut the second peer off, and
/// the sync requests reached it.
fn judge_arrival(report: &mut Report, a: &Attack, junk: &Junk, before: &str, after: &str) {
    let seen0 = validated(after, "ledger") - validated(before, "ledger");
    let evidence_sent = junk.ledger.len() - a.ignorable - a.accuser_errors;
    report.metric("node0_ledger_verdicts", seen0);
    report.check(
        "the junk reached node 0",
        a.spammer_errors == 0
            && seen0 >= (a.ignorable + 1) as f64
            && evidence_sent >= 1
            && a.answers + a.failures == a.sync_sent
            && a.answers >= 1,
        format!(
            "node 0 gave {seen0} verdicts on the ledger channel: {} unfunded and \
             equivocating transfers sent ({} publish errors), then {evidence_sent} of {} junk \
             evidence messages before the second peer was cut off; {} of {} sync \
             requests answered, {} refused",
            a.ignorable,
            a.spammer_errors,
            junk.ledger.len() - a.ignorable,
            a.answers,
            a.sync_sent,
            a.failures
        ),
    );
}

/// The chain kept its pace: no gap between two heights longer than 3 periods on any node.
fn judge_pace(report: &mut Report, gaps: &[u128], n: usize, period: u64) {
    let worst = gaps.iter().copied().max().unwrap_or(u128::MAX);
    report.metric("longest_height_gap_ms", worst as u64);
    report.check(
        "the chain kept its pace",
        gaps.len() == n && worst <= u128::from(3 * period),
        format!(
            "longest time between two heights on any node from the attack's start to 5 s \
             after it: {worst} ms (allowed {} ms = 3 periods); per node {gaps:?}",
            3 * period
        ),
    );
}

/// Every epoch that closed in the attack has a finalized inference everywhere; no node stalled
/// and nobody was slashed.
async fn judge_epochs(
    report: &mut Report,
    net: &LocalNet,
    log: &InferenceLog,
    topic: &chorus_protocol::topic::TopicSpec,
    a: &Attack,
) {
    let n = net.nodes.len();
    let first = topic.epoch_at(a.start_ms).unwrap_or(0) + 1;
    let last = topic.epoch_at(a.end_ms).unwrap_or(0);
    let events = log.snapshot();
    let mut missing = vec![];
    for e in first..=last {
        for i in 0..n {
            if !events
                .iter()
                .any(|s| s.node == i && s.topic == 1 && s.epoch == e && s.finalized)
            {
                missing.push((i, e));
            }
        }
    }
    let mut stalled = vec![];
    let mut slashed = vec![];
    for i in 0..n {
        if let Some(h) = net.handle(i)
            && let Ok(s) = h.status().await
        {
            if s.stalled.is_some() {
                stalled.push(i);
            }
            slashed.push(s.supply.slashed.0);
        }
    }
    report.check(
        "every epoch finalized on every node, none stalled",
        missing.is_empty() && stalled.is_empty() && last >= first,
        format!(
            "epochs {first}..={last} (NaN bundles for {}..={}): missing (node, epoch) \
             {missing:?}; stalled nodes {stalled:?}",
            a.open.saturating_sub(2),
            a.open
        ),
    );
    report.check(
        "nobody slashed",
        slashed.len() == n && slashed.iter().all(|s| *s == 0),
        format!("slashed per node's ledger: {slashed:?}"),
    );
}

/// Node 0 penalised the NaN's peer and graylisted the evidence spammer; nobody else blamed
/// anyone.
fn judge_blame(report: &mut Report, before: &[String], after: &[String]) {
    let pen: Vec<f64> = before
        .iter()
        .zip(after)
        .map(|(b, a)| penalties(a) - penalties(b))
        .collect();
    let gray: Vec<f64> = after.iter().map(|p| graylisted(p)).collect();
    report.check(
        "node 0 penalised the NaN's peer and graylisted the evidence spammer, nobody else \
         blamed anyone",
        pen[0] >= 1.0
            && gray[0] >= 1.0
            && pen[1..].iter().all(|p| *p == 0.0)
            && gray[1..].iter().all(|g| *g == 0.0),
        format!("penalties per node {pen:?}; graylisted per node {gray:?}"),
    );
}
