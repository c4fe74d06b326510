//! Accuracy summary of a topic (MSEs, best worker, network comparisons), its JSON
//! form and the fixed-width table printed at the end of a run.
//!
//! Rules (also written to the report's README):
//! - **Scored epochs** are the recorded epochs numbered `first + W` or later, where
//!   `first` is the first recorded epoch and `W` the warm-up, and whose truth is
//!   finite. Warm-up epochs count by epoch number, so an epoch missing from the
//!   records during the warm-up does not push the warm-up later.
//! - **MSE** is the mean of squared errors (not their log) over the scored epochs in
//!   which the value exists: a worker's own submissions, the epochs with a combined
//!   (naive) inference for the network, and the epochs with at least one inference
//!   for the equal-weight average. Headline MSEs are therefore over possibly
//!   different epoch sets; every *comparison* (ratios, share of epochs won) uses
//!   only the epochs where both sides exist.
//! - **Best worker**: the lowest MSE among workers that submitted in at least 90% of
//!   the scored epochs (ties broken by name). A worker that skips epochs could
//!   otherwise look best by only answering easy ones.
//! - **Rewards** are the totals over the whole run, warm-up included (they were paid).

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::ReportError;
use super::mix;
use super::model::{Prepared, TopicRun};

/// Share of the scored epochs a worker must have submitted in to be eligible as best
/// worker, as `numerator / denominator` (integer arithmetic, no rounding).
pub const BEST_WORKER_MIN_PARTICIPATION: (u64, u64) = (9, 10);

/// Accuracy of one worker over the scored epochs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerSummary {
    /// Worker name.
    pub name: String,
    /// Model it runs.
    pub model: String,
    /// MSE over the scored epochs it submitted in; `None` if it submitted in none.
    pub mse: Option<f64>,
    /// Total rewards over the whole run in base units (a decimal string in JSON).
    #[serde(with = "u128_string")]
    pub rewards: u128,
    /// Number of scored epochs it submitted in.
    pub submitted_epochs: u64,
    /// Whether it submitted often enough to be the best worker.
    pub eligible_for_best: bool,
    /// Final EMA score, if known.
    pub score_ema: Option<f64>,
    /// Network combined MSE divided by this worker's MSE, over the scored epochs where
    /// both exist (< 1: the network was better). `None` without such epochs or if the
    /// worker's MSE there is 0.
    pub network_vs_worker: Option<f64>,
    /// One-out contribution: the MSE of the network inference without this worker over the
    /// network's MSE, minus 1, on the scored epochs with both (0.02: the network is 2 % worse
    /// without it; negative: better without it).
    #[serde(default)]
    pub one_out_contribution: Option<f64>,
    /// Its share of the rewards paid to the topic's workers over the run.
    #[serde(default)]
    pub reward_share: Option<f64>,
}

