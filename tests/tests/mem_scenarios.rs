//! The compaction scenarios on the in-memory backend.

use splitstore_conformance::{blockstore_contract, executor::block_on, scenarios};
use splitstore_core::mem::MemKv;

#[test]
fn every_mode_matches_the_oracle() {
    block_on(scenarios::all_modes(&MemKv::new));
}

#[test]
fn identity_and_unitary_cids() {
    block_on(scenarios::identity_and_unitary(&MemKv::new));
}

#[test]
fn close_interrupts_a_compaction() {
    block_on(scenarios::close_interrupts(&MemKv::new));
}

#[test]
fn fingerprint_and_exact_mark_sets_agree() {
    block_on(scenarios::fingerprint_and_exact_agree(&MemKv::new));
}

#[test]
fn protectors_keep_their_dags() {
    block_on(scenarios::protectors_keep_their_dags(&MemKv::new));
}

#[test]
fn trigger_and_sync_rules() {
    block_on(scenarios::trigger_and_sync_rules(&MemKv::new));
}

#[test]
fn missing_reference_retries_follow_the_reference() {
    block_on(scenarios::missing_reference_retries(&MemKv::new));
}

#[test]
fn dropped_compaction_future_is_survivable() {
    let resumed = block_on(scenarios::dropped_compaction_future(1));
    println!("{resumed} drop points left a purge to resume");
    assert!(resumed > 0);
}

#[test]
fn the_blockstore_crate_contract_holds_in_memory() {
    block_on(blockstore_contract::blockstore_contract(&MemKv::new));
}
