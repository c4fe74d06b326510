//! Module parameters: Allora v0.6's defaults (allora-chain `x/emissions/types/params.go`,
//! `DefaultParams`), plus the few Chorus needs because it has checkpoints instead of blocks.
//!
//! Allora counts in blocks of about 5 s; Chorus counts in milliseconds. Where an Allora
//! parameter is a block count it is converted at 5 s per block and the comment says so.

use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};

use crate::ids::Amount;

/// Allora's nominal block time, used only to convert block-count defaults into milliseconds.
pub const ALLORA_BLOCK_MS: u64 = 5_000;

/// The largest validator set any network may have (`max_validators` is at most this): what
/// certificates, the consensus input queues and vote tracking are sized for.
pub const MAX_VALIDATOR_SET: u64 = 1_024;

/// Every network-wide parameter. Missing fields in a genesis file take these defaults.
#[derive(Clone, Debug, PartialEq, Encode, Decode, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModuleParams {
    /// Topics whose weight falls below this are inactive (MinTopicWeight = 100).
    pub min_topic_weight: f64,
    /// Least stake a reputer needs for its losses to count (RequiredMinimumStake = 10000).
    pub required_minimum_stake: Amount,
    /// Delay before removed stake is released (RemoveStakeDelayWindow = 604800 blocks ≈ 35 days).
    pub remove_stake_delay_ms: u64,
    /// Shortest epoch (MinEpochLength = 12 blocks = 60 s).
    pub min_epoch_length_ms: u64,
    /// β of the reward entropy (BetaEntropy = 0.25).
    pub beta_entropy: f64,
    /// η of the listening-coefficient gradient descent (LearningRate = 0.05).
    pub learning_rate: f64,
    /// Iterations of that descent (GradientDescentMaxIters = 10).
    pub gradient_descent_max_iters: u64,
    /// Stop the descent once no coefficient moves more than this·η (MaxGradientThreshold = 0.001).
    pub max_gradient_threshold: f64,
    /// Least stake-weighted mean listening coefficient (MinStakeFraction = 0.5).
    pub min_stake_fraction: f64,
    /// ε in the reputer consensus score (EpsilonReputer = 0.01).
    pub epsilon_reputer: f64,
    /// Floor of denominators (EpsilonSafeDiv = 1e-7).
    pub epsilon_safe_div: f64,
    /// Open worker rounds kept per topic (MaxUnfulfilledWorkerRequests = 100).
    pub max_unfulfilled_worker_requests: u64,
    /// Open reputer rounds kept per topic; bounds the ground-truth lag (100).
    pub max_unfulfilled_reputer_requests: u64,
    /// μ, stake exponent of the topic weight (TopicRewardStakeImportance = 0.5).
    pub topic_reward_stake_importance: f64,
    /// ν, fee-revenue exponent of the topic weight (TopicRewardFeeRevenueImportance = 0.5).
    pub topic_reward_fee_revenue_importance: f64,
    /// EMA α of topic weights (TopicRewardAlpha = 0.5).
    pub topic_reward_alpha: f64,
    /// EMA α of reward fractions and the forecaster score ratio (TaskRewardAlpha = 0.1).
    pub task_reward_alpha: f64,
    /// Share of emission that goes to validators (ValidatorsVsAlloraPercentReward = 0.25).
    pub validators_vs_allora_percent_reward: f64,
    /// Scores used to scale reward mapping (MaxSamplesToScaleScores = 10).
    pub max_samples_to_scale_scores: u64,
    /// Active inferers per topic (MaxTopInferersToReward = 32).
    pub max_top_inferers_to_reward: u64,
    /// Active forecasters per topic (MaxTopForecastersToReward = 6).
    pub max_top_forecasters_to_reward: u64,
    /// Active reputers per topic (MaxTopReputersToReward = 6).
    pub max_top_reputers_to_reward: u64,
    /// Paid by a topic's creator; the topic's first fee revenue (CreateTopicFee = 75000).
    pub create_topic_fee: Amount,
    /// Paid per worker or reputer registration (RegistrationFee = 200).
    pub registration_fee: Amount,
    /// Paid per worker or reputer payload (DataSendingFee = 10).
    pub data_sending_fee: Amount,
    /// Epochs of records kept after rewards (MinEpochLengthRecordLimit = 3).
    pub min_epoch_length_record_limit: u64,
    /// A month, for fee drip and emission (BlocksPerMonth = 864000 blocks = 50 days at 5 s).
    pub month_ms: u64,
    /// p of inferer reward mapping (PRewardInference = 1).
    pub p_reward_inference: f64,
    /// p of forecaster reward mapping (PRewardForecast = 3).
    pub p_reward_forecast: f64,
    /// p of reputer reward fractions (PRewardReputer = 3).
    pub p_reward_reputer: f64,
    /// c of inferer reward mapping (CRewardInference = 0.75).
    pub c_reward_inference: f64,
    /// c of forecaster reward mapping (CRewardForecast = 0.75).
    pub c_reward_forecast: f64,
    /// c of the weight function (CNorm = 0.75).
    pub c_norm: f64,
    /// Inferers a forecast may cover (MaxElementsPerForecast = 12).
    pub max_elements_per_forecast: u64,
    /// Topics paid per checkpoint period (Allora's MaxActiveTopicsPerBlock = 1 pays one topic per
    /// block; Chorus pays per checkpoint period, so its default pays up to 1000 topics).
    pub max_active_topics_per_period: u64,
    /// Quantile of experienced regrets for the topic initial regret (InitialRegretQuantile = 0.25).
    pub initial_regret_quantile: f64,
    /// Offset constant of the topic initial regret (PNormSafeDiv = 8.25).
    pub p_norm_safe_div: f64,

    // ---- Chorus-specific ----
    /// Length of one checkpoint period (ms): one BFT decision and one ledger window each.
    pub checkpoint_period_ms: u64,
    /// Tokens minted per checkpoint period and split between topics (by weight) and
    /// validators (by bond). Allora's mint module derives this from supply; Chorus fixes it in
    /// genesis and governance may change it.
    pub emission_per_period: Amount,
    /// Clock skew tolerated between peers when checking submission windows (ms).
    pub max_clock_skew_ms: u64,
    /// Largest accepted gap between an account's last finalized nonce and a new one.
    pub max_nonce_gap: u64,
    /// Fraction of a validator's bond burned on proven equivocation, in parts per million.
    pub slash_fraction_ppm: u64,
    /// Delay before unbonded validator stake is released (ms).
    pub validator_unbonding_ms: u64,
    /// Smallest validator bond (a bond is zero or at least this): dust bonds would only grow
    /// the ledger.
    pub min_validator_bond: Amount,
    /// Most validators in the set (Cosmos staking's `MaxValidators`, default 100; at most
    /// [`MAX_VALIDATOR_SET`]): the largest bonds, ties by key. Other bonded accounts wait
    /// outside the set: their bond can be slashed and unbonded but neither votes nor earns.
    pub max_validators: u64,
    /// Voting period of governance proposals, in checkpoint periods.
    pub governance_voting_periods: u64,
}

