//! A foreground writer that never rests cannot stall a compaction, on the seeded executor and
//! the in-memory backend.
//!
//! Every block written during a compaction is a transactional reference whose DAG the
//! compaction must protect, so a writer that writes faster than a protection pass protects
//! refills the reference set during every pass: it never empties by itself. The compaction
//! must still end within a step budget proportional to the store's size, and lose nothing the
//! writer wrote and nothing live.
//!
//! The backend weighs a write by its entries (one scheduling step per entry), as on disk, where
//! scanning a key costs far less than writing one: protecting a block after collect deletes two
//! list entries, so a writer putting several blocks per turn outpaces every protection pass
//! made alongside it. `SPLITSTORE_SEEDS` sets the number of seeds (default 200).

use std::{
    cell::{Cell, RefCell},
    collections::{HashMap, HashSet},
    future::Future,
    time::Instant,
};

use cid::Cid;
use splitstore_conformance::{
    chain::{apply_epoch, node, small_chain, small_config, universe_of},
    executor::{block_on, Rng, SeededExecutor},
    oracle::{header, key_of, links},
    wrap::{SteppedWritesKv, WriteSteps, YieldKv},
};
use splitstore_core::{
    mem::{ManualClock, MemKv},
    Mode, NoProgress, SplitStore,
};

/// Epochs in the store before the compaction.
const EPOCHS: usize = 16;
/// Scheduling steps (of the compaction and the writer together) a compaction may take per
/// block the store held before it: about three times the most any of seeds 1..=1000 takes.
const STEPS_PER_BLOCK: u64 = 100;

/// `f`, counting every poll of it in `polls` (shared by all tasks: the executor's steps).
fn counted<'a>(polls: &'a Cell<u64>, f: impl Future<Output = ()> + 'a) -> impl Future<Output = ()> + 'a {
    let mut f = Box::pin(f);
    std::future::poll_fn(move |cx| {
        polls.set(polls.get() + 1);
        f.as_mut().poll(cx)
    })
}

/// What one seed did.
#[derive(Clone, Copy, Debug)]
struct Outcome {
    /// Blocks in the store before the compaction.
    size: usize,
    /// Scheduling steps until the compaction finished.
    steps: u64,
    /// Blocks the writer wrote while the compaction ran.
    written: usize,
    /// Live blocks the writer read while the compaction ran.
    reads: u64,
}

