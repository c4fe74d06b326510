//! The engine: one node's checkpoint consensus as a pure state machine.
//!
//! `Engine::handle(input, now_ms) -> Vec<Effect>`: inputs are messages from peers, fired
//! timers, the host's answers (a value to propose, a validity verdict) and validator-set
//! updates; effects are data the host carries out **in order** (WAL appends, sends, timers,
//! requests to the application, decisions, evidence). Inside, each input becomes one or more
//! Malachite inputs, run through Malachite's coroutine (`process!`); every effect Malachite
//! yields is answered synchronously by [`super::handler`] (signing, verification, WAL) and
//! turned into zero or more of our effects. Answers that need the application (proposing,
//! validating) leave as effects and come back later as inputs, because validation may need
//! to fetch window changes from the network.
//!
//! The engine never reads a clock (time comes in as `now_ms`), never draws randomness, and
//! does no IO.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use arc_malachitebft_core_consensus as mcons;
use arc_malachitebft_core_types as mtypes;
use chorus_protocol::keys::{Keypair, PublicKey};
use chorus_protocol::messages::Evidence;
use mcons::{LocallyProposedValue, Params, ProposedValue, State, ValuePayload};
use mtypes::{Round, Validity, ValueOrigin, VoteExtensionPolicy};

pub use super::config::{EngineConfig, StartSchedule, TimeoutConfig, TimerId, TimerKind};

use super::catchup::{CatchUpState, DecidedCheckpoint, DecidedStore, PeerId};
use super::context::{CheckpointContext, CheckpointHeight, ValidatorAddress};
use super::error::{EngineError, ShapeError};
use super::handler::{Core, FollowUp, HeightState};
use super::limits::{INPUT_QUEUE_CAPACITY, INPUT_QUEUE_PER_HEIGHT};
use super::messages::ConsensusMessage;
use super::validators::ValidatorSet;
use super::value::{Checkpoint, CheckpointId, CheckpointValue};
use super::wal::WalRecord;

pub(crate) type Ctx = CheckpointContext;
pub(crate) type MInput = mcons::Input<Ctx>;

/// What flows into the engine.
#[derive(Clone, Debug)]
pub enum Input {
    /// A consensus message from a peer (decoded with [`ConsensusMessage::decode`]).
    Message {
        /// Who sent it (the gossip propagation source, or the request-response peer).
        from: PeerId,
        /// The message.
        message: ConsensusMessage,
    },
    /// A timer the engine scheduled has fired.
    TimerFired(TimerId),
    /// The application's answer to [`Effect::NeedValue`].
    ProposeValue {
        /// Height asked for.
        height: u64,
        /// Round asked for.
        round: u32,
        /// The checkpoint to propose.
        checkpoint: Checkpoint,
    },
    /// The application's answer to [`Effect::ValidateCheckpoint`]: whether every referenced
    /// window change is held (or fetched) and the re-derived ledger root matches. Final per
    /// `(height, id)`.
    ValueValidity {
        /// Height of the checkpoint.
        height: u64,
        /// Its id.
        id: CheckpointId,
        /// The verdict.
        valid: bool,
    },
    /// The validator set in force from `from_height` on (until a later update). The ledger
    /// decides it; supply the set of height `h + 2` when checkpoint `h` is applied. A set
    /// takes effect when a height starts: one for the running height (or earlier) applies
    /// from the next height on.
    ValidatorSet {
        /// First height of the set.
        from_height: u64,
        /// The set.
        set: ValidatorSet,
    },
}

/// Why a peer's message was refused (feed to peer scoring).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Offence {
    /// Structurally invalid message.
    Malformed(ShapeError),
    /// A signature that does not verify.
    BadSignature,
    /// A catch-up response whose certificate or value does not check out.
    BadCatchUp,
    /// A certificate that does not verify whatever the validator set (a bad or duplicate
    /// signature, votes of the wrong kind or for another value).
    BadCertificate,
    /// A vote or proposal signed by a key outside the validator set of a height this node has
    /// reached (or a proposal by a validator that is not the round's proposer).
    NotAValidator,
    /// A catch-up request or response sent by gossip (they travel by request and response).
    NotGossip,
}

impl Offence {
    /// The reason code of a consensus message refused for it (metrics, logs).
    pub fn reason(&self) -> &'static str {
        match self {
            Offence::Malformed(_) => "malformed",
            Offence::BadSignature => "bad_signature",
            Offence::BadCatchUp => "bad_catch_up",
            Offence::BadCertificate => "bad_certificate",
            Offence::NotAValidator => "not_a_validator",
            Offence::NotGossip => "wrong_channel",
        }
    }
}

