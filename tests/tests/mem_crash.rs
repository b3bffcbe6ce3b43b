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
