//! Reify on the in-memory backend: what it copies and its limits, and a state computation
//! reading an old DAG through the hot view, and the reify copying it, at every await of a
//! compaction and of a prune.

use std::{
    future::Future,
    pin::{pin, Pin},
};

use splitstore_conformance::{
    chain::{apply_epoch, keys, universe_of},
    drive::{self, poll_times, PhaseLog},
    executor::block_on,
    reify::{reify_base, reify_config, reify_copies_cold_dags_read_in_use, ReifyBase},
    wrap::YieldKv,
};
use splitstore_core::{
    kv::Space,
    mem::{ManualClock, MemKv},
    Cid, Error, Phase, ReifyReport, SplitStore,
};

const MANY: usize = 1_000_000;

type Store = SplitStore<YieldKv<MemKv>, ManualClock>;

fn open(h: &MemKv, c: &MemKv) -> Store {
    block_on(SplitStore::open(YieldKv(h.clone()), YieldKv(c.clone()), ManualClock::new(0), reify_config()))
        .expect("open")
}

#[test]
fn a_cold_dag_read_in_use_is_copied_into_hot_within_the_limits() {
    let b = block_on(reify_base(71, 40));
    let s = block_on(reify_copies_cold_dags_read_in_use(&MemKv::new, &b));
    println!("reified {} blocks of an old state's cold part of {}", s.copied, s.cold_part);
}

/// Which run a reify goes beside.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Beside {
    Compaction,
    Prune,
}

/// At every await of a compaction (or prune) of `b`: state computation reads an old state root
/// through the hot view and the reify drain runs, beside the run. Once both end: if the read
/// found the root, its DAG is whole over both stores, and whatever the reify copied is in hot
/// (the run did not purge it while it was read and copied); after a compaction the root's
/// whole cold part is in hot. The same holds after reopening.
fn reify_at_every_await(b: &ReifyBase, beside: Beside, read_first: bool) -> Vec<Option<Phase>> {
    let (root, part) = &b.roots[0];
    let start = |store: &Store| {
        let p = block_on(apply_epoch(store, &b.next));
        assert!(p.is_some(), "the next epoch compacts");
        // A prune runs instead of that compaction.
        p.filter(|_| beside == Beside::Compaction)
    };
    let total = {
        let store = open(&b.hot.crash_image(usize::MAX), &b.cold.crash_image(usize::MAX));
        let p = start(&store);
        let log = PhaseLog::default();
        match beside {
            Beside::Compaction => {
                let mut run = pin!(store.run_compaction(p.expect("compaction"), &log));
                (1..MANY).find(|_| poll_times(run.as_mut(), 1).is_some()).expect("ends")
            }
            Beside::Prune => {
                let mut run = pin!(store.prune(0, &log));
                (1..MANY).find(|_| poll_times(run.as_mut(), 1).is_some()).expect("ends")
            }
        }
    };
    let mut phases = Vec::new();
    // Reads that found the root, and drains that copied something.
    let mut reads = (0, 0);
    for k in 0..total {
        let (h, c) = (b.hot.crash_image(usize::MAX), b.cold.crash_image(usize::MAX));
        let store = open(&h, &c);
        let before = read_first.then(|| block_on(store.hot_view().get(root)).expect("read"));
        let p = start(&store);
        let log = PhaseLog::default();
        let at = format!("{beside:?}, read first {read_first}: reify after {k} of {total} polls");
        let (found, report, phase) = match beside {
            Beside::Compaction => {
                let run = pin!(store.run_compaction(p.expect("compaction"), &log));
                read_and_reify(&store, root, run, k, &log, !read_first)
            }
            Beside::Prune => read_and_reify(&store, root, pin!(store.prune(0, &log)), k, &log, !read_first),
        };
        let found = before.unwrap_or(found);
        phases.push(phase);
        reads.0 += usize::from(found.is_some());
        reads.1 += usize::from(report.copied > 0);
        let whole = |h: &MemKv, c: &MemKv, when: &str| {
            let hot_now = block_on(keys(h, Space::Blocks));
            // A read beside the run protects what it read (a read before a prune does not).
            if found.is_some() && (!read_first || beside == Beside::Compaction) {
                let missing = block_on(universe_of(h, c)).closure(&[*root]).missing;
                assert!(missing.is_empty(), "{at}, {when}: the DAG read lost blocks: {missing:?}");
            }
            if beside == Beside::Compaction {
                assert!(found.is_some(), "{at}: old state in cold reads");
            }
            // Whatever was copied has its DAG whole.
            let copied: Vec<Cid> = part.iter().filter(|(k, _)| hot_now.contains(*k)).map(|(_, c)| *c).collect();
            let missing = block_on(universe_of(h, c)).closure(&copied).missing;
            assert!(missing.is_empty(), "{at}, {when}: a reified DAG lost blocks: {missing:?}");
            // A prune leaves hot alone, so the walk met the same hot blocks: whatever it did
            // not find gone was copied, and stayed.
            if found.is_some() && report.roots > 0 && (beside == Beside::Compaction || report.missing == 0) {
                let lacking: Vec<_> = part.keys().filter(|k| !hot_now.contains(*k)).take(3).collect();
                assert!(lacking.is_empty(), "{at}, {when}: reified blocks are not hot: {lacking:02x?}");
            }
            assert!(report.copied == 0 || found.is_some(), "{at}: copied without a read");
            assert_eq!(report.aborted, 0, "{at}");
        };
        whole(&h, &c, "after the run");
        assert_eq!(block_on(store.check()).expect("check").missing, 0, "{at}: live set");
        block_on(store.close()).expect("close");
        let reopened = open(&h, &c);
        whole(&h, &c, "after reopening");
        assert_eq!(block_on(reopened.check()).expect("check").missing, 0, "{at}: live set after reopening");
    }
    println!("{beside:?}: the root read {} times of {total}, copied {} times", reads.0, reads.1);
    phases
}

