//! Portable online compaction for a Filecoin hot/cold block store.
//!
//! The core reads no clock and does no I/O of its own: bytes come from [`kv::Kv`]
//! implementations and time from a [`clock::Clock`]. A host (native or browser) supplies both
//! and drives the futures this crate returns. Every rule of the compaction (what is live, what
//! is moved, what is purged, how a crash is recovered) lives here, so every host runs the same
//! logic.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_debug_implementations)]
// `Error` carries CIDs by value; errors are the cold path and boxing them would cost every caller.
#![allow(clippy::result_large_err)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

#[cfg(feature = "blockstore")]
pub mod blockstore;
pub mod car;
mod cbor;
pub mod clock;
pub mod compact;
pub mod config;
pub mod error;
#[cfg(feature = "fvm")]
pub mod fvm;
pub mod header;
pub mod import;
pub mod key;
pub mod kv;
pub mod links;
mod live;
pub mod markset;
pub mod mem;
pub mod meta;
pub mod send;
pub mod store;
pub mod synth;
mod walk;

pub use cid::Cid;
pub use clock::Clock;
pub use compact::{CompactionReport, NoProgress, PendingCompaction, Phase, Progress, ProgressSink, RecoveryReport};
pub use config::{Config, Mode};
pub use error::{Error, KvError};
pub use key::BlockKey;
pub use kv::{Durability, Kv, Space, WriteBatch};
pub use store::{CheckReport, HeadOutcome, Info, Protector, SplitStore};
