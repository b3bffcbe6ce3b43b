#![doc = include_str!("../README.md")]
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(missing_debug_implementations)]
#![cfg_attr(docsrs, feature(doc_cfg))]
// `Error` carries CIDs by value; errors are the cold path and boxing them would cost every caller.
#![allow(clippy::result_large_err)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

#[cfg(feature = "blockstore")]
pub mod blockstore;
pub mod car;
mod cbor;
mod chunked;
mod cid_serde;
pub mod clock;
pub mod compact;
pub mod config;
pub mod error;
#[cfg(feature = "fvm")]
pub mod fvm;
mod graph;
pub mod header;
mod hot_keys;
pub mod import;
pub mod key;
pub mod kv;
pub mod links;
mod live;
pub mod markset;
pub mod mem;
pub mod meta;
pub mod metrics;
mod pace;
pub mod send;
pub mod store;
mod sync;
// The crate's own unit tests draw from the generator's random streams.
#[cfg(any(test, feature = "synth"))]
pub mod synth;
mod walk;

pub use cid::Cid;
pub use clock::Clock;
pub use compact::{
    CompactionReport, NoProgress, PendingCompaction, Phase, Progress, ProgressSink, PruneReport, RecoveryReport,
    WarmupReport,
};
pub use config::{Config, Mode};
pub use error::{Error, KvError};
pub use key::BlockKey;
pub use kv::{Durability, Kv, Space, WriteBatch};
pub use metrics::Metrics;
pub use store::{CheckReport, Counts, HeadOutcome, HotView, Info, Protector, ReifyReport, SplitStore};
