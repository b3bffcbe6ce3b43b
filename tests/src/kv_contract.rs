//! The key-value contract of [`splitstore_core::kv::Kv`], as generic async tests.
//!
//! Every backend runs the same functions: each takes a fresh, empty store and panics on the
//! first broken rule. They use no threads, no file system and no executor of their own, so a
//! native harness can drive them with `futures::executor::block_on` and a browser harness with
//! `wasm-bindgen-test`. [`run_all`] runs every one of them on stores made by `make`.
//!
//! Keys are 1 to 65 535 bytes long (block keys are multihashes, metadata keys are names); the
//! suite does not store an empty key, which some engines (fjall) cannot hold.

use core::ops::Bound;
use std::{collections::BTreeSet, vec, vec::Vec};

use splitstore_core::kv::{Kv, Space, SpaceStats, WriteBatch};

/// Keys chosen to catch non-bytewise ordering: prefixes, zero bytes, high bytes, lengths.
fn tricky_keys() -> Vec<Vec<u8>> {
    vec![
        vec![0x00],
        vec![0x00, 0x00],
        vec![0x01],
        b"a".to_vec(),
        b"a\0".to_vec(),
        b"ab".to_vec(),
        b"b".to_vec(),
        vec![0x7f],
        vec![0x80],
        vec![0xfe, 0xff],
        vec![0xff],
        vec![0xff, 0x00],
        vec![0xff, 0xff, 0xff],
    ]
}

/// A deterministic 36-byte key (the shape of a BLAKE2b-256 multihash).
fn key(i: u32) -> Vec<u8> {
    let mut k = vec![0xa0, 0xe4, 0x02, 0x20];
    let mut x = i.wrapping_mul(0x9e37_79b9) ^ 0x5bd1_e995;
    for _ in 0..8 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        k.extend_from_slice(&x.to_be_bytes());
    }
    k
}

fn value(i: u32, len: usize) -> Vec<u8> {
    (0..len).map(|j| (i as usize).wrapping_mul(31).wrapping_add(j) as u8).collect()
}

async fn put_all<K: Kv>(kv: &K, space: Space, entries: &[(Vec<u8>, Vec<u8>)]) {
    for chunk in entries.chunks(500) {
        let mut b = WriteBatch::with_capacity(chunk.len());
        for (k, v) in chunk {
            b.put(space, k.clone(), v.clone());
        }
        kv.write(b).await.expect("write");
    }
}

/// Every key of `space`, read in pages of `page`, checking each page against the rules.
async fn scan_all_keys<K: Kv>(kv: &K, space: Space, page: usize) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let keys = kv.scan_keys(space, after.as_deref(), page).await.expect("scan_keys");
        assert!(keys.len() <= page, "scan_keys returned {} keys for limit {page}", keys.len());
        for k in &keys {
            if let Some(a) = &after {
                assert!(k > a, "scan_keys returned {k:?}, not strictly after {a:?}");
            }
            if let Some(prev) = out.last() {
                assert!(k > prev, "scan_keys out of order: {prev:?} then {k:?}");
            }
            out.push(k.clone());
        }
        match keys.last() {
            Some(last) => after = Some(last.clone()),
            None => break,
        }
        if keys.len() < page {
            // A short page must be the last one.
            let rest = kv.scan_keys(space, after.as_deref(), page).await.expect("scan_keys");
            assert!(rest.is_empty(), "a short page of {} was followed by {} more keys", keys.len(), rest.len());
            break;
        }
    }
    out
}

