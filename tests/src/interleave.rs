//! Interleavings: a compaction runs against foreground readers, writers and head changes on
//! the seeded executor, which switches tasks at every await (each backend call yields first).
//! Everything the foreground read or wrote during the compaction must survive with its DAG.

use std::cell::RefCell;

use cid::Cid;
use splitstore_core::{
    key::dag_cbor_blake2b_cid,
    kv::{Capabilities, Kv, Space, SpaceStats, WriteBatch},
    mem::{ManualClock, MemKv, YieldOnce},
    synth::Epoch,
    Clock, KvError, Mode, NoProgress, SplitStore,
};

use crate::{
    chain::{small_chain, small_config, universe_of},
    executor::{Rng, SeededExecutor},
    oracle::{header, key_of},
};

/// Where a [`SteppedWritesKv`] gives up the thread during a write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteSteps {
    /// Once, after applying the write and before returning: the write is applied before its
    /// caller learns it completed, and others run between the two.
    AfterApplying,
    /// Once per entry of the batch but one, before applying it: a large write costs as many
    /// scheduling steps as it has entries.
    PerEntry,
}

/// A backend whose writes give up the thread as its [`WriteSteps`] say; every other call is
/// passed through (wrap it in [`YieldKv`] to switch before every call as well).
#[derive(Clone, Debug)]
pub struct SteppedWritesKv<K>(pub K, pub WriteSteps);

#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
impl<K: Kv> Kv for SteppedWritesKv<K> {
    async fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        self.0.get(space, key).await
    }
    async fn get_many(&self, space: Space, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        self.0.get_many(space, keys).await
    }
    async fn has(&self, space: Space, key: &[u8]) -> Result<bool, KvError> {
        self.0.has(space, key).await
    }
    async fn write(&self, batch: WriteBatch) -> Result<(), KvError> {
        match self.1 {
            WriteSteps::AfterApplying => {
                let applied = self.0.write(batch).await;
                YieldOnce::default().await;
                applied
            }
            WriteSteps::PerEntry => {
                for _ in 1..batch.len() {
                    YieldOnce::default().await;
                }
                self.0.write(batch).await
            }
        }
    }
    async fn scan_keys(&self, space: Space, after: Option<&[u8]>, limit: usize) -> Result<Vec<Vec<u8>>, KvError> {
        self.0.scan_keys(space, after, limit).await
    }
    async fn scan(&self, space: Space, after: Option<&[u8]>, limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>, KvError> {
        self.0.scan(space, after, limit).await
    }
    async fn flush(&self) -> Result<(), KvError> {
        self.0.flush().await
    }
    async fn stats(&self, space: Space) -> Result<SpaceStats, KvError> {
        self.0.stats(space).await
    }
    fn capabilities(&self) -> Capabilities {
        self.0.capabilities()
    }
}

/// A backend that gives up the thread before every call, so the executor can switch there.
#[derive(Clone, Debug)]
pub struct YieldKv<K>(pub K);

#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
impl<K: Kv> Kv for YieldKv<K> {
    async fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        YieldOnce::default().await;
        self.0.get(space, key).await
    }
    async fn get_many(&self, space: Space, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        YieldOnce::default().await;
        self.0.get_many(space, keys).await
    }
    async fn has(&self, space: Space, key: &[u8]) -> Result<bool, KvError> {
        YieldOnce::default().await;
        self.0.has(space, key).await
    }
    async fn write(&self, batch: WriteBatch) -> Result<(), KvError> {
        YieldOnce::default().await;
        self.0.write(batch).await
    }
    async fn scan_keys(&self, space: Space, after: Option<&[u8]>, limit: usize) -> Result<Vec<Vec<u8>>, KvError> {
        YieldOnce::default().await;
        self.0.scan_keys(space, after, limit).await
    }
    async fn scan(&self, space: Space, after: Option<&[u8]>, limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>, KvError> {
        YieldOnce::default().await;
        self.0.scan(space, after, limit).await
    }
    async fn flush(&self) -> Result<(), KvError> {
        YieldOnce::default().await;
        self.0.flush().await
    }
    async fn stats(&self, space: Space) -> Result<SpaceStats, KvError> {
        self.0.stats(space).await
    }
    fn capabilities(&self) -> Capabilities {
        self.0.capabilities()
    }
}

/// A new DAG-CBOR block linking `children` (and a nonce, so every block is new).
pub fn node(children: &[Cid], nonce: u64) -> (Cid, Vec<u8>) {
    let mut b = vec![0x82];
    b.push(0x80 | children.len() as u8);
    for c in children {
        let bytes = c.to_bytes();
        b.extend_from_slice(&[0xd8, 0x2a, 0x58, bytes.len() as u8 + 1, 0x00]);
        b.extend_from_slice(&bytes);
    }
    b.push(0x1b);
    b.extend_from_slice(&nonce.to_be_bytes());
    (dag_cbor_blake2b_cid(&b), b)
}

