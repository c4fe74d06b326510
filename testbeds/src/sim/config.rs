//! What a simulation run is: the validated configuration, and its command-line form.

use clap::{Args, ValueEnum};

/// Why a configuration cannot run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Out of range.
    #[error("{field}: {reason}")]
    Range {
        /// The flag.
        field: &'static str,
        /// Why.
        reason: &'static str,
    },
}

/// A byzantine validator's behaviour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ValidatorAttack {
    /// Signs a conflicting second vote for each of its votes.
    Equivocate,
    /// Proposes checkpoints with a wrong ledger root (re-signed).
    BadRoot,
    /// Runs a twin (a clone with its key and store) in the other half of a split network.
    Twin,
    /// Its clock runs 4 × `max_clock_skew_ms` ahead: it must notice from its peers' answers and
    /// pass up its turns to propose (only with `--attack fast-clock`; never drawn).
    FastClock,
    /// Follows each of its votes with one for a height 1 000 above, validly signed: a claim
    /// to be far ahead that nothing backs (drawn like the others).
    ForgedAhead,
}

/// A simulation run (every seed runs the same configuration).
#[derive(Clone, Debug, PartialEq)]
pub struct SimConfig {
    /// Nodes (2 ..= 128). Nodes `0..validators` are validators.
    pub nodes: usize,
    /// Validators (1 ..= nodes).
    pub validators: usize,
    /// Seeds to run.
    pub seeds: u64,
    /// First seed (seeds `first_seed .. first_seed + seeds`).
    pub first_seed: u64,
    /// Fraction of validator stake held by byzantine validators, `[0, 0.9]`. Below 1/3 each
    /// byzantine validator gets a behaviour from the seed (equivocation, bad-root proposals,
    /// twins); at 1/3 or more they are colluding twins that split the network, and safety is
    /// not claimed.
    pub byzantine_stake: f64,
    /// Length of the random partition of each seed (0: none).
    pub partition_secs: u64,
    /// Length of the fault phase in epochs (1 epoch = 1 checkpoint period = 1 s).
    pub epochs: u64,
    /// No random faults at all (no loss, duplication, skew, partitions, crashes or byzantine
    /// authors): for measuring finality.
    pub calm: bool,
    /// Worker threads (seeds run in parallel; results do not depend on it).
    pub jobs: usize,
    /// Every byzantine validator does this (default: drawn per seed; twins at ≥ 1/3).
    pub attack: Option<ValidatorAttack>,
    /// An equivocating worker (a non-validator): in every seed (`true`), in none (`false`),
    /// or with probability 1/2 per seed (default).
    pub equivocating_worker: Option<bool>,
    /// A garbage peer (a non-validator): always, never, or with probability 1/2 (default).
    pub garbage_peer: Option<bool>,
    /// Validator churn beyond the cap (honest non-validators bond, enter and leave the set,
    /// [`super::churn`]): always, never, or with probability 1/2 (default).
    pub churn: Option<bool>,
}

impl Default for SimConfig {
    /// 6 nodes (4 validators, 4 workers, 2 reputers), a quarter of the stake byzantine, a 5 s
    /// partition, 20 epochs of faults: about 30 s of virtual time per seed.
    fn default() -> Self {
        SimConfig {
            nodes: 6,
            validators: 4,
            seeds: 1,
            first_seed: 0,
            byzantine_stake: 0.25,
            partition_secs: 5,
            epochs: 20,
            calm: false,
            jobs: 1,
            attack: None,
            equivocating_worker: None,
            garbage_peer: None,
            churn: None,
        }
    }
}

/// Smallest fault phase: the warm-up plus a few checkpoints.
pub const MIN_EPOCHS: u64 = 4;

impl SimConfig {
    /// Check the ranges.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let range = |field, reason| Err(ConfigError::Range { field, reason });
        if !(2..=128).contains(&self.nodes) {
            return range("--nodes", "must be in 2..=128");
        }
        if self.validators == 0 || self.validators > self.nodes {
            return range("--validators", "must be in 1..=nodes");
        }
        if self.seeds == 0 {
            return range("--seeds", "must be at least 1");
        }
        if !(0.0..=0.9).contains(&self.byzantine_stake) {
            return range("--byzantine-stake", "must be in [0, 0.9]");
        }
        if self.byzantine_stake > 0.0 && self.validators < 2 {
            return range("--byzantine-stake", "needs at least 2 validators");
        }
        if !(MIN_EPOCHS..=10_000).contains(&self.epochs) {
            return range("--epochs", "must be in 4..=10000");
        }
        if self.jobs == 0 {
            return range("--jobs", "must be at least 1");
        }
        Ok(())
    }

    /// Whether the byzantine stake is below 1/3, i.e. whether safety is claimed.
    pub fn safety_claimed(&self) -> bool {
        self.byzantine_stake < 1.0 / 3.0
    }
}

/// `chorus-testbeds sim` flags.
#[derive(Args, Debug, Clone)]
pub struct SimArgs {
    /// Nodes.
    #[arg(long, default_value_t = 6)]
    pub nodes: usize,
    /// Validators (the first nodes).
    #[arg(long, default_value_t = 4)]
    pub validators: usize,
    /// Seeds to run.
    #[arg(long, default_value_t = 100)]
    pub seeds: u64,
    /// First seed (to reproduce one seed: `--first-seed S --seeds 1`).
    #[arg(long, default_value_t = 0)]
    pub first_seed: u64,
    /// Fraction of validator stake that is byzantine (≥ 1/3: colluding twins, safety not
    /// claimed).
    #[arg(long, default_value_t = 0.25)]
    pub byzantine_stake: f64,
    /// Length of each seed's random partition (s; 0: none).
    #[arg(long, default_value_t = 5)]
    pub partition_secs: u64,
    /// Fault phase length in epochs (1 epoch = 1 s of virtual time).
    #[arg(long, default_value_t = 20)]
    pub epochs: u64,
    /// No random faults (finality measurements).
    #[arg(long)]
    pub calm: bool,
    /// Force every byzantine validator's behaviour (default: drawn per seed).
    #[arg(long, value_enum)]
    pub attack: Option<ValidatorAttack>,
    /// An equivocating worker in every seed (`true`) or none (`false`); default: 1/2.
    #[arg(long)]
    pub equivocating_worker: Option<bool>,
    /// A garbage peer in every seed (`true`) or none (`false`); default: 1/2.
    #[arg(long)]
    pub garbage_peer: Option<bool>,
    /// Validator churn beyond the cap in every seed (`true`) or none (`false`); default: 1/2.
    #[arg(long)]
    pub churn: Option<bool>,
    /// Worker threads (default: available cores).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Machine-readable summary on stdout.
    #[arg(long)]
    pub json: bool,
    /// One line per seed (what it drew, its trace digest, its violations) on stderr.
    #[arg(long)]
    pub verbose: bool,
}

impl SimArgs {
    /// The validated configuration.
    pub fn config(&self) -> Result<SimConfig, ConfigError> {
        let jobs = self.jobs.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        });
        let c = SimConfig {
            nodes: self.nodes,
            validators: self.validators,
            seeds: self.seeds,
            first_seed: self.first_seed,
            byzantine_stake: self.byzantine_stake,
            partition_secs: self.partition_secs,
            epochs: self.epochs,
            calm: self.calm,
            jobs,
            attack: self.attack,
            equivocating_worker: self.equivocating_worker,
            garbage_peer: self.garbage_peer,
            churn: self.churn,
        };
        c.validate()?;
        Ok(c)
    }
}
