//! Compaction scenarios on the synthetic chain, for every mode, checked against the oracle.

use std::collections::HashSet;

use splitstore_core::{
    key::dag_cbor_blake2b_cid,
    kv::{Kv, Space},
    mem::ManualClock,
    Clock, CompactionReport, Config, Error, Mode, NoProgress, SplitStore,
};

use crate::{
    chain::{apply_epoch, cold_holes, keys, small_chain, small_config, universe_of},
    oracle::{key_of, Universe},
};

/// Checks one finished compaction against the oracle, given the stores' keys before it.
pub async fn verify_compaction<K: Kv>(
    store: &SplitStore<K, ManualClock>,
    report: &CompactionReport,
    hot_before: &HashSet<Vec<u8>>,
    cold_before: &HashSet<Vec<u8>>,
    before: &Universe,
) {
    let mode = store.config().mode;
    let head = store.info().await.expect("info").head.expect("head");
    let live = before.live_set(&head, report.boundary_epoch, report.include_messages_epoch);
    assert!(
        live.missing.is_empty(),
        "the chain itself has missing blocks: {:?}",
        &live.missing[..live.missing.len().min(3)]
    );
    let hot_after = keys(store.hot(), Space::Blocks).await;
    let cold_after = keys(store.cold(), Space::Blocks).await;
    let expected_hot: HashSet<Vec<u8>> = live.present.intersection(hot_before).cloned().collect();
    let extra: Vec<_> = hot_after.difference(&expected_hot).take(3).collect();
    let lost: Vec<_> = expected_hot.difference(&hot_after).take(3).collect();
    assert!(lost.is_empty(), "{mode:?}: live blocks left the hot store: {lost:?}");
    assert!(extra.is_empty(), "{mode:?}: dead blocks stayed hot: {extra:?}");
    let dead: HashSet<Vec<u8>> = hot_before.difference(&expected_hot).cloned().collect();
    assert_eq!(report.purged as usize, dead.len(), "{mode:?}: purged count");
    let expected_cold: HashSet<Vec<u8>> = match mode {
        Mode::Discard => cold_before.clone(),
        Mode::Universal => cold_before.union(&dead).cloned().collect(),
        Mode::Messages => {
            // The reference's rule: every block of an old message or receipt DAG goes to
            // cold; here whole, with the blocks that also stay hot (shared with live data,
            // invariant I7).
            let roots = before.old_message_roots(&head, report.include_messages_epoch);
            let old = before.closure(&roots).present;
            cold_before.union(&hot_before.intersection(&old).cloned().collect()).cloned().collect()
        }
    };
    assert_eq!(cold_after, expected_cold, "{mode:?}: cold store contents");
    let holes = cold_holes(store.hot(), store.cold()).await;
    assert!(holes.is_empty(), "{mode:?}: cold blocks link blocks in neither store: {holes:?}");
    for space in [Space::Dead, Space::ColdList] {
        assert!(keys(store.hot(), space).await.is_empty(), "{mode:?}: {space:?} list left behind");
    }
    let check = store.check().await.expect("check");
    assert_eq!(check.missing, 0, "{mode:?}: check found missing live blocks {:?}", check.missing_cids);
}

