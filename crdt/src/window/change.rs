//! Entries as automerge changes: building the one canonical change of a signed envelope, and
//! validating a change that arrived from a peer before it may touch a document.
//!
//! An entry is a pure function of its envelope, so every node derives the identical change:
//! one `put` on the root map, key = the entry's slot, value = the envelope bytes,
//! actor = `blake3(pubkey ‖ blake3(envelope))[..16]`, seq 1, no deps, time 0, built in a scratch
//! document. Validation requires the received bytes to equal that rebuilt change exactly:
//! automerge accepts re-encoded mutants that later make a saved document unloadable, and a put
//! into a nested object panics inside `apply_changes`.

use automerge::legacy::{Key, ObjectId, OpType};
use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ActorId, AutoCommit, Change, ROOT, ScalarValue};
use chorus_protocol::envelope::Envelope;
use chorus_protocol::ids::{Hash32, NetworkId};
use chorus_protocol::keys::PublicKey;
use chorus_protocol::messages::Payload;

use super::key::{WindowKey, slot_key};

/// Why a change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChangeError {
    /// Not one parseable change chunk.
    #[error("change does not parse: {0}")]
    Parse(String),
    /// Header fields other than the canonical ones.
    #[error("change header is not canonical: {0}")]
    Header(&'static str),
    /// Not exactly one put of bytes on the root map.
    #[error("change operation is not one root put of bytes: {0}")]
    Operation(&'static str),
    /// The value is not a valid envelope of this network.
    #[error("change value is not a valid envelope: {0}")]
    Envelope(String),
    /// The envelope belongs to another window.
    #[error("envelope belongs to another window")]
    WrongWindow,
    /// The map key is not the envelope's slot.
    #[error("map key is not the envelope's slot")]
    WrongSlot,
    /// The actor is not derived from (signer, envelope).
    #[error("actor does not match the envelope")]
    WrongActor,
    /// Bytes differ from the canonical rebuild.
    #[error("change bytes are not the canonical encoding")]
    NonCanonical,
    /// automerge refused to build the change (should not happen).
    #[error("automerge: {0}")]
    Automerge(String),
}

/// The automerge actor of an entry.
pub fn actor_of(signer: &PublicKey, envelope_bytes: &[u8]) -> ActorId {
    let inner = blake3::hash(envelope_bytes);
    let mut h = blake3::Hasher::new();
    h.update(signer.as_bytes());
    h.update(inner.as_bytes());
    ActorId::from(&h.finalize().as_bytes()[..16])
}

/// Build the canonical change of an envelope for the given slot key.
///
/// The change is encoded directly from its one operation, without a document: the same bytes
/// a scratch automerge document would commit ([`build_change_in_a_document`], which tests
/// compare it with), at a fraction of the cost. This runs once per entry on every node.
pub fn build_change(
    slot: &str,
    signer: &PublicKey,
    envelope_bytes: &[u8],
) -> Result<Change, ChangeError> {
    let start_op =
        std::num::NonZeroU64::new(1).ok_or_else(|| ChangeError::Automerge("start op 0".into()))?;
    Ok(Change::from(automerge::ExpandedChange {
        operations: vec![automerge::legacy::Op {
            action: OpType::Put(ScalarValue::Bytes(envelope_bytes.to_vec())),
            obj: ObjectId::Root,
            key: Key::Map(slot.into()),
            pred: automerge::legacy::SortedVec::new(),
            insert: false,
        }],
        actor_id: actor_of(signer, envelope_bytes),
        hash: None,
        seq: 1,
        start_op,
        time: 0,
        message: None,
        deps: vec![],
        extra_bytes: vec![],
        author: None,
    }))
}

/// The canonical change as a scratch automerge document commits it: one put on the root
/// map, time 0. The reference [`build_change`] must reproduce byte for byte.
pub fn build_change_in_a_document(
    slot: &str,
    signer: &PublicKey,
    envelope_bytes: &[u8],
) -> Result<Change, ChangeError> {
    let mut scratch = AutoCommit::new().with_actor(actor_of(signer, envelope_bytes));
    scratch
        .put(ROOT, slot, ScalarValue::Bytes(envelope_bytes.to_vec()))
        .map_err(|e| ChangeError::Automerge(e.to_string()))?;
    scratch.commit_with(CommitOptions::default().with_time(0));
    scratch
        .get_last_local_change()
        .ok_or_else(|| ChangeError::Automerge("no change was committed".into()))
}

/// A change with its decoded envelope, ready to apply.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The automerge change.
    pub change: Change,
    /// The envelope.
    pub envelope: Envelope,
    /// Its canonical bytes.
    pub envelope_bytes: Vec<u8>,
    /// Its decoded payload.
    pub payload: Payload,
    /// The map key.
    pub slot: String,
}

