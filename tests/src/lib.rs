//! splitstore-conformance

pub mod blockstore_contract;
pub mod chain;
pub mod chain_index;
pub mod crash;
pub mod drive;
pub mod executor;
pub mod fault;
pub mod full;
pub mod hot_keys;
pub mod interleave;
pub mod kept_graph;
pub mod kv_contract;
pub mod liveness;
pub mod oracle;
pub mod pins;
pub mod prune;
pub mod realdata;
pub mod reify;
pub mod scenarios;
#[cfg(not(target_arch = "wasm32"))]
pub mod testdata;
pub mod warmup;
pub mod workload;
pub mod wrap;
