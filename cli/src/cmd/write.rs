//! Write commands: build a ledger message, sign it, submit it to the node.
//!
//! Steps: admin token (`--token`, `CHORUS_ADMIN_TOKEN` or `--token-file`) and key file first
//! (bad input fails before any network traffic) → `GET /v1/status` for the network id →
//! `GET /v1/accounts/{me}` for `next_nonce` unless `--nonce` is given (an account the node has
//! never seen starts at nonce 1) → `Envelope::seal` → `POST /v1/submit`. A refusal by the
//! node (`accepted: false`) is an error (exit code 1) carrying the node's reason.
//!
//! With `--wait` the command subscribes to the node's ledger events (`/v1/events`) before
//! submitting and waits for the checkpoint that applies or refuses the message: a refusal by
//! the ledger (e.g. "insufficient balance") is then an error too, with the ledger's reason.

use crate::output::outln;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, anyhow};
use chorus_node::api::client::{EventStream, NodeClient};
use chorus_node::api::types::{Account, Status, SubmitResult};
use chorus_protocol::envelope::Envelope;
use chorus_protocol::ids::{Amount, Hash32, NetworkId, TopicId};
use chorus_protocol::keyfile::read_key_file;
use chorus_protocol::keys::{Keypair, PublicKey};
use chorus_protocol::messages::{
    BondChange, CreateTopic, FundTopic, GovernanceProposal, GovernanceVote, Payload, Registration,
    Role, SetOwner, StakeChange, Transfer, VoteOption,
};
use chorus_protocol::params::ModuleParams;
use chorus_protocol::topic::TopicSpec;
use serde_json::Value;

use super::api::{RoleArg, StakeArgs, TxArgs, client, non_empty};
use crate::output::{BadInput, Output};

/// The first nonce of an account: the ledger accepts a nonce above the last one applied,
/// which starts at 0.
const FIRST_NONCE: u64 = 1;

/// What was submitted.
struct Submitted {
    kind: &'static str,
    nonce: u64,
    author: PublicKey,
    answer: SubmitResult,
    /// With `--wait`: what the ledger did.
    ledger: Option<LedgerVerdict>,
}

/// What a checkpoint did with a message.
#[derive(Debug, Clone, PartialEq, Eq)]
enum LedgerVerdict {
    /// Applied at this height.
    Applied { height: u64 },
    /// Refused at this height, for this reason.
    Refused { height: u64, reason: String },
}

/// The ledger's verdict on message `id` from a `/v1/events?kinds=applied,refused` stream.
async fn verdict(
    stream: &mut EventStream,
    id: &Hash32,
    timeout: Duration,
) -> anyhow::Result<LedgerVerdict> {
    let wait = async {
        loop {
            let Some(event) = stream.next().await? else {
                return Err(anyhow!("the node ended the event stream"));
            };
            if event.event != "checkpoint" {
                continue;
            }
            let data: Value = serde_json::from_str(&event.data)
                .map_err(|e| anyhow!("the node sent a malformed checkpoint event: {e}"))?;
            if let Some(v) = verdict_in(&data, id) {
                return Ok(v);
            }
        }
    };
    tokio::time::timeout(timeout, wait).await.map_err(|_| {
        anyhow!(
            "no checkpoint applied or refused message {id} within {} s (it may still be \
             finalized later: check `chorus balance` or the node's /v1/events)",
            timeout.as_secs()
        )
    })?
}

/// The verdict on `id` in one checkpoint event, if it has one.
fn verdict_in(data: &Value, id: &Hash32) -> Option<LedgerVerdict> {
    let height = data.get("height")?.as_u64()?;
    let hex = id.to_hex();
    data.get("events")?.as_array()?.iter().find_map(|e| {
        if e.get("id")?.as_str()? != hex {
            return None;
        }
        match e.get("event")?.as_str()? {
            "applied" => Some(LedgerVerdict::Applied { height }),
            "refused" => Some(LedgerVerdict::Refused {
                height,
                reason: e.get("reason")?.as_str()?.to_owned(),
            }),
            _ => None,
        }
    })
}

fn read_token(path: &Path) -> Result<String, BadInput> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| BadInput(format!("admin token file {}: {e}", path.display())))?;
    let token = text.lines().next().unwrap_or("").trim();
    if token.is_empty() {
        return Err(BadInput(format!(
            "admin token file {} is empty",
            path.display()
        )));
    }
    Ok(token.to_owned())
}

fn token(tx: &TxArgs) -> Result<String, BadInput> {
    match (&tx.token, &tx.token_file) {
        (Some(t), _) => {
            non_empty("--token", t)?;
            Ok(t.trim().to_owned())
        }
        (None, Some(path)) => read_token(path),
        (None, None) => Err(BadInput(
            "writes need the node's admin token: --token, CHORUS_ADMIN_TOKEN, or --token-file \
             (the node's [api] admin_token_file)"
                .into(),
        )),
    }
}

fn key(path: &Path) -> Result<Keypair, BadInput> {
    read_key_file(path).map_err(|e| BadInput(e.to_string()))
}

