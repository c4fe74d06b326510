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
//! - ledger snapshots are already bounded ([`super::ops::put_ledger`]); finalized inferences
//!   and account statements are kept (a few hundred bytes per topic and epoch, what consumers
//!   ask for).
//!
//! The actor decides which windows are old enough (it has the ledger) and calls this a batch
//! at a time; `chorus store export` keeps a range before it is pruned.

use std::collections::BTreeSet;

use chorus_crdt::window::{WindowKey, entry_from_parts};
use chorus_protocol::codec;
use chorus_protocol::envelope::Envelope;
use chorus_protocol::ids::Hash32;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata};

use super::StoreError;
use super::ops::{ENVELOPE_BYTES, durable_write, heads, meta_u64};
use super::schema::*;

/// Fewest heights a node keeps: the restart path re-applies up to 16 heights after a ledger
/// snapshot and re-reads the last 256 certificates it holds; 64 leaves room for both.
pub const MIN_RETENTION_HEIGHTS: u64 = 64;

/// How long a node keeps finalized history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retention {
    /// Everything, forever.
    Archive,
    /// Windows finalized and certificates decided more than this many heights before the
    /// applied one are pruned (at least [`MIN_RETENTION_HEIGHTS`]).
    Heights(u64),
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
        let mut snapshots = tx.open_table(SNAPSHOTS)?;
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
            snapshots.remove(wid.0.as_slice())?;
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
}
