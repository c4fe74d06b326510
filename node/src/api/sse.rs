//! Server-sent event streams: `GET /v1/topics/{id}/stream` (a topic's network inferences)
//! and `GET /v1/events` (what the ledger did at every finalized checkpoint: rewards, slashes,
//! emissions, applied and refused transactions).
//!
//! Each subscriber holds its own receiver of the node's inference broadcast (bounded by
//! [`INFERENCE_EVENTS`](crate::actor::handle::INFERENCE_EVENTS)): a subscriber that falls
//! behind skips ahead to the oldest event still buffered and receives one `lagged` event
//! `{"missed": n}` first. Streams end when the node's broadcast closes or the server shuts
//! down (see [`serve`](super::serve)).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query as QueryParams, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use chorus_protocol::ids::TopicId;
use futures::{Stream, StreamExt};
use tokio::sync::broadcast;

use super::ApiState;
use super::error::ApiError;
use super::routes::topic_id;
use crate::actor::{InferenceEvent, LedgerRecord, Query};

/// Comment lines sent on idle streams, so proxies and clients see a live connection between
/// epochs (epochs last seconds to hours).
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Event name of a network inference.
pub const INFERENCE_EVENT: &str = "inference";
/// Event name of a "you missed n events" notice.
pub const LAGGED_EVENT: &str = "lagged";
/// Event name of one checkpoint's ledger events.
pub const CHECKPOINT_EVENT: &str = "checkpoint";

/// The query string of `GET /v1/events`.
#[derive(Debug, serde::Deserialize)]
pub(super) struct EventsParams {
    /// Comma-separated event kinds to keep (`reward,slashed`); all if absent.
    kinds: Option<String>,
    /// Start after this height, as `Last-Event-ID` does (a browser's `EventSource` cannot send
    /// that header on its first request); `0`: every height the node still holds.
    after: Option<u64>,
}

/// `GET /v1/events[?kinds=reward,slashed,…]`: one `checkpoint` event
/// `{"height": h, "events": [...]}` with `id: h` per finalized height (heights whose events
/// are all filtered out are skipped). A client that reconnects with `Last-Event-ID: h` first
/// gets the held heights after `h` (and a `lagged` event if some are no longer held), then the
/// live ones; `?after=h` does the same on a first request (`Last-Event-ID` wins when both are
/// given). 503 if the node offers no ledger events.
pub(super) async fn ledger(
    State(state): State<ApiState>,
    headers: HeaderMap,
    params: Result<QueryParams<EventsParams>, QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let QueryParams(params) = params.map_err(|e| {
        ApiError::BadRequest(format!(
            "bad query: {} (expected ?kinds=reward,slashed,…&after=<height>)",
            e.body_text()
        ))
    })?;
    let kinds: Option<Vec<String>> = params.kinds.map(|k| {
        k.split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    });
    if let Some(bad) = kinds
        .iter()
        .flatten()
        .find(|k| !LEDGER_EVENT_KINDS.contains(&k.as_str()))
    {
        return Err(ApiError::BadRequest(format!(
            "unknown event kind {bad:?} (known: {})",
            LEDGER_EVENT_KINDS.join(", ")
        )));
    }
    let last = match headers.get("last-event-id") {
        None => params.after,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    ApiError::BadRequest("Last-Event-ID is not a checkpoint height".into())
                })?,
        ),
    };
    let log = state.handle.ledger_log().ok_or(ApiError::Unavailable)?;
    // Subscribe before reading the held records, so no height falls between the two.
    let rx = log.subscribe();
    let (replay, missed) = match last {
        Some(h) => log.since(h),
        None => (vec![], 0),
    };
    let after = replay.last().map(|r| r.height).or(last).unwrap_or(0);
    let lagged = (missed > 0).then(|| {
        Ok(json_event(
            LAGGED_EVENT,
            &serde_json::json!({ "missed": missed }),
        ))
    });
    let held = {
        let kinds = kinds.clone();
        replay
            .into_iter()
            .filter_map(move |rec| checkpoint_event(&rec, kinds.as_ref()).map(Ok))
    };
    let live = ledger_events(rx, kinds, after, last.is_some());
    let stream = futures::stream::iter(lagged.into_iter().chain(held)).chain(live);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

/// The `checkpoint` event of one height keeping only `kinds`, with the height as its id;
/// `None` when filtering leaves nothing.
fn checkpoint_event(rec: &LedgerRecord, kinds: Option<&Vec<String>>) -> Option<Event> {
    let events: Vec<serde_json::Value> = rec
        .events
        .iter()
        .filter_map(|e| serde_json::to_value(e).ok())
        .filter(|v| {
            kinds.is_none_or(|k| {
                v["event"]
                    .as_str()
                    .is_some_and(|t| k.iter().any(|k| k == t))
            })
        })
        .collect();
    if events.is_empty() && kinds.is_some() {
        return None;
    }
    let data = serde_json::json!({"height": rec.height, "events": events});
    Some(json_event(CHECKPOINT_EVENT, &data).id(rec.height.to_string()))
}

/// The `event` tags of [`LedgerEvent`](chorus_crdt::ledger::LedgerEvent).
pub const LEDGER_EVENT_KINDS: &[&str] = &[
    "applied",
    "refused",
    "slashed",
    "emission",
    "reward",
    "network_inference",
    "scored",
    "mechanism_error",
    "tallied",
];

