//! The cloneable handle to a running node: commands with oneshot replies, a broadcast of
//! network inferences for live streams, and the metrics.

use std::sync::Arc;

use chorus_protocol::ids::{Hash32, TopicId};
use chorus_protocol::keys::PublicKey;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::api::types;
use crate::metrics::NodeMetrics;

/// Commands waiting for the actor. Full queue: callers wait (backpressure); the API answers
/// 503 if the actor is gone.
pub const COMMAND_QUEUE: usize = 256;
/// Inference events buffered per live subscriber; a subscriber that falls further behind skips
/// ahead (drop oldest) and is told how many it missed.
pub const INFERENCE_EVENTS: usize = 1_024;

/// A read-only question for the node. The [`Answer`] is the API document of its route (shapes
/// in `docs/api.md`); the typed methods of [`NodeHandle`] ask one and return its document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Query {
    /// `GET /v1/status`.
    Status,
    /// `GET /v1/topics`.
    Topics,
    /// `GET /v1/topics/{id}`.
    Topic(TopicId),
    /// `GET /v1/topics/{id}/inference[?epoch=E][&variant=V]`.
    Inference {
        /// The topic.
        topic: TopicId,
        /// A specific epoch (latest if `None`).
        epoch: Option<u64>,
        /// Which bundle.
        variant: chorus_crdt::proof::Variant,
    },
    /// `GET /v1/topics/{id}/scores`.
    Scores(TopicId),
    /// `GET /v1/topics/{id}/leaderboard`.
    Leaderboard(TopicId),
    /// `GET /v1/accounts/{address}`.
    Account(PublicKey),
    /// `GET /v1/checkpoints/latest`.
    LatestCheckpoint,
    /// `GET /v1/topics/{id}/window`.
    Window(TopicId),
    /// `GET /v1/topics/{id}/bundles[?epoch=E]`.
    Bundles {
        /// The topic.
        topic: TopicId,
        /// The epoch (the current one if `None`).
        epoch: Option<u64>,
    },
    /// `GET /v1/params`.
    Params,
    /// `GET /v1/proposals`.
    Proposals,
    /// `GET /v1/proposals/{id}`.
    Proposal(Hash32),
    /// `GET /v1/accounts/{address}/statements` (read from the store).
    Statements(StatementsQuery),
    /// `GET /v1/topics/{id}/inference?proof=true[&epoch=E][&trusted=H]` (read from the store).
    InferenceProof {
        /// The topic.
        topic: TopicId,
        /// The epoch (the latest finalized if `None`).
        epoch: Option<u64>,
        /// The height of the checkpoint the verifier trusts (the genesis if `None`).
        trusted: Option<u64>,
        /// Which bundle.
        variant: chorus_crdt::proof::Variant,
    },
    /// What a stepped clock waits for ([`NodeHandle::progress`]; no REST route).
    Progress(Vec<chorus_crdt::window::WindowKey>),
}

/// Which statement lines to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatementsQuery {
    /// The account.
    pub address: PublicKey,
    /// One topic (all if `None`).
    pub topic: Option<TopicId>,
    /// First epoch (inclusive).
    pub from: Option<u64>,
    /// Last epoch (inclusive).
    pub to: Option<u64>,
}

/// The node's answer to a [`Query`]: the document of the route (`api::types`), serialized as
/// that document alone.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
#[allow(clippy::large_enum_variant)]
pub enum Answer {
    /// [`Query::Status`].
    Status(Box<types::Status>),
    /// [`Query::Topics`].
    Topics(Vec<types::Topic>),
    /// [`Query::Topic`].
    Topic(Box<types::Topic>),
    /// [`Query::Inference`].
    Inference(Box<types::Inference>),
    /// [`Query::InferenceProof`].
    InferenceProof(Box<chorus_crdt::proof::InferenceProof>),
    /// [`Query::Scores`].
    Scores(Box<types::Scores>),
    /// [`Query::Leaderboard`].
    Leaderboard(types::Leaderboard),
    /// [`Query::Account`].
    Account(Box<types::Account>),
    /// [`Query::LatestCheckpoint`].
    LatestCheckpoint(types::LatestCheckpoint),
    /// [`Query::Window`].
    Window(types::Window),
    /// [`Query::Bundles`].
    Bundles(Box<types::WindowBundles>),
    /// [`Query::Params`].
    Params(Box<types::Params>),
    /// [`Query::Proposals`].
    Proposals(Vec<types::Proposal>),
    /// [`Query::Proposal`].
    Proposal(Box<types::Proposal>),
    /// [`Query::Statements`].
    Statements(Vec<types::Statement>),
    /// [`Query::Progress`].
    Progress(Box<Progress>),
}

