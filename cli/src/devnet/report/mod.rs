//! The end-of-run report of `chorus devnet`: per topic, an accuracy summary (table
//! text and JSON), a per-epoch CSV and two SVG plots, plus a README describing them.
//!
//! Entry point: [`write_report`]. The pieces are usable alone: [`summarize`] and
//! [`render_table`] for the terminal and `--json`, [`write_csv`],
//! [`cumulative_error_svg`] and [`weights_svg`].
//!
//! Definitions (scored epochs, MSE, best worker, same-epoch comparisons) are in
//! [`summary`]; plot conventions in [`plots`]; CSV columns in [`csv`].

pub mod csv;
pub mod mix;
pub mod model;
pub mod plots;
pub mod summary;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

pub use self::csv::write_csv;
pub use self::model::{EpochRecord, TopicRun, WorkerInfo};
pub use self::plots::{WEIGHT_SMOOTHING_WINDOW, cumulative_error_svg, weights_svg};
pub use self::summary::{BEST_WORKER_MIN_PARTICIPATION, TopicSummary, render_table, summarize};

/// Why a report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A file or directory could not be created or written.
    #[error("cannot write {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Writing to a caller-supplied writer failed.
    #[error("write failed: {0}")]
    Write(#[from] std::io::Error),
    /// The summary could not be encoded as JSON.
    #[error("cannot encode the summary as JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// Two records of a topic have the same epoch number.
    #[error("topic {topic:?}: epoch {epoch} is recorded more than once")]
    DuplicateEpoch {
        /// Topic name.
        topic: String,
        /// The repeated epoch.
        epoch: u64,
    },
    /// A reward total does not fit in a `u128`.
    #[error("topic {topic:?}: total rewards of {worker} overflow u128")]
    RewardOverflow {
        /// Topic name.
        topic: String,
        /// Worker whose total overflowed (or `(total)`).
        worker: String,
    },
}

/// Files written for one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicFiles {
    /// Topic name.
    pub name: String,
    /// File name stem derived from the name (see [`slug`]).
    pub slug: String,
    /// `<slug>.csv`: one row per epoch.
    pub csv: PathBuf,
    /// `<slug>-cumulative-error.svg`.
    pub cumulative_error_svg: PathBuf,
    /// `<slug>-weights.svg`.
    pub weights_svg: PathBuf,
}

/// What [`write_report`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportFiles {
    /// The report directory.
    pub dir: PathBuf,
    /// `summary.json`: array of [`TopicSummary`].
    pub summary_json: PathBuf,
    /// `summary.txt`: the tables of [`render_table`], one per topic.
    pub summary_txt: PathBuf,
    /// `README.md`: what the files are and how the numbers are defined.
    pub readme: PathBuf,
    /// Per-topic files, in the order of the runs.
    pub topics: Vec<TopicFiles>,
    /// The summaries written to `summary.json` (so the caller need not recompute).
    pub summaries: Vec<TopicSummary>,
}

impl ReportFiles {
    /// Every written file: README, summaries, then each topic's CSV and plots.
    pub fn paths(&self) -> Vec<&Path> {
        let mut out = vec![
            self.readme.as_path(),
            self.summary_json.as_path(),
            self.summary_txt.as_path(),
        ];
        for t in &self.topics {
            out.extend([
                t.csv.as_path(),
                t.cumulative_error_svg.as_path(),
                t.weights_svg.as_path(),
            ]);
        }
        out
    }

    /// [`ReportFiles::paths`] as text (the summary's `report` list).
    pub fn path_texts(&self) -> Vec<String> {
        self.paths()
            .iter()
            .map(|p| p.display().to_string())
            .collect()
    }

    /// The tables of all topics, as in `summary.txt`.
    pub fn tables(&self) -> String {
        tables(&self.summaries)
    }
}

