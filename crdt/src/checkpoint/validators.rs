//! The stake-weighted validator set of one height and its proposer rotation.
//!
//! **Voting power.** Bonded stake is an `Amount` (u128 base units); Malachite counts voting
//! power in `u64` and computes `3 * weight` and `2 * total` with overflow panics. We therefore
//! map stake to power by integer division with one divisor for the whole set:
//!
//! `d = max(1, ceil(total_stake / MAX_TOTAL_POWER))`, `power_i = stake_i / d`.
//!
//! So the total power is at most [`MAX_TOTAL_POWER`] (`u64::MAX / 4`); while the total bonded
//! stake is at most that (≈ 4.6·10^18 base units) power equals stake exactly (`d = 1`).
//! Otherwise each validator loses less than one unit of `d`, i.e. less than `2^-62` of the
//! total; validators whose power rounds to zero (and zero-stake bonds) are excluded.
//!
//! **Order.** Validators are sorted by power descending, then public key ascending (CometBFT's
//! order, as Malachite asks), so every peer derives the identical set from the same bonds.
//!
//! **Proposer.** For `(height, round)`, `x = u128(blake3("chorus/checkpoint/proposer/v1",
//! height, round)[..16]) mod total_power`; the proposer is the first validator whose cumulative
//! power exceeds `x`. Each round is an independent stake-weighted draw: no RNG, no state, and
//! anyone can recompute it. (With an offline fraction `f` of stake a height needs `1/(1-f)`
//! rounds on average.)

use std::collections::BTreeMap;
use std::sync::Arc;

use chorus_protocol::ids::{Amount, Hash32};
use chorus_protocol::keys::PublicKey;

use super::context::ValidatorAddress;
use super::error::ValidatorSetError;
use super::limits::MAX_VALIDATORS;

/// Upper bound of the total voting power of a set (see the module docs).
pub const MAX_TOTAL_POWER: u64 = u64::MAX / 4;

/// One validator: its key (which is also its address) and its voting power.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validator {
    /// The address (the public key).
    pub address: ValidatorAddress,
    /// Voting power (scaled stake).
    pub power: u64,
}

impl Validator {
    /// The validator's public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.address.0
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Inner {
    validators: Vec<Validator>,
    /// `cumulative[i]` = sum of the powers of validators `0..=i`.
    cumulative: Vec<u64>,
    total: u64,
    index: BTreeMap<PublicKey, usize>,
}

/// The validator set of one height: non-empty, sorted, total power ≤ [`MAX_TOTAL_POWER`].
/// Cheap to clone (shared).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatorSet(Arc<Inner>);

impl ValidatorSet {
    /// The set of the given bonds (see the module docs for scaling and order). Zero stakes are
    /// skipped; a key listed twice is an error.
    pub fn from_bonds(bonds: &[(PublicKey, Amount)]) -> Result<Self, ValidatorSetError> {
        let mut seen = BTreeMap::new();
        let mut total: u128 = 0;
        for (key, stake) in bonds {
            if seen.insert(*key, ()).is_some() {
                return Err(ValidatorSetError::Duplicate(*key));
            }
            total = total
                .checked_add(stake.0)
                .ok_or(ValidatorSetError::StakeOverflow)?;
        }
        let divisor = total.div_ceil(u128::from(MAX_TOTAL_POWER)).max(1);
        let powers = bonds
            .iter()
            .filter_map(|(key, stake)| {
                // stake / divisor ≤ total / divisor ≤ MAX_TOTAL_POWER, so it fits in a u64.
                let power = u64::try_from(stake.0 / divisor).ok()?;
                (power > 0).then_some((*key, power))
            })
            .collect::<Vec<_>>();
        Self::from_powers(powers)
    }

