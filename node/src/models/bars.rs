//! Price bars, CSV loading and prediction targets.
//!
//! A [`Bars`] series is a validated list of [`Bar`]s. A [`Target`] says what a topic predicts;
//! the value to predict at epoch `t` always comes from the **next** bar, `t + 1`:
//!
//! | target | truth of epoch `t` |
//! |---|---|
//! | [`Target::Range`] | `ln(high / low)` of bar `t + 1` |
//! | [`Target::Close`] | `close` of bar `t + 1` |
//! | [`Target::Return`] | `ln(close[t + 1] / close[t])` |

use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// One price bar. Prices are finite and positive; `high >= low`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bar {
    /// The bar's time as written in the source (zone-less; see [`parse_time`]).
    pub time: Option<String>,
    /// Opening price.
    pub open: f64,
    /// Highest price.
    pub high: f64,
    /// Lowest price.
    pub low: f64,
    /// Closing price.
    pub close: f64,
}

impl Bar {
    /// A bar with no time.
    pub fn new(open: f64, high: f64, low: f64, close: f64) -> Self {
        Self {
            time: None,
            open,
            high,
            low,
            close,
        }
    }

    /// The same bar with a time string.
    pub fn with_time(mut self, time: impl Into<String>) -> Self {
        self.time = Some(time.into());
        self
    }

    /// `ln(high / low)`, or `None` when not finite (e.g. a non-positive low).
    pub fn range(&self) -> Option<f64> {
        finite((self.high / self.low).ln())
    }

    /// The bar's time in seconds since 1970-01-01 00:00 (zone ignored), if it parses.
    pub fn timestamp(&self) -> Option<i64> {
        self.time.as_deref().and_then(parse_time)
    }
}

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

/// `ln(close / prev_close)`, or `None` when not finite.
pub fn log_return(prev_close: f64, close: f64) -> Option<f64> {
    finite((close / prev_close).ln())
}

/// What a topic predicts about the next bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// The next bar's `ln(high / low)` (a volatility proxy).
    Range,
    /// The next bar's close price.
    Close,
    /// The next bar's log return `ln(close[t + 1] / close[t])`.
    Return,
}

impl Target {
    /// All targets.
    pub const ALL: [Target; 3] = [Target::Range, Target::Close, Target::Return];