/// File name stem of a topic: ASCII letters and digits lowercased; spaces, `-`, `_`,
/// `.` and `:` become single dashes; anything else (such as `/`) is dropped.
/// `"EUR/USD 1h range"` → `"eurusd-1h-range"`; `"topic"` if nothing is left.
pub fn slug(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if matches!(c, ' ' | '\t' | '-' | '_' | '.' | ':') && !out.ends_with('-') {
            out.push('-');
        }
    }
    let trimmed = out.trim_matches('-');
    if trimmed.is_empty() {
        "topic".into()
    } else {
        trimmed.to_string()
    }
}

/// Writes the report of `runs` into `dir` (created if needed), scoring each topic
/// after a warm-up of `warmup` epochs: per topic `<slug>.csv`,
/// `<slug>-cumulative-error.svg` and `<slug>-weights.svg` (slugs made unique with
/// `-2`, `-3`, … if two topics collide), plus `summary.json`, `summary.txt` and
/// `README.md`. Existing files of the same names are overwritten.
pub fn write_report(
    dir: &Path,
    runs: &[TopicRun],
    warmup: u64,
) -> Result<ReportFiles, ReportError> {
    fs::create_dir_all(dir).map_err(|source| io_err(dir, source))?;
    let mut used = BTreeSet::new();
    let mut topics = Vec::with_capacity(runs.len());
    let mut summaries = Vec::with_capacity(runs.len());
    for run in runs {
        // Each piece sorts and checks the records itself (a few ms for 5000 epochs);
        // a duplicate epoch fails on the first.
        let summary = summarize(run, warmup)?;
        let base = slug(&run.name);
        let mut name = base.clone();
        let mut n = 2;
        while !used.insert(name.clone()) {
            name = format!("{base}-{n}");
            n += 1;
        }
        let files = TopicFiles {
            name: run.name.clone(),
            csv: dir.join(format!("{name}.csv")),
            cumulative_error_svg: dir.join(format!("{name}-cumulative-error.svg")),
            weights_svg: dir.join(format!("{name}-weights.svg")),
            slug: name,
        };

        let file = fs::File::create(&files.csv).map_err(|e| io_err(&files.csv, e))?;
        write_csv(BufWriter::new(file), run, warmup).map_err(|e| match e {
            ReportError::Write(source) => io_err(&files.csv, source),
            other => other,
        })?;
        write_file(
            &files.cumulative_error_svg,
            &cumulative_error_svg(run, warmup)?,
        )?;
        write_file(
            &files.weights_svg,
            &weights_svg(run, warmup, WEIGHT_SMOOTHING_WINDOW)?,
        )?;
        summaries.push(summary);
        topics.push(files);
    }

    let summary_json = dir.join("summary.json");
    let mut json = serde_json::to_string_pretty(&summaries)?;
    json.push('\n');
    write_file(&summary_json, &json)?;
    let summary_txt = dir.join("summary.txt");
    write_file(&summary_txt, &tables(&summaries))?;
    let readme = dir.join("README.md");
    write_file(&readme, &readme_text(&topics, &summaries, warmup))?;

    Ok(ReportFiles {
        dir: dir.to_path_buf(),
        summary_json,
        summary_txt,
        readme,
        topics,
        summaries,
    })
}

/// The tables of all topics separated by blank lines.
fn tables(summaries: &[TopicSummary]) -> String {
    summaries
        .iter()
        .map(render_table)
        .collect::<Vec<_>>()
        .join("\n")
}

