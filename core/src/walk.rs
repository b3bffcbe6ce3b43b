//! Iterative DAG walks over the store, batched for the backends.
//!
//! A walk marks as it discovers (test-and-set), loads only newly marked DAG-CBOR blocks, and
//! never descends below a block that was already marked. The work list is an explicit stack,
//! so a deep DAG costs heap, not call stack. Blocks are fetched `WALK_BATCH` at a time with
//! `get_many`, hot first and cold for the misses.

use alloc::{sync::Arc, vec::Vec};

use cid::Cid;
use spin::Mutex;

use crate::{
    clock::Clock,
    error::Error,
    key::{is_unitary, may_have_links, BlockKey},
    kv::{Kv, Space},
    links,
    markset::{AnyMarks, Marks},
    store::SplitStore,
};

/// Blocks fetched per backend call during a walk.
pub(crate) const WALK_BATCH: usize = 512;
/// Missing CIDs remembered per walk (the count is always exact).
const MISSING_KEPT: usize = 256;

/// What a walk does when a DAG-CBOR block is in neither store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OnMissing {
    /// Fail with [`Error::MissingBlock`] naming this context.
    Fail(&'static str),
    /// Count it and go on.
    Record,
}

/// What a walk saw.
#[derive(Clone, Debug, Default)]
pub(crate) struct WalkStats {
    /// Objects newly marked.
    pub marked: u64,
    /// Blocks loaded and scanned.
    pub loaded: u64,
    /// Bytes scanned.
    pub bytes: u64,
    /// Blocks whose links could not be fully read (treated as leaves past the damage).
    pub unreadable: u64,
    /// Missing blocks (count).
    pub missing: u64,
    /// The first missing CIDs.
    pub missing_cids: Vec<Cid>,
}

/// How a walk reports and yields.
pub(crate) struct WalkOpts<'a> {
    pub on_missing: OnMissing,
    /// Receives the key of every newly marked object.
    pub newly: Option<&'a mut Vec<BlockKey>>,
    /// Call the store's yield point (pause while out of sync, stop when closing).
    pub yielding: bool,
}

/// Marks each of `cids` not marked yet (skipping unitary ones), pushes the new ones that may
/// have links onto `stack`, and reports them.
fn mark_new(
    cids: &[Cid],
    marks: &Mutex<AnyMarks>,
    stack: &mut Vec<Cid>,
    opts: &mut WalkOpts<'_>,
    stats: &mut WalkStats,
) {
    let mut m = marks.lock();
    for c in cids {
        if is_unitary(c) {
            continue;
        }
        let key = BlockKey::of(c);
        if m.mark(key.as_bytes()) {
            stats.marked += 1;
            if may_have_links(c) {
                stack.push(*c);
            }
            if let Some(n) = opts.newly.as_deref_mut() {
                n.push(key);
            }
        }
    }
}

impl<K: Kv, C: Clock> SplitStore<K, C> {
    /// Marks `roots` and everything below them not marked yet.
    pub(crate) async fn walk(
        &self,
        roots: &[Cid],
        marks: &Arc<Mutex<AnyMarks>>,
        mut opts: WalkOpts<'_>,
    ) -> Result<WalkStats, Error> {
        let mut stats = WalkStats::default();
        let mut stack: Vec<Cid> = Vec::new();
        mark_new(roots, marks, &mut stack, &mut opts, &mut stats);
        self.expand(stack, marks, &mut opts, &mut stats).await?;
        Ok(stats)
    }

    /// Loads each block of `stack` (already marked) and marks the unmarked part of its DAG.
    pub(crate) async fn expand(
        &self,
        mut stack: Vec<Cid>,
        marks: &Arc<Mutex<AnyMarks>>,
        opts: &mut WalkOpts<'_>,
        stats: &mut WalkStats,
    ) -> Result<(), Error> {
        let mut children: Vec<Cid> = Vec::new();
        let mut since_yield = 0usize;
        while !stack.is_empty() {
            let take = stack.len().min(WALK_BATCH);
            let chunk: Vec<Cid> = stack.split_off(stack.len() - take);
            let blocks = self.load_many(&chunk).await?;
            children.clear();
            for (cid, bytes) in chunk.iter().zip(blocks) {
                match bytes {
                    None => {
                        if let OnMissing::Fail(context) = opts.on_missing {
                            return Err(Error::MissingBlock { cid: *cid, context });
                        }
                        stats.missing += 1;
                        if stats.missing_cids.len() < MISSING_KEPT {
                            stats.missing_cids.push(*cid);
                        }
                    }
                    Some(bytes) => {
                        stats.loaded += 1;
                        stats.bytes += bytes.len() as u64;
                        if links::for_each_link(&bytes, |l| children.push(l)).is_err() {
                            stats.unreadable += 1;
                        }
                    }
                }
            }
            mark_new(&children, marks, &mut stack, opts, stats);
            since_yield += take;
            if opts.yielding && since_yield >= self.config.yield_every {
                since_yield = 0;
                self.yield_point().await?;
            }
        }
        Ok(())
    }

    /// Fetches blocks from hot, then the misses from cold, in as few calls as possible.
    pub(crate) async fn load_many(&self, cids: &[Cid]) -> Result<Vec<Option<Vec<u8>>>, Error> {
        let keys: Vec<Vec<u8>> = cids.iter().map(|c| BlockKey::of(c).into_bytes()).collect();
        let mut found = self.hot.get_many(Space::Blocks, &keys).await.map_err(|e| self.hot_err(e))?;
        let miss: Vec<usize> = found.iter().enumerate().filter(|(_, v)| v.is_none()).map(|(i, _)| i).collect();
        if !miss.is_empty() {
            let cold_keys: Vec<Vec<u8>> = miss.iter().map(|&i| keys[i].clone()).collect();
            let cold = self.cold.get_many(Space::Blocks, &cold_keys).await.map_err(|e| self.cold_err(e))?;
            for (i, v) in miss.into_iter().zip(cold) {
                found[i] = v;
            }
        }
        Ok(found)
    }
}
