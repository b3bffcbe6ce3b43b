//! Warmup: a store opened with an empty hot store beside a cold one (a node started on an
//! existing archive, or a chain imported into cold) copies, at its first head change, every
//! header back to genesis, the tipset-key objects and one finality of state (with genesis
//! state) from cold into hot, so that the node's reads are hot from the start and the first
//! compaction comes a threshold later rather than at once (the reference's `warmup`).
//!
//! A warmup deletes nothing, so it needs no transaction and no mark set: the node's reads and
//! writes go on as usual, and a compaction waits for it (the `compacting` flag). Each block is
//! copied once: the walk visits each object once, and a block already in hot is not written
//! again. Durability: the record `meta/warmup` says "under way" (strictly, before the first
//! copy) and then "done at epoch E" together with the new base epoch (strictly, after the
//! last). A crash in between leaves the record under way, and the next open's first head
//! change warms again: the walk goes below blocks already in hot (a crash may have kept a
//! parent's copy and lost its children's), so it completes what the first one began.

use alloc::vec::Vec;

use cid::Cid;
use serde::{Deserialize, Serialize};

use super::{CompactionReport, Phase, Plan, Progress, ProgressSink};
use crate::{
    clock::Clock,
    error::Error,
    header,
    key::{is_unitary, may_have_links, BlockKey},
    kv::{Kv, Space, WriteBatch},
    links,
    meta::{self, StoreState, WarmupRecord},
    store::{state::KeySet, SplitStore},
    walk::WALK_BATCH,
};

/// What a warmup copied.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct WarmupReport {
    /// Height of the head it walked from (the store's new base epoch).
    pub head_epoch: i64,
    /// State of headers at or above this height was copied (and genesis state).
    pub state_from: i64,
    /// Headers walked.
    pub headers: u64,
    /// Blocks copied from cold into hot.
    pub copied: u64,
    /// Bytes of those blocks.
    pub bytes: u64,
    /// Blocks already hot, left as they were.
    pub already_hot: u64,
    /// DAG-CBOR blocks found in neither store.
    pub missing: u64,
    /// Milliseconds taken.
    pub ms: u64,
}

impl<K: Kv, C: Clock> SplitStore<K, C> {
    /// Runs a warmup decided by a head change ([`crate::config::Trigger::Warmup`]).
    pub(crate) async fn run_warmup(&self, plan: &Plan, progress: &dyn ProgressSink) -> Result<CompactionReport, Error> {
        self.usable()?;
        let start = self.clock.now_millis();
        let epoch = plan.head.height;
        let mut w = WarmupReport {
            head_epoch: epoch,
            state_from: epoch.saturating_sub(self.config.finality),
            ..WarmupReport::default()
        };
        progress.report(&Progress { phase: Phase::Warmup, done: 0, total: None });
        // Its copies are written outside the hot key list's sight.
        self.drop_hot_keys();
        self.write_warmup(WarmupRecord { epoch, done: false }, None).await?;

        let mut seen = KeySet::default();
        let mut state_roots: Vec<Cid> = Vec::new();
        let (tsk, _) = header::tipset_key(&plan.head.tipset);
        let mut leaves: Vec<Cid> = alloc::vec![tsk];
        let mut generation: Vec<Cid> = plan.head.tipset.clone();
        while !generation.is_empty() {
            self.yield_point().await?;
            generation.sort_unstable();
            generation.dedup();
            generation.retain(|c| seen.insert(BlockKey::of(c).into_bytes()));
            let blocks = self.copy_to_hot(&generation, &mut w).await?;
            let mut next = Vec::new();
            for (cid, bytes) in generation.iter().zip(blocks) {
                let Some(bytes) = bytes else {
                    w.missing += 1;
                    continue;
                };
                let h = header::decode(&bytes).map_err(|source| Error::BadHeader { cid: *cid, source })?;
                w.headers += 1;
                if h.height >= w.state_from || h.height == 0 {
                    state_roots.push(h.parent_state_root);
                }
                if h.height > 0 {
                    leaves.push(header::tipset_key(&h.parents).0);
                    next.extend_from_slice(&h.parents);
                }
            }
            progress.report(&Progress { phase: Phase::Warmup, done: w.copied, total: None });
            generation = next;
        }
        // Tipset-key objects hold no links; they are copied when cold has them.
        leaves.sort_unstable();
        leaves.dedup();
        leaves.retain(|c| seen.insert(BlockKey::of(c).into_bytes()));
        for chunk in leaves.chunks(WALK_BATCH) {
            self.copy_to_hot(chunk, &mut w).await?;
        }
        self.warm_dags(state_roots, &mut seen, &mut w, progress).await?;

        let state = {
            let s = self.shared.lock();
            StoreState { base_epoch: s.state.base_epoch.max(epoch), ..s.state }
        };
        self.write_warmup(WarmupRecord { epoch, done: true }, Some(state)).await?;
        {
            let mut s = self.shared.lock();
            s.state = state;
            s.warmup_due = false;
            s.warmup_epoch = Some(epoch);
        }
        w.ms = self.clock.now_millis().saturating_sub(start);
        Ok(CompactionReport {
            head_epoch: epoch,
            boundary_epoch: plan.boundaries.boundary,
            include_messages_epoch: plan.boundaries.include_messages,
            phases: alloc::vec![(Phase::Warmup, w.ms)],
            total_ms: w.ms,
            warmup: Some(w),
            ..CompactionReport::default()
        })
    }

