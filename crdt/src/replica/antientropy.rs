//! Anti-entropy: the replica's own policy for reconciling windows with peers, emitted as
//! requests the host only carries.
//!
//! - **Rounds.** Every [`AntiEntropyConfig::round_ms`] the replica asks one peer, chosen by its
//!   seeded generator (not predictable by a peer), for the roots of the windows not finalized
//!   yet — those it holds that closed, its open ledger windows, and those the ledger says have
//!   closed, so a window it never heard of is compared too (at most [`MAX_ROOTS`], a random
//!   sample beyond). One
//!   roots exchange is in flight at a time; it ends by its answer or its timeout.
//! - **Sync sessions.** Each window whose root differs (at most [`SYNCS_PER_ROUND`] per
//!   answer) is reconciled by automerge sync, one request per message, every change admitted
//!   by the one admission function. A session ends when either side has nothing more to say,
//!   by the window's stop rule, or at its caps (rounds, entries, bytes:
//!   [`crate::window::sync::SessionCaps`]); sessions idle for [`SESSION_IDLE_MS`] are dropped.
//! - **Fetches.** A decided or proposed checkpoint that names entries this replica lacks
//!   fetches their window's envelopes, from the proposer or a random peer, again after
//!   [`FETCH_RETRY_MS`] while unanswered; a window too big for one response comes in pages
//!   (`Response::EnvelopePage`), each next one asked of the same peer.
//! - **Head lists.** A checkpoint names each window's finalized heads by root and count only;
//!   a replica that does not hold the list of a root asks the proposer (validation) or any
//!   peer (a decided height) for it, checks it hashes to the root, and keeps it until the
//!   height is applied (the host then stores it, and answers peers from the store).
//! - **Reconciliation before a late proposal** asks up to [`MAX_RECONCILE_PEERS`] peers at
//!   once.
//! - **Correlation.** Every request has a [`RequestId`]; a response is matched to its request
//!   and must come from the peer asked; a request unanswered after
//!   [`AntiEntropyConfig::request_timeout_ms`] (or reported failed by the host) is forgotten.
//!   At most [`MAX_PENDING`] requests wait at once.
//!
//! Requests from peers are answered here too: roots and sync from memory, stored envelopes and
//! certificates through a [`StoreQuery`] the host runs.

use std::collections::{BTreeMap, BTreeSet};

use chorus_protocol::ids::Hash32;
use chorus_protocol::rng::SplitMix64;

use super::wire::{
    InboundId, MAX_CATCHUP, MAX_FETCH, MAX_HEAD_LISTS, MAX_HEADS_PER_RESPONSE, MAX_RESPONSE,
    MAX_ROOTS, Request, RequestId, Response, StoreQuery,
};
use super::{
    Effect, PeerKey, Replica, ReplicaEvent, STATE_PARTS_PER_INTERVAL, STATE_SERVE_INTERVAL_MS,
};
use crate::ledger::WindowState;
use crate::window::WindowKey;

/// Windows reconciled by sync from one roots answer (the rest wait for the next round).
pub const SYNCS_PER_ROUND: usize = 8;
/// Peers asked at once by a reconciliation before a late proposal.
pub const MAX_RECONCILE_PEERS: usize = 64;
/// A window fetch unanswered for this long is asked again (ms): the request or the response
/// may have been lost, or the peer may have gone away, and a decided checkpoint waiting for
/// the window must not wait forever. A few round trips.
pub const FETCH_RETRY_MS: u64 = 1_000;
/// A sync session untouched for this long is dropped (ms).
pub const SESSION_IDLE_MS: u64 = 30_000;
/// Requests waiting for an answer at once; beyond, new ones are not sent (the next round or
/// retry asks again).
pub const MAX_PENDING: usize = 1_024;
/// Ledger periods ahead that one round or reconciliation covers at most.
pub const MAX_PERIODS: u64 = 256;

/// Tunables of anti-entropy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AntiEntropyConfig {
    /// Interval between rounds (ms).
    pub round_ms: u64,
    /// A request unanswered for this long counts as failed (ms).
    pub request_timeout_ms: u64,
}

