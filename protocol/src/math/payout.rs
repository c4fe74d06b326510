//! Integer token payouts (spec §3.6, pitfall 14): converting f64 reward shares into u128 base
//! units deterministically while conserving supply.
//!
//! **Rounding rule.** Shares are first turned into integer weights `n_k = floor(2⁵³·s_k/Σs)`
//! (exact in f64), `D = Σ n_k`; each actor gets `floor(total·n_k / D)` computed exactly in
//! integers (no float rounding of the amount). The remainder `total − Σ payouts` is smaller than
//! the number of actors and, by [`RemainderPolicy`], either stays undistributed (returned in
//! [`Payout::remainder`]: the chain's behaviour, which truncates every payout with `SdkIntTrim`
//! and leaves the dust in the module account) or goes one unit each to the actors with the
//! largest fractional parts, ties by key order. Either way `Σ payouts + remainder == total`
//! exactly.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::error::MathError;

/// What happens to the units lost by flooring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemainderPolicy {
    /// Keep it undistributed in [`Payout::remainder`] (back to the pool; chain behaviour).
    #[default]
    ToPool,
    /// Give one unit each to the largest fractional parts (ties: smaller key first); the
    /// remainder is then 0 unless every share is 0.
    LargestRemainder,
}

/// Result of [`split_amount`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(
    serialize = "K: Serialize + Ord",
    deserialize = "K: Deserialize<'de> + Ord"
))]
pub struct Payout<K> {
    /// Integer amount per key (every key of the input, zeros included).
    pub amounts: BTreeMap<K, u128>,
    /// Undistributed units; `Σ amounts + remainder == total`.
    pub remainder: u128,
}

/// Most actors [`split_amount`] accepts (keeps every intermediate product inside u128).
pub const MAX_PAYOUT_ACTORS: usize = 1 << 20;

const SCALE: f64 = 9007199254740992.0; // 2^53

/// Splits `total` base units in proportion to non-negative f64 `shares` (fractions or amounts;
/// only their ratios matter). See the module docs for the rounding rule.
///
/// Errors: a negative, NaN or infinite share; more than [`MAX_PAYOUT_ACTORS`] keys. All-zero (or
/// empty) shares give everything to the remainder.
pub fn split_amount<K: Ord + Clone>(
    total: u128,
    shares: &BTreeMap<K, f64>,
    policy: RemainderPolicy,
) -> Result<Payout<K>, MathError> {
    if shares.len() > MAX_PAYOUT_ACTORS {
        return Err(MathError::InvalidParameter {
            name: "shares",
            reason: format!("at most {MAX_PAYOUT_ACTORS} actors"),
        });
    }
    let mut sum = 0.0;
    for &s in shares.values() {
        if !(s.is_finite() && s >= 0.0) {
            return Err(MathError::InvalidParameter {
                name: "share",
                reason: format!("must be finite and >= 0, got {s}"),
            });
        }
        sum += s;
    }
    if !sum.is_finite() {
        return Err(MathError::NonFinite {
            what: "sum of shares".into(),
            value: sum,
        });
    }
    let zero = || Payout {
        amounts: shares.keys().map(|k| (k.clone(), 0u128)).collect(),
        remainder: total,
    };
    if sum == 0.0 {
        return Ok(zero());
    }
    // integer weights n_k ≤ 2^53 (s/sum ≤ 1 up to rounding; clamp)
    let weights: Vec<u128> = shares
        .values()
        .map(|&s| {
            let x = (s / sum * SCALE).floor();
            if x > SCALE { SCALE as u128 } else { x as u128 }
        })
        .collect();
    let d: u128 = weights.iter().sum();
    if d == 0 {
        return Ok(zero());
    }
    // total = q·D + r, r < D ≤ 2^73; floor(total·n/D) = q·n + floor(r·n/D), r·n < 2^126
    let (q, r) = (total / d, total % d);
    let mut amounts = Vec::with_capacity(weights.len());
    let mut fractional = Vec::with_capacity(weights.len());
    let mut paid: u128 = 0;
    for &n in &weights {
        let rn = r * n;
        let a = q * n + rn / d;
        amounts.push(a);
        fractional.push(rn % d);
        paid += a;
    }
    let mut remainder = total - paid;
    if policy == RemainderPolicy::LargestRemainder && remainder > 0 {
        let mut order: Vec<usize> = (0..weights.len()).filter(|&i| weights[i] > 0).collect();
        // largest fractional part first; stable sort keeps key order on ties
        order.sort_by(|&a, &b| fractional[b].cmp(&fractional[a]));
        for &i in &order {
            if remainder == 0 {
                break;
            }
            amounts[i] += 1;
            remainder -= 1;
        }
    }
    Ok(Payout {
        amounts: shares.keys().cloned().zip(amounts).collect(),
        remainder,
    })
}

