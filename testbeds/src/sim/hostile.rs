//! A hostile author at the automerge level: changes that delete or overwrite other authors'
//! keys, nest objects, belong to another window or network, or are mutants of valid changes,
//! offered directly ([`Window::receive_change`]) and through the sync protocol
//! ([`Window::receive_sync`], from a hostile peer whose document holds them).
//!
//! Two paths:
//! - **Live replicas** ([`hostile_sync_message`]): during the fault phase a byzantine node
//!   sends honest replicas crafted automerge sync requests (`Request::Sync`, the only
//!   message that carries raw changes) holding every hostile change against one of their open
//!   windows; the runner then requires that no hostile change hash ever appears in any
//!   window or finalized head.
//! - **Windows** ([`gauntlet`]): at the end of each seed, a real window rebuilt from a node's
//!   store is attacked directly (`Window::receive_change`, a crafted message, and a full sync
//!   session with a hostile peer whose document holds the deletion), and must refuse every
//!   hostile change, keep its heads and root, still save and load, end the hostile session by
//!   its stop rule, and still converge with an honest peer.

use automerge::sync::{self, SyncDoc};
use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ActorId, AutoCommit, Automerge, ObjType, ROOT};
use chorus_crdt::replica::sim::SimRng;
use chorus_crdt::replica::sim::byzantine::mutate;
use chorus_crdt::window::sync::{SyncSession, sync_pair};
use chorus_crdt::window::{Insert, Window, WindowKey, actor_of, build_change, slot_key};
use chorus_protocol::envelope::Envelope;
use chorus_protocol::ids::{Hash32, NetworkId};
use chorus_protocol::keys::Keypair;
use chorus_protocol::messages::{Payload, WorkerBundle};

/// Most messages one hostile sync session may take before it must have stopped.
const MAX_SESSION_MESSAGES: usize = 16;

/// What the hostile author did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostileReport {
    /// Window gauntlet: hostile changes offered (directly and by sync).
    pub offered: u64,
    /// Window gauntlet: refused.
    pub refused: u64,
    /// Crafted sync messages sent to live replicas.
    pub sync_messages: u64,
    /// Hostile changes in them (none may be held anywhere at the end).
    pub sync_changes: u64,
}

/// Rebuild a window from stored envelope bytes.
pub fn rebuild(
    key: WindowKey,
    network: NetworkId,
    envelopes: &[Vec<u8>],
) -> Result<Window, String> {
    let mut entries = vec![];
    for b in envelopes {
        let env = Envelope::from_bytes(b).map_err(|e| format!("stored envelope: {e}"))?;
        let payload = env
            .open(&network)
            .map_err(|e| format!("stored envelope: {e}"))?;
        entries.push((env, payload));
    }
    Window::rebuild(key, network, entries).map_err(|e| format!("rebuild: {e}"))
}

