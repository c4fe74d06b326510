//! Evidence of equivocation, applied after the ledger messages of a height, in id order: each
//! piece of evidence is acted upon once; a double consensus vote slashes the validator's bond,
//! conflicting reputer bundles slash the reputer's own stake in every topic, by
//! `slash_fraction_ppm`. What is cut is burned.

use chorus_protocol::envelope::Envelope;
use chorus_protocol::ids::{Amount, NetworkId};
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
        let key = match Slot::of(e.author, &e.payload) {
            Slot::Evidence { content, .. } => content,
            _ => e.id,
        };
        if self.evidence.contains(&key) {
            events.push(LedgerEvent::Refused {
                author: e.author,
                id: e.id,
                reason: TxError::EvidenceAlreadyUsed.to_string(),
            });
            return;
        }
        let offender = match ev.kind {
            EvidenceKind::ConsensusVote => verifier.offender(ev),
            EvidenceKind::ReputerBundle => envelope_offender(ev, &self.network),
            // Workers and ledger authors hold no stake: their entries are already excluded
            // from the window by the equivocation rule; the evidence is recorded only.
            EvidenceKind::WorkerBundle | EvidenceKind::LedgerNonce => None,
        };
        self.evidence.insert(key);
        let ppm = u128::from(self.params.slash_fraction_ppm);
        let Some(offender) = offender else {
            events.push(LedgerEvent::Applied {
                author: e.author,
                id: e.id,
                kind: "evidence".into(),
            });
            return;
        };
        let mut burned = 0u128;
        if ev.kind == EvidenceKind::ConsensusVote {
            if let Some(v) = self.validators.get_mut(&offender) {
                let cut = mul_div_floor(v.bond.0, ppm, 1_000_000).unwrap_or(0);
                v.bond = Amount(v.bond.0 - cut);
                v.slashed_count += 1;
                burned += cut;
            }
        } else {
            for t in self.topics.values_mut() {
                if let Some(s) = t.stakes.get_mut(&offender) {
                    let cut = mul_div_floor(s.own.0, ppm, 1_000_000).unwrap_or(0);
                    s.own = Amount(s.own.0 - cut);
                    burned += cut;
                }
            }
        }
        self.supply.slashed = Amount(self.supply.slashed.0 + burned);
        events.push(LedgerEvent::Slashed {
            offender,
            amount: Amount(burned),
        });
    }
}

/// The signer of two conflicting envelopes in an evidence message (already checked by gossip
/// validation; checked again because the ledger trusts nothing).
fn envelope_offender(ev: &Evidence, network: &NetworkId) -> Option<PublicKey> {
    let a = Envelope::from_bytes(&ev.first).ok()?;
    let b = Envelope::from_bytes(&ev.second).ok()?;
    if a.signer != b.signer || a == b {
        return None;
    }
    let (pa, pb) = (a.open(network).ok()?, b.open(network).ok()?);
    (Slot::of(a.signer, &pa) == Slot::of(b.signer, &pb)).then_some(a.signer)
}
