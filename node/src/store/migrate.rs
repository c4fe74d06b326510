//! Schema migrations: a store written by an older build is brought to [`SCHEMA_VERSION`] in
//! place when it is opened, instead of being refused.
//!
//! [`MIGRATIONS`] is the numbered list: entry `k` takes a store of version `from` to `from + 1`.
//! [`migrate`] runs every step from the store's version up, in the caller's one write
//! transaction: a crash or an error in any step leaves the file as it was (redb commits all or
//! nothing), and the new version is written with the last step. A store older than the first
//! step can reach, or newer than this build, is refused with the reason.
//!
//! Versions before 4 cannot be migrated: their checkpoints and WAL records encoded another
//! wire format, so their certificates do not verify under this protocol (they belong, in
//! effect, to another network). Such a store is refused; delete it and let the node catch up
//! from its peers (`chorus store export` with the old build keeps its history as an archive).
//!
//! Adding a migration: bump [`SCHEMA_VERSION`], append a step whose `from` is the previous
//! version, and add a test that builds a store of the previous layout by hand and checks what
//! the step did (see the tests below).

use redb::{ReadableTable, TableHandle, WriteTransaction};

use super::StoreError;
use super::schema::{INFERENCES, SCHEMA_VERSION, STATEMENTS};

/// One step: a store of version `from` becomes version `from + 1`.
pub struct Migration {
    /// The version it starts from.
    pub from: u64,
    /// What it changes (logged when it runs).
    pub what: &'static str,
    /// The step, inside the open write transaction.
    pub run: fn(&WriteTransaction) -> Result<(), StoreError>,
}

/// Every migration, in order; the last one ends at [`SCHEMA_VERSION`].
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        from: 4,
        what: "drop the `snapshots` table (closed windows' automerge documents; no longer \
               written: windows are rebuilt from their envelopes)",
        run: drop_window_snapshots,
    },
    Migration {
        from: 5,
        what: "pack the stored inferences and statement lines (JSON → zlib with the rows \
               dictionary)",
        run: pack_derived_rows,
    },
];

/// Rows re-encoded per batch by [`pack_derived_rows`] (what it holds in memory at once).
const PACK_BATCH: usize = 1_024;

/// The oldest version [`migrate`] can start from.
pub fn oldest_migratable() -> u64 {
    MIGRATIONS.first().map_or(SCHEMA_VERSION, |m| m.from)
}

/// Why a store's version cannot be brought to this build's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unmigratable {
    /// Written by a newer build.
    Newer,
    /// Older than the first migration.
    TooOld,
}

/// Run every step from `found` to [`SCHEMA_VERSION`] in `tx`; returns what ran.
///
/// # Errors
/// [`Unmigratable`] (as the caller's error) when no chain of steps leads from `found`, or a
/// step's own error.
pub fn migrate(
    tx: &WriteTransaction,
    found: u64,
) -> Result<Result<Vec<&'static str>, Unmigratable>, StoreError> {
    if found > SCHEMA_VERSION {
        return Ok(Err(Unmigratable::Newer));
    }
    let mut done = vec![];
    let mut version = found;
    while version < SCHEMA_VERSION {
        let Some(step) = MIGRATIONS.iter().find(|m| m.from == version) else {
            return Ok(Err(Unmigratable::TooOld));
        };
        (step.run)(tx)?;
        done.push(step.what);
        version += 1;
    }
    Ok(Ok(done))
}

/// 4 → 5.
fn drop_window_snapshots(tx: &WriteTransaction) -> Result<(), StoreError> {
    let snapshots: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("snapshots");
    if tx.list_tables()?.any(|t| t.name() == snapshots.name()) {
        tx.delete_table(snapshots)?;
    }
    Ok(())
}

