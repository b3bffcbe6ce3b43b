//! Reify: cold DAGs read while in use are copied into the hot store.
//!
//! A read through a [`HotView`] (what state computation reads through; the reference's "hot
//! view" context) that is answered from cold queues the block as a reify root, unless the
//! queue already holds it or is full ([`Config::reify_queue`](crate::Config::reify_queue)).
//! [`SplitStore::reify_pending`] drains the queue, one drain at a time. For each root it walks
//! the DAG below it, breadth first, **stopping at blocks already hot** (what is hot stays hot
//! while it is live) and reading the rest from cold. A root whose cold part has more than
//! [`Config::reify_limit`](crate::Config::reify_limit) objects is not copied at all (as in
//! the reference: reading a state root must not pull a whole state tree into hot). Otherwise
//! the blocks are read again and written into hot children first (a post-order of the cold
//! sub-DAG), in batches of [`Config::batch_size`](crate::Config::batch_size) (at most
//! [`PUT_MANY_CHUNK`]), so a parent is never hot before its cold children. Each batch is read
//! and written under one shared hold of the transaction lock, which a deletion through the API
//! takes exclusively: a block deleted before its batch is read is not copied, and one deleted
//! after is deleted from hot too, so reify never brings a deleted block back.
//!
//! # Against a running compaction or prune
//!
//! The copies are ordinary writes ([`SplitStore::put_many`]): before the critical section
//! they are transactional references whose DAGs the compaction marks, in it they mark their
//! DAGs in the same atomic batch as the blocks. The walk's reads are tracked as any read is,
//! so a running prune keeps (before its critical section) the cold blocks a walk saw; in a
//! prune's critical section an unsettled cold block reads as absent, and is not copied.
//! Nothing here deletes anything: a crash anywhere leaves some blocks in both stores, which
//! the next compaction sorts out like any other hot block.

use alloc::{collections::VecDeque, vec::Vec};

use cid::Cid;
use serde::{Deserialize, Serialize};

use super::{api::Reading, state::CidSet, SplitStore, PUT_MANY_CHUNK};
use crate::{
    clock::Clock,
    error::Error,
    key::{is_unitary, may_have_links, BlockKey},
    kv::{Kv, Space},
    links,
    metrics::Counters,
};

/// Roots whose cold DAGs wait to be copied into hot.
#[derive(Debug, Default)]
pub(crate) struct ReifyQueue {
    pending: VecDeque<Cid>,
    queued: CidSet,
}

/// What one [`SplitStore::reify_pending`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
#[serde(rename_all = "camelCase", default)]
#[non_exhaustive]
pub struct ReifyReport {
    /// Roots taken from the queue.
    pub roots: u64,
    /// Blocks copied from cold into hot.
    pub copied: u64,
    /// Bytes of the blocks copied.
    pub copied_bytes: u64,
    /// Roots not copied because their cold part exceeded the limit.
    pub aborted: u64,
    /// Blocks the walks read from cold.
    pub walked: u64,
    /// DAG-CBOR blocks linked but in neither store (or gone before they were copied).
    pub missing: u64,
}

/// Blocks asked of a backend per call during a reify walk.
const REIFY_BATCH: usize = 512;

/// Reads for state in use: as the store's own reads, except that a block answered from the
/// cold store queues its DAG to be copied into hot ([`SplitStore::reify_pending`]). Hand one to
/// whatever computes state (with the `fvm` feature it is an `fvm_ipld_blockstore::Blockstore`).
#[derive(Debug)]
pub struct HotView<'a, K: Kv, C: Clock> {
    store: &'a SplitStore<K, C>,
}

impl<K: Kv, C: Clock> HotView<'_, K, C> {
    /// [`SplitStore::get`], reifying a cold hit.
    pub async fn get(&self, cid: &Cid) -> Result<Option<Vec<u8>>, Error> {
        self.store.read(cid, Reading::InUse).await
    }

    /// [`SplitStore::get_many`], reifying cold hits.
    pub async fn get_many(&self, cids: &[Cid]) -> Result<Vec<Option<Vec<u8>>>, Error> {
        self.store.read_many(cids, Reading::InUse).await
    }

    /// [`SplitStore::has`], reifying a cold hit.
    pub async fn has(&self, cid: &Cid) -> Result<bool, Error> {
        self.store.contains(cid, Reading::InUse).await
    }

    /// [`SplitStore::put_many`].
    pub async fn put_many(&self, blocks: Vec<(Cid, Vec<u8>)>) -> Result<(), Error> {
        self.store.put_many(blocks).await
    }

    /// The store behind the view.
    pub fn store(&self) -> &SplitStore<K, C> {
        self.store
    }
}

