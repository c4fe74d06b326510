//! A fake node for tests (feature `test-support`): the real [`router`](super::router) and
//! [`serve`](super::serve) on `127.0.0.1:0`, over a [`NodeHandle`] whose "actor" is a small
//! task answering every [`Query`] with canned JSON shaped like `docs/api.md`, recording every
//! submitted envelope, and accepting it.
//!
//! ```no_run
//! # async fn example() -> std::io::Result<()> {
//! let node = chorus_node::api::fake::FakeNode::start().await?;
//! println!("{}", node.url()); // http://127.0.0.1:<port>
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chorus_protocol::ids::{Amount, Hash32, NetworkId, TopicId};
use chorus_protocol::inference::{NetworkInference, Values};
use chorus_protocol::keys::{Keypair, PublicKey};
use chorus_protocol::topic::TopicSpec;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;

use super::types;
use crate::actor::handle::{COMMAND_QUEUE, INFERENCE_EVENTS};
use crate::actor::{Answer, Command, InferenceEvent, NodeHandle, Query, QueryError, SubmitResult};
use crate::metrics::NodeMetrics;

/// The fake node's network id.
pub const FAKE_NETWORK: NetworkId = Hash32([7; 32]);
/// The fake node's admin token.
pub const FAKE_TOKEN: &str = "fake-admin-token";
/// The only topic the fake node knows.
pub const FAKE_TOPIC: u64 = 1;
/// The latest epoch with a network inference in [`FAKE_TOPIC`].
pub const FAKE_LATEST_EPOCH: u64 = 40;
/// `next_nonce` of every account.
pub const FAKE_NEXT_NONCE: u64 = 3;

/// How the fake actor answers queries.
pub type Responder = Arc<dyn Fn(&Query) -> Result<Answer, QueryError> + Send + Sync>;

/// The fake node's own address.
pub fn fake_address() -> PublicKey {
    Keypair::from_seed(&[9; 32]).public()
}

/// The example proof the fake node serves for `?proof=true` (verifies with
/// `examples/proof/genesis.toml`).
pub const EXAMPLE_PROOF: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../examples/proof/proof.json"
));

