//! Printing results and errors, as text or as JSON (`--json`).

use serde::Serialize;

/// Marks an error caused by bad user input (exit code 2).
#[derive(Debug)]
pub struct BadInput(pub String);

impl std::fmt::Display for BadInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

/// Where results go.
pub struct Output {
    /// Print JSON instead of text.
    pub json: bool,
}

impl Output {
    /// Print a result: `text` for humans, `value` as JSON with `--json`.
    pub fn print<T: Serialize>(&self, text: &str, value: &T) -> anyhow::Result<()> {
        if self.json {
            println!("{}", serde_json::to_string_pretty(value)?);
        } else {
            println!("{text}");
        }
        Ok(())
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
