//! CAR import through the store's one import path: real chains set the head; every malformed
//! file fails with a message naming the problem and leaves the head and the live set as they
//! were; chunked and one-shot imports agree.

use std::path::PathBuf;

use splitstore_conformance::{executor::block_on, executor::Rng, testdata::testdata_path};
use splitstore_core::{
    car::CarLimits,
    import::{ImportError, Importer},
    mem::{ManualClock, MemKv},
    Config, SplitStore,
};

fn store() -> SplitStore<MemKv, ManualClock> {
    let cfg = Config { sync_gap_secs: None, finality: 10, ..Config::default() };
    block_on(SplitStore::open(MemKv::new(), MemKv::new(), ManualClock::new(0), cfg)).expect("open")
}

fn car_files() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![
        testdata_path("go-car/LICENSE.md").parent().expect("dir").to_path_buf(),
        testdata_path("js-car/go.car").parent().expect("dir").to_path_buf(),
        testdata_path("kubo-lotus-testnet/lotus_testnet_export_128.car").parent().expect("dir").to_path_buf(),
    ];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).expect("read dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "car" || x == "carv2") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn real_chain_import_sets_the_head() {
    let s = store();
    let bytes =
        std::fs::read(testdata_path("kubo-lotus-testnet/lotus_testnet_export_256_multiroot.car")).expect("read");
    let r = block_on(s.import_car(&bytes)).expect("import");
    assert_eq!(r.blocks, 2825, "block count from the test data's README");
    assert!(r.head_applied && r.roots.len() == 3);
    let info = block_on(s.info()).expect("info");
    assert_eq!(info.head_epoch, Some(256));
    assert_eq!(info.head.as_deref(), Some(&r.roots[..]));
    assert_eq!(block_on(s.check()).expect("check").missing, 0);
}

#[test]
fn every_malformed_car_fails_cleanly_and_valid_ones_import() {
    let chain = std::fs::read(testdata_path("kubo-lotus-testnet/lotus_testnet_export_128.car")).expect("read");
    let (mut ok, mut bad) = (0, 0);
    for path in car_files() {
        let s = store();
        block_on(s.import_car(&chain)).expect("base chain");
        let before = block_on(s.info()).expect("info");
        let bytes = std::fs::read(&path).expect("read");
        match block_on(s.import_car(&bytes)) {
            Ok(r) => {
                ok += 1;
                if !r.head_applied {
                    assert_eq!(block_on(s.info()).expect("info").head, before.head, "{}", path.display());
                }
            }
            Err(ImportError::Car(e)) => {
                bad += 1;
                let msg = e.to_string();
                assert!(msg.len() > 10, "{}: unhelpful message {msg:?}", path.display());
                let after = block_on(s.info()).expect("info");
                assert_eq!(after.head, before.head, "{}: a failed import moved the head", path.display());
                assert_eq!(after.hot, before.hot, "{}: a failed import wrote blocks", path.display());
                assert_eq!(block_on(s.check()).expect("check").missing, 0, "{}", path.display());
            }
            Err(e) => panic!("{}: store error {e}", path.display()),
        }
    }
    println!("{ok} CAR files imported, {bad} rejected");
    assert!(ok >= 10 && bad >= 5, "{ok} imported, {bad} rejected");
}

#[test]
fn chunked_import_equals_one_shot() {
    let bytes = std::fs::read(testdata_path("kubo-lotus-testnet/lotus_testnet_export_128_v2.car")).expect("read");
    let one = store();
    let r1 = block_on(one.import_car(&bytes)).expect("one shot");
    let mut rng = Rng::new(5);
    let two = store();
    let mut imp = Importer::new(&two, CarLimits::default());
    let mut rest = &bytes[..];
    while !rest.is_empty() {
        let n = (1 + rng.below(700)).min(rest.len());
        block_on(imp.feed(&rest[..n])).expect("feed");
        rest = &rest[n..];
    }
    let r2 = block_on(imp.finish()).expect("finish");
    assert_eq!((r1.blocks, r1.bytes, &r1.roots), (r2.blocks, r2.bytes, &r2.roots));
    assert_eq!(block_on(one.count()).expect("count").hot, block_on(two.count()).expect("count").hot);
}

#[test]
fn a_whole_file_that_fails_at_its_end_writes_nothing() {
    // More blocks than one write batch, then a hash mismatch in the last block.
    let mut bytes = std::fs::read(testdata_path("kubo-lotus-testnet/lotus_testnet_export_128.car")).expect("read");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    let s = store();
    match block_on(s.import_car(&bytes)) {
        Err(ImportError::Car(e)) => assert!(e.to_string().contains("hash"), "{e}"),
        other => panic!("a corrupt block imported: {other:?}"),
    }
    let info = block_on(s.info()).expect("info");
    assert_eq!(block_on(s.count()).expect("count").hot.keys, 0, "a failed whole-file import wrote blocks");
    assert_eq!(info.head, None);
    assert_eq!(info.hot.map(|e| e.keys), Some(0), "MemKv's estimate is its exact key count");
    assert_eq!(info.metrics.blocks_written, 0);
}
