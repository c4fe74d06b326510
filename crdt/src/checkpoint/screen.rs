//! Screening a consensus message that arrived by gossip, before it is relayed.
//!
//! Gossipsub relays a message only after the receiver reports it valid, and blames the peer it
//! came from when the report is "reject". So a message is relayed only when this node can show
//! it is harmless (a well-formed vote, proposal or certificate of a height it can judge, signed
//! by the validators of that height), refused (and its sender blamed) only when it is provably
//! bad whatever the sender's view, and otherwise neither relayed nor blamed: a message about a
//! height this node cannot judge yet may be valid for a peer that is ahead.

use chorus_protocol::ids::Hash32;

use super::certificate::VoteCertificate;
use super::engine::{Engine, Offence, valset_ref};
use super::messages::ConsensusMessage;
use super::signing::{SignatureCache, proposal_sign_bytes, vote_sign_bytes};
use super::validators::ValidatorSet;

/// What to do with a consensus message from gossip.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Screen {
    /// Provably valid for the height it names: relay it and hand it to the engine.
    Relay,
    /// Not judgeable here (a height too far ahead or behind, a validator set not known yet):
    /// hand it to the engine (it may start a catch-up) but do not relay it, blame no one.
    Hold(&'static str),
    /// Provably bad (shape, signature, a signer outside the set of a height this node has
    /// passed): drop it and blame the peer that sent it, which should have refused it.
    Refuse(Offence),
}

impl Engine {
    /// Screen a consensus message received by gossip (see the module doc). Verified signatures
    /// are cached, so the engine does not verify them again.
    pub fn screen(&mut self, message: &ConsensusMessage) -> Screen {
        if let Err(e) = message.check_shape() {
            return Screen::Refuse(Offence::Malformed(e));
        }
        let height = message.height();
        let current = self.core.height;
        // Catch-up travels by request and response, never by gossip.
        if matches!(
            message,
            ConsensusMessage::CatchUpRequest { .. } | ConsensusMessage::CatchUpResponse(_)
        ) {
            return Screen::Refuse(Offence::NotGossip);
        }
        if height.saturating_add(1) < current {
            return Screen::Hold("stale_height");
        }
        if height > current.saturating_add(1) {
            return Screen::Hold("height_ahead");
        }
        // The set of a height not started yet may still change: judge signatures with the
        // newest set, but do not blame a signer outside it.
        let settled = height <= current;
        let core = &mut self.core;
        let Some(set) = valset_ref(&core.valsets, height) else {
            return Screen::Hold("no_validator_set");
        };
        let network = core.config.network;
        let cache = &mut core.h.sig_cache;
        let verdict = match message {
            ConsensusMessage::Vote(v) => {
                let bytes = vote_sign_bytes(&network, &v.vote);
                signed_by(set, &v.vote.validator.0, &v.signature, &bytes, cache)
            }
            ConsensusMessage::Proposal(p) => {
                let round = p.proposal.round.as_u32().unwrap_or(0);
                if set.proposer(height, round).public_key() != &p.proposal.proposer.0 {
                    Verdict::OutsideSet(Offence::NotAValidator)
                } else {
                    let bytes = proposal_sign_bytes(&network, &p.proposal);
                    signed_by(set, &p.proposal.proposer.0, &p.signature, &bytes, cache)
                }
            }
            ConsensusMessage::PolkaCertificate(c) => certified(c, &network, set, cache),
            ConsensusMessage::RoundCertificate(c) => certified(c, &network, set, cache),
            ConsensusMessage::CatchUpRequest { .. } | ConsensusMessage::CatchUpResponse(_) => {
                Verdict::Valid
            }
        };
        match verdict {
            Verdict::Valid => Screen::Relay,
            Verdict::BadSignature => Screen::Refuse(Offence::BadSignature),
            Verdict::BadCertificate => Screen::Refuse(Offence::BadCertificate),
            Verdict::OutsideSet(offence) if settled => Screen::Refuse(offence),
            Verdict::OutsideSet(_) => Screen::Hold("validator_set_may_change"),
        }
    }
}

enum Verdict {
    Valid,
    BadSignature,
    BadCertificate,
    /// Signed by a key that is not (or not the proposer) in the set, or a certificate that
    /// does not verify against the set: the offence once the set is settled.
    OutsideSet(Offence),
}

fn signed_by(
    set: &ValidatorSet,
    key: &chorus_protocol::keys::PublicKey,
    signature: &chorus_protocol::keys::Signature,
    bytes: &[u8],
    cache: &mut SignatureCache,
) -> Verdict {
    if set.get(key).is_none() {
        Verdict::OutsideSet(Offence::NotAValidator)
    } else if cache.verify(key, signature, bytes) {
        Verdict::Valid
    } else {
        Verdict::BadSignature
    }
}

fn certified(
    c: &impl VoteCertificate,
    network: &Hash32,
    set: &ValidatorSet,
    cache: &mut SignatureCache,
) -> Verdict {
    use super::error::CertificateError as E;
    match c.verify_cached(network, set, cache) {
        Ok(()) => Verdict::Valid,
        Err(E::UnknownValidator(_) | E::NotEnoughPower { .. }) => {
            Verdict::OutsideSet(Offence::BadCertificate)
        }
        Err(_) => Verdict::BadCertificate,
    }
}
