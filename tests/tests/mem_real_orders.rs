//! Orders real nodes produce, each reached on purpose by polling the compaction and the
//! foreground by hand (`splitstore_conformance::drive`), on the in-memory backend:
//!
//! * a message root absent when the chain walk reaches it and written during the compaction
//!   (a node syncs messages before the `TxMeta` that links them);
//! * a critical-section write whose future is dropped, beside another writer linking the
//!   same block;
//! * the purge record's write dropped on a backend whose writes land without being polled
//!   (IndexedDB);
//! * a missing header in a lenient walk;
//! * state computed from the head, written before a header names it, with sync checks on;
//! * a write that passed its tracking check before the transaction opened and lands after the
//!   mark.
//!
//! Each keeps every block the node wrote or read, with its DAG, in the hot store, in every
//! mode.

use std::pin::pin;

use splitstore_conformance::{
    chain::{hot_holes, node, small_chain, small_config, universe_of},
    drive::{finish, finish_beside, poll_times, poll_until, PhaseLog},
    executor::block_on,
    oracle::{header, key_of, links},
    wrap::{SteppedWritesKv, WriteSteps, YieldKv},
};
use splitstore_core::{
    kv::{Kv, Space, WriteBatch},
    mem::{ManualClock, MemKv},
    synth::{ChainGen, Epoch},
    Cid, Config, Error, Mode, NoProgress, Phase, SplitStore,
};

const MODES: [Mode; 3] = [Mode::Discard, Mode::Universal, Mode::Messages];
/// Polls after which a future that has not finished is taken to be waiting for something.
const MANY: usize = 200_000;

type Store<K> = SplitStore<K, ManualClock>;

/// Applies epochs of `chain` until the next one would trigger a compaction; returns that one,
/// unwritten.
fn until_trigger<K: Kv>(store: &Store<K>, chain: &mut ChainGen, clock: Option<&ManualClock>) -> Epoch {
    loop {
        let e = chain.next_epoch();
        if e.height > store.config().threshold() {
            return e;
        }
        if let Some(c) = clock {
            c.set(e.timestamp * 1000 + 1000);
        }
        block_on(store.put_many(e.blocks.clone())).expect("put");
        assert!(block_on(store.head_change(&[], std::slice::from_ref(&e.tipset))).expect("head").is_none());
    }
}

fn bytes_in(e: &Epoch, c: &Cid) -> Vec<u8> {
    e.blocks.iter().find(|(b, _)| b == c).map(|(_, v)| v.clone()).expect("block of the epoch")
}

/// Asserts that `roots` and their whole DAGs are in the hot store.
fn assert_hot_with_dag(hot: &MemKv, cold: &MemKv, roots: &[Cid], at: &str) {
    let u = block_on(universe_of(hot, cold));
    let c = u.closure(roots);
    assert!(c.missing.is_empty(), "{at}: DAG lost {:?}", c.missing);
    let hot_keys = hot.keys(Space::Blocks);
    let cold_only: Vec<_> = c.present.iter().filter(|k| !hot_keys.contains(k)).take(3).collect();
    assert!(cold_only.is_empty(), "{at}: live blocks left the hot store: {cold_only:02x?}");
}

/// A store over `hot` and `cold` whose backends give up the thread before every call.
fn open_yielding(mode: Mode, hot: &MemKv, cold: &MemKv) -> Store<YieldKv<MemKv>> {
    let kv = |m: &MemKv| YieldKv(m.clone());
    block_on(SplitStore::open(kv(hot), kv(cold), ManualClock::new(0), small_config(mode))).expect("open")
}

/// Applies `n` epochs of the small chain of `seed`, dropping the compactions they decide.
fn grow<K: Kv>(store: &Store<K>, seed: u64, n: usize) {
    let mut chain = small_chain(seed);
    for _ in 0..n {
        let e = chain.next_epoch();
        block_on(store.put_many(e.blocks.clone())).expect("put");
        drop(block_on(store.head_change(&[], std::slice::from_ref(&e.tipset))).expect("head"));
    }
}

