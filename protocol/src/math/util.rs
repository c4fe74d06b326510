//! Numeric helpers shared by all parts of the Allora math (allora-chain `math/utils.go`).
//!
//! Every transcendental function goes through [`libm`] (exp, ln, log10, pow, tanh), never the
//! platform's C library, so results are bit-identical on every machine. `f64::sqrt` is IEEE-754
//! correctly rounded and used directly.

use std::cmp::Ordering;

// Constants of libm's `exp` (FreeBSD msun `e_exp.c`, as ported by the `libm` crate).
const HALF: [f64; 2] = [0.5, -0.5];
const LN2HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
const LN2LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
const INVLN2: f64 = f64::from_bits(0x3ff7_1547_652b_82fe);
const P1: f64 = f64::from_bits(0x3fc5_5555_5555_553e);
const P2: f64 = f64::from_bits(0xbf66_c16c_16be_bd93);
const P3: f64 = f64::from_bits(0x3f11_566a_af25_de2c);
const P4: f64 = f64::from_bits(0xbebb_bd41_c5d2_6bf1);
const P5: f64 = f64::from_bits(0x3e66_3769_72be_a4d0);

/// e^x, **bit-identical to [`libm::exp`]** for every input.
///
/// For 2⁻²⁸ < |x| < 512 this is libm's own algorithm (argument reduction, the same degree-5
/// rational approximation, the same operations in the same order) inlined, with the final
/// `scalbn(y, k)` replaced by a multiplication with 2^k, which is exact there because the result
/// is a normal number. Everything else (tiny, huge, NaN, ±∞) calls [`libm::exp`]. Inlining removes
/// the call, the special-case branches and the generic `scalbn`, which roughly halves the cost;
/// the test suite checks bit equality with `libm::exp` on millions of arguments.
#[inline(always)]
pub fn exp(x: f64) -> f64 {
    let bits = x.to_bits();
    let hx = ((bits >> 32) as u32) & 0x7fff_ffff;
    if hx >= 0x4080_0000 || hx <= 0x3e30_0000 {
        return libm::exp(x);
    }
    let sign = (bits >> 63) as usize;
    let (k, hi, lo) = if hx > 0x3fd6_2e42 {
        let k = if hx >= 0x3ff0_a2b2 {
            (INVLN2 * x + HALF[sign]) as i32
        } else {
            1 - 2 * sign as i32
        };
        (k, x - k as f64 * LN2HI, k as f64 * LN2LO)
    } else {
        (0, x, 0.0)
    };
    let xr = if k == 0 { x } else { hi - lo };
    let xx = xr * xr;
    let c = xr - xx * (P1 + xx * (P2 + xx * (P3 + xx * (P4 + xx * P5))));
    let y = 1.0 + (xr * c / (2.0 - c) - lo + hi);
    if k == 0 {
        y
    } else {
        y * f64::from_bits(((0x3ff + k) as u64) << 52)
    }
}

