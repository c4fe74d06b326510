//! A network-namespace lab for real partitions (root only, `ip` from iproute2).
//!
//! One namespace per node, each with one veth whose other end is on a bridge in the root
//! namespace; no uplink and no default route, so nothing can leave the lab. Addresses:
//! `10.77.<side+1>.<k+1>/16` for the `k`-th node of side `side`, the bridge `10.77.0.254/16`
//! (the testbed reaches every node's API from the root namespace through it).
//!
//! A partition installs blackhole routes for the other side's `/24` in every namespace
//! (packets between the sides are silently dropped, in both directions; each side and the
//! bridge keep talking); healing deletes them. nftables would do the same with a ruleset; the
//! routes need nothing beyond iproute2.
//!
//! Names carry this process's id (`chp<pid>-<i>`, bridge `chb<pid>`), so concurrent runs do
//! not collide; [`Lab`] deletes everything on drop, and [`sweep_stale`] removes what a killed
//! run left behind.

use std::process::{Command, Stdio};

use anyhow::{Context, bail};

/// Why the lab cannot run here, if it cannot.
pub fn unavailable() -> Option<String> {
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string());
    if uid.as_deref() != Some("0") {
        return Some(format!(
            "network namespaces need root (id -u = {})",
            uid.unwrap_or_else(|| "?".into())
        ));
    }
    if !super::have("ip") {
        return Some("`ip` (iproute2) not found".into());
    }
    let probe = format!("chprobe{}", std::process::id() % 100_000);
    let ok = ip(&["netns", "add", &probe]).is_ok();
    let _ = ip(&["netns", "del", &probe]);
    if !ok {
        return Some("`ip netns add` failed (no CAP_SYS_ADMIN / CAP_NET_ADMIN?)".into());
    }
    None
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running ip {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn in_ns(ns: &str, args: &[&str]) -> anyhow::Result<()> {
    let mut full = vec!["netns", "exec", ns, "ip"];
    full.extend_from_slice(args);
    ip(&full)
}

/// Delete namespaces and bridges of earlier runs whose process is gone.
pub fn sweep_stale() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    for name in text.lines().filter_map(|l| l.split_whitespace().next()) {
        let Some(rest) = name.strip_prefix("chp") else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = ip(&["netns", "del", name]);
            let _ = ip(&["link", "del", &format!("chb{pid}")]);
        }
    }
}

/// The lab: namespaces, veths, bridge.
#[derive(Debug)]
pub struct Lab {
    tag: u32,
    bridge: String,
    /// Namespace name and address of each node.
    pub nodes: Vec<(String, String)>,
    /// Side (0 or 1) of each node.
    pub sides: Vec<usize>,
    partitioned: bool,
}

impl Lab {
    /// Build a lab for nodes on the given sides (0 or 1 each).
    pub fn create(sides: &[usize]) -> anyhow::Result<Lab> {
        sweep_stale();
        let tag = std::process::id();
        let bridge = format!("chb{tag}");
        let mut lab = Lab {
            tag,
            bridge: bridge.clone(),
            nodes: vec![],
            sides: sides.to_vec(),
            partitioned: false,
        };
        ip(&["link", "add", &bridge, "type", "bridge"])?;
        ip(&["addr", "add", "10.77.0.254/16", "dev", &bridge])?;
        ip(&["link", "set", &bridge, "up"])?;
        let mut per_side = [0usize; 2];
        for (i, side) in sides.iter().enumerate() {
            let side = (*side).min(1);
            per_side[side] += 1;
            let ns = format!("chp{tag}-{i}");
            let addr = format!("10.77.{}.{}", side + 1, per_side[side]);
            let host = format!("chv{tag}h{i}");
            let peer = format!("chv{tag}n{i}");
            ip(&["netns", "add", &ns])?;
            lab.nodes.push((ns.clone(), addr.clone()));
            ip(&["link", "add", &host, "type", "veth", "peer", "name", &peer])?;
            ip(&["link", "set", &peer, "netns", &ns])?;
            ip(&["link", "set", &host, "master", &bridge])?;
            ip(&["link", "set", &host, "up"])?;
            in_ns(&ns, &["link", "set", "lo", "up"])?;
            in_ns(&ns, &["link", "set", &peer, "name", "eth0"])?;
            in_ns(&ns, &["addr", "add", &format!("{addr}/16"), "dev", "eth0"])?;
            in_ns(&ns, &["link", "set", "eth0", "up"])?;
        }
        Ok(lab)
    }

    fn routes(&mut self, add: bool) -> anyhow::Result<()> {
        for (i, (ns, _)) in self.nodes.iter().enumerate() {
            let other = if self.sides[i] == 0 { 2 } else { 1 };
            let net = format!("10.77.{other}.0/24");
            in_ns(
                ns,
                &["route", if add { "add" } else { "del" }, "blackhole", &net],
            )?;
        }
        self.partitioned = add;
        Ok(())
    }

    /// Cut the sides apart.
    pub fn partition(&mut self) -> anyhow::Result<()> {
        self.routes(true)
    }

    /// Join them again.
    pub fn heal(&mut self) -> anyhow::Result<()> {
        self.routes(false)
    }

    /// The tag in every name of this lab.
    pub fn tag(&self) -> u32 {
        self.tag
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for (ns, _) in &self.nodes {
            let _ = ip(&["netns", "del", ns]);
        }
        let _ = ip(&["link", "del", &self.bridge]);
    }
}