/// Accuracy summary of one topic. Serializes to the devnet's `--json` shape:
/// `name, target, network_mse, naive_mse, average_mse, best_worker, best_worker_mse,
/// workers[{name, model, mse, rewards, ...}]`, plus the extra fields below.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicSummary {
    /// Topic name.
    pub name: String,
    /// Target (`range`, `close`, `return`).
    pub target: String,
    /// MSE of the network combined inference over the scored epochs where it exists.
    pub network_mse: Option<f64>,
    /// MSE of the network naive inference over the scored epochs where it exists.
    pub naive_mse: Option<f64>,
    /// MSE of the equal-weight average of the inferences present in each scored epoch.
    pub average_mse: Option<f64>,
    /// Best eligible worker (see the module doc), if any.
    pub best_worker: Option<String>,
    /// Its MSE.
    pub best_worker_mse: Option<f64>,
    /// Every worker of the roster, in roster order.
    pub workers: Vec<WorkerSummary>,
    /// Warm-up length in epochs (excluded from scoring).
    pub warmup_epochs: u64,
    /// Number of scored epochs.
    pub scored_epochs: u64,
    /// Epochs past the warm-up not scored because their truth is not finite.
    pub unscorable_epochs: u64,
    /// Scored epochs with a network combined inference.
    pub network_epochs: u64,
    /// Scored epochs with a network naive inference.
    pub naive_epochs: u64,
    /// Scored epochs with at least one inference (behind `average_mse`).
    pub average_epochs: u64,
    /// Scored epochs in which every worker of the roster took part in the finalized network
    /// inference: an inference, or a forecast-implied inference for a forecaster (the rest
    /// lost a bundle to timing or a failure).
    #[serde(default)]
    pub complete_epochs: u64,
    /// Scored epochs whose settlement paid the workers (their losses were reported in time).
    #[serde(default)]
    pub settled_epochs: u64,
    /// Network MSE / best worker MSE over the scored epochs where both exist.
    pub network_vs_best: Option<f64>,
    /// Number of epochs behind `network_vs_best` and `network_beats_best_share`.
    pub network_vs_best_epochs: u64,
    /// Share of those epochs in which the network's squared error was strictly lower
    /// than the best worker's.
    pub network_beats_best_share: Option<f64>,
    /// Network MSE / equal-weight average MSE over the scored epochs where both exist.
    pub network_vs_average: Option<f64>,
    /// Network combined MSE / naive MSE over the scored epochs where both exist
    /// (< 1: the forecasters helped).
    pub network_vs_naive: Option<f64>,
    /// The best convex mix of the inferers in hindsight (weights fixed over the run, chosen
    /// knowing every truth) over the scored epochs in which every inferer has an inference:
    /// its MSE, its weights, and those epochs' count ([`super::mix`]).
    #[serde(default)]
    pub best_mix_mse: Option<f64>,
    /// Weights of that mix by worker name.
    #[serde(default)]
    pub best_mix_weights: BTreeMap<String, f64>,
    /// Epochs behind the mix.
    #[serde(default)]
    pub best_mix_epochs: u64,
    /// Best mix MSE / best worker MSE over those epochs (the limit of any fixed weighting).
    #[serde(default)]
    pub best_mix_vs_best: Option<f64>,
    /// Network MSE / best mix MSE over those epochs (1: the network reached the limit).
    #[serde(default)]
    pub network_vs_best_mix: Option<f64>,
    /// Total rewards paid to the topic's workers over the run, base units.
    #[serde(with = "u128_string")]
    pub total_rewards: u128,
    /// Token decimals, for printing rewards in whole tokens.
    pub token_decimals: u8,
}

/// Mean of squares, accumulated.
#[derive(Debug, Default, Clone, Copy)]
struct Mse {
    sum: f64,
    n: u64,
}

impl Mse {
    fn add(&mut self, err: f64) {
        self.sum += err * err;
        self.n += 1;
    }

    fn value(self) -> Option<f64> {
        (self.n > 0).then(|| self.sum / self.n as f64)
    }
}

/// Two MSEs over the same epochs, with the count of epochs `a` was strictly better.
#[derive(Debug, Default, Clone, Copy)]
struct Paired {
    a: Mse,
    b: Mse,
    a_wins: u64,
}

impl Paired {
    fn add(&mut self, a: f64, b: f64, truth: f64) {
        let (ea, eb) = (a - truth, b - truth);
        if ea * ea < eb * eb {
            self.a_wins += 1;
        }
        self.a.add(ea);
        self.b.add(eb);
    }

    /// `mse(a) / mse(b)`; `None` without epochs or when `mse(b)` is 0.
    fn ratio(self) -> Option<f64> {
        let (a, b) = (self.a.value()?, self.b.value()?);
        (b > 0.0).then(|| a / b)
    }

    fn a_win_share(self) -> Option<f64> {
        (self.a.n > 0).then(|| self.a_wins as f64 / self.a.n as f64)
    }
}