    /// The stable lower-case name (`range`, `close`, `return`).
    pub fn as_str(self) -> &'static str {
        match self {
            Target::Range => "range",
            Target::Close => "close",
            Target::Return => "return",
        }
    }

    /// The value of this target *for a bar itself* (`prev` is the bar before it, needed by
    /// [`Target::Return`]). `None` when undefined (no previous bar) or not finite.
    pub fn bar_value(self, bar: &Bar, prev: Option<&Bar>) -> Option<f64> {
        match self {
            Target::Range => bar.range(),
            Target::Close => finite(bar.close),
            Target::Return => prev.and_then(|p| log_return(p.close, bar.close)),
        }
    }

    /// The truth of epoch `epoch`: the target value of bar `epoch + 1` of `bars`.
    /// `None` when that bar does not exist (yet).
    pub fn truth(self, bars: &[Bar], epoch: usize) -> Option<f64> {
        let next = epoch.checked_add(1)?;
        let bar = bars.get(next)?;
        self.bar_value(bar, bars.get(epoch))
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a bar series could not be loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum BarsError {
    /// The file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The CSV structure is broken (bad quoting, wrong number of fields, invalid UTF-8…).
    #[error("CSV line {line}: {reason}")]
    Csv {
        /// 1-based line number (0 when unknown).
        line: u64,
        /// What is wrong.
        reason: String,
    },
    /// The file has no header row.
    #[error("CSV has no header row")]
    NoHeader,
    /// A required column is missing from the header.
    #[error("CSV header has no `{column}` column (header: {header})")]
    MissingColumn {
        /// The column.
        column: &'static str,
        /// The header as read.
        header: String,
    },
    /// The header names a column twice.
    #[error("CSV header names `{column}` twice")]
    DuplicateColumn {
        /// The column.
        column: String,
    },
    /// A field is not a usable number.
    #[error("CSV line {line}, column `{column}`: {reason}")]
    Field {
        /// 1-based line number.
        line: u64,
        /// The column.
        column: &'static str,
        /// What is wrong (quoted value included).
        reason: String,
    },
    /// A bar's prices are inconsistent.
    #[error("CSV line {line}: {reason}")]
    Inconsistent {
        /// 1-based line number (for bars not from a CSV: the bar index + 2).
        line: u64,
        /// What is wrong.
        reason: String,
    },
    /// The series has no bars.
    #[error("the series has no bars")]
    Empty,
    /// The target needs columns the series does not have.
    #[error("target `{target}` needs the `high` and `low` columns, which the series lacks")]
    TargetUnavailable {
        /// The target.
        target: Target,
    },
}

/// A validated series of bars.
#[derive(Debug, Clone, PartialEq)]
pub struct Bars {
    bars: Vec<Bar>,
    has_high_low: bool,
}

impl Bars {
    /// Validates bars built in code (all have real high/low). Errors name `line = index + 2` as if
    /// the bars came from a CSV with a header.
    pub fn from_bars(bars: Vec<Bar>) -> Result<Self, BarsError> {
        if bars.is_empty() {
            return Err(BarsError::Empty);
        }
        for (i, bar) in bars.iter().enumerate() {
            validate_bar(bar, i as u64 + 2)?;
        }
        Ok(Self {
            bars,
            has_high_low: true,
        })
    }

    /// Loads a CSV file (see [`Bars::from_csv_reader`] for the format).
    pub fn load_csv(path: impl AsRef<Path>) -> Result<Self, BarsError> {
        let path = path.as_ref();
        let file = std::fs::File::open(path).map_err(|source| BarsError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_csv_reader(std::io::BufReader::new(file))
    }

    /// Parses CSV text (see [`Bars::from_csv_reader`]).
    pub fn from_csv_str(text: &str) -> Result<Self, BarsError> {
        Self::from_csv_reader(text.as_bytes())
    }

    /// Parses CSV with a header row. Columns are matched case-insensitively and may come in any
    /// order; unknown columns (e.g. `volume`) are ignored:
    ///
    /// - `close` — required;
    /// - `open` — optional (missing: the previous close, or the close for the first bar);
    /// - `high`, `low` — optional, both or neither; needed for [`Target::Range`] (missing: the
    ///   larger / smaller of open and close);
    /// - `time`, `date`, `datetime` or `timestamp` — optional, kept as written.
    ///
    /// Prices must be finite and positive, and `high >= low`; blank lines are skipped.
    pub fn from_csv_reader<R: Read>(reader: R) -> Result<Self, BarsError> {
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(true)
            .trim(csv::Trim::All)
            .from_reader(reader);
        let header = rdr.headers().map_err(csv_error)?.clone();
        if header.is_empty() || header.iter().all(str::is_empty) {
            return Err(BarsError::NoHeader);
        }
        let cols = Columns::from_header(&header)?;

        let mut bars = Vec::new();
        let mut record = csv::StringRecord::new();
        loop {
            match rdr.read_record(&mut record) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => return Err(csv_error(e)),
            }
            let line = record.position().map_or(0, |p| p.line());
            if record.iter().all(str::is_empty) {
                continue;
            }
            let close = field(&record, cols.close, "close", line)?;
            let open = match cols.open {
                Some(i) => field(&record, i, "open", line)?,
                None => bars.last().map_or(close, |b: &Bar| b.close),
            };
            let (high, low) = match (cols.high, cols.low) {
                (Some(h), Some(l)) => (
                    field(&record, h, "high", line)?,
                    field(&record, l, "low", line)?,
                ),
                _ => (open.max(close), open.min(close)),
            };
            let time = cols
                .time
                .and_then(|i| record.get(i))
                .filter(|s| !s.is_empty())
                .map(str::to_owned);
            let bar = Bar {
                time,
                open,
                high,
                low,
                close,
            };
            validate_bar(&bar, line)?;
            bars.push(bar);
        }
        if bars.is_empty() {
            return Err(BarsError::Empty);
        }
        Ok(Self {
            bars,
            has_high_low: cols.high.is_some() && cols.low.is_some(),
        })
    }

    /// The bars.
    pub fn as_slice(&self) -> &[Bar] {
        &self.bars
    }

    /// Number of bars.
    pub fn len(&self) -> usize {
        self.bars.len()
    }

    /// Always false for a validated series (kept for API symmetry).
    pub fn is_empty(&self) -> bool {
        self.bars.is_empty()
    }

    /// Bar `i`.
    pub fn get(&self, i: usize) -> Option<&Bar> {
        self.bars.get(i)
    }

    /// Whether real `high`/`low` values were supplied.
    pub fn has_high_low(&self) -> bool {
        self.has_high_low
    }

    /// Checks that `target` can be computed from this series.
    pub fn check_target(&self, target: Target) -> Result<(), BarsError> {
        if target == Target::Range && !self.has_high_low {
            return Err(BarsError::TargetUnavailable { target });
        }
        Ok(())
    }

    /// The truth of epoch `epoch` (target value of bar `epoch + 1`); `None` past the end.
    pub fn truth(&self, target: Target, epoch: usize) -> Option<f64> {
        target.truth(&self.bars, epoch)
    }

    /// The truths of all epochs `0..len` (the last is always `None`).
    pub fn truths(&self, target: Target) -> Vec<Option<f64>> {
        (0..self.bars.len())
            .map(|t| target.truth(&self.bars, t))
            .collect()
    }

    /// The series cut after bar `last` (bars `0..=last`); the whole series if `last` is past
    /// the end.
    pub fn cut(&self, last: usize) -> Bars {
        let end = last.saturating_add(1).min(self.bars.len());
        Bars {
            bars: self.bars[..end].to_vec(),
            has_high_low: self.has_high_low,
        }
    }
}

struct Columns {
    close: usize,
    open: Option<usize>,
    high: Option<usize>,
    low: Option<usize>,
    time: Option<usize>,
}

impl Columns {
    fn from_header(header: &csv::StringRecord) -> Result<Self, BarsError> {
        let mut close = None;
        let mut open = None;
        let mut high = None;
        let mut low = None;
        let mut time = None;
        for (i, raw) in header.iter().enumerate() {
            let name = raw
                .trim_start_matches('\u{feff}')
                .trim()
                .to_ascii_lowercase();
            let slot = match name.as_str() {
                "close" => &mut close,
                "open" => &mut open,
                "high" => &mut high,
                "low" => &mut low,
                "time" | "date" | "datetime" | "timestamp" => &mut time,
                _ => continue,
            };
            if slot.replace(i).is_some() {
                return Err(BarsError::DuplicateColumn { column: name });
            }
        }
        let missing = |column| BarsError::MissingColumn {
            column,
            header: header.iter().collect::<Vec<_>>().join(","),
        };
        let close = close.ok_or_else(|| missing("close"))?;
        match (high, low) {
            (Some(_), None) => return Err(missing("low")),
            (None, Some(_)) => return Err(missing("high")),
            _ => {}
        }
        Ok(Self {
            close,
            open,
            high,
            low,
            time,
        })
    }
}

fn csv_error(e: csv::Error) -> BarsError {
    let line = e.position().map_or(0, |p| p.line());
    let reason = match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("expected {expected_len} fields, found {len}"),
        csv::ErrorKind::Utf8 { err, .. } => format!("invalid UTF-8: {err}"),
        _ => e.to_string(),
    };
    BarsError::Csv { line, reason }
}

