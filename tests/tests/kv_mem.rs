//! The KV contract on the in-memory backend.
#![cfg(not(target_arch = "wasm32"))]

use splitstore_conformance::kv_contract;
use splitstore_core::mem::MemKv;

#[test]
fn mem_kv_meets_the_kv_contract() {
    futures::executor::block_on(kv_contract::run_all(MemKv::new));
}

#[test]
fn mem_kv_with_crash_tracking_meets_the_kv_contract() {
    futures::executor::block_on(kv_contract::run_all(MemKv::with_crash_tracking));
}
