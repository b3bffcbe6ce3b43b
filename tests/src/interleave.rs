//! Interleavings: a compaction runs beside a node's foreground ([`crate::workload`]): a chain
//! syncing in every order, several writers, reads of blocks written later, dropped writes; on
//! the seeded executor, which switches tasks at every await (each backend call yields first).
//! Each seed checks the stores against [`crate::liveness`] after the compaction and after a
//! reopen: every live or touched block kept hot with its DAG, nothing else left hot, cold as
//! the mode says, no kept block linking a deleted one.

use std::{
    cell::{Cell, RefCell},
    collections::HashSet,
};

use cid::Cid;
use splitstore_core::{
    config::Boundaries,
    kv::{Kv, Space},
    mem::{ManualClock, MemKv},
    synth::{ChainGen, Epoch},
    CompactionReport, Config, Mode, NoProgress, SplitStore,
};

use crate::{
    chain::{keys, small_chain, small_config, universe_in, universe_of},
    drive::PhaseLog,
    executor::{Rng, SeededExecutor},
    fault::{Fault, FaultKv},
    liveness::{chain_rule, for_each_touch, holes, required_since, short, Bind, Events, Expect, Record},
    oracle::{header, key_of},
    workload::{header_first, Foreground},
    wrap::{DeletesKv, SteppedWritesKv, WriteSteps, YieldKv},
};

/// Epochs in the store before the compaction.
const BASE_EPOCHS: usize = 16;
/// Even seeds compact once after this many epochs, so that the interleaved compaction marks
/// the old chain from the chain index the first one recorded; they then sync
/// [`EPOCHS_AFTER_EARLIER`] more, so that their head decides the interleaved compaction.
const EARLIER_COMPACTION_AT: usize = 14;
const EPOCHS_AFTER_EARLIER: usize = 6;

/// What one seed did.
#[derive(Clone, Copy, Debug, Default)]
pub struct SeedStats {
    /// Executor steps (interleaving decisions).
    pub steps: u64,
    /// Blocks read during the compaction.
    pub reads: u64,
    /// Blocks written during the compaction.
    pub writes: u64,
    /// Writes dropped after a few polls.
    pub dropped: u64,
    /// Tipsets applied during the compaction.
    pub heads: u64,
    /// Blocks the compaction purged.
    pub purged: u64,
    /// Compactions that marked the old chain from the chain index.
    pub indexed: u64,
    /// Compactions that marked objects from the kept graph.
    pub from_graph: u64,
    /// Compactions after the interleaved one whose collect visited the hot key list.
    pub listed: u64,
}

impl SeedStats {
    /// Adds another seed's figures.
    pub fn add(&mut self, o: &SeedStats) {
        self.steps += o.steps;
        self.reads += o.reads;
        self.writes += o.writes;
        self.dropped += o.dropped;
        self.heads += o.heads;
        self.purged += o.purged;
        self.indexed += o.indexed;
        self.from_graph += o.from_graph;
        self.listed += o.listed;
    }
}

/// A seed's store, ready for the head that decides its compaction.
struct Prepared {
    cfg: Config,
    sync: bool,
    /// The compaction's head.
    head: Epoch,
    /// Blocks of the head's tipset the node writes just before applying it.
    first: Vec<(Cid, Vec<u8>)>,
    /// Blocks of the head's tipset still being fetched: written beside the head change.
    leftover: Vec<(Cid, Vec<u8>)>,
    /// The chain, at the epoch after the head (or after the next, when that one's state was
    /// written before the head).
    chain: ChainGen,
    /// The epoch after the head, when its state was written before the head.
    next: Option<Epoch>,
    /// Non-header blocks of the store.
    pool: Vec<Cid>,
}

/// How a seed's backends take their writes: at once, one step per entry (a large write takes
/// a while, as on disk), or applied before the call returns (IndexedDB commits a transaction
/// whether or not its future is polled again, so a dropped write may still land).
fn steps(rng: &mut Rng) -> WriteSteps {
    [WriteSteps::Never, WriteSteps::PerEntry, WriteSteps::AfterApplying][rng.below(3)]
}

