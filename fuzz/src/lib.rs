//! The properties the fuzz targets check, one module per target, as plain functions of the
//! fuzzer's input.
//!
//! Each `check(data)` panics exactly when a property is violated; malformed input is expected
//! and must be rejected with a typed error, never a panic, an unbounded allocation or a hang.
//! The same file is compiled into the conformance suite's `fuzz_regressions` test, which
//! replays every input the fuzzers have found through these functions, so nothing here may
//! refer to `crate::` (siblings are reached through `super::`).

pub mod base;
pub mod car;
pub mod header;
pub mod input;
pub mod links;
pub mod meta;
pub mod ops;
