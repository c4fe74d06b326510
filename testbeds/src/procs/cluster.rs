//! A network of `chorus node run` processes: the run directory (genesis, key files, one TOML
//! config per node), the child processes, kill -9 and restart, and a guard that kills every
//! child on any exit path (no orphans).
//!
//! Layout of a run directory:
//!
//! ```text
//! genesis.toml          the network's genesis (from the plan)
//! eurusd_1h.csv         the bars every worker and reputer reads
//! node-<i>/node.toml    node i's config (listen, bootstrap = every other node, roles, API)
//! node-<i>/node.key     its key (0600)
//! node-<i>/data/        its redb store
//! node-<i>/admin.token  created by the node at first start
//! node-<i>/node.log     its stderr (tracing)
//! ```

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chorus_node::api::types::Status;
use chorus_node::config::{Config, ConfigError};
use chorus_node::localnet::{LocalPlan, node_key};
use chorus_protocol::genesis::Genesis;
use chorus_protocol::keys::Keypair;
use libp2p::PeerId;

/// Where node `i` listens.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// IP address (loopback, or an address inside a network namespace).
    pub ip: String,
    /// libp2p TCP port.
    pub p2p_port: u16,
    /// REST API port.
    pub api_port: u16,
    /// Network namespace to run the node in (`ip netns exec`).
    pub netns: Option<String>,
}

/// One node of the cluster.
#[derive(Debug)]
pub struct NodeProc {
    /// Index.
    pub index: usize,
    /// Its directory.
    pub dir: PathBuf,
    /// Its config file.
    pub config: PathBuf,
    /// Where it listens.
    pub endpoint: Endpoint,
    /// Its key.
    pub key: Keypair,
    /// Its peer id.
    pub peer_id: PeerId,
    /// How many times it was started.
    pub starts: u32,
    child: Option<Child>,
}

impl NodeProc {
    /// `ip:port` of its API.
    pub fn api(&self) -> String {
        format!("{}:{}", self.endpoint.ip, self.endpoint.api_port)
    }

    /// Its libp2p address with the `/p2p/` suffix.
    pub fn p2p_addr(&self) -> String {
        format!(
            "/ip4/{}/tcp/{}/p2p/{}",
            self.endpoint.ip, self.endpoint.p2p_port, self.peer_id
        )
    }

    /// The OS process id, if running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Its admin token (exists after its first start).
    pub fn admin_token(&self) -> anyhow::Result<String> {
        let p = self.dir.join("admin.token");
        Ok(std::fs::read_to_string(&p)
            .with_context(|| format!("reading {}", p.display()))?
            .trim()
            .to_string())
    }

    /// Its store file.
    pub fn store_path(&self) -> PathBuf {
        self.dir.join("data").join("node.redb")
    }
}

/// The processes of a test network.
pub struct Cluster {
    /// Run directory.
    pub dir: PathBuf,
    /// The plan the network was made from.
    pub plan: LocalPlan,
    /// Its genesis.
    pub genesis: Genesis,
    /// The nodes.
    pub nodes: Vec<NodeProc>,
    /// Bootstrap lists that replace the default (every other node) for some nodes.
    pub bootstrap: std::collections::BTreeMap<usize, Vec<String>>,
    /// Nodes left out of every other node's bootstrap list (they dial, nobody dials them).
    pub hidden: std::collections::BTreeSet<usize>,
    bin: PathBuf,
    run_dir: RunDir,
}

/// A run directory: a given one (kept), or a fresh temporary one (deleted at the end unless
/// [`Cluster::keep_dir`] is called).
#[derive(Debug)]
pub struct RunDir {
    /// The path.
    pub path: PathBuf,
    tmp: Option<tempfile::TempDir>,
}

impl RunDir {
    /// `out` if given (created), else a new temporary directory named `<prefix>…`.
    pub fn new(out: Option<PathBuf>, prefix: &str) -> anyhow::Result<RunDir> {
        match out {
            Some(d) => {
                std::fs::create_dir_all(&d)?;
                Ok(RunDir { path: d, tmp: None })
            }
            None => {
                let t = tempfile::Builder::new().prefix(prefix).tempdir()?;
                Ok(RunDir {
                    path: t.path().to_path_buf(),
                    tmp: Some(t),
                })
            }
        }
    }

