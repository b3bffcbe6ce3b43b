//! Iterative DAG walks over the store, batched for the backends.
//!
//! **A DAG-CBOR object is marked only once its block has been loaded** (the reference's occurs
//! check): an object absent when a walk meets it stays unmarked, so whenever it is written
//! later, during the same compaction, the write's own protection (a transactional reference,
//! or the critical-section write's walk) finds it unmarked and walks its whole DAG. Hence,
//! outside the walk in progress, a marked DAG-CBOR object has had its DAG walked: every child
//! present at that time is marked too. Leaves (other codecs) have nothing below them and are
//! marked without being loaded. The one exception is a compaction's chain walk with the kept
//! graph (`crate::graph`): it marks an object the previous walk loaded from the links that walk
//! recorded, and with it the whole DAG they name, so the rule above holds of what it marks.
//!
//! A walk never descends below an object that was already marked, except, in the critical
//! section, below an unsettled one, and never marks nor descends into a block the purge's
//! write in flight deletes: it counts as missing (see [`crate::live`]). The work list is an
//! explicit stack, so a deep DAG costs heap, not call stack. Blocks are fetched with `get_many`,
//! hot first and cold for the misses, [`Capabilities::read_batch`](crate::kv::Capabilities) at a
//! time, each batch's read overlapping the work on the one before.

use alloc::vec::Vec;
use core::{cmp::Ordering, hash::BuildHasherDefault};

use crate::sync::Mutex;
use cid::Cid;
use hashbrown::HashSet;
use siphasher::sip::SipHasher13;

use crate::{
    clock::Clock,
    error::Error,
    graph::{GraphBuilder, KeptGraph, Link},
    key::{is_unitary, may_have_links, BlockKey, KeyBuf},
    kv::{Kv, Space},
    links,
    live::Live,
    markset::Marks,
    store::SplitStore,
};

/// Blocks fetched per backend call by the walks of warmup and of the store's reports.
pub(crate) const WALK_BATCH: usize = 512;
/// Missing CIDs remembered per walk (the count is always exact).
const MISSING_KEPT: usize = 256;

/// The first eight digest bytes of `c`, as a number: the walks' order looks at these first.
fn prefix(c: &Cid) -> u64 {
    let d = c.hash().digest();
    let mut p = [0u8; 8];
    let n = d.len().min(8);
    p[..n].copy_from_slice(&d[..n]);
    u64::from_be_bytes(p)
}

/// The walks' order on CIDs: by the first eight digest bytes, then in full. It groups equal
/// CIDs (for `dedup`), and for hashes of one code it is the order of their keys, in which a
/// backend reads a batch fastest; most comparisons look at one word.
fn walk_order(a: &Cid, b: &Cid) -> Ordering {
    prefix(a).cmp(&prefix(b)).then_with(|| a.cmp(b))
}

/// Puts `cids` in [`walk_order`] without duplicates. The sort moves 16-byte (prefix, index)
/// pairs, not the CIDs, which are copied once, in order.
fn sort_dedup(cids: &mut Vec<Cid>) {
    let mut order: Vec<(u64, u32)> = cids.iter().enumerate().map(|(i, c)| (prefix(c), i as u32)).collect();
    order.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| cids[a.1 as usize].cmp(&cids[b.1 as usize])));
    let mut sorted: Vec<Cid> = Vec::with_capacity(order.len());
    for (_, i) in order {
        let c = cids[i as usize];
        if sorted.last() != Some(&c) {
            sorted.push(c);
        }
    }
    *cids = sorted;
}

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
    /// Objects newly marked from the kept graph, without a read.
    pub graph_marked: u64,
}

/// A compaction walk's use of the kept graph: the graph to mark from, and the builder of the
/// next one, which records every object the walk loads or marks from the graph.
pub(crate) struct GraphUse<'a> {
    pub kept: Option<&'a KeptGraph>,
    pub record: &'a mut GraphBuilder,
}

/// How a walk reports and yields.
pub(crate) struct WalkOpts<'a> {
    pub on_missing: OnMissing,
    /// Receives the key of every object whose dead-list entry the caller must delete: each one
    /// newly marked, and in a critical walk each unsettled one walked through.
    pub revive: Option<&'a mut Vec<BlockKey>>,
    /// Call the store's yield point (pause while out of sync, stop when closing).
    pub yielding: bool,
    /// A walk in the critical section by a writer (or by the purge for vanished writers):
    /// new marks are unsettled, and unsettled objects are walked through.
    pub critical: bool,
    /// A compaction's chain walk: marks from, and records, the kept graph.
    pub graph: Option<GraphUse<'a>>,
}

