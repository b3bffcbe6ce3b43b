//! Runs the phases in order and keeps the store's state consistent however a run ends.

use alloc::vec::Vec;

use super::{
    error_text,
    mark::{ChainPolicy, PurgeOf},
    CompactionReport, Laps, Phase, Plan, Progress, ProgressSink, RunGuard, Target,
};
use crate::{
    clock::Clock,
    error::Error,
    kv::{Kv, Space, WriteBatch},
    live::Live,
    markset::Marks,
    meta,
    metrics::Counters,
    store::{
        state::{SharedRef, Txn},
        SplitStore,
    },
};

/// The largest mark set pre-allocated from the previous compaction's count (4M objects).
const MAX_PRESIZED_MARKS: usize = 1 << 22;

/// A compaction that has been decided (its transaction is open) but not run yet.
///
/// Run it with [`SplitStore::run_compaction`]. Dropping it without running closes the
/// transaction and lets the next head change decide again.
#[must_use = "a pending compaction does nothing unless run"]
pub struct PendingCompaction {
    pub(crate) plan: Plan,
    shared: Option<SharedRef>,
}

impl core::fmt::Debug for PendingCompaction {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PendingCompaction").field("boundaries", &self.plan.boundaries).finish_non_exhaustive()
    }
}

impl PendingCompaction {
    /// A decided run; the caller has set the store's `compacting` flag.
    pub(crate) fn new(plan: Plan, shared: &SharedRef) -> Self {
        PendingCompaction { plan, shared: Some(shared.clone()) }
    }

    /// True when this run warms an empty hot store from cold instead of compacting
    /// ([`Trigger::Warmup`](crate::config::Trigger::Warmup)).
    pub fn is_warmup(&self) -> bool {
        self.plan.warmup
    }

    /// Height of the head the compaction will walk from.
    pub fn head_epoch(&self) -> i64 {
        self.plan.boundaries.head
    }

    /// Does not wait, before purging, for a fresh head marked in the critical section. That
    /// wait protects state computed from the compaction's own head before a header names it;
    /// a one-shot tool over a store that no node is writing to has no such state, and no
    /// next head to wait for.
    pub fn without_head_wait(mut self) -> Self {
        self.plan.wait_for_head = false;
        self
    }
}

impl Drop for PendingCompaction {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.take() {
            drop(RunGuard { shared });
        }
    }
}

impl<K: Kv, C: Clock> SplitStore<K, C> {
    /// Decides a compaction now, against the current head, whatever the trigger rule says.
    pub fn begin_compaction(&self) -> Result<PendingCompaction, Error> {
        self.usable()?;
        let mut s = self.shared.lock();
        let head = s.head.clone().ok_or(Error::NoHead)?;
        if s.compacting {
            return Err(Error::AlreadyCompacting);
        }
        let plan = Plan {
            boundaries: self.config.boundaries(head.height),
            head,
            wait_for_head: false,
            over_size_limit: false,
            warmup: false,
        };
        Ok(Self::open_txn(&mut s, &self.shared, plan))
    }

    /// Opens the transaction, under the state lock: every API call that looks at the state from
    /// now on records what it touches. Calls that looked before are waited for when the run
    /// starts.
    pub(crate) fn open_txn(s: &mut crate::store::state::Shared, shared: &SharedRef, plan: Plan) -> PendingCompaction {
        s.compacting = true;
        s.out_of_sync = false;
        s.fresh_head_seen = false;
        if s.txn.is_none() {
            s.txn = Some(Txn::default());
        }
        PendingCompaction::new(plan, shared)
    }

    /// Decides and runs a compaction now (the manual trigger).
    pub async fn compact(&self, progress: &dyn ProgressSink) -> Result<CompactionReport, Error> {
        let pending = self.begin_compaction()?;
        self.run_compaction(pending, progress).await
    }

