//! Signed envelopes: the unit of everything that travels.
//!
//! `Envelope { payload, signer, signature }`. The signature covers
//! `DOMAIN ‖ network id ‖ payload bytes` (exact bytes, never a re-serialized struct). The
//! payload is decoded only after the signature verifies ([`Envelope::open`]). The message id
//! is blake3 of the envelope's canonical encoding.

use bincode::{Decode, Encode};

use crate::codec::{self, DecodeError, Wire};
use crate::ids::{Hash32, MessageId, NetworkId};
use crate::keys::{KeyError, Keypair, PublicKey, Signature};
use crate::messages::Payload;

/// Domain separation tag of envelope signatures.
pub const ENVELOPE_DOMAIN: &[u8] = b"chorus/envelope/v1\0";

/// Largest envelope accepted anywhere (reputer loss bundles of big topics are the largest
/// messages; see [`crate::messages`] for the per-kind caps enforced by validation).
pub const MAX_ENVELOPE_SIZE: usize = 256 * 1024;

/// A signed payload.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub struct Envelope {
    /// Canonical encoding of a [`Payload`].
    pub payload: Vec<u8>,
    /// Who signed it.
    pub signer: PublicKey,
    /// ed25519 over `ENVELOPE_DOMAIN ‖ network ‖ payload`.
    pub signature: Signature,
}

impl Wire for Envelope {
    const MAX_SIZE: usize = MAX_ENVELOPE_SIZE;
    const NAME: &'static str = "Envelope";
}

/// Why an envelope was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// The envelope bytes (or its payload) did not decode.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The signature is invalid (wrong network, wrong key, tampered bytes).
    #[error("envelope signature: {0}")]
    Signature(#[from] KeyError),
}

/// The bytes an envelope signature covers.
pub fn signing_bytes(network: &NetworkId, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(ENVELOPE_DOMAIN.len() + 32 + payload.len());
    out.extend_from_slice(ENVELOPE_DOMAIN);
    out.extend_from_slice(&network.0);
    out.extend_from_slice(payload);
    out
}

impl Envelope {
    /// Encode `payload` canonically and sign it for `network`.
    pub fn seal(keypair: &Keypair, network: &NetworkId, payload: &Payload) -> Envelope {
        let payload = codec::encode(payload);
        let signature = keypair.sign(&signing_bytes(network, &payload));
        Envelope {
            payload,
            signer: keypair.public(),
            signature,
        }
    }

    /// Decode envelope bytes (size cap, canonical form). Does not verify.
    pub fn from_bytes(bytes: &[u8]) -> Result<Envelope, DecodeError> {
        codec::decode(bytes)
    }

    /// Canonical bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Message id: blake3 of the canonical envelope bytes.
    pub fn id(&self) -> MessageId {
        Hash32::of(&self.to_bytes())
    }

    /// Verify the signature for `network`.
    pub fn verify(&self, network: &NetworkId) -> Result<(), KeyError> {
        self.signer
            .verify_strict(&signing_bytes(network, &self.payload), &self.signature)
    }

    /// [`Envelope::verify`] with the signer's key already decompressed.
    pub fn verify_with(
        &self,
        network: &NetworkId,
        key: &crate::keys::VerifyingKey,
    ) -> Result<(), KeyError> {
        crate::keys::verify_strict_with(
            key,
            &signing_bytes(network, &self.payload),
            &self.signature,
        )
    }

    /// Verify, then decode the payload.
    pub fn open(&self, network: &NetworkId) -> Result<Payload, EnvelopeError> {
        self.verify(network)?;
        Ok(codec::decode(&self.payload)?)
    }

    /// Decode the payload without verifying (only for data that was verified before, e.g.
    /// read back from our own store).
    pub fn payload_unverified(&self) -> Result<Payload, DecodeError> {
        codec::decode(&self.payload)
    }
}

/// Verify many envelopes of one network at once with ed25519 batch verification (about twice
/// the throughput of single verification). Returns `Ok` only if every signature is valid; on
/// failure, callers fall back to [`Envelope::verify`] one by one to find the culprits.
///
/// Batch verification is not `verify_strict`: it accepts the same signatures as `verify` for
/// honest keys, so a node that batch-verifies also rejects small-order signer keys up front.
pub fn verify_batch(network: &NetworkId, envelopes: &[&Envelope]) -> Result<(), KeyError> {
    let mut messages = Vec::with_capacity(envelopes.len());
    let mut signatures = Vec::with_capacity(envelopes.len());
    let mut keys = Vec::with_capacity(envelopes.len());
    for env in envelopes {
        let key = env.signer.verifying_key()?;
        if key.is_weak() {
            return Err(KeyError::BadPoint);
        }
        messages.push(signing_bytes(network, &env.payload));
        signatures.push(ed25519_dalek::Signature::from_bytes(&env.signature.0));
        keys.push(key);
    }
    let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
    ed25519_dalek::verify_batch(&refs, &signatures, &keys).map_err(|_| KeyError::BadSignature)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{Amount, TopicId};
    use crate::messages::{Payload, Transfer, WorkerBundle};

    fn net(b: u8) -> NetworkId {
        Hash32([b; 32])
    }

    fn transfer() -> Payload {
        Payload::Transfer(Transfer {
            nonce: 1,
            to: Keypair::from_seed(&[2; 32]).public(),
            amount: Amount(10),
        })
    }

    #[test]
    fn seal_open_round_trip() {
        let kp = Keypair::from_seed(&[1; 32]);
        let env = Envelope::seal(&kp, &net(1), &transfer());
        let back = Envelope::from_bytes(&env.to_bytes()).unwrap();
        assert_eq!(back, env);
        assert_eq!(back.open(&net(1)).unwrap(), transfer());
    }

    #[test]
    fn other_network_or_tampered_payload_fails() {
        let kp = Keypair::from_seed(&[1; 32]);
        let env = Envelope::seal(&kp, &net(1), &transfer());
        assert!(env.open(&net(2)).is_err());
        let mut bad = env.clone();
        let last = bad.payload.len() - 1;
        bad.payload[last] ^= 1;
        assert!(matches!(
            bad.open(&net(1)),
            Err(EnvelopeError::Signature(_))
        ));
    }

    #[test]
    fn ids_differ_per_content() {
        let kp = Keypair::from_seed(&[1; 32]);
        let a = Envelope::seal(&kp, &net(1), &transfer());
        let b = Envelope::seal(
            &kp,
            &net(1),
            &Payload::WorkerBundle(WorkerBundle {
                topic: TopicId(1),
                epoch: 3,
                inference: Some(1.5),
                forecasts: vec![],
            }),
        );
        assert_ne!(a.id(), b.id());
        assert_eq!(a.id(), Envelope::from_bytes(&a.to_bytes()).unwrap().id());
    }

    #[test]
    fn batch_verification_accepts_good_and_rejects_one_bad() {
        let envs: Vec<Envelope> = (0..8u8)
            .map(|i| Envelope::seal(&Keypair::from_seed(&[i + 1; 32]), &net(1), &transfer()))
            .collect();
        let refs: Vec<&Envelope> = envs.iter().collect();
        assert!(verify_batch(&net(1), &refs).is_ok());
        let mut bad = envs.clone();
        bad[3].signature.0[0] ^= 1;
        let refs: Vec<&Envelope> = bad.iter().collect();
        assert!(verify_batch(&net(1), &refs).is_err());
    }
}
