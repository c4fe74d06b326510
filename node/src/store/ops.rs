//! Storage operations: plain functions on a [`Database`], run on the storage thread.

use std::path::Path;

use chorus_crdt::window::WindowKey;
use chorus_protocol::codec;
use chorus_protocol::ids::{Hash32, NetworkId};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata};

use super::schema::*;
use super::{StoreError, rows};

/// Ledger snapshots kept (older ones are deleted in the transaction that writes a new one).
/// Only the newest is ever read (restart, state sync served to peers); each is a few MB at
/// 10 topics × 100 workers, 141 B per stored envelope when three were kept.
pub const LEDGER_SNAPSHOTS_KEPT: usize = 1;

/// redb's page cache of a node's store, unless configured (`[node] store_cache_mb`).
///
/// redb keeps every page it writes or reads in this cache until the cache is full, so a node's
/// resident memory grows with its store up to this size. redb's own default (1 GiB) is far more
/// than a node needs: it reads back only open windows, recent certificates and the newest
/// ledger snapshot, and a page not cached is read from the operating system's file cache.
/// 16 MiB: at 10 topics × 100 workers a node's RSS is 185–196 MiB with it and 235–236 MiB
/// with 64 MiB, every bundle finalized either way (BENCHMARKS.md, "Where a node's memory goes").
pub const DEFAULT_CACHE_BYTES: usize = 16 << 20;

/// `meta` key of the running total of stored envelope bytes (u64 LE): envelopes are never
/// deleted, so [`put_envelopes`] keeps it exact and [`stats`] need not read every envelope.
pub(super) const ENVELOPE_BYTES: &str = "envelope_bytes";