impl Default for ModuleParams {
    fn default() -> Self {
        ModuleParams {
            min_topic_weight: 100.0,
            required_minimum_stake: Amount(10_000),
            remove_stake_delay_ms: 604_800 * ALLORA_BLOCK_MS,
            min_epoch_length_ms: 12 * ALLORA_BLOCK_MS,
            beta_entropy: 0.25,
            learning_rate: 0.05,
            gradient_descent_max_iters: 10,
            max_gradient_threshold: 0.001,
            min_stake_fraction: 0.5,
            epsilon_reputer: 0.01,
            epsilon_safe_div: 1e-7,
            max_unfulfilled_worker_requests: 100,
            max_unfulfilled_reputer_requests: 100,
            topic_reward_stake_importance: 0.5,
            topic_reward_fee_revenue_importance: 0.5,
            topic_reward_alpha: 0.5,
            task_reward_alpha: 0.1,
            validators_vs_allora_percent_reward: 0.25,
            max_samples_to_scale_scores: 10,
            max_top_inferers_to_reward: 32,
            max_top_forecasters_to_reward: 6,
            max_top_reputers_to_reward: 6,
            create_topic_fee: Amount(75_000),
            registration_fee: Amount(200),
            data_sending_fee: Amount(10),
            min_epoch_length_record_limit: 3,
            month_ms: 864_000 * ALLORA_BLOCK_MS,
            p_reward_inference: 1.0,
            p_reward_forecast: 3.0,
            p_reward_reputer: 3.0,
            c_reward_inference: 0.75,
            c_reward_forecast: 0.75,
            c_norm: 0.75,
            max_elements_per_forecast: 12,
            max_active_topics_per_period: 1_000,
            initial_regret_quantile: 0.25,
            p_norm_safe_div: 8.25,
            // One checkpoint per minute: a few epochs of a fast topic per decision.
            checkpoint_period_ms: 60_000,
            // 1000 whole tokens (18 decimals) per period.
            emission_per_period: Amount(1_000 * 10u128.pow(18)),
            // NTP-synchronised hosts agree to well under a second.
            max_clock_skew_ms: 1_000,
            // Enough for a burst of transactions between two checkpoints.
            max_nonce_gap: 1_024,
            // 5 % of the bond, CometBFT's usual double-sign slash.
            slash_fraction_ppm: 50_000,
            validator_unbonding_ms: 21 * 24 * 3_600_000,
            // One whole token (18 decimals).
            min_validator_bond: Amount(10u128.pow(18)),
            // Cosmos staking's default.
            max_validators: 100,
            governance_voting_periods: 60,
        }
    }
}

/// Why parameters were refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("module parameter `{field}`: {reason}")]
pub struct ParamsError {
    /// The field.
    pub field: &'static str,
    /// What is wrong.
    pub reason: &'static str,
}