/// What one seed did.
#[derive(Clone, Copy, Debug, Default)]
pub struct SeedStats {
    /// Executor steps (interleaving decisions).
    pub steps: u64,
    /// Blocks read during the compaction.
    pub reads: u64,
    /// Blocks written during the compaction.
    pub writes: u64,
    /// Blocks the compaction purged.
    pub purged: u64,
}

/// Runs one seed on the in-memory backend; panics naming the seed on any violation.
pub async fn one_seed(seed: u64) -> SeedStats {
    one_seed_on(&MemKv::new, seed, || async {}).await
}

/// Runs one seed on fresh backends from `make` (two per seed). `idle` is awaited when no task
/// can progress (one turn of the browser's event loop for IndexedDB; nothing for in-memory).
pub async fn one_seed_on<K: Kv, F, Fut>(make: &dyn Fn() -> K, seed: u64, idle: F) -> SeedStats
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut rng = Rng::new(seed);
    let mode = [Mode::Discard, Mode::Universal, Mode::Messages][rng.below(3)];
    let (hot, cold) = (make(), make());
    let clock = ManualClock::new(0);
    let mut cfg = small_config(mode);
    cfg.batch_size = 16 + rng.below(48);
    cfg.yield_every = 4 + rng.below(28);
    let store = SplitStore::open(YieldKv(&hot), YieldKv(&cold), clock.clone(), cfg.clone()).await.expect("open");
    let mut chain = small_chain(seed);
    let mut old: Vec<Cid> = Vec::new();
    for _ in 0..16 {
        let e = chain.next_epoch();
        old.extend(e.blocks.iter().filter(|(_, b)| header(b).is_none()).map(|(c, _)| *c));
        store.put_many(e.blocks.clone()).await.expect("put");
        drop(store.head_change(&[], std::slice::from_ref(&e.tipset)).await.expect("head"));
    }
    let later: Vec<Epoch> = (0..3).map(|_| chain.next_epoch()).collect();

    let mut fg_rng = Rng::new(seed ^ 0xabcdef);
    let touched = RefCell::new(Vec::<Cid>::new());
    let result = RefCell::new(None);
    let stats = RefCell::new(SeedStats::default());
    // The transaction opens before any foreground access, as when a head change decides it.
    let pending = store.begin_compaction().expect("begin");
    let mut ex = SeededExecutor::new(seed);
    ex.spawn(async {
        *result.borrow_mut() = Some(store.run_compaction(pending, &NoProgress).await);
    });
    ex.spawn(async {
        let mut i = 0u64;
        while store.is_compacting() && i < 400 {
            i += 1;
            let x = old[fg_rng.below(old.len())];
            if let Some(_bytes) = store.get(&x).await.expect("get") {
                touched.borrow_mut().push(x);
                stats.borrow_mut().reads += 1;
                if fg_rng.percent(60) {
                    // A new object linking what was just read, as a node computing state would.
                    let (c, b) = node(&[x], seed.wrapping_mul(1000) + i);
                    store.put(&c, b).await.expect("put");
                    touched.borrow_mut().push(c);
                    stats.borrow_mut().writes += 1;
                }
            }
            if fg_rng.percent(30) {
                store.clock().yield_now().await;
            }
        }
    });
    ex.spawn(async {
        for e in &later {
            store.put_many(e.blocks.clone()).await.expect("put");
            drop(store.head_change(&[], std::slice::from_ref(&e.tipset)).await.expect("head"));
            store.clock().yield_now().await;
        }
    });
    ex.run_with_idle(50_000_000, 100_000, idle).await;
    let steps = ex.steps;
    drop(ex);
    let report = result.into_inner().expect("ran").unwrap_or_else(|e| panic!("seed {seed}: compaction failed: {e}"));
    let mut stats = stats.into_inner();
    stats.steps = steps;
    stats.purged = report.purged;

    let at = format!("seed {seed} ({mode:?})");
    let check_store = |u: &crate::oracle::Universe, when: &str| {
        for t in touched.borrow().iter() {
            let c = u.closure(&[*t]);
            assert!(u.blocks.contains_key(&key_of(t)), "{at} {when}: touched block {t} is gone");
            assert!(c.missing.is_empty(), "{at} {when}: DAG of touched block {t} lost {:?}", c.missing);
        }
    };
    let u = universe_of(&hot, &cold).await;
    check_store(&u, "after compaction");
    let check = store.check().await.expect("check");
    assert_eq!(check.missing, 0, "{at}: live blocks missing {:?}", check.missing_cids);
    drop(store);
    // The same holds for a fresh process on the same data.
    let store = SplitStore::open(&hot, &cold, clock, cfg).await.expect("reopen");
    assert_eq!(store.check().await.expect("check").missing, 0, "{at}: after reopen");
    check_store(&universe_of(&hot, &cold).await, "after reopen");
    stats
}

