//! Gossip validation as a pure function.
//!
//! `(envelope bytes, channel, now, read-only view) → Accept | Ignore(reason) | Reject(reason)`.
//! Checks run cheapest first: size → decode → network and channel match → epoch window or
//! nonce range → registration and stake → uniqueness → signature → semantics.
//!
//! IGNORE means "maybe valid, but not now or not new" (stale, early, duplicate, unknown yet):
//! the message is dropped without penalising the peer that relayed it. REJECT means provably
//! invalid: the relaying peer is penalised by gossip scoring. This follows Ethereum's gossip
//! rules. Nothing is relayed before `Accept`.
//!
//! A second, different, validly signed message for a slot that already holds one is
//! `Ignore(Equivocation)` when it passes the semantic checks too (a NaN or empty second
//! bundle is rejected like any other); the caller keeps both as evidence (see
//! [`Verdict::Ignore`]).
//!
//! [`validate`] is the gossip entry point. Entries that reach a window another way (sync,
//! fetch, evidence) run the same steps after decoding through [`admit`], with
//! [`Arrival::Reconciled`] instead of the arrival-time check; [`window_timing`] is the one rule
//! for where a time falls relative to a submission window.

use crate::codec::{self, DecodeError};
use crate::envelope::{Envelope, MAX_ENVELOPE_SIZE};
use crate::ids::{Amount, Hash32, MessageId, NetworkId, TopicId};
use crate::keys::{KeyError, PublicKey};
use crate::messages::{Payload, PayloadClass, Role};
use crate::params::ModuleParams;
use crate::topic::TopicSpec;

mod reasons;
mod semantics;

pub use reasons::{IgnoreReason, RejectReason};

use semantics::{check_semantics, evidence_standing};

/// What a gossip channel carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChannelKind {
    /// Worker bundles of one topic.
    Workers(TopicId),
    /// Reputer loss bundles of one topic.
    Reputers(TopicId),
    /// Ledger messages (transfers, stakes, registrations, topics, governance, evidence).
    Ledger,
    /// Checkpoint consensus messages (validated by the consensus layer, not here).
    Consensus,
}

/// A gossip channel: a kind within a network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Channel {
    /// The network.
    pub network: NetworkId,
    /// What it carries.
    pub kind: ChannelKind,
}

impl Channel {
    /// The gossipsub topic name: `chorus/<network id hex>/<kind>`.
    pub fn name(&self) -> String {
        let kind = match self.kind {
            ChannelKind::Workers(t) => format!("topic/{}/workers", t.0),
            ChannelKind::Reputers(t) => format!("topic/{}/reputers", t.0),
            ChannelKind::Ledger => "ledger".to_string(),
            ChannelKind::Consensus => "consensus".to_string(),
        };
        format!("chorus/{}/{kind}", self.network.to_hex())
    }

    /// Parse a name made by [`Channel::name`].
    pub fn parse(name: &str) -> Option<Channel> {
        let rest = name.strip_prefix("chorus/")?;
        let (net, kind) = rest.split_once('/')?;
        let network: NetworkId = net.parse().ok()?;
        let kind = match kind {
            "ledger" => ChannelKind::Ledger,
            "consensus" => ChannelKind::Consensus,
            other => {
                let rest = other.strip_prefix("topic/")?;
                let (id, what) = rest.split_once('/')?;
                let id = TopicId(id.parse().ok()?);
                match what {
                    "workers" => ChannelKind::Workers(id),
                    "reputers" => ChannelKind::Reputers(id),
                    _ => return None,
                }
            }
        };
        Some(Channel { network, kind })
    }
}