fn config(rng: &mut Rng) -> (Mode, Config, bool) {
    let mode = [Mode::Discard, Mode::Universal, Mode::Messages][rng.below(3)];
    let mut cfg = small_config(mode);
    cfg.batch_size = 16 + rng.below(48);
    cfg.yield_every = 4 + rng.below(28);
    // A seed that compacts before the interleaved compaction marks from the graph it kept.
    cfg.kept_graph_bytes = 64 << 20;
    // The compaction after the interleaved one visits the list it started.
    cfg.hot_key_list_bytes = 64 << 20;
    let sync = rng.percent(50);
    if sync {
        cfg.sync_gap_secs = Some(60);
    }
    (mode, cfg, sync)
}

/// Fills a store with a chain, up to the head that will decide the compaction. That head's
/// tipset comes complete, or header first: its headers and state just before it is applied,
/// some of its messages and receipts before that, the rest beside the head change. With sync
/// checks on, maybe the next tipset's state is already computed and written (no header names
/// it yet).
async fn prepare<K: Kv>(store: &SplitStore<K, ManualClock>, rng: &mut Rng, seed: u64, sync: bool) -> Prepared {
    let cfg = store.config().clone();
    let mut chain = small_chain(seed);
    let mut pool = Vec::new();
    let earlier = seed % 2 == 0;
    let epochs = if earlier { EARLIER_COMPACTION_AT + EPOCHS_AFTER_EARLIER } else { BASE_EPOCHS };
    for _ in 0..epochs {
        let e = chain.next_epoch();
        pool.extend(e.blocks.iter().filter(|(_, b)| header(b).is_none()).map(|(c, _)| *c));
        store.put_many(e.blocks.clone()).await.expect("put");
        if sync {
            store.clock().set(e.timestamp * 1000 + 1000);
        }
        drop(store.head_change(&[], std::slice::from_ref(&e.tipset)).await.expect("head"));
        if earlier && chain.epochs() as usize == EARLIER_COMPACTION_AT {
            store.compact(&NoProgress).await.expect("the earlier compaction");
        }
    }
    if earlier {
        // Writers link hot blocks (as in a store never compacted): not those the earlier
        // compaction dropped or moved.
        let mut kept = Vec::with_capacity(pool.len());
        for c in pool {
            if store.hot().has(Space::Blocks, &key_of(&c)).await.expect("has") {
                kept.push(c);
            }
        }
        pool = kept;
    }
    let head = chain.next_epoch();
    let mut next = None;
    if sync && rng.percent(70) {
        let e = chain.next_epoch();
        let state: Vec<_> = e.blocks.iter().filter(|(c, _)| !e.tipset.contains(c)).cloned().collect();
        pool.extend(state.iter().map(|(c, _)| *c));
        store.put_many(state).await.expect("put the next state");
        next = Some(e);
    }
    let (first, leftover) = if rng.percent(70) {
        // Message sync fetches the messages and their AMTs before the roots that link them:
        // the roots (TxMeta, receipts) are the likeliest to be missing when the head arrives.
        let roots: Vec<Cid> = head
            .tipset
            .iter()
            .filter_map(|h| head.blocks.iter().find(|(c, _)| c == h).and_then(|(_, b)| header(b)))
            .flat_map(|v| [v.messages, v.receipts])
            .collect();
        let (first, messages) = header_first(&head);
        let (early, leftover): (Vec<_>, Vec<_>) =
            messages.into_iter().partition(|(c, _)| !roots.contains(c) && rng.percent(70));
        store.put_many(early).await.expect("put early messages");
        (first, leftover)
    } else {
        (head.blocks.clone(), Vec::new())
    };
    Prepared { cfg, sync, head, first, leftover, chain, next, pool }
}

