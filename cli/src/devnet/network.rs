//! Starting and stopping the devnet's network, in either mode: every node in this process
//! ([`LocalNet`]) or one `chorus node run` process per node ([`Procs`]); either way the run
//! sees each node as a [`Source`].

use crate::output::outln;
use std::time::{Duration, Instant};

use anyhow::Context;
use chorus_node::clock::Clock;
use chorus_node::localnet::{LocalNet, LocalPlan};

use super::observe::Source;
use super::procs::Procs;

/// How often the node processes are checked for a crash while the run follows node 0.
const ALIVE_CHECK: Duration = Duration::from_secs(2);

/// The running network.
pub(super) struct Network {
    local: Option<LocalNet>,
    procs: Option<Procs>,
    /// Every node, node 0 first (the observed one).
    pub sources: Vec<Source>,
    last_alive_check: Instant,
}

impl Network {
    /// Start every node of `plan`: as OS processes (logs under `logs`) if `processes`, else in
    /// this process. Returns when every node is up.
    pub async fn start(
        plan: &LocalPlan,
        processes: bool,
        logs: &std::path::Path,
        clock: Clock,
    ) -> anyhow::Result<Network> {
        let mut net = Network {
            local: None,
            procs: None,
            sources: vec![],
            last_alive_check: Instant::now(),
        };
        if processes {
            anyhow::ensure!(
                !clock.is_stepped(),
                "node processes run on their own clocks"
            );
            let bin = std::env::current_exe().context("locating the chorus executable")?;
            let mut p = Procs::start(plan, &bin, logs)?;
            p.wait_ready(Duration::from_secs(60)).await?;
            net.sources = p.clients()?.into_iter().map(Source::Remote).collect();
            net.procs = Some(p);
        } else {
            let local = LocalNet::start_on(plan.clone(), clock).await?;
            net.sources = (0..plan.nodes)
                .map(|i| local.handle(i).map(|h| Source::Local(h.clone())))
                .collect::<Option<Vec<_>>>()
                .context("a node is not running")?;
            net.local = Some(local);
        }
        Ok(net)
    }

    /// Every in-process node's handle, node 0 first (an error for node processes).
    pub fn local_handles(&self) -> anyhow::Result<Vec<chorus_node::actor::NodeHandle>> {
        self.sources
            .iter()
            .map(|s| match s {
                Source::Local(h) => Ok(h.clone()),
                Source::Remote(_) => anyhow::bail!("node processes are not in this process"),
            })
            .collect()
    }

    /// Node 0, the one the run follows.
    pub fn node0(&self) -> &Source {
        &self.sources[0]
    }

    /// An error naming a node process that has ended (checked every [`ALIVE_CHECK`]; nothing
    /// to check in-process).
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(p) = self.procs.as_mut()
            && self.last_alive_check.elapsed() > ALIVE_CHECK
        {
            p.check_alive()?;
            self.last_alive_check = Instant::now();
        }
        Ok(())
    }

    /// One line per node: its height, peers and whether it stalled (said when a run fails, so
    /// a stall can be told from one node falling behind).
    pub async fn describe(&self) -> String {
        let mut lines = vec![];
        for (i, src) in self.sources.iter().enumerate() {
            lines.push(match src.status().await {
                Ok(s) => format!(
                    "node {i}: height {}, {} peers{}{}",
                    s.height,
                    s.peers,
                    s.stalled
                        .map(|st| format!(", stalled at {}: {}", st.height, st.reason))
                        .unwrap_or_default(),
                    s.submissions
                        .last()
                        .map(|b| format!(
                            ", last submission {} of epoch {:?} {}",
                            b.kind,
                            b.epoch,
                            match &b.reason {
                                Some(r) => format!("refused: {r}"),
                                None if b.accepted => "accepted".into(),
                                None => "not accepted".into(),
                            }
                        ))
                        .unwrap_or_default()
                ),
                Err(e) => format!("node {i}: no status ({e})"),
            });
        }
        lines.join("; ")
    }

    /// Whether every node reports the same height and ledger root (tried for a few seconds,
    /// since nodes apply each checkpoint a few milliseconds apart).
    pub async fn agree(&self) -> bool {
        for _ in 0..200 {
            let mut seen = vec![];
            for src in &self.sources {
                if let Ok(s) = src.status().await {
                    seen.push((s.height, s.ledger_root));
                }
            }
            if seen.len() == self.sources.len() && seen.iter().all(|s| *s == seen[0]) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        false
    }

    /// `--keep`: print every node's REST URL (serving the API of in-process nodes first) and
    /// wait for Ctrl-C.
    pub async fn keep_running(&self, plan: &LocalPlan) -> anyhow::Result<()> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut servers = tokio::task::JoinSet::new();
        let mut urls = vec![];
        if let Some(net) = &self.local {
            for i in 0..plan.nodes {
                let Some(handle) = net.handle(i) else {
                    continue;
                };
                let token_file = plan.data_root.join(format!("node-{i}")).join("admin.token");
                let token = chorus_node::api::auth::load_or_create_token(&token_file)
                    .with_context(|| format!("admin token {}", token_file.display()))?;
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                urls.push((format!("http://{}", listener.local_addr()?), token_file));
                let router = chorus_node::api::router(handle.clone(), token);
                let mut stop = stop_rx.clone();
                servers.spawn(chorus_node::api::serve(listener, router, async move {
                    let _ = stop.wait_for(|s| *s).await;
                }));
            }
        }
        if let Some(p) = &self.procs {
            for (api, dir) in p.apis.iter().zip(&p.dirs) {
                urls.push((api.clone(), dir.join("admin.token")));
            }
        }
        outln!()?;
        outln!("the network keeps running; REST APIs (admin token files beside them):")?;
        for (i, (url, token)) in urls.iter().enumerate() {
            outln!("  node {i:2}  {url}   {}", token.display())?;
        }
        if let Some((url, _)) = urls.first() {
            outln!("dashboard: {url}/")?;
            outln!("try:")?;
            outln!("  chorus topic watch 1 --node {url}")?;
            outln!("  curl {url}/v1/topics/1/inference")?;
            outln!("  curl -N '{url}/v1/events?kinds=reward'")?;
        }
        outln!("press Ctrl-C to stop it")?;
        tokio::signal::ctrl_c().await?;
        let _ = stop_tx.send(true);
        while servers.join_next().await.is_some() {}
        Ok(())
    }

    /// Stop every node (storage flushed; node processes get SIGTERM, then SIGKILL).
    pub async fn shutdown(self) {
        if let Some(net) = self.local {
            net.shutdown().await;
        }
        if let Some(mut p) = self.procs {
            tokio::task::block_in_place(|| p.shutdown(Duration::from_secs(10)));
        }
    }
}
