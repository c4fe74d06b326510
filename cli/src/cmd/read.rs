//! Read commands: status, topics, inferences, scores, leaderboard, accounts, the live stream.
//!
//! Answers are read as the node's typed documents (`chorus_node::api::types`). Text output is
//! a few readable lines or a table; `--json` prints the node's JSON document (`topic watch
//! --json`: one compact JSON object per inference, one per line).

use crate::output::outln;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Display;
use std::path::PathBuf;

use anyhow::anyhow;
use chorus_node::api::client::NodeClient;
use chorus_node::api::types;
use chorus_protocol::keyfile::read_key_file;
use chorus_protocol::keys::PublicKey;
use serde_json::Value;

use crate::output::Output;

/// A JSON value as a table cell: strings bare, `null`/missing as `-`.
pub(crate) fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => if *b { "yes" } else { "no" }.into(),
        Some(other) => other.to_string(),
    }
}

fn field(v: &Value, key: &str) -> String {
    cell(v.get(key))
}

/// An optional value as a table cell (`-` if none).
fn opt<T: Display>(v: Option<T>) -> String {
    v.map_or_else(|| "-".into(), |x| x.to_string())
}

/// A number as JSON shows it (`1.0`, not `1`; `-` for NaN).
fn num(x: f64) -> String {
    cell(Some(&Value::from(x)))
}

/// An optional number as JSON shows it (`-` if none).
fn opt_num(x: Option<f64>) -> String {
    x.map_or_else(|| "-".into(), num)
}

/// The entry of `key` in a map of numbers as a table cell.
fn entry<K: Ord>(m: &BTreeMap<K, f64>, key: &K) -> String {
    opt_num(m.get(key).copied())
}

/// A list of ids, comma-separated (`-` if empty).
fn ids(v: &[u64]) -> String {
    if v.is_empty() {
        return "-".into();
    }
    v.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.into()
}

/// Left-aligned columns separated by two spaces.
pub(crate) fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        parts.join("  ").trim_end().to_owned()
    };
    let mut out = vec![line(headers.to_vec())];
    for row in rows {
        out.push(line(row.iter().map(String::as_str).collect()));
    }
    out.join("\n")
}

