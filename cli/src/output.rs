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
