//! A full store: a write refused at the quota names the cause (and so does every write after
//! it), and a compaction frees the space using only the reserve the backend keeps for the
//! store's upkeep; a crash at any backend call of that compaction recovers within the same
//! quota. The chain is synced in the orders real nodes write: each epoch in pieces, either
//! children first or parents first (a header before the state it names), with pieces of a
//! refused epoch left behind unreferenced, as a failed import leaves them.

use splitstore_core::{
    error::KvError,
    kv::Space,
    mem::{ManualClock, MemKv, Quota},
    synth::{ChainGen, Epoch},
    Error, Mode, NoProgress, SplitStore,
};

use crate::{
    chain::{keys, small_chain, small_config, universe_of},
    crash::{crash_matrix_over, CrashStats},
    executor::Rng,
    scenarios::verify_compaction,
};

/// Blocks per write while syncing.
const PIECE: usize = 40;

/// What filling and compacting one store measured.
#[derive(Clone, Copy, Debug, Default)]
pub struct FullStats {
    /// The modelled quota of the hot store.
    pub quota: Option<Quota>,
    /// Epochs synced before the first refused write.
    pub epochs: u64,
    /// Hot bytes when the write was refused.
    pub used_full: u64,
    /// The most hot bytes held during the compaction.
    pub peak: u64,
    /// Hot bytes after it.
    pub used_after: u64,
}

/// Writes one epoch in pieces, in the order `rng` picks; the head moves only once every
/// piece landed. The first refused write is returned.
async fn sync_epoch(store: &SplitStore<MemKv, ManualClock>, e: &Epoch, rng: &mut Rng) -> Result<(), Error> {
    let mut pieces: Vec<_> = e.blocks.chunks(PIECE).collect();
    if rng.percent(50) {
        // Parents first: headers and the tipset key before the state and messages they name.
        pieces.reverse();
    }
    for piece in pieces {
        store.put_many(piece.to_vec()).await?;
    }
    // Compactions are run by hand below; one decided here is dropped unrun.
    drop(store.head_change(&[], std::slice::from_ref(&e.tipset)).await?);
    Ok(())
}

fn assert_quota_error(e: &Error, what: &str) {
    match e {
        Error::Kv { store: "hot", source: KvError::QuotaExceeded { detail } } => {
            assert!(detail.contains("reserve"), "{what}: the cause does not name the reserve: {detail}")
        }
        other => panic!("{what}: expected the hot store's quota error, got {other}"),
    }
}

/// A store filled to its quota, and what is needed to sync on.
pub struct Filled {
    /// The store.
    pub store: SplitStore<MemKv, ManualClock>,
    /// Its hot backend (with the quota).
    pub hot: MemKv,
    /// Its cold backend.
    pub cold: MemKv,
    /// The chain, to generate the next epochs.
    pub chain: ChainGen,
    /// Epochs whose writes were refused, to sync again first (a node fetches them again).
    pub refused: Vec<Epoch>,
    /// The order picker.
    pub rng: Rng,
    /// Epochs synced before the first refusal.
    pub epochs: u64,
}

/// A hot store that holds `quota.limit` bytes with `quota.reserve` of them kept for upkeep,
/// filled by syncing the chain until a write is refused.
pub async fn fill(mode: Mode, seed: u64, quota: Quota) -> Filled {
    let (hot, cold) = (MemKv::with_crash_tracking(), MemKv::with_crash_tracking());
    hot.set_quota(Some(quota));
    let store =
        SplitStore::open(hot.clone(), cold.clone(), ManualClock::new(0), small_config(mode)).await.expect("open");
    let mut chain = small_chain(seed);
    let mut rng = Rng::new(seed);
    let mut epochs = 0;
    let mut refused = Vec::new();
    loop {
        let e = chain.next_epoch();
        match sync_epoch(&store, &e, &mut rng).await {
            Ok(()) => epochs += 1,
            Err(err) => {
                assert_quota_error(&err, "the refused write");
                refused.push(e);
                break;
            }
        }
        assert!(epochs < 10_000, "the quota of {} bytes was never reached", quota.limit);
    }
    // Every later write says the same, and lands nowhere.
    let e = chain.next_epoch();
    let before = keys(&hot, Space::Blocks).await;
    let err = store.put_many(e.blocks.clone()).await.expect_err("a write on a full store");
    assert_quota_error(&err, "a later write");
    assert_eq!(keys(&hot, Space::Blocks).await, before, "a refused write changed the store");
    refused.push(e);
    Filled { store, hot, cold, chain, refused, rng, epochs }
}

