//! The crash matrix: a full compaction is run once to count its backend calls, then once per
//! call `k` with the process "dying" at call `k`; what survives is reopened and must be a
//! consistent store that lost nothing live (and, in universal mode, nothing at all).

use std::collections::HashSet;

use splitstore_core::{
    kv::{Kv, Space, WriteBatch},
    mem::{ManualClock, MemKv},
    Config, Mode, NoProgress, SplitStore,
};

use crate::{
    chain::{hot_holes, keys, small_chain, small_config, universe_of},
    fault::{Fault, FaultKv},
    scenarios::verify_compaction,
};

/// What one crash matrix covered.
#[derive(Clone, Copy, Debug, Default)]
pub struct CrashStats {
    /// Backend calls in one full compaction.
    pub calls: u64,
    /// Crash points exercised (call index × survival variant).
    pub crash_points: u64,
    /// Of those, how many left an interrupted purge for recovery to finish.
    pub recovered_purges: u64,
}

/// How much of the not-yet-durable writes survive a crash.
#[derive(Clone, Copy, Debug)]
pub enum Survival {
    /// Only what was durable.
    DurableOnly,
    /// Half the pending batches, oldest first.
    Half,
    /// Everything written.
    Everything,
}

/// What a crash leaves of `kv` under `s`.
pub fn image(kv: &MemKv, s: Survival) -> MemKv {
    let keep = match s {
        Survival::DurableOnly => 0,
        Survival::Half => kv.pending_batches() / 2,
        Survival::Everything => usize::MAX,
    };
    kv.crash_image(keep)
}

fn config(mode: Mode) -> Config {
    small_config(mode)
}

async fn base_store(mode: Mode, seed: u64, epochs: usize) -> (MemKv, MemKv) {
    let (hot, cold) = (MemKv::with_crash_tracking(), MemKv::with_crash_tracking());
    let store = SplitStore::open(hot.clone(), cold.clone(), ManualClock::new(0), config(mode)).await.expect("open");
    let mut chain = small_chain(seed);
    for _ in 0..epochs {
        let e = chain.next_epoch();
        store.put_many(e.blocks.clone()).await.expect("put");
        // Compaction is started by hand below; a decided one is dropped unrun.
        drop(store.head_change(&[], std::slice::from_ref(&e.tipset)).await.expect("head"));
    }
    store.close().await.expect("close");
    (hot.crash_image(0), cold.crash_image(0))
}

/// Backend calls of one clean compaction of the given stores.
async fn count_calls<K: Kv>(hot: K, cold: K, mode: Mode) -> u64 {
    let fault = Fault::new();
    let store = SplitStore::open(
        FaultKv::new(hot, fault.clone()),
        FaultKv::new(cold, fault.clone()),
        ManualClock::new(0),
        config(mode),
    )
    .await
    .expect("open");
    fault.reset_ops();
    store.compact(&NoProgress).await.expect("clean compaction");
    fault.ops()
}

/// Runs the matrix for `mode` over every `stride`-th call. Panics on the first violation,
/// naming the crash point.
pub async fn crash_matrix(mode: Mode, seed: u64, epochs: usize, stride: u64) -> CrashStats {
    let (base_hot, base_cold) = base_store(mode, seed, epochs).await;
    crash_matrix_over(&base_hot, &base_cold, mode, stride).await
}

/// The matrix over a compaction of the given stores (each crash point starts from a copy,
/// which keeps the stores' quota, if any).
pub async fn crash_matrix_over(base_hot: &MemKv, base_cold: &MemKv, mode: Mode, stride: u64) -> CrashStats {
    let everything: HashSet<Vec<u8>> = keys(base_hot, Space::Blocks).await;

    let calls = count_calls(base_hot.crash_image(0), base_cold.crash_image(0), mode).await;
    let mut stats = CrashStats { calls, ..CrashStats::default() };

    let mut k = 0;
    while k < calls {
        for survival in [Survival::DurableOnly, Survival::Half, Survival::Everything] {
            let (h, c) = (base_hot.crash_image(0), base_cold.crash_image(0));
            let fault = Fault::new();
            let store = SplitStore::open(
                FaultKv::new(h.clone(), fault.clone()),
                FaultKv::new(c.clone(), fault.clone()),
                ManualClock::new(0),
                config(mode),
            )
            .await
            .expect("open");
            fault.arm(k);
            let r = store.compact(&NoProgress).await;
            assert!(r.is_err(), "{mode:?}: compaction survived a crash at call {k}");
            drop(store);
            let (h2, c2) = (image(&h, survival), image(&c, survival));
            let had_purge = h2.keys(Space::Meta).iter().any(|k| k.as_slice() == b"purge");
            stats.recovered_purges += had_purge as u64;
            check_recovered(mode, &h2, &c2, &everything, had_purge, k, survival).await;
            stats.crash_points += 1;
        }
        k += stride;
    }
    stats
}

