//! The state machines behind the built-in models ([`super::builtin`]): a fixed window, the
//! per-model kernels (averages, drift, momentum, mean reversion, volatility), recursive least
//! squares for `ar`, the seasonal profile and the seeded noisy model. Each is fed one value per
//! bar and answers its next prediction in O(window) at most.

use std::collections::{BTreeMap, VecDeque};

use super::bars::{Bar, Target};
use super::builtin::NOISY_VOL_WINDOW;
use super::rng::normal_at;

/// A fixed-capacity window of the most recent values.
#[derive(Debug, Clone)]
pub(super) struct Window {
    cap: usize,
    values: VecDeque<f64>,
}

impl Window {
    pub(super) fn new(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            values: VecDeque::with_capacity(cap.max(1)),
        }
    }

    pub(super) fn push(&mut self, v: f64) {
        if self.values.len() == self.cap {
            self.values.pop_front();
        }
        self.values.push_back(v);
    }

    pub(super) fn len(&self) -> usize {
        self.values.len()
    }

    pub(super) fn last(&self) -> Option<f64> {
        self.values.back().copied()
    }

    pub(super) fn first(&self) -> Option<f64> {
        self.values.front().copied()
    }

    pub(super) fn mean(&self) -> Option<f64> {
        if self.values.is_empty() {
            return None;
        }
        Some(self.values.iter().sum::<f64>() / self.values.len() as f64)
    }

    /// Sample standard deviation (`n − 1` denominator); `None` below 2 values.
    pub(super) fn sample_sd(&self) -> Option<f64> {
        let n = self.values.len();
        if n < 2 {
            return None;
        }
        let mean = self.mean()?;
        let ss: f64 = self.values.iter().map(|v| (v - mean).powi(2)).sum();
        Some((ss / (n - 1) as f64).sqrt())
    }
}

