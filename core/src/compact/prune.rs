//! Cold prune: removes from the cold store what a state-retention policy no longer keeps.
//!
//! A prune is a transaction like a compaction's, run through the same phases with the cold
//! store as the purge's target:
//!
//! ```text
//! begin txn ─▶ protect ─▶ mark ─▶ collect ─▶ critical ─▶ purge ─▶ finish ─▶ reclaim cold
//!  (refs tracked)   (deep chain walk) (cold keys   (prune record   (cold batches, each
//!                                      → dead list) durable)        strict before its
//!                                                                   dead-list entries go)
//! ```
//!
//! * **Mark** walks the chain from the head over both stores: every header back to genesis,
//!   the tipset-key objects, state of headers at or above
//!   [`Config::retain_state_from`](crate::Config::retain_state_from) and of genesis, messages
//!   and receipts of the same headers (of every header in messages mode); then the DAG below
//!   every other hot block (a prune leaves no hot block linking a block it deleted); then the
//!   pins, the protectors' CIDs and every block touched since the prune began.
//! * **Collect** lists every unmarked cold key in the hot store's dead list. From then on
//!   every new mark deletes its dead-list entry, as in a compaction (invariant I1).
//! * **Critical section**: the mark set decides what cold holds. A read of an unmarked cold
//!   block finds nothing (as if pruned already); a write marks its DAG over both stores and
//!   deletes its dead-list entries in the same batch as its blocks (I9). The hot store is
//!   never purged by a prune: its reads and writes go on as outside a compaction.
//! * **Purge**: each run of dead-list keys is re-checked against the mark set under the
//!   exclusive lock, deleted from cold in one strict write, then its entries and the
//!   checkpoint go in one hot write. The remaining dead list is at least the work left, and
//!   recovery at open replays it (deleting a block twice is harmless).
//!
//! A prune and a compaction exclude each other (both hold the `compacting` flag). A prune
//! dropped after its record was issued leaves the store in its critical section; the next
//! prune or compaction, or the next open, finishes its purge first.

use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use super::{
    error_text,
    mark::{ChainPolicy, PurgeOf},
    CompactionReport, Laps, Phase, Progress, ProgressSink, RunGuard, Target,
};
use crate::{
    clock::Clock,
    error::Error,
    kv::{Kv, Space, WriteBatch},
    links,
    live::{Live, LiveRef},
    markset::Marks,
    meta::{self, PruneRecord, StoreState},
    store::{state::Txn, SplitStore},
    walk::{OnMissing, WalkOpts},
    Mode,
};

/// What a cold prune did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct PruneReport {
    /// Height of the head it walked from.
    pub head_epoch: i64,
    /// State of headers at or above this height was kept; `None`: all state was kept.
    pub retain_state_from: Option<i64>,
    /// Objects in the mark set at the end.
    pub marked: u64,
    /// Cold objects scanned by collect.
    pub cold_scanned: u64,
    /// Cold objects collect listed as dead.
    pub dead: u64,
    /// Objects deleted from the cold store.
    pub purged: u64,
    /// Dead-listed objects marked live again before they could be purged.
    pub rescued: u64,
    /// Transactional references protected.
    pub protected_refs: u64,
    /// Blocks the walk met in neither store (state earlier compactions or prunes dropped,
    /// messages never fetched).
    pub missing: u64,
    /// Blocks whose links could not be fully read.
    pub unreadable: u64,
    /// Milliseconds per phase, in order (serialised as `[{"phase", "ms"}]`).
    #[serde(with = "super::phase_times")]
    #[cfg_attr(feature = "ts", tsify(type = "{ phase: Phase; ms: number }[]"))]
    pub phases: Vec<(Phase, u64)>,
    /// Milliseconds from start to end.
    pub total_ms: u64,
    /// True when this run finished a prune's purge left by an interrupted one.
    pub resumed: bool,
}

impl PruneReport {
    fn from_run(r: &CompactionReport, retain_state_from: Option<i64>) -> Self {
        PruneReport {
            head_epoch: r.head_epoch,
            retain_state_from,
            marked: r.marked,
            cold_scanned: r.hot_scanned,
            dead: r.dead,
            purged: r.purged,
            rescued: r.rescued,
            protected_refs: r.protected_refs,
            missing: r.missing,
            unreadable: r.unreadable,
            phases: r.phases.clone(),
            total_ms: r.total_ms,
            resumed: r.resumed,
        }
    }
}

/// [`PruneRecord::retain_state_from`] for "all state".
const ALL_STATE: i64 = i64::MIN;