impl ReifyQueue {
    /// Queues `cid` unless it is queued already (`None`) or the queue holds `max` roots
    /// (`Some(false)`: dropped for room).
    fn push(&mut self, cid: &Cid, max: usize) -> Option<bool> {
        if self.queued.contains(cid) {
            return None;
        }
        if self.pending.len() >= max {
            return Some(false);
        }
        self.queued.insert(*cid);
        self.pending.push_back(*cid);
        Some(true)
    }

    fn pop(&mut self) -> Option<Cid> {
        let c = self.pending.pop_front()?;
        self.queued.remove(&c);
        Some(c)
    }
}

impl<K: Kv, C: Clock> SplitStore<K, C> {
    /// Reads for state in use: cold hits through the view are copied into hot, with their DAGs,
    /// by [`SplitStore::reify_pending`].
    pub fn hot_view(&self) -> HotView<'_, K, C> {
        HotView { store: self }
    }

    /// Roots waiting to be copied into hot: when above zero, a host runs
    /// [`SplitStore::reify_pending`] in the background.
    pub fn reify_waiting(&self) -> usize {
        self.shared.lock().reify.pending.len()
    }

    /// Queues a cold hit in use (see [`HotView`]).
    pub(super) fn queue_reify(&self, cid: &Cid) {
        if self.config.reify_limit == 0 || is_unitary(cid) {
            return;
        }
        let queued = self.shared.lock().reify.push(cid, self.config.reify_queue);
        match queued {
            Some(true) => Counters::add(&self.counters.reify_queued, 1),
            Some(false) => Counters::add(&self.counters.reify_dropped, 1),
            None => {}
        }
    }

    /// Copies the cold DAG of every queued root into hot (see the module docs), until the
    /// queue is empty. One drain runs at a time; a second call waits for the first and then
    /// drains what was queued since. The store keeps serving meanwhile.
    pub async fn reify_pending(&self) -> Result<ReifyReport, Error> {
        let _one = self.reify_lock.lock().await;
        let mut report = ReifyReport::default();
        loop {
            self.usable()?;
            let Some(root) = self.shared.lock().reify.pop() else { break };
            report.roots += 1;
            self.reify_root(root, &mut report).await?;
        }
        Ok(report)
    }

    async fn reify_root(&self, root: Cid, report: &mut ReifyReport) -> Result<(), Error> {
        let limit = self.config.reify_limit;
        let mut seen = CidSet::default();
        seen.insert(root);
        let mut frontier = VecDeque::from([root]);
        // The cold blocks found, in walk order, each with the links it has.
        let mut cold: Vec<(Cid, Vec<Cid>)> = Vec::new();
        while !frontier.is_empty() {
            self.usable()?;
            let batch: Vec<Cid> = frontier.drain(..frontier.len().min(REIFY_BATCH)).collect();
            let (found, missing) = self.cold_part(&batch).await?;
            report.missing += missing;
            report.walked += found.len() as u64;
            for (cid, bytes) in found {
                if cold.len() == limit {
                    report.aborted += 1;
                    Counters::add(&self.counters.reify_aborted, 1);
                    return Ok(());
                }
                let mut children = Vec::new();
                if may_have_links(&cid) {
                    // A malformed block is copied with the links readable before the damage.
                    let _ = links::for_each_link(&bytes, |l| children.push(l));
                }
                children.retain(|c| !is_unitary(c));
                for c in &children {
                    if seen.insert(*c) {
                        frontier.push_back(*c);
                    }
                }
                cold.push((cid, children));
            }
        }
        let cold = children_first(cold);
        for chunk in cold.chunks(self.config.batch_size.clamp(1, PUT_MANY_CHUNK)) {
            // Read and written under one hold of the lock: a deletion is never between the two,
            // so a block deleted through the API is never copied back.
            let _shared = self.shared_hold().await;
            let bytes = self.cold_blocks_locked(chunk).await?;
            let blocks: Vec<(Cid, Vec<u8>)> = chunk.iter().zip(bytes).filter_map(|(c, b)| b.map(|b| (*c, b))).collect();
            // Gone since the walk read them (deleted through the API, or pruned).
            report.missing += (chunk.len() - blocks.len()) as u64;
            if blocks.is_empty() {
                continue;
            }
            let (n, size) = (blocks.len() as u64, blocks.iter().map(|(_, b)| b.len() as u64).sum::<u64>());
            self.usable()?;
            self.write_blocks(blocks).await?;
            report.copied += n;
            report.copied_bytes += size;
            Counters::add(&self.counters.reified, n);
        }
        Ok(())
    }

    /// Of `cids`, the blocks not in hot that cold holds (with their bytes), and how many are
    /// in neither. Reads are tracked as the API's are.
    async fn cold_part(&self, cids: &[Cid]) -> Result<(Vec<(Cid, Vec<u8>)>, u64), Error> {
        let keys: Vec<Vec<u8>> = cids.iter().map(|c| BlockKey::of(c).into_bytes()).collect();
        let _shared = self.shared_hold().await;
        let ask: Vec<usize> = (0..cids.len()).filter(|&i| self.hot_visible(&keys[i])).collect();
        let wanted: Vec<Vec<u8>> = ask.iter().map(|&i| keys[i].clone()).collect();
        let mut hot = alloc::vec![false; cids.len()];
        if !wanted.is_empty() {
            let answers = self.hot.get_many(Space::Blocks, &wanted).await.map_err(|e| self.hot_err(e))?;
            for (i, a) in ask.into_iter().zip(answers) {
                hot[i] = a.is_some();
            }
        }
        let rest: Vec<Cid> = cids.iter().zip(&hot).filter(|(_, h)| !**h).map(|(c, _)| *c).collect();
        let bytes = self.cold_blocks_locked(&rest).await?;
        let mut found = Vec::with_capacity(rest.len());
        let mut missing = 0;
        for (c, b) in rest.into_iter().zip(bytes) {
            match b {
                Some(b) => found.push((c, b)),
                None => missing += u64::from(may_have_links(&c)),
            }
        }
        Ok((found, missing))
    }

    /// The cold store's copies of `cids` (`None` where it has none, or may not answer), read
    /// as the API reads: visibility rules applied, found blocks tracked. The caller holds the
    /// transaction lock shared.
    async fn cold_blocks_locked(&self, cids: &[Cid]) -> Result<Vec<Option<Vec<u8>>>, Error> {
        let mut out = alloc::vec![None; cids.len()];
        let keys: Vec<Vec<u8>> = cids.iter().map(|c| BlockKey::of(c).into_bytes()).collect();
        let ask: Vec<usize> = (0..cids.len()).filter(|&i| self.cold_visible(&keys[i])).collect();
        if ask.is_empty() {
            return Ok(out);
        }
        let wanted: Vec<Vec<u8>> = ask.iter().map(|&i| keys[i].clone()).collect();
        let answers = self.cold.get_many(Space::Blocks, &wanted).await.map_err(|e| self.cold_err(e))?;
        let mut read = Vec::new();
        for (i, a) in ask.into_iter().zip(answers) {
            if a.is_some() {
                read.push(cids[i]);
            }
            out[i] = a;
        }
        self.track(&read);
        Ok(out)
    }
}

