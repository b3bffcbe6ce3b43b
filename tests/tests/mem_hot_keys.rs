//! The hot key list on the in-memory backend: compactions whose collect visits the list
//! against compactions that scan, in the orders real nodes write in, with late messages and
//! blocks deleted through the API.

use splitstore_conformance::{
    executor::block_on,
    hot_keys::{listed_equals_scanned, listed_within_equals_scanned},
};
use splitstore_core::{mem::MemKv, Mode};

#[test]
fn compactions_from_the_hot_key_list_equal_compactions_that_scan() {
    for (i, mode) in [Mode::Discard, Mode::Universal, Mode::Messages].into_iter().enumerate() {
        for seed in 0..8u64 {
            let s = block_on(listed_equals_scanned(&MemKv::new, mode, 10 * i as u64 + seed, 70, 9 + seed as usize % 4));
            assert!(s.compactions >= 5, "{mode:?}, seed {seed}: {s:?}");
            assert_eq!(s.listed + s.deletions + 1, s.compactions, "{mode:?}, seed {seed}: {s:?}");
            if mode != Mode::Messages {
                // The chain index marks the final headers: the list leaves them out.
                assert!(s.indexed > 0, "{mode:?}, seed {seed}: {s:?}");
                assert_eq!(s.fewer, s.indexed, "{mode:?}, seed {seed}: {s:?}");
            }
        }
    }
}

/// Limits below what the list needs, and one that the walk's set of the chain index's keys
/// passes once the chain is long enough while the list alone would still fit (the 24 KiB one,
/// from about the 500th epoch): the list is dropped or never kept, and every compaction still
/// leaves the stores as one that scans.
#[test]
fn a_list_past_its_limit_changes_nothing_but_what_collect_visits() {
    for mode in [Mode::Discard, Mode::Universal] {
        for (seed, epochs, limit) in [(1u64, 120, 2 << 10), (2, 120, 8 << 10), (1, 800, 24 << 10), (5, 800, 24 << 10)] {
            let at = format!("{mode:?}, seed {seed}, {epochs} epochs, limit {limit}");
            let s = block_on(listed_within_equals_scanned(&MemKv::new, mode, seed, epochs, 9, limit));
            assert!(s.compactions >= 10, "{at}: {s:?}");
            if limit == 24 << 10 {
                // Kept while the index is short, then not.
                assert!(s.kept > 0 && s.kept < s.compactions && s.listed > 0, "{at}: {s:?}");
            }
        }
    }
}