/// A non-header block of `blocks` on the dead list of `hot`; with `dead_child`, one with a
/// DAG-CBOR child on the dead list too.
fn dead_listed(hot: &MemKv, blocks: &[(Cid, Vec<u8>)], dead_child: bool) -> Cid {
    let dead = hot.keys(Space::Dead);
    let is_dead = |c: &Cid| c.codec() == 0x71 && dead.contains(&key_of(c));
    blocks
        .iter()
        .find(|(c, b)| {
            is_dead(c) && header(b).is_none() && (!dead_child || links(b).is_some_and(|l| l.iter().any(is_dead)))
        })
        .map(|(c, _)| *c)
        .expect("a dead-listed block")
}

/// Polls `write` to completion beside the compaction `run` (which may wait on its lock), then
/// `run` to completion.
fn land_then_finish<W, R>(write: std::pin::Pin<&mut W>, mut run: std::pin::Pin<&mut R>, what: &str)
where
    W: std::future::Future<Output = Result<(), Error>> + ?Sized,
    R: std::future::Future<Output = Result<splitstore_core::CompactionReport, Error>> + ?Sized,
{
    let (written, done) = finish_beside(write, run.as_mut(), MANY);
    written.unwrap_or_else(|e| panic!("{what}: {e}"));
    match done {
        Some(r) => r.expect("compaction"),
        None => finish(run, MANY).expect("compaction"),
    };
}

/// A syncing node writes a tipset's messages and their AMTs before the `TxMeta` root that
/// links them. The head names the root while it is still missing; the root arrives while the
/// compaction runs (at the start of `phase`). Its children, stored before the compaction,
/// must be protected when it arrives.
fn absent_message_root_arrives_during(mode: Mode, phase: Phase) {
    let (hot, cold) = (MemKv::new(), MemKv::new());
    let store = open_yielding(mode, &hot, &cold);
    let mut chain = small_chain(21);
    let e = until_trigger(&store, &mut chain, None);
    let h = header(&bytes_in(&e, &e.tipset[0])).expect("header");
    let root = (h.messages, bytes_in(&e, &h.messages));
    let children = links(&root.1).expect("TxMeta decodes");
    assert!(!children.is_empty());
    let rest: Vec<_> = e.blocks.iter().filter(|(c, _)| *c != root.0).cloned().collect();
    block_on(store.put_many(rest)).expect("put");
    let pending = block_on(store.head_change(&[], std::slice::from_ref(&e.tipset))).expect("head").expect("due");
    let log = PhaseLog::default();
    let mut run = pin!(store.run_compaction(pending, &log));
    assert!(poll_until(run.as_mut(), || log.seen(phase), MANY).is_none(), "{mode:?}: finished before {phase:?}");
    land_then_finish(pin!(store.put(&root.0, root.1.clone())), run, "put the message root");
    let at = format!("{mode:?}, root written at {phase:?}");
    let check = block_on(store.check()).expect("check");
    assert_eq!(check.missing, 0, "{at}: live blocks missing {:?}", check.missing_cids);
    assert_hot_with_dag(&hot, &cold, &[root.0], &at);
}

#[test]
fn a_message_root_written_after_the_walk_met_it_absent_keeps_its_dag() {
    for mode in MODES {
        for phase in [Phase::Mark, Phase::Collect, Phase::Critical, Phase::Purge] {
            absent_message_root_arrives_during(mode, phase);
        }
    }
}

/// A store in its critical section: a compaction was dropped once it reported `Purge`. Also
/// returns a dead-listed block of the chain with dead-listed DAG-CBOR children.
fn in_critical_section(mode: Mode, hot: &MemKv, cold: &MemKv) -> (Store<YieldKv<MemKv>>, Cid) {
    let store = open_yielding(mode, hot, cold);
    grow(&store, 33, 20);
    let written = chain_blocks_in(hot);
    let log = PhaseLog::default();
    {
        let run = pin!(store.compact(&log));
        assert!(poll_until(run, || log.seen(Phase::Purge), MANY).is_none(), "finished before its purge");
    }
    assert!(block_on(store.info()).expect("info").pending_recovery, "the store stays in its critical section");
    let victim = dead_listed(hot, &written, true);
    (store, victim)
}