/// Why a checkpoint was refused before asking the application.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidCheckpoint {
    /// Structure.
    Shape(ShapeError),
    /// For another height than the one running.
    WrongHeight {
        /// Running height.
        expected: u64,
        /// The checkpoint's.
        got: u64,
    },
    /// `previous` is not the id of the checkpoint decided at the height before.
    WrongPrevious,
}

/// Something went wrong inside the engine (not a peer's fault). Report and alert.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EngineFault {
    /// Malachite returned an error while processing an input.
    ConsensusCore(String),
    /// No validator set known for the height to start; waiting for `Input::ValidatorSet`.
    NoValidatorSet(u64),
    /// The application proposed a checkpoint that fails our own checks.
    InvalidOwnProposal(InvalidCheckpoint),
    /// Malachite decided a value id we never saw (a bug).
    MissingDecidedValue(CheckpointId),
    /// Malachite asked to persist an input kind we do not persist (a bug).
    UnpersistableWalEntry,
    /// A certified checkpoint does not extend our decided chain: safety is broken (more than
    /// 1/3 of the stake equivocated) or our history is wrong.
    ForkedChain {
        /// Height of the certified checkpoint.
        height: u64,
    },
}

/// What flows out of the engine. Carry out in order (see `wal` for the persistence rule).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Append to the WAL durably before carrying out any later `Broadcast`/`SendTo`.
    WalAppend(WalRecord),
    /// Records of heights below this may be dropped (a `Decided` for the height before was
    /// emitted earlier and must be stored first).
    WalTruncate {
        /// Lowest height whose records must be kept.
        keep_from_height: u64,
    },
    /// Gossip to every peer (canonical bytes: [`ConsensusMessage::to_bytes`]).
    Broadcast(ConsensusMessage),
    /// Send to one peer (catch-up request/response).
    SendTo {
        /// The peer.
        peer: PeerId,
        /// The message.
        message: ConsensusMessage,
    },
    /// (Re)arm a timer; feed `Input::TimerFired(id)` at `at_ms`.
    ScheduleTimer {
        /// Timer id.
        id: TimerId,
        /// Deadline (same clock as `now_ms`).
        at_ms: u64,
    },
    /// Disarm one timer.
    CancelTimer(TimerId),
    /// Disarm every consensus timer of this engine (every kind except `TimerKind::CatchUp`).
    CancelAllTimers,
    /// We propose at `(height, round)`: answer with `Input::ProposeValue` before `deadline_ms`.
    NeedValue {
        /// Height.
        height: u64,
        /// Round.
        round: u32,
        /// When the propose timeout fires (a later answer is ignored).
        deadline_ms: u64,
    },
    /// Check a proposed checkpoint; answer with `Input::ValueValidity`.
    ValidateCheckpoint {
        /// Height.
        height: u64,
        /// Round it was proposed in.
        round: u32,
        /// The proposer.
        proposer: PublicKey,
        /// The checkpoint.
        checkpoint: Checkpoint,
    },
    /// A checkpoint is final. Store it durably (before acting on a later `WalTruncate`),
    /// apply it to the ledger.
    Decided(DecidedCheckpoint),
    /// Portable proof of equivocation; submit to the ledger.
    Evidence(Evidence),
    /// A peer sent something invalid.
    Misbehaviour {
        /// The peer.
        peer: PeerId,
        /// What it did.
        offence: Offence,
    },
    /// A peer asked for a height older than the in-memory history: answer from storage with
    /// `ConsensusMessage::CatchUpResponse` if available.
    CatchUpMiss {
        /// The peer.
        peer: PeerId,
        /// The height.
        height: u64,
    },
    /// An internal fault.
    Fault(EngineFault),
}

/// Counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Heights decided.
    pub decided: u64,
    /// Heights decided through catch-up.
    pub decided_via_catch_up: u64,
    /// Times the double-sign guard refused to sign a conflicting message.
    pub guard_refusals: u64,
    /// Evidence effects emitted.
    pub evidence: u64,
    /// Catch-up requests sent.
    pub catch_up_requests: u64,
    /// Catch-up responses sent.
    pub catch_up_served: u64,
    /// Proposals not validated because the pending table was full.
    pub dropped_validations: u64,
    /// Faults emitted.
    pub faults: u64,
}

/// What the host persisted, for [`Engine::restore`].
#[derive(Clone, Debug, Default)]
pub struct Persisted {
    /// Recent decided checkpoints, ascending and contiguous; the last is the tip. Empty at
    /// genesis.
    pub decided: Vec<DecidedCheckpoint>,
    /// The WAL (records of other heights than tip + 1 are ignored).
    pub wal: Vec<WalRecord>,
}

