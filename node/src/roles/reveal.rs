//! Commit-reveal for the worker role. In a topic with a reveal phase
//! ([`TopicSpec::reveal_window`]) the bundle made in the submission window stays here, sealed:
//! a commitment to it is published instead, and the bundle with its salt once the reveal phase
//! has opened, so nobody can copy the inference while the window is open. A reveal waits the
//! network's clock-skew allowance after the submission window's close (plus the worker's
//! jitter): no honest node admits a commitment any more by then, by gossip or by sync, so a
//! reveal seen cannot be copied into a late commitment.

use chorus_protocol::ids::{Hash32, TopicId};
use chorus_protocol::messages::{Payload, WorkerBundle, WorkerCommit, WorkerReveal};
use chorus_protocol::topic::TopicSpec;

use tokio::sync::mpsc;

use super::{RoleOutput, WorkerTask, jitter, skipped};
use crate::clock::Clock;
use crate::metrics::NodeMetrics;

/// A fresh random salt key (the time if the OS has no randomness: still unknown to peers
/// before the commitment is published, which is all a salt needs to be).
pub(super) fn random_salt_key() -> [u8; 32] {
    let mut key = [0u8; 32];
    if getrandom::fill(&mut key).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        key = blake3::derive_key("chorus worker commit salt v1 (clock)", &nanos.to_le_bytes());
    }
    key
}

/// The salt of `(topic, epoch)` under `key`: unpredictable without the key, the same for the
/// same epoch.
pub(super) fn salt(key: &[u8; 32], topic: TopicId, epoch: u64) -> Hash32 {
    let input = [topic.0.to_le_bytes(), epoch.to_le_bytes()].concat();
    Hash32(*blake3::keyed_hash(key, &input).as_bytes())
}

/// A bundle committed to and not revealed yet.
#[derive(Debug)]
pub(super) struct Sealed {
    /// Its epoch.
    pub epoch: u64,
    reveal: WorkerReveal,
}

/// The commitment to publish for `bundle`, and the sealed bundle to reveal later.
pub(super) fn seal(task: &WorkerTask, bundle: WorkerBundle) -> (Payload, Sealed) {
    let salt = salt(&task.salt_key, bundle.topic, bundle.epoch);
    let reveal = WorkerReveal { bundle, salt };
    let commit = Payload::WorkerCommit(WorkerCommit {
        topic: reveal.bundle.topic,
        epoch: reveal.bundle.epoch,
        commitment: reveal.commitment(),
    });
    let epoch = reveal.bundle.epoch;
    (commit, Sealed { epoch, reveal })
}

/// What to do with a sealed bundle now.
#[derive(Debug)]
pub(super) enum Due {
    /// Wait this many ms.
    Wait(u64),
    /// Publish this reveal.
    Reveal(Box<Payload>),
    /// Its reveal phase is over (or the topic has none any more): the epoch is missed.
    Missed,
}

/// When `sealed` is revealed (`now` = (time, the clock-skew allowance)): the reveal phase's
/// open plus the allowance (at most half the phase, should governance have raised the
/// allowance since the topic was made) plus the worker's jitter (at most half of what is left),
/// never after the phase's close.
pub(super) fn due(
    spec: &TopicSpec,
    task: &WorkerTask,
    sealed: &Sealed,
    (now_ms, skew_ms): (u64, u64),
) -> Due {
    let Some((open, close)) = spec.reveal_window(sealed.epoch) else {
        return Due::Missed;
    };
    let earliest = open + skew_ms.min((close - open) / 2);
    let spread = task.jitter_ms.min((close - earliest) / 2);
    let at = earliest + jitter(&task.me, sealed.epoch, spread);
    if now_ms >= close {
        Due::Missed
    } else if now_ms >= at {
        Due::Reveal(Box::new(Payload::WorkerReveal(sealed.reveal.clone())))
    } else {
        Due::Wait(at - now_ms)
    }
}

