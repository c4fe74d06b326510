//! Reporting an offence once, network-wide.
//!
//! Every honest node sees both messages of an equivocation, so every node could report it, and
//! N reports of one offence cost N ledger entries for one slash. Instead each offence has an
//! order of reporters: the validators of the current set, ranked by `blake3(offence id ‖ key)`
//! (every node computes the same order), then every other node. A node reports
//! [`EVIDENCE_STEP_MS`] × its rank after it saw the offence (at most
//! [`MAX_EVIDENCE_RANK`] steps), unless evidence of that offence reached it first, from anyone,
//! by any path. The first-ranked validator reports at once; the next only if that report did
//! not arrive within a step, and so on: one report per offence while the first-ranked is up,
//! and a report whatever the number of reporters down.
//!
//! Offences are tracked for [`OFFENCE_MEMORY_MS`] and at most [`MAX_TRACKED_OFFENCES`] at once.

use std::collections::BTreeMap;

use chorus_protocol::ids::Hash32;
use chorus_protocol::messages::{Evidence, Payload};

use super::{Effect, Replica};

/// Delay between two reporters of one offence (ms): well above a gossip round trip.
pub const EVIDENCE_STEP_MS: u64 = 1_000;
/// Ranks beyond this report at this many steps.
pub const MAX_EVIDENCE_RANK: u64 = 16;
/// How long an offence is remembered after it was seen (ms).
pub const OFFENCE_MEMORY_MS: u64 = 600_000;
/// Offences remembered at once (the oldest are forgotten first).
pub const MAX_TRACKED_OFFENCES: usize = 4_096;

/// Offences this replica knows of.
#[derive(Debug, Default)]
pub(super) struct Offences {
    /// Reported by someone (or by us): offence id → when first seen.
    seen: BTreeMap<Hash32, u64>,
    /// Ours to report at a time, unless someone else does first.
    due: BTreeMap<Hash32, (u64, Evidence)>,
}

impl Replica {
    /// This replica found evidence: report it at its turn (see the module docs).
    pub(super) fn schedule_evidence(&mut self, ev: Evidence, now_ms: u64, out: &mut Vec<Effect>) {
        let Some(id) = self
            .ledger
            .offence_id(&ev, &super::consensus::VoteEvidence(self.network))
        else {
            return; // proves nothing: the ledger would refuse it
        };
        if self.offences.seen.contains_key(&id) || self.offences.due.contains_key(&id) {
            return;
        }
        let at = now_ms.saturating_add(self.reporter_rank(&id).saturating_mul(EVIDENCE_STEP_MS));
        self.offences.due.insert(id, (at, ev));
        self.forget_offences(now_ms);
        self.report_due_evidence(now_ms, out);
    }

    /// Publish the evidence whose turn came and that nobody reported meanwhile.
    pub(super) fn report_due_evidence(&mut self, now_ms: u64, out: &mut Vec<Effect>) {
        let ready: Vec<Hash32> = self
            .offences
            .due
            .iter()
            .filter(|(_, (at, _))| *at <= now_ms)
            .map(|(id, _)| *id)
            .collect();
        for id in ready {
            if let Some((_, ev)) = self.offences.due.remove(&id) {
                self.publish(Payload::Evidence(ev), now_ms, out);
            }
        }
    }

    /// Evidence of an offence joined a window here (ours or a peer's): nobody else reports it.
    pub(super) fn evidence_seen(&mut self, payload: &Payload, now_ms: u64) {
        let Payload::Evidence(ev) = payload else {
            return;
        };
        let Some(id) = self
            .ledger
            .offence_id(ev, &super::consensus::VoteEvidence(self.network))
        else {
            return;
        };
        self.offences.due.remove(&id);
        self.offences.seen.entry(id).or_insert(now_ms);
        self.forget_offences(now_ms);
    }

    /// This replica's place among the reporters of offence `id`: its rank among the current
    /// validators by `blake3(id ‖ key)`, or the set's size when it is not one (capped).
    fn reporter_rank(&self, id: &Hash32) -> u64 {
        let me = self.key.public();
        let order = |k: &chorus_protocol::keys::PublicKey| {
            Hash32::of_parts("chorus/evidence/reporter/v1", &[&id.0, k.as_bytes()])
        };
        let mut keys: Vec<_> = self
            .ledger
            .active_bonds()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        keys.sort_by_key(order);
        let rank = keys.iter().position(|k| *k == me).unwrap_or(keys.len());
        (rank as u64).min(MAX_EVIDENCE_RANK)
    }

    fn forget_offences(&mut self, now_ms: u64) {
        let o = &mut self.offences;
        o.seen
            .retain(|_, at| now_ms < at.saturating_add(OFFENCE_MEMORY_MS));
        while o.seen.len() > MAX_TRACKED_OFFENCES {
            let oldest = o.seen.iter().min_by_key(|(_, at)| **at).map(|(id, _)| *id);
            if let Some(id) = oldest {
                o.seen.remove(&id);
            }
        }
        while o.due.len() > MAX_TRACKED_OFFENCES {
            o.due.pop_last();
        }
    }
}