/// Grows a chain, lets compactions trigger from head changes, and checks each against the
/// oracle. Returns the number of compactions run.
pub async fn grow_and_compact<K: Kv>(make: &dyn Fn() -> K, mode: Mode, seed: u64, epochs: usize) -> u64 {
    let clock = ManualClock::new(1_000_000);
    let store = SplitStore::open(make(), make(), clock, small_config(mode)).await.expect("open");
    let mut chain = small_chain(seed);
    let mut compactions = 0;
    let mut written = Universe::default();
    for _ in 0..epochs {
        let epoch = chain.next_epoch();
        written.extend(epoch.blocks.iter().map(|(c, b)| (key_of(c), b.clone())));
        if let Some(pending) = apply_epoch(&store, &epoch).await {
            let head = epoch.tipset.clone();
            let b = store.config().boundaries(epoch.height);
            let gen_missing = written.live_set(&head, b.boundary, b.include_messages).missing;
            assert!(gen_missing.is_empty(), "the generated chain has dangling links: {gen_missing:?}");
            let hot_before = keys(store.hot(), Space::Blocks).await;
            let cold_before = keys(store.cold(), Space::Blocks).await;
            let before = universe_of(store.hot(), store.cold()).await;
            let report = store.run_compaction(pending, &NoProgress).await.expect("compaction");
            verify_compaction(&store, &report, &hot_before, &cold_before, &before).await;
            compactions += 1;
        }
    }
    let info = store.info().await.expect("info");
    assert_eq!(info.compactions, compactions);
    assert!(!info.compacting && !info.pending_recovery);
    compactions
}

/// Every mode, on a chain long enough for several compactions; the hot store stays bounded.
pub async fn all_modes<K: Kv>(make: &dyn Fn() -> K) {
    for (i, mode) in [Mode::Discard, Mode::Universal, Mode::Messages].into_iter().enumerate() {
        let n = grow_and_compact(make, mode, 11 + i as u64, 60).await;
        assert!(n >= 3, "{mode:?}: only {n} compactions in 60 epochs");
    }
}

/// Identity CIDs are never stored (nor deleted); unitary links are never walked; a delete removes a block.
pub async fn identity_and_unitary<K: Kv>(make: &dyn Fn() -> K) {
    let store =
        SplitStore::open(make(), make(), ManualClock::new(0), small_config(Mode::Universal)).await.expect("open");
    let mh = cid::multihash::Multihash::<64>::wrap(0x00, b"inline").expect("fits");
    let id = cid::Cid::new_v1(0x55, mh);
    store.put(&id, b"inline".to_vec()).await.expect("identity put is a no-op");
    assert!(store.has(&id).await.expect("has"));
    assert_eq!(store.get(&id).await.expect("get").as_deref(), Some(&b"inline"[..]));
    assert!(keys(store.hot(), Space::Blocks).await.is_empty(), "identity block was stored");
    let b = dag_cbor_blake2b_cid(b"\x40");
    store.put(&b, b"\x40".to_vec()).await.expect("put");
    store.delete(&id).await.expect("deleting an identity CID is a no-op");
    assert!(store.has(&id).await.expect("has"));
    store.delete(&b).await.expect("delete");
    assert!(!store.has(&b).await.expect("has"));
    assert!(keys(store.hot(), Space::Blocks).await.is_empty(), "a deleted block stays in hot");
    assert!(matches!(store.compact(&NoProgress).await, Err(Error::NoHead)));
}

/// A compaction interrupted by `close` leaves a store that reopens consistent and compacts.
pub async fn close_interrupts<K: Kv + Clone>(make: &dyn Fn() -> K) {
    let (hot, cold) = (make(), make());
    let clock = ManualClock::new(0);
    let store =
        SplitStore::open(hot.clone(), cold.clone(), clock.clone(), small_config(Mode::Universal)).await.expect("open");
    let mut chain = small_chain(5);
    for _ in 0..20 {
        let e = chain.next_epoch();
        store.put_many(e.blocks.clone()).await.expect("put");
        let _ = store.head_change(&[], std::slice::from_ref(&e.tipset)).await.expect("head");
    }
    let result = std::cell::RefCell::new(None);
    let mut ex = crate::executor::SeededExecutor::new(3);
    ex.spawn(async { *result.borrow_mut() = Some(store.compact(&NoProgress).await) });
    ex.spawn(async {
        for _ in 0..7 {
            store.clock().yield_now().await;
        }
        store.close().await.expect("close");
    });
    ex.run(10_000_000);
    drop(ex);
    assert!(matches!(result.into_inner(), Some(Err(Error::Closed))), "compaction should stop when closing");
    let store = SplitStore::open(hot, cold, clock, small_config(Mode::Universal)).await.expect("reopen");
    let report = store.compact(&NoProgress).await.expect("compaction after reopen");
    assert!(report.purged > 0);
    assert_eq!(store.check().await.expect("check").missing, 0);
}

