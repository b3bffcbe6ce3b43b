//! The purge beside the foreground, in a whole compaction. Pacing (`compact::pacing`): on a
//! store nobody uses, or whose users' calls stay fast, the purge takes exactly the time of its
//! own writes; while the calls are slow it pauses four times each page's time. Locking: a
//! reader waits for one locked batch of deletions, not for the page. Writes of blocks cost one
//! millisecond of a manual clock each, so the purge phase's time is its work plus its pauses.

use std::{
    pin::pin,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
};

use splitstore_conformance::{
    chain::{small_chain, small_config},
    drive,
    executor::block_on,
    wrap::SlowKv,
};
use splitstore_core::{
    mem::{ManualClock, MemKv, YieldOnce},
    Clock, CompactionReport, Config, Mode, NoProgress, Phase, SplitStore,
};

type Store = SplitStore<SlowKv<MemKv>, ManualClock>;

/// A discard-mode store holding 40 epochs, never compacted, over writes of 1 ms each of the
/// clock it returns, and reads of as many ms as the counter it returns holds (0 to begin
/// with); `cfg` adjusts a small discard-mode configuration.
fn filled_with(cfg: impl FnOnce(Config) -> Config) -> (Store, splitstore_core::Cid, ManualClock, Arc<AtomicU64>) {
    let clock = ManualClock::new(0);
    let read_ms = Arc::new(AtomicU64::new(0));
    let kv = || SlowKv { inner: MemKv::new(), clock: clock.clone(), write_ms: 1, read_ms: read_ms.clone() };
    let cfg = cfg(Config { threshold_finalities: 1_000, ..small_config(Mode::Discard) });
    let store = block_on(SplitStore::open(kv(), kv(), clock.clone(), cfg)).expect("open");
    let mut chain = small_chain(81);
    let mut last = None;
    for _ in 0..40 {
        let e = chain.next_epoch();
        block_on(store.put_many(e.blocks.clone())).expect("put");
        assert!(block_on(store.head_change(&[], std::slice::from_ref(&e.tipset))).expect("head").is_none());
        last = Some(e.tipset[0]);
    }
    (store, last.expect("a head"), clock, read_ms)
}

/// [`filled_with`] pages of 16 dead-list entries, pacing after 5 ms with `factor`, a call of
/// 3 ms or more counting as slow.
fn filled(factor: u32) -> (Store, splitstore_core::Cid, Arc<AtomicU64>) {
    let (store, head, _, read_ms) = filled_with(|c| Config {
        batch_size: 16,
        purge_pace_after_ms: 5,
        purge_sleep_factor: factor,
        pace_slow_call_ms: 3,
        ..c
    });
    (store, head, read_ms)
}

/// A compaction of `store` while a reader gets `head` over and over, yielding between gets.
fn compact_beside_a_reader(store: &Store, head: &splitstore_core::Cid) -> CompactionReport {
    let reader = async {
        loop {
            assert!(store.get(head).await.expect("get").is_some());
            YieldOnce::default().await;
        }
    };
    let (report, _) = drive::finish_beside(pin!(store.compact(&NoProgress)), pin!(reader), 10_000_000);
    report.expect("compact")
}

fn purge_ms(r: &CompactionReport) -> u64 {
    r.phases.iter().find(|(p, _)| *p == Phase::Purge).map(|(_, ms)| *ms).expect("a purge phase")
}

/// The purge's time on an idle store, with pacing off and on (default factor); on a store a
/// reader uses throughout with fast calls; and with calls the store sees as slow.
#[test]
fn the_purge_pauses_only_for_a_slowed_foreground() {
    let unpaced = {
        let (store, _, _) = filled(0);
        block_on(store.compact(&NoProgress)).expect("compact")
    };
    let work = purge_ms(&unpaced);
    assert!(unpaced.purged > 100 && work > 10, "{} purged in {work} ms", unpaced.purged);

    let (store, _, _) = filled(4);
    let idle = block_on(store.compact(&NoProgress)).expect("compact");
    assert_eq!(idle.purged, unpaced.purged);
    assert_eq!((purge_ms(&idle), idle.purge_paused_ms), (work, 0), "nobody used the store: no pause");

    let (store, head, _) = filled(4);
    let before = block_on(store.info()).expect("info").metrics;
    let fast = compact_beside_a_reader(&store, &head);
    assert_eq!(fast.purged, unpaced.purged);
    let metrics = block_on(store.info()).expect("info").metrics;
    // At least one read between every two writes of the purge.
    assert!(metrics.calls - before.calls >= work, "{} calls beside the compaction", metrics.calls - before.calls);
    assert_eq!(metrics.slow_calls, 0);
    assert_eq!((purge_ms(&fast), fast.purge_paused_ms), (work, 0), "a reader whose calls stay fast: no pause");

    let (store, head, read_ms) = filled(4);
    let before = block_on(store.info()).expect("info").metrics;
    read_ms.store(3, Ordering::SeqCst);
    let slow = compact_beside_a_reader(&store, &head);
    assert_eq!(slow.purged, unpaced.purged);
    let metrics = block_on(store.info()).expect("info").metrics;
    // Every get reads hot once: 3 ms each, all slow.
    let calls = metrics.calls - before.calls;
    assert!(calls >= work, "{calls} calls beside the compaction");
    assert_eq!(metrics.slow_calls - before.slow_calls, calls, "every read took 3 ms");
    // Four times each page's time after the first 5 ms; a page's time is at least its writes.
    let paused = slow.purge_paused_ms;
    assert!(paused >= 4 * (work - 6), "slow calls: {paused} ms paused for {work} ms of writes");
    assert!(purge_ms(&slow) >= work + paused, "{} ms purge, {paused} paused", purge_ms(&slow));
    println!(
        "purge of {} blocks: {work} ms of writes; idle {} ms; beside fast reads {} ms; beside slow reads {} ms ({paused} paused)",
        unpaced.purged,
        purge_ms(&idle),
        purge_ms(&fast),
        purge_ms(&slow)
    );
}