impl Default for AntiEntropyConfig {
    fn default() -> Self {
        AntiEntropyConfig {
            // A closed window is compared within about a second, well inside the propose
            // grace plus timeout of a checkpoint period.
            round_ms: 1_000,
            // Several round trips of a loaded node; libp2p's own request timeout is longer.
            request_timeout_ms: 5_000,
        }
    }
}

/// What a pending request asked.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Asked {
    Roots(Vec<WindowKey>),
    Sync(WindowKey),
    Window(WindowKey),
    /// Head lists by (window id, root).
    Heads(Vec<(Hash32, Hash32)>),
    /// A peer's clock, asked at `sent_ms` (ours).
    Time {
        /// When we asked.
        sent_ms: u64,
    },
}

#[derive(Clone, Debug)]
struct Pending {
    to: PeerKey,
    asked: Asked,
    deadline_ms: u64,
}

/// The anti-entropy state of a replica.
#[derive(Debug)]
pub(super) struct AntiEntropy {
    config: AntiEntropyConfig,
    rng: SplitMix64,
    peers: BTreeSet<PeerKey>,
    next_round_ms: u64,
    /// When a peer is asked for its time next ([`super::clock`]).
    next_time_ms: u64,
    next_id: u64,
    pending: BTreeMap<RequestId, Pending>,
    /// Windows asked for by fetch, with when.
    fetching: BTreeMap<WindowKey, u64>,
    /// Head lists asked for, by (window id, root), with when.
    fetching_heads: BTreeMap<(Hash32, Hash32), u64>,
}

/// Fetches asked more than ten retry intervals ago are forgotten (bounded bookkeeping).
fn forget_old_fetches<K: Ord>(asked: &mut BTreeMap<K, u64>, now_ms: u64) {
    let horizon = FETCH_RETRY_MS.saturating_mul(10);
    asked.retain(|_, at| now_ms < at.saturating_add(horizon));
}

/// Whether `key` was asked for less than [`FETCH_RETRY_MS`] ago.
fn asked_recently<K: Ord>(asked: &BTreeMap<K, u64>, key: &K, now_ms: u64) -> bool {
    asked
        .get(key)
        .is_some_and(|at| now_ms < at.saturating_add(FETCH_RETRY_MS))
}

impl AntiEntropy {
    pub(super) fn new(config: AntiEntropyConfig, seed: u64) -> Self {
        AntiEntropy {
            config,
            rng: SplitMix64::seeded(seed),
            peers: BTreeSet::new(),
            next_round_ms: 0,
            next_time_ms: 0,
            next_id: 0,
            pending: BTreeMap::new(),
            fetching: BTreeMap::new(),
            fetching_heads: BTreeMap::new(),
        }
    }

    /// A peer chosen by the seeded generator.
    fn random_peer(&mut self) -> Option<PeerKey> {
        let n = self.peers.len() as u64;
        if n == 0 {
            return None;
        }
        let i = self.rng.below(n) as usize;
        self.peers.iter().nth(i).copied()
    }

    /// Up to `n` distinct peers in a random order.
    fn random_peers(&mut self, n: usize) -> Vec<PeerKey> {
        let mut all: Vec<PeerKey> = self.peers.iter().copied().collect();
        self.rng.shuffle(&mut all);
        all.truncate(n);
        all
    }
}

impl Replica {
    /// A connection to `peer` opened.
    pub(super) fn peer_up(&mut self, peer: PeerKey) {
        self.ae.peers.insert(peer);
    }

    /// The last connection to `peer` closed: its sessions end, its requests fail.
    pub(super) fn peer_down(&mut self, peer: PeerKey) {
        self.ae.peers.remove(&peer);
        self.clock.forget(&peer);
        self.sync_sessions.retain(|(p, _), _| *p != peer);
        let failed: Vec<RequestId> = self
            .ae
            .pending
            .iter()
            .filter(|(_, p)| p.to == peer)
            .map(|(id, _)| *id)
            .collect();
        for id in failed {
            self.request_failed(id);
        }
    }

