//! `chorus gov`: governance proposals and votes (`docs/governance.md`), and `chorus params`.
//!
//! A proposal sets module parameters (`--set-param NAME=VALUE`), topic fields (`--topic ID
//! --set-topic NAME=VALUE`) or nothing (text only). Each value is typed against the document
//! the node serves now (`/v1/params`, `/v1/topics/{id}`): an unknown name, a text field or a
//! value of the wrong type is refused before anything is signed.

use std::str::FromStr;

use chorus_node::api::client::NodeClient;
use chorus_node::api::types;
use chorus_protocol::ids::{Amount, Hash32, TopicId};
use chorus_protocol::messages::{GovernanceAction, GovernanceProposal, ParamValue, VoteOption};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Map, Value};

use super::api::{NodeArgs, TxArgs, client};
use super::read::{pairs, table};
use super::write;
use crate::output::{BadInput, Output};

/// Governance commands.
#[derive(Debug, Subcommand)]
pub enum GovCommand {
    /// Open a proposal (prints its id); voting ends `governance_voting_periods` checkpoints
    /// later.
    Propose(ProposeArgs),
    /// Vote on a proposal (a later vote replaces an earlier one until the tally).
    Vote {
        /// The proposal id (64 hex).
        #[arg(value_parser = parse_id)]
        id: Hash32,
        /// The choice.
        option: VoteArg,
        #[command(flatten)]
        tx: TxArgs,
    },
    /// Every proposal with its status and tally.
    List {
        #[command(flatten)]
        node: NodeArgs,
    },
    /// One proposal with its votes.
    Show {
        /// The proposal id (64 hex).
        #[arg(value_parser = parse_id)]
        id: Hash32,
        #[command(flatten)]
        node: NodeArgs,
    },
}

/// Arguments of `gov propose`.
#[derive(Debug, Args)]
pub struct ProposeArgs {
    /// Title (shown in `gov list`).
    #[arg(long)]
    pub title: String,
    /// Longer text.
    #[arg(long, default_value = "")]
    pub description: String,
    /// Set a module parameter if it passes (repeatable), e.g. `create_topic_fee=100000`.
    #[arg(
        long = "set-param",
        value_name = "NAME=VALUE",
        conflicts_with = "topic"
    )]
    pub set_param: Vec<String>,
    /// The topic whose fields `--set-topic` changes.
    #[arg(long, requires = "set_topic")]
    pub topic: Option<u64>,
    /// Set a field of `--topic` if it passes (repeatable), e.g. `alpha_regret=0.05`.
    #[arg(long = "set-topic", value_name = "NAME=VALUE", requires = "topic")]
    pub set_topic: Vec<String>,
    #[command(flatten)]
    pub tx: TxArgs,
}

/// A vote choice.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum VoteArg {
    /// For.
    Yes,
    /// Against.
    No,
    /// Counts for the quorum only.
    Abstain,
}

fn parse_id(s: &str) -> Result<Hash32, String> {
    Hash32::from_str(s.trim()).map_err(|_| format!("{s:?} is not a 64-hex proposal id"))
}

/// How the served object writes amounts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Strings {
    /// Its string fields are amounts (decimal base units): the module parameters.
    AreAmounts,
    /// Its string fields are text (a topic's name, metadata, token): governance cannot set them,
    /// whatever they look like.
    AreText,
}