/// Every block of the hot store, as DAG-CBOR CIDs (test chains are DAG-CBOR but for raw leaves).
fn chain_blocks_in(hot: &MemKv) -> Vec<(Cid, Vec<u8>)> {
    block_on(hot.scan(Space::Blocks, None, usize::MAX))
        .expect("scan")
        .into_iter()
        .map(|(k, v)| {
            let mh = cid::multihash::Multihash::<64>::from_bytes(&k).expect("multihash key");
            (Cid::new_v1(0x71, mh), v)
        })
        .collect()
}

/// Writers link a dead-listed block in the critical section; the first one's future is
/// dropped after `polls` polls (its write never lands, its walk may stop anywhere); then a
/// second writer links the same block, or none does. Whatever the first left behind, the
/// second's block keeps its DAG in memory, after the purge and after a crash, and no block
/// the purge keeps loses a child.
#[test]
fn a_critical_write_that_never_lands_hides_nothing_from_other_writers() {
    for mode in MODES {
        for second_writer in [true, false] {
            let mut polls = 1;
            loop {
                let (hot, cold) = (MemKv::with_crash_tracking(), MemKv::with_crash_tracking());
                let (store, victim) = in_critical_section(mode, &hot, &cold);
                let (p1, b1) = node(&[victim], 1);
                let (p2, b2) = node(&[victim], 2);
                let first_completed = {
                    let w1 = pin!(store.put(&p1, b1));
                    poll_times(w1, polls).is_some()
                };
                let mut written = vec![];
                if first_completed {
                    written.push(p1);
                }
                if second_writer {
                    block_on(store.put(&p2, b2)).expect("second writer");
                    written.push(p2);
                }
                let at = format!("{mode:?}, second writer {second_writer}, first dropped after {polls} polls");
                // A crash now: a fresh process finishes the purge from the durable dead list.
                let (h, c) = (hot.crash_image(usize::MAX), cold.crash_image(usize::MAX));
                {
                    let reopened =
                        block_on(SplitStore::open(h.clone(), c.clone(), ManualClock::new(0), small_config(mode)))
                            .expect("reopen");
                    assert!(!block_on(reopened.info()).expect("info").pending_recovery);
                    assert_hot_with_dag(&h, &c, &written, &format!("{at}, after a crash"));
                    let holes = block_on(hot_holes(&h, &c));
                    assert!(holes.is_empty(), "{at}, after a crash: hot blocks lost children {holes:02x?}");
                }
                // The same process finishes its purge.
                block_on(store.compact(&NoProgress)).expect("the purge is finished");
                assert_hot_with_dag(&hot, &cold, &written, &at);
                let holes = block_on(hot_holes(&hot, &cold));
                assert!(holes.is_empty(), "{at}: hot blocks lost children {holes:02x?}");
                if first_completed {
                    break;
                }
                polls += 1;
            }
        }
    }
}

