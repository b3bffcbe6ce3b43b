//! The compaction's walk at every read batch size, on the in-memory backend behind a wrapper
//! that gives up the thread before every call, so each batch's read is in flight while the
//! walk works on the one before:
//!
//! * the same live set (the same marks, the same hot store after each compaction) whatever
//!   the batch, from batches of one block, where nearly every child is queued while its
//!   parent's batch is still being read, to the default;
//! * a block written after the block that links it (a node stores a message DAG's root before
//!   one of its AMT nodes) arrives at every third poll of the mark, with batches of one and two
//!   blocks, and keeps its DAG.

use std::pin::pin;

use splitstore_conformance::{
    chain::{small_chain, small_config, universe_of},
    drive::{finish, finish_beside, poll_until, PhaseLog},
    executor::block_on,
    oracle::{header, key_of, links},
    wrap::{ReadBatchKv, YieldKv},
};
use splitstore_core::{
    kv::{Capabilities, Space},
    mem::{ManualClock, MemKv},
    Cid, Mode, NoProgress, Phase, SplitStore,
};

const MODES: [Mode; 3] = [Mode::Discard, Mode::Universal, Mode::Messages];
/// Polls after which a future that has not finished is taken to be waiting for something.
const MANY: usize = 200_000;

type Store = SplitStore<ReadBatchKv<YieldKv<MemKv>>, ManualClock>;

fn open(mode: Mode, hot: &MemKv, cold: &MemKv, batch: usize) -> Store {
    let kv = |m: &MemKv| ReadBatchKv(YieldKv(m.clone()), batch);
    block_on(SplitStore::open(kv(hot), kv(cold), ManualClock::new(0), small_config(mode))).expect("open")
}

/// What each compaction marked, and the hot store's keys after each.
fn compactions(mode: Mode, batch: usize) -> Vec<(u64, Vec<Vec<u8>>)> {
    let (hot, cold) = (MemKv::new(), MemKv::new());
    let store = open(mode, &hot, &cold, batch);
    let mut chain = small_chain(41);
    let mut out = Vec::new();
    for _ in 0..40 {
        let e = chain.next_epoch();
        block_on(store.put_many(e.blocks.clone())).expect("put");
        if let Some(pending) = block_on(store.head_change(&[], std::slice::from_ref(&e.tipset))).expect("head") {
            let report = block_on(store.run_compaction(pending, &NoProgress)).expect("compaction");
            let mut keys = hot.keys(Space::Blocks);
            keys.sort_unstable();
            out.push((report.marked, keys));
        }
    }
    let check = block_on(store.check()).expect("check");
    assert_eq!(check.missing, 0, "{mode:?}, batch {batch}: live blocks missing {:?}", check.missing_cids);
    out
}

#[test]
fn every_read_batch_marks_the_same_live_set() {
    for mode in MODES {
        let expected = compactions(mode, Capabilities::DEFAULT_READ_BATCH);
        assert!(expected.len() >= 3, "{mode:?}: {} compactions", expected.len());
        for batch in [1, 2, 3, 16] {
            let got = compactions(mode, batch);
            assert_eq!(got.len(), expected.len(), "{mode:?}, batch {batch}: compactions");
            for (i, ((m, keys), (em, ekeys))) in got.iter().zip(&expected).enumerate() {
                assert_eq!(m, em, "{mode:?}, batch {batch}: marked by compaction {i}");
                assert!(keys == ekeys, "{mode:?}, batch {batch}: hot store after compaction {i} differs");
            }
        }
    }
}

/// Applies epochs of the small chain until the next one would trigger a compaction; returns
/// that one, unwritten.
fn until_trigger(store: &Store, seed: u64) -> splitstore_core::synth::Epoch {
    let mut chain = small_chain(seed);
    loop {
        let e = chain.next_epoch();
        if e.height > store.config().threshold() {
            return e;
        }
        block_on(store.put_many(e.blocks.clone())).expect("put");
        assert!(block_on(store.head_change(&[], std::slice::from_ref(&e.tipset))).expect("head").is_none());
    }
}

/// The head's message root is written, one of its DAG-CBOR children is not; that child is
/// written after `polls` polls of the compaction (or once the mark is over, if it is sooner).
/// Returns whether the child was written during the mark.
fn late_child(mode: Mode, batch: usize, polls: usize) -> bool {
    let (hot, cold) = (MemKv::new(), MemKv::new());
    let store = open(mode, &hot, &cold, batch);
    let e = until_trigger(&store, 23);
    let h = header(&e.blocks.iter().find(|(c, _)| *c == e.tipset[0]).expect("header").1).expect("decodes");
    let root = e.blocks.iter().find(|(c, _)| *c == h.messages).expect("message root").clone();
    let child: Cid = *links(&root.1).expect("TxMeta decodes").iter().find(|c| c.codec() == 0x71).expect("an AMT");
    let child = e.blocks.iter().find(|(c, _)| *c == child).expect("the AMT's block").clone();
    let rest: Vec<_> = e.blocks.iter().filter(|(c, _)| *c != child.0).cloned().collect();
    block_on(store.put_many(rest)).expect("put");
    let pending = block_on(store.head_change(&[], std::slice::from_ref(&e.tipset))).expect("head").expect("due");
    let log = PhaseLog::default();
    let mut run = pin!(store.run_compaction(pending, &log));
    let mut n = 0;
    let stopped = poll_until(
        run.as_mut(),
        || {
            n += 1;
            n > polls || log.seen(Phase::Collect)
        },
        MANY,
    );
    assert!(stopped.is_none(), "{mode:?}: the compaction finished before its collect");
    let during_mark = !log.seen(Phase::Collect);
    let (written, done) = finish_beside(pin!(store.put(&child.0, child.1.clone())), run.as_mut(), MANY);
    written.expect("put the child");
    match done {
        Some(r) => r.expect("compaction"),
        None => finish(run, MANY).expect("compaction"),
    };
    let at = format!("{mode:?}, batch {batch}, child written after {polls} polls");
    let check = block_on(store.check()).expect("check");
    assert_eq!(check.missing, 0, "{at}: live blocks missing {:?}", check.missing_cids);
    let u = block_on(universe_of(&hot, &cold));
    let closure = u.closure(&[root.0]);
    assert!(closure.missing.is_empty(), "{at}: DAG lost {:?}", closure.missing);
    let hot_keys = hot.keys(Space::Blocks);
    assert!(hot_keys.contains(&key_of(&child.0)), "{at}: the child left the hot store");
    during_mark
}

#[test]
fn a_child_written_after_its_parent_during_the_mark_keeps_its_dag() {
    for mode in MODES {
        for batch in [1, 2] {
            let mut during_mark = 0;
            let mut polls = 0;
            while late_child(mode, batch, polls) {
                during_mark += 1;
                polls += 3;
            }
            assert!(during_mark >= 10, "{mode:?}, batch {batch}: only {during_mark} writes fell in the mark");
        }
    }
}
