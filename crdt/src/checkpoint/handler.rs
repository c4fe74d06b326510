//! Answers to Malachite's effects: the synchronous half of the adapter.
//!
//! Malachite yields an effect and waits for a typed resume value. Signing, signature and
//! certificate checks, and WAL records are answered here on the spot (they need no IO: the
//! WAL record leaves as an effect the host must persist before later sends). Everything that
//! needs the application leaves as an effect; its answer comes back later as an input.
//! Inputs that Malachite must see next (a synced value, an invalid verdict, the next height)
//! are queued as follow-ups and run after the current input completes, because Malachite's
//! state is borrowed while it runs.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use arc_malachitebft_core_consensus as mcons;
use arc_malachitebft_core_types as mtypes;
use chorus_protocol::codec;
use chorus_protocol::ids::Hash32;
use chorus_protocol::keys::Keypair;
use mcons::{
    ConsensusMsg, Effect as MEffect, LivenessMsg, ProposedValue, Resumable, Resume,
    SignedConsensusMsg,
};
use mtypes::{Round, Validity, ValueOrigin, VoteType};

use super::catchup::{CatchUpState, DecidedStore, Lag, PeerId};
use super::certificate::{
    CommitCertificate, PolkaCertificate, RoundCertificate, VoteCertificate, to_malachite_error,
};
use super::context::{CheckpointHeight, Proposal, ValidatorAddress};
use super::engine::{
    Ctx, Effect, EngineConfig, EngineFault, InvalidCheckpoint, MInput, Offence, Stats, TimerId,
    TimerKind,
};
use super::evidence::{EquivocationDetector, Step};
use super::limits::{MAX_PENDING_VALIDATIONS, MAX_TRACKED_SIGNATURES};
use super::messages::{ConsensusMessage, ProposalMessage, VoteMessage};
use super::signing::{
    SignatureCache, proposal_sign_bytes, sign_proposal, sign_vote, vote_sign_bytes,
};
use super::validators::ValidatorSet;
use super::value::{Checkpoint, CheckpointId, CheckpointValue};
use super::wal::{WalEntry, WalRecord};

/// An input to run after the current one.
pub(crate) enum FollowUp {
    /// Feed Malachite.
    Consensus(MInput),
    /// Start this height (after a decision).
    StartHeight(u64),
}

/// A proposal waiting for the application's verdict.
pub(crate) struct Pending {
    pub(crate) round: Round,
    pub(crate) pol_round: Round,
    pub(crate) proposer: ValidatorAddress,
}

/// Everything the adapter keeps for the running height.
pub(crate) struct HeightState {
    /// Every checkpoint seen at this height (proposals, own, synced), by id.
    pub(crate) values: BTreeMap<CheckpointId, CheckpointValue>,
    /// Verdicts already fed to Malachite.
    pub(crate) validity: BTreeMap<CheckpointId, bool>,
    /// Proposals waiting for a verdict.
    pub(crate) pending: BTreeMap<CheckpointId, Pending>,
    /// Double-sign guard: what this node signed per `(round, step)`.
    pub(crate) signed: BTreeMap<(u32, Step), ConsensusMessage>,
    /// Digests of own signed messages known to be in the WAL.
    pub(crate) persisted_own: BTreeSet<Hash32>,
    /// Conflict detection over verified messages.
    pub(crate) detector: EquivocationDetector,
    /// Signatures verified at this height.
    pub(crate) sig_cache: SignatureCache,
    /// Precommit signers per `(round, id)`, to notice a commit quorum for a checkpoint we
    /// never received (its proposal was lost or withheld).
    pub(crate) precommits:
        BTreeMap<(u32, CheckpointId), BTreeSet<chorus_protocol::keys::PublicKey>>,
    precommit_entries: usize,
}

impl HeightState {
    pub(crate) fn new() -> Self {
        HeightState {
            values: BTreeMap::new(),
            validity: BTreeMap::new(),
            pending: BTreeMap::new(),
            signed: BTreeMap::new(),
            persisted_own: BTreeSet::new(),
            detector: EquivocationDetector::default(),
            sig_cache: SignatureCache::new(MAX_TRACKED_SIGNATURES),
            precommits: BTreeMap::new(),
            precommit_entries: 0,
        }
    }
}

