//! Batched reads (`get_many`) and the listing of every stored block (`list_blocks`), on the
//! in-memory backend whose calls yield:
//!
//! * `get_many` answers exactly what `get` answers for each CID (hot, cold, both, absent,
//!   deleted, identity);
//! * a listing of a store at rest names every readable block exactly once, with its bytes,
//!   whatever the page size;
//! * a listing whose pages interleave with a compaction at every await of it, while a node
//!   writes a new DAG parent first (the order a sync writes it), names every block stored
//!   throughout at least once and at most twice, with its bytes, and nothing never stored.

use std::{collections::HashMap, pin::pin};

use splitstore_conformance::{
    chain::{node, small_chain, small_config, universe_of},
    drive::{self, finish, poll_times, PhaseLog},
    executor::block_on,
    oracle::key_of,
    wrap::YieldKv,
};
use splitstore_core::{
    kv::Space,
    mem::{ManualClock, MemKv},
    Cid, Mode, SplitStore,
};

const MODES: [Mode; 3] = [Mode::Discard, Mode::Universal, Mode::Messages];
const MANY: usize = 200_000;

type Store = SplitStore<YieldKv<MemKv>, ManualClock>;

/// A store holding 20 epochs of the small chain (no compaction run yet) and two unlinked
/// blocks, dead for the next compaction.
fn setup(mode: Mode) -> (Store, MemKv, MemKv) {
    let (hot, cold) = (MemKv::new(), MemKv::new());
    let store = block_on(SplitStore::open(
        YieldKv(hot.clone()),
        YieldKv(cold.clone()),
        ManualClock::new(0),
        small_config(mode),
    ))
    .expect("open");
    let mut chain = small_chain(11);
    for _ in 0..20 {
        let e = chain.next_epoch();
        block_on(store.put_many(e.blocks.clone())).expect("put");
        drop(block_on(store.head_change(&[], std::slice::from_ref(&e.tipset))).expect("head"));
    }
    block_on(store.put_many(vec![node(&[], 0xd1), node(&[], 0xd2)])).expect("put");
    (store, hot, cold)
}

/// Every block of the listing, page by page, `limit` blocks a page.
fn list_all(store: &Store, limit: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = block_on(store.list_blocks(cursor, limit)).expect("list");
        assert!(page.blocks.len() <= limit, "a page of {} blocks for a limit of {limit}", page.blocks.len());
        out.extend(page.blocks);
        match page.next {
            Some(next) => cursor = Some(next),
            None => return out,
        }
    }
}

fn raw_cid(key: &[u8]) -> Cid {
    Cid::new_v1(0x55, cid::multihash::Multihash::from_bytes(key).expect("a multihash key"))
}

#[test]
fn get_many_answers_what_get_answers() {
    let (store, hot, cold) = setup(Mode::Universal);
    block_on(store.compact(&PhaseLog::default())).expect("compact");
    let cold_keys = cold.keys(Space::Blocks);
    let hot_keys = hot.keys(Space::Blocks);
    assert!(!cold_keys.is_empty() && !hot_keys.is_empty(), "both stores hold blocks");
    // A cold block written again is in both stores.
    let both = raw_cid(&cold_keys[0]);
    let bytes = block_on(store.get(&both)).expect("get").expect("cold block");
    block_on(store.put(&both, bytes)).expect("put");
    let deleted = raw_cid(&cold_keys[1]);
    block_on(store.delete(&deleted)).expect("delete");
    let identity = Cid::new_v1(0x55, cid::multihash::Multihash::wrap(0, b"inline").expect("identity"));
    let absent = node(&[], 0xabc).0;
    let mut cids = vec![both, deleted, identity, absent, raw_cid(&cold_keys[2])];
    cids.extend(hot_keys.iter().take(5).map(|k| raw_cid(k)));
    cids.push(absent);
    let batch = block_on(store.get_many(&cids)).expect("get_many");
    let one_by_one: Vec<Option<Vec<u8>>> = cids.iter().map(|c| block_on(store.get(c)).expect("get")).collect();
    assert_eq!(batch, one_by_one);
    assert_eq!(batch[1], None, "a deleted block");
    assert_eq!(batch[2].as_deref(), Some(&b"inline"[..]), "an identity CID");
    assert_eq!(batch[3], None, "an absent block");
    assert!(batch[4].is_some() && batch[5].is_some(), "a cold block and a hot one");
}

