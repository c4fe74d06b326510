//! Where a window stands for this ledger at a given time: the one rule behind "may an entry
//! still join this window?", "should peers reconcile it?" and "may it be dropped?".

use chorus_protocol::validation::{WindowTiming, window_timing};

use super::Ledger;
use crate::window::{Phase, WindowKey};

/// The state of a window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WindowState {
    /// A topic window of a topic this ledger does not know (yet).
    UnknownTopic,
    /// Its submission period has not begun, even with the clock-skew allowance.
    NotOpen,
    /// Taking submissions.
    Open,
    /// Its submission period (plus the skew allowance) is over and no applied checkpoint
    /// finalized it yet: its content should not change any more, and peers reconcile it.
    Closed,
    /// An applied checkpoint finalized it.
    Finalized,
}

impl WindowState {
    /// Open or closed: entries may still join it by reconciliation, and it is kept.
    pub fn is_live(self) -> bool {
        matches!(self, WindowState::Open | WindowState::Closed)
    }
}

impl Ledger {
    /// Whether an applied checkpoint finalized `key` (`None`: a topic this ledger does not
    /// know). Needs no clock.
    pub fn is_finalized(&self, key: &WindowKey) -> Option<bool> {
        match *key {
            WindowKey::Ledger { period } => Some(period < self.next_height),
            WindowKey::Topic {
                topic,
                epoch,
                phase,
            } => self.topics.get(&topic).map(|t| match phase {
                Phase::Workers => epoch < t.next_worker_epoch,
                Phase::Reputers => epoch < t.next_reputer_epoch,
            }),
        }
    }

    /// `[open, close)` of a window (no skew); `None` for a topic this ledger does not know.
    pub fn window_span(&self, key: &WindowKey) -> Option<(u64, u64)> {
        match *key {
            WindowKey::Ledger { period } => {
                Some((self.period_start(period), self.period_end(period)))
            }
            WindowKey::Topic {
                topic,
                epoch,
                phase,
            } => self.topics.get(&topic).map(|t| match phase {
                Phase::Workers => t.spec.worker_window(epoch),
                Phase::Reputers => t.spec.reputer_window(epoch),
            }),
        }
    }

    /// The state of `key` at `now_ms`.
    pub fn window_state(&self, key: &WindowKey, now_ms: u64) -> WindowState {
        match (self.is_finalized(key), self.window_span(key)) {
            (None, _) | (_, None) => WindowState::UnknownTopic,
            (Some(true), _) => WindowState::Finalized,
            (Some(false), Some(span)) => {
                match window_timing(span, now_ms, self.params.max_clock_skew_ms) {
                    WindowTiming::NotOpen => WindowState::NotOpen,
                    WindowTiming::Open => WindowState::Open,
                    WindowTiming::Closed => WindowState::Closed,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use chorus_protocol::genesis::{
        Genesis, GenesisBalance, GenesisTopic, GenesisValidator, Token,
    };
    use chorus_protocol::ids::{Amount, TopicId};
    use chorus_protocol::keys::Keypair;
    use chorus_protocol::params::ModuleParams;
    use chorus_protocol::topic::{LossMethod, TopicSpec};

    use super::*;

    const SKEW: u64 = 250;

    fn ledger() -> Ledger {
        let me = Keypair::from_seed(&[1; 32]).public();
        let spec = TopicSpec::new("t", LossMethod::Mse, 10_000, 1_000, 500, 1_000);
        let g = Genesis {
            network: "window-state".into(),
            genesis_time_ms: 10_000,
            token: Token {
                symbol: "CHR".into(),
                decimals: 0,
            },
            balances: vec![GenesisBalance {
                address: me,
                amount: Amount(1_000_000),
            }],
            validators: vec![GenesisValidator {
                address: me,
                bond: Amount(100),
                name: "a".into(),
            }],
            reputer_stakes: vec![],
            registrations: vec![],
            params: ModuleParams {
                checkpoint_period_ms: 1_000,
                min_epoch_length_ms: 100,
                max_clock_skew_ms: SKEW,
                ..ModuleParams::default()
            },
            topics: vec![GenesisTopic {
                id: TopicId(1),
                creator: me,
                spec,
                fee_revenue: Amount(0),
            }],
        };
        Ledger::from_genesis(&g).unwrap()
    }

    #[test]
    fn topic_windows_open_close_and_finalize() {
        let mut l = ledger();
        let key = |epoch| WindowKey::Topic {
            topic: TopicId(1),
            epoch,
            phase: Phase::Workers,
        };
        let (open, close) = l.window_span(&key(3)).unwrap();
        assert_eq!((open, close), (13_000, 13_500));
        assert_eq!(
            l.window_state(&key(3), open - SKEW - 1),
            WindowState::NotOpen
        );
        assert_eq!(l.window_state(&key(3), open - SKEW), WindowState::Open);
        assert_eq!(l.window_state(&key(3), close + SKEW - 1), WindowState::Open);
        assert_eq!(l.window_state(&key(3), close + SKEW), WindowState::Closed);
        l.topics.get_mut(&TopicId(1)).unwrap().next_worker_epoch = 4;
        assert_eq!(
            l.window_state(&key(3), close + SKEW),
            WindowState::Finalized
        );
        assert_eq!(l.window_state(&key(9), close + SKEW), WindowState::NotOpen);
        assert_eq!(l.is_finalized(&key(3)), Some(true));
        let unknown = WindowKey::Topic {
            topic: TopicId(9_999),
            epoch: 0,
            phase: Phase::Reputers,
        };
        assert_eq!(l.window_state(&unknown, 0), WindowState::UnknownTopic);
        assert_eq!(l.is_finalized(&unknown), None);
    }

    #[test]
    fn ledger_periods_follow_the_checkpoint_period() {
        let mut l = ledger();
        let p = WindowKey::Ledger { period: 2 };
        let (start, end) = (l.period_start(2), l.period_end(2));
        assert_eq!(l.window_state(&p, start - SKEW - 1), WindowState::NotOpen);
        assert_eq!(l.window_state(&p, start), WindowState::Open);
        assert_eq!(l.window_state(&p, end + SKEW), WindowState::Closed);
        l.next_height = 3;
        assert_eq!(l.window_state(&p, 0), WindowState::Finalized);
    }
}