/// `key  value` lines, keys aligned.
pub(crate) fn pairs(items: &[(&str, String)]) -> String {
    let w = items.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    items
        .iter()
        .map(|(k, v)| format!("{k:<w$}  {v}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `chorus status`.
pub async fn status(node: &NodeClient, out: &Output) -> anyhow::Result<()> {
    let s: types::Status = node.get("/v1/status").await?;
    let listen = if s.listen.is_empty() {
        "-".into()
    } else {
        s.listen.join(" ")
    };
    let mut text = pairs(&[
        ("node", node.base().to_owned()),
        ("network", format!("{} ({})", s.network, s.network_id)),
        ("address", s.address.to_hex()),
        ("peer id", format!("{} ({} peers)", s.peer_id, s.peers)),
        ("listen", listen),
        (
            "checkpoint",
            format!(
                "height {}, tip {}, ledger root {}",
                s.height, s.tip, s.ledger_root
            ),
        ),
        (
            "roles",
            format!(
                "worker in {}; reputer in {}; validator {}",
                ids(&s.roles.worker),
                ids(&s.roles.reputer),
                yes_no(s.roles.validator)
            ),
        ),
        ("balance", s.balance.to_string()),
        ("bond", s.bond.to_string()),
        ("rewards", s.rewards.to_string()),
        ("next nonce", s.next_nonce.to_string()),
        ("uptime", format!("{:.1} s", s.uptime_ms as f64 / 1000.0)),
    ]);
    if !s.submissions.is_empty() {
        let rows: Vec<Vec<String>> = s
            .submissions
            .iter()
            .map(|x| {
                vec![
                    opt(x.topic),
                    opt(x.epoch),
                    x.kind.clone(),
                    yes_no(x.accepted),
                    opt(x.reason.as_ref()),
                    x.time_ms.to_string(),
                ]
            })
            .collect();
        text.push_str("\n\nlast submissions:\n");
        text.push_str(&table(
            &["topic", "epoch", "kind", "accepted", "reason", "time_ms"],
            &rows,
        ));
    }
    if !s.duties.is_empty() {
        text.push_str("\n\nduties (am I working?):\n");
        text.push_str(&duties_table(&s));
    }
    out.document(&text, &s)
}

/// One row per (topic, role): ok or the problem, window, last epoch, whether it counted, last
/// reward.
fn duties_table(s: &types::Status) -> String {
    let rows: Vec<Vec<String>> = s
        .duties
        .iter()
        .map(|d| {
            let window = match &d.window {
                None => "-".to_string(),
                Some(w) if w.open => format!("epoch {} open", w.epoch),
                Some(w) => format!("epoch {} closed", w.epoch),
            };
            let last = match &d.last {
                None => "-".to_string(),
                Some(l) if l.accepted => format!("epoch {} sent", opt(l.epoch)),
                Some(l) => format!("epoch {} not sent", opt(l.epoch)),
            };
            let reward = d
                .last_reward
                .map_or("-".to_string(), |(e, a)| format!("{a} (epoch {e})"));
            vec![
                d.topic.to_string(),
                d.role.clone(),
                yes_no(d.registered),
                yes_no(d.funded),
                window,
                last,
                d.counted.map_or("-".to_string(), yes_no),
                reward,
                d.problem.clone().unwrap_or_else(|| "ok".into()),
            ]
        })
        .collect();
    table(
        &[
            "topic",
            "role",
            "registered",
            "funded",
            "window",
            "last",
            "counted",
            "last reward",
            "status",
        ],
        &rows,
    )
}

/// `chorus topic list`.
pub async fn topics(node: &NodeClient, out: &Output) -> anyhow::Result<()> {
    let list: Vec<types::Topic> = node.get("/v1/topics").await?;
    if list.is_empty() {
        return out.document("no topics", &list);
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|t| {
            vec![
                t.id.to_string(),
                t.spec.name.clone(),
                t.spec.epoch_length_ms.to_string(),
                opt(t.current_epoch),
                opt(t.last_finalized_epoch),
                t.workers.to_string(),
                t.reputers.to_string(),
                t.stake.to_string(),
                yes_no(t.active),
            ]
        })
        .collect();
    let headers = [
        "id",
        "name",
        "epoch ms",
        "epoch",
        "finalized",
        "workers",
        "reputers",
        "stake",
        "active",
    ];
    out.document(&table(&headers, &rows), &list)
}

/// `chorus topic show ID`.
pub async fn topic(node: &NodeClient, id: u64, out: &Output) -> anyhow::Result<()> {
    let t: types::Topic = node.get(&format!("/v1/topics/{id}")).await?;
    let t = serde_json::to_value(t)?;
    let items: Vec<(&str, String)> = t
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.as_str(), cell(Some(v)))).collect())
        .unwrap_or_default();
    out.print(&pairs(&items), &t)
}

/// `chorus topic window ID`.
pub async fn window(node: &NodeClient, id: u64, out: &Output) -> anyhow::Result<()> {
    let w: types::Window = node.get(&format!("/v1/topics/{id}/window")).await?;
    let line = |name: &str, s: &Option<types::SubmissionWindow>| match s {
        None => format!("{name}: no window yet"),
        Some(s) if s.open => format!(
            "{name}: epoch {} open, closes in {} ms",
            s.epoch,
            s.close_ms.saturating_sub(w.now_ms)
        ),
        Some(s) if w.now_ms < s.open_ms => format!(
            "{name}: epoch {} opens in {} ms",
            s.epoch,
            s.open_ms - w.now_ms
        ),
        Some(s) => format!("{name}: epoch {} closed", s.epoch),
    };
    let text = format!(
        "{}\n{}\nnext worker window opens in {} ms",
        line("workers", &w.worker),
        line("reputers", &w.reputer),
        w.next_worker_open_ms.saturating_sub(w.now_ms)
    );
    out.document(&text, &w)
}