fn field(
    record: &csv::StringRecord,
    i: usize,
    column: &'static str,
    line: u64,
) -> Result<f64, BarsError> {
    let raw = record.get(i).unwrap_or("");
    if raw.is_empty() {
        return Err(BarsError::Field {
            line,
            column,
            reason: "empty value".into(),
        });
    }
    let value: f64 = raw.parse().map_err(|_| BarsError::Field {
        line,
        column,
        reason: format!("not a number: {raw:?}"),
    })?;
    if !value.is_finite() {
        return Err(BarsError::Field {
            line,
            column,
            reason: format!("not finite: {raw:?}"),
        });
    }
    if value <= 0.0 {
        return Err(BarsError::Field {
            line,
            column,
            reason: format!("not positive: {raw:?}"),
        });
    }
    Ok(value)
}

fn validate_bar(bar: &Bar, line: u64) -> Result<(), BarsError> {
    for (name, v) in [
        ("open", bar.open),
        ("high", bar.high),
        ("low", bar.low),
        ("close", bar.close),
    ] {
        if !(v.is_finite() && v > 0.0) {
            return Err(BarsError::Inconsistent {
                line,
                reason: format!("{name} must be finite and positive, got {v}"),
            });
        }
    }
    if bar.high < bar.low {
        return Err(BarsError::Inconsistent {
            line,
            reason: format!("high {} is below low {}", bar.high, bar.low),
        });
    }
    Ok(())
}

