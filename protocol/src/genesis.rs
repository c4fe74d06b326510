//! Genesis: the TOML file every peer of a network starts from.
//!
//! It names the network, its start time and token, the initial balances, validator bonds,
//! reputer stakes, registrations, module parameters and initial topics. The network id is the
//! blake3 of its canonical binary encoding, so two peers share a network exactly when they
//! share a genesis.
//!
//! ```
//! use chorus_protocol::genesis::Genesis;
//! let text = r#"
//! network = "demo"
//! genesis_time_ms = 1700000000000
//! [token]
//! symbol = "CHR"
//! decimals = 18
//! [[validators]]
//! address = "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c"
//! bond = "1000000"
//! "#;
//! let g = Genesis::from_toml_str(text).unwrap();
//! assert_eq!(g.network_id(), Genesis::from_toml_str(text).unwrap().network_id());
//! ```

use std::collections::BTreeSet;

use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};

use crate::codec::{self, Wire};
use crate::ids::{Amount, Hash32, NetworkId, TopicId};
use crate::keys::PublicKey;
use crate::messages::Role;
use crate::params::{ModuleParams, ParamsError};
use crate::topic::{TopicError, TopicSpec};

/// The token.
#[derive(Clone, Debug, PartialEq, Encode, Decode, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Token {
    /// Ticker, e.g. `CHR`.
    pub symbol: String,
    /// Decimal places of one whole token in base units.
    pub decimals: u8,
}

/// An initial balance.
#[derive(Clone, Debug, PartialEq, Encode, Decode, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisBalance {
    /// Account.
    pub address: PublicKey,
    /// Liquid amount.
    pub amount: Amount,
}

/// An initial validator.
#[derive(Clone, Debug, PartialEq, Encode, Decode, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisValidator {
    /// Validator key.
    pub address: PublicKey,
    /// Bonded amount (its voting power is proportional).
    pub bond: Amount,
    /// Optional human name.
    #[serde(default)]
    pub name: String,
}

/// An initial reputer stake (own, or delegated when `delegator` is set).
#[derive(Clone, Debug, PartialEq, Encode, Decode, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisStake {
    /// The topic.
    pub topic: TopicId,
    /// The reputer.
    pub reputer: PublicKey,
    /// The delegator, if this is delegated stake.
    #[serde(default)]
    pub delegator: Option<PublicKey>,
    /// Amount.
    pub amount: Amount,
}

/// An initial registration.
#[derive(Clone, Debug, PartialEq, Encode, Decode, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisRegistration {
    /// The topic.
    pub topic: TopicId,
    /// The registered key.
    pub address: PublicKey,
    /// The role.
    pub role: Role,
}

/// An initial topic.
#[derive(Clone, Debug, PartialEq, Encode, Decode, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisTopic {
    /// Its id (below 2^63; larger ids are reserved for created topics).
    pub id: TopicId,
    /// Its creator.
    pub creator: PublicKey,
    /// Its definition.
    pub spec: TopicSpec,
    /// Initial fee revenue (Allora counts the creation fee as the first revenue).
    #[serde(default)]
    pub fee_revenue: Amount,
}

/// The genesis of a network.
#[derive(Clone, Debug, PartialEq, Encode, Decode, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Genesis {
    /// Human network name.
    pub network: String,
    /// Unix time (ms) of the network's start; checkpoint periods count from it.
    pub genesis_time_ms: u64,
    /// The token.
    pub token: Token,
    /// Initial liquid balances.
    #[serde(default)]
    pub balances: Vec<GenesisBalance>,
    /// Initial validators.
    #[serde(default)]
    pub validators: Vec<GenesisValidator>,
    /// Initial reputer stakes.
    #[serde(default)]
    pub reputer_stakes: Vec<GenesisStake>,
    /// Initial registrations.
    #[serde(default)]
    pub registrations: Vec<GenesisRegistration>,
    /// Module parameters (defaults: Allora v0.6).
    #[serde(default)]
    pub params: ModuleParams,
    /// Initial topics.
    #[serde(default)]
    pub topics: Vec<GenesisTopic>,
}

impl Wire for Genesis {
    const MAX_SIZE: usize = 64 * 1024 * 1024;
    const NAME: &'static str = "Genesis";
}

