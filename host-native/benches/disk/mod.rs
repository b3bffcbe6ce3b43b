//! The sections of the on-disk compaction benchmark and what they share.

pub mod fixture;
pub mod foreground;
pub mod phases;
pub mod recovery;
pub mod scale;
pub mod sections;
pub mod stats;

/// Any failure of a bench step; the bench reports it and exits non-zero.
pub type BenchResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;
