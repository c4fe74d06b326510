//! A stand-in for the application: builds checkpoints and validates them the way the real
//! node would (every referenced window is "held", the ledger root is re-derived).

use chorus_protocol::ids::Hash32;

use crate::checkpoint::value::{Checkpoint, WindowHead};

/// Windows per simulated checkpoint.
const WINDOWS: u64 = 3;

/// The simulated ledger root: a hash of `previous` and the window heads, standing in for
/// "apply the finalized windows to the ledger and hash its state".
pub fn derive_ledger_root(previous: &Hash32, windows: &[WindowHead]) -> Hash32 {
    let mut h = blake3::Hasher::new();
    h.update(b"chorus/sim/ledger-root");
    h.update(&previous.0);
    for w in windows {
        h.update(&w.window.0);
        h.update(&w.root.0);
    }
    Hash32(*h.finalize().as_bytes())
}

/// One node's application.
#[derive(Clone, Debug)]
pub struct SimApp {
    /// Distinguishes the window roots this node sees (so different proposers propose
    /// different, equally valid checkpoints).
    pub salt: u64,
    /// Byzantine: propose checkpoints with a wrong ledger root.
    pub propose_invalid: bool,
}

impl SimApp {
    /// An honest application.
    pub fn new(salt: u64) -> Self {
        SimApp {
            salt,
            propose_invalid: false,
        }
    }

    /// The checkpoint this node proposes at `height` on top of `previous`.
    pub fn propose(&self, height: u64, previous: Hash32) -> Checkpoint {
        let mut windows: Vec<WindowHead> = (0..WINDOWS)
            .map(|i| {
                WindowHead::new(
                    Hash32::of_parts(
                        "chorus/sim/window",
                        &[&height.to_le_bytes(), &i.to_le_bytes()],
                    ),
                    &[Hash32::of_parts(
                        "chorus/sim/root",
                        &[
                            &height.to_le_bytes(),
                            &i.to_le_bytes(),
                            &self.salt.to_le_bytes(),
                        ],
                    )],
                )
            })
            .collect();
        windows.sort_by_key(|w| w.window);
        let mut ledger_root = derive_ledger_root(&previous, &windows);
        if self.propose_invalid {
            ledger_root.0[0] ^= 1;
        }
        Checkpoint {
            height,
            previous,
            windows,
            ledger_root,
            inferences: Hash32::default(),
            validators: Hash32::default(),
        }
    }

    /// Whether a proposed checkpoint is valid (the re-derived ledger root matches).
    pub fn validate(&self, checkpoint: &Checkpoint) -> bool {
        checkpoint.ledger_root == derive_ledger_root(&checkpoint.previous, &checkpoint.windows)
    }
}