/// On a backend whose writes land before their future completes (IndexedDB commits a
/// transaction whether or not anyone awaits it), the compaction is dropped while its purge
/// record's write is pending. The record may be durable, so the store must still count the
/// purge as pending: otherwise a later compaction's dead list, written before its own
/// critical section, would be purged by recovery after a crash — with blocks written during
/// that compaction in it.
#[test]
fn a_dropped_purge_record_write_keeps_the_purge_pending() {
    for mode in MODES {
        let (hot, cold) = (MemKv::with_crash_tracking(), MemKv::with_crash_tracking());
        let steps = |kv: &MemKv| SteppedWritesKv(YieldKv(kv.clone()), WriteSteps::AfterApplying);
        let store = block_on(SplitStore::open(steps(&hot), steps(&cold), ManualClock::new(0), small_config(mode)))
            .expect("open");
        let mut chain = small_chain(45);
        until_trigger(&store, &mut chain, None);
        {
            let run = pin!(store.compact(&NoProgress));
            let recorded = || hot.keys(Space::Meta).iter().any(|k| k.as_slice() == b"purge");
            assert!(poll_until(run, recorded, MANY).is_none(), "{mode:?}: finished before writing its purge record");
        }
        assert!(
            block_on(store.info()).expect("info").pending_recovery,
            "{mode:?}: the purge record may be durable, so the purge is pending"
        );
        // Later compactions; in the first that collects, a block written during it (after
        // the transaction opened, before collect passes its key) is listed dead, and the
        // process dies before the compaction protects it.
        let (x, xb) = node(&[], 0xdead);
        let mut crashed = false;
        for _ in 0..3 {
            let log = PhaseLog::default();
            let mut run = pin!(store.compact(&log));
            if poll_until(run.as_mut(), || log.seen(Phase::Collect), MANY).is_some() {
                continue; // finished the earlier purge without collecting
            }
            block_on(store.put(&x, xb.clone())).expect("put during the compaction");
            block_on(store.hot().flush()).expect("flush");
            let listed = || hot.keys(Space::Dead).contains(&key_of(&x));
            assert!(poll_until(run, listed, MANY).is_none(), "{mode:?}: the block was never listed dead");
            crashed = true;
            break;
        }
        assert!(crashed, "{mode:?}: no compaction collected");
        let (h, c) = (hot.crash_image(usize::MAX), cold.crash_image(usize::MAX));
        let reopened =
            block_on(SplitStore::open(h.clone(), c.clone(), ManualClock::new(0), small_config(mode))).expect("reopen");
        assert!(
            block_on(reopened.get(&x)).expect("get").is_some(),
            "{mode:?}: a block written and flushed during a compaction was purged by recovery"
        );
    }
}

/// A lenient walk (missing state recorded, not fatal) meets a missing header. The headers
/// below it are live (every header back to genesis is), so the walk must not stop there:
/// with another header of the same tipset present it goes on through that one's parents;
/// with the whole tipset missing it cannot know the parents, and the compaction fails
/// without deleting anything.
#[test]
fn a_missing_header_never_shortens_the_walk() {
    for mode in MODES {
        for whole_tipset in [true, false] {
            let at = format!("{mode:?}, whole tipset missing: {whole_tipset}");
            let cfg = Config { lenient_state: true, ..small_config(mode) };
            let hot = MemKv::new();
            let store = block_on(SplitStore::open(hot.clone(), MemKv::new(), ManualClock::new(0), cfg)).expect("open");
            let mut chain = small_chain(8);
            let mut epochs = Vec::new();
            for _ in 0..30 {
                let e = chain.next_epoch();
                block_on(store.put_many(e.blocks.clone())).expect("put");
                drop(block_on(store.head_change(&[], std::slice::from_ref(&e.tipset))).expect("head"));
                epochs.push(e);
            }
            let victim = epochs
                .iter()
                .skip(12)
                .find(|e| whole_tipset || e.tipset.len() > 1)
                .expect("a tipset of several blocks");
            let removed: Vec<Cid> = if whole_tipset { victim.tipset.clone() } else { vec![victim.tipset[0]] };
            let mut batch = WriteBatch::new();
            for c in &removed {
                batch.delete(Space::Blocks, key_of(c));
            }
            block_on(hot.write(batch)).expect("remove headers");
            let older: Vec<Cid> =
                epochs.iter().filter(|e| e.height < victim.height).flat_map(|e| e.tipset.clone()).collect();
            let result = block_on(store.compact(&NoProgress));
            let hot_keys = hot.keys(Space::Blocks);
            let kept = older.iter().filter(|c| hot_keys.contains(&key_of(c))).count();
            assert_eq!(kept, older.len(), "{at}: older headers purged ({result:?})");
            if whole_tipset {
                match result {
                    Err(Error::MissingBlock { context: "header", cid }) => assert!(removed.contains(&cid), "{at}"),
                    other => panic!("{at}: expected the missing header to fail the compaction, got {other:?}"),
                }
            } else {
                let report = result.unwrap_or_else(|e| panic!("{at}: {e}"));
                assert!(report.purged > 0 && report.missing > 0, "{at}: {report:?}");
            }
        }
    }
}

