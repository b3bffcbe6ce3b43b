//! The chain index: a compaction that marks the old chain from it must leave the stores exactly
//! as one that walks every header back to genesis, whatever the order the node wrote in, after
//! a reorg below the index, with a header missing, with a chunk lost, and after a crash at any
//! backend call.

use splitstore_core::{
    kv::{Kv, Space, WriteBatch},
    meta,
    synth::{ChainGen, Epoch, SynthConfig},
    CompactionReport, Config, Mode, NoProgress, SplitStore,
};

use crate::{
    chain::{forged_header, keys, small_chain, small_config, universe_of},
    crash::{crash_matrix_over, CrashStats},
    executor::Rng,
    scenarios::verify_compaction,
    workload::{header_first, Blocks},
};
use splitstore_core::mem::{ManualClock, MemKv};

type Store<K> = SplitStore<K, ManualClock>;

/// The stored anchor, if any.
pub async fn anchor<K: Kv>(kv: &K) -> Option<meta::ChainIndex> {
    let v = kv.get(Space::Meta, meta::CHAIN_INDEX).await.expect("read the anchor")?;
    Some(meta::ChainIndex::decode(&v).expect("the anchor decodes"))
}

/// Checks that the chunks the store holds are exactly those its anchor names.
pub async fn chunks_match_anchor<K: Kv>(kv: &K) {
    let chunks: Vec<Vec<u8>> =
        keys(kv, Space::Meta).await.into_iter().filter(|k| k.starts_with(meta::CHAIN_CHUNK_PREFIX)).collect();
    let named: Vec<Vec<u8>> = match anchor(kv).await {
        Some(a) => (a.first..a.end).map(meta::chain_chunk_key).collect(),
        None => Vec::new(),
    };
    let mut chunks = chunks;
    chunks.sort();
    assert_eq!(chunks, named, "chunk records other than the anchor's range");
}

/// A node's writes of one epoch before its head change, in an order chosen by `rng`: as the
/// generator emits them (children first), header first (the messages and receipts still being
/// fetched go to `late`, for the caller to write later), or parents first, a few blocks per
/// call.
fn epoch_writes(rng: &mut Rng, e: &Epoch, late: &mut Blocks) -> Vec<Blocks> {
    match rng.below(3) {
        0 => vec![e.blocks.clone()],
        1 => {
            let (first, messages) = header_first(e);
            late.extend(messages);
            vec![first]
        }
        _ => e.blocks.iter().rev().cloned().collect::<Vec<_>>().chunks(1 + rng.below(8)).map(<[_]>::to_vec).collect(),
    }
}

/// Runs one compaction on each store and checks them against each other, and `indexed`
/// against the oracle when `complete` (the chain has no block still being fetched). `full` has
/// its anchor removed first, so it walks to genesis.
async fn compact_both<K: Kv>(indexed: &Store<K>, full: &Store<K>, complete: bool, at: &str) -> CompactionReport {
    let hot_before = keys(indexed.hot(), Space::Blocks).await;
    let cold_before = keys(indexed.cold(), Space::Blocks).await;
    let before = universe_of(indexed.hot(), indexed.cold()).await;
    let mut drop_anchor = WriteBatch::new();
    drop_anchor.delete(Space::Meta, meta::CHAIN_INDEX);
    full.hot().write(drop_anchor).await.expect("drop the anchor");
    let r = indexed.compact(&NoProgress).await.unwrap_or_else(|e| panic!("{at}: indexed compaction: {e}"));
    let f = full.compact(&NoProgress).await.unwrap_or_else(|e| panic!("{at}: full compaction: {e}"));
    if complete {
        verify_compaction(indexed, &r, &hot_before, &cold_before, &before).await;
    }
    assert_eq!(f.chain_index_keys, 0, "{at}: the full walk used an index");
    for space in [Space::Blocks] {
        assert_eq!(keys(indexed.hot(), space).await, keys(full.hot(), space).await, "{at}: hot stores differ");
        assert_eq!(keys(indexed.cold(), space).await, keys(full.cold(), space).await, "{at}: cold stores differ");
    }
    assert_eq!((r.marked, r.purged, r.moved), (f.marked, f.purged, f.moved), "{at}: reports differ");
    chunks_match_anchor(indexed.hot()).await;
    r
}

