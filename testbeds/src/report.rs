//! The outcome of a testbed command: named checks (each pass or fail with a detail), measured
//! numbers, notes; printed as text or as one JSON document; the exit code is 0 when every
//! check passed (or the run was skipped), 1 otherwise.
//!
//! ```json
//! {"scenario": "flood", "outcome": "pass", "seconds": 61.2,
//!  "checks": [{"name": "graylisted within 13 rejects", "pass": true, "detail": "…"}],
//!  "metrics": {"rejects_before_graylist_max": 9}, "notes": ["…"]}
//! ```

use std::process::ExitCode;
use std::time::Instant;

use serde_json::{Map, Value, json};

/// Exit code of a failed run.
pub const EXIT_FAIL: u8 = 1;

/// A run's checks, numbers and notes.
#[derive(Debug)]
pub struct Report {
    name: String,
    checks: Vec<(String, bool, String)>,
    metrics: Map<String, Value>,
    notes: Vec<String>,
    skipped: Option<String>,
    started: Instant,
}

impl Report {
    /// A new report for the command `name`.
    pub fn new(name: &str) -> Report {
        Report {
            name: name.into(),
            checks: vec![],
            metrics: Map::new(),
            notes: vec![],
            skipped: None,
            started: Instant::now(),
        }
    }

    /// Record a check.
    pub fn check(&mut self, name: &str, pass: bool, detail: impl Into<String>) -> bool {
        let detail = detail.into();
        tracing::info!(check = name, pass, %detail, "check");
        self.checks.push((name.into(), pass, detail));
        pass
    }

    /// Record a check that passes when `problems` is empty: its detail is `ok`, else the
    /// problems joined by `; `.
    pub fn check_none(&mut self, name: &str, problems: &[String], ok: impl Into<String>) -> bool {
        let detail = if problems.is_empty() {
            ok.into()
        } else {
            problems.join("; ")
        };
        self.check(name, problems.is_empty(), detail)
    }

    /// Record a number (or any JSON value).
    pub fn metric(&mut self, key: &str, value: impl Into<Value>) {
        self.metrics.insert(key.into(), value.into());
    }

    /// A recorded number.
    pub fn get_metric(&self, key: &str) -> Option<&Value> {
        self.metrics.get(key)
    }

    /// Record a note (a limitation, a skipped part).
    pub fn note(&mut self, note: impl Into<String>) {
        let n = note.into();
        tracing::info!(note = %n, "note");
        self.notes.push(n);
    }

    /// Mark the whole run as skipped (why).
    pub fn skip(&mut self, why: impl Into<String>) {
        self.skipped = Some(why.into());
    }

    /// Whether every check so far passed.
    pub fn passing(&self) -> bool {
        self.checks.iter().all(|(_, p, _)| *p)
    }

    /// The failed checks, as "name: detail".
    pub fn failures(&self) -> Vec<String> {
        self.checks
            .iter()
            .filter(|(_, p, _)| !*p)
            .map(|(n, _, d)| format!("{n}: {d}"))
            .collect()
    }

    /// "pass", "fail" or "skipped".
    pub fn outcome(&self) -> &'static str {
        if self.skipped.is_some() {
            "skipped"
        } else if self.passing() && !self.checks.is_empty() {
            "pass"
        } else {
            "fail"
        }
    }

    /// The JSON document.
    pub fn to_json(&self) -> Value {
        json!({
            "scenario": self.name,
            "outcome": self.outcome(),
            "skipped": self.skipped,
            "seconds": (self.started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
            "checks": self.checks.iter().map(|(n, p, d)| json!({"name": n, "pass": p, "detail": d})).collect::<Vec<_>>(),
            "metrics": self.metrics,
            "notes": self.notes,
        })
    }

    /// Run `body` into a fresh report named `name` and finish it ([`Report::finish_run`]).
    pub async fn run(
        name: &str,
        as_json: bool,
        body: impl AsyncFnOnce(&mut Report) -> anyhow::Result<()>,
    ) -> ExitCode {
        let mut report = Report::new(name);
        let result = body(&mut report).await;
        report.finish_run(result, as_json)
    }

    /// Finish a run: an error that ended it early is the failed check "run completed".
    pub fn finish_run(mut self, result: anyhow::Result<()>, as_json: bool) -> ExitCode {
        if let Err(e) = result {
            self.check("run completed", false, format!("{e:#}"));
        }
        self.finish(as_json)
    }

    /// Print (JSON or text) and give the exit code.
    pub fn finish(self, as_json: bool) -> ExitCode {
        if as_json {
            println!(
                "{}",
                serde_json::to_string_pretty(&self.to_json()).unwrap_or_default()
            );
        } else {
            println!(
                "{}: {} ({:.1} s)",
                self.name,
                self.outcome().to_uppercase(),
                self.started.elapsed().as_secs_f64()
            );
            if let Some(s) = &self.skipped {
                println!("  skipped: {s}");
            }
            for (n, p, d) in &self.checks {
                println!("  {} {n}: {d}", if *p { "ok  " } else { "FAIL" });
            }
            for (k, v) in &self.metrics {
                println!("  {k} = {v}");
            }
            for n in &self.notes {
                println!("  note: {n}");
            }
        }
        match self.outcome() {
            "fail" => ExitCode::from(EXIT_FAIL),
            _ => ExitCode::SUCCESS,
        }
    }
}

/// Percentile (0..=100) of unsorted samples (nearest rank); `None` if empty.
pub fn percentile(samples: &[f64], p: f64) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let mut v = samples.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v.get(rank.clamp(1, v.len()) - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_and_percentiles() {
        let mut r = Report::new("x");
        assert_eq!(r.outcome(), "fail", "no checks is no pass");
        r.check("a", true, "fine");
        assert_eq!(r.outcome(), "pass");
        r.check("b", false, "broken");
        assert_eq!(r.outcome(), "fail");
        r.skip("no root");
        assert_eq!(r.outcome(), "skipped");
        let s: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&s, 50.0), Some(50.0));
        assert_eq!(percentile(&s, 99.0), Some(99.0));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