/// `get`, `has` and `get_many` on present and absent keys.
pub async fn kv_contract_get_has<K: Kv>(kv: K) {
    assert_eq!(kv.get(Space::Blocks, b"missing").await.expect("get"), None);
    assert!(!kv.has(Space::Blocks, b"missing").await.expect("has"));
    assert_eq!(kv.get_many(Space::Blocks, &[]).await.expect("get_many"), Vec::<Option<Vec<u8>>>::new());

    let mut b = WriteBatch::new();
    b.put(Space::Blocks, key(1), value(1, 10)).put(Space::Blocks, key(2), value(2, 20));
    kv.write(b).await.expect("write");

    assert_eq!(kv.get(Space::Blocks, &key(1)).await.expect("get"), Some(value(1, 10)));
    assert!(kv.has(Space::Blocks, &key(2)).await.expect("has"));
    assert!(!kv.has(Space::Blocks, &key(3)).await.expect("has"));

    // Order is the order asked, absent keys are None, duplicates are answered twice.
    let asked = vec![key(3), key(2), key(1), key(2), b"z".to_vec()];
    let got = kv.get_many(Space::Blocks, &asked).await.expect("get_many");
    assert_eq!(got, vec![None, Some(value(2, 20)), Some(value(1, 10)), Some(value(2, 20)), None]);

    // A larger request, mixing hits and misses, matches key-by-key gets.
    let entries: Vec<_> = (10..400).step_by(2).map(|i| (key(i), value(i, (i % 50) as usize))).collect();
    put_all(&kv, Space::Blocks, &entries).await;
    let asked: Vec<_> = (10..400).map(key).collect();
    let got = kv.get_many(Space::Blocks, &asked).await.expect("get_many");
    assert_eq!(got.len(), asked.len());
    for (i, g) in (10u32..400).zip(&got) {
        let want = (i % 2 == 0).then(|| value(i, (i % 50) as usize));
        assert_eq!(g, &want, "get_many answer for key {i}");
        assert_eq!(kv.get(Space::Blocks, &key(i)).await.expect("get"), want);
    }
}

/// A batch over several spaces is applied entirely and in order; the later op on a key wins.
pub async fn kv_contract_batch_across_spaces<K: Kv>(kv: K) {
    let mut setup = WriteBatch::new();
    setup.put(Space::Blocks, b"old".to_vec(), b"1".to_vec()).put(Space::Dead, b"gone".to_vec(), b"x".to_vec());
    kv.write(setup).await.expect("setup");

    let mut b = WriteBatch::new();
    b.put(Space::Blocks, b"k1".to_vec(), b"v1".to_vec())
        .put(Space::Meta, b"checkpoint".to_vec(), b"7".to_vec())
        .delete(Space::Blocks, b"old".to_vec())
        .delete(Space::Dead, b"gone".to_vec())
        .put(Space::ColdList, b"c".to_vec(), Vec::new())
        // Later operations on the same key win, whatever their kind.
        .put(Space::Blocks, b"twice".to_vec(), b"first".to_vec())
        .put(Space::Blocks, b"twice".to_vec(), b"second".to_vec())
        .put(Space::Meta, b"put-then-delete".to_vec(), b"x".to_vec())
        .delete(Space::Meta, b"put-then-delete".to_vec())
        .delete(Space::Dead, b"delete-then-put".to_vec())
        .put(Space::Dead, b"delete-then-put".to_vec(), b"y".to_vec())
        .strict();
    kv.write(b).await.expect("write");

    assert_eq!(kv.get(Space::Blocks, b"k1").await.expect("get"), Some(b"v1".to_vec()));
    assert_eq!(kv.get(Space::Meta, b"checkpoint").await.expect("get"), Some(b"7".to_vec()));
    assert_eq!(kv.get(Space::Blocks, b"old").await.expect("get"), None);
    assert_eq!(kv.get(Space::Dead, b"gone").await.expect("get"), None);
    assert_eq!(kv.get(Space::ColdList, b"c").await.expect("get"), Some(Vec::new()));
    assert_eq!(kv.get(Space::Blocks, b"twice").await.expect("get"), Some(b"second".to_vec()));
    assert_eq!(kv.get(Space::Meta, b"put-then-delete").await.expect("get"), None);
    assert_eq!(kv.get(Space::Dead, b"delete-then-put").await.expect("get"), Some(b"y".to_vec()));

    // A put, delete, put sequence ends present; a delete, put, delete sequence ends absent.
    let mut b = WriteBatch::new();
    b.put(Space::Blocks, b"pdp".to_vec(), b"1".to_vec())
        .delete(Space::Blocks, b"pdp".to_vec())
        .put(Space::Blocks, b"pdp".to_vec(), b"3".to_vec())
        .put(Space::Blocks, b"dpd".to_vec(), b"1".to_vec());
    kv.write(b).await.expect("write");
    let mut b = WriteBatch::new();
    b.delete(Space::Blocks, b"dpd".to_vec())
        .put(Space::Blocks, b"dpd".to_vec(), b"2".to_vec())
        .delete(Space::Blocks, b"dpd".to_vec());
    kv.write(b).await.expect("write");
    assert_eq!(kv.get(Space::Blocks, b"pdp").await.expect("get"), Some(b"3".to_vec()));
    assert_eq!(kv.get(Space::Blocks, b"dpd").await.expect("get"), None);
    assert_eq!(scan_all_keys(&kv, Space::Blocks, 100).await, vec![b"k1".to_vec(), b"pdp".to_vec(), b"twice".to_vec()]);

    // An empty batch is accepted and changes nothing.
    kv.write(WriteBatch::new()).await.expect("empty write");
    let mut strict_empty = WriteBatch::new();
    strict_empty.strict();
    kv.write(strict_empty).await.expect("empty strict write");
    assert_eq!(kv.stats(Space::Blocks).await.expect("stats").keys, 3);
}

