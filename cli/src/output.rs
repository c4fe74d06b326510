//! Printing results and errors, as text or as JSON (`--json`).

use chorus_node::api::client::ClientError;
use serde::Serialize;

use std::io::Write;

/// Whoever read stdout stopped (`chorus … | head`): not a failure, the command ends quietly
/// with exit code 0.
#[derive(Debug)]
pub struct StdoutClosed;

impl std::fmt::Display for StdoutClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stdout closed")
    }
}

impl std::error::Error for StdoutClosed {}

/// Writes `text` and a newline to stdout; a closed pipe is [`StdoutClosed`] (never a panic,
/// unlike `println!`).
pub fn line(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(StdoutClosed.into()),
        r => Ok(r?),
    }
}

/// `println!` that never panics: formats, writes with [`line`], and evaluates to its result.
macro_rules! outln {
    () => {
        $crate::output::line("")
    };
    ($($arg:tt)*) => {
        $crate::output::line(&format!($($arg)*))
    };
}
pub(crate) use outln;

/// Whether `err` is only a reader that went away ([`StdoutClosed`]): exit 0, print nothing.
pub fn is_stdout_closed(err: &anyhow::Error) -> bool {
    err.downcast_ref::<StdoutClosed>().is_some()
}

/// Marks an error caused by bad user input (exit code 2).
#[derive(Debug)]
pub struct BadInput(pub String);

impl std::fmt::Display for BadInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

/// Whether `err` is the user's fault (exit code 2): a [`BadInput`], or a node that refused the
/// request as malformed or unauthorized (400, 401, 413).
pub fn is_bad_input(err: &anyhow::Error) -> bool {
    err.downcast_ref::<BadInput>().is_some()
        || err
            .downcast_ref::<ClientError>()
            .is_some_and(ClientError::is_caller_fault)
}

/// Where results go.
pub struct Output {
    /// Print JSON instead of text.
    pub json: bool,
}

impl Output {
    /// Print a result: `text` for humans, `value` as JSON with `--json`.
    pub fn print<T: Serialize>(&self, text: &str, value: &T) -> anyhow::Result<()> {
        if self.json {
            line(&serde_json::to_string_pretty(value)?)
        } else {
            line(text)
        }
    }

    /// Print a node's answer document: `text` for humans, with `--json` the document as the
    /// node sends it (keys in the node's order: sorted).
    pub fn document<T: Serialize>(&self, text: &str, doc: &T) -> anyhow::Result<()> {
        self.print(text, &serde_json::to_value(doc)?)
    }

    /// Print an error as one line with its cause chain.
    pub fn error(&self, err: &anyhow::Error) {
        let line = err
            .chain()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(": ");
        if self.json {
            let v = serde_json::json!({ "error": line });
            eprintln!("{v}");
        } else {
            eprintln!("error: {line}");
        }
    }
}

/// A one-line progress bar with an ETA on stderr, redrawn in place at most every 200 ms:
/// `replay [##########··········]  2450/4998 epochs  49%  12.3 s  ETA 12.8 s`. Hidden (`show`
/// false) when stderr is not a terminal or the output is JSON.
pub struct Progress {
    label: &'static str,
    total: u64,
    unit: &'static str,
    show: bool,
    drawn: Option<std::time::Duration>,
}

impl Progress {
    /// A bar for `total` items of `unit`.
    pub fn new(label: &'static str, total: u64, unit: &'static str, show: bool) -> Self {
        Progress {
            label,
            total,
            unit,
            show,
            drawn: None,
        }
    }

    /// The bar's text after `done` items in `elapsed`.
    pub fn text(&self, done: u64, elapsed: std::time::Duration) -> String {
        const WIDTH: u64 = 20;
        let total = self.total.max(1);
        let done = done.min(total);
        let filled = (done * WIDTH / total) as usize;
        let bar = "#".repeat(filled) + &"·".repeat(WIDTH as usize - filled);
        let secs = elapsed.as_secs_f64();
        let eta = if done == 0 {
            "ETA ?".to_string()
        } else {
            format!("ETA {:.1} s", secs * (total - done) as f64 / done as f64)
        };
        format!(
            "{} [{bar}] {done:>6}/{total} {} {:>3}%  {secs:.1} s  {eta}",
            self.label,
            self.unit,
            done * 100 / total
        )
    }

    /// Redraw after `done` items (at most every 200 ms).
    pub fn set(&mut self, done: u64, elapsed: std::time::Duration) {
        if !self.show {
            return;
        }
        if self
            .drawn
            .is_some_and(|t| elapsed.saturating_sub(t) < std::time::Duration::from_millis(200))
        {
            return;
        }
        self.drawn = Some(elapsed);
        eprint!("\r{}", self.text(done, elapsed));
    }

    /// Draw the full bar and end its line.
    pub fn finish(&mut self, elapsed: std::time::Duration) {
        if self.show {
            eprintln!("\r{}", self.text(self.total, elapsed));
        }
    }
}

#[cfg(test)]
mod progress_tests {
    use super::Progress;
    use std::time::Duration;

    #[test]
    fn the_bar_shows_the_share_done_and_the_time_left() {
        let p = Progress::new("replay", 200, "epochs", false);
        assert_eq!(
            p.text(50, Duration::from_secs(10)),
            "replay [#####···············]     50/200 epochs  25%  10.0 s  ETA 30.0 s"
        );
        assert!(p.text(0, Duration::ZERO).ends_with("ETA ?"));
        assert!(
            p.text(500, Duration::from_secs(1))
                .contains("200/200 epochs 100%")
        );
    }
}