impl<'a> WalkOpts<'a> {
    /// A walk of the compaction's own, before the critical section.
    pub fn compaction(on_missing: OnMissing, revive: Option<&'a mut Vec<BlockKey>>) -> Self {
        WalkOpts { on_missing, revive, yielding: true, critical: false, graph: None }
    }

    /// A compaction's walk below the chain's headers, with the kept graph.
    pub fn chain(on_missing: OnMissing, graph: GraphUse<'a>) -> Self {
        WalkOpts { on_missing, revive: None, yielding: true, critical: false, graph: Some(graph) }
    }

    /// A critical-section walk: records missing blocks, never yields.
    pub fn critical(revive: &'a mut Vec<BlockKey>) -> Self {
        WalkOpts { on_missing: OnMissing::Record, revive: Some(revive), yielding: false, critical: true, graph: None }
    }
}

type KeySet = HashSet<Vec<u8>, BuildHasherDefault<SipHasher13>>;

/// A batch of a walk and its blocks as read (`None`: in neither store).
type Loaded = (Vec<Cid>, Vec<Option<Vec<u8>>>);

/// One walk's state: what to load next, and what it has reported.
struct Walk<'a> {
    opts: WalkOpts<'a>,
    stats: WalkStats,
    /// DAG-CBOR objects to load.
    stack: Vec<Cid>,
    /// Nodes of the kept graph to mark from it.
    known: Vec<u32>,
    /// Critical walks: objects this walk marked or walked through, so each is reported and
    /// descended into once.
    through: KeySet,
}

impl<'a> Walk<'a> {
    fn new(opts: WalkOpts<'a>) -> Self {
        Walk { opts, stats: WalkStats::default(), stack: Vec::new(), known: Vec::new(), through: KeySet::default() }
    }

    fn report(&mut self, key: &KeyBuf) {
        if let Some(r) = self.opts.revive.as_deref_mut() {
            r.push(key.to_block_key());
        }
    }

    /// Marks `cid`, whose block is present (or being written). True when the walk must go
    /// below it: it was not marked, or (critical walk) it is unsettled and not walked through
    /// yet.
    fn claim(&mut self, live: &mut Live, cid: &Cid) -> bool {
        self.claim_key(live, &KeyBuf::of(cid), Some(cid))
    }

    /// [`Walk::claim`] by key; `cid` names it, and must be given in a critical walk.
    fn claim_key(&mut self, live: &mut Live, key: &KeyBuf, cid: Option<&Cid>) -> bool {
        // A block the purge's write in flight deletes is as good as gone (see `crate::live`).
        if live.purging_key(key) {
            return false;
        }
        if live.marks.mark(key.as_bytes()) {
            self.stats.marked += 1;
            if self.opts.critical {
                let cid = cid.expect("a critical walk claims by CID");
                live.unsettled.insert(key.as_bytes().to_vec(), *cid);
                self.through.insert(key.as_bytes().to_vec());
            }
            self.report(key);
            true
        } else if self.opts.critical
            && live.unsettled.contains_key(key.as_bytes())
            && self.through.insert(key.as_bytes().to_vec())
        {
            self.report(key);
            true
        } else {
            false
        }
    }

    /// Takes `cids` into the walk: leaves are claimed at once; DAG-CBOR objects the walk may
    /// need to go below are queued for loading (they are claimed once loaded).
    fn offer(&mut self, live: &mut Live, cids: &[Cid]) {
        for c in cids {
            if self.needs_loading(live, c) {
                self.stack.push(*c);
            }
        }
    }

    /// True when `cid` is a DAG-CBOR object the walk may need to go below (see
    /// [`Walk::wants`]) and must read; a leaf is claimed at once instead, and an object the
    /// kept graph knows is queued to be marked from it.
    fn needs_loading(&mut self, live: &mut Live, cid: &Cid) -> bool {
        if is_unitary(cid) {
            return false;
        }
        if !may_have_links(cid) {
            self.claim(live, cid);
            return false;
        }
        if !self.wants(live, cid) {
            return false;
        }
        match self.opts.graph.as_ref().and_then(|g| g.kept?.find(cid)) {
            Some(i) => {
                self.known.push(i);
                false
            }
            None => true,
        }
    }