/// The adapter's state besides Malachite's.
pub(crate) struct Core {
    pub(crate) config: EngineConfig,
    pub(crate) keypair: Keypair,
    pub(crate) me: ValidatorAddress,
    pub(crate) now_ms: u64,
    pub(crate) height: u64,
    pub(crate) round: Option<u32>,
    pub(crate) valsets: BTreeMap<u64, ValidatorSet>,
    pub(crate) awaiting_valset: Option<u64>,
    pub(crate) decided: DecidedStore,
    pub(crate) effects: Vec<Effect>,
    pub(crate) follow_ups: VecDeque<FollowUp>,
    pub(crate) h: HeightState,
    /// During WAL replay: digests of the records being replayed (not appended again).
    pub(crate) replay: Option<BTreeSet<Hash32>>,
    /// The peer whose message is being processed (for penalties).
    pub(crate) current_peer: Option<PeerId>,
    pub(crate) catch_up: CatchUpState,
    pub(crate) stats: Stats,
    /// A height waiting for its scheduled start.
    pub(crate) pending_start: Option<u64>,
}

/// Handler errors are only logged by Malachite's `process!`; ours never fail.
#[derive(Debug)]
pub(crate) enum Never {}

fn step_of(kind: VoteType) -> Step {
    match kind {
        VoteType::Prevote => Step::Prevote,
        VoteType::Precommit => Step::Precommit,
    }
}

fn own_digest(msg: &ConsensusMessage) -> Hash32 {
    Hash32::of(&msg.to_bytes())
}

impl Core {
    pub(crate) fn fault(&mut self, fault: EngineFault) {
        self.stats.faults += 1;
        self.effects.push(Effect::Fault(fault));
    }

    fn penalize(&mut self, offence: Offence) {
        if let Some(peer) = self.current_peer {
            if offence == Offence::BadCatchUp {
                self.catch_up.forget(&peer);
            }
            self.effects.push(Effect::Misbehaviour { peer, offence });
        }
    }

    /// Learn from a WAL record before replaying it: own signatures re-arm the guard, values
    /// and verdicts are remembered so they are not asked for again.
    pub(crate) fn absorb_record(&mut self, record: &WalRecord) {
        match &record.entry {
            WalEntry::Vote(v) if v.vote.validator == self.me => {
                let msg = ConsensusMessage::Vote(v.clone());
                self.h.persisted_own.insert(own_digest(&msg));
                let key = (v.vote.round.as_u32().unwrap_or(0), step_of(v.vote.kind));
                self.h.signed.entry(key).or_insert(msg);
            }
            WalEntry::Proposal(p) => {
                let value = p.proposal.value.clone();
                self.h.values.insert(value.id(), value);
                if p.proposal.proposer == self.me {
                    let msg = ConsensusMessage::Proposal(p.clone());
                    self.h.persisted_own.insert(own_digest(&msg));
                    let key = (p.proposal.round.as_u32().unwrap_or(0), Step::Proposal);
                    self.h.signed.entry(key).or_insert(msg);
                }
            }
            WalEntry::ProposedValue { value, valid, .. } => {
                self.h.values.insert(value.id(), value.clone());
                self.h.validity.insert(value.id(), *valid);
            }
            _ => {}
        }
    }

    fn expected_previous(&self) -> Option<Hash32> {
        if self.height == 1 {
            return Some(self.config.genesis);
        }
        self.decided.get(self.height - 1).map(|d| d.id().0)
    }

    /// Checks we make before asking the application: structure, height, `previous`.
    pub(crate) fn precheck(&self, value: &CheckpointValue) -> Result<(), InvalidCheckpoint> {
        let cp = value.checkpoint();
        cp.check_shape().map_err(InvalidCheckpoint::Shape)?;
        if cp.height != self.height {
            return Err(InvalidCheckpoint::WrongHeight {
                expected: self.height,
                got: cp.height,
            });
        }
        if let Some(previous) = self.expected_previous()
            && cp.previous != previous
        {
            return Err(InvalidCheckpoint::WrongPrevious);
        }
        Ok(())
    }

