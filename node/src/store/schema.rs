//! Every redb table of a node, in one place, and the on-disk layout.
//!
//! | table | key | value |
//! |---|---|---|
//! | `meta` | name | bytes: `schema_version` (u64 LE), `network_id` (32 B) |
//! | `envelopes` | message id (32 B) | canonical envelope bytes |
//! | `window_entries` | (window id, message id) | `()` |
//! | `window_keys` | window id | canonical `WindowKey` |
//! | `certificates` | height | canonical (checkpoint, commit certificate) |
//! | `heads` | window id | the finalized change hashes of the window (32 B each, ascending): the list a checkpoint names by root |
//! | `wal` | sequence number | canonical consensus WAL record |
//! | `ledger` | height | ledger snapshot after that height (bincode, serde path) |
//! | `peers` | peer id (text) | last known addresses, newline separated |
//! | `inferences` | (topic, epoch) | finalized network inference: JSON `{bundle, height}`, packed ([`super::rows`]) |
//! | `statements` | (address, topic, epoch) | the account's statement lines of that epoch: JSON, packed |
//! | `validator_sets` | checkpoint height `h` | the set of height `h + 1` when it differs from the row before (0: genesis): JSON |
//!
//! Signed envelopes are the source of truth: windows are rebuilt from `envelopes` +
//! `window_entries`; ledger snapshots are caches that make restarts fast.

use redb::TableDefinition;

/// Bumped on every incompatible layout change; checked at open. 2: ledger snapshots hold
/// topics with a `token` and per-topic `rewards_paid` (a version-1 store's snapshots no longer
/// decode), and the `statements` table exists. 3: checkpoints commit to their inferences and
/// the next validator set (stored certificates of version 2 no longer decode), stored
/// inferences carry their Merkle path, and the `validator_sets` table exists. 4: checkpoints
/// name each window's heads by root and count (stored certificates and WAL records of version
/// 3 no longer decode), the `heads` table holds the lists, and the never-written `evidence`
/// table is gone (evidence lives as envelopes of the ledger windows, offences in the ledger).
/// 5: the `snapshots` table (closed windows' automerge documents, no longer written) is gone;
/// a version-4 store is migrated in place ([`super::migrate`]). 6: `inferences` and
/// `statements` rows are stored packed ([`super::rows`]; a version-5 store's JSON rows are
/// packed in place).
pub const SCHEMA_VERSION: u64 = 6;

/// Names → bytes.
pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// Message id → envelope bytes.
pub const ENVELOPES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("envelopes");
/// (window id, message id) → ().
pub const WINDOW_ENTRIES: TableDefinition<(&[u8], &[u8]), ()> =
    TableDefinition::new("window_entries");
/// Window id → window key.
pub const WINDOW_KEYS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("window_keys");
/// Window id → finalized change hashes (32 B each, ascending).
pub const HEADS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("heads");
/// Height → checkpoint and certificate.
pub const CERTIFICATES: TableDefinition<u64, &[u8]> = TableDefinition::new("certificates");
/// Sequence → WAL record.
pub const WAL: TableDefinition<u64, &[u8]> = TableDefinition::new("wal");
/// Height → ledger snapshot.
pub const LEDGER: TableDefinition<u64, &[u8]> = TableDefinition::new("ledger");
/// (topic, epoch) → finalized network inference (JSON).
pub const INFERENCES: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("inferences");
/// Peer id → addresses.
pub const PEERS: TableDefinition<&str, &str> = TableDefinition::new("peers");
/// (address, topic, epoch) → JSON list of `api::types::Statement`.
pub const STATEMENTS: TableDefinition<(&[u8], u64, u64), &[u8]> =
    TableDefinition::new("statements");
/// Checkpoint height → the validator set it commits to (JSON), at changes only.
pub const VALIDATOR_SETS: TableDefinition<u64, &[u8]> = TableDefinition::new("validator_sets");
