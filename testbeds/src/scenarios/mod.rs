//! The reliability scenarios, one command each (pass/fail exit code, JSON summary):
//!
//! 1. [`flood`]: invalid-signature flood from an attacker process ([`attacker`]);
//! 2. [`partition`]: 10/10 partition and heal in network namespaces ([`netns`]);
//! 3. [`crash`]: kill -9 during writes, acknowledged entries survive, no double-sign
//!    ([`store_writer`] is the store-level child process);
//! 4. [`equivocation`]: a validator signs two checkpoints at one height, gets slashed;
//! 5. [`slow_peer`]: a peer reading at 1 KB/s through a throttling proxy;
//! 6. [`catchup`]: a node offline for many epochs catches up;
//! 7. [`relay`]: hostile consensus messages enter a line of honest nodes at one end;
//! 8. [`scale`]: one height finalizes every bundle of 10 topics × 1 000 workers;
//! 9. [`corrupt`]: a damaged WAL record, certificate or ledger snapshot stops the start;
//! 10. [`join`]: a stranger joins a running network with one address and becomes a worker and
//!     a validator through the command line;
//! 11. [`junk`]: validly signed junk from strangers by gossip and sync: finality keeps its pace,
//!     nothing of it is stored;
//! 12. [`longrange`]: the genesis validators sign a second history: a newcomer with a trusted
//!     checkpoint follows the real chain, one without refuses an old genesis.
//!
//! Shared here: CPU pinning, child processes of this binary, metric reading and inference-event
//! logs of in-process networks.

pub mod attacker;
pub mod catchup;
pub mod corrupt;
pub mod crash;
pub mod equivocation;
pub mod flood;
pub mod join;
pub mod junk;
pub mod longrange;
pub mod netns;
pub mod partition;
pub mod relay;
pub mod scale;
pub mod slow_peer;
pub mod store_writer;

use std::future::Future;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chorus_node::actor::NodeHandle;
use chorus_node::localnet::LocalNet;
use chorus_node::net::Behaviour;
use chorus_protocol::ids::NetworkId;
use chorus_protocol::keys::Keypair;
use chorus_protocol::validation::{Channel, ChannelKind};
use libp2p::Swarm;
use libp2p::gossipsub::IdentTopic;
use tokio::task::JoinSet;

/// Whether a program is on `PATH`.
pub fn have(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
}

/// CPUs of this machine.
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// How a scenario pins an attacker process and itself.
#[derive(Clone, Debug)]
pub struct Pinning {
    /// The CPU for the child (the last one).
    pub child_cpu: Option<usize>,
    /// What happened (for the report).
    pub note: String,
}

