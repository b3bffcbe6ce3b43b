//! Deleting blocks through the API, safely against a running compaction.
//!
//! A deletion removes the block from hot and writes its deletion record (`deleted/<key>` in
//! the metadata) in one atomic batch; from then on no read answers the block from cold. The
//! cold copy is deleted, and the record with it, only while no compaction's transaction is
//! open: a compaction's move may have read the block from hot before the deletion and copy it
//! to cold after, so a cold deletion made during the move could be undone by it. Records left
//! by a crash, or by a compaction that was running, are applied when it ends and at open.
//!
//! A write of the block brings it back: its batch deletes the record, so the record never
//! removes a block written after it. A deletion holds the transaction lock exclusively for its
//! write, so no write of the same block is in flight meanwhile: whichever batch lands last
//! decides, and the set of deleted keys follows it.
//!
//! A deletion is durable when it returns (its batch is strict, as is each cold deletion,
//! which is durable before its record is dropped). A deletion a crash interrupts has taken
//! effect or not, whole: its batch is durable before any cold copy is deleted.

use alloc::vec::Vec;

use cid::Cid;

use super::{state::KeySet, SplitStore};
use crate::{
    clock::Clock,
    error::Error,
    key::{is_identity, BlockKey},
    kv::{Kv, Space, WriteBatch},
    meta,
};

impl<K: Kv, C: Clock> SplitStore<K, C> {
    /// Deletes one block from both stores. See [`SplitStore::delete_many`].
    pub async fn delete(&self, cid: &Cid) -> Result<(), Error> {
        self.delete_many(core::slice::from_ref(cid)).await
    }

    /// Deletes blocks from both stores; absent blocks and identity CIDs are no-ops.
    ///
    /// When the call returns, no read finds the blocks, and no compaction, running or later,
    /// brings them back; a later write of a block stores it again. Nothing else is removed: a
    /// DAG that links a deleted block is left incomplete, as in any blockstore, and a
    /// compaction keeps the rest of it as before. While a compaction runs, the cold copies are
    /// deleted when it ends. The call waits for the reads and writes in flight and holds new
    /// ones back for its one write, as a purge batch does.
    pub async fn delete_many(&self, cids: &[Cid]) -> Result<(), Error> {
        self.usable()?;
        let keys: Vec<Vec<u8>> =
            cids.iter().filter(|c| !is_identity(c)).map(|c| BlockKey::of(c).into_bytes()).collect();
        if keys.is_empty() {
            return Ok(());
        }
        {
            // Exclusive: a write of the same block is never in flight meanwhile, so the block
            // and its membership of the deleted set always follow the batch that landed last.
            let _exclusive = self.txn_lock.write().await;
            // The kept graph would mark what the deleted blocks link to as if they were still
            // here.
            self.shared.lock().drop_kept_graph(&self.written);
            self.drop_hot_keys();
            let mut batch = WriteBatch::with_capacity(keys.len() * 2);
            for k in &keys {
                batch.delete(Space::Blocks, k.clone());
                batch.put(Space::Meta, meta::deleted_key(k), Vec::new());
            }
            // Durable before any cold copy goes: a crash never keeps a cold deletion without
            // the record and hot deletion before it.
            batch.strict();
            self.hot.write(batch).await.map_err(|e| self.hot_err(e))?;
            crate::metrics::Counters::add(&self.counters.blocks_deleted, keys.len() as u64);
            let mut s = self.shared.lock();
            s.deleted.extend(keys);
            // A reference to a deleted block is no longer a reason to wait for it.
            if let Some(t) = s.txn.as_mut() {
                for c in cids {
                    t.refs.remove(c);
                }
            }
        }
        self.apply_deletes().await
    }

    /// Deletes the cold copies of deleted blocks and then their records, unless a compaction's
    /// transaction is open (its end calls this again). Holds the transaction lock exclusively
    /// for each batch, so no write of the same block interleaves.
    pub(crate) async fn apply_deletes(&self) -> Result<(), Error> {
        // Nothing to apply (the common case at a compaction's end): no barrier either.
        if self.shared.lock().deleted.is_empty() {
            return Ok(());
        }
        loop {
            let _exclusive = self.txn_lock.write().await;
            let chunk: Vec<Vec<u8>> = {
                let s = self.shared.lock();
                if s.txn.is_some() {
                    return Ok(());
                }
                s.deleted.iter().take(self.config.batch_size).cloned().collect()
            };
            if chunk.is_empty() {
                return Ok(());
            }
            let mut cold = WriteBatch::with_capacity(chunk.len());
            cold.maintenance();
            for k in &chunk {
                cold.delete(Space::Blocks, k.clone());
            }
            cold.strict();
            self.cold.write(cold).await.map_err(|e| self.cold_err(e))?;
            let mut records = WriteBatch::with_capacity(chunk.len());
            records.maintenance();
            for k in &chunk {
                records.delete(Space::Meta, meta::deleted_key(k));
            }
            self.hot.write(records).await.map_err(|e| self.hot_err(e))?;
            let mut s = self.shared.lock();
            for k in &chunk {
                s.deleted.remove(k);
            }
        }
    }

    /// The block keys of every deletion record, read at open.
    pub(crate) async fn load_deleted(&self) -> Result<KeySet, Error> {
        let keys = self.meta_keys(meta::DELETED_PREFIX).await?;
        Ok(keys.iter().filter_map(|k| k.strip_prefix(meta::DELETED_PREFIX)).map(<[u8]>::to_vec).collect())
    }

    /// Every metadata key that starts with `prefix`, in order.
    pub(crate) async fn meta_keys(&self, prefix: &[u8]) -> Result<Vec<Vec<u8>>, Error> {
        let mut out = Vec::new();
        let mut after = prefix.to_vec();
        loop {
            let page = self
                .hot
                .scan_keys(Space::Meta, Some(&after), self.config.batch_size)
                .await
                .map_err(|e| self.hot_err(e))?;
            let done = page.len() < self.config.batch_size;
            for k in page {
                if !k.starts_with(prefix) {
                    return Ok(out);
                }
                after.clone_from(&k);
                out.push(k);
            }
            if done {
                return Ok(out);
            }
        }
    }
}