/// One node's checkpoint consensus.
pub struct Engine {
    consensus: State<Ctx>,
    pub(super) core: Core,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("me", &self.core.me)
            .field("height", &self.core.height)
            .field("round", &self.core.round)
            .finish()
    }
}

fn valset_for(valsets: &BTreeMap<u64, ValidatorSet>, height: u64) -> Option<ValidatorSet> {
    valset_ref(valsets, height).cloned()
}

/// The validator set in force at `height`: the newest that starts at or below it.
pub(super) fn valset_ref(
    valsets: &BTreeMap<u64, ValidatorSet>,
    height: u64,
) -> Option<&ValidatorSet> {
    valsets.range(..=height).next_back().map(|(_, s)| s)
}

fn malachite_peer(peer: &PeerId) -> Option<mcons::PeerId> {
    // An identity multihash of the 32-byte key (code 0x00, length 0x20).
    let mut bytes = Vec::with_capacity(34);
    bytes.extend_from_slice(&[0x00, 0x20]);
    bytes.extend_from_slice(peer.0.as_bytes());
    mcons::PeerId::from_bytes(&bytes).ok()
}

impl Engine {
    /// A fresh engine at height 1. `validator_sets` lists `(from_height, set)`; one must cover
    /// height 1. Returns the engine and its first effects (timers, maybe `NeedValue`).
    pub fn new(
        config: EngineConfig,
        keypair: Keypair,
        validator_sets: Vec<(u64, ValidatorSet)>,
        now_ms: u64,
    ) -> Result<(Engine, Vec<Effect>), EngineError> {
        Self::restore(
            config,
            keypair,
            validator_sets,
            Persisted::default(),
            now_ms,
        )
    }

    /// Rebuild a node from what it persisted: the decided history and the WAL. Resumes at
    /// the height after the last decided one, replays that height's WAL records through
    /// Malachite (re-using every message this node signed) and re-arms the double-sign
    /// guard, so a restarted validator never signs a conflicting vote or proposal.
    pub fn restore(
        config: EngineConfig,
        keypair: Keypair,
        validator_sets: Vec<(u64, ValidatorSet)>,
        persisted: Persisted,
        now_ms: u64,
    ) -> Result<(Engine, Vec<Effect>), EngineError> {
        config.validate()?;
        for (i, d) in persisted.decided.iter().enumerate() {
            let linked = match i.checked_sub(1).and_then(|j| persisted.decided.get(j)) {
                Some(prev) => {
                    d.height() == prev.height().saturating_add(1)
                        && d.checkpoint.previous == prev.id().0
                }
                None => d.height() > 1 || d.checkpoint.previous == config.genesis,
            };
            if !linked {
                return Err(EngineError::BrokenHistory(d.height()));
            }
        }
        let height = persisted
            .decided
            .last()
            .map_or(1, |d| d.height().saturating_add(1));
        let valsets: BTreeMap<u64, ValidatorSet> = validator_sets.into_iter().collect();
        let set = valset_for(&valsets, height).ok_or(EngineError::NoValidatorSet(height))?;
        let me = ValidatorAddress(keypair.public());
        let params = Params {
            address: me,
            threshold_params: Default::default(),
            value_payload: ValuePayload::ProposalAndParts,
            enabled: true,
        };
        let consensus = State::new(
            CheckpointContext,
            CheckpointHeight(height),
            set,
            params,
            INPUT_QUEUE_CAPACITY,
            INPUT_QUEUE_PER_HEIGHT,
        );
        let mut decided = DecidedStore::new(config.decided_retention);
        for d in persisted.decided {
            decided.insert(d);
        }
        let mut core = Core {
            config,
            keypair,
            me,
            now_ms,
            height,
            round: None,
            valsets,
            awaiting_valset: None,
            decided,
            effects: Vec::new(),
            follow_ups: VecDeque::new(),
            h: HeightState::new(),
            replay: None,
            current_peer: None,
            catch_up: CatchUpState::default(),
            stats: Stats::default(),
            pending_start: None,
        };
        let records: Vec<WalRecord> = persisted
            .wal
            .into_iter()
            .filter(|r| r.height == height)
            .collect();
        for r in &records {
            core.absorb_record(r);
        }
        let mut engine = Engine { consensus, core };
        engine.request_start(height, !records.is_empty());
        if !records.is_empty() {
            let inputs: Vec<MInput> = records.iter().map(WalRecord::to_input).collect();
            engine.consensus.index_wal_entries(inputs.iter());
            engine.core.replay = Some(
                records
                    .iter()
                    .map(WalRecord::digest)
                    .collect::<BTreeSet<_>>(),
            );
            for input in inputs {
                if engine.core.height != height {
                    break;
                }
                engine.run(input);
                engine.drain();
            }
            engine.end_replay();
        }
        engine.drain();
        let effects = std::mem::take(&mut engine.core.effects);
        Ok((engine, effects))
    }

