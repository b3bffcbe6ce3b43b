//! Marking: the chain walk from the head, protection of transactional references, and the
//! retries of references that were missing.

use alloc::vec::Vec;

use cid::Cid;

use super::{chain_index::Generation, CompactionReport, Phase, Progress, ProgressSink};
use crate::{
    clock::Clock,
    config::{Boundaries, HeaderRetention},
    error::Error,
    graph::{GraphBuilder, KeptGraph},
    header,
    hot_keys::IndexedKeys,
    key::BlockKey,
    kv::{Kv, Space, WriteBatch},
    live::{Live, LiveRef},
    markset::Marks,
    meta,
    store::SplitStore,
    walk::{GraphUse, OnMissing, WalkOpts},
};

/// Elements of work a kept graph's build does between two yields, per object a walk marks
/// between two: an element (a sort key moved, a node numbered) is a few memory accesses, where
/// marking an object is a mark-set probe and a pass over its links.
const BUILD_STEPS_PER_OBJECT: usize = 64;

/// A compaction's chain walk's use of the kept graph (`crate::graph`).
struct ChainGraph {
    /// The previous compaction's graph with the blocks written since, marked from.
    kept: Option<KeptGraph>,
    /// [`crate::store::state::Shared::graph_drops`] when the walk began.
    drops: u64,
    /// The next graph.
    next: GraphBuilder,
}

/// Roots of DAGs below headers (state, messages, receipts) collected before they are walked
/// together: enough generations for wide reads, few enough to keep the list small.
const ROOTS_PER_WALK: usize = 4096;

/// The most protection passes made alongside the foreground while the backlog halves.
const MAX_YIELDING_PASSES: u32 = 8;

/// Which DAGs below the chain's headers a chain walk marks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ChainPolicy {
    /// A compaction's live set under these boundaries.
    Compaction(Boundaries),
    /// A cold prune's kept set: state of headers at or above `retain_state_from` (of every
    /// header when `None`) and of genesis; messages and receipts of the same headers, or of
    /// every header with `all_messages` (messages mode, whose cold store is the message
    /// archive).
    Prune {
        /// See [`Config::retain_state_from`](crate::Config::retain_state_from).
        retain_state_from: Option<i64>,
        /// Keep the messages and receipts of every header.
        all_messages: bool,
    },
}

impl ChainPolicy {
    /// What a header at `height` keeps, as a pure function.
    pub(crate) fn retention(&self, height: i64) -> HeaderRetention {
        match self {
            ChainPolicy::Compaction(b) => b.retention(height),
            ChainPolicy::Prune { retain_state_from, all_messages } => {
                let retained = retain_state_from.is_none_or(|from| height >= from);
                HeaderRetention { messages: height > 0 && (*all_messages || retained), state: height == 0 || retained }
            }
        }
    }
}

/// The purge a critical section leads to, and so the record it writes.
#[derive(Clone, Copy, Debug)]
pub(crate) enum PurgeOf {
    /// A compaction's purge of the hot store.
    Compaction(Boundaries),
    /// A prune's purge of the cold store.
    Prune {
        /// Height of the head it walked from.
        head: i64,
        /// [`meta::PruneRecord::retain_state_from`].
        retain_state_from: i64,
    },
}

impl<K: Kv, C: Clock> SplitStore<K, C> {
    /// Elements of work a graph build does between two yields.
    pub(crate) fn build_every(&self) -> usize {
        self.config.yield_every.saturating_mul(BUILD_STEPS_PER_OBJECT)
    }

    /// Takes the kept graph and the records of the blocks written since it was built, and
    /// builds them into one graph for a chain walk to mark from. Every write that returned
    /// before this is recorded (the caller's transaction waited for the writes in flight when
    /// it opened); every later one is in the transaction, protected, and recorded for the
    /// next walk.
    async fn take_graph(&self, report: &mut CompactionReport) -> ChainGraph {
        let (kept, written, drops) = {
            let mut s = self.shared.lock();
            let written = self.written.lock().as_mut().map(GraphBuilder::take);
            (s.kept_graph.take(), written, s.graph_drops)
        };
        let kept = match written.filter(|w| w.recorded() > 0) {
            Some(w) => {
                let recorded = w.recorded() as u64;
                let w = match &kept {
                    Some(k) => w.keeping_all(k),
                    None => w,
                };
                match w.build(kept.as_ref(), self.build_every(), || self.clock.yield_now()).await {
                    Some(both) => {
                        report.graph_written = recorded;
                        Some(both)
                    }
                    // Past the limit: the kept graph alone, the written blocks read.
                    None => kept,
                }
            }
            None => kept,
        };
        let next = GraphBuilder::new(self.config.kept_graph_bytes, kept.as_ref());
        ChainGraph { kept, drops, next }
    }

