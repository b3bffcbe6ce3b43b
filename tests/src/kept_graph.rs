//! The kept graph: a compaction that marks from the links the previous one loaded, and from
//! the links of the blocks written since, must leave the stores exactly as one that reads
//! every block, whatever order the node wrote in, with messages that land only after the
//! compaction that met them absent, and with blocks deleted through the API between
//! compactions.

use splitstore_core::{
    header,
    key::BlockKey,
    kv::{Kv, Space},
    mem::ManualClock,
    CompactionReport, Config, Mode, NoProgress, SplitStore,
};

use crate::{
    chain::{keys, small_config, universe_of},
    chain_index::sync_pair,
    executor::Rng,
    scenarios::verify_compaction,
};

type Store<K> = SplitStore<K, ManualClock>;

/// What [`kept_equals_reads`] saw.
#[derive(Clone, Copy, Debug, Default)]
pub struct GraphStats {
    /// Compactions run on each store.
    pub compactions: u64,
    /// Of those, the ones that marked objects from the kept graph.
    pub from_graph: u64,
    /// Of those, the ones whose graph held blocks recorded as they were written.
    pub from_writes: u64,
    /// Rounds that deleted blocks through the API before compacting.
    pub deletions: u64,
}

/// Deletes, through the API of both stores, a few of `store`'s hot blocks that are not
/// headers (a deleted header would fail every later compaction). Returns how many.
pub(crate) async fn delete_some<K: Kv>(rng: &mut Rng, stores: [&Store<K>; 2]) -> usize {
    let mut hot: Vec<Vec<u8>> = keys(stores[0].hot(), Space::Blocks).await.into_iter().collect();
    hot.sort();
    let mut cids = Vec::new();
    for _ in 0..4 {
        let k = &hot[rng.below(hot.len())];
        let bytes = stores[0].hot().get(Space::Blocks, k).await.expect("read").expect("listed");
        if header::decode(&bytes).is_ok() {
            continue;
        }
        cids.push(BlockKey::from_bytes(k.clone()).to_raw_cid().expect("a multihash key"));
    }
    for s in stores {
        s.delete_many(&cids).await.expect("delete");
    }
    cids.len()
}

/// Compacts both stores and checks that they agree: the same blocks in each store, the same
/// counts, and the reading store never marks from a graph.
async fn compact_both<K: Kv>(kept: &Store<K>, read: &Store<K>, oracle: bool, at: &str) -> CompactionReport {
    let hot_before = keys(kept.hot(), Space::Blocks).await;
    let cold_before = keys(kept.cold(), Space::Blocks).await;
    let before = universe_of(kept.hot(), kept.cold()).await;
    let r = kept.compact(&NoProgress).await.unwrap_or_else(|e| panic!("{at}: with the graph: {e}"));
    let f = read.compact(&NoProgress).await.unwrap_or_else(|e| panic!("{at}: reading: {e}"));
    if oracle {
        verify_compaction(kept, &r, &hot_before, &cold_before, &before).await;
    }
    assert_eq!((f.graph_marked, f.graph_objects), (0, 0), "{at}: the reading store kept a graph");
    // Right after the compaction the store holds the graph its walk left (nothing written since).
    let held = kept.info().await.expect("info").held;
    assert_eq!(held.kept_graph, r.graph_bytes, "{at}: {held:?} held, the report's graph {} bytes", r.graph_bytes);
    assert_eq!(read.info().await.expect("info").held.kept_graph, 0, "{at}: the reading store holds a graph");
    assert_eq!(keys(kept.hot(), Space::Blocks).await, keys(read.hot(), Space::Blocks).await, "{at}: hot stores differ");
    assert_eq!(
        keys(kept.cold(), Space::Blocks).await,
        keys(read.cold(), Space::Blocks).await,
        "{at}: cold stores differ"
    );
    // A walk counts a missing block each time a batch meets it, which depends on the order of
    // the walk; whether it met any does not.
    assert_eq!(
        (r.marked, r.purged, r.moved, r.missing > 0),
        (f.marked, f.purged, f.moved, f.missing > 0),
        "{at}: reports differ"
    );
    // Below the headers, each object the reading store read the other read or took from the
    // graph, never both.
    assert_eq!(
        r.loaded_below_headers + r.graph_marked,
        f.loaded_below_headers,
        "{at}: read {} and marked {} from the graph, against {} read",
        r.loaded_below_headers,
        r.graph_marked,
        f.loaded_below_headers
    );
    let (ck, cr) = (kept.check().await.expect("check"), read.check().await.expect("check"));
    assert_eq!(ck.missing_cids, cr.missing_cids, "{at}: the stores' checks differ");
    if oracle {
        assert_eq!(ck.missing, 0, "{at}: live blocks missing {:?}", ck.missing_cids);
    }
    r
}

/// Grows one chain into two stores in orders a node produces and compacts both every `every`
/// epochs: one keeps its graph between compactions and records the blocks written since, the other
/// (`kept_graph_bytes` 0) reads every block. They must end every compaction with the same blocks.
/// With odd seeds the messages and receipts of the epochs since the last compaction land only after
/// the next one (its walk meets them absent, and a graph built then must not stand in for them
/// later); with seeds of 2 or more mod 4, some rounds first delete blocks through the API (the
/// stores walk leniently, so a deleted state block is counted missing in both). Rounds without
/// either are also checked against the oracle.
pub async fn kept_equals_reads<K: Kv>(
    make: &dyn Fn() -> K,
    mode: Mode,
    seed: u64,
    epochs: usize,
    every: usize,
) -> GraphStats {
    let deleting = seed % 4 >= 2;
    let config = Config { lenient_state: deleting, ..small_config(mode) };
    let open =
        |config: Config| async { SplitStore::open(make(), make(), ManualClock::new(0), config).await.expect("open") };
    let kept = open(Config { kept_graph_bytes: 64 << 20, ..config.clone() }).await;
    let read = open(Config { kept_graph_bytes: 0, ..config }).await;
    let mut stats = GraphStats::default();
    let mut deleted_any = false;
    sync_pair([&kept, &read], seed, epochs, every, async |rng: &mut Rng, i: usize, complete: bool| {
        let at = format!("{mode:?}, seed {seed}, epoch {i}");
        let deleted =
            deleting && stats.compactions > 0 && rng.percent(50) && delete_some(rng, [&kept, &read]).await > 0;
        deleted_any |= deleted;
        stats.deletions += u64::from(deleted);
        let r = compact_both(&kept, &read, complete && !deleted_any, &at).await;
        stats.compactions += 1;
        stats.from_graph += u64::from(r.graph_marked > 0);
        stats.from_writes += u64::from(r.graph_written > 0);
        if mode == Mode::Messages {
            assert_eq!(
                (r.graph_marked, r.graph_objects, r.graph_written),
                (0, 0, 0),
                "{at}: messages mode keeps no graph"
            );
        } else {
            assert!(r.graph_objects > 0, "{at}: no graph kept");
            if deleted {
                // The deletion dropped the kept graph and the records of the blocks written.
                assert_eq!((r.graph_marked, r.graph_written), (0, 0), "{at}: marked from a dropped graph");
            }
        }
    })
    .await;
    stats
}