/// Parses a bar time into seconds since 1970-01-01 00:00, ignoring any zone suffix (the shipped
/// data carries none). Accepted: `YYYY-MM-DD`, `YYYY-MM`, `YYYY-MM-DD HH:MM[:SS[.fff]]`, the
/// same with `T` as separator and an optional `Z`/`±hh:mm` suffix (ignored), and a plain integer
/// of Unix seconds. Returns `None` for anything else.
pub fn parse_time(s: &str) -> Option<i64> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && s.len() != 4 {
        return s.parse().ok();
    }
    let (date, clock) = match s.find([' ', 'T']) {
        Some(i) => (&s[..i], Some(s[i + 1..].trim())),
        None => (s, None),
    };
    let mut parts = date.split('-');
    let year: i64 = parse_digits(parts.next()?, 4)?;
    let month: i64 = parse_digits(parts.next()?, 2)?;
    let day: i64 = match parts.next() {
        Some(d) => parse_digits(d, 2)?,
        None => 1,
    };
    if parts.next().is_some() || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let mut secs = days_from_civil(year, month, day) * 86_400;
    if let Some(clock) = clock {
        let clock = clock.trim_end_matches('Z');
        // Drop a `+hh:mm` / `-hh:mm` zone suffix (a '-' cannot occur in the clock itself).
        let clock = clock.split(['+', '-']).next().unwrap_or(clock);
        let mut hms = clock.split(':');
        let h: i64 = parse_digits(hms.next()?, 2)?;
        let m: i64 = parse_digits(hms.next()?, 2)?;
        let sec: i64 = match hms.next() {
            Some(x) => parse_digits(x.split('.').next().unwrap_or(x), 2)?,
            None => 0,
        };
        if hms.next().is_some() || h > 23 || m > 59 || sec > 60 {
            return None;
        }
        secs += h * 3600 + m * 60 + sec;
    }
    Some(secs)
}

fn parse_digits(s: &str, len: usize) -> Option<i64> {
    (s.len() == len && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
pub(crate) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The `YYYY-MM-DD HH:MM:SS` text of a time in seconds since 1970-01-01 00:00.
pub fn format_time(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_parsing_round_trips() {
        for s in [
            "1970-01-01 00:00:00",
            "2017-04-19 09:00:00",
            "2000-02-29 23:59:59",
            "2018-02-07 15:00:00",
        ] {
            assert_eq!(format_time(parse_time(s).unwrap()), s);
        }
        assert_eq!(
            parse_time("2017-04-19T09:00:00Z"),
            parse_time("2017-04-19 09:00")
        );
        assert_eq!(
            parse_time("2017-04-19T09:00:00+02:00"),
            parse_time("2017-04-19 09:00")
        );
        assert_eq!(
            parse_time("2012-01-31"),
            Some(days_from_civil(2012, 1, 31) * 86_400)
        );
        assert_eq!(parse_time("2012-01"), parse_time("2012-01-01"));
        assert_eq!(parse_time("1492592400"), Some(1_492_592_400));
        assert_eq!(parse_time("2017-13-01"), None);
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(parse_time("2017-04-19 25:00"), None);
    }
}