/// The uniqueness key of a message: at most one message per slot counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Slot {
    /// One worker bundle per (topic, epoch, author).
    Worker {
        /// Topic.
        topic: TopicId,
        /// Epoch.
        epoch: u64,
        /// Author.
        author: PublicKey,
    },
    /// One reveal per (topic, epoch, author) in a commit-reveal topic (the commitment takes
    /// the [`Slot::Worker`] slot).
    Reveal {
        /// Topic.
        topic: TopicId,
        /// Epoch.
        epoch: u64,
        /// Author.
        author: PublicKey,
    },
    /// One reputer bundle per (topic, epoch, author).
    Reputer {
        /// Topic.
        topic: TopicId,
        /// Epoch.
        epoch: u64,
        /// Author.
        author: PublicKey,
    },
    /// One ledger message per (author, nonce).
    Ledger {
        /// Author.
        author: PublicKey,
        /// Nonce.
        nonce: u64,
    },
    /// One evidence message per (content, reporter): every peer that sees an equivocation may
    /// report it; the ledger acts on the content once.
    Evidence {
        /// blake3 over the two conflicting messages (in byte order).
        content: Hash32,
        /// The reporter.
        author: PublicKey,
    },
}

impl Slot {
    /// The slot of a payload signed by `author`.
    pub fn of(author: PublicKey, payload: &Payload) -> Slot {
        match payload {
            Payload::WorkerBundle(b) => Slot::Worker {
                topic: b.topic,
                epoch: b.epoch,
                author,
            },
            Payload::WorkerCommit(c) => Slot::Worker {
                topic: c.topic,
                epoch: c.epoch,
                author,
            },
            Payload::WorkerReveal(r) => Slot::Reveal {
                topic: r.bundle.topic,
                epoch: r.bundle.epoch,
                author,
            },
            Payload::ReputerBundle(b) => Slot::Reputer {
                topic: b.topic,
                epoch: b.epoch,
                author,
            },
            Payload::Evidence(e) => {
                let (a, b) = if e.first <= e.second {
                    (&e.first, &e.second)
                } else {
                    (&e.second, &e.first)
                };
                Slot::Evidence {
                    content: Hash32::of_parts("chorus/evidence/v1", &[a, b]),
                    author,
                }
            }
            other => Slot::Ledger {
                author,
                nonce: other.nonce().unwrap_or(0),
            },
        }
    }
}

/// Read-only state validation needs. The node implements it over its finalized state plus
/// what it has seen; tests implement it over fixed data.
pub trait ValidationView {
    /// This node's network.
    fn network(&self) -> NetworkId;
    /// Current module parameters.
    fn params(&self) -> &ModuleParams;
    /// A known topic.
    fn topic(&self, id: TopicId) -> Option<&TopicSpec>;
    /// `[open, close)` of the reputer window of `epoch` in `topic` (a state that knows when the
    /// epoch's worker window was finalized extends the close; `TopicState::reputer_window` in
    /// the ledger). The topic's nominal window by default.
    fn reputer_window(&self, topic: TopicId, epoch: u64) -> Option<(u64, u64)> {
        self.topic(topic).map(|s| s.reputer_window(epoch))
    }
    /// Whether `key` is registered for `role` in `topic`.
    fn is_registered(&self, topic: TopicId, role: Role, key: &PublicKey) -> bool;
    /// The reputer's stake authority in `topic` (own + delegated).
    fn reputer_stake(&self, topic: TopicId, key: &PublicKey) -> Amount;
    /// The id of the message already held for `slot`, if any.
    fn seen(&self, slot: &Slot) -> Option<MessageId>;
    /// The author's last finalized ledger nonce (0 if none).
    fn last_nonce(&self, author: &PublicKey) -> u64;
    /// What `key` holds in the finalized state.
    fn funds(&self, key: &PublicKey) -> Funds;
    /// Whether `evidence` of kind `ConsensusVote` proves a double vote (two validly signed
    /// consensus messages of one validator for one slot). The consensus layer decodes them;
    /// this crate does not know their encoding.
    fn consensus_evidence_ok(&self, evidence: &crate::messages::Evidence) -> bool;
    /// `key` decompressed for verification. Views that see the same signers often answer
    /// from a [`KeyCache`](crate::keys::KeyCache).
    fn verifying_key(&self, key: &PublicKey) -> Result<crate::keys::VerifyingKey, KeyError> {
        key.verifying_key()
    }
}

/// What an account holds, as the finalized state says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Funds {
    /// Spendable balance.
    pub liquid: Amount,
    /// Bonded, staked or delegated (not spendable, but the account is not empty).
    pub locked: Amount,
}

