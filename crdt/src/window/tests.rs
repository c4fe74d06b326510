#![allow(clippy::unwrap_used)]

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{AutoCommit, ROOT, ScalarValue};
use chorus_protocol::envelope::Envelope;
use chorus_protocol::ids::{Amount, Hash32, TopicId};
use chorus_protocol::keys::Keypair;
use chorus_protocol::messages::{Payload, Transfer, WorkerBundle};

use super::sync::{SyncSession, sync_pair};
use super::*;

fn net() -> Hash32 {
    Hash32([3; 32])
}

fn wkey() -> WindowKey {
    WindowKey::Topic {
        topic: TopicId(1),
        epoch: 4,
        phase: Phase::Workers,
    }
}

fn bundle(value: f64) -> Payload {
    Payload::WorkerBundle(WorkerBundle {
        topic: TopicId(1),
        epoch: 4,
        inference: Some(value),
        forecasts: vec![],
    })
}

fn entry(seed: u8, value: f64) -> Entry {
    let p = bundle(value);
    let env = Envelope::seal(&Keypair::from_seed(&[seed; 32]), &net(), &p);
    entry_from_envelope(&wkey(), env, p).unwrap()
}

fn window_with(seeds: impl IntoIterator<Item = u8>) -> Window {
    let mut w = Window::new(wkey(), net());
    for s in seeds {
        w.insert(entry(s, f64::from(s)));
    }
    w.flush();
    w
}

#[test]
fn the_change_of_an_envelope_is_canonical() {
    let a = entry(1, 0.5);
    let b = entry(1, 0.5);
    assert_eq!(a.change.raw_bytes(), b.change.raw_bytes());
    assert!(a.change.deps().is_empty());
    assert_eq!(a.change.seq(), 1);
    assert_eq!(a.change.timestamp(), 0);
    assert_eq!(
        a.change.actor_id(),
        &actor_of(&a.envelope.signer, &a.envelope_bytes)
    );
    let again = validate_change(&wkey(), &net(), a.change.raw_bytes()).unwrap();
    assert_eq!(again.hash(), a.hash());
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
    /// The direct encoding is the document's, byte for byte, for any slot and value (values
    /// above automerge's 256-byte compression threshold included).
    #[test]
    fn the_direct_change_encoding_is_what_a_document_commits(
        slot in "\\PC{0,80}",
        seed in proptest::prelude::any::<[u8; 32]>(),
        value in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2_000),
    ) {
        let signer = Keypair::from_seed(&seed).public();
        let direct = build_change(&slot, &signer, &value).unwrap();
        let reference = change::build_change_in_a_document(&slot, &signer, &value).unwrap();
        proptest::prop_assert_eq!(direct.raw_bytes(), reference.raw_bytes());
        proptest::prop_assert_eq!(direct.hash(), reference.hash());
    }
}

/// Pins the encoding: a change of fixed inputs has this hash (a new automerge that encodes
/// differently would split the network between old and new nodes).
#[test]
fn the_change_encoding_is_pinned() {
    let signer = Keypair::from_seed(&[7; 32]).public();
    let c = build_change("slot-7", &signer, &[1, 2, 3, 250, 0]).unwrap();
    assert_eq!(
        hex::encode(c.hash().0),
        "182885c04482771c585c909f05449bafdf8210104c37285275b7346f1fb7a3d0"
    );
}

#[test]
fn root_is_order_independent_and_matches_automerge_heads() {
    let w1 = window_with(1..=30);
    let mut w2 = Window::new(wkey(), net());
    for s in (1..=30).rev() {
        w2.insert(entry(s, f64::from(s)));
        if s % 7 == 0 {
            w2.flush();
        }
    }
    w2.flush();
    assert_eq!(w1.root(), w2.root());
    assert_eq!(w1.heads(), w1.document_heads());
    assert_eq!(w2.heads(), w2.document_heads());
    let w3 = window_with(1..=29);
    assert_ne!(w1.root(), w3.root());
}

#[test]
fn saved_document_loads_with_the_same_heads() {
    let w = window_with(1..=20);
    let loaded = automerge::Automerge::load(&w.save()).unwrap();
    let mut heads: Vec<Hash32> = loaded.get_heads().iter().map(|h| Hash32(h.0)).collect();
    heads.sort();
    assert_eq!(heads, w.heads());
}