    /// Ask the application about a verified proposal of another validator (once per id).
    fn request_validation(&mut self, p: &Proposal) {
        let id = p.value.id();
        if p.height.0 != self.height
            || self.h.validity.contains_key(&id)
            || self.h.pending.contains_key(&id)
        {
            return;
        }
        let proposed = |validity| ProposedValue {
            height: p.height,
            round: p.round,
            valid_round: p.pol_round,
            proposer: p.proposer,
            value: p.value.clone(),
            validity,
        };
        self.h.values.insert(id, p.value.clone());
        if self.precheck(&p.value).is_err() {
            self.h.validity.insert(id, false);
            self.follow_ups
                .push_back(FollowUp::Consensus(MInput::ProposedValue(
                    proposed(Validity::Invalid),
                    ValueOrigin::Consensus,
                )));
            return;
        }
        if self.h.pending.len() >= MAX_PENDING_VALIDATIONS {
            self.stats.dropped_validations += 1;
            return;
        }
        self.h.pending.insert(
            id,
            Pending {
                round: p.round,
                pol_round: p.pol_round,
                proposer: p.proposer,
            },
        );
        self.effects.push(Effect::ValidateCheckpoint {
            height: self.height,
            round: p.round.as_u32().unwrap_or(0),
            proposer: p.proposer.0,
            checkpoint: p.value.checkpoint().clone(),
        });
    }

    /// A signed message passed its signature check.
    fn on_verified(&mut self, msg: &ConsensusMessage) {
        if let Some(evidence) = self.h.detector.observe(msg) {
            self.stats.evidence += 1;
            self.effects.push(Effect::Evidence(evidence));
        }
        match msg {
            ConsensusMessage::Proposal(p) if p.proposal.proposer != self.me => {
                self.request_validation(&p.proposal);
            }
            ConsensusMessage::Vote(v) => self.count_precommit(&v.vote),
            _ => {}
        }
    }

    /// A commit quorum for a checkpoint we do not have means we missed its proposal: the
    /// signers have decided (or will), so ask one of them for catch-up.
    fn count_precommit(&mut self, vote: &super::context::Vote) {
        let (VoteType::Precommit, mtypes::NilOrVal::Val(id), Some(round)) =
            (vote.kind, vote.value, vote.round.as_u32())
        else {
            return;
        };
        if vote.height.0 != self.height
            || self.h.values.contains_key(&id)
            || self.h.precommit_entries >= MAX_TRACKED_SIGNATURES
        {
            return;
        }
        let signer = vote.validator.0;
        let signers = self.h.precommits.entry((round, id)).or_default();
        if !signers.insert(signer) {
            return;
        }
        self.h.precommit_entries += 1;
        let Some(set) = self
            .valsets
            .range(..=self.height)
            .next_back()
            .map(|(_, s)| s)
        else {
            return;
        };
        let power = signers
            .iter()
            .fold(0u64, |acc, k| acc.saturating_add(set.power_of(k)));
        if set.is_quorum(power) {
            let peer = PeerId(signer);
            self.catch_up
                .note_height(peer, self.height.saturating_add(1));
            self.maybe_request(peer);
        }
    }

    /// Make sure one of our own signed messages is in the WAL before it leaves.
    fn ensure_persisted(&mut self, msg: &ConsensusMessage) {
        let (signer, height, entry) = match msg {
            ConsensusMessage::Vote(v) => {
                (v.vote.validator, v.vote.height.0, WalEntry::Vote(v.clone()))
            }
            ConsensusMessage::Proposal(p) => (
                p.proposal.proposer,
                p.proposal.height.0,
                WalEntry::Proposal(p.clone()),
            ),
            _ => return,
        };
        if signer != self.me || !self.h.persisted_own.insert(own_digest(msg)) {
            return;
        }
        self.append_wal(WalRecord { height, entry });
    }

    /// Ask the host to append `record`, unless it is one being replayed from the WAL.
    fn append_wal(&mut self, record: WalRecord) {
        if self
            .replay
            .as_ref()
            .is_some_and(|r| r.contains(&record.digest()))
        {
            return;
        }
        self.effects.push(Effect::WalAppend(record));
    }

    fn broadcast_own(&mut self, msg: ConsensusMessage) {
        self.ensure_persisted(&msg);
        self.effects.push(Effect::Broadcast(msg));
    }

