//! How the devnet watches its network: through a node's in-process handle (one-process mode)
//! or through its REST API (`--processes`: `/v1/topics/{id}/stream`, `/v1/events`, JSON reads).
//! Either way the run sees the same things: finalized inferences, the ledger's rewards, and
//! each node's status.

use anyhow::{Context, bail};
use chorus_crdt::ledger::LedgerEvent;
use chorus_node::actor::{InferenceEvent, NodeHandle};
use chorus_node::api::client::{EventStream, NodeClient};
use chorus_node::api::types;
use chorus_protocol::ids::TopicId;
use serde_json::Value;
use tokio::sync::{broadcast, mpsc};

/// Something the observed node reported.
#[derive(Debug)]
pub enum Observed {
    /// A network inference (local or finalized).
    Inference(InferenceEvent),
    /// The ledger events of one finalized height.
    Ledger {
        /// Height.
        height: u64,
        /// Events.
        events: Vec<LedgerEvent>,
    },
    /// `n` events were missed (the observer fell behind).
    Lagged(u64),
    /// The node went away.
    Closed(String),
}

/// One node, seen from the devnet.
pub enum Source {
    /// In the same process.
    Local(NodeHandle),
    /// Another process, through its REST API.
    Remote(NodeClient),
}

impl Source {
    /// `GET /v1/status`.
    pub async fn status(&self) -> anyhow::Result<types::Status> {
        Ok(match self {
            Source::Local(h) => h.status().await?,
            Source::Remote(c) => c.get("/v1/status").await?,
        })
    }

    /// `GET /v1/topics/{id}/scores`.
    pub async fn scores(&self, topic: TopicId) -> anyhow::Result<types::Scores> {
        Ok(match self {
            Source::Local(h) => h.scores(topic).await?,
            Source::Remote(c) => c.get(&format!("/v1/topics/{topic}/scores")).await?,
        })
    }

    /// `GET /v1/topics/{id}`.
    pub async fn topic(&self, topic: TopicId) -> anyhow::Result<types::Topic> {
        Ok(match self {
            Source::Local(h) => h.topic(topic).await?,
            Source::Remote(c) => c.get(&format!("/v1/topics/{topic}")).await?,
        })
    }

    /// `GET /v1/topics/{id}/inference?epoch=E`.
    pub async fn inference(&self, topic: TopicId, epoch: u64) -> anyhow::Result<types::Inference> {
        let path = format!("/v1/topics/{topic}/inference?epoch={epoch}");
        Ok(match self {
            Source::Local(h) => h.inference(topic, Some(epoch)).await?,
            Source::Remote(c) => c.get(&path).await?,
        })
    }

    /// Start watching the inferences of `topics` and the ledger's rewards and mechanism
    /// errors. Subscribes before returning, so nothing published afterwards is missed.
    pub async fn watch(&self, topics: &[TopicId]) -> anyhow::Result<mpsc::Receiver<Observed>> {
        let (tx, rx) = mpsc::channel(4_096);
        match self {
            Source::Local(h) => {
                let inferences = h.subscribe();
                let ledger = h
                    .subscribe_ledger()
                    .context("the node offers no ledger events")?;
                tokio::spawn(forward_inferences(inferences, tx.clone()));
                tokio::spawn(forward_ledger(ledger, tx));
            }
            Source::Remote(c) => {
                for t in topics {
                    let stream = c.events(&format!("/v1/topics/{t}/stream")).await?;
                    tokio::spawn(forward_sse(stream, tx.clone()));
                }
                let stream = c.events("/v1/events?kinds=reward,mechanism_error").await?;
                tokio::spawn(forward_sse(stream, tx));
            }
        }
        Ok(rx)
    }
}

async fn forward_inferences(
    mut rx: broadcast::Receiver<InferenceEvent>,
    tx: mpsc::Sender<Observed>,
) {
    loop {
        let o = match rx.recv().await {
            Ok(ev) => Observed::Inference(ev),
            Err(broadcast::error::RecvError::Lagged(n)) => Observed::Lagged(n),
            Err(broadcast::error::RecvError::Closed) => Observed::Closed("node 0 stopped".into()),
        };
        let closed = matches!(o, Observed::Closed(_));
        if tx.send(o).await.is_err() || closed {
            return;
        }
    }
}

