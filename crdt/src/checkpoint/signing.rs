//! What validators sign, and how signatures are checked.
//!
//! Sign bytes are domain separated and bound to the network:
//!
//! `u64_le(len(domain)) ‖ domain ‖ network_id (32 bytes) ‖ body`
//!
//! - votes: domain `chorus/checkpoint/vote/v1`, body = the vote's canonical encoding
//!   (height, round, step, value id or nil, validator). Votes carry no extension, so a vote
//!   rebuilt from a certificate (`ctx.new_precommit`) has exactly the signed bytes.
//! - proposals: domain `chorus/checkpoint/proposal/v1`, body = encoding of
//!   `(height, round, pol_round, proposer, checkpoint id)`. The id is blake3 of the whole
//!   checkpoint, so signing the id binds every byte of it.
//!
//! Messages signed for another network id never verify here. Verification is always ed25519
//! `verify_strict`.

use bincode::Encode;
use chorus_protocol::codec;
use chorus_protocol::ids::Hash32;
use chorus_protocol::keys::{Keypair, PublicKey, Signature};

use super::context::{Proposal, Vote, round_to_wire};

/// Domain of vote signatures.
pub const VOTE_DOMAIN: &str = "chorus/checkpoint/vote/v1";
/// Domain of proposal signatures.
pub const PROPOSAL_DOMAIN: &str = "chorus/checkpoint/proposal/v1";

fn framed(domain: &str, network: &Hash32, body: &impl Encode) -> Vec<u8> {
    let body = bincode::encode_to_vec(body, codec::config()).unwrap_or_default();
    let mut out = Vec::with_capacity(8 + domain.len() + 32 + body.len());
    out.extend_from_slice(&(domain.len() as u64).to_le_bytes());
    out.extend_from_slice(domain.as_bytes());
    out.extend_from_slice(&network.0);
    out.extend_from_slice(&body);
    out
}

/// The bytes a validator signs for `vote` on `network`.
pub fn vote_sign_bytes(network: &Hash32, vote: &Vote) -> Vec<u8> {
    framed(VOTE_DOMAIN, network, vote)
}

/// The bytes a proposer signs for `proposal` on `network`.
pub fn proposal_sign_bytes(network: &Hash32, proposal: &Proposal) -> Vec<u8> {
    let body = (
        proposal.height,
        round_to_wire(proposal.round),
        round_to_wire(proposal.pol_round),
        proposal.proposer,
        proposal.value.id(),
    );
    framed(PROPOSAL_DOMAIN, network, &body)
}

/// Sign a vote.
pub fn sign_vote(keypair: &Keypair, network: &Hash32, vote: &Vote) -> Signature {
    keypair.sign(&vote_sign_bytes(network, vote))
}

/// Sign a proposal.
pub fn sign_proposal(keypair: &Keypair, network: &Hash32, proposal: &Proposal) -> Signature {
    keypair.sign(&proposal_sign_bytes(network, proposal))
}

/// Whether `signature` is `key`'s signature of `vote` on `network`.
pub fn verify_vote(network: &Hash32, vote: &Vote, signature: &Signature, key: &PublicKey) -> bool {
    key.verify_strict(&vote_sign_bytes(network, vote), signature)
        .is_ok()
}

/// Whether `signature` is `key`'s signature of `proposal` on `network`.
pub fn verify_proposal(
    network: &Hash32,
    proposal: &Proposal,
    signature: &Signature,
    key: &PublicKey,
) -> bool {
    key.verify_strict(&proposal_sign_bytes(network, proposal), signature)
        .is_ok()
}

/// A cache of signatures already verified at the current height, so that certificates built
/// from votes we verified one by one (Malachite re-verifies its own commit certificate at
/// decision) cost no second verification. Keyed by blake3 over (key, signature, sign bytes):
/// a hit means exactly this key signed exactly these bytes.
#[derive(Debug, Default)]
pub struct SignatureCache {
    verified: std::collections::BTreeSet<Hash32>,
    capacity: usize,
}

impl SignatureCache {
    /// An empty cache holding at most `capacity` entries (further entries are not cached).
    pub fn new(capacity: usize) -> Self {
        SignatureCache {
            verified: Default::default(),
            capacity,
        }
    }

    fn key(key: &PublicKey, signature: &Signature, bytes: &[u8]) -> Hash32 {
        Hash32::of_parts(
            "chorus/checkpoint/sig-cache/v1",
            &[key.as_bytes(), signature.as_bytes(), bytes],
        )
    }

    /// Verify, consulting and filling the cache.
    pub fn verify(&mut self, key: &PublicKey, signature: &Signature, bytes: &[u8]) -> bool {
        let k = Self::key(key, signature, bytes);
        if self.verified.contains(&k) {
            return true;
        }
        let ok = key.verify_strict(bytes, signature).is_ok();
        if ok && self.verified.len() < self.capacity {
            self.verified.insert(k);
        }
        ok
    }

    /// Forget everything (at a new height).
    pub fn clear(&mut self) {
        self.verified.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::context::{CheckpointHeight, ValidatorAddress};
    use arc_malachitebft_core_types::{NilOrVal, Round, VoteType};

    fn vote(kp: &Keypair) -> Vote {
        Vote {
            height: CheckpointHeight(3),
            round: Round::new(1),
            kind: VoteType::Prevote,
            value: NilOrVal::Nil,
            validator: ValidatorAddress(kp.public()),
        }
    }

    #[test]
    fn signatures_bind_network_domain_and_content() {
        let kp = Keypair::from_seed(&[4; 32]);
        let net = Hash32([1; 32]);
        let v = vote(&kp);
        let sig = sign_vote(&kp, &net, &v);
        assert!(verify_vote(&net, &v, &sig, &kp.public()));
        assert!(!verify_vote(&Hash32([2; 32]), &v, &sig, &kp.public()));
        let mut other = v.clone();
        other.kind = VoteType::Precommit;
        assert!(!verify_vote(&net, &other, &sig, &kp.public()));
        let stranger = Keypair::from_seed(&[5; 32]).public();
        assert!(!verify_vote(&net, &v, &sig, &stranger));
        // Domain separation: the vote bytes never equal any proposal bytes prefix.
        assert!(vote_sign_bytes(&net, &v).starts_with(&(VOTE_DOMAIN.len() as u64).to_le_bytes()));
    }

    #[test]
    fn cache_hits_only_for_the_same_bytes() {
        let kp = Keypair::from_seed(&[4; 32]);
        let sig = kp.sign(b"a");
        let mut cache = SignatureCache::new(8);
        assert!(cache.verify(&kp.public(), &sig, b"a"));
        assert!(cache.verify(&kp.public(), &sig, b"a"));
        assert!(!cache.verify(&kp.public(), &sig, b"b"));
    }
}
