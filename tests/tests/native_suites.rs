//! The compaction suites on the on-disk backend: scenarios in every mode, the crash matrix
//! (a fault at a backend call, then reopening what was committed), interleavings, and a real
//! chain.
#![cfg(not(target_arch = "wasm32"))]

use std::sync::Mutex;

use splitstore_conformance::{
    blockstore_contract, chain_index, crash, executor::block_on, hot_keys, interleave, kept_graph, pins, prune,
    realdata, reify, scenarios, testdata::testdata_path, warmup,
};
use splitstore_core::Mode;
use splitstore_native::{FjallKv, KvOptions};

/// Fresh stores in temporary directories, removed when the value is dropped.
struct Disks(Mutex<Vec<tempfile::TempDir>>);

impl Disks {
    fn new() -> Self {
        Disks(Mutex::new(Vec::new()))
    }
    fn make(&self) -> FjallKv {
        let d = tempfile::tempdir().expect("tempdir");
        let kv = FjallKv::open(d.path(), &KvOptions { cache_bytes: 4 << 20, read_threads: 1, ..KvOptions::default() })
            .expect("open");
        self.0.lock().expect("lock").push(d);
        kv
    }
}

#[test]
fn the_blockstore_crate_contract_holds_on_disk() {
    let disks = Disks::new();
    block_on(blockstore_contract::blockstore_contract(&|| disks.make()));
}

#[test]
fn every_mode_matches_the_oracle_on_disk() {
    let disks = Disks::new();
    block_on(scenarios::all_modes(&|| disks.make()));
    block_on(scenarios::protectors_keep_their_dags(&|| disks.make()));
    block_on(scenarios::fingerprint_and_exact_agree(&|| disks.make()));
}

#[test]
fn pins_keep_their_dags_on_disk() {
    let disks = Disks::new();
    block_on(pins::pins_keep_their_dags(&|| disks.make()));
}

/// A pin made during a compaction's mark, move and purge, then a crash at every 6th call:
/// a pin that returned holds and its DAG is whole after reopening the files.
#[test]
fn pins_survive_a_crash_on_disk() {
    let disks = Disks::new();
    let points = block_on(pins::pins_survive_a_crash_beside_a_compaction(&|| disks.make(), 6));
    assert!(points > 40, "only {points} crash points");
}

/// The chain index on disk: compactions that mark from it leave the stores exactly as full
/// walks do, and a reorg below it walks to genesis.
#[test]
fn chain_index_matches_the_full_walk_on_disk() {
    let disks = Disks::new();
    for mode in [Mode::Discard, Mode::Universal] {
        let s = block_on(chain_index::indexed_equals_full_walk(&|| disks.make(), mode, 3, 50, 9));
        assert!(s.indexed >= 3, "{mode:?}: {s:?}");
        block_on(chain_index::reorg_below_the_anchor(&|| disks.make(), mode));
    }
}

/// The kept graph on disk: compactions that mark from it leave the stores exactly as
/// compactions that read every block, with late messages (seed 3) and deletions (seed 2).
#[test]
fn kept_graph_matches_reading_walks_on_disk() {
    let disks = Disks::new();
    for mode in [Mode::Discard, Mode::Universal] {
        for seed in [2, 3] {
            let s = block_on(kept_graph::kept_equals_reads(&|| disks.make(), mode, seed, 50, 9));
            assert_eq!(s.from_graph + s.deletions, s.compactions, "{mode:?}, seed {seed}: {s:?}");
            assert_eq!(s.from_writes + s.deletions, s.compactions, "{mode:?}, seed {seed}: {s:?}");
        }
    }
}

