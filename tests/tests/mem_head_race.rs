//! Concurrent head changes and imports, in every seeded interleaving of their backend calls:
//! they apply one at a time, so the head in memory and the durable head record name the same
//! tipset, and an import's head-policy verdict still holds when its change applies. Writes
//! complete some time after they are applied, as on a real backend.

use splitstore_conformance::{
    executor::{block_on, SeededExecutor},
    wrap::{SteppedWritesKv, WriteSteps, YieldKv},
};
use splitstore_core::{
    car::write_car_v1,
    import::HeadPolicy,
    kv::Kv,
    mem::{ManualClock, MemKv},
    synth::{ChainGen, Epoch, SynthConfig},
    Cid, Config, SplitStore,
};

const SEEDS: u64 = 300;

type Store = SplitStore<YieldKv<SteppedWritesKv<MemKv>>, ManualClock>;

fn config() -> Config {
    Config { sync_gap_secs: None, finality: 1000, ..Config::default() }
}

fn chain() -> Vec<Epoch> {
    let mut g = ChainGen::new(SynthConfig { seed: 11, state_objects: 50, ..SynthConfig::default() });
    (0..6).map(|_| g.next_epoch()).collect()
}

/// The store over `hot` with epochs `..n` written and epoch `n - 1` as its head.
fn store_at(hot: &MemKv, epochs: &[Epoch], n: usize) -> Store {
    let kv = |m: MemKv| YieldKv(SteppedWritesKv(m, WriteSteps::AfterApplying));
    let s = block_on(SplitStore::open(kv(hot.clone()), kv(MemKv::new()), ManualClock::new(0), config())).expect("open");
    for e in &epochs[..n] {
        block_on(s.put_many(e.blocks.clone())).expect("put");
    }
    drop(block_on(s.head_change(&[], &[epochs[n - 1].tipset.clone()])).expect("head"));
    s
}

/// The head a reopened store reads from the durable record.
fn durable_head(hot: &MemKv) -> Option<Vec<Cid>> {
    let s = block_on(SplitStore::open(hot.crash_image(0), MemKv::new(), ManualClock::new(0), config())).expect("open");
    block_on(s.info()).expect("info").head
}

#[test]
fn concurrent_head_changes_leave_memory_and_record_agreeing() {
    let epochs = chain();
    let mut orders = std::collections::HashSet::new();
    for seed in 0..SEEDS {
        let hot = MemKv::with_crash_tracking();
        let s = store_at(&hot, &epochs, 6);
        let mut ex = SeededExecutor::new(seed);
        for e in &epochs[3..6] {
            let s = &s;
            ex.spawn(async move {
                drop(s.head_change(&[], std::slice::from_ref(&e.tipset)).await.expect("head change"));
            });
        }
        ex.run(100_000);
        let in_memory = block_on(s.info()).expect("info").head;
        block_on(s.hot().0 .0.flush()).expect("flush");
        assert_eq!(in_memory, durable_head(&hot), "seed {seed}: the head in memory is not the recorded one");
        orders.insert(in_memory);
    }
    assert!(orders.len() > 1, "the interleavings never changed which head applied last");
}

#[test]
fn concurrent_imports_never_move_the_head_back() {
    let epochs = chain();
    let cars: Vec<Vec<u8>> = epochs
        .iter()
        .map(|e| {
            let mut car = Vec::new();
            write_car_v1(&e.tipset, e.blocks.iter().map(|(c, b)| (*c, b)), &mut car);
            car
        })
        .collect();
    for seed in 0..SEEDS {
        let hot = MemKv::with_crash_tracking();
        let s = store_at(&hot, &epochs, 3);
        // Epochs 3, 4 and 5 arrive at once; each may extend the head it finds. Whichever
        // order they apply in, the head ends at the highest one applied.
        let applied = std::cell::RefCell::new(Vec::new());
        let mut ex = SeededExecutor::new(seed);
        for (car, e) in cars[3..6].iter().zip(&epochs[3..6]) {
            let (s, applied) = (&s, &applied);
            ex.spawn(async move {
                let r = s.import_car_with(car, HeadPolicy::Extend).await.expect("import");
                if r.head_applied {
                    applied.borrow_mut().push(e.height);
                }
            });
        }
        ex.run(1_000_000);
        let highest = applied.borrow().iter().copied().max();
        assert!(highest.is_some(), "seed {seed}: no import applied its head");
        let head = block_on(s.info()).expect("info").head_epoch;
        assert_eq!(head, highest, "seed {seed}: an import moved the head back ({:?} applied)", applied.borrow());
    }
}
