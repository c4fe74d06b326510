//! The REST API's answers as typed documents (shapes in `docs/api.md`): the node builds them,
//! clients (the CLI, the testbeds) read them. Amounts are decimal strings of base units,
//! addresses and hashes 64 lowercase hex characters, as on the wire.

use std::collections::BTreeMap;

use chorus_crdt::proof::Variant;
use chorus_protocol::ids::{Amount, Hash32, NetworkId};
use chorus_protocol::inference::NetworkInference;
use chorus_protocol::keys::PublicKey;
use chorus_protocol::messages::{GovernanceAction, VoteOption};
use chorus_protocol::topic::TopicSpec;
use serde::{Deserialize, Serialize};

/// `GET /v1/status`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// The network's name.
    pub network: String,
    /// The network id.
    pub network_id: NetworkId,
    /// This node's address.
    pub address: PublicKey,
    /// This node's libp2p peer id.
    pub peer_id: String,
    /// Connected peers.
    pub peers: usize,
    /// Listen addresses.
    pub listen: Vec<String>,
    /// Next checkpoint height.
    pub height: u64,
    /// The latest decided checkpoint id (hex).
    pub tip: Hash32,
    /// The ledger's state root.
    pub ledger_root: Hash32,
    /// The roles this node's key holds.
    pub roles: Roles,
    /// The last submission per (topic, kind).
    pub submissions: Vec<Submission>,
    /// "Am I working?": one entry per (topic, role) this node runs or its key holds.
    #[serde(default)]
    pub duties: Vec<Duty>,
    /// This node's balance.
    pub balance: Amount,
    /// This node's validator bond ("0" if none).
    pub bond: Amount,
    /// This node's total rewards.
    pub rewards: Amount,
    /// The nonce of this node's next ledger message.
    pub next_nonce: u64,
    /// Milliseconds since the node started.
    pub uptime_ms: u64,
    /// The token supply.
    pub supply: Supply,
    /// Set when this node cannot apply a checkpoint the network decided: it is stuck before
    /// that height.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stalled: Option<Stalled>,
    /// Peers' median clock minus this node's, ms (`None` until 3 peers answered).
    #[serde(default)]
    pub clock_offset_ms: Option<i64>,
    /// Whether that offset is beyond the network's `max_clock_skew_ms`: the node then passes
    /// up its turns to propose (fix the host's time synchronisation).
    #[serde(default)]
    pub clock_off: bool,
}

/// A decided height this node cannot apply.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stalled {
    /// The height.
    pub height: u64,
    /// Why.
    pub reason: String,
}

/// The roles of a node's key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Roles {
    /// Topics it works on.
    pub worker: Vec<u64>,
    /// Topics it reputes.
    pub reputer: Vec<u64>,
    /// Whether it is a validator.
    pub validator: bool,
}

/// One submission this node made (or skipped), for `status`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Submission {
    /// Topic, if the payload has one.
    pub topic: Option<u64>,
    /// Epoch, if the payload has one.
    pub epoch: Option<u64>,
    /// Payload kind (`worker_bundle`, `transfer`, …).
    pub kind: String,
    /// Whether this node accepted it.
    pub accepted: bool,
    /// Why not, if not.
    pub reason: Option<String>,
    /// When.
    pub time_ms: u64,
}

/// One (topic, role) of this node in `status`: whether it can work, what it last did, what
/// it last earned, and what is wrong if anything is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Duty {
    /// Topic id.
    pub topic: u64,
    /// `worker` or `reputer`.
    pub role: String,
    /// This node runs the role (its config has it).
    pub configured: bool,
    /// The key is registered for it in the ledger.
    pub registered: bool,
    /// The balance covers the data-sending fee each counted entry pays at settlement.
    pub funded: bool,
    /// Reputers: the key's own stake in the topic ("0" for workers).
    pub stake: Amount,
    /// The role's window now (workers: the current epoch's; reputers: the epoch whose truth
    /// is due).
    pub window: Option<SubmissionWindow>,
    /// The last submission (or skipped epoch) of this role.
    pub last: Option<Submission>,
    /// Workers: whether the last submitted epoch's finalized network inference counts this
    /// key (none until that epoch is finalized here).
    pub counted: Option<bool>,
    /// The last reward for this role seen since the node started: (epoch, amount).
    pub last_reward: Option<(u64, Amount)>,
    /// What is wrong, if something is (the first problem found, with what to do).
    pub problem: Option<String>,
}