/// How far a node is: what `chorus devnet` reads of every node before it moves the stepped
/// clock on (cheap: no state root, no views).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Progress {
    /// The ledger's next height (every height below it is applied).
    pub height: u64,
    /// Entries held in each asked window, in the order asked (0 for a window not held).
    pub held: Vec<usize>,
    /// The last submission (or skipped epoch) per (topic, kind), as in `status`.
    pub submissions: Vec<types::Submission>,
}

/// Why a query has no answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// The thing asked for does not exist (404).
    #[error("not found: {0}")]
    NotFound(String),
    /// The query cannot be answered as asked (400).
    #[error("{0}")]
    Invalid(String),
    /// The node is shutting down or gone (503).
    #[error("the node is not running")]
    Unavailable,
    /// The node answered another kind of document than the query asks for (a bug of the
    /// answering side, e.g. a fake node's responder).
    #[error("the node answered {0} with another kind of document")]
    WrongAnswer(&'static str),
}

/// What happened to a submitted envelope (the API's answer document).
pub use crate::api::types::SubmitResult;

/// A network inference as streamed to subscribers (`GET /v1/topics/{id}/stream`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InferenceEvent {
    /// Topic.
    pub topic: TopicId,
    /// Epoch.
    pub epoch: u64,
    /// Combined value.
    pub combined_value: f64,
    /// Naive value, when known.
    pub naive_value: Option<f64>,
    /// `false`: this node's own inference at window close; `true`: from a finalized checkpoint.
    pub finalized: bool,
    /// The checkpoint height that finalized it.
    pub checkpoint_height: Option<u64>,
    /// Node time (unix ms) of the event.
    pub time_ms: u64,
}

/// A command for the actor.
#[derive(Debug)]
pub enum Command {
    /// Answer a query.
    Query(Query, oneshot::Sender<Result<Answer, QueryError>>),
    /// Validate, persist and publish a signed envelope (canonical bytes).
    Submit(Vec<u8>, oneshot::Sender<SubmitResult>),
    /// Stop: flush storage, close connections, end the actor.
    Shutdown(oneshot::Sender<()>),
}

/// The cloneable handle.
#[derive(Clone, Debug)]
pub struct NodeHandle {
    commands: mpsc::Sender<Command>,
    inferences: broadcast::Sender<InferenceEvent>,
    metrics: Arc<NodeMetrics>,
    ledger: Option<LedgerLog>,
}

/// The ledger events of applied heights: a broadcast for live subscribers (at most
/// [`LEDGER_LIVE`] heights queued for one), and the newest heights for subscribers that resume
/// (`/v1/events` with `Last-Event-ID`): at most [`LEDGER_EVENTS`] heights and
/// [`LEDGER_EVENTS_HELD`] events between them.
#[derive(Clone, Debug)]
pub struct LedgerLog {
    tx: broadcast::Sender<LedgerRecord>,
    recent: Arc<std::sync::Mutex<Recent>>,
}

/// The held heights and the events they hold ([`LedgerRecord::weight`]).
#[derive(Debug, Default)]
struct Recent {
    records: std::collections::VecDeque<LedgerRecord>,
    events: usize,
}

impl Default for LedgerLog {
    fn default() -> Self {
        LedgerLog {
            tx: broadcast::channel(LEDGER_LIVE).0,
            recent: Arc::default(),
        }
    }
}

