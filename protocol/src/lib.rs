//! # chorus-protocol
//!
//! The pure core every other Chorus crate builds on. What flows in: bytes from the wire, a
//! genesis file, a key seed, the time as an argument. What flows out: typed messages, verdicts,
//! ids, and (in [`math`]) the Allora v0.6 network inference, scores and rewards.
//!
//! - [`keys`], [`keyfile`]: ed25519 identities (`verify_strict`), key files with mode 0600.
//! - [`codec`]: the one binary encoding (bincode 2.0.1, fixed config, caps, canonical form).
//! - [`envelope`]: signed envelopes; message id = blake3 of the envelope bytes.
//! - [`messages`]: every signed message kind ([`messages::Payload`]).
//! - [`topic`], [`params`], [`genesis`]: topic definitions, module parameters, genesis TOML.
//! - [`inference`]: the network inference of a (topic, epoch), keyed by the workers' keys.
//! - [`rng`]: the one seeded generator (SplitMix64) for reproducible choices.
//! - [`validation`]: gossip validation as a pure function (Accept / Ignore / Reject).
//! - [`math`]: the Allora v0.6 mathematics (synthesis, losses, regrets, reputer consensus,
//!   scores, rewards, topic weights, integer payouts) and the `synth`/`settle` JSON.
//!
//! No tokio, libp2p or redb; no clock, no RNG. The only file access is [`keyfile`].
//!
//! ```
//! use chorus_protocol::{envelope::Envelope, ids::{Amount, Hash32}, keys::Keypair,
//!     messages::{Payload, Transfer}};
//! let network = Hash32([1; 32]);
//! let alice = Keypair::from_seed(&[1; 32]);
//! let bob = Keypair::from_seed(&[2; 32]).public();
//! let env = Envelope::seal(&alice, &network, &Payload::Transfer(Transfer { nonce: 1, to: bob, amount: Amount(5) }));
//! let bytes = env.to_bytes();
//! let back = Envelope::from_bytes(&bytes).unwrap();
//! assert!(matches!(back.open(&network).unwrap(), Payload::Transfer(_)));
//! ```

pub mod codec;
pub mod envelope;
pub mod genesis;
pub mod ids;
pub mod inference;
pub mod keyfile;
pub mod keys;
pub mod math;
pub mod merkle;
pub mod messages;
pub mod params;
pub mod rng;
pub mod topic;
pub mod validation;

pub use envelope::Envelope;
pub use ids::{Amount, Hash32, MessageId, NetworkId, TopicId};
pub use keys::{Keypair, PublicKey, Signature};
pub use messages::Payload;
