//! Anti-entropy as the replica decides it, asserted on the exact requests it emits: rounds,
//! roots answers, correlation, timeouts, fetch retries, and answers to peers' requests.

#![allow(clippy::unwrap_used)]

use chorus_protocol::envelope::Envelope;
use chorus_protocol::ids::Hash32;
use chorus_protocol::keys::{Keypair, PublicKey};
use chorus_protocol::messages::{Payload, WorkerBundle};
use chorus_protocol::validation::ChannelKind;

use super::tests::{config, genesis, keys};
use super::wire::{InboundId, MAX_CATCHUP, Request, RequestId, Response, StoreQuery};
use super::{Effect, Input, Replica, Restore};
use crate::ledger::WindowState;
use crate::window::WindowKey;

use super::tests::{LATE, LIVE, TOPIC, worker_window as window};

struct F {
    r: Replica,
    keys: Vec<Keypair>,
    network: Hash32,
}

fn fixture() -> F {
    let keys = keys(6);
    let g = genesis(&keys);
    let (r, _) = Replica::new(&g, keys[5].clone(), config(), Restore::default(), LIVE).unwrap();
    let mut f = F {
        r,
        keys,
        network: g.network_id(),
    };
    // One entry in epoch 2's window, gossiped in time.
    let payload = Payload::WorkerBundle(WorkerBundle {
        topic: TOPIC,
        epoch: 2,
        inference: Some(1.0),
        forecasts: vec![],
    });
    let bytes = Envelope::seal(&f.keys[0], &f.network, &payload).to_bytes();
    let from = f.peer(1);
    f.r.handle(
        Input::Gossip {
            channel: ChannelKind::Workers(TOPIC),
            bytes,
            from,
        },
        LIVE,
    );
    f
}

impl F {
    fn peer(&self, i: usize) -> PublicKey {
        self.keys[i].public()
    }
}