/// Fills a store, compacts it within its reserve, checks that nothing live was lost and that
/// space came back, then syncs on (with compactions as the trigger decides them, each checked
/// against the oracle).
pub async fn full_store_compacts_back(mode: Mode, seed: u64, quota: Quota) -> FullStats {
    let Filled { store, hot, cold, mut chain, refused, mut rng, epochs } = fill(mode, seed, quota).await;
    let used_full = hot.used_bytes();
    let hot_before = keys(&hot, Space::Blocks).await;
    let cold_before = keys(&cold, Space::Blocks).await;
    let before = universe_of(&hot, &cold).await;
    hot.take_peak();
    let report =
        store.compact(&NoProgress).await.unwrap_or_else(|e| panic!("{mode:?}: compaction of a full store: {e}"));
    let peak = hot.take_peak();
    verify_compaction(&store, &report, &hot_before, &cold_before, &before).await;
    let used_after = hot.used_bytes();
    assert!(
        used_after < quota.limit - quota.reserve,
        "{mode:?}: no room came back ({used_after} bytes used, {} allowed)",
        quota.limit - quota.reserve
    );
    // Writes succeed again; the node syncs on and the trigger compacts as usual.
    let mut compactions = 0;
    let mut refused = refused.into_iter();
    for _ in 0..4 * small_config(mode).threshold() {
        let e = refused.next().unwrap_or_else(|| chain.next_epoch());
        let mut pieces: Vec<_> = e.blocks.chunks(PIECE).collect();
        if rng.percent(50) {
            pieces.reverse();
        }
        for piece in pieces {
            store.put_many(piece.to_vec()).await.unwrap_or_else(|e| panic!("{mode:?}: a write after compacting: {e}"));
        }
        let pending = store.head_change(&[], std::slice::from_ref(&e.tipset)).await.expect("head change");
        if let Some(pending) = pending {
            let (hb, cb) = (keys(&hot, Space::Blocks).await, keys(&cold, Space::Blocks).await);
            let u = universe_of(&hot, &cold).await;
            let r = store.run_compaction(pending, &NoProgress).await.expect("compaction after refilling");
            verify_compaction(&store, &r, &hb, &cb, &u).await;
            compactions += 1;
        }
    }
    assert!(compactions >= 2, "{mode:?}: only {compactions} compactions while syncing on");
    FullStats { quota: Some(quota), epochs, used_full, peak, used_after }
}

/// With a reserve too small for its lists the compaction fails with the quota error before
/// its purge record, losing nothing; once the quota grows (the user frees space) it runs.
pub async fn too_small_a_reserve_fails_cleanly(mode: Mode, seed: u64, limit: u64) {
    let tight = Quota { limit, reserve: 16 };
    let Filled { store, hot, cold, .. } = fill(mode, seed, tight).await;
    let everything = universe_of(&hot, &cold).await;
    let err = store.compact(&NoProgress).await.expect_err("no room for the lists");
    assert!(
        matches!(err, Error::Kv { source: KvError::QuotaExceeded { .. }, .. }),
        "{mode:?}: expected the quota error, got {err}"
    );
    let after = universe_of(&hot, &cold).await;
    let lost: Vec<_> = everything.blocks.keys().filter(|k| !after.blocks.contains_key(*k)).take(3).collect();
    assert!(lost.is_empty(), "{mode:?}: a failed compaction deleted blocks {lost:02x?}");
    assert!(!store.info().await.expect("info").pending_recovery, "the failure came before the purge record");
    hot.set_quota(Some(Quota { limit: limit * 2, reserve: limit / 4 }));
    let (hb, cb) = (keys(&hot, Space::Blocks).await, keys(&cold, Space::Blocks).await);
    let r = store.compact(&NoProgress).await.expect("compaction once there is room");
    verify_compaction(&store, &r, &hb, &cb, &after).await;
}

/// The crash matrix over the compaction of a full store, at every `stride`-th backend call
/// with each survival variant: every image is reopened (recovery runs under the same quota)
/// and must have lost nothing live and compact to exactly the live set, still under it.
pub async fn crash_while_full(mode: Mode, seed: u64, quota: Quota, stride: u64) -> CrashStats {
    let Filled { store, hot, cold, .. } = fill(mode, seed, quota).await;
    store.close().await.expect("close");
    drop(store);
    crash_matrix_over(&hot.crash_image(usize::MAX), &cold.crash_image(usize::MAX), mode, stride).await
}
