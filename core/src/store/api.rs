//! Block reads and writes, and the store's metadata at open.

use alloc::vec::Vec;

use cid::Cid;

use super::SplitStore;
use crate::{
    clock::Clock,
    compact::Target,
    error::Error,
    graph::WrittenLinks,
    key::{self, is_identity, is_unitary, BlockKey},
    kv::{Kv, Space, WriteBatch},
    live::LiveRef,
    meta,
    metrics::Hit,
    store::state::SharedRef,
    walk::WalkOpts,
};

/// Whether a read is for state in use ([`super::HotView`]): then a cold hit queues the block's
/// DAG for reify.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Reading {
    Plain,
    InUse,
}

impl<K: Kv, C: Clock> SplitStore<K, C> {
    pub(crate) async fn load_meta(&self) -> Result<(), Error> {
        let head = match self.hot.get(Space::Meta, meta::HEAD).await.map_err(|e| self.hot_err(e))? {
            Some(b) => Some(meta::Head::decode(&b)?),
            None => None,
        };
        let state = match self.hot.get(Space::Meta, meta::STATE).await.map_err(|e| self.hot_err(e))? {
            Some(b) => meta::StoreState::decode(&b)?,
            None => meta::StoreState::default(),
        };
        let deleted = self.load_deleted().await?;
        let pins = self.load_pins().await?;
        // Informational: an unreadable report is as good as none.
        let last_report = match self.hot.get(Space::Meta, meta::LAST_REPORT).await.map_err(|e| self.hot_err(e))? {
            Some(b) => serde_ipld_dagcbor::from_slice(&b).ok(),
            None => None,
        };
        let last_prune = match self.hot.get(Space::Meta, meta::LAST_PRUNE).await.map_err(|e| self.hot_err(e))? {
            Some(b) => serde_ipld_dagcbor::from_slice(&b).ok(),
            None => None,
        };
        let warmup = match self.hot.get(Space::Meta, meta::WARMUP).await.map_err(|e| self.hot_err(e))? {
            Some(b) => Some(meta::WarmupRecord::decode(&b)?),
            None => None,
        };
        // A warmup is due when one was under way, or when nothing ever ran on a hot store
        // that is empty beside a cold one (a node started on an archive).
        let warmup_due = match warmup {
            Some(w) => !w.done,
            None if state.compactions == 0 => {
                let hot_empty =
                    self.hot.scan_keys(Space::Blocks, None, 1).await.map_err(|e| self.hot_err(e))?.is_empty();
                hot_empty
                    && !self.cold.scan_keys(Space::Blocks, None, 1).await.map_err(|e| self.cold_err(e))?.is_empty()
            }
            None => false,
        };
        let mut s = self.shared.lock();
        s.last_report = last_report;
        s.last_prune = last_prune;
        s.warmup_due = warmup_due;
        s.warmup_epoch = warmup.filter(|w| w.done).map(|w| w.epoch);
        s.head = head;
        s.state = state;
        s.deleted = deleted;
        s.pins = pins;
        Ok(())
    }

    /// True when a read of `key` may find it in the hot store. In the critical section the
    /// mark set decides what exists: an unmarked hot block is as good as purged, and an
    /// unsettled one is not live until a write protecting it has landed ([`crate::live`]).
    pub(super) fn hot_visible(&self, key: &[u8]) -> bool {
        self.visible(key, Target::Hot)
    }

    /// True when a read of `key` may be answered from the cold store: not when the block was
    /// deleted through the API and its cold copy may not be gone yet, nor, in a prune's
    /// critical section, when the mark set does not hold it settled.
    pub(super) fn cold_visible(&self, key: &[u8]) -> bool {
        !self.shared.lock().deleted.contains(key) && self.visible(key, Target::Cold)
    }

    /// False when the running purge's mark set decides that `key` is as good as gone from
    /// `store`: in the critical section of a purge of that store, unmarked or unsettled.
    fn visible(&self, key: &[u8], store: Target) -> bool {
        let live = match self.shared.lock().txn.as_ref() {
            Some(t) if t.critical && t.target == store => t.marks.clone(),
            _ => None,
        };
        live.is_none_or(|l| l.lock().settled(key))
    }

