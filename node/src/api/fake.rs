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

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chorus_protocol::ids::{Hash32, NetworkId};
use chorus_protocol::keys::{Keypair, PublicKey};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::actor::handle::{COMMAND_QUEUE, INFERENCE_EVENTS};
use crate::actor::{Command, InferenceEvent, NodeHandle, Query, QueryError, SubmitResult};
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
pub type Answer = Arc<dyn Fn(&Query) -> Result<Value, QueryError> + Send + Sync>;

/// The fake node's own address.
pub fn fake_address() -> PublicKey {
    Keypair::from_seed(&[9; 32]).public()
}

/// Canned answers in the shapes of `docs/api.md`: one topic ([`FAKE_TOPIC`]) with inferences
/// up to epoch [`FAKE_LATEST_EPOCH`], every account known with [`FAKE_NEXT_NONCE`].
pub fn canned(q: &Query) -> Result<Value, QueryError> {
    let me = fake_address().to_hex();
    let other = Keypair::from_seed(&[10; 32]).public().to_hex();
    let known = |t: &chorus_protocol::ids::TopicId| {
        if t.0 == FAKE_TOPIC {
            Ok(())
        } else {
            Err(QueryError::NotFound(format!("topic {t}")))
        }
    };
    Ok(match q {
        Query::Status => json!({
            "network": "chorus-fake", "network_id": FAKE_NETWORK.to_hex(), "address": me,
            "peer_id": "12D3KooWFake", "peers": 5, "listen": ["/ip4/127.0.0.1/tcp/4001"],
            "height": 42, "tip": Hash32([1; 32]).to_hex(), "ledger_root": Hash32([2; 32]).to_hex(),
            "roles": {"worker": [FAKE_TOPIC], "reputer": [], "validator": true},
            "submissions": [{"topic": FAKE_TOPIC, "epoch": 41, "kind": "worker_bundle",
                             "accepted": true, "reason": null, "time_ms": 1_700_000_000_000u64}],
            "balance": "1000", "bond": "100", "rewards": "12", "next_nonce": FAKE_NEXT_NONCE,
            "uptime_ms": 12_345
        }),
        Query::Topics => json!([topic_json()]),
        Query::Topic(t) => {
            known(t)?;
            topic_json()
        }
        Query::Inference { topic, epoch } => {
            known(topic)?;
            let epoch = epoch.unwrap_or(FAKE_LATEST_EPOCH);
            if epoch > FAKE_LATEST_EPOCH {
                return Err(QueryError::NotFound(format!(
                    "inference of topic {topic} epoch {epoch}"
                )));
            }
            json!({
                "topic": topic.0, "epoch": epoch, "finalized": true, "checkpoint_height": 41,
                "combined_value": 0.0012, "naive_value": 0.0011,
                "inferer_values": {me.clone(): 0.0013, other.clone(): 0.0011},
                "forecaster_values": {me.clone(): 0.0012},
                "one_out_inferer_values": {}, "one_out_forecaster_values": {},
                "one_in_forecaster_values": {},
                "one_out_inferer_forecaster_values": {me.clone(): {other.clone(): 0.0012}},
                "inferer_weights": {me.clone(): 0.6, other.clone(): 0.4},
                "forecaster_weights": {},
                "confidence_interval_values": [0.0009, 0.0010, 0.0012, 0.0013, 0.0015]
            })
        }
        Query::Scores(t) => {
            known(t)?;
            json!({
                "topic": t.0, "inferers": {me.clone(): -0.12, other.clone(): 0.3},
                "forecasters": {}, "reputers": {},
                "regrets": {"inferer": {me.clone(): -0.5}, "forecaster": {}, "naive": {}},
                "initial_regret": 0.0, "listening_coefficients": {me.clone(): 1.0},
                "previous_network_loss": -5.2
            })
        }
        Query::Leaderboard(t) => {
            known(t)?;
            json!({"topic": t.0, "entries": [
                {"address": other, "role": "inferer", "score_ema": 0.3, "rewards": "1200"},
                {"address": me, "role": "inferer", "score_ema": -0.12, "rewards": "12"}
            ]})
        }
        Query::Account(a) => json!({
            "address": a.to_hex(), "balance": "1000", "nonce": FAKE_NEXT_NONCE - 1,
            "next_nonce": FAKE_NEXT_NONCE, "rewards": "12", "bond": "0",
            "stakes": [{"topic": FAKE_TOPIC, "reputer": a.to_hex(), "amount": "50000"}]
        }),
        Query::LatestCheckpoint => json!({
            "height": 42, "id": Hash32([3; 32]).to_hex(), "previous": Hash32([4; 32]).to_hex(),
            "ledger_root": Hash32([2; 32]).to_hex(), "windows": 4, "entries": 31, "signers": 4
        }),
    })
}

fn topic_json() -> Value {
    json!({
        "id": FAKE_TOPIC, "name": "EUR/USD 1h range", "metadata": "", "loss": {"method": "mse"},
        "start_ms": 0, "epoch_length_ms": 60_000, "submission_window_ms": 30_000,
        "ground_truth_lag_ms": 60_000, "p_norm": 3.0, "alpha_regret": 0.01, "epsilon": 0.01,
        "merit_sortition_alpha": 0.1, "active_inferer_quantile": 0.25,
        "active_forecaster_quantile": 0.25, "active_reputer_quantile": 0.25,
        "allow_negative": false, "creator": fake_address().to_hex(), "weight": 1.5e9,
        "active": true, "fee_revenue": "75000", "reward_pool": "0", "stake": "60000",
        "workers": 10, "reputers": 3, "current_epoch": 41, "last_finalized_epoch": 39
    })
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
    pub async fn start_with(answer: Answer) -> io::Result<FakeNode> {
        let (commands_tx, commands_rx) = mpsc::channel(COMMAND_QUEUE);
        let (events, _) = broadcast::channel(INFERENCE_EVENTS);
        let metrics = Arc::new(NodeMetrics::new());
        let handle = NodeHandle::new(commands_tx, events.clone(), metrics);
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
    answer: Answer,
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
