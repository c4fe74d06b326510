//! Where a store's bytes go: rows and bytes per table (`chorus store stats`, the footprint
//! benchmark), and giving free pages back (`chorus store compact`, [`compact`]).
//!
//! redb reports, per table, the bytes of keys and values in leaf pages (`stored`), the bytes of
//! its B-tree structure (`metadata`) and the unused bytes inside its pages (`fragmented`);
//! the file also holds free pages (copy-on-write leaves old pages behind until a later commit
//! reuses them) and redb's own allocator state, reported as the remainder.

use redb::{
    Database, ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTableMetadata, TableHandle,
};
use serde::Serialize;

use super::StoreError;
use super::schema::*;

/// One table's usage.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TableUsage {
    /// The table's name ([`super::schema`]).
    pub table: &'static str,
    /// Rows.
    pub rows: u64,
    /// Bytes of keys and values.
    pub stored_bytes: u64,
    /// Bytes of the B-tree's structure.
    pub metadata_bytes: u64,
    /// Unused bytes inside the table's pages.
    pub fragmented_bytes: u64,
}

impl TableUsage {
    /// Every byte the table occupies.
    pub fn total(&self) -> u64 {
        self.stored_bytes + self.metadata_bytes + self.fragmented_bytes
    }
}

/// A store's usage.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// Per table, in [`super::schema`] order.
    pub tables: Vec<TableUsage>,
    /// Size of the file.
    pub file_bytes: u64,
    /// Bytes of the canonical envelopes (the source of truth), from the running total.
    pub envelope_bytes: u64,
}

impl Usage {
    /// The file's bytes that no table occupies (free pages, allocator state).
    pub fn other_bytes(&self) -> u64 {
        let tables: u64 = self.tables.iter().map(TableUsage::total).sum();
        self.file_bytes.saturating_sub(tables)
    }

    /// Rows of one table (0 if unknown).
    pub fn rows(&self, table: &str) -> u64 {
        self.tables
            .iter()
            .find(|t| t.table == table)
            .map_or(0, |t| t.rows)
    }
}

fn usage<K: redb::Key + 'static, V: redb::Value + 'static>(
    tx: &ReadTransaction,
    def: redb::TableDefinition<K, V>,
) -> Result<TableUsage, StoreError> {
    let t: ReadOnlyTable<K, V> = tx.open_table(def)?;
    let s = t.stats()?;
    Ok(TableUsage {
        table: leak_name(def.name()),
        rows: redb::ReadableTableMetadata::len(&t)?,
        stored_bytes: s.stored_bytes(),
        metadata_bytes: s.metadata_bytes(),
        fragmented_bytes: s.fragmented_bytes(),
    })
}

/// The schema's table names are `'static` already; this maps the borrowed name back to them.
fn leak_name(name: &str) -> &'static str {
    TABLE_NAMES
        .iter()
        .copied()
        .find(|n| *n == name)
        .unwrap_or("?")
}

/// Every table of the schema, by name.
pub const TABLE_NAMES: [&str; 12] = [
    "meta",
    "envelopes",
    "window_entries",
    "window_keys",
    "heads",
    "certificates",
    "wal",
    "ledger",
    "peers",
    "inferences",
    "statements",
    "validator_sets",
];

/// Rows and bytes per table of an open store, and the file's size (`file_bytes`, from the
/// caller: redb does not know its path).
pub fn usage_of(db: &Database, file_bytes: u64) -> Result<Usage, StoreError> {
    let tx = db.begin_read()?;
    let tables = vec![
        usage(&tx, META)?,
        usage(&tx, ENVELOPES)?,
        usage(&tx, WINDOW_ENTRIES)?,
        usage(&tx, WINDOW_KEYS)?,
        usage(&tx, HEADS)?,
        usage(&tx, CERTIFICATES)?,
        usage(&tx, WAL)?,
        usage(&tx, LEDGER)?,
        usage(&tx, PEERS)?,
        usage(&tx, INFERENCES)?,
        usage(&tx, STATEMENTS)?,
        usage(&tx, VALIDATOR_SETS)?,
    ];
    drop(tx);
    Ok(Usage {
        tables,
        file_bytes,
        envelope_bytes: super::ops::stats(db)?.envelope_bytes,
    })
}

/// Most compaction passes [`compact`] runs (each moves pages towards the start of the file and
/// truncates it; redb says when no further pass would shrink it).
pub const MAX_COMPACTION_PASSES: usize = 32;

/// Compact a store nobody else has open: free pages are given back to the file system.
/// Returns the passes that changed the file.
///
/// # Errors
/// redb's (e.g. a transaction still open).
pub fn compact(db: &mut Database) -> Result<usize, StoreError> {
    let mut passes = 0;
    while passes < MAX_COMPACTION_PASSES && db.compact().map_err(redb::Error::from)? {
        passes += 1;
    }
    Ok(passes)
}

