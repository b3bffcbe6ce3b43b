//! `Kv` wrappers for the suites: backends that give up the thread where a test needs the
//! executor to switch, and one that logs the blocks a store deletes.

use splitstore_core::{
    kv::{Capabilities, Kv, Op, Space, SpaceEstimate, SpaceStats, WriteBatch},
    mem::YieldOnce,
    KvError,
};

use crate::liveness::Events;

/// Where a [`SteppedWritesKv`] gives up the thread during a write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteSteps {
    /// Once, after applying the write and before returning: the write is applied before its
    /// caller learns it completed, and others run between the two.
    AfterApplying,
    /// Once per entry of the batch but one, before applying it: a large write costs as many
    /// scheduling steps as it has entries.
    PerEntry,
    /// Never: a write is applied and returns in one step.
    Never,
}

/// A backend whose writes give up the thread as its [`WriteSteps`] say; every other call is
/// passed through (wrap it in [`YieldKv`] to switch before every call as well).
#[derive(Clone, Debug)]
pub struct SteppedWritesKv<K>(pub K, pub WriteSteps);

#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
impl<K: Kv> Kv for SteppedWritesKv<K> {
    async fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        self.0.get(space, key).await
    }
    async fn get_many(&self, space: Space, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        self.0.get_many(space, keys).await
    }
    async fn has(&self, space: Space, key: &[u8]) -> Result<bool, KvError> {
        self.0.has(space, key).await
    }
    async fn write(&self, batch: WriteBatch) -> Result<(), KvError> {
        match self.1 {
            WriteSteps::AfterApplying => {
                let applied = self.0.write(batch).await;
                YieldOnce::default().await;
                applied
            }
            WriteSteps::PerEntry => {
                for _ in 1..batch.len() {
                    YieldOnce::default().await;
                }
                self.0.write(batch).await
            }
            WriteSteps::Never => self.0.write(batch).await,
        }
    }
    async fn scan_keys(&self, space: Space, after: Option<&[u8]>, limit: usize) -> Result<Vec<Vec<u8>>, KvError> {
        self.0.scan_keys(space, after, limit).await
    }
    async fn scan(&self, space: Space, after: Option<&[u8]>, limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>, KvError> {
        self.0.scan(space, after, limit).await
    }
    async fn flush(&self) -> Result<(), KvError> {
        self.0.flush().await
    }
    async fn stats(&self, space: Space) -> Result<SpaceStats, KvError> {
        self.0.stats(space).await
    }
    async fn estimate(&self, space: Space) -> Result<Option<SpaceEstimate>, KvError> {
        self.0.estimate(space).await
    }
    async fn footprint(&self) -> Result<Option<u64>, KvError> {
        self.0.footprint().await
    }
    fn capabilities(&self) -> Capabilities {
        self.0.capabilities()
    }
}

/// A backend that gives up the thread before every call, so the executor can switch there.
#[derive(Clone, Debug)]
pub struct YieldKv<K>(pub K);

#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
impl<K: Kv> Kv for YieldKv<K> {
    async fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        YieldOnce::default().await;
        self.0.get(space, key).await
    }
    async fn get_many(&self, space: Space, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        YieldOnce::default().await;
        self.0.get_many(space, keys).await
    }
    async fn has(&self, space: Space, key: &[u8]) -> Result<bool, KvError> {
        YieldOnce::default().await;
        self.0.has(space, key).await
    }
    async fn write(&self, batch: WriteBatch) -> Result<(), KvError> {
        YieldOnce::default().await;
        self.0.write(batch).await
    }
    async fn scan_keys(&self, space: Space, after: Option<&[u8]>, limit: usize) -> Result<Vec<Vec<u8>>, KvError> {
        YieldOnce::default().await;
        self.0.scan_keys(space, after, limit).await
    }
    async fn scan(&self, space: Space, after: Option<&[u8]>, limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>, KvError> {
        YieldOnce::default().await;
        self.0.scan(space, after, limit).await
    }
    async fn flush(&self) -> Result<(), KvError> {
        YieldOnce::default().await;
        self.0.flush().await
    }
    async fn stats(&self, space: Space) -> Result<SpaceStats, KvError> {
        self.0.stats(space).await
    }
    async fn estimate(&self, space: Space) -> Result<Option<SpaceEstimate>, KvError> {
        self.0.estimate(space).await
    }
    async fn footprint(&self) -> Result<Option<u64>, KvError> {
        self.0.footprint().await
    }
    fn capabilities(&self) -> Capabilities {
        self.0.capabilities()
    }
}

