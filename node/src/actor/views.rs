//! Answers to queries: the API's typed documents ([`crate::api::types`]) built from the
//! replica's state (shapes in `docs/api.md`).

use std::collections::{BTreeMap, BTreeSet};

use chorus_crdt::ledger::{Ledger, LedgerEvent, Proposal, TopicState};
use chorus_crdt::proof::Variant;
use chorus_crdt::replica::Replica;
use chorus_protocol::ids::{Amount, Hash32, TopicId};
use chorus_protocol::inference::NetworkInference;
use chorus_protocol::keys::PublicKey;
use chorus_protocol::messages::VoteOption;
use chorus_protocol::topic::TopicSpec;

use super::handle::QueryError;
use crate::api::types;

/// Network inferences kept in memory per topic (the newest epochs, and always the newest
/// finalized one). Finalized ones are also stored (`inferences` table), and older `?epoch=`
/// queries are answered from the store: a bundle holds a value, a weight and a one-out value
/// per worker (some 15 KB in memory at 100 workers, twice that with an outlier-resistant
/// variant), so at 128 epochs 10 such topics held 20–40 MiB of a node's memory for answers the
/// store gives as well.
pub const INFERENCE_HISTORY: usize = 16;

/// A finalized (or local) network inference with where it came from.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct StoredInference {
    /// The bundle.
    pub bundle: NetworkInference,
    /// Finalized by a checkpoint (else: local at window close).
    pub finalized: bool,
    /// The checkpoint height, if finalized.
    pub height: Option<u64>,
    /// Where the bundle sits in that checkpoint's inference tree (finalized only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leaf: Option<LeafPath>,
    /// The outlier-resistant variant (finalized only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier_resistant: Option<OutlierResistant>,
}

/// The outlier-resistant inference of a finalized (topic, epoch).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OutlierResistant {
    /// Its bundle when it differs from the regular one (`None`: no inference was an outlier).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle: Option<NetworkInference>,
    /// Its place in the checkpoint's inference tree.
    pub leaf: LeafPath,
}

impl StoredInference {
    /// The bundle of `variant`: `None` for the outlier-resistant one before finality.
    pub fn bundle_of(&self, variant: Variant) -> Option<(&NetworkInference, Option<&LeafPath>)> {
        match variant {
            Variant::Regular => Some((&self.bundle, self.leaf.as_ref())),
            Variant::OutlierResistant => self
                .outlier_resistant
                .as_ref()
                .map(|o| (o.bundle.as_ref().unwrap_or(&self.bundle), Some(&o.leaf))),
        }
    }
}

/// A bundle's place in its checkpoint's inference tree ([`chorus_crdt::proof`]).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LeafPath {
    /// Index of the leaf.
    pub index: u64,
    /// Number of leaves.
    pub count: u64,
    /// Sibling hashes from the leaf up.
    pub path: Vec<Hash32>,
}

fn topic_view(id: TopicId, t: &TopicState, now_ms: u64) -> types::Topic {
    types::Topic {
        id: id.0,
        spec: t.spec.clone(),
        creator: t.creator,
        weight: t.weight,
        active: t.active,
        fee_revenue: t.fee_revenue,
        reward_pool: t.reward_pool,
        stake: t.total_stake(),
        workers: t.workers.len(),
        reputers: t.reputers.len(),
        current_epoch: t.spec.epoch_at(now_ms),
        last_finalized_epoch: t.next_worker_epoch.checked_sub(1),
    }
}

/// `GET /v1/topics`.
pub fn topics(ledger: &Ledger, now_ms: u64) -> Vec<types::Topic> {
    ledger
        .topics
        .iter()
        .map(|(id, t)| topic_view(*id, t, now_ms))
        .collect()
}

pub(super) fn topic_of(ledger: &Ledger, id: TopicId) -> Result<&TopicState, QueryError> {
    ledger
        .topics
        .get(&id)
        .ok_or_else(|| QueryError::NotFound(format!("topic {id}")))
}