#[test]
fn a_listing_at_rest_names_every_readable_block_once() {
    for mode in MODES {
        let (store, hot, cold) = setup(mode);
        block_on(store.compact(&PhaseLog::default())).expect("compact");
        let mut readable = block_on(universe_of(&hot, &cold)).blocks;
        if mode != Mode::Discard {
            // A cold block written again is in both stores and listed once.
            let k = cold.keys(Space::Blocks)[0].clone();
            block_on(store.put(&raw_cid(&k), readable[&k].clone())).expect("put");
            let gone = cold.keys(Space::Blocks)[1].clone();
            block_on(store.delete(&raw_cid(&gone))).expect("delete");
            readable.remove(&gone);
        }
        for limit in [1, 7, 4096] {
            let listed = list_all(&store, limit);
            let mut seen: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
            for (k, v) in listed {
                assert!(seen.insert(k.clone(), v).is_none(), "{mode:?}, limit {limit}: {k:02x?} listed twice");
            }
            assert_eq!(seen, readable, "{mode:?}, limit {limit}");
        }
    }
}

/// Pages of 5 blocks, `step` polls of the compaction between pages, the first page after
/// `start` polls; a two-block DAG written parent first in the middle of the listing.
/// Returns false once the compaction finished within `start` polls.
fn listing_beside_compaction(mode: Mode, start: usize, step: usize) -> bool {
    let (store, hot, cold) = setup(mode);
    let before = block_on(universe_of(&hot, &cold)).blocks;
    let child = node(&[], 0xc1);
    let parent = node(&[child.0], 0xc2);
    let at = format!("{mode:?}, first page after {start} polls, {step} between pages");
    let log = PhaseLog::default();
    let mut run = pin!(store.compact(&log));
    let finished = poll_times(run.as_mut(), start).is_some();
    let mut done = finished;
    let mut listed: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut cursor = None;
    for page_no in 0.. {
        let page = drive::beside(pin!(store.list_blocks(cursor, 5)), run.as_mut(), &mut done, MANY)
            .unwrap_or_else(|e| panic!("{at}: list: {e}"));
        listed.extend(page.blocks);
        if page_no == 3 {
            for (c, b) in [&parent, &child] {
                drive::beside(pin!(store.put(c, b.clone())), run.as_mut(), &mut done, MANY).expect("put");
            }
        }
        if !done {
            if let Some(report) = poll_times(run.as_mut(), step) {
                report.unwrap_or_else(|e| panic!("{at}: compaction: {e}"));
                done = true;
            }
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    if !done {
        finish(run, MANY).unwrap_or_else(|e| panic!("{at}: compaction: {e}"));
    }
    let after = block_on(universe_of(&hot, &cold)).blocks;
    let mut times: HashMap<&[u8], usize> = HashMap::new();
    for (k, v) in &listed {
        *times.entry(k).or_default() += 1;
        let stored =
            before.get(k).or_else(|| [&parent, &child].into_iter().find(|(c, _)| key_of(c) == *k).map(|(_, b)| b));
        assert_eq!(stored, Some(v), "{at}: {k:02x?} listed with bytes never stored under it");
    }
    for k in before.keys().filter(|k| after.contains_key(*k)) {
        let n = times.get(k.as_slice()).copied().unwrap_or(0);
        assert!((1..=2).contains(&n), "{at}: {k:02x?}, stored throughout, listed {n} times");
    }
    for (c, b) in [&parent, &child] {
        assert_eq!(block_on(store.get(c)).expect("get").as_ref(), Some(b), "{at}: a block written meanwhile");
    }
    !finished
}

#[test]
fn a_listing_beside_a_compaction_names_every_block_stored_throughout() {
    for mode in MODES {
        for step in [1, 4, 25] {
            let mut start = 0;
            while listing_beside_compaction(mode, start, step) {
                start += 3;
            }
            assert!(start > 30, "{mode:?}: only {} starting points inside the compaction", start / 3);
        }
    }
}