    pub(super) async fn read(&self, cid: &Cid, reading: Reading) -> Result<Option<Vec<u8>>, Error> {
        self.usable()?;
        if is_identity(cid) {
            return Ok(Some(cid.hash().digest().to_vec()));
        }
        let key = BlockKey::of(cid);
        let _shared = self.call_hold().await;
        let mut found = None;
        let mut hit = Hit::Miss;
        if self.hot_visible(key.as_bytes()) {
            found = self.hot.get(Space::Blocks, key.as_bytes()).await.map_err(|e| self.hot_err(e))?;
            hit = Hit::Hot;
        }
        if found.is_none() && self.cold_visible(key.as_bytes()) {
            found = self.cold.get(Space::Blocks, key.as_bytes()).await.map_err(|e| self.cold_err(e))?;
            hit = Hit::Cold;
        }
        match &found {
            Some(b) => {
                self.counters.lookup(hit, b.len());
                self.track(core::slice::from_ref(cid));
                if hit == Hit::Cold && reading == Reading::InUse {
                    self.queue_reify(cid);
                }
            }
            None => self.counters.lookup(Hit::Miss, 0),
        }
        Ok(found)
    }

    /// The block's bytes, from hot or else cold. Identity CIDs return their digest.
    pub async fn get(&self, cid: &Cid) -> Result<Option<Vec<u8>>, Error> {
        self.read(cid, Reading::Plain).await
    }

    /// Many blocks' bytes, in the order asked, with one backend call per store: the hot
    /// store answers first and the cold store answers what hot did not.
    pub async fn get_many(&self, cids: &[Cid]) -> Result<Vec<Option<Vec<u8>>>, Error> {
        self.read_many(cids, Reading::Plain).await
    }

    pub(super) async fn read_many(&self, cids: &[Cid], reading: Reading) -> Result<Vec<Option<Vec<u8>>>, Error> {
        self.usable()?;
        let mut found: Vec<Option<Vec<u8>>> =
            cids.iter().map(|c| is_identity(c).then(|| c.hash().digest().to_vec())).collect();
        let keys: Vec<BlockKey> = cids.iter().map(BlockKey::of).collect();
        let _shared = self.call_hold().await;
        let mut hit = alloc::vec![Hit::Miss; cids.len()];
        for (store, which) in [(&self.hot, Hit::Hot), (&self.cold, Hit::Cold)] {
            let ask: Vec<usize> = (0..cids.len())
                .filter(|&i| found[i].is_none())
                .filter(|&i| match which {
                    Hit::Hot => self.hot_visible(keys[i].as_bytes()),
                    _ => self.cold_visible(keys[i].as_bytes()),
                })
                .collect();
            if ask.is_empty() {
                continue;
            }
            let wanted: Vec<Vec<u8>> = ask.iter().map(|&i| keys[i].as_bytes().to_vec()).collect();
            let answers = store.get_many(Space::Blocks, &wanted).await.map_err(|e| match which {
                Hit::Hot => self.hot_err(e),
                _ => self.cold_err(e),
            })?;
            for (i, answer) in ask.into_iter().zip(answers) {
                if answer.is_some() {
                    hit[i] = which;
                    found[i] = answer;
                }
            }
        }
        let mut read = Vec::new();
        for ((cid, bytes), hit) in cids.iter().zip(&found).zip(hit) {
            match bytes {
                Some(_) if is_identity(cid) => {}
                Some(b) => {
                    self.counters.lookup(hit, b.len());
                    read.push(*cid);
                    if hit == Hit::Cold && reading == Reading::InUse {
                        self.queue_reify(cid);
                    }
                }
                None => self.counters.lookup(Hit::Miss, 0),
            }
        }
        self.track(&read);
        Ok(found)
    }

