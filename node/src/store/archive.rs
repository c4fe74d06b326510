//! Portable archives of finalized history (`chorus store export|import`), so pruning never
//! loses it: the decided checkpoints of a height range with their commit certificates, the head
//! list of every window they finalized, and those windows' envelopes.
//!
//! ## Format
//!
//! A header, then records, each `u32 LE length ‖ canonical encoding` (bincode 2, like every
//! other encoding of the project), the last one [`Record::End`]:
//!
//! - [`Header`]: magic `CHRSARC1`, network id, first and last height;
//! - per height, in order: [`Record::Decided`] (a `DecidedCheckpoint`), then per window it
//!   finalized with entries: [`Record::Heads`] and [`Record::Window`] (the window's key and its
//!   envelopes);
//! - [`Record::End`] with the number of heights: a truncated file is refused.
//!
//! ## What import checks
//!
//! A file is input a stranger may control. Import writes only what the store can check
//! against what it already trusts: a certificate must be signed by more than 2/3 of the
//! validator set this node recorded for its height (so only heights up to the node's own tip
//! are importable, and a node that never followed the network can import nothing); a
//! certificate for a height the store holds must be the same one; a head list must hash to the
//! root its checkpoint names; an envelope is written only if its change hash is in that list
//! (authenticated by hash, like a certified window). The first record that fails stops the
//! import with an error naming it; what was written before it is certified history.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use bincode::{Decode, Encode};
use chorus_crdt::checkpoint::{DecidedCheckpoint, ValidatorSet, WindowHead};
use chorus_crdt::proof::ProofValidator;
use chorus_crdt::window::WindowKey;
use chorus_protocol::codec;
use chorus_protocol::ids::{Hash32, NetworkId};
use redb::Database;

use super::StoreError;
use super::ops;

/// The first eight bytes of an archive.
pub const MAGIC: [u8; 8] = *b"CHRSARC1";

/// Largest record accepted (a window of 65 536 envelopes of up to 1 KiB, with room).
pub const MAX_RECORD: usize = 96 << 20;

/// What an archive starts with.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Header {
    /// [`MAGIC`].
    pub magic: [u8; 8],
    /// The network it belongs to.
    pub network: Hash32,
    /// First height.
    pub from: u64,
    /// Last height.
    pub to: u64,
}

/// One record after the header.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum Record {
    /// A decided checkpoint with its commit certificate (canonical `DecidedCheckpoint`).
    Decided(Vec<u8>),
    /// The finalized change hashes of a window of the last `Decided`.
    Heads {
        /// Window id.
        window: Hash32,
        /// Strictly ascending.
        heads: Vec<Hash32>,
    },
    /// A window of the last `Decided` and its envelopes.
    Window {
        /// The window.
        key: WindowKey,
        /// Canonical envelope bytes.
        envelopes: Vec<Vec<u8>>,
    },
    /// The end, with the number of `Decided` records.
    End {
        /// Heights in the file.
        heights: u64,
    },
}

impl codec::Wire for Header {
    const MAX_SIZE: usize = 128;
    const NAME: &'static str = "archive::Header";
}

impl codec::Wire for Record {
    const MAX_SIZE: usize = MAX_RECORD;
    const NAME: &'static str = "archive::Record";
}

/// What an export or import did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    /// Heights (decided checkpoints).
    pub heights: u64,
    /// Windows with their head lists.
    pub windows: u64,
    /// Envelopes.
    pub envelopes: u64,
    /// Heights of the range the store did not hold (export) or already held (import).
    pub skipped: u64,
}

/// Archive errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveError {
    /// Reading or writing the file.
    #[error("archive file: {0}")]
    Io(#[from] std::io::Error),
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The file is not an archive of this network, or a record is malformed or refused.
    #[error("{0}")]
    Refused(String),
}

fn refused(what: impl Into<String>) -> ArchiveError {
    ArchiveError::Refused(what.into())
}

fn write_record(w: &mut impl Write, bytes: &[u8]) -> Result<(), ArchiveError> {
    let len = u32::try_from(bytes.len()).map_err(|_| refused("a record over 4 GiB"))?;
    w.write_all(&len.to_le_bytes())?;
    w.write_all(bytes)?;
    Ok(())
}

fn read_record(r: &mut impl Read) -> Result<Vec<u8>, ArchiveError> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)
        .map_err(|_| refused("the file ends before its end record (truncated)"))?;
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_RECORD {
        return Err(refused(format!(
            "a record of {len} bytes (at most {MAX_RECORD})"
        )));
    }
    let mut bytes = vec![0u8; len];
    r.read_exact(&mut bytes)
        .map_err(|_| refused("the file ends inside a record (truncated)"))?;
    Ok(bytes)
}

/// Write the stored history of heights `from..=to` to `w`. Heights the store no longer holds
/// are skipped (counted); windows whose envelopes were pruned are written without them.
pub fn export(
    db: &Database,
    network: &NetworkId,
    from: u64,
    to: u64,
    w: &mut impl Write,
) -> Result<Summary, ArchiveError> {
    let header = Header {
        magic: MAGIC,
        network: *network,
        from,
        to,
    };
    write_record(w, &codec::encode(&header))?;
    let keys: BTreeMap<Hash32, WindowKey> = ops::window_keys(db)?
        .into_iter()
        .map(|k| (k.id(), k))
        .collect();
    let mut s = Summary::default();
    for height in from..=to {
        let Some(bytes) = ops::certificate(db, height)? else {
            s.skipped += 1;
            continue;
        };
        let d: DecidedCheckpoint = codec::decode(&bytes)
            .map_err(|e| refused(format!("stored certificate {height}: {e}")))?;
        write_record(w, &codec::encode(&Record::Decided(bytes)))?;
        s.heights += 1;
        for head in d.checkpoint.windows.iter().filter(|h| h.entries > 0) {
            let Some(heads) = ops::heads(db, &head.window)? else {
                continue;
            };
            write_record(
                w,
                &codec::encode(&Record::Heads {
                    window: head.window,
                    heads,
                }),
            )?;
            s.windows += 1;
            if let Some(key) = keys.get(&head.window) {
                let envelopes = ops::window_envelopes(db, &head.window)?;
                s.envelopes += envelopes.len() as u64;
                write_record(
                    w,
                    &codec::encode(&Record::Window {
                        key: *key,
                        envelopes,
                    }),
                )?;
            }
        }
    }
    write_record(w, &codec::encode(&Record::End { heights: s.heights }))?;
    w.flush()?;
    Ok(s)
}

