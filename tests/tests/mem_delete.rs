//! Deleting blocks through the API while a compaction runs, at every await of it, on the
//! in-memory backend whose calls yield (so the compaction can be stopped between the move's
//! read of a block and its copy to cold):
//!
//! * a deleted block is never readable again (until written again), is gone from both stores
//!   once the compaction ends, and no compaction brings it back;
//! * nothing else is lost: the live set, read without the deleted blocks, is whole, and in
//!   universal mode every other block stays in hot or cold;
//! * a block written again after its deletion stays;
//! * after a crash at that moment, the store reopens to a state where the deletion either
//!   holds or never happened, and nothing else is lost.

use std::{
    collections::HashSet,
    future::Future,
    pin::{pin, Pin},
};

use splitstore_conformance::{
    chain::{hot_holes, node, small_chain, small_config, universe_of},
    drive::{self, finish, finish_beside, poll_times, PhaseLog},
    executor::block_on,
    oracle::{header, key_of, Universe},
    wrap::{SteppedWritesKv, WriteSteps, YieldKv},
};
use splitstore_core::{
    kv::{Kv, Space},
    mem::{ManualClock, MemKv},
    meta, Cid, CompactionReport, Config, Error, Mode, SplitStore,
};

const MODES: [Mode; 3] = [Mode::Discard, Mode::Universal, Mode::Messages];
const MANY: usize = 200_000;

type Store = SplitStore<YieldKv<MemKv>, ManualClock>;

fn open(mode: Mode, hot: &MemKv, cold: &MemKv) -> Store {
    let kv = |m: &MemKv| YieldKv(m.clone());
    block_on(SplitStore::open(kv(hot), kv(cold), ManualClock::new(0), config(mode))).expect("open")
}

/// Lenient about missing state: a deleted state block is counted, not a reason to refuse to
/// compact (a strict walk refuses, as it does for any state block that is missing). Keeps the
/// graph between compactions.
fn config(mode: Mode) -> Config {
    Config { lenient_state: true, kept_graph_bytes: 64 << 20, ..small_config(mode) }
}

/// A store with 20 epochs of the small chain (compacted once when `compacted`, so that the
/// next compaction marks from the kept graph) and two unlinked blocks, dead for the next
/// compaction. Returns the head, the dead blocks, and a live non-header
/// DAG-CBOR block of the head's state that links other blocks.
struct Setup {
    store: Store,
    hot: MemKv,
    cold: MemKv,
    head: Vec<Cid>,
    dead: [(Cid, Vec<u8>); 2],
    live: (Cid, Vec<u8>),
}

fn setup(mode: Mode, compacted: bool) -> Setup {
    let (hot, cold) = (MemKv::with_crash_tracking(), MemKv::with_crash_tracking());
    let store = open(mode, &hot, &cold);
    let mut chain = small_chain(7);
    let mut head = Vec::new();
    let mut state_root = None;
    for _ in 0..20 {
        let e = chain.next_epoch();
        block_on(store.put_many(e.blocks.clone())).expect("put");
        drop(block_on(store.head_change(&[], std::slice::from_ref(&e.tipset))).expect("head"));
        let h = e.blocks.iter().find(|(c, _)| *c == e.tipset[0]).map(|(_, b)| header(b).expect("header"));
        state_root = h.map(|h| h.state_root);
        head = e.tipset;
    }
    if compacted {
        block_on(store.compact(&PhaseLog::default())).expect("the first compaction");
    }
    let dead = [node(&[], 0xd1), node(&[], 0xd2)];
    block_on(store.put_many(dead.to_vec())).expect("put");
    // Durable, so a crash image holds it.
    block_on(hot.flush()).expect("flush");
    block_on(cold.flush()).expect("flush");
    let root = state_root.expect("a state root");
    let live = (root, block_on(store.get(&root)).expect("get").expect("the head's state root"));
    Setup { store, hot, cold, head, dead, live }
}

/// The live set of `head` in `u`, walking past nothing that was deleted.
fn live_without<K: Kv>(
    u: &Universe,
    head: &[Cid],
    store: &SplitStore<K, ManualClock>,
    deleted: &[Cid],
) -> (HashSet<Vec<u8>>, Vec<Cid>) {
    let height = block_on(store.info()).expect("info").head_epoch.expect("head");
    let b = store.config().boundaries(height);
    let mut u = u.clone();
    for c in deleted {
        u.blocks.remove(&key_of(c));
    }
    let live = u.live_set(head, b.boundary, b.include_messages);
    (live.present, live.missing)
}

fn beside<O, R>(op: Pin<&mut O>, run: Pin<&mut R>, done: &mut bool) -> O::Output
where
    O: Future + ?Sized,
    R: Future<Output = Result<CompactionReport, Error>> + ?Sized,
{
    drive::beside(op, run, done, MANY)
}

fn physically_absent(hot: &MemKv, cold: &MemKv, c: &Cid) -> bool {
    let k = key_of(c);
    !hot.keys(Space::Blocks).contains(&k) && !cold.keys(Space::Blocks).contains(&k)
}