/// The same key in different spaces holds different values; deleting one leaves the others.
pub async fn kv_contract_spaces_independent<K: Kv>(kv: K) {
    let mut b = WriteBatch::new();
    for (i, s) in Space::ALL.iter().enumerate() {
        b.put(*s, b"same".to_vec(), vec![i as u8; i + 1]);
    }
    kv.write(b).await.expect("write");
    for (i, s) in Space::ALL.iter().enumerate() {
        assert_eq!(kv.get(*s, b"same").await.expect("get"), Some(vec![i as u8; i + 1]), "space {s:?}");
        assert_eq!(scan_all_keys(&kv, *s, 10).await, vec![b"same".to_vec()], "space {s:?}");
    }
    let mut b = WriteBatch::new();
    b.delete(Space::Meta, b"same".to_vec());
    kv.write(b).await.expect("write");
    assert!(!kv.has(Space::Meta, b"same").await.expect("has"));
    for s in [Space::Blocks, Space::Dead, Space::ColdList] {
        assert!(kv.has(s, b"same").await.expect("has"), "deleting from Meta removed it from {s:?}");
    }
    let mut b = WriteBatch::new();
    b.put(Space::Dead, b"only-dead".to_vec(), b"1".to_vec());
    kv.write(b).await.expect("write");
    assert!(!kv.has(Space::Blocks, b"only-dead").await.expect("has"));
    assert_eq!(kv.scan(Space::ColdList, None, 10).await.expect("scan").len(), 1);
}

/// Paged scans: bytewise order, strictly after the given key (present or not), `limit` honoured.
pub async fn kv_contract_scan_order_and_limits<K: Kv>(kv: K) {
    let keys = tricky_keys();
    let entries: Vec<_> = keys.iter().enumerate().map(|(i, k)| (k.clone(), vec![i as u8])).collect();
    // Insert in reverse so that insertion order cannot pass for key order.
    let mut rev = entries.clone();
    rev.reverse();
    put_all(&kv, Space::Blocks, &rev).await;

    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(sorted, keys, "the test's keys are listed in bytewise order");

    for page in [1usize, 2, 3, 5, 13, 14, 1000] {
        assert_eq!(scan_all_keys(&kv, Space::Blocks, page).await, keys, "scan_keys with pages of {page}");
    }
    assert!(kv.scan_keys(Space::Blocks, None, 0).await.expect("scan_keys").is_empty());
    assert!(kv.scan(Space::Blocks, None, 0).await.expect("scan").is_empty());

    // `scan` pairs each key with its value, in the same order.
    let all = kv.scan(Space::Blocks, None, 1000).await.expect("scan");
    assert_eq!(all, entries);
    let first3 = kv.scan(Space::Blocks, None, 3).await.expect("scan");
    assert_eq!(first3, entries[..3].to_vec());

    // Resuming after each present key gives exactly the keys greater than it.
    for (i, k) in keys.iter().enumerate() {
        let rest = kv.scan_keys(Space::Blocks, Some(k), 1000).await.expect("scan_keys");
        assert_eq!(rest, keys[i + 1..].to_vec(), "scan_keys after {k:?}");
        let rest = kv.scan(Space::Blocks, Some(k), 2).await.expect("scan");
        assert_eq!(rest, entries[i + 1..(i + 3).min(entries.len())].to_vec(), "scan after {k:?}");
    }
    // Resuming after absent keys (between, before and beyond everything).
    let probes: [(&[u8], usize); 4] =
        [(b"a\0\0", 5), (b"aa", 5), (&[0x00, 0x00, 0x00], 2), (&[0xff, 0xff, 0xff, 0x00], 13)];
    for (probe, first) in probes {
        let rest = kv.scan_keys(Space::Blocks, Some(probe), 1000).await.expect("scan_keys");
        assert_eq!(rest, keys[first..].to_vec(), "scan_keys after absent {probe:?}");
    }
    // Every key is greater than the empty one.
    let from_empty = kv.scan_keys(Space::Blocks, Some(&[]), 1000).await.expect("scan_keys");
    assert_eq!(from_empty, keys);
}