/// A backend that logs every block a write deletes (the compaction's purges and recovery's)
/// on an [`Events`] clock, before issuing the write, so a test can tell a block the store
/// deleted from one that was never written or that a crash lost, and order the deletion
/// against the foreground's touches.
#[derive(Clone, Debug)]
pub struct DeletesKv<K> {
    /// The wrapped backend.
    pub inner: K,
    /// The clock and log shared with the test.
    pub events: Events,
}

impl<K> DeletesKv<K> {
    /// Wraps `inner`, logging on `events`.
    pub fn new(inner: K, events: Events) -> Self {
        Self { inner, events }
    }
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
impl<K: Kv> Kv for DeletesKv<K> {
    async fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        self.inner.get(space, key).await
    }
    async fn get_many(&self, space: Space, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        self.inner.get_many(space, keys).await
    }
    async fn has(&self, space: Space, key: &[u8]) -> Result<bool, KvError> {
        self.inner.has(space, key).await
    }
    async fn write(&self, batch: WriteBatch) -> Result<(), KvError> {
        let deleted: Vec<Vec<u8>> = batch
            .ops()
            .iter()
            .filter_map(|op| match op {
                Op::Delete { space: Space::Blocks, key } => Some(key.clone()),
                _ => None,
            })
            .collect();
        if !deleted.is_empty() {
            self.events.deleting(deleted);
        }
        self.inner.write(batch).await
    }
    async fn scan_keys(&self, space: Space, after: Option<&[u8]>, limit: usize) -> Result<Vec<Vec<u8>>, KvError> {
        self.inner.scan_keys(space, after, limit).await
    }
    async fn scan(&self, space: Space, after: Option<&[u8]>, limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>, KvError> {
        self.inner.scan(space, after, limit).await
    }
    async fn flush(&self) -> Result<(), KvError> {
        self.inner.flush().await
    }
    async fn reclaim(&self) -> Result<(), KvError> {
        self.inner.reclaim().await
    }
    async fn stats(&self, space: Space) -> Result<SpaceStats, KvError> {
        self.inner.stats(space).await
    }
    async fn estimate(&self, space: Space) -> Result<Option<SpaceEstimate>, KvError> {
        self.inner.estimate(space).await
    }
    async fn footprint(&self) -> Result<Option<u64>, KvError> {
        self.inner.footprint().await
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
}

/// A backend whose writes of blocks take `ms` milliseconds of a [`ManualClock`] each (the
/// clock advances as the write is issued), so a compaction's phases have a cost a test can
/// measure against the time they took.
#[derive(Clone, Debug)]
pub struct SlowWritesKv<K> {
    /// The backend.
    pub inner: K,
    /// The clock the writes advance.
    pub clock: splitstore_core::mem::ManualClock,
    /// Milliseconds per write.
    pub ms: u64,
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
impl<K: Kv> Kv for SlowWritesKv<K> {
    async fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        self.inner.get(space, key).await
    }
    async fn get_many(&self, space: Space, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        self.inner.get_many(space, keys).await
    }
    async fn has(&self, space: Space, key: &[u8]) -> Result<bool, KvError> {
        self.inner.has(space, key).await
    }
    async fn write(&self, batch: WriteBatch) -> Result<(), KvError> {
        if batch.ops().iter().any(|op| op.space() == Space::Blocks) {
            self.clock.advance(self.ms);
        }
        YieldOnce::default().await;
        self.inner.write(batch).await
    }
    async fn scan_keys(&self, space: Space, after: Option<&[u8]>, limit: usize) -> Result<Vec<Vec<u8>>, KvError> {
        self.inner.scan_keys(space, after, limit).await
    }
    async fn scan(&self, space: Space, after: Option<&[u8]>, limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>, KvError> {
        self.inner.scan(space, after, limit).await
    }
    async fn flush(&self) -> Result<(), KvError> {
        self.inner.flush().await
    }
    async fn stats(&self, space: Space) -> Result<SpaceStats, KvError> {
        self.inner.stats(space).await
    }
    async fn estimate(&self, space: Space) -> Result<Option<SpaceEstimate>, KvError> {
        self.inner.estimate(space).await
    }
    async fn footprint(&self) -> Result<Option<u64>, KvError> {
        self.inner.footprint().await
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
}