/// A purge batch holds the store's exclusive lock while it is decided; between two batches,
/// the readers the release woke run before the next batch takes the lock back. A reader
/// beside an unpaced purge whose dead list is one page of many small batches (each write
/// costing 1 ms) waits at most 1 ms per read over the whole compaction and none during the
/// purge, reads all through the purge, and the store counts exactly the waits the reader saw
/// (`Metrics::lock_wait_ms`). (That a read does not wait for a batch's write in flight is
/// `mem_purge_in_flight.rs`'s to show: here each write completes within one poll.)
#[test]
fn a_reader_waits_for_one_purge_batch_not_for_the_page() {
    let (store, head, clock, _) =
        filled_with(|c| Config { batch_size: 100_000, purge_locked_deletes: 4, purge_sleep_factor: 0, ..c });
    let waits = std::cell::RefCell::new(Vec::new());
    let reader = async {
        loop {
            let start = clock.now_millis();
            assert!(store.get(&head).await.expect("get").is_some());
            waits.borrow_mut().push((start, clock.now_millis() - start));
            YieldOnce::default().await;
        }
    };
    let start = clock.now_millis();
    let (report, _) = drive::finish_beside(pin!(store.compact(&NoProgress)), pin!(reader), 10_000_000);
    let report = report.expect("compact");
    let purge = purge_ms(&report);
    let batches = report.dead.div_ceil(4);
    assert!(purge >= batches && batches > 50, "{} dead in {batches} batches, purge {purge} ms", report.dead);
    let waits = waits.into_inner();
    let longest = waits.iter().map(|&(_, w)| w).max().expect("reads");
    assert!(longest <= 1, "a read waited {longest} ms beside a compaction");
    // The reader read all through the purge, between every two batches or nearly.
    let purge_started =
        start + report.phases.iter().take_while(|(p, _)| *p != Phase::Purge).map(|(_, ms)| ms).sum::<u64>();
    let during: Vec<u64> = waits.iter().filter(|&&(at, _)| at >= purge_started).map(|&(_, w)| w).collect();
    assert!(during.len() as u64 >= batches / 2, "{} reads during a purge of {batches} batches", during.len());
    assert_eq!(during.iter().max(), Some(&0), "a read waited during the purge");
    let counted = block_on(store.info()).expect("info").metrics.lock_wait_ms;
    assert_eq!(counted, waits.iter().map(|&(_, w)| w).sum::<u64>(), "the store's count of the waits");
}

/// Small locked writes are for a store in use: on an idle store the purge deletes
/// `purge_idle_locked_deletes` entries per write, beside a reader `purge_locked_deletes`.
#[test]
fn the_purge_writes_small_batches_only_while_the_store_is_used() {
    let cfg = |c| Config {
        batch_size: 100_000,
        purge_locked_deletes: 4,
        purge_idle_locked_deletes: 64,
        purge_sleep_factor: 0,
        ..c
    };
    let (store, _, _, _) = filled_with(cfg);
    let idle = block_on(store.compact(&NoProgress)).expect("compact");
    assert!(idle.dead > 4 * 64, "{} dead", idle.dead);
    // One page; each write of blocks costs 1 ms.
    assert_eq!(purge_ms(&idle), idle.dead.div_ceil(64), "{} dead", idle.dead);

    let (store, head, _, _) = filled_with(cfg);
    let used = compact_beside_a_reader(&store, &head);
    assert_eq!(used.dead, idle.dead);
    assert!(
        purge_ms(&used) + 64 >= used.dead.div_ceil(4),
        "beside a reader: {} ms of writes for {} dead",
        purge_ms(&used),
        used.dead
    );
}