/// Pin this process (every thread) to all CPUs but the last, and reserve the last for a child,
/// with `taskset` if it exists and there are at least 2 CPUs; otherwise explain why not.
pub fn pin_self_and_reserve_one(enabled: bool) -> Pinning {
    let n = cpus();
    if !enabled {
        return Pinning {
            child_cpu: None,
            note: "CPU pinning disabled (--no-pin)".into(),
        };
    }
    if n < 2 {
        return Pinning {
            child_cpu: None,
            note: "one CPU: the attacker is not pinned".into(),
        };
    }
    if !have("taskset") {
        return Pinning {
            child_cpu: None,
            note: "taskset not found: the attacker is not pinned".into(),
        };
    }
    let mine = format!("0-{}", n - 2);
    let ok = Command::new("taskset")
        .args(["-a", "-cp", &mine, &std::process::id().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        Pinning {
            child_cpu: Some(n - 1),
            note: format!(
                "attacker pinned to CPU {}, honest nodes to CPUs {mine}",
                n - 1
            ),
        }
    } else {
        Pinning {
            child_cpu: None,
            note: "taskset failed: the attacker is not pinned".into(),
        }
    }
}

/// Start this binary with `args` (under `taskset -c cpu` when given), stdout piped.
pub fn spawn_self(args: &[String], cpu: Option<usize>) -> anyhow::Result<Child> {
    let exe = std::env::current_exe()?;
    let mut cmd = match cpu {
        Some(c) => {
            let mut c2 = Command::new("taskset");
            c2.arg("-c").arg(c.to_string()).arg(&exe);
            c2
        }
        None => Command::new(&exe),
    };
    Ok(cmd
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?)
}

/// A child process killed (and reaped) on drop.
pub struct ChildGuard(pub Option<Child>);

impl ChildGuard {
    /// Wait for the child to end by itself (polling, at most `timeout`) and read its stdout.
    pub async fn wait_output(&mut self, timeout: Duration) -> anyhow::Result<String> {
        let t0 = Instant::now();
        loop {
            let done = match self.0.as_mut() {
                Some(c) => c.try_wait()?.is_some(),
                None => anyhow::bail!("no child"),
            };
            if done {
                break;
            }
            if t0.elapsed() > timeout {
                anyhow::bail!("child did not finish within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut out = String::new();
        if let Some(mut c) = self.0.take()
            && let Some(mut s) = c.stdout.take()
        {
            use std::io::Read;
            s.read_to_string(&mut out)?;
            let _ = c.wait();
        }
        Ok(out)
    }

    /// Whether the child is still running.
    pub fn running(&mut self) -> bool {
        self.0
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Poll `f` every 50 ms until it holds or `timeout` passes.
pub async fn wait_for<F, Fut>(timeout: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let t0 = Instant::now();
    loop {
        if f().await {
            return true;
        }
        if t0.elapsed() > timeout {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A libp2p peer of `key` subscribed to `network`'s consensus channel, and that channel.
pub fn consensus_swarm(
    key: &Keypair,
    network: NetworkId,
) -> anyhow::Result<(Swarm<Behaviour>, IdentTopic)> {
    channel_swarm(key, network, ChannelKind::Consensus)
}

/// A libp2p peer of `key` (the node's own swarm builder) subscribed to one of `network`'s
/// gossip channels, and that channel.
pub fn channel_swarm(
    key: &Keypair,
    network: NetworkId,
    kind: ChannelKind,
) -> anyhow::Result<(Swarm<Behaviour>, IdentTopic)> {
    let mut swarm = chorus_node::net::build_swarm(key, &Default::default())?;
    let topic = IdentTopic::new(Channel { network, kind }.name());
    swarm.behaviour_mut().gossipsub.subscribe(&topic)?;
    Ok((swarm, topic))
}

/// The metrics page of node `i` of an in-process network.
pub fn metrics_of(net: &LocalNet, i: usize) -> String {
    net.handle(i)
        .map(|h| h.metrics().encode())
        .unwrap_or_default()
}

/// REJECT verdicts a node's validator gave (every channel).
pub fn rejects(page: &str) -> f64 {
    chorus_node::api::client::metric_sum(
        page,
        "chorus_validation_outcomes_total",
        &["outcome=\"reject\""],
    )
}

/// Peers a node graylisted (disconnected and blocked).
pub fn graylisted(page: &str) -> f64 {
    chorus_node::api::client::metric_sum(
        page,
        "chorus_queue_drops_total",
        &["queue=\"graylisted_peers\""],
    )
}

/// One inference event seen by one node.
#[derive(Clone, Debug)]
pub struct SeenInference {
    /// Node index.
    pub node: usize,
    /// Topic.
    pub topic: u64,
    /// Epoch.
    pub epoch: u64,
    /// From a checkpoint (else local at window close).
    pub finalized: bool,
    /// Node time of the event (unix ms).
    pub time_ms: u64,
}

/// Every node's inference events, collected by one task per node until dropped.
pub struct InferenceLog {
    /// The events.
    pub events: Arc<Mutex<Vec<SeenInference>>>,
    _tasks: JoinSet<()>,
}

impl InferenceLog {
    /// Subscribe to every handle.
    pub fn start(handles: Vec<(usize, NodeHandle)>) -> InferenceLog {
        let events = Arc::new(Mutex::new(vec![]));
        let mut tasks = JoinSet::new();
        for (i, h) in handles {
            let mut rx = h.subscribe();
            let events = events.clone();
            tasks.spawn(async move {
                use tokio::sync::broadcast::error::RecvError;
                loop {
                    match rx.recv().await {
                        Ok(ev) => {
                            if let Ok(mut v) = events.lock() {
                                v.push(SeenInference {
                                    node: i,
                                    topic: ev.topic.0,
                                    epoch: ev.epoch,
                                    finalized: ev.finalized,
                                    time_ms: ev.time_ms,
                                });
                            }
                        }
                        Err(RecvError::Lagged(_)) => continue,
                        Err(RecvError::Closed) => return,
                    }
                }
            });
        }
        InferenceLog {
            events,
            _tasks: tasks,
        }
    }

    /// A copy of the events so far.
    pub fn snapshot(&self) -> Vec<SeenInference> {
        self.events.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

/// Resident set size of a process (from `/proc/<pid>/status`), in bytes.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Size of a file (0 if missing).
pub fn file_size(p: &Path) -> u64 {
    std::fs::metadata(p).map_or(0, |m| m.len())
}

/// The seeded generator for kill times and jitter (the project's one,
/// [`chorus_protocol::rng`]): runs are repeatable by seed; seed it with `Rng::seeded`.
pub type Rng = chorus_protocol::rng::SplitMix64;
