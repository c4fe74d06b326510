//! Validator churn beyond the cap: the simulated genesis caps the validator set at the number
//! of genesis validators (`max_validators`), so every other bond is beyond it.
//!
//! During the fault phase each churner (an honest node that is not a validator) bonds
//! [`WAITING_BOND`], below every validator's bond: it is bonded but waits outside the set. The
//! first churner then raises its bond to [`ENTERING_BOND`] in total, above an honest
//! validator's: two heights later it is in the set and the smallest bond (ties by key) is out.
//! A few seconds later it unbonds all of it and the evicted validator is back. A churner in the
//! set holds a third of the voting power, so heights keep finalizing only if it takes part in
//! consensus like any validator; the replicas that restart meanwhile must rebuild the same
//! sets. The runner counts, on the first checked node applying each height, how often the set
//! changed and at how many heights bonded accounts waited outside it ([`ChurnReport`]): a run
//! cannot pass the churn without it happening.

use chorus_protocol::ids::Amount;
use chorus_protocol::messages::{BondChange, Payload};

/// First bond of every churner: below every validator's, so it waits outside the set.
pub const WAITING_BOND: u128 = 10_000;
/// The first churner's bond after it raises it: above an honest validator's (100 000).
pub const ENTERING_BOND: u128 = 150_000;

/// One ledger message of a churner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Bond [`WAITING_BOND`] (nonce 1).
    Wait,
    /// Raise the bond to [`ENTERING_BOND`] (nonce 2).
    Enter,
    /// Unbond all of it (nonce 3).
    Leave,
}

impl Step {
    /// The payload (nonces 1, 2, 3: a step that was not sent leaves a gap, which is allowed).
    pub fn payload(self) -> Payload {
        match self {
            Step::Wait => Payload::Bond(BondChange {
                nonce: 1,
                amount: Amount(WAITING_BOND),
            }),
            Step::Enter => Payload::Bond(BondChange {
                nonce: 2,
                amount: Amount(ENTERING_BOND - WAITING_BOND),
            }),
            Step::Leave => Payload::Unbond(BondChange {
                nonce: 3,
                amount: Amount(ENTERING_BOND),
            }),
        }
    }
}

/// What the churners did and what the validator set went through, per run (summed over seeds).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ChurnReport {
    /// Bond messages the churners' replicas took (published).
    pub bonds: u64,
    /// Unbond messages they took.
    pub unbonds: u64,
    /// Messages not sent: the churner was down, or its replica refused the message.
    pub not_sent: u64,
    /// Heights after which the validator set differed from the one before.
    pub set_changes: u64,
    /// Heights after which some bonded account waited outside the set.
    pub beyond_cap_heights: u64,
    /// Heights after which a churner was in the set.
    pub churner_in_set_heights: u64,
}

impl std::ops::AddAssign for ChurnReport {
    fn add_assign(&mut self, o: ChurnReport) {
        self.bonds += o.bonds;
        self.unbonds += o.unbonds;
        self.not_sent += o.not_sent;
        self.set_changes += o.set_changes;
        self.beyond_cap_heights += o.beyond_cap_heights;
        self.churner_in_set_heights += o.churner_in_set_heights;
    }
}
