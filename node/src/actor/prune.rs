//! Retention passes: every few applied heights the actor reads a page of the store's window
//! table, keeps those the ledger says are finalized and closed before the retention cutoff,
//! and has the store delete them with the certificates below the cutoff
//! ([`crate::store::prune`]). Bounded work per pass; the pages sweep the whole table in turn.
//! The same pass deletes finalized inferences and statement lines of epochs older than the
//! history retention ([`prune::prune_history`]), also a bounded batch.
//!
//! Compaction checks, every `[store] compact_check_secs` and on archive nodes too: the storage
//! thread counts the file's free pages and compacts it when they are worth it
//! ([`stats::compact_if_worth`]), giving back what pruning and copy-on-write left free. The
//! actor does not wait for it: the check runs as its own task and the next pass reads its
//! result (the storage thread is busy meanwhile, so writes queue up behind it).

use std::collections::BTreeMap;

use chorus_crdt::window::WindowKey;
use chorus_protocol::ids::Hash32;
use chorus_protocol::topic::TopicSpec;

use super::run::Actor;
use crate::store::prune::{self, Retention};
use futures::FutureExt;

use crate::store::stats::{self, CompactPolicy};

/// A pass runs after this many more heights were applied.
pub(super) const PRUNE_EVERY_HEIGHTS: u64 = 8;

/// Stored windows looked at per pass (a page of the table by window id). A full sweep of a
/// table of `n` windows takes `n / PAGE` passes, so up to `PAGE / PRUNE_EVERY_HEIGHTS` (512)
/// windows per height are pruned as fast as they finalize.
pub(super) const PAGE: usize = 4_096;

/// Where the sweep is, and when the next compaction is due.
#[derive(Debug)]
pub(super) struct PruneState {
    /// The last window id of the previous page (`None`: start over).
    cursor: Option<Hash32>,
    /// The applied height of the last pass.
    last_height: u64,
    /// Where the statement sweep goes on (`None`: from the start).
    statements: Option<crate::store::ops::StatementKey>,
    /// When to compact.
    compaction: CompactPolicy,
    /// The clock time of the next check.
    next_check_ms: u64,
    /// A check running on the storage thread.
    check: Option<tokio::task::JoinHandle<Result<stats::CompactCheck, crate::store::StoreError>>>,
}

impl PruneState {
    pub(super) fn new(compaction: CompactPolicy, now_ms: u64) -> Self {
        PruneState {
            cursor: None,
            last_height: 0,
            statements: None,
            compaction,
            // A store that grew under an older build is checked at the first pass.
            next_check_ms: now_ms,
            check: None,
        }
    }
}

impl Actor {
    /// One retention pass, if due.
    pub(super) async fn prune_pass(&mut self) {
        let Retention::Prune {
            heights: keep,
            history_ms,
        } = self.p.retention
        else {
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
        self.prune_history(applied, history_ms).await;
    }

    /// Start a compaction check when one is due, and take the result of the last one when it
    /// has ended.
    pub(super) fn compact_pass(&mut self) {
        if let Some(check) = self.prune.check.take_if(|c| c.is_finished()) {
            match check.now_or_never() {
                Some(Ok(Ok(done))) => self.checked(&done),
                Some(Ok(Err(e))) => tracing::warn!(error = %e, "compacting the store failed"),
                Some(Err(e)) => tracing::warn!(error = %e, "the compaction check ended abnormally"),
                None => {}
            }
        }
        let policy = self.prune.compaction;
        let now = self.now();
        if policy.free_percent == 0 || self.prune.check.is_some() || now < self.prune.next_check_ms
        {
            return;
        }
        self.prune.next_check_ms = now.saturating_add(policy.check_every_ms);
        let store = self.p.store.clone();
        let path = store.path().to_owned();
        self.prune.check = Some(tokio::spawn(async move {
            store
                .call_mut(move |db| stats::compact_if_worth(db, &path, &policy))
                .await
        }));
    }

    fn checked(&self, done: &stats::CompactCheck) {
        self.p.metrics.free_pages(done.free_bytes);
        let Some(c) = done.compaction else {
            return;
        };
        self.p.metrics.compacted(
            done.disk_bytes,
            c.after_bytes,
            std::time::Duration::from_secs_f64(c.seconds),
        );
        tracing::info!(
            before = done.disk_bytes,
            free = done.free_bytes,
            after = c.after_bytes,
            passes = c.passes,
            seconds = c.seconds,
            "store compacted"
        );
    }

    /// Inferences and statement lines of epochs that started `history_ms` before the applied
    /// height's period: per topic, the epochs before the one holding that time.
    async fn prune_history(&mut self, applied: u64, history_ms: u64) {
        let ledger = self.p.replica.ledger();
        let Some(before_ms) = ledger.period_start(applied).checked_sub(history_ms) else {
            return;
        };
        let cutoffs = history_cutoffs(
            ledger.topics.iter().map(|(id, t)| (id.0, &t.spec)),
            before_ms,
        );
        if cutoffs.is_empty() {
            return;
        }
        let after = self.prune.statements;
        match self
            .p
            .store
            .call(move |db| prune::prune_history(db, &cutoffs, after, PAGE))
            .await
        {
            Ok(p) => {
                self.prune.statements = p.next;
                self.p.metrics.pruned("inferences", p.inferences);
                self.p.metrics.pruned("statements", p.statements);
            }
            Err(e) => tracing::warn!(error = %e, "retention: pruning history failed"),
        }
    }
}

/// Per topic, the first epoch to keep: the one that holds `before_ms` (the epochs before it
/// started earlier). Topics that had no whole epoch before then are left out.
fn history_cutoffs<'a>(
    topics: impl Iterator<Item = (u64, &'a TopicSpec)>,
    before_ms: u64,
) -> BTreeMap<u64, u64> {
    topics
        .filter_map(|(id, spec)| Some((id, spec.epoch_at(before_ms)?)))
        .filter(|(_, epoch)| *epoch > 0)
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use chorus_protocol::topic::LossMethod;

    use super::*;

    #[test]
    fn history_keeps_the_epoch_that_holds_the_cutoff() {
        // Topic 1: epochs of 1 s from t = 10 s; topic 2 starts after the cutoff; topic 3's
        // epoch 0 holds it.
        let one = TopicSpec::new("a", LossMethod::Mse, 10_000, 1_000, 500, 1_000);
        let two = TopicSpec::new("b", LossMethod::Mse, 99_000, 1_000, 500, 1_000);
        let three = TopicSpec::new("c", LossMethod::Mse, 14_000, 60_000, 500, 60_000);
        let cut = history_cutoffs([(1, &one), (2, &two), (3, &three)].into_iter(), 15_500);
        assert_eq!(cut, BTreeMap::from([(1, 5)]));
        assert_eq!(one.epoch_start(5), 15_000);
    }
}
