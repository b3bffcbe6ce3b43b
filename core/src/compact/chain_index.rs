//! The chain index: what a compaction's chain walk marks below a final tipset, kept so that the
//! next walk stops there instead of reading every header back to genesis.
//!
//! Below the lower of a compaction's two boundaries, the walk keeps only headers, the
//! tipset-key objects of their parents, and genesis state: no header's messages and no other
//! state. Headers are content-addressed, so from a given generation down the walk marks the
//! same keys every time. The first compaction walks to genesis and writes those keys in chunk
//! records ([`meta::ChainChunk`]), then an anchor ([`meta::ChainIndex`]) naming the generation
//! they start at and the chunk range. A later compaction walks from its head until it meets
//! the anchor's generation, marks the chunks instead (one read per 1,024 keys), and appends the
//! keys of the generations it walked between its own anchor and the old one.
//!
//! Safety rests on three rules:
//! - **The index is used only where the walk would keep nothing else**: the anchor's range
//!   lies wholly below both of this compaction's boundaries, and only in universal and discard
//!   mode (messages mode also walks old message DAGs into its cold set).
//! - **A chunk an anchor names is never overwritten.** New chunks take sequence numbers at or
//!   after the current anchor's end; the anchor is written after them (writes land in order),
//!   and a rebuilt range's old chunks are deleted in the anchor's own batch. A crash anywhere
//!   leaves the previous anchor with its chunks whole, or the new one with its chunks whole;
//!   chunks of a run that never wrote its anchor are deleted by the next anchor's write.
//! - **No index over a hole.** A range in which a header was missing (a lenient walk) is not
//!   recorded: the header may be written later, and a walk must then mark it.
//!
//! Any other case (no anchor, a damaged record or chunk, a head that does not descend from the
//! anchor, an anchor no longer below the boundaries) walks on as if there were no index and
//! records a new one.

use alloc::vec::Vec;

use cid::Cid;

use super::CompactionReport;
use crate::{
    clock::Clock,
    config::Boundaries,
    error::Error,
    hot_keys::IndexedKeys,
    key::BlockKey,
    kv::{Kv, Space, WriteBatch},
    live::LiveRef,
    markset::Marks,
    meta::{self, ChainChunk, ChainIndex, CHAIN_CHUNK_KEYS},
    store::SplitStore,
    walk::{OnMissing, WalkOpts},
};

/// Chunks read per backend round trip while marking from the index.
const CHUNKS_PER_READ: usize = 16;

/// One generation of the walk, as the index needs it.
pub(crate) struct Generation<'a> {
    /// Its header CIDs, sorted and without duplicates.
    pub cids: &'a [Cid],
    /// The keys the walk marked for it: its headers' and their parents' tipset keys.
    pub keys: Vec<BlockKey>,
    /// Greatest height among its headers.
    pub max_height: i64,
    /// State roots of its height-0 headers.
    pub genesis_state: Vec<Cid>,
    /// Every one of its headers was found.
    pub complete: bool,
}

/// The range a walk is recording, from the generation it chose as its anchor down.
#[derive(Debug)]
struct Recording {
    anchor: Vec<Cid>,
    height: i64,
    genesis_state: Vec<Cid>,
    /// Sequence number of the range's first chunk.
    start: u64,
    /// Sequence number of the next chunk to write.
    next: u64,
    /// Keys written or buffered.
    keys: u64,
    buffer: Vec<Vec<u8>>,
}

#[derive(Debug)]
enum Building {
    /// No generation has been wholly below the boundaries yet.
    Waiting,
    Recording(Recording),
    /// A header was missing in the range: nothing is recorded this time.
    Abandoned,
}

/// A compaction walk's use and upkeep of the chain index. The decisions are pure; the caller
/// does the reads and writes they name.
#[derive(Debug)]
pub(crate) struct ChainIndexer {
    /// The stored anchor, if it decoded.
    old: Option<ChainIndex>,
    /// Generations wholly below this height keep only headers, tipset keys and genesis state.
    below: i64,
    building: Building,
    /// The walk marked the stored anchor's chunks instead of walking below it.
    met: bool,
}

/// What marking from the index found.
pub(crate) struct Reached {
    /// Keys marked from the chunks.
    pub keys: u64,
}