/// `chorus infer get TOPIC [--epoch E]`.
pub async fn inference(
    node: &NodeClient,
    topic: u64,
    (epoch, variant): (Option<u64>, chorus_crdt::proof::Variant),
    out: &Output,
) -> anyhow::Result<()> {
    let mut path = format!("/v1/topics/{topic}/inference?variant={}", variant.name());
    if let Some(e) = epoch {
        path.push_str(&format!("&epoch={e}"));
    }
    let inf: types::Inference = node.get(&path).await?;
    let state = if inf.finalized {
        format!("finalized at checkpoint {}", opt(inf.checkpoint_height))
    } else {
        "local (not yet finalized)".to_owned()
    };
    let b = &inf.bundle;
    let mut text = pairs(&[
        ("topic", inf.topic.to_string()),
        ("epoch", inf.epoch.to_string()),
        ("variant", inf.variant.name().to_owned()),
        ("state", state),
        ("combined value", num(b.combined_value)),
        ("naive value", opt_num(b.naive_value)),
        (
            "confidence interval",
            cell(
                serde_json::to_value(&b.confidence_interval_values)
                    .ok()
                    .as_ref(),
            ),
        ),
    ]);
    let maps = [
        &b.inferer_values,
        &b.inferer_weights,
        &b.forecaster_values,
        &b.forecaster_weights,
    ];
    let workers: BTreeSet<&PublicKey> = maps.iter().flat_map(|m| m.keys()).collect();
    if !workers.is_empty() {
        let rows = actor_rows(&workers, &maps);
        text.push_str("\n\n");
        text.push_str(&table(
            &[
                "worker",
                "inference",
                "weight",
                "forecast-implied",
                "forecaster weight",
            ],
            &rows,
        ));
    }
    out.document(&text, &inf)
}

/// One row per actor: its address, then its entry in each map.
fn actor_rows<K: Ord + ToString>(
    actors: &BTreeSet<&K>,
    maps: &[&BTreeMap<K, f64>],
) -> Vec<Vec<String>> {
    actors
        .iter()
        .map(|a| {
            std::iter::once(a.to_string())
                .chain(maps.iter().map(|m| entry(*m, *a)))
                .collect()
        })
        .collect()
}

/// `chorus scores TOPIC`.
pub async fn scores(node: &NodeClient, topic: u64, out: &Output) -> anyhow::Result<()> {
    let s: types::Scores = node.get(&format!("/v1/topics/{topic}/scores")).await?;
    let score_maps = [
        &s.inferers,
        &s.forecasters,
        &s.reputers,
        &s.listening_coefficients,
        &s.regrets.inferer,
        &s.regrets.forecaster,
        &s.regrets.naive,
    ];
    let actors: BTreeSet<&String> = score_maps.iter().flat_map(|m| m.keys()).collect();
    let mut text = pairs(&[
        ("topic", s.topic.to_string()),
        ("previous network loss", opt_num(s.previous_network_loss)),
        ("initial regret", num(s.initial_regret)),
    ]);
    if !actors.is_empty() {
        let rows = actor_rows(&actors, &score_maps);
        text.push_str("\n\n");
        text.push_str(&table(
            &[
                "address",
                "inferer",
                "forecaster",
                "reputer",
                "listening",
                "inferer regret",
                "forecaster regret",
                "naive regret",
            ],
            &rows,
        ));
    }
    out.document(&text, &s)
}

/// `chorus leaderboard TOPIC`.
pub async fn leaderboard(node: &NodeClient, topic: u64, out: &Output) -> anyhow::Result<()> {
    let b: types::Leaderboard = node.get(&format!("/v1/topics/{topic}/leaderboard")).await?;
    if b.entries.is_empty() {
        return out.document(&format!("topic {topic}: no scored actors yet"), &b);
    }
    let rows: Vec<Vec<String>> = b
        .entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            vec![
                (i + 1).to_string(),
                e.address.clone(),
                e.role.clone(),
                num(e.score_ema),
                e.rewards.to_string(),
            ]
        })
        .collect();
    out.document(
        &table(&["rank", "address", "role", "score", "rewards"], &rows),
        &b,
    )
}

/// Which part of an account to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountView {
    /// `chorus rewards`.
    Rewards,
    /// `chorus balance`.
    Balance,
}