/// Runs one compaction and checks it against the oracle and the anchor against its chunks.
async fn compact_checked<K: Kv>(store: &Store<K>, at: &str) -> CompactionReport {
    let hot_before = keys(store.hot(), Space::Blocks).await;
    let cold_before = keys(store.cold(), Space::Blocks).await;
    let before = universe_of(store.hot(), store.cold()).await;
    let r = store.compact(&NoProgress).await.unwrap_or_else(|e| panic!("{at}: {e}"));
    verify_compaction(store, &r, &hot_before, &cold_before, &before).await;
    chunks_match_anchor(store.hot()).await;
    r
}

/// Feeds the small chain of `seed` to both stores of `pair` as a node syncs it, for `epochs`
/// epochs: each epoch's blocks in an order the seed's generator picks ([`epoch_writes`]), then
/// its head change (a compaction the head decides is dropped unrun). Messages and receipts
/// fetched after their headers land after the next head change; with odd seeds, those of the
/// epochs since the last compaction land only after the next one (its walk meets them
/// absent), otherwise before it. Every `every` epochs `compact(rng, epoch, complete)` runs
/// the compactions (`complete`: no block is still being fetched); what is still being
/// fetched lands after it.
pub async fn sync_pair<K: Kv>(
    pair: [&Store<K>; 2],
    seed: u64,
    epochs: usize,
    every: usize,
    mut compact: impl AsyncFnMut(&mut Rng, usize, bool),
) {
    let mut chain = small_chain(seed);
    let mut rng = Rng::new(seed);
    let mut late = Blocks::new();
    let hold_across = seed % 2 == 1;
    let put_both = |blocks: Blocks| async move {
        for s in pair {
            s.put_many(blocks.clone()).await.expect("put");
        }
    };
    for i in 1..=epochs {
        let e = chain.next_epoch();
        let mut fetched_late = Blocks::new();
        for blocks in epoch_writes(&mut rng, &e, &mut fetched_late) {
            put_both(blocks).await;
        }
        for s in pair {
            // Compactions are run by `compact`; one a head decides is dropped unrun.
            drop(s.head_change(&[], std::slice::from_ref(&e.tipset)).await.expect("head"));
        }
        if hold_across {
            late.extend(fetched_late);
        } else {
            put_both(std::mem::take(&mut late)).await;
            late = fetched_late;
        }
        if i % every == 0 {
            if !hold_across {
                put_both(std::mem::take(&mut late)).await;
            }
            compact(&mut rng, i, late.is_empty()).await;
            put_both(std::mem::take(&mut late)).await;
        }
    }
}

/// What [`indexed_equals_full_walk`] saw.
#[derive(Clone, Copy, Debug, Default)]
pub struct IndexStats {
    /// Compactions run on each store.
    pub compactions: u64,
    /// Of those, the ones that marked from the index.
    pub indexed: u64,
}

/// Grows one chain into two stores ([`sync_pair`]) and compacts both every `every` epochs: one
/// keeps its chain index, the other loses it before each compaction. They must end every
/// compaction with the same blocks; the first is checked against the oracle too when no block
/// is still being fetched.
pub async fn indexed_equals_full_walk<K: Kv>(
    make: &dyn Fn() -> K,
    mode: Mode,
    seed: u64,
    epochs: usize,
    every: usize,
) -> IndexStats {
    let open = || async {
        let clock = ManualClock::new(0);
        SplitStore::open(make(), make(), clock, small_config(mode)).await.expect("open")
    };
    let (indexed, full) = (open().await, open().await);
    let mut stats = IndexStats::default();
    sync_pair([&indexed, &full], seed, epochs, every, async |_: &mut Rng, i: usize, complete: bool| {
        let at = format!("{mode:?}, seed {seed}, epoch {i}");
        let had_anchor = anchor(indexed.hot()).await.is_some();
        let r = compact_both(&indexed, &full, complete, &at).await;
        stats.compactions += 1;
        stats.indexed += u64::from(r.chain_index_keys > 0);
        if mode == Mode::Messages {
            assert_eq!(r.chain_index_keys, 0, "{at}: messages mode walks every header");
        } else {
            assert_eq!(r.chain_index_keys > 0, had_anchor, "{at}: an anchor recorded was not used");
        }
    })
    .await;
    stats
}