impl ChainIndexer {
    /// The index's state for a compaction under `b`, given the stored anchor.
    pub(crate) fn new(old: Option<ChainIndex>, b: Boundaries) -> Self {
        ChainIndexer { old, below: b.include_messages.min(b.boundary), building: Building::Waiting, met: false }
    }

    /// True when the stored anchor can replace the walk from `generation` (sorted, deduplicated) down.
    pub(crate) fn meets(&self, generation: &[Cid]) -> bool {
        self.old.as_ref().is_some_and(|o| o.height < self.below && o.tipset == generation)
    }

    /// Takes in a generation the walk has just marked; returns the full chunks to write now.
    pub(crate) fn after_generation(&mut self, g: Generation<'_>) -> Option<WriteBatch> {
        if matches!(self.building, Building::Waiting) && g.complete && g.max_height < self.below {
            // Chunks are written after the stored range, never over a chunk it names.
            let start = self.old.as_ref().map_or(0, |o| o.end);
            self.building = Building::Recording(Recording {
                anchor: g.cids.to_vec(),
                height: i64::MIN,
                genesis_state: Vec::new(),
                start,
                next: start,
                keys: 0,
                buffer: Vec::with_capacity(CHAIN_CHUNK_KEYS),
            });
        }
        let Building::Recording(r) = &mut self.building else { return None };
        if !g.complete {
            self.building = Building::Abandoned;
            return None;
        }
        r.height = r.height.max(g.max_height);
        r.genesis_state.extend(g.genesis_state);
        r.keys += g.keys.len() as u64;
        r.buffer.extend(g.keys.into_iter().map(BlockKey::into_bytes));
        let mut batch: Option<WriteBatch> = None;
        while r.buffer.len() >= CHAIN_CHUNK_KEYS {
            let rest = r.buffer.split_off(CHAIN_CHUNK_KEYS);
            let keys = core::mem::replace(&mut r.buffer, rest);
            let b = batch.get_or_insert_with(WriteBatch::new);
            b.maintenance();
            b.put(Space::Meta, meta::chain_chunk_key(r.next), ChainChunk { keys }.encode());
            r.next += 1;
        }
        batch
    }

    /// The range the new anchor will name, if this walk records one.
    fn recorded_range(&self) -> Option<(u64, u64)> {
        let Building::Recording(r) = &self.building else { return None };
        let end = r.next + u64::from(!r.buffer.is_empty());
        match &self.old {
            Some(old) if self.met => Some((old.first, end)),
            _ => Some((r.start, end)),
        }
    }

    /// The last write of a walk that reached genesis or the stored anchor
    /// ([`ChainIndexer::met`]): the buffered chunk and the new anchor, with the deletion of
    /// `stale`, the chunk keys outside the new range. `None` when there is nothing new to
    /// record.
    pub(crate) fn finish(self, stale: Vec<Vec<u8>>) -> Option<WriteBatch> {
        let met = self.met;
        let Building::Recording(mut r) = self.building else { return None };
        let mut batch = WriteBatch::new();
        batch.maintenance();
        if !r.buffer.is_empty() {
            batch.put(Space::Meta, meta::chain_chunk_key(r.next), ChainChunk { keys: r.buffer }.encode());
            r.next += 1;
        }
        let anchor = match (met, self.old) {
            (true, Some(old)) => ChainIndex {
                tipset: r.anchor,
                height: r.height.max(old.height),
                genesis_state: old.genesis_state.into_iter().chain(r.genesis_state).collect(),
                first: old.first,
                end: r.next,
                keys: old.keys.saturating_add(r.keys),
            },
            _ => ChainIndex {
                tipset: r.anchor,
                height: r.height,
                genesis_state: r.genesis_state,
                first: r.start,
                end: r.next,
                keys: r.keys,
            },
        };
        for k in stale {
            batch.delete(Space::Meta, k);
        }
        batch.put(Space::Meta, meta::CHAIN_INDEX, anchor.encode());
        Some(batch)
    }

    /// True while the walk records the generations it takes in.
    pub(crate) fn recording(&self) -> bool {
        matches!(self.building, Building::Recording(_))
    }

    /// Records that the walk reached the stored anchor and marked its chunks.
    pub(crate) fn met(&mut self) {
        self.met = true;
    }
}