/// The token supply in `status`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Supply {
    /// At genesis.
    pub genesis: Amount,
    /// Minted since.
    pub minted: Amount,
    /// Slashed since.
    pub slashed: Amount,
    /// Every token held anywhere.
    pub total: Amount,
    /// Whether `total = genesis + minted - slashed`.
    pub conserved: bool,
}

/// `GET /v1/topics/{id}` (and each entry of `GET /v1/topics`): the spec and the topic's state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Topic {
    /// Topic id.
    pub id: u64,
    /// The spec, as created.
    #[serde(flatten)]
    pub spec: TopicSpec,
    /// Its creator.
    pub creator: PublicKey,
    /// Its emission weight (none until first computed).
    pub weight: Option<f64>,
    /// Whether it runs.
    pub active: bool,
    /// Fees paid to it.
    pub fee_revenue: Amount,
    /// Undistributed rewards.
    pub reward_pool: Amount,
    /// Total stake on it.
    pub stake: Amount,
    /// Registered workers.
    pub workers: usize,
    /// Registered reputers.
    pub reputers: usize,
    /// The epoch open now (none before the topic starts).
    pub current_epoch: Option<u64>,
    /// The last epoch with a finalized inference.
    pub last_finalized_epoch: Option<u64>,
}

/// `GET /v1/topics/{id}/inference`: one network inference with where it came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Inference {
    /// Topic id.
    pub topic: u64,
    /// Epoch.
    pub epoch: u64,
    /// Finalized by a checkpoint (else: this node's own at window close).
    pub finalized: bool,
    /// The finalizing checkpoint's height.
    pub checkpoint_height: Option<u64>,
    /// Which bundle (`?variant=`); absent for the regular one.
    #[serde(default, skip_serializing_if = "Variant::is_regular")]
    pub variant: Variant,
    /// The values, with Allora's field names.
    #[serde(flatten)]
    pub bundle: NetworkInference,
}

/// `GET /v1/topics/{id}/scores`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    /// Topic id.
    pub topic: u64,
    /// EMA scores of inferers.
    pub inferers: BTreeMap<String, f64>,
    /// EMA scores of forecasters.
    pub forecasters: BTreeMap<String, f64>,
    /// EMA scores of reputers.
    pub reputers: BTreeMap<String, f64>,
    /// Network regrets.
    pub regrets: Regrets,
    /// The topic's initial regret.
    pub initial_regret: f64,
    /// Reputers' listening coefficients.
    pub listening_coefficients: BTreeMap<String, f64>,
    /// The last network loss, if any.
    pub previous_network_loss: Option<f64>,
}

/// The network regrets in `scores`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Regrets {
    /// Inferer regrets.
    pub inferer: BTreeMap<String, f64>,
    /// Forecaster regrets.
    pub forecaster: BTreeMap<String, f64>,
    /// Naive inferer regrets.
    pub naive: BTreeMap<String, f64>,
}

/// `GET /v1/topics/{id}/leaderboard`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Leaderboard {
    /// Topic id.
    pub topic: u64,
    /// By score (descending), then address.
    pub entries: Vec<LeaderboardEntry>,
}

/// One row of a leaderboard.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LeaderboardEntry {
    /// Participant.
    pub address: String,
    /// `inferer`, `forecaster` or `reputer`.
    pub role: String,
    /// EMA score.
    pub score_ema: f64,
    /// Rewards paid to it in this topic (every role), base units.
    pub rewards: Amount,
}