/// Keys inserted and deleted between pages: every page is exactly the next keys of the
/// store's contents at the time it is read, strictly after the previous page's last key.
pub async fn kv_contract_scan_with_changes_between_pages<K: Kv>(kv: K) {
    let n = 600u32;
    let entries: Vec<_> = (0..n).map(|i| (key(i), value(i, 8))).collect();
    put_all(&kv, Space::Dead, &entries).await;
    let mut model: BTreeSet<Vec<u8>> = entries.iter().map(|(k, _)| k.clone()).collect();

    let page = 64;
    let mut after: Option<Vec<u8>> = None;
    let mut pages = 0u32;
    let mut inserted_ahead = 0u32;
    loop {
        let got = if pages % 2 == 0 {
            kv.scan_keys(Space::Dead, after.as_deref(), page).await.expect("scan_keys")
        } else {
            let entries = kv.scan(Space::Dead, after.as_deref(), page).await.expect("scan");
            entries.into_iter().map(|(k, _)| k).collect()
        };
        let want: Vec<Vec<u8>> = match &after {
            Some(a) => model.range::<Vec<u8>, _>((Bound::Excluded(a), Bound::Unbounded)).take(page).cloned().collect(),
            None => model.iter().take(page).cloned().collect(),
        };
        assert_eq!(got, want, "page {pages} after {after:?}");
        let Some(last) = got.last().cloned() else { break };
        pages += 1;

        // Between pages: delete a key just ahead and one behind; insert one just ahead
        // (it sorts right after `last`) and one behind.
        let mut b = WriteBatch::new();
        let ahead: Vec<Vec<u8>> =
            model.range::<Vec<u8>, _>((Bound::Excluded(&last), Bound::Unbounded)).take(4).cloned().collect();
        if let Some(k) = ahead.get(2) {
            b.delete(Space::Dead, k.clone());
            model.remove(k);
        }
        if let Some(k) = model.iter().next().cloned() {
            if k < last {
                b.delete(Space::Dead, k.clone());
                model.remove(&k);
            }
        }
        // (Only while keys remain ahead, so the scan ends.)
        if ahead.len() == 4 {
            let mut new_ahead = last.clone();
            new_ahead.push(pages as u8);
            b.put(Space::Dead, new_ahead.clone(), b"new".to_vec());
            model.insert(new_ahead);
            inserted_ahead += 1;
        }
        let mut behind = last.clone();
        behind.truncate(last.len() - 1);
        b.put(Space::Dead, behind.clone(), b"late".to_vec());
        model.insert(behind);
        kv.write(b).await.expect("write");
        after = Some(last);
    }
    assert!(pages > 9, "the scan should take many pages, took {pages}");
    assert!(inserted_ahead + 2 >= pages, "keys were inserted ahead on almost every page");
    // The store's contents at the end equal the model's.
    assert_eq!(scan_all_keys(&kv, Space::Dead, 97).await, model.into_iter().collect::<Vec<_>>());
}

