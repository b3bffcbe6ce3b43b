//! The crash matrix on the in-memory backend, which models lost unflushed writes exactly:
//! every backend call of a full compaction, in every mode, with three survival variants.

use splitstore_conformance::{crash::crash_matrix, executor::block_on};
use splitstore_core::Mode;

fn run(mode: Mode, seed: u64) {
    let stats = block_on(crash_matrix(mode, seed, 24, 1));
    println!(
        "crash matrix {mode:?}: {} calls per compaction, {} crash points, {} recovered purges",
        stats.calls, stats.crash_points, stats.recovered_purges
    );
    assert!(stats.calls > 20 && stats.recovered_purges > 0);
}

#[test]
fn discard_every_crash_point() {
    run(Mode::Discard, 21);
}

#[test]
fn universal_every_crash_point() {
    run(Mode::Universal, 22);
}

#[test]
fn messages_every_crash_point() {
    run(Mode::Messages, 23);
}

/// The generic matrix (used for the on-disk and IndexedDB backends) on the in-memory one.
#[test]
fn generic_matrix_on_memory() {
    use splitstore_conformance::crash::crash_matrix_on;
    for mode in [Mode::Discard, Mode::Universal, Mode::Messages] {
        let s = block_on(crash_matrix_on(&splitstore_core::mem::MemKv::new, mode, 31, 20, 3));
        println!("generic crash matrix {mode:?}: {} calls, {} crash points", s.calls, s.crash_points);
        assert!(s.crash_points > 5 && s.recovered_purges > 0);
    }
}