    /// Runs a decided compaction to the end.
    ///
    /// Dropping the future at any await is equivalent to a crash for the durable state and
    /// leaves the in-memory state consistent: before the purge record the compaction is
    /// discarded; after it the store stays in its critical section and the next run (or the
    /// next open) finishes the purge.
    pub async fn run_compaction(
        &self,
        mut pending: PendingCompaction,
        progress: &dyn ProgressSink,
    ) -> Result<CompactionReport, Error> {
        let guard = RunGuard { shared: pending.shared.take().ok_or(Error::AlreadyCompacting)? };
        let plan = pending.plan.clone();
        let progress = Tracked { inner: progress, shared: &self.shared };
        if plan.warmup {
            let result = self.run_warmup(&plan, &progress).await;
            let mut s = self.shared.lock();
            s.last_error = result.as_ref().err().map(error_text);
            // A failed warmup is not retried before the next open (its record says it is
            // under way): head changes go back to compacting, so the hot store stays bounded.
            s.warmup_due = false;
            drop(s);
            drop(guard);
            return result;
        }
        Counters::add(&self.counters.compactions_started, 1);
        let result = self.run_phases(&plan, &progress).await;
        {
            let mut s = self.shared.lock();
            match &result {
                Ok(r) => {
                    s.last_error = None;
                    s.last_report = Some(r.clone());
                    self.counters.compaction_finished(r);
                }
                Err(e) => {
                    s.last_error = Some(error_text(e));
                    Counters::add(&self.counters.compactions_failed, 1);
                }
            }
        }
        drop(guard);
        // Blocks deleted while the transaction was open leave cold now. A failure here leaves
        // their records for the next deletion, compaction or open; the compaction stands.
        if let Err(e) = self.apply_deletes().await {
            self.shared.lock().last_error = Some(error_text(&e));
        }
        if result.is_ok() && self.prune_due() {
            // The compaction stands whatever the prune does; its error is in `info`.
            let _ = self.prune(self.config.prune_retention, progress.inner).await;
        }
        result
    }

    /// True when [`Config::prune_every`](crate::Config::prune_every) asks for a prune after the
    /// compaction that just finished.
    fn prune_due(&self) -> bool {
        let compactions = self.shared.lock().state.compactions;
        self.config.prune_every.is_some_and(|k| compactions > 0 && compactions % k == 0)
    }