/// What a ledger message spends from its author's liquid balance when applied: the amount
/// moved, the fee paid. Messages that only release or vote spend nothing.
pub fn ledger_spend(payload: &Payload, params: &ModuleParams) -> Amount {
    match payload {
        Payload::Transfer(m) => m.amount,
        Payload::FundTopic(m) => m.amount,
        Payload::Stake(m) => m.amount,
        Payload::Bond(m) => m.amount,
        Payload::CreateTopic(m) => m.fee,
        Payload::Register(_) => params.registration_fee,
        Payload::Unregister(_)
        | Payload::Unstake(_)
        | Payload::Unbond(_)
        | Payload::Propose(_)
        | Payload::Vote(_)
        | Payload::SetOwner(_)
        | Payload::WorkerBundle(_)
        | Payload::WorkerCommit(_)
        | Payload::WorkerReveal(_)
        | Payload::ReputerBundle(_)
        | Payload::Evidence(_) => Amount::ZERO,
    }
}

/// Verify `envelope` for `view`'s network with the key `view` gives for its signer.
fn verify_in(envelope: &Envelope, view: &impl ValidationView) -> Result<(), KeyError> {
    envelope.verify_with(&view.network(), &view.verifying_key(&envelope.signer)?)
}

/// A message that passed every check.
#[derive(Clone, Debug, PartialEq)]
pub struct Accepted {
    /// Its id.
    pub id: MessageId,
    /// Its slot.
    pub slot: Slot,
    /// The envelope.
    pub envelope: Envelope,
    /// The decoded payload.
    pub payload: Payload,
}

/// The outcome of validation.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Valid: store, merge, relay.
    Accept(Box<Accepted>),
    /// Drop without penalty. For `Equivocation` the validly signed envelope is attached.
    Ignore(IgnoreReason, Option<Box<Envelope>>),
    /// Drop and penalise the relaying peer.
    Reject(RejectReason),
}

impl Verdict {
    /// `"accept"`, `"ignore"` or `"reject"`.
    pub fn outcome(&self) -> &'static str {
        match self {
            Verdict::Accept(_) => "accept",
            Verdict::Ignore(..) => "ignore",
            Verdict::Reject(_) => "reject",
        }
    }

    /// The reason name (`""` for accept).
    pub fn reason(&self) -> &'static str {
        match self {
            Verdict::Accept(_) => "",
            Verdict::Ignore(r, _) => r.as_str(),
            Verdict::Reject(r) => r.as_str(),
        }
    }
}

fn decode_reject(e: &DecodeError) -> RejectReason {
    match e {
        DecodeError::TooLarge { .. } => RejectReason::TooLarge,
        DecodeError::NonCanonical { .. } => RejectReason::NonCanonical,
        _ => RejectReason::Malformed,
    }
}

/// Where a time falls relative to a `[open, close)` submission window, with the clock-skew
/// allowance on both sides. The one timing rule: gossip validation judges arrivals with it and
/// the replica's window state is derived from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WindowTiming {
    /// Before `open − skew`.
    NotOpen,
    /// In `[open − skew, close + skew)`.
    Open,
    /// At or after `close + skew`.
    Closed,
}

/// The [`WindowTiming`] of `now_ms` for the window `(open, close)`.
pub fn window_timing((open, close): (u64, u64), now_ms: u64, skew_ms: u64) -> WindowTiming {
    if now_ms.saturating_add(skew_ms) < open {
        WindowTiming::NotOpen
    } else if now_ms >= close.saturating_add(skew_ms) {
        WindowTiming::Closed
    } else {
        WindowTiming::Open
    }
}

/// How the arrival time of an entry is judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrival {
    /// Gossip or a local publication at this time (ms): it must fall inside its window.
    Live(u64),
    /// Reconciliation (sync, fetch, evidence) at this time (ms): the caller established that
    /// the entry's window has opened and is not finalized. Only the entry is judged, not when
    /// it arrives: it may have been gossiped in time to the peer that passes it on. One
    /// exception: a commit-reveal topic's commitment is never admitted after its submission
    /// window (and the skew allowance) closed, since reveals may be seen by then and a late
    /// commitment could be a copy of one.
    Reconciled(u64),
    /// Fetched because a proposal or a decided checkpoint names the content of its window:
    /// judged as [`Arrival::Reconciled`], without the exception: a commitment the proposer
    /// held in time by its clock is taken, or the proposal could never be verified and
    /// finality would stall (a late commitment then needs a proposer that lets it in).
    Named,
}