/// The fingerprint mark set and the exact one give identical compactions.
pub async fn fingerprint_and_exact_agree<K: Kv>(make: &dyn Fn() -> K) {
    use splitstore_core::markset::MarkSetKind;
    let mut outcomes = Vec::new();
    for kind in [MarkSetKind::Fingerprint, MarkSetKind::Exact] {
        let store = SplitStore::open_with(make(), make(), ManualClock::new(0), small_config(Mode::Universal), kind)
            .await
            .expect("open");
        let mut chain = small_chain(99);
        let mut reports = Vec::new();
        for _ in 0..40 {
            let e = chain.next_epoch();
            if let Some(p) = apply_epoch(&store, &e).await {
                let r = store.run_compaction(p, &NoProgress).await.expect("compaction");
                reports.push((r.marked, r.dead, r.purged, r.moved));
            }
        }
        outcomes.push((reports, keys(store.hot(), Space::Blocks).await, keys(store.cold(), Space::Blocks).await));
    }
    assert!(!outcomes[0].0.is_empty());
    assert_eq!(outcomes[0], outcomes[1], "fingerprint and exact mark sets disagree");
}

/// Protected CIDs survive a compaction with their DAGs, though nothing else references them.
pub async fn protectors_keep_their_dags<K: Kv>(make: &dyn Fn() -> K) {
    struct Keep(Vec<cid::Cid>);
    impl splitstore_core::Protector for Keep {
        fn protected(&self) -> Vec<cid::Cid> {
            self.0.clone()
        }
    }
    let store = SplitStore::open(make(), make(), ManualClock::new(0), small_config(Mode::Discard)).await.expect("open");
    let mut chain = small_chain(8);
    let first = chain.next_epoch();
    apply_epoch(&store, &first).await;
    // The genesis state root of a *different* chain: referenced by nothing in this one.
    let mut other = small_chain(9);
    let stray = other.next_epoch();
    store.put_many(stray.blocks.clone()).await.expect("put");
    store.add_protector(Box::new(Keep(vec![stray.state_root])));
    let mut ran = 0;
    for _ in 0..40 {
        let e = chain.next_epoch();
        if let Some(p) = apply_epoch(&store, &e).await {
            store.run_compaction(p, &NoProgress).await.expect("compaction");
            ran += 1;
        }
    }
    assert!(ran >= 2);
    let u = universe_of(store.hot(), store.cold()).await;
    let c = u.closure(&[stray.state_root]);
    assert!(u.blocks.contains_key(&key_of(&stray.state_root)) && c.missing.is_empty(), "protected DAG lost");
}

