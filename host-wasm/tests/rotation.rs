//! Rotation of a role database (module `idb_kv::rotation`) in headless Chromium: everything
//! is copied and the old database goes; writes, deletions and reads beside the copy (dropped
//! writes included) all land; a crash at each step, or at any moment of the copy, leaves one
//! whole generation; the reclaim policy; the store's identity survives.
#![cfg(target_arch = "wasm32")]

mod support;

use std::{cell::Cell, collections::BTreeMap};

use futures::future::{select, Either};
use splitstore_core::{Kv, Space, WriteBatch};
use splitstore_wasm::{
    db_name,
    idb_kv::{existing_generations, RotationStep},
    identity, js, IdbKv, LockPolicy, Role,
};
use support::{log, unique};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

type Dump = BTreeMap<(Space, Vec<u8>), Vec<u8>>;

/// Every entry of every space.
async fn dump(kv: &IdbKv) -> Dump {
    let mut out = Dump::new();
    for space in Space::ALL {
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = kv.scan(space, after.as_deref(), 1000).await.expect("scan");
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            for (k, v) in page {
                out.insert((space, k), v);
            }
        }
    }
    out
}

/// Asserts `actual == expected`, naming a few differences rather than printing both.
#[track_caller]
fn assert_same(actual: &Dump, expected: &Dump, what: &str) {
    let missing: Vec<_> = expected.keys().filter(|k| !actual.contains_key(*k)).take(3).collect();
    let extra: Vec<_> = actual.keys().filter(|k| !expected.contains_key(*k)).take(3).collect();
    let changed: Vec<_> = expected.iter().filter(|(k, v)| actual.get(*k).is_some_and(|a| a != *v)).take(3).collect();
    assert!(
        missing.is_empty() && extra.is_empty() && changed.is_empty(),
        "{what}: {} entries, {} expected; missing {missing:?}, extra {extra:?}, changed {changed:?}",
        actual.len(),
        expected.len()
    );
}

fn value(i: u32, round: u8) -> Vec<u8> {
    let mut v = vec![round; 40];
    v[..4].copy_from_slice(&i.to_be_bytes());
    v
}

/// `n` blocks (keys `1 ‖ i`), a few records in the other spaces, then every fifth block
/// deleted: what a hot store looks like after a purge.
async fn filled(name: &str, n: u32) -> (IdbKv, Dump) {
    let kv = IdbKv::open(name, LockPolicy::Fail).await.expect("open");
    let before = fill(&kv, n).await;
    (kv, before)
}

async fn fill(kv: &IdbKv, n: u32) -> Dump {
    let mut b = WriteBatch::new();
    for i in 0..n {
        b.put(Space::Blocks, key(i), value(i, 1));
    }
    for i in 0..50u32 {
        b.put(Space::Meta, format!("meta-{i}").into_bytes(), value(i, 2));
        b.put(Space::Dead, key(i), Vec::new());
    }
    kv.write(b).await.expect("fill");
    let mut d = WriteBatch::new();
    for i in (0..n).step_by(5) {
        d.delete(Space::Blocks, key(i));
    }
    kv.write(d).await.expect("delete");
    let before = dump(kv).await;
    assert_eq!(before.len() as u32, n - n.div_ceil(5) + 100);
    before
}

fn key(i: u32) -> Vec<u8> {
    let mut k = vec![1];
    k.extend_from_slice(&i.to_be_bytes());
    k
}

async fn generations(name: &str) -> Vec<u64> {
    existing_generations(name).await.expect("list databases").expect("Chromium lists databases")
}

#[wasm_bindgen_test]
async fn a_rotation_copies_everything_and_the_old_database_goes() {
    let store = unique("rot");
    let (hot_name, cold_name) = (db_name(&store, Role::Hot), db_name(&store, Role::Cold));
    let hot = IdbKv::open(&hot_name, LockPolicy::Fail).await.expect("open hot");
    let cold = IdbKv::open(&cold_name, LockPolicy::Fail).await.expect("open cold");
    identity::establish(&store, &hot, &cold, false).await.expect("a new store");
    let before = fill(&hot, 5000).await;

    let r = hot.rotate_until(None).await.expect("rotate");
    assert_eq!((r.generation, hot.generation()), (1, 1));
    assert!(r.copied >= before.len() as u64, "copied {} of {}", r.copied, before.len());
    assert_eq!(hot.physical_name(), format!("{hot_name}.1"));
    assert_eq!(hot.name(), hot_name, "errors and the lock keep the role's name");
    assert_same(&dump(&hot).await, &before, "contents");
    assert_eq!(generations(&hot_name).await, vec![1], "the old database is deleted");

    // Written after the rotation: in the new generation, which the next open takes.
    let mut b = WriteBatch::new();
    b.put(Space::Blocks, key(999_999), value(7, 7));
    hot.write(b).await.expect("write after");
    let mut after = before.clone();
    after.insert((Space::Blocks, key(999_999)), value(7, 7));
    hot.close().await;
    cold.close().await;
    let hot = IdbKv::open(&hot_name, LockPolicy::Fail).await.expect("reopen");
    let cold = IdbKv::open(&cold_name, LockPolicy::Fail).await.expect("reopen cold");
    assert!(!hot.created());
    identity::establish(&store, &hot, &cold, true).await.expect("the identity record moved with the data");
    assert_eq!(hot.generation(), 1);
    assert_same(&dump(&hot).await, &after, "contents");

    assert_eq!(hot.rotate_until(None).await.expect("again").generation, 2);
    assert_eq!(generations(&hot_name).await, vec![2]);
    assert_same(&dump(&hot).await, &after, "contents");

    hot.close().await;
    cold.close().await;
    IdbKv::destroy(&hot_name).await.expect("destroy");
    IdbKv::destroy(&cold_name).await.expect("destroy cold");
    assert!(generations(&hot_name).await.is_empty(), "destroy deletes every generation");
}

