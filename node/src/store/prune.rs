//! Retention: what a node that is not an archive forgets, and how.
//!
//! Signed envelopes are the source of truth while a window can still change; once a window is
//! finalized and older than the retention, nothing of it is needed to follow the network (the
//! ledger holds its effect, the checkpoint chain its root). [`prune`] deletes, in one bounded
//! batch, such windows' index rows, documents and head lists, the envelopes that were only
//! theirs, and the certificates below a height:
//!
//! - a topic window's envelopes belong to it alone: all deleted;
//! - a ledger window's envelope is deleted only if that window finalized it (its change hash
//!   is in the window's stored head list); a ledger message carried into a later period stays
//!   until that window goes, so an envelope still referenced is never deleted;
//! - ledger snapshots are already bounded ([`super::ops::put_ledger`]).
//!
//! Finalized inferences and account statements (a few hundred bytes per topic and epoch, what
//! consumers ask for) have their own, longer retention: [`prune_history`] deletes those of
//! epochs that started before a cutoff, a bounded batch at a time.
//!
//! The actor decides which windows are old enough (it has the ledger) and calls this a batch
//! at a time; `chorus store export` keeps a range before it is pruned.

use std::collections::{BTreeMap, BTreeSet};

use chorus_crdt::window::{WindowKey, entry_from_parts};
use chorus_protocol::codec;
use chorus_protocol::envelope::Envelope;
use chorus_protocol::ids::Hash32;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata};

use super::StoreError;
use super::ops::{ENVELOPE_BYTES, StatementKey, durable_write, heads, meta_u64};
use super::schema::*;

/// Fewest heights a node keeps: the restart path re-applies up to 16 heights after a ledger
/// snapshot and re-reads the last 256 certificates it holds; 64 leaves room for both.
pub const MIN_RETENTION_HEIGHTS: u64 = 64;

/// How long a node keeps finalized history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retention {
    /// Everything, forever.
    Archive,
    /// Prune what is old enough.
    Prune {
        /// Windows finalized and certificates decided more than this many heights before the
        /// applied one are pruned (at least [`MIN_RETENTION_HEIGHTS`]).
        heights: u64,
        /// Finalized inferences and statement lines of epochs that started this long (ms)
        /// before the applied checkpoint's period are pruned.
        history_ms: u64,
    },
}

/// What one [`prune_history`] call deleted, and where the statement sweep goes on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PrunedHistory {
    /// Finalized inferences.
    pub inferences: u64,
    /// Statement rows (one per account, topic and epoch).
    pub statements: u64,
    /// The last statement key looked at, when the sweep stopped at its limit (`None`: it
    /// reached the end of the table; the next sweep starts over).
    pub next: Option<StatementKey>,
}

/// Delete, in one transaction, the finalized inferences and statement rows of epochs before
/// `cutoffs[topic]` (topics not named keep everything). At most `limit` inferences are deleted
/// and at most `limit` statement rows looked at, from the row after `after` (statements are
/// keyed by account first, so their sweep pages through the table across calls).
pub fn prune_history(
    db: &Database,
    cutoffs: &BTreeMap<u64, u64>,
    after: Option<StatementKey>,
    limit: usize,
) -> Result<PrunedHistory, StoreError> {
    let tx = durable_write(db, false)?;
    let mut out = PrunedHistory::default();
    {
        let mut inferences = tx.open_table(INFERENCES)?;
        let mut old = vec![];
        for (&topic, &cutoff) in cutoffs {
            for item in inferences.range((topic, 0)..(topic, cutoff))? {
                let (k, _) = item?;
                old.push(k.value());
                if old.len() >= limit {
                    break;
                }
            }
            if old.len() >= limit {
                break;
            }
        }
        for key in &old {
            inferences.remove(*key)?;
        }
        out.inferences = old.len() as u64;

        let mut statements = tx.open_table(STATEMENTS)?;
        let start = after.unwrap_or(([0; 32], 0, 0));
        let mut old = vec![];
        let mut seen = 0;
        for item in statements.range((start.0.as_slice(), start.1, start.2)..)? {
            let (k, _) = item?;
            let (who, topic, epoch) = k.value();
            let mut address = [0u8; 32];
            if who.len() != 32 {
                return Err(StoreError::Corrupt {
                    table: "statements",
                    reason: format!("a key of {} bytes", who.len()),
                });
            }
            address.copy_from_slice(who);
            let key = (address, topic, epoch);
            if after == Some(key) {
                continue;
            }
            seen += 1;
            if cutoffs.get(&topic).is_some_and(|&c| epoch < c) {
                old.push(key);
            }
            if seen >= limit {
                out.next = Some(key);
                break;
            }
        }
        for (who, topic, epoch) in &old {
            statements.remove((who.as_slice(), *topic, *epoch))?;
        }
        out.statements = old.len() as u64;
    }
    tx.commit()?;
    Ok(out)
}

