//! A purge batch's deletions in flight (`crate::live` in the core): the purge decides a batch
//! under the exclusive lock and writes it after releasing the lock. Here the first batch's
//! write is held open (`GatedDeletesKv`) while the foreground acts, so every order of the
//! window is reached on purpose: reads do not wait for the write, the batch's blocks answer
//! as deleted, a walk does not bring them back, and a write of one of them lands after the
//! deletion.

use std::pin::pin;

use splitstore_conformance::{
    chain::{node, small_chain, small_config},
    drive::{finish, finish_beside, poll_times, poll_until},
    executor::block_on,
    oracle::key_of,
    wrap::{Gate, GatedDeletesKv},
};
use splitstore_core::{
    mem::{ManualClock, MemKv},
    Cid, Config, Mode, NoProgress, SplitStore,
};

type Store = SplitStore<GatedDeletesKv<MemKv>, ManualClock>;

/// A raw (leaf) block holding `bytes`.
fn leaf(bytes: &[u8]) -> (Cid, Vec<u8>) {
    let digest = blake2b_simd::Params::new().hash_length(32).hash(bytes);
    let mh = cid::multihash::Multihash::<64>::wrap(0xb220, digest.as_bytes()).expect("fits");
    (Cid::new_v1(0x55, mh), bytes.to_vec())
}

/// A discard-mode store whose purge deletes everything dead in one batch, holding 40 epochs
/// and the dead blocks `dead`, never compacted; returns it with the head's first block.
fn filled(gate: &Gate, dead: &[(Cid, Vec<u8>)]) -> (Store, Cid) {
    let hot = GatedDeletesKv { inner: MemKv::new(), gate: gate.clone() };
    let cold = GatedDeletesKv { inner: MemKv::new(), gate: Gate::default() };
    let one_batch = 1 << 16;
    let cfg = Config {
        threshold_finalities: 1_000,
        batch_size: one_batch,
        purge_locked_deletes: one_batch,
        purge_idle_locked_deletes: one_batch,
        ..small_config(Mode::Discard)
    };
    let store = block_on(SplitStore::open(hot, cold, ManualClock::new(0), cfg)).expect("open");
    block_on(store.put_many(dead.to_vec())).expect("put dead blocks");
    let mut chain = small_chain(7);
    let mut head = None;
    for _ in 0..40 {
        let e = chain.next_epoch();
        block_on(store.put_many(e.blocks.clone())).expect("put");
        block_on(store.head_change(&[], std::slice::from_ref(&e.tipset))).expect("head");
        head = Some(e.tipset[0]);
    }
    (store, head.expect("a head"))
}

/// API calls that waited on the compaction so far (`Metrics::lock_waits`).
fn waits(store: &Store) -> u64 {
    finish(pin!(store.info()), 10_000).expect("info").metrics.lock_waits
}

fn get(store: &Store, cid: &Cid) -> Option<Vec<u8>> {
    finish(pin!(store.get(cid)), 10_000).expect("get")
}

#[test]
fn the_foreground_meets_a_purge_write_in_flight() {
    let gate = Gate::default();
    let dag = node(&[], 1);
    let rewritten = node(&[], 2);
    let raw = leaf(b"a leaf nothing links");
    let (store, head) = filled(&gate, &[dag.clone(), rewritten.clone(), raw.clone()]);
    let head_bytes = get(&store, &head).expect("the head is stored");

    let mut compaction = pin!(store.compact(&NoProgress));
    assert!(
        poll_until(compaction.as_mut(), || gate.held().is_some(), 1_000_000).is_none(),
        "the compaction ended without a purge write"
    );
    let held = gate.held().expect("held");
    for (c, _) in [&dag, &rewritten, &raw] {
        assert!(held.contains(&key_of(c)), "the held batch deletes every dead block");
    }

    // A read does not wait for the write in flight (the exclusive lock is not held).
    let waited = waits(&store);
    let read = poll_times(pin!(store.get(&head)), 1_000).expect("a read waited for the purge's write");
    assert_eq!(read.expect("get"), Some(head_bytes));
    assert_eq!(waits(&store), waited, "the read counted a wait");
    // The batch's blocks answer as deleted, though the write has not landed.
    assert_eq!(get(&store, &dag.0), None);
    assert!(!finish(pin!(store.has(&raw.0)), 10_000).expect("has"));

    // A new block linking two of them is written; its walk does not mark them back.
    let parent = node(&[dag.0, raw.0], 3);
    poll_times(pin!(store.put(&parent.0, parent.1.clone())), 1_000)
        .expect("a write of a block outside the batch waited")
        .expect("put");
    assert_eq!(get(&store, &dag.0), None, "a walk brought back a block being deleted");
    assert_eq!(get(&store, &raw.0), None, "a walk brought back a leaf being deleted");

    // A write of a block the batch deletes waits for the deletion, then lands.
    let mut write_again = pin!(store.put(&rewritten.0, rewritten.1.clone()));
    assert!(poll_times(write_again.as_mut(), 1_000).is_none(), "a write of a block being deleted did not wait");
    gate.open();
    let (report, wrote) = finish_beside(compaction, write_again.as_mut(), 1_000_000);
    let report = report.expect("compact");
    match wrote {
        Some(r) => r.expect("put"),
        None => finish(write_again, 10_000).expect("put"),
    }
    assert!(report.purged >= 3, "{report:?}");
    assert_eq!(waits(&store), waited + 1, "the write of a block being deleted counts one wait");

    assert_eq!(get(&store, &rewritten.0), Some(rewritten.1), "the write landed before the deletion");
    assert_eq!(get(&store, &parent.0), Some(parent.1));
    assert_eq!(get(&store, &dag.0), None);
    assert_eq!(get(&store, &raw.0), None);
}