    /// The block's size in bytes.
    pub async fn get_size(&self, cid: &Cid) -> Result<Option<usize>, Error> {
        Ok(self.read(cid, Reading::Plain).await?.map(|b| b.len()))
    }

    /// Calls `f` with the block's bytes.
    pub async fn view<R>(&self, cid: &Cid, f: impl FnOnce(&[u8]) -> R) -> Result<Option<R>, Error> {
        Ok(self.read(cid, Reading::Plain).await?.map(|b| f(&b)))
    }

    /// True when the block is in hot or cold (always for identity CIDs).
    pub async fn has(&self, cid: &Cid) -> Result<bool, Error> {
        self.contains(cid, Reading::Plain).await
    }

    pub(super) async fn contains(&self, cid: &Cid, reading: Reading) -> Result<bool, Error> {
        self.usable()?;
        if is_identity(cid) {
            return Ok(true);
        }
        let key = BlockKey::of(cid);
        let _shared = self.call_hold().await;
        let mut found = false;
        let mut hit = Hit::Miss;
        if self.hot_visible(key.as_bytes()) {
            found = self.hot.has(Space::Blocks, key.as_bytes()).await.map_err(|e| self.hot_err(e))?;
            hit = Hit::Hot;
        }
        if !found && self.cold_visible(key.as_bytes()) {
            found = self.cold.has(Space::Blocks, key.as_bytes()).await.map_err(|e| self.cold_err(e))?;
            hit = Hit::Cold;
        }
        if found {
            self.counters.lookup(hit, 0);
            self.track(core::slice::from_ref(cid));
            if hit == Hit::Cold && reading == Reading::InUse {
                self.queue_reify(cid);
            }
        } else {
            self.counters.lookup(Hit::Miss, 0);
        }
        Ok(found)
    }

    /// Writes one block to the hot store.
    pub async fn put(&self, cid: &Cid, bytes: Vec<u8>) -> Result<(), Error> {
        self.put_many(alloc::vec![(*cid, bytes)]).await
    }

    /// Writes blocks to the hot store in one atomic batch. Identity CIDs are skipped.
    ///
    /// While a transaction is open the blocks are remembered before the write, so the
    /// compaction protects their DAGs. In its critical section the write itself marks the
    /// blocks' DAGs and deletes their dead-list entries **in the same atomic batch as the
    /// blocks**, so a block is never durable without its children being protected from the
    /// purge. Dropping the future, or a failed write, leaves marks that are not settled; the
    /// next writer or the purge settles them (see `docs/design.md`, I9).
    pub async fn put_many(&self, blocks: Vec<(Cid, Vec<u8>)>) -> Result<(), Error> {
        self.usable()?;
        let blocks: Vec<(Cid, Vec<u8>)> = blocks.into_iter().filter(|(c, _)| !is_identity(c)).collect();
        if blocks.is_empty() {
            return Ok(());
        }
        if self.config.verify_puts {
            for (c, b) in &blocks {
                key::verify(c, b)?;
            }
        }
        let _shared = self.call_hold().await;
        self.write_blocks(blocks).await
    }

