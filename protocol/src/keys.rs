//! Identities: ed25519 keypairs, public keys (addresses) and signatures.
//!
//! One key is a node's whole identity: it signs envelopes, it is the account address in the
//! ledger, and (in `chorus-node`) it is the libp2p peer identity. Verification always uses
//! `verify_strict` (rejects small-order keys and non-canonical signatures), so a signature that
//! one peer accepts is accepted by every peer.

use std::fmt;
use std::str::FromStr;

use bincode::{Decode, Encode};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

/// Length of a public key in bytes.
pub const PUBLIC_KEY_LEN: usize = 32;
/// Length of a signature in bytes.
pub const SIGNATURE_LEN: usize = 64;
/// Length of a secret seed in bytes.
pub const SEED_LEN: usize = 32;

/// Errors about keys and signatures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The text is not 64 hex characters.
    #[error("not a public key: expected 64 hex characters, got {0:?}")]
    BadHex(String),
    /// The bytes are not a valid ed25519 point.
    #[error("public key is not a valid ed25519 point")]
    BadPoint,
    /// The signature does not verify.
    #[error("signature does not verify")]
    BadSignature,
}

/// An ed25519 public key. It is also an account address; `Display` gives the full
/// lowercase hex form, [`PublicKey::short`] an 8-character form for logs and tables.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode)]
pub struct PublicKey(pub [u8; PUBLIC_KEY_LEN]);

/// An account address is a public key.
pub type Address = PublicKey;

impl PublicKey {
    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; PUBLIC_KEY_LEN] {
        &self.0
    }

    /// Lowercase hex, 64 characters (the address form used everywhere).
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Short display form: the first 8 hex characters. Not unique; for humans only.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }

    /// Verify `signature` over `message` with strict rules (no malleability, no weak keys).
    pub fn verify_strict(&self, message: &[u8], signature: &Signature) -> Result<(), KeyError> {
        let key = VerifyingKey::from_bytes(&self.0).map_err(|_| KeyError::BadPoint)?;
        let sig = ed25519_dalek::Signature::from_bytes(&signature.0);
        key.verify_strict(message, &sig)
            .map_err(|_| KeyError::BadSignature)
    }

    /// The dalek verifying key, if the bytes are a valid point.
    pub fn verifying_key(&self) -> Result<VerifyingKey, KeyError> {
        VerifyingKey::from_bytes(&self.0).map_err(|_| KeyError::BadPoint)
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.short())
    }
}

impl FromStr for PublicKey {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; PUBLIC_KEY_LEN];
        if s.len() != 2 * PUBLIC_KEY_LEN {
            return Err(KeyError::BadHex(s.chars().take(80).collect()));
        }
        hex::decode_to_slice(s, &mut out)
            .map_err(|_| KeyError::BadHex(s.chars().take(80).collect()))?;
        Ok(PublicKey(out))
    }
}

impl Serialize for PublicKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An ed25519 signature.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode)]
pub struct Signature(pub [u8; SIGNATURE_LEN]);

impl Signature {
    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; SIGNATURE_LEN] {
        &self.0
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({}…)", hex::encode(&self.0[..6]))
    }
}

impl Serialize for Signature {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(self.0))
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let mut out = [0u8; SIGNATURE_LEN];
        hex::decode_to_slice(&s, &mut out).map_err(serde::de::Error::custom)?;
        Ok(Signature(out))
    }
}

/// A signing keypair. The secret is zeroized on drop and never printed.
#[derive(Clone)]
pub struct Keypair {
    signing: SigningKey,
}

impl Keypair {
    /// The keypair of a 32-byte secret seed. Key generation takes its randomness from the
    /// caller (the CLI reads the OS RNG), so this crate stays free of RNGs.
    pub fn from_seed(seed: &[u8; SEED_LEN]) -> Self {
        Keypair {
            signing: SigningKey::from_bytes(seed),
        }
    }

    /// The secret seed, in a buffer that is wiped when dropped.
    pub fn seed(&self) -> Zeroizing<[u8; SEED_LEN]> {
        Zeroizing::new(self.signing.to_bytes())
    }

    /// The public key (address).
    pub fn public(&self) -> PublicKey {
        PublicKey(self.signing.verifying_key().to_bytes())
    }

    /// Sign `message` (ed25519 is deterministic: the same message gives the same signature).
    pub fn sign(&self, message: &[u8]) -> Signature {
        Signature(self.signing.sign(message).to_bytes())
    }

    /// The dalek signing key, for adapters (libp2p identity, consensus signing).
    pub fn signing_key(&self) -> &SigningKey {
        &self.signing
    }
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Keypair {{ public: {}, secret: <redacted> }}",
            self.public()
        )
    }
}

impl PartialEq for Keypair {
    fn eq(&self, other: &Self) -> bool {
        self.public() == other.public()
    }
}

impl Eq for Keypair {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify_strict() {
        let kp = Keypair::from_seed(&[7u8; 32]);
        let sig = kp.sign(b"hello");
        assert!(kp.public().verify_strict(b"hello", &sig).is_ok());
        assert_eq!(
            kp.public().verify_strict(b"hellp", &sig),
            Err(KeyError::BadSignature)
        );
    }

    #[test]
    fn debug_is_redacted() {
        let kp = Keypair::from_seed(&[9u8; 32]);
        let text = format!("{kp:?}");
        assert!(text.contains("redacted"));
        assert!(!text.contains(&hex::encode([9u8; 32])));
    }

    #[test]
    fn address_round_trip_and_short_form() {
        let pk = Keypair::from_seed(&[1u8; 32]).public();
        let parsed: PublicKey = pk.to_string().parse().unwrap();
        assert_eq!(parsed, pk);
        assert_eq!(pk.short().len(), 8);
        assert!(pk.to_string().starts_with(&pk.short()));
        assert!("zz".parse::<PublicKey>().is_err());
        assert!("ab".repeat(31).parse::<PublicKey>().is_err());
    }

    #[test]
    fn small_order_key_is_rejected() {
        // The identity point (small order) must never verify anything under strict rules.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let pk = PublicKey(identity);
        let sig = Signature([0u8; 64]);
        assert!(pk.verify_strict(b"x", &sig).is_err());
    }
}