/// The blocks of `found` (each with its links) ordered so that every block comes after those
/// of its links that `found` holds: a post-order of the sub-DAG, iterative.
fn children_first(found: Vec<(Cid, Vec<Cid>)>) -> Vec<Cid> {
    type Index = hashbrown::HashMap<Cid, usize, core::hash::BuildHasherDefault<siphasher::sip::SipHasher13>>;
    let index: Index = found.iter().enumerate().map(|(i, (c, _))| (*c, i)).collect();
    let mut done = alloc::vec![false; found.len()];
    let mut out = Vec::with_capacity(found.len());
    for start in 0..found.len() {
        if done[start] {
            continue;
        }
        // (block, links of it visited so far)
        let mut stack = alloc::vec![(start, 0usize)];
        done[start] = true;
        while let Some((i, next)) = stack.pop() {
            let links = &found[i].1;
            match links[next..].iter().position(|l| index.get(l).is_some_and(|&j| !done[j])) {
                Some(skip) => {
                    let j = index[&links[next + skip]];
                    done[j] = true;
                    stack.push((i, next + skip + 1));
                    stack.push((j, 0));
                }
                None => out.push(found[i].0),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::dag_cbor_blake2b_cid;

    /// Each block comes after every link `found` holds, also for a block reached at two depths
    /// (where the reverse of a breadth-first order would put a parent first).
    #[test]
    fn children_come_first_at_any_depth() {
        let [r, a, b, c, x] = [1u8, 2, 3, 4, 5].map(|n| dag_cbor_blake2b_cid(&[n]));
        // r → a, b; b → c; c → a, x (x is not in `found`: hot, or absent).
        let found =
            alloc::vec![(r, alloc::vec![a, b]), (a, alloc::vec![]), (b, alloc::vec![c]), (c, alloc::vec![a, x]),];
        let bfs_reversed: Vec<Cid> = found.iter().rev().map(|(c, _)| *c).collect();
        let pos = |order: &[Cid], c: Cid| order.iter().position(|o| *o == c).expect("present");
        assert!(pos(&bfs_reversed, c) < pos(&bfs_reversed, a), "the case a reversed walk gets wrong");
        let order = children_first(found.clone());
        assert_eq!(order.len(), 4);
        for (parent, links) in &found {
            for l in links.iter().filter(|l| found.iter().any(|(f, _)| f == *l)) {
                assert!(pos(&order, *l) < pos(&order, *parent), "{l} after its parent {parent}");
            }
        }
    }
}