/// `GET /v1/topics/{id}`.
pub fn topic(ledger: &Ledger, id: TopicId, now_ms: u64) -> Result<types::Topic, QueryError> {
    Ok(topic_view(id, topic_of(ledger, id)?, now_ms))
}

/// `GET /v1/topics/{id}/inference` from the in-memory history.
pub fn inference(
    ledger: &Ledger,
    history: &BTreeMap<TopicId, BTreeMap<u64, StoredInference>>,
    id: TopicId,
    epoch: Option<u64>,
    variant: Variant,
) -> Result<types::Inference, QueryError> {
    topic_of(ledger, id)?;
    let h = history.get(&id);
    let found = match epoch {
        Some(e) => h.and_then(|m| m.get(&e).map(|s| (e, s))),
        // The outlier-resistant variant exists once finalized: the latest finalized one.
        None if !variant.is_regular() => h.and_then(latest_finalized),
        None => h.and_then(|m| m.iter().next_back().map(|(e, s)| (*e, s))),
    };
    let Some((e, s)) = found else {
        return Err(no_inference(id, epoch));
    };
    inference_view(id, e, s, variant)
}

/// The newest finalized inference of one topic's history.
pub fn latest_finalized(
    history: &BTreeMap<u64, StoredInference>,
) -> Option<(u64, &StoredInference)> {
    history
        .iter()
        .rev()
        .find(|(_, s)| s.finalized)
        .map(|(e, s)| (*e, s))
}

/// The answer when no inference is held.
pub fn no_inference(id: TopicId, epoch: Option<u64>) -> QueryError {
    QueryError::NotFound(match epoch {
        Some(e) => format!("no inference of topic {id} epoch {e}"),
        None => format!("no inference of topic {id} yet"),
    })
}

/// One inference as the API shows it.
pub fn inference_view(
    id: TopicId,
    epoch: u64,
    s: &StoredInference,
    variant: Variant,
) -> Result<types::Inference, QueryError> {
    let Some((bundle, _)) = s.bundle_of(variant) else {
        return Err(QueryError::NotFound(format!(
            "the {} inference of topic {id} epoch {epoch} (it exists once the epoch is \
             finalized)",
            variant.name()
        )));
    };
    Ok(types::Inference {
        topic: id.0,
        epoch,
        finalized: s.finalized,
        checkpoint_height: s.height,
        variant,
        bundle: bundle.clone(),
    })
}

/// `GET /v1/topics/{id}/scores`.
pub fn scores(ledger: &Ledger, id: TopicId) -> Result<types::Scores, QueryError> {
    let m = &topic_of(ledger, id)?.mechanism;
    Ok(types::Scores {
        topic: id.0,
        inferers: m.ema.inferer.clone(),
        forecasters: m.ema.forecaster.clone(),
        reputers: m.ema.reputer.clone(),
        regrets: types::Regrets {
            inferer: m.regrets.inferer.clone(),
            forecaster: m.regrets.forecaster.clone(),
            naive: m.regrets.naive.clone(),
        },
        initial_regret: m.initial_regret,
        listening_coefficients: m.listening_coefficients.clone(),
        previous_network_loss: m.previous_network_loss,
    })
}