async fn forward_ledger(
    mut rx: broadcast::Receiver<chorus_node::actor::LedgerRecord>,
    tx: mpsc::Sender<Observed>,
) {
    loop {
        let o = match rx.recv().await {
            Ok(rec) => Observed::Ledger {
                height: rec.height,
                events: rec.events.to_vec(),
            },
            Err(broadcast::error::RecvError::Lagged(n)) => Observed::Lagged(n),
            Err(broadcast::error::RecvError::Closed) => Observed::Closed("node 0 stopped".into()),
        };
        let closed = matches!(o, Observed::Closed(_));
        if tx.send(o).await.is_err() || closed {
            return;
        }
    }
}

/// Forward a REST event stream until it ends (then report [`Observed::Closed`]).
async fn forward_sse(mut stream: EventStream, tx: mpsc::Sender<Observed>) {
    loop {
        let o = match stream.next().await {
            Ok(Some(ev)) => match parse_sse(&ev.event, &ev.data) {
                Ok(Some(o)) => o,
                Ok(None) => continue,
                Err(e) => Observed::Closed(format!("bad event from node 0: {e:#}")),
            },
            Ok(None) => Observed::Closed("node 0 ended its event stream".into()),
            Err(e) => Observed::Closed(format!("node 0's event stream broke: {e:#}")),
        };
        let closed = matches!(o, Observed::Closed(_));
        if tx.send(o).await.is_err() || closed {
            return;
        }
    }
}

/// One server-sent event of `/v1/topics/{id}/stream` or `/v1/events`.
fn parse_sse(event: &str, data: &str) -> anyhow::Result<Option<Observed>> {
    Ok(Some(match event {
        "inference" => Observed::Inference(serde_json::from_str(data)?),
        "checkpoint" => {
            #[derive(serde::Deserialize)]
            struct Checkpoint {
                height: u64,
                events: Vec<LedgerEvent>,
            }
            let c: Checkpoint = serde_json::from_str(data)?;
            Observed::Ledger {
                height: c.height,
                events: c.events,
            }
        }
        "lagged" => {
            let v: Value = serde_json::from_str(data)?;
            Observed::Lagged(v["missed"].as_u64().unwrap_or(0))
        }
        "error" => bail!("{data}"),
        _ => return Ok(None),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_events_parse_into_what_the_devnet_observes() {
        let inf = r#"{"topic":1,"epoch":41,"combined_value":0.5,"naive_value":null,"finalized":true,"checkpoint_height":9,"time_ms":1}"#;
        match parse_sse("inference", inf).unwrap() {
            Some(Observed::Inference(ev)) => {
                assert_eq!((ev.topic, ev.epoch, ev.finalized), (TopicId(1), 41, true));
                assert_eq!(ev.checkpoint_height, Some(9));
            }
            other => panic!("{other:?}"),
        }
        let who = chorus_protocol::keys::Keypair::from_seed(&[3; 32])
            .public()
            .to_hex();
        let ck = format!(
            r#"{{"height":57,"events":[{{"event":"reward","topic":1,"epoch":55,"to":"{who}","amount":"1250000","role":"inferer"}}]}}"#
        );
        match parse_sse("checkpoint", &ck).unwrap() {
            Some(Observed::Ledger { height, events }) => {
                assert_eq!(height, 57);
                assert!(matches!(
                    &events[..],
                    [LedgerEvent::Reward { epoch: 55, amount, .. }] if amount.0 == 1_250_000
                ));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_sse("lagged", r#"{"missed":3}"#).unwrap(),
            Some(Observed::Lagged(3))
        ));
        assert!(parse_sse("something-new", "{}").unwrap().is_none());
        assert!(parse_sse("inference", "{not json").is_err());
        assert!(parse_sse("error", "cannot encode").is_err());
    }
}
