//! The KV contract on the on-disk backend, plus what only a real disk can show: data survives
//! reopening, a second open is refused, and reclaim returns disk space.
#![cfg(not(target_arch = "wasm32"))]

use std::{path::Path, sync::Mutex};

use futures::executor::block_on;
use splitstore_conformance::kv_contract;
use splitstore_core::kv::{Kv, Space, WriteBatch};
use splitstore_native::{FjallKv, KvOptions};

fn small() -> KvOptions {
    KvOptions { cache_bytes: 8 << 20, read_threads: 2, ..KvOptions::default() }
}

#[test]
fn fjall_kv_meets_the_kv_contract() {
    // Each store lives in its own directory, removed when the test ends.
    let dirs: Mutex<Vec<tempfile::TempDir>> = Mutex::new(Vec::new());
    let make = || {
        let d = tempfile::tempdir().expect("tempdir");
        let kv = FjallKv::open(d.path(), &small()).expect("open");
        dirs.lock().expect("lock").push(d);
        kv
    };
    block_on(kv_contract::run_all(make));
}

fn key(i: u32) -> Vec<u8> {
    let mut k = vec![0xa0, 0xe4, 0x02, 0x20];
    k.extend_from_slice(&blake2b_simd::blake2b(&i.to_le_bytes()).as_bytes()[..32]);
    k
}

fn fill(kv: &FjallKv, n: u32, len: usize) {
    for start in (0..n).step_by(4096) {
        let mut b = WriteBatch::new();
        for i in start..(start + 4096).min(n) {
            b.put(Space::Blocks, key(i), vec![(i % 251) as u8; len]);
        }
        block_on(kv.write(b)).expect("write");
    }
}

/// Bytes of every file under `dir`, as the file system reports them.
fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let m = e.metadata().expect("metadata");
            if m.is_dir() {
                stack.push(e.path());
            } else {
                total += m.len();
            }
        }
    }
    total
}

fn reopen(dir: &Path) -> FjallKv {
    FjallKv::open(dir, &small()).expect("reopen")
}

#[test]
fn writes_survive_reopening_and_a_second_open_is_refused() {
    let d = tempfile::tempdir().expect("tempdir");
    let kv = FjallKv::open(d.path(), &small()).expect("open");
    fill(&kv, 10_000, 100);
    let mut b = WriteBatch::new();
    b.put(Space::Meta, b"base".to_vec(), b"42".to_vec()).delete(Space::Blocks, key(7)).strict();
    block_on(kv.write(b)).expect("strict write");

    let err = FjallKv::open(d.path(), &small()).expect_err("the store is already open");
    assert!(err.to_string().contains("in use"), "{err}");
    drop(kv);

    let kv = reopen(d.path());
    assert_eq!(block_on(kv.get(Space::Meta, b"base")).expect("get"), Some(b"42".to_vec()));
    assert!(!block_on(kv.has(Space::Blocks, &key(7))).expect("has"));
    let stats = block_on(kv.stats(Space::Blocks)).expect("stats");
    assert_eq!(stats.keys, 9_999);
    assert_eq!(stats.bytes, 9_999 * 100);
}

#[test]
fn reclaim_returns_disk_space_and_keeps_the_live_data() {
    let d = tempfile::tempdir().expect("tempdir");
    let kv = FjallKv::open(d.path(), &small()).expect("open");
    let n = 60_000;
    fill(&kv, n, 400);
    block_on(kv.flush()).expect("flush");
    block_on(kv.reclaim()).expect("first reclaim");
    let full = kv.table_bytes().expect("disk");

    for start in (0..n).step_by(8192) {
        let mut b = WriteBatch::new();
        for i in (start..(start + 8192).min(n)).filter(|i| i % 4 != 0) {
            b.delete(Space::Blocks, key(i));
        }
        b.strict();
        block_on(kv.write(b)).expect("delete");
    }
    let deleted = kv.table_bytes().expect("disk");
    block_on(kv.reclaim()).expect("reclaim");
    let reclaimed = kv.table_bytes().expect("disk");
    let on_disk = dir_bytes(d.path());
    eprintln!("table bytes: full {full}, after deletes {deleted}, after reclaim {reclaimed}; directory {on_disk}");
    // A quarter of the data is left; the tables shrink to about that (the journal is a
    // bounded cost that reclaim does not touch).
    assert!(reclaimed < deleted, "reclaim must shrink the tables ({deleted} -> {reclaimed})");
    assert!(reclaimed < full / 3, "reclaim must return the deleted space ({full} -> {reclaimed})");
    assert!(on_disk < kv.journal_bytes().expect("journal") + full / 2, "files really went: {on_disk} bytes left");

    drop(kv);
    let kv = reopen(d.path());
    let keys: Vec<_> = (0..n).map(key).collect();
    let got = block_on(kv.get_many(Space::Blocks, &keys)).expect("get_many");
    for (i, g) in got.iter().enumerate() {
        assert_eq!(g.is_some(), i % 4 == 0, "key {i} after reclaim and reopen");
    }
}

fn delete_range(kv: &FjallKv, range: std::ops::Range<u32>) {
    let mut b = WriteBatch::new();
    for i in range {
        b.delete(Space::Blocks, key(i));
    }
    block_on(kv.write(b)).expect("delete");
}

