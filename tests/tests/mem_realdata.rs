//! Real chains from the shared test data, on the in-memory backend.

use splitstore_conformance::{executor::block_on, realdata::import_and_compact, testdata::testdata_path};
use splitstore_core::{mem::MemKv, Error, Mode};

#[test]
fn lotus_testnet_multiroot_every_mode() {
    let car = std::fs::read(testdata_path("kubo-lotus-testnet/lotus_testnet_export_256_multiroot.car")).expect("read");
    for mode in [Mode::Discard, Mode::Universal, Mode::Messages] {
        let (before, after, cold) =
            block_on(import_and_compact(&MemKv::new, &car, mode, 10, false)).expect("compaction");
        println!("{mode:?}: hot {before} -> {after}, cold {cold}");
        assert!(after < before);
    }
}

#[test]
fn forest_export_strict_refuses_and_lenient_compacts() {
    let car = std::fs::read(testdata_path("forest/export40.car")).expect("read");
    // Later state roots are absent from this export: a strict walk must refuse to compact.
    let strict = block_on(import_and_compact(&MemKv::new, &car, Mode::Universal, 2, false));
    assert!(matches!(strict, Err(Error::MissingBlock { context: "state", .. })), "{strict:?}");
    for mode in [Mode::Discard, Mode::Universal, Mode::Messages] {
        let (before, after, cold) = block_on(import_and_compact(&MemKv::new, &car, mode, 2, true)).expect("lenient");
        println!("{mode:?}: hot {before} -> {after}, cold {cold}");
    }
}
