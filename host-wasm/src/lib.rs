//! splitstore-wasm: the splitstore on IndexedDB, for the browser.
//!
//! - [`api::JsSplitStore`]: the JS class `SplitStore` (Promises, camelCase, TypeScript types).
//! - [`idb_kv::IdbKv`]: the core's key-value contract on IndexedDB (one database per store
//!   role, one object store per keyspace, one transaction per call).
//! - [`clock::JsClock`]: `Date.now()`, `setTimeout` sleeps and yields to the event loop.
//! - [`lock::WebLock`]: a Web Lock per database, so two tabs never open one store at once.
//! - [`limit::StorageLimit`]: the store's limit on the origin's usage, below which it keeps a
//!   reserve for compactions, so that a full store can still compact.
//! - [`identity`]: the store identity record, by which an open refuses a store the browser
//!   evicted in whole or in part.
//!
//! Everything runs on the page's one thread under `wasm-bindgen-futures`; a panic rejects
//! the call that caused it and stops the module cleanly (see [`guard`]).
//!
//! The crate is empty on other targets, so native workspace builds pass over it.
#![cfg(target_arch = "wasm32")]

pub mod api;
mod car_stream;
mod chunked;
pub mod clock;
mod convert;
pub mod events;
pub mod guard;
pub mod idb_kv;
pub mod identity;
pub mod js;
pub mod limit;
pub mod lock;
mod storage;
#[cfg(feature = "synth")]
pub mod synth_js;

pub use api::JsSplitStore;
pub use clock::JsClock;
pub use idb_kv::{db_name, IdbKv, Role};
pub use lock::{LockPolicy, WebLock};
