//! The API's read side: what queries see beyond the replica (recent network inferences,
//! this node's last submissions, the nonces it has seen submitted, its start time) and the
//! answering of [`Query`]s from it and the replica. The actor feeds it replica events and
//! submissions, and drains the finalized inferences it has to store.

use std::collections::{BTreeMap, BTreeSet};

use chorus_crdt::ledger::LedgerEvent;
use chorus_crdt::replica::Replica;
use chorus_protocol::ids::{Amount, TopicId};
use chorus_protocol::inference::NetworkInference;
use chorus_protocol::keys::PublicKey;

use super::handle::{Answer, Query, QueryError, StatementsQuery};
use super::views::{
    self, INFERENCE_HISTORY, LeafPath, NodeFacts, OutlierResistant, StoredInference,
};
use crate::api::types::{Statement, Submission};
use chorus_crdt::proof::{ProofValidator, Variant};

/// Most (topic, epoch) keys one statements query reads.
pub const MAX_STATEMENT_KEYS: usize = 10_000;
use crate::store::{Store, ops};

/// Last submissions remembered per (topic, kind) for `status`.
const SUBMISSIONS_KEPT: usize = 64;

/// A finalized inference waiting to be stored: (topic, epoch, JSON of [`StoredInference`]).
pub(super) type PendingInference = (u64, u64, Vec<u8>);

/// Drop the oldest epochs of one topic's history beyond [`INFERENCE_HISTORY`], except the
/// newest finalized one: while checkpoints stall, local inferences keep coming and the latest
/// finalized inference must still be answered from memory.
fn trim(h: &mut BTreeMap<u64, StoredInference>) {
    let keep = views::latest_finalized(h).map(|(e, _)| e);
    while h.len() > INFERENCE_HISTORY {
        let Some(oldest) = h.keys().copied().find(|e| Some(*e) != keep) else {
            return;
        };
        h.remove(&oldest);
    }
}