/// Polls `run` `k` times, then (with `read`) reads `root` through the hot view and drains the
/// reify queue beside it, and finishes it. Returns what the read found, the reify's report,
/// and the phase the run was in (`None`: it had ended).
fn read_and_reify<R, T>(
    store: &Store,
    root: &Cid,
    mut run: Pin<&mut R>,
    k: usize,
    log: &PhaseLog,
    read: bool,
) -> (Option<Vec<u8>>, ReifyReport, Option<Phase>)
where
    R: Future<Output = Result<T, Error>>,
{
    let mut done = poll_times(run.as_mut(), k).is_some();
    let phase = if done { None } else { log.last() };
    let found = match read {
        true => drive::beside(pin!(store.hot_view().get(root)), run.as_mut(), &mut done, MANY).expect("read"),
        false => None,
    };
    let report = drive::beside(pin!(store.reify_pending()), run.as_mut(), &mut done, MANY).expect("reify");
    if !done {
        drive::finish(run.as_mut(), MANY).expect("run");
    }
    (found, report, phase)
}

fn summary(beside: Beside, phases: &[Option<Phase>]) {
    let during = |p: Phase| phases.iter().filter(|x| **x == Some(p)).count();
    println!(
        "{beside:?}: {} awaits: reify in mark {}, collect {}, critical {}, purge {}",
        phases.len(),
        during(Phase::Mark),
        during(Phase::Collect),
        during(Phase::Critical),
        during(Phase::Purge)
    );
    for p in [Phase::Mark, Phase::Critical, Phase::Purge] {
        assert!(during(p) > 0, "{beside:?}: no reify during {p:?}");
    }
}

#[test]
fn a_compaction_keeps_a_dag_hot_while_it_is_read_and_reified() {
    let b = block_on(reify_base(72, 40));
    for read_first in [false, true] {
        let phases = reify_at_every_await(&b, Beside::Compaction, read_first);
        summary(Beside::Compaction, &phases);
    }
}

#[test]
fn a_prune_keeps_a_dag_whole_while_it_is_read_and_reified() {
    let b = block_on(reify_base(73, 40));
    for read_first in [false, true] {
        let phases = reify_at_every_await(&b, Beside::Prune, read_first);
        summary(Beside::Prune, &phases);
    }
}

/// A block of the DAG being copied is deleted through the API at every await of the drain: it
/// is never readable afterwards, nor in hot or cold once the deletion is applied, and the rest
/// of the copy goes on.
#[test]
fn a_block_deleted_during_a_reify_is_not_copied_back() {
    let b = block_on(reify_base(76, 40));
    let (root, part) = &b.roots[0];
    let victim = *part.values().find(|c| *c != root).expect("a block below the root");
    let fresh = || {
        let store = open(&b.hot.crash_image(usize::MAX), &b.cold.crash_image(usize::MAX));
        assert!(block_on(store.hot_view().get(root)).expect("read").is_some());
        store
    };
    let total = {
        let store = fresh();
        let mut drain = pin!(store.reify_pending());
        (1..MANY).find(|_| poll_times(drain.as_mut(), 1).is_some()).expect("ends")
    };
    let mut copied_after = 0;
    for k in 0..total {
        let store = fresh();
        let at = format!("deletion after {k} of {total} polls of the drain");
        let report = {
            let mut drain = pin!(store.reify_pending());
            let mut done = poll_times(drain.as_mut(), k).is_some();
            drive::beside(pin!(store.delete(&victim)), drain.as_mut(), &mut done, MANY).expect("delete");
            if !done {
                drive::finish(drain.as_mut(), MANY).expect("reify")
            } else {
                Default::default()
            }
        };
        assert_eq!(block_on(store.get(&victim)).expect("get"), None, "{at}: the deleted block is readable");
        let key = splitstore_core::BlockKey::of(&victim).into_bytes();
        let hot = block_on(keys(store.hot(), Space::Blocks));
        assert!(!hot.contains(&key), "{at}: the deleted block is hot");
        let cold = block_on(keys(store.cold(), Space::Blocks));
        assert!(!cold.contains(&key), "{at}: the deleted block is cold");
        copied_after += usize::from(report.copied > 0);
    }
    println!("deletion at each of {total} polls of a drain; {copied_after} drains still copied the rest");
    assert!(copied_after > 0);
}

/// A crash at every backend call of a drain, with three survival variants.
#[test]
fn reify_crash_matrix_every_call() {
    let b = block_on(reify_base(77, 40));
    let s = block_on(splitstore_conformance::reify::reify_crash_matrix(&b, 1));
    println!(
        "reify crash matrix: {} calls, {} crash points, {} left a partial copy",
        s.calls, s.crash_points, s.partial
    );
    assert!(s.calls > 3 && s.crash_points >= 3 * s.calls);
}