    /// [`SplitStore::put_many`]'s write, for a caller that holds the transaction lock shared
    /// (so no deletion or purge batch interleaves with what it read before).
    pub(super) async fn write_blocks(&self, blocks: Vec<(Cid, Vec<u8>)>) -> Result<(), Error> {
        let blocks_cids: Vec<Cid> = blocks.iter().map(|(c, _)| *c).collect();
        let critical: Option<LiveRef> = {
            let s = self.shared.lock();
            s.txn.as_ref().filter(|t| t.critical).and_then(|t| t.marks.clone())
        };
        // Disarmed once the write returns: a write that never returns may still land.
        let mut unknown = None;
        if critical.is_none() {
            self.track(&blocks_cids);
            unknown = Some(OutcomeUnknown { shared: &self.shared, cids: blocks_cids.clone() });
        }
        if let Some(live) = &critical {
            // A block the purge's write in flight deletes lands after that write (`crate::live`).
            let waits = {
                let l = live.lock();
                blocks.iter().any(|(c, _)| l.purging_cid(c))
            };
            if waits {
                let start = self.clock.now_millis();
                drop(self.purge_write.lock().await);
                self.waited_since(start);
            }
        }
        let mut batch = WriteBatch::with_capacity(blocks.len());
        let mut revived = Vec::new();
        if let Some(live) = &critical {
            self.walk_written(&blocks, live, WalkOpts::critical(&mut revived)).await?;
            for k in &revived {
                batch.delete(Space::Dead, k.as_bytes());
            }
        }
        let keys: Vec<Vec<u8>> = blocks.iter().map(|(c, _)| BlockKey::of(c).into_bytes()).collect();
        let listed = self.list_write(&keys);
        // Recorded once the write returned, for the next chain walk's graph (`SplitStore::written`).
        let links = self.config.keeps_graph().then(|| WrittenLinks::of(&blocks));
        // A block deleted earlier is back: its deletion record goes in the same batch.
        let undeleted: Vec<Vec<u8>> = {
            let s = self.shared.lock();
            if s.deleted.is_empty() {
                Vec::new()
            } else {
                keys.iter().filter(|k| s.deleted.contains(*k)).cloned().collect()
            }
        };
        for k in &undeleted {
            batch.delete(Space::Meta, meta::deleted_key(k));
        }
        let (count, bytes_total) = (blocks.len(), blocks.iter().map(|(_, b)| b.len() as u64).sum());
        for (key, (_, bytes)) in keys.into_iter().zip(blocks) {
            batch.put(Space::Blocks, key, bytes);
        }
        self.hot.write(batch).await.map_err(|e| self.hot_err(e))?;
        if let Some(l) = listed {
            l.landed();
        }
        self.counters.written(count, bytes_total);
        if let Some(u) = unknown {
            u.returned();
        }
        if !undeleted.is_empty() {
            let mut s = self.shared.lock();
            for k in &undeleted {
                s.deleted.remove(k);
            }
        }
        if let (Some(l), Some(w)) = (&links, self.written.lock().as_mut()) {
            l.record_into(w);
        }
        match critical {
            Some(live) => live.lock().settle(&revived),
            // Recorded again now that the blocks are in: a protection pass may have taken the
            // first record while the write was on its way, found the blocks absent and left
            // them unmarked. (The first record stays: a backend that orders reads after earlier
            // writes, as IndexedDB does, lets it protect a write whose future is dropped.)
            None => self.track(&blocks_cids),
        }
        Ok(())
    }

    /// Records `cids` as transactional references while a transaction is open and before its
    /// critical section: the compaction protects their DAGs. Reads record what they found, not
    /// misses: an absent block is unmarked, and the write that brings it is what protects it.
    pub(super) fn track(&self, cids: &[Cid]) {
        if let Some(t) = self.shared.lock().txn.as_mut().filter(|t| !t.critical) {
            t.refs.extend(cids.iter().copied().filter(|c| !is_unitary(c)));
        }
    }
}

/// The blocks of a write made before the critical section, while its outcome is unknown. If
/// its future is dropped (or the write fails) it may still land, at any time, after every
/// protection pass has found its blocks absent (IndexedDB commits a transaction whether or not
/// its future is polled again): dropping this guard hands the blocks to the compaction, whose
/// purge protects those present before deleting anything.
struct OutcomeUnknown<'a> {
    shared: &'a SharedRef,
    cids: Vec<Cid>,
}

impl OutcomeUnknown<'_> {
    /// The write returned: its outcome is known.
    fn returned(mut self) {
        self.cids.clear();
    }
}

impl Drop for OutcomeUnknown<'_> {
    fn drop(&mut self) {
        if self.cids.is_empty() {
            return;
        }
        if let Some(t) = self.shared.lock().txn.as_mut() {
            t.landing.extend(self.cids.drain(..).filter(|c| !is_unitary(c)));
        }
    }
}
