//! Purge: delete the dead list from the hot store (a compaction) or the cold store (a prune)
//! in batches, and finish the compaction.
//!
//! Each batch deletes its hot blocks, removes their dead-list entries and advances the
//! checkpoint in one atomic write (a prune's batch first deletes its cold blocks in a strict
//! write of the cold store), decided under the exclusive transaction lock, after settling the
//! marks that vanished writers left and re-checking the mark set. A compaction's batch is then
//! written after the lock is released, as a deletion in flight (`crate::live`), so no read
//! waits on the disk for it; a prune's and recovery's are written under the lock. While the
//! store is in use a batch is at most
//! [`Config::purge_locked_deletes`](crate::Config::purge_locked_deletes) entries (larger,
//! [`Config::purge_idle_locked_deletes`](crate::Config::purge_idle_locked_deletes), while
//! nobody calls the store), and after each batch the purge steps aside until the calls waiting
//! for the lock hold it, so a call waits at most for one batch's decision (a write of one of
//! its blocks, for its write too). The dead list that remains after any crash is therefore
//! exactly the work left, and recovery replays it with the same function.

use alloc::vec::Vec;

use super::{
    pacing::{Pacer, PageLoad},
    CompactionReport, Phase, Progress, ProgressSink, Target,
};
use crate::{
    clock::Clock,
    config::Boundaries,
    error::Error,
    kv::{Kv, Space, WriteBatch},
    live::LiveRef,
    markset::Marks,
    meta::{self, StoreState},
    store::SplitStore,
    walk::WalkOpts,
};

/// The longest the purge steps aside for callers waiting on the transaction lock after each
/// batch, milliseconds.
const READERS_FIRST_MS: u64 = 5;
/// The most yields of that wait.
const READERS_FIRST_YIELDS: u32 = 10_000;

/// A batch's hot deletions in flight: empties [`Live::purging`](crate::live::Live) when
/// dropped (the write returned, failed or was dropped), before the purge's hold of
/// `purge_write` ends.
struct InFlight<'a> {
    live: &'a LiveRef,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.live.lock().purging.clear();
    }
}