    /// Marks up to `n` queued nodes of the kept graph and what lies below them, as a walk
    /// that loaded each would: a node marked already is not gone below; a link is taken in
    /// as the link of a loaded block is. Returns the nodes taken off the queue.
    fn mark_known(&mut self, live: &Mutex<Live>, n: usize) -> usize {
        let Some(GraphUse { kept: Some(kept), .. }) = self.opts.graph else {
            self.known.clear();
            return 0;
        };
        let mut l = live.lock();
        let mut done = 0;
        while done < n {
            let Some(i) = self.known.pop() else { break };
            done += 1;
            // Marked from the graph already (by this walk or an earlier one of the chain's).
            if self.opts.graph.as_ref().is_some_and(|g| g.record.is_reused(i)) {
                continue;
            }
            if !self.claim_key(&mut l, &kept.key(i), None) {
                continue;
            }
            self.stats.graph_marked += 1;
            if let Some(g) = self.opts.graph.as_mut() {
                g.record.reuse(i);
            }
            for link in kept.links(i) {
                match link {
                    Link::Known(j) => self.known.push(j),
                    Link::Leaf(j) => {
                        self.claim_key(&mut l, &kept.key(j), None);
                    }
                    Link::Cid(c) => {
                        if self.needs_loading(&mut l, &c) {
                            self.stack.push(c);
                        }
                    }
                }
            }
        }
        done
    }

    /// True when the walk must load DAG-CBOR object `cid`: it is not marked, or (critical
    /// walk) it is unsettled and not walked through yet.
    fn wants(&self, live: &Live, cid: &Cid) -> bool {
        let key = KeyBuf::of(cid);
        !live.marks.contains(key.as_bytes())
            || (self.opts.critical
                && live.unsettled.contains_key(key.as_bytes())
                && !self.through.contains(key.as_bytes()))
    }

    fn missing(&mut self, cid: &Cid) -> Result<(), Error> {
        if let OnMissing::Fail(context) = self.opts.on_missing {
            return Err(Error::MissingBlock { cid: *cid, context });
        }
        self.stats.missing += 1;
        if self.stats.missing_cids.len() < MISSING_KEPT {
            self.stats.missing_cids.push(*cid);
        }
        Ok(())
    }

    /// Up to `n` queued objects, in [`walk_order`], each once, without those claimed since they
    /// were queued (several parents may queue one child before it is loaded). Empty only when
    /// nothing is queued.
    fn take_batch(&mut self, live: &Mutex<Live>, n: usize) -> Vec<Cid> {
        loop {
            let take = self.stack.len().min(n);
            let mut chunk = self.stack.split_off(self.stack.len() - take);
            sort_dedup(&mut chunk);
            let l = live.lock();
            chunk.retain(|c| self.wants(&l, c));
            if !chunk.is_empty() || self.stack.is_empty() {
                return chunk;
            }
        }
    }

    /// Claims the present objects of a loaded batch and queues what lies below those it
    /// claimed, except what `in_flight` (in [`walk_order`]: the batch being read meanwhile)
    /// holds.
    fn take_in(
        &mut self,
        live: &Mutex<Live>,
        chunk: &[Cid],
        blocks: &[Option<Vec<u8>>],
        in_flight: &[Cid],
    ) -> Result<(), Error> {
        let mut below: Vec<(&Cid, &[u8])> = Vec::with_capacity(blocks.len());
        {
            let mut l = live.lock();
            for (cid, bytes) in chunk.iter().zip(blocks) {
                match bytes {
                    Some(_) if l.purging_cid(cid) => self.missing(cid)?,
                    Some(b) if self.claim(&mut l, cid) => below.push((cid, b)),
                    Some(_) => {}
                    None => self.missing(cid)?,
                }
            }
        }
        let mut children = Vec::new();
        for (cid, b) in below {
            let start = children.len();
            self.scan(b, &mut children);
            if let Some(g) = self.opts.graph.as_mut() {
                g.record.record(cid, &children[start..]);
            }
        }
        // Links to objects already marked (often the same few, from many parents) are dropped
        // before the sort, which then orders only what may need loading.
        {
            let mut l = live.lock();
            children.retain(|c| self.needs_loading(&mut l, c));
        }
        sort_dedup(&mut children);
        // Both in walk order: one merged pass.
        let mut flying = in_flight.iter().peekable();
        children.retain(|c| {
            while flying.next_if(|f| walk_order(f, c) == Ordering::Less).is_some() {}
            flying.peek() != Some(&c)
        });
        self.stack.extend(children);
        Ok(())
    }

    /// Appends the links of a block the walk goes below.
    fn scan(&mut self, bytes: &[u8], children: &mut Vec<Cid>) {
        self.stats.loaded += 1;
        self.stats.bytes += bytes.len() as u64;
        // A malformed block is kept with the links readable before the damage (docs/design.md).
        if links::for_each_link(bytes, |l| children.push(l)).is_err() {
            self.stats.unreadable += 1;
        }
    }
}