/// The hostile changes against `w`, built by `hostile`.
fn hostile_changes(
    w: &Window,
    hostile: &Keypair,
    network: &NetworkId,
    rng: &mut SimRng,
) -> Result<Vec<(String, Vec<u8>)>, String> {
    let am = |e: automerge::AutomergeError| e.to_string();
    let mut out = vec![];
    let slots: Vec<String> = w.entries().map(|e| e.slot.clone()).collect();
    let actor = ActorId::from(&Hash32::of(&hostile.public().0).0[..16]);
    // Deletes every other author's key (deps on, and preds into, their changes).
    let mut doc = AutoCommit::load(&w.save())
        .map_err(am)?
        .with_actor(actor.clone());
    for s in &slots {
        doc.delete(ROOT, s.as_str()).map_err(am)?;
    }
    doc.commit_with(CommitOptions::default().with_time(0));
    if let Some(c) = doc.get_last_local_change() {
        out.push(("delete others' keys".into(), c.raw_bytes().to_vec()));
    }
    // One delete only.
    if let Some(s) = slots.first() {
        let mut doc = AutoCommit::load(&w.save())
            .map_err(am)?
            .with_actor(actor.clone());
        doc.delete(ROOT, s.as_str()).map_err(am)?;
        doc.commit_with(CommitOptions::default().with_time(0));
        if let Some(c) = doc.get_last_local_change() {
            out.push(("delete one key".into(), c.raw_bytes().to_vec()));
        }
    }
    // A validly signed envelope of the hostile author for this window, if it is a worker
    // window (the attack does not need the author to be registered).
    let own = match w.key() {
        WindowKey::Topic { topic, epoch, .. } => Some(Payload::WorkerBundle(WorkerBundle {
            topic: *topic,
            epoch: *epoch,
            inference: Some(0.0),
            forecasts: vec![],
        })),
        WindowKey::Ledger { .. } => None,
    };
    if let Some(payload) = own.filter(|p| w.key().accepts(p)) {
        let env = Envelope::seal(hostile, network, &payload).to_bytes();
        // Its own envelope under another author's key (overwrite). Not its own slot: the
        // canonical change of its own signed bundle is a legitimate entry.
        let own = hostile.public().to_hex();
        if let Some(s) = slots.iter().find(|s| !s.starts_with(&own)) {
            let c = build_change(s, &hostile.public(), &env).map_err(|e| e.to_string())?;
            out.push(("overwrite another key".into(), c.raw_bytes().to_vec()));
        }
        // Its own slot, but a nested object holding the envelope.
        let mut doc = AutoCommit::new().with_actor(actor_of(&hostile.public(), &env));
        let slot = slot_key(&hostile.public(), &payload);
        let obj = doc
            .put_object(ROOT, slot.as_str(), ObjType::Map)
            .map_err(am)?;
        doc.put(&obj, "envelope", env.clone()).map_err(am)?;
        doc.commit_with(CommitOptions::default().with_time(0));
        if let Some(c) = doc.get_last_local_change() {
            out.push(("nested object".into(), c.raw_bytes().to_vec()));
        }
        // Signed for another network.
        let foreign = Envelope::seal(hostile, &Hash32([0xEE; 32]), &payload).to_bytes();
        let c = build_change(&slot, &hostile.public(), &foreign).map_err(|e| e.to_string())?;
        out.push(("another network".into(), c.raw_bytes().to_vec()));
    }
    // Mutants of valid changes (each must fail to parse, or be refused as non-canonical).
    for (k, e) in w.entries().take(4).enumerate() {
        for m in 0..3 {
            out.push((format!("mutant {k}.{m}"), mutate(e.change.raw_bytes(), rng)));
        }
    }
    out.push(("garbage".into(), rng.bytes(200)));
    Ok(out)
}

/// A hostile change's hash and what the attack was.
pub type Labelled = (Hash32, String);

/// A crafted sync message for `w` carrying every hostile change (built against `w`'s
/// current content), and the hashes of those changes that `w` does not hold (to look for them
/// later), each with the name of its attack.
pub fn hostile_sync_message(
    w: &Window,
    hostile: &Keypair,
    network: &NetworkId,
    rng: &mut SimRng,
) -> Result<(Vec<u8>, Vec<Labelled>), String> {
    let changes = hostile_changes(w, hostile, network, rng)?;
    // A mutant that only damaged a chunk's checksum parses to the honest change it copies:
    // only changes the window does not hold are hostile.
    let hashes = changes
        .iter()
        .filter_map(|(what, raw)| {
            automerge::Change::try_from(raw.as_slice())
                .ok()
                .map(|c| (Hash32(c.hash().0), what.clone()))
        })
        .filter(|(h, _)| !w.contains(h))
        .collect();
    let bytes = sync_message_carrying(w, changes.into_iter().map(|(_, raw)| raw).collect())?;
    Ok((bytes, hashes))
}

/// A sync message for `w` (built against its content, as its peer's first message would be)
/// carrying `changes` instead of what it would carry.
pub fn sync_message_carrying(w: &Window, changes: Vec<Vec<u8>>) -> Result<Vec<u8>, String> {
    let doc = Automerge::load(&w.save()).map_err(|e| e.to_string())?;
    let mut msg = doc
        .generate_sync_message(&mut sync::State::new())
        .ok_or("no sync message")?;
    msg.changes = sync::ChunkList::from(changes);
    Ok(msg.encode())
}