#[test]
fn rebuild_from_envelopes_gives_the_same_root() {
    let w = window_with(1..=10);
    let envs: Vec<(Envelope, Payload)> = w
        .entries()
        .map(|e| (e.envelope.clone(), e.payload.clone()))
        .collect();
    let r = Window::rebuild(wkey(), net(), envs).unwrap();
    assert_eq!(r.root(), w.root());
}

#[test]
fn wrong_window_wrong_network_and_wrong_slot_are_refused() {
    let e = entry(1, 1.0);
    let other = WindowKey::Topic {
        topic: TopicId(1),
        epoch: 5,
        phase: Phase::Workers,
    };
    assert_eq!(
        validate_change(&other, &net(), e.change.raw_bytes()).unwrap_err(),
        ChangeError::WrongWindow
    );
    assert!(matches!(
        validate_change(&wkey(), &Hash32([9; 32]), e.change.raw_bytes()),
        Err(ChangeError::Envelope(_))
    ));
    // A change that files author 1's envelope under author 2's key.
    let victim = Keypair::from_seed(&[2; 32]).public();
    let forged = build_change(&victim.to_hex(), &e.envelope.signer, &e.envelope_bytes).unwrap();
    assert_eq!(
        validate_change(&wkey(), &net(), forged.raw_bytes()).unwrap_err(),
        ChangeError::WrongSlot
    );
}

#[test]
fn hostile_changes_are_refused_before_apply() {
    let e = entry(1, 1.0);
    let actor = e.change.actor_id().clone();
    let value = ScalarValue::Bytes(e.envelope_bytes.clone());
    let mk = |f: &dyn Fn(&mut AutoCommit)| {
        let mut d = AutoCommit::new().with_actor(actor.clone());
        f(&mut d);
        d.commit_with(CommitOptions::default().with_time(0));
        d.get_last_local_change().unwrap().raw_bytes().to_vec()
    };
    let slot = e.slot.clone();
    // timestamp != 0
    let mut d = AutoCommit::new().with_actor(actor.clone());
    d.put(ROOT, slot.as_str(), value.clone()).unwrap();
    d.commit_with(CommitOptions::default().with_time(5));
    let timed = d.get_last_local_change().unwrap().raw_bytes().to_vec();
    assert_eq!(
        validate_change(&wkey(), &net(), &timed).unwrap_err(),
        ChangeError::Header("time")
    );
    // two ops
    let two = mk(&|d| {
        d.put(ROOT, slot.as_str(), value.clone()).unwrap();
        d.put(ROOT, "x", 1).unwrap();
    });
    assert!(matches!(
        validate_change(&wkey(), &net(), &two),
        Err(ChangeError::Operation(_))
    ));
    // a nested map (make + put inside it)
    let nested = mk(&|d| {
        let m = d
            .put_object(ROOT, slot.as_str(), automerge::ObjType::Map)
            .unwrap();
        d.put(&m, "v", value.clone()).unwrap();
    });
    assert!(matches!(
        validate_change(&wkey(), &net(), &nested),
        Err(ChangeError::Operation(_))
    ));
    // a string instead of bytes
    let text = mk(&|d| d.put(ROOT, slot.as_str(), "hello").unwrap());
    assert!(matches!(
        validate_change(&wkey(), &net(), &text),
        Err(ChangeError::Operation(_))
    ));
    // deleting another author's key: needs deps on that change
    let victim = entry(2, 2.0);
    let mut d = AutoCommit::new().with_actor(actor.clone());
    d.apply_changes([victim.change.clone()]).unwrap();
    d.delete(ROOT, victim.slot.as_str()).unwrap();
    d.commit_with(CommitOptions::default().with_time(0));
    let del = d.get_last_local_change().unwrap().raw_bytes().to_vec();
    assert!(validate_change(&wkey(), &net(), &del).is_err());
    // seq 2
    let mut d = AutoCommit::new().with_actor(actor.clone());
    d.put(ROOT, slot.as_str(), value.clone()).unwrap();
    d.commit_with(CommitOptions::default().with_time(0));
    d.put(ROOT, slot.as_str(), ScalarValue::Bytes(vec![1]))
        .unwrap();
    d.commit_with(CommitOptions::default().with_time(0));
    let seq2 = d.get_last_local_change().unwrap();
    assert_eq!(seq2.seq(), 2);
    let seq2 = seq2.raw_bytes().to_vec();
    assert!(validate_change(&wkey(), &net(), &seq2).is_err());
}