/// With sync checks on, the node executes the head tipset and writes the resulting state
/// before the next header names it (here, before the head change that triggers the
/// compaction, so no transactional reference covers it). The purge must wait for a fresh head
/// marked inside the critical section: that head's parent state is this state.
#[test]
fn state_computed_from_the_head_survives_until_a_header_names_it() {
    for mode in MODES {
        let clock = ManualClock::new(0);
        let cfg = Config { sync_gap_secs: Some(60), sync_wait_secs: 30, ..small_config(mode) };
        let (hot, cold) = (MemKv::new(), MemKv::new());
        let store =
            block_on(SplitStore::open(YieldKv(hot.clone()), YieldKv(cold.clone()), clock.clone(), cfg)).expect("open");
        let mut chain = small_chain(52);
        let head = until_trigger(&store, &mut chain, Some(&clock));
        let next = chain.next_epoch();
        // The next tipset's state and messages, computed before its header exists.
        let headers: Vec<Cid> = next.tipset.clone();
        let (hdrs, body): (Vec<_>, Vec<_>) = next.blocks.iter().cloned().partition(|(c, _)| headers.contains(c));
        block_on(store.put_many(body)).expect("put state");
        block_on(store.put_many(head.blocks.clone())).expect("put");
        clock.set(head.timestamp * 1000 + 1000);
        let pending = block_on(store.head_change(&[], std::slice::from_ref(&head.tipset))).expect("head").expect("due");
        let log = PhaseLog::default();
        let mut run = pin!(store.run_compaction(pending, &log));
        assert!(poll_until(run.as_mut(), || log.seen(Phase::Critical), MANY).is_none());
        let done_early = poll_times(run.as_mut(), 20_000);
        assert!(done_early.is_none(), "{mode:?}: purged before a fresh head was marked in the critical section");
        block_on(store.put_many(hdrs)).expect("put headers");
        clock.set(next.timestamp * 1000 + 1000);
        assert!(block_on(store.head_change(&[], std::slice::from_ref(&next.tipset))).expect("head").is_none());
        finish(run, MANY).expect("compaction");
        let check = block_on(store.check()).expect("check");
        assert_eq!(check.missing, 0, "{mode:?}: live blocks missing {:?}", check.missing_cids);
        assert_hot_with_dag(&hot, &cold, &[next.state_root], &format!("{mode:?}"));
    }
}

/// A write that checked for a transaction before one opened, and lands after the compaction
/// has marked: the transaction must wait for it, or it escapes tracking.
#[test]
fn a_write_in_flight_when_the_transaction_opens_is_tracked() {
    for mode in MODES {
        let (hot, cold) = (MemKv::new(), MemKv::new());
        let store = open_yielding(mode, &hot, &cold);
        let mut chain = small_chain(61);
        let e = until_trigger(&store, &mut chain, None);
        let h = header(&bytes_in(&e, &e.tipset[0])).expect("header");
        let rest: Vec<_> = e.blocks.iter().filter(|(c, _)| *c != h.messages).cloned().collect();
        block_on(store.put_many(rest)).expect("put");
        let mut write = pin!(store.put(&h.messages, bytes_in(&e, &h.messages)));
        assert!(poll_times(write.as_mut(), 1).is_none(), "the write is in flight");
        let pending = block_on(store.head_change(&[], std::slice::from_ref(&e.tipset))).expect("head").expect("due");
        let log = PhaseLog::default();
        let mut run = pin!(store.run_compaction(pending, &log));
        let early = poll_until(run.as_mut(), || log.seen(Phase::Collect), 20_000);
        assert!(early.is_none(), "{mode:?}: finished with a write in flight");
        finish(write, MANY).expect("the write lands");
        finish(run, MANY).expect("compaction");
        let check = block_on(store.check()).expect("check");
        assert_eq!(check.missing, 0, "{mode:?}: live blocks missing {:?}", check.missing_cids);
        assert_hot_with_dag(&hot, &cold, &[h.messages], &format!("{mode:?}"));
    }
}

