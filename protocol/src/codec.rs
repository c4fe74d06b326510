//! The one place that owns binary encoding.
//!
//! Every wire type is encoded with bincode 2.0.1 under one fixed configuration
//! ([`config`]: little endian, variable-length integers). Decoding
//! 1. refuses input longer than the type's cap ([`Wire::MAX_SIZE`]) before touching it,
//! 2. decodes with an allocation limit equal to that cap,
//! 3. rejects trailing bytes, and
//! 4. rejects non-canonical input: the value must re-encode to exactly the bytes received, so
//!    every value has one encoding and hashes of encodings are stable identifiers.
//!
//! Golden byte vectors in `tests/golden.rs` fail if any wire type's encoding changes.

use bincode::config::{Configuration, LittleEndian, Varint};
use bincode::{Decode, Encode};

/// The fixed bincode configuration of every wire type.
pub type WireConfig = Configuration<LittleEndian, Varint, bincode::config::NoLimit>;

/// The fixed bincode configuration of every wire type.
pub const fn config() -> WireConfig {
    bincode::config::standard()
        .with_little_endian()
        .with_variable_int_encoding()
}

/// A type that travels on the wire or feeds a hash.
pub trait Wire: Encode + Decode<()> {
    /// Largest accepted encoding in bytes.
    const MAX_SIZE: usize;
    /// Human name for errors.
    const NAME: &'static str;
}

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Longer than the type's cap.
    #[error("{ty}: {len} bytes exceeds the cap of {cap}")]
    TooLarge {
        /// Type name.
        ty: &'static str,
        /// Input length.
        len: usize,
        /// The cap.
        cap: usize,
    },
    /// bincode refused the bytes.
    #[error("{ty}: malformed: {reason}")]
    Malformed {
        /// Type name.
        ty: &'static str,
        /// bincode's reason.
        reason: String,
    },
    /// Bytes left over after the value.
    #[error("{ty}: {extra} trailing bytes")]
    TrailingBytes {
        /// Type name.
        ty: &'static str,
        /// How many.
        extra: usize,
    },
    /// The value decodes but is not in canonical form.
    #[error("{ty}: non-canonical encoding")]
    NonCanonical {
        /// Type name.
        ty: &'static str,
    },
}

/// Encode a wire value. Encoding into a `Vec` cannot fail for our types.
pub fn encode<T: Wire>(value: &T) -> Vec<u8> {
    // Encoding into a Vec only fails for types whose Encode impl fails; none of ours do.
    bincode::encode_to_vec(value, config()).unwrap_or_default()
}

/// Decode a wire value with the size cap, trailing-byte and canonical-form checks.
pub fn decode<T: Wire>(bytes: &[u8]) -> Result<T, DecodeError> {
    if bytes.len() > T::MAX_SIZE {
        return Err(DecodeError::TooLarge {
            ty: T::NAME,
            len: bytes.len(),
            cap: T::MAX_SIZE,
        });
    }
    // The allocation limit: claimed lengths inside the input cannot make us allocate more
    // than a small multiple of the cap (decoded structs may be larger than their encoding).
    let cfg = config().with_limit::<{ 16 * 1024 * 1024 }>();
    let (value, used): (T, usize) =
        bincode::decode_from_slice(bytes, cfg).map_err(|e| DecodeError::Malformed {
            ty: T::NAME,
            reason: e.to_string(),
        })?;
    if used != bytes.len() {
        return Err(DecodeError::TrailingBytes {
            ty: T::NAME,
            extra: bytes.len() - used,
        });
    }
    if encode(&value) != bytes {
        return Err(DecodeError::NonCanonical { ty: T::NAME });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Encode, Decode)]
    struct Sample {
        a: u64,
        b: Vec<u8>,
    }

    impl Wire for Sample {
        const MAX_SIZE: usize = 32;
        const NAME: &'static str = "Sample";
    }

    #[test]
    fn round_trip() {
        let s = Sample {
            a: 300,
            b: vec![1, 2, 3],
        };
        let bytes = encode(&s);
        assert_eq!(decode::<Sample>(&bytes).unwrap(), s);
    }

    #[test]
    fn rejects_oversize_trailing_and_noncanonical() {
        let s = Sample { a: 5, b: vec![] };
        let mut bytes = encode(&s);
        bytes.push(0);
        assert!(matches!(
            decode::<Sample>(&bytes),
            Err(DecodeError::TrailingBytes { extra: 1, .. })
        ));
        assert!(matches!(
            decode::<Sample>(&[0u8; 33]),
            Err(DecodeError::TooLarge { .. })
        ));
        // 5 written as a u16 varint (marker 251) instead of a single byte.
        let non_canonical = [251u8, 5, 0, 0];
        assert!(matches!(
            decode::<Sample>(&non_canonical),
            Err(DecodeError::NonCanonical { .. }) | Err(DecodeError::Malformed { .. })
        ));
    }

    #[test]
    fn huge_claimed_length_is_an_error_not_an_allocation() {
        // a = 0, then a vec length claiming 2^60 elements.
        let mut bytes = vec![0u8, 253];
        bytes.extend_from_slice(&(1u64 << 60).to_le_bytes());
        assert!(decode::<Sample>(&bytes).is_err());
    }
}
