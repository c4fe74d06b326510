//! Read commands: status, topics, inferences, scores, leaderboard, accounts, the live stream.
//!
//! Text output is a few readable lines or a table; `--json` prints the node's JSON as is
//! (`topic watch --json`: one compact JSON object per inference, one per line).

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::anyhow;
use chorus_protocol::keyfile::read_key_file;
use chorus_protocol::keys::PublicKey;
use serde_json::Value;

use crate::http::NodeClient;
use crate::output::Output;

/// A JSON value as a table cell: strings bare, `null`/missing as `-`.
fn cell(v: Option<&Value>) -> String {
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

/// Left-aligned columns separated by two spaces.
fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
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
fn pairs(items: &[(&str, String)]) -> String {
    let w = items.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    items
        .iter()
        .map(|(k, v)| format!("{k:<w$}  {v}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The keys of a JSON object (empty for anything else).
fn keys(v: Option<&Value>) -> impl Iterator<Item = &String> {
    v.and_then(Value::as_object)
        .into_iter()
        .flat_map(|m| m.keys())
}

/// `chorus status`.
pub async fn status(node: &NodeClient, out: &Output) -> anyhow::Result<()> {
    let s = node.get("/v1/status").await?;
    let roles = s.get("roles");
    let topics = |role: &str| {
        roles
            .and_then(|r| r.get(role))
            .and_then(Value::as_array)
            .map(|a| {
                let ids: Vec<String> = a.iter().map(|v| cell(Some(v))).collect();
                if ids.is_empty() {
                    "-".to_owned()
                } else {
                    ids.join(",")
                }
            })
            .unwrap_or_else(|| "-".into())
    };
    let listen = s
        .get("listen")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|v| cell(Some(v)))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|| "-".into());
    let uptime = s
        .get("uptime_ms")
        .and_then(Value::as_u64)
        .map(|ms| format!("{:.1} s", ms as f64 / 1000.0))
        .unwrap_or_else(|| "-".into());
    let mut text = pairs(&[
        ("node", node.base().to_owned()),
        (
            "network",
            format!("{} ({})", field(&s, "network"), field(&s, "network_id")),
        ),
        ("address", field(&s, "address")),
        (
            "peer id",
            format!("{} ({} peers)", field(&s, "peer_id"), field(&s, "peers")),
        ),
        ("listen", listen),
        (
            "checkpoint",
            format!(
                "height {}, tip {}, ledger root {}",
                field(&s, "height"),
                field(&s, "tip"),
                field(&s, "ledger_root")
            ),
        ),
        (
            "roles",
            format!(
                "worker in {}; reputer in {}; validator {}",
                topics("worker"),
                topics("reputer"),
                cell(roles.and_then(|r| r.get("validator")))
            ),
        ),
        ("balance", field(&s, "balance")),
        ("bond", field(&s, "bond")),
        ("rewards", field(&s, "rewards")),
        ("next nonce", field(&s, "next_nonce")),
        ("uptime", uptime),
    ]);
    let subs = s
        .get("submissions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if !subs.is_empty() {
        let rows: Vec<Vec<String>> = subs
            .iter()
            .map(|x| {
                ["topic", "epoch", "kind", "accepted", "reason", "time_ms"]
                    .iter()
                    .map(|k| field(x, k))
                    .collect()
            })
            .collect();
        text.push_str("\n\nlast submissions:\n");
        text.push_str(&table(
            &["topic", "epoch", "kind", "accepted", "reason", "time_ms"],
            &rows,
        ));
    }
    out.print(&text, &s)
}

/// `chorus topic list`.
pub async fn topics(node: &NodeClient, out: &Output) -> anyhow::Result<()> {
    let list = node.get("/v1/topics").await?;
    let items = list.as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        return out.print("no topics", &list);
    }
    let cols = [
        "id",
        "name",
        "epoch_length_ms",
        "current_epoch",
        "last_finalized_epoch",
        "workers",
        "reputers",
        "stake",
        "active",
    ];
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|t| cols.iter().map(|k| field(t, k)).collect())
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
    out.print(&table(&headers, &rows), &list)
}

/// `chorus topic show ID`.
pub async fn topic(node: &NodeClient, id: u64, out: &Output) -> anyhow::Result<()> {
    let t = node.get(&format!("/v1/topics/{id}")).await?;
    let items: Vec<(&str, String)> = t
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.as_str(), cell(Some(v)))).collect())
        .unwrap_or_default();
    out.print(&pairs(&items), &t)
}

