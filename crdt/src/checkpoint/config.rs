//! What an [`Engine`](super::engine::Engine) is configured with, and the timers it asks its
//! host to schedule: timeout durations, catch-up intervals, the start schedule of heights,
//! and timer ids (Malachite's timeouts plus our catch-up and start timers).

use arc_malachitebft_core_types as mtypes;
use chorus_protocol::ids::Hash32;
use mtypes::{Round, Timeout, TimeoutKind};

use super::error::EngineError;

/// Timeout durations, linear in the round and capped (Malachite's `LinearTimeouts` in ms).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeoutConfig {
    /// Wait for a proposal before prevoting nil (round 0).
    pub propose_ms: u64,
    /// Added per round.
    pub propose_delta_ms: u64,
    /// Wait after > 2/3 prevotes for anything before precommitting nil.
    pub prevote_ms: u64,
    /// Added per round.
    pub prevote_delta_ms: u64,
    /// Wait after > 2/3 precommits for anything before the next round.
    pub precommit_ms: u64,
    /// Added per round.
    pub precommit_delta_ms: u64,
    /// Period of re-sending our latest votes (lossy gossip).
    pub rebroadcast_ms: u64,
    /// Cap of every duration.
    pub max_ms: u64,
}

impl Default for TimeoutConfig {
    /// Malachite's defaults: 3 s propose, 1 s prevote and precommit, +0.5 s per round each,
    /// re-broadcast every 5 s, nothing longer than 60 s. A checkpoint period is minutes long,
    /// so these are far below it.
    fn default() -> Self {
        TimeoutConfig {
            propose_ms: 3_000,
            propose_delta_ms: 500,
            prevote_ms: 1_000,
            prevote_delta_ms: 500,
            precommit_ms: 1_000,
            precommit_delta_ms: 500,
            rebroadcast_ms: 5_000,
            max_ms: 60_000,
        }
    }
}

impl TimeoutConfig {
    /// Duration of a timer of `kind` in `round`.
    pub fn duration_ms(&self, kind: TimerKind, round: u32) -> u64 {
        let r = u64::from(round);
        let (base, delta) = match kind {
            TimerKind::Propose => (self.propose_ms, self.propose_delta_ms),
            TimerKind::Prevote => (self.prevote_ms, self.prevote_delta_ms),
            TimerKind::Precommit => (self.precommit_ms, self.precommit_delta_ms),
            TimerKind::CatchUp | TimerKind::Start => (0, 0),
            TimerKind::Rebroadcast => (
                self.rebroadcast_ms,
                self.propose_delta_ms
                    .saturating_add(self.prevote_delta_ms)
                    .saturating_add(self.precommit_delta_ms),
            ),
        };
        base.saturating_add(delta.saturating_mul(r))
            .min(self.max_ms)
    }
}

/// Engine configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineConfig {
    /// The network id: signed into every vote and proposal.
    pub network: Hash32,
    /// The `previous` of the checkpoint at height 1.
    pub genesis: Hash32,
    /// Timeout durations.
    pub timeouts: TimeoutConfig,
    /// Decided checkpoints kept in memory to serve catch-up (older ones: `CatchUpMiss`).
    /// Default 256: with one checkpoint per few minutes, about a day.
    pub decided_retention: usize,
    /// Minimum interval between two catch-up requests for one height, and between two
    /// answers to one peer for one height. Default 1 s: a few network round trips.
    pub catch_up_retry_ms: u64,
    /// How long messages of the next height may arrive before a node asks for catch-up
    /// (messages two or more heights ahead trigger it at once). Default 1 s.
    pub catch_up_grace_ms: u64,
    /// When heights may start (`None`: as soon as the previous one is decided).
    pub start_schedule: Option<StartSchedule>,
    /// The host supplies the validator set of every height (the replica: applying height `h`
    /// supplies the set of `h + 2`, changed or not), so a height waits to start until its own
    /// set has been supplied, instead of running with the newest older one. Without it a node
    /// that decides heights faster than it applies them (catch-up) would start a height with
    /// the set of an earlier one, and stall or verify with the wrong validators when the set
    /// changed meanwhile. Default `false`: the set in force is the newest supplied at or below
    /// the height (hosts that supply sets only when they change).
    pub await_each_set: bool,
}