/// A write records its blocks as transactional references before it writes them; a protection
/// pass can drain those references while the write is still on its way to the backend, find
/// the blocks absent and leave them unmarked (an absent block is not marked), and the retries
/// of missing references can end before it lands. Here the write links a block collect listed
/// dead, and waits until the critical section waits for it; then it lands, and completes or,
/// with `dropped`, has its future dropped right after (on a backend that commits writes
/// whether or not their future completes, as IndexedDB does). Either way the block landed and
/// must keep its DAG.
fn write_drained_before_it_lands(mode: Mode, dropped: bool) {
    let (hot, cold) = (MemKv::new(), MemKv::new());
    let kv = |m: &MemKv| YieldKv(SteppedWritesKv(m.clone(), WriteSteps::AfterApplying));
    let store = block_on(SplitStore::open(kv(&hot), kv(&cold), ManualClock::new(0), small_config(mode))).expect("open");
    grow(&store, 71, 20);
    let old = chain_blocks_in(&hot);
    let log = PhaseLog::default();
    let mut run = pin!(store.compact(&log));
    assert!(poll_until(run.as_mut(), || !hot.keys(Space::Dead).is_empty(), MANY).is_none());
    let (p, b) = node(&[dead_listed(&hot, &old, false)], 7);
    let at = format!("{mode:?}, dropped: {dropped}");
    let mut w = Box::pin(store.put(&p, b));
    assert!(poll_times(w.as_mut(), 1).is_none(), "the write is on its way");
    // The compaction protects references (this one's block absent), retries the missing ones,
    // and waits for the write to enter its critical section.
    assert!(poll_until(run.as_mut(), || log.seen(Phase::Critical), MANY).is_none());
    assert!(poll_times(run.as_mut(), 1_000).is_none(), "the critical section waits for the write");
    if dropped {
        // The write lands, and its future is dropped before it returns.
        assert!(poll_times(w.as_mut(), 1).is_none());
        drop(w);
        assert!(hot.keys(Space::Blocks).contains(&key_of(&p)), "{at}: the dropped write landed");
        finish(run, MANY).expect("compaction");
    } else {
        land_then_finish(w.as_mut(), run, "the write");
    }
    assert_hot_with_dag(&hot, &cold, &[p], &at);
    let holes = block_on(hot_holes(&hot, &cold));
    assert!(holes.is_empty(), "{at}: hot blocks lost children {holes:02x?}");
}

#[test]
fn a_write_whose_reference_is_drained_before_it_lands_is_protected() {
    for mode in MODES {
        write_drained_before_it_lands(mode, false);
    }
}

#[test]
fn a_dropped_write_that_lands_late_keeps_its_dag() {
    for mode in MODES {
        write_drained_before_it_lands(mode, true);
    }
}

/// On a backend that commits writes whether or not their future completes, the compaction is
/// dropped while its finish (the strict write that ends the purge and counts the compaction)
/// is pending. The store cannot know whether that write landed; the run that resumes writes
/// the same record again, so the compaction is counted once.
#[test]
fn a_dropped_finish_counts_the_compaction_once() {
    for mode in MODES {
        let (hot, cold) = (MemKv::new(), MemKv::new());
        let steps = |kv: &MemKv| SteppedWritesKv(YieldKv(kv.clone()), WriteSteps::AfterApplying);
        let store = block_on(SplitStore::open(steps(&hot), steps(&cold), ManualClock::new(0), small_config(mode)))
            .expect("open");
        let mut chain = small_chain(47);
        until_trigger(&store, &mut chain, None);
        let before = block_on(store.info()).expect("info").compactions;
        let state = || block_on(hot.get(Space::Meta, b"state")).expect("read");
        let recorded = state();
        {
            let run = pin!(store.compact(&NoProgress));
            assert!(poll_until(run, || state() != recorded, MANY).is_none(), "{mode:?}: finished at once");
        }
        assert!(block_on(store.info()).expect("info").pending_recovery, "{mode:?}: the purge is still pending");
        let report = block_on(store.compact(&NoProgress)).expect("the resumed run");
        assert!(report.resumed, "{mode:?}: the next run resumes the dropped one");
        assert_eq!(block_on(store.info()).expect("info").compactions, before + 1, "{mode:?}: counted once");
        block_on(store.compact(&NoProgress)).expect("a new compaction");
        assert_eq!(block_on(store.info()).expect("info").compactions, before + 2, "{mode:?}");
    }
}