/// `name=value` typed like the field `name` of `current` (a JSON object the node served).
fn typed(
    assignment: &str,
    current: &Map<String, Value>,
    what: &str,
    strings: Strings,
) -> Result<(String, ParamValue), BadInput> {
    let (name, raw) = assignment
        .split_once('=')
        .map(|(n, v)| (n.trim(), v.trim()))
        .ok_or_else(|| BadInput(format!("{assignment:?}: expected NAME=VALUE")))?;
    let Some(now) = current.get(name) else {
        let known: Vec<&str> = current.keys().map(String::as_str).collect();
        return Err(BadInput(format!(
            "unknown {what} `{name}` (known: {})",
            known.join(", ")
        )));
    };
    let wrong = |kind: &str| BadInput(format!("{what} `{name}`: {raw:?} is not {kind}"));
    let value = match now {
        Value::Bool(_) => ParamValue::Flag(raw.parse().map_err(|_| wrong("true or false"))?),
        Value::Number(n) if n.is_u64() => ParamValue::Int(
            raw.replace('_', "")
                .parse()
                .map_err(|_| wrong("an integer"))?,
        ),
        Value::Number(_) => {
            let v: f64 = raw.parse().map_err(|_| wrong("a number"))?;
            if !v.is_finite() {
                return Err(wrong("a finite number"));
            }
            ParamValue::Real(v)
        }
        // Amounts are decimal strings of base units; a text field that looks like a number is
        // still text.
        Value::String(_) if strings == Strings::AreAmounts => ParamValue::Amount(Amount(
            raw.replace('_', "")
                .parse()
                .map_err(|_| wrong("an amount of base units"))?,
        )),
        _ => {
            return Err(BadInput(format!(
                "{what} `{name}` is not a number, amount or flag: governance cannot set it"
            )));
        }
    };
    Ok((name.to_owned(), value))
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// The action of `gov propose`, typed against what the node serves now.
async fn action(a: &ProposeArgs, node: &NodeClient) -> anyhow::Result<GovernanceAction> {
    if let Some(topic) = a.topic {
        let t: types::Topic = node.get(&format!("/v1/topics/{topic}")).await?;
        let fields = object(serde_json::to_value(&t.spec)?);
        let changes = a
            .set_topic
            .iter()
            .map(|s| typed(s, &fields, "topic field", Strings::AreText))
            .collect::<Result<_, _>>()?;
        return Ok(GovernanceAction::UpdateTopic {
            topic: TopicId(topic),
            changes,
        });
    }
    if a.set_param.is_empty() {
        return Ok(GovernanceAction::Text);
    }
    let params: types::Params = node.get("/v1/params").await?;
    let fields = object(serde_json::to_value(&params)?);
    let changes = a
        .set_param
        .iter()
        .map(|s| typed(s, &fields, "parameter", Strings::AreAmounts))
        .collect::<Result<_, _>>()?;
    Ok(GovernanceAction::SetParams { changes })
}

/// Run a governance command.
pub async fn run(cmd: GovCommand, out: &Output) -> anyhow::Result<()> {
    match cmd {
        GovCommand::Propose(a) => {
            if a.title.trim().is_empty() {
                return Err(BadInput("--title is empty".into()).into());
            }
            let action = action(&a, &client(&a.tx.node)?).await?;
            let (title, description) = (a.title.clone(), a.description.clone());
            write::propose(
                |nonce| GovernanceProposal {
                    nonce,
                    title,
                    description,
                    action,
                },
                &a.tx,
                out,
            )
            .await
        }
        GovCommand::Vote { id, option, tx } => {
            let option = match option {
                VoteArg::Yes => VoteOption::Yes,
                VoteArg::No => VoteOption::No,
                VoteArg::Abstain => VoteOption::Abstain,
            };
            write::vote(id, option, &tx, out).await
        }
        GovCommand::List { node } => list(&client(&node)?, out).await,
        GovCommand::Show { id, node } => show(&client(&node)?, id, out).await,
    }
}

fn action_text(a: &GovernanceAction) -> String {
    let changes = |c: &[(String, ParamValue)]| {
        c.iter()
            .map(|(k, v)| format!("{k}={}", serde_json::to_string(v).unwrap_or_default()))
            .collect::<Vec<_>>()
            .join(" ")
    };
    match a {
        GovernanceAction::Text => "text".into(),
        GovernanceAction::SetParams { changes: c } => format!("params {}", changes(c)),
        GovernanceAction::UpdateTopic { topic, changes: c } => {
            format!("topic {topic} {}", changes(c))
        }
    }
}

async fn list(node: &NodeClient, out: &Output) -> anyhow::Result<()> {
    let all: Vec<types::Proposal> = node.get("/v1/proposals").await?;
    if all.is_empty() {
        return out.document("no proposals", &all);
    }
    let rows: Vec<Vec<String>> = all
        .iter()
        .map(|p| {
            vec![
                p.id.to_hex()[..12].to_string(),
                p.status.clone(),
                p.voting_ends.to_string(),
                p.yes.to_string(),
                p.no.to_string(),
                p.abstain.to_string(),
                p.quorum.to_string(),
                p.title.clone(),
            ]
        })
        .collect();
    let headers = [
        "id", "status", "ends", "yes", "no", "abstain", "quorum", "title",
    ];
    out.document(&table(&headers, &rows), &all)
}

async fn show(node: &NodeClient, id: Hash32, out: &Output) -> anyhow::Result<()> {
    let p: types::Proposal = node.get(&format!("/v1/proposals/{id}")).await?;
    let mut items = vec![
        ("id", p.id.to_hex()),
        ("title", p.title.clone()),
        ("proposer", p.proposer.to_hex()),
        ("action", action_text(&p.action)),
        ("status", p.status.clone()),
        ("voting ends at checkpoint", p.voting_ends.to_string()),
        ("yes", p.yes.to_string()),
        ("no", p.no.to_string()),
        ("abstain", p.abstain.to_string()),
        ("quorum", p.quorum.to_string()),
    ];
    if let Some(e) = &p.error {
        items.push(("error", e.clone()));
    }
    for v in &p.votes {
        items.push((
            "vote",
            format!("{} {:?} weight {}", v.voter.short(), v.option, v.weight),
        ));
    }
    out.document(&pairs(&items), &p)
}

/// `chorus params`: the module parameters in force.
pub async fn params(node: &NodeClient, out: &Output) -> anyhow::Result<()> {
    let p: types::Params = node.get("/v1/params").await?;
    let v = serde_json::to_value(&p)?;
    let items: Vec<(&str, String)> = v
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.as_str(), super::read::cell(Some(v))))
                .collect()
        })
        .unwrap_or_default();
    out.document(&pairs(&items), &p)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use chorus_protocol::params::ModuleParams;

    use super::*;

    #[test]
    fn values_are_typed_like_the_served_field() {
        let fields = object(serde_json::to_value(ModuleParams::default()).unwrap());
        let t = |s: &str| typed(s, &fields, "parameter", Strings::AreAmounts);
        assert_eq!(
            t("create_topic_fee=100_000").unwrap(),
            (
                "create_topic_fee".into(),
                ParamValue::Amount(Amount(100_000))
            )
        );
        assert_eq!(
            t("min_epoch_length_ms = 500").unwrap(),
            ("min_epoch_length_ms".into(), ParamValue::Int(500))
        );
        assert_eq!(
            t("beta_entropy=0.3").unwrap(),
            ("beta_entropy".into(), ParamValue::Real(0.3))
        );
        for bad in [
            "nonsense=1",
            "create_topic_fee=-1",
            "create_topic_fee=1.5",
            "min_epoch_length_ms=abc",
            "beta_entropy=NaN",
            "no_equals_sign",
        ] {
            assert!(t(bad).is_err(), "{bad}");
        }
    }

    /// A topic's text fields are never amounts, even when their text is a number.
    #[test]
    fn numeric_looking_topic_text_is_not_an_amount() {
        let spec = chorus_protocol::topic::TopicSpec {
            metadata: "2024".into(),
            token: "1000".into(),
            ..chorus_protocol::topic::TopicSpec::new(
                "t",
                chorus_protocol::topic::LossMethod::Mse,
                0,
                60_000,
                30_000,
                60_000,
            )
        };
        let fields = object(serde_json::to_value(spec).unwrap());
        let t = |s: &str| typed(s, &fields, "topic field", Strings::AreText);
        for text in ["metadata=2025", "token=7", "name=3"] {
            let e = t(text).unwrap_err();
            assert!(e.0.contains("governance cannot set it"), "{text}: {}", e.0);
        }
        assert_eq!(
            t("p_norm=3.5").unwrap(),
            ("p_norm".into(), ParamValue::Real(3.5))
        );
    }
}
