//! Step 8 of validation: what a message says must make sense (finite values, sorted and
//! bounded lists, bundles for registered workers, evidence that proves an offence).

use super::{IgnoreReason, RejectReason, Slot, ValidationView, Verdict};
use crate::envelope::Envelope;
use crate::ids::{Amount, TopicId};
use crate::keys::PublicKey;
use crate::messages::{
    EvidenceKind, MAX_BUNDLE_VALUES, MAX_BUNDLE_WORKERS, MAX_FORECAST_ELEMENTS, Payload,
    PayloadClass, Role, ValueBundle, WorkerReveal, WorkerValue,
};
use crate::params::ModuleParams;

fn strictly_sorted(values: &[WorkerValue]) -> bool {
    values.windows(2).all(|w| w[0].worker < w[1].worker)
}

fn check_value_bundle(
    losses: &ValueBundle,
    topic: TopicId,
    view: &impl ValidationView,
) -> Option<Verdict> {
    use Verdict::{Ignore, Reject};
    if losses.values().any(|v| !v.is_finite()) {
        return Some(Reject(RejectReason::NonFinite));
    }
    let lists = [
        &losses.inferer_values,
        &losses.forecaster_values,
        &losses.one_out_inferer_values,
        &losses.one_out_forecaster_values,
        &losses.one_in_forecaster_values,
    ];
    if lists.iter().any(|l| l.len() > MAX_BUNDLE_WORKERS)
        || losses.one_out_inferer_forecaster_values.len() > MAX_BUNDLE_WORKERS
        || losses.len() > MAX_BUNDLE_VALUES
    {
        return Some(Reject(RejectReason::TooManyElements));
    }
    let oo = &losses.one_out_inferer_forecaster_values;
    if !lists.iter().all(|l| strictly_sorted(l))
        || !oo.windows(2).all(|w| w[0].forecaster < w[1].forecaster)
        || !oo.iter().all(|f| strictly_sorted(&f.values))
    {
        return Some(Reject(RejectReason::Unsorted));
    }
    let unknown = lists
        .iter()
        .flat_map(|l| l.iter().map(|v| &v.worker))
        .chain(oo.iter().map(|f| &f.forecaster))
        .chain(oo.iter().flat_map(|f| f.values.iter().map(|v| &v.worker)))
        .any(|w| !view.is_registered(topic, Role::Worker, w));
    if unknown {
        return Some(Ignore(IgnoreReason::UnknownWorker, None));
    }
    None
}

pub(super) fn check_semantics(
    payload: &Payload,
    author: &PublicKey,
    view: &impl ValidationView,
    params: &ModuleParams,
) -> Option<Verdict> {
    use Verdict::{Ignore, Reject};
    let reject = |r| Some(Reject(r));
    match payload {
        Payload::WorkerCommit(_) => None,
        Payload::WorkerBundle(b) | Payload::WorkerReveal(WorkerReveal { bundle: b, .. }) => {
            if b.inference.is_none() && b.forecasts.is_empty() {
                return reject(RejectReason::EmptyBundle);
            }
            if b.inference.is_some_and(|v| !v.is_finite())
                || b.forecasts.iter().any(|f| !f.value.is_finite())
            {
                return reject(RejectReason::NonFinite);
            }
            let cap = usize::try_from(params.max_elements_per_forecast)
                .unwrap_or(usize::MAX)
                .min(MAX_FORECAST_ELEMENTS);
            if b.forecasts.len() > cap {
                return reject(RejectReason::TooManyElements);
            }
            if !b.forecasts.windows(2).all(|w| w[0].inferer < w[1].inferer) {
                return reject(RejectReason::Unsorted);
            }
            if b.forecasts
                .iter()
                .any(|f| !view.is_registered(b.topic, Role::Worker, &f.inferer))
            {
                return Some(Ignore(IgnoreReason::UnknownWorker, None));
            }
            None
        }
        Payload::ReputerBundle(b) => {
            if !b.ground_truth.is_finite() {
                return reject(RejectReason::NonFinite);
            }
            check_value_bundle(&b.losses, b.topic, view)
        }
        Payload::CreateTopic(m) => {
            if m.spec.validate(params).is_err() {
                return reject(RejectReason::InvalidTopic);
            }
            if m.fee < params.create_topic_fee {
                return reject(RejectReason::FeeTooLow);
            }
            None
        }
        Payload::Register(m) | Payload::Unregister(m) => {
            if view.topic(m.topic).is_none() {
                return Some(Ignore(IgnoreReason::UnknownTopic, None));
            }
            None
        }
        Payload::Transfer(m) => {
            if m.amount == Amount::ZERO {
                return reject(RejectReason::ZeroAmount);
            }
            if m.to == *author {
                return reject(RejectReason::SelfTransfer);
            }
            None
        }
        Payload::FundTopic(m) => {
            if m.amount == Amount::ZERO {
                return reject(RejectReason::ZeroAmount);
            }
            if view.topic(m.topic).is_none() {
                return Some(Ignore(IgnoreReason::UnknownTopic, None));
            }
            None
        }
        Payload::Stake(m) | Payload::Unstake(m) => {
            if m.amount == Amount::ZERO {
                return reject(RejectReason::ZeroAmount);
            }
            if view.topic(m.topic).is_none() {
                return Some(Ignore(IgnoreReason::UnknownTopic, None));
            }
            None
        }
        Payload::Bond(m) | Payload::Unbond(m) => {
            if m.amount == Amount::ZERO {
                return reject(RejectReason::ZeroAmount);
            }
            None
        }
        Payload::Propose(m) => {
            let bad_text = m.title.is_empty() || m.title.len() > 255 || m.description.len() > 8192;
            let bad_action = match &m.action {
                crate::messages::GovernanceAction::Text => false,
                crate::messages::GovernanceAction::SetParams { changes }
                | crate::messages::GovernanceAction::UpdateTopic { changes, .. } => {
                    changes.is_empty() || changes.len() > 64
                }
            };
            if bad_text || bad_action {
                return reject(RejectReason::InvalidProposal);
            }
            None
        }
        Payload::Vote(_) => None,
        // Who may name the owner is ledger state (the current owner): the ledger decides.
        Payload::SetOwner(_) => None,
        Payload::Evidence(e) => check_evidence(e, view),
    }
}

