//! What this node holds against its peers: an application penalty per peer that decays over
//! time (half-life [`PENALTY_HALF_LIFE_MS`]), and graylisting that expires after
//! [`GRAYLIST_MS`]. A peer that misbehaved once is forgiven; one that keeps misbehaving stays
//! graylisted, since each new offence raises its penalty again.
//!
//! Pure bookkeeping (times are arguments), generic over the peer id so it is tested without a
//! swarm; the network driver applies it to gossipsub's application score and the block list.

use std::collections::BTreeMap;

/// Time for a penalty to halve (ms).
pub const PENALTY_HALF_LIFE_MS: u64 = 5 * 60 * 1_000;
/// How long a graylisted peer stays blocked (ms).
pub const GRAYLIST_MS: u64 = 10 * 60 * 1_000;
/// Penalties below this are forgotten.
const FORGET_BELOW: f64 = 0.01;

/// Penalties and graylist expiries per peer.
#[derive(Debug)]
pub struct PenaltyBook<P> {
    /// Penalty as of the time it was last updated.
    penalties: BTreeMap<P, (f64, u64)>,
    /// Blocked until (ms).
    blocked: BTreeMap<P, u64>,
}

impl<P> Default for PenaltyBook<P> {
    fn default() -> Self {
        PenaltyBook {
            penalties: BTreeMap::new(),
            blocked: BTreeMap::new(),
        }
    }
}

fn decayed(penalty: f64, since_ms: u64, now_ms: u64) -> f64 {
    let dt = now_ms.saturating_sub(since_ms) as f64;
    penalty * (-(dt / PENALTY_HALF_LIFE_MS as f64) * std::f64::consts::LN_2).exp()
}

impl<P: Ord + Clone> PenaltyBook<P> {
    /// Add `amount` to `peer`'s penalty; returns the penalty now.
    pub fn add(&mut self, peer: &P, amount: f64, now_ms: u64) -> f64 {
        let now = self.current(peer, now_ms) + amount.max(0.0);
        self.penalties.insert(peer.clone(), (now, now_ms));
        now
    }

    /// `peer`'s penalty at `now_ms` (0 if none).
    pub fn current(&self, peer: &P, now_ms: u64) -> f64 {
        self.penalties
            .get(peer)
            .map_or(0.0, |(p, at)| decayed(*p, *at, now_ms))
    }

    /// Decay every penalty to `now_ms`: the penalties to apply now (forgotten ones as 0).
    pub fn decay(&mut self, now_ms: u64) -> Vec<(P, f64)> {
        let mut out = Vec::with_capacity(self.penalties.len());
        self.penalties.retain(|peer, (p, at)| {
            *p = decayed(*p, *at, now_ms);
            *at = now_ms;
            let keep = *p >= FORGET_BELOW;
            out.push((peer.clone(), if keep { *p } else { 0.0 }));
            keep
        });
        out
    }

    /// Graylist `peer` until `now_ms + GRAYLIST_MS`.
    pub fn block(&mut self, peer: &P, now_ms: u64) {
        self.blocked
            .insert(peer.clone(), now_ms.saturating_add(GRAYLIST_MS));
    }

    /// Whether `peer` is graylisted.
    pub fn is_blocked(&self, peer: &P) -> bool {
        self.blocked.contains_key(peer)
    }

    /// The peers whose graylisting ended by `now_ms` (removed from the list).
    pub fn expired(&mut self, now_ms: u64) -> Vec<P> {
        let done: Vec<P> = self
            .blocked
            .iter()
            .filter(|(_, until)| **until <= now_ms)
            .map(|(p, _)| p.clone())
            .collect();
        for p in &done {
            self.blocked.remove(p);
        }
        done
    }

    /// Graylisted peers.
    pub fn blocked_count(&self) -> usize {
        self.blocked.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_penalty_halves_every_half_life_and_is_then_forgotten() {
        let mut b = PenaltyBook::default();
        assert_eq!(b.add(&1, 40.0, 0), 40.0);
        assert!((b.current(&1, PENALTY_HALF_LIFE_MS) - 20.0).abs() < 1e-9);
        assert!((b.add(&1, 10.0, PENALTY_HALF_LIFE_MS) - 30.0).abs() < 1e-9);
        let later = b.decay(3 * PENALTY_HALF_LIFE_MS);
        assert_eq!(later.len(), 1);
        assert!((later[0].1 - 7.5).abs() < 1e-9);
        // After long enough the penalty is forgotten, and reported once as 0.
        assert_eq!(b.decay(100 * PENALTY_HALF_LIFE_MS), vec![(1, 0.0)]);
        assert!(b.decay(101 * PENALTY_HALF_LIFE_MS).is_empty());
        assert_eq!(b.current(&1, 0), 0.0);
    }

    #[test]
    fn graylisting_expires() {
        let mut b = PenaltyBook::default();
        b.block(&7, 1_000);
        assert!(b.is_blocked(&7));
        assert!(b.expired(1_000 + GRAYLIST_MS - 1).is_empty());
        assert_eq!(b.expired(1_000 + GRAYLIST_MS), vec![7]);
        assert!(!b.is_blocked(&7));
        assert_eq!(b.blocked_count(), 0);
    }
}
