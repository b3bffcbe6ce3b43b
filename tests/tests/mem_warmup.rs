//! Warmup of an empty hot store from a cold archive, on the in-memory backend: what it copies,
//! that it runs once, and the crash matrix over every call of it.

use splitstore_conformance::{executor::block_on, warmup};
use splitstore_core::{mem::MemKv, Mode};

#[test]
fn warmup_copies_headers_and_one_finality_of_state_once() {
    for mode in [Mode::Discard, Mode::Universal, Mode::Messages] {
        let copied = block_on(warmup::warmup_from_an_archive(&MemKv::new, mode));
        println!("{mode:?}: warmup copied {copied} blocks");
    }
}

#[test]
fn no_warmup_without_an_archive_or_with_a_hot_store() {
    block_on(warmup::no_warmup_without_an_archive(&MemKv::new));
}

#[test]
fn warmup_crash_matrix_every_call() {
    let s = block_on(warmup::warmup_crash_matrix(Mode::Universal, 1));
    println!(
        "warmup crash matrix: {} calls, {} crash points, {} left a partial copy",
        s.calls, s.crash_points, s.partial
    );
    assert!(s.calls > 5 && s.partial > 0);
}