/// 5 → 6: every row of `inferences` and `statements` packed ([`super::rows`]), a batch at a
/// time.
fn pack_derived_rows(tx: &WriteTransaction) -> Result<(), StoreError> {
    use std::ops::Bound::{Excluded, Unbounded};
    let mut t = tx.open_table(INFERENCES)?;
    in_batches(
        &mut t,
        |t, after: Option<&(u64, u64)>| {
            let rows = match after {
                None => t.range::<(u64, u64)>(..)?,
                Some(k) => t.range((Excluded(*k), Unbounded))?,
            };
            packed(rows.map(|r| r.map(|(k, v)| (k.value(), v))))
        },
        |t, k, v| Ok(t.insert(k, v).map(drop)?),
    )?;
    let mut t = tx.open_table(STATEMENTS)?;
    in_batches(
        &mut t,
        |t, after: Option<&(Vec<u8>, u64, u64)>| {
            let rows = match after {
                None => t.range::<(&[u8], u64, u64)>(..)?,
                Some((who, topic, epoch)) => {
                    t.range((Excluded((who.as_slice(), *topic, *epoch)), Unbounded))?
                }
            };
            packed(rows.map(|r| {
                r.map(|(k, v)| {
                    let (who, topic, epoch) = k.value();
                    ((who.to_vec(), topic, epoch), v)
                })
            }))
        },
        |t, (who, topic, epoch), v| Ok(t.insert((who.as_slice(), *topic, *epoch), v).map(drop)?),
    )
}

/// The first [`PACK_BATCH`] rows of `rows`, their values packed.
fn packed<'a, O>(
    rows: impl Iterator<Item = Result<(O, redb::AccessGuard<'a, &'static [u8]>), redb::StorageError>>,
) -> Result<Vec<(O, Vec<u8>)>, StoreError> {
    rows.take(PACK_BATCH)
        .map(|row| {
            let (k, v) = row?;
            Ok((k, super::rows::pack(v.value())?))
        })
        .collect()
}