fn io_err(path: &Path, source: std::io::Error) -> ReportError {
    ReportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn write_file(path: &Path, contents: &str) -> Result<(), ReportError> {
    fs::write(path, contents).map_err(|e| io_err(path, e))
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The README of the report directory.
fn readme_text(topics: &[TopicFiles], summaries: &[TopicSummary], warmup: u64) -> String {
    let (num, den) = BEST_WORKER_MIN_PARTICIPATION;
    let mut s = String::new();
    let _ = writeln!(s, "# Devnet report\n");
    let _ = writeln!(
        s,
        "Accuracy and rewards of each topic over the run. Scoring skips a warm-up of the first {warmup} epochs.\n"
    );
    let _ = writeln!(s, "## Files\n");
    let _ = writeln!(
        s,
        "- `summary.txt`: one table per topic (the one printed at the end of the run)."
    );
    let _ = writeln!(
        s,
        "- `summary.json`: the same as a JSON array, one object per topic \
         (`name, target, network_mse, naive_mse, average_mse, best_worker, best_worker_mse, \
         workers[{{name, model, mse, rewards, …}}]` and the comparison fields); \
         rewards are decimal strings of token base units; absent numbers are `null`."
    );
    for (t, sum) in topics.iter().zip(summaries) {
        let _ = writeln!(
            s,
            "- {} ({}, {} scored epochs):",
            t.name, sum.target, sum.scored_epochs
        );
        let _ = writeln!(
            s,
            "  - `{}`: one row per recorded epoch (warm-up included, `scored` = 1 after it).",
            file_name(&t.csv)
        );
        let _ = writeln!(
            s,
            "  - `{}`: cumulative squared error over the scored epochs.",
            file_name(&t.cumulative_error_svg)
        );
        let _ = writeln!(
            s,
            "  - `{}`: inferer weights over the run ({WEIGHT_SMOOTHING_WINDOW}-epoch trailing rolling mean).",
            file_name(&t.weights_svg)
        );
    }
    let _ = writeln!(s, "\n## Definitions\n");
    let lines = [
        format!(
            "**Scored epochs**: recorded epochs numbered at least (first recorded epoch + {warmup}) whose truth is finite. \
             Non-finite values (NaN, infinity) count as missing everywhere."
        ),
        "**MSE**: mean of squared errors (not their log) over the scored epochs in which the value exists: \
         each worker over the epochs it submitted in, the network combined and naive over the epochs they exist, \
         the equal-weight average (mean of the inferences present that epoch) over epochs with at least one inference."
            .into(),
        format!(
            "**Best worker**: lowest MSE among workers that submitted in at least {}% of the scored epochs \
             (marked `*` in the table when not eligible); ties go to the alphabetically first name. Skipping epochs could otherwise win.",
            num * 100 / den
        ),
        "**Comparisons** (`network_vs_best`, `network_vs_average`, `network_vs_naive`, per-worker `network_vs_worker`, \
         `network_beats_best_share`): computed only on the scored epochs where both sides exist, as network MSE / other MSE \
         (below 1: the network was more accurate). `network_beats_best_share` is the share of those epochs in which the network's \
         squared error was strictly lower."
            .into(),
        "**Rewards**: totals over the whole run, warm-up included, in base units (JSON, CSV) or whole tokens rounded down to 4 decimals (table)."
            .into(),
        "**Plots**: a line grows only in the epochs its value exists; a worker that skipped epochs is marked `(missed N)` in the legend. \
         Lines are thinned to at most 2000 points. In the weights plot, a worker without a weight in an epoch that has weights counts as 0; \
         epochs without weights are left out."
            .into(),
        "**CSV**: columns `epoch, time, truth, inference_<w>…, combined, naive, average, weight_<w>…, loss_<w>… (log10), loss_combined, loss_naive, \
         reward_<w>… (base units), checkpoint_height, scored`; empty cell = missing; RFC 4180 quoting."
            .into(),
    ];
    for l in lines {
        let _ = writeln!(s, "- {l}");
    }
    s
}

#[cfg(test)]
mod slug_tests {
    use super::*;

    #[test]
    fn slugs() {
        assert_eq!(slug("EUR/USD 1h range"), "eurusd-1h-range");
        assert_eq!(slug("  BTC -- close  "), "btc-close");
        assert_eq!(slug("a_b.c:d"), "a-b-c-d");
        assert_eq!(slug("///"), "topic");
        assert_eq!(slug("Ünïcode x"), "ncode-x");
    }
}
