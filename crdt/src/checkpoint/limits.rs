//! Named bounds on everything that arrives from the network or is kept in memory.
//!
//! Each cap says why it has its value. Decoding refuses anything larger before it allocates.

/// Highest accepted height. Half the `u64` range, so `height + 1` never overflows anywhere
/// (Malachite increments heights without checks).
pub const MAX_HEIGHT: u64 = u64::MAX / 2;

/// Highest accepted round. Malachite drops messages more than 10 rounds ahead of its own, and
/// rounds grow by one per timeout, so a million rounds is unreachable by honest nodes; the cap
/// only keeps `round + 1` far away from `u32::MAX`.
pub const MAX_ROUND: u32 = 1 << 20;

/// Most windows one checkpoint may finalize. A window head is at most 69 bytes (two hashes and
/// a varint count), so a checkpoint stays under 72 KiB however many entries it finalizes.
pub const MAX_WINDOWS: usize = 1024;

/// Most entries one window may hold (and a checkpoint may finalize in it). Its list of heads
/// (32 bytes each, 2 MiB at most) fits in one RPC response; a window at the cap admits nothing
/// more (`window_full`).
pub const MAX_WINDOW_ENTRIES: usize = 65_536;

/// Most validators in one set (a network's `max_validators` is at most this). Bounds
/// certificate sizes (96 bytes per signature).
pub const MAX_VALIDATORS: usize = chorus_protocol::params::MAX_VALIDATOR_SET as usize;

/// Largest encoded checkpoint: the window heads plus varints and four hashes.
pub const MAX_CHECKPOINT_SIZE: usize = MAX_WINDOWS * 72 + 256;

/// Largest encoded commit, polka or round certificate: at most one signature per validator
/// (a round signature is the largest: 1 + 33 + 32 + 64 bytes) plus a header.
pub const MAX_CERTIFICATE_SIZE: usize = MAX_VALIDATORS * 132 + 128;

/// Largest encoded consensus message: a catch-up response (one checkpoint and one
/// certificate) is the largest variant.
pub const MAX_MESSAGE_SIZE: usize = MAX_CHECKPOINT_SIZE + MAX_CERTIFICATE_SIZE + 64;

/// Largest encoded WAL record (a proposal, a proposed value or a polka certificate).
pub const MAX_WAL_RECORD_SIZE: usize = MAX_MESSAGE_SIZE;

/// Malachite's queue of inputs for future heights / before a round started: total entries.
/// Inputs beyond it are dropped by Malachite (drop new); catch-up recovers.
pub const INPUT_QUEUE_CAPACITY: usize = 4 * MAX_VALIDATORS;

/// Malachite's queue of inputs: entries per height.
pub const INPUT_QUEUE_PER_HEIGHT: usize = 4 * MAX_VALIDATORS;

/// Own signatures and peers' first-seen signed votes remembered per height for double-sign
/// guarding and equivocation detection. Three signed messages per validator and round for 16
/// rounds; beyond it new entries are not tracked (counted in `Stats::untracked_signatures`).
pub const MAX_TRACKED_SIGNATURES: usize = 16 * 3 * MAX_VALIDATORS;

/// Distinct proposals per height waiting for the host's validity verdict. Malachite keeps at
/// most two proposals per round; 64 covers 32 rounds. Overflow: drop new.
pub const MAX_PENDING_VALIDATIONS: usize = 64;

/// `(peer, height)` pairs remembered for rate-limiting catch-up traffic. Overflow: drop the
/// oldest entry.
pub const MAX_CATCH_UP_RATE_ENTRIES: usize = 1024;