pub(super) fn meta_u64(
    meta: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<u64, StoreError> {
    match meta.get(key)? {
        None => Ok(0),
        Some(v) => Ok(u64::from_le_bytes(v.value().try_into().map_err(|_| {
            StoreError::Corrupt {
                table: "meta",
                reason: format!("{key} is not 8 bytes"),
            }
        })?)),
    }
}

/// Open or create the database with the default page cache ([`DEFAULT_CACHE_BYTES`]), create
/// every table, check the network and the schema version (an older one is migrated in place,
/// [`super::migrate`]).
pub fn open(path: &Path, network: &NetworkId) -> Result<Database, StoreError> {
    open_with_cache(path, network, DEFAULT_CACHE_BYTES)
}

/// [`open`] with a page cache of `cache_bytes`.
pub fn open_with_cache(
    path: &Path,
    network: &NetworkId,
    cache_bytes: usize,
) -> Result<Database, StoreError> {
    let db = Database::builder()
        .set_cache_size(cache_bytes)
        .create(path)?;
    let mut tx = db.begin_write()?;
    set_durability(&mut tx, Durability::Immediate)?;
    {
        let mut meta = tx.open_table(META)?;
        let version = meta.get("schema_version")?.map(|v| v.value().to_vec());
        match version {
            None => {
                meta.insert("schema_version", SCHEMA_VERSION.to_le_bytes().as_slice())?;
                meta.insert("network_id", network.0.as_slice())?;
            }
            Some(v) => {
                let found = u64::from_le_bytes(v.as_slice().try_into().map_err(|_| {
                    StoreError::Corrupt {
                        table: "meta",
                        reason: "schema_version is not 8 bytes".into(),
                    }
                })?);
                let stored = meta
                    .get("network_id")?
                    .map(|v| v.value().to_vec())
                    .unwrap_or_default();
                if stored != network.0 {
                    return Err(StoreError::WrongNetwork {
                        path: path.to_path_buf(),
                        found: hex::encode(stored),
                        expected: network.to_hex(),
                    });
                }
                if found != SCHEMA_VERSION {
                    let mismatch = |why: String| StoreError::SchemaMismatch {
                        path: path.to_path_buf(),
                        found,
                        expected: SCHEMA_VERSION,
                        why,
                    };
                    match super::migrate::migrate(&tx, found)? {
                        Ok(steps) => {
                            for what in steps {
                                tracing::info!(path = %path.display(), "store migration: {what}");
                            }
                            meta.insert("schema_version", SCHEMA_VERSION.to_le_bytes().as_slice())?;
                        }
                        Err(super::migrate::Unmigratable::Newer) => {
                            return Err(mismatch(
                                "written by a newer chorus; run that version or a later one".into(),
                            ));
                        }
                        Err(super::migrate::Unmigratable::TooOld) => {
                            return Err(mismatch(format!(
                                "no migration from it (the oldest this build migrates is \
                                 {}): its checkpoints use an older wire format; move the \
                                 file away and let the node catch up from its peers",
                                super::migrate::oldest_migratable()
                            )));
                        }
                    }
                }
            }
        }
        tx.open_table(ENVELOPES)?;
        tx.open_table(WINDOW_ENTRIES)?;
        tx.open_table(WINDOW_KEYS)?;
        tx.open_table(CERTIFICATES)?;
        tx.open_table(HEADS)?;
        tx.open_table(WAL)?;
        tx.open_table(LEDGER)?;
        tx.open_table(PEERS)?;
        tx.open_table(INFERENCES)?;
        tx.open_table(STATEMENTS)?;
        tx.open_table(VALIDATOR_SETS)?;
        // The running total of envelope bytes (stores written before it existed: count once).
        if meta.get(ENVELOPE_BYTES)?.is_none() {
            let envs = tx.open_table(ENVELOPES)?;
            let mut bytes = 0u64;
            for item in envs.iter()? {
                bytes += item?.1.value().len() as u64;
            }
            meta.insert(ENVELOPE_BYTES, bytes.to_le_bytes().as_slice())?;
        }
    }
    tx.commit()?;
    Ok(db)
}

/// Set a write transaction's durability (redb refuses only a change after a commit started).
fn set_durability(tx: &mut redb::WriteTransaction, d: Durability) -> Result<(), StoreError> {
    tx.set_durability(d).map_err(|e| StoreError::Corrupt {
        table: "-",
        reason: e.to_string(),
    })
}

pub(super) fn durable_write(
    db: &Database,
    two_phase: bool,
) -> Result<redb::WriteTransaction, StoreError> {
    let mut tx = db.begin_write()?;
    set_durability(&mut tx, Durability::Immediate)?;
    tx.set_two_phase_commit(two_phase);
    Ok(tx)
}

/// Persist envelopes and their window membership in one two-phase transaction. With
/// `durable`, returns once the data (and every earlier non-durable write) is on disk
/// ("acknowledged"); without, the write is visible at once and reaches disk with the next
/// durable commit (envelopes relayed by peers can be fetched again after a crash).
pub fn put_envelopes(
    db: &Database,
    items: &[(WindowKey, Vec<u8>)],
    durable: bool,
) -> Result<(), StoreError> {
    if items.is_empty() && !durable {
        return Ok(());
    }
    let mut tx = durable_write(db, true)?;
    if !durable {
        set_durability(&mut tx, Durability::None)?;
    }
    {
        let mut envs = tx.open_table(ENVELOPES)?;
        let mut index = tx.open_table(WINDOW_ENTRIES)?;
        let mut keys = tx.open_table(WINDOW_KEYS)?;
        let mut added = 0u64;
        for (key, bytes) in items {
            let id = Hash32::of(bytes);
            let wid = key.id();
            if envs.insert(id.0.as_slice(), bytes.as_slice())?.is_none() {
                added += bytes.len() as u64;
            }
            index.insert((wid.0.as_slice(), id.0.as_slice()), ())?;
            keys.insert(wid.0.as_slice(), codec::encode(key).as_slice())?;
        }
        if added > 0 {
            let mut meta = tx.open_table(META)?;
            let total = meta_u64(&meta, ENVELOPE_BYTES)? + added;
            meta.insert(ENVELOPE_BYTES, total.to_le_bytes().as_slice())?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// The envelopes of one window.
pub fn window_envelopes(db: &Database, window: &Hash32) -> Result<Vec<Vec<u8>>, StoreError> {
    let tx = db.begin_read()?;
    let index = tx.open_table(WINDOW_ENTRIES)?;
    let envs = tx.open_table(ENVELOPES)?;
    let lo = [0u8; 32];
    let hi = [0xffu8; 32];
    let mut out = vec![];
    for item in
        index.range((window.0.as_slice(), lo.as_slice())..=(window.0.as_slice(), hi.as_slice()))?
    {
        let (k, _) = item?;
        let (_, id) = k.value();
        if let Some(v) = envs.get(id)? {
            out.push(v.value().to_vec());
        }
    }
    Ok(out)
}

/// One page of a window's envelopes in message-id order: those after `after` (from the
/// start with `None`) up to `max_bytes` (at least one), and the id of the last one when more
/// follow.
pub fn window_envelopes_page(
    db: &Database,
    window: &Hash32,
    after: Option<Hash32>,
    max_bytes: usize,
) -> Result<(Vec<Vec<u8>>, Option<Hash32>), StoreError> {
    let tx = db.begin_read()?;
    let index = tx.open_table(WINDOW_ENTRIES)?;
    let envs = tx.open_table(ENVELOPES)?;
    let lo = after.map(|h| h.0).unwrap_or([0u8; 32]);
    let hi = [0xffu8; 32];
    let (mut out, mut bytes, mut last) = (vec![], 0usize, None);
    for item in
        index.range((window.0.as_slice(), lo.as_slice())..=(window.0.as_slice(), hi.as_slice()))?
    {
        let (k, _) = item?;
        let (_, id) = k.value();
        if after.is_some_and(|a| id == a.0.as_slice()) {
            continue;
        }
        let Some(v) = envs.get(id)? else { continue };
        let v = v.value();
        if !out.is_empty() && bytes + v.len() > max_bytes {
            return Ok((out, last));
        }
        bytes += v.len();
        out.push(v.to_vec());
        let mut h = [0u8; 32];
        h.copy_from_slice(id);
        last = Some(Hash32(h));
    }
    Ok((out, None))
}

/// One envelope by message id.
pub fn envelope(db: &Database, id: &Hash32) -> Result<Option<Vec<u8>>, StoreError> {
    let tx = db.begin_read()?;
    let envs = tx.open_table(ENVELOPES)?;
    Ok(envs.get(id.0.as_slice())?.map(|v| v.value().to_vec()))
}

/// Every window key the store knows.
pub fn window_keys(db: &Database) -> Result<Vec<WindowKey>, StoreError> {
    let tx = db.begin_read()?;
    let keys = tx.open_table(WINDOW_KEYS)?;
    let mut out = vec![];
    for item in keys.iter()? {
        let (_, v) = item?;
        out.push(codec::decode(v.value()).map_err(|e| StoreError::Corrupt {
            table: "window_keys",
            reason: e.to_string(),
        })?);
    }
    Ok(out)
}

/// Store a decided checkpoint with its certificate.
pub fn put_certificate(db: &Database, height: u64, bytes: &[u8]) -> Result<(), StoreError> {
    let tx = durable_write(db, false)?;
    tx.open_table(CERTIFICATES)?.insert(height, bytes)?;
    tx.commit()?;
    Ok(())
}

/// Store the finalized head lists of windows (by window id), durably: a peer catching up asks
/// for them by the root its checkpoint names.
pub fn put_heads(db: &Database, lists: &[(Hash32, Vec<Hash32>)]) -> Result<(), StoreError> {
    let tx = durable_write(db, false)?;
    {
        let mut t = tx.open_table(HEADS)?;
        for (window, heads) in lists {
            let bytes: Vec<u8> = heads.iter().flat_map(|h| h.0).collect();
            t.insert(window.0.as_slice(), bytes.as_slice())?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// The finalized head list of a window, if stored.
pub fn heads(db: &Database, window: &Hash32) -> Result<Option<Vec<Hash32>>, StoreError> {
    let tx = db.begin_read()?;
    let t = tx.open_table(HEADS)?;
    let Some(v) = t.get(window.0.as_slice())? else {
        return Ok(None);
    };
    let bytes = v.value();
    if bytes.len() % 32 != 0 {
        return Err(StoreError::Corrupt {
            table: "heads",
            reason: format!(
                "the list of window {} is {} bytes",
                window.to_hex(),
                bytes.len()
            ),
        });
    }
    Ok(Some(
        bytes
            .chunks_exact(32)
            .map(|c| {
                let mut h = [0u8; 32];
                h.copy_from_slice(c);
                Hash32(h)
            })
            .collect(),
    ))
}

/// A decided checkpoint with its certificate.
pub fn certificate(db: &Database, height: u64) -> Result<Option<Vec<u8>>, StoreError> {
    let tx = db.begin_read()?;
    let t = tx.open_table(CERTIFICATES)?;
    Ok(t.get(height)?.map(|v| v.value().to_vec()))
}

/// The height of the newest stored certificate (0: none).
pub fn last_certificate_height(db: &Database) -> Result<u64, StoreError> {
    let tx = db.begin_read()?;
    let t = tx.open_table(CERTIFICATES)?;
    Ok(t.last()?.map_or(0, |(k, _)| k.value()))
}

/// Store finalized network inferences ((topic, epoch) → JSON, stored packed: [`rows`]), write-behind: they are derived
/// from finalized windows and reach disk with the next durable commit.
pub fn put_inferences(db: &Database, items: &[(u64, u64, Vec<u8>)]) -> Result<(), StoreError> {
    if items.is_empty() {
        return Ok(());
    }
    let mut tx = db.begin_write()?;
    set_durability(&mut tx, Durability::None)?;
    {
        let mut t = tx.open_table(INFERENCES)?;
        for (topic, epoch, bytes) in items {
            t.insert((*topic, *epoch), rows::pack(bytes)?.as_slice())?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// The key of an account's statement lines: (address, topic, epoch).
pub type StatementKey = ([u8; 32], u64, u64);

/// Store statement lines: (key, JSON list, stored packed: [`rows`]), replacing what a key held.
pub fn put_statements(db: &Database, items: &[(StatementKey, Vec<u8>)]) -> Result<(), StoreError> {
    if items.is_empty() {
        return Ok(());
    }
    let mut tx = db.begin_write()?;
    set_durability(&mut tx, Durability::None)?;
    {
        let mut t = tx.open_table(STATEMENTS)?;
        for ((who, topic, epoch), bytes) in items {
            t.insert(
                (who.as_slice(), *topic, *epoch),
                rows::pack(bytes)?.as_slice(),
            )?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// The statement lines of `who` in `topics` (inclusive range) and epochs `from..=to`, in
/// (topic, epoch) order, at most `limit` keys read (matching or not: a query costs at most
/// `limit` rows whatever it asks).
pub fn statements(
    db: &Database,
    who: &[u8; 32],
    topics: (u64, u64),
    (from, to): (u64, u64),
    limit: usize,
) -> Result<Vec<Vec<u8>>, StoreError> {
    let tx = db.begin_read()?;
    let t = tx.open_table(STATEMENTS)?;
    let mut out = vec![];
    // One topic: the epoch range is part of the key range.
    let (lo, hi) = if topics.0 == topics.1 {
        (from, to)
    } else {
        (0, u64::MAX)
    };
    let range = (who.as_slice(), topics.0, lo)..=(who.as_slice(), topics.1, hi);
    for item in t.range(range)?.take(limit) {
        let (k, v) = item?;
        let (_, _, epoch) = k.value();
        if (from..=to).contains(&epoch) {
            out.push(rows::unpack("statements", v.value())?);
        }
    }
    Ok(out)
}

/// A stored finalized network inference.
pub fn inference(db: &Database, topic: u64, epoch: u64) -> Result<Option<Vec<u8>>, StoreError> {
    let tx = db.begin_read()?;
    let t = tx.open_table(INFERENCES)?;
    t.get((topic, epoch))?
        .map(|v| rows::unpack("inferences", v.value()))
        .transpose()
}

/// Record the validator set checkpoint `height` commits to (the set of `height + 1`), unless
/// the row before it holds the same set: the table keeps the changes only. A change is written
/// durably (it is rare, and a lost one would break every later proof).
pub fn put_validator_set(db: &Database, height: u64, bytes: &[u8]) -> Result<(), StoreError> {
    let same = match height.checked_sub(1) {
        Some(below) => validator_set_at(db, below)?.is_some_and(|(_, b)| b == bytes),
        None => false,
    };
    if same {
        return Ok(());
    }
    let tx = durable_write(db, false)?;
    tx.open_table(VALIDATOR_SETS)?.insert(height, bytes)?;
    tx.commit()?;
    Ok(())
}

/// The recorded validator-set changes with heights in `range`, in height order.
pub fn validator_sets(
    db: &Database,
    range: std::ops::RangeInclusive<u64>,
) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
    let tx = db.begin_read()?;
    let t = tx.open_table(VALIDATOR_SETS)?;
    let mut out = vec![];
    for item in t.range(range)? {
        let (k, v) = item?;
        out.push((k.value(), v.value().to_vec()));
    }
    Ok(out)
}

/// The latest recorded validator set at or below `height`.
pub fn validator_set_at(db: &Database, height: u64) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
    let tx = db.begin_read()?;
    let t = tx.open_table(VALIDATOR_SETS)?;
    Ok(match t.range(..=height)?.next_back() {
        Some(row) => {
            let (k, v) = row?;
            Some((k.value(), v.value().to_vec()))
        }
        None => None,
    })
}

/// Every stored certificate from `from` on, in height order.
pub fn certificates_from(db: &Database, from: u64) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
    certificates_page(db, from, usize::MAX)
}

/// At most `max` stored certificates from `from` on, in height order (a peer's catch-up
/// request reads no more than it is answered).
pub fn certificates_page(
    db: &Database,
    from: u64,
    max: usize,
) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
    let tx = db.begin_read()?;
    let t = tx.open_table(CERTIFICATES)?;
    let mut out = vec![];
    for item in t.range(from..)?.take(max) {
        let (k, v) = item?;
        out.push((k.value(), v.value().to_vec()));
    }
    Ok(out)
}

/// Append WAL records durably (before the signatures they cover leave the node).
pub fn wal_append(db: &Database, records: &[Vec<u8>]) -> Result<(), StoreError> {
    if records.is_empty() {
        return Ok(());
    }
    let tx = durable_write(db, false)?;
    {
        let mut t = tx.open_table(WAL)?;
        let first = t.last()?.map(|(k, _)| k.value() + 1).unwrap_or(0);
        for (seq, r) in (first..).zip(records) {
            t.insert(seq, r.as_slice())?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// Every WAL record in order.
pub fn wal_records(db: &Database) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
    let tx = db.begin_read()?;
    let t = tx.open_table(WAL)?;
    let mut out = vec![];
    for item in t.iter()? {
        let (k, v) = item?;
        out.push((k.value(), v.value().to_vec()));
    }
    Ok(out)
}

/// Replace the WAL by `records` (compaction after a decided height).
pub fn wal_replace(db: &Database, records: &[Vec<u8>]) -> Result<(), StoreError> {
    let tx = durable_write(db, false)?;
    {
        let mut t = tx.open_table(WAL)?;
        t.retain(|_, _| false)?;
        for (i, r) in records.iter().enumerate() {
            t.insert(i as u64, r.as_slice())?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// Store a ledger snapshot and keep only the newest few.
pub fn put_ledger(db: &Database, height: u64, bytes: &[u8]) -> Result<(), StoreError> {
    let tx = durable_write(db, false)?;
    {
        let mut t = tx.open_table(LEDGER)?;
        t.insert(height, bytes)?;
        let n = t.len()? as usize;
        if n > LEDGER_SNAPSHOTS_KEPT {
            let mut drop = n - LEDGER_SNAPSHOTS_KEPT;
            t.retain(|_, _| {
                if drop > 0 {
                    drop -= 1;
                    false
                } else {
                    true
                }
            })?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// Install a verified state (certified state sync, [`crate::state_sync`]) in one durable
/// transaction: the ledger snapshot of `height`, the checkpoint and certificate of that height,
/// and the validator-set changes the proof listed (`sets`: the checkpoint height that committed
/// each, and the set as the `validator_sets` table holds it). A store whose state is already at
/// `height` or later is left as it is (returns `false`).
pub fn install_state(
    db: &Database,
    height: u64,
    decided: &[u8],
    snapshot: &[u8],
    sets: &[(u64, Vec<u8>)],
) -> Result<bool, StoreError> {
    if latest_ledger(db)?.is_some_and(|(h, _)| h >= height) {
        return Ok(false);
    }
    let tx = durable_write(db, false)?;
    tx.open_table(LEDGER)?.insert(height, snapshot)?;
    tx.open_table(CERTIFICATES)?.insert(height, decided)?;
    {
        let mut t = tx.open_table(VALIDATOR_SETS)?;
        for (h, bytes) in sets {
            t.insert(*h, bytes.as_slice())?;
        }
    }
    tx.commit()?;
    Ok(true)
}

/// The newest ledger snapshot.
pub fn latest_ledger(db: &Database) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
    let tx = db.begin_read()?;
    let t = tx.open_table(LEDGER)?;
    Ok(t.last()?.map(|(k, v)| (k.value(), v.value().to_vec())))
}

/// Bytes `offset..offset + max` of the stored ledger snapshot of `height` (fewer at its end),
/// or `None` when the newest snapshot is of another height (it was replaced) or `offset` is
/// past its end.
pub fn ledger_part(
    db: &Database,
    height: u64,
    offset: u64,
    max: usize,
) -> Result<Option<Vec<u8>>, StoreError> {
    let tx = db.begin_read()?;
    let t = tx.open_table(LEDGER)?;
    let Some((h, v)) = t.last()? else {
        return Ok(None);
    };
    if h.value() != height {
        return Ok(None);
    }
    let bytes = v.value();
    let Some(rest) = usize::try_from(offset).ok().and_then(|o| bytes.get(o..)) else {
        return Ok(None);
    };
    Ok(Some(rest[..rest.len().min(max)].to_vec()))
}

/// Remember a peer's addresses.
pub fn put_peer(db: &Database, peer: &str, addrs: &[String]) -> Result<(), StoreError> {
    let tx = durable_write(db, false)?;
    tx.open_table(PEERS)?
        .insert(peer, addrs.join("\n").as_str())?;
    tx.commit()?;
    Ok(())
}

/// Known peers and their addresses.
pub fn peers(db: &Database) -> Result<Vec<(String, Vec<String>)>, StoreError> {
    let tx = db.begin_read()?;
    let t = tx.open_table(PEERS)?;
    let mut out = vec![];
    for item in t.iter()? {
        let (k, v) = item?;
        out.push((
            k.value().to_string(),
            v.value().lines().map(str::to_string).collect(),
        ));
    }
    Ok(out)
}

/// Counts for status and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct StoreStats {
    /// Stored envelopes.
    pub envelopes: u64,
    /// Bytes of stored envelopes.
    pub envelope_bytes: u64,
    /// Windows known.
    pub windows: u64,
    /// Certificates stored.
    pub certificates: u64,
    /// WAL records.
    pub wal_records: u64,
}

/// Gather [`StoreStats`].
pub fn stats(db: &Database) -> Result<StoreStats, StoreError> {
    let tx = db.begin_read()?;
    let envs = tx.open_table(ENVELOPES)?;
    Ok(StoreStats {
        envelopes: envs.len()?,
        envelope_bytes: meta_u64(&tx.open_table(META)?, ENVELOPE_BYTES)?,
        windows: tx.open_table(WINDOW_KEYS)?.len()?,
        certificates: tx.open_table(CERTIFICATES)?.len()?,
        wal_records: tx.open_table(WAL)?.len()?,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chorus_crdt::window::Phase;
    use chorus_protocol::ids::TopicId;

    fn key(e: u64) -> WindowKey {
        WindowKey::Topic {
            topic: TopicId(1),
            epoch: e,
            phase: Phase::Workers,
        }
    }

    #[test]
    fn envelopes_round_trip_by_window_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.redb");
        let net = Hash32([1; 32]);
        {
            let db = open(&path, &net).unwrap();
            put_envelopes(
                &db,
                &[
                    (key(1), vec![1, 2, 3]),
                    (key(1), vec![4]),
                    (key(2), vec![5]),
                ],
                false,
            )
            .unwrap();
            // A durable write makes the earlier non-durable one durable too.
            put_envelopes(&db, &[], true).unwrap();
            wal_append(&db, &[vec![9], vec![8]]).unwrap();
            put_ledger(&db, 1, b"l1").unwrap();
            for h in 2..=5 {
                put_ledger(&db, h, b"lx").unwrap();
            }
        }
        let db = open(&path, &net).unwrap();
        let mut w1 = window_envelopes(&db, &key(1).id()).unwrap();
        w1.sort();
        assert_eq!(w1, vec![vec![1, 2, 3], vec![4]]);
        assert_eq!(window_envelopes(&db, &key(2).id()).unwrap(), vec![vec![5]]);
        assert_eq!(window_keys(&db).unwrap().len(), 2);
        let wal: Vec<Vec<u8>> = wal_records(&db).unwrap().into_iter().map(|r| r.1).collect();
        assert_eq!(wal, vec![vec![9], vec![8]]);
        assert_eq!(latest_ledger(&db).unwrap().unwrap().0, 5);
        let tx = db.begin_read().unwrap();
        assert_eq!(tx.open_table(LEDGER).unwrap().len().unwrap(), 1);
        drop(tx);
        let s = stats(&db).unwrap();
        assert_eq!((s.envelopes, s.windows, s.wal_records), (3, 2, 2));
        assert_eq!(s.envelope_bytes, 5);
        // Storing a held envelope again adds nothing.
        put_envelopes(&db, &[(key(2), vec![5])], true).unwrap();
        assert_eq!(stats(&db).unwrap().envelope_bytes, 5);
        // A store from before the running total: counted once when opened.
        {
            let tx = db.begin_write().unwrap();
            tx.open_table(META).unwrap().remove(ENVELOPE_BYTES).unwrap();
            tx.commit().unwrap();
        }
        drop(db);
        let db = open(&path, &net).unwrap();
        assert_eq!(stats(&db).unwrap().envelope_bytes, 5);
    }

    #[test]
    fn a_window_is_read_in_pages_that_cover_it_once() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(&dir.path().join("node.redb"), &Hash32([1; 32])).unwrap();
        let items: Vec<(WindowKey, Vec<u8>)> = (0..10u8).map(|i| (key(1), vec![i; 100])).collect();
        put_envelopes(&db, &items, true).unwrap();
        put_envelopes(&db, &[(key(2), vec![200; 100])], true).unwrap();
        let (mut seen, mut after, mut pages) = (vec![], None, 0);
        loop {
            let (page, next) = window_envelopes_page(&db, &key(1).id(), after, 250).unwrap();
            pages += 1;
            assert!(page.len() <= 2 && !page.is_empty(), "{}", page.len());
            seen.extend(page);
            match next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        assert_eq!(pages, 5);
        let mut all = window_envelopes(&db, &key(1).id()).unwrap();
        all.sort();
        seen.sort();
        assert_eq!(seen, all);
        // A page always holds at least one envelope, however small the budget.
        let (one, next) = window_envelopes_page(&db, &key(2).id(), None, 1).unwrap();
        assert_eq!((one.len(), next), (1, None));
    }

    #[test]
    fn head_lists_round_trip_and_a_damaged_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.redb");
        let net = Hash32([1; 32]);
        let list: Vec<Hash32> = (1..=3u8).map(|i| Hash32([i; 32])).collect();
        {
            let db = open(&path, &net).unwrap();
            put_heads(&db, &[(key(1).id(), list.clone()), (key(2).id(), vec![])]).unwrap();
        }
        let db = open(&path, &net).unwrap();
        assert_eq!(heads(&db, &key(1).id()).unwrap(), Some(list));
        assert_eq!(heads(&db, &key(2).id()).unwrap(), Some(vec![]));
        assert_eq!(heads(&db, &key(3).id()).unwrap(), None);
        {
            let tx = db.begin_write().unwrap();
            tx.open_table(HEADS)
                .unwrap()
                .insert(key(3).id().0.as_slice(), [7u8; 33].as_slice())
                .unwrap();
            tx.commit().unwrap();
        }
        let e = heads(&db, &key(3).id()).unwrap_err();
        assert!(
            matches!(&e, StoreError::Corrupt { table: "heads", .. }),
            "{e}"
        );
    }

    /// A catch-up answer reads only the certificates it sends; installing a state puts the
    /// snapshot, its certificate and the set changes in, and leaves a store already at that
    /// height alone.
    #[test]
    fn certificate_pages_and_state_installs() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(&dir.path().join("node.redb"), &Hash32([1; 32])).unwrap();
        for h in 1..=5u64 {
            put_certificate(&db, h, &[h as u8]).unwrap();
        }
        let heights = |v: Vec<(u64, Vec<u8>)>| v.into_iter().map(|(h, _)| h).collect::<Vec<_>>();
        assert_eq!(heights(certificates_page(&db, 2, 2).unwrap()), vec![2, 3]);
        assert_eq!(heights(certificates_page(&db, 4, 10).unwrap()), vec![4, 5]);
        assert!(certificates_page(&db, 6, 1).unwrap().is_empty());
        assert!(
            install_state(&db, 32, b"cert-32", b"ledger-32", &[(20, b"set".to_vec())]).unwrap()
        );
        assert_eq!(
            latest_ledger(&db).unwrap(),
            Some((32, b"ledger-32".to_vec()))
        );
        assert_eq!(certificate(&db, 32).unwrap(), Some(b"cert-32".to_vec()));
        assert_eq!(
            validator_set_at(&db, 31).unwrap(),
            Some((20, b"set".to_vec()))
        );
        assert!(!install_state(&db, 32, b"other", b"other", &[]).unwrap());
        assert!(!install_state(&db, 16, b"other", b"other", &[]).unwrap());
        assert_eq!(
            latest_ledger(&db).unwrap(),
            Some((32, b"ledger-32".to_vec()))
        );
    }

    #[test]
    fn wrong_network_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.redb");
        drop(open(&path, &Hash32([1; 32])).unwrap());
        assert!(matches!(
            open(&path, &Hash32([2; 32])),
            Err(StoreError::WrongNetwork { .. })
        ));
    }
}