/// The hot key list on disk: compactions whose collect visits it leave the stores exactly as
/// compactions that scan, with late messages (seed 1), and the kept graph (seed 5), and with
/// deletions too (seed 6, where most rounds delete, and the collect after each scans).
#[test]
fn hot_key_list_matches_scans_on_disk() {
    let disks = Disks::new();
    for mode in [Mode::Discard, Mode::Universal] {
        for seed in [1, 5, 6] {
            let s = block_on(hot_keys::listed_equals_scanned(&|| disks.make(), mode, seed, 50, 9));
            assert_eq!(s.listed + s.deletions + 1, s.compactions, "{mode:?}, seed {seed}: {s:?}");
            assert_eq!(s.fewer, s.indexed, "{mode:?}, seed {seed}: {s:?}");
            assert!(s.deletions > 0 || s.indexed > 0, "{mode:?}, seed {seed}: {s:?}");
        }
    }
}

#[test]
fn crash_matrix_on_disk() {
    let disks = Disks::new();
    for (i, mode) in [Mode::Discard, Mode::Universal, Mode::Messages].into_iter().enumerate() {
        let s = block_on(crash::crash_matrix_on(&|| disks.make(), mode, 41 + i as u64, 16, 4));
        println!(
            "on-disk crash matrix {mode:?}: {} calls, {} crash points, {} purges recovered",
            s.calls, s.crash_points, s.recovered_purges
        );
        assert!(s.crash_points > 5 && s.recovered_purges > 0);
    }
}

/// A sample of the cold prune's crash matrix on the on-disk store: every fourth call of a
/// prune in universal and messages mode.
#[test]
fn prune_crash_matrix_on_disk() {
    let disks = Disks::new();
    for (mode, retention) in [(Mode::Universal, 0), (Mode::Messages, 1)] {
        let base = block_on(prune::base(mode, 51, 30));
        let s = block_on(prune::prune_crash_matrix_on(&|| disks.make(), mode, &base, retention, 4));
        println!(
            "on-disk prune crash matrix {mode:?}: {} calls, {} crash points, {} purges recovered",
            s.calls, s.crash_points, s.recovered
        );
        assert!(s.crash_points > 5 && s.recovered > 0);
    }
}

/// Warmup from a cold archive on the on-disk store.
#[test]
fn warmup_on_disk() {
    let disks = Disks::new();
    let copied = block_on(warmup::warmup_from_an_archive(&|| disks.make(), Mode::Universal));
    block_on(warmup::no_warmup_without_an_archive(&|| disks.make()));
    println!("on-disk warmup copied {copied} blocks");
}

/// Reify on the on-disk store: a cold DAG read through the hot view is copied into hot, within
/// the per-DAG limit and the queue's bound.
#[test]
fn reify_on_disk() {
    let disks = Disks::new();
    let base = block_on(reify::reify_base(75, 30));
    let s = block_on(reify::reify_copies_cold_dags_read_in_use(&|| disks.make(), &base));
    println!("on-disk reify copied {} blocks", s.copied);
    let m = block_on(reify::reify_crash_matrix_on(&|| disks.make(), &base, 1));
    println!("on-disk reify crash matrix: {} calls, {} points, {} partial copies", m.calls, m.crash_points, m.partial);
    assert!(m.crash_points > 3);
}

#[test]
fn interleavings_on_disk() {
    let disks = Disks::new();
    let seeds = 100;
    let mut t = interleave::SeedStats::default();
    for seed in 1..=seeds {
        t.add(&block_on(interleave::one_seed_on(&|| disks.make(), seed, || async {})));
    }
    println!(
        "on-disk interleavings: {seeds} seeds; during compactions {} reads found, {} writes, {} dropped, {} heads",
        t.reads, t.writes, t.dropped, t.heads
    );
    assert!(t.reads > seeds && t.writes > seeds && t.dropped > 0 && t.heads > seeds);
}

#[test]
fn real_chain_on_disk() {
    let disks = Disks::new();
    let car = std::fs::read(testdata_path("kubo-lotus-testnet/lotus_testnet_export_256_multiroot.car")).expect("read");
    for mode in [Mode::Discard, Mode::Universal, Mode::Messages] {
        let (before, after, _) =
            block_on(realdata::import_and_compact(&|| disks.make(), &car, mode, 10, false)).expect("compaction");
        assert!(after < before);
    }
}