/// The state of an import: the checkpoint whose windows come next.
struct Current {
    height: u64,
    windows: BTreeMap<Hash32, WindowHead>,
    lists: BTreeMap<Hash32, Vec<Hash32>>,
}

/// Read an archive from `r` into the store, checking every record (module docs).
pub fn import(
    db: &Database,
    network: &NetworkId,
    r: &mut impl Read,
) -> Result<Summary, ArchiveError> {
    let header: Header =
        codec::decode(&read_record(r)?).map_err(|_| refused("not a Chorus archive"))?;
    if header.magic != MAGIC {
        return Err(refused("not a Chorus archive"));
    }
    if header.network != *network {
        return Err(refused(format!(
            "an archive of network {}, this node is on {}",
            header.network.to_hex(),
            network.to_hex()
        )));
    }
    let tip = ops::last_certificate_height(db)?;
    let mut s = Summary::default();
    let mut current: Option<Current> = None;
    loop {
        let record: Record = codec::decode(&read_record(r)?)
            .map_err(|e| refused(format!("a malformed record: {e}")))?;
        match record {
            Record::Decided(bytes) => {
                let d = check_decided(db, network, &bytes, tip)?;
                let height = d.height();
                match ops::certificate(db, height)? {
                    Some(held) if held == bytes => s.skipped += 1,
                    Some(_) => {
                        return Err(refused(format!(
                            "height {height}: the archive's checkpoint is not the one this \
                             node holds (another chain)"
                        )));
                    }
                    None => ops::put_certificate(db, height, &bytes)?,
                }
                s.heights += 1;
                current = Some(Current {
                    height,
                    windows: d
                        .checkpoint
                        .windows
                        .iter()
                        .map(|w| (w.window, w.clone()))
                        .collect(),
                    lists: BTreeMap::new(),
                });
            }
            Record::Heads { window, heads } => {
                let c = current
                    .as_mut()
                    .ok_or_else(|| refused("a head list before any checkpoint"))?;
                match c.windows.get(&window) {
                    Some(head) if head.is_list(&heads) => {}
                    _ => {
                        return Err(refused(format!(
                            "height {}: a head list for window {} that its checkpoint does \
                             not name",
                            c.height,
                            window.to_hex()
                        )));
                    }
                }
                ops::put_heads(db, &[(window, heads.clone())])?;
                c.lists.insert(window, heads);
                s.windows += 1;
            }
            Record::Window { key, envelopes } => {
                let c = current
                    .as_ref()
                    .ok_or_else(|| refused("a window before any checkpoint"))?;
                let Some(list) = c.lists.get(&key.id()) else {
                    return Err(refused(format!(
                        "height {}: envelopes of {key:?} before its head list",
                        c.height
                    )));
                };
                let items = certified_envelopes(&key, list, envelopes);
                s.envelopes += items.len() as u64;
                ops::put_envelopes(db, &items, true)?;
            }
            Record::End { heights } if heights == s.heights => return Ok(s),
            Record::End { heights } => {
                return Err(refused(format!(
                    "the end record counts {heights} heights, the file held {}",
                    s.heights
                )));
            }
        }
    }
}

/// A decided checkpoint of this network whose certificate more than 2/3 of the validator set
/// this node recorded for its height signed.
fn check_decided(
    db: &Database,
    network: &NetworkId,
    bytes: &[u8],
    tip: u64,
) -> Result<DecidedCheckpoint, ArchiveError> {
    let d: DecidedCheckpoint =
        codec::decode(bytes).map_err(|e| refused(format!("a malformed checkpoint: {e}")))?;
    let height = d.height();
    if height > tip || height == 0 {
        return Err(refused(format!(
            "height {height} is beyond this node's own chain (tip {tip}): import history a \
             node has followed, where it knows the validator sets"
        )));
    }
    d.check_integrity(network)
        .map_err(|e| refused(format!("height {height}: {e}")))?;
    let entries: Vec<ProofValidator> = ops::validator_set_at(db, height - 1)?
        .and_then(|(_, b)| serde_json::from_slice(&b).ok())
        .ok_or_else(|| {
            refused(format!(
                "the validator set of height {height} is not known here"
            ))
        })?;
    let set = ValidatorSet::from_powers(entries.iter().map(|v| (v.key, v.power)))
        .map_err(|e| refused(format!("the validator set of height {height}: {e}")))?;
    d.certificate
        .verify(network, &set)
        .map_err(|e| refused(format!("height {height}: {e}")))?;
    Ok(d)
}

/// The envelopes whose change hash `list` (a certified head list of `key`) names.
fn certified_envelopes(
    key: &WindowKey,
    list: &[Hash32],
    envelopes: Vec<Vec<u8>>,
) -> Vec<(WindowKey, Vec<u8>)> {
    envelopes
        .into_iter()
        .filter(|bytes| {
            super::prune::change_hash(key, bytes).is_some_and(|h| list.binary_search(&h).is_ok())
        })
        .map(|bytes| (*key, bytes))
        .collect()
}