/// 2^(i/128), i = 0..127, correctly rounded (generated with 60-digit decimal arithmetic).
static EXP2_TABLE: [f64; 128] = [
    f64::from_bits(0x3ff0000000000000),
    f64::from_bits(0x3ff0163da9fb3335),
    f64::from_bits(0x3ff02c9a3e778061),
    f64::from_bits(0x3ff04315e86e7f85),
    f64::from_bits(0x3ff059b0d3158574),
    f64::from_bits(0x3ff0706b29ddf6de),
    f64::from_bits(0x3ff0874518759bc8),
    f64::from_bits(0x3ff09e3ecac6f383),
    f64::from_bits(0x3ff0b5586cf9890f),
    f64::from_bits(0x3ff0cc922b7247f7),
    f64::from_bits(0x3ff0e3ec32d3d1a2),
    f64::from_bits(0x3ff0fb66affed31b),
    f64::from_bits(0x3ff11301d0125b51),
    f64::from_bits(0x3ff12abdc06c31cc),
    f64::from_bits(0x3ff1429aaea92de0),
    f64::from_bits(0x3ff15a98c8a58e51),
    f64::from_bits(0x3ff172b83c7d517b),
    f64::from_bits(0x3ff18af9388c8dea),
    f64::from_bits(0x3ff1a35beb6fcb75),
    f64::from_bits(0x3ff1bbe084045cd4),
    f64::from_bits(0x3ff1d4873168b9aa),
    f64::from_bits(0x3ff1ed5022fcd91d),
    f64::from_bits(0x3ff2063b88628cd6),
    f64::from_bits(0x3ff21f49917ddc96),
    f64::from_bits(0x3ff2387a6e756238),
    f64::from_bits(0x3ff251ce4fb2a63f),
    f64::from_bits(0x3ff26b4565e27cdd),
    f64::from_bits(0x3ff284dfe1f56381),
    f64::from_bits(0x3ff29e9df51fdee1),
    f64::from_bits(0x3ff2b87fd0dad990),
    f64::from_bits(0x3ff2d285a6e4030b),
    f64::from_bits(0x3ff2ecafa93e2f56),
    f64::from_bits(0x3ff306fe0a31b715),
    f64::from_bits(0x3ff32170fc4cd831),
    f64::from_bits(0x3ff33c08b26416ff),
    f64::from_bits(0x3ff356c55f929ff1),
    f64::from_bits(0x3ff371a7373aa9cb),
    f64::from_bits(0x3ff38cae6d05d866),
    f64::from_bits(0x3ff3a7db34e59ff7),
    f64::from_bits(0x3ff3c32dc313a8e5),
    f64::from_bits(0x3ff3dea64c123422),
    f64::from_bits(0x3ff3fa4504ac801c),
    f64::from_bits(0x3ff4160a21f72e2a),
    f64::from_bits(0x3ff431f5d950a897),
    f64::from_bits(0x3ff44e086061892d),
    f64::from_bits(0x3ff46a41ed1d0057),
    f64::from_bits(0x3ff486a2b5c13cd0),
    f64::from_bits(0x3ff4a32af0d7d3de),
    f64::from_bits(0x3ff4bfdad5362a27),
    f64::from_bits(0x3ff4dcb299fddd0d),
    f64::from_bits(0x3ff4f9b2769d2ca7),
    f64::from_bits(0x3ff516daa2cf6642),
    f64::from_bits(0x3ff5342b569d4f82),
    f64::from_bits(0x3ff551a4ca5d920f),
    f64::from_bits(0x3ff56f4736b527da),
    f64::from_bits(0x3ff58d12d497c7fd),
    f64::from_bits(0x3ff5ab07dd485429),
    f64::from_bits(0x3ff5c9268a5946b7),
    f64::from_bits(0x3ff5e76f15ad2148),
    f64::from_bits(0x3ff605e1b976dc09),
    f64::from_bits(0x3ff6247eb03a5585),
    f64::from_bits(0x3ff6434634ccc320),
    f64::from_bits(0x3ff6623882552225),
    f64::from_bits(0x3ff68155d44ca973),
    f64::from_bits(0x3ff6a09e667f3bcd),
    f64::from_bits(0x3ff6c012750bdabf),
    f64::from_bits(0x3ff6dfb23c651a2f),
    f64::from_bits(0x3ff6ff7df9519484),
    f64::from_bits(0x3ff71f75e8ec5f74),
    f64::from_bits(0x3ff73f9a48a58174),
    f64::from_bits(0x3ff75feb564267c9),
    f64::from_bits(0x3ff780694fde5d3f),
    f64::from_bits(0x3ff7a11473eb0187),
    f64::from_bits(0x3ff7c1ed0130c132),
    f64::from_bits(0x3ff7e2f336cf4e62),
    f64::from_bits(0x3ff80427543e1a12),
    f64::from_bits(0x3ff82589994cce13),
    f64::from_bits(0x3ff8471a4623c7ad),
    f64::from_bits(0x3ff868d99b4492ed),
    f64::from_bits(0x3ff88ac7d98a6699),
    f64::from_bits(0x3ff8ace5422aa0db),
    f64::from_bits(0x3ff8cf3216b5448c),
    f64::from_bits(0x3ff8f1ae99157736),
    f64::from_bits(0x3ff9145b0b91ffc6),
    f64::from_bits(0x3ff93737b0cdc5e5),
    f64::from_bits(0x3ff95a44cbc8520f),
    f64::from_bits(0x3ff97d829fde4e50),
    f64::from_bits(0x3ff9a0f170ca07ba),
    f64::from_bits(0x3ff9c49182a3f090),
    f64::from_bits(0x3ff9e86319e32323),
    f64::from_bits(0x3ffa0c667b5de565),
    f64::from_bits(0x3ffa309bec4a2d33),
    f64::from_bits(0x3ffa5503b23e255d),
    f64::from_bits(0x3ffa799e1330b358),
    f64::from_bits(0x3ffa9e6b5579fdbf),
    f64::from_bits(0x3ffac36bbfd3f37a),
    f64::from_bits(0x3ffae89f995ad3ad),
    f64::from_bits(0x3ffb0e07298db666),
    f64::from_bits(0x3ffb33a2b84f15fb),
    f64::from_bits(0x3ffb59728de5593a),
    f64::from_bits(0x3ffb7f76f2fb5e47),
    f64::from_bits(0x3ffba5b030a1064a),
    f64::from_bits(0x3ffbcc1e904bc1d2),
    f64::from_bits(0x3ffbf2c25bd71e09),
    f64::from_bits(0x3ffc199bdd85529c),
    f64::from_bits(0x3ffc40ab5fffd07a),
    f64::from_bits(0x3ffc67f12e57d14b),
    f64::from_bits(0x3ffc8f6d9406e7b5),
    f64::from_bits(0x3ffcb720dcef9069),
    f64::from_bits(0x3ffcdf0b555dc3fa),
    f64::from_bits(0x3ffd072d4a07897c),
    f64::from_bits(0x3ffd2f87080d89f2),
    f64::from_bits(0x3ffd5818dcfba487),
    f64::from_bits(0x3ffd80e316c98398),
    f64::from_bits(0x3ffda9e603db3285),
    f64::from_bits(0x3ffdd321f301b460),
    f64::from_bits(0x3ffdfc97337b9b5f),
    f64::from_bits(0x3ffe264614f5a129),
    f64::from_bits(0x3ffe502ee78b3ff6),
    f64::from_bits(0x3ffe7a51fbc74c83),
    f64::from_bits(0x3ffea4afa2a490da),
    f64::from_bits(0x3ffecf482d8e67f1),
    f64::from_bits(0x3ffefa1bee615a27),
    f64::from_bits(0x3fff252b376bba97),
    f64::from_bits(0x3fff50765b6e4540),
    f64::from_bits(0x3fff7bfdad9cbe14),
    f64::from_bits(0x3fffa7c1819e90d8),
    f64::from_bits(0x3fffd3c22b8f71f1),
];