/// Summarizes a topic with a warm-up of `warmup` epochs (see the module doc).
pub fn summarize(run: &TopicRun, warmup: u64) -> Result<TopicSummary, ReportError> {
    let p = &Prepared::new(run, warmup)?;
    let mut scored_epochs = 0u64;
    let mut network = Mse::default();
    let mut naive = Mse::default();
    let mut average = Mse::default();
    let mut net_vs_avg = Paired::default();
    let mut net_vs_naive = Paired::default();
    let mut workers: Vec<Mse> = vec![Mse::default(); p.roster.len()];
    let mut net_vs_worker: Vec<Paired> = vec![Paired::default(); p.roster.len()];
    let mut one_out: Vec<Paired> = vec![Paired::default(); p.roster.len()];

    let mut complete_epochs = 0u64;
    let mut settled_epochs = 0u64;
    for (r, truth) in p.scored() {
        scored_epochs += 1;
        if p.roster.iter().all(|w| r.took_part(&w.name)) {
            complete_epochs += 1;
        }
        if !r.rewards.is_empty() {
            settled_epochs += 1;
        }
        let combined = r.combined_value();
        let avg = r.average();
        if let Some(c) = combined {
            network.add(c - truth);
        }
        if let Some(n) = r.naive_value() {
            naive.add(n - truth);
            if let Some(c) = combined {
                net_vs_naive.add(c, n, truth);
            }
        }
        if let Some(a) = avg {
            average.add(a - truth);
            if let Some(c) = combined {
                net_vs_avg.add(c, a, truth);
            }
        }
        for (i, w) in p.roster.iter().enumerate() {
            if let (Some(o), Some(c)) = (r.one_out.get(&w.name).copied(), combined)
                && o.is_finite()
            {
                one_out[i].add(o, c, truth);
            }
            if let Some(v) = r.inference(&w.name) {
                workers[i].add(v - truth);
                if let Some(c) = combined {
                    net_vs_worker[i].add(c, v, truth);
                }
            }
        }
    }
    let unscorable_epochs = p
        .records
        .iter()
        .filter(|r| p.after_warmup(r) && r.truth_value().is_none())
        .count() as u64;

    let mut rewards: BTreeMap<&str, u128> = BTreeMap::new();
    for r in &p.records {
        for (name, amount) in &r.rewards {
            let total = rewards.entry(name.as_str()).or_insert(0);
            *total = total
                .checked_add(*amount)
                .ok_or_else(|| ReportError::RewardOverflow {
                    topic: run.name.clone(),
                    worker: name.clone(),
                })?;
        }
    }
    let mut total_rewards: u128 = 0;
    for amount in rewards.values() {
        total_rewards =
            total_rewards
                .checked_add(*amount)
                .ok_or_else(|| ReportError::RewardOverflow {
                    topic: run.name.clone(),
                    worker: "(total)".into(),
                })?;
    }

    let (num, den) = BEST_WORKER_MIN_PARTICIPATION;
    let summaries: Vec<WorkerSummary> = p
        .roster
        .iter()
        .zip(&workers)
        .zip(&net_vs_worker)
        .zip(&one_out)
        .map(|(((w, mse), paired), without)| WorkerSummary {
            name: w.name.clone(),
            model: w.model.clone(),
            mse: mse.value(),
            rewards: rewards.get(w.name.as_str()).copied().unwrap_or(0),
            submitted_epochs: mse.n,
            eligible_for_best: mse.n > 0
                && u128::from(mse.n) * u128::from(den)
                    >= u128::from(scored_epochs) * u128::from(num),
            score_ema: run.score_ema.get(&w.name).copied(),
            network_vs_worker: paired.ratio(),
            one_out_contribution: without.ratio().map(|r| r - 1.0),
            reward_share: (total_rewards > 0).then(|| {
                rewards.get(w.name.as_str()).copied().unwrap_or(0) as f64 / total_rewards as f64
            }),
        })
        .collect();

    let best = summaries
        .iter()
        .enumerate()
        .filter(|(_, w)| w.eligible_for_best)
        .filter_map(|(i, w)| w.mse.map(|m| (i, m)))
        .min_by(|(i, a), (j, b)| {
            a.total_cmp(b)
                .then_with(|| summaries[*i].name.cmp(&summaries[*j].name))
        });
    let best_pair = best.map(|(i, _)| net_vs_worker[i]).unwrap_or_default();
    let mix = hindsight_mix(p, &workers, best.map(|(i, _)| i));

    Ok(TopicSummary {
        name: run.name.clone(),
        target: run.target.clone(),
        network_mse: network.value(),
        naive_mse: naive.value(),
        average_mse: average.value(),
        best_worker: best.map(|(i, _)| summaries[i].name.clone()),
        best_worker_mse: best.map(|(_, m)| m),
        workers: summaries,
        warmup_epochs: p.warmup,
        scored_epochs,
        unscorable_epochs,
        network_epochs: network.n,
        naive_epochs: naive.n,
        average_epochs: average.n,
        complete_epochs,
        settled_epochs,
        network_vs_best: best_pair.ratio(),
        network_vs_best_epochs: best_pair.a.n,
        network_beats_best_share: best_pair.a_win_share(),
        network_vs_average: net_vs_avg.ratio(),
        network_vs_naive: net_vs_naive.ratio(),
        best_mix_mse: mix.as_ref().map(|m| m.mse),
        best_mix_weights: mix.as_ref().map(|m| m.weights.clone()).unwrap_or_default(),
        best_mix_epochs: mix.as_ref().map_or(0, |m| m.epochs),
        best_mix_vs_best: mix.as_ref().and_then(|m| m.vs_best),
        network_vs_best_mix: mix.as_ref().and_then(|m| m.network_vs_mix),
        total_rewards,
        token_decimals: run.token_decimals,
    })
}