impl EngineConfig {
    /// Defaults for `network` with `genesis` as the first `previous`.
    pub fn new(network: Hash32, genesis: Hash32) -> Self {
        EngineConfig {
            network,
            genesis,
            timeouts: TimeoutConfig::default(),
            decided_retention: 256,
            catch_up_retry_ms: 1_000,
            catch_up_grace_ms: 1_000,
            start_schedule: None,
            await_each_set: false,
        }
    }

    /// Check the ranges.
    pub fn validate(&self) -> Result<(), EngineError> {
        let t = &self.timeouts;
        if t.propose_ms == 0 || t.prevote_ms == 0 || t.precommit_ms == 0 || t.rebroadcast_ms == 0 {
            return Err(EngineError::BadConfig("timeouts must be positive"));
        }
        if t.max_ms < t.propose_ms.max(t.prevote_ms).max(t.precommit_ms) {
            return Err(EngineError::BadConfig("max_ms below a base timeout"));
        }
        if self.decided_retention == 0 {
            return Err(EngineError::BadConfig(
                "decided_retention must be at least 1",
            ));
        }
        Ok(())
    }
}

/// The kind of a consensus timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TimerKind {
    /// Waiting for a proposal.
    Propose,
    /// Waiting after > 2/3 prevotes for anything.
    Prevote,
    /// Waiting after > 2/3 precommits for anything.
    Precommit,
    /// Re-send our latest votes.
    Rebroadcast,
    /// Re-check whether we are behind and ask for catch-up (not a consensus timer: it
    /// survives `Effect::CancelAllTimers`).
    CatchUp,
    /// The scheduled start of the next height ([`StartSchedule`]); survives
    /// `Effect::CancelAllTimers` like `CatchUp`.
    Start,
}

/// When each height may start: a checkpoint finalizes a period of wall-clock time, so its
/// height should not start (and ask its proposer for a value) before that period has ended.
/// Heights whose time has passed start at once (catching up).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StartSchedule {
    /// Earliest start of height 1 (ms).
    pub first_ms: u64,
    /// Time between the earliest starts of consecutive heights (ms).
    pub period_ms: u64,
}

impl StartSchedule {
    /// Earliest start of `height` (ms).
    pub fn at(&self, height: u64) -> u64 {
        self.first_ms
            .saturating_add(height.saturating_sub(1).saturating_mul(self.period_ms))
    }
}

/// Identifies a timer. Scheduling an id again replaces the earlier deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimerId {
    /// Height the timer belongs to (stale heights are ignored when fired).
    pub height: u64,
    /// Round.
    pub round: u32,
    /// Kind.
    pub kind: TimerKind,
}

impl TimerId {
    pub(crate) fn of(height: u64, t: &Timeout) -> Option<TimerId> {
        let kind = match t.kind {
            TimeoutKind::Propose => TimerKind::Propose,
            TimeoutKind::Prevote => TimerKind::Prevote,
            TimeoutKind::Precommit => TimerKind::Precommit,
            TimeoutKind::Rebroadcast => TimerKind::Rebroadcast,
            TimeoutKind::FinalizeHeight(_) => return None,
        };
        Some(TimerId {
            height,
            round: t.round.as_u32()?,
            kind,
        })
    }

    pub(crate) fn to_timeout(self) -> Option<Timeout> {
        let kind = match self.kind {
            TimerKind::Propose => TimeoutKind::Propose,
            TimerKind::Prevote => TimeoutKind::Prevote,
            TimerKind::Precommit => TimeoutKind::Precommit,
            TimerKind::Rebroadcast => TimeoutKind::Rebroadcast,
            TimerKind::CatchUp | TimerKind::Start => return None,
        };
        Some(Timeout::new(Round::new(self.round), kind))
    }
}