/// The address to look up: the argument, else the key's, else the node's own.
async fn whose(
    node: &NodeClient,
    address: Option<PublicKey>,
    key: Option<PathBuf>,
) -> anyhow::Result<String> {
    if let Some(a) = address {
        return Ok(a.to_hex());
    }
    if let Some(k) = key {
        return Ok(read_key_file(&k)?.public().to_hex());
    }
    let status: types::Status = node.get("/v1/status").await?;
    Ok(status.address.to_hex())
}

/// `chorus rewards [ADDRESS]` and `chorus balance [ADDRESS]`.
pub async fn account(
    node: &NodeClient,
    address: Option<PublicKey>,
    key: Option<PathBuf>,
    view: AccountView,
    out: &Output,
) -> anyhow::Result<()> {
    let who = whose(node, address, key).await?;
    let a: types::Account = node.get(&format!("/v1/accounts/{who}")).await?;
    let text = match view {
        AccountView::Rewards => pairs(&[("address", who), ("rewards", a.rewards.to_string())]),
        AccountView::Balance => {
            let mut items = vec![
                ("address", who),
                ("balance", a.balance.to_string()),
                ("bond", bond_text(&a)),
                ("rewards", a.rewards.to_string()),
                ("nonce", format!("{} (next {})", a.nonce, a.next_nonce)),
            ];
            // Unbonded or unstaked, not back yet.
            items.extend(a.pending_releases.iter().map(|r| {
                (
                    "pending release",
                    format!("{} at {} (unix ms)", r.amount, r.at_ms),
                )
            }));
            let mut text = pairs(&items);
            if !a.stakes.is_empty() {
                let rows: Vec<Vec<String>> = a
                    .stakes
                    .iter()
                    .map(|s| {
                        vec![
                            s.topic.to_string(),
                            s.reputer.to_hex(),
                            s.amount.to_string(),
                        ]
                    })
                    .collect();
                text.push_str("\n\nstakes:\n");
                text.push_str(&table(&["topic", "reputer", "amount"], &rows));
            }
            text
        }
    };
    out.document(&text, &a)
}

/// Which statements `rewards --history` shows.
pub struct StatementFilter {
    /// One topic.
    pub topic: Option<u64>,
    /// First epoch.
    pub from: Option<u64>,
    /// Last epoch.
    pub to: Option<u64>,
    /// Print CSV.
    pub csv: bool,
}

/// `chorus rewards --history`: one line per settled epoch and role, and the total paid.
pub async fn statements(
    node: &NodeClient,
    address: Option<PublicKey>,
    key: Option<PathBuf>,
    f: StatementFilter,
    out: &Output,
) -> anyhow::Result<()> {
    let who = whose(node, address, key).await?;
    let mut query = vec![];
    for (name, v) in [("topic", f.topic), ("from", f.from), ("to", f.to)] {
        if let Some(v) = v {
            query.push(format!("{name}={v}"));
        }
    }
    let path = match query.is_empty() {
        true => format!("/v1/accounts/{who}/statements"),
        false => format!("/v1/accounts/{who}/statements?{}", query.join("&")),
    };
    let lines: Vec<types::Statement> = node.get(&path).await?;
    let row = |s: &types::Statement| {
        vec![
            s.topic.to_string(),
            s.epoch.to_string(),
            s.role.clone(),
            opt_num(s.score),
            opt_num(s.ema_score),
            opt_num(s.weight),
            opt_num(s.reward_fraction),
            s.payout.to_string(),
            s.height.to_string(),
        ]
    };
    let headers = [
        "topic",
        "epoch",
        "role",
        "score",
        "ema_score",
        "weight",
        "fraction",
        "payout",
        "height",
    ];
    if f.csv {
        let mut w = csv::Writer::from_writer(vec![]);
        w.write_record(headers)?;
        for s in &lines {
            // An empty field, not "-", where a line has no value.
            w.write_record(
                row(s)
                    .iter()
                    .map(|c| if c == "-" { "" } else { c.as_str() }),
            )?;
        }
        let text = String::from_utf8(w.into_inner().map_err(|e| anyhow!("{e}"))?)?;
        return crate::output::line(text.trim_end());
    }
    let total: u128 = lines.iter().map(|s| s.payout.0).sum();
    let text = if lines.is_empty() {
        format!("no settled epochs for {who} (statements are kept from when the node started)")
    } else {
        let rows: Vec<Vec<String>> = lines.iter().map(row).collect();
        format!(
            "{}\n\n{} line(s), {total} paid",
            table(&headers, &rows),
            lines.len()
        )
    };
    out.document(&text, &lines)
}