    /// Send `request` to `to`; remember it when its answer matters (`asked`).
    fn request(
        &mut self,
        to: PeerKey,
        request: Request,
        asked: Option<Asked>,
        now_ms: u64,
        out: &mut Vec<Effect>,
    ) -> bool {
        if asked.is_some() && self.ae.pending.len() >= MAX_PENDING {
            return false;
        }
        let id = RequestId(self.ae.next_id);
        self.ae.next_id += 1;
        if let Some(asked) = asked {
            self.ae.pending.insert(
                id,
                Pending {
                    to,
                    asked,
                    deadline_ms: now_ms.saturating_add(self.ae.config.request_timeout_ms),
                },
            );
        }
        out.push(Effect::Request { id, to, request });
        true
    }

    /// Send a consensus message to one peer (its answer does not matter).
    pub(super) fn send_consensus(
        &mut self,
        to: PeerKey,
        bytes: Vec<u8>,
        now_ms: u64,
        out: &mut Vec<Effect>,
    ) {
        self.request(to, Request::Consensus(bytes), None, now_ms, out);
    }

    /// A request failed (timeout, the host could not send it, the peer went away).
    pub(super) fn request_failed(&mut self, id: RequestId) {
        if let Some(p) = self.ae.pending.remove(&id) {
            match p.asked {
                Asked::Sync(window) => self.sync_close(p.to, window),
                // Asked again at the next retry, of another peer if none was named.
                Asked::Window(window) => {
                    self.ae.fetching.remove(&window);
                }
                Asked::Heads(wanted) => {
                    for w in &wanted {
                        self.ae.fetching_heads.remove(w);
                    }
                }
                Asked::Roots(_) | Asked::Time { .. } => {}
            }
        }
    }

