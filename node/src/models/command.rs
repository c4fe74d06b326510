//! Command adapter: runs a local program per request and reads its answer from stdout.
//!
//! The program is started directly (no shell) with templated arguments (see [`Template`]:
//! `{TopicId}`, `{Epoch}`/`{BlockHeight}`, `{Timestamp}`, `{Token}`, configured params), stdin
//! closed, and the node's environment. Each argument is passed as one argv entry (a value with
//! spaces stays one argument), and the topic's token, the one value that comes from the
//! network, can never start with `-` (see [`super::template`]), so it cannot become an option. For an inference, the first non-empty line of stdout (trimmed) must be one
//! value in a form [`super::value`] accepts; for forecasts, the whole stdout is the JSON object.
//!
//! Limits: the run must finish within the timeout (the child is killed on timeout, on any error,
//! and when the future is dropped — `kill_on_drop`); stdout may not exceed the cap (default
//! 64 KiB); a non-zero exit is an error carrying the first line of stderr. Only the direct child
//! is killed: a program that leaves background processes holding stdout open runs into the
//! timeout.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

use super::template::{EpochContext, Template, TemplateError};
use super::value::{ValueError, parse_forecasts, parse_value};

/// Default timeout of one run.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_millis(2000);

/// Default stdout size cap (64 KiB).
pub const DEFAULT_MAX_STDOUT_BYTES: usize = 64 * 1024;

/// How much of stderr is kept for error messages (the rest is drained and dropped).
const STDERR_KEEP: usize = 4096;

/// A command run failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// An argument template is invalid.
    #[error("argument template: {0}")]
    Template(#[from] TemplateError),
    /// The program name is empty.
    #[error("empty program name")]
    EmptyProgram,
    /// The program could not be started.
    #[error("{program}: cannot start: {reason}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        reason: String,
    },
    /// The run did not finish in time (the child was killed).
    #[error("{program}: timed out after {after:?} (killed)")]
    Timeout {
        /// The program.
        program: String,
        /// The timeout.
        after: Duration,
    },
    /// The program exited unsuccessfully.
    #[error("{program}: exited with {status}: {stderr:?}")]
    Exit {
        /// The program.
        program: String,
        /// The exit status as text (`code 2`, `signal 9`).
        status: String,
        /// The first non-empty line of stderr.
        stderr: String,
    },
    /// stdout exceeded the cap (the child was killed).
    #[error("{program}: stdout larger than {limit} bytes (killed)")]
    StdoutTooLarge {
        /// The program.
        program: String,
        /// The cap.
        limit: usize,
    },
    /// Reading the pipes or waiting for the child failed.
    #[error("{program}: I/O error: {reason}")]
    Io {
        /// The program.
        program: String,
        /// Why.
        reason: String,
    },
    /// stdout is not a usable value.
    #[error("{program}: {source}")]
    Value {
        /// The program.
        program: String,
        /// What is wrong with stdout.
        #[source]
        source: ValueError,
    },
}

impl CommandError {
    /// A short stable label for metrics (`timeout`, `spawn`, `exit`, `stdout_too_large`,
    /// `not_a_number`, `non_finite`, …).
    pub fn reason(&self) -> &'static str {
        match self {
            CommandError::Template(TemplateError::NoToken) => "no_token",
            CommandError::Template(TemplateError::UnsafeToken(_)) => "unsafe_token",
            CommandError::Template(_) | CommandError::EmptyProgram => "invalid_command",
            CommandError::Spawn { .. } => "spawn",
            CommandError::Timeout { .. } => "timeout",
            CommandError::Exit { .. } => "exit",
            CommandError::StdoutTooLarge { .. } => "stdout_too_large",
            CommandError::Io { .. } => "io",
            CommandError::Value { source, .. } => source.reason(),
        }
    }
}

impl CommandError {
    /// Whether running the program again may succeed (a timeout, a failed exit, an I/O error,
    /// output that is not a number); a bad template, a program that cannot start or output
    /// over the cap will not change.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            CommandError::Timeout { .. }
                | CommandError::Exit { .. }
                | CommandError::Io { .. }
                | CommandError::Value { .. }
        )
    }
}

/// Options of a command model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOptions {
    /// Timeout of one run.
    pub timeout: Duration,
    /// stdout size cap in bytes.
    pub max_stdout_bytes: usize,
    /// Extra static placeholders for the argument templates.
    pub params: BTreeMap<String, String>,
}

impl Default for CommandOptions {
    fn default() -> Self {
        Self {
            timeout: DEFAULT_COMMAND_TIMEOUT,
            max_stdout_bytes: DEFAULT_MAX_STDOUT_BYTES,
            params: BTreeMap::new(),
        }
    }
}

/// A model (or forecaster) run as a local program.
#[derive(Debug, Clone)]
pub struct CommandModel {
    program: String,
    args: Vec<Template>,
    timeout: Duration,
    max_stdout_bytes: usize,
}

enum ReadError {
    TooLarge,
    Io(std::io::Error),
}