/// Wait for, publish or give up the bundle in `sealed` (emptied once published or missed):
/// one step of the worker's loop. `Err` when the actor is gone.
pub(super) async fn handle(
    sealed: &mut Option<Sealed>,
    (spec, task): (&TopicSpec, &WorkerTask),
    now: (u64, u64),
    clock: &Clock,
    (out, metrics): (&mpsc::Sender<RoleOutput>, &NodeMetrics),
) -> Result<(), ()> {
    let Some(s) = sealed.as_ref() else {
        return Ok(());
    };
    let epoch = s.epoch;
    match due(spec, task, s, now) {
        Due::Wait(ms) => {
            clock.sleep_ms(ms).await;
            Ok(())
        }
        Due::Reveal(payload) => {
            *sealed = None;
            out.send(RoleOutput::Publish(payload)).await.map_err(|_| ())
        }
        Due::Missed => {
            *sealed = None;
            tracing::warn!(
                topic = %task.topic,
                epoch,
                "the reveal phase ended before the bundle was revealed: epoch missed"
            );
            let kind = (task.topic, epoch, "worker_reveal");
            skipped(out, metrics, kind, "reveal_late").await
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chorus_protocol::keys::Keypair;
    use chorus_protocol::topic::LossMethod;

    fn task(salt_seed: u8) -> WorkerTask {
        let me = Keypair::from_seed(&[7; 32]).public();
        WorkerTask::build(TopicId(1), me, None, None, None, None, 1_000)
            .unwrap()
            .with_salt_key(&[salt_seed; 32])
    }

    fn bundle(epoch: u64) -> WorkerBundle {
        WorkerBundle {
            topic: TopicId(1),
            epoch,
            inference: Some(0.5),
            forecasts: vec![],
        }
    }

    /// The commitment opens to the bundle with the published salt, salts differ per epoch and
    /// per key, and the same key gives the same salt again (a restart commits the same way).
    #[test]
    fn a_sealed_bundle_reveals_what_was_committed() {
        let (commit, sealed) = seal(&task(1), bundle(3));
        let Payload::WorkerCommit(c) = commit else {
            panic!("a commitment")
        };
        assert_eq!((c.topic, c.epoch), (TopicId(1), 3));
        assert_eq!(c.commitment, sealed.reveal.commitment());
        assert_eq!(sealed.reveal.bundle, bundle(3));
        let (again, _) = seal(&task(1), bundle(3));
        assert_eq!(again, Payload::WorkerCommit(c.clone()));
        let (other_epoch, _) = seal(&task(1), bundle(4));
        let (other_key, _) = seal(&task(2), bundle(3));
        for other in [other_epoch, other_key] {
            let Payload::WorkerCommit(o) = other else {
                panic!("a commitment")
            };
            assert_ne!(o.commitment, c.commitment);
        }
        assert_ne!(
            salt(&task(1).salt_key, TopicId(1), 3),
            salt(&task(1).salt_key, TopicId(2), 3)
        );
    }

    /// Revealed in the reveal phase only, and not before the clock-skew allowance has passed
    /// after its open: before that the worker waits, after the phase the epoch is missed, and a
    /// topic without commit-reveal reveals nothing.
    #[test]
    fn reveals_wait_for_the_phase_and_never_come_late() {
        let t = task(1);
        let spec = TopicSpec {
            reveal_window_ms: 20_000,
            ..TopicSpec::new("t", LossMethod::Mse, 0, 60_000, 30_000, 60_000)
        };
        let (open, close) = spec.reveal_window(2).unwrap();
        let skew = 1_000;
        let at = open + skew + jitter(&t.me, 2, 1_000);
        let sealed = || seal(&t, bundle(2)).1;
        let due = |spec: &TopicSpec, now| due(spec, &t, &sealed(), (now, skew));
        assert!(matches!(due(&spec, open - 5), Due::Wait(ms) if ms == at - open + 5));
        assert!(matches!(due(&spec, open + skew - 1), Due::Wait(_)));
        assert!(matches!(due(&spec, at - 1), Due::Wait(1)));
        assert!(matches!(due(&spec, at), Due::Reveal(p)
            if matches!(&*p, Payload::WorkerReveal(r) if r.bundle == bundle(2))));
        assert!(matches!(due(&spec, close - 1), Due::Reveal(_)));
        assert!(matches!(due(&spec, close), Due::Missed));
        let plain = TopicSpec {
            reveal_window_ms: 0,
            ..spec.clone()
        };
        assert!(matches!(due(&plain, open), Due::Missed));
    }
}
