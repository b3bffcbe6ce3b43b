//! Messages mode keeps old message and receipt DAGs whole in cold (invariant I7 in
//! docs/design.md). A compaction skips an old DAG whose root has already left the hot store,
//! so a block of it that stays hot when its root moves (the child of a block touched during
//! the compaction, or a block shared with live data) must be copied to cold too: once nothing
//! keeps it hot, no later compaction walks to it again and it would be purged, leaving a cold
//! message DAG with a hole (fuzz finding F7).

use splitstore_conformance::{
    chain::{apply_epoch, cold_holes, node, small_chain, small_config},
    drive::{poll_until, PhaseLog},
    executor::{block_on, SeededExecutor},
    oracle::{header, key_of, links},
    wrap::YieldKv,
};
use splitstore_core::{
    kv::{Kv, Space},
    mem::{ManualClock, MemKv},
    synth::Epoch,
    Cid, Clock, Mode, NoProgress, Phase, SplitStore,
};

/// Epochs written before the first compaction (with the small config's finality of 4,
/// messages below about height 14 are old at the end).
const EPOCHS: usize = 30;
/// Epochs written between the two compactions.
const MORE: usize = 8;

type Store = SplitStore<YieldKv<MemKv>, ManualClock>;

fn open(hot: MemKv, cold: MemKv) -> Store {
    block_on(SplitStore::open(YieldKv(hot), YieldKv(cold), ManualClock::new(0), small_config(Mode::Messages)))
        .expect("open")
}

/// The chain, and a store holding its first `EPOCHS` epochs, head at the last, no compaction
/// run yet.
fn base() -> (Vec<Epoch>, MemKv) {
    let mut g = small_chain(21);
    let epochs: Vec<Epoch> = (0..EPOCHS + MORE).map(|_| g.next_epoch()).collect();
    let hot = MemKv::new();
    let s = open(hot.clone(), MemKv::new());
    for e in &epochs[..EPOCHS] {
        drop(block_on(apply_epoch(&s, e)));
    }
    (epochs, hot)
}

/// A child of an early epoch's message root (the TxMeta's first AMT root): a block of an old
/// message DAG that is not its root.
fn old_message_child(epochs: &[Epoch]) -> Cid {
    let e = &epochs[2];
    let bytes = |c: &Cid| e.blocks.iter().find(|(b, _)| b == c).map(|(_, v)| v.clone());
    let h = header(&bytes(&e.tipset[0]).expect("header written")).expect("header decodes");
    let meta = bytes(&h.messages).expect("txmeta written with its epoch");
    let links = links(&meta).expect("txmeta decodes");
    *links.iter().find(|c| bytes(c).is_some()).expect("an AMT root of the epoch")
}

/// Applies the remaining epochs and runs a second compaction, touching nothing.
fn compact_again(s: &Store, epochs: &[Epoch]) {
    for e in &epochs[EPOCHS..] {
        drop(block_on(apply_epoch(s, e)));
    }
    block_on(s.compact(&NoProgress)).expect("second compaction");
}

fn hot_and_cold(hot: &MemKv, cold: &MemKv, c: &Cid) -> (bool, bool) {
    let k = key_of(c);
    (
        block_on(hot.get(Space::Blocks, &k)).expect("read").is_some(),
        block_on(cold.get(Space::Blocks, &k)).expect("read").is_some(),
    )
}

#[test]
fn a_protected_child_of_a_moved_message_root_reaches_cold() {
    let (epochs, base) = base();
    let child = old_message_child(&epochs);
    let (hot, cold) = (base.crash_image(0), MemKv::new());
    let s = open(hot.clone(), cold.clone());
    let pending = s.begin_compaction().expect("begin");
    // Written during the transaction: protected with its DAG, so `child` stays hot while its
    // message root moves.
    let (w, bytes) = node(&[child], 1);
    block_on(s.put(&w, bytes)).expect("put");
    block_on(s.run_compaction(pending, &NoProgress)).expect("compaction");
    assert_eq!(hot_and_cold(&hot, &cold, &child), (true, true), "the protected child stays hot and is copied");
    compact_again(&s, &epochs);
    assert_eq!(hot_and_cold(&hot, &cold, &child), (false, true), "unprotected, it leaves hot and stays in cold");
    assert_eq!(block_on(cold_holes(&hot, &cold)), Vec::<Cid>::new(), "cold message DAGs are whole");
}