impl ModuleParams {
    /// Check ranges: every real is finite, fractions are fractions, periods are non-zero.
    pub fn validate(&self) -> Result<(), ParamsError> {
        let reals: [(&'static str, f64); 20] = [
            ("min_topic_weight", self.min_topic_weight),
            ("beta_entropy", self.beta_entropy),
            ("learning_rate", self.learning_rate),
            ("max_gradient_threshold", self.max_gradient_threshold),
            ("min_stake_fraction", self.min_stake_fraction),
            ("epsilon_reputer", self.epsilon_reputer),
            ("epsilon_safe_div", self.epsilon_safe_div),
            (
                "topic_reward_stake_importance",
                self.topic_reward_stake_importance,
            ),
            (
                "topic_reward_fee_revenue_importance",
                self.topic_reward_fee_revenue_importance,
            ),
            ("topic_reward_alpha", self.topic_reward_alpha),
            ("task_reward_alpha", self.task_reward_alpha),
            (
                "validators_vs_allora_percent_reward",
                self.validators_vs_allora_percent_reward,
            ),
            ("p_reward_inference", self.p_reward_inference),
            ("p_reward_forecast", self.p_reward_forecast),
            ("p_reward_reputer", self.p_reward_reputer),
            ("c_reward_inference", self.c_reward_inference),
            ("c_reward_forecast", self.c_reward_forecast),
            ("c_norm", self.c_norm),
            ("initial_regret_quantile", self.initial_regret_quantile),
            ("p_norm_safe_div", self.p_norm_safe_div),
        ];
        for (field, v) in reals {
            if !v.is_finite() || v < 0.0 {
                return Err(ParamsError {
                    field,
                    reason: "must be finite and non-negative",
                });
            }
        }
        let fractions = [
            ("min_stake_fraction", self.min_stake_fraction),
            ("topic_reward_alpha", self.topic_reward_alpha),
            ("task_reward_alpha", self.task_reward_alpha),
            (
                "validators_vs_allora_percent_reward",
                self.validators_vs_allora_percent_reward,
            ),
            ("initial_regret_quantile", self.initial_regret_quantile),
        ];
        for (field, v) in fractions {
            if v > 1.0 {
                return Err(ParamsError {
                    field,
                    reason: "must be in [0, 1]",
                });
            }
        }
        if self.epsilon_safe_div <= 0.0 {
            return Err(ParamsError {
                field: "epsilon_safe_div",
                reason: "must be > 0",
            });
        }
        let nonzero: [(&str, u64); 9] = [
            ("checkpoint_period_ms", self.checkpoint_period_ms),
            ("month_ms", self.month_ms),
            (
                "max_unfulfilled_reputer_requests",
                self.max_unfulfilled_reputer_requests,
            ),
            (
                "max_top_inferers_to_reward",
                self.max_top_inferers_to_reward,
            ),
            (
                "max_top_forecasters_to_reward",
                self.max_top_forecasters_to_reward,
            ),
            (
                "max_top_reputers_to_reward",
                self.max_top_reputers_to_reward,
            ),
            (
                "max_samples_to_scale_scores",
                self.max_samples_to_scale_scores,
            ),
            ("governance_voting_periods", self.governance_voting_periods),
            (
                "max_active_topics_per_period",
                self.max_active_topics_per_period,
            ),
        ];
        for (field, v) in nonzero {
            if v == 0 {
                return Err(ParamsError {
                    field,
                    reason: "must be > 0",
                });
            }
        }
        if !(1..=MAX_VALIDATOR_SET).contains(&self.max_validators) {
            return Err(ParamsError {
                field: "max_validators",
                reason: "must be in 1..=1024",
            });
        }
        if self.slash_fraction_ppm > 1_000_000 {
            return Err(ParamsError {
                field: "slash_fraction_ppm",
                reason: "must be ≤ 1000000",
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_match_allora() {
        let p = ModuleParams::default();
        p.validate().unwrap();
        assert_eq!(p.create_topic_fee, Amount(75_000));
        assert_eq!(p.max_top_inferers_to_reward, 32);
        assert_eq!(p.p_norm_safe_div, 8.25);
    }

    #[test]
    fn partial_toml_takes_defaults() {
        let p: ModuleParams = toml::from_str("learning_rate = 0.1").unwrap();
        assert_eq!(p.learning_rate, 0.1);
        assert_eq!(p.beta_entropy, 0.25);
        assert!(toml::from_str::<ModuleParams>("no_such_param = 1").is_err());
    }

    #[test]
    fn bad_values_are_refused() {
        let p = ModuleParams {
            task_reward_alpha: 1.5,
            ..ModuleParams::default()
        };
        assert_eq!(p.validate().unwrap_err().field, "task_reward_alpha");
        let p = ModuleParams {
            checkpoint_period_ms: 0,
            ..ModuleParams::default()
        };
        assert!(p.validate().is_err());
        for max_validators in [0, MAX_VALIDATOR_SET + 1] {
            let p = ModuleParams {
                max_validators,
                ..ModuleParams::default()
            };
            assert_eq!(p.validate().unwrap_err().field, "max_validators");
        }
        let p = ModuleParams {
            max_validators: MAX_VALIDATOR_SET,
            ..ModuleParams::default()
        };
        p.validate().unwrap();
    }
}
