//! Every message kind a peer can sign, as one [`Payload`] enum.
//!
//! Worker bundles and reputer loss bundles travel on per-topic gossip channels and land in
//! per-(topic, epoch) windows; everything else is a ledger message keyed by (author, nonce)
//! and lands in the ledger window of the current checkpoint period. Amounts are integer base
//! units ([`Amount`]).

use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};

use crate::codec::Wire;
use crate::ids::{Amount, Hash32, TopicId};
use crate::keys::PublicKey;
use crate::topic::TopicSpec;

/// Hard cap on forecast elements in one bundle (the topic's active cap is lower, see
/// `ModuleParams::max_elements_per_forecast`).
pub const MAX_FORECAST_ELEMENTS: usize = 1_024;
/// Hard cap on worker entries in each list of a reputer loss bundle.
pub const MAX_BUNDLE_WORKERS: usize = 1_024;
/// Hard cap on entries of all lists of a reputer loss bundle together.
pub const MAX_BUNDLE_VALUES: usize = 6_000;
/// Largest encoded worker bundle.
pub const MAX_WORKER_PAYLOAD: usize = 48 * 1024;
/// Largest encoded reputer bundle.
pub const MAX_REPUTER_PAYLOAD: usize = 250 * 1024;
/// Largest encoded ledger message.
pub const MAX_LEDGER_PAYLOAD: usize = 16 * 1024;
/// Largest encoded evidence (two envelopes).
pub const MAX_EVIDENCE_PAYLOAD: usize = 2 * MAX_REPUTER_PAYLOAD + 64;

/// A role a key registers for in a topic.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Inferer and/or forecaster (Allora registers both as "worker").
    Worker,
    /// Reputer: scores values against the ground truth; needs stake.
    Reputer,
}

/// Create a topic. The creator pays `fee` (≥ the create-topic fee) into the topic's fee
/// revenue. The new topic's id is [`TopicId::derived`] from the author and `nonce`.
#[derive(Clone, Debug, PartialEq, Encode, Decode, Serialize, Deserialize)]
pub struct CreateTopic {
    /// Ledger nonce.
    pub nonce: u64,
    /// The definition.
    pub spec: TopicSpec,
    /// Fee paid at creation.
    pub fee: Amount,
}

/// Register or unregister the author for a role in a topic.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct Registration {
    /// Ledger nonce.
    pub nonce: u64,
    /// The topic.
    pub topic: TopicId,
    /// The role.
    pub role: Role,
}

/// One forecast element: the forecasted log10 loss of an inferer's current inference.
#[derive(Clone, Debug, PartialEq, Encode, Decode, Serialize, Deserialize)]
pub struct ForecastElement {
    /// The inferer whose loss is forecast.
    pub inferer: PublicKey,
    /// Forecasted log10 loss.
    pub value: f64,
}

/// A worker's submission for one epoch (Allora's `InferenceForecastBundle`).
#[derive(Clone, Debug, PartialEq, Encode, Decode, Serialize, Deserialize)]
pub struct WorkerBundle {
    /// The topic.
    pub topic: TopicId,
    /// The epoch.
    pub epoch: u64,
    /// The inference (absent for a pure forecaster).
    pub inference: Option<f64>,
    /// Forecasted log10 losses of other inferers this epoch.
    pub forecasts: Vec<ForecastElement>,
}

impl Wire for WorkerBundle {
    const MAX_SIZE: usize = MAX_WORKER_PAYLOAD;
    const NAME: &'static str = "WorkerBundle";
}

/// A commitment to a worker bundle, published inside the submission window of a
/// commit-reveal topic ([`TopicSpec::reveal_window_ms`](crate::topic::TopicSpec)): nobody can
/// read (and copy) the inference before the window closes.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct WorkerCommit {
    /// The topic.
    pub topic: TopicId,
    /// The epoch.
    pub epoch: u64,
    /// [`WorkerReveal::commitment`] of the bundle to be revealed.
    pub commitment: Hash32,
}

/// The bundle behind a [`WorkerCommit`], published in the reveal phase. It counts only if
/// the same worker's finalized commitment for the epoch equals [`WorkerReveal::commitment`].
#[derive(Clone, Debug, PartialEq, Encode, Decode, Serialize, Deserialize)]
pub struct WorkerReveal {
    /// The bundle.
    pub bundle: WorkerBundle,
    /// The secret salt committed with it (fresh random bytes per epoch: without it, anyone
    /// could test guesses of the inference against the commitment).
    pub salt: Hash32,
}