/// `n` tipsets of a fork built on `base`, at heights from `from_height` on: forged headers
/// (one per height) whose state, messages and receipts are `state`.
fn fork(base: &[splitstore_core::Cid], from_height: u64, n: usize, state: &splitstore_core::Cid) -> Vec<Epoch> {
    let mut parents = base.to_vec();
    (0..n as u64)
        .map(|i| {
            let height = from_height + i;
            let (cid, bytes) = forged_header(&parents, height, 1_600_000_000 + height * 30, state);
            parents = vec![cid];
            Epoch {
                height: height as i64,
                tipset: vec![cid],
                timestamp: 1_600_000_000 + height * 30,
                blocks: vec![(cid, bytes)],
                state_root: *state,
                parent_key: None,
                repeated: (0, 0),
            }
        })
        .collect()
}

/// The head moves to a fork that leaves the chain below the anchor: the walk never meets the
/// anchor, walks to genesis, drops the abandoned chain (the oracle says which blocks stay),
/// and records a new index, which the next compaction uses.
pub async fn reorg_below_the_anchor<K: Kv>(make: &dyn Fn() -> K, mode: Mode) {
    let clock = ManualClock::new(0);
    let store = SplitStore::open(make(), make(), clock, small_config(mode)).await.expect("open");
    let mut chain = small_chain(7);
    let mut epochs = Vec::new();
    for _ in 0..40 {
        let e = chain.next_epoch();
        store.put_many(e.blocks.clone()).await.expect("put");
        drop(store.head_change(&[], std::slice::from_ref(&e.tipset)).await.expect("head"));
        epochs.push(e);
    }
    compact_checked(&store, "first compaction").await;
    let first = anchor(store.hot()).await.expect("an anchor after the first compaction");
    // The fork leaves the chain at the 3rd tipset, below the anchor.
    let base = &epochs[2];
    assert!(base.height < first.height, "the fork point is below the anchor");
    let state = epochs.last().expect("epochs").state_root;
    let forked = fork(&base.tipset, base.height as u64 + 1, 60, &state);
    for e in &forked {
        store.put_many(e.blocks.clone()).await.expect("put fork");
    }
    let head = &forked.last().expect("fork").tipset;
    drop(store.head_change(&[], std::slice::from_ref(head)).await.expect("reorg"));
    let r = compact_checked(&store, "compaction after the reorg").await;
    assert_eq!(r.chain_index_keys, 0, "{mode:?}: the walk met an anchor the head does not descend from");
    let second = anchor(store.hot()).await.expect("an anchor on the fork");
    assert!(second.first >= first.end, "{mode:?}: the rebuilt range overwrote the old one");
    let more = fork(head, forked.last().expect("fork").height as u64 + 1, 20, &state);
    for e in &more {
        store.put_many(e.blocks.clone()).await.expect("put");
    }
    drop(store.head_change(&[], std::slice::from_ref(&more.last().expect("more").tipset)).await.expect("head"));
    let r = compact_checked(&store, "compaction on the fork").await;
    assert!(r.chain_index_keys > 0, "{mode:?}: the rebuilt index was not used");
}

/// A lenient walk meets a tipset with a header missing below the boundaries: the range below
/// it is not recorded (the header may come later), and once the header is written the next
/// compaction keeps it and records the index.
pub async fn missing_header_is_never_indexed<K: Kv>(make: &dyn Fn() -> K) {
    let cfg = Config { lenient_state: true, ..small_config(Mode::Discard) };
    let store = SplitStore::open(make(), make(), ManualClock::new(0), cfg).await.expect("open");
    let mut chain = ChainGen::new(SynthConfig {
        seed: 3,
        state_objects: 120,
        messages_per_block: 2,
        max_blocks_per_tipset: 4,
        null_round_per_mille: 0,
        ..SynthConfig::default()
    });
    let mut withheld = None;
    for i in 0..40 {
        let mut e = chain.next_epoch();
        // The second tipset with two headers or more, at height < 10: below both boundaries
        // of a compaction from height 40, and low enough that the range starts above it.
        if withheld.is_none() && i >= 1 && e.tipset.len() >= 2 {
            let h = e.tipset[1];
            let at = e.blocks.iter().position(|(c, _)| *c == h).expect("header among the blocks");
            withheld = Some(e.blocks.remove(at));
        }
        store.put_many(e.blocks.clone()).await.expect("put");
        drop(store.head_change(&[], std::slice::from_ref(&e.tipset)).await.expect("head"));
    }
    let (h, bytes) = withheld.expect("a tipset with two headers");
    let r = store.compact(&NoProgress).await.expect("lenient compaction");
    assert!(r.missing > 0, "the header was not missed");
    let a = anchor(store.hot()).await;
    assert!(a.is_none(), "an index was recorded over a missing header: {a:?}");
    chunks_match_anchor(store.hot()).await;
    store.put_many(vec![(h, bytes)]).await.expect("the late header");
    for _ in 0..12 {
        let e = chain.next_epoch();
        store.put_many(e.blocks.clone()).await.expect("put");
        drop(store.head_change(&[], std::slice::from_ref(&e.tipset)).await.expect("head"));
    }
    for round in 0..2 {
        let r = compact_checked(&store, "compaction after the late header").await;
        assert!(store.hot().has(Space::Blocks, &h.hash().to_bytes()).await.expect("has"), "the late header was purged");
        assert_eq!(r.chain_index_keys > 0, round == 1, "round {round}: index use");
        assert!(anchor(store.hot()).await.is_some(), "round {round}: no index once every header is there");
    }
}

