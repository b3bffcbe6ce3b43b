//! A store written in the earlier on-disk layout (one fjall keyspace per space) opens in the
//! current one (every space in one keyspace, under tags) with nothing lost or resurrected,
//! whichever step of the move a crash interrupted.

use std::path::Path;

use fjall::{Database, KeyspaceCreateOptions, PersistMode};
use futures::executor::block_on;
use splitstore_core::kv::{Kv, Space};
use splitstore_native::{kv::space_tag, FjallKv, KvOptions};

/// The entries the earlier layout held: a few hundred per space, more than one copy batch in
/// blocks.
fn legacy_entries(space: Space) -> Vec<(Vec<u8>, Vec<u8>)> {
    let n = if space == Space::Blocks { 40_000u32 } else { 300 };
    (0..n).map(|i| ([space.name().as_bytes(), &i.to_be_bytes()].concat(), vec![(i % 251) as u8; 8])).collect()
}

/// Writes a store in the earlier layout, plus (to model a crash partway through a move) the
/// given tagged entries already in the current layout's keyspace.
fn write_legacy(dir: &Path, already_moved: &[(Vec<u8>, Vec<u8>)]) {
    let db = Database::builder(dir).open().expect("open legacy");
    for space in Space::ALL {
        let ks = db.keyspace(space.name(), KeyspaceCreateOptions::default).expect("keyspace");
        for (k, v) in legacy_entries(space) {
            ks.insert(k, v).expect("insert");
        }
    }
    db.keyspace("reclaim", KeyspaceCreateOptions::default).expect("reclaim keyspace");
    if !already_moved.is_empty() {
        let data = db.keyspace("data", KeyspaceCreateOptions::default).expect("data");
        for (k, v) in already_moved {
            data.insert(k, v).expect("insert");
        }
    }
    db.persist(PersistMode::SyncAll).expect("persist");
}

fn all(kv: &FjallKv, space: Space) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = block_on(kv.scan(space, after.as_deref(), 7_000)).expect("scan");
        let Some((last, _)) = page.last() else { return out };
        after = Some(last.clone());
        out.extend(page);
    }
}

fn opts() -> KvOptions {
    KvOptions { cache_bytes: 8 << 20, read_threads: 1, ..KvOptions::default() }
}

fn assert_holds_exactly_the_legacy_store(dir: &Path) {
    for _ in 0..2 {
        let kv = FjallKv::open(dir, &opts()).expect("open");
        for space in Space::ALL {
            let want = legacy_entries(space);
            assert_eq!(all(&kv, space), want, "{space:?}");
            let (k, v) = &want[want.len() / 2];
            assert_eq!(block_on(kv.get(space, k)).expect("get").as_ref(), Some(v));
        }
        drop(kv);
        let db = Database::builder(dir).open().expect("raw open");
        for space in Space::ALL {
            assert!(!db.keyspace_exists(space.name()), "the old keyspace {} is gone", space.name());
        }
    }
}

#[test]
fn an_earlier_layout_is_moved_whole() {
    let d = tempfile::tempdir().expect("tempdir");
    write_legacy(d.path(), &[]);
    assert_holds_exactly_the_legacy_store(d.path());
}

#[test]
fn a_move_interrupted_before_its_record_is_made_again() {
    let d = tempfile::tempdir().expect("tempdir");
    // Part of blocks was copied (one value differs, as a torn copy could not make it but an
    // overwrite must fix anyway) and the record was never written.
    let mut moved: Vec<(Vec<u8>, Vec<u8>)> = legacy_entries(Space::Blocks)[..20_000]
        .iter()
        .map(|(k, v)| ([&[space_tag(Space::Blocks)][..], k].concat(), v.clone()))
        .collect();
    moved[5].1 = b"stale".to_vec();
    write_legacy(d.path(), &moved);
    assert_holds_exactly_the_legacy_store(d.path());
}

#[test]
fn a_move_interrupted_after_its_record_is_not_repeated() {
    let d = tempfile::tempdir().expect("tempdir");
    // The copy and its record are durable; the old keyspaces were not deleted yet. Since then
    // the store changed (a dead-list entry was deleted): copying again would bring it back.
    let mut moved = Vec::new();
    for space in Space::ALL {
        for (k, v) in legacy_entries(space) {
            moved.push(([&[space_tag(space)][..], &k].concat(), v));
        }
    }
    let gone = moved.iter().position(|(k, _)| k[0] == space_tag(Space::Dead)).expect("a dead entry");
    let gone_key = moved.remove(gone).0;
    moved.push((splitstore_native::kv::LAYOUT_KEY.to_vec(), vec![2]));
    write_legacy(d.path(), &moved);

    let kv = FjallKv::open(d.path(), &opts()).expect("open");
    assert_eq!(block_on(kv.get(Space::Dead, &gone_key[1..])).expect("get"), None, "not resurrected");
    assert_eq!(all(&kv, Space::Dead).len(), legacy_entries(Space::Dead).len() - 1);
    assert_eq!(all(&kv, Space::Blocks), legacy_entries(Space::Blocks));
}