/// Why a genesis was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GenesisError {
    /// The TOML did not parse.
    #[error("genesis TOML: {0}")]
    Toml(#[from] toml::de::Error),
    /// A module parameter is out of range.
    #[error("genesis: {0}")]
    Params(#[from] ParamsError),
    /// A topic is invalid.
    #[error("genesis topic {id}: {source}")]
    Topic {
        /// The topic.
        id: TopicId,
        /// Why.
        source: TopicError,
    },
    /// Something else is inconsistent.
    #[error("genesis: {0}")]
    Invalid(String),
}

impl Genesis {
    /// Parse and validate TOML.
    pub fn from_toml_str(text: &str) -> Result<Genesis, GenesisError> {
        let g: Genesis = toml::from_str(text)?;
        g.validate()?;
        Ok(g)
    }

    /// Render as TOML. Fails only for integers beyond TOML's i64 range.
    pub fn to_toml_string(&self) -> Result<String, GenesisError> {
        toml::to_string_pretty(self)
            .map_err(|e| GenesisError::Invalid(format!("cannot render TOML: {e}")))
    }

    /// The network id: blake3 over the domain tag and the canonical encoding.
    pub fn network_id(&self) -> NetworkId {
        Hash32::of_parts("chorus/genesis/v1", &[&codec::encode(self)])
    }

    /// Total tokens in existence at genesis (balances + bonds + stakes).
    pub fn total_supply(&self) -> Option<Amount> {
        let mut total = Amount::ZERO;
        for b in &self.balances {
            total = total.checked_add(b.amount)?;
        }
        for v in &self.validators {
            total = total.checked_add(v.bond)?;
        }
        for s in &self.reputer_stakes {
            total = total.checked_add(s.amount)?;
        }
        Some(total)
    }

    /// Check internal consistency.
    pub fn validate(&self) -> Result<(), GenesisError> {
        let bad = |s: String| Err(GenesisError::Invalid(s));
        if self.network.is_empty() || self.network.len() > 64 {
            return bad("network name must be 1..=64 bytes".into());
        }
        if self.token.symbol.is_empty() || self.token.symbol.len() > 16 {
            return bad("token symbol must be 1..=16 bytes".into());
        }
        if self.token.decimals > 30 {
            return bad("token decimals must be ≤ 30".into());
        }
        self.params.validate()?;
        if self.validators.is_empty() {
            return bad("at least one validator is needed".into());
        }
        let mut seen = BTreeSet::new();
        for v in &self.validators {
            if v.bond == Amount::ZERO {
                return bad(format!("validator {} has no bond", v.address));
            }
            if !seen.insert(v.address) {
                return bad(format!("validator {} listed twice", v.address));
            }
        }
        let mut accounts = BTreeSet::new();
        for b in &self.balances {
            if !accounts.insert(b.address) {
                return bad(format!("balance of {} listed twice", b.address));
            }
        }
        let mut topics = BTreeSet::new();
        for t in &self.topics {
            if t.id.0 >= 1 << 63 {
                return bad(format!("topic id {} is reserved for created topics", t.id));
            }
            if !topics.insert(t.id) {
                return bad(format!("topic id {} listed twice", t.id));
            }
            t.spec
                .validate(&self.params)
                .map_err(|source| GenesisError::Topic { id: t.id, source })?;
        }
        for s in &self.reputer_stakes {
            if !topics.contains(&s.topic) {
                return bad(format!("stake for unknown topic {}", s.topic));
            }
        }
        let mut regs = BTreeSet::new();
        for r in &self.registrations {
            if !topics.contains(&r.topic) {
                return bad(format!("registration for unknown topic {}", r.topic));
            }
            if !regs.insert((r.topic, r.address, r.role)) {
                return bad(format!(
                    "registration of {} as {:?} in topic {} listed twice",
                    r.address, r.role, r.topic
                ));
            }
        }
        if self.total_supply().is_none() {
            return bad("total supply overflows u128".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Keypair;

    fn sample() -> Genesis {
        let v = Keypair::from_seed(&[1; 32]).public();
        Genesis {
            network: "test".into(),
            genesis_time_ms: 1_700_000_000_000,
            token: Token {
                symbol: "CHR".into(),
                decimals: 18,
            },
            balances: vec![GenesisBalance {
                address: v,
                amount: Amount(5),
            }],
            validators: vec![GenesisValidator {
                address: v,
                bond: Amount(100),
                name: "v0".into(),
            }],
            reputer_stakes: vec![],
            registrations: vec![],
            params: ModuleParams::default(),
            topics: vec![GenesisTopic {
                id: TopicId(1),
                creator: v,
                spec: crate::topic::tests::spec(),
                fee_revenue: Amount(75_000),
            }],
        }
    }

    #[test]
    fn toml_round_trip_keeps_network_id() {
        let g = sample();
        let text = g.to_toml_string().unwrap();
        let back = Genesis::from_toml_str(&text).unwrap();
        assert_eq!(back, g);
        assert_eq!(back.network_id(), g.network_id());
        assert_eq!(g.total_supply(), Some(Amount(105)));
    }

    #[test]
    fn any_change_changes_network_id() {
        let g = sample();
        let mut h = g.clone();
        h.params.learning_rate = 0.06;
        assert_ne!(g.network_id(), h.network_id());
    }

    #[test]
    fn inconsistent_genesis_is_refused() {
        let mut g = sample();
        g.validators.clear();
        assert!(g.validate().is_err());
        let mut g = sample();
        g.topics[0].spec.p_norm = 10.0;
        assert!(matches!(g.validate(), Err(GenesisError::Topic { .. })));
        let mut g = sample();
        g.reputer_stakes.push(GenesisStake {
            topic: TopicId(9),
            reputer: g.validators[0].address,
            delegator: None,
            amount: Amount(1),
        });
        assert!(g.validate().is_err());
        assert!(Genesis::from_toml_str("network = 3").is_err());
    }
}