/// `GET /v1/topics/{id}/leaderboard`.
pub fn leaderboard(ledger: &Ledger, id: TopicId) -> Result<types::Leaderboard, QueryError> {
    let t = topic_of(ledger, id)?;
    let m = &t.mechanism;
    let mut entries: Vec<(f64, String, &'static str)> = vec![];
    for (role, map) in [
        ("inferer", &m.ema.inferer),
        ("forecaster", &m.ema.forecaster),
        ("reputer", &m.ema.reputer),
    ] {
        for (k, s) in map {
            entries.push((*s, k.clone(), role));
        }
    }
    entries.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let entries = entries
        .into_iter()
        .map(|(score_ema, address, role)| {
            let rewards = address
                .parse::<PublicKey>()
                .ok()
                .and_then(|pk| t.rewards_paid.get(&pk))
                .copied()
                .unwrap_or_default();
            types::LeaderboardEntry {
                address,
                role: role.into(),
                score_ema,
                rewards,
            }
        })
        .collect();
    Ok(types::Leaderboard {
        topic: id.0,
        entries,
    })
}

/// A validator's bond (zero if it is none).
fn bond(ledger: &Ledger, who: &PublicKey) -> Amount {
    ledger
        .validators
        .get(who)
        .map(|v| v.bond)
        .unwrap_or_default()
}

/// `GET /v1/accounts/{address}`.
pub fn account(replica: &Replica, who: &PublicKey, next_nonce: u64) -> types::Account {
    let ledger = replica.ledger();
    let a = ledger.accounts.get(who).cloned().unwrap_or_default();
    let stakes = ledger
        .topics
        .iter()
        .flat_map(|(id, t)| {
            t.stakes.iter().filter_map(move |(reputer, s)| {
                let amount = if reputer == who {
                    s.own
                } else {
                    s.delegated.get(who).copied()?
                };
                (amount.0 > 0).then_some(types::Stake {
                    topic: id.0,
                    reputer: *reputer,
                    amount,
                })
            })
        })
        .collect();
    types::Account {
        address: *who,
        balance: a.balance,
        nonce: a.nonce,
        next_nonce: next_nonce.max(a.nonce + 1),
        rewards: a.rewards,
        bond: bond(ledger, who),
        in_validator_set: ledger.active_bonds().iter().any(|(k, _)| k == who),
        stakes,
        pending_releases: ledger
            .releases
            .iter()
            .filter(|r| r.owner == *who)
            .map(|r| types::PendingRelease {
                amount: r.amount,
                at_ms: r.at_ms,
            })
            .collect(),
        owner: ledger.owners.get(who).copied(),
        operators: ledger
            .owners
            .iter()
            .filter(|(_, o)| *o == who)
            .map(|(k, _)| *k)
            .collect(),
    }
}

/// `GET /v1/status`: this node's view of itself; `node` holds what the network driver knows.
pub fn status(
    replica: &Replica,
    node: NodeFacts,
    uptime_ms: u64,
    next_nonce: u64,
    submissions: Vec<types::Submission>,
) -> types::Status {
    let ledger = replica.ledger();
    let me = replica.public_key();
    let account = ledger.accounts.get(&me).cloned().unwrap_or_default();
    let topics_where = |has_role: fn(&TopicState, &PublicKey) -> bool| -> Vec<u64> {
        ledger
            .topics
            .iter()
            .filter(|(_, t)| has_role(t, &me))
            .map(|(id, _)| id.0)
            .collect()
    };
    types::Status {
        network: node.network,
        network_id: replica.network(),
        address: me,
        peer_id: node.peer_id,
        peers: node.peers,
        listen: node.listen,
        height: ledger.next_height,
        tip: replica.tip(),
        ledger_root: ledger.root(),
        roles: types::Roles {
            worker: topics_where(|t, me| t.workers.contains(me)),
            reputer: topics_where(|t, me| t.reputers.contains(me)),
            validator: ledger.validators.contains_key(&me),
        },
        submissions,
        duties: vec![],
        balance: account.balance,
        bond: bond(ledger, &me),
        rewards: account.rewards,
        next_nonce: next_nonce.max(account.nonce + 1),
        uptime_ms,
        supply: types::Supply {
            genesis: ledger.supply.genesis,
            minted: ledger.supply.minted,
            slashed: ledger.supply.slashed,
            total: Amount(ledger.total_tokens()),
            conserved: ledger.check_supply().is_ok(),
        },
        stalled: replica.stalled().map(|(height, reason)| types::Stalled {
            height,
            reason: reason.to_owned(),
        }),
        clock_offset_ms: replica.clock_offset_ms(),
        clock_off: replica.clock_off(),
    }
}

/// What `status` shows of the network driver.
#[derive(Clone, Debug)]
pub struct NodeFacts {
    /// The network's name.
    pub network: String,
    /// The libp2p peer id.
    pub peer_id: String,
    /// Connected peers.
    pub peers: usize,
    /// Listen addresses.
    pub listen: Vec<String>,
}

/// `GET /v1/checkpoints/latest`.
pub fn latest_checkpoint(replica: &Replica) -> Result<types::LatestCheckpoint, QueryError> {
    let d = replica
        .engine()
        .tip()
        .ok_or_else(|| QueryError::NotFound("no checkpoint decided yet".into()))?;
    let cp = &d.checkpoint;
    Ok(types::LatestCheckpoint {
        height: cp.height,
        id: d.id().0,
        previous: cp.previous,
        ledger_root: cp.ledger_root,
        windows: cp.windows.len(),
        entries: cp.windows.iter().map(|w| w.entries as usize).sum(),
        signers: d.certificate.signatures.len(),
        signed_by: d
            .certificate
            .signatures
            .iter()
            .map(|s| s.validator)
            .collect(),
    })
}

/// `GET /v1/params`.
pub fn params(ledger: &Ledger) -> types::Params {
    ledger.params.clone()
}

/// One proposal as the API shows it: votes weighted now (final weights once tallied).
fn proposal_view(ledger: &Ledger, id: Hash32, p: &Proposal) -> types::Proposal {
    let votes: Vec<types::ProposalVote> = p
        .votes
        .iter()
        .map(|(voter, option)| types::ProposalVote {
            voter: *voter,
            option: *option,
            weight: Amount(ledger.voting_weight(voter)),
        })
        .collect();
    let sum = |o: VoteOption| {
        Amount(
            votes
                .iter()
                .filter(|v| v.option == o)
                .map(|v| v.weight.0)
                .sum(),
        )
    };
    let (status, yes, no, abstain, error) = match &p.outcome {
        None => (
            "voting",
            sum(VoteOption::Yes),
            sum(VoteOption::No),
            sum(VoteOption::Abstain),
            None,
        ),
        Some(o) => {
            let status = match (o.passed, &o.error) {
                (true, None) => "passed",
                (true, Some(_)) => "failed",
                (false, _) => "rejected",
            };
            (status, o.yes, o.no, o.abstain, o.error.clone())
        }
    };
    types::Proposal {
        id,
        proposer: p.proposer,
        title: p.title.clone(),
        action: p.action.clone(),
        voting_ends: p.voting_ends,
        status: status.into(),
        yes,
        no,
        abstain,
        quorum: Amount(ledger.total_voting_weight().div_ceil(3)),
        error,
        votes,
    }
}

/// `GET /v1/proposals`: every proposal, newest voting end first.
pub fn proposals(ledger: &Ledger) -> Vec<types::Proposal> {
    let mut all: Vec<types::Proposal> = ledger
        .proposals
        .iter()
        .map(|(id, p)| proposal_view(ledger, *id, p))
        .collect();
    all.sort_by(|a, b| b.voting_ends.cmp(&a.voting_ends).then(a.id.cmp(&b.id)));
    all
}

/// `GET /v1/proposals/{id}`.
pub fn proposal(ledger: &Ledger, id: Hash32) -> Result<types::Proposal, QueryError> {
    ledger
        .proposals
        .get(&id)
        .map(|p| proposal_view(ledger, id, p))
        .ok_or_else(|| QueryError::NotFound(format!("proposal {id}")))
}

/// `GET /v1/topics/{id}/bundles[?epoch=E]` (the current epoch if `epoch` is `None`).
pub fn bundles(
    replica: &Replica,
    id: TopicId,
    epoch: Option<u64>,
    now_ms: u64,
) -> Result<types::WindowBundles, QueryError> {
    use chorus_crdt::window::{Phase, WindowKey};
    use chorus_protocol::messages::Payload;
    let spec = &topic_of(replica.ledger(), id)?.spec;
    let epoch = epoch
        .or_else(|| spec.epoch_at(now_ms))
        .ok_or_else(|| QueryError::NotFound(format!("topic {id} has not started: no epoch yet")))?;
    let window = replica.window(&WindowKey::Topic {
        topic: id,
        epoch,
        phase: Phase::Workers,
    });
    let mut bundles: Vec<types::HeldBundle> = window
        .into_iter()
        .flat_map(|w| w.entries())
        .filter_map(|e| {
            let worker = e.envelope.signer.to_hex();
            let held = |kind: &str,
                        b: Option<&chorus_protocol::messages::WorkerBundle>,
                        c: Option<Hash32>| {
                types::HeldBundle {
                    worker: worker.clone(),
                    kind: kind.into(),
                    inference: b.and_then(|b| b.inference),
                    forecasts: b.map_or(0, |b| b.forecasts.len()),
                    commitment: c.map(|c| c.to_string()),
                }
            };
            match &e.payload {
                Payload::WorkerBundle(b) => Some(held("bundle", Some(b), None)),
                Payload::WorkerCommit(c) => Some(held("commit", None, Some(c.commitment))),
                Payload::WorkerReveal(r) => {
                    Some(held("reveal", Some(&r.bundle), Some(r.commitment())))
                }
                _ => None,
            }
        })
        .collect();
    bundles.sort_by(|a, b| (&a.worker, &a.kind).cmp(&(&b.worker, &b.kind)));
    Ok(types::WindowBundles {
        topic: id.0,
        epoch,
        commit_reveal: spec.commit_reveal(),
        held: window.is_some(),
        bundles,
    })
}

/// `GET /v1/topics/{id}/window`.
pub fn window(ledger: &Ledger, id: TopicId, now_ms: u64) -> Result<types::Window, QueryError> {
    let spec = &topic_of(ledger, id)?.spec;
    Ok(window_of(id, spec, now_ms))
}

/// The submission windows of topic `id` defined by `spec` at `now_ms`.
pub fn window_of(id: TopicId, spec: &TopicSpec, now_ms: u64) -> types::Window {
    let at = |epoch: u64, (open_ms, close_ms): (u64, u64)| types::SubmissionWindow {
        epoch,
        open_ms,
        close_ms,
        open: (open_ms..close_ms).contains(&now_ms),
    };
    let current = spec.epoch_at(now_ms);
    let reputer = now_ms
        .checked_sub(spec.ground_truth_lag_ms)
        .and_then(|t| spec.epoch_at(t))
        .map(|e| at(e, spec.reputer_window(e)));
    types::Window {
        topic: id.0,
        now_ms,
        worker: current.map(|e| at(e, spec.submission_window(e))),
        reveal: current.and_then(|e| spec.reveal_window(e).map(|w| at(e, w))),
        next_worker_open_ms: spec.submission_window(current.map_or(0, |e| e + 1)).0,
        reputer,
    }
}

/// What `status` needs beyond the ledger to tell how each duty goes.
pub struct DutyFacts<'a> {
    /// The (topic, role) pairs this node runs.
    pub configured: &'a BTreeSet<(u64, &'static str)>,
    /// The last submission per (topic, payload kind).
    pub submissions: &'a BTreeMap<(u64, &'static str), types::Submission>,
    /// Recent network inferences.
    pub history: &'a BTreeMap<TopicId, BTreeMap<u64, StoredInference>>,
    /// The last reward per (topic, role).
    pub rewards: &'a BTreeMap<(u64, &'static str), (u64, Amount)>,
}