/// `GET /v1/accounts/{address}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Account {
    /// The address.
    pub address: PublicKey,
    /// Balance.
    pub balance: Amount,
    /// The last applied nonce.
    pub nonce: u64,
    /// The nonce of the next ledger message (counts this node's pending ones).
    pub next_nonce: u64,
    /// Total rewards.
    pub rewards: Amount,
    /// Validator bond ("0" if none).
    pub bond: Amount,
    /// Whether the bond puts it in the validator set (the `max_validators` largest bonds);
    /// a bond outside it waits, neither voting nor earning.
    #[serde(default)]
    pub in_validator_set: bool,
    /// Its stakes, own and delegated.
    pub stakes: Vec<Stake>,
    /// What it unbonded or unstaked and has not got back yet, in order of release.
    #[serde(default)]
    pub pending_releases: Vec<PendingRelease>,
    /// The owner its liquid rewards go to (`chorus set-owner`), if not itself.
    #[serde(default)]
    pub owner: Option<PublicKey>,
    /// The keys it owns.
    #[serde(default)]
    pub operators: Vec<PublicKey>,
}

/// Unbonded or unstaked tokens on their way back to an account's balance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PendingRelease {
    /// Amount.
    pub amount: Amount,
    /// When it becomes liquid (unix ms, checkpoint clock: released by the first checkpoint
    /// whose period ends after it).
    pub at_ms: u64,
}

/// One stake of an account.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stake {
    /// Topic id.
    pub topic: u64,
    /// The reputer staked on.
    pub reputer: PublicKey,
    /// Amount.
    pub amount: Amount,
}

/// `GET /v1/checkpoints/latest`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LatestCheckpoint {
    /// Height.
    pub height: u64,
    /// Checkpoint id.
    pub id: Hash32,
    /// The previous checkpoint's id (hex).
    pub previous: Hash32,
    /// Ledger root after it.
    pub ledger_root: Hash32,
    /// Windows it closes.
    pub windows: usize,
    /// Entries (window heads) in them.
    pub entries: usize,
    /// Validator signatures on its certificate.
    pub signers: usize,
    /// The validators whose signatures are on its certificate (ascending).
    #[serde(default)]
    pub signed_by: Vec<PublicKey>,
}

/// `POST /v1/submit`: the node's decision on a submitted envelope.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmitResult {
    /// Message id (hex).
    pub id: Hash32,
    /// Accepted locally, persisted and published.
    pub accepted: bool,
    /// Why not, if not.
    pub reason: Option<String>,
}

/// `POST /v1/submit?wait=S`: the submission's result and what the ledger did with it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SubmitVerdict {
    /// The gossip-level result.
    #[serde(flatten)]
    pub result: SubmitResult,
    /// `applied`, `refused`, or `pending` (no checkpoint decided within the wait; not sent for
    /// a message the node did not accept).
    pub ledger: Option<String>,
    /// The checkpoint height that applied or refused it.
    pub height: Option<u64>,
    /// The ledger's reason for a refusal.
    pub ledger_reason: Option<String>,
}

/// `GET /v1/params`: the module parameters in force (governance changes them).
pub type Params = chorus_protocol::params::ModuleParams;

/// One vote on a proposal, with the voter's weight now (or at the tally).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProposalVote {
    /// The voter.
    pub voter: PublicKey,
    /// Its choice.
    pub option: VoteOption,
    /// Its weight: validator bond plus the reputer stake it owns or delegated.
    pub weight: Amount,
}

