//! Mechanism versions: which generation of Allora's synthesis and scoring a topic runs.
//!
//! The version is a field of the topic ([`crate::topic::TopicSpec::mechanism`]), so every peer
//! computes the same thing for a topic; two topics of one network may run different versions.
//!
//! | | [`MechanismVersion::AlloraV06`] (default) | [`MechanismVersion::AlloraMad`] |
//! |---|---|---|
//! | source | allora-chain v0.6.0 | allora-chain after v0.15.1 (#910 "regret norm to use MAD") |
//! | regret scale S | sample σ of the regrets being weighted, + ε | 1.4826 · MAD of the epoch's network regrets, + ε, shared by every weighting of the epoch |
//! | weight of r̂ = R/S | φ′_p(r̂) with cap c + 6.75/p, anchor c − 8.25/p, zero below c − 17.25/p | (e^{−p(r̂_max − c)} + 1) / (e^{−p(r̂ − c)} + 1): the best worker gets 1, nobody 0 |
//! | no network loss yet | median of the inferences | the inferences weighted by their regrets (mean when all are new), no forecasters |
//! | a newcomer's EMA score | the topic's score quantile | the lowest active EMA score − 2 σ of the active EMA scores |
//! | missed epochs | no effect | EMA score pulled toward the newcomer score by (1 − α)ⁿ |
//!
//! Everything else (losses, regret EMAs, the initial regret, reputer consensus, rewards,
//! the outlier-resistant inference) is the same in both. `docs/mechanism.md` gives every formula
//! with its allora-chain source file.

use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};

/// 1 / Φ⁻¹(0.75): scales a median absolute deviation to a normal σ (allora-chain
/// `madToStdDevFactor`).
pub const MAD_TO_STD_DEV: f64 = 1.4826;

/// λ of a newcomer's EMA score, `min − λ·σ` (allora-chain `LambdaInitialScore`).
pub const LAMBDA_INITIAL_SCORE: f64 = 2.0;

/// Which generation of Allora's mechanism a topic runs; see the module docs.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Encode,
    Decode,
    Serialize,
    Deserialize,
)]
pub enum MechanismVersion {
    /// allora-chain v0.6.0: the mechanism this crate reproduces to its fixtures.
    #[default]
    #[serde(rename = "allora-v0.6")]
    AlloraV06,
    /// allora-chain's current synthesis and scoring: MAD regret scale, logistic-ratio weights,
    /// newcomer scores and liveness penalties.
    #[serde(rename = "allora-mad")]
    AlloraMad,
}

impl MechanismVersion {
    /// Every version, in order.
    pub const ALL: [MechanismVersion; 2] =
        [MechanismVersion::AlloraV06, MechanismVersion::AlloraMad];

    /// The name used in topic files and reports.
    pub fn name(self) -> &'static str {
        match self {
            MechanismVersion::AlloraV06 => "allora-v0.6",
            MechanismVersion::AlloraMad => "allora-mad",
        }
    }
}

impl std::fmt::Display for MechanismVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for MechanismVersion {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MechanismVersion::ALL
            .into_iter()
            .find(|v| v.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = MechanismVersion::ALL.iter().map(|v| v.name()).collect();
                format!(
                    "unknown mechanism {s:?}; expected one of {}",
                    names.join(", ")
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_serde_and_from_str() {
        for v in MechanismVersion::ALL {
            assert_eq!(v.name().parse::<MechanismVersion>(), Ok(v));
            let json = serde_json::to_string(&v).unwrap();
            assert_eq!(json, format!("\"{}\"", v.name()));
            assert_eq!(serde_json::from_str::<MechanismVersion>(&json).unwrap(), v);
        }
        assert!(
            "allora-v0.7"
                .parse::<MechanismVersion>()
                .unwrap_err()
                .contains("allora-mad")
        );
        assert_eq!(MechanismVersion::default(), MechanismVersion::AlloraV06);
    }
}