    /// Handle one input at time `now_ms`; returns the effects to carry out in order.
    pub fn handle(&mut self, input: Input, now_ms: u64) -> Vec<Effect> {
        self.core.now_ms = now_ms;
        match input {
            Input::Message { from, message } => self.on_message(from, message),
            Input::TimerFired(id) if id.kind == TimerKind::Start => {
                if self.core.pending_start == Some(id.height) {
                    self.core.pending_start = None;
                    self.start_height(id.height, false);
                }
            }
            Input::TimerFired(id) => {
                if id.height == self.core.height {
                    match id.to_timeout() {
                        Some(timeout) => self.run(MInput::TimeoutElapsed(timeout)),
                        None => self.core.request_next(),
                    }
                }
            }
            Input::ProposeValue {
                height,
                round,
                checkpoint,
            } => self.on_propose_value(height, round, checkpoint),
            Input::ValueValidity { height, id, valid } => self.on_value_validity(height, id, valid),
            Input::ValidatorSet { from_height, set } => {
                self.core.valsets.insert(from_height, set);
                if let Some(h) = self.core.awaiting_valset
                    && self.valset_known(h)
                {
                    self.start_height(h, false);
                }
            }
        }
        self.drain();
        std::mem::take(&mut self.core.effects)
    }

    /// The height being decided.
    pub fn height(&self) -> u64 {
        self.core.height
    }

    /// The current round, if started.
    pub fn round(&self) -> Option<u32> {
        self.core.round
    }

    /// This node's key.
    pub fn public_key(&self) -> PublicKey {
        self.core.me.0
    }

    /// A retained decided checkpoint.
    pub fn decided(&self, height: u64) -> Option<&DecidedCheckpoint> {
        self.core.decided.get(height)
    }

    /// The last decided checkpoint.
    pub fn tip(&self) -> Option<&DecidedCheckpoint> {
        self.core.decided.tip()
    }

    /// Drop retained decided checkpoints below `height` (the tip stays).
    pub fn prune_decided_below(&mut self, height: u64) {
        self.core.decided.prune_below(height);
    }

    /// The validator set of the running height.
    pub fn validator_set(&self) -> &ValidatorSet {
        self.consensus.validator_set()
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.core.stats
    }

    /// Run one Malachite input through the coroutine, translating its effects.
    fn run(&mut self, input: MInput) {
        let Engine { consensus, core } = self;
        let result: Result<(), mcons::Error<Ctx>> = mcons::process!(
            input: input,
            state: consensus,
            metrics: &(),
            with: effect => core.on_effect(effect)
        );
        if let Err(e) = result {
            core.fault(EngineFault::ConsensusCore(e.to_string()));
        }
    }

    /// Process follow-up inputs queued by effect handlers.
    fn drain(&mut self) {
        while let Some(f) = self.core.follow_ups.pop_front() {
            self.core.current_peer = None;
            match f {
                FollowUp::Consensus(input) => self.run(input),
                // Only ever move forward: restarting a running height would reset Malachite's
                // and our double-sign state for it.
                FollowUp::StartHeight(h) if h > self.core.height => {
                    self.core.h = HeightState::new();
                    self.request_start(h, false);
                }
                FollowUp::StartHeight(_) => {}
            }
        }
    }

    fn end_replay(&mut self) {
        if self.core.replay.take().is_some() {
            self.consensus.reset_entries_index();
        }
    }

    /// Start `height` now, or at its scheduled time (a restart resumes at once).
    fn request_start(&mut self, height: u64, is_restart: bool) {
        if let Some(schedule) = self.core.config.start_schedule {
            let at = schedule.at(height);
            if !is_restart && at > self.core.now_ms {
                self.core.pending_start = Some(height);
                self.core.effects.push(Effect::ScheduleTimer {
                    id: TimerId {
                        height,
                        round: 0,
                        kind: TimerKind::Start,
                    },
                    at_ms: at,
                });
                return;
            }
        }
        self.core.pending_start = None;
        self.start_height(height, is_restart);
    }

