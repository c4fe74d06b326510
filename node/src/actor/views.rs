//! Answers to queries: JSON documents built from the replica's state (shapes in `docs/api.md`).

use std::collections::BTreeMap;

use chorus_crdt::ledger::{Ledger, TopicState};
use chorus_crdt::replica::Replica;
use chorus_protocol::ids::TopicId;
use chorus_protocol::keys::PublicKey;
use chorus_protocol::math::synth_io::SynthJsonOutput;
use serde_json::{Value, json};

use super::handle::QueryError;

/// Network inferences kept in memory per topic (the newest epochs). Finalized ones are also
/// stored (`inferences` table), and older `?epoch=` queries are answered from the store: a
/// bundle of 20 workers takes ~14 KB in memory, so a long history per topic must not live here.
pub const INFERENCE_HISTORY: usize = 128;

/// A finalized (or local) network inference with where it came from.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct StoredInference {
    /// The bundle.
    pub bundle: SynthJsonOutput,
    /// Finalized by a checkpoint (else: local at window close).
    pub finalized: bool,
    /// The checkpoint height, if finalized.
    pub height: Option<u64>,
}

fn topic_json(id: TopicId, t: &TopicState, now_ms: u64) -> Value {
    let mut v = serde_json::to_value(&t.spec).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.insert("id".into(), json!(id.0));
        o.insert("creator".into(), json!(t.creator.to_hex()));
        o.insert("weight".into(), json!(t.weight));
        o.insert("active".into(), json!(t.active));
        o.insert("fee_revenue".into(), json!(t.fee_revenue.to_string()));
        o.insert("reward_pool".into(), json!(t.reward_pool.to_string()));
        o.insert("stake".into(), json!(t.total_stake().to_string()));
        o.insert("workers".into(), json!(t.workers.len()));
        o.insert("reputers".into(), json!(t.reputers.len()));
        o.insert("current_epoch".into(), json!(t.spec.epoch_at(now_ms)));
        o.insert(
            "last_finalized_epoch".into(),
            json!(t.next_worker_epoch.checked_sub(1)),
        );
    }
    v
}

/// `GET /v1/topics`.
pub fn topics(ledger: &Ledger, now_ms: u64) -> Value {
    Value::Array(
        ledger
            .topics
            .iter()
            .map(|(id, t)| topic_json(*id, t, now_ms))
            .collect(),
    )
}

pub(super) fn topic_of(ledger: &Ledger, id: TopicId) -> Result<&TopicState, QueryError> {
    ledger
        .topics
        .get(&id)
        .ok_or_else(|| QueryError::NotFound(format!("topic {id}")))
}

/// `GET /v1/topics/{id}`.
pub fn topic(ledger: &Ledger, id: TopicId, now_ms: u64) -> Result<Value, QueryError> {
    Ok(topic_json(id, topic_of(ledger, id)?, now_ms))
}

/// `GET /v1/topics/{id}/inference`.
pub fn inference(
    ledger: &Ledger,
    history: &BTreeMap<TopicId, BTreeMap<u64, StoredInference>>,
    id: TopicId,
    epoch: Option<u64>,
) -> Result<Value, QueryError> {
    topic_of(ledger, id)?;
    let h = history.get(&id);
    let found = match epoch {
        Some(e) => h.and_then(|m| m.get(&e).map(|s| (e, s))),
        None => h.and_then(|m| m.iter().next_back().map(|(e, s)| (*e, s))),
    };
    let Some((e, s)) = found else {
        return Err(no_inference(id, epoch));
    };
    Ok(inference_json(id, e, s))
}

/// The answer when no inference is held.
pub fn no_inference(id: TopicId, epoch: Option<u64>) -> QueryError {
    QueryError::NotFound(match epoch {
        Some(e) => format!("no inference of topic {id} epoch {e}"),
        None => format!("no inference of topic {id} yet"),
    })
}

