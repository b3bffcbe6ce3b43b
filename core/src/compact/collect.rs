//! Collect: every hot block the mark set does not hold goes to the durable dead list, and
//! (per mode) to the durable cold list: in universal mode every dead block; in messages mode
//! every block of the cold set, dead or not. An old message DAG is copied to cold whole, its
//! blocks that stay hot included, because later compactions skip a message DAG whose root has
//! left the hot store (invariant I7 in docs/design.md).
//!
//! The scan pages through the hot keyspace as it is, not a snapshot, so it also meets keys
//! written after the compaction began. Listing such a key is safe: every block written since
//! the transaction opened had its CID recorded as a transactional reference before the write
//! (both under the shared transaction lock), and every recorded reference is marked, with its
//! `dead` and `coldlist` entries deleted, before the purge record is written — the critical
//! section's last protection pass runs under the exclusive lock and leaves none unprotected.
//!
//! The scan ends whatever the foreground writes: every key it visits beyond the `N` present
//! when it began was written during it. Keys are spread uniformly by hash, so with the
//! foreground writing `w` keys/s and the scan reading `s` keys/s the cursor passes the last key
//! after `N/w · (e^(w/s) − 1)` seconds, about `N/s · (1 + w/2s)` when `w ≪ s`. Scanning a key
//! costs far less than writing one: on the on-disk store under a writer that never pauses,
//! `w/s` is about 0.2 and the scan visits about 12% more keys than were present.

use alloc::vec::Vec;

use super::{CompactionReport, Phase, Progress, ProgressSink};
use crate::{
    clock::Clock,
    error::Error,
    kv::{Kv, Space, WriteBatch},
    live::LiveRef,
    markset::Marks,
    store::SplitStore,
    Mode,
};

impl<K: Kv, C: Clock> SplitStore<K, C> {
    pub(crate) async fn collect(
        &self,
        live: &LiveRef,
        cold_marks: Option<&LiveRef>,
        progress: &dyn ProgressSink,
        report: &mut CompactionReport,
    ) -> Result<u64, Error> {
        progress.report(&Progress { phase: Phase::Collect, done: 0, total: None });
        let mut cold_listed = 0u64;
        let mut after: Option<Vec<u8>> = None;
        loop {
            self.yield_point().await?;
            let page = self
                .hot
                .scan_keys(Space::Blocks, after.as_deref(), self.config.batch_size)
                .await
                .map_err(|e| self.hot_err(e))?;
            let Some(last) = page.last().cloned() else { break };
            let mut batch = WriteBatch::new();
            batch.maintenance();
            {
                let l = live.lock();
                let cm = cold_marks.map(|c| c.lock());
                for k in &page {
                    report.hot_scanned += 1;
                    let marked = l.marks.contains(k);
                    let to_cold = match self.config.mode {
                        Mode::Discard => false,
                        Mode::Universal => !marked,
                        Mode::Messages => cm.as_ref().is_some_and(|c| c.marks.contains(k)),
                    };
                    if !marked {
                        report.dead += 1;
                        batch.put(Space::Dead, k.clone(), Vec::new());
                    }
                    if to_cold {
                        cold_listed += 1;
                        batch.put(Space::ColdList, k.clone(), Vec::new());
                    }
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
        Ok(cold_listed)
    }
}
