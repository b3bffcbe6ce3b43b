//! Collect: every hot block the mark set does not hold goes to the durable dead list, and
//! (per mode) to the durable cold list.

use alloc::{sync::Arc, vec::Vec};

use spin::Mutex;

use super::{CompactionReport, Phase, Progress, ProgressSink};
use crate::{
    clock::Clock,
    error::Error,
    kv::{Kv, Space, WriteBatch},
    markset::{AnyMarks, Marks},
    store::SplitStore,
    Mode,
};

impl<K: Kv, C: Clock> SplitStore<K, C> {
    pub(crate) async fn collect(
        &self,
        marks: &Arc<Mutex<AnyMarks>>,
        cold_marks: Option<&Arc<Mutex<AnyMarks>>>,
        progress: &dyn ProgressSink,
        report: &mut CompactionReport,
    ) -> Result<(), Error> {
        progress.report(&Progress { phase: Phase::Collect, done: 0, total: None });
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
            {
                let m = marks.lock();
                let cm = cold_marks.map(|c| c.lock());
                for k in &page {
                    report.hot_scanned += 1;
                    if m.contains(k) {
                        continue;
                    }
                    report.dead += 1;
                    batch.put(Space::Dead, k.clone(), Vec::new());
                    let to_cold = match self.config.mode {
                        Mode::Discard => false,
                        Mode::Universal => true,
                        Mode::Messages => cm.as_ref().is_some_and(|c| c.contains(k)),
                    };
                    if to_cold {
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
        Ok(())
    }
}
