//! Supply: every token ever created is accounted for. After every checkpoint a node applies,
//! its ledger's total (balances, bonds, stakes, releases, topic pools, treasury) equals the
//! genesis supply plus everything minted minus everything slashed, and its genesis supply is
//! the genesis file's.

use chorus_crdt::ledger::Ledger;

use super::Violation;

/// The supply checker.
#[derive(Debug, Default)]
pub struct Supply {
    /// Ledgers checked.
    pub checks: u64,
    /// What was found.
    pub violations: Vec<Violation>,
}

impl Supply {
    /// Check node `node`'s ledger against a genesis supply of `genesis_supply`.
    pub fn check(&mut self, node: usize, ledger: &Ledger, genesis_supply: u128, at_ms: u64) {
        self.checks += 1;
        if let Err(e) = ledger.check_supply() {
            self.violations.push(Violation {
                invariant: "supply",
                at_ms,
                detail: format!("node {node} at height {}: {e}", ledger.next_height),
            });
        }
        if ledger.supply.genesis.0 != genesis_supply {
            self.violations.push(Violation {
                invariant: "supply",
                at_ms,
                detail: format!(
                    "node {node}: genesis supply {} but the genesis says {genesis_supply}",
                    ledger.supply.genesis
                ),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::scenario::{HONEST_BOND, genesis, node_key};
    use chorus_protocol::ids::Amount;

    #[test]
    fn the_checker_bites_on_tokens_from_nowhere() {
        let keys: Vec<_> = (0..4).map(node_key).collect();
        let g = genesis(&keys, &[HONEST_BOND; 4]);
        let total = g.total_supply().unwrap().0;
        let mut ledger = Ledger::from_genesis(&g).unwrap();
        let mut s = Supply::default();
        s.check(0, &ledger, total, 0);
        assert!(s.violations.is_empty(), "{:?}", s.violations);
        ledger.treasury = Amount(ledger.treasury.0 + 1);
        s.check(0, &ledger, total, 1);
        assert_eq!(s.violations.len(), 1);
    }
}
