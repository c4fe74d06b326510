//! How far this replica's clock is from its peers'.
//!
//! Windows open and close, and heights start, by each peer's own clock; the network tolerates
//! clocks up to `max_clock_skew_ms` apart. A validator whose clock runs ahead would propose
//! before the others have the period's entries (censoring them); one behind would refuse
//! on-time entries. So every [`TIME_EVERY_MS`] the replica asks a random peer for its time
//! (`Request::Time`), takes the midpoint of the round trip as the moment the peer read its
//! clock, and keeps the last offset of each peer (theirs − ours). The estimate is the median of
//! at least [`MIN_CLOCK_SAMPLES`] peers' offsets, so a minority of peers lying about the time
//! cannot move it past the honest ones. A one-way delay is not known, only the round trip: an
//! offset is uncertain by half of it, so a replica counts as off only when its estimate is
//! beyond the allowance by more than the median half round trip (slow links never make an
//! honest clock look wrong). Such a replica does not propose ([`Replica::clock_off`]); the host
//! shows the offset and warns. Until [`MIN_CLOCK_SAMPLES`] peers answered, a peer is asked
//! every anti-entropy round instead, so a new replica has an estimate within seconds.
//!
//! Pure like the rest of the replica: the times are the `now_ms` the host passes.

use std::collections::BTreeMap;

use super::{PeerKey, Replica};

/// How often a peer is asked for its time (ms).
pub const TIME_EVERY_MS: u64 = 5_000;
/// An answer that took longer than this says too little about the peer's clock (ms).
pub const MAX_TIME_RTT_MS: u64 = 2_000;
/// Fewest peers whose offsets make an estimate.
pub const MIN_CLOCK_SAMPLES: usize = 3;
/// Most peers whose offsets are kept (the oldest sample goes first).
pub const MAX_CLOCK_SAMPLES: usize = 64;
/// A sample older than this is dropped (ms): clocks drift, peers leave.
pub const CLOCK_SAMPLE_TTL_MS: u64 = 600_000;

/// One peer's last answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Sample {
    offset_ms: i64,
    rtt_ms: u64,
    at_ms: u64,
}

/// The last offset of each peer that answered.
#[derive(Debug, Default)]
pub(super) struct ClockOffsets {
    /// Peer → its clock minus ours (ms), the round trip it was measured over (ms), and when
    /// (our clock).
    samples: BTreeMap<PeerKey, Sample>,
}

impl ClockOffsets {
    /// Record an answer: the peer read `their_ms` while our clock went from `sent_ms` to
    /// `now_ms`. Slow answers are ignored.
    pub(super) fn record(&mut self, peer: PeerKey, sent_ms: u64, their_ms: u64, now_ms: u64) {
        let rtt = now_ms.saturating_sub(sent_ms);
        if rtt > MAX_TIME_RTT_MS || now_ms < sent_ms {
            return;
        }
        let mid = sent_ms + rtt / 2;
        let offset = (i128::from(their_ms) - i128::from(mid))
            .clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
        let sample = Sample {
            offset_ms: offset,
            rtt_ms: rtt,
            at_ms: now_ms,
        };
        self.samples.insert(peer, sample);
        self.samples
            .retain(|_, s| now_ms.saturating_sub(s.at_ms) <= CLOCK_SAMPLE_TTL_MS);
        while self.samples.len() > MAX_CLOCK_SAMPLES {
            let oldest = self
                .samples
                .iter()
                .min_by_key(|(peer, s)| (s.at_ms, **peer))
                .map(|(peer, _)| *peer);
            match oldest {
                Some(p) => self.samples.remove(&p),
                None => break,
            };
        }
    }

    /// Peers with a sample.
    pub(super) fn len(&self) -> usize {
        self.samples.len()
    }

    /// Forget a peer that left.
    pub(super) fn forget(&mut self, peer: &PeerKey) {
        self.samples.remove(peer);
    }

    /// The median offset (theirs − ours, ms), with at least [`MIN_CLOCK_SAMPLES`] peers.
    pub(super) fn estimate(&self) -> Option<i64> {
        (self.samples.len() >= MIN_CLOCK_SAMPLES)
            .then(|| median(self.samples.values().map(|s| s.offset_ms).collect()))
    }

