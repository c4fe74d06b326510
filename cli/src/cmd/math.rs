//! `chorus synth` and `chorus settle`: the Allora math on one epoch, JSON in, JSON out.

use crate::output::outln;
use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use chorus_protocol::math::settle_io::settle_json;
use chorus_protocol::math::synth_io::{SynthJsonOptions, synth_json_with};
use clap::Args;

use crate::output::BadInput;

/// Where the JSON comes from.
#[derive(Debug, Args)]
pub struct InputArgs {
    /// Read the input from this file instead of standard input.
    #[arg(long, short)]
    input: Option<PathBuf>,
}

impl InputArgs {
    fn read(&self) -> anyhow::Result<String> {
        match &self.input {
            Some(p) => {
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))
            }
            None => {
                let mut s = String::new();
                std::io::stdin()
                    .read_to_string(&mut s)
                    .context("reading standard input")?;
                Ok(s)
            }
        }
    }
}

/// `chorus synth` flags.
#[derive(Debug, Args)]
pub struct SynthArgs {
    #[command(flatten)]
    input: InputArgs,
    /// Also print `confidence_interval_values` (percentiles 2.28, 15.87, 50, 84.13, 97.72 of the
    /// weight-accumulated distribution of the inferences).
    #[arg(long)]
    confidence_interval: bool,
}

/// Network inference of one epoch: input format in `docs/settle.md`'s sibling, README §synth.
pub fn synth(args: SynthArgs) -> anyhow::Result<()> {
    let text = args.input.read()?;
    let out = synth_json_with(
        &text,
        SynthJsonOptions {
            confidence_interval: args.confidence_interval,
        },
    )
    .map_err(|e| BadInput(e.to_string()))?;
    outln!("{out}")?;
    Ok(())
}

/// The post-ground-truth stage of one epoch (format: `docs/settle.md`).
pub fn settle(args: InputArgs) -> anyhow::Result<()> {
    let text = args.read()?;
    let out = settle_json(&text).map_err(|e| BadInput(e.to_string()))?;
    outln!("{out}")?;
    Ok(())
}
