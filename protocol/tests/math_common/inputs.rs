//! Deterministic random synthesis inputs for tests and benchmarks (xorshift64*, no RNG crate).
#![allow(dead_code)]

use std::collections::BTreeMap;

use chorus_protocol::math::regrets::NetworkRegrets;
use chorus_protocol::math::synthesis::{SynthesisInput, SynthesisParams};

/// xorshift64* generator.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Approximately normal (sum of 4 uniforms, scaled).
    pub fn normal(&mut self, mean: f64, sd: f64) -> f64 {
        let s: f64 = (0..4).map(|_| self.uniform()).sum::<f64>() - 2.0;
        mean + sd * s * 1.7320508075688772
    }
}

/// Inferers are keys `0..ni`, forecasters `ni..ni+nf` (u32 keys), every regret present.
pub fn random_input(ni: usize, nf: usize, seed: u64) -> SynthesisInput<u32> {
    random_input_opts(ni, nf, seed, true, 1.0)
}

/// `full_regrets = false` leaves the one-out/one-in maps empty (fall back to initial_regret).
/// `spread` scales the regret spread (small spreads exercise the anchor/cut branches).
pub fn random_input_opts(
    ni: usize,
    nf: usize,
    seed: u64,
    full_regrets: bool,
    spread: f64,
) -> SynthesisInput<u32> {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let inferers: Vec<u32> = (0..ni as u32).collect();
    let forecasters: Vec<u32> = (ni as u32..(ni + nf) as u32).collect();
    let l_prev = rng.normal(-4.0, 1.0);
    let inferences: BTreeMap<u32, f64> = inferers
        .iter()
        .map(|&j| (j, rng.normal(0.1, 0.2)))
        .collect();
    let mut forecasts = BTreeMap::new();
    for &k in &forecasters {
        let f: BTreeMap<u32, f64> = inferers
            .iter()
            .filter_map(|&j| {
                let keep = rng.uniform() < 0.97;
                let v = rng.normal(-3.0, 1.5);
                keep.then_some((j, v))
            })
            .collect();
        forecasts.insert(k, f);
    }
    let mut r = NetworkRegrets::default();
    let reg = |rng: &mut Rng| rng.normal(-1.5, 0.7 * spread);
    for &j in &inferers {
        r.inferer.insert(j, reg(&mut rng));
        r.naive.insert(j, reg(&mut rng));
    }
    for &k in &forecasters {
        r.forecaster.insert(k, reg(&mut rng) + 1.3);
    }
    if full_regrets {
        for &w in &inferers {
            let m: BTreeMap<u32, f64> = inferers.iter().map(|&j| (j, reg(&mut rng))).collect();
            r.one_out_inferer_inferer.insert(w, m);
            let m: BTreeMap<u32, f64> = forecasters
                .iter()
                .map(|&k| (k, reg(&mut rng) + 1.3))
                .collect();
            r.one_out_inferer_forecaster.insert(w, m);
        }
        for &w in &forecasters {
            let m: BTreeMap<u32, f64> = inferers.iter().map(|&j| (j, reg(&mut rng))).collect();
            r.one_out_forecaster_inferer.insert(w, m);
            let m: BTreeMap<u32, f64> = forecasters
                .iter()
                .map(|&k| (k, reg(&mut rng) + 1.3))
                .collect();
            r.one_out_forecaster_forecaster.insert(w, m);
            let mut m: BTreeMap<u32, f64> = inferers.iter().map(|&j| (j, reg(&mut rng))).collect();
            m.insert(w, reg(&mut rng) + 1.3);
            r.one_in_forecaster.insert(w, m);
        }
    }
    SynthesisInput {
        params: SynthesisParams::default(),
        initial_regret: -2.0,
        previous_network_loss: Some(l_prev),
        inferences,
        forecasts,
        regrets: r,
    }
}

/// Random reputer loss bundles (log10 losses) for `nr` reputers over `ni` inferers and `nf`
/// forecasters, String keys, plus stakes.
pub fn random_reputer_bundles(
    nr: usize,
    ni: usize,
    nf: usize,
    seed: u64,
) -> (
    BTreeMap<String, chorus_protocol::math::losses::ValueBundle<String>>,
    BTreeMap<String, f64>,
) {
    use chorus_protocol::math::losses::ValueBundle;
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let base: Vec<f64> = (0..(2 + 3 * ni + 3 * nf + ni * nf))
        .map(|_| rng.normal(-3.0, 1.0))
        .collect();
    let mut bundles = BTreeMap::new();
    let mut stakes = BTreeMap::new();
    for m in 0..nr {
        let quality = 0.05 + 0.5 * rng.uniform();
        let mut it = base.iter().map(|b| b + rng.normal(0.0, quality));
        let mut next = || it.next().unwrap_or(-3.0);
        let mut b = ValueBundle::new(next(), next());
        for j in 0..ni {
            b.inferer_values.insert(format!("i{j:04}"), next());
            b.one_out_inferer_values.insert(format!("i{j:04}"), next());
        }
        for k in 0..nf {
            b.forecaster_values.insert(format!("f{k:04}"), next());
            b.one_out_forecaster_values
                .insert(format!("f{k:04}"), next());
            b.one_in_forecaster_values
                .insert(format!("f{k:04}"), next());
            let m2: BTreeMap<String, f64> = (0..ni).map(|j| (format!("i{j:04}"), next())).collect();
            b.one_out_inferer_forecaster_values
                .insert(format!("f{k:04}"), m2);
        }
        bundles.insert(format!("r{m:04}"), b);
        stakes.insert(format!("r{m:04}"), 1e5 * (1.0 + 4.0 * rng.uniform()));
    }
    (bundles, stakes)
}