    /// A message from `peer` is for `height`, above ours: ask for catch-up if we lag.
    pub(crate) fn on_ahead(&mut self, peer: PeerId, height: u64) {
        self.catch_up.note_height(peer, height);
        match self.catch_up.classify(
            self.height,
            height,
            self.now_ms,
            self.config.catch_up_grace_ms,
        ) {
            Lag::Lagging => self.request_next(),
            Lag::GraceStarted(at_ms) => self.effects.push(Effect::ScheduleTimer {
                id: self.catch_up_timer(),
                at_ms,
            }),
            Lag::Waiting => {}
        }
    }

    fn catch_up_timer(&self) -> TimerId {
        TimerId {
            height: self.height,
            round: 0,
            kind: TimerKind::CatchUp,
        }
    }

    /// Still behind (the catch-up timer fired, or a message showed it): ask the next peer that
    /// claims to be ahead, if a request is due. Rotating, so a peer that claims what it cannot
    /// serve does not pin catch-up.
    pub(crate) fn request_next(&mut self) {
        if self
            .catch_up
            .due(self.height, self.now_ms, self.config.catch_up_retry_ms)
            && let Some(peer) = self.catch_up.next_peer(self.height)
        {
            self.maybe_request(peer);
        }
    }

    /// Ask `peer` for the running height's decision, rate-limited; re-check after the retry
    /// interval.
    pub(crate) fn maybe_request(&mut self, peer: PeerId) {
        if self
            .catch_up
            .should_request(self.height, self.now_ms, self.config.catch_up_retry_ms)
        {
            self.stats.catch_up_requests += 1;
            self.effects.push(Effect::SendTo {
                peer,
                message: ConsensusMessage::CatchUpRequest {
                    height: self.height,
                },
            });
            self.effects.push(Effect::ScheduleTimer {
                id: self.catch_up_timer(),
                at_ms: self.now_ms.saturating_add(self.config.catch_up_retry_ms),
            });
        }
    }

    /// Answer a catch-up request for `height` (rate-limited per peer and height; heights
    /// older than the in-memory history go to the host as `CatchUpMiss`).
    pub(crate) fn serve(&mut self, peer: PeerId, height: u64) {
        if height >= self.height
            || !self
                .catch_up
                .should_serve(peer, height, self.now_ms, self.config.catch_up_retry_ms)
        {
            return;
        }
        match self.decided.get(height) {
            Some(d) => {
                let message = ConsensusMessage::CatchUpResponse(d.clone());
                self.stats.catch_up_served += 1;
                self.effects.push(Effect::SendTo { peer, message });
            }
            None => self.effects.push(Effect::CatchUpMiss { peer, height }),
        }
    }

    fn timer(&mut self, timeout: &mtypes::Timeout) -> Option<TimerId> {
        TimerId::of(self.height, timeout)
    }

