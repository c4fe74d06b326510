//! What the simulated nodes do besides running their replica: workers submit an inference for
//! every epoch, reputers report the losses of every finalized network inference, byzantine
//! workers send two different bundles. Every honest submission the replica accepted is
//! recorded as a [`SimEvent::Submitted`], so that a checker can follow it to finality.

use std::collections::{BTreeMap, BTreeSet};

use chorus_protocol::envelope::Envelope;
use chorus_protocol::ids::TopicId;
use chorus_protocol::messages::{Payload, ReputerBundle, WorkerBundle};
use chorus_protocol::validation::ChannelKind;

use super::{Delivery, Sim, SimEvent};
use crate::replica::Input;
use crate::replica::duties::loss_bundle;
use crate::window::{WindowKey, entry_from_envelope};

/// What roles the simulated nodes play, honest and byzantine.
#[derive(Clone, Debug, Default)]
pub struct SimRoles {
    /// Nodes that submit an inference every epoch of every topic (node index → noise scale).
    pub workers: BTreeMap<usize, f64>,
    /// Nodes that report losses.
    pub reputers: BTreeSet<usize>,
    /// Workers that send two different signed bundles per epoch, each to half of the peers
    /// (byzantine).
    pub equivocating_workers: BTreeSet<usize>,
    /// Validators that follow each of their votes with a conflicting one signed with the same
    /// key (nil ↔ a made-up id); every peer gets one of the two at random (byzantine).
    pub equivocating_validators: BTreeSet<usize>,
    /// Validators whose proposals go out with a wrong ledger root, re-signed (byzantine).
    pub bad_root_proposers: BTreeSet<usize>,
    /// Nodes that send garbage and mutated copies of real messages on every channel, and
    /// answer window fetches with garbage (byzantine).
    pub garbage_peers: BTreeSet<usize>,
    /// Validators that follow each of their votes with a vote of their own, validly signed,
    /// for a height [`super::byzantine::FORGED_AHEAD`] above it: a claim to be far ahead that
    /// nothing backs (byzantine).
    pub forging_ahead: BTreeSet<usize>,
}

impl SimRoles {
    /// Whether node `i` has any byzantine behaviour.
    pub fn is_byzantine(&self, i: usize) -> bool {
        self.equivocating_workers.contains(&i)
            || self.equivocating_validators.contains(&i)
            || self.bad_root_proposers.contains(&i)
            || self.garbage_peers.contains(&i)
            || self.forging_ahead.contains(&i)
    }
}

/// The ground truth of an epoch in the simulation (deterministic, smooth).
pub fn sim_truth(topic: TopicId, epoch: u64) -> f64 {
    1.0 + 0.1 * libm::sin(epoch as f64 * 0.37 + topic.0 as f64)
}

impl Sim {
    /// Submit what node `i`'s roles call for at its local time.
    pub(super) fn roles(&mut self, i: usize) {
        if self.roles_paused {
            return;
        }
        let now = self.local_now(i);
        let node = &mut self.nodes[i];
        let me = node.key.public();
        let submitted = &mut node.submitted;
        let Some(r) = node.replica.as_ref() else {
            return;
        };
        let mut publish = vec![];
        let mut equivocate = vec![];
        let ledger = r.ledger();
        if let Some(noise) = self.roles.workers.get(&i).copied() {
            for (id, t) in &ledger.topics {
                if !t.workers.contains(&me) {
                    continue;
                }
                let Some(e) = t.spec.epoch_at(now) else {
                    continue;
                };
                let (open, close) = t.spec.worker_window(e);
                if now < open + (close - open) / 4 || now >= close {
                    continue;
                }
                if !submitted.insert((*id, e, true)) {
                    continue;
                }
                let z = libm::sin((i as f64 + 1.0) * 12.9898 + e as f64 * 78.233);
                let value = sim_truth(*id, e) + noise * z;
                let bundle = |v: f64| {
                    Payload::WorkerBundle(WorkerBundle {
                        topic: *id,
                        epoch: e,
                        inference: Some(v),
                        forecasts: vec![],
                    })
                };
                if self.roles.equivocating_workers.contains(&i) {
                    // Byzantine: two different signed bundles, each to half of the peers.
                    equivocate.push((*id, bundle(value), bundle(value + 1.0)));
                } else {
                    publish.push(bundle(value));
                }
            }
        }
        if self.roles.reputers.contains(&i) {
            for (id, t) in &ledger.topics {
                if !t.reputers.contains(&me) {
                    continue;
                }
                for (e, rec) in &t.mechanism.pending {
                    let Some((open, close)) = r.reputer_window(*id, *e) else {
                        continue;
                    };
                    if now < open || now >= close {
                        continue;
                    }
                    let Some(bundle) = &rec.bundle else { continue };
                    if !submitted.insert((*id, *e, false)) {
                        continue;
                    }
                    let truth = sim_truth(*id, *e);
                    if let Ok(losses) = loss_bundle(bundle, truth, &t.spec.loss) {
                        publish.push(Payload::ReputerBundle(ReputerBundle {
                            topic: *id,
                            epoch: *e,
                            ground_truth: truth,
                            losses,
                        }));
                    }
                }
            }
        }
        let network = self.network;
        let honest = !self.roles.is_byzantine(i);
        for p in publish {
            self.stats.submitted += 1;
            let key = self.nodes[i].key.clone();
            let envelope = Envelope::seal(&key, &network, &p);
            let bytes = envelope.to_bytes();
            // Topic payloads only: their window does not depend on the ledger period.
            let window = WindowKey::of(&p, 0);
            let change = entry_from_envelope(&window, envelope, p)
                .ok()
                .map(|e| e.hash());
            self.input(i, Input::PublishSigned(bytes));
            let held = change.filter(|c| {
                self.nodes[i]
                    .replica
                    .as_ref()
                    .and_then(|r| r.window(&window))
                    .is_some_and(|w| w.contains(c))
            });
            if let (Some(change), true) = (held, honest) {
                self.events.push(SimEvent::Submitted {
                    node: i,
                    window,
                    change,
                    at_ms: self.now,
                });
            }
        }
        for (topic, a, b) in equivocate {
            let key = self.nodes[i].key.clone();
            let ea = Envelope::seal(&key, &network, &a).to_bytes();
            let eb = Envelope::seal(&key, &network, &b).to_bytes();
            for j in (0..self.nodes.len()).filter(|j| *j != i) {
                let bytes = if j % 2 == 0 { ea.clone() } else { eb.clone() };
                self.send(
                    Delivery::Gossip {
                        to: j,
                        from: i,
                        channel: ChannelKind::Workers(topic),
                        bytes,
                    },
                    i,
                    j,
                );
            }
        }
    }
}