/// One entry per (topic, role) that this node runs or its key is registered for.
pub fn duties(
    ledger: &Ledger,
    me: &PublicKey,
    facts: &DutyFacts<'_>,
    now_ms: u64,
) -> Vec<types::Duty> {
    let mut keys: BTreeSet<(u64, &'static str)> = facts.configured.clone();
    for (id, t) in &ledger.topics {
        if t.workers.contains(me) {
            keys.insert((id.0, "worker"));
        }
        if t.reputers.contains(me) {
            keys.insert((id.0, "reputer"));
        }
    }
    keys.into_iter()
        .map(|(topic, role)| duty(ledger, me, facts, topic, role, now_ms))
        .collect()
}

fn duty(
    ledger: &Ledger,
    me: &PublicKey,
    facts: &DutyFacts<'_>,
    topic: u64,
    role: &'static str,
    now_ms: u64,
) -> types::Duty {
    let id = TopicId(topic);
    let t = ledger.topics.get(&id);
    let worker = role == "worker";
    let registered = t.is_some_and(|t| {
        if worker {
            t.workers.contains(me)
        } else {
            t.reputers.contains(me)
        }
    });
    let configured = facts.configured.contains(&(topic, role));
    let funded = ledger.can_pay_data_fee(me);
    let stake = t
        .and_then(|t| t.stakes.get(me))
        .map_or(Amount(0), |s| s.own);
    let window = t.and_then(|t| {
        let w = window_of(id, &t.spec, now_ms);
        if worker { w.worker } else { w.reputer }
    });
    // A commit-reveal worker's last submission is its commitment or, once sent, its reveal.
    let kinds: &[&'static str] = match (worker, t.is_some_and(|t| t.spec.commit_reveal())) {
        (false, _) => &["reputer_bundle"],
        (true, false) => &["worker_bundle"],
        (true, true) => &["worker_commit", "worker_reveal"],
    };
    let last = kinds
        .iter()
        .filter_map(|k| facts.submissions.get(&(topic, *k)))
        .max_by_key(|s| s.epoch)
        .cloned();
    let counted = match (&last, worker) {
        (Some(s), true) if s.accepted => s.epoch.and_then(|e| {
            let held = facts.history.get(&id)?.get(&e)?;
            held.finalized.then(|| {
                held.bundle.inferer_values.contains_key(me)
                    || held.bundle.forecaster_values.contains_key(me)
            })
        }),
        _ => None,
    };
    let problem = match () {
        _ if t.is_none() => Some(format!("topic {topic} does not exist in the ledger")),
        _ if configured && !registered => Some(format!(
            "not registered: `chorus register {topic} {role} --key <this node's key>`"
        )),
        _ if !configured => Some(format!(
            "registered, but this node runs no {role} for topic {topic} (add a [[{role}]] to \
             its config)"
        )),
        _ if !funded => Some(format!(
            "balance {} is below the data-sending fee {}: entries are left out at settlement \
             (`chorus transfer` tokens to {})",
            ledger.balance(me),
            ledger.params.data_sending_fee,
            me.to_hex()
        )),
        _ if !worker && stake < ledger.params.required_minimum_stake => Some(format!(
            "stake {stake} is below the minimum {}: losses are not counted (`chorus stake add \
             {topic} <amount>`)",
            ledger.params.required_minimum_stake
        )),
        _ if t.is_some_and(|t| !t.active) => Some(format!(
            "topic {topic} is inactive: it pays no rewards (fund it: `chorus topic fund`)"
        )),
        _ => match (&last, counted) {
            (Some(s), _) if !s.accepted => Some(format!(
                "epoch {} not submitted: {}",
                s.epoch.map_or("?".into(), |e| e.to_string()),
                s.reason.as_deref().unwrap_or("no reason given")
            )),
            (Some(s), Some(false)) => Some(format!(
                "epoch {}'s finalized inference does not count this worker (its bundle arrived \
                 after the window closed, or was not valid)",
                s.epoch.unwrap_or_default()
            )),
            _ => None,
        },
    };
    types::Duty {
        topic,
        role: role.into(),
        configured,
        registered,
        funded,
        stake,
        window,
        last,
        counted,
        last_reward: facts.rewards.get(&(topic, role)).copied(),
        problem,
    }
}

/// The statement lines a checkpoint's ledger events make, by (address, topic, epoch): one per
/// `Scored` actor and role, with the matching `Reward` payouts added (a delegator's reward is
/// a line of its own).
pub fn statements_of(
    height: u64,
    events: &[LedgerEvent],
) -> BTreeMap<(PublicKey, u64, u64), Vec<types::Statement>> {
    let mut out: BTreeMap<(PublicKey, u64, u64), Vec<types::Statement>> = BTreeMap::new();
    for e in events {
        if let LedgerEvent::Scored {
            topic,
            epoch,
            actors,
            ..
        } = e
        {
            for a in actors {
                out.entry((a.who, topic.0, *epoch))
                    .or_default()
                    .push(types::Statement {
                        topic: topic.0,
                        epoch: *epoch,
                        height,
                        role: a.role.clone(),
                        score: Some(a.score),
                        ema_score: Some(a.ema_score),
                        weight: a.weight,
                        reward_fraction: Some(a.reward_fraction),
                        payout: Amount(0),
                    });
            }
        }
    }
    for e in events {
        if let LedgerEvent::Reward {
            topic,
            epoch,
            to,
            amount,
            role,
            ..
        } = e
        {
            let lines = out.entry((*to, topic.0, *epoch)).or_default();
            match lines.iter_mut().find(|l| &l.role == role) {
                Some(l) => l.payout = Amount(l.payout.0 + amount.0),
                None => lines.push(types::Statement {
                    topic: topic.0,
                    epoch: *epoch,
                    height,
                    role: role.clone(),
                    score: None,
                    ema_score: None,
                    weight: None,
                    reward_fraction: None,
                    payout: *amount,
                }),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chorus_crdt::replica::sim::sim_genesis;
    use chorus_protocol::keys::Keypair;

    /// A commit-reveal worker's duty shows its latest commitment or reveal, whichever is for
    /// the later epoch (the reveal when both are); a plain topic's, its bundle.
    #[test]
    fn a_commit_reveal_worker_duty_shows_its_latest_commitment_or_reveal() {
        let keys: Vec<Keypair> = (1..=3u8).map(|i| Keypair::from_seed(&[i; 32])).collect();
        let mut g = sim_genesis("views-test", &keys, &[1_000, 0, 0], |i| i == 2);
        let me = keys[1].public();
        let submission = |kind: &str, epoch| types::Submission {
            topic: Some(1),
            epoch: Some(epoch),
            kind: kind.into(),
            accepted: true,
            reason: None,
            time_ms: 0,
        };
        let configured = BTreeSet::from([(1u64, "worker")]);
        let duty_with = |g: &chorus_protocol::genesis::Genesis, subs: &[(&'static str, u64)]| {
            let ledger = Ledger::from_genesis(g).unwrap();
            let submissions = subs
                .iter()
                .map(|(k, e)| ((1u64, *k), submission(k, *e)))
                .collect();
            let facts = DutyFacts {
                configured: &configured,
                submissions: &submissions,
                history: &BTreeMap::new(),
                rewards: &BTreeMap::new(),
            };
            let d = duties(&ledger, &me, &facts, 0).remove(0);
            d.last.map(|s| (s.kind, s.epoch.unwrap()))
        };
        let both = [
            ("worker_commit", 7),
            ("worker_reveal", 6),
            ("worker_bundle", 3),
        ];
        assert_eq!(duty_with(&g, &both), Some(("worker_bundle".into(), 3)));
        g.topics[0].spec.reveal_window_ms = g.topics[0].spec.submission_window_ms / 2;
        assert_eq!(duty_with(&g, &both), Some(("worker_commit".into(), 7)));
        let revealed = [("worker_commit", 7), ("worker_reveal", 7)];
        assert_eq!(duty_with(&g, &revealed), Some(("worker_reveal".into(), 7)));
    }
}
