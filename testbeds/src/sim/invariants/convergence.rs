//! Convergence: after the heal and the drain, every checked node holds the same state — the
//! same ledger height, ledger root and tip, the same decided checkpoint at every height, and
//! the same root (set of heads) for every open window — and that state is current: every
//! checkpoint whose period ended [`DUE_SLACK`] periods ago is applied. Checked after every step of the
//! convergence phase until it holds (then recorded) or the deadline passes (a violation
//! naming the first difference).

use std::collections::BTreeSet;

use chorus_crdt::replica::sim::Sim;
use chorus_crdt::window::{WindowKey, root_of};

/// Periods a checkpoint may still be in flight after its period ended.
pub const DUE_SLACK: u64 = 2;

/// The first difference between the checked nodes, or `None` if they are identical and
/// have applied at least `min_height` heights (identical but stalled is not converged).
/// Every checked node must be running.
pub fn difference(sim: &Sim, nodes: &[usize], min_height: u64) -> Option<String> {
    let mut replicas = vec![];
    for &i in nodes {
        match sim.nodes[i].replica.as_ref() {
            Some(r) => replicas.push((i, r)),
            None => return Some(format!("node {i} is not running")),
        }
    }
    let (first, reference) = *replicas.first()?;
    let ledger = reference.ledger();
    let (height, root, tip) = (ledger.next_height, ledger.root(), reference.tip());
    if height < min_height {
        return Some(format!(
            "node {first} applied {height} heights, {min_height} are due"
        ));
    }
    for &(i, r) in &replicas[1..] {
        if r.ledger().next_height != height {
            return Some(format!(
                "node {i} applied {} heights, node {first} {height}",
                r.ledger().next_height
            ));
        }
        if r.tip() != tip {
            return Some(format!("node {i} and node {first} have different tips"));
        }
        if r.ledger().root() != root {
            return Some(format!(
                "node {i} and node {first} have different ledger roots at height {height}"
            ));
        }
    }
    let chain = &sim.nodes[first].store.decided;
    for &(i, _) in &replicas[1..] {
        let other = &sim.nodes[i].store.decided;
        for h in 1..=height {
            let a = chain.get(&h).map(|d| d.id());
            let b = other.get(&h).map(|d| d.id());
            if a != b {
                return Some(format!(
                    "node {i} and node {first} stored different checkpoints at height {h}"
                ));
            }
        }
    }
    let keys: BTreeSet<WindowKey> = replicas.iter().flat_map(|(_, r)| r.window_keys()).collect();
    let empty = root_of(&[]);
    for key in keys {
        let roots: Vec<_> = replicas
            .iter()
            .map(|(i, r)| (*i, r.window(&key).map_or(empty, |w| w.root())))
            .collect();
        if let Some((i, _)) = roots.iter().find(|(_, r)| *r != roots[0].1) {
            return Some(format!(
                "node {i} and node {} hold different heads of {key:?}",
                roots[0].0
            ));
        }
    }
    None
}