#[test]
fn every_single_bit_flip_is_refused_or_identical() {
    let e = entry(1, 1.0);
    let raw = e.change.raw_bytes().to_vec();
    for i in 0..raw.len() {
        for bit in 0..8 {
            let mut m = raw.clone();
            m[i] ^= 1 << bit;
            if let Ok(v) = validate_change(&wkey(), &net(), &m) {
                panic!("mutant at byte {i} bit {bit} accepted as {:?}", v.hash());
            }
        }
    }
}

#[test]
fn equivocation_is_kept_as_evidence_and_excludes_the_author() {
    let mut w = window_with([1, 2, 3]);
    assert_eq!(w.insert(entry(2, 99.0)), Insert::Conflict);
    w.flush();
    assert_eq!(w.len(), 4);
    let conflicts = w.conflicts();
    assert_eq!(conflicts.len(), 1);
    assert_eq!(conflicts[0].1.len(), 2);
    let heads = w.heads();
    let counted = w.effective_entries(&heads).unwrap();
    assert_eq!(counted.len(), 2);
    let bad = Keypair::from_seed(&[2; 32]).public();
    assert!(counted.iter().all(|e| e.envelope.signer != bad));
    assert_eq!(
        w.equivocators(&heads).into_iter().collect::<Vec<_>>(),
        vec![bad]
    );
    // Effective entries at heads that hold only one of the two versions keep the author.
    let one: Vec<Hash32> = heads
        .iter()
        .copied()
        .filter(|h| *h != entry(2, 99.0).hash())
        .collect();
    assert_eq!(w.effective_entries(&one).unwrap().len(), 3);
}

#[test]
fn missing_finalized_heads_are_reported() {
    let w = window_with([1, 2]);
    let mut heads = w.heads();
    heads.push(entry(3, 3.0).hash());
    let err = w.effective_entries(&heads).unwrap_err();
    assert_eq!(err.0, vec![entry(3, 3.0).hash()]);
}

#[test]
fn sync_converges_from_overlapping_halves() {
    let mut a = window_with(0..60);
    let mut b = window_with(40..100);
    let messages = sync_pair(&mut a, &mut b, 50);
    assert!(messages <= 10, "took {messages} messages");
    assert_eq!(a.root(), b.root());
    assert_eq!(a.len(), 100);
    assert_eq!(a.heads(), a.document_heads());
}

#[test]
fn sync_with_equivocation_converges_to_the_same_conflict() {
    let mut a = window_with([1, 2, 3]);
    let mut b = window_with([1, 3, 4]);
    b.insert(entry(2, 42.0));
    b.flush();
    sync_pair(&mut a, &mut b, 50);
    assert_eq!(a.root(), b.root());
    assert_eq!(a.conflicts().len(), 1);
    assert_eq!(b.conflicts().len(), 1);
}

#[test]
fn a_peer_holding_invalid_changes_cannot_stall_sync() {
    let mut a = window_with(0..10);
    // The hostile peer's document holds a change that validation refuses (another network).
    let mut hostile = window_with(5..15);
    let p = bundle(7.0);
    let env = Envelope::seal(&Keypair::from_seed(&[77; 32]), &Hash32([8; 32]), &p);
    let bad = build_change(&env.signer.to_hex(), &env.signer, &env.to_bytes()).unwrap();
    hostile.doc.apply_changes([bad.clone()]).unwrap();
    let messages = sync_pair(&mut a, &mut hostile, 200);
    assert!(messages < 20, "sync did not stop: {messages} messages");
    assert_eq!(a.len(), 15);
    assert!(!a.contains(&Hash32(bad.hash().0)));
}

#[test]
fn garbage_sync_messages_are_errors() {
    let mut a = window_with(0..3);
    let mut s = SyncSession::new();
    assert!(a.receive_sync(&mut s, b"\x42garbage").is_err());
    assert!(a.receive_sync(&mut s, &[]).is_err());
    assert_eq!(a.len(), 3);
}

#[test]
fn ledger_windows_key_by_author_and_nonce() {
    let k = WindowKey::Ledger { period: 3 };
    let kp = Keypair::from_seed(&[1; 32]);
    let p = Payload::Transfer(Transfer {
        nonce: 9,
        to: Keypair::from_seed(&[2; 32]).public(),
        amount: Amount(5),
    });
    let env = Envelope::seal(&kp, &net(), &p);
    let e = entry_from_envelope(&k, env, p).unwrap();
    assert_eq!(e.slot, format!("{}:9", kp.public().to_hex()));
    assert!(entry_from_envelope(&k, entry(1, 1.0).envelope, bundle(1.0)).is_err());
}
