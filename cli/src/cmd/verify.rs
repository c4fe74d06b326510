//! `chorus infer proof` (fetch a proof from a node) and `chorus infer verify` (check one
//! offline, trusting only a genesis file or one checkpoint id; `chorus_crdt::proof`).

use std::path::{Path, PathBuf};

use anyhow::Context;
use chorus_crdt::ledger::Ledger;
use chorus_crdt::proof::{self, InferenceProof, ProofError, Trust, Variant};
use chorus_node::api::client::NodeClient;
use chorus_protocol::genesis::Genesis;
use chorus_protocol::ids::Hash32;
use clap::Args;
use serde::Serialize;

use crate::output::{BadInput, Output};

/// Arguments of `chorus infer verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The proof (a file written by `chorus infer proof`, or `-` for stdin).
    pub file: PathBuf,
    /// Trust the network's genesis file: its validators and network id.
    #[arg(long, value_name = "FILE", conflicts_with = "trusted_checkpoint")]
    pub genesis: Option<PathBuf>,
    /// Trust one checkpoint: `HEIGHT:ID` (the id in hex, as `GET /v1/checkpoints/latest`
    /// shows it).
    #[arg(long, value_name = "HEIGHT:ID", value_parser = parse_trusted)]
    pub trusted_checkpoint: Option<(u64, Hash32)>,
}

fn parse_trusted(s: &str) -> Result<(u64, Hash32), String> {
    let (h, id) = s
        .split_once(':')
        .ok_or_else(|| "expected HEIGHT:ID".to_owned())?;
    let height = h
        .parse()
        .map_err(|e| format!("height {h:?}: {e} (expected HEIGHT:ID)"))?;
    let id = id
        .parse()
        .map_err(|e| format!("checkpoint id: {e} (expected 64 hex digits)"))?;
    Ok((height, id))
}

/// `chorus infer proof TOPIC [--epoch E] [--trusted H] [--variant V] [--out FILE]`.
pub async fn fetch(
    node: &NodeClient,
    (topic, epoch, trusted, variant): (u64, Option<u64>, Option<u64>, Variant),
    file: Option<&Path>,
    out: &Output,
) -> anyhow::Result<()> {
    let mut path = format!(
        "/v1/topics/{topic}/inference?proof=true&variant={}",
        variant.name()
    );
    if let Some(e) = epoch {
        path.push_str(&format!("&epoch={e}"));
    }
    if let Some(h) = trusted {
        path.push_str(&format!("&trusted={h}"));
    }
    let proof: InferenceProof = node.get(&path).await?;
    let text = serde_json::to_string_pretty(&proof)?;
    match file {
        None => crate::output::line(&text),
        Some(f) => {
            std::fs::write(f, format!("{text}\n"))
                .with_context(|| format!("writing {}", f.display()))?;
            out.print(
                &format!(
                    "wrote the proof of topic {topic}, epoch {} ({} bytes) to {}",
                    proof.epoch,
                    text.len() + 1,
                    f.display()
                ),
                &serde_json::json!({ "file": f, "epoch": proof.epoch, "bytes": text.len() + 1 }),
            )
        }
    }
}

/// What `chorus infer verify --json` prints.
#[derive(Serialize)]
struct Verdict {
    verified: bool,
    topic_id: u64,
    epoch: u64,
    variant: &'static str,
    combined_value: f64,
    checkpoint_height: u64,
    checkpoint_id: Hash32,
    signed_power: u64,
    total_power: u64,
    validator_changes: usize,
}

/// The trust anchor of the arguments.
fn trust(args: &VerifyArgs) -> anyhow::Result<Trust> {
    if let Some((height, id)) = args.trusted_checkpoint {
        return Ok(Trust::Checkpoint { height, id });
    }
    let path = args
        .genesis
        .as_ref()
        .ok_or_else(|| BadInput("give --genesis FILE or --trusted-checkpoint HEIGHT:ID".into()))?;
    let text = std::fs::read_to_string(path)
        .map_err(|e| BadInput(format!("reading {}: {e}", path.display())))?;
    let genesis =
        Genesis::from_toml_str(&text).map_err(|e| BadInput(format!("{}: {e}", path.display())))?;
    let ledger =
        Ledger::from_genesis(&genesis).map_err(|e| BadInput(format!("{}: {e}", path.display())))?;
    let validators = chorus_crdt::replica::validator_set(&ledger)
        .map_err(|e| BadInput(format!("{}: {e}", path.display())))?;
    Ok(Trust::Genesis {
        network: genesis.network_id(),
        validators,
    })
}

/// `chorus infer verify FILE (--genesis G | --trusted-checkpoint H:ID)`.
pub fn verify(args: &VerifyArgs, out: &Output) -> anyhow::Result<()> {
    let trust = trust(args)?;
    let text = if args.file == Path::new("-") {
        std::io::read_to_string(std::io::stdin())
            .map_err(|e| BadInput(format!("reading stdin: {e}")))?
    } else {
        std::fs::read_to_string(&args.file)
            .map_err(|e| BadInput(format!("reading {}: {e}", args.file.display())))?
    };
    let doc: InferenceProof = serde_json::from_str(&text).map_err(|e| {
        BadInput(format!(
            "{}: not a proof document: {e}",
            args.file.display()
        ))
    })?;
    let v = match proof::verify(&doc, &trust) {
        Ok(v) => v,
        Err(e @ ProofError::Malformed(_)) => return Err(BadInput(e.to_string()).into()),
        Err(e) => anyhow::bail!("the proof does NOT verify: {e}"),
    };
    let signed = if v.total_power == 0 {
        "the trusted checkpoint itself".to_owned()
    } else {
        format!(
            "{} of {} voting power ({:.1}%)",
            v.signed_power,
            v.total_power,
            100.0 * v.signed_power as f64 / v.total_power as f64
        )
    };
    let text = format!(
        "verified: topic {}, epoch {} ({} inference)\n\
         combined value     {}\n\
         checkpoint         {} (id {})\n\
         signed by          {signed}\n\
         validator changes  {} followed",
        v.topic.0,
        v.epoch,
        v.variant.name(),
        v.bundle.combined_value,
        v.height,
        v.checkpoint.0,
        v.changes,
    );
    out.print(
        &text,
        &Verdict {
            verified: true,
            topic_id: v.topic.0,
            epoch: v.epoch,
            variant: v.variant.name(),
            combined_value: v.bundle.combined_value,
            checkpoint_height: v.height,
            checkpoint_id: v.checkpoint.0,
            signed_power: v.signed_power,
            total_power: v.total_power,
            validator_changes: v.changes,
        },
    )
}