/// Applies the head of `p` and runs the compaction it decides, beside the fetch of what the
/// head still lacks, the chain's sync, and one to three writers, all started before the head.
#[allow(clippy::too_many_arguments)]
async fn run_seed<K: Kv, F, Fut>(
    store: &SplitStore<K, ManualClock>,
    p: &mut Prepared,
    rng: &mut Rng,
    rec: &RefCell<Record>,
    events: &Events,
    fallible: bool,
    seed: u64,
    idle: F,
) -> (Option<Result<CompactionReport, splitstore_core::Error>>, u64)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let log = PhaseLog::default();
    let pool = RefCell::new(p.pool.clone());
    // Favoured blocks from the older half of the chain: mostly dead, so writers linking them
    // rescue them, several at once.
    let focus: Vec<Cid> = (0..16).map(|_| p.pool[rng.below(p.pool.len() / 2)]).collect();
    let done = Cell::new(false);
    let fg =
        Foreground { store, events, log: &log, rec, sync: p.sync, fallible, pool: &pool, focus: &focus, done: &done };
    let result = RefCell::new(None);
    let slot = RefCell::new(None);
    let writers = 1 + rng.below(3);
    let mut rngs: Vec<Rng> = (0..writers as u64 + 2).map(|i| Rng::new(seed.wrapping_mul(7919) ^ i)).collect();
    let (first, leftover) = (std::mem::take(&mut p.first), std::mem::take(&mut p.leftover));
    let (chain, mut next, head) = (&mut p.chain, p.next.take(), &p.head);
    let next_epoch = move || next.take().unwrap_or_else(|| chain.next_epoch());
    let mut ex = SeededExecutor::new(seed);
    let (fg, slot, result) = (&fg, &slot, &result);
    ex.spawn(fg.compaction(slot, result));
    let mut rngs = rngs.iter_mut();
    let (r0, r1) = (rngs.next().expect("rng"), rngs.next().expect("rng"));
    ex.spawn(async move {
        fg.head_and_sync(r0, head, first, slot, next_epoch).await;
    });
    ex.spawn(async move {
        fg.put_in_order(r1, leftover).await;
    });
    for (i, r) in rngs.enumerate() {
        let ops = 40 + r.below(80) as u64;
        ex.spawn(async move {
            fg.writer(r, i as u64 + 1, ops).await;
        });
    }
    ex.run_with_idle(50_000_000, 100_000, idle).await;
    let steps = ex.steps;
    drop(ex);
    (result.take(), steps)
}

/// Keys of the blocks only `cold` holds.
async fn cold_only<K: Kv>(hot: &K, cold: &K) -> HashSet<Vec<u8>> {
    let hot = keys(hot, Space::Blocks).await;
    keys(cold, Space::Blocks).await.into_iter().filter(|k| !hot.contains(k)).collect()
}