/// Chunks lost or damaged: the walk goes on from the anchor as if there were no index, drops
/// nothing live, and records the index again.
pub async fn damaged_chunks_fall_back<K: Kv>(make: &dyn Fn() -> K) {
    for damage in [None, Some(b"\x01garbage".to_vec())] {
        let open = || async {
            SplitStore::open(make(), make(), ManualClock::new(0), small_config(Mode::Universal)).await.expect("open")
        };
        let (indexed, full) = (open().await, open().await);
        let mut chain = small_chain(21);
        for i in 1..=60 {
            let e = chain.next_epoch();
            for s in [&indexed, &full] {
                s.put_many(e.blocks.clone()).await.expect("put");
                drop(s.head_change(&[], std::slice::from_ref(&e.tipset)).await.expect("head"));
            }
            if i == 30 {
                compact_both(&indexed, &full, true, "before the damage").await;
            }
            if i == 45 {
                let a = anchor(indexed.hot()).await.expect("an anchor");
                let mut b = WriteBatch::new();
                match &damage {
                    None => b.delete(Space::Meta, meta::chain_chunk_key(a.first)),
                    Some(v) => b.put(Space::Meta, meta::chain_chunk_key(a.end - 1), v.clone()),
                };
                indexed.hot().write(b).await.expect("damage");
                let r = compact_both(&indexed, &full, true, "after the damage").await;
                assert_eq!(r.chain_index_keys, 0, "a damaged index was used");
            }
        }
        let r = compact_both(&indexed, &full, true, "after the rebuild").await;
        assert!(r.chain_index_keys > 0, "the rebuilt index was not used");
    }
}

/// The crash matrix over a compaction that marks from the index a first compaction recorded
/// (and appends to it): every `stride`-th backend call, three survival variants each.
pub async fn crash_matrix_over_indexed(mode: Mode, seed: u64, stride: u64) -> CrashStats {
    let (hot, cold) = (MemKv::with_crash_tracking(), MemKv::with_crash_tracking());
    let store =
        SplitStore::open(hot.clone(), cold.clone(), ManualClock::new(0), small_config(mode)).await.expect("open");
    let mut chain = small_chain(seed);
    for i in 1..=36 {
        let e = chain.next_epoch();
        store.put_many(e.blocks.clone()).await.expect("put");
        drop(store.head_change(&[], std::slice::from_ref(&e.tipset)).await.expect("head"));
        if i == 24 {
            store.compact(&NoProgress).await.expect("the compaction that records the index");
        }
    }
    store.close().await.expect("close");
    let (base_hot, base_cold) = (hot.crash_image(0), cold.crash_image(0));
    {
        let probe = SplitStore::open(
            base_hot.crash_image(0),
            base_cold.crash_image(0),
            ManualClock::new(0),
            small_config(mode),
        )
        .await
        .expect("open");
        let r = probe.compact(&NoProgress).await.expect("probe");
        assert!(r.chain_index_keys > 0, "{mode:?}: the matrix's compaction does not use the index");
    }
    crash_matrix_over(&base_hot, &base_cold, mode, stride).await
}