/// The same child read at every point of a compaction: whenever the read protects it (before
/// collect, or between collect and the move), it is copied to cold with its DAG.
#[test]
fn a_child_read_at_any_point_of_the_compaction_reaches_cold() {
    let (epochs, base) = base();
    let child = old_message_child(&epochs);
    let mut kept_hot = 0;
    for seed in 0..120 {
        let (hot, cold) = (base.crash_image(0), MemKv::new());
        let s = open(hot.clone(), cold.clone());
        let pending = s.begin_compaction().expect("begin");
        let mut ex = SeededExecutor::new(seed);
        ex.spawn(async {
            s.run_compaction(pending, &NoProgress).await.expect("compaction");
        });
        ex.spawn(async {
            for _ in 0..seed * 3 {
                s.clock().yield_now().await;
            }
            assert!(s.get(&child).await.expect("get").is_some(), "seed {seed}: the child is readable");
        });
        ex.run(10_000_000);
        drop(ex);
        let (in_hot, in_cold) = hot_and_cold(&hot, &cold, &child);
        assert!(in_cold, "seed {seed}: the child is not in cold");
        kept_hot += usize::from(in_hot);
        compact_again(&s, &epochs);
        assert_eq!(block_on(cold_holes(&hot, &cold)), Vec::<Cid>::new(), "seed {seed}: cold message DAGs are whole");
    }
    // Some reads landed before the purge (the child stayed hot) and some after it.
    assert!(kept_hot > 0 && kept_hot < 120, "reads protected the child in {kept_hot} of 120 runs");
}

/// A node synced an old epoch's messages in part: the message root came while one of the
/// blocks below it was still being fetched. The first compaction copies the root to cold
/// without that block, which arrives afterwards. A later compaction must copy it to cold too:
/// it is part of an old message DAG (the reference walks every old message DAG each time, so
/// it would), and once nothing keeps it hot it would be purged, leaving the cold DAG cut.
/// With `interrupted`, the process dies during the first compaction's purge, and recovery at
/// open finishes it (fuzz finding F9).
fn late_message_block_reaches_cold(interrupted: bool) {
    let (epochs, _) = base();
    let child = old_message_child(&epochs);
    // The child and the part of its DAG only it links: fetched together, later.
    let late: Vec<(Cid, Vec<u8>)> = {
        let e = &epochs[2];
        let mut own = splitstore_conformance::oracle::Universe::default();
        own.extend(e.blocks.iter().map(|(c, b)| (key_of(c), b.clone())));
        let below = own.closure(&[child]).present;
        own.blocks.remove(&key_of(&child));
        let elsewhere = own.closure(&e.tipset).present;
        e.blocks
            .iter()
            .filter(|(c, _)| below.contains(&key_of(c)) && !elsewhere.contains(&key_of(c)))
            .cloned()
            .collect()
    };
    let (hot, cold) = (MemKv::new(), MemKv::new());
    let mut s = open(hot.clone(), cold.clone());
    for e in &epochs[..EPOCHS] {
        let blocks: Vec<_> = e.blocks.iter().filter(|b| !late.contains(b)).cloned().collect();
        block_on(s.put_many(blocks)).expect("put");
        drop(block_on(s.head_change(&[], std::slice::from_ref(&e.tipset))).expect("head"));
    }
    if interrupted {
        let log = PhaseLog::default();
        {
            let run = std::pin::pin!(s.compact(&log));
            assert!(poll_until(run, || log.seen(Phase::Purge), 1_000_000).is_none(), "finished before its purge");
        }
        // The process dies; a new one finishes the purge at open.
        s = open(hot.clone(), cold.clone());
        assert!(block_on(s.info()).expect("info").recovery.is_some_and(|r| r.finished_purge));
    } else {
        block_on(s.compact(&NoProgress)).expect("first compaction");
    }
    let root = header(&epochs[2].blocks.iter().find(|(c, _)| *c == epochs[2].tipset[0]).expect("header").1)
        .expect("decodes")
        .messages;
    assert_eq!(hot_and_cold(&hot, &cold, &root), (false, true), "the message root moved");
    // The missing blocks arrive.
    block_on(s.put_many(late.clone())).expect("put the late blocks");
    compact_again(&s, &epochs);
    for (c, _) in &late {
        assert_eq!(hot_and_cold(&hot, &cold, c), (false, true), "the late block {c} is copied to cold");
    }
    assert_eq!(block_on(cold_holes(&hot, &cold)), Vec::<Cid>::new(), "cold message DAGs are whole");
}

#[test]
fn a_message_block_that_arrives_after_its_root_moved_reaches_cold() {
    late_message_block_reaches_cold(false);
}

#[test]
fn a_late_message_block_reaches_cold_after_a_purge_recovery_finished() {
    late_message_block_reaches_cold(true);
}