fn deletion_records(hot: &MemKv) -> usize {
    hot.keys(Space::Meta).iter().filter(|k| k.starts_with(meta::DELETED_PREFIX)).count()
}

/// Deletes a dead block, a live one and another dead block after `polls` polls of a compaction
/// (or after it ended), writes the last one again, finishes, and checks. Returns false once the compaction
/// finished within `polls`.
fn delete_after(mode: Mode, compacted: bool, polls: usize) -> bool {
    let Setup { store, hot, cold, head, dead, live } = setup(mode, compacted);
    let before: HashSet<Vec<u8>> = hot.keys(Space::Blocks).into_iter().collect();
    let gone = [dead[0].0, live.0];
    let at = format!("{mode:?}, compacted before: {compacted}, deleted after {polls} polls");
    let log = PhaseLog::default();
    let mut run = pin!(store.compact(&log));
    let ended = poll_times(run.as_mut(), polls);
    if let (Some(r), true, false) = (&ended, compacted, mode == Mode::Messages) {
        let r = r.as_ref().unwrap_or_else(|e| panic!("{at}: compaction: {e}"));
        assert!(r.graph_marked > 0, "{at}: the compaction did not mark from the kept graph");
    }
    let finished = ended.is_some();
    let mut done = finished;
    let also = [gone[0], gone[1], dead[1].0];
    beside(pin!(store.delete_many(&also)), run.as_mut(), &mut done).unwrap_or_else(|e| panic!("{at}: delete: {e}"));
    for c in &also {
        assert!(!block_on(store.has(c)).expect("has"), "{at}: {c} is readable right after its deletion");
        assert_eq!(block_on(store.get(c)).expect("get"), None, "{at}: {c}");
    }
    // The other dead block is written again meanwhile: it is back, as a block like any other.
    beside(pin!(store.put(&dead[1].0, dead[1].1.clone())), run.as_mut(), &mut done).expect("put");
    if !done {
        finish(run, MANY).unwrap_or_else(|e| panic!("{at}: compaction: {e}"));
    }
    let check = |when: &str| {
        let at = format!("{at}, {when}");
        for c in &gone {
            assert_eq!(block_on(store.get(c)).expect("get"), None, "{at}: {c} came back");
            assert!(physically_absent(&hot, &cold, c), "{at}: {c} is still stored");
        }
        assert_eq!(deletion_records(&hot), 0, "{at}: deletion records left once no compaction runs");
        let u = block_on(universe_of(&hot, &cold));
        let (_, missing) = live_without(&u, &head, &store, &gone);
        assert_eq!(missing, vec![live.0], "{at}: the live set lacks more than the deleted block");
        if mode == Mode::Universal {
            let lost: Vec<_> = before
                .iter()
                .filter(|k| !u.blocks.contains_key(*k) && !gone.iter().any(|c| key_of(c) == **k))
                .take(3)
                .collect();
            assert!(lost.is_empty(), "{at}: universal mode lost {lost:02x?}");
        }
        let reported = block_on(store.check()).expect("check");
        assert_eq!(reported.missing_cids, vec![live.0], "{at}: check");
    };
    check("after the compaction");
    // Deleted and written again, the other dead block is back: protected as any block written
    // while the transaction is open (it opens at the compaction's first poll), or, written
    // before, dead for this compaction, which keeps it in cold in universal mode only.
    if polls > 0 || mode == Mode::Universal {
        assert_eq!(block_on(store.get(&dead[1].0)).expect("get").as_ref(), Some(&dead[1].1), "{at}: rewritten");
    }
    block_on(store.compact(&PhaseLog::default())).expect("a second compaction");
    check("after a second compaction");
    !finished
}

#[test]
fn a_block_deleted_at_any_await_of_a_compaction_stays_deleted_and_nothing_else_goes() {
    // A compaction after another marks from the graph the first kept (but in messages mode).
    for (mode, compacted) in MODES.into_iter().flat_map(|m| [(m, false), (m, true)]) {
        let mut polls = 0;
        let mut points = 0;
        while delete_after(mode, compacted, polls) {
            polls += 1;
            points += 1;
        }
        assert!(points > 50, "{mode:?}, compacted before: {compacted}: only {points} points inside the compaction");
    }
}

