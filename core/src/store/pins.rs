//! Pins: CIDs whose DAGs every compaction keeps in the hot store, recorded durably.
//!
//! A pin is a record `pinned/<CID>` in the hot store's metadata, loaded into memory at open.
//! Every compaction, in every mode, takes the pins as transactional references when it starts
//! (as it takes the [`Protector`](super::Protector)s' CIDs), so their DAGs are marked before
//! collect and never dead-listed. A pin made while a compaction runs joins it the way a block
//! access does:
//!
//! * **Before the critical section**, the pinned CIDs are recorded as transactional references
//!   (before the record's write is issued, under the shared transaction lock): the compaction
//!   marks their DAGs and durably deletes their dead-list entries before its purge record is
//!   written, the last pass under the exclusive lock, which waits for this call. A crash before
//!   the purge record is durable discards the compaction; after it, the dead list names
//!   nothing of the DAG, so neither the purge nor recovery's replay deletes it.
//! * **In the critical section**, the call walks the DAGs as a critical-section write does,
//!   and deletes their dead-list entries **in the same atomic, strict batch as the pin
//!   records**: once the call returns, the durable dead list names nothing of what the DAGs
//!   held when the call ran, so recovery's replay deletes none of it. The marks are unsettled
//!   until the batch lands; a call dropped or failed before leaves them to the purge, which
//!   settles them before its next deletion ([`crate::live`]).
//!
//! A pinned block absent when pinned is protected whenever it lands: during a compaction by
//! the write that brings it (as any write), afterwards by the next compaction's pins.
//!
//! The pins in memory are a superset of the durable records: a pin is added before its write
//! is issued and removed only after the removal's write returned. A call that fails or whose
//! future is dropped may or may not have changed the records; until the store reopens the
//! CIDs stay pinned, the side that loses nothing.

use alloc::{collections::BTreeSet, vec::Vec};

use cid::Cid;

use super::SplitStore;
use crate::{
    clock::Clock,
    error::Error,
    key::is_unitary,
    kv::{Kv, Space, WriteBatch},
    live::LiveRef,
    meta,
    walk::WalkOpts,
};

/// `cids` sorted, without duplicates.
fn sorted_unique(cids: &[Cid]) -> Vec<Cid> {
    let mut v = cids.to_vec();
    v.sort_unstable();
    v.dedup();
    v
}

impl<K: Kv, C: Clock> SplitStore<K, C> {
    /// Protects the DAGs of `cids` from every compaction until [`SplitStore::unprotect`]: they
    /// stay in the hot store (not moved, not purged) in every mode.
    ///
    /// Once the call returns the pins are durable and in force, whatever crash follows: a
    /// compaction that is running keeps what the DAGs hold now, and what lands later (a CID
    /// may be pinned before its blocks exist). In a compaction's critical section, what its
    /// purge already deleted is gone, as for any block. Pinning does not bring blocks back
    /// from the cold store. Identity CIDs are recorded but hold nothing to protect.
    ///
    /// A pinned block can still be deleted with [`SplitStore::delete`]: the deletion is the
    /// caller's explicit request; the pin stays and protects the block again if it is written
    /// again.
    pub async fn protect(&self, cids: &[Cid]) -> Result<(), Error> {
        self.usable()?;
        let cids = sorted_unique(cids);
        if cids.is_empty() {
            return Ok(());
        }
        let _one_at_a_time = self.pin_lock.lock().await;
        // Shared: a compaction's barrier, its last protection pass before the critical section
        // and each purge batch wait for this call; a pass cannot miss what it records.
        let _shared = self.call_hold().await;
        let critical: Option<LiveRef> = {
            let mut s = self.shared.lock();
            // In memory before the write is issued: a dropped call may still land.
            s.pins.extend(cids.iter().copied());
            match s.txn.as_mut() {
                Some(t) if t.critical => t.marks.clone(),
                Some(t) => {
                    t.refs.extend(cids.iter().copied().filter(|c| !is_unitary(c)));
                    None
                }
                None => None,
            }
        };
        let mut batch = WriteBatch::with_capacity(cids.len());
        let mut revived = Vec::new();
        if let Some(live) = &critical {
            self.walk(&cids, live, WalkOpts::critical(&mut revived)).await?;
            for k in &revived {
                batch.delete(Space::Dead, k.as_bytes());
            }
        }
        for c in &cids {
            batch.put(Space::Meta, meta::pinned_key(c), Vec::new());
        }
        // Durable on return, with the dead-list deletions it carries.
        batch.strict();
        self.hot.write(batch).await.map_err(|e| self.hot_err(e))?;
        if let Some(live) = critical {
            live.lock().settle(&revived);
        }
        Ok(())
    }

    /// Removes the pins of `cids` (CIDs not pinned are ignored). Once the call returns the
    /// removal is durable, and the next compaction that starts may drop the DAGs; one already
    /// running keeps them.
    pub async fn unprotect(&self, cids: &[Cid]) -> Result<(), Error> {
        self.usable()?;
        let cids = sorted_unique(cids);
        let _one_at_a_time = self.pin_lock.lock().await;
        let pinned: Vec<Cid> = {
            let s = self.shared.lock();
            cids.into_iter().filter(|c| s.pins.contains(c)).collect()
        };
        if pinned.is_empty() {
            return Ok(());
        }
        let mut batch = WriteBatch::with_capacity(pinned.len());
        for c in &pinned {
            batch.delete(Space::Meta, meta::pinned_key(c));
        }
        batch.strict();
        self.hot.write(batch).await.map_err(|e| self.hot_err(e))?;
        let mut s = self.shared.lock();
        for c in &pinned {
            s.pins.remove(c);
        }
        Ok(())
    }

    /// The pinned CIDs, sorted.
    pub fn protected(&self) -> Vec<Cid> {
        self.shared.lock().pins.iter().copied().collect()
    }

    /// The CIDs of every pin record, read at open.
    pub(crate) async fn load_pins(&self) -> Result<BTreeSet<Cid>, Error> {
        let mut out = BTreeSet::new();
        for k in self.meta_keys(meta::PINNED_PREFIX).await? {
            if let Some(cid) = meta::pinned_cid(&k) {
                out.insert(cid?);
            }
        }
        Ok(out)
    }
}