    /// Walks the chain from `head`, one parent generation at a time, marking every header back
    /// to genesis and the tipset-key objects of the head and of every header's parents, and
    /// the DAGs `policy` keeps: for a compaction, state of headers at or above the boundary
    /// and of genesis, messages and receipts at or above the message epoch (in `messages`
    /// mode, old messages and receipts still in the hot store are marked into the returned
    /// cold set); for a prune, see [`ChainPolicy::Prune`].
    ///
    /// A missing header fails the walk unless `lenient_state` is set and another header of
    /// the same generation names the parents (every header of a tipset names the same ones):
    /// the headers below are live, and a walk that stopped there would purge them.
    ///
    /// A compaction outside messages mode stops at the chain index's anchor, if it meets it,
    /// and marks the index's keys instead of walking the headers below; it records the keys of
    /// the generations below its boundaries for the next one (`chain_index`). `indexed` takes
    /// in the keys it marked from the index or recorded into it, for the hot key list.
    pub(crate) async fn mark_chain(
        &self,
        head: &[Cid],
        policy: ChainPolicy,
        live: &LiveRef,
        mut indexed: Option<&mut IndexedKeys>,
        progress: &dyn ProgressSink,
        report: &mut CompactionReport,
    ) -> Result<Option<LiveRef>, Error> {
        let compaction = matches!(policy, ChainPolicy::Compaction(_));
        let cold_marks = (compaction && self.config.mode == crate::Mode::Messages)
            .then(|| Live::shared(self.markset_kind, 0, self.clock.random_seed()));
        // A prune walks state that earlier compactions may have dropped (messages mode) or
        // earlier prunes removed: what is missing is counted.
        let state_missing =
            if self.config.lenient_state || !compaction { OnMissing::Record } else { OnMissing::Fail("state") };
        {
            // A tipset-key object holds no links: marking it unseen loses nothing below it.
            let (tsk, _) = header::tipset_key(head);
            live.lock().marks.mark(BlockKey::of(&tsk).as_bytes());
        }
        let mut generation: Vec<Cid> = head.to_vec();
        let mut headers_seen = 0u64;
        // The DAGs below the headers are walked for many generations at once: one walk over
        // their states reads in batches as wide as the states' union allows.
        let (mut state_roots, mut msg_roots) = (Vec::new(), Vec::new());
        let (mut incomplete, mut walked_cold) = (Vec::new(), Vec::new());
        // Messages mode walks old message DAGs into its cold set, which the index does not hold.
        let mut index = match policy {
            ChainPolicy::Compaction(b) if cold_marks.is_none() => Some(self.chain_indexer(b).await?),
            _ => None,
        };
        // The kept graph serves the same walks as the index: a prune's state may be gone.
        let mut graph = match &index {
            Some(_) if self.config.keeps_graph() => Some(self.take_graph(report).await),
            _ => None,
        };
        progress.report(&Progress { phase: Phase::Mark, done: 0, total: None });
        while !generation.is_empty() {
            self.yield_point().await?;
            generation.sort_unstable();
            generation.dedup();
            let reached = match index.as_ref().filter(|ix| ix.meets(&generation)) {
                Some(ix) => self.mark_from_chain_index(ix, live, indexed.as_deref_mut(), state_missing, report).await?,
                None => None,
            };
            if let (Some(reached), Some(ix)) = (reached, index.as_mut()) {
                ix.met();
                report.chain_index_keys = reached.keys;
                headers_seen += reached.keys;
                progress.report(&Progress { phase: Phase::Mark, done: headers_seen, total: None });
                break;
            }
            let blocks = self.load_many(&generation).await?;
            let mut next: Vec<Cid> = Vec::new();
            let mut cold_roots = Vec::new();
            let mut last_parents: Option<Vec<Cid>> = None;
            let mut parents_agree = true;
            let mut missing_header = None;
            let mut marked_keys = Vec::with_capacity(generation.len() + 1);
            let (mut max_height, mut genesis_state) = (i64::MIN, Vec::new());
            for (cid, bytes) in generation.iter().zip(blocks) {
                let Some(bytes) = bytes else {
                    missing_header.get_or_insert(*cid);
                    report.missing += 1;
                    continue;
                };
                let h = header::decode(&bytes).map_err(|source| Error::BadHeader { cid: *cid, source })?;
                headers_seen += 1;
                {
                    let mut l = live.lock();
                    let key = BlockKey::of(cid);
                    l.marks.mark(key.as_bytes());
                    marked_keys.push(key);
                    if !h.parents.is_empty() && last_parents.as_ref() != Some(&h.parents) {
                        let (tsk, _) = header::tipset_key(&h.parents);
                        let key = BlockKey::of(&tsk);
                        l.marks.mark(key.as_bytes());
                        marked_keys.push(key);
                    }
                }
                max_height = max_height.max(h.height);
                if h.height == 0 {
                    genesis_state.push(h.parent_state_root);
                }
                let keep = policy.retention(h.height);
                if keep.messages {
                    msg_roots.push(h.messages);
                    msg_roots.push(h.parent_message_receipts);
                } else if h.height > 0 && cold_marks.is_some() {
                    cold_roots.push(h.messages);
                    cold_roots.push(h.parent_message_receipts);
                }
                if keep.state {
                    state_roots.push(h.parent_state_root);
                }
                if h.height > 0 {
                    next.extend_from_slice(&h.parents);
                }
                parents_agree &= last_parents.as_ref().is_none_or(|p| *p == h.parents);
                last_parents = Some(h.parents);
            }
            if let Some(cid) = missing_header {
                if !self.config.lenient_state || last_parents.is_none() || !parents_agree {
                    return Err(Error::MissingBlock { cid, context: "header" });
                }
            }
            if let Some(cm) = &cold_marks {
                // Old message DAGs whose root already left the hot store were moved whole by an
                // earlier compaction: skip them instead of re-walking history every time. A
                // DAG found with blocks missing is walked again by the next compactions.
                let keys: Vec<Vec<u8>> = cold_roots.iter().map(|c| BlockKey::of(c).into_bytes()).collect();
                let present = self.hot.get_many(Space::Blocks, &keys).await.map_err(|e| self.hot_err(e))?;
                let roots: Vec<Cid> =
                    cold_roots.iter().zip(present).filter(|(_, p)| p.is_some()).map(|(c, _)| *c).collect();
                let s = self.walk(&roots, cm, WalkOpts::compaction(OnMissing::Record, None)).await?;
                report.unreadable += s.unreadable;
                if s.missing > 0 {
                    incomplete.extend(roots.iter().copied());
                }
                walked_cold.extend(roots);
            }
            if let Some(ix) = index.as_mut() {
                let complete = missing_header.is_none();
                let keys = indexed.is_some().then(|| marked_keys.clone());
                let g = Generation { cids: &generation, keys: marked_keys, max_height, genesis_state, complete };
                self.write_chain_chunks(ix.after_generation(g)).await?;
                if let (Some(x), Some(keys), true) = (indexed.as_deref_mut(), keys, ix.recording()) {
                    x.recorded(&keys);
                }
            }
            if state_roots.len() + msg_roots.len() >= ROOTS_PER_WALK {
                self.walk_below_headers(&mut state_roots, &mut msg_roots, state_missing, graph.as_mut(), live, report)
                    .await?;
            }
            progress.report(&Progress { phase: Phase::Mark, done: headers_seen, total: None });
            generation = next;
        }
        self.walk_below_headers(&mut state_roots, &mut msg_roots, state_missing, graph.as_mut(), live, report).await?;
        if let Some(ChainGraph { kept, drops, next }) = graph {
            let built = next.build(kept.as_ref(), self.build_every(), || self.clock.yield_now()).await;
            drop(kept);
            report.graph_objects = built.as_ref().map_or(0, |g| g.len() as u64);
            report.graph_bytes = built.as_ref().map_or(0, |g| g.bytes() as u64);
            let mut s = self.shared.lock();
            if s.graph_drops == drops {
                s.kept_graph = built;
            }
        }
        if let Some(ix) = index {
            if self.finish_chain_index(ix).await? {
                if let Some(x) = indexed {
                    x.anchored();
                }
            }
        }
        if let Some(cm) = &cold_marks {
            self.walk_incomplete(cm, &walked_cold, &mut incomplete, report).await?;
        }
        Ok(cold_marks)
    }