impl WorkerReveal {
    /// blake3 over the bundle's canonical encoding and the salt (domain
    /// `chorus/commit/v1`).
    pub fn commitment(&self) -> Hash32 {
        commitment_of(&self.bundle, &self.salt)
    }
}

/// The commitment to `bundle` with `salt` (see [`WorkerReveal::commitment`]).
pub fn commitment_of(bundle: &WorkerBundle, salt: &Hash32) -> Hash32 {
    Hash32::of_parts(
        "chorus/commit/v1",
        &[&crate::codec::encode(bundle), &salt.0],
    )
}

/// A (worker, log10 loss) entry of a loss bundle.
#[derive(Clone, Debug, PartialEq, Encode, Decode, Serialize, Deserialize)]
pub struct WorkerValue {
    /// The worker.
    pub worker: PublicKey,
    /// Its log10 loss.
    pub value: f64,
}

/// The one-out inferer losses of one forecaster (forecaster's implied inference with each
/// inferer withheld).
#[derive(Clone, Debug, PartialEq, Encode, Decode, Serialize, Deserialize)]
pub struct OneOutInfererForecasterValues {
    /// The forecaster.
    pub forecaster: PublicKey,
    /// Per withheld inferer.
    pub values: Vec<WorkerValue>,
}

/// Losses of every value of an epoch's network inference bundle (Allora's `ValueBundle`).
/// All lists are sorted by worker key and free of duplicates.
#[derive(Clone, Debug, PartialEq, Default, Encode, Decode, Serialize, Deserialize)]
pub struct ValueBundle {
    /// log10 loss of the combined inference.
    pub combined_value: f64,
    /// log10 loss of the naive inference (absent when the epoch used the median path).
    pub naive_value: Option<f64>,
    /// Each inferer's inference.
    pub inferer_values: Vec<WorkerValue>,
    /// Each forecaster's forecast-implied inference.
    pub forecaster_values: Vec<WorkerValue>,
    /// The network inference without each inferer.
    pub one_out_inferer_values: Vec<WorkerValue>,
    /// The network inference without each forecaster.
    pub one_out_forecaster_values: Vec<WorkerValue>,
    /// The naive inference with each forecaster added.
    pub one_in_forecaster_values: Vec<WorkerValue>,
    /// Forecast-implied inferences with one inferer withheld.
    pub one_out_inferer_forecaster_values: Vec<OneOutInfererForecasterValues>,
}

impl ValueBundle {
    /// Total number of values.
    pub fn len(&self) -> usize {
        1 + usize::from(self.naive_value.is_some())
            + self.inferer_values.len()
            + self.forecaster_values.len()
            + self.one_out_inferer_values.len()
            + self.one_out_forecaster_values.len()
            + self.one_in_forecaster_values.len()
            + self
                .one_out_inferer_forecaster_values
                .iter()
                .map(|f| f.values.len())
                .sum::<usize>()
    }

    /// Never empty: the combined value is always present.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Every value, in a fixed order.
    pub fn values(&self) -> impl Iterator<Item = f64> + '_ {
        std::iter::once(self.combined_value)
            .chain(self.naive_value)
            .chain(self.inferer_values.iter().map(|v| v.value))
            .chain(self.forecaster_values.iter().map(|v| v.value))
            .chain(self.one_out_inferer_values.iter().map(|v| v.value))
            .chain(self.one_out_forecaster_values.iter().map(|v| v.value))
            .chain(self.one_in_forecaster_values.iter().map(|v| v.value))
            .chain(
                self.one_out_inferer_forecaster_values
                    .iter()
                    .flat_map(|f| f.values.iter().map(|v| v.value)),
            )
    }
}

/// A reputer's loss report for one epoch.
#[derive(Clone, Debug, PartialEq, Encode, Decode, Serialize, Deserialize)]
pub struct ReputerBundle {
    /// The topic.
    pub topic: TopicId,
    /// The epoch evaluated.
    pub epoch: u64,
    /// The ground truth the reputer used.
    pub ground_truth: f64,
    /// The losses.
    pub losses: ValueBundle,
}

