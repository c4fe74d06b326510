//! Topic weights, fee-revenue drip and the split of the emission between topics (spec §3.7,
//! allora-chain `keeper/topic_weight.go`, `keeper.go: DripTopicFeeRevenue`,
//! `rewards/rewards.go: EmitRewards`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::error::{MathError, finite};
use super::payout::mul_div_ceil;
use super::util::ema;

/// Topic-weight parameters (v0.6 defaults).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TopicWeightParams {
    /// μ, `TopicRewardStakeImportance` (0.5).
    pub stake_importance: f64,
    /// ν, `TopicRewardFeeRevenueImportance` (0.5).
    pub fee_revenue_importance: f64,
    /// `TopicRewardAlpha` (0.5).
    pub alpha: f64,
}

impl Default for TopicWeightParams {
    fn default() -> Self {
        TopicWeightParams {
            stake_importance: 0.5,
            fee_revenue_importance: 0.5,
            alpha: 0.5,
        }
    }
}

/// Target weight `ŵ_t = S_t^μ · (C_t / EpochLength_t)^ν` (v0.6).
pub fn target_weight(
    stake: f64,
    fee_revenue: f64,
    epoch_length: u64,
    params: &TopicWeightParams,
) -> Result<f64, MathError> {
    finite("topic stake", stake)?;
    finite("fee revenue", fee_revenue)?;
    if stake < 0.0 || fee_revenue < 0.0 || epoch_length == 0 {
        return Err(MathError::InvalidParameter {
            name: "topic weight inputs",
            reason: "stake and revenue must be >= 0 and the epoch length > 0".into(),
        });
    }
    let c = fee_revenue / epoch_length as f64;
    Ok(libm::pow(stake, params.stake_importance) * libm::pow(c, params.fee_revenue_importance))
}

/// `GetCurrentTopicWeight`: `w_t = CalcEma(α, ŵ_t, w_prev, noPrior)`, and 0 when the fee
/// revenue is 0. `previous == None` means no prior weight.
pub fn topic_weight(
    stake: f64,
    fee_revenue: f64,
    epoch_length: u64,
    previous: Option<f64>,
    params: &TopicWeightParams,
) -> Result<f64, MathError> {
    if fee_revenue == 0.0 {
        return Ok(0.0);
    }
    let target = target_weight(stake, fee_revenue, epoch_length, params)?;
    Ok(match previous {
        None => target,
        Some(p) => ema(params.alpha, target, p, false),
    })
}

/// `DripTopicFeeRevenue`, exactly in integers:
/// `epochsPerWeek = (BlocksPerMonth / 4.345) / EpochLength`,
/// `C ← trunc(max(0, C − C/epochsPerWeek)) = C − ⌈C·869·EpochLength / (200·BlocksPerMonth)⌉`.
pub fn drip_fee_revenue(
    revenue: u128,
    epoch_length: u64,
    blocks_per_month: u64,
) -> Result<u128, MathError> {
    if blocks_per_month == 0 {
        return Err(MathError::DivisionByZero("blocks per month"));
    }
    let num = 869u128 * epoch_length as u128;
    let den = 200u128 * blocks_per_month as u128;
    let drip = mul_div_ceil(revenue, num, den).unwrap_or(u128::MAX);
    Ok(revenue.saturating_sub(drip))
}

/// `GetTopicRewardFraction`: `f_t = w_t / TotalSumPreviousTopicWeights`.
pub fn topic_reward_fraction(weight: f64, total_weight: f64) -> Result<f64, MathError> {
    if total_weight == 0.0 {
        return Err(MathError::DivisionByZero("total topic weight"));
    }
    Ok(weight / total_weight)
}

/// `CalcTopicRewards` for the topics rewarded in one block.
///
/// `weights[t]` and `epoch_lengths[t]` of the rewardable topics (the caller picks the top
/// `MaxActiveTopicsPerBlock` by weight, ties by id — see [`super::scores::top_n`]);
/// `E_{t,i} = w_t / total_weight · e_block · EpochLength_t`. If Σ E exceeds `treasury`: one topic
/// gets the treasury; several get `treasury · w_t·EpochLength_t / Σ (w·EpochLength)`.
pub fn topic_rewards<T: Ord + Clone>(
    weights: &BTreeMap<T, f64>,
    epoch_lengths: &BTreeMap<T, u64>,
    total_weight: f64,
    block_emission: f64,
    treasury: f64,
) -> Result<BTreeMap<T, f64>, MathError> {
    let mut out = BTreeMap::new();
    let mut sum = 0.0;
    let mut wl = BTreeMap::new();
    for (t, &w) in weights {
        finite("topic weight", w)?;
        let el = *epoch_lengths
            .get(t)
            .ok_or_else(|| MathError::LengthMismatch("a topic has no epoch length".into()))?;
        let e = topic_reward_fraction(w, total_weight)? * block_emission * el as f64;
        sum += e;
        wl.insert(t.clone(), w * el as f64);
        out.insert(t.clone(), e);
    }
    if sum > treasury {
        if out.len() == 1 {
            for v in out.values_mut() {
                *v = treasury;
            }
        } else {
            let total_wl = wl.values().fold(0.0, |a, x| a + x);
            if total_wl == 0.0 {
                return Err(MathError::DivisionByZero("Σ w·EpochLength"));
            }
            for (t, v) in out.iter_mut() {
                *v = treasury * wl.get(t).copied().unwrap_or(0.0) / total_wl;
            }
        }
    }
    Ok(out)
}

/// The emission split between topics in proportion to their weights:
/// `reward_t = total · w_t / Σ w` (the relation of the tokenomics fixture,
/// `topic_rewards_t = topics_rewards · topic_weights_t / all_topic_weight_sum`).
pub fn split_by_weight(total: f64, weight: f64, weight_sum: f64) -> Result<f64, MathError> {
    if weight_sum == 0.0 {
        return Err(MathError::DivisionByZero("weight sum"));
    }
    Ok(total * weight / weight_sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drip_and_weight() {
        // epochsPerWeek = 864000/4.345/100 = 1988.49...; C/epw = 10000/1988.49 = 5.0289 -> 9994
        assert_eq!(drip_fee_revenue(10_000, 100, 864_000).unwrap(), 9994);
        assert_eq!(drip_fee_revenue(0, 100, 864_000).unwrap(), 0);
        let p = TopicWeightParams::default();
        assert_eq!(topic_weight(100.0, 0.0, 10, None, &p).unwrap(), 0.0);
        assert!((topic_weight(100.0, 1000.0, 10, None, &p).unwrap() - 100.0).abs() < 1e-12);
        assert!((topic_weight(100.0, 1000.0, 10, Some(50.0), &p).unwrap() - 75.0).abs() < 1e-12);
    }

    #[test]
    fn rewards_capped_by_treasury() {
        let w: BTreeMap<u32, f64> = [(1, 3.0), (2, 1.0)].into_iter().collect();
        let el: BTreeMap<u32, u64> = [(1, 10), (2, 10)].into_iter().collect();
        let r = topic_rewards(&w, &el, 4.0, 1.0, 100.0).unwrap();
        assert_eq!(r[&1], 7.5);
        let r = topic_rewards(&w, &el, 4.0, 1.0, 5.0).unwrap();
        assert!((r[&1] - 3.75).abs() < 1e-12 && (r[&2] - 1.25).abs() < 1e-12);
    }
}