/// e^x within a few ulp (≤ 4, tested) of [`libm::exp`], branch-free for |x| ≤ 700: the kernel of
/// the large-forecast one-out path (see [`crate::math::synthesis`]).
///
/// Table-driven like glibc's: `x = (128·m + i)·ln2/128 + r` with |r| ≤ ln2/256 (Cody–Waite
/// reduction, `k = 128·m + i` rounded to nearest with the 1.5·2⁵² trick), then
/// `e^x = 2^m · 2^(i/128) · P(r)`, `P` the degree-5 Taylor polynomial (truncation < 1e-18).
/// Only IEEE `+ − ×` and a table read, so the result is the same on every machine.
///
/// Precondition: |x| ≤ 700 (callers clamp); outside, use [`exp_approx`].
#[inline(always)]
pub fn exp_approx_unchecked(x: f64) -> f64 {
    const SHIFT: f64 = 6755399441055744.0; // 1.5·2^52
    const INV_LN2_128: f64 = 184.6649652337873; // 128/ln2
    const LN2_128_HI: f64 = LN2HI / 128.0; // exact scaling; k·hi is exact for |k| < 2^21
    const LN2_128_LO: f64 = LN2LO / 128.0;
    let kd = x * INV_LN2_128 + SHIFT; // = SHIFT + k exactly (same binade), k = round(x·128/ln2)
    let kf = kd - SHIFT;
    let k = (kd.to_bits() as i64).wrapping_sub(SHIFT.to_bits() as i64);
    let r = (x - kf * LN2_128_HI) - kf * LN2_128_LO;
    // 2^(k/128) = 2^(i/128)·2^m, applied by adding m to the table entry's exponent field
    let t = f64::from_bits(
        EXP2_TABLE[(k & 127) as usize]
            .to_bits()
            .wrapping_add(((k >> 7) as u64) << 52),
    );
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (0.16666666666666666
                    + r * (0.041666666666666664 + r * 0.008333333333333333))));
    t * p
}