    /// Periodic anti-entropy work: expire requests and idle sessions, start a round when due.
    pub(super) fn anti_entropy_tick(&mut self, now_ms: u64, out: &mut Vec<Effect>) {
        let expired: Vec<RequestId> = self
            .ae
            .pending
            .iter()
            .filter(|(_, p)| p.deadline_ms <= now_ms)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            self.request_failed(id);
        }
        self.sync_sessions
            .retain(|_, s| now_ms < s.touched_ms.saturating_add(SESSION_IDLE_MS));
        if now_ms >= self.ae.next_time_ms {
            let every = match self.clock.len() < super::clock::MIN_CLOCK_SAMPLES {
                true => self.ae.config.round_ms,
                false => super::clock::TIME_EVERY_MS,
            };
            self.ae.next_time_ms = now_ms.saturating_add(every);
            if let Some(peer) = self.ae.random_peer() {
                let asked = Asked::Time { sent_ms: now_ms };
                self.request(peer, Request::Time, Some(asked), now_ms, out);
            }
        }
        if now_ms < self.ae.next_round_ms {
            return;
        }
        self.ae.next_round_ms = now_ms.saturating_add(self.ae.config.round_ms);
        if self
            .ae
            .pending
            .values()
            .any(|p| matches!(p.asked, Asked::Roots(_)))
        {
            return;
        }
        let windows = self.round_windows(now_ms);
        if windows.is_empty() {
            return;
        }
        if let Some(peer) = self.ae.random_peer() {
            self.request(
                peer,
                Request::Roots(windows.clone()),
                Some(Asked::Roots(windows)),
                now_ms,
                out,
            );
        }
    }

    /// The windows a round compares: the held windows that closed and are not finalized,
    /// the held ledger windows still open (a ledger message carried into the next period
    /// reaches peers only this way; topic windows that are open are gossip's, and syncing
    /// them while they fill costs more than it repairs), and every window the ledger's clock
    /// says has closed, held or not; a random sample of [`MAX_ROOTS`] beyond that, in key
    /// order.
    fn round_windows(&mut self, now_ms: u64) -> Vec<WindowKey> {
        let held = self
            .windows
            .keys()
            .filter(|k| match self.ledger.window_state(k, now_ms) {
                WindowState::Closed => true,
                WindowState::Open => matches!(k, WindowKey::Ledger { .. }),
                _ => false,
            })
            .copied();
        let set: BTreeSet<WindowKey> = held
            .chain(self.ledger.windows_closed_by(now_ms, MAX_PERIODS))
            .collect();
        let mut windows: Vec<WindowKey> = set.into_iter().collect();
        if windows.len() > MAX_ROOTS {
            self.ae.rng.shuffle(&mut windows);
            windows.truncate(MAX_ROOTS);
            windows.sort();
        }
        windows
    }

    /// Compare `windows`' roots with up to [`MAX_RECONCILE_PEERS`] peers now; the answers
    /// start syncs of the windows that differ.
    pub(super) fn reconcile(
        &mut self,
        mut windows: Vec<WindowKey>,
        now_ms: u64,
        out: &mut Vec<Effect>,
    ) {
        windows.truncate(MAX_ROOTS);
        let peers = self.ae.random_peers(MAX_RECONCILE_PEERS);
        out.push(Effect::Event(ReplicaEvent::Reconciling {
            windows: windows.len(),
            peers: peers.len(),
        }));
        if windows.is_empty() {
            return;
        }
        for peer in peers {
            self.request(
                peer,
                Request::Roots(windows.clone()),
                Some(Asked::Roots(windows.clone())),
                now_ms,
                out,
            );
        }
    }

    /// Fetch the envelopes of `window` (from `from`, or a random peer) unless asked less than
    /// [`FETCH_RETRY_MS`] ago.
    pub(super) fn fetch_window(
        &mut self,
        window: WindowKey,
        from: Option<PeerKey>,
        now_ms: u64,
        out: &mut Vec<Effect>,
    ) {
        forget_old_fetches(&mut self.ae.fetching, now_ms);
        if asked_recently(&self.ae.fetching, &window, now_ms) {
            return;
        }
        let Some(peer) = from.or_else(|| self.ae.random_peer()) else {
            return;
        };
        if self.request(
            peer,
            Request::WindowEntries(window),
            Some(Asked::Window(window)),
            now_ms,
            out,
        ) {
            self.ae.fetching.insert(window, now_ms);
        }
    }

    /// Ask for the head lists `wanted` names (window id, root), from `from` or a random peer,
    /// leaving out those asked less than [`FETCH_RETRY_MS`] ago; at most [`MAX_HEAD_LISTS`]
    /// per request.
    pub(super) fn fetch_heads(
        &mut self,
        wanted: Vec<(Hash32, Hash32)>,
        from: Option<PeerKey>,
        now_ms: u64,
        out: &mut Vec<Effect>,
    ) {
        forget_old_fetches(&mut self.ae.fetching_heads, now_ms);
        let wanted: Vec<(Hash32, Hash32)> = wanted
            .into_iter()
            .filter(|w| !asked_recently(&self.ae.fetching_heads, w, now_ms))
            .collect();
        for chunk in wanted.chunks(MAX_HEAD_LISTS) {
            let Some(peer) = from.or_else(|| self.ae.random_peer()) else {
                return;
            };
            if !self.request(
                peer,
                Request::Heads(chunk.to_vec()),
                Some(Asked::Heads(chunk.to_vec())),
                now_ms,
                out,
            ) {
                return;
            }
            for w in chunk {
                self.ae.fetching_heads.insert(*w, now_ms);
            }
        }
    }

    /// Head lists a peer sent for what we asked: each must be the list of the root asked for
    /// (a wrong one penalises the peer); the right ones are kept and unblock validations and
    /// decided heights.
    fn on_heads(
        &mut self,
        from: PeerKey,
        asked: &[(Hash32, Hash32)],
        lists: Vec<Option<Vec<Hash32>>>,
        now_ms: u64,
        out: &mut Vec<Effect>,
    ) {
        let mut bad = false;
        for (&(window, root), list) in asked.iter().zip(lists) {
            self.ae.fetching_heads.remove(&(window, root));
            let Some(list) = list else { continue };
            let sorted = list.windows(2).all(|p| p[0] < p[1]);
            if !sorted || crate::window::root_of(&list) != root {
                bad = true;
                continue;
            }
            self.keep_head_list(window, list);
        }
        if bad {
            out.push(Effect::Penalize {
                peer: from,
                offence: super::Offence::BadHeads,
            });
        }
        self.retry_validations(now_ms, out);
        self.apply_decided_queue(now_ms, out);
    }

    /// The head lists asked for that this replica holds in memory (proposed, validated, or of
    /// a held window with that root); `None` when any is not held here.
    fn heads_in_memory(&mut self, wanted: &[(Hash32, Hash32)]) -> Option<Vec<Option<Vec<Hash32>>>> {
        let mut held: BTreeMap<Hash32, WindowKey> = BTreeMap::new();
        for key in self.windows.keys() {
            held.insert(key.id(), *key);
        }
        let mut lists = Vec::with_capacity(wanted.len());
        let mut hashes = 0usize;
        for (window, root) in wanted {
            let list = match self.head_lists.get(&(*window, *root)) {
                Some(l) => l.to_vec(),
                None => {
                    let w = self.windows.get(held.get(window)?)?;
                    let heads = w.heads();
                    if crate::window::root_of(&heads) != *root {
                        return None;
                    }
                    heads
                }
            };
            hashes += list.len();
            lists.push((hashes <= MAX_HEADS_PER_RESPONSE).then_some(list));
        }
        Some(lists)
    }

    /// The answer to one of our requests.
    pub(super) fn on_response(
        &mut self,
        id: RequestId,
        from: PeerKey,
        response: Response,
        now_ms: u64,
        out: &mut Vec<Effect>,
    ) {
        let Some(pending) = self.ae.pending.get(&id) else {
            return;
        };
        if pending.to != from {
            return;
        }
        let Some(Pending { asked, .. }) = self.ae.pending.remove(&id) else {
            return;
        };
        match (asked, response) {
            (Asked::Roots(keys), Response::Roots(roots)) => {
                self.on_roots(from, &keys, &roots, now_ms, out);
            }
            (Asked::Sync(window), Response::Sync(Some(bytes))) => {
                match self.sync_message(from, window, &bytes, now_ms, out) {
                    Some(message) => self.send_sync(from, window, message, now_ms, out),
                    None => self.sync_close(from, window),
                }
                self.retry_validations(now_ms, out);
                self.apply_decided_queue(now_ms, out);
            }
            (Asked::Sync(window), _) => self.sync_close(from, window),
            (Asked::Window(window), Response::Envelopes(envelopes)) => {
                self.ae.fetching.remove(&window);
                self.window_entries(window, envelopes, from, now_ms, out);
            }
            // A page with more to come: take it, and ask the same peer for the next one.
            (Asked::Window(window), Response::EnvelopePage { envelopes, next }) => {
                self.window_entries(window, envelopes, from, now_ms, out);
                let request = Request::WindowEntriesAfter {
                    window,
                    after: next,
                };
                if self.request(from, request, Some(Asked::Window(window)), now_ms, out) {
                    self.ae.fetching.insert(window, now_ms);
                }
            }
            (Asked::Window(window), _) => {
                self.ae.fetching.remove(&window);
            }
            (Asked::Heads(asked), Response::Heads(lists)) if lists.len() <= asked.len() => {
                self.on_heads(from, &asked, lists, now_ms, out);
            }
            (Asked::Heads(asked), _) => {
                for w in &asked {
                    self.ae.fetching_heads.remove(w);
                }
            }
            (Asked::Time { sent_ms }, Response::Time(theirs)) => {
                self.clock.record(from, sent_ms, theirs, now_ms);
            }
            (Asked::Roots(_) | Asked::Time { .. }, _) => {}
        }
    }

    /// A roots answer: start syncing the windows whose roots differ.
    fn on_roots(
        &mut self,
        from: PeerKey,
        keys: &[WindowKey],
        roots: &[Option<chorus_protocol::ids::Hash32>],
        now_ms: u64,
        out: &mut Vec<Effect>,
    ) {
        let differ: Vec<WindowKey> = keys
            .iter()
            .zip(roots)
            .filter(|(key, theirs)| {
                theirs.is_some()
                    && **theirs != self.window(key).map(|w| w.root())
                    && !self.sync_sessions.contains_key(&(from, **key))
            })
            .map(|(key, _)| *key)
            .take(SYNCS_PER_ROUND)
            .collect();
        for window in differ {
            if let Some(message) = self.sync_open(from, window, now_ms) {
                self.send_sync(from, window, message, now_ms, out);
            }
        }
    }

    /// Our next sync message for `window` to `peer`, as a request whose answer continues the
    /// session.
    fn send_sync(
        &mut self,
        peer: PeerKey,
        window: WindowKey,
        message: Vec<u8>,
        now_ms: u64,
        out: &mut Vec<Effect>,
    ) {
        let request = Request::Sync { window, message };
        self.request(peer, request, Some(Asked::Sync(window)), now_ms, out);
    }

    /// A request from a peer: answered from memory, or by a store read the host runs.
    pub(super) fn on_request(
        &mut self,
        from: PeerKey,
        id: InboundId,
        request: Request,
        now_ms: u64,
        out: &mut Vec<Effect>,
    ) {
        let response = match request {
            Request::Roots(keys) => Response::Roots(
                keys.iter()
                    .take(MAX_ROOTS)
                    .map(|k| self.window(k).map(|w| w.root()))
                    .collect(),
            ),
            Request::Sync { window, message } => {
                let reply = self.sync_message(from, window, &message, now_ms, out);
                if reply.is_none() {
                    self.sync_close(from, window);
                }
                out.push(Effect::Respond {
                    id,
                    response: Response::Sync(reply),
                });
                self.retry_validations(now_ms, out);
                self.apply_decided_queue(now_ms, out);
                return;
            }
            Request::WindowEntries(key) => {
                return out.push(Effect::Serve {
                    id,
                    query: StoreQuery::WindowEnvelopes(key),
                });
            }
            Request::WindowEntriesAfter { window, after } => {
                return out.push(Effect::Serve {
                    id,
                    query: StoreQuery::WindowEnvelopesAfter { window, after },
                });
            }
            Request::Fetch(mut ids) => {
                ids.truncate(MAX_FETCH);
                return out.push(Effect::Serve {
                    id,
                    query: StoreQuery::Envelopes(ids),
                });
            }
            Request::CatchUp { from: height, max } => {
                return out.push(Effect::Serve {
                    id,
                    query: StoreQuery::Certificates {
                        from: height,
                        max: max.min(MAX_CATCHUP),
                    },
                });
            }
            Request::Consensus(bytes) => {
                out.push(Effect::Respond {
                    id,
                    response: Response::Consensus(vec![]),
                });
                self.consensus_bytes(from, &bytes, now_ms, out);
                return;
            }
            Request::Heads(mut wanted) => {
                wanted.truncate(MAX_HEAD_LISTS);
                match self.heads_in_memory(&wanted) {
                    Some(lists) => Response::Heads(lists),
                    None => {
                        return out.push(Effect::Serve {
                            id,
                            query: StoreQuery::Heads(wanted),
                        });
                    }
                }
            }
            Request::Genesis if self.genesis.len() <= MAX_RESPONSE - 16 => {
                Response::Genesis(self.genesis.to_vec())
            }
            Request::Genesis => Response::Refused("the genesis is larger than a response".into()),
            Request::Time => Response::Time(now_ms),
            Request::State { trusted, first } => {
                let busy = self
                    .state_served_ms
                    .is_some_and(|t| now_ms < t.saturating_add(STATE_SERVE_INTERVAL_MS));
                if busy {
                    Response::Refused(format!(
                        "busy: one state proof per {STATE_SERVE_INTERVAL_MS} ms, ask again"
                    ))
                } else {
                    self.state_served_ms = Some(now_ms);
                    return out.push(Effect::Serve {
                        id,
                        query: StoreQuery::State { trusted, first },
                    });
                }
            }
            Request::StatePart {
                height,
                offset,
                max,
            } => {
                let (since, served) = &mut self.state_parts;
                if now_ms >= since.saturating_add(STATE_SERVE_INTERVAL_MS) {
                    (*since, *served) = (now_ms, 0);
                }
                if *served >= STATE_PARTS_PER_INTERVAL {
                    Response::Refused(format!(
                        "busy: {STATE_PARTS_PER_INTERVAL} snapshot parts per \
                         {STATE_SERVE_INTERVAL_MS} ms, ask again"
                    ))
                } else {
                    *served += 1;
                    return out.push(Effect::Serve {
                        id,
                        query: StoreQuery::StatePart {
                            height,
                            offset,
                            max,
                        },
                    });
                }
            }
        };
        out.push(Effect::Respond { id, response });
    }
}