    /// Translate one Malachite effect; returns the resume value.
    pub(crate) fn on_effect(&mut self, effect: MEffect<Ctx>) -> Result<Resume<Ctx>, Never> {
        Ok(match effect {
            // Timers.
            MEffect::CancelAllTimeouts(r) => {
                self.effects.push(Effect::CancelAllTimers);
                r.resume_with(())
            }
            MEffect::CancelTimeout(t, r) => {
                self.cancel_timer(&t);
                r.resume_with(())
            }
            MEffect::ScheduleTimeout(t, r) => {
                self.schedule_timer(&t);
                r.resume_with(())
            }
            // Rounds, values and decisions.
            MEffect::StartRound(_, round, _, _, r) => {
                self.round = round.as_u32();
                r.resume_with(())
            }
            MEffect::GetValue(height, round, _timeout, r) => {
                self.need_value(height, round);
                r.resume_with(())
            }
            // The whole value travels inside the proposal, which Malachite re-publishes
            // itself right after this effect.
            MEffect::RestreamProposal(.., r) => r.resume_with(()),
            MEffect::CertVerifiedSyncValue(response, proposer, r) => {
                self.on_synced_value(&response, proposer);
                r.resume_with(())
            }
            MEffect::CertRejectedSyncValue(_, _, _, r) => {
                self.penalize(Offence::BadCatchUp);
                r.resume_with(())
            }
            MEffect::Decide(certificate, _extensions, r) => {
                self.on_decide(&certificate);
                r.resume_with(())
            }
            MEffect::Finalize(certificate, _, _, r) => {
                self.follow_ups.push_back(FollowUp::StartHeight(
                    certificate.height.0.saturating_add(1),
                ));
                r.resume_with(())
            }
            MEffect::WalAppend(height, input, r) => {
                self.on_wal_append(height, &input);
                r.resume_with(())
            }
            // Publishing.
            MEffect::PublishConsensusMsg(msg, r) => {
                self.publish(msg);
                r.resume_with(())
            }
            MEffect::PublishLivenessMsg(msg, r) => {
                self.publish_liveness(msg);
                r.resume_with(())
            }
            MEffect::RepublishVote(v, r) => {
                self.broadcast_own(ConsensusMessage::Vote(VoteMessage::from_malachite(&v)));
                r.resume_with(())
            }
            MEffect::RepublishRoundCertificate(c, r) => {
                self.broadcast_round_certificate(&c);
                r.resume_with(())
            }
            // Signing and verification.
            MEffect::SignVote(vote, r) => r.resume_with(self.sign_vote(vote)),
            MEffect::SignProposal(proposal, r) => r.resume_with(self.sign_proposal(proposal)),
            MEffect::VerifySignature(signed, key, r) => {
                r.resume_with(self.verify_signature(signed, &key))
            }
            MEffect::VerifyCommitCertificate(certificate, set, _, r) => {
                let c = CommitCertificate::from_malachite(&certificate);
                r.resume_with(self.verify_certificate(c.as_ref(), &set))
            }
            MEffect::VerifyExtendedCommitCertificate(certificate, set, _, _, r) => {
                let result = if let Some(s) = certificate
                    .commit_signatures
                    .iter()
                    .find(|s| s.extension.is_some())
                {
                    Err(mtypes::CertificateError::UnexpectedVoteExtension(s.address))
                } else {
                    let trimmed = certificate.trim_vote_extensions();
                    let c = CommitCertificate::from_malachite(&trimmed);
                    self.verify_certificate(c.as_ref(), &set)
                };
                r.resume_with(result)
            }
            MEffect::VerifyPolkaCertificate(certificate, set, _, r) => {
                let c = PolkaCertificate::from_malachite(&certificate);
                r.resume_with(self.verify_and_observe(c, &set))
            }
            MEffect::VerifyRoundCertificate(certificate, set, _, r) => {
                let c = RoundCertificate::from_malachite(&certificate);
                r.resume_with(self.verify_and_observe(c, &set))
            }
            // Vote extensions are disabled: never asked for, never accepted.
            MEffect::ExtendVote(.., r) => r.resume_with(None),
            MEffect::VerifyVoteExtension(.., r) => {
                r.resume_with(Err(mcons::VoteExtensionError::InvalidVoteExtension))
            }
        })
    }

    fn cancel_timer(&mut self, timeout: &mtypes::Timeout) {
        if let Some(id) = self.timer(timeout) {
            self.effects.push(Effect::CancelTimer(id));
        }
    }

    /// Schedule Malachite's timeout at now + its configured duration.
    fn schedule_timer(&mut self, timeout: &mtypes::Timeout) {
        if let Some(id) = self.timer(timeout) {
            let at_ms = self
                .now_ms
                .saturating_add(self.config.timeouts.duration_ms(id.kind, id.round));
            self.effects.push(Effect::ScheduleTimer { id, at_ms });
        }
    }

    /// Ask the host for a value to propose, due by the propose timeout.
    fn need_value(&mut self, height: CheckpointHeight, round: Round) {
        let round = round.as_u32().unwrap_or(0);
        // After a restart that replays our own proposal, never ask for another value.
        if self.h.signed.contains_key(&(round, Step::Proposal)) {
            return;
        }
        let deadline_ms = self
            .now_ms
            .saturating_add(self.config.timeouts.duration_ms(TimerKind::Propose, round));
        self.effects.push(Effect::NeedValue {
            height: height.0,
            round,
            deadline_ms,
        });
    }