/// The orders a node produces beside a rotation: puts of keys the copy already passed and of
/// keys it has not reached, deletions and overwrites on both sides, writes whose caller
/// stopped waiting, and reads, all while the copy runs.
#[wasm_bindgen_test]
async fn writes_and_reads_beside_the_copy_all_land() {
    let name = unique("rot-fg");
    let (kv, mut model) = filled(&name, 12_000).await;
    let running = Cell::new(true);
    let rotation = async {
        let r = kv.rotate_until(None).await;
        running.set(false);
        r
    };
    let foreground = async {
        let (mut writes, mut dropped_landed, mut reads) = (0u32, 0u32, 0u32);
        let mut i = 1u32;
        while running.get() {
            let mut b = WriteBatch::new();
            // Below every original key (copied first) and above them all (copied last).
            b.put(Space::Blocks, [vec![0], i.to_be_bytes().to_vec()].concat(), value(i, 3));
            b.put(Space::Blocks, [vec![2], i.to_be_bytes().to_vec()].concat(), value(i, 3));
            // Originals from both ends: some copied already, some not yet.
            let (low, high) = ((i * 7) % 12_000, 12_000 - 1 - (i * 11) % 12_000);
            b.delete(Space::Blocks, key(low));
            b.put(Space::Blocks, key(high), value(high, 4));
            kv.write(b).await.expect("write beside the copy");
            model.insert((Space::Blocks, [vec![0], i.to_be_bytes().to_vec()].concat()), value(i, 3));
            model.insert((Space::Blocks, [vec![2], i.to_be_bytes().to_vec()].concat()), value(i, 3));
            model.remove(&(Space::Blocks, key(low)));
            model.insert((Space::Blocks, key(high)), value(high, 4));
            writes += 1;

            // A write its caller drops once it is under way: IndexedDB commits it anyway.
            let dropped_key = [vec![0, 0xee], i.to_be_bytes().to_vec()].concat();
            let mut d = WriteBatch::new();
            d.put(Space::Blocks, dropped_key.clone(), value(i, 5));
            let mut w = Box::pin(kv.write(d));
            let _ = futures::poll!(&mut w);
            drop(w);
            js::yield_to_event_loop().await;
            if let Some(v) = kv.get(Space::Blocks, &dropped_key).await.expect("read the dropped write") {
                assert_eq!(v, value(i, 5));
                model.insert((Space::Blocks, dropped_key), v);
                dropped_landed += 1;
            }

            let probe = (i * 13) % 12_000;
            let expect = model.get(&(Space::Blocks, key(probe))).cloned();
            assert_eq!(kv.get(Space::Blocks, &key(probe)).await.expect("read beside the copy"), expect);
            reads += 1;
            i += 1;
        }
        (writes, dropped_landed, reads)
    };
    let (r, (writes, dropped_landed, reads)) = futures::join!(rotation, foreground);
    let r = r.expect("rotate");
    log(&format!(
        "rotation beside a foreground: copied {}, replayed {}, {writes} writes, {dropped_landed} dropped writes \
         seen landing, {reads} reads",
        r.copied, r.replayed
    ));
    assert!(r.replayed > 0 && writes > 2, "the foreground must overlap the copy ({} replayed)", r.replayed);
    assert!(dropped_landed > 0, "no dropped write was seen landing");
    assert_same(&dump(&kv).await, &model, "after the rotation");
    kv.close().await;
    let kv = IdbKv::open(&name, LockPolicy::Fail).await.expect("reopen");
    assert_eq!(kv.generation(), 1);
    assert_same(&dump(&kv).await, &model, "after a reopen");
    kv.close().await;
    IdbKv::destroy(&name).await.expect("destroy");
}