/// The best fixed mix of a run and how the best worker and the network compare with it.
struct HindsightMix {
    mse: f64,
    weights: BTreeMap<String, f64>,
    epochs: u64,
    vs_best: Option<f64>,
    network_vs_mix: Option<f64>,
}

/// The best fixed mix of the roster's inferers (those with an inference in some scored epoch)
/// over the scored epochs where each has one; `best` indexes the best worker in the roster.
fn hindsight_mix(p: &Prepared<'_>, workers: &[Mse], best: Option<usize>) -> Option<HindsightMix> {
    let inferers: Vec<usize> = (0..p.roster.len()).filter(|i| workers[*i].n > 0).collect();
    let mut rows = vec![];
    let (mut best_mse, mut network) = (Mse::default(), Mse::default());
    for (r, truth) in p.scored() {
        let x: Option<Vec<f64>> = inferers
            .iter()
            .map(|i| r.inference(&p.roster[*i].name))
            .collect();
        let Some(x) = x else { continue };
        if let Some(b) = best.and_then(|b| r.inference(&p.roster[b].name)) {
            best_mse.add(b - truth);
        }
        if let Some(c) = r.combined_value() {
            network.add(c - truth);
        }
        rows.push((x, truth));
    }
    let (w, mse) = mix::best_fixed_mix(&rows)?;
    let network_vs_mix = if network.n == rows.len() as u64 && mse > 0.0 {
        network.value().map(|n| n / mse)
    } else {
        None
    };
    Some(HindsightMix {
        mse,
        weights: inferers
            .iter()
            .zip(w)
            .map(|(i, w)| (p.roster[*i].name.clone(), w))
            .collect(),
        epochs: rows.len() as u64,
        vs_best: best_mse.value().filter(|b| *b > 0.0).map(|b| mse / b),
        network_vs_mix,
    })
}

/// `x` as a percentage with one decimal (`+` for positive values when `signed`), `-` for none.
fn format_percent(x: Option<f64>, signed: bool) -> String {
    match x {
        Some(v) if signed => format!("{:+.1}%", 100.0 * v),
        Some(v) => format!("{:.1}%", 100.0 * v),
        None => "-".into(),
    }
}