/// `GET /v1/proposals/{id}` (and each entry of `GET /v1/proposals`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Proposal {
    /// Its id: the message id of the proposing envelope.
    pub id: Hash32,
    /// Who proposed it.
    pub proposer: PublicKey,
    /// Title.
    pub title: String,
    /// What it does if it passes.
    pub action: GovernanceAction,
    /// The last checkpoint height whose votes count; tallied when that height is applied.
    pub voting_ends: u64,
    /// `voting`, `passed`, `rejected`, or `failed` (passed, but its action did not apply:
    /// see `error`).
    pub status: String,
    /// Weight for (so far, while voting).
    pub yes: Amount,
    /// Weight against.
    pub no: Amount,
    /// Weight abstaining (counts for the quorum).
    pub abstain: Amount,
    /// Weight the votes cast must reach: a third of all voting weight.
    pub quorum: Amount,
    /// Why a passed proposal's action did not apply.
    pub error: Option<String>,
    /// The votes, by voter.
    pub votes: Vec<ProposalVote>,
}

/// One submission window of a topic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmissionWindow {
    /// The epoch (Allora's nonce) the window is for.
    pub epoch: u64,
    /// Opens, unix ms.
    pub open_ms: u64,
    /// Closes (exclusive), unix ms.
    pub close_ms: u64,
    /// Whether it is open now.
    pub open: bool,
}

/// `GET /v1/topics/{id}/bundles[?epoch=E]`: the worker messages this node holds for one
/// epoch of a topic — what anyone who follows the topic's gossip sees while the window is
/// open. In a commit-reveal topic only commitments are there until the reveal phase.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WindowBundles {
    /// Topic id.
    pub topic: u64,
    /// The epoch (the current one unless asked).
    pub epoch: u64,
    /// Whether the topic runs commit-reveal.
    pub commit_reveal: bool,
    /// Whether this node holds the epoch's worker window (a finalized window is dropped
    /// from memory: its counted inferences are in `GET /v1/topics/{id}/inference?epoch=E`).
    pub held: bool,
    /// The messages, by worker then kind.
    pub bundles: Vec<HeldBundle>,
}

/// One worker message held in a window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeldBundle {
    /// The worker's key (hex).
    pub worker: String,
    /// `bundle`, `commit` or `reveal`.
    pub kind: String,
    /// The inference (bundles and reveals).
    pub inference: Option<f64>,
    /// How many forecast elements (bundles and reveals).
    pub forecasts: usize,
    /// The commitment (commits: the committed hash; reveals: the hash they open).
    pub commitment: Option<String>,
}

/// `GET /v1/topics/{id}/window`: the topic's submission windows now (Allora's
/// unfulfilled-nonce queries, with times instead of block heights). Validation accepts
/// submissions up to the network's clock-skew allowance (`max_clock_skew_ms`) outside them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// Topic id.
    pub topic: u64,
    /// The node's clock, unix ms.
    pub now_ms: u64,
    /// The worker submission window of the current epoch (none before the topic starts);
    /// in a commit-reveal topic, where commitments are taken.
    pub worker: Option<SubmissionWindow>,
    /// The reveal phase of the current epoch (commit-reveal topics only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reveal: Option<SubmissionWindow>,
    /// When the next epoch's worker window opens, unix ms.
    pub next_worker_open_ms: u64,
    /// The reputer window open now, for the epoch whose ground truth is due (none before
    /// the first one opens).
    pub reputer: Option<SubmissionWindow>,
}

/// One line of `GET /v1/accounts/{address}/statements`: what an account did and earned in
/// one role in one settled epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Statement {
    /// Topic id.
    pub topic: u64,
    /// Epoch.
    pub epoch: u64,
    /// The checkpoint height that settled it.
    pub height: u64,
    /// `inferer`, `forecaster`, `reputer` or `delegator`.
    pub role: String,
    /// The instant score (workers: the one-out score T; reputers: T_m); none for delegators.
    pub score: Option<f64>,
    /// The EMA score after this epoch.
    pub ema_score: Option<f64>,
    /// Inferers: the raw weight in the epoch's network inference.
    pub weight: Option<f64>,
    /// Its share of the role's reward this epoch.
    pub reward_fraction: Option<f64>,
    /// What it was paid (base units; reputers and delegators into their stake).
    pub payout: Amount,
}
