//! splitstore-conformance

#[cfg(not(target_arch = "wasm32"))]
pub mod testdata;
pub mod chain;
pub mod executor;
pub mod fault;
pub mod oracle;
pub mod scenarios;
pub mod kv_contract;
pub mod crash;
pub mod interleave;
pub mod realdata;