    /// How uncertain the estimate is: the median half round trip (ms).
    pub(super) fn uncertainty(&self) -> u64 {
        let halves = self
            .samples
            .values()
            .map(|s| i64::try_from(s.rtt_ms / 2).unwrap_or(i64::MAX))
            .collect();
        u64::try_from(median(halves)).unwrap_or(0)
    }
}

/// The median (the midpoint of the middle two, rounded toward zero, for an even count; 0 for
/// none).
fn median(mut values: Vec<i64>) -> i64 {
    values.sort_unstable();
    let n = values.len();
    match n {
        0 => 0,
        _ if n % 2 == 1 => values[n / 2],
        _ => ((i128::from(values[n / 2 - 1]) + i128::from(values[n / 2])) / 2) as i64,
    }
}

impl Replica {
    /// This replica's clock offset from its peers' (their median minus ours, ms): positive when
    /// ours is behind. `None` until [`MIN_CLOCK_SAMPLES`] peers answered.
    pub fn clock_offset_ms(&self) -> Option<i64> {
        self.clock.estimate()
    }

    /// Whether this replica's clock is farther from its peers' than the network allows
    /// (`max_clock_skew_ms`, plus the estimate's uncertainty): it then does not propose, and
    /// the host says so.
    pub fn clock_off(&self) -> bool {
        let allowed = self
            .ledger
            .params
            .max_clock_skew_ms
            .saturating_add(self.clock.uncertainty());
        self.clock_offset_ms()
            .is_some_and(|o| o.unsigned_abs() > allowed)
    }
}

#[cfg(test)]
mod tests {
    use chorus_protocol::keys::Keypair;

    use super::*;

    fn peer(i: u8) -> PeerKey {
        Keypair::from_seed(&[i; 32]).public()
    }

    #[test]
    fn the_median_of_three_or_more_peers_and_liars_in_the_minority_do_not_move_it() {
        let mut c = ClockOffsets::default();
        // Peer 1's clock is 300 ms ahead: it read 10_350 at our 10_050 (sent 10_000, back at 10_100).
        c.record(peer(1), 10_000, 10_350, 10_100);
        assert_eq!(c.estimate(), None);
        c.record(peer(2), 10_000, 10_050, 10_100);
        assert_eq!(c.estimate(), None);
        c.record(peer(3), 10_000, 9_950, 10_100);
        // Offsets +300, 0, −100: the median is 0.
        assert_eq!(c.estimate(), Some(0));
        // Two liars claiming a year ahead: five samples, the median is still an honest one.
        c.record(peer(4), 10_000, 10_000 + 31_536_000_000, 10_100);
        c.record(peer(5), 10_000, u64::MAX, 10_100);
        assert_eq!(c.estimate(), Some(300));
        // A slow answer says nothing; a peer that left is forgotten.
        c.record(peer(6), 10_000, 99_999_999, 10_000 + MAX_TIME_RTT_MS + 1);
        assert_eq!(c.samples.len(), 5);
        c.forget(&peer(4));
        c.forget(&peer(5));
        assert_eq!(c.estimate(), Some(0));
        // Four samples: the midpoint of the middle two (0 and +300).
        c.record(peer(7), 10_000, 10_450, 10_100);
        assert_eq!(c.estimate(), Some(150));
        // Every round trip took 100 ms: the estimate is uncertain by 50.
        assert_eq!(c.uncertainty(), 50);
    }

    #[test]
    fn samples_are_bounded_and_expire() {
        let mut c = ClockOffsets::default();
        for i in 0..(MAX_CLOCK_SAMPLES as u8 + 10) {
            c.record(peer(i), u64::from(i), u64::from(i), u64::from(i) + 1);
        }
        assert_eq!(c.samples.len(), MAX_CLOCK_SAMPLES);
        // The oldest went first.
        assert!(!c.samples.contains_key(&peer(0)));
        assert!(c.samples.contains_key(&peer(MAX_CLOCK_SAMPLES as u8 + 9)));
        // Long after, one new sample: the old ones expired.
        let later = CLOCK_SAMPLE_TTL_MS + 1_000;
        c.record(peer(200), later, later, later + 10);
        assert_eq!(c.samples.len(), 1);
    }
}
