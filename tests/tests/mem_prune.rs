//! Cold prune on the in-memory backend: the kept set against the oracle under several
//! retentions, the crash matrix over every call of a prune in universal and messages mode, a
//! node writing in real orders at every await of a prune, a dropped prune finished by the next
//! run, and the automatic prune.

use std::{
    collections::HashSet,
    future::Future,
    pin::{pin, Pin},
};

use splitstore_conformance::{
    chain::{apply_epoch, keys, node, small_chain, universe_of},
    drive::{self, poll_times, PhaseLog},
    executor::block_on,
    oracle::{key_of, links, Universe},
    prune::{base, doomed, expected_cold, prune_config, prune_crash_matrix, prune_matches_oracle},
    wrap::YieldKv,
};
use splitstore_core::{
    kv::Space,
    mem::{ManualClock, MemKv},
    Cid, Config, Error, Mode, NoProgress, Phase, PruneReport, SplitStore,
};

const MANY: usize = 1_000_000;

#[test]
fn prune_keeps_exactly_the_policy_and_nothing_more() {
    for (mode, seed) in [(Mode::Universal, 41), (Mode::Messages, 42)] {
        let b = block_on(base(mode, seed, 60));
        let rows = block_on(prune_matches_oracle(mode, &b, &[-1, 0, 1, 3]));
        for (r, before, after) in &rows {
            println!("{mode:?} retention {r}: cold {before} -> {after}");
        }
        let after = |r: i64| rows.iter().find(|x| x.0 == r).expect("row").2;
        let before = rows[0].1;
        // The strays written straight into cold (and, in universal mode, the moved hot
        // strays) go under every policy.
        assert!(before - after(-1) >= 12, "{mode:?}: strays were kept");
        // Each finality of retention keeps at least as much.
        assert!(after(0) <= after(1) && after(1) <= after(3) && after(3) <= after(-1), "{mode:?}: {rows:?}");
        if mode == Mode::Universal {
            assert!(after(0) * 2 < after(-1), "universal: old state was not pruned: {rows:?}");
        }
    }
}

#[test]
fn discard_mode_refuses_to_prune() {
    block_on(async {
        let cfg = prune_config(Mode::Discard);
        let store = SplitStore::open(MemKv::new(), MemKv::new(), ManualClock::new(0), cfg).await.expect("open");
        assert!(matches!(store.prune(0, &NoProgress).await, Err(Error::PruneInDiscardMode)));
        let auto = Config { prune_every: Some(2), ..prune_config(Mode::Discard) };
        assert!(SplitStore::open(MemKv::new(), MemKv::new(), ManualClock::new(0), auto).await.is_err());
        let store = SplitStore::open(MemKv::new(), MemKv::new(), ManualClock::new(0), prune_config(Mode::Universal))
            .await
            .expect("open");
        assert!(matches!(store.prune(0, &NoProgress).await, Err(Error::NoHead)));
    });
}

fn matrix(mode: Mode, seed: u64, retention: i64) {
    let b = block_on(base(mode, seed, 40));
    let s = block_on(prune_crash_matrix(mode, &b, retention, 1));
    println!(
        "prune crash matrix {mode:?} retention {retention}: {} calls, {} crash points, {} recovered purges",
        s.calls, s.crash_points, s.recovered
    );
    assert!(s.calls > 10 && s.recovered > 0);
}

#[test]
fn crash_matrix_universal_every_call() {
    matrix(Mode::Universal, 43, 0);
}

#[test]
fn crash_matrix_messages_every_call() {
    matrix(Mode::Messages, 44, 1);
}

#[test]
fn generic_crash_matrix_on_memory() {
    use splitstore_conformance::prune::prune_crash_matrix_on;
    let b = block_on(base(Mode::Universal, 45, 30));
    let s = block_on(prune_crash_matrix_on(&MemKv::new, Mode::Universal, &b, 0, 3));
    println!("generic prune crash matrix: {} calls, {} crash points", s.calls, s.crash_points);
    assert!(s.crash_points > 5 && s.recovered > 0);
}

type Store = SplitStore<YieldKv<MemKv>, ManualClock>;

/// The blocks of `root`'s DAG in `u`, children before parents (how a node fetches a DAG it
/// found missing: it writes each block once what it links is in).
fn child_first(u: &Universe, root: &Cid) -> Vec<(Cid, Vec<u8>)> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut stack = vec![(*root, false)];
    while let Some((c, expanded)) = stack.pop() {
        let Some(bytes) = u.blocks.get(&key_of(&c)) else { continue };
        if expanded {
            out.push((c, bytes.clone()));
            continue;
        }
        if !seen.insert(key_of(&c)) {
            continue;
        }
        stack.push((c, true));
        for l in links(bytes).unwrap_or_default() {
            if l.codec() == 0x71 {
                stack.push((l, false));
            }
        }
    }
    out
}

