//! Move: copy every cold-listed block from hot to cold, then make the copies durable. No
//! block is deleted from hot until this has completed.
//!
//! Hot is made durable before the first copy, so a cold copy is only ever taken from a hot
//! write that a crash can no longer lose, nor any write before it. Otherwise a crash that lost
//! a block's hot write (and its children's, written just before it) could leave its cold copy
//! behind: a readable block without its DAG, a state no prefix of the writes ever had.

use alloc::vec::Vec;

use super::{CompactionReport, Phase, Progress, ProgressSink};
use crate::{
    clock::Clock,
    error::Error,
    kv::{Kv, Space, WriteBatch},
    store::SplitStore,
};

impl<K: Kv, C: Clock> SplitStore<K, C> {
    /// Copies the blocks of the cold list: `cold_listed` entries when collect ended, fewer if
    /// later marks removed some (universal mode).
    pub(crate) async fn move_cold(
        &self,
        cold_listed: u64,
        progress: &dyn ProgressSink,
        report: &mut CompactionReport,
    ) -> Result<(), Error> {
        progress.report(&Progress { phase: Phase::Move, done: 0, total: None });
        self.hot.flush().await.map_err(|e| self.hot_err(e))?;
        let mut after: Option<Vec<u8>> = None;
        loop {
            self.yield_point().await?;
            let page = self
                .hot
                .scan_keys(Space::ColdList, after.as_deref(), self.config.batch_size)
                .await
                .map_err(|e| self.hot_err(e))?;
            let Some(last) = page.last().cloned() else { break };
            let values = self.hot.get_many(Space::Blocks, &page).await.map_err(|e| self.hot_err(e))?;
            let mut batch = WriteBatch::with_capacity(page.len());
            batch.maintenance();
            for (k, v) in page.into_iter().zip(values) {
                if let Some(v) = v {
                    batch.put(Space::Blocks, k, v);
                    report.moved += 1;
                }
            }
            if !batch.is_empty() {
                self.cold.write(batch).await.map_err(|e| self.cold_err(e))?;
            }
            after = Some(last);
            progress.report(&Progress { phase: Phase::Move, done: report.moved, total: Some(cold_listed) });
        }
        self.cold.flush().await.map_err(|e| self.cold_err(e))?;
        Ok(())
    }
}