    /// Whether the validator set of `height` is known: one was supplied at or below it, and
    /// with [`EngineConfig::await_each_set`] one was supplied for it or a later height.
    fn valset_known(&self, height: u64) -> bool {
        valset_ref(&self.core.valsets, height).is_some()
            && (!self.core.config.await_each_set
                || self
                    .core
                    .valsets
                    .keys()
                    .next_back()
                    .is_some_and(|&newest| newest >= height))
    }

    fn start_height(&mut self, height: u64, is_restart: bool) {
        let Some(set) = valset_for(&self.core.valsets, height) else {
            self.core.awaiting_valset = Some(height);
            self.core.fault(EngineFault::NoValidatorSet(height));
            return;
        };
        if !self.valset_known(height) {
            // Its own set comes when the height two below is applied: wait for it.
            self.core.awaiting_valset = Some(height);
            return;
        }
        self.core.awaiting_valset = None;
        if height != self.core.height {
            self.end_replay();
        }
        self.core.height = height;
        self.core.round = None;
        self.core.effects.push(Effect::WalTruncate {
            keep_from_height: height,
        });
        // Keep only the set in force at `height` and later ones.
        if let Some((&from, _)) = self.core.valsets.range(..=height).next_back() {
            self.core.valsets = self.core.valsets.split_off(&from);
        }
        self.run(MInput::StartHeight(
            CheckpointHeight(height),
            set,
            is_restart,
            None,
            VoteExtensionPolicy::Disabled,
        ));
        // Caught up one height but known to be further behind: ask for the next at once.
        if self
            .core
            .catch_up
            .highest_claim()
            .is_some_and(|ahead| ahead > height.saturating_add(1))
        {
            self.core.request_next();
        }
    }

    fn on_message(&mut self, from: PeerId, message: ConsensusMessage) {
        if let Err(e) = message.check_shape() {
            self.core.effects.push(Effect::Misbehaviour {
                peer: from,
                offence: Offence::Malformed(e),
            });
            return;
        }
        let height = message.height();
        let input = match message {
            ConsensusMessage::CatchUpRequest { height } => {
                self.core.serve(from, height);
                return;
            }
            ConsensusMessage::CatchUpResponse(d) => {
                self.on_catch_up_response(from, d);
                return;
            }
            ConsensusMessage::Vote(v) => MInput::Vote(v.to_malachite()),
            ConsensusMessage::Proposal(p) => MInput::Proposal(p.to_malachite()),
            ConsensusMessage::PolkaCertificate(c) => MInput::PolkaCertificate(c.to_malachite()),
            ConsensusMessage::RoundCertificate(c) => MInput::RoundCertificate(c.to_malachite()),
        };
        if height > self.core.height {
            self.core.on_ahead(from, height);
        }
        self.core.current_peer = Some(from);
        self.run(input);
        self.core.current_peer = None;
    }

    fn on_catch_up_response(&mut self, from: PeerId, decided: DecidedCheckpoint) {
        let height = decided.height();
        if height != self.core.height {
            if height > self.core.height {
                self.core.on_ahead(from, height);
            }
            return;
        }
        let Some(peer) = malachite_peer(&from) else {
            return;
        };
        let response = mtypes::ValueResponse::new(
            peer,
            bytes::Bytes::from(decided.checkpoint.to_bytes()),
            decided.certificate.to_malachite_extended(),
        );
        self.core.current_peer = Some(from);
        self.run(MInput::SyncValueResponse(response));
        self.core.current_peer = None;
    }

    fn on_propose_value(&mut self, height: u64, round: u32, checkpoint: Checkpoint) {
        if height != self.core.height {
            return;
        }
        let value = CheckpointValue::new(checkpoint);
        if let Err(reason) = self.core.precheck(&value) {
            self.core.fault(EngineFault::InvalidOwnProposal(reason));
            return;
        }
        self.core.h.values.insert(value.id(), value.clone());
        self.core.h.validity.insert(value.id(), true);
        self.run(MInput::Propose(LocallyProposedValue::new(
            CheckpointHeight(height),
            Round::new(round),
            value,
        )));
    }

    fn on_value_validity(&mut self, height: u64, id: CheckpointId, valid: bool) {
        if height != self.core.height {
            return;
        }
        let Some(pending) = self.core.h.pending.remove(&id) else {
            return;
        };
        let Some(value) = self.core.h.values.get(&id).cloned() else {
            return;
        };
        self.core.h.validity.insert(id, valid);
        self.run(MInput::ProposedValue(
            ProposedValue {
                height: CheckpointHeight(height),
                round: pending.round,
                valid_round: pending.pol_round,
                proposer: pending.proposer,
                value,
                validity: Validity::from_bool(valid),
            },
            ValueOrigin::Consensus,
        ));
    }
}