fn boundaries(r: &CompactionReport) -> Boundaries {
    Boundaries { head: r.head_epoch, boundary: r.boundary_epoch, include_messages: r.include_messages_epoch }
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
    let (mode, cfg, sync) = config(&mut rng);
    let writes = steps(&mut rng);
    let (hot, cold) = (make(), make());
    let events = Events::default();
    // Time moves only as the node applies heads (at their timestamps, with sync checks on).
    let clock = ManualClock::stopped(0);
    // Deletions are logged as the store issues them, before any step the write takes: the
    // purge issues its write in the step that releases its lock, so the log is the decision.
    let wrap = |kv| DeletesKv::new(YieldKv(SteppedWritesKv(kv, writes)), events.clone());
    let open = |cfg: Config| SplitStore::open(wrap(&hot), wrap(&cold), clock.clone(), cfg);
    let store = open(cfg.clone()).await.expect("open");
    let mut p = prepare(&store, &mut rng, seed, sync).await;
    events.forget_deletions();
    let base = universe_of(&hot, &cold).await;
    let cold_before = keys(&cold, Space::Blocks).await;
    let cold_only = cold_only(&hot, &cold).await;
    let rec = RefCell::new(Record { base, cold_only, ..Record::default() });
    let (result, steps) = run_seed(&store, &mut p, &mut rng, &rec, &events, false, seed, idle).await;
    let at = format!("seed {seed} ({mode:?}, sync checks {sync})");
    let report = result.expect("ran").unwrap_or_else(|e| panic!("{at}: compaction failed: {e}"));
    let rec = rec.into_inner();
    let expect = Expect::of(&rec, &events, &p.head.tipset, boundaries(&report));
    let verify = |when: &'static str| {
        let (hot, cold, cold_before, expect, events, at) = (&hot, &cold, &cold_before, &expect, &events, &at);
        async move {
            let (h, c) = (universe_in(hot).await, universe_in(cold).await);
            if let Err(e) = expect.check(mode, &h, &c, cold_before, events) {
                panic!("{at} {when}: {e}");
            }
        }
    };
    // The store's own check agrees: what it finds missing from the head's live set is
    // nothing the rules required (a block deleted before a later write connected it, or
    // never written).
    let agrees = |check: splitstore_core::CheckReport, when: &str| {
        let required: Vec<_> = check.missing_cids.iter().filter(|m| expect.hot.contains(&key_of(m))).collect();
        assert!(required.is_empty(), "{at} {when}: check() finds required blocks missing: {required:?}");
    };
    verify("after the compaction").await;
    agrees(store.check().await.expect("check"), "after the compaction");
    // The same holds for a fresh process on the same data.
    let reopened = open(p.cfg.clone()).await.expect("reopen");
    agrees(reopened.check().await.expect("check"), "after reopen");
    verify("after reopen").await;
    drop(reopened);
    // A compaction in the first process once the foreground is gone finds what it wrote
    // during the interleaved one and no longer needs through the hot key list that compaction
    // started while it wrote: a compaction of a new process, which scans, at the same head,
    // finds nothing left to delete.
    let next = store.compact(&NoProgress).await.unwrap_or_else(|e| panic!("{at}: the next compaction failed: {e}"));
    drop(store);
    let again = open(p.cfg.clone()).await.expect("reopen");
    let scanned = again.compact(&NoProgress).await.unwrap_or_else(|e| panic!("{at}: the scan failed: {e}"));
    assert!(!scanned.hot_keys_listed, "{at}: a new process's first compaction listed");
    assert_eq!(
        (scanned.head_epoch, scanned.dead),
        (next.head_epoch, 0),
        "{at}: the compaction from the list (listed: {}) left dead blocks behind",
        next.hot_keys_listed
    );
    SeedStats {
        steps,
        reads: rec.read.len() as u64,
        writes: rec.written.len() as u64,
        dropped: rec.attempted.len() as u64,
        heads: rec.applied.len() as u64,
        purged: report.purged,
        indexed: u64::from(report.chain_index_keys > 0),
        from_graph: u64::from(report.graph_marked > 0),
        listed: u64::from(next.hot_keys_listed),
    }
}

/// Runs `seeds` seeds starting at `first`; returns the totals.
pub async fn many_seeds(first: u64, seeds: u64) -> SeedStats {
    let mut total = SeedStats::default();
    for s in first..first + seeds {
        total.add(&one_seed(s).await);
    }
    total
}

