//! Block reads and writes, and the store's metadata at open.

use alloc::{sync::Arc, vec::Vec};

use cid::Cid;
use spin::Mutex;

use super::SplitStore;
use crate::{
    clock::Clock,
    error::Error,
    key::{self, is_identity, is_unitary, BlockKey},
    kv::{Kv, Space, WriteBatch},
    links,
    markset::{AnyMarks, Marks},
    meta,
};

/// Where a read may look.
enum Route {
    HotThenCold,
    ColdOnly,
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
        let mut s = self.shared.lock();
        s.head = head;
        s.state = state;
        Ok(())
    }

    /// Decides where a read of `cid` looks, remembering it while a transaction is open.
    fn route(&self, cid: &Cid, key: &BlockKey) -> Route {
        let mut s = self.shared.lock();
        match s.txn.as_mut() {
            Some(t) if t.critical => match &t.marks {
                // In the critical section an unmarked hot block is as good as purged.
                Some(m) if !m.lock().contains(key.as_bytes()) => Route::ColdOnly,
                _ => Route::HotThenCold,
            },
            Some(t) => {
                if !is_unitary(cid) {
                    t.refs.insert(*cid);
                }
                Route::HotThenCold
            }
            None => Route::HotThenCold,
        }
    }

    async fn read(&self, cid: &Cid) -> Result<Option<Vec<u8>>, Error> {
        self.usable()?;
        if is_identity(cid) {
            return Ok(Some(cid.hash().digest().to_vec()));
        }
        let key = BlockKey::of(cid);
        let _shared = self.txn_lock.read().await;
        if let Route::HotThenCold = self.route(cid, &key) {
            if let Some(v) = self.hot.get(Space::Blocks, key.as_bytes()).await.map_err(|e| self.hot_err(e))? {
                return Ok(Some(v));
            }
        }
        self.cold.get(Space::Blocks, key.as_bytes()).await.map_err(|e| self.cold_err(e))
    }

    /// The block's bytes, from hot or else cold. Identity CIDs return their digest.
    pub async fn get(&self, cid: &Cid) -> Result<Option<Vec<u8>>, Error> {
        self.read(cid).await
    }

    /// The block's size in bytes.
    pub async fn get_size(&self, cid: &Cid) -> Result<Option<usize>, Error> {
        Ok(self.read(cid).await?.map(|b| b.len()))
    }

    /// Calls `f` with the block's bytes.
    pub async fn view<R>(&self, cid: &Cid, f: impl FnOnce(&[u8]) -> R) -> Result<Option<R>, Error> {
        Ok(self.read(cid).await?.map(|b| f(&b)))
    }

    /// True when the block is in hot or cold (always for identity CIDs).
    pub async fn has(&self, cid: &Cid) -> Result<bool, Error> {
        self.usable()?;
        if is_identity(cid) {
            return Ok(true);
        }
        let key = BlockKey::of(cid);
        let _shared = self.txn_lock.read().await;
        if let Route::HotThenCold = self.route(cid, &key) {
            if self.hot.has(Space::Blocks, key.as_bytes()).await.map_err(|e| self.hot_err(e))? {
                return Ok(true);
            }
        }
        self.cold.has(Space::Blocks, key.as_bytes()).await.map_err(|e| self.cold_err(e))
    }

    /// Writes one block to the hot store.
    pub async fn put(&self, cid: &Cid, bytes: Vec<u8>) -> Result<(), Error> {
        self.put_many(alloc::vec![(*cid, bytes)]).await
    }

    /// Writes blocks to the hot store in one atomic batch. Identity CIDs are skipped.
    ///
    /// In a compaction's critical section the batch also marks the blocks' DAGs and removes
    /// their dead-list entries, so a block is never durable without its children being
    /// protected from the purge.
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
        let _shared = self.txn_lock.read().await;
        let critical_marks: Option<Arc<Mutex<AnyMarks>>> = {
            let mut s = self.shared.lock();
            match s.txn.as_mut() {
                Some(t) if t.critical => t.marks.clone(),
                Some(t) => {
                    t.refs.extend(blocks.iter().map(|(c, _)| *c).filter(|c| !is_unitary(c)));
                    None
                }
                None => None,
            }
        };
        let mut batch = WriteBatch::with_capacity(blocks.len());
        if let Some(marks) = critical_marks {
            let mut children = Vec::new();
            let mut newly = Vec::new();
            {
                let mut m = marks.lock();
                for (c, bytes) in &blocks {
                    let k = BlockKey::of(c);
                    if m.mark(k.as_bytes()) {
                        newly.push(k);
                    }
                    if key::may_have_links(c) {
                        // A malformed block is stored as given; its readable links are protected.
                        let _ = links::for_each_link(bytes, |l| children.push(l));
                    }
                }
            }
            let opts = crate::walk::WalkOpts {
                on_missing: crate::walk::OnMissing::Record,
                newly: Some(&mut newly),
                yielding: false,
            };
            self.walk(&children, &marks, opts).await?;
            for k in &newly {
                batch.delete(Space::Dead, k.as_bytes());
            }
        }
        for (c, bytes) in blocks {
            batch.put(Space::Blocks, BlockKey::of(&c).into_bytes(), bytes);
        }
        self.hot.write(batch).await.map_err(|e| self.hot_err(e))
    }

    /// Refused: blocks leave the store only through compaction.
    pub async fn delete(&self, _cid: &Cid) -> Result<(), Error> {
        Err(Error::DeleteRefused)
    }
}