/// Evidence only against a key with something at stake where it offended: a worker or reputer
/// registered in the bundles' topic, an account holding something for ledger messages
/// (validators are checked by the consensus layer). Anyone can sign two bundles with a fresh key
/// and report itself: without this, such evidence cost nothing and filled ledger windows (the
/// simulator's spammer found it). Whether the evidence proves anything is judged later
/// ([`check_evidence`]); what does not decode is left to it.
pub(super) fn evidence_standing(
    e: &crate::messages::Evidence,
    view: &impl ValidationView,
) -> Option<Verdict> {
    let Ok(first) = Envelope::from_bytes(&e.first) else {
        return None;
    };
    let Ok(payload) = first.payload_unverified() else {
        return None;
    };
    let offender = &first.signer;
    let registered = |topic, role| view.is_registered(topic, role, offender);
    let standing = match (e.kind, &payload) {
        (EvidenceKind::WorkerBundle, p) if p.class() == PayloadClass::Worker => p
            .worker_epoch()
            .is_some_and(|(topic, _)| registered(topic, Role::Worker)),
        (EvidenceKind::ReputerBundle, Payload::ReputerBundle(b)) => {
            registered(b.topic, Role::Reputer)
        }
        (EvidenceKind::LedgerNonce, _) => {
            let funds = view.funds(offender);
            funds.liquid != Amount::ZERO || funds.locked != Amount::ZERO
        }
        _ => true,
    };
    (!standing).then_some(Verdict::Ignore(IgnoreReason::OffenderHoldsNothing, None))
}

fn check_evidence(e: &crate::messages::Evidence, view: &impl ValidationView) -> Option<Verdict> {
    let bad = Some(Verdict::Reject(RejectReason::BadEvidence));
    if e.first == e.second || e.first.is_empty() || e.second.is_empty() {
        return bad;
    }
    if e.kind == EvidenceKind::ConsensusVote {
        // Consensus votes are checked by the consensus layer that understands them.
        return (!view.consensus_evidence_ok(e))
            .then_some(Verdict::Reject(RejectReason::BadEvidence));
    }
    let (Ok(a), Ok(b)) = (
        Envelope::from_bytes(&e.first),
        Envelope::from_bytes(&e.second),
    ) else {
        return bad;
    };
    if a.signer != b.signer
        || a.verify(&view.network()).is_err()
        || b.verify(&view.network()).is_err()
    {
        return bad;
    }
    let (Ok(pa), Ok(pb)) = (a.payload_unverified(), b.payload_unverified()) else {
        return bad;
    };
    let kind_ok = match e.kind {
        EvidenceKind::WorkerBundle => pa.class() == PayloadClass::Worker,
        EvidenceKind::ReputerBundle => matches!(pa, Payload::ReputerBundle(_)),
        EvidenceKind::LedgerNonce => pa.nonce().is_some(),
        EvidenceKind::ConsensusVote => false,
    };
    if !kind_ok || Slot::of(a.signer, &pa) != Slot::of(b.signer, &pb) {
        return bad;
    }
    None
}