/// What one [`prune`] call deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Windows (index rows, document, head list, key).
    pub windows: u64,
    /// Envelopes.
    pub envelopes: u64,
    /// Envelope bytes.
    pub bytes: u64,
    /// Certificates.
    pub certificates: u64,
}

/// Up to `limit` stored windows after `after` (by window id; from the start with `None`).
pub fn window_keys_page(
    db: &Database,
    after: Option<Hash32>,
    limit: usize,
) -> Result<Vec<WindowKey>, StoreError> {
    let tx = db.begin_read()?;
    let t = tx.open_table(WINDOW_KEYS)?;
    let mut out = vec![];
    let start = after.map(|h| h.0).unwrap_or_default();
    for item in t.range(start.as_slice()..)? {
        let (k, v) = item?;
        if after.is_some_and(|a| k.value() == a.0.as_slice()) {
            continue;
        }
        let key: WindowKey = codec::decode(v.value()).map_err(|e| StoreError::Corrupt {
            table: "window_keys",
            reason: e.to_string(),
        })?;
        out.push(key);
        if out.len() >= limit {
            break;
        }
    }
    Ok(out)
}

/// Delete `windows` (finalized, older than the retention) and the certificates of heights
/// below `certificates_below`, in one durable transaction.
pub fn prune(
    db: &Database,
    windows: &[WindowKey],
    certificates_below: u64,
) -> Result<Pruned, StoreError> {
    let mut lists = vec![];
    for key in windows {
        let finalized: BTreeSet<Hash32> = match key {
            WindowKey::Ledger { .. } => heads(db, &key.id())?
                .unwrap_or_default()
                .into_iter()
                .collect(),
            WindowKey::Topic { .. } => BTreeSet::new(),
        };
        lists.push((*key, finalized));
    }
    let tx = durable_write(db, false)?;
    let mut pruned = Pruned::default();
    {
        let mut envs = tx.open_table(ENVELOPES)?;
        let mut index = tx.open_table(WINDOW_ENTRIES)?;
        let mut keys = tx.open_table(WINDOW_KEYS)?;
        let mut head_lists = tx.open_table(HEADS)?;
        for (key, finalized) in &lists {
            let wid = key.id();
            let (lo, hi) = ([0u8; 32], [0xffu8; 32]);
            let mut ids = vec![];
            for item in index
                .range((wid.0.as_slice(), lo.as_slice())..=(wid.0.as_slice(), hi.as_slice()))?
            {
                let (k, _) = item?;
                let mut id = [0u8; 32];
                id.copy_from_slice(k.value().1);
                ids.push(id);
            }
            for id in &ids {
                index.remove((wid.0.as_slice(), id.as_slice()))?;
                let only_here = match key {
                    WindowKey::Topic { .. } => true,
                    WindowKey::Ledger { .. } => match envs.get(id.as_slice())? {
                        Some(v) => finalized_here(key, v.value(), finalized),
                        None => false,
                    },
                };
                if only_here && let Some(v) = envs.remove(id.as_slice())? {
                    pruned.envelopes += 1;
                    pruned.bytes += v.value().len() as u64;
                }
            }
            keys.remove(wid.0.as_slice())?;
            head_lists.remove(wid.0.as_slice())?;
            pruned.windows += 1;
        }
        let mut certs = tx.open_table(CERTIFICATES)?;
        let before = certs.len()?;
        certs.retain_in(..certificates_below, |_, _| false)?;
        pruned.certificates = before - certs.len()?;
        if pruned.bytes > 0 {
            let mut meta = tx.open_table(META)?;
            let total = meta_u64(&meta, ENVELOPE_BYTES)?.saturating_sub(pruned.bytes);
            meta.insert(ENVELOPE_BYTES, total.to_le_bytes().as_slice())?;
        }
    }
    tx.commit()?;
    Ok(pruned)
}

