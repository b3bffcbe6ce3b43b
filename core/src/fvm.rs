//! [`fvm_ipld_blockstore::Blockstore`] for [`SplitStore`]: the synchronous interface the FVM,
//! Forest and the builtin actors' data structures (`fvm_ipld_hamt`, `fvm_ipld_amt`) are written
//! against. Enabled by the `fvm` feature (which needs `std`).
//!
//! The calls mean what the store's own calls mean: `get` and `has` look in hot and then cold,
//! `put_keyed` and `put_many_keyed` write to hot, checking each block against its CID when
//! [`Config::verify_puts`](crate::Config::verify_puts) is on (a mismatch is an error, nothing is
//! written). Reads and writes made while a compaction runs are protected by it exactly as the
//! async calls are.
//!
//! # Blocking
//!
//! Each call drives the store's future to completion on the calling thread
//! (`futures::executor::block_on`), so it blocks that thread until the key-value store answers
//! and, for a short moment at a compaction's phase changes, until calls in flight finish.
//! Call it from a plain thread, never from a task of an async executor that also drives this
//! store's futures (a compaction, another call): the task would block the thread the future it
//! waits for needs, which on a single-threaded executor never runs again. Under tokio, wrap FVM
//! work in `tokio::task::spawn_blocking` (or `block_in_place` on the multi-threaded runtime).
//! Calling it from inside another `futures::executor` executor panics at once instead of
//! deadlocking.
//!
//! # Batches
//!
//! `put_many_keyed` writes its blocks in atomic batches of [`PUT_MANY_CHUNK`] blocks, so the
//! copies it makes stay bounded however long the iterator is; the trait promises no atomicity
//! across a call, and a failure leaves the earlier batches written (each one whole).

use alloc::vec::Vec;

use cid::Cid;
use futures::executor::block_on;

use crate::{kv::Kv, store::PUT_MANY_CHUNK, Clock, HotView, SplitStore};

impl<K: Kv, C: Clock> fvm_ipld_blockstore::Blockstore for SplitStore<K, C> {
    fn get(&self, k: &Cid) -> anyhow::Result<Option<Vec<u8>>> {
        Ok(block_on(SplitStore::get(self, k))?)
    }

    fn put_keyed(&self, k: &Cid, block: &[u8]) -> anyhow::Result<()> {
        Ok(block_on(SplitStore::put(self, k, block.to_vec()))?)
    }

    fn has(&self, k: &Cid) -> anyhow::Result<bool> {
        Ok(block_on(SplitStore::has(self, k))?)
    }

    fn put_many_keyed<D, I>(&self, blocks: I) -> anyhow::Result<()>
    where
        Self: Sized,
        D: AsRef<[u8]>,
        I: IntoIterator<Item = (Cid, D)>,
    {
        put_chunked(self, blocks)
    }
}

/// State computation's view ([`SplitStore::hot_view`]): reads answered from cold queue their
/// DAGs to be copied into hot; writes are the store's.
impl<K: Kv, C: Clock> fvm_ipld_blockstore::Blockstore for HotView<'_, K, C> {
    fn get(&self, k: &Cid) -> anyhow::Result<Option<Vec<u8>>> {
        Ok(block_on(HotView::get(self, k))?)
    }

    fn put_keyed(&self, k: &Cid, block: &[u8]) -> anyhow::Result<()> {
        Ok(block_on(self.store().put(k, block.to_vec()))?)
    }

    fn has(&self, k: &Cid) -> anyhow::Result<bool> {
        Ok(block_on(HotView::has(self, k))?)
    }

    fn put_many_keyed<D, I>(&self, blocks: I) -> anyhow::Result<()>
    where
        Self: Sized,
        D: AsRef<[u8]>,
        I: IntoIterator<Item = (Cid, D)>,
    {
        put_chunked(self.store(), blocks)
    }
}

/// Writes `blocks` in atomic batches of [`PUT_MANY_CHUNK`].
fn put_chunked<K: Kv, C: Clock, D: AsRef<[u8]>>(
    store: &SplitStore<K, C>,
    blocks: impl IntoIterator<Item = (Cid, D)>,
) -> anyhow::Result<()> {
    let mut chunk = Vec::with_capacity(PUT_MANY_CHUNK);
    for (cid, block) in blocks {
        chunk.push((cid, block.as_ref().to_vec()));
        if chunk.len() == PUT_MANY_CHUNK {
            block_on(store.put_many(core::mem::take(&mut chunk)))?;
        }
    }
    if !chunk.is_empty() {
        block_on(store.put_many(chunk))?;
    }
    Ok(())
}