/// The network id the node signs for.
async fn network_id(node: &NodeClient) -> anyhow::Result<NetworkId> {
    let status: Status = node.get("/v1/status").await?;
    Ok(status.network_id)
}

async fn next_nonce(node: &NodeClient, me: &PublicKey) -> anyhow::Result<u64> {
    let account: Option<Account> = node
        .get_opt(&format!("/v1/accounts/{}", me.to_hex()))
        .await?;
    Ok(account.map_or(FIRST_NONCE, |a| a.next_nonce))
}

/// Sign `make(nonce, author)` and submit it.
async fn submit(
    tx: &TxArgs,
    make: impl FnOnce(u64, PublicKey) -> Payload,
) -> anyhow::Result<Submitted> {
    let token = token(tx)?;
    let keypair = key(&tx.key)?;
    let node = client(&tx.node)?;
    let network = network_id(&node).await?;
    let author = keypair.public();
    let nonce = match tx.nonce {
        Some(n) => n,
        None => next_nonce(&node, &author).await?,
    };
    let payload = make(nonce, author);
    let kind = payload.kind_name();
    let envelope = Envelope::seal(&keypair, &network, &payload);
    // Subscribed before submitting, so the verdict cannot pass unseen.
    let mut events = match tx.wait {
        true => Some(node.events("/v1/events?kinds=applied,refused").await?),
        false => None,
    };
    let answer = node
        .submit(envelope.to_bytes(), &token)
        .await
        .with_context(|| format!("submitting the {kind}"))?;
    let ledger = match &mut events {
        Some(stream) if answer.accepted => Some(
            verdict(stream, &answer.id, Duration::from_secs(tx.wait_timeout))
                .await
                .with_context(|| format!("waiting for the {kind}"))?,
        ),
        _ => None,
    };
    Ok(Submitted {
        kind,
        nonce,
        author,
        answer,
        ledger,
    })
}

/// Print the node's answer (plus `kind`, `nonce` and `extra` fields); a refusal is an error.
fn report(
    s: Submitted,
    extra: &[(&str, Value)],
    extra_text: &str,
    out: &Output,
) -> anyhow::Result<()> {
    let mut json = serde_json::to_value(&s.answer)?;
    if let Some(obj) = json.as_object_mut() {
        obj.insert("kind".into(), s.kind.into());
        obj.insert("nonce".into(), s.nonce.into());
        for (k, v) in extra {
            obj.insert((*k).into(), v.clone());
        }
    }
    let id = s.answer.id;
    if let (Some(obj), Some(v)) = (json.as_object_mut(), &s.ledger) {
        let (outcome, height, reason) = match v {
            LedgerVerdict::Applied { height } => ("applied", height, None),
            LedgerVerdict::Refused { height, reason } => ("refused", height, Some(reason)),
        };
        obj.insert("ledger".into(), outcome.into());
        obj.insert("height".into(), (*height).into());
        if let Some(r) = reason {
            obj.insert("ledger_reason".into(), r.clone().into());
        }
    }
    if let Some(LedgerVerdict::Refused { height, reason }) = &s.ledger {
        if out.json {
            outln!("{}", serde_json::to_string_pretty(&json)?)?;
        }
        return Err(anyhow!(
            "the ledger refused the {} {id} at checkpoint {height}: {reason}",
            s.kind
        ));
    }
    if s.answer.accepted {
        let verdict = match &s.ledger {
            Some(LedgerVerdict::Applied { height }) => format!(", applied at checkpoint {height}"),
            _ => String::new(),
        };
        let text = format!(
            "{} {id} accepted (signer {}, nonce {}){verdict}{extra_text}",
            s.kind,
            s.author.short(),
            s.nonce
        );
        return out.print(&text, &json);
    }
    if out.json {
        outln!("{}", serde_json::to_string_pretty(&json)?)?;
    }
    let reason = s.answer.reason.as_deref().unwrap_or("no reason given");
    Err(anyhow!("the node refused the {} {id}: {reason}", s.kind))
}

/// `chorus transfer TO AMOUNT`.
pub async fn transfer(
    to: PublicKey,
    amount: Amount,
    tx: &TxArgs,
    out: &Output,
) -> anyhow::Result<()> {
    let s = submit(tx, |nonce, _| {
        Payload::Transfer(Transfer { nonce, to, amount })
    })
    .await?;
    report(s, &[], "", out)
}

/// `chorus topic fund ID AMOUNT`.
pub async fn fund_topic(
    topic: u64,
    amount: Amount,
    tx: &TxArgs,
    out: &Output,
) -> anyhow::Result<()> {
    let s = submit(tx, |nonce, _| {
        Payload::FundTopic(FundTopic {
            nonce,
            topic: TopicId(topic),
            amount,
        })
    })
    .await?;
    report(s, &[], "", out)
}

/// `chorus stake add|remove TOPIC AMOUNT [--reputer ADDR]`.
pub async fn stake(a: StakeArgs, add: bool, out: &Output) -> anyhow::Result<()> {
    let s = submit(&a.tx, |nonce, me| {
        let change = StakeChange {
            nonce,
            topic: TopicId(a.topic),
            reputer: a.reputer.unwrap_or(me),
            amount: a.amount,
        };
        if add {
            Payload::Stake(change)
        } else {
            Payload::Unstake(change)
        }
    })
    .await?;
    report(s, &[], "", out)
}