impl<K: Kv, C: Clock> SplitStore<K, C> {
    /// Purges every dead-list entry. `live` is the live mark set during a compaction, `None`
    /// during recovery (then every later mark already removed its entry durably, and nothing
    /// else runs, so the purge is not paced).
    ///
    /// A page of the dead list is read without the lock: an entry a late mark removes
    /// meanwhile is also in the mark set, which is checked under the lock before any delete.
    pub(crate) async fn purge(
        &self,
        live: Option<&LiveRef>,
        target: Target,
        progress: &dyn ProgressSink,
        report: &mut CompactionReport,
    ) -> Result<(), Error> {
        progress.report(&Progress { phase: Phase::Purge, done: 0, total: Some(report.dead) });
        let mut after: Option<Vec<u8>> = None;
        let mut work_ms = 0u64;
        let mut pacer = Pacer::default();
        let mut calls = (self.counters.calls.get(), self.counters.slow_calls.get());
        // The API calls completed when the previous page began (when the purge began, for the
        // first): the store is in use if that count has moved.
        let mut in_use_since = self.counters.foreground_ops();
        loop {
            self.yield_point().await?;
            let started = self.clock.now_millis();
            let page_began = self.counters.foreground_ops();
            let page = self
                .hot
                .scan_keys(Space::Dead, after.as_deref(), self.config.batch_size)
                .await
                .map_err(|e| self.hot_err(e))?;
            let Some(last) = page.last().cloned() else { break };
            let mut rest: &[Vec<u8>] = &page;
            while !rest.is_empty() {
                // While the store is in use (an API call completed since the previous page
                // began: a window of at least one page, so a page's first batch is not taken
                // for idle just because nobody finished a call since its scan), batches are
                // small, so the decision under the exclusive lock is short, and the backend's
                // pending work is waited out first. On an idle store, or in recovery, nobody
                // would wait.
                let in_use = live.is_some() && self.counters.foreground_ops() != in_use_since;
                let n = if in_use {
                    self.config.purge_locked_deletes
                } else {
                    self.config.purge_idle_locked_deletes.max(self.config.purge_locked_deletes)
                };
                let (chunk, tail) = rest.split_at(n.min(rest.len()));
                rest = tail;
                if in_use {
                    self.hot.catch_up().await.map_err(|e| self.hot_err(e))?;
                }
                let exclusive = self.txn_lock.write().await;
                if let Some(live) = live {
                    self.settle_vanished(live).await?;
                }
                // A compaction's hot deletions are written after the lock is released, as a
                // deletion in flight (`crate::live`): decided here, invisible from here on.
                // (A tuple drops in order: `purging` is empty before `purge_write` is free.)
                let in_flight = match live {
                    Some(live) if target == Target::Hot => Some((InFlight { live }, self.purge_write.lock().await)),
                    _ => None,
                };
                // The decision, the only work under the lock: which entries' blocks go.
                let doomed: Vec<bool> = {
                    let mut l = live.map(|l| l.lock());
                    chunk
                        .iter()
                        .map(|k| {
                            let doomed = !l.as_ref().is_some_and(|l| l.marks.contains(k));
                            if let (true, Some(l), Some(_)) = (doomed, l.as_mut(), &in_flight) {
                                l.purging.insert(k.clone());
                            }
                            doomed
                        })
                        .collect()
                };
                // Nothing awaits between the release and the write's issue.
                let exclusive = if in_flight.is_some() {
                    drop(exclusive);
                    None
                } else {
                    Some(exclusive)
                };
                let mut batch = WriteBatch::with_capacity(chunk.len() * 2 + 1);
                batch.maintenance();
                let mut cold_batch = WriteBatch::new();
                cold_batch.maintenance();
                for (k, doomed) in chunk.iter().zip(doomed) {
                    if doomed {
                        let blocks = if target == Target::Cold { &mut cold_batch } else { &mut batch };
                        blocks.delete(Space::Blocks, k.clone());
                        report.purged += 1;
                    } else {
                        report.rescued += 1;
                    }
                    batch.delete(Space::Dead, k.clone());
                }
                if let Some(k) = chunk.last() {
                    batch.put(Space::Meta, meta::CHECKPOINT, k.clone());
                }
                // Cold deletions are durable before their dead-list entries go: a crash between
                // the two leaves entries whose blocks are gone, which a replay deletes again.
                if !cold_batch.is_empty() {
                    cold_batch.strict();
                    self.cold.write(cold_batch).await.map_err(|e| self.cold_err(e))?;
                }
                self.hot.write(batch).await.map_err(|e| self.hot_err(e))?;
                drop(in_flight);
                drop(exclusive);
                // The readers and writers that queued behind this batch take the lock before
                // the next batch does: without this the purge would take it back first, batch
                // after batch, and they would wait for the whole page.
                self.yield_point().await?;
                self.let_readers_in().await;
            }
            after = Some(last);
            in_use_since = page_began;
            progress.report(&Progress { phase: Phase::Purge, done: report.purged, total: Some(report.dead) });
            // Pause for a foreground this page slowed down (`pacing`).
            let took = self.clock.now_millis().saturating_sub(started);
            work_ms += took;
            let seen = (self.counters.calls.get(), self.counters.slow_calls.get());
            let load =
                PageLoad { worked_ms: work_ms, page_ms: took, calls: seen.0 - calls.0, slow_calls: seen.1 - calls.1 };
            calls = seen;
            let pause = pacer.after_page(&self.config, load);
            if live.is_some() && pause > 0 {
                let before = self.clock.now_millis();
                self.clock.sleep(pause).await;
                report.purge_paused_ms += self.clock.now_millis().saturating_sub(before);
            }
        }
        Ok(())
    }

    /// Yields until no caller waits for the transaction lock, for at most
    /// [`READERS_FIRST_MS`] and [`READERS_FIRST_YIELDS`] yields (a clock that stands still
    /// must not hold the purge up): a caller that arrived during the last exclusive hold
    /// waits out that hold only.
    async fn let_readers_in(&self) {
        let start = self.clock.now_millis();
        for _ in 0..READERS_FIRST_YIELDS {
            if !self.txn_lock.readers_waiting() || self.clock.now_millis().saturating_sub(start) >= READERS_FIRST_MS {
                break;
            }
            self.clock.yield_now().await;
        }
    }

