//! Identifiers and amounts: blake3 hashes, network id, message id, topic id, token amounts.

use std::fmt;
use std::str::FromStr;

use bincode::{Decode, Encode};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A 32-byte blake3 digest.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Encode, Decode)]
pub struct Hash32(pub [u8; 32]);

impl Hash32 {
    /// blake3 of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Hash32(*blake3::hash(bytes).as_bytes())
    }

    /// blake3 over several parts, each prefixed by its length (unambiguous framing).
    pub fn of_parts(domain: &str, parts: &[&[u8]]) -> Self {
        let mut h = blake3::Hasher::new();
        h.update(&(domain.len() as u64).to_le_bytes());
        h.update(domain.as_bytes());
        for p in parts {
            h.update(&(p.len() as u64).to_le_bytes());
            h.update(p);
        }
        Hash32(*h.finalize().as_bytes())
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// First 8 hex characters, for logs.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }
}

impl fmt::Display for Hash32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Hash32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.short())
    }
}

impl FromStr for Hash32 {
    type Err = hex::FromHexError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out)?;
        Ok(Hash32(out))
    }
}

impl Serialize for Hash32 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Hash32 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// The network id: blake3 of the genesis' canonical encoding. It is signed into every
/// envelope and named in every gossip channel, so networks never mix.
pub type NetworkId = Hash32;

/// A message id: blake3 of the envelope bytes.
pub type MessageId = Hash32;

/// A topic id. Genesis topics carry small ids given in the genesis; topics created later get
/// the id [`TopicId::derived`] from their creator and nonce.
///
/// Serialized as a number; parsed from a number or a decimal string. Derived ids have the top
/// bit set, beyond TOML's integers (i64): a node config names such a topic as a string,
/// `topic = "14446983398984062850"`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Encode, Decode, Serialize)]
#[serde(transparent)]
pub struct TopicId(pub u64);

impl<'de> Deserialize<'de> for TopicId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = TopicId;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a topic id: a non-negative integer, or one in a string")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<TopicId, E> {
                Ok(TopicId(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<TopicId, E> {
                u64::try_from(v)
                    .map(TopicId)
                    .map_err(|_| E::custom(format!("a topic id cannot be negative ({v})")))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<TopicId, E> {
                v.trim()
                    .parse()
                    .map(TopicId)
                    .map_err(|_| E::custom(format!("{v:?} is not a topic id")))
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl TopicId {
    /// The id of a topic created by `creator` with ledger nonce `nonce`: the first 8 bytes of a
    /// blake3 hash with the top bit set, so it never collides with small genesis ids.
    pub fn derived(creator: &crate::keys::PublicKey, nonce: u64) -> Self {
        let h = Hash32::of_parts(
            "chorus/topic-id/v1",
            &[creator.as_bytes(), &nonce.to_le_bytes()],
        );
        let mut b = [0u8; 8];
        b.copy_from_slice(&h.0[..8]);
        TopicId(u64::from_le_bytes(b) | (1 << 63))
    }
}

impl fmt::Display for TopicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for TopicId {
    type Err = std::num::ParseIntError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(TopicId)
    }
}

/// A token amount in integer base units (like Allora's uallo). Serialized in text formats as
/// a decimal string (TOML and JSON integers cannot hold a u128), parsed from a string or an
/// integer.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Debug, Encode, Decode)]
pub struct Amount(pub u128);

impl Amount {
    /// Zero.
    pub const ZERO: Amount = Amount(0);

    /// `self + other`, or `None` on overflow.
    pub fn checked_add(self, other: Amount) -> Option<Amount> {
        self.0.checked_add(other.0).map(Amount)
    }

    /// `self - other`, or `None` if it would go negative.
    pub fn checked_sub(self, other: Amount) -> Option<Amount> {
        self.0.checked_sub(other.0).map(Amount)
    }

    /// `self - other`, floored at zero.
    pub fn saturating_sub(self, other: Amount) -> Amount {
        Amount(self.0.saturating_sub(other.0))
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for Amount {
    type Err = std::num::ParseIntError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.trim().replace('_', "").parse().map(Amount)
    }
}

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_string())
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Amount;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a non-negative integer amount (number or decimal string)")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Amount, E> {
                Ok(Amount(v.into()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Amount, E> {
                u128::try_from(v)
                    .map(Amount)
                    .map_err(|_| E::custom(format!("amount must not be negative: {v}")))
            }
            fn visit_u128<E: serde::de::Error>(self, v: u128) -> Result<Amount, E> {
                Ok(Amount(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Amount, E> {
                v.parse()
                    .map_err(|_| E::custom(format!("not an integer amount: {v:?}")))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A derived topic id (top bit set) does not fit TOML's integers: a config names it as a
    /// string. Numbers still work, JSON round-trips as a number, negatives are refused.
    #[test]
    #[allow(clippy::unwrap_used)]
    fn topic_ids_parse_from_numbers_and_strings() {
        #[derive(Deserialize)]
        struct T {
            topic: TopicId,
        }
        let derived = TopicId::derived(&crate::keys::Keypair::from_seed(&[1; 32]).public(), 1);
        assert!(derived.0 > i64::MAX as u64);
        let t: T = toml::from_str(&format!("topic = \"{}\"", derived.0)).unwrap();
        assert_eq!(t.topic, derived);
        assert!(toml::from_str::<T>(&format!("topic = {}", derived.0)).is_err());
        let t: T = toml::from_str("topic = 7").unwrap();
        assert_eq!(t.topic, TopicId(7));
        assert!(toml::from_str::<T>("topic = -1").is_err());
        assert!(toml::from_str::<T>("topic = \"x1\"").is_err());
        let json = serde_json::to_string(&derived).unwrap();
        assert_eq!(json, derived.0.to_string());
        assert_eq!(serde_json::from_str::<TopicId>(&json).unwrap(), derived);
        let keyed: std::collections::BTreeMap<TopicId, u8> =
            serde_json::from_str(&format!("{{\"{}\": 1}}", derived.0)).unwrap();
        assert_eq!(keyed[&derived], 1);
    }

    #[test]
    fn amount_text_forms() {
        #[derive(Deserialize)]
        struct T {
            a: Amount,
            b: Amount,
        }
        let t: T =
            toml::from_str("a = 5\nb = \"340282366920938463463374607431768211455\"").unwrap();
        assert_eq!(t.a, Amount(5));
        assert_eq!(t.b, Amount(u128::MAX));
        assert!(toml::from_str::<T>("a = -1\nb = 0").is_err());
        assert_eq!(serde_json::to_string(&Amount(7)).unwrap(), "\"7\"");
    }

    #[test]
    fn derived_topic_ids_have_top_bit_and_differ() {
        let k = crate::keys::Keypair::from_seed(&[1; 32]).public();
        let a = TopicId::derived(&k, 1);
        let b = TopicId::derived(&k, 2);
        assert_ne!(a, b);
        assert!(a.0 >= 1 << 63);
    }
}