/// The requests among `effects`, except clock questions (`Request::Time`, tested on their own
/// in `peers_are_asked_their_time_and_the_median_is_the_offset`).
fn requests(effects: &[Effect]) -> Vec<(RequestId, PublicKey, Request)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Request { id, to, request } if *request != Request::Time => {
                Some((*id, *to, request.clone()))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn peers_are_asked_their_time_and_the_median_is_the_offset() {
    let mut f = fixture();
    let peers: Vec<PublicKey> = (1..=4).map(|i| f.peer(i)).collect();
    for p in &peers {
        f.r.handle(Input::PeerUp(*p), LIVE);
    }
    // Peers 1–3 run 500 ms ahead, peer 4 a year behind (a liar in the minority). Each round
    // (every second while fewer than three answered) one random peer is asked; answers come
    // back at once.
    let ahead = |p: &PublicKey, now: u64| match *p == peers[3] {
        true => now.saturating_sub(31_536_000_000),
        false => now + 500,
    };
    let mut asked = std::collections::BTreeSet::new();
    let mut t = LATE;
    while f.r.clock_offset_ms().is_none() {
        assert!(
            t < LATE + 60_000,
            "no estimate after a minute: asked {asked:?}"
        );
        let effects = f.r.handle(Input::Tick, t);
        for e in &effects {
            if let Effect::Request {
                id,
                to,
                request: Request::Time,
            } = e
            {
                asked.insert(*to);
                f.r.handle(
                    Input::Response {
                        id: *id,
                        from: *to,
                        response: Response::Time(ahead(to, t)),
                    },
                    t,
                );
            }
        }
        t += 1_000;
    }
    assert!(asked.len() >= 3, "{asked:?}");
    // Three or four samples, at most one of them the liar's: the median is +500.
    assert_eq!(f.r.clock_offset_ms(), Some(500));
    // 500 ms is over the fixture's skew allowance: this replica's clock is off.
    assert!(f.r.clock_off());
    // And a peer's question is answered with our clock.
    let e = f.r.handle(
        Input::Request {
            from: peers[0],
            id: InboundId(3),
            request: Request::Time,
        },
        t,
    );
    assert!(
        e.iter().any(|e| matches!(e, Effect::Respond { id: InboundId(3), response: Response::Time(now) } if *now == t)),
        "{e:?}"
    );
}

#[test]
fn without_peers_a_round_asks_nobody() {
    let mut f = fixture();
    assert!(requests(&f.r.handle(Input::Tick, LATE)).is_empty());
}

#[test]
fn a_round_asks_one_peer_for_the_roots_of_windows_not_finalized() {
    let mut f = fixture();
    let (a, b) = (f.peer(1), f.peer(2));
    f.r.handle(Input::PeerUp(a), LIVE);
    f.r.handle(Input::PeerUp(b), LIVE);
    let asked = requests(&f.r.handle(Input::Tick, LATE));
    assert_eq!(asked.len(), 1, "{asked:?}");
    let (_, to, Request::Roots(keys)) = &asked[0] else {
        panic!("not a roots request: {asked:?}");
    };
    assert!(*to == a || *to == b);
    assert!(keys.contains(&window(2)), "{keys:?}");
    for k in keys {
        let state = f.r.ledger().window_state(k, LATE);
        let open_ledger = matches!(k, WindowKey::Ledger { .. }) && state == WindowState::Open;
        assert!(
            state == WindowState::Closed || open_ledger,
            "{k:?} is {state:?}"
        );
    }
    // Windows that closed by the clock are compared even when not held here.
    let unheld = WindowKey::Ledger { period: 0 };
    assert!(
        f.r.window(&unheld).is_none() && keys.contains(&unheld),
        "{keys:?}"
    );
    // One roots exchange at a time: the next round waits for the answer or its timeout.
    assert!(requests(&f.r.handle(Input::Tick, LATE + 600)).is_empty());
    let again = requests(&f.r.handle(Input::Tick, LATE + 1_100));
    assert!(
        matches!(again.as_slice(), [(_, _, Request::Roots(_))]),
        "{again:?}"
    );
}

#[test]
fn the_peer_asked_is_not_always_the_same() {
    let mut f = fixture();
    for i in 0..5 {
        let p = f.peer(i);
        f.r.handle(Input::PeerUp(p), LIVE);
    }
    let mut asked = std::collections::BTreeSet::new();
    for round in 0..20 {
        let t = LATE + round * 1_100;
        for (_, to, _) in requests(&f.r.handle(Input::Tick, t)) {
            asked.insert(to);
        }
    }
    assert!(asked.len() >= 3, "rounds asked only {} peers", asked.len());
}

#[test]
fn a_roots_answer_starts_syncs_of_the_differing_windows_only() {
    let mut f = fixture();
    let a = f.peer(1);
    f.r.handle(Input::PeerUp(a), LIVE);
    let asked = requests(&f.r.handle(Input::Tick, LATE));
    let (id, _, Request::Roots(keys)) = asked[0].clone() else {
        panic!("{asked:?}");
    };
    let ours = f.r.window(&window(2)).unwrap().root();
    let roots: Vec<Option<Hash32>> = keys
        .iter()
        .map(|k| match k {
            // Differs from ours.
            k if *k == window(2) => Some(Hash32([9; 32])),
            // Same as ours: nothing to do.
            WindowKey::Ledger { period: 0 } => None,
            _ => None,
        })
        .collect();
    // From another peer than the one asked: ignored.
    let wrong = f.peer(2);
    let e = f.r.handle(
        Input::Response {
            id,
            from: wrong,
            response: Response::Roots(roots.clone()),
        },
        LATE,
    );
    assert!(requests(&e).is_empty());
    let e = f.r.handle(
        Input::Response {
            id,
            from: a,
            response: Response::Roots(roots),
        },
        LATE,
    );
    let syncs = requests(&e);
    assert_eq!(syncs.len(), 1, "{syncs:?}");
    assert!(
        matches!(&syncs[0], (_, to, Request::Sync { window: w, .. }) if *to == a && *w == window(2))
    );
    // A second answer to the same id is no longer expected.
    let e = f.r.handle(
        Input::Response {
            id,
            from: a,
            response: Response::Roots(vec![Some(Hash32([8; 32])); keys.len()]),
        },
        LATE,
    );
    assert!(requests(&e).is_empty());
    let _ = ours;
}

#[test]
fn a_failed_fetch_is_asked_again_of_another_peer() {
    let mut f = fixture();
    let (a, b) = (f.peer(1), f.peer(2));
    f.r.handle(Input::PeerUp(a), LIVE);
    f.r.handle(Input::PeerUp(b), LIVE);
    let mut out = vec![];
    f.r.fetch_window(window(3), Some(a), LATE, &mut out);
    assert!(
        matches!(requests(&out).as_slice(), [(_, to, Request::WindowEntries(w))] if *to == a && *w == window(3))
    );
    // Asked less than a retry interval ago: not again.
    let mut out = vec![];
    f.r.fetch_window(window(3), None, LATE + 10, &mut out);
    assert!(requests(&out).is_empty());
    // The peer goes away: the fetch failed, and the next try goes to the other peer.
    f.r.handle(Input::PeerDown(a), LATE + 20);
    let mut out = vec![];
    f.r.fetch_window(window(3), None, LATE + 30, &mut out);
    assert!(matches!(requests(&out).as_slice(), [(_, to, Request::WindowEntries(_))] if *to == b));
}

#[test]
fn peers_requests_are_answered_from_memory_or_by_a_bounded_store_read() {
    let mut f = fixture();
    let a = f.peer(1);
    let held = f.r.window(&window(2)).unwrap().root();
    let e = f.r.handle(
        Input::Request {
            from: a,
            id: InboundId(7),
            request: Request::Roots(vec![window(2), window(9)]),
        },
        LATE,
    );
    assert!(e.iter().any(|e| matches!(e,
        Effect::Respond { id: InboundId(7), response: Response::Roots(r) } if *r == vec![Some(held), None])));
    let e = f.r.handle(
        Input::Request {
            from: a,
            id: InboundId(8),
            request: Request::WindowEntries(window(2)),
        },
        LATE,
    );
    assert!(e.iter().any(|e| matches!(e,
        Effect::Serve { id: InboundId(8), query: StoreQuery::WindowEnvelopes(w) } if *w == window(2))));
    let e = f.r.handle(
        Input::Request {
            from: a,
            id: InboundId(9),
            request: Request::CatchUp {
                from: 1,
                max: u32::MAX,
            },
        },
        LATE,
    );
    assert!(e.iter().any(|e| matches!(e,
        Effect::Serve { id: InboundId(9), query: StoreQuery::Certificates { from: 1, max } } if *max == MAX_CATCHUP)));
    // The genesis, canonically encoded: its id is the network's.
    let e = f.r.handle(
        Input::Request {
            from: a,
            id: InboundId(10),
            request: Request::Genesis,
        },
        LATE,
    );
    let genesis = e.iter().find_map(|e| match e {
        Effect::Respond {
            id: InboundId(10),
            response: Response::Genesis(bytes),
        } => Some(bytes.clone()),
        _ => None,
    });
    let g: chorus_protocol::genesis::Genesis =
        chorus_protocol::codec::decode(&genesis.expect("a genesis answer")).unwrap();
    assert_eq!(g.network_id(), f.r.network());
}

#[test]
fn a_sync_request_for_a_window_not_open_yet_creates_nothing() {
    let mut f = fixture();
    let a = f.peer(1);
    let e = f.r.handle(
        Input::Request {
            from: a,
            id: InboundId(1),
            request: Request::Sync {
                window: window(500),
                message: vec![0x42, 1, 2],
            },
        },
        LATE,
    );
    assert!(e.iter().any(|e| matches!(
        e,
        Effect::Respond {
            id: InboundId(1),
            response: Response::Sync(None)
        }
    )));
    assert!(f.r.window(&window(500)).is_none());
}

#[test]
fn head_lists_are_answered_from_memory_or_else_from_the_store() {
    let mut f = fixture();
    f.r.handle(Input::Tick, LIVE); // applies the queued entry
    let w = f.r.window(&window(2)).unwrap();
    let (heads, root) = (w.heads(), w.root());
    assert_eq!(heads.len(), 1);
    let from = f.peer(1);
    let ask = |f: &mut F, root: Hash32, id: u64| {
        f.r.handle(
            Input::Request {
                from,
                id: InboundId(id),
                request: Request::Heads(vec![(window(2).id(), root)]),
            },
            LATE,
        )
    };
    let out = ask(&mut f, root, 1);
    assert!(
        out.iter().any(|e| matches!(e,
            Effect::Respond { id: InboundId(1), response: Response::Heads(l) }
                if l == &vec![Some(heads.clone())])),
        "{out:?}"
    );
    // Another root of that window (finalized elsewhere, or made up): the store's answer.
    let other = Hash32([7; 32]);
    let out = ask(&mut f, other, 2);
    assert!(
        out.iter().any(|e| matches!(e,
            Effect::Serve { id: InboundId(2), query: StoreQuery::Heads(q) }
                if q == &vec![(window(2).id(), other)])),
        "{out:?}"
    );
}

#[test]
fn a_head_list_that_is_not_the_one_asked_for_is_refused_and_its_sender_penalised() {
    let mut f = fixture();
    let peer = f.peer(1);
    f.r.handle(Input::PeerUp(peer), LIVE);
    let wid = Hash32([3; 32]);
    let list: Vec<Hash32> = (1..=3u8).map(|i| Hash32([i; 32])).collect();
    let root = crate::window::root_of(&list);
    let ask = |f: &mut F, now: u64| {
        let mut out = vec![];
        f.r.fetch_heads(vec![(wid, root)], Some(peer), now, &mut out);
        requests(&out)
    };
    let asked = ask(&mut f, LATE);
    let [(id, to, Request::Heads(wanted))] = asked.as_slice() else {
        panic!("{asked:?}");
    };
    assert_eq!((*to, wanted.clone()), (peer, vec![(wid, root)]));
    // Asked once per retry interval, not at every call.
    assert!(ask(&mut f, LATE + 10).is_empty());
    // Ask at `now` (the id of the request), answer with `list` 10 ms later.
    let answer = |f: &mut F, now: u64, id: Option<RequestId>, list: Vec<Hash32>| {
        let id = id.unwrap_or_else(|| match ask(f, now).as_slice() {
            [(id, _, _)] => *id,
            other => panic!("{other:?}"),
        });
        let response = Response::Heads(vec![Some(list)]);
        f.r.handle(
            Input::Response {
                id,
                from: peer,
                response,
            },
            now + 10,
        )
    };
    let penalised = |out: &[Effect]| {
        out.iter().any(|e| {
            matches!(e,
            Effect::Penalize { peer: p, offence: super::Offence::BadHeads } if *p == peer)
        })
    };
    // A list of another root (one head left out): refused, the peer penalised, nothing kept.
    let out = answer(&mut f, LATE + 10, Some(*id), list[1..].to_vec());
    assert!(penalised(&out), "{out:?}");
    assert!(f.r.head_lists.is_empty());
    // The same list unsorted is not the list either.
    let mut shuffled = list.clone();
    shuffled.reverse();
    let out = answer(&mut f, LATE + 2_000, None, shuffled);
    assert!(penalised(&out), "{out:?}");
    assert!(f.r.head_lists.is_empty());
    // The right list is kept, and nobody is penalised.
    let out = answer(&mut f, LATE + 4_000, None, list.clone());
    assert!(!penalised(&out), "{out:?}");
    assert_eq!(
        f.r.head_lists.get(&(wid, root)).map(|l| l.to_vec()),
        Some(list)
    );
}

#[test]
fn a_window_too_big_for_one_answer_is_fetched_page_by_page_from_the_same_peer() {
    let mut f = fixture();
    let a = f.peer(1);
    f.r.handle(Input::PeerUp(a), LIVE);
    f.r.handle(Input::PeerUp(f.peer(2)), LIVE);
    let mut out = vec![];
    f.r.fetch_window(window(2), Some(a), LATE, &mut out);
    let [(id, _, Request::WindowEntries(_))] = requests(&out)[..] else {
        panic!("{out:?}");
    };
    let payload = Payload::WorkerBundle(WorkerBundle {
        topic: super::tests::TOPIC,
        epoch: 2,
        inference: Some(2.0),
        forecasts: vec![],
    });
    let page = Envelope::seal(&f.keys[1], &f.network, &payload).to_bytes();
    let next = Hash32::of(&page);
    let out = f.r.handle(
        Input::Response {
            id,
            from: a,
            response: Response::EnvelopePage {
                envelopes: vec![page.clone()],
                next,
            },
        },
        LATE + 10,
    );
    // The page's entry is in, and the next page is asked of the same peer, after it.
    f.r.handle(Input::Tick, LATE + 20);
    assert!(f.r.window(&window(2)).unwrap().contains(&{
        let env = Envelope::from_bytes(&page).unwrap();
        crate::window::entry_from_envelope(&window(2), env, payload.clone())
            .unwrap()
            .hash()
    }));
    let asked = requests(&out);
    let [(id2, to, Request::WindowEntriesAfter { window: w, after })] = &asked[..] else {
        panic!("{asked:?}");
    };
    assert_eq!((*to, *w, *after), (a, window(2), next));
    // The last page ends it: nothing more is asked.
    let out = f.r.handle(
        Input::Response {
            id: *id2,
            from: a,
            response: Response::Envelopes(vec![]),
        },
        LATE + 30,
    );
    assert!(requests(&out).is_empty(), "{out:?}");
}

/// One peer opening sessions for more windows than its share keeps only its 32 most recent; it
/// never pushes out another peer's session.
#[test]
fn one_peer_cannot_take_every_sync_session() {
    use super::sync::MAX_SYNC_SESSIONS_PER_PEER;
    let mut f = fixture();
    let (honest, hostile) = (f.peer(1), f.peer(2));
    let ledger = |period| WindowKey::Ledger { period };
    f.r.put_session(honest, ledger(0), Default::default(), LIVE);
    for p in 1..=100u64 {
        f.r.put_session(hostile, ledger(p), Default::default(), LIVE + p);
    }
    let held =
        |r: &Replica, who: PublicKey| r.sync_sessions.keys().filter(|(p, _)| *p == who).count();
    assert_eq!(held(&f.r, hostile), MAX_SYNC_SESSIONS_PER_PEER);
    assert_eq!(held(&f.r, honest), 1);
    // The hostile peer kept its most recent ones.
    assert!(f.r.sync_sessions.contains_key(&(hostile, ledger(100))));
    assert!(!f.r.sync_sessions.contains_key(&(hostile, ledger(1))));
    assert!(f.r.sync_sessions.contains_key(&(honest, ledger(0))));
}

/// A state proof is a store read of a whole snapshot: one per
/// [`STATE_SERVE_INTERVAL_MS`](super::STATE_SERVE_INTERVAL_MS), whoever asks; the others are
/// told to come back.
#[test]
fn state_requests_are_served_one_per_interval() {
    let mut f = fixture();
    let (a, b) = (f.peer(1), f.peer(2));
    let ask = |f: &mut F, from, id, now| {
        f.r.handle(
            Input::Request {
                from,
                id: InboundId(id),
                request: Request::State {
                    trusted: Some(3),
                    first: 1024,
                },
            },
            now,
        )
    };
    let served = |e: &[Effect], id| {
        e.iter().any(|e| matches!(e,
            Effect::Serve { id: i, query: StoreQuery::State { trusted: Some(3), first: 1024 } } if *i == InboundId(id)))
    };
    let busy = |e: &[Effect], id| {
        e.iter().any(|e| matches!(e,
            Effect::Respond { id: i, response: Response::Refused(r) } if *i == InboundId(id) && r.starts_with("busy")))
    };
    let e = ask(&mut f, a, 1, LATE);
    assert!(served(&e, 1));
    let e = ask(&mut f, b, 2, LATE + super::STATE_SERVE_INTERVAL_MS - 1);
    assert!(busy(&e, 2) && !served(&e, 2));
    let e = ask(&mut f, a, 3, LATE + super::STATE_SERVE_INTERVAL_MS);
    assert!(served(&e, 3));
}

/// Snapshot parts: at most `STATE_PARTS_PER_INTERVAL` handed to the store per interval,
/// whoever asks; the next asker is told to come back, and served in the next interval.
#[test]
fn state_parts_are_served_a_few_per_interval() {
    let mut f = fixture();
    let (a, b) = (f.peer(1), f.peer(2));
    let ask = |f: &mut F, from, id, now| {
        f.r.handle(
            Input::Request {
                from,
                id: InboundId(id),
                request: Request::StatePart {
                    height: 16,
                    offset: id * 10,
                    max: 10,
                },
            },
            now,
        )
    };
    let served = |e: &[Effect], id: u64| {
        e.iter().any(|e| {
            matches!(e,
            Effect::Serve { id: i, query: StoreQuery::StatePart { height: 16, offset, max: 10 } }
                if *i == InboundId(id) && *offset == id * 10)
        })
    };
    let busy = |e: &[Effect], id| {
        e.iter().any(|e| matches!(e,
            Effect::Respond { id: i, response: Response::Refused(r) } if *i == InboundId(id) && r.starts_with("busy")))
    };
    let parts = u64::from(super::STATE_PARTS_PER_INTERVAL);
    for id in 0..parts {
        let from = if id % 2 == 0 { a } else { b };
        let e = ask(&mut f, from, id, LATE + id);
        assert!(served(&e, id), "part {id}");
    }
    let e = ask(&mut f, b, parts, LATE + parts);
    assert!(busy(&e, parts) && !served(&e, parts));
    let e = ask(&mut f, a, parts + 1, LATE + super::STATE_SERVE_INTERVAL_MS);
    assert!(served(&e, parts + 1));
}
