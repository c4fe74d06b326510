//! Splitting an integer amount by real-valued weights, exactly.
//!
//! Every share is `floor(total · w / Σw)` computed in u128 fixed point from the weights scaled
//! to integers; the undistributed remainder is returned to the caller, who decides where it goes
//! (it is never lost: Σ shares + remainder == total).

use std::collections::BTreeMap;

/// Fixed-point scale applied to weights before the integer split (2^52: the full precision of
/// an f64 mantissa for weights normalised to at most 1).
const SCALE: f64 = 4_503_599_627_370_496.0;

/// Split `total` in proportion to `weights` (non-negative, finite; others count as zero).
/// Returns the shares (zero shares omitted) and the remainder.
pub fn split<K: Ord + Clone>(total: u128, weights: &BTreeMap<K, f64>) -> (BTreeMap<K, u128>, u128) {
    let max = weights
        .values()
        .copied()
        .filter(|w| w.is_finite() && *w > 0.0)
        .fold(0.0f64, f64::max);
    if total == 0 || max <= 0.0 {
        return (BTreeMap::new(), total);
    }
    // Integer weights: w / max in [0, 1], scaled by 2^52. Deterministic: division and
    // multiplication of finite f64 are exactly rounded IEEE operations.
    let ints: BTreeMap<K, u128> = weights
        .iter()
        .filter(|(_, w)| w.is_finite() && **w > 0.0)
        .map(|(k, w)| (k.clone(), ((w / max) * SCALE) as u128))
        .collect();
    let sum: u128 = ints.values().sum();
    if sum == 0 {
        return (BTreeMap::new(), total);
    }
    let mut shares = BTreeMap::new();
    let mut paid = 0u128;
    for (k, w) in ints {
        let share = mul_div(total, w, sum);
        if share > 0 {
            paid += share;
            shares.insert(k, share);
        }
    }
    (shares, total - paid)
}

/// `floor(a · b / c)` without overflow for `b ≤ c`.
pub fn mul_div(a: u128, b: u128, c: u128) -> u128 {
    if c == 0 {
        return 0;
    }
    // a·b/c = (a/c)·b + (a%c)·b/c; with b ≤ c, (a%c)·b < c² fits when c < 2^64.
    let q = a / c;
    let r = a % c;
    q.saturating_mul(b).saturating_add(wide_mul_div(r, b, c))
}

/// `floor(r · b / c)` for `r < c`, `b ≤ c`, via 256-bit intermediate.
fn wide_mul_div(r: u128, b: u128, c: u128) -> u128 {
    let (hi, lo) = mul_wide(r, b);
    div_wide(hi, lo, c)
}

fn mul_wide(a: u128, b: u128) -> (u128, u128) {
    let (a_hi, a_lo) = (a >> 64, a & u64::MAX as u128);
    let (b_hi, b_lo) = (b >> 64, b & u64::MAX as u128);
    let ll = a_lo * b_lo;
    let lh = a_lo * b_hi;
    let hl = a_hi * b_lo;
    let hh = a_hi * b_hi;
    let mid = (ll >> 64) + (lh & u64::MAX as u128) + (hl & u64::MAX as u128);
    let lo = (ll & u64::MAX as u128) | (mid << 64);
    let hi = hh + (lh >> 64) + (hl >> 64) + (mid >> 64);
    (hi, lo)
}

fn div_wide(mut hi: u128, mut lo: u128, d: u128) -> u128 {
    // Restoring binary long division; the quotient fits in u128 because hi < d.
    let mut q = 0u128;
    for _ in 0..128 {
        let carry = hi >> 127;
        hi = (hi << 1) | (lo >> 127);
        lo <<= 1;
        q <<= 1;
        if carry == 1 || hi >= d {
            hi = hi.wrapping_sub(d);
            q |= 1;
        }
    }
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_plus_remainder_is_total() {
        let w: BTreeMap<u8, f64> = [(1, 0.5), (2, 0.25), (3, 0.25), (4, 0.0), (5, f64::NAN)]
            .into_iter()
            .collect();
        for total in [0u128, 1, 3, 1000, u128::MAX / 3, u128::MAX] {
            let (s, r) = split(total, &w);
            assert_eq!(s.values().sum::<u128>() + r, total);
            assert!(!s.contains_key(&4) && !s.contains_key(&5));
        }
        let (s, r) = split(1000, &w);
        assert_eq!((s[&1], s[&2], s[&3], r), (500, 250, 250, 0));
    }

    #[test]
    fn mul_div_is_exact() {
        assert_eq!(mul_div(u128::MAX, 1, 1), u128::MAX);
        assert_eq!(mul_div(u128::MAX, 3, 4), u128::MAX / 4 * 3 + 2);
        assert_eq!(mul_div(10, 1, 3), 3);
        assert_eq!(mul_div(7, 0, 5), 0);
    }
}