/// Canned answers in the shapes of `docs/api.md`: one topic ([`FAKE_TOPIC`]) with inferences
/// up to epoch [`FAKE_LATEST_EPOCH`], every account known with [`FAKE_NEXT_NONCE`].
pub fn canned(q: &Query) -> Result<Answer, QueryError> {
    let known = |t: &TopicId| {
        if t.0 == FAKE_TOPIC {
            Ok(())
        } else {
            Err(QueryError::NotFound(format!("topic {t}")))
        }
    };
    Ok(match q {
        Query::Status => Answer::Status(Box::new(status())),
        Query::Topics => Answer::Topics(vec![topic()?]),
        Query::Topic(t) => {
            known(t)?;
            Answer::Topic(Box::new(topic()?))
        }
        Query::Inference {
            topic,
            epoch,
            variant,
        } => {
            known(topic)?;
            let epoch = epoch.unwrap_or(FAKE_LATEST_EPOCH);
            if epoch > FAKE_LATEST_EPOCH {
                return Err(QueryError::NotFound(format!(
                    "inference of topic {topic} epoch {epoch}"
                )));
            }
            // Nothing is an outlier in the fake's inferences: both variants are one bundle.
            Answer::Inference(Box::new(types::Inference {
                variant: *variant,
                ..inference(*topic, epoch)
            }))
        }
        Query::InferenceProof { topic, epoch, .. } => {
            known(topic)?;
            // The shipped example proof (`examples/proof/`), for its epoch only.
            let proof: chorus_crdt::proof::InferenceProof =
                serde_json::from_str(EXAMPLE_PROOF).map_err(|_| QueryError::Unavailable)?;
            if epoch.is_some_and(|e| e != proof.epoch) {
                return Err(QueryError::NotFound(format!(
                    "no finalized inference of topic {topic} at epoch {}",
                    epoch.unwrap_or_default()
                )));
            }
            Answer::InferenceProof(Box::new(proof))
        }
        Query::Scores(t) => {
            known(t)?;
            Answer::Scores(Box::new(scores(*t)))
        }
        Query::Leaderboard(t) => {
            known(t)?;
            Answer::Leaderboard(leaderboard(*t))
        }
        Query::Account(a) => Answer::Account(Box::new(account(*a))),
        Query::Window(t) => {
            known(t)?;
            let spec = fake_topic_spec().map_err(|_| QueryError::Unavailable)?;
            let now = spec.epoch_start(FAKE_LATEST_EPOCH + 2) + 1;
            Answer::Window(crate::actor::views::window_of(*t, &spec, now))
        }
        Query::Bundles { topic, epoch } => {
            known(topic)?;
            // The window open now: the latest epoch's inferers, in the clear.
            let open = FAKE_LATEST_EPOCH + 2;
            let epoch = epoch.unwrap_or(open);
            let bundles = inference(*topic, FAKE_LATEST_EPOCH)
                .bundle
                .inferer_values
                .iter()
                .filter(|_| epoch == open)
                .map(|(k, v)| types::HeldBundle {
                    worker: k.to_hex(),
                    kind: "bundle".into(),
                    inference: Some(*v),
                    forecasts: 0,
                    commitment: None,
                })
                .collect();
            Answer::Bundles(Box::new(types::WindowBundles {
                topic: topic.0,
                epoch,
                commit_reveal: false,
                held: epoch == open,
                bundles,
            }))
        }
        Query::Params => Answer::Params(Box::default()),
        Query::Statements(q) => Answer::Statements(
            (0..=FAKE_LATEST_EPOCH)
                .filter(|e| q.from.is_none_or(|f| *e >= f) && q.to.is_none_or(|t| *e <= t))
                .filter(|_| q.topic.is_none_or(|t| t.0 == FAKE_TOPIC))
                .map(|epoch| types::Statement {
                    topic: FAKE_TOPIC,
                    epoch,
                    height: epoch + 2,
                    role: "inferer".into(),
                    score: Some(0.001),
                    ema_score: Some(0.002),
                    weight: Some(0.5),
                    reward_fraction: Some(0.25),
                    payout: Amount(10),
                })
                .collect(),
        ),
        Query::Proposals => Answer::Proposals(vec![proposal()]),
        Query::Proposal(id) => {
            let p = proposal();
            if *id != p.id {
                return Err(QueryError::NotFound(format!("proposal {id}")));
            }
            Answer::Proposal(Box::new(p))
        }
        Query::LatestCheckpoint => Answer::LatestCheckpoint(types::LatestCheckpoint {
            height: 42,
            id: Hash32([3; 32]),
            previous: Hash32([4; 32]),
            ledger_root: Hash32([2; 32]),
            windows: 4,
            entries: 31,
            signers: 4,
            signed_by: vec![],
        }),
        Query::Progress(windows) => Answer::Progress(Box::new(crate::actor::Progress {
            height: 42,
            held: vec![0; windows.len()],
            submissions: vec![],
        })),
    })
}

/// The fake node's one proposal (id `[5; 32]`): voting, one yes vote.
fn proposal() -> types::Proposal {
    use chorus_protocol::messages::{GovernanceAction, ParamValue, VoteOption};
    types::Proposal {
        id: Hash32([5; 32]),
        proposer: fake_address(),
        title: "Raise the creation fee".into(),
        action: GovernanceAction::SetParams {
            changes: vec![(
                "create_topic_fee".into(),
                ParamValue::Amount(Amount(100_000)),
            )],
        },
        voting_ends: 50,
        status: "voting".into(),
        yes: Amount(100),
        no: Amount(0),
        abstain: Amount(0),
        quorum: Amount(34),
        error: None,
        votes: vec![types::ProposalVote {
            voter: fake_address(),
            option: VoteOption::Yes,
            weight: Amount(100),
        }],
    }
}

fn other_address() -> String {
    Keypair::from_seed(&[10; 32]).public().to_hex()
}

fn status() -> types::Status {
    types::Status {
        network: "chorus-fake".into(),
        network_id: FAKE_NETWORK,
        address: fake_address(),
        peer_id: "12D3KooWFake".into(),
        peers: 5,
        listen: vec!["/ip4/127.0.0.1/tcp/4001".into()],
        height: 42,
        tip: Hash32([1; 32]),
        ledger_root: Hash32([2; 32]),
        roles: types::Roles {
            worker: vec![FAKE_TOPIC],
            reputer: vec![],
            validator: true,
        },
        submissions: vec![types::Submission {
            topic: Some(FAKE_TOPIC),
            epoch: Some(41),
            kind: "worker_bundle".into(),
            accepted: true,
            reason: None,
            time_ms: 1_700_000_000_000,
        }],
        duties: vec![types::Duty {
            topic: FAKE_TOPIC,
            role: "worker".into(),
            configured: true,
            registered: true,
            funded: true,
            stake: Amount(0),
            window: None,
            last: None,
            counted: Some(true),
            last_reward: Some((39, Amount(12))),
            problem: None,
        }],
        balance: Amount(1000),
        bond: Amount(100),
        rewards: Amount(12),
        next_nonce: FAKE_NEXT_NONCE,
        uptime_ms: 12_345,
        supply: types::Supply {
            genesis: Amount(1_000_000),
            minted: Amount(12),
            slashed: Amount(0),
            total: Amount(1_000_012),
            conserved: true,
        },
        stalled: None,
        clock_offset_ms: Some(-12),
        clock_off: false,
    }
}

