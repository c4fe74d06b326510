//! `GET /v1/topics/{id}/stream`: the topic's network inferences as server-sent events.
//!
//! Each subscriber holds its own receiver of the node's inference broadcast (bounded by
//! [`INFERENCE_EVENTS`](crate::actor::handle::INFERENCE_EVENTS)): a subscriber that falls
//! behind skips ahead to the oldest event still buffered and receives one `lagged` event
//! `{"missed": n}` first. Streams end when the node's broadcast closes or the server shuts
//! down (see [`serve`](super::serve)).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use chorus_protocol::ids::TopicId;
use futures::Stream;
use tokio::sync::broadcast;

use super::ApiState;
use super::error::ApiError;
use super::routes::topic_id;
use crate::actor::{InferenceEvent, Query};

/// Comment lines sent on idle streams, so proxies and clients see a live connection between
/// epochs (epochs last seconds to hours).
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Event name of a network inference.
pub const INFERENCE_EVENT: &str = "inference";
/// Event name of a "you missed n events" notice.
pub const LAGGED_EVENT: &str = "lagged";

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
