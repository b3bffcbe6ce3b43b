#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_debug_implementations, missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]
// Errors carry the core's `Error`, which holds CIDs by value; errors are the cold path.
#![allow(clippy::result_large_err)]

pub mod admin;
pub mod backend;
pub mod clock;
#[cfg(feature = "demo")]
pub mod demo;
pub mod errors;
pub mod kv;
pub mod ops;
pub mod output;
pub mod progress;
pub mod prometheus;
pub mod repo;
#[cfg(feature = "s3")]
pub mod s3;
pub mod space;
pub mod status;

pub use backend::NativeKv;
pub use clock::SystemClock;
pub use errors::HostError;
pub use kv::{FjallKv, KvOptions, WritePressure};
pub use repo::{Repo, RepoConfig};
