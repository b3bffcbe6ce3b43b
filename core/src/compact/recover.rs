//! Recovery at open.
//!
//! * Purge record present: the crash happened after the critical section was entered. Every
//!   object marked after collect had its dead-list entry removed in the same atomic write that
//!   made the mark matter, so every remaining entry is dead: purge them all (the same function
//!   as the live purge, without a mark set), then finish the compaction.
//! * Prune record present: a cold prune's purge was under way. The same argument holds for
//!   its dead list (of cold keys): purge it from cold, then finish the prune.
//! * Neither: nothing was deleted yet; leftover lists are discarded.

use super::{CompactionReport, NoProgress, RecoveryReport, Target};
use crate::{
    clock::Clock,
    error::Error,
    kv::{Kv, Space},
    meta,
    store::SplitStore,
};

impl<K: Kv, C: Clock> SplitStore<K, C> {
    pub(crate) async fn recover(&self) -> Result<(), Error> {
        let start = self.clock.now_millis();
        let mut rec = RecoveryReport::default();
        let record = self.hot.get(Space::Meta, meta::PURGE).await.map_err(|e| self.hot_err(e))?;
        if let Some(bytes) = record {
            let record = meta::PurgeRecord::decode(&bytes)?;
            self.shared.lock().purge_pending = true;
            let mut report = CompactionReport { dead: record.dead, ..CompactionReport::default() };
            self.purge(None, Target::Hot, &NoProgress, &mut report).await?;
            self.finish(record.boundaries, record.marked).await?;
            rec.finished_purge = true;
            rec.purged = report.purged;
        } else if let Some(bytes) = self.hot.get(Space::Meta, meta::PRUNE).await.map_err(|e| self.hot_err(e))? {
            meta::PruneRecord::decode(&bytes)?;
            self.shared.lock().purge_pending = true;
            let mut report = CompactionReport::default();
            self.purge(None, Target::Cold, &NoProgress, &mut report).await?;
            self.finish_prune().await?;
            rec.finished_purge = true;
            rec.purged = report.purged;
        } else {
            rec.discarded_entries = self.discard_lists().await?;
        }
        rec.ms = self.clock.now_millis().saturating_sub(start);
        self.counters.recovered(&rec);
        if rec.finished_purge || rec.discarded_entries > 0 {
            self.shared.lock().recovery = Some(rec);
        }
        Ok(())
    }

    /// Drops the lists of a compaction that never reached its purge.
    pub(crate) async fn discard_lists(&self) -> Result<u64, Error> {
        let dead = self.clear_space(Space::Dead).await?;
        let cold = self.clear_space(Space::ColdList).await?;
        Ok(dead + cold)
    }
}
