//! The purge's pacing (`Config::purge_pause`) in a whole compaction: on a store nobody uses,
//! the purge takes exactly the time of its own writes; while a reader uses the store, it
//! pauses four times each page's time. Writes of blocks cost one millisecond of a manual
//! clock each, so the purge phase's time is its work plus its pauses.

use std::pin::pin;

use splitstore_conformance::{
    chain::{small_chain, small_config},
    drive,
    executor::block_on,
    wrap::SlowWritesKv,
};
use splitstore_core::{
    mem::{ManualClock, MemKv, YieldOnce},
    CompactionReport, Config, Mode, NoProgress, Phase, SplitStore,
};

type Store = SplitStore<SlowWritesKv<MemKv>, ManualClock>;

/// A discard-mode store holding 40 epochs, never compacted, over writes of 1 ms each.
fn filled(factor: u32) -> (Store, splitstore_core::Cid) {
    let clock = ManualClock::new(0);
    let kv = || SlowWritesKv { inner: MemKv::new(), clock: clock.clone(), ms: 1 };
    let cfg = Config {
        threshold_finalities: 1_000,
        batch_size: 16,
        purge_pace_after_ms: 5,
        purge_sleep_factor: factor,
        ..small_config(Mode::Discard)
    };
    let store = block_on(SplitStore::open(kv(), kv(), clock.clone(), cfg)).expect("open");
    let mut chain = small_chain(81);
    let mut last = None;
    for _ in 0..40 {
        let e = chain.next_epoch();
        block_on(store.put_many(e.blocks.clone())).expect("put");
        assert!(block_on(store.head_change(&[], std::slice::from_ref(&e.tipset))).expect("head").is_none());
        last = Some(e.tipset[0]);
    }
    (store, last.expect("a head"))
}

fn purge_ms(r: &CompactionReport) -> u64 {
    r.phases.iter().find(|(p, _)| *p == Phase::Purge).map(|(_, ms)| *ms).expect("a purge phase")
}

/// The purge's time on an idle store, with pacing off and on (default factor), and on a store
/// a reader uses throughout.
#[test]
fn the_purge_pauses_only_while_the_store_is_used() {
    let unpaced = {
        let (store, _) = filled(0);
        block_on(store.compact(&NoProgress)).expect("compact")
    };
    let work = purge_ms(&unpaced);
    assert!(unpaced.purged > 100 && work > 10, "{} purged in {work} ms", unpaced.purged);

    let (store, _) = filled(4);
    let idle = block_on(store.compact(&NoProgress)).expect("compact");
    assert_eq!(idle.purged, unpaced.purged);
    assert_eq!(purge_ms(&idle), work, "nobody used the store: no pause");

    let (store, head) = filled(4);
    let reader = async {
        loop {
            assert!(store.get(&head).await.expect("get").is_some());
            YieldOnce::default().await;
        }
    };
    let (used, _) = drive::finish_beside(pin!(store.compact(&NoProgress)), pin!(reader), 10_000_000);
    let used = used.expect("compact");
    assert_eq!(used.purged, unpaced.purged);
    let paced = purge_ms(&used);
    // Work, plus four times the work after the first 5 ms.
    assert!(paced >= work + 4 * (work - 6), "a reader used the store: {paced} ms for {work} ms of work");
    println!(
        "purge of {} blocks: {work} ms of work; idle {} ms; with a reader {paced} ms",
        used.purged,
        purge_ms(&idle)
    );
}
