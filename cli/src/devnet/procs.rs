//! `chorus devnet --processes`: every node is its own `chorus node run` OS process on loopback,
//! configured by files the devnet writes (the same roles and tunables as the one-process
//! network), and watched through its REST API.
//!
//! ```text
//! <data root>/genesis.toml
//! <data root>/node-<i>/node.toml, node.key, admin.token, data/
//! <out>/logs/node-<i>.log      each node's stderr
//! ```
//!
//! Every child is stopped (SIGTERM, then SIGKILL after a grace period) when the run ends,
//! including on errors: [`Procs`] kills what is left when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chorus_node::api::client::NodeClient;
use chorus_node::api::types::Status;
use chorus_node::localnet::{LocalPlan, node_key};
use chorus_protocol::keyfile::write_key_file;

/// The running node processes.
pub struct Procs {
    children: Vec<Option<Child>>,
    /// Each node's REST URL (`http://127.0.0.1:port`).
    pub apis: Vec<String>,
    /// Each node's directory.
    pub dirs: Vec<PathBuf>,
    /// Each node's log file.
    pub logs: Vec<PathBuf>,
}

/// One node's files, written before any node starts.
pub struct NodeFiles {
    /// `<data root>/node-<i>`.
    pub dir: PathBuf,
    /// Its `node.toml`.
    pub config: PathBuf,
    /// Its REST API address (`127.0.0.1:port`).
    pub api: String,
}

/// Write the run directory of `plan` under `plan.data_root`: the genesis, and every node's key
/// and config (node `i` on `ports[2i]` for libp2p, `ports[2i + 1]` for REST, every other node
/// as bootstrap). Every config is built, and so checked ([`LocalPlan::node_config`]), before
/// anything is written.
pub fn write_run_dir(plan: &LocalPlan, ports: &[u16]) -> anyhow::Result<Vec<NodeFiles>> {
    if ports.len() < 2 * plan.nodes {
        bail!("{} ports for {} nodes", ports.len(), plan.nodes);
    }
    let p2p: Vec<String> = (0..plan.nodes)
        .map(|i| {
            let peer = chorus_node::net::peer_id_of(&node_key(plan.seed, i).public())
                .context("a node key without a peer id")?;
            Ok(format!("/ip4/127.0.0.1/tcp/{}/p2p/{peer}", ports[2 * i]))
        })
        .collect::<anyhow::Result<_>>()?;
    let configs = (0..plan.nodes)
        .map(|i| {
            let bootstrap = (0..plan.nodes)
                .filter(|j| *j != i)
                .map(|j| p2p[j].clone())
                .collect();
            let api = format!("127.0.0.1:{}", ports[2 * i + 1]);
            let listen = format!("/ip4/127.0.0.1/tcp/{}", ports[2 * i]);
            let cfg = plan.node_config(i, listen, bootstrap, api, "warn")?;
            Ok(cfg)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let root = &plan.data_root;
    std::fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
    std::fs::write(root.join("genesis.toml"), plan.genesis().to_toml_string()?)?;
    let mut nodes = vec![];
    for (i, cfg) in configs.into_iter().enumerate() {
        let dir = root.join(format!("node-{i}"));
        std::fs::create_dir_all(&dir)?;
        write_key_file(&dir.join("node.key"), &node_key(plan.seed, i))?;
        let config = dir.join("node.toml");
        std::fs::write(&config, toml::to_string(&cfg)?)?;
        nodes.push(NodeFiles {
            dir,
            config,
            api: cfg.api.listen,
        });
    }
    Ok(nodes)
}

impl Procs {
    /// Write the files of `plan` ([`write_run_dir`], on free loopback ports) and start every
    /// node with `bin` (the running `chorus` executable); logs go to `logs`.
    pub fn start(plan: &LocalPlan, bin: &Path, logs: &Path) -> anyhow::Result<Procs> {
        let ports = chorus_node::localnet::free_loopback_ports(2 * plan.nodes)?;
        let nodes = write_run_dir(plan, &ports)?;
        std::fs::create_dir_all(logs).with_context(|| format!("creating {}", logs.display()))?;
        let mut procs = Procs {
            children: vec![],
            apis: vec![],
            dirs: vec![],
            logs: vec![],
        };
        for (i, node) in nodes.into_iter().enumerate() {
            let log = logs.join(format!("node-{i}.log"));
            let file = std::fs::File::create(&log)?;
            let child = Command::new(bin)
                .args(["node", "run", "--config"])
                .arg(&node.config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::from(file))
                .spawn()
                .with_context(|| format!("starting node {i} ({})", bin.display()))?;
            procs.children.push(Some(child));
            procs.apis.push(format!("http://{}", node.api));
            procs.dirs.push(node.dir);
            procs.logs.push(log);
        }
        Ok(procs)
    }

    /// REST clients of every node.
    pub fn clients(&self) -> anyhow::Result<Vec<NodeClient>> {
        self.apis.iter().map(|u| Ok(NodeClient::new(u)?)).collect()
    }

    /// Wait until every node answers `/v1/status`; fail early if one exits.
    pub async fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let clients = self.clients()?;
        let t0 = Instant::now();
        for (i, c) in clients.iter().enumerate() {
            loop {
                if c.get::<Status>("/v1/status").await.is_ok() {
                    break;
                }
                self.check_alive()?;
                if t0.elapsed() > timeout {
                    bail!(
                        "node {i} did not answer {} within {timeout:?}; see {}",
                        c.base(),
                        self.logs[i].display()
                    );
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    /// An error naming the first node whose process has ended.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        for (i, c) in self.children.iter_mut().enumerate() {
            if let Some(child) = c
                && let Ok(Some(status)) = child.try_wait()
            {
                *c = None;
                let log = std::fs::read_to_string(&self.logs[i]).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(6).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                bail!(
                    "node {i} exited ({status}); its log: {}; it ends with:\n{}",
                    self.logs[i].display(),
                    tail.join("\n")
                );
            }
        }
        Ok(())
    }

    /// SIGTERM every node, wait up to `grace` for all to exit, SIGKILL the rest.
    pub fn shutdown(&mut self, grace: Duration) {
        for c in self.children.iter().flatten() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let t0 = Instant::now();
        while self.children.iter().any(Option::is_some) && t0.elapsed() < grace {
            for c in &mut self.children {
                if let Some(child) = c
                    && matches!(child.try_wait(), Ok(Some(_)) | Err(_))
                {
                    *c = None;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill_all();
    }

    fn kill_all(&mut self) {
        for mut c in self.children.iter_mut().filter_map(Option::take) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        self.kill_all();
    }
}