impl<K: Kv, C: Clock> SplitStore<K, C> {
    /// Prunes the cold store: deletes every cold block that no longer belongs to the chain's
    /// history under `retention` (Lotus' `chain prune compact-cold --retention`): `< 0` keeps
    /// all state, `0` only the state the compaction boundary needs, `n` that and `n` more
    /// finalities of state roots, with the messages and receipts of the same headers (of every
    /// header in messages mode). Headers back to genesis, the DAG below every hot block,
    /// pinned and protected DAGs and every block touched while the prune runs are kept; the
    /// hot store is not touched. Then returns the cold store's space where the backend can.
    ///
    /// Online: reads and writes go on meanwhile; compactions wait for it (a head change during
    /// a prune decides none). Dropping the future at any await is a crash for the durable
    /// state; a prune whose purge had begun is finished by the next prune, compaction or open.
    pub async fn prune(&self, retention: i64, progress: &dyn ProgressSink) -> Result<PruneReport, Error> {
        self.usable()?;
        if self.config.mode == Mode::Discard {
            return Err(Error::PruneInDiscardMode);
        }
        let guard = {
            let mut s = self.shared.lock();
            if s.head.is_none() {
                return Err(Error::NoHead);
            }
            if s.compacting {
                return Err(Error::AlreadyCompacting);
            }
            if s.purge_pending && s.txn.as_ref().is_none_or(|t| t.prune.is_none()) {
                return Err(Error::RecoveryPending);
            }
            s.compacting = true;
            s.out_of_sync = false;
            // The kept graph holds objects loaded from cold, which the prune may delete.
            s.drop_kept_graph(&self.written);
            if s.txn.is_none() {
                s.txn = Some(Txn { target: Target::Cold, ..Txn::default() });
            }
            RunGuard { shared: self.shared.clone() }
        };
        let progress = super::driver::Tracked { inner: progress, shared: &self.shared };
        let result = self.run_prune(retention, &progress).await;
        {
            let mut s = self.shared.lock();
            match &result {
                Ok(r) => {
                    s.last_error = None;
                    s.last_prune = Some(r.clone());
                }
                Err(e) => s.last_error = Some(error_text(e)),
            }
        }
        drop(guard);
        if let Err(e) = self.apply_deletes().await {
            self.shared.lock().last_error = Some(error_text(&e));
        }
        result
    }

    async fn run_prune(&self, retention: i64, progress: &dyn ProgressSink) -> Result<PruneReport, Error> {
        let start = self.clock.now_millis();
        let mut report = CompactionReport::default();
        let mut laps = Laps { since: start };
        let pending = self.pending_prune();
        let record = if let Some((live, record)) = pending {
            report.resumed = true;
            self.finish_pending_prune(&live, record, progress, &mut report).await?;
            record
        } else {
            let head = self.shared.lock().head.clone().ok_or(Error::NoHead)?;
            let retain_state_from = self.config.retain_state_from(head.height, retention);
            report.head_epoch = head.height;
            // Every call that checked for a transaction before it opened has landed.
            drop(self.txn_lock.write().await);
            self.discard_lists().await?;
            progress.report(&Progress { phase: Phase::Protect, done: 0, total: None });
            self.apply_protectors();
            laps.lap(&mut report, Phase::Protect, self.clock.now_millis());

            let live = Live::shared(self.markset_kind, 0, self.clock.random_seed());
            if let Some(t) = self.shared.lock().txn.as_mut() {
                t.marks = Some(live.clone());
            }
            let policy = ChainPolicy::Prune { retain_state_from, all_messages: self.config.mode == Mode::Messages };
            self.mark_chain(&head.tipset, policy, &live, None, progress, &mut report).await?;
            self.mark_below_hot(&live, progress, &mut report).await?;
            report.protected_refs += self.protect_txn_refs(&live, false, true).await?;
            laps.lap(&mut report, Phase::Mark, self.clock.now_millis());

            self.collect_cold(&live, progress, &mut report).await?;
            report.protected_refs += self.protect_txn_refs(&live, true, true).await?;
            laps.lap(&mut report, Phase::Collect, self.clock.now_millis());

            let retain_state_from = retain_state_from.unwrap_or(ALL_STATE);
            let purge = PurgeOf::Prune { head: head.height, retain_state_from };
            self.enter_critical(purge, &live, progress, &mut report).await?;
            laps.lap(&mut report, Phase::Critical, self.clock.now_millis());
            self.purge(Some(&live), Target::Cold, progress, &mut report).await?;
            let record = PruneRecord {
                head: head.height,
                retain_state_from,
                marked: live.lock().marks.len() as u64,
                dead: report.dead,
            };
            self.finish_prune().await?;
            record
        };
        laps.lap(&mut report, Phase::Purge, self.clock.now_millis());
        report.marked = record.marked;
        progress.report(&Progress { phase: Phase::Reclaim, done: 0, total: None });
        self.cold.reclaim().await.map_err(|e| self.cold_err(e))?;
        laps.lap(&mut report, Phase::Reclaim, self.clock.now_millis());
        report.total_ms = self.clock.now_millis().saturating_sub(start);
        let retain = (record.retain_state_from != ALL_STATE).then_some(record.retain_state_from);
        let pruned = PruneReport::from_run(&report, retain);
        if let Ok(bytes) = serde_ipld_dagcbor::to_vec(&pruned) {
            let mut batch = WriteBatch::new();
            batch.maintenance();
            batch.put(Space::Meta, meta::LAST_PRUNE, bytes);
            self.hot.write(batch).await.map_err(|e| self.hot_err(e))?;
        }
        Ok(pruned)
    }

