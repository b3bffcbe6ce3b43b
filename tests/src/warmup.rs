//! Warmup: a store opened with an empty hot store beside a cold archive copies headers, the
//! tipset-key objects and one finality of state into hot at its first head change, each block
//! once, and records the epoch; a crash at any backend call of it leaves a store whose next
//! warmup completes it to exactly the same hot store.
//!
//! The expected hot store is the oracle's [`Universe::chain_set`] from the head with state of
//! headers at or above `head − F` (and genesis), no messages, over the archive.

use std::collections::HashSet;

use splitstore_core::{
    config::Trigger,
    kv::{Kv, Space, WriteBatch},
    mem::{ManualClock, MemKv},
    synth::Epoch,
    Config, Mode, NoProgress, SplitStore,
};

use crate::{
    chain::{keys, small_chain, small_config, universe_in},
    crash::{image, Survival},
    fault::{Fault, FaultKv},
    oracle::key_of,
};

/// An archive: `epochs` epochs of the small chain written straight into `cold`. Returns the
/// epochs (the last is the head).
pub async fn archive<K: Kv>(cold: &K, seed: u64, epochs: usize) -> Vec<Epoch> {
    let mut chain = small_chain(seed);
    let mut out = Vec::new();
    for _ in 0..epochs {
        let e = chain.next_epoch();
        let mut batch = WriteBatch::new();
        for (c, b) in &e.blocks {
            batch.put(Space::Blocks, key_of(c), b.clone());
        }
        cold.write(batch).await.expect("archive");
        out.push(e);
    }
    cold.flush().await.expect("flush");
    out
}

/// What the warmup must leave in hot: headers to genesis, stored tipset-key objects, state of
/// headers at or above `head − F` and of genesis, over the blocks of `cold`.
pub async fn expected_hot<K: Kv>(cold: &K, head: &Epoch, cfg: &Config) -> HashSet<Vec<u8>> {
    let u = universe_in(cold).await;
    let from = head.height - cfg.finality;
    let set = u.chain_set(&head.tipset, |h| (false, h >= from || h == 0));
    assert!(set.missing.is_empty(), "the archive is whole");
    set.present
}

/// The warmup on backends from `make`: decided by the first head change, copies exactly the
/// expected set, each block once, records its epoch as the base epoch, is not decided again
/// (nor after reopening), and the store compacts normally afterwards. Returns blocks copied.
pub async fn warmup_from_an_archive<K: Kv>(make: &dyn Fn() -> K, mode: Mode) -> u64 {
    let cfg = small_config(mode);
    let (hot, cold) = (make(), make());
    let epochs = archive(&cold, 61, 30).await;
    let head = epochs.last().expect("epochs");
    let expected = expected_hot(&cold, head, &cfg).await;
    let copied = {
        let store = SplitStore::open(&hot, &cold, ManualClock::new(0), cfg.clone()).await.expect("open");
        let out = store.head_change_outcome(&[], std::slice::from_ref(&head.tipset)).await.expect("head");
        assert_eq!(out.trigger, Trigger::Warmup, "{mode:?}");
        let pending = out.compaction.expect("a warmup");
        assert!(pending.is_warmup());
        let report = store.run_compaction(pending, &NoProgress).await.expect("warmup");
        let w = report.warmup.expect("a warmup report");
        let hot_now = keys(&hot, Space::Blocks).await;
        let extra: Vec<_> = hot_now.difference(&expected).take(3).collect();
        let lacking: Vec<_> = expected.difference(&hot_now).take(3).collect();
        assert!(
            extra.is_empty() && lacking.is_empty(),
            "{mode:?}: hot is not the warm set: {extra:02x?} {lacking:02x?}"
        );
        assert_eq!(w.copied as usize, expected.len(), "{mode:?}: each block copied once");
        assert_eq!((w.already_hot, w.missing), (0, 0));
        let info = store.info().await.expect("info");
        assert_eq!(info.warmup_epoch, Some(head.height));
        assert_eq!(info.base_epoch, head.height);
        assert_eq!(info.compactions, 0, "a warmup is not a compaction");
        store.close().await.expect("close");
        w.copied
    };
    // Not again, in this process or the next; the chain goes on and compacts as usual.
    let store = SplitStore::open(&hot, &cold, ManualClock::new(0), cfg.clone()).await.expect("reopen");
    assert_eq!(store.info().await.expect("info").warmup_epoch, Some(head.height));
    let mut chain = small_chain(61);
    for _ in 0..epochs.len() {
        chain.next_epoch();
    }
    let mut compacted = 0;
    for _ in 0..3 * cfg.threshold() {
        let e = chain.next_epoch();
        store.put_many(e.blocks.clone()).await.expect("put");
        let out = store.head_change_outcome(&[], std::slice::from_ref(&e.tipset)).await.expect("head");
        assert_ne!(out.trigger, Trigger::Warmup);
        if let Some(p) = out.compaction {
            assert!(e.height > head.height + cfg.threshold(), "compacted at {} right after the warmup", e.height);
            store.run_compaction(p, &NoProgress).await.expect("compaction");
            compacted += 1;
        }
    }
    assert!(compacted > 0);
    assert_eq!(store.check().await.expect("check").missing, 0);
    copied
}