/// Reads all of `pipe`, failing once more than `cap` bytes arrive.
async fn read_capped<R: AsyncRead + Unpin>(mut pipe: R, cap: usize) -> Result<Vec<u8>, ReadError> {
    let mut out = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = pipe.read(&mut chunk).await.map_err(ReadError::Io)?;
        if n == 0 {
            return Ok(out);
        }
        if out.len() + n > cap {
            return Err(ReadError::TooLarge);
        }
        out.extend_from_slice(&chunk[..n]);
    }
}

/// Reads all of `pipe`, keeping the first `keep` bytes (so the child never blocks on it).
async fn drain_keep<R: AsyncRead + Unpin>(mut pipe: R, keep: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut chunk = [0u8; 8192];
    while let Ok(n) = pipe.read(&mut chunk).await {
        if n == 0 {
            break;
        }
        let room = keep.saturating_sub(out.len()).min(n);
        out.extend_from_slice(&chunk[..room]);
    }
    out
}

fn first_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
        .chars()
        .take(200)
        .collect()
}

impl CommandModel {
    /// A command running `program` with argument templates `args`.
    pub fn new(
        program: &str,
        args: &[String],
        options: &CommandOptions,
    ) -> Result<Self, CommandError> {
        if program.trim().is_empty() {
            return Err(CommandError::EmptyProgram);
        }
        let args = args
            .iter()
            .map(|a| Template::parse(a, &options.params))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            program: program.to_owned(),
            args,
            timeout: options.timeout,
            max_stdout_bytes: options.max_stdout_bytes,
        })
    }

    /// The program.
    pub fn program(&self) -> &str {
        &self.program
    }

    /// The arguments for `ctx` (fails when `{Token}` cannot be filled safely).
    pub fn args_for(&self, ctx: &EpochContext) -> Result<Vec<String>, CommandError> {
        Ok(self
            .args
            .iter()
            .map(|t| t.render(ctx))
            .collect::<Result<_, _>>()?)
    }

    /// Runs the program for `ctx` and returns its stdout (exit status 0 required).
    pub async fn run(&self, ctx: &EpochContext) -> Result<Vec<u8>, CommandError> {
        let program = self.program.clone();
        tracing::debug!(program = %program, epoch = ctx.epoch, "model command");
        let mut child = Command::new(&self.program)
            .args(self.args_for(ctx)?)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| CommandError::Spawn {
                program: program.clone(),
                reason: e.to_string(),
            })?;
        let io_error = |e: std::io::Error| CommandError::Io {
            program: program.clone(),
            reason: e.to_string(),
        };
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            let _ = child.start_kill();
            return Err(io_error(std::io::Error::other("pipes not available")));
        };
        let cap = self.max_stdout_bytes;
        let outcome = tokio::time::timeout(self.timeout, async {
            let out = async {
                read_capped(stdout, cap).await.map_err(|e| match e {
                    ReadError::TooLarge => CommandError::StdoutTooLarge {
                        program: program.clone(),
                        limit: cap,
                    },
                    ReadError::Io(e) => io_error(e),
                })
            };
            let err = async { Ok::<_, CommandError>(drain_keep(stderr, STDERR_KEEP).await) };
            let status = async { child.wait().await.map_err(io_error) };
            tokio::try_join!(out, err, status)
        })
        .await;
        let result = match outcome {
            Err(_) => Err(CommandError::Timeout {
                program: program.clone(),
                after: self.timeout,
            }),
            Ok(Err(e)) => Err(e),
            Ok(Ok((out, err, status))) => {
                if status.success() {
                    return Ok(out);
                }
                let status = match status.code() {
                    Some(code) => format!("code {code}"),
                    None => exit_signal(&status),
                };
                return Err(CommandError::Exit {
                    program,
                    status,
                    stderr: first_line(&err),
                });
            }
        };
        // Timeout or failure while running: make sure the child is gone and reaped.
        let _ = child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(1), child.wait()).await;
        result
    }

    /// The inference for `ctx`: the first non-empty stdout line, as one value.
    pub async fn infer(&self, ctx: &EpochContext) -> Result<f64, CommandError> {
        let out = self.run(ctx).await?;
        let line = first_line_bytes(&out);
        parse_value(line).map_err(|source| CommandError::Value {
            program: self.program.clone(),
            source,
        })
    }

    /// Forecasts for `ctx`: the whole stdout as a forecasts object.
    pub async fn forecast(
        &self,
        ctx: &EpochContext,
    ) -> Result<BTreeMap<String, f64>, CommandError> {
        let out = self.run(ctx).await?;
        parse_forecasts(&out).map_err(|source| CommandError::Value {
            program: self.program.clone(),
            source,
        })
    }
}

fn first_line_bytes(bytes: &[u8]) -> &[u8] {
    bytes
        .split(|&b| b == b'\n')
        .find(|l| l.iter().any(|b| !b.is_ascii_whitespace()))
        .unwrap_or(&[])
}

#[cfg(unix)]
fn exit_signal(status: &std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status.signal() {
        Some(sig) => format!("signal {sig}"),
        None => status.to_string(),
    }
}

#[cfg(not(unix))]
fn exit_signal(status: &std::process::ExitStatus) -> String {
    status.to_string()
}
