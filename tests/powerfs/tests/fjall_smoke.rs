//! fjall on a PowerFs: what a synced insert and a buffered one leave after a power cut.

use fjall::{Database, KeyspaceCreateOptions, PersistMode};
use splitstore_powerfs::PowerFs;

fn get(db_path: &std::path::Path, key: &str) -> Option<Vec<u8>> {
    let db = Database::builder(db_path).open().unwrap();
    let ks = db.keyspace("blocks", KeyspaceCreateOptions::default).unwrap();
    ks.get(key).unwrap().map(|v| v.to_vec())
}

#[test]
fn synced_inserts_survive_a_power_cut_and_buffered_ones_do_not() {
    let mnt = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let fs = PowerFs::mount(mnt.path()).unwrap_or_else(|e| panic!("{e}"));
    let db_path = fs.mountpoint().join("db");

    let db = Database::builder(&db_path).open().unwrap();
    let ks = db.keyspace("blocks", KeyspaceCreateOptions::default).unwrap();
    ks.insert("synced", "1").unwrap();
    let before = fs.counters();
    db.persist(PersistMode::SyncAll).unwrap();
    assert!(fs.counters().fsyncs > before.fsyncs, "fjall's fsync must reach the filesystem");

    let cut1 = scratch.path().join("cut1");
    fs.write_durable_image(&cut1).unwrap();
    assert_eq!(get(&cut1.join("db"), "synced").as_deref(), Some(&b"1"[..]));

    ks.insert("buffered", "2").unwrap();
    db.persist(PersistMode::Buffer).unwrap();
    let cut2 = scratch.path().join("cut2");
    let crash2 = scratch.path().join("crash2");
    fs.write_durable_image(&cut2).unwrap();
    fs.write_live_image(&crash2).unwrap();
    // A power cut loses the buffered insert; a process crash (the live image) keeps it.
    assert_eq!(get(&cut2.join("db"), "buffered"), None);
    assert_eq!(get(&cut2.join("db"), "synced").as_deref(), Some(&b"1"[..]));
    assert_eq!(get(&crash2.join("db"), "buffered").as_deref(), Some(&b"2"[..]));

    // Once synced, the buffered insert survives a power cut too.
    db.persist(PersistMode::SyncData).unwrap();
    let cut3 = scratch.path().join("cut3");
    fs.write_durable_image(&cut3).unwrap();
    assert_eq!(get(&cut3.join("db"), "buffered").as_deref(), Some(&b"2"[..]));

    drop(ks);
    drop(db);
}
