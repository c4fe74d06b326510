//! The genesis of a simulated network, shared by the replica's tests and the testbeds'
//! simulator: 1 s checkpoint periods, one topic of 1 s epochs, every key funded and given a role.

use chorus_protocol::genesis::{
    Genesis, GenesisBalance, GenesisRegistration, GenesisStake, GenesisTopic, GenesisValidator,
    Token,
};
use chorus_protocol::ids::{Amount, TopicId};
use chorus_protocol::keys::Keypair;
use chorus_protocol::messages::Role;
use chorus_protocol::params::ModuleParams;
use chorus_protocol::topic::{LossMethod, TopicSpec};

/// Genesis time of a simulated network (ms).
pub const SIM_GENESIS_MS: u64 = 1_000_000;
/// Checkpoint period and epoch length of a simulated network (ms).
pub const SIM_PERIOD_MS: u64 = 1_000;
/// The network's `max_clock_skew_ms`.
pub const SIM_MAX_CLOCK_SKEW_MS: u64 = 100;
/// The one topic.
pub const SIM_TOPIC: TopicId = TopicId(1);

/// A network named `network`: every key holds 1 000 000; key `i` is a validator bonded with
/// `bonds[i]` if that is > 0, and the validator set holds at most that many (bonds of at least
/// 1 000); topic [`SIM_TOPIC`] ("sim", MSE, epochs of [`SIM_PERIOD_MS`]) has
/// key `i` registered as a reputer staked 50 000 if `reputer(i)`, else as a worker.
pub fn sim_genesis(
    network: &str,
    keys: &[Keypair],
    bonds: &[u128],
    reputer: impl Fn(usize) -> bool,
) -> Genesis {
    let params = ModuleParams {
        checkpoint_period_ms: SIM_PERIOD_MS,
        min_epoch_length_ms: 100,
        max_clock_skew_ms: SIM_MAX_CLOCK_SKEW_MS,
        emission_per_period: Amount(1_000_000),
        min_topic_weight: 0.0,
        // Bonds of a few thousand may enter and leave; the set holds the genesis validators'
        // number, so any other bond waits outside it or evicts one of them.
        min_validator_bond: Amount(1_000),
        max_validators: bonds.iter().filter(|b| **b > 0).count().max(1) as u64,
        ..ModuleParams::default()
    };
    let spec = TopicSpec::new(
        "sim",
        LossMethod::Mse,
        SIM_GENESIS_MS,
        SIM_PERIOD_MS,
        SIM_PERIOD_MS / 2,
        SIM_PERIOD_MS,
    );
    let mut g = Genesis {
        network: network.into(),
        genesis_time_ms: SIM_GENESIS_MS,
        token: Token {
            symbol: "CHR".into(),
            decimals: 0,
        },
        balances: keys
            .iter()
            .map(|k| GenesisBalance {
                address: k.public(),
                amount: Amount(1_000_000),
            })
            .collect(),
        validators: keys
            .iter()
            .zip(bonds)
            .filter(|(_, b)| **b > 0)
            .map(|(k, b)| GenesisValidator {
                address: k.public(),
                bond: Amount(*b),
                name: String::new(),
            })
            .collect(),
        reputer_stakes: vec![],
        registrations: vec![],
        params,
        topics: vec![GenesisTopic {
            id: SIM_TOPIC,
            creator: keys[0].public(),
            spec,
            fee_revenue: Amount(75_000),
        }],
    };
    for (i, k) in keys.iter().enumerate() {
        let role = if reputer(i) {
            Role::Reputer
        } else {
            Role::Worker
        };
        g.registrations.push(GenesisRegistration {
            topic: SIM_TOPIC,
            address: k.public(),
            role,
        });
        if role == Role::Reputer {
            g.reputer_stakes.push(GenesisStake {
                topic: SIM_TOPIC,
                reputer: k.public(),
                delegator: None,
                amount: Amount(50_000),
            });
        }
    }
    g
}