/// Deleting absent keys is not an error and changes nothing; deleting twice is fine.
pub async fn kv_contract_delete_idempotent<K: Kv>(kv: K) {
    let mut b = WriteBatch::new();
    b.delete(Space::Blocks, b"never".to_vec()).delete(Space::ColdList, b"never".to_vec());
    kv.write(b).await.expect("deleting absent keys");
    assert_eq!(kv.stats(Space::Blocks).await.expect("stats"), SpaceStats::default());

    let mut b = WriteBatch::new();
    b.put(Space::Blocks, b"x".to_vec(), b"1".to_vec()).put(Space::Blocks, b"y".to_vec(), b"2".to_vec());
    kv.write(b).await.expect("write");
    for _ in 0..2 {
        let mut b = WriteBatch::new();
        b.delete(Space::Blocks, b"x".to_vec()).delete(Space::Blocks, b"x".to_vec());
        kv.write(b).await.expect("delete");
        assert!(!kv.has(Space::Blocks, b"x").await.expect("has"));
        assert_eq!(kv.get(Space::Blocks, b"y").await.expect("get"), Some(b"2".to_vec()));
    }
    assert_eq!(scan_all_keys(&kv, Space::Blocks, 10).await, vec![b"y".to_vec()]);
}

/// Overwriting replaces the value, including with a shorter or empty one.
pub async fn kv_contract_overwrite<K: Kv>(kv: K) {
    for v in [value(1, 100), value(2, 3), Vec::new(), value(3, 5000)] {
        let mut b = WriteBatch::new();
        b.put(Space::Meta, b"k".to_vec(), v.clone());
        kv.write(b).await.expect("write");
        assert_eq!(kv.get(Space::Meta, b"k").await.expect("get"), Some(v.clone()));
        let stats = kv.stats(Space::Meta).await.expect("stats");
        assert_eq!(stats, SpaceStats { keys: 1, bytes: v.len() as u64 });
    }
}

/// An empty value is present (not the same as absent) and scans like any other.
pub async fn kv_contract_empty_values<K: Kv>(kv: K) {
    let mut b = WriteBatch::new();
    b.put(Space::ColdList, key(1), Vec::new()).put(Space::ColdList, key(2), Vec::new());
    kv.write(b).await.expect("write");
    assert_eq!(kv.get(Space::ColdList, &key(1)).await.expect("get"), Some(Vec::new()));
    assert!(kv.has(Space::ColdList, &key(2)).await.expect("has"));
    let got = kv.get_many(Space::ColdList, &[key(1), key(3)]).await.expect("get_many");
    assert_eq!(got, vec![Some(Vec::new()), None]);
    let all = kv.scan(Space::ColdList, None, 10).await.expect("scan");
    assert_eq!(all.len(), 2);
    assert!(all.iter().all(|(_, v)| v.is_empty()));
    assert_eq!(kv.stats(Space::ColdList).await.expect("stats"), SpaceStats { keys: 2, bytes: 0 });
}

/// Values of 1 MiB and more round-trip exactly, alone and in a batch with small ones.
pub async fn kv_contract_large_values<K: Kv>(kv: K) {
    let big = value(7, 1 << 20);
    let bigger = value(8, (1 << 20) + 12_345);
    let mut b = WriteBatch::new();
    b.put(Space::Blocks, key(1), big.clone())
        .put(Space::Blocks, key(2), b"small".to_vec())
        .put(Space::Blocks, key(3), bigger.clone())
        .strict();
    kv.write(b).await.expect("write");
    assert_eq!(kv.get(Space::Blocks, &key(1)).await.expect("get"), Some(big.clone()));
    let got = kv.get_many(Space::Blocks, &[key(3), key(2)]).await.expect("get_many");
    assert_eq!(got, vec![Some(bigger.clone()), Some(b"small".to_vec())]);
    let scanned = kv.scan(Space::Blocks, None, 10).await.expect("scan");
    let total: usize = scanned.iter().map(|(_, v)| v.len()).sum();
    assert_eq!(total, big.len() + bigger.len() + 5);
    let stats = kv.stats(Space::Blocks).await.expect("stats");
    assert_eq!(stats, SpaceStats { keys: 3, bytes: (big.len() + bigger.len() + 5) as u64 });
}

/// `flush` succeeds with and without pending writes and leaves the data readable.
pub async fn kv_contract_flush<K: Kv>(kv: K) {
    kv.flush().await.expect("flush of an empty store");
    let entries: Vec<_> = (0..100).map(|i| (key(i), value(i, 64))).collect();
    put_all(&kv, Space::Blocks, &entries).await;
    kv.flush().await.expect("flush");
    kv.flush().await.expect("second flush");
    for (k, v) in &entries {
        assert_eq!(kv.get(Space::Blocks, k).await.expect("get").as_ref(), Some(v));
    }
    kv.reclaim().await.expect("reclaim");
    assert_eq!(kv.stats(Space::Blocks).await.expect("stats").keys, 100);
}

