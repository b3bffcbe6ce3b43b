//! The kept graph on the in-memory backend: compactions that mark from it against compactions
//! that read every block, in the orders real nodes write in, with late messages and blocks
//! deleted through the API.

use splitstore_conformance::{executor::block_on, kept_graph::kept_equals_reads};
use splitstore_core::{mem::MemKv, Mode};

#[test]
fn compactions_from_the_kept_graph_equal_compactions_that_read() {
    for (i, mode) in [Mode::Discard, Mode::Universal, Mode::Messages].into_iter().enumerate() {
        for seed in 0..8u64 {
            let s = block_on(kept_equals_reads(&MemKv::new, mode, 10 * i as u64 + seed, 70, 9 + seed as usize % 4));
            assert!(s.compactions >= 5, "{mode:?}, seed {seed}: {s:?}");
            if mode != Mode::Messages {
                // Every compaction marks from the graph, the first from the blocks written
                // before it, unless a deletion dropped the graph and the records just before.
                assert_eq!(s.from_graph + s.deletions, s.compactions, "{mode:?}, seed {seed}: {s:?}");
                assert_eq!(s.from_writes + s.deletions, s.compactions, "{mode:?}, seed {seed}: {s:?}");
            }
        }
    }
}