    /// Publish one of our signed votes or proposals (persisted first).
    fn publish(&mut self, msg: SignedConsensusMsg<Ctx>) {
        let wire = match msg {
            SignedConsensusMsg::Vote(v) => ConsensusMessage::Vote(VoteMessage::from_malachite(&v)),
            SignedConsensusMsg::Proposal(p) => {
                ConsensusMessage::Proposal(ProposalMessage::from_malachite(&p))
            }
        };
        self.broadcast_own(wire);
    }

    fn publish_liveness(&mut self, msg: LivenessMsg<Ctx>) {
        match msg {
            LivenessMsg::Vote(v) => {
                self.broadcast_own(ConsensusMessage::Vote(VoteMessage::from_malachite(&v)))
            }
            LivenessMsg::PolkaCertificate(c) => {
                if let Some(c) = PolkaCertificate::from_malachite(&c) {
                    self.effects
                        .push(Effect::Broadcast(ConsensusMessage::PolkaCertificate(c)));
                }
            }
            LivenessMsg::SkipRoundCertificate(c) => self.broadcast_round_certificate(&c),
        }
    }

    fn broadcast_round_certificate(&mut self, c: &mtypes::RoundCertificate<Ctx>) {
        if let Some(c) = RoundCertificate::from_malachite(c) {
            self.effects
                .push(Effect::Broadcast(ConsensusMessage::RoundCertificate(c)));
        }
    }

    /// Sign a vote, unless this node signed one for the same `(round, step)`: then that one
    /// again (the double-sign guard).
    fn sign_vote(&mut self, vote: super::context::Vote) -> mtypes::SignedVote<Ctx> {
        let key = (vote.round.as_u32().unwrap_or(0), step_of(vote.kind));
        if let Some(ConsensusMessage::Vote(prev)) = self.h.signed.get(&key) {
            if prev.vote != vote {
                self.stats.guard_refusals += 1;
            }
            return prev.to_malachite();
        }
        let signature = sign_vote(&self.keypair, &self.config.network, &vote);
        let msg = VoteMessage { vote, signature };
        self.h
            .signed
            .insert(key, ConsensusMessage::Vote(msg.clone()));
        msg.to_malachite()
    }

    /// Sign a proposal, with the same guard as [`Core::sign_vote`].
    fn sign_proposal(&mut self, proposal: Proposal) -> mtypes::SignedProposal<Ctx> {
        let key = (proposal.round.as_u32().unwrap_or(0), Step::Proposal);
        if let Some(ConsensusMessage::Proposal(prev)) = self.h.signed.get(&key) {
            if prev.proposal != proposal {
                self.stats.guard_refusals += 1;
            }
            return prev.to_malachite();
        }
        let signature = sign_proposal(&self.keypair, &self.config.network, &proposal);
        let msg = ProposalMessage {
            proposal,
            signature,
        };
        self.h
            .signed
            .insert(key, ConsensusMessage::Proposal(msg.clone()));
        msg.to_malachite()
    }

    /// Check a signature over the exact sign bytes; a valid message goes on to evidence
    /// detection (and validation, for a proposal), an invalid one penalizes its peer.
    fn verify_signature(
        &mut self,
        signed: mtypes::SignedMessage<Ctx, ConsensusMsg<Ctx>>,
        key: &mtypes::PublicKey<Ctx>,
    ) -> bool {
        let network = self.config.network;
        let (msg, bytes) = match signed.message {
            ConsensusMsg::Vote(vote) => {
                let bytes = vote_sign_bytes(&network, &vote);
                let msg = ConsensusMessage::Vote(VoteMessage {
                    vote,
                    signature: signed.signature,
                });
                (msg, bytes)
            }
            ConsensusMsg::Proposal(proposal) => {
                let bytes = proposal_sign_bytes(&network, &proposal);
                let msg = ConsensusMessage::Proposal(ProposalMessage {
                    proposal,
                    signature: signed.signature,
                });
                (msg, bytes)
            }
        };
        let ok = self.h.sig_cache.verify(key, &signed.signature, &bytes);
        if ok {
            self.on_verified(&msg);
        } else {
            self.penalize(Offence::BadSignature);
        }
        ok
    }