/// `stats` counts keys and value bytes per space, following puts, overwrites and deletes.
pub async fn kv_contract_stats<K: Kv>(kv: K) {
    for s in Space::ALL {
        assert_eq!(kv.stats(s).await.expect("stats"), SpaceStats::default(), "{s:?} starts empty");
    }
    let entries: Vec<_> = (0..2500).map(|i| (key(i), value(i, (i % 300) as usize))).collect();
    put_all(&kv, Space::Blocks, &entries).await;
    let bytes: u64 = entries.iter().map(|(_, v)| v.len() as u64).sum();
    assert_eq!(kv.stats(Space::Blocks).await.expect("stats"), SpaceStats { keys: 2500, bytes });
    assert_eq!(kv.stats(Space::Dead).await.expect("stats"), SpaceStats::default());

    // Delete a third, overwrite a third with 1-byte values.
    let mut b = WriteBatch::new();
    let mut expect = SpaceStats { keys: 2500, bytes };
    for (i, (k, v)) in entries.iter().enumerate() {
        match i % 3 {
            0 => {
                b.delete(Space::Blocks, k.clone());
                expect.keys -= 1;
                expect.bytes -= v.len() as u64;
            }
            1 => {
                b.put(Space::Blocks, k.clone(), vec![1]);
                expect.bytes = expect.bytes - v.len() as u64 + 1;
            }
            _ => {}
        }
    }
    kv.write(b).await.expect("write");
    assert_eq!(kv.stats(Space::Blocks).await.expect("stats"), expect);
    kv.reclaim().await.expect("reclaim");
    assert_eq!(kv.stats(Space::Blocks).await.expect("stats"), expect, "reclaim must not change contents");
    let caps = kv.capabilities();
    assert!(caps.preferred_batch > 0, "{}: preferred batch must be positive", caps.name);
    assert!(caps.read_batch > 0, "{}: read batch must be positive", caps.name);
}

/// Many batches of realistic size: everything written is read back, then half is deleted.
pub async fn kv_contract_bulk<K: Kv>(kv: K) {
    let n = 20_000u32;
    let entries: Vec<_> = (0..n).map(|i| (key(i), value(i, 200))).collect();
    put_all(&kv, Space::Blocks, &entries).await;
    let keys: Vec<_> = entries.iter().map(|(k, _)| k.clone()).collect();
    for chunk in keys.chunks(1024) {
        let got = kv.get_many(Space::Blocks, chunk).await.expect("get_many");
        assert!(got.iter().all(Option::is_some));
    }
    let mut b = WriteBatch::new();
    for k in keys.iter().step_by(2) {
        b.delete(Space::Blocks, k.clone());
    }
    b.strict();
    kv.write(b).await.expect("delete half");
    let mut left = keys.iter().skip(1).step_by(2).cloned().collect::<Vec<_>>();
    left.sort();
    assert_eq!(scan_all_keys(&kv, Space::Blocks, 4096).await, left);
    kv.reclaim().await.expect("reclaim");
    assert_eq!(scan_all_keys(&kv, Space::Blocks, 16384).await, left);
    let half = u64::from(n / 2);
    assert_eq!(kv.stats(Space::Blocks).await.expect("stats"), SpaceStats { keys: half, bytes: half * 200 });
}

/// Runs every contract test, each on a fresh store from `make`.
pub async fn run_all<K: Kv>(make: impl Fn() -> K) {
    kv_contract_get_has(make()).await;
    kv_contract_batch_across_spaces(make()).await;
    kv_contract_spaces_independent(make()).await;
    kv_contract_scan_order_and_limits(make()).await;
    kv_contract_scan_with_changes_between_pages(make()).await;
    kv_contract_delete_idempotent(make()).await;
    kv_contract_overwrite(make()).await;
    kv_contract_empty_values(make()).await;
    kv_contract_large_values(make()).await;
    kv_contract_flush(make()).await;
    kv_contract_stats(make()).await;
    kv_contract_bulk(make()).await;
}