/// The trigger rules through real head changes, as the reference's `HeadChange` has them:
/// heads older than `SyncGapTime` do not compact, nor heads within ±F of an upgrade
/// (`isNearUpgrade`); a stale head during a compaction pauses it (`waitForSync`) until a head
/// younger than `SyncWaitTime` arrives; the purge waits for a fresh head marked inside the
/// critical section.
pub async fn trigger_and_sync_rules<K: Kv>(make: &dyn Fn() -> K) {
    use splitstore_core::config::Trigger;
    let clock = ManualClock::new(0);
    let mut cfg = small_config(Mode::Discard);
    cfg.sync_gap_secs = Some(60);
    // Finality 4: heads 10..=18 are within one finality of the upgrade, bounds included (the
    // reference's `isNearUpgrade`).
    cfg.upgrade_epochs = vec![14];
    let store = SplitStore::open(make(), make(), clock.clone(), cfg).await.expect("open");
    let mut chain = small_chain(4);
    let mut seen = Vec::new();
    let mut pending = None;
    for i in 0..60 {
        let e = chain.next_epoch();
        // The first heads arrive an hour late (a node catching up), then in real time.
        let lag_s = if i < 5 { 3600 } else { 5 };
        clock.set((e.timestamp + lag_s) * 1000);
        store.put_many(e.blocks.clone()).await.expect("put");
        let out = store.head_change_outcome(&[], std::slice::from_ref(&e.tipset)).await.expect("head");
        seen.push((e.height, out.trigger));
        if let Some(p) = out.compaction {
            assert!(e.height > 18, "compacted at {} inside the upgrade window", e.height);
            pending = Some(p);
            break;
        }
    }
    assert!(seen.iter().any(|(_, t)| *t == Trigger::OutOfSync), "old heads must not compact: {seen:?}");
    assert!(seen.iter().any(|(_, t)| *t == Trigger::NearUpgrade), "heads near the upgrade must not compact: {seen:?}");
    let pending = pending.expect("a fresh head past the threshold compacts");
    // A stale head arrives while compacting: the compaction pauses until a fresh one does.
    // Then, as on a live node, a fresh head every block time: the purge waits until one is
    // marked inside the critical section.
    let stale = chain.next_epoch();
    let later: Vec<_> = (0..20).map(|_| chain.next_epoch()).collect();
    let result = std::cell::RefCell::new(None);
    let log = crate::drive::PhaseLog::default();
    let heads_in_critical = std::cell::Cell::new(0);
    let mut ex = crate::executor::SeededExecutor::new(1);
    ex.spawn(async { *result.borrow_mut() = Some(store.run_compaction(pending, &log).await) });
    ex.spawn(async {
        store.put_many(stale.blocks.clone()).await.expect("put");
        clock.advance(10 * 60 * 1000); // ten minutes later this head is stale
        store.head_change(&[], std::slice::from_ref(&stale.tipset)).await.expect("stale head");
        for _ in 0..500 {
            store.clock().yield_now().await;
        }
        assert!(store.is_compacting(), "compaction must pause while out of sync");
        for e in &later {
            if !store.is_compacting() {
                break;
            }
            if log.seen(splitstore_core::Phase::Critical) {
                heads_in_critical.set(heads_in_critical.get() + 1);
            }
            store.put_many(e.blocks.clone()).await.expect("put");
            clock.set(e.timestamp * 1000 + 1000);
            store.head_change(&[], std::slice::from_ref(&e.tipset)).await.expect("fresh head");
            for _ in 0..200 {
                store.clock().yield_now().await;
            }
        }
    });
    ex.run(10_000_000);
    drop(ex);
    let report = result.into_inner().expect("ran").expect("compaction completes after resync");
    assert!(report.purged > 0);
    assert!(heads_in_critical.get() > 0, "the purge began before a fresh head reached the critical section");
}

