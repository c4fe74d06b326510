//! Identities: ed25519 keypairs, public keys (addresses) and signatures.
//!
//! One key is a node's whole identity: it signs envelopes, it is the account address in the
//! ledger, and (in `chorus-node`) it is the libp2p peer identity. Verification always uses
//! `verify_strict` (rejects small-order keys and non-canonical signatures), so a signature that
//! one peer accepts is accepted by every peer.

use std::fmt;
use std::str::FromStr;

use bincode::{Decode, Encode};
use ed25519_dalek::{Signer, SigningKey};

/// A decompressed public key, ready to verify with.
pub use ed25519_dalek::VerifyingKey;
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

/// [`PublicKey::verify_strict`] with the key already decompressed (from a [`KeyCache`]).
pub fn verify_strict_with(
    key: &VerifyingKey,
    message: &[u8],
    signature: &Signature,
) -> Result<(), KeyError> {
    let sig = ed25519_dalek::Signature::from_bytes(&signature.0);
    key.verify_strict(message, &sig)
        .map_err(|_| KeyError::BadSignature)
}

/// Decompressed verifying keys of recent signers.
///
/// Decompressing a public key (a field square root) is about a sixth of an ed25519
/// verification, and a node verifies the same few thousand registered signers over and over.
/// The cache holds at most [`KeyCache::CAPACITY`] keys and starts over when full, so a flood
/// of new keys costs only the decompressions it would cost anyway. Only valid points are
/// cached; the verification itself (weak-key and signature checks) runs every time.
#[derive(Debug, Default)]
pub struct KeyCache {
    keys: std::sync::Mutex<std::collections::HashMap<PublicKey, VerifyingKey>>,
}

impl KeyCache {
    /// Most keys held.
    pub const CAPACITY: usize = 16_384;

    /// `key` decompressed, from the cache or computed (and then cached).
    pub fn verifying_key(&self, key: &PublicKey) -> Result<VerifyingKey, KeyError> {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(k) = keys.get(key) {
            return Ok(*k);
        }
        let k = key.verifying_key()?;
        if keys.len() >= Self::CAPACITY {
            keys.clear();
        }
        keys.insert(*key, k);
        Ok(k)
    }

    /// Decompress and hold `keys` ahead of their first signature, while there is room;
    /// invalid points are skipped (their signatures fail when they come).
    pub fn admit<'a>(&self, keys: impl IntoIterator<Item = &'a PublicKey>) {
        let mut held = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        for key in keys {
            if held.len() >= Self::CAPACITY {
                break;
            }
            if !held.contains_key(key)
                && let Ok(k) = key.verifying_key()
            {
                held.insert(*key, k);
            }
        }
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.keys.lock().map_or(0, |k| k.len())
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

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
        verify_strict_with(&self.verifying_key()?, message, signature)
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
    fn cached_keys_verify_exactly_like_fresh_ones() {
        let cache = KeyCache::default();
        let kp = Keypair::from_seed(&[7u8; 32]);
        let sig = kp.sign(b"hello");
        for _ in 0..2 {
            let key = cache.verifying_key(&kp.public()).unwrap();
            assert!(verify_strict_with(&key, b"hello", &sig).is_ok());
            assert_eq!(
                verify_strict_with(&key, b"hellp", &sig),
                Err(KeyError::BadSignature)
            );
        }
        assert_eq!(cache.len(), 1);
        // Not a point: an error, and nothing cached.
        let bad = (0u8..=255)
            .map(|b| PublicKey([b; 32]))
            .find(|k| k.verifying_key().is_err())
            .unwrap();
        assert_eq!(cache.verifying_key(&bad), Err(KeyError::BadPoint));
        cache.admit([&bad]);
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn the_key_cache_is_bounded() {
        let cache = KeyCache::default();
        let keys: Vec<PublicKey> = (0..=KeyCache::CAPACITY as u64)
            .map(|i| {
                let mut seed = [0u8; 32];
                seed[..8].copy_from_slice(&i.to_le_bytes());
                Keypair::from_seed(&seed).public()
            })
            .collect();
        cache.admit(&keys);
        assert_eq!(cache.len(), KeyCache::CAPACITY);
        // Full: the next new key starts the cache over.
        cache.verifying_key(&keys[KeyCache::CAPACITY]).unwrap();
        assert_eq!(cache.len(), 1);
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
        // Also when the key comes from the cache.
        let cached = KeyCache::default().verifying_key(&pk).unwrap();
        assert!(verify_strict_with(&cached, b"x", &sig).is_err());
    }
}