/// Validate one gossip message. Pure: no clock (`now_ms` is given), no IO.
pub fn validate(
    bytes: &[u8],
    channel: &Channel,
    now_ms: u64,
    view: &impl ValidationView,
) -> Verdict {
    // 1. size, 2. decode
    let (envelope, payload) = match decode(bytes) {
        Ok(d) => d,
        Err(r) => return Verdict::Reject(r),
    };
    // 3. network and channel
    if channel.network != view.network() {
        return Verdict::Reject(RejectReason::WrongNetwork);
    }
    if !channel_carries(channel.kind, &payload) {
        return Verdict::Reject(RejectReason::WrongChannel);
    }
    admit(bytes, envelope, payload, Arrival::Live(now_ms), view)
}

/// Steps 1 and 2 of validation: size, then the envelope and its payload decode canonically.
pub fn decode(bytes: &[u8]) -> Result<(Envelope, Payload), RejectReason> {
    if bytes.len() > MAX_ENVELOPE_SIZE {
        return Err(RejectReason::TooLarge);
    }
    let envelope = Envelope::from_bytes(bytes).map_err(|e| decode_reject(&e))?;
    let payload: Payload = codec::decode(&envelope.payload).map_err(|e| decode_reject(&e))?;
    if envelope.payload.len() > payload.max_size() {
        return Err(RejectReason::TooLarge);
    }
    Ok((envelope, payload))
}

/// Whether a payload belongs on a gossip channel.
pub fn channel_carries(kind: ChannelKind, payload: &Payload) -> bool {
    match (payload, kind) {
        (Payload::ReputerBundle(b), ChannelKind::Reputers(t)) => b.topic == t,
        (Payload::ReputerBundle(_), _) => false,
        (p, kind) if p.class() == PayloadClass::Worker => {
            p.worker_epoch().map(|(t, _)| ChannelKind::Workers(t)) == Some(kind)
        }
        (_, kind) => kind == ChannelKind::Ledger,
    }
}

/// Steps 4 to 8 of validation for a decoded envelope (`bytes` are its canonical encoding):
/// timing or nonce range, registration and stake, uniqueness, signature, semantics. Every
/// path by which an entry reaches a window runs these checks; only `arrival` differs.
pub fn admit(
    bytes: &[u8],
    envelope: Envelope,
    payload: Payload,
    arrival: Arrival,
    view: &impl ValidationView,
) -> Verdict {
    use Verdict::{Ignore, Reject};
    let params = view.params();
    let author = envelope.signer;
    // 4. window or nonce range, 5. registration and stake
    if let Some(reason) = check_timing_and_standing(&payload, &author, arrival, view, params) {
        return reason;
    }
    // 6. uniqueness
    let slot = Slot::of(author, &payload);
    let id = Hash32::of(bytes);
    if let Some(held) = view.seen(&slot) {
        if held == id {
            return Ignore(IgnoreReason::Duplicate, None);
        }
        if verify_in(&envelope, view).is_err() {
            return Reject(RejectReason::BadSignature);
        }
        // A second message for a held slot is an equivocation only if it is valid itself: a
        // provably invalid one (a NaN, an empty bundle) is rejected like any other, never
        // kept as a conflict.
        if let Some(v) = check_semantics(&payload, &author, view, params) {
            return v;
        }
        return Ignore(IgnoreReason::Equivocation, Some(Box::new(envelope)));
    }
    // 7. signature
    if verify_in(&envelope, view).is_err() {
        return Reject(RejectReason::BadSignature);
    }
    // 8. semantics
    if let Some(v) = check_semantics(&payload, &author, view, params) {
        return v;
    }
    Verdict::Accept(Box::new(Accepted {
        id,
        slot,
        envelope,
        payload,
    }))
}