/// The reference's `waitForMissingRefs`: references found missing while protecting are walked
/// `missing_retries` times, walk `i` after waiting `i` units (0, 1 and 2 minutes there); what
/// appears meanwhile has its DAG kept, what never does is counted as missing.
pub async fn missing_reference_retries<K: Kv>(make: &dyn Fn() -> K) {
    use splitstore_core::Phase;
    for arrives in [false, true] {
        let cfg = Config { missing_retries: 3, missing_retry_wait_ms: 1000, ..small_config(Mode::Discard) };
        let store = SplitStore::open(make(), make(), ManualClock::new(0), cfg).await.expect("open");
        let mut chain = small_chain(9);
        for _ in 0..16 {
            drop(apply_epoch(&store, &chain.next_epoch()).await);
        }
        let pending = store.begin_compaction().expect("begin");
        // A parent written before its child, during the transaction: its protection finds the
        // child missing.
        let (grandchild, g) = crate::chain::node(&[], 0x6701);
        let (child, c) = crate::chain::node(&[grandchild], 0x6702);
        let (parent, p) = crate::chain::node(&[child], 0x6703);
        store.put(&parent, p).await.expect("parent");
        let log = crate::drive::PhaseLog::default();
        let result = std::cell::RefCell::new(None);
        let mut ex = crate::executor::SeededExecutor::new(2);
        ex.spawn(async { *result.borrow_mut() = Some(store.run_compaction(pending, &log).await) });
        ex.spawn(async {
            if !arrives {
                return;
            }
            while !log.seen(Phase::Retry) {
                store.clock().yield_now().await;
            }
            // The child arrives during the retries, written without its own transactional
            // reference (as a block of a DAG already named): only the retry's walk finds it.
            store
                .hot()
                .write({
                    let mut b = splitstore_core::kv::WriteBatch::new();
                    b.put(Space::Blocks, key_of(&grandchild), g.clone());
                    b.put(Space::Blocks, key_of(&child), c.clone());
                    b
                })
                .await
                .expect("child");
        });
        ex.run(10_000_000);
        drop(ex);
        let report = result.into_inner().expect("ran").expect("compaction");
        let retry_ms: u64 = report.phases.iter().filter(|(p, _)| *p == Phase::Retry).map(|(_, ms)| ms).sum();
        let hot = crate::chain::keys(store.hot(), Space::Blocks).await;
        if arrives {
            assert!(hot.contains(&key_of(&child)) && hot.contains(&key_of(&grandchild)), "the late child was purged");
            assert!(retry_ms < 3000, "the retries went on after the child arrived ({retry_ms} ms)");
        } else {
            assert_eq!(retry_ms, 3000, "three walks after 0, 1 and 2 s");
            assert!(report.missing >= 1, "the missing child is counted");
        }
        assert!(hot.contains(&key_of(&parent)), "the parent was purged");
    }
}

/// Dropping a running compaction at any await is survivable, in every mode: the same store
/// keeps serving, rescues what it is given, and its next compaction (or a fresh process, from
/// what was durable or from everything written) finishes the job. The store keeps a hot key
/// list and compacted once before, so the dropped compaction collects from the list; the next
/// one leaves nothing that a fresh process's scan would delete. Returns how many drop points
/// left a purge to resume.
pub async fn dropped_compaction_future(stride: usize) -> u64 {
    let mut resumed = 0;
    for mode in [Mode::Discard, Mode::Universal, Mode::Messages] {
        resumed += dropped_compaction_future_in(mode, stride).await;
    }
    resumed
}