    /// Do not delete it at the end.
    pub fn keep(&mut self) -> PathBuf {
        if let Some(t) = self.tmp.take() {
            let _ = t.keep();
        }
        self.path.clone()
    }
}

/// Loopback endpoints with fresh ports for `n` nodes.
pub fn loopback_endpoints(n: usize) -> anyhow::Result<Vec<Endpoint>> {
    let ports = chorus_node::localnet::free_loopback_ports(2 * n)?;
    Ok((0..n)
        .map(|i| Endpoint {
            ip: "127.0.0.1".into(),
            p2p_port: ports[2 * i],
            api_port: ports[2 * i + 1],
            netns: None,
        })
        .collect())
}

/// The `chorus` binary: `explicit`, else `CHORUS_BIN`, else the `chorus` next to this
/// executable (`target/<profile>/chorus` for the testbeds binary, `target/<profile>/deps/..`
/// for test executables).
pub fn chorus_bin(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("CHORUS_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe()?;
    let mut dir = exe.parent().map(Path::to_path_buf);
    while let Some(d) = dir {
        let candidate = d.join("chorus");
        if candidate.is_file() {
            return Ok(candidate);
        }
        if d.file_name().is_some_and(|n| n == "target") {
            break;
        }
        dir = d.parent().map(Path::to_path_buf);
    }
    bail!(
        "no `chorus` binary next to {}: build it (`cargo build -p chorus`, add --release for a \
         release testbed) or pass --chorus-bin PATH",
        exe.display()
    )
}

impl Cluster {
    /// Write the run directory for `plan` with one endpoint per node.
    pub fn create(
        plan: LocalPlan,
        endpoints: Vec<Endpoint>,
        bin: PathBuf,
        run_dir: RunDir,
        log_level: &str,
    ) -> anyhow::Result<Cluster> {
        if endpoints.len() != plan.nodes {
            bail!("{} endpoints for {} nodes", endpoints.len(), plan.nodes);
        }
        if !bin.is_file() {
            bail!("the chorus binary {} does not exist", bin.display());
        }
        let dir = run_dir.path.clone();
        let genesis = plan.genesis();
        std::fs::write(dir.join("genesis.toml"), genesis.to_toml_string()?)?;
        let nodes: Vec<NodeProc> = endpoints
            .into_iter()
            .enumerate()
            .map(|(i, endpoint)| {
                let key = node_key(plan.seed, i);
                let peer_id = chorus_node::net::peer_id_of(&key.public())
                    .context("a key without a peer id")?;
                let ndir = dir.join(format!("node-{i}"));
                std::fs::create_dir_all(&ndir)?;
                chorus_protocol::keyfile::write_key_file(&ndir.join("node.key"), &key)?;
                Ok(NodeProc {
                    index: i,
                    config: ndir.join("node.toml"),
                    dir: ndir,
                    endpoint,
                    key,
                    peer_id,
                    starts: 0,
                    child: None,
                })
            })
            .collect::<anyhow::Result<_>>()?;
        let cluster = Cluster {
            dir,
            plan,
            genesis,
            nodes,
            bootstrap: Default::default(),
            hidden: Default::default(),
            bin,
            run_dir,
        };
        cluster.write_configs(log_level)?;
        Ok(cluster)
    }

    /// Use another genesis (before the nodes start), e.g. with extra accounts.
    pub fn replace_genesis(&mut self, genesis: Genesis) -> anyhow::Result<()> {
        std::fs::write(self.dir.join("genesis.toml"), genesis.to_toml_string()?)?;
        self.genesis = genesis;
        Ok(())
    }

    /// (Re)write every node's config (after changing `bootstrap` or `hidden`).
    pub fn write_configs(&self, log_level: &str) -> anyhow::Result<()> {
        for n in &self.nodes {
            let text = toml::to_string(&self.config_of(n.index, log_level)?)?;
            std::fs::write(&n.config, text)?;
        }
        Ok(())
    }

    /// The config of node `i` (the plan's roles and tunables; bootstrap = every other node
    /// unless overridden), checked as [`LocalPlan::node_config`] checks it.
    pub fn config_of(&self, i: usize, log_level: &str) -> Result<Config, ConfigError> {
        let me = &self.nodes[i];
        let bootstrap = match self.bootstrap.get(&i) {
            Some(list) => list.clone(),
            None => self
                .nodes
                .iter()
                .filter(|n| n.index != i && !self.hidden.contains(&n.index))
                .map(NodeProc::p2p_addr)
                .collect(),
        };
        self.plan.node_config(
            i,
            format!("/ip4/{}/tcp/{}", me.endpoint.ip, me.endpoint.p2p_port),
            bootstrap,
            me.api(),
            log_level,
        )
    }

    /// Start node `i` (its stderr appends to `node.log`).
    pub fn start(&mut self, i: usize) -> anyhow::Result<()> {
        let n = &mut self.nodes[i];
        if n.child.is_some() {
            bail!("node {i} is already running");
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(n.dir.join("node.log"))?;
        let mut cmd = match &n.endpoint.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(&self.bin);
                c
            }
            None => Command::new(&self.bin),
        };
        cmd.args(["node", "run", "--config"])
            .arg(&n.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        let child = cmd
            .spawn()
            .with_context(|| format!("starting node {i} ({})", self.bin.display()))?;
        n.child = Some(child);
        n.starts += 1;
        Ok(())
    }

    /// Start every node that is not running.
    pub fn start_all(&mut self) -> anyhow::Result<()> {
        for i in 0..self.nodes.len() {
            if self.nodes[i].child.is_none() {
                self.start(i)?;
            }
        }
        Ok(())
    }

    /// kill -9 node `i` and reap it.
    pub fn kill9(&mut self, i: usize) -> anyhow::Result<()> {
        if let Some(mut c) = self.nodes[i].child.take() {
            let _ = c.kill();
            c.wait()?;
        }
        Ok(())
    }

    /// SIGTERM node `i` and wait (at most `grace`, then kill -9). Returns whether it exited
    /// cleanly with status 0.
    pub fn terminate(&mut self, i: usize, grace: Duration) -> anyhow::Result<bool> {
        let Some(mut c) = self.nodes[i].child.take() else {
            return Ok(true);
        };
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let t0 = Instant::now();
        loop {
            if let Some(s) = c.try_wait()? {
                return Ok(s.success());
            }
            if t0.elapsed() > grace {
                let _ = c.kill();
                c.wait()?;
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether node `i` has a live process.
    pub fn is_running(&self, i: usize) -> bool {
        self.nodes[i].child.is_some()
    }

    /// Nodes whose process ended on its own since the last call (and their exit status).
    pub fn reap_exited(&mut self) -> Vec<(usize, String)> {
        let mut out = vec![];
        for n in &mut self.nodes {
            if let Some(c) = n.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                out.push((n.index, status.to_string()));
                n.child = None;
            }
        }
        out
    }

    /// `GET /v1/status` of node `i`.
    pub async fn status(&self, i: usize) -> anyhow::Result<Status> {
        super::get(&self.nodes[i].api(), "/v1/status").await
    }

    /// Wait until node `i` answers `/v1/status`.
    pub async fn wait_ready(&mut self, i: usize, timeout: Duration) -> anyhow::Result<()> {
        let t0 = Instant::now();
        loop {
            if self.status(i).await.is_ok() {
                return Ok(());
            }
            if let Some((_, status)) = self.reap_exited().into_iter().find(|(j, _)| *j == i) {
                bail!(
                    "node {i} exited during start-up ({status}); see {}",
                    self.nodes[i].dir.join("node.log").display()
                );
            }
            if t0.elapsed() > timeout {
                bail!("node {i} did not answer /v1/status within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every node's libp2p address (with `/p2p/`), for a peer of this process to dial.
    pub fn p2p_addrs(&self) -> Vec<libp2p::Multiaddr> {
        self.nodes
            .iter()
            .filter_map(|n| n.p2p_addr().parse().ok())
            .collect()
    }

    /// Keep the run directory after the run (when it is a temporary one).
    pub fn keep_dir(&mut self) -> PathBuf {
        self.run_dir.keep()
    }

    /// The last `lines` lines of node `i`'s log.
    pub fn log_tail(&self, i: usize, lines: usize) -> String {
        let text = std::fs::read_to_string(self.nodes[i].dir.join("node.log")).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}