/// A full merge rewrites the whole store: a reclaim runs one only once the blocks deleted since
/// the last one reach the entries left (`KvOptions::merge_ratio`, 1), counting deletions made
/// by earlier processes.
#[test]
fn reclaim_merges_once_deletions_reach_the_entries_left_across_restarts() {
    let d = tempfile::tempdir().expect("tempdir");
    let kv = FjallKv::open(d.path(), &small()).expect("open");
    fill(&kv, 10_000, 100);
    block_on(kv.reclaim()).expect("reclaim");
    assert_eq!(kv.merges(), 0, "nothing deleted, nothing to merge");
    delete_range(&kv, 0..2_000);
    block_on(kv.reclaim()).expect("reclaim");
    assert_eq!(kv.merges(), 0, "2,000 deleted against 8,000 left");
    assert!(!block_on(kv.has(Space::Blocks, &key(1))).expect("has"), "a deletion holds without a merge");
    drop(kv);

    let kv = reopen(d.path());
    delete_range(&kv, 2_000..4_000);
    block_on(kv.reclaim()).expect("reclaim");
    assert_eq!(kv.merges(), 0, "4,000 deleted against 6,000 left");
    let before = kv.table_bytes().expect("tables");
    delete_range(&kv, 4_000..5_500);
    block_on(kv.reclaim()).expect("reclaim");
    // 3,500 deleted in this process against 4,500 left: only the count kept from the first
    // process reaches the ratio.
    assert_eq!(kv.merges(), 1, "5,500 deleted against 4,500 left");
    let after = kv.table_bytes().expect("tables");
    assert!(after < before / 2, "the merge returned the deleted space ({before} -> {after})");
    let estimate = block_on(kv.estimate(Space::Blocks)).expect("estimate").expect("fjall estimates");
    assert_eq!(estimate.keys, 4_500, "after a merge the estimate is exact");
    block_on(kv.reclaim()).expect("reclaim");
    assert_eq!(kv.merges(), 1, "the merge reset the count");
    drop(kv);

    let every = KvOptions { merge_ratio: 0.0, ..small() };
    let kv = FjallKv::open(d.path(), &every).expect("reopen");
    delete_range(&kv, 5_500..5_501);
    block_on(kv.reclaim()).expect("reclaim");
    assert_eq!(kv.merges(), 1, "ratio 0 merges at every reclaim");
}

/// A compaction's purge deletes each block with its dead-list entry, which collect wrote in the
/// same compaction: a key without a value, not space a merge gives back. Only the deleted
/// blocks count toward the merge, across restarts too.
#[test]
fn reclaim_counts_deleted_blocks_not_the_dead_list() {
    let d = tempfile::tempdir().expect("tempdir");
    let kv = FjallKv::open(d.path(), &small()).expect("open");
    fill(&kv, 10_000, 100);
    block_on(kv.reclaim()).expect("reclaim");
    let purge = |kv: &FjallKv, range: std::ops::Range<u32>| {
        let mut listed = WriteBatch::new();
        for i in range.clone() {
            listed.put(Space::Dead, key(i), Vec::new());
        }
        block_on(kv.write(listed)).expect("collect");
        let mut b = WriteBatch::new();
        for i in range {
            b.delete(Space::Blocks, key(i)).delete(Space::Dead, key(i));
        }
        block_on(kv.write(b)).expect("purge");
    };
    purge(&kv, 0..4_000);
    block_on(kv.reclaim()).expect("reclaim");
    // 8,000 entries deleted against 6,000 left would have merged.
    assert_eq!(kv.merges(), 0, "4,000 blocks deleted against 6,000 left");
    drop(kv);

    let kv = reopen(d.path());
    let before = kv.table_bytes().expect("tables");
    purge(&kv, 4_000..5_100);
    block_on(kv.reclaim()).expect("reclaim");
    assert_eq!(kv.merges(), 1, "5,100 blocks deleted against 4,900 left, 4,000 of them by the first process");
    assert!(kv.table_bytes().expect("tables") < before / 2, "the merge returned the deleted blocks' space");
    for space in [Space::Blocks, Space::Dead] {
        let left = block_on(kv.stats(space)).expect("stats").keys;
        assert_eq!(left, if space == Space::Blocks { 4_900 } else { 0 });
    }
}

#[test]
fn keys_fjall_cannot_hold_are_errors_not_panics() {
    let d = tempfile::tempdir().expect("tempdir");
    let kv = FjallKv::open(d.path(), &small()).expect("open");
    let mut b = WriteBatch::new();
    b.put(Space::Meta, b"fine".to_vec(), b"1".to_vec()).put(Space::Meta, Vec::new(), b"2".to_vec());
    let e = block_on(kv.write(b)).expect_err("empty key");
    assert!(std::error::Error::source(&e).is_some_and(|s| s.to_string().contains("key of 0 bytes")), "{e:?}");
    assert!(!block_on(kv.has(Space::Meta, b"fine")).expect("has"), "a refused batch writes nothing");
    let mut b = WriteBatch::new();
    b.put(Space::Meta, vec![1u8; 70_000], b"2".to_vec());
    assert!(block_on(kv.write(b)).is_err());
    assert_eq!(block_on(kv.get(Space::Meta, b"")).expect("get"), None);
    assert!(!block_on(kv.has(Space::Meta, &vec![1u8; 70_000])).expect("has"));
}

#[test]
fn large_get_many_is_split_across_threads_and_keeps_order() {
    let d = tempfile::tempdir().expect("tempdir");
    let kv = FjallKv::open(d.path(), &KvOptions { cache_bytes: 8 << 20, read_threads: 3, ..KvOptions::default() })
        .expect("open");
    fill(&kv, 20_000, 50);
    let keys: Vec<_> = (0..25_000).rev().map(key).collect();
    let got = block_on(kv.get_many(Space::Blocks, &keys)).expect("get_many");
    for (k, g) in (0..25_000u32).rev().zip(got) {
        assert_eq!(g, (k < 20_000).then(|| vec![(k % 251) as u8; 50]), "key {k}");
    }
}