/// One inference as the API shows it.
pub fn inference_json(id: TopicId, epoch: u64, s: &StoredInference) -> Value {
    let mut v = serde_json::to_value(&s.bundle).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.insert("topic".into(), json!(id.0));
        o.insert("epoch".into(), json!(epoch));
        o.insert("finalized".into(), json!(s.finalized));
        o.insert("checkpoint_height".into(), json!(s.height));
    }
    v
}

/// `GET /v1/topics/{id}/scores`.
pub fn scores(ledger: &Ledger, id: TopicId) -> Result<Value, QueryError> {
    let m = &topic_of(ledger, id)?.mechanism;
    Ok(json!({
        "topic": id.0,
        "inferers": m.ema.inferer,
        "forecasters": m.ema.forecaster,
        "reputers": m.ema.reputer,
        "regrets": {
            "inferer": m.regrets.inferer,
            "forecaster": m.regrets.forecaster,
            "naive": m.regrets.naive,
        },
        "initial_regret": m.initial_regret,
        "listening_coefficients": m.listening_coefficients,
        "previous_network_loss": m.previous_network_loss,
    }))
}

/// `GET /v1/topics/{id}/leaderboard`.
pub fn leaderboard(ledger: &Ledger, id: TopicId) -> Result<Value, QueryError> {
    let m = &topic_of(ledger, id)?.mechanism;
    let mut entries: Vec<(f64, String, &'static str)> = vec![];
    for (role, map) in [
        ("inferer", &m.ema.inferer),
        ("forecaster", &m.ema.forecaster),
        ("reputer", &m.ema.reputer),
    ] {
        for (k, s) in map {
            entries.push((*s, k.clone(), role));
        }
    }
    entries.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let rows: Vec<Value> = entries
        .into_iter()
        .map(|(s, k, role)| {
            let rewards = k
                .parse::<PublicKey>()
                .ok()
                .and_then(|pk| ledger.accounts.get(&pk))
                .map(|a| a.rewards.to_string())
                .unwrap_or_else(|| "0".into());
            json!({"address": k, "role": role, "score_ema": s, "rewards": rewards})
        })
        .collect();
    Ok(json!({"topic": id.0, "entries": rows}))
}

/// `GET /v1/accounts/{address}`.
pub fn account(replica: &Replica, who: &PublicKey, next_nonce: u64) -> Value {
    let ledger = replica.ledger();
    let a = ledger.accounts.get(who).cloned().unwrap_or_default();
    let stakes: Vec<Value> = ledger
        .topics
        .iter()
        .flat_map(|(id, t)| {
            t.stakes.iter().filter_map(move |(reputer, s)| {
                let amount = if reputer == who {
                    s.own
                } else {
                    s.delegated.get(who).copied()?
                };
                (amount.0 > 0).then(|| {
                    json!({"topic": id.0, "reputer": reputer.to_hex(), "amount": amount.to_string()})
                })
            })
        })
        .collect();
    json!({
        "address": who.to_hex(),
        "balance": a.balance.to_string(),
        "nonce": a.nonce,
        "next_nonce": next_nonce.max(a.nonce + 1),
        "rewards": a.rewards.to_string(),
        "bond": ledger.validators.get(who).map(|v| v.bond.to_string()).unwrap_or_else(|| "0".into()),
        "stakes": stakes,
    })
}

/// `GET /v1/checkpoints/latest`.
pub fn latest_checkpoint(replica: &Replica) -> Result<Value, QueryError> {
    let d = replica
        .engine()
        .tip()
        .ok_or_else(|| QueryError::NotFound("no checkpoint decided yet".into()))?;
    let cp = &d.checkpoint;
    Ok(json!({
        "height": cp.height,
        "id": d.id().0.to_hex(),
        "previous": cp.previous.to_hex(),
        "ledger_root": cp.ledger_root.to_hex(),
        "windows": cp.windows.len(),
        "entries": cp.windows.iter().map(|w| w.heads.len()).sum::<usize>(),
        "signers": d.certificate.signatures.len(),
    }))
}