/// The spec of [`FAKE_TOPIC`] as an operator writes it for `chorus topic create --spec`.
pub const FAKE_TOPIC_SPEC: &str = r#"name = "EUR/USD 1h range"
loss = { method = "mse" }
start_ms = 0
epoch_length_ms = 60000
submission_window_ms = 30000
ground_truth_lag_ms = 60000
p_norm = 3.0
alpha_regret = 0.01
epsilon = 0.01
merit_sortition_alpha = 0.1
active_inferer_quantile = 0.25
active_forecaster_quantile = 0.25
active_reputer_quantile = 0.25
"#;

/// [`FAKE_TOPIC_SPEC`] parsed.
pub fn fake_topic_spec() -> Result<TopicSpec, toml::de::Error> {
    toml::from_str(FAKE_TOPIC_SPEC)
}

fn topic() -> Result<types::Topic, QueryError> {
    Ok(types::Topic {
        id: FAKE_TOPIC,
        spec: fake_topic_spec().map_err(|_| QueryError::Unavailable)?,
        creator: fake_address(),
        weight: Some(1.5e9),
        active: true,
        fee_revenue: Amount(75_000),
        reward_pool: Amount(0),
        stake: Amount(60_000),
        workers: 10,
        reputers: 3,
        current_epoch: Some(41),
        last_finalized_epoch: Some(39),
    })
}

fn inference(topic: TopicId, epoch: u64) -> types::Inference {
    let me = fake_address();
    let other = Keypair::from_seed(&[10; 32]).public();
    let map = |entries: &[(&PublicKey, f64)]| -> Values {
        entries.iter().map(|(k, v)| (**k, *v)).collect()
    };
    types::Inference {
        topic: topic.0,
        epoch,
        finalized: true,
        checkpoint_height: Some(41),
        variant: Default::default(),
        bundle: NetworkInference {
            combined_value: 0.0012,
            naive_value: Some(0.0011),
            inferer_values: map(&[(&me, 0.0013), (&other, 0.0011)]),
            forecaster_values: map(&[(&me, 0.0012)]),
            one_out_inferer_values: BTreeMap::new(),
            one_out_forecaster_values: BTreeMap::new(),
            one_in_forecaster_values: BTreeMap::new(),
            one_out_inferer_forecaster_values: BTreeMap::from([(me, map(&[(&other, 0.0012)]))]),
            inferer_weights: map(&[(&me, 0.6), (&other, 0.4)]),
            forecaster_weights: BTreeMap::new(),
            confidence_interval_values: Some(vec![0.0009, 0.0010, 0.0012, 0.0013, 0.0015]),
        },
    }
}

fn scores(topic: TopicId) -> types::Scores {
    let (me, other) = (fake_address().to_hex(), other_address());
    types::Scores {
        topic: topic.0,
        inferers: BTreeMap::from([(me.clone(), -0.12), (other, 0.3)]),
        forecasters: BTreeMap::new(),
        reputers: BTreeMap::new(),
        regrets: types::Regrets {
            inferer: BTreeMap::from([(me.clone(), -0.5)]),
            forecaster: BTreeMap::new(),
            naive: BTreeMap::new(),
        },
        initial_regret: 0.0,
        listening_coefficients: BTreeMap::from([(me, 1.0)]),
        previous_network_loss: Some(-5.2),
    }
}

fn leaderboard(topic: TopicId) -> types::Leaderboard {
    let entry = |address: String, score_ema: f64, rewards: u128| types::LeaderboardEntry {
        address,
        role: "inferer".into(),
        score_ema,
        rewards: Amount(rewards),
    };
    types::Leaderboard {
        topic: topic.0,
        entries: vec![
            entry(other_address(), 0.3, 1200),
            entry(fake_address().to_hex(), -0.12, 12),
        ],
    }
}