impl<K: Kv, C: Clock> SplitStore<K, C> {
    /// The chain index's state for a compaction under `b`. A damaged anchor counts as none: the
    /// walk goes to genesis and records a new one.
    pub(crate) async fn chain_indexer(&self, b: Boundaries) -> Result<ChainIndexer, Error> {
        let stored = self.hot.get(Space::Meta, meta::CHAIN_INDEX).await.map_err(|e| self.hot_err(e))?;
        Ok(ChainIndexer::new(stored.and_then(|v| ChainIndex::decode(&v).ok()), b))
    }

    /// Marks every key of the stored anchor's chunks, then walks genesis state. `None` when a
    /// chunk is missing or damaged: the walk then goes on from the anchor's generation, and
    /// what was marked from the chunks is part of what it marks.
    pub(crate) async fn mark_from_chain_index(
        &self,
        ix: &ChainIndexer,
        live: &LiveRef,
        mut indexed: Option<&mut IndexedKeys>,
        state_missing: OnMissing,
        report: &mut CompactionReport,
    ) -> Result<Option<Reached>, Error> {
        let Some(old) = &ix.old else { return Ok(None) };
        let mut marked = 0u64;
        let mut seq = old.first;
        while seq < old.end {
            self.yield_point().await?;
            let upto = old.end.min(seq + CHUNKS_PER_READ as u64);
            let keys: Vec<Vec<u8>> = (seq..upto).map(meta::chain_chunk_key).collect();
            let values = self.hot.get_many(Space::Meta, &keys).await.map_err(|e| self.hot_err(e))?;
            for v in values {
                let Some(keys) = v.as_deref().and_then(|v| ChainChunk::keys_in(v).ok()) else { return Ok(None) };
                {
                    let mut l = live.lock();
                    for k in &keys {
                        l.marks.mark(k);
                    }
                }
                if let Some(x) = indexed.as_deref_mut() {
                    x.marked_from_chunk(&keys);
                }
                marked += keys.len() as u64;
            }
            seq = upto;
        }
        let s = self.walk(&old.genesis_state, live, WalkOpts::compaction(state_missing, None)).await?;
        report.missing += s.missing;
        report.unreadable += s.unreadable;
        Ok(Some(Reached { keys: marked }))
    }

    /// Writes a walk's full chunks.
    pub(crate) async fn write_chain_chunks(&self, batch: Option<WriteBatch>) -> Result<(), Error> {
        match batch {
            Some(b) => self.hot.write(b).await.map_err(|e| self.hot_err(e)),
            None => Ok(()),
        }
    }

    /// Ends a walk's upkeep of the index: writes the new anchor, if the walk recorded a range,
    /// with the deletion of every chunk outside that range (the stored range when it was
    /// rebuilt, and chunks of a walk that never wrote its anchor). True when it wrote one.
    pub(crate) async fn finish_chain_index(&self, ix: ChainIndexer) -> Result<bool, Error> {
        let Some((first, end)) = ix.recorded_range() else { return Ok(false) };
        let (first_key, end_key) = (meta::chain_chunk_key(first), meta::chain_chunk_key(end));
        let mut stale = self.meta_keys(meta::CHAIN_CHUNK_PREFIX).await?;
        stale.retain(|k| *k < first_key || *k >= end_key);
        self.write_chain_chunks(ix.finish(stale)).await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::dag_cbor_blake2b_cid;

    fn cids(tag: &str, n: usize) -> Vec<Cid> {
        let mut v: Vec<Cid> = (0..n).map(|i| dag_cbor_blake2b_cid(alloc::format!("{tag}{i}").as_bytes())).collect();
        v.sort();
        v
    }

    fn generation(cids: &[Cid], height: i64, keys: usize, complete: bool) -> Generation<'_> {
        Generation {
            cids,
            keys: (0..keys).map(|i| BlockKey::of(&dag_cbor_blake2b_cid(&[height as u8, i as u8]))).collect(),
            max_height: height,
            genesis_state: if height == 0 { alloc::vec![cids[0]] } else { Vec::new() },
            complete,
        }
    }

    fn b(head: i64, boundary: i64, include_messages: i64) -> Boundaries {
        Boundaries { head, boundary, include_messages }
    }

    fn puts(batch: &WriteBatch) -> Vec<Vec<u8>> {
        batch
            .ops()
            .iter()
            .filter_map(|op| match op {
                crate::kv::Op::Put { key, .. } => Some(key.clone()),
                _ => None,
            })
            .collect()
    }