/// A deletion made while a compaction runs, then a crash at once, with none, half or all of
/// the writes not yet durable kept. Reopened, the deletion holds (it returned, so it is
/// durable), and nothing else is lost.
#[test]
fn a_crash_after_a_deletion_during_a_compaction_keeps_it_whole() {
    for mode in MODES {
        let mut polls = 0;
        loop {
            let Setup { store, hot, cold, head, dead, live } = setup(mode, false);
            let gone = [dead[0].0, live.0];
            let log = PhaseLog::default();
            let mut run = pin!(store.compact(&log));
            let finished = poll_times(run.as_mut(), polls).is_some();
            let mut done = finished;
            beside(pin!(store.delete_many(&gone)), run.as_mut(), &mut done).expect("delete");
            for keep in [0, hot.pending_batches() / 2, usize::MAX] {
                let at = format!("{mode:?}, deleted after {polls} polls, crash keeping {keep} batches");
                let (h, cd) = (hot.crash_image(keep), cold.crash_image(keep));
                let reopened = block_on(SplitStore::open(h.clone(), cd.clone(), ManualClock::new(0), config(mode)))
                    .unwrap_or_else(|e| panic!("{at}: reopen: {e}"));
                assert_eq!(deletion_records(&h), 0, "{at}: records left after open");
                let readable: Vec<bool> =
                    gone.iter().map(|c| block_on(reopened.get(c)).expect("get").is_some()).collect();
                assert_eq!(readable, [false, false], "{at}: a deletion that returned came undone");
                for (c, r) in gone.iter().zip(&readable) {
                    if !r {
                        assert!(physically_absent(&h, &cd, c), "{at}: {c} deleted but stored");
                    }
                }
                let deleted: Vec<Cid> = gone.iter().zip(&readable).filter(|(_, r)| !**r).map(|(c, _)| *c).collect();
                let u = block_on(universe_of(&h, &cd));
                let (_, missing) = live_without(&u, &head, &reopened, &deleted);
                let expected: Vec<Cid> = deleted.iter().copied().filter(|c| *c == live.0).collect();
                assert_eq!(missing, expected, "{at}: the live set lacks more than the deleted block");
                let holes: Vec<_> =
                    block_on(hot_holes(&h, &cd)).into_iter().filter(|(_, child)| !deleted.contains(child)).collect();
                assert!(holes.is_empty(), "{at}: hot blocks lost children {holes:02x?}");
                block_on(reopened.compact(&PhaseLog::default())).unwrap_or_else(|e| panic!("{at}: compaction: {e}"));
                for (c, _) in gone.iter().zip(&readable).filter(|(_, r)| !**r) {
                    assert_eq!(block_on(reopened.get(c)).expect("get"), None, "{at}: {c} came back");
                }
            }
            if finished {
                break;
            }
            polls += 3 + polls / 10;
        }
    }
}

/// A write of a deleted block stopped after `polls` polls, then a second deletion of it run to
/// its end beside the write, on a backend whose writes land before their futures complete,
/// while a compaction holds its transaction open (so the earlier deletion record and the cold
/// copy are still there). Whichever call lands last decides: a block the hot store lacks is
/// never readable, then or once the compaction ended and the records were applied. (The
/// deletion's exclusive lock keeps the two batches from being in flight together at all.)
#[test]
fn a_write_and_a_deletion_of_the_same_block_agree_on_the_outcome() {
    let mut polls = 0;
    loop {
        // Writes land before their futures complete, as IndexedDB commits them.
        let (hot, cold) = (MemKv::new(), MemKv::new());
        let kv = |m: &MemKv| SteppedWritesKv(YieldKv(m.clone()), WriteSteps::AfterApplying);
        let store = block_on(SplitStore::open(kv(&hot), kv(&cold), ManualClock::new(0), config(Mode::Universal)))
            .expect("open");
        let mut chain = small_chain(7);
        for _ in 0..12 {
            let e = chain.next_epoch();
            block_on(store.put_many(e.blocks.clone())).expect("put");
            drop(block_on(store.head_change(&[], std::slice::from_ref(&e.tipset))).expect("head"));
        }
        let (k, bytes) = node(&[], 0xd1);
        block_on(store.put(&k, bytes.clone())).expect("put");
        // A compaction moves the dead block to cold; then another holds its transaction open.
        block_on(store.compact(&PhaseLog::default())).expect("compaction");
        assert!(!hot.keys(Space::Blocks).contains(&key_of(&k)) && cold.keys(Space::Blocks).contains(&key_of(&k)));
        let log = PhaseLog::default();
        let mut run = pin!(store.compact(&log));
        assert!(poll_times(run.as_mut(), 3).is_none(), "the compaction is running");
        block_on(store.delete(&k)).expect("delete");
        let at = format!("write stopped after {polls} polls");
        let put_done = {
            let mut put = pin!(store.put(&k, bytes.clone()));
            let done = poll_times(put.as_mut(), polls).is_some();
            let (deleted, put_out) = if done {
                (block_on(store.delete(&k)), None)
            } else {
                finish_beside(pin!(store.delete(&k)), put.as_mut(), MANY)
            };
            deleted.expect("delete");
            match put_out {
                Some(r) => r.expect("put"),
                None if !done => finish(put, MANY).expect("put"),
                None => {}
            }
            done
        };
        let agree = |when: &str| {
            let in_hot = hot.keys(Space::Blocks).contains(&key_of(&k));
            let got = block_on(store.get(&k)).expect("get");
            assert_eq!(got.is_some(), in_hot, "{at}, {when}: readable {} but in hot {in_hot}", got.is_some());
        };
        agree("both done");
        finish(run, MANY).expect("compaction");
        agree("after the compaction");
        assert_eq!(deletion_records(&hot), 0, "{at}: records left");
        if put_done {
            break;
        }
        polls += 1;
    }
}
