//! The one admission function, path by path and refusal class by refusal class: gossip,
//! sync, fetch, evidence and certified (catch-up) windows all refuse the same entries for the
//! same reasons, and a peer that offers a provably invalid entry is penalised on every path.

#![allow(clippy::unwrap_used)]

use automerge::Automerge;
use automerge::sync::{self, SyncDoc};
use chorus_protocol::envelope::Envelope;
use chorus_protocol::ids::Hash32;
use chorus_protocol::keys::{Keypair, Signature};
use chorus_protocol::messages::{Evidence, EvidenceKind, Payload, WorkerBundle};
use chorus_protocol::validation::{ChannelKind, IgnoreReason, RejectReason};

use super::tests::{config, genesis, keys};
use super::wire::{InboundId, Request, Response};
use super::{Effect, Input, Offence, Outcome, Replica, Restore};
use crate::ledger::Ledger;
use crate::window::{WindowKey, entry_from_parts};

use super::tests::{LATE, LIVE, TOPIC, worker_window as window};

struct Fixture {
    replica: Replica,
    keys: Vec<Keypair>,
    network: Hash32,
}

fn fixture_with(ledger: Option<Ledger>) -> Fixture {
    let keys = keys(6);
    let g = genesis(&keys);
    let restore = Restore {
        ledger: ledger.map(|l| (0, l)),
        ..Restore::default()
    };
    let (replica, _) = Replica::new(&g, keys[5].clone(), config(), restore, LIVE).unwrap();
    Fixture {
        replica,
        keys,
        network: g.network_id(),
    }
}

fn fixture() -> Fixture {
    fixture_with(None)
}

impl Fixture {
    fn bundle(&self, author: &Keypair, epoch: u64, value: f64) -> Vec<u8> {
        let payload = Payload::WorkerBundle(WorkerBundle {
            topic: TOPIC,
            epoch,
            inference: Some(value),
            forecasts: vec![],
        });
        Envelope::seal(author, &self.network, &payload).to_bytes()
    }

    fn peer(&self) -> chorus_protocol::keys::PublicKey {
        self.keys[0].public()
    }

    fn holds(&self, epoch: u64, bytes: &[u8]) -> bool {
        let env = Envelope::from_bytes(bytes).unwrap();
        let payload = env.payload_unverified().unwrap();
        let Ok(entry) = entry_from_parts(&window(epoch), env, bytes.to_vec(), payload) else {
            return false;
        };
        self.replica
            .window(&window(epoch))
            .is_some_and(|w| w.contains(&entry.hash()))
    }

    fn gossip(&mut self, bytes: &[u8], now: u64) -> (Outcome, &'static str) {
        let effects = self.replica.handle(
            Input::Gossip {
                channel: ChannelKind::Workers(TOPIC),
                bytes: bytes.to_vec(),
                from: self.peer(),
            },
            now,
        );
        effects
            .iter()
            .find_map(|e| match e {
                Effect::Report {
                    outcome, reason, ..
                } => Some((*outcome, *reason)),
                _ => None,
            })
            .unwrap()
    }

    /// Offer `envelopes` by automerge sync for `epoch`'s window: the penalty, if any.
    fn sync(&mut self, epoch: u64, envelopes: &[&[u8]], now: u64) -> Option<Offence> {
        penalty(&self.sync_effects(epoch, envelopes, now))
    }

    /// Offer `envelopes` by automerge sync for `epoch`'s window: what the replica did.
    fn sync_effects(&mut self, epoch: u64, envelopes: &[&[u8]], now: u64) -> Vec<Effect> {
        let changes = envelopes
            .iter()
            .map(|b| {
                let env = Envelope::from_bytes(b).unwrap();
                let payload = env.payload_unverified().unwrap();
                let key = WindowKey::of(&payload, 0);
                let entry = entry_from_parts(&key, env, b.to_vec(), payload).unwrap();
                entry.change.raw_bytes().to_vec()
            })
            .collect::<Vec<_>>();
        let mut msg = Automerge::new()
            .generate_sync_message(&mut sync::State::new())
            .unwrap();
        msg.changes = sync::ChunkList::from(changes);
        self.replica.handle(
            Input::Request {
                from: self.peer(),
                id: InboundId(1),
                request: Request::Sync {
                    window: window(epoch),
                    message: msg.encode(),
                },
            },
            now,
        )
    }