/// Run the gauntlet against a window rebuilt from `envelopes`. `Err` names what got through.
pub fn gauntlet(
    key: WindowKey,
    network: NetworkId,
    envelopes: &[Vec<u8>],
    hostile: &Keypair,
    rng: &mut SimRng,
) -> Result<HostileReport, String> {
    let mut w = rebuild(key, network, envelopes)?;
    let heads = w.heads();
    let root = w.root();
    let changes = hostile_changes(&w, hostile, &network, rng)?;
    let mut report = HostileReport::default();
    // Offered directly.
    for (what, raw) in &changes {
        report.offered += 1;
        match w.receive_change(raw) {
            // A mutant that only damaged the chunk's checksum parses to a change we hold:
            // a no-op, not an acceptance.
            Err(_) | Ok(Insert::Duplicate) => report.refused += 1,
            Ok(insert) => {
                return Err(format!("hostile change ({what}) was taken: {insert:?}"));
            }
        }
    }
    w.flush();
    if w.heads() != heads || w.root() != root {
        return Err("hostile changes altered the window".into());
    }
    // In one crafted sync message, with the honest sync state.
    let mut session = SyncSession::new();
    if let Some(first) = w.sync_message(&mut session) {
        let mut msg = sync::Message::decode(&first).map_err(|e| e.to_string())?;
        msg.changes =
            sync::ChunkList::from(changes.iter().map(|(_, c)| c.clone()).collect::<Vec<_>>());
        let receipt = w
            .receive_sync(&mut session, &msg.encode())
            .map_err(|e| format!("crafted sync message: {e}"))?;
        report.offered += changes.len() as u64;
        report.refused += receipt.rejected as u64;
        if receipt.applied > 0 {
            return Err(format!(
                "a crafted sync message applied {}",
                receipt.applied
            ));
        }
    }
    if w.receive_sync(&mut session, &rng.bytes(64)).is_ok() {
        return Err("garbage was taken as a sync message".into());
    }
    // From a hostile peer whose document holds the deletion: a real sync session.
    let mut peer = Automerge::load(&w.save()).map_err(|e| e.to_string())?;
    if let Some((_, raw)) = changes.first() {
        let change = automerge::Change::try_from(raw.as_slice()).map_err(|e| e.to_string())?;
        peer.apply_changes([change]).map_err(|e| e.to_string())?;
    }
    let (mut ours, mut theirs) = (SyncSession::new(), sync::State::new());
    let mut messages = 0;
    loop {
        let mut progressed = false;
        if let Some(m) = peer.generate_sync_message(&mut theirs) {
            progressed = true;
            messages += 1;
            if let Ok(r) = w.receive_sync(&mut ours, &m.encode()) {
                report.offered += (r.applied + r.rejected) as u64;
                report.refused += r.rejected as u64;
            }
        }
        if let Some(m) = w.sync_message(&mut ours) {
            progressed = true;
            messages += 1;
            let decoded = sync::Message::decode(&m).map_err(|e| e.to_string())?;
            let _ = peer.receive_sync_message(&mut theirs, decoded);
        }
        if !progressed || ours.is_finished() {
            break;
        }
        if messages > MAX_SESSION_MESSAGES {
            return Err(format!(
                "a hostile sync session ran past {MAX_SESSION_MESSAGES} messages"
            ));
        }
    }
    w.flush();
    if w.heads() != heads || w.root() != root {
        return Err("a hostile sync session altered the window".into());
    }
    Automerge::load(&w.save()).map_err(|e| format!("the window no longer loads: {e}"))?;
    // Honest sync through the same window still converges.
    let half = envelopes.len() / 2;
    let mut other = rebuild(key, network, &envelopes[..half])?;
    sync_pair(&mut w, &mut other, 64);
    other.flush();
    if other.root() != root {
        return Err("honest sync did not converge after the hostile sessions".into());
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chorus_crdt::window::Phase;
    use chorus_protocol::ids::TopicId;

    #[test]
    fn every_hostile_change_is_refused_and_the_window_survives() {
        let network = Hash32([3; 32]);
        let key = WindowKey::Topic {
            topic: TopicId(1),
            epoch: 4,
            phase: Phase::Workers,
        };
        let envelopes: Vec<Vec<u8>> = (0..6u8)
            .map(|i| {
                let p = Payload::WorkerBundle(WorkerBundle {
                    topic: TopicId(1),
                    epoch: 4,
                    inference: Some(f64::from(i)),
                    forecasts: vec![],
                });
                Envelope::seal(&Keypair::from_seed(&[i + 1; 32]), &network, &p).to_bytes()
            })
            .collect();
        let hostile = Keypair::from_seed(&[99; 32]);
        let mut rng = SimRng::seeded(1);
        let report = gauntlet(key, network, &envelopes, &hostile, &mut rng).unwrap();
        assert!(report.offered >= 20, "{report:?}");
        assert_eq!(report.offered, report.refused, "{report:?}");
    }
}
