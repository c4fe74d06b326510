//! Per-epoch CSV of a topic (RFC 4180: comma-separated, `\r\n`-free `\n` line ends,
//! fields quoted when they hold a comma, a quote or a line break).
//!
//! Columns, in order (`<w>` for every worker of [`TopicRun::roster`]):
//! `epoch, time, truth, inference_<w>…, combined, naive, average, weight_<w>…,
//! loss_<w>…, loss_<other>…, loss_combined, loss_naive, reward_<w>…,
//! checkpoint_height, scored`.
//!
//! - Empty cell: missing value. Floats use the shortest text that parses back to the
//!   same `f64`; recorded non-finite values are written as `NaN`, `inf`, `-inf`.
//! - `average` is the equal-weight average of the finite inferences of the epoch.
//! - `loss_<other>` are loss keys that are neither a worker nor `combined`/`naive`
//!   (e.g. forecasters), so nothing recorded is dropped.
//! - `scored` is `1` for the epochs the summary scores (after the warm-up, finite
//!   truth), `0` otherwise, so the summary's MSEs can be recomputed from the file.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::Write;

use super::ReportError;
use super::model::{Prepared, TopicRun};

/// Writes the per-epoch CSV of `run` (all recorded epochs, sorted by epoch) to `out`,
/// marking as scored the epochs after a warm-up of `warmup` epochs.
pub fn write_csv<W: Write>(mut out: W, run: &TopicRun, warmup: u64) -> Result<(), ReportError> {
    let p = &Prepared::new(run, warmup)?;
    let names: Vec<&str> = p.roster.iter().map(|w| w.name.as_str()).collect();
    let roster: BTreeSet<&str> = names.iter().copied().collect();
    let other_losses: Vec<&str> = p
        .records
        .iter()
        .flat_map(|r| r.losses.keys())
        .map(String::as_str)
        .filter(|k| !roster.contains(k) && *k != "combined" && *k != "naive")
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();

    let mut line = String::with_capacity(64 + names.len() * 96);
    let mut header: Vec<String> = vec!["epoch".into(), "time".into(), "truth".into()];
    header.extend(names.iter().map(|w| format!("inference_{w}")));
    header.extend(["combined", "naive", "average"].map(String::from));
    header.extend(names.iter().map(|w| format!("weight_{w}")));
    header.extend(names.iter().map(|w| format!("loss_{w}")));
    header.extend(other_losses.iter().map(|w| format!("loss_{w}")));
    header.extend(["loss_combined", "loss_naive"].map(String::from));
    header.extend(names.iter().map(|w| format!("reward_{w}")));
    header.extend(["checkpoint_height", "scored"].map(String::from));
    for (i, h) in header.iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        push_field(&mut line, h);
    }
    line.push('\n');
    out.write_all(line.as_bytes())?;

    for r in &p.records {
        line.clear();
        let _ = write!(line, "{}", r.epoch);
        line.push(',');
        if let Some(t) = &r.time {
            push_field(&mut line, t);
        }
        push_float(&mut line, Some(r.truth));
        for w in &names {
            push_float(&mut line, r.inferences.get(*w).copied());
        }
        push_float(&mut line, r.combined);
        push_float(&mut line, r.naive);
        push_float(&mut line, r.average());
        for w in &names {
            push_float(&mut line, r.weights.get(*w).copied());
        }
        for w in names.iter().chain(&other_losses) {
            push_float(&mut line, r.losses.get(*w).copied());
        }
        push_float(&mut line, r.losses.get("combined").copied());
        push_float(&mut line, r.losses.get("naive").copied());
        for w in &names {
            line.push(',');
            if let Some(v) = r.rewards.get(*w) {
                let _ = write!(line, "{v}");
            }
        }
        line.push(',');
        if let Some(h) = r.checkpoint_height {
            let _ = write!(line, "{h}");
        }
        let scored = p.after_warmup(r) && r.truth_value().is_some();
        line.push_str(if scored { ",1\n" } else { ",0\n" });
        out.write_all(line.as_bytes())?;
    }
    out.flush()?;
    Ok(())
}

/// Appends `,` and the float (shortest round-trip form), or just `,` if absent.
fn push_float(line: &mut String, v: Option<f64>) {
    line.push(',');
    if let Some(v) = v {
        let _ = write!(line, "{v}");
    }
}

/// Appends a field, quoted if it holds a comma, a quote or a line break.
fn push_field(line: &mut String, s: &str) {
    if s.contains([',', '"', '\n', '\r']) {
        line.push('"');
        line.push_str(&s.replace('"', "\"\""));
        line.push('"');
    } else {
        line.push_str(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_when_needed() {
        let mut s = String::new();
        push_field(&mut s, "plain");
        s.push(',');
        push_field(&mut s, "a,b");
        s.push(',');
        push_field(&mut s, "say \"hi\"\nbye");
        assert_eq!(s, "plain,\"a,b\",\"say \"\"hi\"\"\nbye\"");
    }
}