    async fn run_phases(&self, plan: &Plan, progress: &dyn ProgressSink) -> Result<CompactionReport, Error> {
        self.usable()?;
        let start = self.clock.now_millis();
        let mut report = CompactionReport {
            head_epoch: plan.boundaries.head,
            boundary_epoch: plan.boundaries.boundary,
            include_messages_epoch: plan.boundaries.include_messages,
            over_size_limit: plan.over_size_limit,
            ..CompactionReport::default()
        };
        let mut laps = Laps { since: start };

        // A prune dropped after its record was issued: its purge is finished first, then this
        // compaction runs in a transaction of its own.
        if let Some((live, record)) = self.pending_prune() {
            let mut pruned = CompactionReport::default();
            self.finish_pending_prune(&live, record, progress, &mut pruned).await?;
            self.shared.lock().txn = Some(Txn::default());
        }
        let resumable = {
            let s = self.shared.lock();
            s.purge_pending.then(|| s.txn.as_ref().and_then(|t| Some((t.marks.clone()?, t.purge?)))).flatten()
        };
        let mut boundaries = plan.boundaries;
        let live = if let Some((live, record)) = resumable {
            // Finishing an interrupted purge: it belongs to the compaction that started it.
            report.resumed = true;
            boundaries = record.boundaries;
            report.dead = record.dead;
            report.head_epoch = boundaries.head;
            report.boundary_epoch = boundaries.boundary;
            report.include_messages_epoch = boundaries.include_messages;
            // The record's write may never have landed: write it (again) before deleting.
            self.write_purge_record(&record).await?;
            self.purge(Some(&live), Target::Hot, progress, &mut report).await?;
            live
        } else {
            if self.shared.lock().purge_pending {
                return Err(Error::RecoveryPending);
            }
            // Calls that checked for a transaction before it opened hold the lock shared until
            // their writes land: wait for them, so every write after this point is recorded
            // and every earlier one is in place before the walk.
            drop(self.txn_lock.write().await);
            self.discard_lists().await?;

            progress.report(&Progress { phase: Phase::Protect, done: 0, total: None });
            self.apply_protectors();
            laps.lap(&mut report, Phase::Protect, self.clock.now_millis());

            // Pre-size from the last compaction, bounded: the count comes from stored metadata,
            // and a larger set simply grows.
            let capacity = {
                let s = self.shared.lock();
                let last = usize::try_from(s.state.last_marked).unwrap_or(usize::MAX);
                last.saturating_add(last / 10).min(MAX_PRESIZED_MARKS)
            };
            let live = Live::shared(self.markset_kind, capacity, self.clock.random_seed());
            if let Some(t) = self.shared.lock().txn.as_mut() {
                t.marks = Some(live.clone());
            }
            let policy = ChainPolicy::Compaction(plan.boundaries);
            let mut indexed = self.indexed_keys();
            let cold_marks =
                self.mark_chain(&plan.head.tipset, policy, &live, indexed.as_mut(), progress, &mut report).await?;
            report.protected_refs += self.protect_txn_refs(&live, false, true).await?;
            laps.lap(&mut report, Phase::Mark, self.clock.now_millis());

            let cold_listed = self.collect(&live, cold_marks.as_ref(), indexed.as_ref(), progress, &mut report).await?;
            drop(indexed);
            drop(cold_marks);
            report.protected_refs += self.protect_txn_refs(&live, true, true).await?;
            laps.lap(&mut report, Phase::Collect, self.clock.now_millis());

            self.retry_missing(&live, progress, &mut report).await?;
            laps.lap(&mut report, Phase::Retry, self.clock.now_millis());

            if self.config.mode != crate::Mode::Discard {
                self.move_cold(cold_listed, progress, &mut report).await?;
            }
            laps.lap(&mut report, Phase::Move, self.clock.now_millis());

            self.enter_critical(PurgeOf::Compaction(plan.boundaries), &live, progress, &mut report).await?;
            if plan.wait_for_head && self.config.sync_gap_secs.is_some() {
                while !self.shared.lock().fresh_head_seen {
                    self.yield_point().await?;
                    self.clock.sleep(250).await;
                }
            }
            laps.lap(&mut report, Phase::Critical, self.clock.now_millis());
            self.purge(Some(&live), Target::Hot, progress, &mut report).await?;
            self.settle_hot_keys(&live).await;
            live
        };
        laps.lap(&mut report, Phase::Purge, self.clock.now_millis());

        {
            let l = live.lock();
            report.marked = l.marks.len() as u64;
            report.markset_bytes = l.marks.heap_bytes() as u64;
            report.markset_bytes_per_object = l.marks.bytes_per_object();
        }
        self.finish(boundaries, report.marked).await?;
        progress.report(&Progress { phase: Phase::Reclaim, done: 0, total: None });
        self.hot.reclaim().await.map_err(|e| self.hot_err(e))?;
        laps.lap(&mut report, Phase::Reclaim, self.clock.now_millis());
        report.total_ms = self.clock.now_millis().saturating_sub(start);
        // For later processes' `info`; a failed write fails the run, as any backend error
        // does (the compaction itself is finished and stays so).
        if let Ok(bytes) = serde_ipld_dagcbor::to_vec(&report) {
            let mut batch = WriteBatch::new();
            batch.maintenance();
            batch.put(Space::Meta, meta::LAST_REPORT, bytes);
            self.hot.write(batch).await.map_err(|e| self.hot_err(e))?;
        }
        Ok(report)
    }

    /// The protectors' CIDs and the pins ([`SplitStore::protect`]) become transactional
    /// references: their DAGs are marked before collect, so never dead-listed.
    pub(crate) fn apply_protectors(&self) {
        let cids: Vec<cid::Cid> = self.protectors.lock().iter().flat_map(|p| p.protected()).collect();
        let mut s = self.shared.lock();
        let pins: Vec<cid::Cid> = s.pins.iter().copied().collect();
        if let Some(t) = s.txn.as_mut() {
            t.refs.extend(cids.into_iter().chain(pins).filter(|c| !crate::key::is_unitary(c)));
        }
    }

    /// The compaction's yield point: stops when closing, waits while the chain is out of sync,
    /// and gives other tasks a turn.
    pub(crate) async fn yield_point(&self) -> Result<(), Error> {
        loop {
            let (closing, poisoned, out_of_sync) = {
                let s = self.shared.lock();
                (s.closing, s.poisoned, s.out_of_sync)
            };
            if poisoned {
                return Err(Error::Poisoned);
            }
            if closing {
                return Err(Error::Closed);
            }
            if !out_of_sync {
                break;
            }
            self.clock.sleep(250).await;
        }
        self.clock.yield_now().await;
        Ok(())
    }
}

/// Forwards progress events and keeps the latest in the shared state, for `info`.
pub(super) struct Tracked<'a> {
    pub inner: &'a dyn ProgressSink,
    pub shared: &'a SharedRef,
}

impl ProgressSink for Tracked<'_> {
    fn report(&self, p: &Progress) {
        self.shared.lock().progress = Some(*p);
        self.inner.report(p);
    }
}