async fn dropped_compaction_future_in(mode: Mode, stride: usize) -> u64 {
    use splitstore_core::mem::MemKv;
    use std::{
        future::Future,
        pin::pin,
        task::{Context, Poll},
    };
    let waker = futures::task::noop_waker();
    let mut resumed = 0;
    let mut k = 1;
    loop {
        let (hot, cold) = (MemKv::with_crash_tracking(), MemKv::with_crash_tracking());
        let config = Config { hot_key_list_bytes: 1 << 20, ..small_config(mode) };
        let store = SplitStore::open(&hot, &cold, ManualClock::new(0), config.clone()).await.expect("open");
        let mut chain = small_chain(77);
        let mut old = Vec::new();
        for i in 0..20 {
            let e = chain.next_epoch();
            // Not headers: a header's own DAG reaches old state, which goes by design.
            old.extend(e.blocks.iter().filter(|(c, _)| !e.tipset.contains(c)).map(|(c, _)| *c));
            store.put_many(e.blocks.clone()).await.expect("put");
            drop(store.head_change(&[], std::slice::from_ref(&e.tipset)).await.expect("head"));
            if i == 12 {
                store.compact(&NoProgress).await.expect("earlier compaction");
            }
        }
        store.hot().flush().await.expect("flush");
        let pending = store.begin_compaction().expect("begin");
        let finished = {
            let mut fut = pin!(store.run_compaction(pending, &NoProgress));
            let mut cx = Context::from_waker(&waker);
            let mut done = false;
            for _ in 0..k {
                if let Poll::Ready(r) = fut.as_mut().poll(&mut cx) {
                    r.expect("compaction");
                    done = true;
                    break;
                }
            }
            done
        };
        if finished {
            return resumed;
        }
        let at = format!("{mode:?}, drop at poll {k}");
        let info = store.info().await.expect("info");
        assert!(!info.compacting, "{at}: still marked as compacting");
        // Dropped after its purge record, the compaction's transaction stays open: what the
        // store serves now is protected by it. Dropped before, the compaction is gone, and
        // nothing done now binds the next one.
        let in_txn = info.pending_recovery;
        resumed += in_txn as u64;
        // The store keeps serving: read something old and write a block linking it.
        let mut touched = Vec::new();
        for c in old.iter().step_by(37) {
            if store.get(c).await.expect("get").is_some() {
                let (n, b) = crate::chain::node(&[*c], k as u64);
                store.put(&n, b).await.expect("put");
                touched.push(*c);
                touched.push(n);
            }
        }
        // Touched blocks in `u` (all of them with `all`) are there with their DAG.
        let check = |u: &Universe, all: bool, when: &str| {
            for t in &touched {
                if !u.blocks.contains_key(&key_of(t)) {
                    assert!(!all, "{at}, {when}: {t} lost");
                    continue;
                }
                assert!(u.closure(&[*t]).missing.is_empty(), "{at}, {when}: DAG of {t} broken");
            }
        };
        // A fresh process recovers and keeps what it finds touched: from everything written…
        for keep in [usize::MAX, 0] {
            let (h, c) = (hot.crash_image(keep), cold.crash_image(keep));
            let image = universe_of(&h, &c).await;
            let other = SplitStore::open(h, c, ManualClock::new(0), config.clone()).await.expect("reopen");
            assert_eq!(other.check().await.expect("check").missing, 0, "{at}: reopened keeping {keep}");
            let after = universe_of(other.hot(), other.cold()).await;
            // …or from what was durable: a touched block the crash kept stays, with its DAG.
            let kept: Vec<_> = touched.iter().filter(|t| image.blocks.contains_key(&key_of(t))).collect();
            let lost: Vec<_> = kept.iter().filter(|t| !after.blocks.contains_key(&key_of(t))).collect();
            assert!(lost.is_empty(), "{at}: recovery keeping {keep} deleted touched blocks {lost:?}");
            check(&after, keep == usize::MAX, &format!("reopened keeping {keep} (purge pending: {in_txn})"));
        }
        // …and so does the same store's next compaction, which finishes the purge.
        let next = store.compact(&NoProgress).await.unwrap_or_else(|e| panic!("{at}: next compaction: {e}"));
        assert_eq!(store.check().await.expect("check").missing, 0);
        if in_txn {
            check(&universe_of(&hot, &cold).await, true, "after the next compaction");
        }
        // A run that finished the dropped one's purge kept what that transaction protected;
        // the compaction after it decides afresh. Whether that one collected from the list
        // (dropped before its collect took it) or scanned (after: the list it started was never
        // filled), it left nothing dead behind.
        let next = if next.resumed {
            store.compact(&NoProgress).await.unwrap_or_else(|e| panic!("{at}: compaction after: {e}"))
        } else {
            next
        };
        drop(store);
        let fresh = SplitStore::open(&hot, &cold, ManualClock::new(0), config.clone()).await.expect("reopen");
        let scanned = fresh.compact(&NoProgress).await.unwrap_or_else(|e| panic!("{at}: scan: {e}"));
        assert_eq!(scanned.dead, 0, "{at}: the next compaction (listed: {}) left dead blocks", next.hot_keys_listed);
        k += stride;
    }
}