impl LedgerLog {
    /// Keep `rec` among the recent heights and send it to live subscribers.
    pub fn publish(&self, rec: LedgerRecord) {
        if let Ok(mut recent) = self.recent.lock() {
            recent.events += rec.weight();
            recent.records.push_back(rec.clone());
            while recent.records.len() > LEDGER_EVENTS
                || (recent.events > LEDGER_EVENTS_HELD && recent.records.len() > 1)
            {
                if let Some(old) = recent.records.pop_front() {
                    recent.events = recent.events.saturating_sub(old.weight());
                }
            }
        }
        let _ = self.tx.send(rec);
    }

    /// Live records from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<LedgerRecord> {
        self.tx.subscribe()
    }

    /// The held records above `height`, and how many heights above it are no longer held.
    pub fn since(&self, height: u64) -> (Vec<LedgerRecord>, u64) {
        let Ok(recent) = self.recent.lock() else {
            return (vec![], 0);
        };
        let held: Vec<LedgerRecord> = recent
            .records
            .iter()
            .filter(|r| r.height > height)
            .cloned()
            .collect();
        let missed = held.first().map_or(0, |first| {
            first.height.saturating_sub(height.saturating_add(1))
        });
        (held, missed)
    }
}

/// Most heights of ledger events held for subscribers that resume (`/v1/events`); a
/// subscriber further behind is told how many it missed.
pub const LEDGER_EVENTS: usize = 1_024;

/// Most events held across those heights (the newest height is always held). A height holds
/// a reward per paid participant and a score per scored one: some 2 500 events (300 KiB) at 10
/// topics × 100 workers, where 1 024 heights held ~300 MiB. At ~130 B an event, this is ~4 MiB.
pub const LEDGER_EVENTS_HELD: usize = 32_768;

/// Heights queued for one live subscriber before it lags (skips ahead, told how many): a
/// subscriber that stops reading holds at most these.
pub const LEDGER_LIVE: usize = 64;

/// What the ledger did at one checkpoint height (for observers such as the devnet report).
#[derive(Clone, Debug, PartialEq)]
pub struct LedgerRecord {
    /// Consensus height.
    pub height: u64,
    /// The events.
    pub events: Arc<Vec<chorus_crdt::ledger::LedgerEvent>>,
}

impl LedgerRecord {
    /// What it weighs against [`LEDGER_EVENTS_HELD`]: its events, and each scored actor.
    fn weight(&self) -> usize {
        use chorus_crdt::ledger::LedgerEvent;
        self.events
            .iter()
            .map(|e| match e {
                LedgerEvent::Scored { actors, .. } => 1 + actors.len(),
                _ => 1,
            })
            .sum()
    }
}

impl NodeHandle {
    /// A handle over the actor's channels.
    pub fn new(
        commands: mpsc::Sender<Command>,
        inferences: broadcast::Sender<InferenceEvent>,
        metrics: Arc<NodeMetrics>,
    ) -> Self {
        NodeHandle {
            commands,
            inferences,
            metrics,
            ledger: None,
        }
    }

    /// Also offer the ledger events of every applied height.
    pub fn with_ledger_events(mut self, log: LedgerLog) -> Self {
        self.ledger = Some(log);
        self
    }

    /// Ledger events of every applied height from now on (if the node offers them).
    pub fn subscribe_ledger(&self) -> Option<broadcast::Receiver<LedgerRecord>> {
        self.ledger.as_ref().map(LedgerLog::subscribe)
    }

    /// The node's ledger log (if it offers ledger events).
    pub fn ledger_log(&self) -> Option<&LedgerLog> {
        self.ledger.as_ref()
    }