    fn anchor_of(batch: &WriteBatch) -> ChainIndex {
        let v = batch
            .ops()
            .iter()
            .find_map(|op| match op {
                crate::kv::Op::Put { key, value, .. } if key == meta::CHAIN_INDEX => Some(value.clone()),
                _ => None,
            })
            .expect("an anchor");
        ChainIndex::decode(&v).expect("decodes")
    }

    #[test]
    fn records_from_the_first_generation_wholly_below_both_boundaries() {
        let gens: Vec<Vec<Cid>> = (0..4).map(|h| cids(&alloc::format!("g{h}"), 2)).collect();
        let mut ix = ChainIndexer::new(None, b(100, 60, 2));
        // Heights 3 and 2 are not below 2 (the message boundary); 1 and 0 are.
        assert!(ix.after_generation(generation(&gens[3], 3, 600, true)).is_none());
        assert!(ix.after_generation(generation(&gens[2], 2, 600, true)).is_none());
        assert!(ix.after_generation(generation(&gens[1], 1, 600, true)).is_none(), "600 keys fill no chunk");
        let full = ix.after_generation(generation(&gens[0], 0, 600, true)).expect("a full chunk");
        assert_eq!(puts(&full), alloc::vec![meta::chain_chunk_key(0)]);
        let last = ix.finish(alloc::vec![meta::chain_chunk_key(7)]).expect("an anchor");
        let a = anchor_of(&last);
        assert_eq!((a.first, a.end, a.keys, a.height), (0, 2, 1200, 1));
        assert_eq!(a.tipset, gens[1]);
        assert_eq!(a.genesis_state, alloc::vec![gens[0][0]]);
        assert_eq!(last.deleted_keys(Space::Meta), alloc::vec![meta::chain_chunk_key(7)]);
    }

    #[test]
    fn a_walk_that_meets_the_anchor_appends_and_one_that_misses_it_rebuilds() {
        let old = ChainIndex {
            tipset: cids("old", 1),
            height: 40,
            genesis_state: cids("genesis", 1),
            first: 3,
            end: 8,
            keys: 5000,
        };
        let top = cids("top", 2);
        let bounds = b(200, 120, 100);
        assert!(!ChainIndexer::new(Some(old.clone()), b(80, 40, 40)).meets(&old.tipset), "not below");
        let mut ix = ChainIndexer::new(Some(old.clone()), bounds);
        assert!(ix.meets(&old.tipset) && !ix.meets(&top));
        assert!(ix.after_generation(generation(&top, 90, 10, true)).is_none());
        ix.met();
        assert_eq!(ix.recorded_range(), Some((3, 9)));
        let a = anchor_of(&ix.finish(Vec::new()).expect("an anchor"));
        assert_eq!((a.first, a.end, a.keys, a.height), (3, 9, 5010, 90), "appended after the old range");
        assert_eq!((a.tipset, a.genesis_state), (top.clone(), old.genesis_state.clone()));

        let mut ix = ChainIndexer::new(Some(old.clone()), bounds);
        ix.after_generation(generation(&top, 90, 10, true));
        let g0 = cids("g0", 1);
        ix.after_generation(generation(&g0, 0, 3, true));
        assert_eq!(ix.recorded_range(), Some((8, 9)), "rebuilt after the old range");
        let old_range: Vec<Vec<u8>> = (3..8).map(meta::chain_chunk_key).collect();
        let batch = ix.finish(old_range.clone()).expect("an anchor");
        let a = anchor_of(&batch);
        assert_eq!((a.first, a.end, a.keys), (8, 9, 13));
        assert_eq!(batch.deleted_keys(Space::Meta), old_range, "stale chunks go with the new anchor's write");
    }

    #[test]
    fn a_missing_header_in_the_range_records_nothing() {
        let g = cids("g", 1);
        let mut ix = ChainIndexer::new(None, b(100, 60, 50));
        ix.after_generation(generation(&g, 10, 2000, true));
        ix.after_generation(generation(&g, 9, 5, false));
        assert!(ix.after_generation(generation(&g, 8, 5000, true)).is_none());
        assert!(ix.recorded_range().is_none() && ix.finish(Vec::new()).is_none());
        // An incomplete generation above the boundaries does not prevent the recording below.
        let mut ix = ChainIndexer::new(None, b(100, 60, 50));
        ix.after_generation(generation(&g, 70, 5, false));
        ix.after_generation(generation(&g, 10, 5, true));
        assert!(ix.finish(Vec::new()).is_some());
    }
}
