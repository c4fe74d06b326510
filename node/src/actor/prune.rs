//! Retention passes: every few applied heights the actor reads a page of the store's window
//! table, keeps those the ledger says are finalized and closed before the retention cutoff,
//! and has the store delete them with the certificates below the cutoff
//! ([`crate::store::prune`]). Bounded work per pass; the pages sweep the whole table in turn.

use chorus_crdt::window::WindowKey;
use chorus_protocol::ids::Hash32;

use super::run::Actor;
use crate::store::prune::{self, Retention};

/// A pass runs after this many more heights were applied.
pub(super) const PRUNE_EVERY_HEIGHTS: u64 = 8;

/// Stored windows looked at per pass (a page of the table by window id). A full sweep of a
/// table of `n` windows takes `n / PAGE` passes, so up to `PAGE / PRUNE_EVERY_HEIGHTS` (512)
/// windows per height are pruned as fast as they finalize.
pub(super) const PAGE: usize = 4_096;

/// Where the sweep is.
#[derive(Debug, Default)]
pub(super) struct PruneState {
    /// The last window id of the previous page (`None`: start over).
    cursor: Option<Hash32>,
    /// The applied height of the last pass.
    last_height: u64,
}

impl Actor {
    /// One retention pass, if due.
    pub(super) async fn prune_pass(&mut self) {
        let Retention::Heights(keep) = self.p.retention else {
            return;
        };
        let applied = self.p.replica.ledger().next_height;
        if applied < self.prune.last_height.saturating_add(PRUNE_EVERY_HEIGHTS) || applied <= keep {
            return;
        }
        self.prune.last_height = applied;
        let cutoff = applied - keep;
        let after = self.prune.cursor;
        let page = match self
            .p
            .store
            .call(move |db| prune::window_keys_page(db, after, PAGE))
            .await
        {
            Ok(page) => page,
            Err(e) => {
                tracing::warn!(error = %e, "retention: cannot read the window table");
                return;
            }
        };
        self.prune.cursor = match page.len() < PAGE {
            true => None,
            false => page.last().map(WindowKey::id),
        };
        let ledger = self.p.replica.ledger();
        let before_ms = ledger.period_start(cutoff);
        let old: Vec<WindowKey> = page
            .into_iter()
            .filter(|k| {
                ledger.is_finalized(k) == Some(true)
                    && ledger
                        .window_span(k)
                        .is_some_and(|(_, close)| close < before_ms)
            })
            .collect();
        match self
            .p
            .store
            .call(move |db| prune::prune(db, &old, cutoff))
            .await
        {
            Ok(p) => {
                self.p.metrics.pruned("windows", p.windows);
                self.p.metrics.pruned("envelopes", p.envelopes);
                self.p.metrics.pruned("certificates", p.certificates);
                if p.windows + p.certificates > 0 {
                    tracing::debug!(
                        windows = p.windows,
                        envelopes = p.envelopes,
                        bytes = p.bytes,
                        certificates = p.certificates,
                        below = cutoff,
                        "retention: pruned"
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "retention: pruning failed"),
        }
    }
}