/// `chorus bond|unbond AMOUNT`.
pub async fn bond(amount: Amount, add: bool, tx: &TxArgs, out: &Output) -> anyhow::Result<()> {
    let s = submit(tx, |nonce, _| {
        let change = BondChange { nonce, amount };
        if add {
            Payload::Bond(change)
        } else {
            Payload::Unbond(change)
        }
    })
    .await?;
    report(s, &[], "", out)
}

/// `chorus register|unregister TOPIC worker|reputer`.
pub async fn register(
    topic: u64,
    role: RoleArg,
    add: bool,
    tx: &TxArgs,
    out: &Output,
) -> anyhow::Result<()> {
    let role = match role {
        RoleArg::Worker => Role::Worker,
        RoleArg::Reputer => Role::Reputer,
    };
    let s = submit(tx, |nonce, _| {
        let r = Registration {
            nonce,
            topic: TopicId(topic),
            role,
        };
        if add {
            Payload::Register(r)
        } else {
            Payload::Unregister(r)
        }
    })
    .await?;
    report(s, &[], "", out)
}

/// `chorus set-owner OWNER [--actor ADDR]`.
pub async fn set_owner(
    owner: PublicKey,
    actor: Option<PublicKey>,
    tx: &TxArgs,
    out: &Output,
) -> anyhow::Result<()> {
    let s = submit(tx, |nonce, me| {
        Payload::SetOwner(SetOwner {
            nonce,
            actor: actor.unwrap_or(me),
            owner,
        })
    })
    .await?;
    report(s, &[], "", out)
}

/// `chorus gov propose …`: prints the proposal's id.
pub async fn propose(
    proposal: impl FnOnce(u64) -> GovernanceProposal,
    tx: &TxArgs,
    out: &Output,
) -> anyhow::Result<()> {
    let s = submit(tx, |nonce, _| Payload::Propose(proposal(nonce))).await?;
    let id = s.answer.id;
    report(
        s,
        &[("proposal", Value::from(id.to_hex()))],
        &format!("; proposal id {id}"),
        out,
    )
}

/// `chorus gov vote ID yes|no|abstain`.
pub async fn vote(
    proposal: Hash32,
    option: VoteOption,
    tx: &TxArgs,
    out: &Output,
) -> anyhow::Result<()> {
    let s = submit(tx, |nonce, _| {
        Payload::Vote(GovernanceVote {
            nonce,
            proposal,
            option,
        })
    })
    .await?;
    report(s, &[], "", out)
}

/// Parse and check a topic definition. Checks that depend on the network's parameters
/// (minimum epoch length, longest ground-truth lag) are left to the node.
fn read_spec(path: &Path) -> Result<TopicSpec, BadInput> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| BadInput(format!("topic spec {}: {e}", path.display())))?;
    let spec: TopicSpec = toml::from_str(&text)
        .map_err(|e| BadInput(format!("topic spec {}: {}", path.display(), e.message())))?;
    let lenient = ModuleParams {
        min_epoch_length_ms: 0,
        max_unfulfilled_reputer_requests: u64::MAX,
        ..ModuleParams::default()
    };
    spec.validate(&lenient)
        .map_err(|e| BadInput(format!("topic spec {}: {e}", path.display())))?;
    Ok(spec)
}

/// `chorus topic create --spec FILE.toml [--fee AMOUNT]`: prints the new topic's id.
pub async fn create_topic(
    spec: &Path,
    fee: Option<Amount>,
    tx: &TxArgs,
    out: &Output,
) -> anyhow::Result<()> {
    let spec = read_spec(spec)?;
    let fee = fee.unwrap_or(ModuleParams::default().create_topic_fee);
    let s = submit(tx, |nonce, _| {
        Payload::CreateTopic(CreateTopic { nonce, spec, fee })
    })
    .await?;
    let topic = TopicId::derived(&s.author, s.nonce);
    report(
        s,
        &[("topic", Value::from(topic.0))],
        &format!("; topic id {topic}"),
        out,
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use chorus_node::api::fake;

    use super::*;

    #[test]
    fn specs_are_checked_locally_except_network_limits() {
        let dir = tempfile::tempdir().unwrap();
        // Beyond the network's limits (checked by the node), but locally well-formed.
        let good = fake::FAKE_TOPIC_SPEC.replace(
            "ground_truth_lag_ms = 60000",
            "ground_truth_lag_ms = 1000000000",
        );
        let p = dir.path().join("t.toml");
        std::fs::write(&p, &good).unwrap();
        assert_eq!(read_spec(&p).unwrap().name, "EUR/USD 1h range");
        std::fs::write(&p, good.replace("p_norm = 3.0", "p_norm = 9.0")).unwrap();
        assert!(read_spec(&p).unwrap_err().0.contains("p_norm"));
        std::fs::write(&p, format!("{good}\nextra = 1\n")).unwrap();
        assert!(read_spec(&p).unwrap_err().0.contains("extra"));
    }
}