/// Reopens a crashed image and checks every promise the design makes about it.
async fn check_recovered<K: Kv>(
    mode: Mode,
    hot: &K,
    cold: &K,
    everything: &HashSet<Vec<u8>>,
    had_purge: bool,
    k: u64,
    s: Survival,
) {
    let at = format!("{mode:?}, crash at call {k}, {s:?}");
    let store = SplitStore::open(hot, cold, ManualClock::new(0), config(mode))
        .await
        .unwrap_or_else(|e| panic!("{at}: reopen failed: {e}"));
    let info = store.info().await.expect("info");
    assert!(!info.pending_recovery, "{at}: recovery left a purge pending");
    for space in [Space::Dead, Space::ColdList] {
        assert!(keys(hot, space).await.is_empty(), "{at}: {space:?} list left after recovery");
    }
    let head = info.head.expect("head");
    let b = store.config().boundaries(info.head_epoch.expect("height"));
    let u = universe_of(hot, cold).await;
    let live = u.live_set(&head, b.boundary, b.include_messages);
    assert!(live.missing.is_empty(), "{at}: live blocks lost: {:?}", &live.missing[..live.missing.len().min(3)]);
    assert_eq!(store.check().await.expect("check").missing, 0, "{at}: check reports missing blocks");
    if mode == Mode::Universal {
        let lost: Vec<_> = everything.iter().filter(|k| !u.blocks.contains_key(*k)).take(3).collect();
        assert!(lost.is_empty(), "{at}: universal mode lost blocks {lost:?}");
    }
    // No half-purged DAG: every non-header block left in hot has all its DAG-CBOR children.
    let holes = hot_holes(hot, cold).await;
    assert!(holes.is_empty(), "{at}: hot blocks lost children: {:02x?}", &holes[..holes.len().min(3)]);
    let hot_before = keys(hot, Space::Blocks).await;
    if had_purge {
        // Recovery finished the interrupted purge: hot is exactly the live set.
        let expected: HashSet<Vec<u8>> = live.present.intersection(everything).cloned().collect();
        let stale: Vec<_> = hot_before.difference(&expected).take(3).collect();
        let lost: Vec<_> = expected.difference(&hot_before).take(3).collect();
        assert!(
            stale.is_empty() && lost.is_empty(),
            "{at}: recovery did not finish the purge exactly: stale {stale:02x?}, lost {lost:02x?}"
        );
    }
    // The recovered store compacts to exactly the live set.
    let cold_before = keys(cold, Space::Blocks).await;
    let report = store.compact(&NoProgress).await.unwrap_or_else(|e| panic!("{at}: compaction after recovery: {e}"));
    verify_compaction(&store, &report, &hot_before, &cold_before, &u).await;
}

/// Copies every entry of `from` into `to` through the trait.
pub async fn copy_into<A: Kv, B: Kv>(from: &A, to: &B) {
    for space in Space::ALL {
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = from.scan(space, after.as_deref(), 1000).await.expect("scan");
            let Some((last, _)) = page.last().cloned() else { break };
            let mut batch = WriteBatch::with_capacity(page.len());
            for (k, v) in page {
                batch.put(space, k, v);
            }
            to.write(batch).await.expect("copy");
            after = Some(last);
        }
    }
    to.flush().await.expect("flush");
}

/// The crash matrix on any backend whose committed writes all survive a crash (an on-disk
/// store after `kill -9`, IndexedDB after a reload): every `stride`-th call of a compaction
/// fails as if the process died there, then the same backend is reopened and checked. `make`
/// returns a fresh, empty backend each call (two per crash point).
pub async fn crash_matrix_on<K: Kv>(
    make: &dyn Fn() -> K,
    mode: Mode,
    seed: u64,
    epochs: usize,
    stride: u64,
) -> CrashStats {
    let (base_hot, base_cold) = base_store(mode, seed, epochs).await;
    let everything: HashSet<Vec<u8>> = keys(&base_hot, Space::Blocks).await;
    let fresh = || async {
        let (h, c) = (make(), make());
        copy_into(&base_hot, &h).await;
        copy_into(&base_cold, &c).await;
        (h, c)
    };
    let (h, c) = fresh().await;
    let calls = count_calls(h, c, mode).await;
    let mut stats = CrashStats { calls, ..CrashStats::default() };
    let mut k = 0;
    while k < calls {
        let (h, c) = fresh().await;
        let fault = Fault::new();
        {
            let store = SplitStore::open(
                FaultKv::new(&h, fault.clone()),
                FaultKv::new(&c, fault.clone()),
                ManualClock::new(0),
                config(mode),
            )
            .await
            .expect("open");
            fault.arm(k);
            assert!(store.compact(&NoProgress).await.is_err(), "{mode:?}: compaction survived a crash at call {k}");
        }
        let had_purge = h.get(Space::Meta, b"purge").await.expect("meta").is_some();
        stats.recovered_purges += had_purge as u64;
        check_recovered(mode, &h, &c, &everything, had_purge, k, Survival::Everything).await;
        stats.crash_points += 1;
        k += stride;
    }
    stats
}