/// [`exp_approx_unchecked`] for any input: |x| > 700, NaN and ±∞ go to [`libm::exp`].
#[inline(always)]
pub fn exp_approx(x: f64) -> f64 {
    if x.abs() <= 700.0 {
        exp_approx_unchecked(x)
    } else {
        libm::exp(x)
    }
}

/// Exponential moving average, Allora's `CalcEma`.
///
/// Returns `current` if `first_time` or if `current == previous`; otherwise
/// `alpha * current + (1 - alpha) * previous`.
pub fn ema(alpha: f64, current: f64, previous: f64, first_time: bool) -> f64 {
    if first_time || current == previous {
        current
    } else {
        alpha * current + (1.0 - alpha) * previous
    }
}

/// Sum in slice order.
pub fn sum(xs: &[f64]) -> f64 {
    xs.iter().fold(0.0, |acc, &x| acc + x)
}

/// Arithmetic mean in slice order (`0` for an empty slice).
pub fn mean(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    sum(xs) / xs.len() as f64
}

/// Sample standard deviation (Bessel, `n - 1`), Allora's `StdDev`.
///
/// `0` for zero or one element. Two-pass: mean first, then the sum of squared deviations.
pub fn std_dev(xs: &[f64]) -> f64 {
    let n = xs.len();
    if n <= 1 {
        return 0.0;
    }
    let m = sum(xs) / n as f64;
    let ss = xs.iter().fold(0.0, |acc, &x| {
        let d = x - m;
        acc + d * d
    });
    (ss / (n - 1) as f64).sqrt()
}

/// Total order on f64 used for every sort (NaN never reaches it: inputs are validated).
pub fn cmp_f64(a: &f64, b: &f64) -> Ordering {
    a.total_cmp(b)
}