fn check_timing_and_standing(
    payload: &Payload,
    author: &PublicKey,
    arrival: Arrival,
    view: &impl ValidationView,
    params: &ModuleParams,
) -> Option<Verdict> {
    use Verdict::{Ignore, Reject};
    let in_window = |window: (u64, u64)| -> Option<Verdict> {
        let Arrival::Live(now_ms) = arrival else {
            return None;
        };
        match window_timing(window, now_ms, params.max_clock_skew_ms) {
            WindowTiming::NotOpen => Some(Ignore(IgnoreReason::TooEarly, None)),
            WindowTiming::Closed => Some(Ignore(IgnoreReason::TooLate, None)),
            WindowTiming::Open => None,
        }
    };
    match payload {
        Payload::WorkerBundle(_) | Payload::WorkerCommit(_) | Payload::WorkerReveal(_) => {
            let (topic, epoch) = payload.worker_epoch()?;
            let Some(spec) = view.topic(topic) else {
                return Some(Ignore(IgnoreReason::UnknownTopic, None));
            };
            // Commit-reveal topics take commitments in the submission window and reveals in
            // the reveal phase; the others take bundles in the submission window.
            let window = match (payload, spec.reveal_window(epoch)) {
                (Payload::WorkerBundle(_), None) | (Payload::WorkerCommit(_), Some(_)) => {
                    spec.submission_window(epoch)
                }
                (Payload::WorkerReveal(_), Some(reveal)) => reveal,
                _ => return Some(Ignore(IgnoreReason::WrongPhase, None)),
            };
            if let Some(v) = in_window(window) {
                return Some(v);
            }
            if let (Payload::WorkerCommit(_), Arrival::Reconciled(now_ms)) = (payload, arrival)
                && window_timing(window, now_ms, params.max_clock_skew_ms) == WindowTiming::Closed
            {
                return Some(Ignore(IgnoreReason::TooLate, None));
            }
            if !view.is_registered(topic, Role::Worker, author) {
                return Some(Ignore(IgnoreReason::NotRegistered, None));
            }
            None
        }
        Payload::ReputerBundle(b) => {
            let Some(window) = view.reputer_window(b.topic, b.epoch) else {
                return Some(Ignore(IgnoreReason::UnknownTopic, None));
            };
            if let Some(v) = in_window(window) {
                return Some(v);
            }
            if !view.is_registered(b.topic, Role::Reputer, author) {
                return Some(Ignore(IgnoreReason::NotRegistered, None));
            }
            if view.reputer_stake(b.topic, author) < params.required_minimum_stake {
                return Some(Ignore(IgnoreReason::InsufficientStake, None));
            }
            None
        }
        Payload::Evidence(e) => evidence_standing(e, view),
        other => {
            let nonce = other.nonce().unwrap_or(0);
            if nonce == 0 {
                return Some(Reject(RejectReason::ZeroNonce));
            }
            let last = view.last_nonce(author);
            if nonce <= last {
                return Some(Ignore(IgnoreReason::StaleNonce, None));
            }
            if nonce - last > params.max_nonce_gap {
                return Some(Ignore(IgnoreReason::NonceTooFarAhead, None));
            }
            let funds = view.funds(author);
            let spend = ledger_spend(other, params);
            let empty = funds.liquid == Amount::ZERO && funds.locked == Amount::ZERO;
            if funds.liquid < spend || empty {
                return Some(Ignore(IgnoreReason::CannotPay, None));
            }
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_names_round_trip() {
        let net = Hash32([7; 32]);
        for kind in [
            ChannelKind::Workers(TopicId(3)),
            ChannelKind::Reputers(TopicId(u64::MAX)),
            ChannelKind::Ledger,
            ChannelKind::Consensus,
        ] {
            let c = Channel { network: net, kind };
            assert_eq!(Channel::parse(&c.name()), Some(c));
        }
        assert_eq!(Channel::parse("chorus/zz/ledger"), None);
        assert_eq!(Channel::parse("other"), None);
    }

    #[test]
    fn reason_names_round_trip() {
        for r in [RejectReason::BadSignature, RejectReason::ZeroNonce] {
            assert_eq!(RejectReason::from_name(r.as_str()), Some(r));
        }
        assert_eq!(
            IgnoreReason::from_name("too_late"),
            Some(IgnoreReason::TooLate)
        );
    }
}