/// One seed with a crash: the process dies at a seeded backend call while the compaction and
/// the foreground run; a fresh process opens what was durable (plus a seeded share of what was
/// not). Recovery must not delete below what it keeps, nor a block the crash left that was
/// written (or read before the critical section) during the compaction, nor any of its DAG;
/// the recovered head's live set lacks nothing the store deleted. Returns true when the
/// compaction was cut short.
pub async fn one_seed_with_crash(seed: u64) -> bool {
    let mut rng = Rng::new(seed.wrapping_mul(31));
    let (mode, cfg, sync) = config(&mut rng);
    let writes = steps(&mut rng);
    let (hot, cold) = (MemKv::with_crash_tracking(), MemKv::with_crash_tracking());
    let events = Events::default();
    // Time moves only as the node applies heads (at their timestamps, with sync checks on).
    let clock = ManualClock::stopped(0);
    let fault = Fault::new();
    let wrap = |kv: &MemKv| {
        FaultKv::new(DeletesKv::new(YieldKv(SteppedWritesKv(kv.clone(), writes)), events.clone()), fault.clone())
    };
    let store = SplitStore::open(wrap(&hot), wrap(&cold), clock.clone(), cfg.clone()).await.expect("open");
    let mut p = prepare(&store, &mut rng, seed, sync).await;
    store.hot().flush().await.expect("flush");
    let cold_only = cold_only(&hot, &cold).await;
    let rec = RefCell::new(Record { base: universe_of(&hot, &cold).await, cold_only, ..Record::default() });
    fault.arm(rng.below(600) as u64);
    let (result, _) = run_seed(&store, &mut p, &mut rng, &rec, &events, true, seed, || async {}).await;
    let crashed = !matches!(result, Some(Ok(_)));
    drop(store);
    let keep = [0, usize::MAX, rng.below(8)][rng.below(3)];
    let (hot, cold) = (hot.crash_image(keep), cold.crash_image(keep));
    let image = universe_of(&hot, &cold).await;
    let at = format!("crash seed {seed} ({mode:?}, sync checks {sync}, keep {keep})");
    let deletes = |kv: &MemKv| DeletesKv::new(kv.clone(), events.clone());
    let store = SplitStore::open(deletes(&hot), deletes(&cold), clock, cfg)
        .await
        .unwrap_or_else(|e| panic!("{at}: reopen: {e}"));
    let info = store.info().await.expect("info");
    assert!(!info.pending_recovery, "{at}: recovery left a purge pending");
    let (h, c) = (universe_in(&hot).await, universe_in(&cold).await);
    let rec = rec.into_inner();
    let pb = store.config().boundaries(p.head.height);
    let chain = chain_rule(&rec, &p.head.tipset, pb);
    let survived = rec.surviving(&image);
    let since = required_since(&survived, &events, &image, &chain);
    let found = holes(&h, &c, &events, &since);
    assert!(found.is_empty(), "{at}: kept blocks link deleted blocks: {:?}", &found[..found.len().min(3)]);
    // The recovered head's live set lacks no block the store deleted after it had to stay.
    let head = info.head.expect("head");
    let b = store.config().boundaries(info.head_epoch.expect("height"));
    let after = universe_of(&hot, &cold).await;
    let live = after.live_set(&head, b.boundary, b.include_messages);
    let deleted: Vec<_> = live
        .missing
        .iter()
        .filter(|m| {
            let k = key_of(m);
            events.deleted_at(&k).is_some_and(|d| since.get(&k).is_some_and(|s| *s < d))
        })
        .collect();
    assert!(deleted.is_empty(), "{at}: the store deleted live blocks {deleted:?}");
    // What survived the crash of the foreground's writes and pre-critical reads survives
    // recovery, with the part of its DAG that was there when it was touched.
    let mut kept = std::collections::HashMap::new();
    for_each_touch(&survived, &events, &image, &chain, |reached, bind, _, why| {
        if bind == Bind::Hot {
            for k in reached {
                kept.entry(k).or_insert_with(why);
            }
        }
    });
    let lost: Vec<String> = kept
        .iter()
        .filter(|(k, _)| !after.blocks.contains_key(*k))
        .take(3)
        .map(|(k, why)| format!("{} ({why}; deleted at tick {:?})", short(k), events.deleted_at(k)))
        .collect();
    assert!(lost.is_empty(), "{at}: recovery deleted touched blocks {lost:?}");
    crashed
}