/// A node's writes at one await of a prune, in the orders real nodes produce; returns the
/// roots whose DAGs must be whole once the prune ends.
fn node_writes<R>(
    store: &Store,
    mut run: Pin<&mut R>,
    done: &mut bool,
    u: &Universe,
    old: [Cid; 3],
    k: usize,
) -> (Vec<Cid>, usize)
where
    R: Future<Output = Result<PruneReport, Error>>,
{
    macro_rules! beside {
        ($f:expr) => {
            drive::beside(pin!($f), run.as_mut(), done, MANY)
        };
    }
    let [x, z, w] = old;
    let nonce = 1_000_000 + 10 * k as u64;
    let mut fetched = 0;
    // Reads an old block, then writes a new one linking it (children before parents). A read
    // that finds nothing (the prune has made it unreachable) makes the node fetch the DAG.
    if beside!(store.get(&x)).expect("get").is_none() {
        beside!(store.put_many(child_first(u, &x))).expect("fetch");
        fetched += 1;
    }
    let (p, pb) = node(&[x], nonce);
    beside!(store.put(&p, pb)).expect("put");
    // Links an old block it only checked for (a state that reuses an old subtree).
    if !beside!(store.has(&z)).expect("has") {
        beside!(store.put_many(child_first(u, &z))).expect("fetch");
        fetched += 1;
    }
    let (q, qb) = node(&[z], nonce + 1);
    beside!(store.put(&q, qb)).expect("put");
    // A parent before its child: the child, written a few steps later, links old data.
    let (c, cb) = node(&[w], nonce + 2);
    let (r, rb) = node(&[c], nonce + 3);
    beside!(store.put(&r, rb)).expect("put");
    if !*done && poll_times(run.as_mut(), 7).is_some() {
        *done = true;
    }
    if !beside!(store.has(&w)).expect("has") {
        beside!(store.put_many(child_first(u, &w))).expect("fetch");
        fetched += 1;
    }
    beside!(store.put(&c, cb)).expect("put");
    (vec![p, q, r], fetched)
}

/// At every await of a prune (every `stride`-th), a node reads old state and links it from new
/// blocks, links old blocks it only checked for, and writes a parent before its child that
/// links old data: once the prune ends, and after reopening, every DAG it wrote is whole,
/// whatever the prune dropped.
#[test]
fn writes_in_real_orders_at_every_await_keep_their_dags() {
    for (mode, seed, stride) in [(Mode::Universal, 46, 1), (Mode::Messages, 47, 3)] {
        let b = block_on(base(mode, seed, 40));
        let cfg = prune_config(mode);
        let retention = 0;
        let old = block_on(doomed(&b, &cfg, retention));
        assert!(old.len() >= 3, "{mode:?}: too little to prune");
        let old = [old[0], old[old.len() / 2], old[old.len() - 1]];
        let u = block_on(universe_of(&b.hot, &b.cold));
        let open = |h: &MemKv, c: &MemKv| -> Store {
            block_on(SplitStore::open(YieldKv(h.clone()), YieldKv(c.clone()), ManualClock::new(0), cfg.clone()))
                .expect("open")
        };
        let total = {
            let store = open(&b.hot.crash_image(0), &b.cold.crash_image(0));
            let mut run = pin!(store.prune(retention, &NoProgress));
            (1..MANY).find(|_| poll_times(run.as_mut(), 1).is_some()).expect("prune ends")
        };
        let mut phases: Vec<Option<Phase>> = Vec::new();
        let mut fetched = 0;
        for k in (0..total).step_by(stride) {
            let (h, c) = (b.hot.crash_image(0), b.cold.crash_image(0));
            let store = open(&h, &c);
            let log = PhaseLog::default();
            let mut run = pin!(store.prune(retention, &log));
            let mut done = poll_times(run.as_mut(), k).is_some();
            phases.push(if done { None } else { log.last() });
            let (roots, f) = node_writes(&store, run.as_mut(), &mut done, &u, old, k);
            fetched += f;
            if !done {
                drive::finish(run.as_mut(), MANY).expect("prune");
            }
            let at = format!("{mode:?}, writes after {k} of {total} polls");
            let whole = |h: &MemKv, c: &MemKv| {
                let missing = block_on(universe_of(h, c)).closure(&roots).missing;
                assert!(missing.is_empty(), "{at}: a written DAG lost blocks: {missing:?}");
            };
            whole(&h, &c);
            assert_eq!(block_on(store.check()).expect("check").missing, 0, "{at}: live set");
            block_on(store.close()).expect("close");
            let reopened = open(&h, &c);
            whole(&h, &c);
            assert_eq!(block_on(reopened.check()).expect("check").missing, 0, "{at}: live set after reopening");
        }
        let during = |p: Phase| phases.iter().filter(|x| **x == Some(p)).count();
        println!(
            "{mode:?}: {total} polls, writes at every {stride}: {} in mark, {} in collect, {} in the critical \
             section, {} in the purge; {fetched} old DAGs fetched again",
            during(Phase::Mark),
            during(Phase::Collect),
            during(Phase::Critical),
            during(Phase::Purge)
        );
        for p in [Phase::Mark, Phase::Collect, Phase::Purge] {
            assert!(during(p) > 0, "{mode:?}: no writes during {p:?}");
        }
        assert!(fetched > 0, "{mode:?}: the node never found old data gone");
    }
}