    /// The mark set and record of a prune whose run ended after its record was issued.
    pub(crate) fn pending_prune(&self) -> Option<(LiveRef, PruneRecord)> {
        let s = self.shared.lock();
        if !s.purge_pending {
            return None;
        }
        let t = s.txn.as_ref()?;
        Some((t.marks.clone()?, t.prune?))
    }

    /// Finishes the purge of a prune whose run ended after its record was issued: writes the
    /// record again (its write may never have landed), purges, finishes.
    pub(crate) async fn finish_pending_prune(
        &self,
        live: &LiveRef,
        record: PruneRecord,
        progress: &dyn ProgressSink,
        report: &mut CompactionReport,
    ) -> Result<(), Error> {
        report.head_epoch = record.head;
        report.dead = record.dead;
        self.write_prune_record(&record).await?;
        self.purge(Some(live), Target::Cold, progress, report).await?;
        self.finish_prune().await
    }

    /// Marks every hot block the chain walk did not reach, and the DAG below it over both
    /// stores: a prune never leaves a hot block linking a block it deleted (a state computed
    /// from old state, a DAG a user stored). Headers the chain walk marked are skipped: below
    /// them the policy decides. Hot blocks written from here on are transactional references.
    async fn mark_below_hot(
        &self,
        live: &LiveRef,
        progress: &dyn ProgressSink,
        report: &mut CompactionReport,
    ) -> Result<(), Error> {
        let mut after: Option<Vec<u8>> = None;
        let mut scanned = 0u64;
        loop {
            self.yield_point().await?;
            let page = self
                .hot
                .scan(Space::Blocks, after.as_deref(), self.config.batch_size)
                .await
                .map_err(|e| self.hot_err(e))?;
            let Some((last, _)) = page.last().cloned() else { break };
            let mut children = Vec::new();
            {
                let mut l = live.lock();
                for (k, v) in &page {
                    // Links read before any damage are kept, as the walk keeps them.
                    if l.marks.mark(k) && links::for_each_link(v, |c| children.push(c)).is_err() {
                        report.unreadable += 1;
                    }
                }
            }
            scanned += page.len() as u64;
            children.sort_unstable();
            children.dedup();
            let s = self.walk(&children, live, WalkOpts::compaction(OnMissing::Record, None)).await?;
            report.unreadable += s.unreadable;
            after = Some(last);
            progress.report(&Progress { phase: Phase::Mark, done: scanned, total: None });
        }
        Ok(())
    }

    /// Collect for a prune: every unmarked cold key goes to the durable dead list (in the hot
    /// store). Nothing is ever written to cold while a prune runs (moves are compactions'), so
    /// the scan ends with the keys present when it began.
    async fn collect_cold(
        &self,
        live: &LiveRef,
        progress: &dyn ProgressSink,
        report: &mut CompactionReport,
    ) -> Result<(), Error> {
        progress.report(&Progress { phase: Phase::Collect, done: 0, total: None });
        let mut after: Option<Vec<u8>> = None;
        loop {
            self.yield_point().await?;
            let page = self
                .cold
                .scan_keys(Space::Blocks, after.as_deref(), self.config.batch_size)
                .await
                .map_err(|e| self.cold_err(e))?;
            let Some(last) = page.last().cloned() else { break };
            let mut batch = WriteBatch::new();
            batch.maintenance();
            report.hot_scanned += page.len() as u64;
            {
                let l = live.lock();
                for k in page.into_iter().filter(|k| !l.marks.contains(k)) {
                    report.dead += 1;
                    batch.put(Space::Dead, k, Vec::new());
                }
            }
            if !batch.is_empty() {
                self.hot.write(batch).await.map_err(|e| self.hot_err(e))?;
            }
            after = Some(last);
            progress.report(&Progress { phase: Phase::Collect, done: report.hot_scanned, total: None });
        }
        if let Some(t) = self.shared.lock().txn.as_mut() {
            t.collected = true;
        }
        Ok(())
    }

    /// Ends a prune whose purge is complete: in one durable write drops the prune record and
    /// checkpoint and counts the prune. The new state derives from the one in memory, which
    /// changes only once that write returns.
    pub(crate) async fn finish_prune(&self) -> Result<(), Error> {
        let state = {
            let s = self.shared.lock();
            StoreState { prunes: s.state.prunes.saturating_add(1), ..s.state }
        };
        self.end_purge(meta::PRUNE, state).await
    }
}