impl Entry {
    /// The change hash as our hash type.
    pub fn hash(&self) -> Hash32 {
        Hash32(self.change.hash().0)
    }

    /// The message id of the envelope.
    pub fn message_id(&self) -> Hash32 {
        Hash32::of(&self.envelope_bytes)
    }
}

/// Make the entry of an envelope already verified by gossip validation (or read back from our
/// own store). Checks that it belongs to `window`.
pub fn entry_from_envelope(
    window: &WindowKey,
    envelope: Envelope,
    payload: Payload,
) -> Result<Entry, ChangeError> {
    let envelope_bytes = envelope.to_bytes();
    entry_from_parts(window, envelope, envelope_bytes, payload)
}

/// [`entry_from_envelope`] when the envelope's canonical bytes are at hand (as they are for a
/// gossiped envelope: decoding checked they are canonical).
pub fn entry_from_parts(
    window: &WindowKey,
    envelope: Envelope,
    envelope_bytes: Vec<u8>,
    payload: Payload,
) -> Result<Entry, ChangeError> {
    if !window.accepts(&payload) {
        return Err(ChangeError::WrongWindow);
    }
    let slot = slot_key(&envelope.signer, &payload);
    let change = build_change(&slot, &envelope.signer, &envelope_bytes)?;
    Ok(Entry {
        change,
        envelope,
        envelope_bytes,
        payload,
        slot,
    })
}

/// Validate a change received from a peer, fully: its shape ([`parse_change`]) and the
/// envelope's signature for `network`. For windows used on their own; the replica checks
/// shape here and everything else about the envelope in its one admission function.
pub fn validate_change(
    window: &WindowKey,
    network: &NetworkId,
    raw: &[u8],
) -> Result<Entry, ChangeError> {
    let entry = parse_change(window, raw)?;
    entry
        .envelope
        .verify(network)
        .map_err(|e| ChangeError::Envelope(e.to_string()))?;
    Ok(entry)
}

/// Check the shape of a change received from a peer: one canonical put on the root map of
/// an envelope that decodes, belongs to `window`, sits at its slot, with the actor derived from
/// it, and bytes equal to the canonical rebuild. The envelope's signature and content are not
/// judged here (the caller's admission does that).
pub fn parse_change(window: &WindowKey, raw: &[u8]) -> Result<Entry, ChangeError> {
    let change = Change::try_from(raw).map_err(|e| ChangeError::Parse(e.to_string()))?;
    if !change.other_actor_ids().is_empty() {
        return Err(ChangeError::Header("other actors"));
    }
    if change.seq() != 1 {
        return Err(ChangeError::Header("seq"));
    }
    if !change.deps().is_empty() {
        return Err(ChangeError::Header("deps"));
    }
    if change.start_op().get() != 1 {
        return Err(ChangeError::Header("start_op"));
    }
    if change.timestamp() != 0 {
        return Err(ChangeError::Header("time"));
    }
    if change.message().is_some() {
        return Err(ChangeError::Header("message"));
    }
    if !change.extra_bytes().is_empty() {
        return Err(ChangeError::Header("extra bytes"));
    }
    if change.len() != 1 {
        return Err(ChangeError::Operation("not exactly one op"));
    }
    let expanded = change.decode();
    let [op] = expanded.operations.as_slice() else {
        return Err(ChangeError::Operation("not exactly one op"));
    };
    if op.obj != ObjectId::Root {
        return Err(ChangeError::Operation("not on the root map"));
    }
    if op.insert || !op.pred.is_empty() {
        return Err(ChangeError::Operation("insert or overwrite"));
    }
    let Key::Map(key) = &op.key else {
        return Err(ChangeError::Operation("not a map key"));
    };
    let OpType::Put(ScalarValue::Bytes(value)) = &op.action else {
        return Err(ChangeError::Operation("not a put of bytes"));
    };
    let envelope = Envelope::from_bytes(value).map_err(|e| ChangeError::Envelope(e.to_string()))?;
    let payload = envelope
        .payload_unverified()
        .map_err(|e| ChangeError::Envelope(e.to_string()))?;
    if !window.accepts(&payload) {
        return Err(ChangeError::WrongWindow);
    }
    let slot = slot_key(&envelope.signer, &payload);
    if key.as_str() != slot {
        return Err(ChangeError::WrongSlot);
    }
    if change.actor_id() != &actor_of(&envelope.signer, value) {
        return Err(ChangeError::WrongActor);
    }
    let canonical = build_change(&slot, &envelope.signer, value)?;
    if canonical.raw_bytes() != raw {
        return Err(ChangeError::NonCanonical);
    }
    Ok(Entry {
        change: canonical,
        envelope_bytes: value.clone(),
        envelope,
        payload,
        slot,
    })
}