/// Send tokens.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct Transfer {
    /// Ledger nonce.
    pub nonce: u64,
    /// Recipient.
    pub to: PublicKey,
    /// Amount.
    pub amount: Amount,
}

/// Add to a topic's fee revenue (consumers pay for the inferences they use).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct FundTopic {
    /// Ledger nonce.
    pub nonce: u64,
    /// The topic.
    pub topic: TopicId,
    /// Amount.
    pub amount: Amount,
}

/// Stake changes of reputers and delegators in a topic.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct StakeChange {
    /// Ledger nonce.
    pub nonce: u64,
    /// The topic.
    pub topic: TopicId,
    /// The reputer staked upon (the author itself for own stake).
    pub reputer: PublicKey,
    /// Amount.
    pub amount: Amount,
}

/// Validator bond changes.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct BondChange {
    /// Ledger nonce.
    pub nonce: u64,
    /// Amount.
    pub amount: Amount,
}

/// A named value a governance proposal may set.
#[derive(Clone, Debug, PartialEq, Encode, Decode, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ParamValue {
    /// An integer parameter (counts, milliseconds, amounts below 2^64).
    Int(u64),
    /// A real parameter.
    Real(f64),
    /// An amount parameter.
    Amount(Amount),
    /// A flag.
    Flag(bool),
}

/// What a governance proposal does when it passes.
#[derive(Clone, Debug, PartialEq, Encode, Decode, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum GovernanceAction {
    /// Text only (signalling).
    Text,
    /// Set module parameters by field name.
    SetParams {
        /// (field, value) pairs.
        changes: Vec<(String, ParamValue)>,
    },
    /// Set topic fields by name (p_norm, alpha_regret, epsilon, …).
    UpdateTopic {
        /// The topic.
        topic: TopicId,
        /// (field, value) pairs.
        changes: Vec<(String, ParamValue)>,
    },
}

/// Open a governance proposal. Its id is blake3 of its envelope.
#[derive(Clone, Debug, PartialEq, Encode, Decode, Serialize, Deserialize)]
pub struct GovernanceProposal {
    /// Ledger nonce.
    pub nonce: u64,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Effect when passed.
    pub action: GovernanceAction,
}

/// A vote choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VoteOption {
    /// For.
    Yes,
    /// Against.
    No,
    /// Counted for quorum only.
    Abstain,
}

/// Names the owner of a worker's or reputer's key (Allora v0.10's owner and operator): the
/// owner receives the liquid rewards the key earns. Signed by the key itself while it has no
/// owner, or by its current owner to hand it to another owner.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct SetOwner {
    /// Ledger nonce.
    pub nonce: u64,
    /// The operating key (the worker or reputer).
    pub actor: PublicKey,
    /// The new owner (the actor itself: no separate owner).
    pub owner: PublicKey,
}

/// A stake-weighted vote on a proposal.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct GovernanceVote {
    /// Ledger nonce.
    pub nonce: u64,
    /// Message id of the proposal's envelope.
    pub proposal: Hash32,
    /// The choice.
    pub option: VoteOption,
}

/// What was equivocated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceKind {
    /// Two different worker bundles for one (topic, epoch).
    WorkerBundle,
    /// Two different reputer bundles for one (topic, epoch).
    ReputerBundle,
    /// Two different ledger messages with one nonce.
    LedgerNonce,
    /// Two different consensus votes of one validator for one (height, round, step).
    ConsensusVote,
}

/// Proof that one key signed two conflicting messages: both signed messages, as received.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct Evidence {
    /// What was equivocated.
    pub kind: EvidenceKind,
    /// First signed message (canonical bytes).
    pub first: Vec<u8>,
    /// Second signed message (canonical bytes).
    pub second: Vec<u8>,
}

/// Every signed message.
#[derive(Clone, Debug, PartialEq, Encode, Decode, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Payload {
    /// Create a topic.
    CreateTopic(CreateTopic),
    /// Register for a role.
    Register(Registration),
    /// Unregister from a role.
    Unregister(Registration),
    /// Inference and forecasts for an epoch.
    WorkerBundle(WorkerBundle),
    /// Losses for an epoch.
    ReputerBundle(ReputerBundle),
    /// Send tokens.
    Transfer(Transfer),
    /// Fund a topic.
    FundTopic(FundTopic),
    /// Stake on a reputer (self or delegated).
    Stake(StakeChange),
    /// Start unstaking (released after the delay).
    Unstake(StakeChange),
    /// Bond as a validator.
    Bond(BondChange),
    /// Start unbonding.
    Unbond(BondChange),
    /// Governance proposal.
    Propose(GovernanceProposal),
    /// Governance vote.
    Vote(GovernanceVote),
    /// Equivocation evidence.
    Evidence(Evidence),
    /// Name or hand over the owner of a worker's or reputer's key.
    SetOwner(SetOwner),
    /// Commitment to a worker bundle (commit-reveal topics).
    WorkerCommit(WorkerCommit),
    /// The committed worker bundle and its salt (commit-reveal topics).
    WorkerReveal(WorkerReveal),
}

