//! The chain index on the in-memory backend: against the full walk and the oracle, in the
//! orders real nodes write in, across a reorg, a missing header, lost chunks and crashes.

use splitstore_conformance::{chain_index as ci, executor::block_on};
use splitstore_core::{mem::MemKv, Mode};

#[test]
fn indexed_compactions_equal_full_walks() {
    for (i, mode) in [Mode::Discard, Mode::Universal, Mode::Messages].into_iter().enumerate() {
        for seed in 0..4u64 {
            let s =
                block_on(ci::indexed_equals_full_walk(&MemKv::new, mode, 10 * i as u64 + seed, 70, 9 + seed as usize));
            assert!(s.compactions >= 5, "{mode:?}: {s:?}");
            if mode != Mode::Messages {
                assert!(s.indexed + 2 >= s.compactions, "{mode:?}: {s:?}");
            }
        }
    }
}

#[test]
fn a_reorg_below_the_anchor_walks_to_genesis() {
    for mode in [Mode::Discard, Mode::Universal] {
        block_on(ci::reorg_below_the_anchor(&MemKv::new, mode));
    }
}

#[test]
fn a_missing_header_is_never_indexed() {
    block_on(ci::missing_header_is_never_indexed(&MemKv::new));
}

#[test]
fn lost_or_damaged_chunks_fall_back_to_the_walk() {
    block_on(ci::damaged_chunks_fall_back(&MemKv::new));
}

#[test]
fn crash_matrix_over_an_indexed_compaction() {
    for (i, mode) in [Mode::Discard, Mode::Universal].into_iter().enumerate() {
        let s = block_on(ci::crash_matrix_over_indexed(mode, 5 + i as u64, 1));
        println!(
            "{mode:?}: {} calls, {} crash points, {} recovered purges",
            s.calls, s.crash_points, s.recovered_purges
        );
        assert!(s.recovered_purges > 0);
    }
}