    /// Offer `envelopes` as the answer to this replica's fetch of `epoch`'s window: the
    /// penalty, if any.
    fn fetch(&mut self, epoch: u64, envelopes: &[&[u8]], now: u64) -> Option<Offence> {
        let envelopes = envelopes.iter().map(|b| b.to_vec()).collect();
        penalty(&self.fetch_effects(window(epoch), envelopes, now))
    }

    /// Offer `envelopes` from [`Fixture::peer`] as the answer to this replica's fetch of
    /// `key`: the effects.
    fn fetch_effects(&mut self, key: WindowKey, envelopes: Vec<Vec<u8>>, now: u64) -> Vec<Effect> {
        let peer = self.peer();
        self.replica.handle(Input::PeerUp(peer), now);
        let mut asked = vec![];
        self.replica.fetch_window(key, Some(peer), now, &mut asked);
        let id = asked
            .iter()
            .find_map(|e| match e {
                Effect::Request {
                    id,
                    request: Request::WindowEntries(w),
                    ..
                } if *w == key => Some(*id),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no fetch: {asked:?}"));
        self.replica.handle(
            Input::Response {
                id,
                from: peer,
                response: Response::Envelopes(envelopes),
            },
            now,
        )
    }
}

fn penalty(effects: &[Effect]) -> Option<Offence> {
    effects.iter().find_map(|e| match e {
        Effect::Penalize { offence, .. } => Some(offence.clone()),
        _ => None,
    })
}

fn invalid(count: usize, reason: RejectReason) -> Option<Offence> {
    Some(Offence::InvalidEntries { count, reason })
}

fn stranger() -> Keypair {
    Keypair::from_seed(&[99; 32])
}

fn forged_signature(bytes: &[u8]) -> Vec<u8> {
    let mut env = Envelope::from_bytes(bytes).unwrap();
    env.signature = Signature([7; 64]);
    env.to_bytes()
}

/// What each path does with a bundle: the gossip verdict while epoch 2's window is open, and
/// the penalty sync and fetch of its window give after that window closed.
type Everywhere = ((Outcome, &'static str), Option<Offence>, Option<Offence>);

fn offer_everywhere(f: &mut Fixture, bytes: &[u8]) -> Everywhere {
    let epoch = match Envelope::from_bytes(bytes).and_then(|e| e.payload_unverified()) {
        Ok(Payload::WorkerBundle(b)) => b.epoch,
        _ => 2,
    };
    (
        f.gossip(bytes, LIVE),
        f.sync(epoch, &[bytes], LATE),
        f.fetch(epoch, &[bytes], LATE),
    )
}

#[test]
fn a_valid_entry_is_admitted_by_every_path() {
    let mut f = fixture();
    let a = f.bundle(&f.keys[0].clone(), 2, 1.0);
    assert_eq!(f.gossip(&a, LIVE), (Outcome::Accept, ""));
    let b = f.bundle(&f.keys[1].clone(), 2, 1.1);
    assert_eq!(f.sync(2, &[&b], LATE), None);
    let c = f.bundle(&f.keys[2].clone(), 2, 1.2);
    assert_eq!(f.fetch(2, &[&c], LATE), None);
    assert!(f.holds(2, &a) && f.holds(2, &b) && f.holds(2, &c));
}

#[test]
fn an_unregistered_author_is_ignored_on_every_path() {
    let mut f = fixture();
    let x = f.bundle(&stranger(), 2, 1.0);
    // Not provably invalid (it may be registered later): no penalty.
    let ignored = (Outcome::Ignore, IgnoreReason::NotRegistered.as_str());
    assert_eq!(offer_everywhere(&mut f, &x), (ignored, None, None));
    assert!(!f.holds(2, &x));
}

#[test]
fn a_non_finite_value_is_rejected_and_penalised_on_every_path() {
    let mut f = fixture();
    let w = f.keys[1].clone();
    let nan = f.bundle(&w, 2, f64::NAN);
    // By sync and by fetch after the window closed: the case that used to get through.
    let rejected = (Outcome::Reject, RejectReason::NonFinite.as_str());
    let penalty = invalid(1, RejectReason::NonFinite);
    assert_eq!(
        offer_everywhere(&mut f, &nan),
        (rejected, penalty.clone(), penalty)
    );
    assert!(!f.holds(2, &nan));
    // The author's slot stays free for its valid bundle.
    let ok = f.bundle(&w, 2, 1.0);
    assert_eq!(f.sync(2, &[&ok], LATE), None);
    assert!(f.holds(2, &ok));
}

#[test]
fn a_bad_signature_is_rejected_and_penalised_on_every_path() {
    let mut f = fixture();
    let forged = forged_signature(&f.bundle(&f.keys[1].clone(), 2, 1.0));
    let rejected = (Outcome::Reject, RejectReason::BadSignature.as_str());
    let penalty = invalid(1, RejectReason::BadSignature);
    assert_eq!(
        offer_everywhere(&mut f, &forged),
        (rejected, penalty.clone(), penalty)
    );
    assert!(!f.holds(2, &forged));
}

#[test]
fn an_entry_offered_for_another_window_is_rejected() {
    let mut f = fixture();
    let other_epoch = f.bundle(&f.keys[1].clone(), 1, 1.0);
    // Fetch names the window explicitly; sync carries changes of the window it names, so a
    // change of another window fails its shape check (counted the same way).
    assert_eq!(
        f.fetch(2, &[&other_epoch], LATE),
        invalid(1, RejectReason::WrongWindow)
    );
    assert_eq!(
        f.sync(2, &[&other_epoch], LATE),
        invalid(1, RejectReason::Malformed)
    );
    assert!(!f.holds(1, &other_epoch) && !f.holds(2, &other_epoch));
}

#[test]
fn a_window_that_has_not_opened_admits_nothing() {
    let mut f = fixture();
    let early = f.bundle(&f.keys[1].clone(), 40, 1.0);
    let ignored = (Outcome::Ignore, IgnoreReason::TooEarly.as_str());
    assert_eq!(offer_everywhere(&mut f, &early), (ignored, None, None));
    assert!(!f.holds(40, &early));
    assert!(f.replica.window(&window(40)).is_none_or(|w| w.is_empty()));
}

#[test]
fn a_finalized_window_admits_nothing() {
    let keys = keys(6);
    let mut ledger = Ledger::from_genesis(&genesis(&keys)).unwrap();
    ledger.topics.get_mut(&TOPIC).unwrap().next_worker_epoch = 3;
    let mut f = fixture_with(Some(ledger));
    let late = f.bundle(&f.keys[1].clone(), 2, 1.0);
    let ignored = (Outcome::Ignore, IgnoreReason::WindowFinalized.as_str());
    assert_eq!(offer_everywhere(&mut f, &late), (ignored, None, None));
    assert!(!f.holds(2, &late));
}

#[test]
fn a_certified_window_admits_exactly_its_certified_entries() {
    let mut f = fixture();
    // A decided checkpoint (not applied yet) fixes epoch 2's window to one entry, by an
    // author this ledger does not know as a worker: the certificate authenticates it.
    let certified = f.bundle(&stranger(), 2, 1.0);
    let other = f.bundle(&f.keys[1].clone(), 2, 1.1);
    let hash = |b: &[u8]| {
        let env = Envelope::from_bytes(b).unwrap();
        let p = env.payload_unverified().unwrap();
        entry_from_parts(&window(2), env, b.to_vec(), p)
            .unwrap()
            .hash()
    };
    f.replica.certified.insert(
        window(2).id(),
        super::Certified::Heads([hash(&certified)].into()),
    );
    assert_eq!(f.fetch(2, &[&other, &certified], LATE), None);
    assert!(f.holds(2, &certified));
    assert!(!f.holds(2, &other));
    assert_eq!(
        f.gossip(&other, LIVE),
        (Outcome::Ignore, IgnoreReason::NotCertified.as_str())
    );
}

#[test]
fn evidence_brings_only_admissible_bundles_into_their_window() {
    let mut f = fixture();
    let w = f.keys[1].clone();
    let first = f.bundle(&w, 2, 1.0);
    let second = f.bundle(&w, 2, 2.0);
    assert_eq!(f.gossip(&first, LIVE), (Outcome::Accept, ""));
    // Evidence of the worker's equivocation, reported by another node: both bundles end up
    // in the window (a visible conflict that excludes the worker).
    let evidence = Payload::Evidence(Evidence {
        kind: EvidenceKind::WorkerBundle,
        first: first.clone(),
        second: second.clone(),
    });
    let ev = Envelope::seal(&f.keys[2], &f.network, &evidence).to_bytes();
    let effects = f.replica.handle(
        Input::Gossip {
            channel: ChannelKind::Ledger,
            bytes: ev,
            from: f.peer(),
        },
        LIVE,
    );
    assert!(effects.iter().any(|e| matches!(
        e,
        Effect::Report {
            outcome: Outcome::Accept,
            ..
        }
    )));
    assert!(f.holds(2, &first) && f.holds(2, &second));
    // Evidence of an unregistered author's two bundles brings neither in.
    let s = stranger();
    let (x, y) = (f.bundle(&s, 2, 1.0), f.bundle(&s, 2, 2.0));
    let evidence = Payload::Evidence(Evidence {
        kind: EvidenceKind::WorkerBundle,
        first: x.clone(),
        second: y.clone(),
    });
    let ev = Envelope::seal(&f.keys[2], &f.network, &evidence).to_bytes();
    f.replica.handle(
        Input::Gossip {
            channel: ChannelKind::Ledger,
            bytes: ev,
            from: f.peer(),
        },
        LIVE,
    );
    assert!(!f.holds(2, &x) && !f.holds(2, &y));
}

#[test]
fn a_non_finite_second_bundle_for_a_held_slot_is_rejected_not_kept_as_a_conflict() {
    // A registered worker whose valid bundle is held sends a NaN bundle for the same slot:
    // a conflict is evidence only when both messages are valid. Found by `chorus-testbeds
    // junk`: the NaN was kept (and stored by every node) as a visible conflict.
    let mut f = fixture();
    let w = f.keys[1].clone();
    let first = f.bundle(&w, 2, 1.0);
    assert_eq!(f.gossip(&first, LIVE), (Outcome::Accept, ""));
    let nan = f.bundle(&w, 2, f64::NAN);
    let penalty = invalid(1, RejectReason::NonFinite);
    assert_eq!(f.sync(2, &[&nan], LATE), penalty.clone());
    assert_eq!(f.fetch(2, &[&nan], LATE), penalty);
    let mut g = fixture();
    assert_eq!(g.gossip(&first, LIVE), (Outcome::Accept, ""));
    assert_eq!(
        g.gossip(&nan, LIVE),
        (Outcome::Reject, RejectReason::NonFinite.as_str())
    );
    assert!(f.holds(2, &first) && !f.holds(2, &nan) && !g.holds(2, &nan));
}

#[test]
fn a_conflict_found_by_sync_is_kept_and_reported_once() {
    let mut f = fixture();
    let w = f.keys[1].clone();
    let first = f.bundle(&w, 2, 1.0);
    let second = f.bundle(&w, 2, 2.0);
    assert_eq!(f.gossip(&first, LIVE), (Outcome::Accept, ""));
    let effects = f.replica.handle(Input::Tick, LIVE);
    drop(effects);
    let evidence = |effects: &[Effect]| {
        effects
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    Effect::Broadcast {
                        channel: ChannelKind::Ledger,
                        ..
                    }
                )
            })
            .count()
    };
    let mut published = 0;
    for _ in 0..2 {
        published += evidence(&f.sync_effects(2, &[&second], LATE));
    }
    // Reported at this replica's turn among the reporters (at most 16 steps later).
    let turn = super::evidence::MAX_EVIDENCE_RANK * super::evidence::EVIDENCE_STEP_MS;
    published += evidence(&f.replica.handle(Input::Tick, LATE + turn));
    published += evidence(&f.replica.handle(Input::Tick, LATE + 2 * turn));
    assert!(f.holds(2, &first) && f.holds(2, &second));
    assert_eq!(published, 1, "one evidence message per offence");
}

#[test]
fn a_ledger_message_held_in_one_period_joins_another_a_peer_names() {
    // Peers place a ledger message in the period they received it in; a proposal may name it
    // in an earlier period's window than ours. Fetched there, the same message (judged when
    // we first admitted it) joins that window too, or the proposal could never be validated.
    let mut f = fixture();
    let payload = Payload::Transfer(chorus_protocol::messages::Transfer {
        nonce: 1,
        to: f.keys[1].public(),
        amount: chorus_protocol::ids::Amount(5),
    });
    let tx = Envelope::seal(&f.keys[0], &f.network, &payload).to_bytes();
    let effects = f.replica.handle(
        Input::Gossip {
            channel: ChannelKind::Ledger,
            bytes: tx.clone(),
            from: f.peer(),
        },
        LIVE,
    );
    assert!(effects.iter().any(|e| matches!(
        e,
        Effect::Report {
            outcome: Outcome::Accept,
            ..
        }
    )));
    let (ours, earlier) = (
        WindowKey::Ledger { period: 2 },
        WindowKey::Ledger { period: 1 },
    );
    let held_in = |f: &Fixture, key: WindowKey| {
        let env = Envelope::from_bytes(&tx).unwrap();
        let p = env.payload_unverified().unwrap();
        let hash = entry_from_parts(&key, env, tx.clone(), p).unwrap().hash();
        f.replica.window(&key).is_some_and(|w| w.contains(&hash))
    };
    assert!(held_in(&f, ours) && !held_in(&f, earlier));
    let effects = f.fetch_effects(earlier, vec![tx.clone()], LATE);
    assert_eq!(penalty(&effects), None);
    assert!(
        held_in(&f, earlier),
        "the same message joins the window the peer named"
    );
}

#[test]
fn a_reporters_two_evidence_messages_for_one_offence_join_a_window_a_peer_names() {
    // Twins (one key, two replicas) report one offence with the two bundles in different
    // orders: two messages for one evidence slot. Gossip keeps the first; a window a peer
    // names (a proposal may hold both) admits both, or the proposal could not be validated.
    let mut f = fixture();
    let w = f.keys[1].clone();
    let (x, y) = (f.bundle(&w, 2, 1.0), f.bundle(&w, 2, 2.0));
    let evidence = |first: &[u8], second: &[u8]| {
        let p = Payload::Evidence(Evidence {
            kind: EvidenceKind::WorkerBundle,
            first: first.to_vec(),
            second: second.to_vec(),
        });
        Envelope::seal(&f.keys[2], &f.network, &p).to_bytes()
    };
    let (ab, ba) = (evidence(&x, &y), evidence(&y, &x));
    let gossip = |f: &mut Fixture, bytes: &[u8]| {
        let effects = f.replica.handle(
            Input::Gossip {
                channel: ChannelKind::Ledger,
                bytes: bytes.to_vec(),
                from: f.peer(),
            },
            LIVE,
        );
        effects.iter().find_map(|e| match e {
            Effect::Report {
                outcome, reason, ..
            } => Some((*outcome, *reason)),
            _ => None,
        })
    };
    assert_eq!(gossip(&mut f, &ab), Some((Outcome::Accept, "")));
    assert_eq!(
        gossip(&mut f, &ba),
        Some((Outcome::Ignore, IgnoreReason::Equivocation.as_str()))
    );
    let period = WindowKey::Ledger { period: 2 };
    let holds = |f: &Fixture, bytes: &[u8]| {
        let env = Envelope::from_bytes(bytes).unwrap();
        let p = env.payload_unverified().unwrap();
        let hash = entry_from_parts(&period, env, bytes.to_vec(), p)
            .unwrap()
            .hash();
        f.replica.window(&period).is_some_and(|w| w.contains(&hash))
    };
    assert!(holds(&f, &ab) && !holds(&f, &ba));
    let effects = f.fetch_effects(period, vec![ab.clone(), ba.clone()], LATE);
    assert_eq!(penalty(&effects), None);
    assert!(holds(&f, &ab) && holds(&f, &ba));
    // No evidence about evidence is published.
    assert!(
        !effects
            .iter()
            .any(|e| matches!(e, Effect::Broadcast { .. }))
    );
}

/// Consensus gossip is screened before it is reported: a validator's vote is accepted (and so
/// relayed), garbage and a forged signature are rejected with their sender penalised, and
/// nothing is blamed for a height this node cannot judge.
#[test]
fn consensus_gossip_is_relayed_only_when_it_verifies() {
    use arc_malachitebft_core_types::{NilOrVal, Round, VoteType};

    use crate::checkpoint::context::{CheckpointHeight, ValidatorAddress, Vote};
    use crate::checkpoint::messages::VoteMessage;
    use crate::checkpoint::signing::sign_vote;
    use crate::checkpoint::{ConsensusMessage, Offence as EngineOffence};

    let mut f = fixture();
    let vote = |height: u64, forge: bool| {
        let vote = Vote {
            height: CheckpointHeight(height),
            round: Round::new(0),
            kind: VoteType::Prevote,
            value: NilOrVal::Nil,
            validator: ValidatorAddress(f.keys[1].public()),
        };
        let mut signature = sign_vote(&f.keys[1], &f.network, &vote);
        if forge {
            signature.0[3] ^= 1;
        }
        ConsensusMessage::Vote(VoteMessage { vote, signature }).to_bytes()
    };
    let (valid, forged, ahead) = (vote(1, false), vote(1, true), vote(9, true));
    let mut send = |bytes: Vec<u8>| {
        let effects = f.replica.handle(
            Input::Gossip {
                channel: ChannelKind::Consensus,
                bytes,
                from: f.keys[0].public(),
            },
            LIVE,
        );
        let report = effects
            .iter()
            .find_map(|e| match e {
                Effect::Report {
                    outcome, reason, ..
                } => Some((*outcome, *reason)),
                _ => None,
            })
            .expect("every consensus message is reported");
        let penalties: Vec<Offence> = effects
            .into_iter()
            .filter_map(|e| match e {
                Effect::Penalize { offence, .. } => Some(offence),
                _ => None,
            })
            .collect();
        (report, penalties)
    };
    assert_eq!(send(valid), ((Outcome::Accept, ""), vec![]));
    assert_eq!(
        send(forged),
        (
            (Outcome::Reject, "bad_signature"),
            vec![Offence::Consensus(EngineOffence::BadSignature)]
        )
    );
    let (report, penalties) = send(vec![0xff; 40]);
    assert_eq!(report, (Outcome::Reject, "malformed"));
    assert!(matches!(penalties[..], [Offence::MalformedConsensus(_)]));
    assert_eq!(send(ahead), ((Outcome::Ignore, "height_ahead"), vec![]));
}

/// Commit-reveal (epoch 2: commitments in `[1 002 000, 1 002 500)`, reveals in
/// `[1 002 500, 1 002 800)`, skew 100): sync admits a commitment only until the submission
/// window (and the skew) closed, whatever the peer says, since by then reveals can be seen and
/// a late commitment could copy one. A fetch (asked because a proposal or a decided
/// checkpoint names the window's content) takes it: refusing it left proposals unverifiable
/// and stalled finality (the devnet on the wall clock stalled at height 15). Reveals are
/// reconciled as usual; a plain bundle is not taken by any path.
#[test]
fn a_late_commitment_is_refused_by_sync_and_taken_when_a_proposal_names_it() {
    use chorus_protocol::messages::{WorkerCommit, WorkerReveal, commitment_of};
    let keys = keys(6);
    let mut g = genesis(&keys);
    g.topics[0].spec.reveal_window_ms = 300;
    let (replica, _) =
        Replica::new(&g, keys[5].clone(), config(), Restore::default(), LIVE).unwrap();
    let mut f = Fixture {
        replica,
        keys,
        network: g.network_id(),
    };
    let bundle = |value| WorkerBundle {
        topic: TOPIC,
        epoch: 2,
        inference: Some(value),
        forecasts: vec![],
    };
    let salt = Hash32([3; 32]);
    let seal = |f: &Fixture, author: usize, payload: Payload| {
        Envelope::seal(&f.keys[author], &f.network, &payload).to_bytes()
    };
    let commit = |f: &Fixture, author: usize, value| {
        let payload = Payload::WorkerCommit(WorkerCommit {
            topic: TOPIC,
            epoch: 2,
            commitment: commitment_of(&bundle(value), &salt),
        });
        seal(f, author, payload)
    };
    let reveal = |f: &Fixture, author: usize, value| {
        let payload = Payload::WorkerReveal(WorkerReveal {
            bundle: bundle(value),
            salt,
        });
        seal(f, author, payload)
    };
    let in_time = commit(&f, 0, 1.0);
    assert_eq!(f.sync(2, &[&in_time], LIVE), None);
    assert!(f.holds(2, &in_time));
    // After the submission window and the skew: refused by sync and fetch, not penalised (it
    // may have been gossiped in time to the peer).
    let after_close = 1_002_600;
    let late = commit(&f, 1, 2.0);
    assert_eq!(f.sync(2, &[&late], after_close), None);
    assert!(!f.holds(2, &late));
    assert_eq!(f.fetch(2, &[&late], after_close), None);
    assert!(f.holds(2, &late), "a fetched commitment a proposal names");
    // Still inside the skew allowance: taken.
    let just = commit(&f, 2, 3.0);
    assert_eq!(f.sync(2, &[&just], after_close - 1), None);
    assert!(f.holds(2, &just));
    // Reveals are reconciled in the reveal phase and after it, until the window is finalized.
    let opened = reveal(&f, 0, 1.0);
    assert_eq!(f.sync(2, &[&opened], 1_002_850), None);
    assert!(f.holds(2, &opened));
    // A plain bundle belongs to no path of a commit-reveal topic.
    let plain = f.bundle(&f.keys[4], 2, 4.0);
    assert_eq!(
        f.gossip(&plain, LIVE),
        (Outcome::Ignore, IgnoreReason::WrongPhase.as_str())
    );
    assert_eq!(f.sync(2, &[&plain], LIVE), None);
    assert!(!f.holds(2, &plain));
}
