//! The native host of the splitstore: an on-disk [`kv::FjallKv`], a system clock, the repo
//! directory with its configuration and lock, and the pieces of the `splitstore` command.
#![forbid(unsafe_code)]
#![warn(missing_debug_implementations, missing_docs)]
// Errors carry the core's `Error`, which holds CIDs by value; errors are the cold path.
#![allow(clippy::result_large_err)]

pub mod clock;
pub mod demo;
pub mod errors;
pub mod kv;
pub mod ops;
pub mod output;
pub mod progress;
pub mod repo;

pub use clock::SystemClock;
pub use errors::HostError;
pub use kv::{FjallKv, KvOptions};
pub use repo::{Repo, RepoConfig};
