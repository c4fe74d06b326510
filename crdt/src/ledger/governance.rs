//! Governance: stake-weighted tallies and the actions of passed proposals.
//!
//! A voter's weight is its validator bond plus every reputer stake it owns or delegated, at
//! tally time. A proposal passes when the votes cast (yes + no + abstain) reach a third of all
//! such stake and yes exceeds no. Its action sets module parameters or topic fields by name;
//! the result must still validate, otherwise the proposal passes without effect and records why.

use std::collections::BTreeMap;

use chorus_protocol::ids::{Amount, Hash32};
use chorus_protocol::keys::PublicKey;
use chorus_protocol::messages::{GovernanceAction, ParamValue, VoteOption};
use chorus_protocol::params::ModuleParams;
use chorus_protocol::topic::TopicSpec;

use super::state::ProposalOutcome;
use super::{Ledger, LedgerEvent};

fn to_json(v: &ParamValue) -> serde_json::Value {
    match v {
        ParamValue::Int(i) => serde_json::Value::from(*i),
        ParamValue::Real(r) => serde_json::Value::from(*r),
        ParamValue::Amount(a) => serde_json::Value::from(a.0.to_string()),
        ParamValue::Flag(b) => serde_json::Value::from(*b),
    }
}

/// Set named fields of a serialisable struct; unknown names or wrong types are errors.
fn set_fields<T>(value: &T, changes: &[(String, ParamValue)]) -> Result<T, String>
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    let mut json = serde_json::to_value(value).map_err(|e| e.to_string())?;
    let obj = json
        .as_object_mut()
        .ok_or_else(|| "not an object".to_string())?;
    for (name, v) in changes {
        if !obj.contains_key(name) {
            return Err(format!("unknown field `{name}`"));
        }
        obj.insert(name.clone(), to_json(v));
    }
    serde_json::from_value(json).map_err(|e| e.to_string())
}

impl Ledger {
    /// A voter's governance weight.
    pub fn voting_weight(&self, who: &PublicKey) -> u128 {
        let bond = self.validators.get(who).map(|v| v.bond.0).unwrap_or(0);
        let stakes: u128 = self
            .topics
            .values()
            .flat_map(|t| t.stakes.iter())
            .map(|(reputer, s)| {
                let own = if reputer == who { s.own.0 } else { 0 };
                own + s.delegated.get(who).map(|a| a.0).unwrap_or(0)
            })
            .sum();
        bond + stakes
    }

    /// All voting weight: every validator bond and every reputer stake.
    pub fn total_voting_weight(&self) -> u128 {
        let bonds: u128 = self.validators.values().map(|v| v.bond.0).sum();
        let stakes: u128 = self.topics.values().map(|t| t.total_stake().0).sum();
        bonds + stakes
    }

    pub(super) fn tally_due(&mut self, height: u64, events: &mut Vec<LedgerEvent>) {
        let due: Vec<Hash32> = self
            .proposals
            .iter()
            .filter(|(_, p)| p.outcome.is_none() && p.voting_ends <= height)
            .map(|(id, _)| *id)
            .collect();
        let total = self.total_voting_weight();
        for id in due {
            let Some(p) = self.proposals.get(&id) else {
                continue;
            };
            let mut sums: BTreeMap<u8, u128> = BTreeMap::new();
            for (voter, option) in &p.votes {
                let slot = match option {
                    VoteOption::Yes => 0,
                    VoteOption::No => 1,
                    VoteOption::Abstain => 2,
                };
                *sums.entry(slot).or_default() += self.voting_weight(voter);
            }
            let (yes, no, abstain) = (
                sums.get(&0).copied().unwrap_or(0),
                sums.get(&1).copied().unwrap_or(0),
                sums.get(&2).copied().unwrap_or(0),
            );
            let quorum = (yes + no + abstain).saturating_mul(3) >= total;
            let passed = quorum && yes > no;
            let action = p.action.clone();
            let error = if passed {
                self.apply_action(&action).err()
            } else {
                None
            };
            if let Some(p) = self.proposals.get_mut(&id) {
                p.outcome = Some(ProposalOutcome {
                    yes: Amount(yes),
                    no: Amount(no),
                    abstain: Amount(abstain),
                    passed,
                    error,
                });
            }
            events.push(LedgerEvent::Tallied {
                proposal: id,
                passed,
            });
        }
    }

    fn apply_action(&mut self, action: &GovernanceAction) -> Result<(), String> {
        match action {
            GovernanceAction::Text => Ok(()),
            GovernanceAction::SetParams { changes } => {
                let next: ModuleParams = set_fields(&self.params, changes)?;
                next.validate().map_err(|e| e.to_string())?;
                self.params = next;
                Ok(())
            }
            GovernanceAction::UpdateTopic { topic, changes } => {
                let params = self.params.clone();
                let t = self
                    .topics
                    .get_mut(topic)
                    .ok_or_else(|| format!("unknown topic {topic}"))?;
                let next: TopicSpec = set_fields(&t.spec, changes)?;
                next.validate(&params).map_err(|e| e.to_string())?;
                if next.start_ms != t.spec.start_ms
                    || next.epoch_length_ms != t.spec.epoch_length_ms
                    || next.reveal_window_ms != t.spec.reveal_window_ms
                {
                    return Err("a topic's schedule cannot change".into());
                }
                t.spec = next;
                Ok(())
            }
        }
    }
}
