//! The hot key list on the in-memory backend: compactions whose collect visits the list
//! against compactions that scan, in the orders real nodes write in, with late messages and
//! blocks deleted through the API.

use splitstore_conformance::{executor::block_on, hot_keys::listed_equals_scanned};
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