/// When a running node compacts its store in the background (`[store] compact_free_percent`,
/// `compact_min_mb`, `compact_check_secs`). redb writes copy-on-write and reuses the pages a
/// commit frees, so in a steady state (retention deleting as much as arrives) the file stops
/// growing by itself; what it never does is give pages back, so after the history shrinks
/// (a first pruning, a shorter retention) the file keeps its largest size. Counting the free
/// pages walks every table (some 40 ms for a 48 MB store), so it is done rarely.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompactPolicy {
    /// Compact when free pages are at least this many percent of the bytes on disk (0: never).
    pub free_percent: u64,
    /// ... and the file occupies at least this much on disk.
    pub min_bytes: u64,
    /// Count the free pages this often (ms of the node's clock).
    pub check_every_ms: u64,
}

impl CompactPolicy {
    /// Never compact.
    pub const NEVER: CompactPolicy = CompactPolicy {
        free_percent: 0,
        min_bytes: 0,
        check_every_ms: u64::MAX,
    };

    /// Whether a file of `disk` bytes on disk with `free` of them in free pages is worth
    /// compacting.
    pub fn worth(&self, disk: u64, free: u64) -> bool {
        self.free_percent > 0
            && disk >= self.min_bytes
            && u128::from(free) * 100 >= u128::from(disk) * u128::from(self.free_percent)
    }
}

/// What one background compaction did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Compaction {
    /// Bytes on disk after.
    pub after_bytes: u64,
    /// Passes that changed the file.
    pub passes: usize,
    /// How long the storage thread was busy with it.
    pub seconds: f64,
}

/// What one check found, and the compaction it ran.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CompactCheck {
    /// Bytes the file occupied on disk ([`disk_bytes`]).
    pub disk_bytes: u64,
    /// Of which free pages (given back by a compaction).
    pub free_bytes: u64,
    /// The compaction, if the free pages were worth it.
    pub compaction: Option<Compaction>,
}

/// The bytes a file occupies on disk: its allocated blocks. redb grows its file by doubling
/// its length (a sparse extension the file system does not allocate until pages are
/// written), so the length overstates what the store uses.
pub fn disk_bytes(meta: &std::fs::Metadata) -> u64 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        meta.blocks().saturating_mul(512)
    }
    #[cfg(not(unix))]
    {
        meta.len()
    }
}