    /// Copies the DAGs below `roots` into hot, each object once, going below blocks already
    /// hot too (what an interrupted warmup left may lack its children).
    async fn warm_dags(
        &self,
        mut stack: Vec<Cid>,
        seen: &mut KeySet,
        w: &mut WarmupReport,
        progress: &dyn ProgressSink,
    ) -> Result<(), Error> {
        stack.retain(|c| !is_unitary(c) && seen.insert(BlockKey::of(c).into_bytes()));
        while !stack.is_empty() {
            self.yield_point().await?;
            let chunk = stack.split_off(stack.len().saturating_sub(WALK_BATCH));
            let blocks = self.copy_to_hot(&chunk, w).await?;
            for (cid, bytes) in chunk.iter().zip(blocks) {
                match bytes {
                    Some(b) if may_have_links(cid) => {
                        // Links read before any damage are followed, as a compaction's walk does.
                        let _ = links::for_each_link(&b, |l| {
                            if !is_unitary(&l) && seen.insert(BlockKey::of(&l).into_bytes()) {
                                stack.push(l);
                            }
                        });
                    }
                    Some(_) => {}
                    None if may_have_links(cid) => w.missing += 1,
                    None => {}
                }
            }
            progress.report(&Progress { phase: Phase::Warmup, done: w.copied, total: None });
        }
        Ok(())
    }

    /// Reads `cids` from hot, then from cold what hot lacks, and writes what cold had into hot
    /// in one batch; returns every block found.
    async fn copy_to_hot(&self, cids: &[Cid], w: &mut WarmupReport) -> Result<Vec<Option<Vec<u8>>>, Error> {
        let keys: Vec<Vec<u8>> = cids.iter().map(|c| BlockKey::of(c).into_bytes()).collect();
        let mut found = self.hot.get_many(Space::Blocks, &keys).await.map_err(|e| self.hot_err(e))?;
        let miss: Vec<usize> = (0..keys.len()).filter(|&i| found[i].is_none()).collect();
        w.already_hot += (keys.len() - miss.len()) as u64;
        if miss.is_empty() {
            return Ok(found);
        }
        let wanted: Vec<Vec<u8>> = miss.iter().map(|&i| keys[i].clone()).collect();
        let cold = self.cold.get_many(Space::Blocks, &wanted).await.map_err(|e| self.cold_err(e))?;
        let mut batch = WriteBatch::with_capacity(miss.len());
        for (i, v) in miss.into_iter().zip(cold) {
            if let Some(v) = &v {
                w.copied += 1;
                w.bytes += v.len() as u64;
                batch.put(Space::Blocks, keys[i].clone(), v.clone());
            }
            found[i] = v;
        }
        if !batch.is_empty() {
            self.hot.write(batch).await.map_err(|e| self.hot_err(e))?;
        }
        Ok(found)
    }

    /// Writes the warmup record strictly (with the new state once done): it and every copy
    /// before it are durable on return.
    async fn write_warmup(&self, record: WarmupRecord, state: Option<StoreState>) -> Result<(), Error> {
        let mut batch = WriteBatch::new();
        batch.maintenance();
        batch.put(Space::Meta, meta::WARMUP, record.encode());
        if let Some(state) = state {
            batch.put(Space::Meta, meta::STATE, state.encode());
        }
        batch.strict();
        self.hot.write(batch).await.map_err(|e| self.hot_err(e))
    }
}
