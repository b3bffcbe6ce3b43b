//! Collect: every hot block the mark set does not hold goes to the durable dead list, and
//! (per mode) to the durable cold list: in universal mode every dead block; in messages mode
//! every block of the cold set, dead or not. An old message DAG is copied to cold whole, its
//! blocks that stay hot included, because later compactions skip a message DAG whose root has
//! left the hot store (invariant I7 in docs/design.md).
//!
//! Where the store keeps a hot key list (`crate::hot_keys`) and it is usable, collect visits
//! the list instead of scanning: the same keys but those the chain index marks, so the same
//! dead and cold lists. Keys written during the collect go to the next list either way.
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
    hot_keys::{IndexedKeys, KeyBag, Listing},
    kv::{Kv, Space, WriteBatch},
    live::LiveRef,
    markset::Marks,
    store::SplitStore,
    Mode,
};

/// Where a collect finds the hot keys.
enum Source {
    /// A scan of the hot store, after this key.
    Scan(Option<Vec<u8>>),
    /// The hot key list (`crate::hot_keys`).
    List(Listing),
}

impl<K: Kv, C: Clock> SplitStore<K, C> {
    /// Lists the dead (and cold) blocks. `indexed` holds the keys the walk marked from the
    /// chain index or recorded into it, when the store keeps a hot key list: the next list
    /// leaves them out.
    pub(crate) async fn collect(
        &self,
        live: &LiveRef,
        cold_marks: Option<&LiveRef>,
        indexed: Option<&IndexedKeys>,
        progress: &dyn ProgressSink,
        report: &mut CompactionReport,
    ) -> Result<u64, Error> {
        progress.report(&Progress { phase: Phase::Collect, done: 0, total: None });
        let used_index = report.chain_index_keys > 0;
        let mut source = match self.start_hot_key_list(used_index).await? {
            Some(l) => Source::List(l),
            None => Source::Scan(None),
        };
        report.hot_keys_listed = matches!(source, Source::List(_));
        // What this collect visits, for the next list: `None` once past its limit, and from
        // the start if the walk's set of the index's keys passed it (the list could not leave
        // them out).
        let mut next = (self.config.lists_hot_keys() && !indexed.is_some_and(|x| x.overflowed()))
            .then(|| (KeyBag::default(), KeyBag::default()));
        let mut left_out = 0u64;
        let mut cold_listed = 0u64;
        loop {
            self.yield_point().await?;
            let page = match &mut source {
                Source::Scan(after) => self
                    .hot
                    .scan_keys(Space::Blocks, after.as_deref(), self.config.batch_size)
                    .await
                    .map_err(|e| self.hot_err(e))?,
                Source::List(l) => l.page(self.config.batch_size),
            };
            let Some(last) = page.last() else { break };
            if let Source::Scan(after) = &mut source {
                *after = Some(last.clone());
            }
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
                    if let Some((kept, dead)) = next.as_mut() {
                        if !marked {
                            dead.push(k);
                        } else if indexed.is_some_and(|x| x.contains(k)) {
                            left_out += 1;
                        } else {
                            kept.push(k);
                        }
                    }
                }
            }
            if next.as_ref().is_some_and(|(k, d)| k.held() + d.held() > self.config.hot_key_list_bytes) {
                next = None;
            }
            if !batch.is_empty() {
                self.hot.write(batch).await.map_err(|e| self.hot_err(e))?;
            }
            progress.report(&Progress { phase: Phase::Collect, done: report.hot_scanned, total: None });
        }
        if self.config.lists_hot_keys() {
            // A scan after a walk that marked from the index without taking in the stored
            // chunks' keys could not leave them out.
            let tight = !(used_index && !report.hot_keys_listed && !indexed.is_some_and(|x| x.with_stored));
            report.hot_keys_kept = self.hot_keys_collected(next, left_out > 0, tight);
        }
        if let Some(t) = self.shared.lock().txn.as_mut() {
            t.collected = true;
        }
        Ok(cold_listed)
    }
}