    /// The set of the given voting powers (already scaled). Zero powers are skipped.
    pub fn from_powers(
        powers: impl IntoIterator<Item = (PublicKey, u64)>,
    ) -> Result<Self, ValidatorSetError> {
        let mut validators: Vec<Validator> = Vec::new();
        let mut seen = BTreeMap::new();
        for (key, power) in powers {
            if seen.insert(key, ()).is_some() {
                return Err(ValidatorSetError::Duplicate(key));
            }
            if power > 0 {
                validators.push(Validator {
                    address: ValidatorAddress(key),
                    power,
                });
            }
        }
        if validators.is_empty() {
            return Err(ValidatorSetError::Empty);
        }
        if validators.len() > MAX_VALIDATORS {
            return Err(ValidatorSetError::TooMany(validators.len()));
        }
        validators.sort_by(|a, b| b.power.cmp(&a.power).then(a.address.cmp(&b.address)));
        let mut cumulative = Vec::with_capacity(validators.len());
        let mut total: u64 = 0;
        for v in &validators {
            total = total
                .checked_add(v.power)
                .filter(|t| *t <= MAX_TOTAL_POWER)
                .ok_or(ValidatorSetError::StakeOverflow)?;
            cumulative.push(total);
        }
        let index = validators
            .iter()
            .enumerate()
            .map(|(i, v)| (v.address.0, i))
            .collect();
        Ok(ValidatorSet(Arc::new(Inner {
            validators,
            cumulative,
            total,
            index,
        })))
    }

    /// The validators in canonical order.
    pub fn validators(&self) -> &[Validator] {
        &self.0.validators
    }

    /// Number of validators.
    pub fn len(&self) -> usize {
        self.0.validators.len()
    }

    /// Always false: a set is never empty.
    pub fn is_empty(&self) -> bool {
        self.0.validators.is_empty()
    }

    /// Total voting power.
    pub fn total_power(&self) -> u64 {
        self.0.total
    }

    /// The validator with this key.
    pub fn get(&self, key: &PublicKey) -> Option<&Validator> {
        self.0
            .index
            .get(key)
            .and_then(|i| self.0.validators.get(*i))
    }

    /// The validator at a canonical index.
    pub fn get_index(&self, index: usize) -> Option<&Validator> {
        self.0.validators.get(index)
    }

    /// Voting power of a key (0 if not a validator).
    pub fn power_of(&self, key: &PublicKey) -> u64 {
        self.get(key).map_or(0, |v| v.power)
    }

    /// A digest of the set (keys and powers in canonical order), for logs and storage keys.
    pub fn digest(&self) -> Hash32 {
        let mut h = blake3::Hasher::new();
        h.update(b"chorus/checkpoint/validator-set/v1");
        for v in &self.0.validators {
            h.update(v.address.0.as_bytes());
            h.update(&v.power.to_le_bytes());
        }
        Hash32(*h.finalize().as_bytes())
    }

    /// The proposer of `(height, round)` (see the module docs).
    pub fn proposer(&self, height: u64, round: u32) -> &Validator {
        let h = Hash32::of_parts(
            "chorus/checkpoint/proposer/v1",
            &[&height.to_le_bytes(), &round.to_le_bytes()],
        );
        let mut low = [0u8; 16];
        low.copy_from_slice(&h.0[..16]);
        // total ≥ 1 (the set is non-empty and zero powers are excluded).
        let x = u128::from_le_bytes(low) % u128::from(self.0.total.max(1));
        let i = self
            .0
            .cumulative
            .partition_point(|c| u128::from(*c) <= x)
            .min(self.0.validators.len().saturating_sub(1));
        &self.0.validators[i]
    }

    /// Whether `power` is strictly more than 2/3 of the total (u128 arithmetic).
    pub fn is_quorum(&self, power: u64) -> bool {
        3 * u128::from(power) > 2 * u128::from(self.0.total)
    }