/// Median, Allora's `Median`: sort ascending; odd `n` → middle; even `n` → mean of the two middle
/// values; `n == 0` → `0`.
pub fn median(xs: &[f64]) -> f64 {
    let n = xs.len();
    if n == 0 {
        return 0.0;
    }
    let mut v = xs.to_vec();
    v.sort_by(cmp_f64);
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Quantile with linear interpolation, Allora's `GetQuantileOfDecs`.
///
/// Sorts **descending**, takes position `(1 - q)(n - 1)` and interpolates linearly between the
/// neighbouring elements. This equals numpy's `percentile(x, 100 q)` (linear). `n == 0` → `0`.
/// `q` is clamped to `[0, 1]`.
pub fn quantile(xs: &[f64], q: f64) -> f64 {
    let n = xs.len();
    if n == 0 {
        return 0.0;
    }
    let q = if q.is_nan() { 0.0 } else { q.clamp(0.0, 1.0) };
    let mut v = xs.to_vec();
    v.sort_by(|a, b| cmp_f64(b, a));
    let pos = (1.0 - q) * (n - 1) as f64;
    let lo = pos.floor();
    let hi = pos.ceil();
    let (li, hi_i) = (lo as usize, hi as usize);
    if li >= n - 1 {
        return v[n - 1];
    }
    if li == hi_i {
        return v[li];
    }
    let frac = pos - lo;
    v[li] + frac * (v[hi_i] - v[li])
}

/// φ_p(x) = ln(1 + e^{p(x − c)}), Allora's `Phi`.
///
/// For arguments where `e^{p(x−c)}` overflows (`p(x − c) > 709`) the asymptotically exact
/// `p(x − c)` is returned instead of infinity.
pub fn phi(p: f64, c: f64, x: f64) -> f64 {
    let t = p * (x - c);
    if t > 709.0 {
        return t;
    }
    libm::log(1.0 + exp(t))
}

/// φ′_p(x) = p / (e^{p(c − x)} + 1), Allora's `Gradient` (the weight function).
pub fn phi_prime(p: f64, c: f64, x: f64) -> f64 {
    p / (exp(p * (c - x)) + 1.0)
}

/// Keys of a map in ascending order (BTreeMap iteration order), Allora's `GetSortedKeys`.
pub fn sorted_keys<K: Ord + Clone, V>(m: &std::collections::BTreeMap<K, V>) -> Vec<K> {
    m.keys().cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn std_dev_basics() {
        assert_eq!(std_dev(&[]), 0.0);
        assert_eq!(std_dev(&[3.0]), 0.0);
        assert!((std_dev(&[1.0, 2.0, 3.0, 4.0]) - 1.2909944487358056).abs() < 1e-15);
    }

    #[test]
    fn median_and_quantile() {
        assert_eq!(median(&[]), 0.0);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(quantile(&[], 0.5), 0.0);
        // numpy.percentile([1,2,3,4,5], 20) == 1.8
        assert!((quantile(&[5.0, 1.0, 3.0, 2.0, 4.0], 0.2) - 1.8).abs() < 1e-15);
        assert_eq!(quantile(&[5.0, 1.0, 3.0], 0.0), 1.0);
        assert_eq!(quantile(&[5.0, 1.0, 3.0], 1.0), 5.0);
    }

    #[test]
    fn ema_rules() {
        assert_eq!(ema(0.1, 2.0, 1.0, true), 2.0);
        assert_eq!(ema(0.1, 2.0, 2.0, false), 2.0);
        assert!((ema(0.1, 2.0, 1.0, false) - 1.1).abs() < 1e-15);
    }

    #[test]
    fn exp_bit_identical_to_libm() {
        // deterministic xorshift over several ranges, plus edge values
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for &(lo, hi) in &[
            (-20.0, 20.0),
            (-1.0, 1.0),
            (-1e-6, 1e-6),
            (-800.0, 800.0),
            (-0.4, 0.4),
        ] {
            for _ in 0..400_000 {
                let u = (next() >> 11) as f64 / (1u64 << 53) as f64;
                let x: f64 = lo + (hi - lo) * u;
                assert_eq!(exp(x).to_bits(), libm::exp(x).to_bits(), "x = {x:e}");
            }
        }
        for _ in 0..400_000 {
            let x = f64::from_bits(next());
            if x.is_nan() {
                assert!(exp(x).is_nan());
            } else {
                assert_eq!(exp(x).to_bits(), libm::exp(x).to_bits(), "x = {x:e}");
            }
        }
        for x in [
            0.0,
            -0.0,
            0.3465735902799726,
            1.0397207708399179,
            511.99,
            -511.99,
            512.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ] {
            assert_eq!(exp(x).to_bits(), libm::exp(x).to_bits(), "x = {x:e}");
        }
    }

    #[test]
    fn exp_approx_within_few_ulp() {
        let mut state: u64 = 0x1234_5678_9ABC_DEF1;
        let mut max_ulp = 0i64;
        for _ in 0..1_000_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let u = (state >> 11) as f64 / (1u64 << 53) as f64;
            let x = -60.0 + 120.0 * u;
            let a = exp_approx(x);
            let b = libm::exp(x);
            let d = (a.to_bits() as i64 - b.to_bits() as i64).abs();
            max_ulp = max_ulp.max(d);
        }
        assert!(max_ulp <= 4, "max ulp difference {max_ulp}");
        for x in [-700.0, 700.0, -6.75, 17.25, 1e-20, -1e-20] {
            let d = (exp_approx(x).to_bits() as i64 - libm::exp(x).to_bits() as i64).abs();
            assert!(d <= 4, "x = {x}: {d} ulp");
        }
        assert!(exp_approx(f64::NAN).is_nan());
        assert_eq!(exp_approx(1000.0), f64::INFINITY);
        assert_eq!(exp_approx(0.0), 1.0);
    }

    #[test]
    fn phi_overflow_is_finite() {
        assert!(phi(3.0, 0.75, 1e6).is_finite());
        assert!((phi_prime(3.0, 0.75, 0.75) - 1.5).abs() < 1e-15);
    }
}