    /// Protects what writers that vanished left behind, before a batch of deletions. Called
    /// with the exclusive lock held, where no writer is in flight: every unsettled mark was
    /// left by a critical-section writer that was dropped or failed, and every block of
    /// [`Txn::landing`](crate::store::state::Txn) by an earlier writer whose outcome is
    /// unknown. Walks below each unsettled mark and each landed block, writes the dead-list
    /// deletions, settles. Afterwards every marked object has its present DAG marked and its
    /// dead-list entry deleted, so the purge deletes nothing below a marked object, nor below
    /// a block that landed.
    async fn settle_vanished(&self, live: &LiveRef) -> Result<(), Error> {
        let landing = self.shared.lock().txn.as_mut().map(|t| core::mem::take(&mut t.landing)).unwrap_or_default();
        let mut roots = live.lock().unsettled_cids();
        if !landing.is_empty() {
            let found = self.load_many(&landing).await?;
            let (landed, absent): (Vec<_>, Vec<_>) = landing.into_iter().zip(found).partition(|(_, b)| b.is_some());
            roots.extend(landed.into_iter().map(|(c, _)| c));
            if let Some(t) = self.shared.lock().txn.as_mut() {
                t.landing.extend(absent.into_iter().map(|(c, _)| c));
            }
        }
        if roots.is_empty() {
            return Ok(());
        }
        let mut revived = Vec::new();
        self.walk(&roots, live, WalkOpts::critical(&mut revived)).await?;
        revived.extend(roots.iter().map(crate::key::BlockKey::of));
        let mut batch = WriteBatch::with_capacity(revived.len());
        batch.maintenance();
        for k in &revived {
            batch.delete(Space::Dead, k.as_bytes());
        }
        self.hot.write(batch).await.map_err(|e| self.hot_err(e))?;
        live.lock().settle(&revived);
        Ok(())
    }

    /// Ends a compaction whose purge is complete: clears the cold list, then in one durable
    /// write drops the purge record and checkpoint and records the new base epoch. The new
    /// state derives from the one in memory, which changes only once that write returns: a
    /// finish resumed after its write landed unawaited writes the same record again.
    pub(crate) async fn finish(&self, boundaries: Boundaries, marked: u64) -> Result<(), Error> {
        let state = {
            let s = self.shared.lock();
            StoreState {
                base_epoch: boundaries.boundary.max(s.state.base_epoch),
                compactions: s.state.compactions.saturating_add(1),
                last_marked: marked,
                ..s.state
            }
        };
        self.clear_space(Space::ColdList).await?;
        self.end_purge(meta::PURGE, state).await
    }

    /// The last write of a finished purge: in one strict batch drops its record (`record`,
    /// [`meta::PURGE`] or [`meta::PRUNE`]) and the checkpoint and writes `state`; then the
    /// store leaves its critical section.
    pub(crate) async fn end_purge(&self, record: &[u8], state: StoreState) -> Result<(), Error> {
        let mut batch = WriteBatch::new();
        batch.maintenance();
        batch.delete(Space::Meta, record);
        batch.delete(Space::Meta, meta::CHECKPOINT);
        batch.put(Space::Meta, meta::STATE, state.encode());
        batch.strict();
        self.hot.write(batch).await.map_err(|e| self.hot_err(e))?;
        let mut s = self.shared.lock();
        s.state = state;
        s.purge_pending = false;
        s.txn = None;
        Ok(())
    }

    /// Deletes every entry of a list space; returns how many there were. Nothing adds
    /// entries to a list while it is cleared, so the scan pages on after the last key deleted
    /// rather than over the deletions again.
    pub(crate) async fn clear_space(&self, space: Space) -> Result<u64, Error> {
        let mut n = 0u64;
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = self
                .hot
                .scan_keys(space, after.as_deref(), self.config.batch_size)
                .await
                .map_err(|e| self.hot_err(e))?;
            let Some(last) = page.last().cloned() else { return Ok(n) };
            after = Some(last);
            n += page.len() as u64;
            let mut batch = WriteBatch::with_capacity(page.len());
            batch.maintenance();
            for k in page {
                batch.delete(space, k);
            }
            self.hot.write(batch).await.map_err(|e| self.hot_err(e))?;
        }
    }
}