    /// Verify a certificate Malachite handed over (`None`: it did not convert).
    #[allow(
        clippy::result_large_err,
        reason = "Malachite's resume value for certificate checks, handed straight back"
    )]
    fn verify_certificate(
        &mut self,
        certificate: Option<&impl VoteCertificate>,
        set: &ValidatorSet,
    ) -> Result<(), mtypes::CertificateError<Ctx>> {
        let Some(c) = certificate else {
            return Err(mtypes::CertificateError::VerificationError(None));
        };
        c.verify_cached(&self.config.network, set, &mut self.h.sig_cache)
            .map_err(to_malachite_error)
    }

    /// [`Core::verify_certificate`]; the votes of a valid certificate go on to evidence
    /// detection.
    #[allow(
        clippy::result_large_err,
        reason = "Malachite's resume value for certificate checks, handed straight back"
    )]
    fn verify_and_observe(
        &mut self,
        certificate: Option<impl VoteCertificate>,
        set: &ValidatorSet,
    ) -> Result<(), mtypes::CertificateError<Ctx>> {
        let result = self.verify_certificate(certificate.as_ref(), set);
        if let (Ok(()), Some(c)) = (&result, &certificate) {
            self.observe_certificate_votes(c.votes());
        }
        result
    }

    fn observe_certificate_votes(
        &mut self,
        votes: impl Iterator<Item = (super::context::Vote, chorus_protocol::keys::Signature)>,
    ) {
        let msgs: Vec<ConsensusMessage> = votes
            .map(|(vote, signature)| ConsensusMessage::Vote(VoteMessage { vote, signature }))
            .collect();
        for msg in msgs {
            self.on_verified(&msg);
        }
    }

    fn on_wal_append(&mut self, height: CheckpointHeight, input: &MInput) {
        let Some(record) = WalRecord::from_input(height.0, input) else {
            self.fault(EngineFault::UnpersistableWalEntry);
            return;
        };
        let own = match &record.entry {
            WalEntry::Vote(v) if v.vote.validator == self.me => {
                Some(ConsensusMessage::Vote(v.clone()))
            }
            WalEntry::Proposal(p) if p.proposal.proposer == self.me => {
                Some(ConsensusMessage::Proposal(p.clone()))
            }
            _ => None,
        };
        if let Some(msg) = own {
            self.h.persisted_own.insert(own_digest(&msg));
        }
        self.append_wal(record);
    }

    fn on_decide(&mut self, certificate: &mtypes::CommitCertificate<Ctx>) {
        let value_id = certificate.value_id;
        let (Some(value), Some(certificate)) = (
            self.h.values.get(&value_id).cloned(),
            CommitCertificate::from_malachite(certificate),
        ) else {
            self.fault(EngineFault::MissingDecidedValue(value_id));
            return;
        };
        let decided = super::catchup::DecidedCheckpoint {
            checkpoint: value.checkpoint().clone(),
            certificate,
        };
        self.stats.decided += 1;
        self.decided.insert(decided.clone());
        self.effects.push(Effect::Decided(decided));
    }

    fn on_synced_value(
        &mut self,
        response: &mtypes::ValueResponse<Ctx>,
        proposer: ValidatorAddress,
    ) {
        let cert = &response.certificate;
        let checkpoint = match codec::decode::<Checkpoint>(&response.value_bytes) {
            Ok(cp) if cp.height == cert.height.0 && cp.check_shape().is_ok() => cp,
            _ => {
                self.penalize(Offence::BadCatchUp);
                return;
            }
        };
        let value = CheckpointValue::new(checkpoint);
        if value.id() != cert.value_id {
            self.penalize(Offence::BadCatchUp);
            return;
        }
        if let Some(previous) = self.expected_previous()
            && value.checkpoint().previous != previous
        {
            // Certified by > 2/3 of the power, yet not on our chain.
            self.fault(EngineFault::ForkedChain {
                height: cert.height.0,
            });
        }
        self.stats.decided_via_catch_up += 1;
        self.h.values.insert(value.id(), value.clone());
        self.h.validity.insert(value.id(), true);
        self.follow_ups
            .push_back(FollowUp::Consensus(MInput::ProposedValue(
                ProposedValue {
                    height: cert.height,
                    round: cert.round,
                    valid_round: Round::Nil,
                    proposer,
                    value,
                    validity: Validity::Valid,
                },
                ValueOrigin::Sync,
            )));
    }
}