fn account(address: PublicKey) -> types::Account {
    types::Account {
        address,
        balance: Amount(1000),
        nonce: FAKE_NEXT_NONCE - 1,
        next_nonce: FAKE_NEXT_NONCE,
        rewards: Amount(12),
        bond: Amount(0),
        in_validator_set: false,
        pending_releases: vec![],
        stakes: vec![types::Stake {
            topic: FAKE_TOPIC,
            reputer: address,
            amount: Amount(50_000),
        }],
        owner: None,
        operators: vec![],
    }
}

/// A running fake node. Dropping it stops its tasks.
pub struct FakeNode {
    url: String,
    handle: NodeHandle,
    events: broadcast::Sender<InferenceEvent>,
    submitted: Arc<Mutex<Vec<Vec<u8>>>>,
    actor: Option<JoinHandle<()>>,
    server: JoinHandle<io::Result<()>>,
    stop: Option<oneshot::Sender<()>>,
}

impl std::fmt::Debug for FakeNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeNode").field("url", &self.url).finish()
    }
}

impl FakeNode {
    /// Start with the [`canned`] answers.
    pub async fn start() -> io::Result<FakeNode> {
        Self::start_with(Arc::new(canned)).await
    }

    /// Start with custom answers.
    pub async fn start_with(answer: Responder) -> io::Result<FakeNode> {
        let (commands_tx, commands_rx) = mpsc::channel(COMMAND_QUEUE);
        let (events, _) = broadcast::channel(INFERENCE_EVENTS);
        let metrics = Arc::new(NodeMetrics::new());
        let handle = NodeHandle::new(commands_tx, events.clone(), metrics)
            .with_ledger_events(crate::actor::LedgerLog::default());
        let submitted = Arc::new(Mutex::new(Vec::new()));
        let actor = tokio::spawn(fake_actor(commands_rx, answer, submitted.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let router = super::router(handle.clone(), FAKE_TOKEN.to_owned());
        let server = tokio::spawn(super::serve(listener, router, async move {
            let _ = stop_rx.await;
        }));
        Ok(FakeNode {
            url,
            handle,
            events,
            submitted,
            actor: Some(actor),
            server,
            stop: Some(stop_tx),
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The handle the API serves (its metrics are the page at `/metrics`).
    pub fn handle(&self) -> &NodeHandle {
        &self.handle
    }

    /// Publish an inference event to live subscribers; returns how many there are.
    pub fn publish(&self, event: InferenceEvent) -> usize {
        self.events.send(event).unwrap_or(0)
    }

    /// Publish one height's ledger events (to `/v1/events` subscribers and the held heights).
    pub fn publish_ledger(&self, record: crate::actor::LedgerRecord) {
        if let Some(log) = self.handle.ledger_log() {
            log.publish(record);
        }
    }

    /// Wait until at least `n` live subscribers exist (`false` on timeout).
    pub async fn wait_for_subscribers(&self, n: usize, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.events.receiver_count() < n {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }

    /// Wait until no stream is subscribed (a client that went away is noticed by the server
    /// a moment later); false on timeout.
    pub async fn wait_for_no_subscribers(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.events.receiver_count() > 0 {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }

    /// Every envelope submitted so far (canonical bytes).
    pub fn submitted(&self) -> Vec<Vec<u8>> {
        match self.submitted.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Stop the fake actor (the API keeps serving and answers 503).
    pub async fn stop_actor(&mut self) {
        if let Some(actor) = self.actor.take() {
            actor.abort();
            let _ = actor.await;
        }
    }

    /// Shut the server down gracefully and wait for it.
    pub async fn shutdown(mut self) -> io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match (&mut self.server).await {
            Ok(r) => r,
            Err(e) => Err(io::Error::other(e)),
        }
    }
}

impl Drop for FakeNode {
    fn drop(&mut self) {
        if let Some(actor) = &self.actor {
            actor.abort();
        }
        self.server.abort();
    }
}

async fn fake_actor(
    mut commands: mpsc::Receiver<Command>,
    answer: Responder,
    submitted: Arc<Mutex<Vec<Vec<u8>>>>,
) {
    while let Some(cmd) = commands.recv().await {
        match cmd {
            Command::Query(q, reply) => {
                let _ = reply.send(answer(&q));
            }
            Command::Submit(bytes, reply) => {
                let id = Hash32::of(&bytes);
                match submitted.lock() {
                    Ok(mut g) => g.push(bytes),
                    Err(p) => p.into_inner().push(bytes),
                }
                let _ = reply.send(SubmitResult {
                    id,
                    accepted: true,
                    reason: None,
                });
            }
            Command::Shutdown(reply) => {
                let _ = reply.send(());
                return;
            }
        }
    }
}