/// Runs `seeds` seeds starting at `first`; returns the totals.
pub async fn many_seeds(first: u64, seeds: u64) -> SeedStats {
    let mut total = SeedStats::default();
    for s in first..first + seeds {
        let st = one_seed(s).await;
        total.steps += st.steps;
        total.reads += st.reads;
        total.writes += st.writes;
        total.purged += st.purged;
    }
    total
}

/// One seed with a crash: the process dies at a seeded backend call while the compaction and
/// the foreground run; a fresh process opens what was durable (plus a seeded share of what
/// was not). Every touched block that survived the crash must still have its whole DAG.
pub async fn one_seed_with_crash(seed: u64) -> bool {
    use crate::fault::{Fault, FaultKv};
    let mut rng = Rng::new(seed.wrapping_mul(31));
    let mode = [Mode::Discard, Mode::Universal, Mode::Messages][rng.below(3)];
    let (hot, cold) = (MemKv::with_crash_tracking(), MemKv::with_crash_tracking());
    let clock = ManualClock::new(0);
    let cfg = small_config(mode);
    let fault = Fault::new();
    let store = SplitStore::open(
        FaultKv::new(YieldKv(hot.clone()), fault.clone()),
        FaultKv::new(YieldKv(cold.clone()), fault.clone()),
        clock.clone(),
        cfg.clone(),
    )
    .await
    .expect("open");
    let mut chain = small_chain(seed);
    let mut old: Vec<Cid> = Vec::new();
    for _ in 0..16 {
        let e = chain.next_epoch();
        old.extend(e.blocks.iter().filter(|(_, b)| header(b).is_none()).map(|(c, _)| *c));
        store.put_many(e.blocks.clone()).await.expect("put");
        drop(store.head_change(&[], std::slice::from_ref(&e.tipset)).await.expect("head"));
    }
    store.hot().flush().await.expect("flush");
    fault.arm(rng.below(400) as u64);
    let touched = RefCell::new(Vec::<Cid>::new());
    let mut fg_rng = Rng::new(seed ^ 0x5eed);
    let crashed = RefCell::new(false);
    {
        let pending = store.begin_compaction().expect("begin");
        let mut ex = SeededExecutor::new(seed);
        ex.spawn(async {
            *crashed.borrow_mut() = store.run_compaction(pending, &NoProgress).await.is_err();
        });
        ex.spawn(async {
            let mut i = 0u64;
            while store.is_compacting() && i < 400 {
                i += 1;
                let x = old[fg_rng.below(old.len())];
                let Ok(got) = store.get(&x).await else { return };
                if got.is_some() {
                    touched.borrow_mut().push(x);
                    if fg_rng.percent(60) {
                        let (c, b) = node(&[x], seed.wrapping_mul(1000) + i);
                        if store.put(&c, b).await.is_err() {
                            return;
                        }
                        touched.borrow_mut().push(c);
                    }
                }
                store.clock().yield_now().await;
            }
        });
        ex.run(50_000_000);
    }
    drop(store);
    let keep = [0, usize::MAX, rng.below(8)][rng.below(3)];
    let (hot, cold) = (hot.crash_image(keep), cold.crash_image(keep));
    let before = universe_of(&hot, &cold).await;
    let at = format!("crash seed {seed} ({mode:?}, keep {keep})");
    let store =
        SplitStore::open(hot.clone(), cold.clone(), clock, cfg).await.unwrap_or_else(|e| panic!("{at}: reopen: {e}"));
    assert_eq!(store.check().await.expect("check").missing, 0, "{at}: live blocks missing");
    let u = universe_of(&hot, &cold).await;
    for t in touched.borrow().iter() {
        if !before.blocks.contains_key(&key_of(t)) {
            continue; // a write that was not yet durable when the process died
        }
        assert!(u.blocks.contains_key(&key_of(t)), "{at}: touched block {t} was purged by recovery");
        let c = u.closure(&[*t]);
        assert!(c.missing.is_empty(), "{at}: DAG of touched block {t} lost {:?}", c.missing);
    }
    let crashed = *crashed.borrow();
    crashed
}