/// A store with nothing in cold, or with blocks in hot, never warms up.
pub async fn no_warmup_without_an_archive<K: Kv>(make: &dyn Fn() -> K) {
    let cfg = small_config(Mode::Universal);
    let (hot, cold) = (make(), make());
    let store = SplitStore::open(&hot, &cold, ManualClock::new(0), cfg.clone()).await.expect("open");
    let mut chain = small_chain(62);
    let e = chain.next_epoch();
    store.put_many(e.blocks.clone()).await.expect("put");
    let out = store.head_change_outcome(&[], std::slice::from_ref(&e.tipset)).await.expect("head");
    assert_ne!(out.trigger, Trigger::Warmup, "an empty cold store is nothing to warm from");
    drop(store);
    let cold2 = make();
    archive(&cold2, 63, 3).await;
    let store = SplitStore::open(&hot, &cold2, ManualClock::new(0), cfg).await.expect("open");
    let out = store.head_change_outcome(&[], std::slice::from_ref(&e.tipset)).await.expect("head");
    assert_ne!(out.trigger, Trigger::Warmup, "a hot store with blocks is not warmed");
}

/// What a warmup crash matrix covered.
#[derive(Clone, Copy, Debug, Default)]
pub struct WarmupCrashStats {
    /// Backend calls in one warmup.
    pub calls: u64,
    /// Crash points exercised.
    pub crash_points: u64,
    /// Of those, how many left part of the copy in hot.
    pub partial: u64,
}

/// Crashes a warmup at every `stride`-th backend call with each survival variant; the crashed
/// store is reopened, its first head change warms again (unless the done record survived) and
/// the hot store ends exactly the expected set.
pub async fn warmup_crash_matrix(mode: Mode, stride: u64) -> WarmupCrashStats {
    let cfg = small_config(mode);
    let (base_hot, base_cold) = (MemKv::with_crash_tracking(), MemKv::with_crash_tracking());
    let epochs = archive(&base_cold, 64, 24).await;
    let head = epochs.last().expect("epochs").clone();
    let expected = expected_hot(&base_cold, &head, &cfg).await;
    let open_faulty = |h: MemKv, c: MemKv, fault: &Fault| {
        SplitStore::open(
            FaultKv::new(h, fault.clone()),
            FaultKv::new(c, fault.clone()),
            ManualClock::new(0),
            cfg.clone(),
        )
    };
    let calls = {
        let fault = Fault::new();
        let store = open_faulty(base_hot.crash_image(0), base_cold.crash_image(0), &fault).await.expect("open");
        let p = store.head_change(&[], std::slice::from_ref(&head.tipset)).await.expect("head").expect("warmup");
        fault.reset_ops();
        store.run_compaction(p, &NoProgress).await.expect("warmup");
        fault.ops()
    };
    let mut stats = WarmupCrashStats { calls, ..WarmupCrashStats::default() };
    let mut k = 0;
    while k < calls {
        for survival in [Survival::DurableOnly, Survival::Half, Survival::Everything] {
            let (h, c) = (base_hot.crash_image(0), base_cold.crash_image(0));
            let fault = Fault::new();
            let store = open_faulty(h.clone(), c.clone(), &fault).await.expect("open");
            let p = store.head_change(&[], std::slice::from_ref(&head.tipset)).await.expect("head").expect("warmup");
            fault.arm(k);
            assert!(store.run_compaction(p, &NoProgress).await.is_err(), "{mode:?}: warmup survived call {k}");
            drop(store);
            let (h2, c2) = (image(&h, survival), image(&c, survival));
            let at = format!("{mode:?}, crash at call {k}, {survival:?}");
            let kept = keys(&h2, Space::Blocks).await;
            assert!(kept.is_subset(&expected), "{at}: hot holds what a warmup never copies");
            stats.partial += u64::from(!kept.is_empty() && kept.len() < expected.len());
            let store = SplitStore::open(&h2, &c2, ManualClock::new(0), cfg.clone())
                .await
                .unwrap_or_else(|e| panic!("{at}: reopen: {e}"));
            let warmed = store.info().await.expect("info").warmup_epoch == Some(head.height);
            let out = store.head_change_outcome(&[], std::slice::from_ref(&head.tipset)).await.expect("head");
            if warmed {
                assert_ne!(out.trigger, Trigger::Warmup, "{at}: a finished warmup ran again");
            } else {
                assert_eq!(out.trigger, Trigger::Warmup, "{at}: an interrupted warmup is not resumed");
                let r = store.run_compaction(out.compaction.expect("warmup"), &NoProgress).await;
                let w = r.unwrap_or_else(|e| panic!("{at}: warmup after the crash: {e}")).warmup.expect("report");
                assert_eq!(w.copied + w.already_hot, expected.len() as u64, "{at}: the walk covers the set once");
            }
            let hot_now = keys(&h2, Space::Blocks).await;
            assert_eq!(hot_now, expected, "{at}: hot after the warmup");
            assert_eq!(store.info().await.expect("info").base_epoch, head.height, "{at}: base epoch");
            stats.crash_points += 1;
        }
        k += stride;
    }
    stats
}