/// Coarse kind of a payload, which decides its channel and window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PayloadClass {
    /// Worker window of (topic, epoch).
    Worker,
    /// Reputer window of (topic, epoch).
    Reputer,
    /// Ledger window.
    Ledger,
}

impl Payload {
    /// Which window family this payload belongs to.
    pub fn class(&self) -> PayloadClass {
        match self {
            Payload::WorkerBundle(_) | Payload::WorkerCommit(_) | Payload::WorkerReveal(_) => {
                PayloadClass::Worker
            }
            Payload::ReputerBundle(_) => PayloadClass::Reputer,
            _ => PayloadClass::Ledger,
        }
    }

    /// The worker bundle's (topic, epoch) for bundles, commitments and reveals.
    pub fn worker_epoch(&self) -> Option<(TopicId, u64)> {
        match self {
            Payload::WorkerBundle(b) | Payload::WorkerReveal(WorkerReveal { bundle: b, .. }) => {
                Some((b.topic, b.epoch))
            }
            Payload::WorkerCommit(c) => Some((c.topic, c.epoch)),
            _ => None,
        }
    }

    /// The ledger nonce, for ledger messages.
    pub fn nonce(&self) -> Option<u64> {
        match self {
            Payload::CreateTopic(m) => Some(m.nonce),
            Payload::Register(m) | Payload::Unregister(m) => Some(m.nonce),
            Payload::WorkerBundle(_)
            | Payload::WorkerCommit(_)
            | Payload::WorkerReveal(_)
            | Payload::ReputerBundle(_)
            | Payload::Evidence(_) => None,
            Payload::Transfer(m) => Some(m.nonce),
            Payload::FundTopic(m) => Some(m.nonce),
            Payload::Stake(m) | Payload::Unstake(m) => Some(m.nonce),
            Payload::Bond(m) | Payload::Unbond(m) => Some(m.nonce),
            Payload::Propose(m) => Some(m.nonce),
            Payload::Vote(m) => Some(m.nonce),
            Payload::SetOwner(m) => Some(m.nonce),
        }
    }

    /// Largest accepted encoding of this kind.
    pub fn max_size(&self) -> usize {
        match self {
            Payload::WorkerBundle(_) | Payload::WorkerCommit(_) | Payload::WorkerReveal(_) => {
                MAX_WORKER_PAYLOAD
            }
            Payload::ReputerBundle(_) => MAX_REPUTER_PAYLOAD,
            Payload::Evidence(_) => MAX_EVIDENCE_PAYLOAD,
            _ => MAX_LEDGER_PAYLOAD,
        }
    }

    /// A short name of the kind, for logs and metrics.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Payload::CreateTopic(_) => "create_topic",
            Payload::Register(_) => "register",
            Payload::Unregister(_) => "unregister",
            Payload::WorkerBundle(_) => "worker_bundle",
            Payload::ReputerBundle(_) => "reputer_bundle",
            Payload::Transfer(_) => "transfer",
            Payload::FundTopic(_) => "fund_topic",
            Payload::Stake(_) => "stake",
            Payload::Unstake(_) => "unstake",
            Payload::Bond(_) => "bond",
            Payload::Unbond(_) => "unbond",
            Payload::Propose(_) => "propose",
            Payload::Vote(_) => "vote",
            Payload::Evidence(_) => "evidence",
            Payload::SetOwner(_) => "set_owner",
            Payload::WorkerCommit(_) => "worker_commit",
            Payload::WorkerReveal(_) => "worker_reveal",
        }
    }
}

impl Wire for Payload {
    const MAX_SIZE: usize = MAX_EVIDENCE_PAYLOAD;
    const NAME: &'static str = "Payload";
}