/// Whether the ledger window `key` finalized this envelope (its change hash is listed). An
/// envelope that does not decode any more is nobody's: deleted too.
fn finalized_here(key: &WindowKey, bytes: &[u8], finalized: &BTreeSet<Hash32>) -> bool {
    change_hash(key, bytes).is_none_or(|h| finalized.contains(&h))
}

/// The change hash of an envelope in window `key` (what a head list names); `None` if the
/// bytes are not an envelope of that window.
pub(super) fn change_hash(key: &WindowKey, bytes: &[u8]) -> Option<Hash32> {
    let env = Envelope::from_bytes(bytes).ok()?;
    let payload = env.payload_unverified().ok()?;
    entry_from_parts(key, env, bytes.to_vec(), payload)
        .ok()
        .map(|e| e.hash())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::store::ops::{
        self, certificate, envelope, put_certificate, put_envelopes, put_heads,
    };
    use chorus_crdt::window::Phase;
    use chorus_protocol::ids::{Amount, TopicId};
    use chorus_protocol::keys::Keypair;
    use chorus_protocol::messages::{Payload, Transfer, WorkerBundle};

    fn seal(net: &Hash32, seed: u8, payload: &Payload) -> Vec<u8> {
        Envelope::seal(&Keypair::from_seed(&[seed; 32]), net, payload).to_bytes()
    }

    /// A topic window goes with its envelopes; a ledger window's envelope goes only if that
    /// window finalized it (one carried into the next period stays, still referenced there);
    /// certificates below the cutoff go; the byte total follows.
    #[test]
    fn pruning_deletes_what_only_the_old_windows_hold() {
        let dir = tempfile::tempdir().unwrap();
        let net = Hash32([1; 32]);
        let db = ops::open(&dir.path().join("node.redb"), &net).unwrap();
        let topic = WindowKey::Topic {
            topic: TopicId(1),
            epoch: 3,
            phase: Phase::Workers,
        };
        let (old, next) = (
            WindowKey::Ledger { period: 3 },
            WindowKey::Ledger { period: 4 },
        );
        let bundle = |seed| {
            seal(
                &net,
                seed,
                &Payload::WorkerBundle(WorkerBundle {
                    topic: TopicId(1),
                    epoch: 3,
                    inference: Some(1.0),
                    forecasts: vec![],
                }),
            )
        };
        let transfer = |seed, nonce| {
            seal(
                &net,
                seed,
                &Payload::Transfer(Transfer {
                    nonce,
                    to: Keypair::from_seed(&[9; 32]).public(),
                    amount: Amount(5),
                }),
            )
        };
        let (b1, b2) = (bundle(1), bundle(2));
        let (finalized, carried) = (transfer(3, 1), transfer(4, 1));
        put_envelopes(
            &db,
            &[
                (topic, b1.clone()),
                (topic, b2.clone()),
                (old, finalized.clone()),
                (old, carried.clone()),
                (next, carried.clone()),
            ],
            true,
        )
        .unwrap();
        put_heads(
            &db,
            &[(old.id(), vec![change_hash(&old, &finalized).unwrap()])],
        )
        .unwrap();
        for h in 1..=6 {
            put_certificate(&db, h, &[h as u8]).unwrap();
        }
        let bytes_before = ops::stats(&db).unwrap().envelope_bytes;
        let p = prune(&db, &[topic, old], 4).unwrap();
        assert_eq!(
            p,
            Pruned {
                windows: 2,
                envelopes: 3,
                bytes: (b1.len() + b2.len() + finalized.len()) as u64,
                certificates: 3,
            }
        );
        let id = |b: &[u8]| Hash32::of(b);
        for gone in [&b1, &b2, &finalized] {
            assert_eq!(envelope(&db, &id(gone)).unwrap(), None);
        }
        assert_eq!(envelope(&db, &id(&carried)).unwrap(), Some(carried.clone()));
        assert_eq!(
            ops::window_envelopes(&db, &next.id()).unwrap(),
            vec![carried.clone()]
        );
        assert!(ops::window_envelopes(&db, &old.id()).unwrap().is_empty());
        assert_eq!(heads(&db, &old.id()).unwrap(), None);
        assert_eq!(window_keys_page(&db, None, 10).unwrap(), vec![next]);
        assert_eq!(certificate(&db, 3).unwrap(), None);
        assert_eq!(certificate(&db, 4).unwrap(), Some(vec![4]));
        let s = ops::stats(&db).unwrap();
        assert_eq!(s.envelope_bytes, bytes_before - p.bytes);
        assert_eq!(s.certificates, 3);
        // Pruning the same again finds nothing more.
        let again = prune(&db, &[topic, old], 4).unwrap();
        assert_eq!((again.envelopes, again.certificates), (0, 0));
    }

    #[test]
    fn the_window_table_is_read_in_pages() {
        let dir = tempfile::tempdir().unwrap();
        let net = Hash32([1; 32]);
        let db = ops::open(&dir.path().join("node.redb"), &net).unwrap();
        let keys: Vec<WindowKey> = (0..10).map(|p| WindowKey::Ledger { period: p }).collect();
        let items: Vec<(WindowKey, Vec<u8>)> =
            keys.iter().map(|k| (*k, vec![k.id().0[0]])).collect();
        put_envelopes(&db, &items, true).unwrap();
        let mut seen = vec![];
        let mut after = None;
        loop {
            let page = window_keys_page(&db, after, 3).unwrap();
            seen.extend(page.iter().copied());
            if page.len() < 3 {
                break;
            }
            after = page.last().map(WindowKey::id);
        }
        seen.sort();
        assert_eq!(seen, keys);
    }

    /// Inferences and statement rows before each topic's cutoff go, whatever account they
    /// belong to; a topic without a cutoff and rows at or after it stay. The statement sweep
    /// pages through the table (limit 4 rows looked at per call) and ends with `next = None`.
    #[test]
    fn history_before_the_cutoff_goes_in_bounded_sweeps() {
        let dir = tempfile::tempdir().unwrap();
        let net = Hash32([1; 32]);
        let db = ops::open(&dir.path().join("node.redb"), &net).unwrap();
        let inferences: Vec<(u64, u64, Vec<u8>)> = [1u64, 2, 3]
            .iter()
            .flat_map(|&t| (0..6).map(move |e| (t, e, vec![1])))
            .collect();
        ops::put_inferences(&db, &inferences).unwrap();
        let statements: Vec<(StatementKey, Vec<u8>)> = [[7u8; 32], [9; 32]]
            .iter()
            .flat_map(|&who| {
                [1u64, 2, 3]
                    .into_iter()
                    .flat_map(move |t| (0..6).map(move |e| ((who, t, e), vec![2])))
            })
            .collect();
        ops::put_statements(&db, &statements).unwrap();
        // Topic 1 keeps epochs 4 and 5, topic 2 keeps 2..=5, topic 3 everything.
        let cutoffs = BTreeMap::from([(1, 4), (2, 2)]);
        let mut total = PrunedHistory::default();
        let mut after = None;
        let mut calls = 0;
        loop {
            let p = prune_history(&db, &cutoffs, after, 4).unwrap();
            total.inferences += p.inferences;
            total.statements += p.statements;
            calls += 1;
            match p.next {
                Some(k) => after = Some(k),
                None => break,
            }
        }
        // 36 statement rows, 4 looked at per call: 9 calls end at a limit, the 10th at the end.
        assert_eq!(calls, 10);
        assert_eq!(total.statements, 2 * (4 + 2));
        // Inferences: at most 4 per call, 6 to delete.
        assert_eq!(total.inferences, 4 + 2);
        let kept = |t, e| ops::inference(&db, t, e).unwrap().is_some();
        for e in 0..6 {
            assert_eq!(kept(1, e), e >= 4, "topic 1 epoch {e}");
            assert_eq!(kept(2, e), e >= 2, "topic 2 epoch {e}");
            assert!(kept(3, e));
        }
        for who in [[7u8; 32], [9; 32]] {
            let rows = |t| {
                ops::statements(&db, &who, (t, t), (0, u64::MAX), 100)
                    .unwrap()
                    .len()
            };
            assert_eq!((rows(1), rows(2), rows(3)), (2, 4, 6));
        }
        // Nothing more to do.
        let again = prune_history(&db, &cutoffs, None, 100).unwrap();
        assert_eq!(
            (again.inferences, again.statements, again.next),
            (0, 0, None)
        );
    }
}
