//! Evidence of equivocation, applied after the ledger messages of a height, in id order.
//!
//! Each offence is punished once, whatever pair of messages shows it and however many peers
//! report it: the ledger keys what it acted upon by the offence (offender and equivocated slot),
//! not by the evidence message. Evidence that proves nothing is refused and recorded nowhere.
//! A double consensus vote slashes the validator's bond; conflicting reputer bundles slash the
//! reputer's own stake in the bundle's topic only; conflicting worker bundles and ledger messages
//! are recorded (those authors hold no stake; the equivocation rule already excluded their
//! entries). Slashing is `slash_fraction_ppm` of the stake; what is cut is burned.

use chorus_protocol::envelope::Envelope;
use chorus_protocol::ids::{Amount, Hash32, NetworkId, TopicId};
use chorus_protocol::keys::PublicKey;
use chorus_protocol::math::payout::mul_div_floor;
use chorus_protocol::messages::{Evidence, EvidenceKind};
use chorus_protocol::validation::Slot;

use super::{EvidenceVerifier, Ledger, LedgerEvent, SignedEntry, TxError};

impl Ledger {
    pub(super) fn apply_evidence(
        &mut self,
        e: &SignedEntry,
        ev: &Evidence,
        verifier: &dyn EvidenceVerifier,
        events: &mut Vec<LedgerEvent>,
    ) {
        let refuse = |events: &mut Vec<LedgerEvent>, reason: TxError| {
            events.push(LedgerEvent::Refused {
                author: e.author,
                id: e.id,
                reason: reason.to_string(),
            });
        };
        let Some((offender, offence_id, slot)) = self.offence_of(ev, verifier) else {
            refuse(events, TxError::InvalidEvidence);
            return;
        };
        if self.evidence.contains(&offence_id) {
            refuse(events, TxError::EvidenceAlreadyUsed);
            return;
        }
        self.evidence.insert(offence_id);
        let ppm = u128::from(self.params.slash_fraction_ppm);
        let cut = |stake: u128| mul_div_floor(stake, ppm, 1_000_000).unwrap_or(0);
        let burned = match (ev.kind, slot) {
            (EvidenceKind::ConsensusVote, _) => match self.validators.get_mut(&offender) {
                Some(v) => {
                    let c = cut(v.bond.0);
                    v.bond = Amount(v.bond.0 - c);
                    v.slashed_count += 1;
                    c
                }
                None => 0,
            },
            (EvidenceKind::ReputerBundle, Some(Slot::Reputer { topic, .. })) => {
                self.slash_reputer(topic, &offender, cut)
            }
            _ => {
                events.push(LedgerEvent::Applied {
                    author: e.author,
                    id: e.id,
                    kind: "evidence".into(),
                });
                return;
            }
        };
        self.supply.slashed = Amount(self.supply.slashed.0 + burned);
        events.push(LedgerEvent::Slashed {
            offender,
            amount: Amount(burned),
        });
    }

    /// The offender, offence id and (for envelopes) equivocated slot `ev` proves, if it proves
    /// one.
    fn offence_of(
        &self,
        ev: &Evidence,
        verifier: &dyn EvidenceVerifier,
    ) -> Option<(PublicKey, Hash32, Option<Slot>)> {
        match ev.kind {
            EvidenceKind::ConsensusVote => verifier.offence(ev).map(|(who, id)| (who, id, None)),
            _ => envelope_offence(ev, &self.network),
        }
    }

    /// The id of the offence `ev` proves (offender and equivocated slot), if it proves one:
    /// what the ledger punishes once, and what reporters agree on to report it once.
    pub fn offence_id(&self, ev: &Evidence, verifier: &dyn EvidenceVerifier) -> Option<Hash32> {
        self.offence_of(ev, verifier).map(|(_, id, _)| id)
    }

    /// Whether the offence `ev` proves was already acted upon (evidence of it would be refused).
    pub fn offence_acted_upon(&self, ev: &Evidence, verifier: &dyn EvidenceVerifier) -> bool {
        self.offence_of(ev, verifier)
            .is_some_and(|(_, id, _)| self.evidence.contains(&id))
    }

    /// Cut `offender`'s own stake in `topic`; returns what was cut.
    fn slash_reputer(
        &mut self,
        topic: TopicId,
        offender: &PublicKey,
        cut: impl Fn(u128) -> u128,
    ) -> u128 {
        let Some(s) = self
            .topics
            .get_mut(&topic)
            .and_then(|t| t.stakes.get_mut(offender))
        else {
            return 0;
        };
        let c = cut(s.own.0);
        s.own = Amount(s.own.0 - c);
        c
    }
}

/// The offender, the offence id and the equivocated slot of evidence made of two envelopes:
/// both decode and verify on `network`, are different, have one signer and one slot, and the
/// slot is of the evidence's kind.
fn envelope_offence(
    ev: &Evidence,
    network: &NetworkId,
) -> Option<(PublicKey, Hash32, Option<Slot>)> {
    let a = Envelope::from_bytes(&ev.first).ok()?;
    let b = Envelope::from_bytes(&ev.second).ok()?;
    if a.signer != b.signer || a == b {
        return None;
    }
    let (pa, pb) = (a.open(network).ok()?, b.open(network).ok()?);
    let slot = Slot::of(a.signer, &pa);
    if slot != Slot::of(b.signer, &pb) {
        return None;
    }
    let (tag, parts): (&str, Vec<Vec<u8>>) = match &slot {
        // A commitment and a reveal are the same offence as a bundle: one per (topic, epoch).
        Slot::Worker { topic, epoch, .. } | Slot::Reveal { topic, epoch, .. }
            if ev.kind == EvidenceKind::WorkerBundle =>
        {
            (
                "chorus/offence/worker/v1",
                vec![topic.0.to_le_bytes().to_vec(), epoch.to_le_bytes().to_vec()],
            )
        }
        Slot::Reputer { topic, epoch, .. } if ev.kind == EvidenceKind::ReputerBundle => (
            "chorus/offence/reputer/v1",
            vec![topic.0.to_le_bytes().to_vec(), epoch.to_le_bytes().to_vec()],
        ),
        Slot::Ledger { nonce, .. } if ev.kind == EvidenceKind::LedgerNonce => (
            "chorus/offence/ledger/v1",
            vec![nonce.to_le_bytes().to_vec()],
        ),
        _ => return None,
    };
    let mut all: Vec<&[u8]> = vec![a.signer.as_bytes()];
    all.extend(parts.iter().map(Vec::as_slice));
    Some((a.signer, Hash32::of_parts(tag, &all), Some(slot)))
}