impl<K: Kv, C: Clock> SplitStore<K, C> {
    /// Marks `roots` and everything below them not marked yet.
    pub(crate) async fn walk(&self, roots: &[Cid], live: &Mutex<Live>, opts: WalkOpts<'_>) -> Result<WalkStats, Error> {
        let mut w = Walk::new(opts);
        w.offer(&mut live.lock(), roots);
        self.run(&mut w, live).await?;
        Ok(w.stats)
    }

    /// Marks blocks about to be written (their bytes are in hand, so they are not loaded) and
    /// everything below them not marked yet.
    pub(crate) async fn walk_written(
        &self,
        blocks: &[(Cid, Vec<u8>)],
        live: &Mutex<Live>,
        opts: WalkOpts<'_>,
    ) -> Result<WalkStats, Error> {
        let mut w = Walk::new(opts);
        let below: Vec<&(Cid, Vec<u8>)> = {
            let mut l = live.lock();
            blocks.iter().filter(|(c, _)| !is_unitary(c) && w.claim(&mut l, c)).collect()
        };
        let mut children = Vec::new();
        for (c, bytes) in below {
            if may_have_links(c) {
                w.scan(bytes, &mut children);
            }
        }
        w.offer(&mut live.lock(), &children);
        self.run(&mut w, live).await?;
        Ok(w.stats)
    }

    /// Loads the queued objects a batch at a time, claims the present ones, and queues what
    /// lies below those it claimed, until nothing is queued.
    ///
    /// The reads of one batch overlap the work on the previous one (claims and link scans):
    /// the next batch is taken from the queue before the previous one's children join it. A
    /// backend whose reads complete on other threads (or in the browser's storage process)
    /// then keeps reading while the walk works. A child found in the batch being read is not
    /// queued again: that batch claims it, or counts it missing, as a later batch would.
    async fn run(&self, w: &mut Walk<'_>, live: &Mutex<Live>) -> Result<(), Error> {
        let batch = self.hot.capabilities().read_batch.max(1);
        let mut loaded: Option<Loaded> = None;
        let mut since_yield = 0usize;
        loop {
            // Objects the kept graph knows are marked from it, a yield's worth at a time.
            while !w.known.is_empty() {
                since_yield += w.mark_known(live, self.config.yield_every);
                if w.opts.yielding && since_yield >= self.config.yield_every {
                    since_yield = 0;
                    self.yield_point().await?;
                }
            }
            let next = w.take_batch(live, batch);
            let done = match (loaded.take(), next.is_empty()) {
                (None, true) => break,
                (None, false) => {
                    let blocks = self.load_many(&next).await?;
                    loaded = Some((next, blocks));
                    continue;
                }
                (Some((chunk, blocks)), true) => {
                    w.take_in(live, &chunk, &blocks, &[])?;
                    chunk.len()
                }
                (Some((chunk, blocks)), false) => {
                    let (read, taken) =
                        futures::future::join(self.load_many(&next), async { w.take_in(live, &chunk, &blocks, &next) })
                            .await;
                    taken?;
                    loaded = Some((next, read?));
                    chunk.len()
                }
            };
            since_yield += done;
            if w.opts.yielding && since_yield >= self.config.yield_every {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{dag_cbor_blake2b_cid, DAG_CBOR, RAW};

    #[test]
    fn sort_dedup_orders_by_walk_order_and_keeps_each_cid_once() {
        // Distinct CIDs, some sharing their first eight digest bytes (and one its whole
        // multihash under two codecs), each present up to three times.
        let mut distinct: Vec<Cid> = (0u8..40).map(|i| dag_cbor_blake2b_cid(&[i])).collect();
        for tail in 0u8..6 {
            let mut digest = [7u8; 32];
            digest[31] = tail;
            let mh = multihash::Multihash::<64>::wrap(crate::key::BLAKE2B_256, &digest).unwrap();
            distinct.push(Cid::new_v1(DAG_CBOR, mh));
            distinct.push(Cid::new_v1(RAW, mh));
        }
        let mut cids: Vec<Cid> = Vec::new();
        for (i, c) in distinct.iter().enumerate() {
            for _ in 0..(i % 3 + 1) {
                cids.push(*c);
            }
        }
        // A fixed shuffle.
        let n = cids.len();
        for i in 0..n {
            cids.swap(i, (i * 7919 + 13) % n);
        }
        sort_dedup(&mut cids);
        assert_eq!(cids.len(), distinct.len());
        assert!(cids.windows(2).all(|w| walk_order(&w[0], &w[1]) == Ordering::Less));
        distinct.sort_unstable_by(walk_order);
        assert_eq!(cids, distinct);
    }
}