/// Serde helpers writing a `u128` as a decimal string (JSON numbers lose precision
/// past 2^53 in most readers).
mod u128_string {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &u128, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Formats `base_units` of a token with `decimals` decimals as whole tokens with 4
/// decimals (fewer if the token has fewer), rounded down: `format_tokens(1_234_567, 6)`
/// is `"1.2345"`.
pub fn format_tokens(base_units: u128, decimals: u8) -> String {
    let d = usize::from(decimals);
    let digits = format!("{base_units:0>width$}", width = d + 1);
    let (int, frac) = digits.split_at(digits.len() - d);
    let shown = &frac[..d.min(4)];
    if shown.is_empty() {
        int.to_string()
    } else {
        format!("{int}.{shown}")
    }
}

/// An MSE in scientific notation with 4 significant digits, `-` if absent.
pub fn format_mse(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.3e}"))
}

/// A number with 4 significant digits: fixed notation between 1e-3 and 1e5,
/// scientific otherwise; `-` if absent.
pub fn format_sig4(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(0.0) => "0".into(),
        Some(v) if !v.is_finite() => format!("{v}"),
        Some(v) => {
            let mag = v.abs().log10().floor();
            if (-3.0..5.0).contains(&mag) {
                let decimals = (3.0 - mag).max(0.0) as usize;
                format!("{v:.decimals$}")
            } else {
                format!("{v:.3e}")
            }
        }
    }
}

/// A ratio with 3 decimals, `-` if absent.
fn format_ratio(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.3}"))
}

/// Orders MSEs ascending, absent last.
fn cmp_mse(a: Option<f64>, b: Option<f64>) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => a.total_cmp(&b),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

/// The fixed-width table of a topic, printed at the end of a run: a header stating
/// topic, target, scored epochs and warm-up; one row per worker sorted by MSE
/// (absent last); rows for the network combined, network naive and equal-weight
/// average; then the same-epoch comparisons of the network. Ends with a newline.
pub fn render_table(s: &TopicSummary) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} (target: {}): {} scored epochs after a warm-up of {} epochs{}",
        s.name,
        s.target,
        s.scored_epochs,
        s.warmup_epochs,
        if s.unscorable_epochs > 0 {
            format!(
                " ({} more not scored: truth not finite)",
                s.unscorable_epochs
            )
        } else {
            String::new()
        }
    );

    let rel = |m: Option<f64>| match (m, s.best_worker_mse) {
        (Some(m), Some(b)) if b > 0.0 => format_ratio(Some(m / b)),
        (Some(0.0), Some(_)) => format_ratio(Some(1.0)),
        (Some(_), Some(_)) => "inf".into(),
        _ => "-".into(),
    };
    let header = [
        "name",
        "model",
        "MSE",
        "/best",
        "epochs",
        "net/this",
        "score EMA",
        "1-out",
        "rewards",
        "share",
    ];
    let mut workers: Vec<&WorkerSummary> = s.workers.iter().collect();
    workers.sort_by(|a, b| cmp_mse(a.mse, b.mse).then_with(|| a.name.cmp(&b.name)));
    let mut rows: Vec<[String; 10]> = workers
        .iter()
        .map(|w| {
            let mark = if w.eligible_for_best { "" } else { "*" };
            [
                format!("{}{mark}", w.name),
                w.model.clone(),
                format_mse(w.mse),
                rel(w.mse),
                w.submitted_epochs.to_string(),
                format_ratio(w.network_vs_worker),
                format_sig4(w.score_ema),
                format_percent(w.one_out_contribution, true),
                format_tokens(w.rewards, s.token_decimals),
                format_percent(w.reward_share, false),
            ]
        })
        .collect();
    let split = rows.len();
    let network_rows = [
        ("network", "combined", s.network_mse, s.network_epochs),
        ("network", "naive", s.naive_mse, s.naive_epochs),
        ("average", "equal-weight", s.average_mse, s.average_epochs),
    ];
    for (name, model, mse, epochs) in network_rows {
        rows.push([
            name.into(),
            model.into(),
            format_mse(mse),
            rel(mse),
            epochs.to_string(),
            String::new(),
            "-".into(),
            String::new(),
            String::new(),
            String::new(),
        ]);
    }

    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    // Text columns left-aligned, numbers right-aligned.
    let line = |cells: &[String; 10]| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i < 2 {
                let _ = write!(l, "  {cell:<w$}");
            } else {
                let _ = write!(l, "  {cell:>w$}");
            }
        }
        l.trim_end().to_string()
    };
    let _ = writeln!(out, "{}", line(&header.map(String::from)));
    let total_width: usize = widths.iter().map(|w| w + 2).sum();
    for (i, row) in rows.iter().enumerate() {
        if i == split {
            let _ = writeln!(out, "  {}", "-".repeat(total_width.saturating_sub(2)));
        }
        let _ = writeln!(out, "{}", line(row));
    }

    write_notes(&mut out, s);
    out
}

