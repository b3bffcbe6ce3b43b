//! The crash matrix: a full compaction is run once to count its backend calls, then once per
//! call `k` with the process "dying" at call `k`; what survives is reopened and must be a
//! consistent store that lost nothing live (and, in universal mode, nothing at all).

use std::collections::HashSet;

use splitstore_core::{
    kv::Space,
    mem::{ManualClock, MemKv},
    Config, Mode, NoProgress, SplitStore,
};

use crate::{
    chain::{blocks as hot_blocks, keys, small_chain, small_config, universe_of},
    oracle::{header, key_of, links},
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

fn image(kv: &MemKv, s: Survival) -> MemKv {
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
        drop(store.head_change(&[], &[e.tipset.clone()]).await.expect("head"));
    }
    store.close().await.expect("close");
    (hot.crash_image(0), cold.crash_image(0))
}

/// Runs the matrix for `mode` over every `stride`-th call. Panics on the first violation,
/// naming the crash point.
pub async fn crash_matrix(mode: Mode, seed: u64, epochs: usize, stride: u64) -> CrashStats {
    let (base_hot, base_cold) = base_store(mode, seed, epochs).await;
    let everything: HashSet<Vec<u8>> = keys(&base_hot, Space::Blocks).await;

    // One clean run to count the calls.
    let fault = Fault::new();
    let (h, c) = (base_hot.crash_image(0), base_cold.crash_image(0));
    let store = SplitStore::open(FaultKv::new(h, fault.clone()), FaultKv::new(c, fault.clone()), ManualClock::new(0), config(mode))
        .await
        .expect("open");
    fault.reset_ops();
    store.compact(&NoProgress).await.expect("clean compaction");
    let calls = fault.ops();
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
async fn check_recovered(
    mode: Mode,
    hot: &MemKv,
    cold: &MemKv,
    everything: &HashSet<Vec<u8>>,
    had_purge: bool,
    k: u64,
    s: Survival,
) {
    let at = format!("{mode:?}, crash at call {k}, {s:?}");
    let store = SplitStore::open(hot.clone(), cold.clone(), ManualClock::new(0), config(mode))
        .await
        .unwrap_or_else(|e| panic!("{at}: reopen failed: {e}"));
    let info = store.info().await.expect("info");
    assert!(!info.pending_recovery, "{at}: recovery left a purge pending");
    for space in [Space::Dead, Space::ColdList] {
        assert!(hot.keys(space).is_empty(), "{at}: {space:?} list left after recovery");
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
    for (key, bytes) in hot_blocks(hot).await {
        if header(&bytes).is_some() {
            continue;
        }
        for l in links(&bytes).unwrap_or_default() {
            let unitary = l.hash().code() == 0 || matches!(l.codec(), 0xf101 | 0xf102);
            if l.codec() == 0x71 && !unitary && !u.blocks.contains_key(&key_of(&l)) {
                panic!("{at}: hot block {key:02x?} lost its child {l}");
            }
        }
    }
    let hot_before = keys(hot, Space::Blocks).await;
    if had_purge {
        // Recovery finished the interrupted purge: hot is exactly the live set.
        let expected: HashSet<Vec<u8>> = live.present.intersection(everything).cloned().collect();
        let stale: Vec<_> = hot_before.difference(&expected).take(3).collect();
        let lost: Vec<_> = expected.difference(&hot_before).take(3).collect();
        assert!(stale.is_empty() && lost.is_empty(), "{at}: recovery did not finish the purge exactly: stale {stale:02x?}, lost {lost:02x?}");
    }
    // The recovered store compacts to exactly the live set.
    let cold_before = keys(cold, Space::Blocks).await;
    let report = store.compact(&NoProgress).await.unwrap_or_else(|e| panic!("{at}: compaction after recovery: {e}"));
    verify_compaction(&store, &report, &hot_before, &cold_before, &u).await;
}