    /// Ask the node.
    pub async fn query(&self, q: Query) -> Result<Answer, QueryError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Query(q, tx))
            .await
            .map_err(|_| QueryError::Unavailable)?;
        rx.await.map_err(|_| QueryError::Unavailable)?
    }

    /// `GET /v1/status`.
    pub async fn status(&self) -> Result<types::Status, QueryError> {
        match self.query(Query::Status).await? {
            Answer::Status(s) => Ok(*s),
            _ => Err(QueryError::WrongAnswer("status")),
        }
    }

    /// How far the node is, with the entries it holds in `windows`.
    pub async fn progress(
        &self,
        windows: Vec<chorus_crdt::window::WindowKey>,
    ) -> Result<Progress, QueryError> {
        match self.query(Query::Progress(windows)).await? {
            Answer::Progress(p) => Ok(*p),
            _ => Err(QueryError::WrongAnswer("progress")),
        }
    }

    /// `GET /v1/topics`.
    pub async fn topics(&self) -> Result<Vec<types::Topic>, QueryError> {
        match self.query(Query::Topics).await? {
            Answer::Topics(t) => Ok(t),
            _ => Err(QueryError::WrongAnswer("topics")),
        }
    }

    /// `GET /v1/topics/{id}`.
    pub async fn topic(&self, topic: TopicId) -> Result<types::Topic, QueryError> {
        match self.query(Query::Topic(topic)).await? {
            Answer::Topic(t) => Ok(*t),
            _ => Err(QueryError::WrongAnswer("topic")),
        }
    }

    /// `GET /v1/topics/{id}/inference[?epoch=E]` (the latest if `epoch` is `None`).
    pub async fn inference(
        &self,
        topic: TopicId,
        epoch: Option<u64>,
    ) -> Result<types::Inference, QueryError> {
        let variant = chorus_crdt::proof::Variant::Regular;
        match self
            .query(Query::Inference {
                topic,
                epoch,
                variant,
            })
            .await?
        {
            Answer::Inference(i) => Ok(*i),
            _ => Err(QueryError::WrongAnswer("inference")),
        }
    }

    /// `GET /v1/topics/{id}/inference?proof=true[&variant=V]` (the latest finalized epoch if
    /// `epoch` is `None`; from genesis if `trusted` is `None`).
    pub async fn inference_proof(
        &self,
        topic: TopicId,
        epoch: Option<u64>,
        trusted: Option<u64>,
        variant: chorus_crdt::proof::Variant,
    ) -> Result<chorus_crdt::proof::InferenceProof, QueryError> {
        match self
            .query(Query::InferenceProof {
                topic,
                epoch,
                trusted,
                variant,
            })
            .await?
        {
            Answer::InferenceProof(p) => Ok(*p),
            _ => Err(QueryError::WrongAnswer("inference proof")),
        }
    }

    /// `GET /v1/topics/{id}/scores`.
    pub async fn scores(&self, topic: TopicId) -> Result<types::Scores, QueryError> {
        match self.query(Query::Scores(topic)).await? {
            Answer::Scores(s) => Ok(*s),
            _ => Err(QueryError::WrongAnswer("scores")),
        }
    }

    /// `GET /v1/topics/{id}/leaderboard`.
    pub async fn leaderboard(&self, topic: TopicId) -> Result<types::Leaderboard, QueryError> {
        match self.query(Query::Leaderboard(topic)).await? {
            Answer::Leaderboard(l) => Ok(l),
            _ => Err(QueryError::WrongAnswer("leaderboard")),
        }
    }

    /// `GET /v1/accounts/{address}`.
    pub async fn account(&self, who: PublicKey) -> Result<types::Account, QueryError> {
        match self.query(Query::Account(who)).await? {
            Answer::Account(a) => Ok(*a),
            _ => Err(QueryError::WrongAnswer("account")),
        }
    }

    /// `GET /v1/checkpoints/latest`.
    pub async fn latest_checkpoint(&self) -> Result<types::LatestCheckpoint, QueryError> {
        match self.query(Query::LatestCheckpoint).await? {
            Answer::LatestCheckpoint(c) => Ok(c),
            _ => Err(QueryError::WrongAnswer("latest checkpoint")),
        }
    }

    /// `GET /v1/topics/{id}/window`.
    pub async fn window(&self, topic: TopicId) -> Result<types::Window, QueryError> {
        match self.query(Query::Window(topic)).await? {
            Answer::Window(w) => Ok(w),
            _ => Err(QueryError::WrongAnswer("window")),
        }
    }

    /// `GET /v1/topics/{id}/bundles[?epoch=E]`.
    pub async fn bundles(
        &self,
        topic: TopicId,
        epoch: Option<u64>,
    ) -> Result<types::WindowBundles, QueryError> {
        match self.query(Query::Bundles { topic, epoch }).await? {
            Answer::Bundles(b) => Ok(*b),
            _ => Err(QueryError::WrongAnswer("bundles")),
        }
    }

    /// `GET /v1/params`.
    pub async fn params(&self) -> Result<types::Params, QueryError> {
        match self.query(Query::Params).await? {
            Answer::Params(p) => Ok(*p),
            _ => Err(QueryError::WrongAnswer("params")),
        }
    }

    /// `GET /v1/proposals`.
    pub async fn proposals(&self) -> Result<Vec<types::Proposal>, QueryError> {
        match self.query(Query::Proposals).await? {
            Answer::Proposals(p) => Ok(p),
            _ => Err(QueryError::WrongAnswer("proposals")),
        }
    }

    /// `GET /v1/proposals/{id}`.
    pub async fn proposal(&self, id: Hash32) -> Result<types::Proposal, QueryError> {
        match self.query(Query::Proposal(id)).await? {
            Answer::Proposal(p) => Ok(*p),
            _ => Err(QueryError::WrongAnswer("proposal")),
        }
    }

    /// `GET /v1/accounts/{address}/statements`.
    pub async fn statements(
        &self,
        q: StatementsQuery,
    ) -> Result<Vec<types::Statement>, QueryError> {
        match self.query(Query::Statements(q)).await? {
            Answer::Statements(s) => Ok(s),
            _ => Err(QueryError::WrongAnswer("statements")),
        }
    }

    /// Submit a signed envelope.
    pub async fn submit(&self, envelope: Vec<u8>) -> Result<SubmitResult, QueryError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Submit(envelope, tx))
            .await
            .map_err(|_| QueryError::Unavailable)?;
        rx.await.map_err(|_| QueryError::Unavailable)
    }

    /// Stop the node and wait until its storage is flushed.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Shutdown(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// Live network inferences (every topic; filter by `topic`).
    pub fn subscribe(&self) -> broadcast::Receiver<InferenceEvent> {
        self.inferences.subscribe()
    }

    /// The metrics.
    pub fn metrics(&self) -> &NodeMetrics {
        &self.metrics
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chorus_crdt::ledger::LedgerEvent;
    use chorus_protocol::ids::Hash32;

    fn record(height: u64, events: usize) -> LedgerRecord {
        let e = LedgerEvent::Tallied {
            proposal: Hash32::default(),
            passed: true,
        };
        LedgerRecord {
            height,
            events: Arc::new(vec![e; events]),
        }
    }

    /// The resume buffer holds the newest heights up to [`LEDGER_EVENTS_HELD`] events (the
    /// newest one whatever its size) and says how many heights a resumer missed.
    #[test]
    fn the_resume_buffer_is_bounded_by_events_not_only_heights() {
        let log = LedgerLog::default();
        for h in 1..=100 {
            log.publish(record(h, 1_000));
        }
        let (held, missed) = log.since(0);
        let heights: Vec<u64> = held.iter().map(|r| r.height).collect();
        assert_eq!(heights, (69..=100).collect::<Vec<_>>());
        assert_eq!(missed, 68);
        assert_eq!(log.since(90).0.len(), 10);
        assert_eq!(log.since(90).1, 0);
        // One height above the bound is still held, alone.
        log.publish(record(101, LEDGER_EVENTS_HELD + 1));
        let (held, missed) = log.since(0);
        assert_eq!(held.iter().map(|r| r.height).collect::<Vec<_>>(), [101]);
        assert_eq!(missed, 100);
        // Small heights: the height bound.
        for h in 102..=(102 + LEDGER_EVENTS as u64) {
            log.publish(record(h, 1));
        }
        assert_eq!(log.since(0).0.len(), LEDGER_EVENTS);
    }
}