/// A prune dropped at any await: the store is left serving (not compacting); one dropped
/// after its record was issued stays in its critical section, and the next compaction
/// finishes its purge before compacting. Nothing kept is lost either way.
#[test]
fn a_dropped_prune_is_finished_by_the_next_compaction() {
    let mode = Mode::Universal;
    let b = block_on(base(mode, 48, 30));
    let cfg = prune_config(mode);
    let expected = block_on(expected_cold(&b.hot, &b.cold, &cfg, 0, &b.pinned));
    let hot_before = block_on(keys(&b.hot, Space::Blocks));
    let cold_before = block_on(keys(&b.cold, Space::Blocks));
    let doomed: HashSet<Vec<u8>> =
        cold_before.iter().filter(|k| !expected.contains(*k) && !hot_before.contains(*k)).cloned().collect();
    let open = |h: &MemKv, c: &MemKv| -> Store {
        block_on(SplitStore::open(YieldKv(h.clone()), YieldKv(c.clone()), ManualClock::new(0), cfg.clone()))
            .expect("open")
    };
    let total = {
        let store = open(&b.hot.crash_image(0), &b.cold.crash_image(0));
        let mut run = pin!(store.prune(0, &NoProgress));
        (1..MANY).find(|_| poll_times(run.as_mut(), 1).is_some()).expect("prune ends")
    };
    let mut finished_by_compaction = 0;
    for k in (1..total).step_by(3) {
        let (h, c) = (b.hot.crash_image(0), b.cold.crash_image(0));
        let store = open(&h, &c);
        {
            let mut run = pin!(store.prune(0, &NoProgress));
            assert!(poll_times(run.as_mut(), k).is_none(), "the prune ended before poll {k}");
        }
        let info = block_on(store.info()).expect("info");
        assert!(!info.compacting, "a prune dropped at poll {k} left the store compacting");
        block_on(store.compact(&NoProgress)).unwrap_or_else(|e| panic!("compaction after a prune dropped at {k}: {e}"));
        assert!(!block_on(store.info()).expect("info").pending_recovery);
        let cold_now = block_on(keys(&c, Space::Blocks));
        assert!(expected.is_subset(&cold_now), "a kept cold block was lost after a prune dropped at {k}");
        let left = doomed.intersection(&cold_now).count();
        if info.prunes == 1 {
            assert_eq!(left, 0, "a prune dropped after it finished at {k} left blocks");
        } else if info.pending_recovery {
            finished_by_compaction += 1;
            assert_eq!(left, 0, "the compaction did not finish the prune dropped at {k}");
        } else {
            assert_eq!(left, doomed.len(), "a prune dropped before its record at {k} deleted blocks");
        }
        assert_eq!(block_on(store.check()).expect("check").missing, 0);
    }
    assert!(finished_by_compaction > 0, "no drop point left a pending prune");
}

/// `prune_every: K` prunes after every K-th compaction with `prune_retention`; a long run in
/// universal mode keeps cold bounded, without it cold grows with the chain.
#[test]
fn automatic_prune_keeps_cold_bounded() {
    let run = |prune_every: Option<u64>| {
        block_on(async {
            let cfg = Config { prune_every, prune_retention: 0, ..prune_config(Mode::Universal) };
            let (hot, cold) = (MemKv::new(), MemKv::new());
            let store = SplitStore::open(hot.clone(), cold.clone(), ManualClock::new(0), cfg).await.expect("open");
            let mut chain = small_chain(49);
            let mut sizes = Vec::new();
            for i in 0..150 {
                let e = chain.next_epoch();
                if let Some(p) = apply_epoch(&store, &e).await {
                    store.run_compaction(p.without_head_wait(), &NoProgress).await.expect("compaction");
                }
                if i % 50 == 49 {
                    sizes.push(keys(&cold, Space::Blocks).await.len());
                }
            }
            let info = store.info().await.expect("info");
            assert_eq!(info.last_error, None);
            assert_eq!(store.check().await.expect("check").missing, 0);
            (sizes, info.prunes, info.compactions)
        })
    };
    let (grows, prunes, _) = run(None);
    assert_eq!(prunes, 0);
    let (bounded, prunes, compactions) = run(Some(3));
    println!("cold blocks every 50 epochs: without prunes {grows:?}, with a prune every 3 compactions {bounded:?}");
    assert_eq!(prunes, compactions / 3);
    assert!(grows[2] > grows[0] * 2, "cold did not grow without prunes: {grows:?}");
    assert!(bounded[2] * 10 < bounded[0] * 15, "cold grew with prunes: {bounded:?}");
    assert!(bounded[2] * 2 < grows[2]);
}