    /// Walks and empties the roots of state and of messages and receipts the chain walk
    /// collected.
    async fn walk_below_headers(
        &self,
        state_roots: &mut Vec<Cid>,
        msg_roots: &mut Vec<Cid>,
        state_missing: OnMissing,
        mut graph: Option<&mut ChainGraph>,
        live: &LiveRef,
        report: &mut CompactionReport,
    ) -> Result<(), Error> {
        fn opts(on_missing: OnMissing, graph: Option<&mut ChainGraph>) -> WalkOpts<'_> {
            match graph {
                Some(g) => WalkOpts::chain(on_missing, GraphUse { kept: g.kept.as_ref(), record: &mut g.next }),
                None => WalkOpts::compaction(on_missing, None),
            }
        }
        let s = self.walk(state_roots, live, opts(state_missing, graph.as_deref_mut())).await?;
        report.missing += s.missing;
        report.unreadable += s.unreadable;
        report.graph_marked += s.graph_marked;
        report.loaded_below_headers += s.loaded;
        // Messages may arrive after the header that names them: a missing one is left
        // unmarked, and its write protects it.
        let s = self.walk(msg_roots, live, opts(OnMissing::Record, graph)).await?;
        report.missing += s.missing;
        report.unreadable += s.unreadable;
        report.graph_marked += s.graph_marked;
        report.loaded_below_headers += s.loaded;
        state_roots.clear();
        msg_roots.clear();
        Ok(())
    }

    /// Messages mode: walks again, one by one, the old message DAG roots earlier compactions
    /// copied to cold while part of them was missing (those still hot were walked with their
    /// tipset), then keeps for the purge record which roots are still incomplete.
    /// A block of such a DAG that arrived since is in the hot store: walking it into the cold
    /// set copies it to cold before the purge, as the reference's walk of every old message
    /// DAG would.
    async fn walk_incomplete(
        &self,
        cold_marks: &LiveRef,
        walked: &[Cid],
        incomplete: &mut Vec<Cid>,
        report: &mut CompactionReport,
    ) -> Result<(), Error> {
        let carried = match self.hot.get(Space::Meta, meta::INCOMPLETE).await.map_err(|e| self.hot_err(e))? {
            Some(b) => meta::IncompleteRoots::decode(&b)?.cids,
            None => Vec::new(),
        };
        for root in carried.into_iter().filter(|r| !walked.contains(r)) {
            let s = self.walk(&[root], cold_marks, WalkOpts::compaction(OnMissing::Record, None)).await?;
            report.unreadable += s.unreadable;
            if s.missing > 0 {
                incomplete.push(root);
            }
        }
        incomplete.sort_unstable();
        incomplete.dedup();
        if let Some(t) = self.shared.lock().txn.as_mut() {
            t.incomplete = Some(core::mem::take(incomplete));
        }
        Ok(())
    }

    /// Marks the DAGs of the transactional references: on return every reference recorded
    /// before its last look at the set is protected. With `remove_dead` (after collect) every
    /// newly marked object's dead-list entry is deleted in the same pass, so the durable dead
    /// list never names a live object.
    ///
    /// With `yielding` on, the foreground keeps running and recording references, so the set
    /// need never become empty by itself: a writer as fast as a pass refills it during each
    /// pass. Passes alongside the foreground therefore stop once one no longer halves the
    /// backlog, or after [`MAX_YIELDING_PASSES`]; what is left is protected by one pass under
    /// the exclusive lock, which holds the foreground back for as long as it takes to protect
    /// what the foreground recorded during the last pass. The work of a call is bounded by the
    /// references recorded before and during it, whatever the foreground's pace.
    ///
    /// With `yielding` off the caller holds the exclusive lock and the walk never pauses.
    pub(crate) async fn protect_txn_refs(
        &self,
        live: &LiveRef,
        remove_dead: bool,
        yielding: bool,
    ) -> Result<u64, Error> {
        if !yielding {
            return self.protect_passes(live, remove_dead, false).await;
        }
        let mut protected = self.protect_passes(live, remove_dead, true).await?;
        let left = self.shared.lock().txn.as_ref().is_some_and(|t| !t.refs.is_empty());
        if left {
            let _exclusive = self.txn_lock.write().await;
            protected += self.protect_passes(live, remove_dead, false).await?;
        }
        Ok(protected)
    }

    /// Protection passes: each drains the references recorded so far and marks their DAGs.
    /// With `yielding` they stop as [`SplitStore::protect_txn_refs`] describes and may leave
    /// references recorded. Without it the caller holds the exclusive lock, which every API
    /// call that records a reference holds shared, so none is recorded meanwhile and the set is
    /// empty on return.
    async fn protect_passes(&self, live: &LiveRef, remove_dead: bool, yielding: bool) -> Result<u64, Error> {
        let mut protected = 0u64;
        let mut passes = 0u32;
        let mut previous = usize::MAX;
        loop {
            let refs: Vec<Cid> = match self.shared.lock().txn.as_mut() {
                Some(t) if !t.refs.is_empty() => t.refs.drain().collect(),
                _ => break,
            };
            let drained = refs.len();
            protected += drained as u64;
            let missing = self.mark_late(&refs, live, remove_dead, yielding).await?;
            if let Some(t) = self.shared.lock().txn.as_mut() {
                t.missing.extend(missing);
            }
            passes += 1;
            if yielding && (drained.saturating_mul(2) > previous || passes >= MAX_YIELDING_PASSES) {
                break;
            }
            previous = drained;
        }
        Ok(protected)
    }

    /// Marks `roots` and their DAGs; with `remove_dead` writes the dead-list deletions of
    /// every newly marked object. Returns the missing CIDs met.
    pub(crate) async fn mark_late(
        &self,
        roots: &[Cid],
        live: &LiveRef,
        remove_dead: bool,
        yielding: bool,
    ) -> Result<Vec<Cid>, Error> {
        let mut newly = Vec::new();
        let opts = WalkOpts { yielding, ..WalkOpts::compaction(OnMissing::Record, Some(&mut newly)) };
        let stats = self.walk(roots, live, opts).await?;
        if remove_dead {
            self.revive_all(&newly).await?;
        }
        Ok(stats.missing_cids)
    }

    /// Writes the list changes of objects marked live after collect, in batches.
    async fn revive_all(&self, keys: &[BlockKey]) -> Result<(), Error> {
        for chunk in keys.chunks(self.config.batch_size) {
            let mut batch = WriteBatch::with_capacity(chunk.len());
            batch.maintenance();
            for k in chunk {
                self.revive(&mut batch, k.as_bytes());
            }
            self.hot.write(batch).await.map_err(|e| self.hot_err(e))?;
        }
        Ok(())
    }

    /// Adds to `batch` the list changes of an object marked live after collect: it leaves the
    /// dead list (it is not purged). In universal mode it leaves the cold list too (only dead
    /// blocks are copied there); in messages mode the cold list holds old message DAGs, which
    /// are copied whole whatever stays hot (invariant I7).
    fn revive(&self, batch: &mut WriteBatch, key: &[u8]) {
        batch.delete(Space::Dead, key);
        if self.config.mode != crate::Mode::Messages {
            batch.delete(Space::ColdList, key);
        }
    }

    /// Gives references that were missing while protecting more chances to appear, on the
    /// reference's schedule ([`Config::missing_retry_waits`](crate::Config::missing_retry_waits)):
    /// each walk waits its turn, then walks what is still missing; what appears has its DAG
    /// marked. What is missing after the last walk is counted.
    pub(crate) async fn retry_missing(
        &self,
        live: &LiveRef,
        progress: &dyn ProgressSink,
        report: &mut CompactionReport,
    ) -> Result<(), Error> {
        let waits: Vec<u64> = self.config.missing_retry_waits().collect();
        for (attempt, wait) in waits.into_iter().enumerate() {
            let missing: Vec<Cid> = match self.shared.lock().txn.as_mut() {
                Some(t) if !t.missing.is_empty() => core::mem::take(&mut t.missing),
                _ => return Ok(()),
            };
            progress.report(&Progress { phase: Phase::Retry, done: attempt as u64, total: Some(missing.len() as u64) });
            if wait > 0 {
                self.clock.sleep(wait).await;
                self.yield_point().await?;
            }
            // Missing references were left unmarked: walk them again.
            let mut newly = Vec::new();
            let stats = self.walk(&missing, live, WalkOpts::compaction(OnMissing::Record, Some(&mut newly))).await?;
            self.revive_all(&newly).await?;
            if let Some(t) = self.shared.lock().txn.as_mut() {
                t.missing.extend(stats.missing_cids);
            }
        }
        // Still missing after the last walk (or never walked, with no walks configured).
        let left = self.shared.lock().txn.as_mut().map_or(0, |t| core::mem::take(&mut t.missing).len());
        report.missing += left as u64;
        Ok(())
    }

    /// Enters the critical section: from here the mark set decides what exists, and the purge
    /// record is made durable (with every dead-list deletion before it) before any block is
    /// deleted.
    pub(crate) async fn enter_critical(
        &self,
        purge: PurgeOf,
        live: &LiveRef,
        progress: &dyn ProgressSink,
        report: &mut CompactionReport,
    ) -> Result<(), Error> {
        progress.report(&Progress { phase: Phase::Critical, done: 0, total: None });
        report.protected_refs += self.protect_txn_refs(live, true, true).await?;
        {
            let _exclusive = self.txn_lock.write().await;
            if let Some(t) = self.shared.lock().txn.as_mut() {
                t.critical = true;
            }
            // References recorded since the first call are protected under the lock, where
            // none can be recorded: none is left unprotected when the flag is set.
            report.protected_refs += self.protect_txn_refs(live, true, false).await?;
            let (marked, dead) = (live.lock().marks.len() as u64, report.dead);
            match purge {
                PurgeOf::Compaction(boundaries) => {
                    let record = meta::PurgeRecord { boundaries, marked, dead };
                    self.purge_issued(|t| t.purge = Some(record));
                    self.write_purge_record(&record).await?;
                }
                PurgeOf::Prune { head, retain_state_from } => {
                    let record = meta::PruneRecord { head, retain_state_from, marked, dead };
                    self.purge_issued(|t| t.prune = Some(record));
                    self.write_prune_record(&record).await?;
                }
            }
        }
        Ok(())
    }

    /// Records in memory that a purge's record is about to be written: from here on the purge
    /// may be finished by recovery, so the store stays in its critical section until it is.
    fn purge_issued(&self, keep: impl FnOnce(&mut crate::store::state::Txn)) {
        let mut s = self.shared.lock();
        s.purge_pending = true;
        if let Some(t) = s.txn.as_mut() {
            keep(t);
        }
    }

    /// Writes a prune's record strictly: it and every write before it (the dead-list
    /// deletions of every object marked after collect) are durable on return.
    pub(crate) async fn write_prune_record(&self, record: &meta::PruneRecord) -> Result<(), Error> {
        let mut batch = WriteBatch::new();
        batch.maintenance();
        batch.put(Space::Meta, meta::PRUNE, record.encode()).strict();
        self.hot.write(batch).await.map_err(|e| self.hot_err(e))
    }

    /// Writes the purge record strictly: it and every write before it are durable on return.
    /// In messages mode the same batch records the old message DAGs this compaction copies to
    /// cold incomplete: from the moment deletions may begin (and so for a purge that recovery
    /// finishes), the next compaction must walk them again.
    pub(crate) async fn write_purge_record(&self, record: &meta::PurgeRecord) -> Result<(), Error> {
        let incomplete = self.shared.lock().txn.as_ref().and_then(|t| t.incomplete.clone());
        let mut batch = WriteBatch::new();
        batch.maintenance();
        batch.put(Space::Meta, meta::PURGE, record.encode()).strict();
        match incomplete {
            Some(cids) if cids.is_empty() => {
                batch.delete(Space::Meta, meta::INCOMPLETE);
            }
            Some(cids) => {
                batch.put(Space::Meta, meta::INCOMPLETE, meta::IncompleteRoots { cids }.encode());
            }
            None => {}
        }
        self.hot.write(batch).await.map_err(|e| self.hot_err(e))
    }
}
