//! The hot key list: a compaction whose collect visits the list instead of scanning the hot
//! store must leave the stores exactly as one that scans, whatever order the node wrote in,
//! with messages that land only after the compaction that met them absent, and with blocks
//! deleted through the API between compactions (which drop the list: the next collect scans).

use splitstore_core::{mem::ManualClock, CompactionReport, Config, Kv, Mode, NoProgress, Space, SplitStore};

use crate::{
    chain::{keys, small_config, universe_of},
    chain_index::sync_pair,
    executor::Rng,
    kept_graph::delete_some,
    scenarios::verify_compaction,
};

type Store<K> = SplitStore<K, ManualClock>;

/// What [`listed_equals_scanned`] saw.
#[derive(Clone, Copy, Debug, Default)]
pub struct ListStats {
    /// Compactions run on each store.
    pub compactions: u64,
    /// Of those, the ones whose collect visited the list.
    pub listed: u64,
    /// Of those, the ones whose walk marked from the chain index.
    pub indexed: u64,
    /// Of those, the ones that visited fewer keys than the scan (the list leaves out the keys
    /// the chain index marks).
    pub fewer: u64,
    /// Rounds that deleted blocks through the API before compacting.
    pub deletions: u64,
    /// Compactions whose collect kept a list for the next one.
    pub kept: u64,
}

/// Compacts both stores and checks that they agree: the same blocks in each store and the
/// same counts; the scanning store never lists.
async fn compact_both<K: Kv>(
    listing: &Store<K>,
    scanning: &Store<K>,
    oracle: bool,
    at: &str,
) -> (CompactionReport, CompactionReport) {
    let hot_before = keys(listing.hot(), Space::Blocks).await;
    let cold_before = keys(listing.cold(), Space::Blocks).await;
    let before = universe_of(listing.hot(), listing.cold()).await;
    let r = listing.compact(&NoProgress).await.unwrap_or_else(|e| panic!("{at}: with the list: {e}"));
    let f = scanning.compact(&NoProgress).await.unwrap_or_else(|e| panic!("{at}: scanning: {e}"));
    if oracle {
        verify_compaction(listing, &r, &hot_before, &cold_before, &before).await;
    }
    assert!(!f.hot_keys_listed, "{at}: the scanning store listed");
    let held = listing.info().await.expect("info").held;
    assert_eq!(held.hot_key_list > 0, r.hot_keys_kept, "{at}: {held:?} held, kept: {}", r.hot_keys_kept);
    assert!(held.hot_key_list <= listing.config().hot_key_list_bytes as u64, "{at}: {held:?} held");
    assert_eq!(scanning.info().await.expect("info").held.hot_key_list, 0, "{at}: the scanning store holds a list");
    assert_eq!(
        keys(listing.hot(), Space::Blocks).await,
        keys(scanning.hot(), Space::Blocks).await,
        "{at}: hot stores differ (listed: {})",
        r.hot_keys_listed
    );
    assert_eq!(
        keys(listing.cold(), Space::Blocks).await,
        keys(scanning.cold(), Space::Blocks).await,
        "{at}: cold stores differ"
    );
    assert_eq!(
        (r.marked, r.dead, r.purged, r.moved, r.missing > 0),
        (f.marked, f.dead, f.purged, f.moved, f.missing > 0),
        "{at}: reports differ (listed: {})",
        r.hot_keys_listed
    );
    if r.hot_keys_listed {
        assert!(r.hot_scanned <= f.hot_scanned, "{at}: the list visited more keys than the hot store holds");
    }
    (r, f)
}

/// Grows one chain into two stores in orders a node produces ([`sync_pair`]) and compacts both
/// every `every` epochs: one keeps a hot key list, the other scans. With seeds of 2 or more
/// mod 4, some rounds first delete blocks through the API. With seeds of 4 or more mod 8 the
/// listing store keeps the graph too (its written blocks are marked without a read). Rounds
/// without late blocks or deletions are also checked against the oracle.
pub async fn listed_equals_scanned<K: Kv>(
    make: &dyn Fn() -> K,
    mode: Mode,
    seed: u64,
    epochs: usize,
    every: usize,
) -> ListStats {
    listed_within_equals_scanned(make, mode, seed, epochs, every, ROOMY).await
}

/// A limit no list or index set of these chains comes near.
const ROOMY: usize = 64 << 20;

/// [`listed_equals_scanned`] with the list's limit `limit`: below what the list or the walk's
/// set of the chain index's keys needs, compactions drop the list or keep none, and must still
/// leave the stores as the scanning one does; only a large limit is held to the pattern of
/// which compactions visit the list.
pub async fn listed_within_equals_scanned<K: Kv>(
    make: &dyn Fn() -> K,
    mode: Mode,
    seed: u64,
    epochs: usize,
    every: usize,
    limit: usize,
) -> ListStats {
    let deleting = seed % 4 >= 2;
    let config = Config { lenient_state: deleting, ..small_config(mode) };
    let open =
        |config: Config| async { SplitStore::open(make(), make(), ManualClock::new(0), config).await.expect("open") };
    let graph = if seed % 8 >= 4 { 64 << 20 } else { 0 };
    let listing = open(Config { hot_key_list_bytes: limit, kept_graph_bytes: graph, ..config.clone() }).await;
    let scanning = open(Config { hot_key_list_bytes: 0, ..config }).await;
    let mut stats = ListStats::default();
    let mut deleted_any = false;
    let mut scan_due = true;
    let mut kept_last = false;
    sync_pair([&listing, &scanning], seed, epochs, every, async |rng: &mut Rng, i: usize, complete: bool| {
        let at = format!("{mode:?}, seed {seed}, epoch {i}");
        let deleted =
            deleting && stats.compactions > 0 && rng.percent(50) && delete_some(rng, [&listing, &scanning]).await > 0;
        deleted_any |= deleted;
        stats.deletions += u64::from(deleted);
        let (r, f) = compact_both(&listing, &scanning, complete && !deleted_any, &at).await;
        // The first compaction scans, and so does the one after a deletion; every other one
        // visits the list.
        if limit >= ROOMY {
            assert_eq!(r.hot_keys_listed, !(scan_due || deleted), "{at}: listed");
            assert!(r.hot_keys_kept, "{at}: no list kept");
        }
        // A collect visits a list only where the last one kept it.
        assert!(!r.hot_keys_listed || kept_last, "{at}: listed what the last collect did not keep");
        kept_last = r.hot_keys_kept;
        stats.kept += u64::from(r.hot_keys_kept);
        scan_due = false;
        stats.compactions += 1;
        stats.listed += u64::from(r.hot_keys_listed);
        let indexed = r.hot_keys_listed && r.chain_index_keys > 0;
        stats.indexed += u64::from(indexed);
        stats.fewer += u64::from(indexed && r.hot_scanned < f.hot_scanned);
    })
    .await;
    stats
}