/// `chorus infer get TOPIC [--epoch E]`.
pub async fn inference(
    node: &NodeClient,
    topic: u64,
    epoch: Option<u64>,
    out: &Output,
) -> anyhow::Result<()> {
    let path = match epoch {
        Some(e) => format!("/v1/topics/{topic}/inference?epoch={e}"),
        None => format!("/v1/topics/{topic}/inference"),
    };
    let inf = node.get(&path).await?;
    let state = match inf.get("finalized").and_then(Value::as_bool) {
        Some(true) => format!(
            "finalized at checkpoint {}",
            field(&inf, "checkpoint_height")
        ),
        Some(false) => "local (not yet finalized)".to_owned(),
        None => "-".to_owned(),
    };
    let mut text = pairs(&[
        ("topic", field(&inf, "topic")),
        ("epoch", field(&inf, "epoch")),
        ("state", state),
        ("combined value", field(&inf, "combined_value")),
        ("naive value", field(&inf, "naive_value")),
        (
            "confidence interval",
            field(&inf, "confidence_interval_values"),
        ),
    ]);
    let maps = [
        "inferer_values",
        "inferer_weights",
        "forecaster_values",
        "forecaster_weights",
    ];
    let workers: BTreeSet<&String> = maps.iter().flat_map(|m| keys(inf.get(*m))).collect();
    if !workers.is_empty() {
        let rows: Vec<Vec<String>> = workers
            .iter()
            .map(|w| {
                std::iter::once((*w).clone())
                    .chain(
                        maps.iter()
                            .map(|m| cell(inf.get(*m).and_then(|x| x.get(w.as_str())))),
                    )
                    .collect()
            })
            .collect();
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
    out.print(&text, &inf)
}

/// `chorus scores TOPIC`.
pub async fn scores(node: &NodeClient, topic: u64, out: &Output) -> anyhow::Result<()> {
    let s = node.get(&format!("/v1/topics/{topic}/scores")).await?;
    let regrets = s.get("regrets");
    let regret = |kind: &str| regrets.and_then(|r| r.get(kind));
    let score_maps = [
        s.get("inferers"),
        s.get("forecasters"),
        s.get("reputers"),
        s.get("listening_coefficients"),
        regret("inferer"),
        regret("forecaster"),
        regret("naive"),
    ];
    let actors: BTreeSet<&String> = score_maps.iter().flat_map(|m| keys(*m)).collect();
    let mut text = pairs(&[
        ("topic", field(&s, "topic")),
        ("previous network loss", field(&s, "previous_network_loss")),
        ("initial regret", field(&s, "initial_regret")),
    ]);
    if !actors.is_empty() {
        let rows: Vec<Vec<String>> = actors
            .iter()
            .map(|a| {
                std::iter::once((*a).clone())
                    .chain(
                        score_maps
                            .iter()
                            .map(|m| cell(m.and_then(|x| x.get(a.as_str())))),
                    )
                    .collect()
            })
            .collect();
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
    out.print(&text, &s)
}

/// `chorus leaderboard TOPIC`.
pub async fn leaderboard(node: &NodeClient, topic: u64, out: &Output) -> anyhow::Result<()> {
    let b = node.get(&format!("/v1/topics/{topic}/leaderboard")).await?;
    let entries = b
        .get("entries")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if entries.is_empty() {
        return out.print(&format!("topic {topic}: no scored actors yet"), &b);
    }
    let rows: Vec<Vec<String>> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            vec![
                (i + 1).to_string(),
                field(e, "address"),
                field(e, "role"),
                field(e, "score_ema"),
                field(e, "rewards"),
            ]
        })
        .collect();
    out.print(
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
    let status = node.get("/v1/status").await?;
    status
        .get("address")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("the node's status has no address"))
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
    let a = node.get(&format!("/v1/accounts/{who}")).await?;
    let text = match view {
        AccountView::Rewards => pairs(&[("address", who), ("rewards", field(&a, "rewards"))]),
        AccountView::Balance => {
            let mut text = pairs(&[
                ("address", who),
                ("balance", field(&a, "balance")),
                ("bond", field(&a, "bond")),
                ("rewards", field(&a, "rewards")),
                (
                    "nonce",
                    format!("{} (next {})", field(&a, "nonce"), field(&a, "next_nonce")),
                ),
            ]);
            let stakes = a
                .get("stakes")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if !stakes.is_empty() {
                let rows: Vec<Vec<String>> = stakes
                    .iter()
                    .map(|s| vec![field(s, "topic"), field(s, "reputer"), field(s, "amount")])
                    .collect();
                text.push_str("\n\nstakes:\n");
                text.push_str(&table(&["topic", "reputer", "amount"], &rows));
            }
            text
        }
    };
    out.print(&text, &a)
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
                    println!("{data}");
                } else {
                    println!("{}", inference_line(&data));
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
}