/// Builds a store, compacts it while a writer writes new blocks on every turn until the
/// compaction ends, and checks the budget and that nothing written or live was lost.
async fn one_seed(seed: u64) -> Outcome {
    let mut rng = Rng::new(seed);
    let mode = [Mode::Discard, Mode::Universal, Mode::Messages][rng.below(3)];
    let (hot, cold) = (MemKv::new(), MemKv::new());
    let mut cfg = small_config(mode);
    cfg.batch_size = 16 + rng.below(48);
    cfg.yield_every = 4 + rng.below(28);
    let store = SplitStore::open(
        SteppedWritesKv(YieldKv(&hot), WriteSteps::PerEntry),
        SteppedWritesKv(YieldKv(&cold), WriteSteps::PerEntry),
        ManualClock::new(0),
        cfg,
    )
    .await
    .expect("open");
    let mut chain = small_chain(seed);
    let mut cids: HashMap<Vec<u8>, Cid> = HashMap::new();
    let mut head = Vec::new();
    let mut headers: HashSet<Cid> = HashSet::new();
    for _ in 0..EPOCHS {
        let e = chain.next_epoch();
        cids.extend(e.blocks.iter().map(|(c, _)| (key_of(c), *c)));
        headers.extend(e.tipset.iter().copied());
        drop(apply_epoch(&store, &e).await);
        head = e.tipset;
    }
    let before = universe_of(&hot, &cold).await;
    let size = before.blocks.len();
    let budget = STEPS_PER_BLOCK * size as u64;
    let pending = store.begin_compaction().expect("begin");
    let b = store.config().boundaries(pending.head_epoch());
    let live_set = before.live_set(&head, b.boundary, b.include_messages);
    assert!(live_set.missing.is_empty(), "seed {seed}: the chain has missing blocks");
    let mut live: Vec<Cid> = live_set.present.iter().map(|k| cids[k]).collect();
    live.sort_unstable();
    // What the writer reads and links: live blocks whose whole DAG is live. The chain's
    // headers (and the tipset keys naming them) are live without the state and messages of
    // old epochs below them.
    let links_header = |c: &Cid| {
        let bytes = &before.blocks[&key_of(c)];
        header(bytes).is_some() || links(bytes).unwrap_or_default().iter().any(|l| headers.contains(l))
    };
    let readable: Vec<Cid> = live.iter().filter(|c| !links_header(c)).copied().collect();

    let polls = Cell::new(0u64);
    let done = Cell::new(false);
    let finished_at = Cell::new(None::<u64>);
    let result = RefCell::new(None);
    let written = RefCell::new(Vec::<Cid>::new());
    let reads = Cell::new(0u64);
    let mut fg_rng = Rng::new(seed ^ 0x5747_a11e);
    {
        let mut ex = SeededExecutor::new(seed);
        ex.spawn(counted(&polls, async {
            *result.borrow_mut() = Some(store.run_compaction(pending, &NoProgress).await);
            finished_at.set(Some(polls.get()));
            done.set(true);
        }));
        ex.spawn(counted(&polls, async {
            let mut nonce = seed << 32;
            // Past the budget the test has failed: stop so that the failure is reported.
            while !done.get() && polls.get() < budget {
                let x = readable[fg_rng.below(readable.len())];
                assert!(store.get(&x).await.expect("get").is_some(), "seed {seed}: live block {x} unreadable");
                reads.set(reads.get() + 1);
                let blocks: Vec<(Cid, Vec<u8>)> = {
                    let w = written.borrow();
                    (0..2 + fg_rng.below(7))
                        .map(|_| {
                            nonce += 1;
                            // Each links the live block just read, or an earlier new block, or both.
                            let mut links = Vec::new();
                            if w.is_empty() || fg_rng.percent(70) {
                                links.push(x);
                            }
                            if !w.is_empty() && (links.is_empty() || fg_rng.percent(50)) {
                                links.push(w[fg_rng.below(w.len())]);
                            }
                            node(&links, nonce)
                        })
                        .collect()
                };
                written.borrow_mut().extend(blocks.iter().map(|(c, _)| *c));
                store.put_many(blocks).await.expect("put");
            }
        }));
        // Once the writer stops the compaction ends by itself: ten budgets only catch a hang.
        ex.run(10 * budget);
    }
    let report = result.into_inner().expect("ran").unwrap_or_else(|e| panic!("seed {seed}: compaction failed: {e}"));
    let written = written.into_inner();
    let at = format!("seed {seed} ({mode:?}, {size} blocks)");
    let steps = finished_at.get().expect("the compaction finished");
    assert!(
        steps <= budget,
        "{at}: the compaction took {steps} steps, over its budget of {budget}, under a writer that wrote {} blocks",
        written.len()
    );
    // The writer kept the compaction busy: every seed's writes are a sizeable share of the store.
    assert!(2 * written.len() >= size, "{at}: the writer wrote only {} blocks during the compaction", written.len());
    assert!(report.purged > 0, "{at}: the compaction purged nothing");
    assert!(report.protected_refs >= written.len() as u64, "{at}: {report:?}");

    for c in written.iter().chain(&live) {
        assert!(store.get(c).await.expect("get").is_some(), "{at}: block {c} unreadable after the compaction");
    }
    let after = universe_of(&hot, &cold).await;
    let dags = after.closure(&written);
    assert!(dags.missing.is_empty(), "{at}: DAGs of written blocks lost {:?}", dags.missing);
    let check = store.check().await.expect("check");
    assert_eq!(check.missing, 0, "{at}: live blocks missing {:?}", check.missing_cids);
    Outcome { size, steps, written: written.len(), reads: reads.get() }
}

#[test]
fn a_writer_that_never_rests_cannot_stall_a_compaction() {
    let seeds: u64 = std::env::var("SPLITSTORE_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(200);
    let started = Instant::now();
    let outcomes: Vec<Outcome> = (1..=seeds).map(|s| block_on(one_seed(s))).collect();
    let ratio =
        |f: fn(&Outcome) -> f64| outcomes.iter().map(f).fold((f64::MAX, 0f64), |(lo, hi), r| (lo.min(r), hi.max(r)));
    let steps = ratio(|o| o.steps as f64 / o.size as f64);
    let writes = ratio(|o| o.written as f64 / o.size as f64);
    let (written, size) = outcomes.iter().fold((0, 0), |(w, s), o| (w + o.written, s + o.size));
    assert!(written >= 2 * size, "the writer wrote only {written} blocks during compactions of {size}");
    println!(
        "unbounded writer: {seeds} seeds in {:?}; steps per stored block {:.1}–{:.1} (budget {STEPS_PER_BLOCK}); \
         blocks written per stored block {:.1}–{:.1} ({:.1} overall); {} reads",
        started.elapsed(),
        steps.0,
        steps.1,
        writes.0,
        writes.1,
        written as f64 / size as f64,
        outcomes.iter().map(|o| o.reads).sum::<u64>()
    );
}