/// Count the free pages of `db`, whose file is `path`, and compact it if `policy` finds them
/// worth it. Runs on the storage thread between jobs ([`super::Store::call_mut`]): no
/// transaction is open there, and writes wait meanwhile.
///
/// # Errors
/// redb's, or the file's size cannot be read.
pub fn compact_if_worth(
    db: &mut Database,
    path: &std::path::Path,
    policy: &CompactPolicy,
) -> Result<CompactCheck, StoreError> {
    let on_disk = |when: &str| {
        std::fs::metadata(path)
            .map(|m| disk_bytes(&m))
            .map_err(|e| StoreError::Corrupt {
                table: "-",
                reason: format!("cannot read the size of {} {when}: {e}", path.display()),
            })
    };
    let disk = on_disk("before compacting")?;
    let tx = db.begin_write()?;
    let s = tx.stats()?;
    tx.abort()?;
    let used = s.allocated_pages().saturating_mul(s.page_size() as u64);
    let free = disk.saturating_sub(used);
    let compaction = match policy.worth(disk, free) {
        false => None,
        true => {
            let started = std::time::Instant::now();
            let passes = compact(db)?;
            Some(Compaction {
                after_bytes: on_disk("after compacting")?,
                passes,
                seconds: started.elapsed().as_secs_f64(),
            })
        }
    };
    Ok(CompactCheck {
        disk_bytes: disk,
        free_bytes: free,
        compaction,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::store::ops;
    use chorus_crdt::window::{Phase, WindowKey};
    use chorus_protocol::ids::{Hash32, TopicId};

    /// Rows and stored bytes are exactly what was written: 100 envelopes of 135 bytes in two
    /// windows are 100 × (32-byte id + 135) in `envelopes` and 100 × (two 32-byte ids) in
    /// `window_entries`; the tables and the remainder add up to the file.
    #[test]
    fn usage_counts_rows_and_bytes_per_table() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.redb");
        let db = ops::open(&path, &Hash32([1; 32])).unwrap();
        let items: Vec<(WindowKey, Vec<u8>)> = (0..100u8)
            .map(|i| {
                let key = WindowKey::Topic {
                    topic: TopicId(1),
                    epoch: u64::from(i % 2),
                    phase: Phase::Workers,
                };
                (key, vec![i; 135])
            })
            .collect();
        ops::put_envelopes(&db, &items, true).unwrap();
        let file = std::fs::metadata(&path).unwrap().len();
        let u = usage_of(&db, file).unwrap();
        let t = |name: &str| u.tables.iter().find(|t| t.table == name).unwrap().clone();
        assert_eq!(u.tables.len(), TABLE_NAMES.len());
        assert_eq!(t("envelopes").rows, 100);
        assert_eq!(t("envelopes").stored_bytes, 100 * (32 + 135));
        assert_eq!(t("window_entries").rows, 100);
        // Two 32-byte ids and redb's one-byte length of the tuple's first element.
        assert_eq!(t("window_entries").stored_bytes, 100 * 65);
        assert_eq!(t("window_keys").rows, 2);
        assert_eq!(t("certificates").rows, 0);
        assert_eq!(u.envelope_bytes, 100 * 135);
        assert_eq!(u.rows("envelopes"), 100);
        let tables: u64 = u.tables.iter().map(TableUsage::total).sum();
        assert_eq!(tables + u.other_bytes(), file);
    }

    /// A store of 200 certificates of 8 KiB of which the last 10 are left: most of its file is
    /// free pages.
    fn store_with_free_pages() -> (tempfile::TempDir, Database) {
        let dir = tempfile::tempdir().unwrap();
        let db = ops::open(&dir.path().join("node.redb"), &Hash32([1; 32])).unwrap();
        for h in 1..=200u64 {
            ops::put_certificate(&db, h, &[h as u8; 8192]).unwrap();
        }
        let tx = db.begin_write().unwrap();
        tx.open_table(CERTIFICATES)
            .unwrap()
            .retain(|h, _| h > 190)
            .unwrap();
        tx.commit().unwrap();
        (dir, db)
    }

    /// Free pages left by deleted rows go back to the file system, and every kept row stays.
    #[test]
    fn compaction_shrinks_the_file_and_keeps_the_rows() {
        let (dir, mut db) = store_with_free_pages();
        let path = dir.path().join("node.redb");
        let before = std::fs::metadata(&path).unwrap().len();
        let passes = compact(&mut db).unwrap();
        let after = std::fs::metadata(&path).unwrap().len();
        assert!(
            passes >= 1 && after * 4 < before,
            "{before} -> {after} in {passes}"
        );
        assert_eq!(ops::last_certificate_height(&db).unwrap(), 200);
        assert_eq!(ops::certificate(&db, 191).unwrap(), Some(vec![191; 8192]));
        assert_eq!(ops::certificate(&db, 190).unwrap(), None);
    }

    /// The background check compacts only when the free pages are worth it, gives them back
    /// and keeps every row.
    #[test]
    fn compaction_runs_when_free_pages_are_worth_it_and_gives_them_back() {
        let (dir, mut db) = store_with_free_pages();
        let path = dir.path().join("node.redb");
        let on_disk = || disk_bytes(&std::fs::metadata(&path).unwrap());
        let disk = on_disk();
        assert!(disk > 1 << 20, "{disk}");
        let policy = |free_percent, min_bytes| CompactPolicy {
            free_percent,
            min_bytes,
            check_every_ms: 1,
        };
        // 190 of 200 pages of 8 KiB are free: far more than half, but the file is too small.
        let small = compact_if_worth(&mut db, &path, &policy(50, disk + 1)).unwrap();
        assert_eq!(small.compaction, None);
        assert_eq!(small.disk_bytes, disk);
        assert!(small.free_bytes * 10 > disk * 8, "{small:?}");
        assert_eq!(on_disk(), disk);
        // Not enough free pages for 99 %.
        let few = compact_if_worth(&mut db, &path, &policy(99, 0)).unwrap();
        assert_eq!(few.compaction, None);
        let done = compact_if_worth(&mut db, &path, &policy(50, 0)).unwrap();
        let c = done.compaction.unwrap();
        assert_eq!(c.after_bytes, on_disk());
        assert!(c.after_bytes * 4 < disk, "{done:?}");
        assert!(c.passes >= 1);
        assert_eq!(ops::last_certificate_height(&db).unwrap(), 200);
        assert_eq!(ops::certificate(&db, 195).unwrap(), Some(vec![195; 8192]));
        // Nothing left to give back.
        let again = compact_if_worth(&mut db, &path, &policy(50, 0)).unwrap();
        assert_eq!(again.compaction, None, "{again:?}");
        assert!(!CompactPolicy::NEVER.worth(u64::MAX, u64::MAX));
    }
}