/// The page dies at each step of a rotation, or at any moment of its copy: the next open finds
/// one whole generation (the old one before the commit point, the new one after it), deletes
/// the others, and rotates on from there.
#[wasm_bindgen_test]
async fn a_crash_anywhere_in_a_rotation_leaves_one_whole_generation() {
    for (stop, survivor) in [(RotationStep::Copied, 0), (RotationStep::Marked, 1), (RotationStep::Swapped, 1)] {
        let name = unique("rot-crash");
        let (kv, before) = filled(&name, 3000).await;
        kv.rotate_until(Some(stop)).await.expect("rotate until the stop");
        kv.close().await;
        let kv = IdbKv::open(&name, LockPolicy::Fail).await.expect("reopen");
        assert_eq!(kv.generation(), survivor, "{stop:?}");
        assert_same(&dump(&kv).await, &before, &format!("{stop:?}"));
        assert_eq!(generations(&name).await, vec![survivor], "{stop:?}: the other generation is deleted");
        assert_eq!(kv.rotate_until(None).await.expect("rotate on").generation, survivor + 1);
        assert_same(&dump(&kv).await, &before, &format!("{stop:?}, rotated on"));
        kv.close().await;
        IdbKv::destroy(&name).await.expect("destroy");
    }

    let mut stopped_mid_copy = 0;
    for delay in [0.0, 1.0, 3.0, 6.0, 12.0, 25.0, 50.0, 100.0] {
        let name = unique("rot-kill");
        let (kv, before) = filled(&name, 6000).await;
        let rotation = Box::pin(kv.rotate_until(None));
        let finished = match select(rotation, Box::pin(js::sleep_ms(delay))).await {
            Either::Left((r, _)) => {
                r.expect("rotate");
                true
            }
            Either::Right(_) => false,
        };
        stopped_mid_copy += u32::from(!finished);
        kv.close().await;
        let kv = IdbKv::open(&name, LockPolicy::Fail).await.expect("reopen");
        assert_same(&dump(&kv).await, &before, &format!("killed after {delay} ms"));
        assert_eq!(generations(&name).await.len(), 1, "killed after {delay} ms: one generation is left");
        kv.close().await;
        IdbKv::destroy(&name).await.expect("destroy");
    }
    assert!(stopped_mid_copy >= 3, "only {stopped_mid_copy} rotations were stopped before they finished");
}

#[wasm_bindgen_test]
async fn reclaim_rotates_once_deleted_blocks_reach_the_ratio() {
    let name = unique("rot-policy");
    let (kv, _) = filled(&name, 1000).await;
    // 200 deletions beside 900 live entries: below a ratio of 1.
    kv.set_rotation(Some(1.0));
    assert!(kv.capabilities().reclaims_space);
    assert_eq!(kv.garbage(), 200);
    // The dead list's entries (keys without values, as a compaction writes and deletes them)
    // are not garbage a rotation gives back: 850 live entries are left, 200 blocks deleted.
    let mut d = WriteBatch::new();
    for i in 0..50u32 {
        d.delete(Space::Dead, key(i));
    }
    kv.write(d).await.expect("delete the dead list");
    assert_eq!(kv.garbage(), 200, "dead-list deletions are not counted");
    kv.reclaim().await.expect("reclaim");
    assert_eq!(kv.generation(), 0);
    kv.close().await;

    // The count survives a reopen (a browser store is reopened often).
    let kv = IdbKv::open(&name, LockPolicy::Fail).await.expect("reopen");
    assert_eq!(kv.garbage(), 200, "the deletions counted before the reopen");
    assert!(!kv.capabilities().reclaims_space, "no policy set on this handle");
    kv.reclaim().await.expect("reclaim without a policy");
    assert_eq!(kv.generation(), 0);
    kv.set_rotation(Some(1.0));
    let mut d = WriteBatch::new();
    for i in (1..1000u32).filter(|i| i % 5 != 0).take(300) {
        d.delete(Space::Blocks, key(i));
    }
    kv.write(d).await.expect("delete more");
    // 500 blocks deleted beside 550 live entries: still below (with the dead list's 50 it
    // would have rotated).
    kv.reclaim().await.expect("reclaim");
    assert_eq!(kv.generation(), 0);
    let mut d = WriteBatch::new();
    for i in (1..1000u32).filter(|i| i % 5 != 0).skip(300).take(100) {
        d.delete(Space::Blocks, key(i));
    }
    kv.write(d).await.expect("delete more");
    // 600 blocks deleted beside 450 live entries: rotated, and the count starts again.
    kv.reclaim().await.expect("reclaim");
    assert_eq!((kv.generation(), kv.garbage()), (1, 0));
    kv.close().await;
    let kv = IdbKv::open(&name, LockPolicy::Fail).await.expect("reopen");
    assert_eq!((kv.generation(), kv.garbage()), (1, 0));
    kv.close().await;
    IdbKv::destroy(&name).await.expect("destroy");
}