    /// Whether `power` is strictly more than 1/3 of the total (u128 arithmetic).
    pub fn is_one_third(&self, power: u64) -> bool {
        3 * u128::from(power) > u128::from(self.0.total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chorus_protocol::keys::Keypair;

    fn key(i: u8) -> PublicKey {
        Keypair::from_seed(&[i; 32]).public()
    }

    #[test]
    fn small_stakes_are_exact_sorted_and_zero_excluded() {
        let set = ValidatorSet::from_bonds(&[
            (key(1), Amount(10)),
            (key(2), Amount(30)),
            (key(3), Amount(0)),
            (key(4), Amount(10)),
        ])
        .unwrap();
        assert_eq!(set.len(), 3);
        assert_eq!(set.total_power(), 50);
        assert_eq!(set.validators()[0].power, 30);
        assert_eq!(set.power_of(&key(3)), 0);
        // Ties by key ascending.
        assert!(set.validators()[1].address < set.validators()[2].address);
        // Input order does not matter.
        let again = ValidatorSet::from_bonds(&[
            (key(4), Amount(10)),
            (key(1), Amount(10)),
            (key(2), Amount(30)),
        ])
        .unwrap();
        assert_eq!(set, again);
        assert_eq!(set.digest(), again.digest());
    }

    #[test]
    fn huge_stakes_are_scaled_below_the_cap() {
        let set = ValidatorSet::from_bonds(&[
            (key(1), Amount(u128::MAX / 2)),
            (key(2), Amount(u128::MAX / 4)),
            (key(3), Amount(1)),
        ])
        .unwrap();
        assert!(set.total_power() <= MAX_TOTAL_POWER);
        assert_eq!(
            set.len(),
            2,
            "dust stake scales to zero power and is excluded"
        );
        let p1 = set.power_of(&key(1));
        let p2 = set.power_of(&key(2));
        assert!((p1 / 2).abs_diff(p2) <= 1, "ratio kept: {p1} vs {p2}");
        // Malachite's threshold arithmetic must not overflow.
        assert!(set.total_power().checked_mul(3).is_some());
    }

    #[test]
    fn errors() {
        assert_eq!(
            ValidatorSet::from_bonds(&[(key(1), Amount(0))]),
            Err(ValidatorSetError::Empty)
        );
        assert_eq!(
            ValidatorSet::from_bonds(&[(key(1), Amount(1)), (key(1), Amount(2))]),
            Err(ValidatorSetError::Duplicate(key(1)))
        );
        assert_eq!(
            ValidatorSet::from_bonds(&[(key(1), Amount(u128::MAX)), (key(2), Amount(1))]),
            Err(ValidatorSetError::StakeOverflow)
        );
    }

    #[test]
    fn proposer_is_deterministic_and_stake_weighted() {
        let set = ValidatorSet::from_bonds(&[
            (key(1), Amount(70)),
            (key(2), Amount(20)),
            (key(3), Amount(10)),
        ])
        .unwrap();
        let mut counts = BTreeMap::new();
        for h in 1..=2000u64 {
            let p = set.proposer(h, 0).address;
            assert_eq!(p, set.proposer(h, 0).address);
            *counts.entry(p.0).or_insert(0u32) += 1;
        }
        let c1 = counts[&key(1)];
        let c3 = counts[&key(3)];
        assert!((1250..=1550).contains(&c1), "70% stake got {c1}/2000");
        assert!((120..=280).contains(&c3), "10% stake got {c3}/2000");
        // Rounds rotate too.
        let distinct: std::collections::BTreeSet<_> =
            (0..20).map(|r| set.proposer(5, r).address).collect();
        assert!(distinct.len() >= 2);
    }

    #[test]
    fn quorum_thresholds_are_strict() {
        let set = ValidatorSet::from_powers([(key(1), 1), (key(2), 1), (key(3), 1)]).unwrap();
        assert!(!set.is_quorum(2));
        assert!(set.is_quorum(3));
        assert!(!set.is_one_third(1));
        assert!(set.is_one_third(2));
    }
}