/// ⌊a·b / c⌋ exactly (256-bit intermediate); `None` if c == 0 or the result exceeds u128.
pub fn mul_div_floor(a: u128, b: u128, c: u128) -> Option<u128> {
    if c == 0 {
        return None;
    }
    let (hi, lo) = mul_wide(a, b);
    div_wide(hi, lo, c).map(|(q, _)| q)
}

/// ⌈a·b / c⌉ exactly; `None` if c == 0 or the result exceeds u128.
pub fn mul_div_ceil(a: u128, b: u128, c: u128) -> Option<u128> {
    if c == 0 {
        return None;
    }
    let (hi, lo) = mul_wide(a, b);
    let (q, r) = div_wide(hi, lo, c)?;
    if r == 0 { Some(q) } else { q.checked_add(1) }
}

fn mul_wide(a: u128, b: u128) -> (u128, u128) {
    let mask = u64::MAX as u128;
    let (a0, a1) = (a & mask, a >> 64);
    let (b0, b1) = (b & mask, b >> 64);
    let p00 = a0 * b0;
    let p01 = a0 * b1;
    let p10 = a1 * b0;
    let p11 = a1 * b1;
    let mid = (p00 >> 64) + (p01 & mask) + (p10 & mask);
    let lo = (p00 & mask) | (mid << 64);
    let hi = p11 + (p01 >> 64) + (p10 >> 64) + (mid >> 64);
    (hi, lo)
}

/// (hi·2^128 + lo) / c → (quotient, remainder); `None` if the quotient overflows.
fn div_wide(hi: u128, lo: u128, c: u128) -> Option<(u128, u128)> {
    if hi >= c {
        return None;
    }
    if hi == 0 {
        return Some((lo / c, lo % c));
    }
    // restoring division, one bit at a time (only used for payouts, not hot)
    let mut rem = hi;
    let mut q: u128 = 0;
    for i in (0..128).rev() {
        let carry = rem >> 127;
        rem = (rem << 1) | ((lo >> i) & 1);
        q <<= 1;
        if carry == 1 || rem >= c {
            rem = rem.wrapping_sub(c);
            q |= 1;
        }
    }
    Some((q, rem))
}

/// `GetRewardForReputerFromTotalReward`: splits a reputer's integer reward between the reputer
/// and its delegators: `delegator = ⌊W·delegated / authority⌋`, `reputer = W − delegator`
/// (the reputer part is added to its stake on chain). Returns `(reputer, delegators)`.
///
/// Errors: `delegated > authority` or `authority == 0` with a positive delegated stake.
pub fn delegator_split(
    reward: u128,
    delegated_stake: u128,
    stake_authority: u128,
) -> Result<(u128, u128), MathError> {
    if delegated_stake == 0 {
        return Ok((reward, 0));
    }
    if delegated_stake > stake_authority {
        return Err(MathError::InvalidParameter {
            name: "delegated_stake",
            reason: "exceeds the reputer's stake authority".into(),
        });
    }
    let d = mul_div_floor(reward, delegated_stake, stake_authority)
        .ok_or(MathError::DivisionByZero("stake authority"))?;
    Ok((reward - d, d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conserves_supply() {
        let s: BTreeMap<&str, f64> = [("a", 1.0), ("b", 1.0), ("c", 1.0)].into_iter().collect();
        let p = split_amount(100, &s, RemainderPolicy::ToPool).unwrap();
        assert_eq!(p.amounts.values().sum::<u128>() + p.remainder, 100);
        assert_eq!(p.amounts["a"], 33);
        assert_eq!(p.remainder, 1);
        let p = split_amount(100, &s, RemainderPolicy::LargestRemainder).unwrap();
        assert_eq!(p.remainder, 0);
        assert_eq!(p.amounts["a"], 34);
        assert_eq!(p.amounts["b"], 33);
        let big = u128::MAX;
        let p = split_amount(big, &s, RemainderPolicy::ToPool).unwrap();
        assert_eq!(p.amounts.values().sum::<u128>() + p.remainder, big);
        assert!(
            split_amount(
                1,
                &[("x", -1.0)].into_iter().collect(),
                RemainderPolicy::ToPool
            )
            .is_err()
        );
        let z = split_amount(
            7,
            &[("x", 0.0)].into_iter().collect(),
            RemainderPolicy::LargestRemainder,
        )
        .unwrap();
        assert_eq!(z.remainder, 7);
    }

    #[test]
    fn wide_arithmetic() {
        assert_eq!(
            mul_div_floor(u128::MAX, u128::MAX, u128::MAX),
            Some(u128::MAX)
        );
        assert_eq!(mul_div_floor(10, 10, 3), Some(33));
        assert_eq!(mul_div_ceil(10, 10, 3), Some(34));
        assert_eq!(mul_div_floor(1 << 100, 1 << 100, 1 << 90), Some(1 << 110));
        assert_eq!(mul_div_floor(1, 1, 0), None);
        assert_eq!(delegator_split(1000, 250, 1000).unwrap(), (750, 250));
        assert_eq!(delegator_split(999, 1, 3).unwrap(), (666, 333));
    }
}