/// The API's read-side state.
pub(super) struct ReadModel {
    /// The newest network inferences per topic (at most [`INFERENCE_HISTORY`] epochs).
    history: BTreeMap<TopicId, BTreeMap<u64, StoredInference>>,
    /// Finalized inferences to store.
    pending_inferences: Vec<PendingInference>,
    /// Validator sets to record: (the checkpoint height that commits to it, JSON).
    pending_validator_sets: Vec<(u64, Vec<u8>)>,
    /// The last set queued there (the store keeps changes only; this saves encoding and a
    /// store read at every height while the set stays the same).
    last_validators: Vec<ProofValidator>,
    /// The last submission per (topic, kind), at most [`SUBMISSIONS_KEPT`] (drop oldest key).
    submissions: BTreeMap<(u64, &'static str), Submission>,
    /// One past the highest nonce submitted through this node, per author.
    next_nonce: BTreeMap<PublicKey, u64>,
    /// When the node started (unix ms).
    started_ms: u64,
    /// The (topic, role) pairs this node runs (`worker`, `reputer`).
    configured: BTreeSet<(u64, &'static str)>,
    /// Statement lines to store: ((address, topic, epoch), JSON list).
    pending_statements: Vec<(ops::StatementKey, Vec<u8>)>,
    /// The last reward of this node's key per (topic, duty role): (epoch, amount).
    rewards: BTreeMap<(u64, &'static str), (u64, Amount)>,
}

impl ReadModel {
    pub(super) fn new(now_ms: u64) -> Self {
        ReadModel {
            history: BTreeMap::new(),
            pending_inferences: vec![],
            pending_validator_sets: vec![],
            last_validators: vec![],
            submissions: BTreeMap::new(),
            next_nonce: BTreeMap::new(),
            started_ms: now_ms,
            configured: BTreeSet::new(),
            pending_statements: vec![],
            rewards: BTreeMap::new(),
        }
    }

    /// The roles this node runs, for `status`.
    pub(super) fn with_configured(
        mut self,
        roles: impl IntoIterator<Item = (u64, &'static str)>,
    ) -> Self {
        self.configured = roles.into_iter().collect();
        self
    }

    /// The statement lines to store since the last call.
    pub(super) fn take_pending_statements(&mut self) -> Vec<(ops::StatementKey, Vec<u8>)> {
        std::mem::take(&mut self.pending_statements)
    }

    /// A checkpoint's events: the statements they make (queued for the store) and the
    /// rewards paid to `me` (for `status`).
    pub(super) fn ledger_events(&mut self, me: &PublicKey, height: u64, events: &[LedgerEvent]) {
        for ((who, topic, epoch), lines) in views::statements_of(height, events) {
            if who == *me {
                // The payouts of this epoch per duty: what `status` shows as the last reward.
                let mut paid: BTreeMap<&'static str, u128> = BTreeMap::new();
                for l in lines.iter().filter(|l| l.payout.0 > 0) {
                    let duty = match l.role.as_str() {
                        "reputer" | "delegator" => "reputer",
                        _ => "worker",
                    };
                    *paid.entry(duty).or_default() += l.payout.0;
                }
                for (duty, amount) in paid {
                    self.rewards.insert((topic, duty), (epoch, Amount(amount)));
                }
            }
            if let Ok(json) = serde_json::to_vec(&lines) {
                self.pending_statements
                    .push(((*who.as_bytes(), topic, epoch), json));
            }
        }
    }

    /// This node's own inference at window close (kept unless a finalized one is held).
    pub(super) fn local_inference(&mut self, topic: TopicId, epoch: u64, bundle: NetworkInference) {
        let h = self.history.entry(topic).or_default();
        if !h.get(&epoch).is_some_and(|s| s.finalized) {
            h.insert(
                epoch,
                StoredInference {
                    bundle,
                    finalized: false,
                    height: None,
                    leaf: None,
                    outlier_resistant: None,
                },
            );
            trim(h);
        }
    }

    /// A network inference finalized at `height`: held in memory and queued for the store.
    pub(super) fn finalized_inference(
        &mut self,
        topic: TopicId,
        epoch: u64,
        height: u64,
        bundle: NetworkInference,
        leaf: Option<LeafPath>,
        outlier_resistant: Option<OutlierResistant>,
    ) {
        let stored = StoredInference {
            bundle,
            finalized: true,
            height: Some(height),
            leaf,
            outlier_resistant,
        };
        if let Ok(json) = serde_json::to_vec(&stored) {
            self.pending_inferences.push((topic.0, epoch, json));
        }
        let h = self.history.entry(topic).or_default();
        h.insert(epoch, stored);
        trim(h);
    }

    /// The validator set checkpoint `height` commits to (recorded where it changes).
    pub(super) fn committed_validators(&mut self, height: u64, set: Vec<ProofValidator>) {
        if set == self.last_validators {
            return;
        }
        if let Ok(json) = serde_json::to_vec(&set) {
            self.pending_validator_sets.push((height, json));
        }
        self.last_validators = set;
    }

    /// The validator sets to record since the last call.
    pub(super) fn take_pending_validator_sets(&mut self) -> Vec<(u64, Vec<u8>)> {
        std::mem::take(&mut self.pending_validator_sets)
    }

    /// The finalized inferences to store since the last call.
    pub(super) fn take_pending_inferences(&mut self) -> Vec<PendingInference> {
        std::mem::take(&mut self.pending_inferences)
    }

    /// Remember a submission (or a skipped duty) under `(topic, kind)`.
    pub(super) fn submission(&mut self, key: (u64, &'static str), s: Submission) {
        self.submissions.insert(key, s);
        while self.submissions.len() > SUBMISSIONS_KEPT {
            self.submissions.pop_first();
        }
    }

    /// Note the nonce of a signed envelope submitted through the API.
    pub(super) fn submitted_envelope(&mut self, bytes: &[u8]) {
        if let Ok(env) = chorus_protocol::envelope::Envelope::from_bytes(bytes)
            && let Some(n) = env.payload_unverified().ok().and_then(|p| p.nonce())
        {
            let e = self.next_nonce.entry(env.signer).or_default();
            *e = (*e).max(n + 1);
        }
    }

    /// `GET /v1/accounts/{address}/statements`, from the store.
    pub(super) async fn stored_statements(
        store: &Store,
        q: StatementsQuery,
    ) -> Result<Answer, QueryError> {
        let who = *q.address.as_bytes();
        let topics = q.topic.map_or((0, u64::MAX), |t| (t.0, t.0));
        let epochs = (q.from.unwrap_or(0), q.to.unwrap_or(u64::MAX));
        let rows = store
            .call(move |db| ops::statements(db, &who, topics, epochs, MAX_STATEMENT_KEYS))
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "reading statements");
                QueryError::Unavailable
            })?;
        let lines = rows
            .iter()
            .filter_map(|b| serde_json::from_slice::<Vec<Statement>>(b).ok())
            .flatten()
            .collect();
        Ok(Answer::Statements(lines))
    }

    /// `GET /v1/topics/{id}/inference?proof=true`, from the store (the latest finalized epoch
    /// when none is given).
    pub(super) async fn stored_proof(
        &self,
        replica: &Replica,
        store: &Store,
        (topic, epoch, trusted, variant): (TopicId, Option<u64>, Option<u64>, Variant),
    ) -> Result<Answer, QueryError> {
        views::topic_of(replica.ledger(), topic)?;
        let latest = || {
            let history = self.history.get(&topic)?;
            views::latest_finalized(history).map(|(e, _)| e)
        };
        let Some(epoch) = epoch.or_else(latest) else {
            return Err(views::no_inference(topic, None));
        };
        let network = replica.network();
        let proof = store
            .call(move |db| super::proofs::build(db, network, (topic, epoch, variant), trusted))
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "reading an inference proof");
                QueryError::Unavailable
            })??;
        Ok(Answer::InferenceProof(Box::new(proof)))
    }

    /// Whether an inference query must go to the store (an epoch no longer in memory).
    pub(super) fn needs_store(&self, q: &Query) -> Option<(TopicId, u64, Variant)> {
        match q {
            Query::Inference {
                topic,
                epoch: Some(e),
                variant,
            } if !self.history.get(topic).is_some_and(|h| h.contains_key(e)) => {
                Some((*topic, *e, *variant))
            }
            _ => None,
        }
    }

    /// A finalized inference no longer in memory, from the store.
    pub(super) async fn stored_inference(
        replica: &Replica,
        store: &Store,
        (topic, epoch, variant): (TopicId, u64, Variant),
    ) -> Result<Answer, QueryError> {
        // Unknown topics answer as for the in-memory history.
        views::topic_of(replica.ledger(), topic)?;
        let bytes = store
            .call(move |db| ops::inference(db, topic.0, epoch))
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "reading a stored inference");
                QueryError::Unavailable
            })?;
        let stored: Option<StoredInference> = bytes.and_then(|b| serde_json::from_slice(&b).ok());
        match stored {
            Some(s) => Ok(Answer::Inference(Box::new(views::inference_view(
                topic, epoch, &s, variant,
            )?))),
            None => Err(views::no_inference(topic, Some(epoch))),
        }
    }

    /// Answer `q` from memory; `node` gives what `status` shows of the network driver.
    pub(super) fn answer(
        &self,
        replica: &Replica,
        node: impl FnOnce() -> NodeFacts,
        q: Query,
        now_ms: u64,
    ) -> Result<Answer, QueryError> {
        let ledger = replica.ledger();
        let nonce_of = |who: &PublicKey| self.next_nonce.get(who).copied().unwrap_or(0);
        match q {
            Query::Status => {
                let uptime_ms = now_ms.saturating_sub(self.started_ms);
                let submissions = self.submissions.values().cloned().collect();
                let me = replica.public_key();
                let mut status =
                    views::status(replica, node(), uptime_ms, nonce_of(&me), submissions);
                status.duties = views::duties(
                    ledger,
                    &me,
                    &views::DutyFacts {
                        configured: &self.configured,
                        submissions: &self.submissions,
                        history: &self.history,
                        rewards: &self.rewards,
                    },
                    now_ms,
                );
                Ok(Answer::Status(Box::new(status)))
            }
            Query::Topics => Ok(Answer::Topics(views::topics(ledger, now_ms))),
            Query::Topic(id) => Ok(Answer::Topic(Box::new(views::topic(ledger, id, now_ms)?))),
            Query::Inference {
                topic,
                epoch,
                variant,
            } => Ok(Answer::Inference(Box::new(views::inference(
                ledger,
                &self.history,
                topic,
                epoch,
                variant,
            )?))),
            Query::Scores(id) => Ok(Answer::Scores(Box::new(views::scores(ledger, id)?))),
            Query::Leaderboard(id) => Ok(Answer::Leaderboard(views::leaderboard(ledger, id)?)),
            Query::Account(who) => Ok(Answer::Account(Box::new(views::account(
                replica,
                &who,
                nonce_of(&who),
            )))),
            Query::LatestCheckpoint => {
                Ok(Answer::LatestCheckpoint(views::latest_checkpoint(replica)?))
            }
            Query::Window(id) => Ok(Answer::Window(views::window(ledger, id, now_ms)?)),
            Query::Bundles { topic, epoch } => Ok(Answer::Bundles(Box::new(views::bundles(
                replica, topic, epoch, now_ms,
            )?))),
            Query::Params => Ok(Answer::Params(Box::new(views::params(ledger)))),
            Query::Proposals => Ok(Answer::Proposals(views::proposals(ledger))),
            Query::Proposal(id) => Ok(Answer::Proposal(Box::new(views::proposal(ledger, id)?))),
            Query::Progress(windows) => Ok(Answer::Progress(Box::new(super::Progress {
                height: ledger.next_height,
                held: windows
                    .iter()
                    .map(|k| replica.window(k).map_or(0, |w| w.len()))
                    .collect(),
                submissions: self.submissions.values().cloned().collect(),
            }))),
            // Answered from the store by the actor (see `stored_statements`).
            Query::Statements(_) | Query::InferenceProof { .. } => Err(QueryError::Unavailable),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn bundle(value: f64) -> NetworkInference {
        NetworkInference {
            combined_value: value,
            confidence_interval_values: None,
            forecaster_values: BTreeMap::new(),
            forecaster_weights: BTreeMap::new(),
            inferer_values: BTreeMap::new(),
            inferer_weights: BTreeMap::new(),
            naive_value: None,
            one_in_forecaster_values: BTreeMap::new(),
            one_out_forecaster_values: BTreeMap::new(),
            one_out_inferer_forecaster_values: BTreeMap::new(),
            one_out_inferer_values: BTreeMap::new(),
        }
    }

    fn inference_query(epoch: u64) -> Query {
        Query::Inference {
            topic: TopicId(1),
            epoch: Some(epoch),
            variant: Variant::Regular,
        }
    }

    /// Memory holds the newest [`INFERENCE_HISTORY`] epochs of a topic and its newest
    /// finalized one, however long checkpoints stall; older epochs go to the store.
    #[test]
    fn memory_keeps_the_newest_epochs_and_the_last_finalized_one() {
        let topic = TopicId(1);
        let mut m = ReadModel::new(0);
        for e in 1..=40u64 {
            m.finalized_inference(topic, e, e, bundle(e as f64), None, None);
        }
        let held: Vec<u64> = m.history[&topic].keys().copied().collect();
        assert_eq!(held, (25..=40).collect::<Vec<_>>());
        // Every finalized one was queued for the store, and older epochs are read from it.
        assert_eq!(m.pending_inferences.len(), 40);
        assert_eq!(
            m.needs_store(&inference_query(24)),
            Some((topic, 24, Variant::Regular))
        );
        assert_eq!(m.needs_store(&inference_query(25)), None);
        // A stall: 100 epochs of local inferences after the last finalized one (40).
        for e in 41..=140u64 {
            m.local_inference(topic, e, bundle(e as f64));
        }
        let h = &m.history[&topic];
        assert_eq!(h.len(), INFERENCE_HISTORY);
        assert_eq!(views::latest_finalized(h).map(|(e, _)| e), Some(40));
        let newest: Vec<u64> = h.keys().copied().skip(1).collect();
        assert_eq!(newest, (126..=140).collect::<Vec<_>>());
    }
}