/// The SSE events of the ledger broadcast above height `after`, keeping only `kinds` (all if
/// `None`). With `resumed` (the client sent `Last-Event-ID` and every held height was
/// replayed), a first live height beyond `after + 1` is preceded by a `lagged` event with the
/// heights in between (e.g. the node restarted and no longer holds them).
fn ledger_events(
    rx: broadcast::Receiver<LedgerRecord>,
    kinds: Option<Vec<String>>,
    after: u64,
    resumed: bool,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let state = (
        rx,
        resumed.then_some(after.saturating_add(1)),
        None::<LedgerRecord>,
    );
    futures::stream::unfold(state, move |(mut rx, mut expect, mut stash)| {
        let kinds = kinds.clone();
        async move {
            loop {
                let rec = match stash.take() {
                    Some(rec) => Ok(rec),
                    None => rx.recv().await,
                };
                let event = match rec {
                    Ok(rec) if rec.height <= after => continue,
                    Ok(rec) => {
                        if let Some(next) = expect.take()
                            && rec.height > next
                        {
                            let missed = rec.height - next;
                            stash = Some(rec);
                            json_event(LAGGED_EVENT, &serde_json::json!({ "missed": missed }))
                        } else {
                            match checkpoint_event(&rec, kinds.as_ref()) {
                                Some(e) => e,
                                None => continue,
                            }
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        json_event(LAGGED_EVENT, &serde_json::json!({ "missed": missed }))
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                };
                return Some((Ok(event), (rx, expect, stash)));
            }
        }
    })
}

/// `GET /v1/topics/{id}/stream`. 404 for an unknown topic, 503 if the node is gone.
pub(super) async fn stream(
    State(state): State<ApiState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let topic = topic_id(id)?;
    // Subscribe before asking, so nothing published after the check is missed.
    let rx = state.handle.subscribe();
    state.handle.query(Query::Topic(topic)).await?;
    Ok(Sse::new(events(rx, topic)).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

/// The SSE events of one topic from a broadcast receiver.
fn events(
    rx: broadcast::Receiver<InferenceEvent>,
    topic: TopicId,
) -> impl Stream<Item = Result<Event, Infallible>> {
    futures::stream::unfold(rx, move |mut rx| async move {
        loop {
            let event = match rx.recv().await {
                Ok(ev) if ev.topic == topic => json_event(INFERENCE_EVENT, &ev),
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    json_event(LAGGED_EVENT, &serde_json::json!({ "missed": missed }))
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            return Some((Ok(event), rx));
        }
    })
}

fn json_event<T: serde::Serialize>(name: &str, data: &T) -> Event {
    match Event::default().event(name).json_data(data) {
        Ok(e) => e,
        // Serializing these plain structs cannot fail; never break the stream over it.
        Err(e) => Event::default()
            .event("error")
            .data(format!("cannot encode event: {e}")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use futures::StreamExt;

    use super::*;

    fn ev(topic: u64, epoch: u64) -> InferenceEvent {
        InferenceEvent {
            topic: TopicId(topic),
            epoch,
            combined_value: 1.5,
            naive_value: None,
            finalized: false,
            checkpoint_height: None,
            time_ms: 7,
        }
    }

    #[tokio::test]
    async fn ledger_events_are_filtered_by_kind_and_empty_heights_skipped() {
        use chorus_crdt::ledger::LedgerEvent;
        use chorus_protocol::ids::Amount;
        use std::sync::Arc;
        let (tx, rx) = broadcast::channel(8);
        let s = ledger_events(rx, Some(vec!["reward".into()]), 0, false);
        let who = chorus_protocol::keys::Keypair::from_seed(&[1; 32]).public();
        let emission = LedgerEvent::Emission {
            minted: Amount(10),
            validators: Amount(5),
            topics: Amount(5),
        };
        tx.send(LedgerRecord {
            height: 1,
            events: Arc::new(vec![emission.clone()]),
        })
        .unwrap();
        tx.send(LedgerRecord {
            height: 2,
            events: Arc::new(vec![
                emission,
                LedgerEvent::Reward {
                    topic: TopicId(1),
                    epoch: 3,
                    to: who,
                    amount: Amount(7),
                    role: "inferer".into(),
                    paid_to: None,
                },
            ]),
        })
        .unwrap();
        drop(tx);
        let got: Vec<String> = s.map(|e| format!("{:?}", e.unwrap())).collect().await;
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].contains("event: checkpoint"), "{got:?}");
        assert!(got[0].contains("id: 2"), "{got:?}");
        assert!(got[0].contains(r#"\"height\":2"#), "{got:?}");
        assert!(got[0].contains(r#"\"event\":\"reward\""#), "{got:?}");
        assert!(!got[0].contains("emission"), "{got:?}");
    }

    #[tokio::test]
    async fn filters_by_topic_reports_lag_and_ends_when_closed() {
        let (tx, rx) = broadcast::channel(2);
        let s = events(rx, TopicId(1));
        tx.send(ev(2, 0)).unwrap();
        tx.send(ev(1, 1)).unwrap();
        tx.send(ev(1, 2)).unwrap();
        tx.send(ev(1, 3)).unwrap();
        drop(tx);
        let got: Vec<Event> = s.map(|e| e.unwrap()).collect().await;
        // Capacity 2, four sent: the first two are lost, then epochs 2 and 3 (topic 1 only).
        // `Event`'s Debug shows its wire bytes, escaped.
        let text: Vec<String> = got.iter().map(|e| format!("{e:?}")).collect();
        assert_eq!(text.len(), 3, "{text:?}");
        assert!(
            text[0].contains(r#"event: lagged\ndata: {\"missed\":2}"#),
            "{text:?}"
        );
        for (t, epoch) in text[1..].iter().zip([2, 3]) {
            assert!(t.contains("event: inference"), "{t}");
            assert!(
                t.contains(&format!(r#"\"topic\":1,\"epoch\":{epoch},"#)),
                "{t}"
            );
        }
    }
}