/// `chorus topic watch ID [--count N]`: one line per network inference until Ctrl-C, the
/// count, or the end of the stream (an error: the node went away).
pub async fn watch(
    node: &NodeClient,
    topic: u64,
    count: Option<u64>,
    out: &Output,
) -> anyhow::Result<()> {
    if count == Some(0) {
        return Ok(());
    }
    let mut stream = node.events(&format!("/v1/topics/{topic}/stream")).await?;
    let mut seen = 0u64;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let event = tokio::select! {
            _ = &mut ctrl_c => return Ok(()),
            ev = stream.next() => ev?,
        };
        let Some(event) = event else {
            return Err(anyhow!("the node ended the stream"));
        };
        let data: Value = match serde_json::from_str(&event.data) {
            Ok(v) => v,
            Err(e) => {
                return Err(anyhow!(
                    "the node sent a malformed {} event: {e}",
                    event.event
                ));
            }
        };
        match event.event.as_str() {
            "inference" => {
                if out.json {
                    outln!("{data}")?;
                } else {
                    outln!("{}", inference_line(&data))?;
                }
                seen += 1;
                if count.is_some_and(|c| seen >= c) {
                    return Ok(());
                }
            }
            "lagged" => eprintln!(
                "warning: fell behind, {} inferences skipped",
                field(&data, "missed")
            ),
            _ => {}
        }
    }
}

/// `epoch 41  combined 0.0012  local  checkpoint -`.
fn inference_line(ev: &Value) -> String {
    let state = match ev.get("finalized").and_then(Value::as_bool) {
        Some(true) => "finalized",
        Some(false) => "local",
        None => "-",
    };
    format!(
        "epoch {}  combined {}  {state}  checkpoint {}",
        field(ev, "epoch"),
        field(ev, "combined_value"),
        field(ev, "checkpoint_height")
    )
}

/// An account's bond, and whether it is in the validator set.
fn bond_text(a: &types::Account) -> String {
    if a.bond.0 == 0 {
        "0".into()
    } else if a.in_validator_set {
        format!("{} (in the validator set)", a.bond)
    } else {
        format!(
            "{} (waiting outside the validator set: it holds the `max_validators` largest bonds)",
            a.bond
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_cells_render() {
        let t = table(
            &["a", "long header"],
            &[vec!["xyz".into(), "1".into()], vec!["q".into(), "-".into()]],
        );
        assert_eq!(t, "a    long header\nxyz  1\nq    -");
        assert_eq!(cell(None), "-");
        assert_eq!(cell(Some(&Value::Null)), "-");
        assert_eq!(cell(Some(&serde_json::json!("s"))), "s");
        assert_eq!(cell(Some(&serde_json::json!(1.5))), "1.5");
        assert_eq!(cell(Some(&serde_json::json!(true))), "yes");
    }

    #[test]
    fn inference_lines() {
        let ev = serde_json::json!({"topic": 1, "epoch": 41, "combined_value": 0.0012,
            "naive_value": null, "finalized": false, "checkpoint_height": null, "time_ms": 1});
        assert_eq!(
            inference_line(&ev),
            "epoch 41  combined 0.0012  local  checkpoint -"
        );
    }

    #[test]
    fn a_bond_says_whether_it_is_in_the_validator_set() {
        let json = serde_json::json!({"address": "00".repeat(32), "balance": "5", "nonce": 0,
            "next_nonce": 1, "rewards": "0", "bond": "7", "stakes": []});
        // An older node's answer has no `in_validator_set`: taken as outside.
        let mut a: types::Account = serde_json::from_value(json).unwrap();
        assert!(bond_text(&a).starts_with("7 (waiting outside the validator set"));
        a.in_validator_set = true;
        assert_eq!(bond_text(&a), "7 (in the validator set)");
        a.bond = chorus_protocol::ids::Amount(0);
        assert_eq!(bond_text(&a), "0");
    }
}