/// Rewrite table `t` a batch at a time: `next(t, after)` reads the batch after key `after`
/// (`None`: from the start), `put` writes one row back; ends at an empty batch.
fn in_batches<T, O>(
    t: &mut T,
    next: impl Fn(&T, Option<&O>) -> Result<Vec<(O, Vec<u8>)>, StoreError>,
    put: impl Fn(&mut T, &O, &[u8]) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut after: Option<O> = None;
    loop {
        let batch = next(t, after.as_ref())?;
        for (k, v) in &batch {
            put(t, k, v)?;
        }
        match batch.into_iter().last() {
            Some((k, _)) => after = Some(k),
            None => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::store::ops;
    use crate::store::schema::{CERTIFICATES, META};
    use chorus_protocol::ids::Hash32;
    use redb::ReadableDatabase;

    const NET: Hash32 = Hash32([7; 32]);

    /// A store of version `v` as an older build wrote it: `meta` with that version and the
    /// network, a certificate, and (version 4) a `snapshots` table with one document.
    fn old_store(path: &std::path::Path, v: u64) {
        let db = redb::Database::create(path).unwrap();
        let tx = db.begin_write().unwrap();
        {
            let mut meta = tx.open_table(META).unwrap();
            meta.insert("schema_version", v.to_le_bytes().as_slice())
                .unwrap();
            meta.insert("network_id", NET.0.as_slice()).unwrap();
            tx.open_table(CERTIFICATES)
                .unwrap()
                .insert(7, b"cert".as_slice())
                .unwrap();
            let snapshots: redb::TableDefinition<&[u8], &[u8]> =
                redb::TableDefinition::new("snapshots");
            tx.open_table(snapshots)
                .unwrap()
                .insert([1u8; 32].as_slice(), [0u8; 4096].as_slice())
                .unwrap();
        }
        tx.commit().unwrap();
    }

    fn version(db: &redb::Database) -> u64 {
        let tx = db.begin_read().unwrap();
        let meta = tx.open_table(META).unwrap();
        u64::from_le_bytes(
            meta.get("schema_version")
                .unwrap()
                .unwrap()
                .value()
                .try_into()
                .unwrap(),
        )
    }

    fn tables(db: &redb::Database) -> Vec<String> {
        let tx = db.begin_read().unwrap();
        tx.list_tables()
            .unwrap()
            .map(|t| t.name().to_string())
            .collect()
    }

    #[test]
    fn the_list_is_numbered_without_gaps_and_ends_at_this_version() {
        for (k, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.from, oldest_migratable() + k as u64);
        }
        assert_eq!(MIGRATIONS.last().map(|m| m.from + 1), Some(SCHEMA_VERSION));
    }

    /// 4 → 5: the `snapshots` table is gone, everything else is kept, the version is 5, and
    /// opening again changes nothing.
    #[test]
    fn a_version_4_store_loses_its_window_snapshots_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.redb");
        old_store(&path, 4);
        let db = ops::open(&path, &NET).unwrap();
        assert_eq!(version(&db), SCHEMA_VERSION);
        assert!(!tables(&db).iter().any(|t| t == "snapshots"));
        assert_eq!(ops::certificate(&db, 7).unwrap(), Some(b"cert".to_vec()));
        drop(db);
        let db = ops::open(&path, &NET).unwrap();
        assert_eq!(version(&db), SCHEMA_VERSION);
        assert_eq!(ops::certificate(&db, 7).unwrap(), Some(b"cert".to_vec()));
    }

    /// 5 → 6: inference and statement rows written as JSON by a version-5 build read back
    /// the same JSON, stored packed; more rows than one batch; the other tables untouched.
    #[test]
    fn a_version_5_store_has_its_inference_and_statement_rows_packed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.redb");
        old_store(&path, 5);
        let line = |e: u64| {
            format!(
                r#"[{{"topic":1,"epoch":{e},"height":{},"role":"inferer","score":0.0041,"ema_score":-0.0012,"weight":0.73,"reward_fraction":0.0103,"payout":"51699582093718000"}}]"#,
                e + 3
            )
            .into_bytes()
        };
        let inference = |e: u64| {
            format!(r#"{{"bundle":{{"combined_value":{e}.5}},"finalized":true,"height":{e}}}"#)
                .into_bytes()
        };
        let n = PACK_BATCH as u64 + 10;
        {
            let db = redb::Database::open(&path).unwrap();
            let tx = db.begin_write().unwrap();
            {
                let mut inf = tx.open_table(INFERENCES).unwrap();
                let mut st = tx.open_table(STATEMENTS).unwrap();
                for e in 0..n {
                    inf.insert((1, e), inference(e).as_slice()).unwrap();
                    for who in [[1u8; 32], [2u8; 32]] {
                        st.insert((who.as_slice(), 1, e), line(e).as_slice())
                            .unwrap();
                    }
                }
            }
            tx.commit().unwrap();
        }
        let db = ops::open(&path, &NET).unwrap();
        assert_eq!(version(&db), SCHEMA_VERSION);
        for e in [0, PACK_BATCH as u64 - 1, PACK_BATCH as u64, n - 1] {
            assert_eq!(ops::inference(&db, 1, e).unwrap(), Some(inference(e)));
        }
        let lines = ops::statements(&db, &[2; 32], (1, 1), (0, u64::MAX), 10_000).unwrap();
        assert_eq!(lines, (0..n).map(line).collect::<Vec<_>>());
        {
            let tx = db.begin_read().unwrap();
            let st = tx.open_table(STATEMENTS).unwrap();
            let raw = st.get(([1u8; 32].as_slice(), 1, n - 1)).unwrap().unwrap();
            assert!(raw.value().len() * 10 < line(n - 1).len() * 7, "not packed");
        }
        assert_eq!(ops::certificate(&db, 7).unwrap(), Some(b"cert".to_vec()));
        drop(db);
        // Opening again changes nothing (the rows are not packed twice).
        let db = ops::open(&path, &NET).unwrap();
        assert_eq!(
            ops::inference(&db, 1, n - 1).unwrap(),
            Some(inference(n - 1))
        );
    }

    /// Too old, and newer than this build: refused with the reason, nothing changed (the
    /// version, the `snapshots` table and the rows are as they were).
    #[test]
    fn older_and_newer_stores_are_refused_untouched() {
        for v in [3, SCHEMA_VERSION + 1] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("node.redb");
            old_store(&path, v);
            let err = ops::open(&path, &NET).unwrap_err().to_string();
            let why = if v < SCHEMA_VERSION {
                "no migration"
            } else {
                "newer"
            };
            assert!(
                err.contains(why) && err.contains(&format!("version {v}")),
                "{err}"
            );
            let db = redb::Database::open(&path).unwrap();
            assert_eq!(version(&db), v);
            assert!(tables(&db).iter().any(|t| t == "snapshots"), "version {v}");
            let tx = db.begin_read().unwrap();
            let certs = tx.open_table(CERTIFICATES).unwrap();
            assert!(certs.get(7).unwrap().is_some(), "version {v}");
        }
    }
}