/// The sample sd of a slice (`n − 1` denominator); `None` below 2 values.
pub(crate) fn sample_sd(values: &[f64]) -> Option<f64> {
    let n = values.len();
    if n < 2 {
        return None;
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    let ss: f64 = values.iter().map(|v| (v - mean).powi(2)).sum();
    Some((ss / (n - 1) as f64).sqrt())
}

#[derive(Debug, Clone)]
pub(super) enum Kernel {
    Zero,
    Last(Option<f64>),
    Sma(Window),
    Ema { alpha: f64, value: Option<f64> },
    LongMean { sum: f64, count: u64 },
    Ar(Box<Rls>),
    Drift(Window),
    Momentum(Window),
    MeanReversion { window: Window, k: f64 },
    Volatility { window: Window, scale: f64 },
    Seasonal(Box<Seasonal>),
    Noisy(Box<Noisy>),
}

impl Kernel {
    pub(super) fn push(&mut self, v: f64, bar: &Bar) {
        match self {
            Kernel::Zero | Kernel::Noisy(_) => {}
            Kernel::Last(last) => *last = Some(v),
            Kernel::Sma(w) | Kernel::Drift(w) | Kernel::Momentum(w) => w.push(v),
            Kernel::MeanReversion { window, .. } | Kernel::Volatility { window, .. } => {
                window.push(v)
            }
            Kernel::Ema { alpha, value } => {
                *value = Some(match *value {
                    Some(e) => e + *alpha * (v - e),
                    None => v,
                });
            }
            Kernel::LongMean { sum, count } => {
                *sum += v;
                *count += 1;
            }
            Kernel::Ar(rls) => rls.push(v),
            Kernel::Seasonal(s) => s.push(v, bar.timestamp()),
        }
    }

    pub(super) fn predict(&self) -> Option<f64> {
        match self {
            Kernel::Zero => Some(0.0),
            Kernel::Last(last) => *last,
            Kernel::Sma(w) => w.mean(),
            Kernel::Ema { value, .. } => *value,
            Kernel::LongMean { sum, count } => (*count > 0).then(|| *sum / *count as f64),
            Kernel::Ar(rls) => rls.predict(),
            Kernel::Drift(w) => {
                let last = w.last()?;
                let first = w.first()?;
                let m = w.len() - 1;
                if m == 0 {
                    Some(last)
                } else {
                    Some(last + (last - first) / m as f64)
                }
            }
            Kernel::Momentum(w) => {
                let last = w.last()?;
                let first = w.first()?;
                let m = w.len() - 1;
                if m == 0 {
                    return Some(last);
                }
                let mean_abs = w
                    .values
                    .iter()
                    .zip(w.values.iter().skip(1))
                    .map(|(a, b)| (b - a).abs())
                    .sum::<f64>()
                    / m as f64;
                let dir = if last > first {
                    1.0
                } else if last < first {
                    -1.0
                } else {
                    0.0
                };
                Some(last + dir * mean_abs)
            }
            Kernel::MeanReversion { window, k } => {
                let last = window.last()?;
                Some(last + k * (window.mean()? - last))
            }
            Kernel::Volatility { window, scale } => Some(scale * window.sample_sd()?),
            Kernel::Seasonal(s) => s.predict(),
            Kernel::Noisy(_) => None,
        }
    }
}

/// Recursive least squares for an AR(p) model with intercept.
#[derive(Debug, Clone)]
pub(super) struct Rls {
    p: usize,
    /// Coefficients `[intercept, lag1, …, lagp]`.
    theta: Vec<f64>,
    /// Inverse-information matrix, row-major `(p+1)²`.
    pmat: Vec<f64>,
    /// The last `p` values, most recent first.
    lags: VecDeque<f64>,
    updates: u64,
}

/// The RLS prior `P₀ = RLS_P0 · I` (weak: data dominate after a few updates).
const RLS_P0: f64 = 1e6;

impl Rls {
    pub(super) fn new(p: usize) -> Self {
        let d = p + 1;
        let mut pmat = vec![0.0; d * d];
        for i in 0..d {
            pmat[i * d + i] = RLS_P0;
        }
        Self {
            p,
            theta: vec![0.0; d],
            pmat,
            lags: VecDeque::with_capacity(p),
            updates: 0,
        }
    }

    pub(super) fn regressor(&self) -> Option<Vec<f64>> {
        if self.lags.len() < self.p {
            return None;
        }
        let mut phi = Vec::with_capacity(self.p + 1);
        phi.push(1.0);
        phi.extend(self.lags.iter().copied());
        Some(phi)
    }

    pub(super) fn push(&mut self, y: f64) {
        if let Some(phi) = self.regressor() {
            self.update(&phi, y);
        }
        if self.lags.len() == self.p {
            self.lags.pop_back();
        }
        self.lags.push_front(y);
    }

    pub(super) fn update(&mut self, phi: &[f64], y: f64) {
        let d = self.p + 1;
        // P φ
        let pphi: Vec<f64> = self
            .pmat
            .chunks_exact(d)
            .map(|row| row.iter().zip(phi).map(|(p, f)| p * f).sum())
            .collect();
        let denom = 1.0 + phi.iter().zip(&pphi).map(|(a, b)| a * b).sum::<f64>();
        if !(denom.is_finite() && denom > 0.0) {
            self.reset_covariance();
            return;
        }
        let err = y - self.theta.iter().zip(phi).map(|(a, b)| a * b).sum::<f64>();
        let gain: Vec<f64> = pphi.iter().map(|v| v / denom).collect();
        let new_theta: Vec<f64> = self
            .theta
            .iter()
            .zip(&gain)
            .map(|(t, g)| t + g * err)
            .collect();
        // P ← P − k (Pφ)ᵀ, symmetrised.
        let mut new_p = self.pmat.clone();
        for i in 0..d {
            for j in 0..d {
                new_p[i * d + j] -= gain[i] * pphi[j];
            }
        }
        for i in 0..d {
            for j in (i + 1)..d {
                let avg = 0.5 * (new_p[i * d + j] + new_p[j * d + i]);
                new_p[i * d + j] = avg;
                new_p[j * d + i] = avg;
            }
        }
        let diag_ok = (0..d).all(|i| new_p[i * d + i] > 0.0);
        if new_theta.iter().all(|v| v.is_finite()) && new_p.iter().all(|v| v.is_finite()) && diag_ok
        {
            self.theta = new_theta;
            self.pmat = new_p;
            self.updates += 1;
        } else {
            self.reset_covariance();
        }
    }

    pub(super) fn reset_covariance(&mut self) {
        let d = self.p + 1;
        self.pmat.iter_mut().for_each(|v| *v = 0.0);
        for i in 0..d {
            self.pmat[i * d + i] = RLS_P0;
        }
    }

    pub(super) fn predict(&self) -> Option<f64> {
        if self.updates < 3 * (self.p as u64 + 1) {
            return None;
        }
        let phi = self.regressor()?;
        let y: f64 = self.theta.iter().zip(&phi).map(|(a, b)| a * b).sum();
        y.is_finite().then_some(y)
    }
}

/// Hour-of-day seasonal state.
#[derive(Debug, Clone)]
pub(super) struct Seasonal {
    days: usize,
    fallback: Window,
    /// Per hour of day: `(day index, value)` of recent bars, oldest first.
    slots: BTreeMap<u8, VecDeque<(i64, f64)>>,
    last_time: Option<i64>,
    min_step: Option<i64>,
}

impl Seasonal {
    pub(super) fn new(days: usize, fallback: usize) -> Self {
        Self {
            days,
            fallback: Window::new(fallback),
            slots: BTreeMap::new(),
            last_time: None,
            min_step: None,
        }
    }

    pub(super) fn push(&mut self, v: f64, time: Option<i64>) {
        self.fallback.push(v);
        if let (Some(now), Some(prev)) = (time, self.last_time) {
            let step = now - prev;
            if step > 0 {
                self.min_step = Some(self.min_step.map_or(step, |s| s.min(step)));
            }
        }
        self.last_time = time;
        let Some(now) = time else { return };
        let day = now.div_euclid(86_400);
        let hour = (now.rem_euclid(86_400) / 3600) as u8;
        let slot = self.slots.entry(hour).or_default();
        slot.push_back((day, v));
        // Keep only the entries of the `days` most recent distinct days.
        loop {
            let distinct = 1 + slot
                .iter()
                .zip(slot.iter().skip(1))
                .filter(|(a, b)| a.0 != b.0)
                .count();
            if distinct <= self.days {
                break;
            }
            let Some(&(oldest, _)) = slot.front() else {
                break;
            };
            while slot.front().is_some_and(|e| e.0 == oldest) {
                slot.pop_front();
            }
        }
    }

    pub(super) fn predict(&self) -> Option<f64> {
        let seasonal = || {
            let next = self.last_time? + self.min_step?;
            let hour = (next.rem_euclid(86_400) / 3600) as u8;
            let slot = self.slots.get(&hour)?;
            if slot.is_empty() {
                return None;
            }
            Some(slot.iter().map(|e| e.1).sum::<f64>() / slot.len() as f64)
        };
        seasonal().or_else(|| self.fallback.mean())
    }
}

/// State of the noisy model.
#[derive(Debug, Clone)]
pub(super) struct Noisy {
    sigma: f64,
    seed: u64,
    target: Target,
    last_x: Option<f64>,
    returns: Window,
}

impl Noisy {
    /// The noisy model on `target` (volatility over the last [`NOISY_VOL_WINDOW`] returns).
    pub(super) fn new(sigma: f64, seed: u64, target: Target) -> Self {
        Noisy {
            sigma,
            seed,
            target,
            last_x: None,
            returns: Window::new(NOISY_VOL_WINDOW),
        }
    }

    pub(super) fn push(&mut self, x: Option<f64>, ret: Option<f64>) {
        if x.is_some() {
            self.last_x = x;
        }
        if let Some(r) = ret {
            self.returns.push(r);
        }
    }

    /// The raw output (already in the target's units).
    pub(super) fn predict(&self, epoch: u64, last_close: Option<f64>) -> Option<f64> {
        let z = normal_at(self.seed, epoch);
        match self.target {
            Target::Range => Some(self.last_x? * (self.sigma * z).exp()),
            Target::Close => {
                let v = self.returns.sample_sd()?;
                Some(last_close? * (self.sigma * v * z).exp())
            }
            Target::Return => Some(self.sigma * self.returns.sample_sd()? * z),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::needless_range_loop)]
    fn ar_recovers_a_known_process() {
        // x_{t+1} = 0.2 + 0.5 x_t − 0.2 x_{t−1} + 0.1 x_{t−2} + small noise
        let mut xs = vec![0.3, 0.4, 0.5];
        for i in 3..3000u64 {
            let n = xs.len();
            let noise = 0.01 * normal_at(3, i);
            xs.push(0.2 + 0.5 * xs[n - 1] - 0.2 * xs[n - 2] + 0.1 * xs[n - 3] + noise);
        }
        let mut rls = Rls::new(3);
        for &x in &xs {
            rls.push(x);
        }
        let want = [0.2, 0.5, -0.2, 0.1];
        for (got, want) in rls.theta.iter().zip(want) {
            assert!((got - want).abs() < 0.05, "theta {:?}", rls.theta);
        }
        // RLS with a weak prior equals batch least squares (normal equations, Gauss–Jordan).
        let mut a = [[0.0f64; 5]; 4];
        for t in 3..xs.len() {
            let phi = [1.0, xs[t - 1], xs[t - 2], xs[t - 3]];
            for i in 0..4 {
                for j in 0..4 {
                    a[i][j] += phi[i] * phi[j];
                }
                a[i][4] += phi[i] * xs[t];
            }
        }
        for c in 0..4 {
            let piv = a[c][c];
            for j in 0..5 {
                a[c][j] /= piv;
            }
            for r in 0..4 {
                if r != c {
                    let f = a[r][c];
                    for j in 0..5 {
                        a[r][j] -= f * a[c][j];
                    }
                }
            }
        }
        for i in 0..4 {
            assert!(
                (rls.theta[i] - a[i][4]).abs() < 1e-5,
                "rls {:?} ols {:?}",
                rls.theta,
                a
            );
        }
    }
}