/// The lines under a topic's table: what the columns mean, the epoch counts and the
/// network against the best worker, the average and the hindsight mix.
fn write_notes(out: &mut String, s: &TopicSummary) {
    let _ = writeln!(
        out,
        "  MSE: mean squared error over the scored epochs each submitted in; /best: MSE / best worker's MSE;"
    );
    let _ = writeln!(
        out,
        "  net/this: network MSE / worker MSE on the epochs both exist; 1-out: how much worse the network's MSE is\n  without the worker (its one-out inference); rewards: whole tokens over the run, share: of all paid."
    );
    let _ = writeln!(
        out,
        "  rewards paid to the topic's workers in total: {} tokens.",
        format_tokens(s.total_rewards, s.token_decimals)
    );
    let _ = writeln!(
        out,
        "  of {} scored epochs: {} with every worker's bundle finalized, {} settled with rewards.",
        s.scored_epochs, s.complete_epochs, s.settled_epochs
    );
    let (num, den) = BEST_WORKER_MIN_PARTICIPATION;
    if s.workers.iter().any(|w| !w.eligible_for_best) {
        let _ = writeln!(
            out,
            "  * submitted in fewer than {}% of scored epochs: not eligible as best worker.",
            num * 100 / den
        );
    }
    match &s.best_worker {
        Some(best) => {
            let _ = writeln!(
                out,
                "  network vs best worker {best} on the same {} epochs: MSE ratio {}, network better in {} of them.",
                s.network_vs_best_epochs,
                format_ratio(s.network_vs_best),
                s.network_beats_best_share
                    .map_or_else(|| "-".to_string(), |x| format!("{:.1}%", x * 100.0))
            );
        }
        None => {
            let _ = writeln!(out, "  no eligible best worker.");
        }
    }
    let _ = writeln!(
        out,
        "  network vs equal-weight average: MSE ratio {}; network combined vs naive: MSE ratio {} (same epochs).",
        format_ratio(s.network_vs_average),
        format_ratio(s.network_vs_naive)
    );
    if s.best_mix_mse.is_some() {
        let _ = writeln!(
            out,
            "  best fixed mix in hindsight ({} epochs with every inferer): MSE ratio {} of the best worker; network / that mix: {}.",
            s.best_mix_epochs,
            format_ratio(s.best_mix_vs_best),
            format_ratio(s.network_vs_best_mix)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_formatted_exactly() {
        assert_eq!(format_tokens(1_234_567, 6), "1.2345");
        assert_eq!(format_tokens(5, 6), "0.0000");
        assert_eq!(format_tokens(0, 0), "0");
        assert_eq!(format_tokens(42, 0), "42");
        assert_eq!(format_tokens(42, 2), "0.42");
        assert_eq!(format_tokens(u128::MAX, 18), "340282366920938463463.3746");
        assert_eq!(format_tokens(7, 255).len(), 6);
    }

    #[test]
    fn numbers_have_four_significant_digits() {
        assert_eq!(format_mse(Some(1.23456e-7)), "1.235e-7");
        assert_eq!(format_mse(None), "-");
        assert_eq!(format_sig4(Some(0.123456)), "0.1235");
        assert_eq!(format_sig4(Some(12.3456)), "12.35");
        assert_eq!(format_sig4(Some(-1.5e-6)), "-1.500e-6");
        assert_eq!(format_sig4(Some(0.0)), "0");
    }
}
